//! Raft RPC endpoints (`/internal/raft/*`): the receiving side of `raft::HttpNetwork`.
//!
//! Each RPC must name this master's id in the target header; a mismatch means the masters
//! were started with different `--masters` lists, and is refused with 409.

use crate::master::{Master, NodeIdentity};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest, VoteRequest};
use orch_raft::{codec, TypeConfig, TARGET_HEADER};
use std::sync::Arc;

pub(super) fn routes() -> Router<Arc<Master>> {
    Router::new()
        .route("/internal/raft/append", post(append))
        .route("/internal/raft/vote", post(vote))
        .route("/internal/raft/snapshot", post(snapshot))
        .route("/internal/raft/node", get(node))
}

async fn node(State(master): State<Arc<Master>>) -> Json<NodeIdentity> {
    Json(master.identity())
}

async fn append(State(master): State<Arc<Master>>, headers: HeaderMap, body: Bytes) -> Response {
    let request: AppendEntriesRequest<TypeConfig> = match decoded(&master, &headers, &body) {
        Ok(request) => request,
        Err(refusal) => return *refusal,
    };
    let leader = request.vote.leader_id().voted_for().unwrap_or_default();
    master.contacts().record(leader);
    encoded(&master.raft().append_entries(request).await)
}

async fn vote(State(master): State<Arc<Master>>, headers: HeaderMap, body: Bytes) -> Response {
    let request: VoteRequest<u64> = match decoded(&master, &headers, &body) {
        Ok(request) => request,
        Err(refusal) => return *refusal,
    };
    encoded(&master.raft().vote(request).await)
}

async fn snapshot(State(master): State<Arc<Master>>, headers: HeaderMap, body: Bytes) -> Response {
    let request: InstallSnapshotRequest<TypeConfig> = match decoded(&master, &headers, &body) {
        Ok(request) => request,
        Err(refusal) => return *refusal,
    };
    encoded(&master.raft().install_snapshot(request).await)
}

/// The RPC in `body`, or the answer refusing it: meant for another id (409) or undecodable
/// (400). Boxed because a `Response` is large next to the requests.
fn decoded<T: serde::de::DeserializeOwned>(
    master: &Master,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<T, Box<Response>> {
    if let Some(refusal) = wrong_target(master, headers) {
        return Err(Box::new(refusal));
    }
    codec::decode(body).map_err(|error| {
        tracing::warn!(
            error = &error as &dyn std::error::Error,
            "refusing an undecodable raft rpc"
        );
        Box::new((StatusCode::BAD_REQUEST, "undecodable raft rpc").into_response())
    })
}

fn encoded<T: serde::Serialize>(value: &T) -> Response {
    match codec::encode(value) {
        Ok(bytes) => ([(header::CONTENT_TYPE, codec::CONTENT_TYPE)], bytes).into_response(),
        Err(error) => {
            tracing::error!(
                error = &error as &dyn std::error::Error,
                "cannot encode a raft rpc answer"
            );
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// A refusal when the RPC names another id than this master's.
fn wrong_target(master: &Master, headers: &HeaderMap) -> Option<Response> {
    let target = headers
        .get(TARGET_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if target == Some(master.id()) {
        return None;
    }
    tracing::error!(
        master.id = master.id(),
        requested = ?target,
        "refusing a raft rpc meant for another id: the masters were started with different --masters lists"
    );
    let message = format!(
        "this master at {} has id {}, not {:?}: start every master with the same --masters list",
        master.address(),
        master.id(),
        target
    );
    Some((StatusCode::CONFLICT, message).into_response())
}

//! Raft RPC endpoints (`/internal/raft/*`): the receiving side of `raft::HttpNetwork`.
//!
//! Each RPC must name this master's id in the target header; a mismatch means the masters
//! were started with different `--masters` lists, and is refused with 409. Before openraft
//! sees an RPC, `orch_raft::guard` checks it: a term absurdly far above ours is refused with
//! 400, a snapshot chunk out of order with 400, one past `--max-snapshot-bytes` with 413.
//! A master with TLS answers these routes only to clients that showed a master certificate
//! of the cluster CA (403 otherwise).

use crate::master::{Master, MembersView, NodeIdentity};
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest, VoteRequest};
use orch_raft::guard::{self, Refusal};
use orch_raft::{codec, TypeConfig, TARGET_HEADER};
use std::sync::Arc;

pub(super) fn routes() -> Router<Arc<Master>> {
    Router::new()
        .route("/internal/raft/append", post(append))
        .route("/internal/raft/vote", post(vote))
        .route("/internal/raft/snapshot", post(snapshot))
        .route("/internal/raft/node", get(node))
        .route("/internal/raft/members", get(members))
        .route("/internal/raft/rejoin", post(rejoin))
}

/// The membership and the masters holding data: a starting master asks whether it is one.
async fn members(State(master): State<Arc<Master>>) -> Json<MembersView> {
    Json(master.members_view())
}

/// A master that lost its data asks the leader to take it back under its new id.
#[derive(serde::Deserialize)]
struct Rejoin {
    address: String,
}

async fn rejoin(
    State(master): State<Arc<Master>>,
    Json(body): Json<Rejoin>,
) -> Result<Json<serde_json::Value>, super::ApiError> {
    let id = master.replace_master(&body.address).await?;
    Ok(Json(
        serde_json::json!({ "id": id, "address": body.address }),
    ))
}

/// The middleware: with TLS, only masters of the cluster CA may call.
pub(super) async fn masters_only(
    State(master): State<Arc<Master>>,
    request: Request,
    next: Next,
) -> Response {
    if master.server_tls().is_none() {
        return next.run(request).await;
    }
    match request.extensions().get::<orch_pki::serve::Peer>() {
        Some(orch_pki::serve::Peer(Some((orch_pki::Role::Master, _)))) => next.run(request).await,
        peer => {
            tracing::warn!(?peer, path = %request.uri().path(), "refusing a raft rpc from a client that is not a master");
            (
                StatusCode::FORBIDDEN,
                "/internal/raft/* answers the masters of this cluster only: show a master \
                 certificate of the cluster CA",
            )
                .into_response()
        }
    }
}

async fn node(State(master): State<Arc<Master>>) -> Json<NodeIdentity> {
    Json(master.identity())
}

async fn append(State(master): State<Arc<Master>>, headers: HeaderMap, body: Bytes) -> Response {
    let request: AppendEntriesRequest<TypeConfig> = match decoded(&master, &headers, &body) {
        Ok(request) => request,
        Err(refusal) => return *refusal,
    };
    if let Some(refusal) = term_leap(&master, guard::append_terms(&request)) {
        return refusal;
    }
    let leader = request.vote.leader_id().voted_for().unwrap_or_default();
    master.contacts().record(leader);
    encoded(&master.raft().append_entries(request).await)
}

async fn vote(State(master): State<Arc<Master>>, headers: HeaderMap, body: Bytes) -> Response {
    let request: VoteRequest<u64> = match decoded(&master, &headers, &body) {
        Ok(request) => request,
        Err(refusal) => return *refusal,
    };
    if let Some(refusal) = term_leap(&master, guard::vote_terms(&request)) {
        return refusal;
    }
    encoded(&master.raft().vote(request).await)
}

async fn snapshot(State(master): State<Arc<Master>>, headers: HeaderMap, body: Bytes) -> Response {
    let request: InstallSnapshotRequest<TypeConfig> = match decoded(&master, &headers, &body) {
        Ok(request) => request,
        Err(refusal) => return *refusal,
    };
    if let Some(refusal) = term_leap(&master, guard::snapshot_terms(&request)) {
        return refusal;
    }
    let id = request.meta.snapshot_id.clone();
    let (offset, done) = (request.offset, request.done);
    let len = u64::try_from(request.data.len()).unwrap_or(u64::MAX);
    if let Err(refusal) = master.snapshot_guard().check(&id, offset, len) {
        return refused(&refusal);
    }
    let answer = master.raft().install_snapshot(request).await;
    if answer.is_ok() {
        master.snapshot_guard().received(&id, offset, len, done);
    }
    encoded(&answer)
}

/// The refusal of an RPC whose terms leap absurdly far above this master's, if they do.
fn term_leap(master: &Master, terms: Vec<u64>) -> Option<Response> {
    let ours = master.raft().metrics().borrow().current_term;
    guard::check_terms(ours, terms)
        .err()
        .map(|refusal| refused(&refusal))
}

/// The answer refusing an RPC the guard refused: 413 for a snapshot over the cap, else 400.
fn refused(refusal: &Refusal) -> Response {
    tracing::warn!(%refusal, "refusing a raft rpc");
    let status = match refusal {
        Refusal::SnapshotTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        Refusal::TermLeap { .. } | Refusal::SnapshotOffset { .. } => StatusCode::BAD_REQUEST,
    };
    (status, refusal.to_string()).into_response()
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

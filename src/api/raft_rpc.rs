//! Raft RPC endpoints (`/internal/raft/*`): the receiving side of `raft::HttpNetwork`.
//!
//! Each RPC must name this master's id in the target header; a mismatch means the masters
//! were started with different `--masters` lists, and is refused with 409.

use crate::master::{Master, NodeIdentity};
use crate::raft::{TypeConfig, TARGET_HEADER};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest, VoteRequest};
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

async fn append(
    State(master): State<Arc<Master>>,
    headers: HeaderMap,
    Json(request): Json<AppendEntriesRequest<TypeConfig>>,
) -> Response {
    if let Some(refusal) = wrong_target(&master, &headers) {
        return refusal;
    }
    master
        .contacts()
        .record(request.vote.leader_id().voted_for().unwrap_or_default());
    Json(master.raft().append_entries(request).await).into_response()
}

async fn vote(
    State(master): State<Arc<Master>>,
    headers: HeaderMap,
    Json(request): Json<VoteRequest<u64>>,
) -> Response {
    if let Some(refusal) = wrong_target(&master, &headers) {
        return refusal;
    }
    Json(master.raft().vote(request).await).into_response()
}

async fn snapshot(
    State(master): State<Arc<Master>>,
    headers: HeaderMap,
    Json(request): Json<InstallSnapshotRequest<TypeConfig>>,
) -> Response {
    if let Some(refusal) = wrong_target(&master, &headers) {
        return refusal;
    }
    Json(master.raft().install_snapshot(request).await).into_response()
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

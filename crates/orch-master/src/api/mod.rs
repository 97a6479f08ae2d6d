//! The master's HTTP surface, one port: Marathon `/v2`, orch `/v1`, Raft RPC
//! `/internal/raft`, `/ping` and `/metrics`.
//!
//! Requests for `/v1` and `/v2` that reach a follower are forwarded to the leader
//! ([`proxy`]); every response says who leads (`X-Marathon-Leader`).
//!
//! May depend on: master (its `Master` handle), gitops (its `Gitops` handle), state, model, and raft's wire types
//! (`TypeConfig`, `TARGET_HEADER`, `codec`) for the Raft RPC endpoints. Never raft storage.

mod agent_rpc;
mod auth;
mod body;
mod error;
mod marathon;
mod mesos;
mod orch;
mod proxy;
mod raft_rpc;

pub use error::ApiError;

use crate::gitops::Gitops;
use crate::master::Master;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use std::sync::Arc;

/// The largest request body the public API accepts.
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// The largest Raft RPC body (snapshot chunks are 1 MiB; log batches are bounded by openraft).
const MAX_RAFT_BODY_BYTES: usize = 64 << 20;

/// The router of a master.
pub fn router(master: Arc<Master>, gitops: Arc<Gitops>) -> Router {
    let public = Router::new()
        .merge(marathon::routes())
        .merge(orch::routes())
        .merge(
            agent_rpc::routes().route_layer(axum::middleware::from_fn_with_state(
                Arc::clone(&master),
                agent_rpc::agents_only,
            )),
        )
        .merge(mesos::routes())
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES));
    let internal = raft_rpc::routes()
        .route_layer(axum::middleware::from_fn_with_state(
            Arc::clone(&master),
            raft_rpc::masters_only,
        ))
        .layer(DefaultBodyLimit::max(MAX_RAFT_BODY_BYTES));
    Router::new()
        .route("/ping", get(ping))
        .route("/metrics", get(metrics))
        .merge(public)
        .merge(internal)
        .fallback(|| async { ApiError::UnknownRoute })
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&master),
            proxy::leader_only,
        ))
        // Outermost: nobody without the token reaches the routes or the leader proxy.
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&master),
            auth::authenticate,
        ))
        .layer(axum::Extension(gitops))
        .with_state(master)
}

/// `pong`, or 503 once this master's Raft core has stopped (it is about to exit).
async fn ping(State(master): State<Arc<Master>>) -> Response {
    match master.raft_failure() {
        None => "pong".into_response(),
        Some(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("raft has stopped on this master: {why}"),
        )
            .into_response(),
    }
}

/// Prometheus text by default; Marathon's JSON shape (Dropwizard's `gauges`, `counters`, ...)
/// for clients that ask for JSON, as marathon-python's `get_metrics()` does.
async fn metrics(
    axum::extract::State(master): axum::extract::State<Arc<Master>>,
    headers: axum::http::HeaderMap,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let wants_json = headers
        .get(axum::http::header::ACCEPT)
        .and_then(|accept| accept.to_str().ok())
        .is_some_and(|accept| accept.contains("application/json"));
    if wants_json {
        let status = master.cluster_status();
        let gauge = |value: u64| serde_json::json!({ "value": value });
        let body = serde_json::json!({
            "version": "4.0.0",
            "gauges": {
                "orch.raft.term": gauge(status.term),
                "orch.raft.commit_index": gauge(status.commit_index),
                "orch.raft.applied_index": gauge(status.applied_index),
                "orch.raft.is_leader": gauge(u64::from(status.leader == Some(master.id()))),
            },
            "counters": {},
            "histograms": {},
            "meters": {},
            "timers": {},
        });
        return axum::Json(body).into_response();
    }
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        master.render_metrics(),
    )
        .into_response()
}

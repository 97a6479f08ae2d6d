//! `/internal/agent/*`: the master side of the agent protocol (see `protocol`). Answered by
//! the leader only: a follower says 503 with the leader's address, so agents follow the
//! leader themselves instead of long-polling through a proxy.

use crate::master::{AgentProtocolError, Master, WriteError};
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use orch_core::model::AgentId;
use orch_core::protocol::{Generation, Heartbeat, NotLeader, Registration, StatusBatch};
use std::sync::Arc;
use std::time::Duration;

/// The longest long poll the master holds.
const MAX_WAIT: Duration = Duration::from_secs(30);

pub(super) fn routes() -> Router<Arc<Master>> {
    Router::new()
        .route("/internal/agent/register", post(register))
        .route("/internal/agent/heartbeat", post(heartbeat))
        .route("/internal/agent/{id}/desired", get(desired))
        .route("/internal/agent/{id}/status", post(status))
}

async fn register(
    State(master): State<Arc<Master>>,
    body: Result<Json<Registration>, JsonRejection>,
) -> Response {
    let Json(registration) = match body {
        Ok(body) => body,
        Err(rejection) => return bad_request(&rejection.body_text()),
    };
    answer(&master, master.register_agent(registration).await)
}

async fn heartbeat(
    State(master): State<Arc<Master>>,
    body: Result<Json<Heartbeat>, JsonRejection>,
) -> Response {
    let Json(heartbeat) = match body {
        Ok(body) => body,
        Err(rejection) => return bad_request(&rejection.body_text()),
    };
    match master.agent_heartbeat(heartbeat).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(error) => refusal(&master, &error),
    }
}

#[derive(Debug, serde::Deserialize)]
struct DesiredQuery {
    after: Option<String>,
    wait_ms: Option<u64>,
}

async fn desired(
    State(master): State<Arc<Master>>,
    Path(id): Path<String>,
    Query(query): Query<DesiredQuery>,
) -> Response {
    let after = match query.after.as_deref().map(str::parse::<Generation>) {
        None => Generation::default(),
        Some(Ok(generation)) => generation,
        Some(Err(reason)) => return bad_request(&format!("after: {reason}")),
    };
    let wait = Duration::from_millis(query.wait_ms.unwrap_or(0)).min(MAX_WAIT);
    answer(&master, master.desired_set(&AgentId(id), after, wait).await)
}

async fn status(
    State(master): State<Arc<Master>>,
    Path(id): Path<String>,
    body: Result<Json<StatusBatch>, JsonRejection>,
) -> Response {
    let Json(batch) = match body {
        Ok(body) => body,
        Err(rejection) => return bad_request(&rejection.body_text()),
    };
    if batch.agent_id.0 != id {
        return bad_request("the agent id in the path and the body differ");
    }
    answer(&master, master.agent_status(batch).await)
}

fn answer<T: serde::Serialize>(master: &Master, result: Result<T, AgentProtocolError>) -> Response {
    match result {
        Ok(body) => Json(body).into_response(),
        Err(error) => refusal(master, &error),
    }
}

fn refusal(master: &Master, error: &AgentProtocolError) -> Response {
    let message = || Json(serde_json::json!({ "message": error.to_string() }));
    match error {
        AgentProtocolError::Write(WriteError::NotLeader { .. }) => {
            let leader = master.leader().map(|leader| leader.address);
            (StatusCode::SERVICE_UNAVAILABLE, Json(NotLeader { leader })).into_response()
        }
        AgentProtocolError::UnknownAgent(_) => (StatusCode::NOT_FOUND, message()).into_response(),
        AgentProtocolError::Protocol(_) => bad_request(&error.to_string()),
        AgentProtocolError::Write(_) | AgentProtocolError::Unexpected(_) => {
            (StatusCode::SERVICE_UNAVAILABLE, message()).into_response()
        }
    }
}

fn bad_request(message: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(serde_json::json!({ "message": message })),
    )
        .into_response()
}

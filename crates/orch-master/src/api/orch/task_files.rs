//! `GET /v1/tasks/{id}/files/read?path=&offset=&length=`: a file of a task's sandbox
//! (`stdout`, `stderr`, or another path inside it), read through the master from the task's
//! agent. Clients never need to reach agents: with TLS an agent answers masters only, and
//! the master reads for callers who may read the task's app (an ACL token that may not sees
//! no such task). Answers the agent's `{"data", "offset"}`.

use crate::api::ApiError;
use crate::master::Master;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use orch_core::model::TaskId;
use serde_json::Value;
use std::sync::Arc;

pub(super) fn routes() -> Router<Arc<Master>> {
    Router::new().route("/v1/tasks/{id}/files/read", get(read))
}

/// The query: `path` relative to the sandbox [default: `stdout`], and the agent's `offset`
/// and `length`.
#[derive(Debug, serde::Deserialize)]
struct ReadQuery {
    path: Option<String>,
    offset: Option<i64>,
    length: Option<i64>,
}

async fn read(
    State(master): State<Arc<Master>>,
    Path(id): Path<String>,
    Query(query): Query<ReadQuery>,
) -> Result<Response, ApiError> {
    let path = query.path.unwrap_or_else(|| "stdout".to_owned());
    if path.starts_with('/') || path.split('/').any(|segment| segment == "..") {
        return Err(ApiError::invalid(
            "/path",
            "a path inside the task's sandbox",
        ));
    }
    let state = master.read_state().await?;
    let task = state
        .tasks
        .get(&TaskId(id.clone()))
        .ok_or_else(|| ApiError::TaskNotFound(id.clone()))?;
    let agent = state
        .agents
        .get(&task.agent_id)
        .ok_or_else(|| ApiError::TaskNotFound(id.clone()))?;
    let base = format!("{}://{}", master.scheme(), agent.info.address);
    let unreachable = |error: reqwest::Error| {
        ApiError::Internal(format!(
            "cannot read from agent {}: {}",
            agent.info.address,
            orch_core::errors::chain(&error)
        ))
    };
    let view: Value = master
        .agent_http()
        .get(format!("{base}/state"))
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(unreachable)?
        .json()
        .await
        .map_err(unreachable)?;
    let directory = view["tasks"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|task| task["id"] == id.as_str())
        .and_then(|task| task["directory"].as_str())
        .ok_or_else(|| ApiError::TaskNotFound(id.clone()))?;
    let mut params = vec![("path", format!("{directory}/{path}"))];
    params.extend(query.offset.map(|offset| ("offset", offset.to_string())));
    params.extend(query.length.map(|length| ("length", length.to_string())));
    let url = reqwest::Url::parse_with_params(&format!("{base}/files/read"), &params)
        .map_err(|error| ApiError::Internal(format!("agent address {base}: {error}")))?;
    let answer = master
        .agent_http()
        .get(url)
        .send()
        .await
        .map_err(unreachable)?;
    let status = StatusCode::from_u16(answer.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let body: Value = answer.json().await.map_err(unreachable)?;
    Ok((status, Json(body)).into_response())
}

//! Marathon's `/v2` API: the shapes, status codes and error bodies of Marathon 1.6–1.10.

mod app_info;
mod apps;
mod deployments;
mod events;
mod groups;
mod info;
mod queue;
mod tasks;

use crate::api::ApiError;
use crate::master::Master;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use orch_core::model::{DeploymentId, Timestamp};
use orch_core::state::{Applied, Rejection};
use serde_json::json;
use std::sync::Arc;
use std::time::SystemTime;

pub(super) fn routes() -> Router<Arc<Master>> {
    Router::new()
        .merge(apps::routes())
        .merge(deployments::routes())
        .merge(events::routes())
        .merge(groups::routes())
        .merge(info::routes())
        .merge(queue::routes())
        .merge(tasks::routes())
}

/// Marathon parses query booleans with Java's `Boolean.valueOf`: case-insensitive "true".
fn query_flag(
    query: &std::collections::HashMap<String, String>,
    name: &str,
    default: bool,
) -> bool {
    query
        .get(name)
        .map_or(default, |value| value.eq_ignore_ascii_case("true"))
}

const DEPLOYMENT_ID: HeaderName = HeaderName::from_static("marathon-deployment-id");

/// The leader chooses versions; the clock is read in handlers, never in `apply`.
fn now() -> Timestamp {
    Timestamp::from_system_time(SystemTime::now())
}

fn new_deployment_id() -> DeploymentId {
    DeploymentId(uuid::Uuid::new_v4().to_string())
}

/// Marathon's answer to calls that start a deployment.
fn deployment_result(
    status: StatusCode,
    deployment_id: &DeploymentId,
    version: Timestamp,
) -> Response {
    let body = json!({"deploymentId": deployment_id, "version": version});
    let mut response = (status, Json(body)).into_response();
    insert_header(&mut response, DEPLOYMENT_ID, &deployment_id.0);
    response
}

fn insert_header(response: &mut Response, name: HeaderName, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        response.headers_mut().insert(name, value);
    }
}

/// The API error for a write whose outcome the handler does not expect.
pub(in crate::api) fn unexpected(applied: Applied) -> ApiError {
    match applied {
        Applied::Rejected(Rejection::AppExists(id)) => ApiError::AppExists(id.to_string()),
        Applied::Rejected(Rejection::AppUnknown(id)) => ApiError::AppNotFound(id.to_string()),
        Applied::Rejected(Rejection::InvalidApp(error)) => error.into(),
        Applied::Rejected(Rejection::AppLocked(deployments)) => ApiError::AppLocked(deployments),
        Applied::Rejected(Rejection::DeploymentUnknown(id)) => ApiError::DeploymentNotFound(id.0),
        Applied::Rejected(Rejection::GroupExists(id)) => ApiError::GroupExists(id.to_string()),
        Applied::Rejected(Rejection::GroupUnknown(id)) => ApiError::GroupNotFound(id.to_string()),
        Applied::Rejected(Rejection::IdConflict { id }) => ApiError::IdConflict(id),
        Applied::Rejected(Rejection::CyclicDependencies) => {
            ApiError::invalid("/", "Dependency graph has cyclic dependencies.")
        }
        Applied::Rejected(Rejection::Forbidden { token, path, lacks }) => {
            ApiError::forbidden(&token, &path, &lacks)
        }
        other => {
            tracing::error!(applied = ?other, "a write produced an outcome its handler does not expect");
            ApiError::Internal("the write had an unexpected outcome".into())
        }
    }
}

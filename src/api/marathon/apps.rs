//! `/v2/apps`: create, list, read, update and delete app definitions.

use super::query_flag;
use crate::api::body::JsonObject;
use crate::api::ApiError;
use crate::master::Master;
use crate::model::{App, AppId, DeploymentId, Timestamp};
use crate::state::{Applied, Command, Rejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

const DEPLOYMENT_ID: HeaderName = HeaderName::from_static("marathon-deployment-id");

pub(super) fn routes() -> Router<Arc<Master>> {
    Router::new()
        .route("/v2/apps", get(list).post(create))
        .route("/v2/apps/{*id}", get(show).put(update).delete(remove))
}

/// The app JSON Marathon returns: the definition plus counts and deployments. No tasks run
/// yet, so the counts are zero.
fn app_info(app: &App, deployments: &[&DeploymentId]) -> Value {
    let mut json = app.to_json();
    for count in [
        "tasksStaged",
        "tasksRunning",
        "tasksHealthy",
        "tasksUnhealthy",
    ] {
        json.insert(count.into(), json!(0));
    }
    json.insert(
        "deployments".into(),
        deployments.iter().map(|id| json!({"id": id})).collect(),
    );
    Value::Object(json)
}

async fn list(State(master): State<Arc<Master>>) -> Result<Json<Value>, ApiError> {
    let state = master.read_state().await?;
    let apps: Vec<Value> = state.apps.values().map(|app| app_info(app, &[])).collect();
    Ok(Json(json!({ "apps": apps })))
}

async fn show(
    State(master): State<Arc<Master>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = existing_app_id(&id)?;
    let state = master.read_state().await?;
    let app = state
        .apps
        .get(&id)
        .ok_or_else(|| ApiError::AppNotFound(id.to_string()))?;
    let mut info = app_info(app, &[]);
    if let Some(object) = info.as_object_mut() {
        object.insert("tasks".into(), json!([]));
    }
    Ok(Json(json!({ "app": info })))
}

async fn create(
    State(master): State<Arc<Master>>,
    JsonObject(definition): JsonObject,
) -> Result<Response, ApiError> {
    let id = match definition.get("id") {
        Some(Value::String(id)) => {
            AppId::parse(id).map_err(|e| ApiError::invalid("/id", e.to_string()))?
        }
        Some(_) => return Err(ApiError::invalid("/id", "error.expected.jsstring")),
        None => return Err(ApiError::invalid("/id", "error.path.missing")),
    };
    let app = App::new(id, now(), definition);
    let command = Command::CreateApp {
        app,
        deployment_id: new_deployment_id(),
    };
    match master.write(command).await? {
        Applied::AppCreated { app, deployment_id } => {
            let mut response =
                (StatusCode::CREATED, Json(app_info(&app, &[&deployment_id]))).into_response();
            insert_header(
                &mut response,
                axum::http::header::LOCATION,
                &format!("/v2/apps{}", app.id),
            );
            insert_header(&mut response, DEPLOYMENT_ID, &deployment_id.0);
            Ok(response)
        }
        other => Err(unexpected(other)),
    }
}

async fn update(
    State(master): State<Arc<Master>>,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    JsonObject(patch): JsonObject,
) -> Result<Response, ApiError> {
    let id = AppId::parse(&id).map_err(|e| ApiError::invalid("/id", e.to_string()))?;
    let partial = query_flag(&query, "partialUpdate", true);
    let command = Command::UpdateApp {
        id,
        version: now(),
        patch,
        partial,
        deployment_id: new_deployment_id(),
    };
    match master.write(command).await? {
        Applied::AppUpdated {
            created,
            version,
            deployment_id,
        } => {
            let status = if created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            Ok(deployment_result(status, &deployment_id, version))
        }
        other => Err(unexpected(other)),
    }
}

async fn remove(
    State(master): State<Arc<Master>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = existing_app_id(&id)?;
    let command = Command::DeleteApp {
        id,
        version: now(),
        deployment_id: new_deployment_id(),
    };
    match master.write(command).await? {
        Applied::AppDeleted {
            version,
            deployment_id,
        } => Ok(deployment_result(StatusCode::OK, &deployment_id, version)),
        other => Err(unexpected(other)),
    }
}

/// The id of an app that must exist: one that cannot be an app id is simply not found.
fn existing_app_id(raw: &str) -> Result<AppId, ApiError> {
    AppId::parse(raw)
        .map_err(|_| ApiError::AppNotFound(format!("/{}", raw.trim_start_matches('/'))))
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

fn unexpected(applied: Applied) -> ApiError {
    match applied {
        Applied::Rejected(Rejection::AppExists(id)) => ApiError::AppExists(id.to_string()),
        Applied::Rejected(Rejection::AppUnknown(id)) => ApiError::AppNotFound(id.to_string()),
        other => {
            tracing::error!(applied = ?other, "a write produced an outcome its handler does not expect");
            ApiError::Internal("the write had an unexpected outcome".into())
        }
    }
}

fn insert_header(response: &mut Response, name: HeaderName, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        response.headers_mut().insert(name, value);
    }
}

/// The leader chooses versions; the clock is read here, in the handler, never in `apply`.
fn now() -> Timestamp {
    Timestamp::from_system_time(SystemTime::now())
}

fn new_deployment_id() -> DeploymentId {
    DeploymentId(uuid::Uuid::new_v4().to_string())
}

//! `/v2/apps`: create, list, read, update (PUT, PATCH, rollback) and delete app definitions,
//! and the versions of an app.
//!
//! Definitions are validated here against the current state (422 with Marathon's details)
//! and again by `ClusterState::apply`, which also assigns service ports.

use super::query_flag;
use crate::api::body::JsonObject;
use crate::api::ApiError;
use crate::master::Master;
use crate::model::{App, AppId, DeploymentId, Timestamp};
use crate::state::ClusterState;
use crate::state::{Applied, Command, Rejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

const DEPLOYMENT_ID: HeaderName = HeaderName::from_static("marathon-deployment-id");

pub(super) fn routes() -> Router<Arc<Master>> {
    Router::new()
        .route("/v2/apps", get(list).post(create))
        .route(
            "/v2/apps/{*path}",
            get(show).put(update).patch(patch).delete(remove),
        )
}

/// What a path under `/v2/apps/` names. Ids contain slashes, so the sub-resource is the
/// last reserved segment (`versions` cannot end an app id).
enum AppPath {
    /// `/v2/apps/{id}`.
    App(String),
    /// `/v2/apps/{id}/versions`.
    Versions(String),
    /// `/v2/apps/{id}/versions/{version}`.
    Version(String, String),
}

impl AppPath {
    fn parse(path: &str) -> Self {
        if let Some(id) = path.strip_suffix("/versions") {
            return Self::Versions(id.to_owned());
        }
        match path.rsplit_once("/versions/") {
            Some((id, version)) if !version.contains('/') => {
                Self::Version(id.to_owned(), version.to_owned())
            }
            _ => Self::App(path.to_owned()),
        }
    }
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
    Path(path): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let state = master.read_state().await?;
    match AppPath::parse(&path) {
        AppPath::App(id) => {
            let app = existing_app(&state, &id)?;
            let mut info = app_info(app, &[]);
            if let Some(object) = info.as_object_mut() {
                object.insert("tasks".into(), json!([]));
            }
            Ok(Json(json!({ "app": info })))
        }
        AppPath::Versions(id) => {
            let app = existing_app(&state, &id)?;
            let versions: Vec<Timestamp> = state
                .app_versions
                .get(&app.id)
                .map(|versions| versions.iter().map(|v| v.version).collect())
                .unwrap_or_else(|| vec![app.version]);
            Ok(Json(json!({ "versions": versions })))
        }
        AppPath::Version(id, version) => {
            let app = existing_app(&state, &id)?;
            Ok(Json(Value::Object(
                stored_version(&state, &app.id, &version)?.to_json(),
            )))
        }
    }
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
    let app = App::from_json(id, now(), &definition)?;
    let command = Command::CreateApp {
        app: Box::new(app),
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

/// PUT: create or update (partial by default); `{"version": ts}` rolls back to that version.
async fn update(
    State(master): State<Arc<Master>>,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    JsonObject(patch): JsonObject,
) -> Result<Response, ApiError> {
    let id = AppId::parse(&id).map_err(|e| ApiError::invalid("/id", e.to_string()))?;
    let partial = query_flag(&query, "partialUpdate", true);
    match rollback_target(&patch) {
        Some(version) => {
            let state = master.read_state().await?;
            let app = existing_app(&state, id.as_str())?;
            let definition = stored_version(&state, &app.id, version)?.spec.to_json();
            write_update(&master, &state, id, definition, false).await
        }
        None => {
            let state = master.read_state().await?;
            write_update(&master, &state, id, patch, partial).await
        }
    }
}

/// PATCH: a partial update of an existing app.
async fn patch(
    State(master): State<Arc<Master>>,
    Path(id): Path<String>,
    JsonObject(patch): JsonObject,
) -> Result<Response, ApiError> {
    let state = master.read_state().await?;
    let id = existing_app(&state, &id)?.id.clone();
    write_update(&master, &state, id, patch, true).await
}

/// The version a body asks to roll back to: `{"version": ts}`, optionally with `id`.
fn rollback_target(body: &Map<String, Value>) -> Option<&str> {
    let only_id_and_version = body.keys().all(|key| key == "id" || key == "version");
    match body.get("version") {
        Some(Value::String(version)) if only_id_and_version => Some(version),
        _ => None,
    }
}

/// Checks the update against `state` (422 before anything is written), then writes it.
async fn write_update(
    master: &Master,
    state: &ClusterState,
    id: AppId,
    patch: Map<String, Value>,
    partial: bool,
) -> Result<Response, ApiError> {
    let version = now();
    state.app_after_update(&id, version, &patch, partial)?;
    let command = Command::UpdateApp {
        id,
        version,
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

/// The app named by `raw` in `state`, or 404.
fn existing_app<'a>(state: &'a ClusterState, raw: &str) -> Result<&'a Arc<App>, ApiError> {
    let id = existing_app_id(raw)?;
    state
        .apps
        .get(&id)
        .ok_or_else(|| ApiError::AppNotFound(id.to_string()))
}

/// The stored version `version` of app `id`, or 404 with Marathon's versioned message.
fn stored_version<'a>(
    state: &'a ClusterState,
    id: &AppId,
    version: &str,
) -> Result<&'a Arc<App>, ApiError> {
    Timestamp::parse(version)
        .ok()
        .and_then(|timestamp| state.app_version(id, timestamp))
        .ok_or_else(|| ApiError::AppVersionNotFound {
            id: id.to_string(),
            version: version.to_owned(),
        })
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
        Applied::Rejected(Rejection::InvalidApp(error)) => error.into(),
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

//! `/v2/apps`: create, list, read, update (PUT, PATCH, rollback), restart and delete apps,
//! their versions, and their tasks (`/v2/apps/{id}/tasks[/{taskId}]`).
//!
//! Definitions are validated here against the current state (422 with Marathon's details)
//! and again by `ClusterState::apply`, which also assigns service ports and refuses apps
//! that a running deployment holds (409 unless `force`).

use super::app_info::{app_info, matches, Embed};
use super::tasks::{kill, task_json, TaskList};
use super::{
    deployment_result, insert_header, new_deployment_id, now, query_flag, unexpected, DEPLOYMENT_ID,
};
use crate::api::body::JsonObject;
use crate::api::ApiError;
use crate::master::Master;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use orch_core::model::{App, AppId, Timestamp};
use orch_core::state::{Applied, ClusterState, Command, Event};
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

pub(super) fn routes() -> Router<Arc<Master>> {
    Router::new()
        .route("/v2/apps", get(list).post(create))
        .route(
            "/v2/apps/{*path}",
            get(show)
                .put(update)
                .patch(patch)
                .delete(remove)
                .post(post_action),
        )
}

/// What a path under `/v2/apps/` names. Ids contain slashes, so the sub-resource is the
/// last reserved segment (`versions`, `tasks` and `restart` cannot end an app id).
enum AppPath {
    /// `/v2/apps/{id}`.
    App(String),
    /// `/v2/apps/{id}/versions`.
    Versions(String),
    /// `/v2/apps/{id}/versions/{version}`.
    Version(String, String),
    /// `/v2/apps/{id}/tasks`.
    Tasks(String),
    /// `/v2/apps/{id}/tasks/{taskId}`.
    Task(String, String),
    /// `/v2/apps/{id}/restart`.
    Restart(String),
}

impl AppPath {
    fn parse(path: &str) -> Self {
        if let Some(id) = path.strip_suffix("/versions") {
            return Self::Versions(id.to_owned());
        }
        if let Some(id) = path.strip_suffix("/tasks") {
            return Self::Tasks(id.to_owned());
        }
        if let Some(id) = path.strip_suffix("/restart") {
            return Self::Restart(id.to_owned());
        }
        if let Some((id, version)) = path.rsplit_once("/versions/") {
            if !version.contains('/') {
                return Self::Version(id.to_owned(), version.to_owned());
            }
        }
        if let Some((id, task)) = path.rsplit_once("/tasks/") {
            if !task.contains('/') {
                return Self::Task(id.to_owned(), task.to_owned());
            }
        }
        Self::App(path.to_owned())
    }
}

/// The size of the last app list, to size the next one's buffer (lists of thousands of
/// tasks run to megabytes; growing the buffer step by step copies them several times).
static LIST_SIZE: AtomicUsize = AtomicUsize::new(0);

/// `value` as a JSON response, serialised into a buffer sized from the last one.
fn sized_json(value: &impl serde::Serialize, last_size: &AtomicUsize) -> Response {
    let mut buffer = Vec::with_capacity(last_size.load(Ordering::Relaxed) + 1024);
    match serde_json::to_writer(&mut buffer, value) {
        Ok(()) => {
            last_size.store(buffer.len(), Ordering::Relaxed);
            (
                [(axum::http::header::CONTENT_TYPE, "application/json")],
                buffer,
            )
                .into_response()
        }
        Err(error) => {
            ApiError::Internal(format!("cannot serialise the answer: {error}")).into_response()
        }
    }
}

/// `{"apps": [...]}`, written straight from the state.
#[derive(Debug, serde::Serialize)]
struct AppList<'a> {
    apps: Vec<super::app_info::AppInfo<'a>>,
}

/// `GET /v2/apps` always embeds counts and deployments.
const LIST_EMBED: Embed = Embed {
    tasks: false,
    counts: true,
    deployments: true,
    last_task_failure: false,
    readiness: false,
    task_stats: false,
};

/// `GET /v2/apps/{id}` always embeds counts, tasks, lastTaskFailure and deployments.
const SHOW_EMBED: Embed = Embed {
    tasks: true,
    counts: true,
    deployments: true,
    last_task_failure: true,
    readiness: false,
    task_stats: false,
};

async fn list(
    State(master): State<Arc<Master>>,
    Query(query): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let state = master.read_state().await?;
    let embed = Embed::parse(&query, LIST_EMBED);
    let apps: Vec<_> = state
        .apps
        .values()
        .filter(|app| matches(app, &query))
        .map(|app| app_info(app, &state, embed).with_readiness(embed, master.readiness_of(&app.id)))
        .collect();
    Ok(sized_json(&AppList { apps }, &LIST_SIZE))
}

async fn show(
    State(master): State<Arc<Master>>,
    Path(path): Path<String>,
    Query(query): Query<Vec<(String, String)>>,
) -> Result<Json<Value>, ApiError> {
    let state = master.read_state().await?;
    match AppPath::parse(&path) {
        AppPath::App(id) => {
            let app = existing_app(&state, &id)?;
            let embed = Embed::parse(&query, SHOW_EMBED);
            let info =
                app_info(app, &state, embed).with_readiness(embed, master.readiness_of(&app.id));
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
        AppPath::Tasks(id) => {
            let app = existing_app(&state, &id)?;
            let service_ports = app.spec.service_ports();
            let tasks = state
                .app_tasks(&app.id)
                .map(|task| task_json(task, &service_ports))
                .collect();
            Ok(Json(
                serde_json::to_value(TaskList { tasks }).unwrap_or_default(),
            ))
        }
        AppPath::Task(..) | AppPath::Restart(_) => Err(ApiError::UnknownRoute),
    }
}

/// Publishes Marathon's `api_post_event` for a single-app create or update.
fn publish_api_post(master: &Master, client: SocketAddr, uri: &str, app: &App) {
    master.publish(Event::new(
        "api_post_event",
        &app.version.to_rfc3339(),
        json!({
            "clientIp": client.ip().to_string(),
            "uri": uri,
            "appDefinition": app.to_json(),
        }),
    ));
}

async fn create(
    State(master): State<Arc<Master>>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    uri: axum::http::Uri,
    Query(query): Query<HashMap<String, String>>,
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
        force: query_flag(&query, "force", false),
    };
    match master.write(command).await? {
        Applied::AppCreated {
            app, deployment_id, ..
        } => {
            publish_api_post(&master, client, uri.path(), &app);
            let state = master.state();
            let mut response = (
                StatusCode::CREATED,
                Json(app_info(&app, &state, LIST_EMBED)),
            )
                .into_response();
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
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    uri: axum::http::Uri,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    JsonObject(patch): JsonObject,
) -> Result<Response, ApiError> {
    let id = AppId::parse(&id).map_err(|e| ApiError::invalid("/id", e.to_string()))?;
    let partial = query_flag(&query, "partialUpdate", true);
    let force = query_flag(&query, "force", false);
    let state = master.read_state().await?;
    let (patch, partial) = match rollback_target(&patch) {
        Some(version) => {
            let app = existing_app(&state, id.as_str())?;
            (
                stored_version(&state, &app.id, version)?.spec.to_json(),
                false,
            )
        }
        None => (patch, partial),
    };
    let update = Update {
        id,
        patch,
        partial,
        force,
    };
    write_update(&master, &state, update, client, uri.path()).await
}

/// PATCH: a partial update of an existing app.
async fn patch(
    State(master): State<Arc<Master>>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    uri: axum::http::Uri,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    JsonObject(patch): JsonObject,
) -> Result<Response, ApiError> {
    let state = master.read_state().await?;
    let id = existing_app(&state, &id)?.id.clone();
    let force = query_flag(&query, "force", false);
    let update = Update {
        id,
        patch,
        partial: true,
        force,
    };
    write_update(&master, &state, update, client, uri.path()).await
}

/// The version a body asks to roll back to: `{"version": ts}`, optionally with `id`.
fn rollback_target(body: &Map<String, Value>) -> Option<&str> {
    let only_id_and_version = body.keys().all(|key| key == "id" || key == "version");
    match body.get("version") {
        Some(Value::String(version)) if only_id_and_version => Some(version),
        _ => None,
    }
}

/// An app update as the handlers received it.
struct Update {
    id: AppId,
    patch: Map<String, Value>,
    partial: bool,
    force: bool,
}

/// Checks the update against `state` (422 before anything is written), then writes it.
async fn write_update(
    master: &Master,
    state: &ClusterState,
    update: Update,
    client: SocketAddr,
    uri: &str,
) -> Result<Response, ApiError> {
    let version = now();
    state.app_after_update(&update.id, version, &update.patch, update.partial)?;
    let command = Command::UpdateApp {
        id: update.id,
        version,
        patch: update.patch,
        partial: update.partial,
        deployment_id: new_deployment_id(),
        force: update.force,
    };
    match master.write(command).await? {
        Applied::AppUpdated {
            created,
            version,
            deployment_id,
            app,
            ..
        } => {
            publish_api_post(master, client, uri, &app);
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

/// DELETE: the app (`force` defaults to true, as in Marathon), its tasks, or one task.
async fn remove(
    State(master): State<Arc<Master>>,
    Path(path): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    match AppPath::parse(&path) {
        AppPath::App(id) => {
            let command = Command::DeleteApp {
                id: existing_app_id(&id)?,
                version: now(),
                deployment_id: new_deployment_id(),
                force: query_flag(&query, "force", true),
            };
            match master.write(command).await? {
                Applied::AppDeleted {
                    version,
                    deployment_id,
                    ..
                } => Ok(deployment_result(StatusCode::OK, &deployment_id, version)),
                other => Err(unexpected(other)),
            }
        }
        AppPath::Tasks(id) => {
            let state = master.read_state().await?;
            let app = existing_app(&state, &id)?;
            let host = query.get("host").map(String::as_str).unwrap_or("*");
            let ids = state
                .app_tasks(&app.id)
                .filter(|task| host == "*" || task.host == host)
                .map(|task| task.id.clone())
                .collect();
            let scale = query_flag(&query, "scale", false) || query_flag(&query, "wipe", false);
            kill_answer(kill(&master, ids, scale, false).await?, None)
        }
        AppPath::Task(id, task) => {
            let state = master.read_state().await?;
            let app = existing_app(&state, &id)?;
            let task = state
                .app_tasks(&app.id)
                .find(|candidate| candidate.id.0 == task)
                .ok_or_else(|| ApiError::TaskNotFound(task.clone()))?;
            let scale = query_flag(&query, "scale", false) || query_flag(&query, "wipe", false);
            kill_answer(
                kill(&master, vec![task.id.clone()], scale, false).await?,
                Some(()),
            )
        }
        AppPath::Versions(_) | AppPath::Version(..) | AppPath::Restart(_) => {
            Err(ApiError::UnknownRoute)
        }
    }
}

/// `{"tasks": [...]}` (or `{"task": ...}` for one), or the deployment result when scaling.
fn kill_answer(killed: super::tasks::Killed, single: Option<()>) -> Result<Response, ApiError> {
    if let Some((deployment_id, version)) = killed.deployment {
        return Ok(deployment_result(StatusCode::OK, &deployment_id, version));
    }
    let body = match single {
        Some(()) => json!({ "task": killed.tasks.into_iter().next() }),
        None => json!({ "tasks": killed.tasks }),
    };
    Ok(Json(body).into_response())
}

/// POST `/v2/apps/{id}/restart`.
async fn post_action(
    State(master): State<Arc<Master>>,
    Path(path): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let AppPath::Restart(id) = AppPath::parse(&path) else {
        return Err(ApiError::UnknownRoute);
    };
    let command = Command::RestartApp {
        id: existing_app_id(&id)?,
        version: now(),
        deployment_id: new_deployment_id(),
        force: query_flag(&query, "force", false),
    };
    match master.write(command).await? {
        Applied::AppUpdated {
            version,
            deployment_id,
            ..
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

//! `/v2/tasks`: every task, Marathon's task JSON, and killing tasks by id.

use super::{deployment_result, new_deployment_id, now, query_flag, unexpected};
use crate::api::ApiError;
use crate::master::Master;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use orch_core::model::{AgentId, AppId, DeploymentId, Task, TaskId, TaskState, Timestamp};
use orch_core::state::{Applied, ClusterState, Command};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

pub(super) fn routes() -> Router<Arc<Master>> {
    Router::new()
        .route("/v2/tasks", get(list))
        .route("/v2/tasks/delete", post(delete))
}

/// Marathon's task JSON (`TaskConversion.enrichedTaskRamlWrite`), serialised straight from
/// the task (large task lists are written without an intermediate JSON tree).
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct TaskJson<'a> {
    id: &'a TaskId,
    app_id: &'a AppId,
    host: &'a str,
    slave_id: &'a AgentId,
    state: TaskState,
    ip_addresses: Vec<IpJson<'a>>,
    service_ports: Vec<u16>,
    health_check_results: Vec<HealthJson<'a>>,
    local_volumes: [(); 0],
    role: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    staged_at: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    started_at: Option<Option<Timestamp>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ports: Option<&'a [u16]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<Timestamp>,
}

#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct IpJson<'a> {
    ip_address: &'a str,
    protocol: &'static str,
}

#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct HealthJson<'a> {
    alive: bool,
    consecutive_failures: u32,
    first_success: Option<Timestamp>,
    last_success: Option<Timestamp>,
    last_failure: Option<Timestamp>,
    last_failure_cause: &'a Option<String>,
    instance_id: &'a str,
}

/// The JSON of `task`; `service_ports` are its app's (for many tasks of one app, compute
/// them once).
pub(super) fn task_json<'a>(task: &'a Task, service_ports: &[u16]) -> TaskJson<'a> {
    let live = !task.state.is_terminal();
    TaskJson {
        id: &task.id,
        app_id: &task.app_id,
        host: &task.host,
        slave_id: &task.agent_id,
        state: task.state,
        ip_addresses: task
            .ip_addresses
            .iter()
            .map(|ip| IpJson {
                ip_address: ip,
                protocol: if ip.contains(':') { "IPv6" } else { "IPv4" },
            })
            .collect(),
        service_ports: service_ports.to_vec(),
        health_check_results: task
            .health
            .iter()
            .map(|result| HealthJson {
                alive: result.alive,
                consecutive_failures: result.consecutive_failures,
                first_success: result.first_success,
                last_success: result.last_success,
                last_failure: result.last_failure,
                last_failure_cause: &result.last_failure_cause,
                instance_id: task.id.instance_id(),
            })
            .collect(),
        local_volumes: [],
        role: "*",
        staged_at: live.then_some(task.staged_at),
        started_at: live.then_some(task.started_at),
        ports: live.then_some(task.ports.as_slice()),
        version: live.then_some(task.version),
    }
}

/// `{"tasks": [...]}`.
#[derive(Debug, serde::Serialize)]
pub(super) struct TaskList<'a> {
    /// The tasks.
    pub(super) tasks: Vec<TaskJson<'a>>,
}

/// The service ports of the task's app (none if the app is gone).
pub(super) fn service_ports_of(state: &ClusterState, task: &Task) -> Vec<u16> {
    state
        .apps
        .get(&task.app_id)
        .map(|app| app.spec.service_ports())
        .unwrap_or_default()
}

/// The tasks of `state` that match Marathon's `status` filter (`running`, `staging`).
fn filtered<'a>(state: &'a ClusterState, statuses: &[String]) -> Vec<&'a Arc<Task>> {
    let wanted: Vec<TaskState> = statuses
        .iter()
        .filter_map(|status| match status.to_ascii_lowercase().as_str() {
            "running" => Some(TaskState::Running),
            "staging" => Some(TaskState::Staging),
            _ => None,
        })
        .collect();
    state
        .tasks
        .values()
        .filter(|task| wanted.is_empty() || wanted.contains(&task.state))
        .collect()
}

async fn list(
    State(master): State<Arc<Master>>,
    axum::extract::RawQuery(raw): axum::extract::RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let statuses: Vec<String> = raw
        .unwrap_or_default()
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .filter(|(key, _)| *key == "status" || *key == "status[]" || *key == "status%5B%5D")
        .map(|(_, value)| value.to_owned())
        .collect();
    let state = master.read_state().await?;
    let tasks = filtered(&state, &statuses);
    let plain = headers
        .get(header::ACCEPT)
        .and_then(|accept| accept.to_str().ok())
        .is_some_and(|accept| accept.contains("text/plain") && !accept.contains("json"));
    if plain {
        return Ok(plain_text(&state).into_response());
    }
    let tasks = tasks
        .into_iter()
        .map(|task| task_json(task, &service_ports_of(&state, task)))
        .collect();
    Ok(Json(TaskList { tasks }).into_response())
}

/// The legacy text list: per app and service port, `app\tport\thost:port\t...`.
fn plain_text(state: &ClusterState) -> String {
    let mut out = String::new();
    for app in state.apps.values() {
        let running: Vec<&Arc<Task>> = state
            .app_tasks(&app.id)
            .filter(|task| task.state == TaskState::Running)
            .collect();
        let name = orch_core::model::safe_path(&app.id);
        let service_ports = app.spec.service_ports();
        if service_ports.is_empty() {
            out.push_str(&format!("{name}\t \t"));
            for task in &running {
                out.push_str(&format!("{}\t", task.host));
            }
            out.push('\n');
        }
        for (index, service_port) in service_ports.iter().enumerate() {
            out.push_str(&format!("{name}\t{service_port}\t"));
            for task in &running {
                if let Some(port) = task.ports.get(index) {
                    out.push_str(&format!("{}:{port}\t", task.host));
                }
            }
            out.push('\n');
        }
    }
    out
}

#[derive(Debug, serde::Deserialize)]
struct DeleteBody {
    ids: Vec<String>,
}

async fn delete(
    State(master): State<Arc<Master>>,
    Query(query): Query<HashMap<String, String>>,
    body: Result<Json<DeleteBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(body) = body.map_err(|rejection| ApiError::InvalidJson {
        reason: rejection.body_text(),
    })?;
    let mut ids = Vec::new();
    for raw in body.ids {
        let id = TaskId(raw);
        if id.app_id().is_none() {
            return Err(ApiError::BadRequest(format!("Invalid task id '{id}'.")));
        }
        ids.push(id);
    }
    let scale = query_flag(&query, "scale", false) || query_flag(&query, "wipe", false);
    let force = query_flag(&query, "force", false);
    let killed = kill(&master, ids, scale, force).await?;
    match killed.deployment {
        Some((deployment_id, version)) => Ok(deployment_result(
            axum::http::StatusCode::OK,
            &deployment_id,
            version,
        )),
        None => Ok(Json(json!({ "tasks": killed.tasks })).into_response()),
    }
}

/// What killing tasks did.
pub(super) struct Killed {
    /// The killed tasks' JSON, as they were.
    pub(super) tasks: Vec<Value>,
    /// With `scale`: the deployment that lowered the instance counts, and its version.
    pub(super) deployment: Option<(DeploymentId, Timestamp)>,
}

/// Kills tasks (unknown ids are skipped); with `scale`, their apps' instance counts drop by
/// the number killed, in one write.
pub(super) async fn kill(
    master: &Master,
    ids: Vec<TaskId>,
    scale: bool,
    force: bool,
) -> Result<Killed, ApiError> {
    let state = master.read_state().await?;
    let found: Vec<&Arc<Task>> = ids.iter().filter_map(|id| state.tasks.get(id)).collect();
    let version = now();
    let deployment_id = new_deployment_id();
    let mut commands = Vec::new();
    if scale {
        let mut per_app: BTreeMap<_, i64> = BTreeMap::new();
        for task in &found {
            *per_app.entry(task.app_id.clone()).or_default() += 1;
        }
        for (app_id, count) in per_app {
            let Some(app) = state.apps.get(&app_id) else {
                continue;
            };
            let mut patch = serde_json::Map::new();
            patch.insert(
                "instances".into(),
                json!((app.spec.instances - count).max(0)),
            );
            commands.push(Command::UpdateApp {
                id: app_id,
                version,
                patch,
                partial: true,
                deployment_id: deployment_id.clone(),
                force,
            });
        }
    }
    commands.push(Command::KillTasks {
        task_ids: found.iter().map(|task| task.id.clone()).collect(),
    });
    let tasks = found
        .iter()
        .map(|task| {
            let ports = service_ports_of(&state, task);
            serde_json::to_value(task_json(task, &ports)).unwrap_or_default()
        })
        .collect();
    match master.write(Command::Batch(commands)).await? {
        Applied::Batch(outcomes) => {
            if let Some(rejected) = outcomes
                .into_iter()
                .find(|o| matches!(o, Applied::Rejected(_)))
            {
                return Err(unexpected(rejected));
            }
            Ok(Killed {
                tasks,
                deployment: scale.then_some((deployment_id, version)),
            })
        }
        other => Err(unexpected(other)),
    }
}

//! Readiness checks, run by the leader as Marathon runs them: while a deployment's current
//! step rolls an app that has readiness checks, every running task of the app's current
//! configuration is probed (HTTP(S) GET on its named port) until it answers one of
//! `httpStatusCodesForReady`. A rolling restart counts a new task only once it is ready, and
//! the step finishes only when all are. Results live in the leader's memory: a new leader
//! probes again.
//!
//! Each probe is one [`orch_probe::get`] bounded by `timeoutSeconds`: HTTP or HTTPS (the
//! certificate is not verified, as Marathon does not), redirects not followed (a 3xx is ready
//! only if listed). A probe that gets no status records no `lastResponse`.
//!
//! May depend on: model, state, orch-probe.

use orch_core::model::{App, ReadinessCheck, ReadinessProtocol, Task, TaskId, TaskState};
use orch_core::state::ClusterState;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tokio::sync::watch;

/// The latest result of one task's readiness check.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReadinessResult {
    /// The check's name.
    pub name: String,
    /// Which task.
    pub task_id: TaskId,
    /// It answered a ready status.
    pub ready: bool,
    /// The last answer, if any.
    pub last_response: Option<LastResponse>,
}

/// The status of the last answer (`lastResponse`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LastResponse {
    /// HTTP status code.
    pub status: u16,
}

/// Readiness results and the probes running, by task.
#[derive(Debug, Default)]
pub(super) struct Readiness {
    results: Mutex<HashMap<TaskId, ReadinessResult>>,
    probing: Mutex<HashSet<TaskId>>,
}

impl Readiness {
    fn results(&self) -> MutexGuard<'_, HashMap<TaskId, ReadinessResult>> {
        self.results.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn probing(&self) -> MutexGuard<'_, HashSet<TaskId>> {
        self.probing.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// True when the task's app has no readiness check or the task answered ready.
    pub(super) fn ready(&self, app: &App, task: &Task) -> bool {
        app.spec.readiness_checks.is_empty()
            || self
                .results()
                .get(&task.id)
                .is_some_and(|result| result.ready)
    }

    /// The results of these tasks.
    pub(super) fn results_of<'a>(
        &self,
        tasks: impl Iterator<Item = &'a TaskId>,
    ) -> Vec<ReadinessResult> {
        let results = self.results();
        tasks.filter_map(|id| results.get(id).cloned()).collect()
    }

    /// Starts a probe for every running task of the current configuration of each app a
    /// current deployment step rolls, and forgets tasks that are gone.
    pub(super) fn probe(
        self: &Arc<Self>,
        state: &ClusterState,
        states: &watch::Receiver<Arc<ClusterState>>,
    ) {
        self.results().retain(|id, _| state.tasks.contains_key(id));
        for deployment in state.deployments.values() {
            for action in deployment.current_actions() {
                let Some(app) = state.apps.get(&action.app) else {
                    continue;
                };
                let Some(check) = app.spec.readiness_checks.first() else {
                    continue;
                };
                let config = app.version_info.last_config_change_at;
                for task in state.app_tasks(&app.id) {
                    let wanted = task.state == TaskState::Running && task.version >= config;
                    if !wanted || self.results().get(&task.id).is_some_and(|r| r.ready) {
                        continue;
                    }
                    let Some(url) = url(app, check, task) else {
                        continue;
                    };
                    if !self.probing().insert(task.id.clone()) {
                        continue;
                    }
                    tokio::spawn(Arc::clone(self).run(
                        check.clone(),
                        task.id.clone(),
                        url,
                        states.clone(),
                    ));
                }
            }
        }
    }

    /// Probes until the task answers ready or is gone.
    async fn run(
        self: Arc<Self>,
        check: ReadinessCheck,
        task: TaskId,
        url: String,
        states: watch::Receiver<Arc<ClusterState>>,
    ) {
        let interval =
            Duration::from_secs(u64::try_from(check.interval_seconds).unwrap_or(1).max(1));
        let timeout = Duration::from_secs(u64::try_from(check.timeout_seconds).unwrap_or(1).max(1));
        loop {
            let running = states
                .borrow()
                .tasks
                .get(&task)
                .is_some_and(|t| t.state == TaskState::Running);
            if !running {
                break;
            }
            let status = match orch_probe::get(&url, timeout).await {
                Ok(status) => Some(status),
                Err(error) => {
                    tracing::debug!(task.id = %task, %error, "readiness check got no status");
                    None
                }
            };
            let ready = status.is_some_and(|s| check.http_status_codes_for_ready.contains(&s));
            self.results().insert(
                task.clone(),
                ReadinessResult {
                    name: check.name.clone(),
                    task_id: task.clone(),
                    ready,
                    last_response: status.map(|status| LastResponse { status }),
                },
            );
            if ready {
                tracing::info!(task.id = %task, "task is ready");
                break;
            }
            tokio::time::sleep(interval).await;
        }
        self.probing().remove(&task);
    }
}

/// The URL the check probes on this task: its address and the host port of the named port.
fn url(app: &App, check: &ReadinessCheck, task: &Task) -> Option<String> {
    let index = app
        .spec
        .port_names()
        .iter()
        .position(|name| *name == Some(check.port_name.as_str()))?;
    let port = task.ports.get(index)?;
    let host = task
        .ip_addresses
        .first()
        .map_or(task.host.as_str(), String::as_str);
    let scheme = match check.protocol {
        ReadinessProtocol::Http => "http",
        ReadinessProtocol::Https => "https",
    };
    Some(format!("{scheme}://{host}:{port}{}", check.path))
}

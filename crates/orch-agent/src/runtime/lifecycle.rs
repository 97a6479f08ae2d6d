//! A task's life on this agent: start it through its driver, report RUNNING, supervise it
//! until it ends or a kill is asked (drain, stop with grace), report the terminal state and
//! let the driver clean up.
//!
//! May depend on: the runtime's task table, records and checks; health (for the unhealthy
//! reason), protocol, driver, model.

use super::{lock, safe_task_id, Agent, Entry, TaskRecord};
use crate::health::{self, UNHEALTHY_REASON};
use orch_core::model::{TaskId, TaskState};
use orch_core::protocol::TaskSpec;
use orch_driver::{Driver, Exit, Launch};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

impl Agent {
    /// Starts a task unless it is known already.
    pub fn start_task(self: &Arc<Self>, mut spec: TaskSpec) {
        let id = spec.task_id.clone();
        if spec.user.is_none() && spec.unprivileged {
            spec.user = Some(self.unprivileged_user(spec.docker.is_some()));
        }
        let spec = Arc::new(spec);
        let kill = {
            let mut tasks = lock(&self.tasks);
            if tasks.contains_key(&id) {
                return;
            }
            let entry = Entry::new(Some(Arc::clone(&spec)), TaskState::Staging);
            let kill = entry.kill.subscribe();
            tasks.insert(id.clone(), entry);
            kill
        };
        if !safe_task_id(&id) {
            self.report(&id, TaskState::Error, "invalid task id", None, vec![]);
            return;
        }
        let agent = Arc::clone(self);
        tokio::spawn(async move { agent.launch(spec, kill).await });
    }

    /// The user an unprivileged task runs as: `--unprivileged-user`, as `uid:gid` for Docker
    /// (an image need not know the name).
    fn unprivileged_user(&self, docker: bool) -> String {
        let name = &self.unprivileged_user;
        match nix::unistd::User::from_name(name) {
            Ok(Some(user)) if docker => format!("{}:{}", user.uid, user.gid),
            _ => name.clone(),
        }
    }

    /// Asks a live task to stop with `grace`; idempotent.
    pub fn kill_task(&self, id: &TaskId, grace: Duration) {
        if let Some(entry) = lock(&self.tasks).get(id) {
            if !entry.state.is_terminal() {
                entry.kill.send_if_modified(|kill| {
                    let first = kill.is_none();
                    if first {
                        *kill = Some(grace);
                    }
                    first
                });
            }
        }
    }

    /// The driver for a task: `docker` for Docker specs, else `mesos`; `mock` when that is
    /// all the agent has.
    fn driver_for(&self, spec: &TaskSpec) -> Option<Arc<dyn Driver>> {
        let wanted = if spec.docker.is_some() {
            "docker"
        } else {
            "mesos"
        };
        let by_name = |name: &str| self.drivers.iter().find(|d| d.name() == name).cloned();
        by_name(wanted).or_else(|| {
            if self.drivers.iter().all(|d| d.name() == "mock") {
                by_name("mock")
            } else {
                None
            }
        })
    }

    /// The lifecycle of a started task.
    async fn launch(self: Arc<Self>, spec: Arc<TaskSpec>, kill: watch::Receiver<Option<Duration>>) {
        let id = spec.task_id.clone();
        let sandbox = self.sandbox(&id);
        let driver = self.driver_for(&spec);
        let record = TaskRecord {
            spec: (*spec).clone(),
            driver: driver.as_ref().map(|d| d.name().to_owned()),
            terminal: None,
        };
        let prepared = tokio::fs::create_dir_all(&sandbox)
            .await
            .map_err(|e| format!("cannot create the sandbox {}: {e}", sandbox.display()))
            .and_then(|()| {
                self.write_record(&record)
                    .map_err(|e| format!("cannot record the task: {e}"))
            });
        if let Err(message) = prepared {
            self.report(
                &id,
                TaskState::Failed,
                message,
                Some("REASON_CONTAINER_LAUNCH_FAILED"),
                vec![],
            );
            return;
        }
        let Some(driver) = driver else {
            self.report(
                &id,
                TaskState::Failed,
                "no containerizer for this task",
                Some("REASON_CONTAINER_LAUNCH_FAILED"),
                vec![],
            );
            self.mark_terminal(&id, TaskState::Failed);
            return;
        };
        self.report(&id, TaskState::Starting, "", None, vec![]);
        let launch = Launch {
            spec: (*spec).clone(),
            sandbox,
            hostname: self.info.hostname.clone(),
            agent_ip: self.agent_ip.clone(),
        };
        match driver.start(launch).await {
            Ok(started) => {
                let task_ip = started.ip_addresses.first().cloned();
                self.report(&id, TaskState::Running, "", None, started.ip_addresses);
                let checks = self.start_checks(Some(&spec), &driver, task_ip, Duration::ZERO);
                self.supervise(id, driver, kill, checks).await;
            }
            Err(error) => {
                self.report(
                    &id,
                    TaskState::Failed,
                    error.to_string(),
                    Some("REASON_CONTAINER_LAUNCH_FAILED"),
                    vec![],
                );
                self.finish(&id, &driver, TaskState::Failed).await;
            }
        }
    }

    /// Waits for a running task to end, or kills it when asked; reports the end. Its health
    /// `checks` stop once it ends or a kill begins.
    pub(super) async fn supervise(
        &self,
        id: TaskId,
        driver: Arc<dyn Driver>,
        mut kill: watch::Receiver<Option<Duration>>,
        checks: Option<health::Checks>,
    ) {
        let exit = tokio::select! {
            exit = driver.wait(&id) => {
                drop(checks);
                exit
            }
            grace = kill_requested(&mut kill) => {
                drop(checks);
                let unhealthy = lock(&self.tasks).get(&id).and_then(|e| e.unhealthy.clone());
                let message = unhealthy.clone().unwrap_or_default();
                self.report(&id, TaskState::Killing, message, None, vec![]);
                // DNS and load balancers dropped the task when the kill was decided; give
                // them a moment to stop sending it work before it is signalled.
                tokio::time::sleep(KILL_DRAIN).await;
                if let Err(error) = driver.stop(&id, grace).await {
                    tracing::warn!(
                        task.id = %id,
                        error = &error as &dyn std::error::Error,
                        "stopping the task failed"
                    );
                }
                let exit = driver.wait(&id).await;
                match unhealthy {
                    Some(message) => Exit {
                        state: TaskState::Killed,
                        message,
                        reason: Some(UNHEALTHY_REASON.to_owned()),
                    },
                    None => Exit { state: TaskState::Killed, ..exit },
                }
            }
        };
        self.report(
            &id,
            exit.state,
            exit.message,
            exit.reason.as_deref(),
            vec![],
        );
        self.finish(&id, &driver, exit.state).await;
    }

    /// After the terminal status is journaled: note it in the record, let the driver clean
    /// up, and date the sandbox (its age for the sandbox GC after a restart).
    pub(super) async fn finish(&self, id: &TaskId, driver: &Arc<dyn Driver>, state: TaskState) {
        self.mark_terminal(id, state);
        if let Err(error) = driver.destroy(id).await {
            tracing::warn!(
                task.id = %id,
                error = &error as &dyn std::error::Error,
                "the driver could not clean up after the task"
            );
        }
        super::gc::touch(&self.sandbox(id));
    }
}

/// How long a running task keeps running after its kill was decided, before SIGTERM (or
/// `docker stop`): the snapshot stream takes milliseconds to reach DNS servers and load
/// balancers, so they stop routing to it before it stops.
pub const KILL_DRAIN: Duration = Duration::from_millis(100);

/// Completes with the grace period once a kill is requested; never if the entry is dropped.
async fn kill_requested(kill: &mut watch::Receiver<Option<Duration>>) -> Duration {
    loop {
        let requested = *kill.borrow_and_update();
        if let Some(grace) = requested {
            return grace;
        }
        if kill.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

//! The Docker driver: runs a task as a container of the local engine (bollard over the unix
//! socket), as Mesos' docker containerizer did.
//!
//! - The image is pulled only when missing (or with `forcePullImage`); a failed pull is a
//!   start failure carrying the engine's message.
//! - Containers are named `orch-<task id>` and labelled with the app's labels plus
//!   [`TASK_LABEL`], [`AGENT_LABEL`] and [`SANDBOX_LABEL`] (orch's own labels always win; a
//!   `label` parameter naming an `orch.` key is refused), so a restarted agent re-adopts them
//!   by label ([`Driver::recover`]).
//! - A task's sandbox is never taken from a label: it is the one the agent launched it with,
//!   or after a restart `<work-dir>/sandboxes/<task id>` ([`DockerDriver::with_work_dir`]);
//!   an [`SANDBOX_LABEL`] that disagrees is logged and ignored (the label is for `orch
//!   destroy`, which only reads it).
//! - BRIDGE networking publishes `container_port → host_port` (container port 0 = the host
//!   port); HOST uses the host's stack. Volumes (host paths and named volumes, RO/RW), the
//!   sandbox at [`DOCKER_SANDBOX`](crate::env::DOCKER_SANDBOX), `privileged`, cpu shares (`cpus * 1024`), a memory limit
//!   (`mem` MiB, no extra swap) and an allow-list of `docker.parameters` ([`apply_parameter`]).
//! - A log follower per container appends its stdout/stderr to the sandbox's `stdout` and
//!   `stderr`, remembering the last copied timestamp in `<sandbox>/.orch/docker-log-since`
//!   so a follower restarted after an agent restart resumes there.
//!
//! By job: [`config`] (pure: a launch → the container's config, an inspect → an exit),
//! `logs` (copying container output into the sandbox), this module (the engine calls and
//! the [`Driver`] implementation).
//!
//! May depend on: driver::{env, executor, engine}, protocol, model.

mod config;
mod logs;

pub use config::{
    apply_parameter, container_config, container_exit, container_name, RESERVED_LABEL_PREFIX,
};

use super::executor::StateFiles;
use super::{BoxFuture, Driver, DriverError, Exit, Launch, Recovered, Started};
use bollard::errors::Error as DockerError;
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, CreateImageOptionsBuilder, ListContainersOptionsBuilder,
    RemoveContainerOptionsBuilder, StopContainerOptionsBuilder, WaitContainerOptionsBuilder,
};
use bollard::Docker;
use futures::StreamExt;
use orch_core::model::{TaskId, TaskState};
use orch_core::protocol::{DockerNetwork, TaskSpec};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;
use tokio::task::JoinHandle;

/// Label holding the task id of a container.
pub const TASK_LABEL: &str = "orch.task-id";
/// Label naming the agent that runs a container.
pub const AGENT_LABEL: &str = "orch.agent";
/// Label holding the task's sandbox directory on the host.
pub const SANDBOX_LABEL: &str = "orch.sandbox";

/// Bound for short engine calls (inspect, create, start, remove).
const CALL_TIMEOUT: Duration = Duration::from_secs(60);
/// Bound for pulling an image.
const PULL_TIMEOUT: Duration = Duration::from_secs(600);

/// Runs tasks as Docker containers.
#[derive(Debug)]
pub struct DockerDriver {
    docker: Docker,
    agent: String,
    /// `<work-dir>/sandboxes`, where a recovered task's sandbox is; `None`: unknown.
    sandboxes_root: Option<PathBuf>,
    /// Sandboxes of known tasks (started or recovered).
    sandboxes: Mutex<HashMap<TaskId, PathBuf>>,
    /// Tasks this driver stopped (their end is TASK_KILLED even without a sandbox marker).
    stopped: Mutex<HashSet<TaskId>>,
    /// Log followers by task.
    followers: Mutex<HashMap<TaskId, JoinHandle<()>>>,
}

/// The engine's own message for an error, without bollard's wrapping.
fn engine_message(error: &DockerError) -> String {
    match error {
        DockerError::DockerResponseServerError { message, .. } => message.clone(),
        DockerError::DockerStreamError { error } => error.clone(),
        other => other.to_string(),
    }
}

fn is_not_found(error: &DockerError) -> bool {
    matches!(
        error,
        DockerError::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

fn docker_error(error: DockerError) -> DriverError {
    DriverError::Docker(engine_message(&error))
}

async fn bounded<T>(
    what: &str,
    limit: Duration,
    call: impl std::future::Future<Output = Result<T, DockerError>>,
) -> Result<T, DriverError> {
    crate::engine::bounded(what, limit, call)
        .await
        .map_err(|error| match error {
            crate::engine::EngineError::Call { source, .. } => docker_error(source),
            crate::engine::EngineError::Timeout { .. } => {
                DriverError::Docker(format!("{what} took longer than {limit:?}"))
            }
        })
}

impl DockerDriver {
    /// Connects to the local engine (`DOCKER_HOST` or the unix socket), negotiating the API
    /// version. `agent` names this agent in the [`AGENT_LABEL`] of its containers.
    pub async fn connect(agent: impl Into<String>) -> Result<Self, DriverError> {
        let docker = Docker::connect_with_local_defaults()
            .map_err(docker_error)?
            // Waits and log follows are long requests; short calls get their own bounds.
            .with_timeout(Duration::from_secs(365 * 24 * 3600));
        let docker = bounded(
            "negotiating the API version",
            CALL_TIMEOUT,
            docker.negotiate_version(),
        )
        .await?;
        bounded("pinging the engine", CALL_TIMEOUT, docker.ping()).await?;
        Ok(Self {
            docker,
            agent: agent.into(),
            sandboxes_root: None,
            sandboxes: Mutex::new(HashMap::new()),
            stopped: Mutex::new(HashSet::new()),
            followers: Mutex::new(HashMap::new()),
        })
    }

    /// Sets the agent's work dir: the sandbox of a task recovered after a restart is
    /// `<work_dir>/sandboxes/<task id>` (made absolute here). Without it a recovered task's
    /// sandbox is unknown: its logs are not resumed and no kill marker is written there.
    pub fn with_work_dir(mut self, work_dir: &Path) -> Self {
        let work_dir = std::fs::canonicalize(work_dir).unwrap_or_else(|_| work_dir.to_owned());
        self.sandboxes_root = Some(work_dir.join("sandboxes"));
        self
    }

    /// Where a task's sandbox is by the agent's layout, for a task id that is one safe path
    /// component.
    fn derived_sandbox(&self, task: &TaskId) -> Option<PathBuf> {
        let id = task.0.as_str();
        let safe = !id.is_empty()
            && id != "."
            && id != ".."
            && !id.contains(['/', '\\', '\0'])
            && id.len() <= 255;
        safe.then(|| self.sandboxes_root.as_ref().map(|root| root.join(id)))
            .flatten()
    }

    fn remember(&self, task: &TaskId, sandbox: &Path) {
        self.sandboxes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(task.clone(), sandbox.to_owned());
    }

    /// The sandbox a task was started or recovered with.
    fn remembered(&self, task: &TaskId) -> Option<PathBuf> {
        self.sandboxes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(task)
            .cloned()
    }

    /// The sandbox the task was started with, else the one the agent's layout gives it.
    fn sandbox(&self, task: &TaskId) -> Option<PathBuf> {
        self.remembered(task).or_else(|| self.derived_sandbox(task))
    }

    /// After a restart: the task's sandbox is the agent's own `<sandboxes>/<task id>`, never
    /// what the container's [`SANDBOX_LABEL`] says; its log follower resumes there.
    fn adopt_sandbox(&self, task: &TaskId, label: Option<&str>) {
        let derived = self.derived_sandbox(task);
        if let Some(label) = label {
            if derived.as_deref() != Some(Path::new(label)) {
                tracing::warn!(
                    task.id = %task,
                    label,
                    sandbox = ?derived,
                    "ignoring the container's orch.sandbox label: it is not this agent's \
                     sandbox of the task"
                );
            }
        }
        let Some(sandbox) = derived else {
            tracing::warn!(task.id = %task, "no sandbox for a recovered container: its logs are not copied");
            return;
        };
        if let Err(error) = std::fs::create_dir_all(StateFiles::new(&sandbox).dir()) {
            tracing::warn!(task.id = %task, %error, sandbox = %sandbox.display(), "cannot create the sandbox of a recovered container");
            return;
        }
        self.remember(task, &sandbox);
        self.follow_logs(task, &sandbox);
    }

    fn stopped(&self, task: &TaskId) -> bool {
        self.stopped
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(task)
    }

    async fn ensure_image(&self, image: &str, force: bool) -> Result<(), DriverError> {
        if !force {
            match bounded(
                "inspecting the image",
                CALL_TIMEOUT,
                self.docker.inspect_image(image),
            )
            .await
            {
                Ok(_) => return Ok(()),
                Err(DriverError::Docker(_)) => {}
                Err(other) => return Err(other),
            }
        }
        tracing::info!(image, "pulling image");
        let options = CreateImageOptionsBuilder::default()
            .from_image(image)
            .build();
        let pull = async {
            let mut stream = self.docker.create_image(Some(options), None, None);
            while let Some(item) = stream.next().await {
                item?;
            }
            Ok::<(), DockerError>(())
        };
        match tokio::time::timeout(PULL_TIMEOUT, pull).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(DriverError::StartFailed {
                message: format!("Failed to pull image '{image}': {}", engine_message(&error)),
            }),
            Err(_) => Err(DriverError::StartFailed {
                message: format!(
                    "Failed to pull image '{image}': timed out after {PULL_TIMEOUT:?}"
                ),
            }),
        }
    }

    async fn start_task(&self, launch: Launch) -> Result<Started, DriverError> {
        let spec: &TaskSpec = &launch.spec;
        let name = container_name(&spec.task_id);
        self.remember(&spec.task_id, &launch.sandbox);
        let files = StateFiles::new(&launch.sandbox);
        std::fs::create_dir_all(files.dir()).map_err(|source| DriverError::Io {
            context: format!("creating {}", files.dir().display()),
            source,
        })?;
        let existing =
            tokio::time::timeout(CALL_TIMEOUT, self.docker.inspect_container(&name, None)).await;
        let exists = matches!(existing, Ok(Ok(_)));
        if !exists {
            let docker = spec
                .docker
                .as_ref()
                .ok_or_else(|| DriverError::StartFailed {
                    message: "the task has no docker container".to_owned(),
                })?;
            let config = container_config(&launch, &self.agent)
                .map_err(|message| DriverError::StartFailed { message })?;
            self.ensure_image(&docker.image, docker.force_pull_image)
                .await?;
            let options = CreateContainerOptionsBuilder::default().name(&name).build();
            bounded(
                "creating the container",
                CALL_TIMEOUT,
                self.docker.create_container(Some(options), config),
            )
            .await
            .map_err(|e| DriverError::StartFailed {
                message: format!("Failed to create the container: {e}"),
            })?;
        }
        let state = self.container_state(&name).await?;
        if state
            .as_ref()
            .is_none_or(|s| s.status.as_deref() == Some("created"))
        {
            if let Err(error) = bounded(
                "starting the container",
                CALL_TIMEOUT,
                self.docker.start_container(&name, None),
            )
            .await
            {
                let options = RemoveContainerOptionsBuilder::default().force(true).build();
                let _ = self.docker.remove_container(&name, Some(options)).await;
                return Err(DriverError::StartFailed {
                    message: format!("Failed to start the container: {error}"),
                });
            }
        }
        self.follow_logs(&spec.task_id, &launch.sandbox);
        let ip = match spec.docker.as_ref().map(|d| d.network) {
            Some(DockerNetwork::Bridge) => self
                .container_state(&name)
                .await?
                .and_then(|s| s.ip_address)
                .filter(|ip| !ip.is_empty())
                .unwrap_or_else(|| launch.agent_ip.clone()),
            _ => launch.agent_ip.clone(),
        };
        tracing::info!(task.id = %spec.task_id, container = %name, "container started");
        Ok(Started {
            ip_addresses: vec![ip],
        })
    }

    /// The container's state, `None` if there is no such container.
    async fn container_state(&self, name: &str) -> Result<Option<ContainerView>, DriverError> {
        match tokio::time::timeout(CALL_TIMEOUT, self.docker.inspect_container(name, None)).await {
            Err(_) => Err(DriverError::Docker(format!("inspecting {name} timed out"))),
            Ok(Err(error)) if is_not_found(&error) => Ok(None),
            Ok(Err(error)) => Err(docker_error(error)),
            Ok(Ok(info)) => {
                let state = info.state.unwrap_or_default();
                Ok(Some(ContainerView {
                    status: state.status.map(|s| s.to_string()),
                    running: state.running.unwrap_or(false),
                    exit_code: state.exit_code.unwrap_or(0),
                    oom_killed: state.oom_killed.unwrap_or(false),
                    error: state.error,
                    ip_address: info
                        .network_settings
                        .and_then(|n| n.networks)
                        .and_then(|n| n.get("bridge").and_then(|b| b.ip_address.clone())),
                    mem_mib: info
                        .host_config
                        .and_then(|h| h.memory)
                        .map_or(0.0, |bytes| bytes as f64 / (1024.0 * 1024.0)),
                }))
            }
        }
    }

    fn exit_of(&self, task: &TaskId, view: &ContainerView) -> Option<Exit> {
        if view.running || view.status.as_deref() == Some("created") {
            return None;
        }
        let killed = self.stopped(task)
            || self
                .sandbox(task)
                .is_some_and(|sandbox| StateFiles::new(&sandbox).kill().exists());
        Some(container_exit(
            view.exit_code,
            view.oom_killed,
            killed,
            view.error.as_deref(),
            view.mem_mib,
        ))
    }
}

impl Drop for DockerDriver {
    /// Log followers belong to this driver: they stop with it (a new driver resumes them).
    fn drop(&mut self) {
        for (_, handle) in self
            .followers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .drain()
        {
            handle.abort();
        }
    }
}

/// What the driver needs from an inspect.
#[derive(Debug, Clone)]
struct ContainerView {
    status: Option<String>,
    running: bool,
    exit_code: i64,
    oom_killed: bool,
    error: Option<String>,
    ip_address: Option<String>,
    mem_mib: f64,
}

impl Driver for DockerDriver {
    fn name(&self) -> &'static str {
        "docker"
    }

    fn start(&self, launch: Launch) -> BoxFuture<'_, Result<Started, DriverError>> {
        Box::pin(self.start_task(launch))
    }

    fn recover(&self) -> BoxFuture<'_, Result<Vec<Recovered>, DriverError>> {
        Box::pin(async move {
            let mut filters = HashMap::new();
            filters.insert("label", vec![format!("{AGENT_LABEL}={}", self.agent)]);
            let options = ListContainersOptionsBuilder::default()
                .all(true)
                .filters(&filters)
                .build();
            let containers = bounded(
                "listing containers",
                CALL_TIMEOUT,
                self.docker.list_containers(Some(options)),
            )
            .await?;
            let mut found = Vec::new();
            for container in containers {
                let labels = container.labels.unwrap_or_default();
                let Some(task) = labels.get(TASK_LABEL).map(|t| TaskId(t.clone())) else {
                    continue;
                };
                self.adopt_sandbox(&task, labels.get(SANDBOX_LABEL).map(String::as_str));
                let Some(view) = self.container_state(&container_name(&task)).await? else {
                    continue;
                };
                let exit = self.exit_of(&task, &view);
                tracing::info!(task.id = %task, ?exit, "recovered container");
                found.push(Recovered {
                    task_id: task,
                    exit,
                });
            }
            found.sort_by(|a, b| a.task_id.cmp(&b.task_id));
            Ok(found)
        })
    }

    fn wait<'a>(&'a self, task: &'a TaskId) -> BoxFuture<'a, Exit> {
        Box::pin(async move {
            let name = container_name(task);
            loop {
                let options = WaitContainerOptionsBuilder::default()
                    .condition("not-running")
                    .build();
                let mut stream = self.docker.wait_container(&name, Some(options));
                let outcome = stream.next().await;
                drop(stream);
                match outcome {
                    Some(Err(error)) if is_not_found(&error) => {
                        return Exit {
                            state: TaskState::Gone,
                            message: format!("container {name} is gone"),
                            reason: None,
                        };
                    }
                    Some(Ok(_))
                    | Some(Err(DockerError::DockerContainerWaitError { .. }))
                    | None => {}
                    Some(Err(error)) => {
                        tracing::warn!(task.id = %task, %error, "waiting for the container failed; retrying");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
                match self.container_state(&name).await {
                    Ok(None) => {
                        return Exit {
                            state: TaskState::Gone,
                            message: format!("container {name} is gone"),
                            reason: None,
                        }
                    }
                    Ok(Some(view)) => {
                        if let Some(exit) = self.exit_of(task, &view) {
                            self.finish_logs(task).await;
                            return exit;
                        }
                    }
                    Err(error) => {
                        tracing::warn!(task.id = %task, %error, "inspecting the container failed; retrying");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        })
    }

    fn stop<'a>(
        &'a self,
        task: &'a TaskId,
        grace: Duration,
    ) -> BoxFuture<'a, Result<(), DriverError>> {
        Box::pin(async move {
            let name = container_name(task);
            let view = self
                .container_state(&name)
                .await?
                .ok_or_else(|| DriverError::UnknownTask(task.clone()))?;
            if !view.running {
                return Ok(());
            }
            self.stopped
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(task.clone());
            if let Some(sandbox) = self.sandbox(task) {
                let kill = StateFiles::new(&sandbox).kill();
                std::fs::write(&kill, b"").map_err(|source| DriverError::Io {
                    context: format!("writing {}", kill.display()),
                    source,
                })?;
            }
            let seconds = i32::try_from(grace.as_millis().div_ceil(1000)).unwrap_or(i32::MAX);
            let options = StopContainerOptionsBuilder::default().t(seconds).build();
            let limit = grace + CALL_TIMEOUT;
            match tokio::time::timeout(limit, self.docker.stop_container(&name, Some(options)))
                .await
            {
                Ok(Ok(())) => Ok(()),
                Ok(Err(DockerError::DockerResponseServerError {
                    status_code: 304, ..
                })) => Ok(()),
                Ok(Err(error)) if is_not_found(&error) => {
                    Err(DriverError::UnknownTask(task.clone()))
                }
                Ok(Err(error)) => Err(docker_error(error)),
                Err(_) => Err(DriverError::Docker(format!("stopping {name} timed out"))),
            }
        })
    }

    fn destroy<'a>(&'a self, task: &'a TaskId) -> BoxFuture<'a, Result<(), DriverError>> {
        Box::pin(async move {
            let name = container_name(task);
            let sandbox = self.sandbox(task);
            let options = RemoveContainerOptionsBuilder::default().force(true).build();
            match tokio::time::timeout(
                CALL_TIMEOUT,
                self.docker.remove_container(&name, Some(options)),
            )
            .await
            {
                Ok(Ok(())) => {}
                Ok(Err(error)) if is_not_found(&error) => {}
                Ok(Err(error)) => return Err(docker_error(error)),
                Err(_) => return Err(DriverError::Docker(format!("removing {name} timed out"))),
            }
            if let Some(handle) = self
                .followers
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(task)
            {
                handle.abort();
            }
            if let Some(sandbox) = sandbox {
                let dir = StateFiles::new(&sandbox).dir().to_owned();
                match std::fs::remove_dir_all(&dir) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                        return Err(DriverError::Io {
                            context: format!("removing {}", dir.display()),
                            source: e,
                        })
                    }
                    _ => {}
                }
            }
            self.sandboxes
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(task);
            self.stopped
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(task);
            Ok(())
        })
    }

    fn inspect<'a>(&'a self, task: &'a TaskId) -> BoxFuture<'a, Result<Option<Exit>, DriverError>> {
        Box::pin(async move {
            match self.container_state(&container_name(task)).await? {
                Some(view) => Ok(self.exit_of(task, &view)),
                None if self.remembered(task).is_some() => Ok(Some(Exit {
                    state: TaskState::Gone,
                    message: format!("container {} is gone", container_name(task)),
                    reason: None,
                })),
                None => Err(DriverError::UnknownTask(task.clone())),
            }
        })
    }
}

#[cfg(test)]
mod tests;

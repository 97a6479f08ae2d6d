//! The Docker driver: runs a task as a container of the local engine (bollard over the unix
//! socket), as Mesos' docker containerizer did.
//!
//! - The image is pulled only when missing (or with `forcePullImage`); a failed pull is a
//!   start failure carrying the engine's message.
//! - Containers are named `orch-<task id>` and labelled with the app's labels plus
//!   [`TASK_LABEL`], [`AGENT_LABEL`] and [`SANDBOX_LABEL`], so a restarted agent re-adopts
//!   them by label ([`Driver::recover`]).
//! - BRIDGE networking publishes `container_port → host_port` (container port 0 = the host
//!   port); HOST uses the host's stack. Volumes (host paths and named volumes, RO/RW), the
//!   sandbox at [`DOCKER_SANDBOX`], `privileged`, cpu shares (`cpus * 1024`), a memory limit
//!   (`mem` MiB, no extra swap) and an allow-list of `docker.parameters` ([`apply_parameter`]).
//! - A log follower per container appends its stdout/stderr to the sandbox's `stdout` and
//!   `stderr`, remembering the last copied timestamp in `<sandbox>/.orch/docker-log-since`
//!   so a follower restarted after an agent restart resumes there.
//!
//! May depend on: driver::{env, executor}, protocol, model.

use super::env::{task_env, DOCKER_SANDBOX};
use super::executor::{write_atomic, StateFiles};
use super::{BoxFuture, Driver, DriverError, Exit, Launch, Recovered, Started};
use bollard::errors::Error as DockerError;
use bollard::models::{ContainerCreateBody, HostConfig, PortBinding, ResourcesUlimits};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, CreateImageOptionsBuilder, ListContainersOptionsBuilder,
    LogsOptionsBuilder, RemoveContainerOptionsBuilder, StopContainerOptionsBuilder,
    WaitContainerOptionsBuilder,
};
use bollard::Docker;
use futures::StreamExt;
use orch_core::model::{TaskId, TaskState};
use orch_core::protocol::{DockerNetwork, TaskSpec};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime};
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
/// Where a follower records its progress, inside `<sandbox>/.orch/`.
const LOG_SINCE_FILE: &str = "docker-log-since";

/// Runs tasks as Docker containers.
#[derive(Debug)]
pub struct DockerDriver {
    docker: Docker,
    agent: String,
    /// Sandboxes of known tasks (started or recovered).
    sandboxes: Mutex<HashMap<TaskId, PathBuf>>,
    /// Log followers by task.
    followers: Mutex<HashMap<TaskId, JoinHandle<()>>>,
}

/// The container name of a task: `orch-<task id>` with characters Docker refuses replaced.
pub fn container_name(task: &TaskId) -> String {
    let safe: String = task
        .0
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_.-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("orch-{safe}")
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

/// Parses a Docker memory size: `512m`, `1g`, `1048576`, `-1`.
fn parse_bytes(text: &str) -> Option<i64> {
    let text = text.trim().to_ascii_lowercase();
    if text == "-1" {
        return Some(-1);
    }
    let text = text.trim_end_matches('b');
    let (digits, factor) = match text.chars().last()? {
        'k' => (&text[..text.len() - 1], 1i64 << 10),
        'm' => (&text[..text.len() - 1], 1 << 20),
        'g' => (&text[..text.len() - 1], 1 << 30),
        't' => (&text[..text.len() - 1], 1 << 40),
        _ => (text, 1),
    };
    digits.parse::<i64>().ok()?.checked_mul(factor)
}

/// Applies one `docker.parameters` entry to the container config. Supported keys: `label`,
/// `env`, `hostname`, `user`, `workdir`, `memory-swap`, `ulimit`, `cap-add`, `cap-drop`,
/// `add-host`, `dns`, `dns-search`, `shm-size`, `pids-limit`, `init`, `read-only`,
/// `security-opt`, `tmpfs`. Anything else is refused with a message naming it.
pub fn apply_parameter(
    config: &mut ContainerCreateBody,
    key: &str,
    value: &str,
) -> Result<(), String> {
    let bad = |what: &str| format!("docker parameter '{key}={value}': {what}");
    let host = config.host_config.get_or_insert_with(HostConfig::default);
    match key {
        "label" | "l" => {
            let (k, v) = value.split_once('=').unwrap_or((value, ""));
            config
                .labels
                .get_or_insert_with(HashMap::new)
                .insert(k.to_owned(), v.to_owned());
        }
        "env" | "e" => config
            .env
            .get_or_insert_with(Vec::new)
            .push(value.to_owned()),
        "hostname" | "h" => config.hostname = Some(value.to_owned()),
        "user" | "u" => config.user = Some(value.to_owned()),
        "workdir" | "w" => config.working_dir = Some(value.to_owned()),
        "memory-swap" => {
            host.memory_swap = Some(parse_bytes(value).ok_or_else(|| bad("not a size"))?)
        }
        "shm-size" => host.shm_size = Some(parse_bytes(value).ok_or_else(|| bad("not a size"))?),
        "pids-limit" => {
            host.pids_limit = Some(value.parse().map_err(|_| bad("not a number"))?);
        }
        "ulimit" => {
            let (name, limits) = value
                .split_once('=')
                .ok_or_else(|| bad("expected name=soft[:hard]"))?;
            let (soft, hard) = limits.split_once(':').unwrap_or((limits, limits));
            let number = |t: &str| t.parse::<i64>().map_err(|_| bad("not a number"));
            host.ulimits
                .get_or_insert_with(Vec::new)
                .push(ResourcesUlimits {
                    name: Some(name.to_owned()),
                    soft: Some(number(soft)?),
                    hard: Some(number(hard)?),
                });
        }
        "cap-add" => host
            .cap_add
            .get_or_insert_with(Vec::new)
            .push(value.to_owned()),
        "cap-drop" => host
            .cap_drop
            .get_or_insert_with(Vec::new)
            .push(value.to_owned()),
        "add-host" => host
            .extra_hosts
            .get_or_insert_with(Vec::new)
            .push(value.to_owned()),
        "dns" => host.dns.get_or_insert_with(Vec::new).push(value.to_owned()),
        "dns-search" => host
            .dns_search
            .get_or_insert_with(Vec::new)
            .push(value.to_owned()),
        "security-opt" => host
            .security_opt
            .get_or_insert_with(Vec::new)
            .push(value.to_owned()),
        "init" => host.init = Some(value.parse().map_err(|_| bad("expected true or false"))?),
        "read-only" => {
            host.readonly_rootfs = Some(value.parse().map_err(|_| bad("expected true or false"))?)
        }
        "tmpfs" => {
            let (path, options) = value.split_once(':').unwrap_or((value, ""));
            host.tmpfs
                .get_or_insert_with(HashMap::new)
                .insert(path.to_owned(), options.to_owned());
        }
        _ => return Err(format!("docker parameter '{key}' is not supported")),
    }
    Ok(())
}

/// The container a launch asks for (pure; the image must already be present).
pub fn container_config(launch: &Launch, agent: &str) -> Result<ContainerCreateBody, String> {
    let spec = &launch.spec;
    let docker = spec
        .docker
        .as_ref()
        .ok_or_else(|| "the task has no docker container".to_owned())?;
    let env = task_env(spec, DOCKER_SANDBOX, &launch.hostname);
    let mut labels: HashMap<String, String> = spec.labels.clone().into_iter().collect();
    labels.insert(TASK_LABEL.to_owned(), spec.task_id.to_string());
    labels.insert(AGENT_LABEL.to_owned(), agent.to_owned());
    labels.insert(
        SANDBOX_LABEL.to_owned(),
        launch.sandbox.to_string_lossy().into_owned(),
    );
    let (entrypoint, cmd) = match (&spec.cmd, spec.args.is_empty()) {
        (Some(cmd), _) => (
            Some(vec!["/bin/sh".to_owned(), "-c".to_owned()]),
            Some(vec![cmd.clone()]),
        ),
        (None, false) => (None, Some(spec.args.clone())),
        (None, true) => (None, None),
    };
    let mut binds = vec![format!("{}:{DOCKER_SANDBOX}", launch.sandbox.display())];
    for volume in &docker.volumes {
        let source = volume
            .host_path
            .as_ref()
            .or(volume.name.as_ref())
            .ok_or_else(|| {
                format!(
                    "volume {} has neither a host path nor a name",
                    volume.container_path
                )
            })?;
        let mode = if volume.read_only { ":ro" } else { ":rw" };
        binds.push(format!("{source}:{}{mode}", volume.container_path));
    }
    let memory = (spec.mem > 0.0).then_some((spec.mem * 1024.0 * 1024.0) as i64);
    let mut host = HostConfig {
        binds: Some(binds),
        privileged: Some(docker.privileged),
        cpu_shares: (spec.cpus > 0.0).then(|| ((spec.cpus * 1024.0) as i64).max(2)),
        memory,
        memory_swap: memory,
        ..HostConfig::default()
    };
    let mut exposed = Vec::new();
    match docker.network {
        DockerNetwork::Host => host.network_mode = Some("host".to_owned()),
        DockerNetwork::Bridge => {
            host.network_mode = Some("bridge".to_owned());
            let mut bindings: HashMap<String, Option<Vec<PortBinding>>> = HashMap::new();
            for port in &spec.ports {
                let container_port = match port.container_port {
                    Some(0) | None => port.host_port,
                    Some(p) => p,
                };
                if container_port == 0 {
                    continue;
                }
                for protocol in port.protocol.split(',').map(str::trim) {
                    let key = format!("{container_port}/{protocol}");
                    exposed.push(key.clone());
                    if port.host_port != 0 {
                        bindings
                            .entry(key)
                            .or_insert_with(|| Some(Vec::new()))
                            .get_or_insert_with(Vec::new)
                            .push(PortBinding {
                                host_ip: None,
                                host_port: Some(port.host_port.to_string()),
                            });
                    }
                }
            }
            host.port_bindings = Some(bindings);
        }
    }
    let mut config = ContainerCreateBody {
        image: Some(docker.image.clone()),
        entrypoint,
        cmd,
        env: Some(env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
        labels: Some(labels),
        exposed_ports: (!exposed.is_empty()).then_some(exposed),
        user: spec.user.clone(),
        host_config: Some(host),
        ..ContainerCreateBody::default()
    };
    for (key, value) in &docker.parameters {
        apply_parameter(&mut config, key, value)?;
    }
    Ok(config)
}

/// How a container's end maps to a task status.
pub fn container_exit(
    exit_code: i64,
    oom_killed: bool,
    killed: bool,
    error: Option<&str>,
    mem_mib: f64,
) -> Exit {
    let how = format!("Container exited with status {exit_code}");
    if oom_killed {
        return Exit {
            state: TaskState::Failed,
            message: format!("Memory limit exceeded: Requested: {mem_mib}MB"),
            reason: Some("REASON_CONTAINER_LIMITATION_MEMORY".to_owned()),
        };
    }
    if killed {
        return Exit {
            state: TaskState::Killed,
            message: how,
            reason: None,
        };
    }
    match (exit_code, error.filter(|e| !e.is_empty())) {
        (0, None) => Exit {
            state: TaskState::Finished,
            message: how,
            reason: None,
        },
        (_, Some(error)) => Exit {
            state: TaskState::Failed,
            message: format!("{how}: {error}"),
            reason: Some("REASON_COMMAND_EXECUTOR_FAILED".to_owned()),
        },
        _ => Exit {
            state: TaskState::Failed,
            message: how,
            reason: Some("REASON_COMMAND_EXECUTOR_FAILED".to_owned()),
        },
    }
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
            sandboxes: Mutex::new(HashMap::new()),
            followers: Mutex::new(HashMap::new()),
        })
    }

    fn remember(&self, task: &TaskId, sandbox: &Path) {
        self.sandboxes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(task.clone(), sandbox.to_owned());
    }

    fn sandbox(&self, task: &TaskId) -> Option<PathBuf> {
        self.sandboxes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(task)
            .cloned()
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
                let labels = info.config.and_then(|c| c.labels).unwrap_or_default();
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
                    sandbox: labels.get(SANDBOX_LABEL).map(PathBuf::from),
                }))
            }
        }
    }

    fn exit_of(&self, task: &TaskId, view: &ContainerView) -> Option<Exit> {
        if view.running || view.status.as_deref() == Some("created") {
            return None;
        }
        let killed = view
            .sandbox
            .clone()
            .or_else(|| self.sandbox(task))
            .is_some_and(|sandbox| StateFiles::new(&sandbox).kill().exists());
        Some(container_exit(
            view.exit_code,
            view.oom_killed,
            killed,
            view.error.as_deref(),
            view.mem_mib,
        ))
    }

    /// Starts (or restarts) the log follower of a task.
    fn follow_logs(&self, task: &TaskId, sandbox: &Path) {
        let mut followers = self
            .followers
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if followers.get(task).is_some_and(|f| !f.is_finished()) {
            return;
        }
        let docker = self.docker.clone();
        let name = container_name(task);
        let sandbox = sandbox.to_owned();
        let task_id = task.clone();
        let handle = tokio::spawn(async move {
            if let Err(error) = copy_logs(&docker, &name, &sandbox).await {
                tracing::warn!(task.id = %task_id, %error, "log follower stopped");
            }
        });
        followers.insert(task.clone(), handle);
    }

    async fn finish_logs(&self, task: &TaskId) {
        let handle = self
            .followers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(task);
        if let Some(handle) = handle {
            // The stream ends when the container stops; do not let a stuck one block us.
            let abort = handle.abort_handle();
            if tokio::time::timeout(Duration::from_secs(5), handle)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
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
    sandbox: Option<PathBuf>,
}

/// Copies a container's output into the sandbox until the container stops, resuming after
/// the last timestamp copied before.
async fn copy_logs(docker: &Docker, name: &str, sandbox: &Path) -> Result<(), String> {
    let files = StateFiles::new(sandbox);
    let since_file = files.dir().join(LOG_SINCE_FILE);
    let last_copied = std::fs::read_to_string(&since_file).ok();
    let last_time = last_copied
        .as_deref()
        .and_then(|t| humantime::parse_rfc3339_weak(t.trim().trim_end_matches('Z')).ok());
    let since_secs = last_time
        .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map_or(0, |d| i32::try_from(d.as_secs()).unwrap_or(i32::MAX));
    let open = |file: &str| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(sandbox.join(file))
            .map_err(|e| format!("opening {file}: {e}"))
    };
    let (mut stdout, mut stderr) = (open("stdout")?, open("stderr")?);
    let options = LogsOptionsBuilder::default()
        .follow(true)
        .stdout(true)
        .stderr(true)
        .timestamps(true)
        .since(since_secs)
        .build();
    let mut stream = docker.logs(name, Some(options));
    let mut latest: Option<String> = None;
    let mut saved: Option<std::time::Instant> = None;
    while let Some(item) = stream.next().await {
        let output = item.map_err(|e| engine_message(&e))?;
        let (is_err, bytes) = match output {
            bollard::container::LogOutput::StdErr { message } => (true, message),
            bollard::container::LogOutput::StdOut { message }
            | bollard::container::LogOutput::Console { message } => (false, message),
            bollard::container::LogOutput::StdIn { .. } => continue,
        };
        let (stamp, line) = split_timestamp(&bytes);
        if let (Some(stamp), Some(last)) = (stamp, last_time) {
            let time = humantime::parse_rfc3339_weak(stamp.trim_end_matches('Z')).ok();
            if time.is_some_and(|t| t <= last) {
                continue;
            }
        }
        let target = if is_err { &mut stderr } else { &mut stdout };
        target
            .write_all(line)
            .map_err(|e| format!("writing the sandbox log: {e}"))?;
        if let Some(stamp) = stamp {
            latest = Some(stamp.to_owned());
        }
        // Progress is saved at most once a second: after a crash, up to a second of output
        // may be copied twice.
        if saved.is_none_or(|at| at.elapsed() > Duration::from_secs(1)) {
            if let Some(stamp) = &latest {
                let _ = write_atomic(&since_file, stamp.as_bytes());
            }
            saved = Some(std::time::Instant::now());
        }
    }
    if let Some(stamp) = &latest {
        let _ = write_atomic(&since_file, stamp.as_bytes());
    }
    Ok(())
}

/// Splits Docker's `<RFC3339Nano timestamp> <line>` into its parts.
fn split_timestamp(bytes: &[u8]) -> (Option<&str>, &[u8]) {
    if let Some(space) = bytes.iter().position(|b| *b == b' ') {
        if let Ok(stamp) = std::str::from_utf8(&bytes[..space]) {
            if stamp.len() >= 20 && stamp.ends_with('Z') && stamp.as_bytes()[4] == b'-' {
                return (Some(stamp), &bytes[space + 1..]);
            }
        }
    }
    (None, bytes)
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
                if let Some(sandbox) = labels.get(SANDBOX_LABEL) {
                    let sandbox = PathBuf::from(sandbox);
                    self.remember(&task, &sandbox);
                    self.follow_logs(&task, &sandbox);
                }
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
            if let Some(sandbox) = view.sandbox.or_else(|| self.sandbox(task)) {
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
            let sandbox = match self.container_state(&name).await? {
                Some(view) => view.sandbox,
                None => None,
            }
            .or_else(|| self.sandbox(task));
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
            Ok(())
        })
    }

    fn inspect<'a>(&'a self, task: &'a TaskId) -> BoxFuture<'a, Result<Option<Exit>, DriverError>> {
        Box::pin(async move {
            match self.container_state(&container_name(task)).await? {
                Some(view) => Ok(self.exit_of(task, &view)),
                None if self.sandbox(task).is_some() => Ok(Some(Exit {
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
mod tests {
    use super::*;
    use orch_core::model::{AppId, Timestamp};
    use orch_core::protocol::{DockerSpec, PortAssignment, VolumeSpec};
    use std::collections::BTreeMap;

    fn launch(network: DockerNetwork, parameters: &[(&str, &str)]) -> Launch {
        Launch {
            spec: TaskSpec {
                task_id: TaskId("web.instance-1._app.1".to_owned()),
                app_id: AppId::parse("/web").expect("valid app id"),
                app_version: Timestamp::from_millis(0),
                cmd: Some("httpd -f".to_owned()),
                args: vec![],
                user: None,
                env: BTreeMap::new(),
                labels: [("HAPROXY_GROUP".to_owned(), "external".to_owned())].into(),
                cpus: 0.5,
                mem: 64.0,
                disk: 0.0,
                ports: vec![
                    PortAssignment {
                        host_port: 31000,
                        container_port: Some(8080),
                        requested: 0,
                        name: None,
                        protocol: "tcp".to_owned(),
                    },
                    PortAssignment {
                        host_port: 31001,
                        container_port: Some(0),
                        requested: 0,
                        name: None,
                        protocol: "udp,tcp".to_owned(),
                    },
                ],
                docker: Some(DockerSpec {
                    image: "busybox:1".to_owned(),
                    network,
                    privileged: false,
                    parameters: parameters
                        .iter()
                        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                        .collect(),
                    force_pull_image: false,
                    volumes: vec![VolumeSpec {
                        container_path: "/data".to_owned(),
                        host_path: Some("/srv/data".to_owned()),
                        name: None,
                        read_only: true,
                    }],
                }),
                kill_grace_ms: 3000,
                health_checks: Vec::new(),
            },
            sandbox: PathBuf::from("/work/sandboxes/web.instance-1._app.1"),
            hostname: "node-1".to_owned(),
            agent_ip: "10.0.0.1".to_owned(),
        }
    }

    #[test]
    fn names_are_docker_safe() {
        assert_eq!(
            container_name(&TaskId("a_b.instance-x/y._app.1".to_owned())),
            "orch-a_b.instance-x_y._app.1"
        );
    }

    #[test]
    fn bridge_config_maps_ports_volumes_labels_and_limits() {
        let config = container_config(&launch(DockerNetwork::Bridge, &[]), "agent-1")
            .expect("a valid launch");
        assert_eq!(
            config.entrypoint,
            Some(vec!["/bin/sh".to_owned(), "-c".to_owned()])
        );
        assert_eq!(config.cmd, Some(vec!["httpd -f".to_owned()]));
        let labels = config.labels.clone().expect("set by container_config");
        assert_eq!(labels[TASK_LABEL], "web.instance-1._app.1");
        assert_eq!(labels[AGENT_LABEL], "agent-1");
        assert_eq!(labels["HAPROXY_GROUP"], "external");
        let env = config.env.clone().expect("set by container_config");
        assert!(env.contains(&"MESOS_SANDBOX=/mnt/mesos/sandbox".to_owned()));
        assert!(env.contains(&"PORT0=31000".to_owned()));
        let host = config.host_config.expect("set by container_config");
        assert_eq!(host.network_mode.as_deref(), Some("bridge"));
        let bindings = host.port_bindings.expect("set by container_config");
        let binding = |key: &str| {
            bindings[key].clone().expect("set by container_config")[0]
                .host_port
                .clone()
        };
        assert_eq!(binding("8080/tcp").as_deref(), Some("31000"));
        assert_eq!(binding("31001/udp").as_deref(), Some("31001"));
        assert_eq!(binding("31001/tcp").as_deref(), Some("31001"));
        assert_eq!(
            host.binds.expect("set by container_config"),
            vec![
                "/work/sandboxes/web.instance-1._app.1:/mnt/mesos/sandbox".to_owned(),
                "/srv/data:/data:ro".to_owned()
            ]
        );
        assert_eq!(host.cpu_shares, Some(512));
        assert_eq!(host.memory, Some(64 * 1024 * 1024));
    }

    #[test]
    fn host_network_has_no_bindings() {
        let config =
            container_config(&launch(DockerNetwork::Host, &[]), "a").expect("a valid launch");
        let host = config.host_config.expect("set by container_config");
        assert_eq!(host.network_mode.as_deref(), Some("host"));
        assert!(host.port_bindings.is_none());
        assert!(config.exposed_ports.is_none());
    }

    #[test]
    fn parameters_on_the_allow_list_are_applied() {
        let config = container_config(
            &launch(
                DockerNetwork::Bridge,
                &[
                    ("label", "team=core"),
                    ("env", "EXTRA=1"),
                    ("hostname", "box"),
                    ("user", "nobody"),
                    ("workdir", "/tmp"),
                    ("memory-swap", "1g"),
                    ("ulimit", "nofile=1024:2048"),
                    ("cap-add", "NET_ADMIN"),
                    ("cap-drop", "MKNOD"),
                    ("add-host", "db:10.0.0.2"),
                    ("dns", "10.0.0.53"),
                ],
            ),
            "a",
        )
        .expect("a valid launch");
        assert_eq!(
            config.labels.expect("set by container_config")["team"],
            "core"
        );
        assert!(config
            .env
            .expect("set by container_config")
            .contains(&"EXTRA=1".to_owned()));
        assert_eq!(config.hostname.as_deref(), Some("box"));
        assert_eq!(config.user.as_deref(), Some("nobody"));
        assert_eq!(config.working_dir.as_deref(), Some("/tmp"));
        let host = config.host_config.expect("set by container_config");
        assert_eq!(host.memory_swap, Some(1 << 30));
        let ulimit = &host.ulimits.expect("set by container_config")[0];
        assert_eq!(
            (ulimit.name.as_deref(), ulimit.soft, ulimit.hard),
            (Some("nofile"), Some(1024), Some(2048))
        );
        assert_eq!(
            host.cap_add.expect("set by container_config"),
            vec!["NET_ADMIN".to_owned()]
        );
        assert_eq!(
            host.cap_drop.expect("set by container_config"),
            vec!["MKNOD".to_owned()]
        );
        assert_eq!(
            host.extra_hosts.expect("set by container_config"),
            vec!["db:10.0.0.2".to_owned()]
        );
        assert_eq!(
            host.dns.expect("set by container_config"),
            vec!["10.0.0.53".to_owned()]
        );
    }

    #[test]
    fn unknown_parameters_are_refused_by_name() {
        let error = container_config(
            &launch(DockerNetwork::Bridge, &[("volume-driver", "x")]),
            "a",
        )
        .unwrap_err();
        assert_eq!(error, "docker parameter 'volume-driver' is not supported");
        let error = container_config(&launch(DockerNetwork::Bridge, &[("ulimit", "nofile")]), "a")
            .unwrap_err();
        assert!(error.contains("ulimit"), "{error}");
    }

    #[test]
    fn sizes_parse_like_docker() {
        assert_eq!(parse_bytes("512m"), Some(512 << 20));
        assert_eq!(parse_bytes("1g"), Some(1 << 30));
        assert_eq!(parse_bytes("100"), Some(100));
        assert_eq!(parse_bytes("-1"), Some(-1));
        assert_eq!(parse_bytes("lots"), None);
    }

    #[test]
    fn exits_map_to_states() {
        assert_eq!(
            container_exit(0, false, false, None, 64.0).state,
            TaskState::Finished
        );
        let failed = container_exit(3, false, false, None, 64.0);
        assert_eq!(failed.state, TaskState::Failed);
        assert_eq!(failed.message, "Container exited with status 3");
        assert_eq!(
            container_exit(143, false, true, None, 64.0).state,
            TaskState::Killed
        );
        let oom = container_exit(137, true, false, None, 64.0);
        assert_eq!(oom.message, "Memory limit exceeded: Requested: 64MB");
        assert_eq!(
            oom.reason.as_deref(),
            Some("REASON_CONTAINER_LIMITATION_MEMORY")
        );
    }

    #[test]
    fn log_lines_lose_their_timestamp() {
        let (stamp, line) = split_timestamp(b"2024-01-02T03:04:05.123456789Z hello world\n");
        assert_eq!(stamp, Some("2024-01-02T03:04:05.123456789Z"));
        assert_eq!(line, b"hello world\n");
        let (stamp, line) = split_timestamp(b"no stamp here\n");
        assert_eq!(stamp, None);
        assert_eq!(line, b"no stamp here\n");
    }
}

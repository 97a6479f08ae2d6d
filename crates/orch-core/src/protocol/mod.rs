//! The agent ⇄ master protocol: versioned wire types shared by both sides.
//!
//! Endpoints (on the master's port, served by the leader; a follower answers 503 with the
//! leader's address in [`NotLeader`]):
//!
//! - `POST /internal/agent/register` [`Registration`] → [`Registered`]
//! - `POST /internal/agent/heartbeat` [`Heartbeat`] → 204
//! - `GET  /internal/agent/{id}/desired?after=TERM.INDEX&wait_ms=N` → [`DesiredSet`] (long poll:
//!   answers when the agent's desired set differs from generation `after`, or after `wait_ms`)
//! - `POST /internal/agent/{id}/status` [`StatusBatch`] → [`StatusAck`]
//!
//! Bodies are JSON. Fields are only ever added (with serde defaults), never changed.
//!
//! May depend on: model.

use crate::model::{AgentId, AgentInfo, AppId, TaskId, TaskState, Timestamp};
use std::collections::BTreeMap;

/// The protocol version an agent speaks; the master refuses agents it does not understand.
pub const PROTOCOL_VERSION: u32 = 1;

/// An agent's registration (also sent again after a leader change).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Registration {
    /// [`PROTOCOL_VERSION`] of the agent.
    pub protocol: u32,
    /// Who it is and what it offers.
    pub agent: AgentInfo,
}

/// The master's answer to a registration.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Registered {
    /// How often to send heartbeats.
    pub heartbeat_interval_ms: u64,
}

/// A liveness signal with what the agent runs now, sent every `heartbeat_interval_ms`.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Heartbeat {
    /// Which agent.
    pub agent_id: AgentId,
    /// Tasks it runs (not terminal).
    pub running: Vec<TaskId>,
}

/// Orders desired sets: a newer leader term always wins; within a term, later state wins.
/// A deposed leader's sets carry an older term and are rejected by agents.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    serde::Serialize,
    serde::Deserialize,
)]
pub struct Generation {
    /// Raft term of the leader that computed the set.
    pub term: u64,
    /// Raft index of the state it was computed from.
    pub index: u64,
}

impl std::fmt::Display for Generation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.term, self.index)
    }
}

impl std::str::FromStr for Generation {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (term, index) = text.split_once('.').ok_or("expected TERM.INDEX")?;
        Ok(Self {
            term: term.parse().map_err(|_| "bad term")?,
            index: index.parse().map_err(|_| "bad index")?,
        })
    }
}

/// Everything one agent should be running now. Tasks not in the set are killed.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DesiredSet {
    /// When and by whom it was computed.
    pub generation: Generation,
    /// The tasks, each with all it needs to run.
    pub tasks: Vec<TaskSpec>,
}

/// All an agent needs to run a task.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TaskSpec {
    /// The task.
    pub task_id: TaskId,
    /// Its app.
    pub app_id: AppId,
    /// The app version.
    pub app_version: Timestamp,
    /// `cmd`: run through `/bin/sh -c`.
    pub cmd: Option<String>,
    /// `args`: exec'd directly (or appended to the image's entrypoint for Docker).
    pub args: Vec<String>,
    /// The OS user to run as, if set.
    pub user: Option<String>,
    /// With no `user`: run as the agent's unprivileged user (`--unprivileged-user`), not as
    /// the agent's own (the app was written by a token without the `root` capability).
    #[serde(default)]
    pub unprivileged: bool,
    /// The app's `env` (wins over the variables the agent injects).
    pub env: BTreeMap<String, String>,
    /// The app's labels.
    pub labels: BTreeMap<String, String>,
    /// Requested cpus.
    pub cpus: f64,
    /// Requested memory, MiB.
    pub mem: f64,
    /// Requested disk, MiB.
    pub disk: f64,
    /// Ports in definition/mapping order.
    pub ports: Vec<PortAssignment>,
    /// A Docker container, if the app has one.
    pub docker: Option<DockerSpec>,
    /// SIGTERM → SIGKILL window (`taskKillGracePeriodSeconds`, default 3 s).
    pub kill_grace_ms: u64,
    /// Health checks the agent runs, in the app's order.
    #[serde(default)]
    pub health_checks: Vec<HealthCheckSpec>,
}

/// One health check, resolved for a task: the agent runs it and reports results.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HealthCheckSpec {
    /// `HTTP`, `HTTPS`, `TCP`, `COMMAND`, `MESOS_HTTP`, `MESOS_HTTPS` or `MESOS_TCP`.
    pub protocol: String,
    /// HTTP path (default `/`).
    pub path: Option<String>,
    /// The port to probe on the task's address (resolved from `portIndex` or `port`);
    /// `None` for COMMAND checks.
    pub port: Option<u16>,
    /// The shell command of a COMMAND check (exit 0 = healthy).
    pub command: Option<String>,
    /// Failures in the first this many seconds after start do not count (until a success).
    pub grace_period_seconds: u64,
    /// Seconds between checks.
    pub interval_seconds: u64,
    /// Seconds before a check counts as failed.
    pub timeout_seconds: u64,
    /// Consecutive failures after which the agent kills the task (0 = never).
    pub max_consecutive_failures: u32,
    /// Seconds to wait after start before the first check (MESOS_* checks).
    pub delay_seconds: u64,
    /// Treat HTTP 1xx answers as neither healthy nor failed.
    pub ignore_http1xx: bool,
}

/// One port of a task.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PortAssignment {
    /// The host port allocated from the agent's ranges (0 when the port has none, e.g. a
    /// container-only mapping).
    pub host_port: u16,
    /// The container port (BRIDGE mappings); `None` under host networking.
    pub container_port: Option<u16>,
    /// The port the app asked for (a fixed port, or 0 for dynamic): `PORT_<n>` names it.
    pub requested: u16,
    /// The port's name, if any (`PORT_<NAME>`).
    pub name: Option<String>,
    /// `tcp`, `udp` or `udp,tcp`.
    pub protocol: String,
}

/// Docker container settings of a task.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DockerSpec {
    /// Image reference.
    pub image: String,
    /// Host or bridge networking.
    pub network: DockerNetwork,
    /// `--privileged`.
    pub privileged: bool,
    /// `docker.parameters` (`--key=value`), restricted by the driver to an allow-list.
    pub parameters: Vec<(String, String)>,
    /// Pull even when the image is present.
    pub force_pull_image: bool,
    /// Volumes to mount.
    pub volumes: Vec<VolumeSpec>,
}

/// A Docker network mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum DockerNetwork {
    /// The host's network stack.
    Host,
    /// Docker's bridge with port mappings.
    Bridge,
}

/// A container volume.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct VolumeSpec {
    /// Where it appears in the container.
    pub container_path: String,
    /// A host directory to bind, or else...
    pub host_path: Option<String>,
    /// ...a named Docker volume.
    pub name: Option<String>,
    /// Mounted read-only.
    pub read_only: bool,
}

/// One task status change, as an agent reports it.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StatusUpdate {
    /// Per-agent sequence number, increasing by one per update and kept across agent
    /// restarts: the master applies each number once.
    pub seq: u64,
    /// Which task.
    pub task_id: TaskId,
    /// Its new state.
    pub state: TaskState,
    /// Human-readable detail (exit status, error).
    pub message: String,
    /// A Mesos `REASON_*` code, if any.
    pub reason: Option<String>,
    /// When it happened, by the agent's clock.
    pub timestamp: Timestamp,
    /// Addresses the task is reachable at.
    pub ip_addresses: Vec<String>,
    /// A health check result, when this update reports one (the state stays as it was).
    #[serde(default)]
    pub health: Option<HealthReport>,
}

/// The result of one run of one health check.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HealthReport {
    /// Index of the check in the task's `health_checks`.
    pub index: usize,
    /// Healthy per this run.
    pub alive: bool,
    /// Failures in a row, this one included (0 after a success).
    pub consecutive_failures: u32,
    /// Why the check failed, if it did.
    pub cause: Option<String>,
}

/// Status updates in sequence order.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StatusBatch {
    /// Which agent.
    pub agent_id: AgentId,
    /// The updates, `seq` increasing.
    pub updates: Vec<StatusUpdate>,
}

/// The master's acknowledgement: every update with `seq <= through` is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StatusAck {
    /// The highest acknowledged sequence number.
    pub through: u64,
}

/// The body of a 503 from a master that does not lead.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NotLeader {
    /// `host:port` of the leader, if known.
    pub leader: Option<String>,
}

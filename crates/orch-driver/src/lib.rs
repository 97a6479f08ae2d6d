//! Task drivers: how an agent runs a task (Mesos' containerizers).
//!
//! One [`Driver`] trait with three implementations: `process` (Mesos' "mesos" containerizer:
//! a process group under a detached `orch executor` supervisor), `docker` (bollard against
//! the local engine) and `mock` (scripted, for tests and simulations). The agent picks a
//! driver per task and talks to it only through this trait.
//!
//! May depend on: orch-core (protocol, model), orch-fs (executor state files), bollard, nix,
//! tokio. Never the agent above it.

pub mod cgroup;
pub mod docker;
pub mod engine;
pub mod env;
pub mod executor;
pub mod mock;
pub mod process;

use orch_core::model::{TaskId, TaskState};
use orch_core::protocol::TaskSpec;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::Duration;

/// A boxed future, so drivers can be used as `dyn Driver`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a driver needs to start a task.
#[derive(Debug, Clone)]
pub struct Launch {
    /// The task as the master specified it.
    pub spec: TaskSpec,
    /// `<work-dir>/sandboxes/<task-id>/`, created by the agent; `stdout` and `stderr` go here.
    pub sandbox: PathBuf,
    /// The agent's hostname (`HOST`).
    pub hostname: String,
    /// The agent's advertised IP (the task's address under host networking).
    pub agent_ip: String,
}

/// A task that started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Started {
    /// Addresses it can be reached at.
    pub ip_addresses: Vec<String>,
}

/// How a task ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exit {
    /// `TASK_FINISHED` (exit 0), `TASK_FAILED` (non-zero, signal, limit), `TASK_KILLED`
    /// (stopped through [`Driver::stop`]) or `TASK_GONE` (vanished without a trace).
    pub state: TaskState,
    /// e.g. `Command exited with status 3`, `Memory limit exceeded`.
    pub message: String,
    /// A Mesos `REASON_*` code, if one applies.
    pub reason: Option<String>,
}

/// A task a driver found after the agent restarted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovered {
    /// Which task.
    pub task_id: TaskId,
    /// `None` while it still runs; how it ended if it ended while the agent was away.
    pub exit: Option<Exit>,
}

/// Why a driver operation failed.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// The task could not start; the message is for the user (becomes TASK_FAILED).
    #[error("{message}")]
    StartFailed {
        /// What went wrong, e.g. the engine's pull error.
        message: String,
    },
    /// The driver does not know this task.
    #[error("unknown task {0}")]
    UnknownTask(TaskId),
    /// An I/O operation failed.
    #[error("{context}")]
    Io {
        /// What was being done.
        context: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The Docker engine refused or failed.
    #[error("docker: {0}")]
    Docker(String),
}

/// Runs tasks of one kind. Every method is idempotent per task id.
pub trait Driver: Send + Sync + std::fmt::Debug {
    /// `mesos`, `docker` or `mock`, as `--containerizers` names it.
    fn name(&self) -> &'static str;

    /// Starts the task and returns once it runs, or fails with [`DriverError::StartFailed`].
    fn start(&self, launch: Launch) -> BoxFuture<'_, Result<Started, DriverError>>;

    /// Finds the tasks this driver ran before the agent restarted: still running, or ended
    /// while the agent was away (with their real exit status).
    fn recover(&self) -> BoxFuture<'_, Result<Vec<Recovered>, DriverError>>;

    /// Waits until the task ends and says how. Works for started and recovered tasks.
    fn wait<'a>(&'a self, task: &'a TaskId) -> BoxFuture<'a, Exit>;

    /// Asks the task to stop (SIGTERM or `docker stop`) and kills it after `grace`.
    fn stop<'a>(
        &'a self,
        task: &'a TaskId,
        grace: Duration,
    ) -> BoxFuture<'a, Result<(), DriverError>>;

    /// Removes what is left of an ended task (container, cgroup, supervisor files); the
    /// sandbox directory stays for `/files`.
    fn destroy<'a>(&'a self, task: &'a TaskId) -> BoxFuture<'a, Result<(), DriverError>>;

    /// What the driver knows about a task now: `Ok(None)` while it runs.
    fn inspect<'a>(&'a self, task: &'a TaskId) -> BoxFuture<'a, Result<Option<Exit>, DriverError>>;
}

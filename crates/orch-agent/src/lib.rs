//! The agent: runs the tasks the leading master assigns to it and reports their status.
//!
//! - [`config`](AgentConfig): `orch agent` flags → validated config, machine resources detected.
//! - identity: a stable id `<uuid>-S0` in `<work-dir>/agent_id`; the highest accepted
//!   desired-set generation in `<work-dir>/generation` (stale sets are refused, also after a
//!   restart).
//! - leader: finds the leader among `--masters` (following 503 [`NotLeader`] hints) and
//!   registers again after any failure; logs `registered` with the master's address.
//! - sync: heartbeats, the desired-set long poll, the status sender; repeated failures and
//!   refused (stale) desired sets back off (backoff: exponential, capped, rate-limited logs).
//! - [`diff`]: the pure desired-vs-actual step ([`Action::Start`] / [`Action::Kill`]).
//! - runtime: the task table and lifecycle: sandbox `<work-dir>/sandboxes/<task-id>/`,
//!   TASK_STARTING → `Driver::start` → TASK_RUNNING | TASK_FAILED, `Driver::wait` → terminal;
//!   kills go TASK_KILLING → `Driver::stop(grace)` → TASK_KILLED; `Driver::destroy` after the
//!   terminal status is journaled. A record per task (`<work-dir>/tasks/<id>.json`) lets a
//!   restarted agent recover: running tasks are watched again, tasks that ended meanwhile get
//!   their real terminal status, tasks no driver knows become TASK_GONE. Split by job:
//!   lifecycle, checks (the glue to health), recovery, gc (finished sandboxes go after
//!   `--gc-delay`, default a week, or oldest first above `--gc-disk-watermark`, default 0.9).
//! - health: the health checks of running tasks (HTTP, HTTPS, TCP, COMMAND and their MESOS_*
//!   forms; HTTP(S) GETs through `orch_probe`); results become status updates with a [`HealthReport`], and a task that fails
//!   `max_consecutive_failures` in a row is killed (TASK_KILLED, [`UNHEALTHY_REASON`]).
//! - [`Journal`]: every status update is numbered and fsynced before it is sent, and resent
//!   in order until acknowledged, across leader changes and restarts; a failed write keeps
//!   the update in memory (retried with backoff, never dropped), a torn write is cut off.
//! - files: `/files/browse|read|download` (Mesos-compatible, confined to the sandboxes:
//!   opened component by component with `O_NOFOLLOW`, reads capped, downloads streamed),
//!   `/state`, `/health`.
//!
//! [`NotLeader`]: orch_core::protocol::NotLeader
//! [`HealthReport`]: orch_core::protocol::HealthReport
//!
//! May depend on: orch-core (protocol, model), orch-driver, orch-fs (durable files),
//! orch-pki (the crypto provider reqwest needs), orch-probe (HTTP(S) health checks). Never the master, its API, the replicated state or Raft.

mod backoff;
mod config;
mod diff;
mod files;
mod health;
mod identity;
mod journal;
mod leader;
mod runtime;
mod sync;

pub use config::{
    default_advertise_ip, detect_resources, AgentConfig, AgentConfigError, AgentSettings,
    CONTAINERIZERS, DEFAULT_PORTS, RESERVED_MEM_MB,
};
pub use diff::{diff, forgettable, Action, ActualTask, ActualTasks};
pub use files::{
    browse, read, router, router_for_masters, FileInfo, FilesError, ReadChunk, MAX_READ,
};
pub use health::UNHEALTHY_REASON;
pub use identity::{load_or_create_agent_id, GenerationStore, IdentityError, Offer};
pub use journal::{Journal, JournalError};
pub use leader::{LeaderClient, LeaderError, Session};
pub use runtime::{
    Agent, AgentError, AgentInstance, AgentView, GcPolicy, TaskView, DEFAULT_GC_DELAY,
    DEFAULT_GC_DISK_WATERMARK,
};
pub use sync::{run, POLL_WAIT_MS};

use std::net::SocketAddr;

impl AgentConfig {
    /// The agents this config describes: one, or `--simulate N` agents with hostnames
    /// `<hostname>-<i>` and work dirs `<work-dir>/<i>` (i from 1), all served on `address`.
    pub fn instances(&self, address: SocketAddr) -> Vec<AgentInstance> {
        let address = SocketAddr::new(self.advertise_ip, address.port()).to_string();
        let one = |hostname: String, work_dir| AgentInstance {
            work_dir,
            masters: self.masters.clone(),
            hostname,
            address: address.clone(),
            agent_ip: self.advertise_ip.to_string(),
            resources: self.resources.clone(),
            attributes: self.attributes.clone(),
            role: self.role.clone(),
            containerizers: self.containerizers.clone(),
            tls: self.tls.clone(),
            unprivileged_user: self.unprivileged_user.clone(),
            gc: self.gc,
        };
        match self.simulate {
            None => vec![one(self.hostname.clone(), self.work_dir.clone())],
            Some(n) => (1..=n)
                .map(|i| {
                    one(
                        format!("{}-{i}", self.hostname),
                        self.work_dir.join(i.to_string()),
                    )
                })
                .collect(),
        }
    }
}

/// Serves `router` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = orch_pki::serve::Capped::new(listener, orch_pki::serve::MAX_CONNECTIONS);
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}

#[cfg(test)]
mod gc_tests;
#[cfg(test)]
mod sync_tests;
#[cfg(test)]
mod tests;

//! One running agent: its task table and status reporting through the journal, and applying
//! desired sets. The rest of the runtime, by job:
//!
//! - [`lifecycle`]: a task's life (start → wait → terminal, or kill with grace).
//! - [`checks`]: the glue to [`health`]: starting a task's checks, journaling their results,
//!   killing unhealthy tasks.
//! - [`recovery`]: task records on disk and rebuilding the task table after a restart.
//! - [`gc`]: removing finished tasks' sandboxes after `--gc-delay`, or early above the disk
//!   watermark.
//!
//! May depend on: the agent's diff, health, identity, journal and leader modules; protocol,
//! driver, model, orch-fs.

mod checks;
mod gc;
mod lifecycle;
mod recovery;

#[cfg(test)]
pub(crate) use gc::disk_usage;
pub use gc::{GcPolicy, DEFAULT_GC_DELAY, DEFAULT_GC_DISK_WATERMARK};

use super::diff::{diff, forgettable, Action, ActualTask, ActualTasks};
use super::identity::{load_or_create_agent_id, GenerationStore, IdentityError, Offer};
use super::journal::{Journal, JournalError};
use super::leader::{LeaderClient, LeaderError};
use orch_core::model::{AgentId, AgentInfo, TaskId, TaskState, Timestamp};
use orch_core::protocol::{
    DesiredSet, Generation, Registration, StatusUpdate, TaskSpec, PROTOCOL_VERSION,
};
use orch_driver::Driver;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};
use tokio::sync::{watch, Notify};

/// Grace period for tasks whose spec is unknown (recovered without a record).
const DEFAULT_GRACE: Duration = Duration::from_secs(3);

/// An agent could not start.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The id or generation file is unusable.
    #[error("agent identity")]
    Identity(#[from] IdentityError),
    /// The status journal is unusable.
    #[error("status journal")]
    Journal(#[from] JournalError),
    /// The leader client could not be built.
    #[error("master client")]
    Leader(#[from] LeaderError),
    /// A work directory could not be created.
    #[error("cannot create {path}")]
    WorkDir {
        /// The directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// What one agent is: everything but its id, which comes from its work dir.
#[derive(Debug, Clone)]
pub struct AgentInstance {
    /// Its work directory (ids, journal, task records, sandboxes).
    pub work_dir: PathBuf,
    /// Master addresses (`host:port`).
    pub masters: Vec<String>,
    /// Hostname reported to the masters.
    pub hostname: String,
    /// `ip:port` of the agent's HTTP API.
    pub address: String,
    /// The IP tasks are reachable at under host networking.
    pub agent_ip: String,
    /// Resources offered.
    pub resources: orch_core::model::Resources,
    /// Attributes for constraints.
    pub attributes: orch_core::model::Attributes,
    /// `*` or `slave_public`.
    pub role: String,
    /// Containerizer names offered.
    pub containerizers: Vec<String>,
    /// Its certificate and the cluster CA, when it talks to the masters over TLS.
    pub tls: Option<Arc<orch_pki::tls::NodeTls>>,
    /// Who runs the tasks marked unprivileged that name no user.
    pub unprivileged_user: String,
    /// When finished tasks' sandboxes are removed.
    pub gc: GcPolicy,
}

/// A task as the agent tracks it.
#[derive(Debug)]
struct Entry {
    spec: Option<Arc<TaskSpec>>,
    state: TaskState,
    ip_addresses: Vec<String>,
    /// Set to the grace period once a kill is requested.
    kill: watch::Sender<Option<Duration>>,
    /// Why the agent itself killed the task for failed health checks, if it did.
    unhealthy: Option<String>,
    /// When its terminal status was reported (by this run of the agent).
    finished_at: Option<SystemTime>,
}

impl Entry {
    fn new(spec: Option<Arc<TaskSpec>>, state: TaskState) -> Self {
        Self {
            spec,
            state,
            ip_addresses: Vec::new(),
            kill: watch::Sender::new(None),
            unhealthy: None,
            finished_at: None,
        }
    }

    fn grace(&self) -> Duration {
        self.spec.as_ref().map_or(DEFAULT_GRACE, |spec| {
            Duration::from_millis(spec.kill_grace_ms)
        })
    }
}

/// What is persisted per task in `<work-dir>/tasks/<task-id>.json`: enough to know after a
/// restart which tasks existed, how to kill them and whether they ended.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct TaskRecord {
    spec: TaskSpec,
    driver: Option<String>,
    terminal: Option<TaskState>,
}

/// A task in `GET /state`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TaskView {
    /// Its id.
    pub id: TaskId,
    /// Its app, when known.
    pub app_id: Option<String>,
    /// Its latest state.
    pub state: TaskState,
    /// Its sandbox directory.
    pub directory: String,
    /// Addresses it is reachable at.
    pub ip_addresses: Vec<String>,
}

/// One agent in `GET /state`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AgentView {
    /// Its id.
    pub id: AgentId,
    /// Its hostname.
    pub hostname: String,
    /// `ip:port` of its HTTP API.
    pub address: String,
    /// The leader it is registered with, if any.
    pub master: Option<String>,
    /// The highest accepted desired-set generation (`TERM.INDEX`).
    pub generation: String,
    /// The highest status sequence number journaled and acknowledged.
    pub last_seq: u64,
    /// Acknowledged through.
    pub acked_seq: u64,
    /// Its tasks.
    pub tasks: Vec<TaskView>,
}

/// A running agent.
#[derive(Debug)]
pub struct Agent {
    info: AgentInfo,
    agent_ip: String,
    work_dir: PathBuf,
    /// Who runs the tasks marked unprivileged that name no user.
    unprivileged_user: String,
    drivers: Vec<Arc<dyn Driver>>,
    gc: GcPolicy,
    leader: LeaderClient,
    tasks: Mutex<BTreeMap<TaskId, Entry>>,
    journal: Mutex<Journal>,
    generation: Mutex<GenerationStore>,
    /// Wakes the status sender after an append.
    status_ready: Notify,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A task id that is safe as a single path component.
fn safe_task_id(id: &TaskId) -> bool {
    !id.0.is_empty()
        && id.0 != "."
        && id.0 != ".."
        && !id.0.contains(['/', '\\', '\0'])
        && id.0.len() <= 255
}

impl Agent {
    /// Opens the agent's state in its work dir and recovers its tasks: running ones are
    /// watched again, ones that ended meanwhile get their terminal update, ones no driver
    /// knows any more become TASK_GONE. Unacknowledged updates will be resent.
    pub async fn open(
        instance: AgentInstance,
        drivers: Vec<Arc<dyn Driver>>,
    ) -> Result<Arc<Self>, AgentError> {
        for dir in [
            instance.work_dir.join("sandboxes"),
            instance.work_dir.join("tasks"),
        ] {
            std::fs::create_dir_all(&dir).map_err(|source| AgentError::WorkDir {
                path: dir.clone(),
                source,
            })?;
        }
        // Absolute and canonical, so sandbox paths in `/state` work with `/files`.
        let work_dir =
            std::fs::canonicalize(&instance.work_dir).map_err(|source| AgentError::WorkDir {
                path: instance.work_dir.clone(),
                source,
            })?;
        let id = load_or_create_agent_id(&work_dir)?;
        let generation = GenerationStore::open(&work_dir)?;
        let journal = Journal::open(&work_dir.join("status.journal"))?;
        let info = AgentInfo {
            id,
            hostname: instance.hostname,
            address: instance.address,
            resources: instance.resources,
            attributes: instance.attributes,
            role: instance.role,
            containerizers: instance.containerizers,
        };
        let leader = LeaderClient::new(
            instance.masters,
            Registration {
                protocol: PROTOCOL_VERSION,
                agent: info.clone(),
            },
            instance.tls.as_deref(),
        )?;
        let agent = Arc::new(Self {
            info,
            agent_ip: instance.agent_ip,
            work_dir,
            unprivileged_user: instance.unprivileged_user,
            drivers,
            gc: instance.gc,
            leader,
            tasks: Mutex::new(BTreeMap::new()),
            journal: Mutex::new(journal),
            generation: Mutex::new(generation),
            status_ready: Notify::new(),
        });
        agent.recover().await;
        Ok(agent)
    }

    /// Its id.
    pub fn id(&self) -> &AgentId {
        &self.info.id
    }

    /// What it registers with.
    pub fn info(&self) -> &AgentInfo {
        &self.info
    }

    /// `<work-dir>/sandboxes`.
    pub fn sandboxes(&self) -> PathBuf {
        self.work_dir.join("sandboxes")
    }

    /// The leader client.
    pub fn leader(&self) -> &LeaderClient {
        &self.leader
    }

    /// The highest accepted desired-set generation.
    pub fn generation(&self) -> Generation {
        lock(&self.generation).highest()
    }

    /// Ids of tasks that have not ended.
    pub fn live_tasks(&self) -> Vec<TaskId> {
        lock(&self.tasks)
            .iter()
            .filter(|(_, e)| !e.state.is_terminal())
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// What the agent knows of its tasks, for [`diff`].
    pub fn actual(&self) -> ActualTasks {
        lock(&self.tasks)
            .iter()
            .map(|(id, entry)| {
                (
                    id.clone(),
                    ActualTask {
                        state: entry.state,
                        kill_grace: entry.grace(),
                    },
                )
            })
            .collect()
    }

    /// A snapshot for `GET /state`.
    pub fn view(&self) -> AgentView {
        let (last_seq, acked_seq) = {
            let journal = lock(&self.journal);
            (journal.last_seq(), journal.acked())
        };
        let tasks = lock(&self.tasks)
            .iter()
            .map(|(id, entry)| TaskView {
                id: id.clone(),
                app_id: entry.spec.as_ref().map(|s| s.app_id.to_string()),
                state: entry.state,
                directory: self.sandbox(id).display().to_string(),
                ip_addresses: entry.ip_addresses.clone(),
            })
            .collect();
        AgentView {
            id: self.info.id.clone(),
            hostname: self.info.hostname.clone(),
            address: self.info.address.clone(),
            master: self.leader.current().map(|s| s.master),
            generation: self.generation().to_string(),
            last_seq,
            acked_seq,
            tasks,
        }
    }

    fn sandbox(&self, id: &TaskId) -> PathBuf {
        self.sandboxes().join(&id.0)
    }

    fn record_path(&self, id: &TaskId) -> PathBuf {
        self.work_dir.join("tasks").join(format!("{}.json", id.0))
    }

    /// Journals a status update (durably, before it can be sent), updates the table and
    /// wakes the sender.
    pub(crate) fn report(
        &self,
        task_id: &TaskId,
        state: TaskState,
        message: impl Into<String>,
        reason: Option<&str>,
        ip_addresses: Vec<String>,
    ) {
        let update = StatusUpdate {
            seq: 0,
            task_id: task_id.clone(),
            state,
            message: message.into(),
            reason: reason.map(str::to_owned),
            timestamp: Timestamp::from_system_time(SystemTime::now()),
            ip_addresses: ip_addresses.clone(),
            health: None,
        };
        // Journaled and noted under the table's lock, so a health report (which checks the
        // state under the same lock) never follows a terminal update.
        let mut tasks = lock(&self.tasks);
        let (update, written) = lock(&self.journal).append(update);
        tracing::info!(
            agent.id = %self.info.id,
            task.id = %task_id,
            state = %state,
            seq = update.seq,
            message = %update.message,
            "task status"
        );
        if let Err(error) = written {
            tracing::error!(
                agent.id = %self.info.id,
                seq = update.seq,
                error = &error as &dyn std::error::Error,
                "cannot write the status journal; the update waits in memory and is sent once written"
            );
        }
        if let Some(entry) = tasks.get_mut(task_id) {
            if state.is_terminal() && !entry.state.is_terminal() {
                entry.finished_at = Some(SystemTime::now());
            }
            entry.state = state;
            if !ip_addresses.is_empty() {
                entry.ip_addresses = ip_addresses;
            }
        }
        drop(tasks);
        self.status_ready.notify_one();
    }

    /// Waits until a status update may be pending.
    pub(crate) async fn status_appended(&self) {
        self.status_ready.notified().await;
    }

    /// Writes the status updates a failed journal write left in memory; the status sender
    /// retries this with backoff.
    pub(crate) fn write_unwritten(&self) -> Result<(), JournalError> {
        lock(&self.journal).flush()
    }

    /// Up to `max` unacknowledged updates that are journaled, oldest first.
    pub fn pending_updates(&self, max: usize) -> Vec<StatusUpdate> {
        lock(&self.journal).pending(max)
    }

    /// Records the master's acknowledgement.
    pub fn acknowledge(&self, through: u64) {
        if let Err(error) = lock(&self.journal).ack(through) {
            tracing::error!(
                agent.id = %self.info.id,
                error = &error as &dyn std::error::Error,
                "cannot compact the status journal"
            );
        }
    }

    /// Applies a desired set: stale generations are refused; otherwise the agent starts what
    /// it does not run yet, kills what is no longer desired and forgets ended tasks that are
    /// no longer desired. Returns false if the set was refused.
    pub fn apply_desired(self: &Arc<Self>, set: DesiredSet) -> bool {
        let offer = lock(&self.generation).offer(set.generation);
        match offer {
            Ok(Offer::Stale) => {
                // The sync loop warns about repeated refusals, rate-limited.
                tracing::debug!(
                    agent.id = %self.info.id,
                    generation = %set.generation,
                    highest = %self.generation(),
                    "refused a stale desired set"
                );
                return false;
            }
            Ok(Offer::Newer) => tracing::info!(
                agent.id = %self.info.id,
                generation = %set.generation,
                tasks = set.tasks.len(),
                "new desired set"
            ),
            Ok(Offer::Same) => {}
            Err(error) => {
                tracing::error!(
                    agent.id = %self.info.id,
                    error = &error as &dyn std::error::Error,
                    "cannot persist the desired-set generation; not applying it"
                );
                return false;
            }
        }
        let actual = self.actual();
        for id in forgettable(&set.tasks, &actual) {
            lock(&self.tasks).remove(&id);
            if !safe_task_id(&id) {
                continue;
            }
            if let Err(error) = std::fs::remove_file(self.record_path(&id)) {
                if error.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!(task.id = %id, %error, "cannot remove a task record");
                }
            }
        }
        for action in diff(&set.tasks, &actual) {
            match action {
                Action::Start(spec) => self.start_task(*spec),
                Action::Kill { task_id, grace } => self.kill_task(&task_id, grace),
            }
        }
        true
    }
}

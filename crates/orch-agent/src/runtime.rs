//! One running agent: its task table, status reporting through the journal, task lifecycle
//! (start → wait → terminal, or kill with grace), recovery after a restart, and applying
//! desired sets.

use super::diff::{diff, forgettable, Action, ActualTask, ActualTasks};
use super::health::{self, HealthSink, TaskContext, UNHEALTHY_REASON};
use super::identity::{load_or_create_agent_id, GenerationStore, IdentityError, Offer};
use super::journal::{Journal, JournalError};
use super::leader::{LeaderClient, LeaderError};
use orch_core::model::{AgentId, AgentInfo, TaskId, TaskState, Timestamp};
use orch_core::protocol::{
    DesiredSet, Generation, HealthReport, Registration, StatusUpdate, TaskSpec, PROTOCOL_VERSION,
};
use orch_driver::{Driver, Exit, Launch};
use orch_fs::write_atomic;
use std::collections::{BTreeMap, BTreeSet};
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
}

impl Entry {
    fn new(spec: Option<Arc<TaskSpec>>, state: TaskState) -> Self {
        Self {
            spec,
            state,
            ip_addresses: Vec::new(),
            kill: watch::Sender::new(None),
            unhealthy: None,
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
    drivers: Vec<Arc<dyn Driver>>,
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
        )?;
        let agent = Arc::new(Self {
            info,
            agent_ip: instance.agent_ip,
            work_dir,
            drivers,
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
        match lock(&self.journal).append(update) {
            Ok(update) => tracing::info!(
                agent.id = %self.info.id,
                task.id = %task_id,
                state = %state,
                seq = update.seq,
                message = %update.message,
                "task status"
            ),
            Err(error) => tracing::error!(
                agent.id = %self.info.id,
                task.id = %task_id,
                state = %state,
                error = &error as &dyn std::error::Error,
                "cannot journal a status update; it will not be sent"
            ),
        }
        if let Some(entry) = tasks.get_mut(task_id) {
            entry.state = state;
            if !ip_addresses.is_empty() {
                entry.ip_addresses = ip_addresses;
            }
        }
        drop(tasks);
        self.status_ready.notify_one();
    }

    /// Journals a health check result of a task that is RUNNING and not being killed, as an
    /// update with its current state; false (nothing journaled) otherwise.
    fn report_health(&self, task_id: &TaskId, report: HealthReport) -> bool {
        let tasks = lock(&self.tasks);
        let Some(entry) = tasks.get(task_id) else {
            return false;
        };
        if entry.state != TaskState::Running || entry.kill.borrow().is_some() {
            return false;
        }
        let update = StatusUpdate {
            seq: 0,
            task_id: task_id.clone(),
            state: entry.state,
            message: report.cause.clone().unwrap_or_default(),
            reason: None,
            timestamp: Timestamp::from_system_time(SystemTime::now()),
            ip_addresses: entry.ip_addresses.clone(),
            health: Some(report),
        };
        match lock(&self.journal).append(update) {
            Ok(update) => tracing::info!(
                agent.id = %self.info.id,
                task.id = %task_id,
                seq = update.seq,
                health = ?update.health,
                "task health"
            ),
            Err(error) => tracing::error!(
                agent.id = %self.info.id,
                task.id = %task_id,
                error = &error as &dyn std::error::Error,
                "cannot journal a health report; it will not be sent"
            ),
        }
        drop(tasks);
        self.status_ready.notify_one();
        true
    }

    /// Kills a live task for failing a health check (unless a kill is already under way):
    /// its terminal update will be TASK_KILLED with [`UNHEALTHY_REASON`] and `message`.
    fn kill_unhealthy(&self, id: &TaskId, message: String) {
        let mut tasks = lock(&self.tasks);
        let Some(entry) = tasks.get_mut(id) else {
            return;
        };
        if entry.state.is_terminal() || entry.kill.borrow().is_some() {
            return;
        }
        let grace = entry.grace();
        entry.unhealthy = Some(message);
        entry.kill.send_replace(Some(grace));
    }

    /// Starts the health checks of a running task; `running_for` is how long it has run.
    fn start_checks(
        self: &Arc<Self>,
        spec: Option<&TaskSpec>,
        driver: &Arc<dyn Driver>,
        task_ip: Option<String>,
        running_for: Duration,
    ) -> Option<health::Checks> {
        let spec = spec.filter(|spec| !spec.health_checks.is_empty())?;
        let context = TaskContext {
            mock: driver.name() == "mock",
            agent_ip: self.agent_ip.clone(),
            task_ip,
            sandbox: self.sandbox(&spec.task_id),
            hostname: self.info.hostname.clone(),
        };
        let now = tokio::time::Instant::now();
        let started = now.checked_sub(running_for).unwrap_or(now);
        Some(health::start(self, spec, &context, started))
    }

    /// Waits until a status update may be pending.
    pub(crate) async fn status_appended(&self) {
        self.status_ready.notified().await;
    }

    /// Up to `max` unacknowledged updates, oldest first.
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
                tracing::warn!(
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

    /// Starts a task unless it is known already.
    pub fn start_task(self: &Arc<Self>, spec: TaskSpec) {
        let id = spec.task_id.clone();
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

    fn write_record(&self, record: &TaskRecord) -> std::io::Result<()> {
        let bytes = serde_json::to_vec(record).map_err(std::io::Error::other)?;
        write_atomic(&self.record_path(&record.spec.task_id), &bytes)
    }

    fn mark_terminal(&self, id: &TaskId, state: TaskState) {
        let path = self.record_path(id);
        let Ok(text) = std::fs::read(&path) else {
            return;
        };
        let Ok(mut record) = serde_json::from_slice::<TaskRecord>(&text) else {
            return;
        };
        record.terminal = Some(state);
        if let Err(error) = self.write_record(&record) {
            tracing::warn!(task.id = %id, %error, "cannot mark a task record terminal");
        }
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
    async fn supervise(
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

    /// After the terminal status is journaled: note it in the record, let the driver clean up.
    async fn finish(&self, id: &TaskId, driver: &Arc<dyn Driver>, state: TaskState) {
        self.mark_terminal(id, state);
        if let Err(error) = driver.destroy(id).await {
            tracing::warn!(
                task.id = %id,
                error = &error as &dyn std::error::Error,
                "the driver could not clean up after the task"
            );
        }
    }

    /// Rebuilds the task table after a restart (see [`Agent::open`]).
    async fn recover(self: &Arc<Self>) {
        let records = self.load_records();
        let journaled_end: BTreeMap<TaskId, TaskState> = lock(&self.journal)
            .all_pending()
            .filter(|u| u.state.is_terminal())
            .map(|u| (u.task_id.clone(), u.state))
            .collect();
        let mut recovered = BTreeMap::new();
        for driver in &self.drivers {
            match driver.recover().await {
                Ok(found) => {
                    for task in found {
                        recovered.insert(task.task_id.clone(), (Arc::clone(driver), task.exit));
                    }
                }
                Err(error) => tracing::error!(
                    driver = driver.name(),
                    error = &error as &dyn std::error::Error,
                    "driver recovery failed; its tasks will be reported gone"
                ),
            }
        }
        let mut seen = BTreeSet::new();
        for (id, (driver, exit)) in recovered {
            seen.insert(id.clone());
            let record = records.get(&id);
            let spec = record.map(|r| Arc::new(r.spec.clone()));
            let ended = record
                .and_then(|r| r.terminal)
                .or_else(|| journaled_end.get(&id).copied());
            if let Some(state) = ended {
                lock(&self.tasks).insert(id.clone(), Entry::new(spec, state));
                self.finish(&id, &driver, state).await;
                continue;
            }
            let entry = Entry::new(spec.clone(), TaskState::Running);
            let kill = entry.kill.subscribe();
            lock(&self.tasks).insert(id.clone(), entry);
            match exit {
                Some(exit) => {
                    tracing::info!(task.id = %id, state = %exit.state, "task ended while the agent was away");
                    self.report(
                        &id,
                        exit.state,
                        exit.message,
                        exit.reason.as_deref(),
                        vec![],
                    );
                    self.finish(&id, &driver, exit.state).await;
                }
                None => {
                    tracing::info!(task.id = %id, driver = driver.name(), "re-attached to a running task");
                    // The grace period counts from the start, about when its record was written.
                    let running_for = std::fs::metadata(self.record_path(&id))
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|at| SystemTime::now().duration_since(at).ok())
                        .unwrap_or_default();
                    let checks = self.start_checks(spec.as_deref(), &driver, None, running_for);
                    let agent = Arc::clone(self);
                    tokio::spawn(async move { agent.supervise(id, driver, kill, checks).await });
                }
            }
        }
        for (id, record) in records {
            if seen.contains(&id) {
                continue;
            }
            let spec = Some(Arc::new(record.spec));
            match record.terminal.or_else(|| journaled_end.get(&id).copied()) {
                Some(state) => {
                    lock(&self.tasks).insert(id, Entry::new(spec, state));
                }
                None => {
                    lock(&self.tasks).insert(id.clone(), Entry::new(spec, TaskState::Running));
                    self.report(
                        &id,
                        TaskState::Gone,
                        "the task vanished while the agent was away",
                        Some("REASON_EXECUTOR_TERMINATED"),
                        vec![],
                    );
                    self.mark_terminal(&id, TaskState::Gone);
                }
            }
        }
    }

    fn load_records(&self) -> BTreeMap<TaskId, TaskRecord> {
        let dir = self.work_dir.join("tasks");
        let mut records = BTreeMap::new();
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return records;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            match std::fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|bytes| {
                    serde_json::from_slice::<TaskRecord>(&bytes).map_err(|e| e.to_string())
                }) {
                Ok(record) => {
                    records.insert(record.spec.task_id.clone(), record);
                }
                Err(error) => {
                    tracing::warn!(path = %path.display(), error, "skipping an unreadable task record")
                }
            }
        }
        records
    }
}

impl HealthSink for Agent {
    fn health(&self, task: &TaskId, report: HealthReport) -> bool {
        self.report_health(task, report)
    }

    fn unhealthy(&self, task: &TaskId, message: String) {
        self.kill_unhealthy(task, message);
    }
}

/// Completes with the grace period once a kill is requested; never if the entry is dropped.
/// How long a running task keeps running after its kill was decided, before SIGTERM (or
/// `docker stop`): the snapshot stream takes milliseconds to reach DNS servers and load
/// balancers, so they stop routing to it before it stops.
pub const KILL_DRAIN: Duration = Duration::from_millis(100);

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

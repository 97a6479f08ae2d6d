//! A running master: the Raft node and what the API needs from it.
//!
//! [`Master`] is the only thing the HTTP layer sees. It writes commands through Raft with a
//! deadline (a minority or a leaderless cluster answers an error within seconds, never
//! hangs), tells who leads, hands leadership over on request, changes membership, and exposes
//! the latest [`ClusterState`] snapshot.
//!
//! May depend on: raft, state, scheduler, protocol, model, config.

mod agents;
mod batcher;
mod caller;
mod controller;
mod membership;
mod metrics;
mod placement;
mod readiness;
mod reconcile;
#[cfg(test)]
mod reconcile_tests;
mod rejoin;
mod snapshots;
mod task_spec;

pub use agents::{AgentProtocolError, HEARTBEAT_INTERVAL};
pub use caller::Caller;
pub use membership::{MembershipError, NodeIdentity};
pub use readiness::{LastResponse, ReadinessResult};
pub use reconcile::QueueEntry;
pub use rejoin::{Member, MembersView};

use crate::config::MasterConfig;
use batcher::WriteBatcher;
use metrics::Metrics;
use openraft::{BasicNode, SnapshotPolicy};
use orch_core::model::MasterId;
use orch_core::state::{Applied, ClusterState, Command, Event};
use orch_raft::{HttpNetwork, PeerContacts, Raft, RaftError, RaftStoreError};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// Events a slow `/v2/events` client may fall behind before it is dropped (Marathon's
/// `--event_stream_max_outstanding_messages`).
pub const EVENT_BUFFER: usize = 1024;

/// How long a write may wait for a quorum before it is refused.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(3);

/// How long a leader keeps accepting writes without hearing from a quorum.
const QUORUM_LEASE: Duration = Duration::from_secs(1);

/// How long leadership handover may take before this master takes part in elections again.
const STEP_DOWN_WINDOW: Duration = Duration::from_secs(5);

/// Why a master could not start.
#[derive(Debug, thiserror::Error)]
pub enum MasterError {
    /// The durable store failed to open.
    #[error(transparent)]
    Store(#[from] RaftStoreError),
    /// The Raft settings are inconsistent.
    #[error("invalid raft settings")]
    RaftConfig(#[source] openraft::ConfigError),
    /// The HTTP client for peer traffic could not be built.
    #[error("cannot build the HTTP client")]
    HttpClient(#[source] reqwest::Error),
    /// Raft failed to start or initialise.
    #[error("raft failed to start")]
    Raft(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The TLS files (`--tls-cert`, `--tls-key`, `--tls-ca`) cannot be used.
    #[error("cannot use the TLS files")]
    Tls(#[source] orch_pki::PkiError),
    /// This master's data is gone but the cluster knows it as a member holding data.
    #[error("this master's data dir is empty, but the cluster at {peer} knows {address} as master {id}, which held data: start it with --rejoin to join as a replaced member (a master that forgot its vote must not vote again)")]
    Wiped {
        /// This master's address.
        address: String,
        /// Its old id.
        id: MasterId,
        /// The peer that said so.
        peer: String,
    },
    /// This master's data is corrupt and no peer can replace it.
    #[error("{0}; no other master answered that knows this one, so nothing can replace its data: restore the data dir from a backup")]
    CorruptAlone(#[source] orch_raft::SnapshotCorrupt),
    /// The data dir could not be moved aside or its id file written.
    #[error("cannot prepare the data dir {path} for rejoining")]
    DataDir {
        /// The directory.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The token file (`--token-file`) cannot be read, or is empty.
    #[error("cannot read a token from {path}")]
    Token {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
}

/// Why a write did not commit.
#[derive(Debug, Clone, thiserror::Error)]
pub enum WriteError {
    /// This master does not lead; `leader` is who does, if known.
    #[error("this master is not the leader")]
    NotLeader {
        /// The current leader, if known.
        leader: Option<Leader>,
    },
    /// No quorum committed the write in time.
    #[error("no quorum committed the write within {0:?}")]
    Timeout(Duration),
    /// Leadership is being handed to another master.
    #[error("leadership is being handed over")]
    SteppingDown,
    /// This leader has not heard from a quorum lately: it is likely cut off, so it does not
    /// append what might never commit.
    #[error("this leader heard from only {reachable} of {voters} masters lately")]
    NoQuorum {
        /// Masters (itself included) heard from within the lease.
        reachable: usize,
        /// Voting masters.
        voters: usize,
    },
    /// Raft has stopped on this master.
    #[error("raft has stopped on this master")]
    Stopped(#[source] Arc<dyn std::error::Error + Send + Sync>),
}

/// Why a read could not be served consistently.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ReadError {
    /// This master does not lead; `leader` is who does, if known.
    #[error("this master is not the leader")]
    NotLeader {
        /// The current leader, if known.
        leader: Option<Leader>,
    },
    /// The state did not catch up with the commit index in time.
    #[error("the state did not catch up with committed writes within {0:?}")]
    Timeout(Duration),
    /// Raft has stopped on this master.
    #[error("raft has stopped on this master")]
    Stopped(#[source] Arc<dyn std::error::Error + Send + Sync>),
}

/// The current leader.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Leader {
    /// Raft id.
    pub id: MasterId,
    /// `host:port`.
    pub address: String,
}

/// The cluster as this master sees it (`GET /v1/cluster`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct ClusterStatus {
    /// The leader's id.
    pub leader: Option<MasterId>,
    /// The leader's `host:port`.
    pub leader_address: Option<String>,
    /// The current Raft term.
    pub term: u64,
    /// The last committed log index known here.
    pub commit_index: u64,
    /// The last log index applied here.
    pub applied_index: u64,
    /// Every master in the membership.
    pub members: Vec<MemberStatus>,
}

/// One master of the membership.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MemberStatus {
    /// Raft id.
    pub id: MasterId,
    /// `host:port`.
    pub address: String,
    /// `leader`, `follower` or `learner`.
    pub role: &'static str,
    /// Milliseconds since this master last heard from it (0 for itself).
    pub last_contact_ms: Option<u64>,
}

/// A running master.
pub struct Master {
    id: MasterId,
    address: String,
    raft: Raft,
    writes: WriteBatcher,
    states: watch::Receiver<Arc<ClusterState>>,
    snapshots: watch::Receiver<Arc<orch_core::state::Snapshot>>,
    contacts: PeerContacts,
    committed_index: Arc<AtomicU64>,
    metrics: Metrics,
    http: reqwest::Client,
    /// The HTTP client for calls to agents' APIs (showing this master's certificate, taking
    /// only agent certificates, with TLS).
    agent_http: reqwest::Client,
    stepping_down: AtomicBool,
    /// (term, last log index) when this master first served a read in that term.
    read_floor: Mutex<Option<(u64, u64)>>,
    /// When the leader last heard from each agent.
    agent_contacts: agents::AgentContacts,
    /// Heartbeat silence after which an agent is unreachable.
    agent_timeout: Duration,
    /// Marathon's event bus.
    events: tokio::sync::broadcast::Sender<Arc<Event>>,
    /// Becomes true when the process starts to stop: long-lived responses end.
    stopping: watch::Sender<bool>,
    /// The leader's scheduling memory: launch backoffs and the launch queue.
    scheduler: Mutex<reconcile::Scheduler>,
    /// Readiness results of tasks being deployed (leader memory).
    readiness: Arc<readiness::Readiness>,
    /// The snapshot being received from a leader, checked chunk by chunk.
    snapshot_guard: orch_raft::guard::SnapshotGuard,
    /// The server side of TLS, when this master has it.
    server_tls: Option<Arc<rustls::ServerConfig>>,
    /// The management token every API request must carry (with TLS).
    api_token: Option<String>,
}

impl std::fmt::Debug for Master {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Master")
            .field("id", &self.id)
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

/// The first line of the token file at `path`.
fn read_token(path: &std::path::Path) -> std::io::Result<String> {
    let text = std::fs::read_to_string(path)?;
    match text.lines().next().map(str::trim).filter(|t| !t.is_empty()) {
        Some(token) => Ok(token.to_owned()),
        None => Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "the file is empty",
        )),
    }
}

impl Master {
    /// Opens the store, starts Raft and, on a pristine master that is part of the initial
    /// `--masters` set, initialises the cluster with that set (every initial master does
    /// the same with the same list, which openraft allows; joiners wait to be added).
    pub async fn start(config: &MasterConfig) -> Result<Arc<Self>, MasterError> {
        let raft_config = openraft::Config {
            cluster_name: "orch".into(),
            heartbeat_interval: config.raft.heartbeat_ms,
            election_timeout_min: config.raft.election_timeout_ms,
            election_timeout_max: config.raft.election_timeout_ms * 2,
            install_snapshot_timeout: 2_000,
            snapshot_max_chunk_size: 1 << 20,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(config.snapshot_logs),
            max_in_snapshot_log_to_keep: config.snapshot_logs,
            purge_batch_size: config.snapshot_logs.clamp(1, 256),
            ..openraft::Config::default()
        }
        .validate()
        .map_err(MasterError::RaftConfig)?;
        let node_tls = match &config.tls {
            Some(files) => Some(files.load().map_err(MasterError::Tls)?),
            None => None,
        };
        let mut http = orch_pki::tls::cluster_http()
            .tcp_nodelay(true)
            .connect_timeout(Duration::from_secs(2));
        let (scheme, server_tls) = match &node_tls {
            Some(tls) => {
                http = http.tls_backend_preconfigured(
                    tls.client_config(orch_pki::Role::Master)
                        .map_err(MasterError::Tls)?,
                );
                (
                    "https",
                    Some(tls.server_config().map_err(MasterError::Tls)?),
                )
            }
            None => ("http", None),
        };
        let http = http.build().map_err(MasterError::HttpClient)?;
        let (events, _) = tokio::sync::broadcast::channel(EVENT_BUFFER);
        let opened = rejoin::open(config, &http, scheme, events.clone()).await?;
        let (log_store, state_machine, states) = opened.store;
        let committed_index = log_store.committed_index();
        let mut agent_http = orch_pki::tls::cluster_http()
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(30));
        if let Some(tls) = &node_tls {
            agent_http = agent_http.tls_backend_preconfigured(
                tls.client_config(orch_pki::Role::Agent)
                    .map_err(MasterError::Tls)?,
            );
        }
        let agent_http = agent_http.build().map_err(MasterError::HttpClient)?;
        let api_token = match &config.token_file {
            Some(path) => Some(read_token(path).map_err(|source| MasterError::Token {
                path: path.display().to_string(),
                source,
            })?),
            None => None,
        };
        let contacts = PeerContacts::default();
        let network = HttpNetwork::new(http.clone(), contacts.clone(), scheme);
        let raft = Raft::new(
            opened.id,
            Arc::new(raft_config),
            network,
            log_store,
            state_machine,
        )
        .await
        .map_err(|e| MasterError::Raft(Box::new(e)))?;
        let initialized = raft
            .is_initialized()
            .await
            .map_err(|e| MasterError::Raft(Box::new(e)))?;
        if !opened.joining && !initialized {
            let members: BTreeMap<MasterId, BasicNode> = (1..)
                .zip(&config.masters)
                .map(|(id, address)| (id, BasicNode::new(address)))
                .collect();
            tracing::info!(masters = ?config.masters, "initialising a new cluster");
            match raft.initialize(members).await {
                Ok(())
                | Err(RaftError::APIError(openraft::error::InitializeError::NotAllowed(_))) => {}
                Err(e) => return Err(MasterError::Raft(Box::new(e))),
            }
        }
        let master = Arc::new(Self {
            id: opened.id,
            address: config.advertise.clone(),
            writes: WriteBatcher::start(raft.clone()),
            snapshots: snapshots::publish(&raft, states.clone()),
            raft,
            states,
            contacts,
            committed_index,
            metrics: Metrics::new(),
            http,
            agent_http,
            stepping_down: AtomicBool::new(false),
            read_floor: Mutex::new(None),
            agent_contacts: agents::AgentContacts::default(),
            agent_timeout: config.agent_timeout,
            events,
            stopping: watch::Sender::new(false),
            scheduler: Mutex::new(reconcile::Scheduler::default()),
            readiness: Arc::default(),
            snapshot_guard: orch_raft::guard::SnapshotGuard::new(config.max_snapshot_bytes),
            server_tls,
            api_token,
        });
        tokio::spawn(controller::run(Arc::clone(&master)));
        if opened.replacing {
            let rejoining = Arc::clone(&master);
            tokio::spawn(async move { rejoining.ask_to_be_replaced(opened.peers).await });
        }
        Ok(master)
    }

    /// This master's Raft id.
    pub fn id(&self) -> MasterId {
        self.id
    }

    /// This master's advertised `host:port`.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The Raft handle, for the Raft RPC endpoints.
    pub fn raft(&self) -> &Raft {
        &self.raft
    }

    /// `https` when this master has TLS, else `http`.
    pub fn scheme(&self) -> &'static str {
        if self.server_tls.is_some() {
            "https"
        } else {
            "http"
        }
    }

    /// The token API requests must carry, when this master has TLS.
    pub fn api_token(&self) -> Option<&str> {
        self.api_token.as_deref()
    }

    /// The TLS server configuration, when this master serves HTTPS.
    pub fn server_tls(&self) -> Option<Arc<rustls::ServerConfig>> {
        self.server_tls.clone()
    }

    /// The checks on snapshot chunks, for the Raft RPC endpoints.
    pub fn snapshot_guard(&self) -> &orch_raft::guard::SnapshotGuard {
        &self.snapshot_guard
    }

    /// Contact bookkeeping, fed by the Raft RPC endpoints.
    pub fn contacts(&self) -> &PeerContacts {
        &self.contacts
    }

    /// The HTTP client for calls to agents' APIs (`scheme()` is theirs too).
    pub fn agent_http(&self) -> &reqwest::Client {
        &self.agent_http
    }

    /// The HTTP client for calls to other masters.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The state as of now on the leader: every write acknowledged before this call is in
    /// it. A leader does not know at once how far earlier terms committed: a new one learns
    /// it when its first entry commits, and one restored as leader after a restart (openraft
    /// does that, in the same term, without a new entry) when replication resumes. So a read
    /// waits until the state has applied the larger of openraft's read index and this
    /// leader's last log index when it first served a read in this term.
    ///
    /// Within a request of an ACL token, the state is as that token may see it ([`Caller`]).
    pub async fn read_state(&self) -> Result<Arc<ClusterState>, ReadError> {
        let (read_log_id, _) = self
            .raft
            .get_read_log_id()
            .await
            .map_err(|error| match error {
                RaftError::APIError(openraft::error::CheckIsLeaderError::ForwardToLeader(_)) => {
                    ReadError::NotLeader {
                        leader: self.leader(),
                    }
                }
                other => ReadError::Stopped(Arc::new(other)),
            })?;
        let read_index = read_log_id.map_or(0, |id| id.index).max(self.term_floor());
        self.raft
            .wait(Some(WRITE_TIMEOUT))
            .applied_index_at_least(Some(read_index), "consistent read")
            .await
            .map_err(|_| ReadError::Timeout(WRITE_TIMEOUT))?;
        Ok(caller::view(self.state()))
    }

    /// This leader's last log index when it first served a read in the current term: every
    /// entry committed before it led is at or below it.
    fn term_floor(&self) -> u64 {
        let (term, last_log_index) = {
            let metrics = self.raft.metrics();
            let metrics = metrics.borrow();
            (metrics.current_term, metrics.last_log_index.unwrap_or(0))
        };
        let mut floor = self
            .read_floor
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match *floor {
            Some((floor_term, index)) if floor_term == term => index,
            _ => {
                *floor = Some((term, last_log_index));
                last_log_index
            }
        }
    }

    /// Subscribes to the event bus: events of applied changes and of API calls.
    pub fn events(&self) -> tokio::sync::broadcast::Receiver<Arc<Event>> {
        self.events.subscribe()
    }

    /// Publishes an event that no applied command carries (e.g. `api_post_event`).
    pub fn publish(&self, event: Event) {
        // Nobody listening is fine.
        let _ = self.events.send(Arc::new(event));
    }

    /// Every state this master applies, newest first (a watch: late readers see the newest).
    pub fn watch_state(&self) -> watch::Receiver<Arc<ClusterState>> {
        self.states.clone()
    }

    /// The discovery view (state, leader, masters), renewed on every change of any of them.
    pub fn snapshots(&self) -> watch::Receiver<Arc<orch_core::state::Snapshot>> {
        self.snapshots.clone()
    }

    /// The latest applied state, without waiting (may lag the leader's commits).
    pub fn state(&self) -> Arc<ClusterState> {
        Arc::clone(&self.states.borrow())
    }

    /// The current leader, if one is known.
    pub fn leader(&self) -> Option<Leader> {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow();
        let id = metrics.current_leader?;
        let node = metrics.membership_config.membership().get_node(&id)?;
        Some(Leader {
            id,
            address: node.addr.clone(),
        })
    }

    /// True if this master leads.
    pub fn is_leader(&self) -> bool {
        self.leader().is_some_and(|leader| leader.id == self.id)
    }

    /// Waits up to `patience` for a leader to be known.
    pub async fn wait_for_leader(&self, patience: Duration) -> Option<Leader> {
        let deadline = Instant::now() + patience;
        let mut metrics = self.raft.metrics();
        loop {
            if let Some(leader) = self.leader() {
                return Some(leader);
            }
            if tokio::time::timeout_at(deadline, metrics.changed())
                .await
                .is_err()
            {
                return None;
            }
        }
    }

    /// Commits `command` through Raft and returns what applying it produced. Within a
    /// request of an ACL token, it commits as that token ([`Caller`]): all of it within the
    /// token's grants, or nothing.
    pub async fn write(&self, command: Command) -> Result<Applied, WriteError> {
        if self.stepping_down.load(Ordering::Acquire) {
            return Err(WriteError::SteppingDown);
        }
        self.check_quorum()?;
        let started = Instant::now();
        let applied = self.writes.write(caller::restrict(command)).await?;
        self.metrics.observe_write(started.elapsed());
        Ok(applied)
    }

    /// Refuses early when this master leads but fewer than a quorum of masters (itself
    /// included) answered its RPCs within [`QUORUM_LEASE`].
    fn check_quorum(&self) -> Result<(), WriteError> {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow();
        if metrics.current_leader != Some(self.id) {
            return Ok(());
        }
        let lease = u64::try_from(QUORUM_LEASE.as_millis()).unwrap_or(u64::MAX);
        let membership = metrics.membership_config.membership();
        let voters: Vec<MasterId> = membership.voter_ids().collect();
        let fresh = voters
            .iter()
            .filter(|id| {
                **id == self.id
                    || self
                        .contacts
                        .millis_since(**id)
                        .is_some_and(|ms| ms <= lease)
            })
            .count();
        if fresh * 2 > voters.len() {
            Ok(())
        } else {
            Err(WriteError::NoQuorum {
                reachable: fresh,
                voters: voters.len(),
            })
        }
    }

    /// Hands leadership to another master: this one stops sending heartbeats and stays out
    /// of elections until another leader is seen (or [`STEP_DOWN_WINDOW`] passes), so a
    /// follower's election timer fires and it takes over. Writes are refused meanwhile.
    pub fn step_down(self: &Arc<Self>) -> Result<(), WriteError> {
        if !self.is_leader() {
            return Err(WriteError::NotLeader {
                leader: self.leader(),
            });
        }
        if self.stepping_down.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        tracing::info!(master.id = self.id, "abdicating leadership");
        self.raft.runtime_config().heartbeat(false);
        self.raft.runtime_config().elect(false);
        let master = Arc::clone(self);
        tokio::spawn(async move {
            let deadline = Instant::now() + STEP_DOWN_WINDOW;
            let mut metrics = master.raft.metrics();
            while master.leader().is_none_or(|leader| leader.id == master.id) {
                if tokio::time::timeout_at(deadline, metrics.changed())
                    .await
                    .is_err()
                {
                    break;
                }
            }
            master.raft.runtime_config().heartbeat(true);
            master.raft.runtime_config().elect(true);
            master.stepping_down.store(false, Ordering::Release);
            tracing::info!(leader = ?master.leader(), "leadership handover finished");
        });
        Ok(())
    }

    /// The membership and Raft progress as this master sees them.
    pub fn cluster_status(&self) -> ClusterStatus {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow();
        let membership = metrics.membership_config.membership();
        let leader = metrics.current_leader;
        let members = membership
            .nodes()
            .map(|(id, node)| {
                let voter = membership.voter_ids().any(|voter| voter == *id);
                let role = match (voter, leader == Some(*id)) {
                    (true, true) => "leader",
                    (true, false) => "follower",
                    (false, _) => "learner",
                };
                let last_contact_ms = if *id == self.id {
                    Some(0)
                } else {
                    self.contacts.millis_since(*id)
                };
                MemberStatus {
                    id: *id,
                    address: node.addr.clone(),
                    role,
                    last_contact_ms,
                }
            })
            .collect();
        ClusterStatus {
            leader,
            leader_address: leader
                .and_then(|id| membership.get_node(&id))
                .map(|node| node.addr.clone()),
            term: metrics.current_term,
            commit_index: self.committed_index.load(Ordering::Relaxed),
            applied_index: metrics.last_applied.map_or(0, |id| id.index),
            members,
        }
    }

    /// Prometheus text of the Raft gauges and the write latency histogram.
    pub fn render_metrics(&self) -> String {
        let status = self.cluster_status();
        let is_leader = status.leader == Some(self.id);
        self.metrics.render(&status, is_leader)
    }

    /// Apps with instances waiting to launch, and why (`/v2/queue`); empty on a follower.
    pub fn launch_queue(&self) -> std::collections::BTreeMap<orch_core::model::AppId, QueueEntry> {
        self.scheduler().queue.clone()
    }

    /// The readiness check results of an app's tasks (`readinessCheckResults`).
    pub fn readiness_of(&self, app: &orch_core::model::AppId) -> Vec<ReadinessResult> {
        let state = self.state();
        self.readiness
            .results_of(state.app_tasks(app).map(|task| &task.id))
    }

    /// Resets an app's launch delay; false if it has none and nothing waits.
    pub fn reset_launch_delay(&self, app: &orch_core::model::AppId) -> bool {
        self.scheduler().reset_delay(app)
    }

    fn scheduler(&self) -> std::sync::MutexGuard<'_, reconcile::Scheduler> {
        self.scheduler
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Why this master's Raft core stopped on its own (a storage error such as a full disk,
    /// a panic), if it did. Such a master can neither vote nor apply: it must not look
    /// healthy to DNS, the LB or a supervisor.
    pub fn raft_failure(&self) -> Option<String> {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow();
        metrics
            .running_state
            .as_ref()
            .err()
            .map(ToString::to_string)
    }

    /// Completes with the reason when the Raft core stops on its own; `orch master` then
    /// exits non-zero so that its supervisor restarts it.
    pub async fn raft_stopped(&self) -> String {
        let mut metrics = self.raft.metrics();
        loop {
            if let Some(why) = self.raft_failure() {
                return why;
            }
            if metrics.changed().await.is_err() {
                return "the Raft core ended".to_owned();
            }
        }
    }

    /// Completes when the process begins to stop (see [`Master::begin_shutdown`]).
    pub async fn stopping(&self) {
        let mut stopping = self.stopping.subscribe();
        // An error means the master is gone, which is stopping too.
        let _ = stopping.wait_for(|stopping| *stopping).await;
    }

    /// Ends long-lived responses (event streams, long polls) so the server can drain.
    pub fn begin_shutdown(&self) {
        self.stopping.send_replace(true);
    }

    /// Stops Raft; the store is closed when the last handle drops.
    pub async fn shutdown(&self) {
        if let Err(error) = self.raft.shutdown().await {
            tracing::warn!(
                error = &error as &dyn std::error::Error,
                "raft did not shut down cleanly"
            );
        }
    }
}

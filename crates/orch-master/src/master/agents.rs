//! The leader's side of the agent protocol: registration, heartbeats, desired sets (long
//! poll) and status updates.
//!
//! Heartbeats are not replicated: the leader keeps the last contact of each agent in memory
//! ([`AgentContacts`]); a new leader starts every agent's clock afresh. Reachability changes
//! and everything else go through Raft.

use super::{Master, WriteError};
use orch_core::model::{AgentId, Reachability, Timestamp};
use orch_core::protocol::{
    DesiredSet, Generation, Heartbeat, Registered, Registration, StatusAck, StatusBatch,
    PROTOCOL_VERSION,
};
use orch_core::state::{Applied, Command};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};
use tokio::time::Instant;

/// How often a held desired-set poll checks that this master still leads.
const LEADERSHIP_RECHECK: Duration = Duration::from_millis(250);

/// How often agents send heartbeats.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(1);

/// Why an agent request was refused.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AgentProtocolError {
    /// The agent speaks another protocol version.
    #[error("agent protocol {0} is not supported (this master speaks {PROTOCOL_VERSION})")]
    Protocol(u32),
    /// The agent is not registered (with this cluster): it should register.
    #[error("agent {0} is not registered")]
    UnknownAgent(AgentId),
    /// A write had an outcome its caller does not expect (a bug).
    #[error("unexpected outcome: {0}")]
    Unexpected(String),
    /// The write failed (not leader, no quorum, ...).
    #[error(transparent)]
    Write(#[from] WriteError),
}

/// When the leader last heard from each agent.
#[derive(Debug, Default)]
pub struct AgentContacts {
    last: Mutex<HashMap<AgentId, Instant>>,
}

impl AgentContacts {
    /// Records a contact now.
    pub fn touch(&self, agent: &AgentId) {
        self.lock().insert(agent.clone(), Instant::now());
    }

    /// Agents silent for longer than `timeout` among `agents`; an agent never heard from
    /// since `since` counts from `since`.
    pub fn silent<'a>(
        &self,
        agents: impl Iterator<Item = &'a AgentId>,
        since: Instant,
        timeout: Duration,
    ) -> Vec<AgentId> {
        let last = self.lock();
        agents
            .filter(|id| {
                let heard = last.get(*id).copied().unwrap_or(since).max(since);
                heard.elapsed() > timeout
            })
            .cloned()
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<AgentId, Instant>> {
        self.last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Master {
    /// Registers (or re-registers) an agent.
    pub async fn register_agent(
        &self,
        registration: Registration,
    ) -> Result<Registered, AgentProtocolError> {
        if registration.protocol != PROTOCOL_VERSION {
            return Err(AgentProtocolError::Protocol(registration.protocol));
        }
        self.ensure_agent_leader()?;
        let id = registration.agent.id.clone();
        self.agent_contacts.touch(&id);
        let unchanged = self.state().agents.get(&id).is_some_and(|agent| {
            agent.info == registration.agent && agent.reachability == Reachability::Reachable
        });
        if !unchanged {
            self.write(Command::RegisterAgent {
                info: registration.agent,
                at: now(),
            })
            .await?;
        }
        tracing::info!(agent.id = %id, "agent registered");
        Ok(Registered {
            heartbeat_interval_ms: u64::try_from(HEARTBEAT_INTERVAL.as_millis()).unwrap_or(1000),
        })
    }

    /// Notes a heartbeat; an agent that was unreachable becomes reachable again.
    pub async fn agent_heartbeat(&self, heartbeat: Heartbeat) -> Result<(), AgentProtocolError> {
        self.ensure_agent_leader()?;
        let state = self.state();
        let agent = state
            .agents
            .get(&heartbeat.agent_id)
            .ok_or_else(|| AgentProtocolError::UnknownAgent(heartbeat.agent_id.clone()))?;
        self.agent_contacts.touch(&heartbeat.agent_id);
        if !agent.is_reachable() {
            tracing::info!(agent.id = %heartbeat.agent_id, "agent is reachable again");
            self.write(Command::AgentReachable {
                agent_id: heartbeat.agent_id,
                running: heartbeat.running,
                at: now(),
            })
            .await?;
        }
        Ok(())
    }

    /// The agent's whole desired set, as soon as it differs from generation `after`, or
    /// after `wait` at the latest.
    pub async fn desired_set(
        &self,
        agent_id: &AgentId,
        after: Generation,
        wait: Duration,
    ) -> Result<DesiredSet, AgentProtocolError> {
        let deadline = Instant::now() + wait;
        let mut states = self.states.clone();
        loop {
            let term = self.current_term();
            if !self.is_leader() {
                return Err(WriteError::NotLeader {
                    leader: self.leader(),
                }
                .into());
            }
            let state = states.borrow_and_update().clone();
            let agent = state
                .agents
                .get(agent_id)
                .ok_or_else(|| AgentProtocolError::UnknownAgent(agent_id.clone()))?;
            let changed = term != after.term || agent.desired_index > after.index;
            let timed_out = Instant::now() >= deadline;
            if changed || timed_out {
                let tasks = state
                    .desired_tasks(agent_id)
                    .filter_map(|task| super::task_spec::task_spec(&state, task))
                    .collect();
                return Ok(DesiredSet {
                    generation: Generation {
                        term,
                        index: state.applied_index,
                    },
                    tasks,
                });
            }
            // A lost leadership does not show in the state: look again at least every
            // LEADERSHIP_RECHECK (Raft's metrics change on every heartbeat, far too often to
            // wake every agent's poll for).
            let wake = deadline.min(Instant::now() + LEADERSHIP_RECHECK);
            tokio::select! {
                () = self.stopping() => {
                    return Err(WriteError::NotLeader { leader: None }.into());
                }
                _ = tokio::time::sleep_until(wake) => {}
                changed = states.changed() => {
                    if changed.is_err() {
                        return Err(WriteError::NotLeader { leader: None }.into());
                    }
                }
            }
        }
    }

    /// Stores an agent's status updates; the answer acknowledges them.
    pub async fn agent_status(&self, batch: StatusBatch) -> Result<StatusAck, AgentProtocolError> {
        self.ensure_agent_leader()?;
        if !self.state().agents.contains_key(&batch.agent_id) {
            return Err(AgentProtocolError::UnknownAgent(batch.agent_id));
        }
        self.agent_contacts.touch(&batch.agent_id);
        let applied = self
            .write(Command::StatusUpdates {
                agent_id: batch.agent_id,
                updates: batch.updates,
            })
            .await?;
        match applied {
            Applied::StatusApplied { through, .. } => Ok(StatusAck { through }),
            other => Err(AgentProtocolError::Unexpected(format!("{other:?}"))),
        }
    }

    /// Agents talk to the leader only: a follower's answer would be stale or lost.
    fn ensure_agent_leader(&self) -> Result<(), AgentProtocolError> {
        if self.is_leader() {
            Ok(())
        } else {
            Err(WriteError::NotLeader {
                leader: self.leader(),
            }
            .into())
        }
    }

    pub(super) fn current_term(&self) -> u64 {
        self.raft.metrics().borrow().current_term
    }
}

/// The leader reads the clock for the commands it writes; `apply` never does.
pub(super) fn now() -> Timestamp {
    Timestamp::from_system_time(SystemTime::now())
}

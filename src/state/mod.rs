//! The replicated cluster state and the only way to change it.
//!
//! [`Command`] is the Raft log payload: an append-only enum (variants are never removed or
//! changed in meaning, because old logs and snapshots must replay). Every value a command
//! needs that is not a pure function of the state (ids, timestamps, versions) is chosen by
//! the leader-side handler and carried in the command, so [`ClusterState::apply`] is
//! deterministic: every master applying the same log reaches the same state.
//!
//! [`ClusterState`] is cheap to clone (persistent maps), so the Raft state machine can publish
//! an immutable snapshot after every batch on a `watch` channel.
//!
//! May depend on: model, protocol (status updates are stored as agents send them).

mod command;
mod events;
mod tasks;

pub use command::{Applied, Command, Rejection};
pub use events::{events, Event};

use crate::model::{Agent, AgentId, App, AppId, Goal, Task, TaskId};
use imbl::OrdMap;
use std::sync::Arc;

/// Everything the masters agree on.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ClusterState {
    /// The Raft log index of the last command applied (0 before any).
    pub applied_index: u64,
    /// Marathon apps by id.
    pub apps: OrdMap<AppId, Arc<App>>,
    /// Registered agents by id.
    pub agents: OrdMap<AgentId, Arc<Agent>>,
    /// Tasks that have not ended (terminal tasks are expunged when their status arrives).
    pub tasks: OrdMap<TaskId, Arc<Task>>,
    /// The latest failed task of each app (Marathon's `lastTaskFailure`).
    pub last_task_failure: OrdMap<AppId, Arc<Task>>,
}

impl ClusterState {
    /// Applies the command at log `index`. Deterministic: no clock, no randomness, no I/O.
    /// A command that cannot take effect (e.g. creating an app that exists) changes nothing
    /// and says why in [`Applied::Rejected`].
    pub fn apply(&mut self, index: u64, command: Command) -> Applied {
        self.applied_index = index;
        match command {
            Command::CreateApp { app, deployment_id } => {
                if self.apps.contains_key(&app.id) {
                    return Applied::Rejected(Rejection::AppExists(app.id));
                }
                let app = Arc::new(app);
                self.apps.insert(app.id.clone(), Arc::clone(&app));
                Applied::AppCreated { app, deployment_id }
            }
            Command::UpdateApp {
                id,
                version,
                patch,
                partial,
                deployment_id,
            } => {
                let (app, created) = match self.apps.get(&id) {
                    Some(existing) => (existing.updated(version, patch, partial), false),
                    None => (App::new(id.clone(), version, patch), true),
                };
                self.apps.insert(id, Arc::new(app));
                Applied::AppUpdated {
                    created,
                    version,
                    deployment_id,
                }
            }
            Command::DeleteApp {
                id,
                version,
                deployment_id,
            } => match self.apps.remove(&id) {
                Some(_) => {
                    let tasks: Vec<TaskId> = self
                        .app_tasks(&id)
                        .filter(|task| task.goal == Goal::Running)
                        .map(|task| task.id.clone())
                        .collect();
                    self.kill_tasks(index, &tasks);
                    Applied::AppDeleted {
                        version,
                        deployment_id,
                    }
                }
                None => Applied::Rejected(Rejection::AppUnknown(id)),
            },
            Command::RegisterAgent { info, at } => self.register_agent(index, info, at),
            Command::AgentsUnreachable { agents, at } => self.agents_unreachable(&agents, at),
            Command::AgentReachable {
                agent_id,
                running,
                at,
            } => self.agent_reachable(index, &agent_id, &running, at),
            Command::LaunchTasks { tasks } => self.launch_tasks(index, tasks),
            Command::KillTasks { task_ids } => self.kill_tasks(index, &task_ids),
            Command::StatusUpdates { agent_id, updates } => {
                self.status_updates(index, &agent_id, updates)
            }
            Command::Batch(commands) => Applied::Batch(
                commands
                    .into_iter()
                    .map(|command| self.apply(index, command))
                    .collect(),
            ),
        }
    }

    /// Records that a log entry without a command (a blank or membership entry) was applied.
    pub fn skip(&mut self, index: u64) {
        self.applied_index = index;
    }
}

#[cfg(test)]
mod tests;

//! Applying agent and task commands: registration, reachability, launches, kills and status
//! updates. Deterministic like the rest of `apply`.

use super::{Applied, ClusterState, HealthChange};
use crate::model::{
    Agent, AgentId, AgentInfo, Goal, HealthResult, Reachability, Task, TaskId, TaskState, Timestamp,
};
use crate::protocol::{HealthReport, StatusUpdate};
use std::sync::Arc;

impl ClusterState {
    pub(super) fn register_agent(&mut self, index: u64, info: AgentInfo, at: Timestamp) -> Applied {
        let id = info.id.clone();
        let known_before = self.agents.contains_key(&id);
        let agent = match self.agents.get(&id) {
            Some(existing) => Agent {
                info,
                reachability: Reachability::Reachable,
                ..Agent::clone(existing)
            },
            None => Agent {
                info,
                registered_at: at,
                reachability: Reachability::Reachable,
                last_update_seq: 0,
                desired_index: index,
            },
        };
        self.agents.insert(id, Arc::new(agent));
        Applied::AgentRegistered { known_before }
    }

    /// Agents the leader stopped hearing from: their live tasks become TASK_UNREACHABLE.
    pub(super) fn agents_unreachable(&mut self, agents: &[AgentId], at: Timestamp) -> Applied {
        for id in agents {
            let Some(agent) = self.agents.get(id) else {
                continue;
            };
            if !agent.is_reachable() {
                continue;
            }
            let agent = Agent {
                reachability: Reachability::Unreachable { since: at },
                ..Agent::clone(agent)
            };
            self.agents.insert(id.clone(), Arc::new(agent));
            let lost: Vec<Arc<Task>> = self
                .tasks
                .values()
                .filter(|task| &task.agent_id == id && !task.state.is_terminal())
                .cloned()
                .collect();
            for task in lost {
                let task = Task {
                    state: TaskState::Unreachable,
                    updated_at: at,
                    message: "Agent stopped sending heartbeats".into(),
                    reason: Some("REASON_SLAVE_DISCONNECTED".into()),
                    ..Task::clone(&task)
                };
                self.tasks.insert(task.id.clone(), Arc::new(task));
            }
        }
        Applied::Nothing
    }

    /// An unreachable agent is back: tasks it still runs are running again; tasks it lost are
    /// gone.
    pub(super) fn agent_reachable(
        &mut self,
        index: u64,
        id: &AgentId,
        running: &[TaskId],
        at: Timestamp,
    ) -> Applied {
        let Some(agent) = self.agents.get(id) else {
            return Applied::Nothing;
        };
        let agent = Agent {
            reachability: Reachability::Reachable,
            desired_index: index,
            ..Agent::clone(agent)
        };
        self.agents.insert(id.clone(), Arc::new(agent));
        let returning: Vec<Arc<Task>> = self
            .tasks
            .values()
            .filter(|task| &task.agent_id == id && task.state == TaskState::Unreachable)
            .cloned()
            .collect();
        for task in returning {
            if running.contains(&task.id) {
                let task = Task {
                    state: TaskState::Running,
                    updated_at: at,
                    message: "Agent is reachable again".into(),
                    reason: None,
                    ..Task::clone(&task)
                };
                self.tasks.insert(task.id.clone(), Arc::new(task));
            } else {
                self.tasks.remove(&task.id);
            }
        }
        Applied::Nothing
    }

    pub(super) fn launch_tasks(&mut self, index: u64, tasks: Vec<Task>) -> Applied {
        let mut launched = 0;
        for task in tasks {
            let placeable = self.apps.contains_key(&task.app_id)
                && self
                    .agents
                    .get(&task.agent_id)
                    .is_some_and(|agent| agent.is_reachable())
                && !self.tasks.contains_key(&task.id);
            if placeable {
                self.touch_agent(index, &task.agent_id);
                self.tasks.insert(task.id.clone(), Arc::new(task));
                launched += 1;
            }
        }
        Applied::TasksLaunched { launched }
    }

    /// Sets the goal of these tasks to decommissioned. Tasks on unreachable agents are
    /// expunged at once (their agent kills them if it comes back, as they are no longer
    /// desired).
    pub(super) fn kill_tasks(&mut self, index: u64, ids: &[TaskId]) -> Applied {
        let mut killed = Vec::new();
        for id in ids {
            let Some(task) = self.tasks.get(id).cloned() else {
                continue;
            };
            killed.push(id.clone());
            let reachable = self
                .agents
                .get(&task.agent_id)
                .is_some_and(|agent| agent.is_reachable());
            self.touch_agent(index, &task.agent_id);
            if !reachable {
                self.tasks.remove(id);
            } else if task.goal != Goal::Decommissioned {
                let task = Task {
                    goal: Goal::Decommissioned,
                    ..Task::clone(&task)
                };
                self.tasks.insert(id.clone(), Arc::new(task));
            }
        }
        Applied::TasksKilled { task_ids: killed }
    }

    /// Applies an agent's status updates once each (by sequence number). A terminal state is
    /// final: the task is expunged and later updates for it are ignored.
    ///
    /// The agent's sequence advances only through updates that are applied, so an update
    /// for a task the agent does not run (whatever its number) cannot make later ones look
    /// old. The acknowledgement covers every update of the batch: an ignored one is done.
    pub(super) fn status_updates(
        &mut self,
        index: u64,
        agent_id: &AgentId,
        updates: Vec<StatusUpdate>,
    ) -> Applied {
        let acknowledged = updates.iter().map(|u| u.seq).max().unwrap_or(0);
        let Some(agent) = self.agents.get(agent_id).cloned() else {
            return Applied::StatusApplied {
                through: acknowledged,
                changed: Vec::new(),
                health: Vec::new(),
            };
        };
        let mut through = agent.last_update_seq;
        let mut changed = Vec::new();
        let mut health = Vec::new();
        for update in updates {
            if update.seq <= through {
                continue;
            }
            let Some(task) = self.tasks.get(&update.task_id).cloned() else {
                continue;
            };
            if task.agent_id != *agent_id || task.state.is_terminal() {
                continue;
            }
            through = update.seq;
            if let Some(report) = &update.health {
                if let Some(change) = self.apply_health(&task, report, update.timestamp) {
                    health.push(change);
                }
                continue;
            }
            let task = Task {
                state: update.state,
                started_at: task
                    .started_at
                    .or((update.state == TaskState::Running).then_some(update.timestamp)),
                updated_at: update.timestamp,
                message: update.message,
                reason: update.reason,
                ip_addresses: if update.ip_addresses.is_empty() {
                    task.ip_addresses.clone()
                } else {
                    update.ip_addresses
                },
                ..Task::clone(&task)
            };
            if task.state.is_terminal() {
                self.tasks.remove(&task.id);
                self.touch_agent(index, agent_id);
                if task.state.is_failure() {
                    self.last_task_failure
                        .insert(task.app_id.clone(), Arc::new(task.clone()));
                }
            } else {
                self.tasks.insert(task.id.clone(), Arc::new(task.clone()));
            }
            changed.push(Arc::new(task));
        }
        if through != agent.last_update_seq {
            let agent = Agent {
                last_update_seq: through,
                ..Agent::clone(&agent)
            };
            self.agents.insert(agent_id.clone(), Arc::new(agent));
        }
        Applied::StatusApplied {
            through: through.max(acknowledged),
            changed,
            health,
        }
    }

    /// Stores a health check result on its task; says what changed, for events.
    fn apply_health(
        &mut self,
        task: &Task,
        report: &HealthReport,
        at: Timestamp,
    ) -> Option<HealthChange> {
        let app = self.apps.get(&task.app_id)?;
        let check = app.spec.health_checks.get(report.index)?;
        let mut updated = Task::clone(task);
        let position = updated.health.iter().position(|r| r.index == report.index);
        let before = position.map(|i| updated.health[i].clone());
        let mut result = before.clone().unwrap_or(HealthResult {
            index: report.index,
            alive: false,
            consecutive_failures: 0,
            first_success: None,
            last_success: None,
            last_failure: None,
            last_failure_cause: None,
        });
        result.alive = report.alive;
        result.consecutive_failures = report.consecutive_failures;
        if report.alive {
            result.first_success = result.first_success.or(Some(at));
            result.last_success = Some(at);
        } else {
            result.last_failure = Some(at);
            result.last_failure_cause = report.cause.clone();
        }
        match position {
            Some(i) => updated.health[i] = result,
            None => updated.health.push(result),
        }
        let healthy_before = task.healthy();
        let updated = Arc::new(updated);
        self.tasks.insert(updated.id.clone(), Arc::clone(&updated));
        Some(HealthChange {
            alive_changed: before.is_none_or(|b| b.alive != report.alive),
            healthy_changed: healthy_before != updated.healthy(),
            failed: !report.alive,
            check: serde_json::to_value(check).unwrap_or_default(),
            at,
            task: updated,
        })
    }

    /// Records that the agent's desired set changed at `index`.
    fn touch_agent(&mut self, index: u64, id: &AgentId) {
        if let Some(agent) = self.agents.get(id) {
            if agent.desired_index != index {
                let agent = Agent {
                    desired_index: index,
                    ..Agent::clone(agent)
                };
                self.agents.insert(id.clone(), Arc::new(agent));
            }
        }
    }

    /// The tasks an agent should run: placed there, goal running, not ended.
    pub fn desired_tasks<'a>(
        &'a self,
        agent: &'a AgentId,
    ) -> impl Iterator<Item = &'a Arc<Task>> + 'a {
        self.tasks.values().filter(move |task| {
            &task.agent_id == agent && task.goal == Goal::Running && !task.state.is_terminal()
        })
    }

    /// Every task of an app.
    /// Task ids start with the app's safe path and a dot, so this is a range of the map.
    pub fn app_tasks(&self, app: &crate::model::AppId) -> impl Iterator<Item = &Arc<Task>> + '_ {
        let prefix = crate::model::safe_path(app);
        let from = TaskId(format!("{prefix}."));
        let to = TaskId(format!("{prefix}/"));
        self.tasks.range(from..to).map(|(_, task)| task)
    }
}

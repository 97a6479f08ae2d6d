//! What discovery (DNS, load balancer) sees of the cluster: the apps, agents and tasks of one
//! applied state, plus who the masters and the leader are. Masters publish one per change on
//! `GET /v1/snapshots`; an embedded DNS or LB builds them from its master directly.
//!
//! May depend on: model, state.

use super::ClusterState;
use crate::model::{Agent, AgentId, App, AppId, Goal, Task, TaskId, TaskState};
use imbl::OrdMap;
use std::sync::Arc;

/// One view of the cluster for discovery. Cheap to clone (persistent maps).
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Snapshot {
    /// The Raft log index of the state it was taken from.
    pub applied_index: u64,
    /// Marathon apps by id.
    pub apps: OrdMap<AppId, Arc<App>>,
    /// Registered agents by id.
    pub agents: OrdMap<AgentId, Arc<Agent>>,
    /// Tasks that have not ended.
    pub tasks: OrdMap<TaskId, Arc<Task>>,
    /// The leading master's `host:port`, if one is known.
    pub leader: Option<String>,
    /// Every master's `host:port`, in Raft id order.
    pub masters: Vec<String>,
}

impl Snapshot {
    /// The discovery view of `state` with the given masters.
    pub fn of(state: &ClusterState, leader: Option<String>, masters: Vec<String>) -> Self {
        Self {
            applied_index: state.applied_index,
            apps: state.apps.clone(),
            agents: state.agents.clone(),
            tasks: state.tasks.clone(),
            leader,
            masters,
        }
    }
}

/// Whether `task` (of `app`, on `agent`) takes traffic: it is TASK_RUNNING, still wanted (a
/// task whose kill is decided leaves at once, before it is signalled), on a reachable agent,
/// and, with `healthy_only`, passing every health check when its app has any. DNS records
/// and load-balancer backends both follow this rule.
pub fn serves(task: &Task, agent: &Agent, app: Option<&App>, healthy_only: bool) -> bool {
    let checked = app.is_some_and(|app| !app.spec.health_checks().is_empty());
    task.state == TaskState::Running
        && task.goal == Goal::Running
        && agent.is_reachable()
        && (!healthy_only || !checked || task.healthy() == Some(true))
}

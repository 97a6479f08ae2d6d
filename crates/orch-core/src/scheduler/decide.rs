//! The leader's decision for one app on one control pass, as data (the way Nomad's
//! reconciler returns its result buckets): from the app, its tasks, where the app stands in
//! its deployments, the agents and the time, how many instances to launch, which tasks to
//! kill and which to expunge, and why.
//!
//! The leader keeps what is memory rather than state (launch backoff, the launch queue,
//! readiness results) and turns a decision into commands; placement of the launches is
//! [`super::place`]'s.

use super::{restart_step, scale_step, select_kills, KillCandidate, RestartCounts, ScaleStep};
use crate::model::{
    Agent, AgentId, App, DeploymentStep, Goal, Task, TaskId, TaskState, Timestamp,
    UnreachableStrategy,
};
use imbl::OrdMap;
use std::sync::Arc;

/// Everything the decision for one app reads.
pub struct AppInput<'a> {
    /// The app.
    pub app: &'a App,
    /// All its tasks, in any state.
    pub tasks: &'a [&'a Task],
    /// Where it stands in its deployments.
    pub step: DeploymentStep,
    /// The cluster's agents (for the attributes that kill selection balances over).
    pub agents: &'a OrdMap<AgentId, Arc<Agent>>,
    /// The time of the pass.
    pub now: Timestamp,
    /// Whether a task passed its app's readiness checks (always true without any).
    pub ready: &'a dyn Fn(&Task) -> bool,
}

impl std::fmt::Debug for AppInput<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppInput")
            .field("app", &self.app.id)
            .field("tasks", &self.tasks.len())
            .field("step", &self.step)
            .field("now", &self.now)
            .finish_non_exhaustive()
    }
}

/// Why an app's decision is what it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// A deployment step before the app's own is still running.
    WaitingForDeployment,
    /// The app has as many current instances as it asks for.
    Converged,
    /// Fewer instances than asked for: launch the rest.
    ScaleUp,
    /// More instances than asked for: kill the surplus, in `killSelection` order.
    ScaleDown,
    /// A deployment replaces tasks of an older configuration: launch new ones and kill old
    /// ones within `minimumHealthCapacity` and `maximumOverCapacity`.
    Restart,
}

/// What the leader does about one app now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppDecision {
    /// Why.
    pub reason: Reason,
    /// New instances to place.
    pub launch: u32,
    /// Tasks to kill (surplus on scale-down, old ones during a restart), in kill order.
    pub kill: Vec<TaskId>,
    /// Tasks unreachable past `expungeAfterSeconds`: killed and forgotten.
    pub expunge: Vec<TaskId>,
    /// The agents of the app's active instances, which new ones spread away from.
    pub existing_agents: Vec<AgentId>,
}

/// The decision for one app. A pure function of its input: the same input gives the same
/// decision, and applying a decision's effects and deciding again converges on the app's
/// `instances` instances of its current configuration.
pub fn decide_app(input: &AppInput<'_>) -> AppDecision {
    let app = input.app;
    let (active, expunge) = active_tasks(app, input.tasks, input.now.as_millis());
    let mut decision = AppDecision {
        reason: Reason::Converged,
        launch: 0,
        kill: Vec::new(),
        expunge,
        existing_agents: active.iter().map(|task| task.agent_id.clone()).collect(),
    };
    if input.step == DeploymentStep::Waiting {
        decision.reason = Reason::WaitingForDeployment;
        return decision;
    }
    let instances = u32::try_from(app.spec.instances.max(0)).unwrap_or(u32::MAX);
    let rolling = input.step == DeploymentStep::Rolling;
    let config = app.version_info.last_config_change_at;
    let (old, new): (Vec<&Task>, Vec<&Task>) = active
        .iter()
        .copied()
        .partition(|task| rolling && task.version < config);
    let dying_old = if rolling {
        input
            .tasks
            .iter()
            .filter(|t| t.goal == Goal::Decommissioned && t.version < config)
            .count()
    } else {
        0
    };
    if old.is_empty() && dying_old == 0 {
        let current = count(new.len());
        if current < instances {
            decision.reason = Reason::ScaleUp;
            decision.launch = instances - current;
        } else if current > instances {
            let candidates = candidates(input.agents, &new);
            if let ScaleStep::Kill(victims) = scale_step(
                instances,
                &candidates,
                app.spec.kill_selection,
                &app.spec.constraints,
            ) {
                decision.reason = Reason::ScaleDown;
                decision.kill = victims.into_iter().map(|i| new[i].id.clone()).collect();
            }
        }
        return decision;
    }
    let counts = RestartCounts {
        old_active: count(old.len() + dying_old),
        old_killing: count(dying_old),
        old_healthy: count(old.iter().filter(|t| healthy(app, t)).count()),
        new_active: count(new.len()),
        new_healthy_ready: count(
            new.iter()
                .filter(|t| healthy(app, t) && (input.ready)(t))
                .count(),
        ),
    };
    let step = restart_step(instances, app.spec.upgrade_strategy, false, counts);
    let victims = select_kills(
        &candidates(input.agents, &old),
        step.kill as usize,
        app.spec.kill_selection,
        &app.spec.constraints,
    );
    decision.reason = Reason::Restart;
    decision.launch = step.start;
    decision.kill = victims.into_iter().map(|i| old[i].id.clone()).collect();
    decision
}

/// The app's tasks that count (goal running, not unreachable past `inactiveAfterSeconds`),
/// and those unreachable past `expungeAfterSeconds`, which are to be expunged.
fn active_tasks<'a>(app: &App, tasks: &[&'a Task], now_ms: u64) -> (Vec<&'a Task>, Vec<TaskId>) {
    let (inactive_after, expunge_after) = match app.spec.unreachable_strategy {
        UnreachableStrategy::Disabled(_) => (None, None),
        UnreachableStrategy::Enabled(strategy) => {
            let ms = |seconds: i64| Some(u64::try_from(seconds).unwrap_or(0) * 1000);
            (
                ms(strategy.inactive_after_seconds),
                ms(strategy.expunge_after_seconds),
            )
        }
    };
    let mut active = Vec::new();
    let mut expunge = Vec::new();
    for task in tasks
        .iter()
        .copied()
        .filter(|task| task.goal == Goal::Running)
    {
        if task.state == TaskState::Unreachable {
            let away = now_ms.saturating_sub(task.updated_at.as_millis());
            if expunge_after.is_some_and(|limit| away >= limit) {
                expunge.push(task.id.clone());
                continue;
            }
            if inactive_after.is_some_and(|limit| away >= limit) {
                continue;
            }
        }
        active.push(task);
    }
    (active, expunge)
}

/// Running, and healthy when the app has health checks.
fn healthy(app: &App, task: &Task) -> bool {
    task.state == TaskState::Running
        && (app.spec.health_checks.is_empty() || task.healthy() == Some(true))
}

fn candidates(agents: &OrdMap<AgentId, Arc<Agent>>, tasks: &[&Task]) -> Vec<KillCandidate> {
    tasks
        .iter()
        .map(|task| KillCandidate {
            id: task.id.clone(),
            state: task.state,
            healthy: task.healthy(),
            staged_at: task.staged_at,
            started_at: task.started_at,
            host: task.host.clone(),
            attributes: agents
                .get(&task.agent_id)
                .map(|agent| agent.info.attributes.clone())
                .unwrap_or_default(),
        })
        .collect()
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

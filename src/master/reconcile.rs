//! What the leader decides on each control pass: per app, which tasks to launch (placed by
//! the scheduler core) and which to kill, from the newest state. Scaling, rolling restarts
//! (`upgradeStrategy`), launch backoff and unreachable tasks are handled here; the
//! arithmetic is `scheduler`'s. Leader memory holds only launch backoffs and the launch
//! queue, which a new leader rebuilds, as Marathon's do.

use super::placement;
use crate::model::{
    App, AppId, Goal, KillSelection, Task, TaskId, TaskState, Timestamp, UnreachableStrategy,
};
use crate::scheduler::{
    self, restart_step, scale_step, Backoff, BackoffConfig, KillCandidate, PlacementRequest,
    RestartCounts, ScaleStep,
};
use crate::state::{ClusterState, Command};
use std::collections::{BTreeMap, HashMap};

/// Leader-side scheduling memory.
#[derive(Debug, Default)]
pub(super) struct Scheduler {
    backoffs: HashMap<AppId, Backoff>,
    /// The failed task last counted into each app's backoff.
    counted_failure: HashMap<AppId, TaskId>,
    /// Varies dynamic port choices between passes.
    seed: u64,
    /// What waits to be launched, per app (`/v2/queue`).
    pub(super) queue: BTreeMap<AppId, QueueEntry>,
}

/// An app with instances waiting to be launched.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueEntry {
    /// Instances still to launch.
    pub count: u32,
    /// Since when instances wait.
    pub since: Timestamp,
    /// Milliseconds left of the launch delay (0 = overdue: waiting for room).
    pub delay_left_ms: u64,
    /// How many agents each reason turned away in the last placement attempt.
    pub reasons: BTreeMap<String, u32>,
    /// Agents considered in the last placement attempt.
    pub agents_considered: u32,
}

/// An app's decision before placement.
struct Wanted<'a> {
    app: &'a App,
    start: u32,
    existing: Vec<crate::model::AgentId>,
}

impl Scheduler {
    /// The commands that bring every app closer to its definition.
    /// `ready` says whether a task passed its app's readiness check (true without one).
    pub(super) fn decide(
        &mut self,
        state: &ClusterState,
        now: Timestamp,
        ready: &dyn Fn(&App, &Task) -> bool,
    ) -> Vec<Command> {
        self.seed = self.seed.wrapping_add(1);
        let now_ms = now.as_millis();
        let mut kill: Vec<TaskId> = Vec::new();
        let mut wanted: Vec<Wanted> = Vec::new();
        for app in state.apps.values() {
            let tasks: Vec<&Task> = state.app_tasks(&app.id).map(AsRef::as_ref).collect();
            self.note_failure(app, state, now_ms);
            let (active, expunge) = active_tasks(app, &tasks, now_ms);
            kill.extend(expunge);
            let instances = u32::try_from(app.spec.instances.max(0)).unwrap_or(u32::MAX);
            // An app waits for the deployment step it is in; old tasks are replaced only
            // while a deployment rolls the app (a stopped deployment leaves them be).
            let mut rolling = false;
            let mut waiting = false;
            for deployment in state.deployments_of(&app.id) {
                match deployment.step_of(&app.id) {
                    Some(step) if step > deployment.current_step => waiting = true,
                    Some(_) => rolling = true,
                    None => {}
                }
            }
            if waiting {
                continue;
            }
            let config = app.version_info.last_config_change_at;
            let (old, new): (Vec<&Task>, Vec<&Task>) = active
                .iter()
                .copied()
                .partition(|task| rolling && task.version < config);
            let dying_old = if rolling {
                tasks
                    .iter()
                    .filter(|t| t.goal == Goal::Decommissioned && t.version < config)
                    .count()
            } else {
                0
            };
            let start = if old.is_empty() && dying_old == 0 {
                let current = count(new.len());
                if current < instances {
                    instances - current
                } else if current == instances {
                    0
                } else {
                    match scale_step(
                        instances,
                        &candidates(state, &new),
                        selection(app),
                        &app.spec.constraints,
                    ) {
                        ScaleStep::Kill(victims) => {
                            kill.extend(victims.into_iter().map(|i| new[i].id.clone()));
                            0
                        }
                        ScaleStep::Nothing | ScaleStep::Start(_) => 0,
                    }
                }
            } else {
                let counts = RestartCounts {
                    old_active: count(old.len() + dying_old),
                    old_killing: count(dying_old),
                    old_healthy: count(old.iter().filter(|t| healthy(app, t)).count()),
                    new_active: count(new.len()),
                    new_healthy_ready: count(
                        new.iter()
                            .filter(|t| healthy(app, t) && ready(app, t))
                            .count(),
                    ),
                };
                let strategy = scheduler::UpgradeStrategy {
                    minimum_health_capacity: app.spec.upgrade_strategy.minimum_health_capacity,
                    maximum_over_capacity: app.spec.upgrade_strategy.maximum_over_capacity,
                };
                let step = restart_step(instances, strategy, false, counts);
                let victims = scheduler::select_kills(
                    &candidates(state, &old),
                    step.kill as usize,
                    selection(app),
                    &app.spec.constraints,
                );
                kill.extend(victims.into_iter().map(|i| old[i].id.clone()));
                step.start
            };
            if start == 0 {
                self.queue.remove(&app.id);
                continue;
            }
            let backoff = self.backoff(app);
            if !backoff.may_launch(now_ms) {
                let left = backoff.time_left_ms(now_ms);
                self.queue_entry(&app.id, start, now).delay_left_ms = left;
                continue;
            }
            let existing = active.iter().map(|t| t.agent_id.clone()).collect();
            wanted.push(Wanted {
                app,
                start,
                existing,
            });
        }
        self.queue.retain(|id, _| state.apps.contains_key(id));
        self.backoffs.retain(|id, _| state.apps.contains_key(id));
        self.counted_failure
            .retain(|id, _| state.apps.contains_key(id));
        let launch = self.place(state, &wanted, now);
        let mut commands = Vec::new();
        if !kill.is_empty() {
            commands.push(Command::KillTasks { task_ids: kill });
        }
        if !launch.is_empty() {
            commands.push(Command::LaunchTasks { tasks: launch });
        }
        commands
    }

    /// Places the wanted instances; what does not fit waits in the queue with reasons.
    fn place(&mut self, state: &ClusterState, wanted: &[Wanted], now: Timestamp) -> Vec<Task> {
        if wanted.is_empty() {
            return Vec::new();
        }
        let (slots, _) = placement::agent_slots(state);
        let requests: Vec<PlacementRequest> = wanted
            .iter()
            .map(|w| placement::request(w.app, w.start, w.existing.clone()))
            .collect();
        let plan = scheduler::place(&slots, &requests, self.seed);
        let tasks: Vec<Task> = plan
            .placements
            .iter()
            .map(|p| placement::task(wanted[p.request].app, &slots[p.agent], p, now))
            .collect();
        for (i, w) in wanted.iter().enumerate() {
            match plan.unplaced.iter().find(|u| u.request == i) {
                Some(unplaced) => {
                    let agents = count(slots.len());
                    let entry = self.queue_entry(&w.app.id, unplaced.count, now);
                    entry.delay_left_ms = 0;
                    entry.reasons = unplaced.reasons.clone();
                    entry.agents_considered = agents;
                    if let Some(error) = &unplaced.error {
                        entry.reasons.insert(error.to_string(), agents);
                    }
                }
                None => {
                    self.queue.remove(&w.app.id);
                }
            }
        }
        tasks
    }

    fn queue_entry(&mut self, app: &AppId, count: u32, now: Timestamp) -> &mut QueueEntry {
        let entry = self.queue.entry(app.clone()).or_insert_with(|| QueueEntry {
            count,
            since: now,
            delay_left_ms: 0,
            reasons: BTreeMap::new(),
            agents_considered: 0,
        });
        entry.count = count;
        entry
    }

    /// The app's backoff, reset when its configuration changed.
    fn backoff(&mut self, app: &App) -> &mut Backoff {
        let config = BackoffConfig {
            backoff_ms: u64::try_from(app.spec.backoff_seconds).unwrap_or(0) * 1000,
            factor: app.spec.backoff_factor,
            max_ms: u64::try_from(app.spec.max_launch_delay_seconds).unwrap_or(0) * 1000,
        };
        let version = app.version_info.last_config_change_at;
        let backoff = self
            .backoffs
            .entry(app.id.clone())
            .or_insert_with(|| Backoff::new(version, config));
        backoff.observe_config(version, config);
        backoff
    }

    /// Resets an app's launch delay (`DELETE /v2/queue/{app}/delay`); false if it has none.
    pub(super) fn reset_delay(&mut self, app: &AppId) -> bool {
        match self.backoffs.get_mut(app) {
            Some(backoff) if backoff.delay_ms().is_some() => {
                backoff.reset();
                true
            }
            _ => self.queue.contains_key(app),
        }
    }

    /// Counts a new failure of the app's current configuration into its launch delay.
    fn note_failure(&mut self, app: &App, state: &ClusterState, now_ms: u64) {
        let Some(failed) = state.last_task_failure.get(&app.id) else {
            return;
        };
        if failed.version < app.version_info.last_config_change_at
            || self.counted_failure.get(&app.id) == Some(&failed.id)
        {
            return;
        }
        self.counted_failure
            .insert(app.id.clone(), failed.id.clone());
        let backoff = self.backoff(app);
        backoff.failure(now_ms);
        tracing::info!(app.id = %app.id, task.id = %failed.id, delay_ms = backoff.delay_ms(), "task failed: delaying launches");
    }
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

fn selection(app: &App) -> scheduler::KillSelection {
    match app.spec.kill_selection {
        KillSelection::YoungestFirst => scheduler::KillSelection::YoungestFirst,
        KillSelection::OldestFirst => scheduler::KillSelection::OldestFirst,
    }
}

fn candidates(state: &ClusterState, tasks: &[&Task]) -> Vec<KillCandidate> {
    tasks
        .iter()
        .map(|task| KillCandidate {
            id: task.id.clone(),
            state: task.state,
            healthy: task.healthy(),
            staged_at: task.staged_at,
            started_at: task.started_at,
            host: task.host.clone(),
            attributes: state
                .agents
                .get(&task.agent_id)
                .map(|agent| agent.info.attributes.clone())
                .unwrap_or_default(),
        })
        .collect()
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

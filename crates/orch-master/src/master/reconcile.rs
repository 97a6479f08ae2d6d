//! What the leader does on each control pass: per app, the pure decision of the core
//! ([`decide_app`]: launch, kill, expunge and why), then the leader's own memory on top:
//! launch backoff after failures, and the launch queue with the reasons placement gave.
//! Both are rebuilt by a new leader, as Marathon's are.

use super::placement;
use orch_core::model::{App, AppId, Task, TaskId, Timestamp};
use orch_core::scheduler::{
    self, decide_app, AppInput, Backoff, BackoffConfig, PlacementRequest, Reason,
};
use orch_core::state::{ClusterState, Command};
use std::collections::{BTreeMap, HashMap};

/// The most tasks one control pass launches, over all apps (Marathon's launch tokens). A
/// huge scale-up is written in slices, so each pass and the Raft entry it writes stay small
/// and the master keeps answering; apps are served in id order, the rest wait in the queue.
pub(super) const LAUNCH_BUDGET: u32 = 1_000;

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
    /// Instances to place in this pass (within the launch budget).
    start: u32,
    /// Instances missing in all.
    missing: u32,
    existing: Vec<orch_core::model::AgentId>,
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
        let mut budget = LAUNCH_BUDGET;
        for app in state.apps.values() {
            let tasks: Vec<&Task> = state.app_tasks(&app.id).map(AsRef::as_ref).collect();
            self.note_failure(app, state, now_ms);
            let decision = decide_app(&AppInput {
                app,
                tasks: &tasks,
                step: state.deployment_step(&app.id),
                agents: &state.agents,
                now,
                ready: &|task| ready(app, task),
            });
            kill.extend(decision.expunge);
            kill.extend(decision.kill);
            if decision.reason == Reason::WaitingForDeployment {
                continue;
            }
            if decision.launch == 0 {
                self.queue.remove(&app.id);
                continue;
            }
            let backoff = self.backoff(app);
            if !backoff.may_launch(now_ms) {
                let left = backoff.time_left_ms(now_ms);
                self.queue_entry(&app.id, decision.launch, now)
                    .delay_left_ms = left;
                continue;
            }
            if budget == 0 {
                self.queue_entry(&app.id, decision.launch, now)
                    .delay_left_ms = 0;
                continue;
            }
            let start = decision.launch.min(budget);
            budget -= start;
            wanted.push(Wanted {
                app,
                start,
                missing: decision.launch,
                existing: decision.existing_agents,
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
            let deferred = w.missing - w.start;
            match plan.unplaced.iter().find(|u| u.request == i) {
                Some(unplaced) => {
                    let agents = count(slots.len());
                    let entry = self.queue_entry(&w.app.id, unplaced.count + deferred, now);
                    entry.delay_left_ms = 0;
                    entry.reasons = unplaced.reasons.clone();
                    entry.agents_considered = agents;
                    if let Some(error) = &unplaced.error {
                        entry.reasons.insert(error.to_string(), agents);
                    }
                }
                None if deferred > 0 => {
                    self.queue_entry(&w.app.id, deferred, now).delay_left_ms = 0;
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

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

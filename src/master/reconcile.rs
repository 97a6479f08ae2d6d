//! What the leader decides on each control pass: tasks to launch (placed on agents) and tasks
//! to kill, per app, from the newest state. Leader memory holds only launch backoffs, which a
//! new leader starts afresh, as Marathon's do.

use crate::model::{App, AppId, Goal, Task, TaskId, TaskState, Timestamp};
use crate::state::{ClusterState, Command};
use std::collections::HashMap;

/// Leader-side scheduling memory.
#[derive(Debug, Default)]
pub(super) struct Scheduler {
    /// Launch backoff per app: (failures seen, the failing task last counted, not before).
    backoffs: HashMap<AppId, Backoff>,
    /// Varies port choices between passes.
    seed: u64,
}

#[derive(Debug, Clone)]
struct Backoff {
    last_failure: TaskId,
    delay_ms: u64,
    not_before: Timestamp,
}

impl Scheduler {
    /// The commands that bring every app closer to its definition.
    pub(super) fn decide(&mut self, state: &ClusterState, now: Timestamp) -> Vec<Command> {
        self.seed = self.seed.wrapping_add(1);
        let mut kill = Vec::new();
        let mut launch = Vec::new();
        let mut usage = super::placement::Usage::new(state);
        for app in state.apps.values() {
            self.note_failure(app, state, now);
            let tasks: Vec<&Task> = state.app_tasks(&app.id).map(AsRef::as_ref).collect();
            let unreachable = UnreachableStrategy::of(app);
            let mut active = Vec::new();
            for task in tasks
                .iter()
                .copied()
                .filter(|task| task.goal == Goal::Running)
            {
                if task.state == TaskState::Unreachable {
                    let away = now.as_millis().saturating_sub(task.updated_at.as_millis());
                    if unreachable
                        .expunge_after_ms
                        .is_some_and(|limit| away >= limit)
                    {
                        kill.push(task.id.clone());
                        continue;
                    }
                    if unreachable
                        .inactive_after_ms
                        .is_some_and(|limit| away >= limit)
                    {
                        continue;
                    }
                }
                active.push(task);
            }
            let instances = instances(app);
            if active.len() > instances {
                active.sort_by_key(|task| std::cmp::Reverse(task.staged_at));
                let surplus = active.len() - instances;
                kill.extend(active.iter().take(surplus).map(|task| task.id.clone()));
            } else if active.len() < instances && self.may_launch(&app.id, now) {
                let wanted = instances - active.len();
                launch.extend(usage.place(app, &active, wanted, now, self.seed));
            }
        }
        let mut commands = Vec::new();
        if !kill.is_empty() {
            commands.push(Command::KillTasks { task_ids: kill });
        }
        if !launch.is_empty() {
            commands.push(Command::LaunchTasks { tasks: launch });
        }
        commands
    }

    /// Counts a new failure of the app's tasks into its launch delay (Marathon's
    /// RateLimiter: first delay `backoffSeconds`, then × `backoffFactor`, capped).
    fn note_failure(&mut self, app: &App, state: &ClusterState, now: Timestamp) {
        let Some(failed) = state.last_task_failure.get(&app.id) else {
            return;
        };
        if failed.version < app.version_info.last_config_change_at {
            self.backoffs.remove(&app.id);
            return;
        }
        if self
            .backoffs
            .get(&app.id)
            .is_some_and(|backoff| backoff.last_failure == failed.id)
        {
            return;
        }
        let spec = &app.spec;
        let max_ms = u64::try_from(spec.max_launch_delay_seconds).unwrap_or(0) * 1000;
        let delay_ms = match self.backoffs.get(&app.id) {
            None => (u64::try_from(spec.backoff_seconds).unwrap_or(0) * 1000).min(max_ms),
            Some(previous) => ((previous.delay_ms as f64 * spec.backoff_factor) as u64).min(max_ms),
        };
        let not_before = Timestamp::from_millis(now.as_millis() + delay_ms);
        tracing::info!(app.id = %app.id, task.id = %failed.id, delay_ms, "task failed: delaying launches");
        self.backoffs.insert(
            app.id.clone(),
            Backoff {
                last_failure: failed.id.clone(),
                delay_ms,
                not_before,
            },
        );
    }

    fn may_launch(&self, app: &AppId, now: Timestamp) -> bool {
        self.backoffs
            .get(app)
            .is_none_or(|backoff| now >= backoff.not_before)
    }
}

fn instances(app: &App) -> usize {
    usize::try_from(app.spec.instances).unwrap_or(0)
}

/// Marathon's `unreachableStrategy`: `None` = never (the "disabled" form).
struct UnreachableStrategy {
    inactive_after_ms: Option<u64>,
    expunge_after_ms: Option<u64>,
}

impl UnreachableStrategy {
    fn of(app: &App) -> Self {
        match app.spec.unreachable_strategy {
            crate::model::UnreachableStrategy::Disabled(_) => Self {
                inactive_after_ms: None,
                expunge_after_ms: None,
            },
            crate::model::UnreachableStrategy::Enabled(strategy) => {
                let ms = |seconds: i64| Some(u64::try_from(seconds).unwrap_or(0) * 1000);
                Self {
                    inactive_after_ms: ms(strategy.inactive_after_seconds),
                    expunge_after_ms: ms(strategy.expunge_after_seconds),
                }
            }
        }
    }
}

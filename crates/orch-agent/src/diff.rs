//! The pure core of desired-set sync: what to start and what to kill, given the whole desired
//! set and what the agent knows of its tasks.
//!
//! Rules: a desired task the agent has never seen is started; a desired task it already knows
//! is left alone, even when it has ended (the master launches a new task id instead of
//! reusing one); a task that is not desired and still live is killed with its grace period;
//! a task already being killed is not killed again.

use orch_core::model::{TaskId, TaskState};
use orch_core::protocol::TaskSpec;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// What the agent knows of one of its tasks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActualTask {
    /// Its latest state.
    pub state: TaskState,
    /// Its kill grace period (from its spec).
    pub kill_grace: Duration,
}

/// Every task the agent knows, by id.
pub type ActualTasks = BTreeMap<TaskId, ActualTask>;

/// One step to converge on the desired set.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Launch this task.
    Start(Box<TaskSpec>),
    /// Stop this task: SIGTERM (or `docker stop`), then kill after `grace`.
    Kill {
        /// The task.
        task_id: TaskId,
        /// The SIGTERM → SIGKILL window.
        grace: Duration,
    },
}

/// The actions that bring `actual` to `desired`: starts in desired order, then kills in id
/// order. Duplicate ids in `desired` start once.
pub fn diff(desired: &[TaskSpec], actual: &ActualTasks) -> Vec<Action> {
    let mut wanted = BTreeSet::new();
    let mut actions = Vec::new();
    for spec in desired {
        if wanted.insert(&spec.task_id) && !actual.contains_key(&spec.task_id) {
            actions.push(Action::Start(Box::new(spec.clone())));
        }
    }
    for (task_id, task) in actual {
        let live = !task.state.is_terminal() && task.state != TaskState::Killing;
        if live && !wanted.contains(task_id) {
            actions.push(Action::Kill {
                task_id: task_id.clone(),
                grace: task.kill_grace,
            });
        }
    }
    actions
}

/// Ids of known tasks that have ended and are no longer desired: the agent may forget them.
pub fn forgettable(desired: &[TaskSpec], actual: &ActualTasks) -> Vec<TaskId> {
    let wanted: BTreeSet<&TaskId> = desired.iter().map(|spec| &spec.task_id).collect();
    actual
        .iter()
        .filter(|(id, task)| task.state.is_terminal() && !wanted.contains(id))
        .map(|(id, _)| id.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use orch_core::model::{AppId, Timestamp};

    fn spec(id: &str) -> TaskSpec {
        TaskSpec {
            task_id: TaskId(id.into()),
            app_id: AppId::parse("/app").expect("valid"),
            app_version: Timestamp::from_millis(0),
            cmd: Some("sleep 100".into()),
            args: vec![],
            user: None,
            unprivileged: false,
            env: Default::default(),
            labels: Default::default(),
            cpus: 0.1,
            mem: 32.0,
            disk: 0.0,
            ports: vec![],
            docker: None,
            kill_grace_ms: 3000,
            health_checks: Vec::new(),
        }
    }

    fn actual(tasks: &[(&str, TaskState)]) -> ActualTasks {
        tasks
            .iter()
            .map(|(id, state)| {
                (
                    TaskId((*id).into()),
                    ActualTask {
                        state: *state,
                        kill_grace: Duration::from_millis(500),
                    },
                )
            })
            .collect()
    }

    #[test]
    fn starts_new_tasks_and_kills_undesired_live_ones() {
        let desired = [spec("a"), spec("b")];
        let known = actual(&[("a", TaskState::Running), ("c", TaskState::Running)]);
        assert_eq!(
            diff(&desired, &known),
            vec![
                Action::Start(Box::new(spec("b"))),
                Action::Kill {
                    task_id: TaskId("c".into()),
                    grace: Duration::from_millis(500)
                }
            ]
        );
    }

    #[test]
    fn ended_tasks_are_not_restarted_and_killing_ones_not_rekilled() {
        let desired = [spec("done"), spec("failed")];
        let known = actual(&[
            ("done", TaskState::Finished),
            ("failed", TaskState::Failed),
            ("dying", TaskState::Killing),
            ("gone", TaskState::Killed),
        ]);
        assert!(diff(&desired, &known).is_empty());
        assert_eq!(forgettable(&desired, &known), vec![TaskId("gone".into())]);
    }

    #[test]
    fn the_same_set_twice_yields_nothing_the_second_time() {
        let desired = [spec("a"), spec("a")];
        let first = diff(&desired, &ActualTasks::new());
        assert_eq!(first, vec![Action::Start(Box::new(spec("a")))]);
        let after = actual(&[("a", TaskState::Starting)]);
        assert!(diff(&desired, &after).is_empty());
    }

    #[test]
    fn an_empty_set_kills_every_live_task() {
        let known = actual(&[
            ("a", TaskState::Staging),
            ("b", TaskState::Starting),
            ("c", TaskState::Running),
            ("d", TaskState::Finished),
        ]);
        let killed: Vec<String> = diff(&[], &known)
            .into_iter()
            .filter_map(|action| match action {
                Action::Kill { task_id, .. } => Some(task_id.0),
                Action::Start(_) => None,
            })
            .collect();
        assert_eq!(killed, vec!["a", "b", "c"]);
    }
}

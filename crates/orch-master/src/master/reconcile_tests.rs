//! The leader's memory around the pure decision: placement into launches, the launch queue
//! with placement's reasons, and launch backoff after a failure, on hand-built states.

use super::reconcile::Scheduler;
use orch_core::model::{App, PortRange, Resources, Task, TaskState, Timestamp};
use orch_core::state::{ClusterState, Command};
use orch_core::testing::{agent, app_at, task, AGENT0, AGENT1};
use serde_json::json;
use std::sync::Arc;

const NOW: u64 = 100_000;

/// Two reachable agents with `cpus` each and a port range.
fn state(cpus: f64, apps: Vec<App>) -> ClusterState {
    let mut state = ClusterState::default();
    for (id, host) in [(AGENT0, "a0"), (AGENT1, "a1")] {
        let mut agent = agent(id, host, &format!("{host}:5051"), true);
        agent.info.resources = Resources {
            cpus,
            mem: 4096.0,
            disk: 4096.0,
            ports: vec![PortRange {
                begin: 31000,
                end: 31999,
            }],
        };
        state.agents.insert(agent.info.id.clone(), Arc::new(agent));
    }
    for app in apps {
        state.apps.insert(app.id.clone(), Arc::new(app));
    }
    state
}

fn web(instances: u32) -> App {
    app_at(
        "/web",
        Timestamp::from_millis(1),
        json!({"cmd": "sleep 100", "instances": instances, "cpus": 1, "mem": 32,
               "backoffSeconds": 60, "backoffFactor": 2, "maxLaunchDelaySeconds": 300}),
    )
}

fn always_ready(_: &App, _: &Task) -> bool {
    true
}

fn launched(commands: &[Command]) -> usize {
    commands
        .iter()
        .map(|command| match command {
            Command::LaunchTasks { tasks } => tasks.len(),
            _ => 0,
        })
        .sum()
}

#[test]
fn missing_instances_are_placed_and_nothing_waits() {
    let state = state(4.0, vec![web(3)]);
    let mut scheduler = Scheduler::default();
    let commands = scheduler.decide(&state, Timestamp::from_millis(NOW), &always_ready);
    assert_eq!(launched(&commands), 3);
    assert!(scheduler.queue.is_empty());
}

#[test]
fn what_does_not_fit_waits_in_the_queue_with_the_reasons() {
    // Two agents of 1 cpu: two of the three instances fit.
    let state = state(1.0, vec![web(3)]);
    let mut scheduler = Scheduler::default();
    let commands = scheduler.decide(&state, Timestamp::from_millis(NOW), &always_ready);
    assert_eq!(launched(&commands), 2);
    let entry = scheduler.queue.values().next().expect("the app waits");
    assert_eq!(entry.count, 1);
    assert_eq!(entry.agents_considered, 2);
    assert_eq!(
        entry.delay_left_ms, 0,
        "overdue: it waits for room, not for a delay"
    );
    assert!(!entry.reasons.is_empty(), "placement says why: {entry:?}");
}

#[test]
fn a_failure_of_the_current_version_delays_launches_until_the_delay_is_reset() {
    let mut state = state(4.0, vec![web(1)]);
    let failed = Task {
        state: TaskState::Failed,
        ..task("/web", "crashed", AGENT0, &[])
    };
    state
        .last_task_failure
        .insert(failed.app_id.clone(), Arc::new(failed));
    let mut scheduler = Scheduler::default();
    let commands = scheduler.decide(&state, Timestamp::from_millis(NOW), &always_ready);
    assert_eq!(
        launched(&commands),
        0,
        "the first delay (60 s) holds the launch"
    );
    let entry = scheduler.queue.values().next().expect("the app waits");
    assert_eq!((entry.count, entry.delay_left_ms), (1, 60_000));

    // Still delayed 30 s later; the same failure is not counted twice.
    let later = scheduler.decide(&state, Timestamp::from_millis(NOW + 30_000), &always_ready);
    assert_eq!(launched(&later), 0);
    let entry = scheduler.queue.values().next().expect("the app waits");
    assert_eq!(entry.delay_left_ms, 30_000);

    let id = state.apps.keys().next().expect("an app").clone();
    assert!(scheduler.reset_delay(&id));
    let after_reset = scheduler.decide(&state, Timestamp::from_millis(NOW + 31_000), &always_ready);
    assert_eq!(launched(&after_reset), 1);
    assert!(scheduler.queue.is_empty());
}

#[test]
fn a_pass_launches_at_most_the_launch_budget_and_the_rest_waits_in_the_queue() {
    use super::reconcile::LAUNCH_BUDGET;
    let app = |id: &str, instances: u32| {
        app_at(
            id,
            Timestamp::from_millis(1),
            json!({"cmd": "sleep 100", "instances": instances, "cpus": 0, "mem": 0,
                   "portDefinitions": []}),
        )
    };
    let (big, other) = (app("/big", 2_500), app("/other", 10));
    let mut state = state(4.0, vec![big, other]);
    let mut scheduler = Scheduler::default();
    let commands = scheduler.decide(&state, Timestamp::from_millis(NOW), &always_ready);
    assert_eq!(launched(&commands), LAUNCH_BUDGET as usize);
    let waiting: u32 = scheduler.queue.values().map(|entry| entry.count).sum();
    assert_eq!(waiting, 2_510 - LAUNCH_BUDGET, "{:?}", scheduler.queue);

    // Pass after pass the rest is launched, budget by budget.
    let mut passes = 1;
    let mut total = launched(&commands);
    let mut applied = 1;
    let mut commands = commands;
    while total < 2_510 {
        for command in commands {
            applied += 1;
            state.apply(applied, command);
        }
        commands = scheduler.decide(&state, Timestamp::from_millis(NOW), &always_ready);
        assert!(launched(&commands) <= LAUNCH_BUDGET as usize);
        total += launched(&commands);
        passes += 1;
        assert!(passes <= 3, "2,510 instances need 3 passes");
    }
    assert!(scheduler.queue.is_empty(), "{:?}", scheduler.queue);
}

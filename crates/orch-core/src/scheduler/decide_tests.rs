//! The per-app decision: worked cases, and properties over simulated passes in which kills
//! and launches take effect the way agents report them (a killed task dies one pass later, a
//! launched one runs one pass later).

use super::*;
use crate::model::{App, DeploymentStep, Goal, Task, TaskState, Timestamp};
use crate::testing::{agents, app_at, task, AGENT0};
use imbl::OrdMap;
use proptest::prelude::*;
use serde_json::json;

const OLD: u64 = 1;
const NEW: u64 = 2;

fn agent_map() -> OrdMap<crate::model::AgentId, std::sync::Arc<crate::model::Agent>> {
    agents()
        .into_iter()
        .map(|agent| (agent.info.id.clone(), std::sync::Arc::new(agent)))
        .collect()
}

fn web(instances: u32, min_health: f64, over: f64, unreachable: serde_json::Value) -> App {
    app_at(
        "/web",
        Timestamp::from_millis(NEW),
        json!({
            "cmd": "sleep 100",
            "instances": instances,
            "upgradeStrategy": {"minimumHealthCapacity": min_health, "maximumOverCapacity": over},
            "unreachableStrategy": unreachable,
        }),
    )
}

fn instance(n: usize, version: u64, state: TaskState) -> Task {
    Task {
        version: Timestamp::from_millis(version),
        staged_at: Timestamp::from_millis(u64::try_from(n).unwrap_or(0)),
        state,
        ..task("/web", &format!("t{n}"), AGENT0, &[])
    }
}

fn decide(app: &App, tasks: &[Task], step: DeploymentStep, now_ms: u64) -> AppDecision {
    let agents = agent_map();
    let refs: Vec<&Task> = tasks.iter().collect();
    decide_app(&AppInput {
        app,
        tasks: &refs,
        step,
        agents: &agents,
        now: Timestamp::from_millis(now_ms),
        ready: &|_| true,
    })
}

fn running(tasks: &[Task], version: u64) -> usize {
    tasks
        .iter()
        .filter(|t| {
            t.goal == Goal::Running
                && t.state == TaskState::Running
                && t.version.as_millis() == version
        })
        .count()
}

#[test]
fn scale_up_and_down_from_idle() {
    let app = web(
        3,
        1.0,
        1.0,
        json!({"inactiveAfterSeconds": 0, "expungeAfterSeconds": 0}),
    );
    let one = vec![instance(0, NEW, TaskState::Running)];
    let up = decide(&app, &one, DeploymentStep::Idle, 10);
    assert_eq!(
        (up.reason, up.launch, up.kill.len()),
        (Reason::ScaleUp, 2, 0)
    );
    assert_eq!(up.existing_agents.len(), 1);

    let five: Vec<Task> = (0..5)
        .map(|n| instance(n, NEW, TaskState::Running))
        .collect();
    let down = decide(&app, &five, DeploymentStep::Idle, 10);
    assert_eq!(down.reason, Reason::ScaleDown);
    assert_eq!(down.launch, 0);
    // Youngest first: the two staged last.
    assert_eq!(down.kill, vec![five[4].id.clone(), five[3].id.clone()]);

    let three = &five[..3];
    let stay = decide(&app, three, DeploymentStep::Idle, 10);
    assert_eq!(
        (stay.reason, stay.launch, stay.kill.len()),
        (Reason::Converged, 0, 0)
    );
}

#[test]
fn old_tasks_stay_unless_a_deployment_rolls_the_app() {
    let app = web(
        2,
        1.0,
        0.0,
        json!({"inactiveAfterSeconds": 0, "expungeAfterSeconds": 0}),
    );
    let old: Vec<Task> = (0..2)
        .map(|n| instance(n, OLD, TaskState::Running))
        .collect();
    let idle = decide(&app, &old, DeploymentStep::Idle, 10);
    assert_eq!(idle.reason, Reason::Converged);
    let rolling = decide(&app, &old, DeploymentStep::Rolling, 10);
    // minimumHealthCapacity 1, maximumOverCapacity 0: one over capacity, nothing killed.
    assert_eq!(
        (rolling.reason, rolling.launch, rolling.kill.len()),
        (Reason::Restart, 1, 0)
    );
}

#[test]
fn a_waiting_app_does_nothing_but_expunge() {
    let app = web(
        3,
        1.0,
        1.0,
        json!({"inactiveAfterSeconds": 10, "expungeAfterSeconds": 20}),
    );
    let mut lost = instance(0, NEW, TaskState::Unreachable);
    lost.updated_at = Timestamp::from_millis(1_000);
    let tasks = vec![lost.clone(), instance(1, OLD, TaskState::Running)];
    let waiting = decide(&app, &tasks, DeploymentStep::Waiting, 30_000);
    assert_eq!(waiting.reason, Reason::WaitingForDeployment);
    assert_eq!((waiting.launch, waiting.kill.len()), (0, 0));
    assert_eq!(waiting.expunge, vec![lost.id.clone()]);
}

#[test]
fn unreachable_tasks_count_until_inactive_and_go_when_expunged() {
    let app = web(
        2,
        1.0,
        1.0,
        json!({"inactiveAfterSeconds": 10, "expungeAfterSeconds": 20}),
    );
    let mut lost = instance(0, NEW, TaskState::Unreachable);
    lost.updated_at = Timestamp::from_millis(1_000);
    let tasks = vec![lost.clone(), instance(1, NEW, TaskState::Running)];
    let still = decide(&app, &tasks, DeploymentStep::Idle, 5_000);
    assert_eq!((still.reason, still.launch), (Reason::Converged, 0));
    let inactive = decide(&app, &tasks, DeploymentStep::Idle, 12_000);
    assert_eq!((inactive.reason, inactive.launch), (Reason::ScaleUp, 1));
    assert!(inactive.expunge.is_empty());
    let gone = decide(&app, &tasks, DeploymentStep::Idle, 21_000);
    assert_eq!(gone.expunge, vec![lost.id]);
    assert_eq!(gone.launch, 1);
}

/// One pass's effects: tasks told to die die a pass later (they stay active meanwhile, as
/// a kill takes time), launched tasks are staged now and run a pass later.
fn apply(tasks: &mut Vec<Task>, decision: &AppDecision, next: &mut usize) {
    tasks.retain(|t| t.goal == Goal::Running);
    for t in tasks.iter_mut() {
        if t.state == TaskState::Staging {
            t.state = TaskState::Running;
        }
        if decision.kill.contains(&t.id) || decision.expunge.contains(&t.id) {
            t.goal = Goal::Decommissioned;
        }
    }
    for _ in 0..decision.launch {
        tasks.push(instance(*next, NEW, TaskState::Staging));
        *next += 1;
    }
}

fn strategy_values() -> impl Strategy<Value = f64> {
    prop::sample::select(vec![0.0, 0.25, 0.5, 0.6, 0.75, 1.0])
}

proptest! {
    /// A rolling restart never drops below `minimumHealthCapacity` healthy instances (or
    /// below what was healthy when fewer were), never runs more than `maximumOverCapacity`
    /// allows (Marathon's +1 when both bounds meet), and ends with exactly `instances` tasks
    /// of the new configuration.
    #[test]
    fn rolling_restarts_keep_the_bounds_and_converge(
        instances in 0u32..7,
        old in 0usize..9,
        min_health in strategy_values(),
        over in strategy_values(),
    ) {
        let app = web(instances, min_health, over, json!({"inactiveAfterSeconds": 0, "expungeAfterSeconds": 0}));
        let (min_healthy, max_capacity) = app.spec.upgrade_strategy.bounds(instances);
        let allowed = if min_healthy == max_capacity { max_capacity + 1 } else { max_capacity };
        let mut tasks: Vec<Task> = (0..old).map(|n| instance(n, OLD, TaskState::Running)).collect();
        let mut next = old;
        let mut converged = false;
        for _ in 0..60 {
            let decision = decide(&app, &tasks, DeploymentStep::Rolling, 10);
            let healthy_before = running(&tasks, OLD) + running(&tasks, NEW);
            let killed: usize = tasks
                .iter()
                .filter(|t| t.goal == Goal::Running && t.state == TaskState::Running && decision.kill.contains(&t.id))
                .count();
            let healthy_after = healthy_before - killed;
            prop_assert!(
                healthy_after >= healthy_before.min(min_healthy as usize),
                "healthy {healthy_before} -> {healthy_after}, minimum {min_healthy}: {decision:?}"
            );
            let occupying = tasks.len() + decision.launch as usize;
            prop_assert!(
                occupying <= (allowed as usize).max(tasks.len()),
                "{occupying} tasks with {allowed} allowed: {decision:?}"
            );
            if decision.reason == Reason::Converged {
                converged = true;
                break;
            }
            apply(&mut tasks, &decision, &mut next);
        }
        prop_assert!(converged, "no convergence: {tasks:?}");
        // Converged: `instances` wanted tasks, all of the new configuration (the last ones
        // launched may still be starting), and no old one left, not even a dying one.
        let wanted: Vec<&Task> = tasks.iter().filter(|t| t.goal == Goal::Running).collect();
        prop_assert_eq!(wanted.len(), instances as usize);
        prop_assert!(wanted.iter().all(|t| t.version.as_millis() == NEW));
        prop_assert!(tasks.iter().all(|t| t.version.as_millis() == NEW));
    }

    /// Scaling from any count reaches the target in one pass's worth of launches or kills,
    /// and touches nothing when the count is right.
    #[test]
    fn scaling_converges_in_one_decision(instances in 0u32..10, current in 0usize..12) {
        let app = web(instances, 1.0, 1.0, json!({"inactiveAfterSeconds": 0, "expungeAfterSeconds": 0}));
        let mut tasks: Vec<Task> = (0..current).map(|n| instance(n, NEW, TaskState::Running)).collect();
        let mut next = current;
        let decision = decide(&app, &tasks, DeploymentStep::Idle, 10);
        prop_assert!(decision.launch == 0 || decision.kill.is_empty());
        apply(&mut tasks, &decision, &mut next);
        let second = decide(&app, &tasks, DeploymentStep::Idle, 10);
        apply(&mut tasks, &second, &mut next);
        prop_assert_eq!(running(&tasks, NEW), instances as usize);
        let after = decide(&app, &tasks, DeploymentStep::Idle, 10);
        prop_assert_eq!(after.reason, Reason::Converged);
    }
}

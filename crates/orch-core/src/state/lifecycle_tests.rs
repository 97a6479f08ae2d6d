//! Deployments, agents, tasks and health through `apply`: locks, plan order, steps,
//! rollback, status updates applied once, unreachable agents, health results.

use super::*;
use crate::model::{AgentInfo, Goal, Resources, TaskState};
use crate::protocol::{HealthReport, StatusUpdate};
use serde_json::{json, Map, Value};

fn object(value: Value) -> Map<String, Value> {
    value.as_object().cloned().unwrap_or_default()
}

fn id(text: &str) -> AppId {
    AppId::parse(text).expect("valid id")
}

fn put(app: &str, millis: u64, patch: Value, force: bool) -> Command {
    Command::UpdateApp {
        id: id(app),
        version: Timestamp::from_millis(millis),
        patch: object(patch),
        partial: true,
        deployment_id: DeploymentId(format!("d{millis}")),
        force,
    }
}

fn agent(name: &str) -> AgentInfo {
    AgentInfo {
        id: AgentId(name.into()),
        hostname: name.into(),
        address: format!("{name}:5051"),
        resources: Resources::default(),
        attributes: Default::default(),
        role: "*".into(),
        containerizers: vec!["mesos".into()],
    }
}

fn task(app: &str, n: u32, agent: &str, version: u64) -> Task {
    Task {
        id: TaskId::new(&id(app), &format!("u{n}"), 1),
        app_id: id(app),
        agent_id: AgentId(agent.into()),
        host: agent.into(),
        ports: vec![],
        version: Timestamp::from_millis(version),
        state: TaskState::Staging,
        goal: Goal::Running,
        staged_at: Timestamp::from_millis(version),
        started_at: None,
        updated_at: Timestamp::from_millis(version),
        message: String::new(),
        reason: None,
        ip_addresses: vec![],
        health: vec![],
    }
}

fn update(seq: u64, task: &Task, state: TaskState, health: Option<HealthReport>) -> StatusUpdate {
    StatusUpdate {
        seq,
        task_id: task.id.clone(),
        state,
        message: format!("{state}"),
        reason: None,
        timestamp: Timestamp::from_millis(1000 + seq),
        ip_addresses: vec![],
        health,
    }
}

fn statuses(agent: &str, updates: Vec<StatusUpdate>) -> Command {
    Command::StatusUpdates {
        agent_id: AgentId(agent.into()),
        updates,
    }
}

#[test]
fn a_running_deployment_locks_its_app_unless_forced() {
    let mut state = ClusterState::default();
    let created = state.apply(1, put("/web", 1, json!({"cmd": "sleep 1"}), false));
    assert!(
        matches!(created, Applied::AppUpdated { created: true, .. }),
        "{created:?}"
    );
    assert_eq!(state.deployments.len(), 1);
    let locked = state.apply(2, put("/web", 2, json!({"instances": 3}), false));
    assert_eq!(
        locked,
        Applied::Rejected(Rejection::AppLocked(vec![DeploymentId("d1".into())]))
    );
    assert_eq!(state.apps[&id("/web")].spec.instances, 1);
    let forced = state.apply(3, put("/web", 3, json!({"instances": 3}), true));
    let mut events = Vec::new();
    crate::state::events(&forced, &mut events);
    let kinds: Vec<&str> = events.iter().map(|e| e.event_type).collect();
    assert_eq!(
        kinds,
        vec![
            "deployment_step_failure",
            "deployment_failed",
            "deployment_info"
        ]
    );
    let Applied::AppUpdated { change, .. } = forced else {
        panic!("{forced:?}")
    };
    assert_eq!(change.superseded.len(), 1);
    assert_eq!(state.deployments.len(), 1);
    assert!(state.deployments.contains_key(&DeploymentId("d3".into())));
}

#[test]
fn plans_start_dependencies_first_and_finish_step_by_step() {
    let mut state = ClusterState::default();
    state.apply(1, put("/db", 1, json!({"cmd": "sleep 1"}), true));
    state.apply(
        2,
        put(
            "/web",
            2,
            json!({"cmd": "sleep 1", "dependencies": ["/db"]}),
            true,
        ),
    );
    let deployment = state.deployments[&DeploymentId("d2".into())].clone();
    assert_eq!(deployment.steps.len(), 1, "only /web changed in d2");
    // One change creating both: db first, then web.
    let mut fresh = ClusterState::default();
    let changes = vec![
        (
            id("/web"),
            App::from_json(
                id("/web"),
                Timestamp::from_millis(5),
                &object(json!({"cmd": "sleep 1", "dependencies": ["/db"]})),
            )
            .ok(),
        ),
        (
            id("/db"),
            App::from_json(
                id("/db"),
                Timestamp::from_millis(5),
                &object(json!({"cmd": "sleep 1"})),
            )
            .ok(),
        ),
    ];
    let change = fresh
        .change_apps(
            1,
            changes,
            Timestamp::from_millis(5),
            DeploymentId("g".into()),
            false,
        )
        .expect("applies");
    let plan = change.started.expect("a deployment");
    let order: Vec<Vec<String>> = plan
        .steps
        .iter()
        .map(|step| step.iter().map(|a| a.app.to_string()).collect())
        .collect();
    assert_eq!(
        order,
        vec![vec!["/db".to_string()], vec!["/web".to_string()]]
    );
    // A step is done only when it took effect; then the next one starts.
    let step = fresh.apply(
        2,
        Command::DeploymentStepDone {
            id: plan.id.clone(),
            step: 0,
            at: Timestamp::from_millis(6),
        },
    );
    assert!(
        matches!(
            step,
            Applied::DeploymentStepDone {
                finished: false,
                ..
            }
        ),
        "{step:?}"
    );
    assert_eq!(fresh.deployments[&plan.id].current_step, 1);
    // A repeated report of the same step changes nothing.
    assert_eq!(
        fresh.apply(
            3,
            Command::DeploymentStepDone {
                id: plan.id.clone(),
                step: 0,
                at: Timestamp::from_millis(7)
            }
        ),
        Applied::Nothing
    );
    let last = fresh.apply(
        4,
        Command::DeploymentStepDone {
            id: plan.id.clone(),
            step: 1,
            at: Timestamp::from_millis(8),
        },
    );
    assert!(
        matches!(last, Applied::DeploymentStepDone { finished: true, .. }),
        "{last:?}"
    );
    assert!(fresh.deployments.is_empty());
}

#[test]
fn rollback_restores_the_previous_definition_in_a_new_deployment() {
    let mut state = ClusterState::default();
    state.apply(
        1,
        put("/web", 1, json!({"cmd": "sleep 1", "instances": 2}), true),
    );
    state.apply(
        2,
        Command::DeploymentStepDone {
            id: DeploymentId("d1".into()),
            step: 0,
            at: Timestamp::from_millis(2),
        },
    );
    assert!(state.deployments.is_empty());
    state.apply(3, put("/web", 3, json!({"cmd": "sleep 2"}), false));
    let rolled = state.apply(
        4,
        Command::CancelDeployment {
            id: DeploymentId("d3".into()),
            revert: Some((DeploymentId("r".into()), Timestamp::from_millis(4))),
        },
    );
    let Applied::DeploymentCanceled { change, .. } = rolled else {
        panic!("{rolled:?}")
    };
    assert!(change.started.is_some());
    let app = &state.apps[&id("/web")];
    assert_eq!(app.spec.cmd.as_deref(), Some("sleep 1"));
    assert_eq!(
        app.version_info.last_config_change_at,
        Timestamp::from_millis(4)
    );
    assert!(state.deployments.contains_key(&DeploymentId("r".into())));
    // A stop (force) cancels without reverting; an unknown id is rejected.
    state.apply(
        5,
        Command::CancelDeployment {
            id: DeploymentId("r".into()),
            revert: None,
        },
    );
    assert!(state.deployments.is_empty());
    assert_eq!(
        state.apply(
            6,
            Command::CancelDeployment {
                id: DeploymentId("r".into()),
                revert: None
            }
        ),
        Applied::Rejected(Rejection::DeploymentUnknown(DeploymentId("r".into())))
    );
}

#[test]
fn status_updates_apply_once_and_terminal_states_are_final() {
    let mut state = ClusterState::default();
    state.apply(1, put("/web", 1, json!({"cmd": "sleep 1"}), true));
    state.apply(
        2,
        Command::RegisterAgent {
            info: agent("a1"),
            at: Timestamp::from_millis(2),
        },
    );
    let t = task("/web", 1, "a1", 1);
    state.apply(
        3,
        Command::LaunchTasks {
            tasks: vec![t.clone()],
        },
    );
    let running = update(1, &t, TaskState::Running, None);
    let failed = update(2, &t, TaskState::Failed, None);
    let first = state.apply(4, statuses("a1", vec![running.clone(), failed.clone()]));
    assert!(
        matches!(first, Applied::StatusApplied { through: 2, .. }),
        "{first:?}"
    );
    assert!(state.tasks.is_empty(), "a terminal task is expunged");
    assert_eq!(
        state.last_task_failure[&id("/web")].state,
        TaskState::Failed
    );
    // The same updates again (a retry after a lost ack) change nothing.
    let before = state.clone();
    let again = state.apply(5, statuses("a1", vec![running, failed]));
    let Applied::StatusApplied {
        through, changed, ..
    } = again
    else {
        panic!()
    };
    assert_eq!((through, changed.len()), (2, 0));
    assert_eq!(state.tasks, before.tasks);
    assert_eq!(state.last_task_failure, before.last_task_failure);
}

#[test]
fn an_update_for_an_unknown_task_does_not_advance_the_agents_sequence() {
    let mut state = ClusterState::default();
    state.apply(1, put("/web", 1, json!({"cmd": "sleep 1"}), true));
    let registered = Command::RegisterAgent {
        info: agent("a1"),
        at: Timestamp::from_millis(2),
    };
    state.apply(2, registered);
    let t = task("/web", 1, "a1", 1);
    state.apply(
        3,
        Command::LaunchTasks {
            tasks: vec![t.clone()],
        },
    );
    let stranger = task("/web", 9, "a1", 1);
    let poison = StatusUpdate {
        seq: u64::MAX,
        ..update(1, &stranger, TaskState::Running, None)
    };
    let first = state.apply(4, statuses("a1", vec![poison]));
    assert!(
        matches!(
            first,
            Applied::StatusApplied {
                through: u64::MAX,
                ..
            }
        ),
        "the ignored update is acknowledged: {first:?}"
    );
    let running = state.apply(
        5,
        statuses("a1", vec![update(1, &t, TaskState::Running, None)]),
    );
    let Applied::StatusApplied { changed, .. } = running else {
        panic!("{running:?}")
    };
    assert_eq!(changed.len(), 1, "a later update still applies");
    assert_eq!(state.tasks[&t.id].state, TaskState::Running);
    assert_eq!(state.agents[&AgentId("a1".into())].last_update_seq, 1);
}

#[test]
fn a_compare_and_set_applies_only_if_no_app_or_group_changed_since_the_read() {
    let mut state = ClusterState::default();
    state.apply(1, put("/web", 1, json!({"cmd": "sleep 1"}), true));
    let read = state.definitions_index;
    assert_eq!(read, 1);
    // A command that changes no definition leaves the index alone.
    let registered = Command::RegisterAgent {
        info: agent("a1"),
        at: Timestamp::from_millis(2),
    };
    state.apply(2, registered);
    assert_eq!(state.definitions_index, read);
    let guarded = |index, app: &str, millis| Command::IfDefinitionsAt {
        index,
        command: Box::new(put(app, millis, json!({"cmd": "sleep 2"}), true)),
    };
    let applied = state.apply(3, guarded(read, "/a", 3));
    assert!(matches!(applied, Applied::AppUpdated { .. }), "{applied:?}");
    assert_eq!(state.definitions_index, 3);
    // Planned from the state before /a was written: refused, and nothing changes.
    let before = state.clone();
    let stale = state.apply(4, guarded(read, "/b", 4));
    assert_eq!(
        stale,
        Applied::Rejected(Rejection::DefinitionsChanged {
            expected: 1,
            actual: 3
        })
    );
    assert_eq!(state.apps, before.apps);
    assert_eq!(state.definitions_index, 3);
}

#[test]
fn unreachable_agents_lose_their_tasks_until_they_return() {
    let mut state = ClusterState::default();
    state.apply(
        1,
        put("/web", 1, json!({"cmd": "sleep 1", "instances": 2}), true),
    );
    state.apply(
        2,
        Command::RegisterAgent {
            info: agent("a1"),
            at: Timestamp::from_millis(2),
        },
    );
    let (t1, t2) = (task("/web", 1, "a1", 1), task("/web", 2, "a1", 1));
    state.apply(
        3,
        Command::LaunchTasks {
            tasks: vec![t1.clone(), t2.clone()],
        },
    );
    state.apply(
        4,
        Command::AgentsUnreachable {
            agents: vec![AgentId("a1".into())],
            at: Timestamp::from_millis(4),
        },
    );
    assert!(state
        .tasks
        .values()
        .all(|t| t.state == TaskState::Unreachable));
    // The agent comes back running only t1: t1 runs again, t2 is gone.
    state.apply(
        5,
        Command::AgentReachable {
            agent_id: AgentId("a1".into()),
            running: vec![t1.id.clone()],
            at: Timestamp::from_millis(5),
        },
    );
    assert_eq!(state.tasks[&t1.id].state, TaskState::Running);
    assert!(!state.tasks.contains_key(&t2.id));
    assert!(state.agents[&AgentId("a1".into())].is_reachable());
}

#[test]
fn health_reports_are_stored_without_changing_the_state() {
    let mut state = ClusterState::default();
    let checks = json!([{"protocol": "TCP", "portIndex": 0}]);
    state.apply(
        1,
        put(
            "/web",
            1,
            json!({"cmd": "sleep 1", "healthChecks": checks}),
            true,
        ),
    );
    state.apply(
        2,
        Command::RegisterAgent {
            info: agent("a1"),
            at: Timestamp::from_millis(2),
        },
    );
    let t = task("/web", 1, "a1", 1);
    state.apply(
        3,
        Command::LaunchTasks {
            tasks: vec![t.clone()],
        },
    );
    state.apply(
        4,
        statuses("a1", vec![update(1, &t, TaskState::Running, None)]),
    );
    assert_eq!(state.tasks[&t.id].healthy(), None);
    let alive = HealthReport {
        index: 0,
        alive: true,
        consecutive_failures: 0,
        cause: None,
    };
    let applied = state.apply(
        5,
        statuses("a1", vec![update(2, &t, TaskState::Running, Some(alive))]),
    );
    let Applied::StatusApplied {
        health, changed, ..
    } = applied
    else {
        panic!()
    };
    assert!(changed.is_empty());
    assert!(health[0].alive_changed && health[0].healthy_changed && !health[0].failed);
    assert_eq!(state.tasks[&t.id].healthy(), Some(true));
    let dead = HealthReport {
        index: 0,
        alive: false,
        consecutive_failures: 1,
        cause: Some("connection refused".into()),
    };
    state.apply(
        6,
        statuses("a1", vec![update(3, &t, TaskState::Running, Some(dead))]),
    );
    let stored = &state.tasks[&t.id];
    assert_eq!(stored.healthy(), Some(false));
    assert_eq!(stored.state, TaskState::Running);
    assert_eq!(
        stored.health[0].last_failure_cause.as_deref(),
        Some("connection refused")
    );
    assert!(stored.health[0].first_success.is_some());
    let mut events = Vec::new();
    crate::state::events(
        &state.apply(
            7,
            statuses(
                "a1",
                vec![update(
                    4,
                    &t,
                    TaskState::Running,
                    Some(HealthReport {
                        index: 0,
                        alive: true,
                        consecutive_failures: 0,
                        cause: None,
                    }),
                )],
            ),
        ),
        &mut events,
    );
    let kinds: Vec<&str> = events.iter().map(|e| e.event_type).collect();
    assert_eq!(
        kinds,
        vec![
            "health_status_changed_event",
            "instance_health_changed_event"
        ]
    );
}

#[test]
fn deleting_an_app_kills_its_tasks_and_the_stop_step_waits_for_them() {
    let mut state = ClusterState::default();
    state.apply(1, put("/web", 1, json!({"cmd": "sleep 1"}), true));
    state.apply(
        2,
        Command::RegisterAgent {
            info: agent("a1"),
            at: Timestamp::from_millis(2),
        },
    );
    let t = task("/web", 1, "a1", 1);
    state.apply(
        3,
        Command::LaunchTasks {
            tasks: vec![t.clone()],
        },
    );
    state.apply(
        4,
        Command::DeleteApp {
            id: id("/web"),
            version: Timestamp::from_millis(4),
            deployment_id: DeploymentId("del".into()),
            force: true,
        },
    );
    assert_eq!(state.tasks[&t.id].goal, Goal::Decommissioned);
    assert_eq!(state.desired_tasks(&AgentId("a1".into())).count(), 0);
    let stop = state.deployments[&DeploymentId("del".into())].current_actions()[0].clone();
    assert!(!state.action_done(&stop));
    state.apply(
        5,
        statuses("a1", vec![update(1, &t, TaskState::Killed, None)]),
    );
    assert!(state.action_done(&stop));
}

#[test]
fn a_change_with_nothing_to_wait_for_finishes_at_once() {
    let mut state = ClusterState::default();
    let applied = state.apply(
        1,
        put("/idle", 1, json!({"cmd": "sleep 1", "instances": 0}), false),
    );
    assert!(state.deployments.is_empty(), "{:?}", state.deployments);
    let mut events = Vec::new();
    crate::state::events(&applied, &mut events);
    let kinds: Vec<&str> = events.iter().map(|e| e.event_type).collect();
    assert_eq!(kinds, vec!["deployment_info", "deployment_success"]);
    // A second change is not locked out.
    let again = state.apply(2, put("/idle", 2, json!({"cmd": "sleep 2"}), false));
    assert!(matches!(again, Applied::AppUpdated { .. }), "{again:?}");
}

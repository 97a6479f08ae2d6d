//! Shared test fixtures (the `testing` feature): hand-built agents, apps, tasks, health
//! results and snapshots, for the tests of this crate and of the crates above it. Nothing
//! here is used outside tests.

use crate::model::{
    Agent, AgentId, AgentInfo, App, AppId, Attributes, Goal, HealthResult, Reachability, Resources,
    Task, TaskId, TaskState, Timestamp,
};
use crate::state::Snapshot;
use serde_json::Value as Json;
use std::sync::Arc;

/// The first standard agent's id.
pub const AGENT0: &str = "0a1b2c3d-1111-2222-3333-444455556666-S0";
/// The second standard agent's id.
pub const AGENT1: &str = "0a1b2c3d-1111-2222-3333-444455556666-S1";
/// The third standard agent's id (unreachable in [`snapshot`]).
pub const AGENT2: &str = "0a1b2c3d-1111-2222-3333-444455556666-S2";

/// An agent with no resources or attributes, registered at 1 ms, unreachable since 2 ms
/// unless `reachable`.
pub fn agent(id: &str, hostname: &str, address: &str, reachable: bool) -> Agent {
    Agent {
        info: AgentInfo {
            id: AgentId(id.into()),
            hostname: hostname.into(),
            address: address.into(),
            resources: Resources::default(),
            attributes: Attributes::new(),
            role: "*".into(),
            containerizers: vec!["mock".into()],
        },
        registered_at: Timestamp::from_millis(1),
        reachability: if reachable {
            Reachability::Reachable
        } else {
            Reachability::Unreachable {
                since: Timestamp::from_millis(2),
            }
        },
        last_update_seq: 0,
        desired_index: 0,
    }
}

/// An app from its Marathon definition, versioned at 1 ms. Panics on an invalid one.
pub fn app(id: &str, definition: Json) -> App {
    app_at(id, Timestamp::from_millis(1), definition)
}

/// An app from its Marathon definition, versioned at `version`. Panics on an invalid one.
pub fn app_at(id: &str, version: Timestamp, definition: Json) -> App {
    let definition = definition.as_object().cloned().unwrap_or_default();
    App::from_json(
        AppId::parse(id).expect("valid app id"),
        version,
        &definition,
    )
    .expect("valid app")
}

/// A running task of `app` (version 1 ms) on `agent`, with these host ports.
pub fn task(app: &str, instance: &str, agent: &str, ports: &[u16]) -> Task {
    let app_id = AppId::parse(app).expect("valid app id");
    Task {
        id: TaskId::new(&app_id, instance, 1),
        app_id,
        agent_id: AgentId(agent.into()),
        host: "ignored".into(),
        ports: ports.to_vec(),
        version: Timestamp::from_millis(1),
        state: TaskState::Running,
        goal: Goal::Running,
        staged_at: Timestamp::from_millis(1),
        started_at: None,
        updated_at: Timestamp::from_millis(1),
        message: String::new(),
        reason: None,
        ip_addresses: Vec::new(),
        health: Vec::new(),
    }
}

/// One health check result, alive or not.
pub fn health(alive: bool) -> Vec<HealthResult> {
    vec![HealthResult {
        index: 0,
        alive,
        consecutive_failures: u32::from(!alive),
        first_success: None,
        last_success: None,
        last_failure: None,
        last_failure_cause: None,
    }]
}

/// The three standard agents: two reachable, the third not. The second is known by name in
/// its address, so its hostname gives the IP.
pub fn agents() -> [Agent; 3] {
    [
        agent(AGENT0, "agent0.example", "10.0.0.10:5051", true),
        agent(AGENT1, "10.0.0.11", "agent1.example:5052", true),
        agent(AGENT2, "agent2", "10.0.0.12:5051", false),
    ]
}

/// A snapshot (applied index 42, no leader or masters) of these agents, apps and tasks.
pub fn snapshot_of(
    agents: impl IntoIterator<Item = Agent>,
    apps: impl IntoIterator<Item = App>,
    tasks: impl IntoIterator<Item = Task>,
) -> Snapshot {
    Snapshot {
        applied_index: 42,
        apps: apps
            .into_iter()
            .map(|app| (app.id.clone(), Arc::new(app)))
            .collect(),
        agents: agents
            .into_iter()
            .map(|agent| (agent.info.id.clone(), Arc::new(agent)))
            .collect(),
        tasks: tasks
            .into_iter()
            .map(|task| (task.id.clone(), Arc::new(task)))
            .collect(),
        leader: None,
        masters: Vec::new(),
    }
}

/// A snapshot of the three standard [`agents`] with these apps and tasks.
pub fn snapshot(apps: Vec<App>, tasks: Vec<Task>) -> Snapshot {
    snapshot_of(agents(), apps, tasks)
}

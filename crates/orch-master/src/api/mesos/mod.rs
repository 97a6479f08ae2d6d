//! Mesos-compatible read endpoints that tools use: `/master/slaves` and the subset of
//! `/master/state` that dashboards and CLIs read (leader, slaves, a "marathon" framework with
//! its tasks and their statuses).

use crate::api::ApiError;
use crate::master::Master;
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use orch_core::model::{format_ranges, Agent, AgentId, Resources, Task};
use orch_core::state::ClusterState;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;

/// The framework id under which Marathon's tasks appear.
pub(crate) const FRAMEWORK_ID: &str = "orch-marathon-0000";

pub(super) fn routes() -> Router<Arc<Master>> {
    Router::new()
        .route("/master/slaves", get(slaves))
        .route("/master/state", get(state))
        .route("/master/state.json", get(state))
}

/// What an agent's tasks use, and how many tasks it has.
#[derive(Debug, Default, Clone)]
pub(crate) struct AgentUsage {
    pub(crate) used: Resources,
    pub(crate) tasks: usize,
}

/// Usage per agent: the resources of every task placed on it that has not ended.
pub(crate) fn usage(state: &ClusterState) -> HashMap<AgentId, AgentUsage> {
    let mut usage: HashMap<AgentId, AgentUsage> = HashMap::new();
    for task in state.tasks.values() {
        let entry = usage.entry(task.agent_id.clone()).or_default();
        entry.tasks += 1;
        let (cpus, mem, disk) = task_resources(state, task);
        entry.used.cpus += cpus;
        entry.used.mem += mem;
        entry.used.disk += disk;
        entry
            .used
            .ports
            .extend(task.ports.iter().map(|port| orch_core::model::PortRange {
                begin: *port,
                end: *port,
            }));
    }
    usage
}

fn task_resources(state: &ClusterState, task: &Task) -> (f64, f64, f64) {
    let Some(app) = state.apps.get(&task.app_id) else {
        return (0.0, 0.0, 0.0);
    };
    (app.spec.cpus, app.spec.mem, app.spec.disk)
}

/// Mesos renders resources flat: numbers for scalars, `"[b-e,...]"` for ranges.
pub(crate) fn resources_json(resources: &Resources) -> Value {
    let mut ports = resources.ports.clone();
    ports.sort();
    json!({
        "cpus": resources.cpus,
        "gpus": 0,
        "mem": resources.mem,
        "disk": resources.disk,
        "ports": format_ranges(&ports),
    })
}

fn slave_json(agent: &Agent, usage: Option<&AgentUsage>) -> Value {
    let used = usage.map(|u| u.used.clone()).unwrap_or_default();
    let info = &agent.info;
    let (ip, port) = info
        .address
        .rsplit_once(':')
        .unwrap_or((&info.address, "5051"));
    let registered = agent.registered_at.as_millis() as f64 / 1000.0;
    json!({
        "id": info.id,
        "hostname": info.hostname,
        "port": port.parse::<u16>().unwrap_or(5051),
        "pid": format!("slave(1)@{ip}:{port}"),
        "attributes": info.attributes,
        "registered_time": registered,
        "resources": resources_json(&info.resources),
        "used_resources": resources_json(&used),
        "offered_resources": resources_json(&Resources::default()),
        "reserved_resources": {},
        "unreserved_resources": resources_json(&info.resources),
        "active": agent.is_reachable(),
        "deactivated": false,
        "version": env!("CARGO_PKG_VERSION"),
        "capabilities": [],
        "reachable": agent.is_reachable(),
        "role": info.role,
        "task_count": usage.map_or(0, |u| u.tasks),
    })
}

async fn slaves(State(master): State<Arc<Master>>) -> Result<Json<Value>, ApiError> {
    let state = master.read_state().await?;
    let usage = usage(&state);
    let slaves: Vec<Value> = state
        .agents
        .values()
        .map(|agent| slave_json(agent, usage.get(&agent.info.id)))
        .collect();
    Ok(Json(json!({ "slaves": slaves })))
}

async fn state(State(master): State<Arc<Master>>) -> Result<Json<Value>, ApiError> {
    let state = master.read_state().await?;
    let usage = usage(&state);
    let leader = master.leader();
    let leader_pid = leader
        .as_ref()
        .map(|leader| format!("master@{}", leader.address));
    let slaves: Vec<Value> = state
        .agents
        .values()
        .map(|agent| slave_json(agent, usage.get(&agent.info.id)))
        .collect();
    let (unreachable, active): (Vec<&Task>, Vec<&Task>) = state
        .tasks
        .values()
        .map(AsRef::as_ref)
        .partition(|task| task.state == orch_core::model::TaskState::Unreachable);
    let task = |task: &Task| {
        let (cpus, mem, disk) = task_resources(&state, task);
        json!({
            "id": task.id,
            "name": orch_core::model::safe_path(&task.app_id).replace('_', "."),
            "framework_id": FRAMEWORK_ID,
            "executor_id": "",
            "slave_id": task.agent_id,
            "state": task.state,
            "resources": {"cpus": cpus, "mem": mem, "disk": disk, "gpus": 0,
                          "ports": format_ranges(&task.ports.iter().map(|p| orch_core::model::PortRange { begin: *p, end: *p }).collect::<Vec<_>>())},
            "role": "*",
            "statuses": [{
                "state": task.state,
                "timestamp": task.updated_at.as_millis() as f64 / 1000.0,
                "container_status": {"network_infos": [{"ip_addresses": task.ip_addresses.iter().map(|ip| json!({"protocol": "IPv4", "ip_address": ip})).collect::<Vec<_>>()}]},
            }],
            "discovery": {"visibility": "FRAMEWORK", "name": orch_core::model::safe_path(&task.app_id).replace('_', ".")},
        })
    };
    let framework = json!({
        "id": FRAMEWORK_ID,
        "name": "marathon",
        "pid": leader_pid,
        "hostname": leader.as_ref().map(|l| l.address.clone()),
        "active": true,
        "connected": true,
        "recovered": false,
        "user": "root",
        "role": "*",
        "tasks": active.into_iter().map(task).collect::<Vec<_>>(),
        "unreachable_tasks": unreachable.into_iter().map(task).collect::<Vec<_>>(),
        "completed_tasks": [],
        "offers": [],
        "executors": [],
    });
    let reachable = state.agents.values().filter(|a| a.is_reachable()).count();
    Ok(Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "id": format!("orch-master-{}", master.id()),
        "pid": format!("master@{}", master.address()),
        "hostname": master.address().rsplit_once(':').map_or(master.address(), |(host, _)| host),
        "leader": leader_pid,
        "leader_info": leader.as_ref().map(|l| json!({"id": l.id.to_string(), "pid": format!("master@{}", l.address), "hostname": l.address.rsplit_once(':').map_or(l.address.as_str(), |(h, _)| h), "port": l.address.rsplit_once(':').and_then(|(_, p)| p.parse::<u16>().ok())})),
        "activated_slaves": reachable,
        "deactivated_slaves": 0,
        "unreachable_slaves": state.agents.len() - reachable,
        "slaves": slaves,
        "recovered_slaves": [],
        "frameworks": [framework],
        "completed_frameworks": [],
        "orphan_tasks": [],
        "unregistered_frameworks": [],
        "flags": {},
    })))
}

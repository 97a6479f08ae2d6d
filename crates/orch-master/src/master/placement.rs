//! The scheduler's view of the cluster: agent slots with what their tasks use, placement
//! requests built from app definitions, and tasks made from placements.

use orch_core::model::{AgentId, App, Goal, Task, TaskId, TaskState, Timestamp};
use orch_core::scheduler::{AgentSlot, Placement, PlacementRequest};
use orch_core::state::ClusterState;
use std::collections::HashMap;

/// Every agent as a slot, with the resources and ports of the tasks placed on it.
pub(super) fn agent_slots(state: &ClusterState) -> (Vec<AgentSlot>, HashMap<AgentId, usize>) {
    let mut slots: Vec<AgentSlot> = state
        .agents
        .values()
        .map(|agent| {
            let info = &agent.info;
            let mut slot = AgentSlot::new(
                info.id.clone(),
                info.hostname.clone(),
                info.resources.clone(),
            );
            slot.attributes = info.attributes.clone();
            slot.role = info.role.clone();
            slot.reachable = agent.is_reachable();
            slot
        })
        .collect();
    let index: HashMap<AgentId, usize> = slots
        .iter()
        .enumerate()
        .map(|(i, slot)| (slot.id.clone(), i))
        .collect();
    for task in state.tasks.values() {
        let (Some(&i), Some(app)) = (index.get(&task.agent_id), state.apps.get(&task.app_id))
        else {
            continue;
        };
        let slot = &mut slots[i];
        slot.used_cpus += app.spec.cpus;
        slot.used_mem += app.spec.mem;
        slot.used_disk += app.spec.disk;
        slot.used_ports.extend(task.ports.iter().copied());
    }
    (slots, index)
}

/// What placing `count` new instances of `app` asks for; `existing` are the agents of its
/// active instances.
pub(super) fn request(app: &App, count: u32, existing: Vec<AgentId>) -> PlacementRequest {
    let spec = &app.spec;
    let ports = if spec.host_networking() {
        spec.port_definitions
            .iter()
            .map(|definition| {
                if spec.require_ports {
                    definition.port
                } else {
                    0
                }
            })
            .collect()
    } else {
        spec.port_mappings()
            .iter()
            .filter_map(|mapping| mapping.host_port)
            .collect()
    };
    PlacementRequest {
        app_id: app.id.clone(),
        cpus: spec.cpus,
        mem: spec.mem,
        disk: spec.disk,
        ports,
        accepted_roles: (!spec.accepted_resource_roles.is_empty())
            .then(|| spec.accepted_resource_roles.clone()),
        constraints: spec.constraints.clone(),
        count,
        existing,
    }
}

/// The new task of a placement: TASK_STAGING on its agent, running the app's current version.
pub(super) fn task(app: &App, slot: &AgentSlot, placement: &Placement, now: Timestamp) -> Task {
    Task {
        id: TaskId::new(&app.id, &uuid::Uuid::new_v4().to_string(), 1),
        app_id: app.id.clone(),
        agent_id: slot.id.clone(),
        host: slot.hostname.clone(),
        ports: placement.ports.clone(),
        version: app.version,
        state: TaskState::Staging,
        goal: Goal::Running,
        staged_at: now,
        started_at: None,
        updated_at: now,
        message: String::new(),
        reason: None,
        ip_addresses: Vec::new(),
        health: Vec::new(),
    }
}

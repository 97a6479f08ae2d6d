//! Turns placement decisions into tasks: builds the scheduler's view of the agents from the
//! state, asks the scheduler where new instances go, and makes their ids.

use crate::model::{AgentId, App, Goal, Task, TaskId, TaskState, Timestamp};
use crate::state::ClusterState;
use std::collections::{BTreeSet, HashMap};

/// Resources in use on each agent, updated as this pass places tasks.
#[derive(Debug)]
pub(super) struct Usage<'a> {
    state: &'a ClusterState,
    used: HashMap<AgentId, Used>,
}

#[derive(Debug, Default, Clone)]
struct Used {
    cpus: f64,
    mem: f64,
    disk: f64,
    ports: BTreeSet<u16>,
}

impl<'a> Usage<'a> {
    pub(super) fn new(state: &'a ClusterState) -> Self {
        let mut used: HashMap<AgentId, Used> = HashMap::new();
        for task in state.tasks.values() {
            let Some(app) = state.apps.get(&task.app_id) else {
                continue;
            };
            let entry = used.entry(task.agent_id.clone()).or_default();
            let (cpus, mem, disk) = resources(app);
            entry.cpus += cpus;
            entry.mem += mem;
            entry.disk += disk;
            entry.ports.extend(task.ports.iter().copied());
        }
        Self { state, used }
    }

    /// Places up to `count` new instances of `app`; fewer when the agents lack room.
    pub(super) fn place(
        &mut self,
        app: &App,
        active: &[&Task],
        count: usize,
        now: Timestamp,
        seed: u64,
    ) -> Vec<Task> {
        let (cpus, mem, disk) = resources(app);
        let port_count = port_count(app);
        let public_only = accepts_public(app);
        let mut per_agent: HashMap<AgentId, usize> = HashMap::new();
        for task in active {
            *per_agent.entry(task.agent_id.clone()).or_default() += 1;
        }
        let mut placed = Vec::new();
        for n in 0..count {
            let candidate = self
                .state
                .agents
                .values()
                .filter(|agent| agent.is_reachable())
                .filter(|agent| (agent.info.role == crate::model::PUBLIC_ROLE) == public_only)
                .filter(|agent| {
                    let used = self.used.get(&agent.info.id).cloned().unwrap_or_default();
                    let total = &agent.info.resources;
                    used.cpus + cpus <= total.cpus + 1e-9
                        && used.mem + mem <= total.mem + 1e-9
                        && used.disk + disk <= total.disk + 1e-9
                        && total.port_count().saturating_sub(used.ports.len()) >= port_count
                })
                .min_by_key(|agent| per_agent.get(&agent.info.id).copied().unwrap_or(0));
            let Some(agent) = candidate else { break };
            let used = self.used.entry(agent.info.id.clone()).or_default();
            let mut ports = Vec::new();
            let offset = (seed as usize).wrapping_add(n) % agent.info.resources.port_count().max(1);
            let all: Vec<u16> = agent
                .info
                .resources
                .ports
                .iter()
                .flat_map(|range| range.begin..=range.end)
                .collect();
            for port in all.iter().cycle().skip(offset).take(all.len()) {
                if ports.len() == port_count {
                    break;
                }
                if !used.ports.contains(port) {
                    ports.push(*port);
                }
            }
            used.cpus += cpus;
            used.mem += mem;
            used.disk += disk;
            used.ports.extend(ports.iter().copied());
            *per_agent.entry(agent.info.id.clone()).or_default() += 1;
            placed.push(Task {
                id: TaskId::new(&app.id, &uuid::Uuid::new_v4().to_string(), 1),
                app_id: app.id.clone(),
                agent_id: agent.info.id.clone(),
                host: agent.info.hostname.clone(),
                ports,
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
            });
        }
        placed
    }
}

fn resources(app: &App) -> (f64, f64, f64) {
    (app.spec.cpus, app.spec.mem, app.spec.disk)
}

fn port_count(app: &App) -> usize {
    app.spec.port_count()
}

fn accepts_public(app: &App) -> bool {
    app.spec
        .accepted_resource_roles
        .iter()
        .any(|role| role == crate::model::PUBLIC_ROLE)
}

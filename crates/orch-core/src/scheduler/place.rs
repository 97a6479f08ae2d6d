//! Placing many requests' instances on many agents at once.
//!
//! For each request in order: a rotating cursor shared by all requests walks the agents
//! (next fit, so agents filled by earlier requests lie behind it), accepting an agent only if
//! it holds no more of this app's instances than the current *level* (fewest instances
//! first: level 0 = agents without one). Agents that reject the request for a reason that
//! cannot change during the plan (see [`Rejection::is_permanent`]) are skipped for the rest
//! of the request; a request without constraints stops at its last placement, so placing
//! costs about one fit per placement while the cluster has room.

use std::collections::{BTreeMap, HashMap};

use super::fit::{
    fit, pick, splitmix64, AgentSlot, CompiledRequest, PortChoice, Rejection, Spread,
};
use super::{PlacementRequest, SchedulerError};

/// One instance placed: which request, on which agent, with which host ports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placement {
    /// Index of the request in the `requests` given to [`place`].
    pub request: usize,
    /// Index of the agent in the `agents` given to [`place`].
    pub agent: usize,
    /// Host ports, in the request's port order.
    pub ports: Vec<u16>,
}

/// Instances of one request that found no agent, and why.
#[derive(Clone, Debug, PartialEq)]
pub struct Unplaced {
    /// Index of the request.
    pub request: usize,
    /// How many of its instances are not placed.
    pub count: u32,
    /// Per reason ([`Rejection`]'s display form), how many agents it turned away in the end.
    /// The counts add up to the number of agents.
    pub reasons: BTreeMap<String, u32>,
    /// Set when the request could not be evaluated at all (bad constraint); then nothing of
    /// it is placed and `reasons` is empty.
    pub error: Option<SchedulerError>,
}

/// The outcome of [`place`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    /// Every placed instance, requests in order.
    pub placements: Vec<Placement>,
    /// Every request with instances left over.
    pub unplaced: Vec<Unplaced>,
}

impl Plan {
    /// Number of instances placed for request `request`.
    pub fn placed_for(&self, request: usize) -> usize {
        self.placements
            .iter()
            .filter(|p| p.request == request)
            .count()
    }
}

/// Places `count` new instances of every request on `agents` (in request order), starting
/// from a seed-chosen agent and choosing dynamic host ports from `seed`. The agents' used
/// resources are taken as given; the plan never over-commits them and never breaks a
/// constraint. Deterministic for equal inputs.
pub fn place(agents: &[AgentSlot], requests: &[PlacementRequest], seed: u64) -> Plan {
    let mut slots = agents.to_vec();
    let index: HashMap<&crate::model::AgentId, usize> = agents
        .iter()
        .enumerate()
        .map(|(i, agent)| (&agent.id, i))
        .collect();
    let mut placer = Placer {
        slots: &mut slots,
        rejected: vec![false; agents.len()],
        cursor: if agents.is_empty() {
            0
        } else {
            pick(seed, agents.len())
        },
        seed,
        plan: Plan::default(),
    };
    for (number, request) in requests.iter().enumerate() {
        if request.count == 0 {
            continue;
        }
        match CompiledRequest::new(request) {
            Ok(compiled) => placer.place_request(number, &compiled, &index),
            Err(error) => placer.plan.unplaced.push(Unplaced {
                request: number,
                count: request.count,
                reasons: BTreeMap::new(),
                error: Some(error),
            }),
        }
    }
    placer.plan
}

struct Placer<'a> {
    slots: &'a mut [AgentSlot],
    /// Agents permanently rejected by the current request (reset after each request).
    rejected: Vec<bool>,
    cursor: usize,
    seed: u64,
    plan: Plan,
}

impl Placer<'_> {
    fn place_request(
        &mut self,
        number: usize,
        compiled: &CompiledRequest,
        index: &HashMap<&crate::model::AgentId, usize>,
    ) {
        let request = compiled.request();
        let n = self.slots.len();
        // This app's instances per agent index, existing and placed.
        let mut counts: HashMap<usize, u32> = HashMap::new();
        let mut spread = Spread::of(compiled, []);
        for id in &request.existing {
            if let Some(&i) = index.get(id) {
                spread.add(compiled, &self.slots[i]);
                *counts.entry(i).or_insert(0) += 1;
            }
        }
        let mut level = if counts.len() < n {
            0
        } else {
            counts.values().copied().min().unwrap_or(0)
        };
        let mut remaining = request.count;
        let mut permanent: HashMap<Rejection, u32> = HashMap::new();
        let mut transient: HashMap<Rejection, u32> = HashMap::new();
        let mut touched = Vec::new();
        let port_salt = splitmix64(self.seed ^ (number as u64).wrapping_mul(0x2545_F491_4F6C_DD1D));
        let has_constraints = compiled.has_constraints();
        if n == 0 {
            self.plan.unplaced.push(Unplaced {
                request: number,
                count: remaining,
                reasons: BTreeMap::new(),
                error: None,
            });
            return;
        }
        'passes: loop {
            transient.clear();
            let mut placed_in_pass = 0u32;
            let mut next_level = u32::MAX;
            let start = self.cursor;
            for step in 0..n {
                let mut i = start + step;
                if i >= n {
                    i -= n;
                }
                if self.rejected[i] {
                    continue;
                }
                let here = if counts.is_empty() {
                    0
                } else {
                    counts.get(&i).copied().unwrap_or(0)
                };
                if here > level {
                    next_level = next_level.min(here);
                    continue;
                }
                let port_seed = port_salt ^ (self.plan.placements.len() as u64);
                match fit(
                    &self.slots[i],
                    compiled,
                    &spread,
                    PortChoice::Random(port_seed),
                ) {
                    Ok(ports) => {
                        self.slots[i].claim(request, &ports);
                        if has_constraints {
                            spread.add(compiled, &self.slots[i]);
                        }
                        counts.insert(i, here + 1);
                        self.plan.placements.push(Placement {
                            request: number,
                            agent: i,
                            ports,
                        });
                        placed_in_pass += 1;
                        next_level = next_level.min(here + 1);
                        self.cursor = if i + 1 == n { 0 } else { i + 1 };
                        remaining -= 1;
                        if remaining == 0 {
                            break 'passes;
                        }
                    }
                    Err(reason) if reason.is_permanent() => {
                        self.rejected[i] = true;
                        touched.push(i);
                        *permanent.entry(reason).or_insert(0) += 1;
                    }
                    Err(reason) => *transient.entry(reason).or_insert(0) += 1,
                }
            }
            let again_at_this_level = placed_in_pass > 0 && !transient.is_empty();
            if !again_at_this_level {
                if next_level == u32::MAX {
                    break;
                }
                level = next_level;
            }
        }
        for i in touched {
            self.rejected[i] = false;
        }
        if remaining > 0 {
            let mut reasons = BTreeMap::new();
            for (reason, agents) in permanent.into_iter().chain(transient) {
                *reasons.entry(reason.to_string()).or_insert(0) += agents;
            }
            self.plan.unplaced.push(Unplaced {
                request: number,
                count: remaining,
                reasons,
                error: None,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{AgentId, AppId, Constraint, PortRange, Resources};
    use serde_json::json;

    fn agents(count: usize, cpus: f64) -> Vec<AgentSlot> {
        (0..count)
            .map(|i| {
                let mut slot = AgentSlot::new(
                    AgentId(format!("a{i}")),
                    format!("host{i}"),
                    Resources {
                        cpus,
                        mem: 1024.0,
                        disk: 0.0,
                        ports: vec![PortRange {
                            begin: 31000,
                            end: 31003,
                        }],
                    },
                );
                slot.attributes.insert("rack".into(), format!("r{}", i % 2));
                slot
            })
            .collect()
    }

    fn request(count: u32, constraints: &[serde_json::Value]) -> PlacementRequest {
        PlacementRequest {
            app_id: AppId::parse("/app").expect("valid"),
            cpus: 1.0,
            mem: 100.0,
            disk: 0.0,
            ports: vec![0],
            accepted_roles: None,
            constraints: constraints
                .iter()
                .map(|c| Constraint::parse(c).expect("valid"))
                .collect(),
            count,
            existing: vec![],
        }
    }

    fn per_agent(plan: &Plan, agents: usize) -> Vec<usize> {
        let mut counts = vec![0; agents];
        for p in &plan.placements {
            counts[p.agent] += 1;
        }
        counts
    }

    #[test]
    fn spreads_over_agents_fewest_first() {
        let agents = agents(4, 8.0);
        let mut req = request(6, &[]);
        // One existing instance on a0 and one on a1: the first two new go to a2 and a3.
        req.existing = vec![AgentId("a0".into()), AgentId("a1".into())];
        let plan = place(&agents, &[req], 3);
        assert!(plan.unplaced.is_empty());
        let mut counts = per_agent(&plan, 4);
        counts[0] += 1;
        counts[1] += 1;
        assert_eq!(counts, vec![2, 2, 2, 2]);
    }

    #[test]
    fn never_overcommits_and_explains_the_rest() {
        let agents = agents(3, 2.0);
        let plan = place(&agents, &[request(10, &[])], 1);
        assert_eq!(plan.placements.len(), 6);
        assert_eq!(per_agent(&plan, 3), vec![2, 2, 2]);
        assert_eq!(plan.unplaced.len(), 1);
        assert_eq!(plan.unplaced[0].count, 4);
        assert_eq!(
            plan.unplaced[0].reasons,
            BTreeMap::from([("insufficient cpus".to_owned(), 3)])
        );
        // Ports differ per agent.
        for agent in 0..3 {
            let mut ports: Vec<u16> = plan
                .placements
                .iter()
                .filter(|p| p.agent == agent)
                .flat_map(|p| p.ports.clone())
                .collect();
            ports.sort_unstable();
            ports.dedup();
            assert_eq!(ports.len(), 2);
        }
    }

    #[test]
    fn unique_leaves_a_summary_per_reason() {
        let mut agents = agents(5, 8.0);
        agents[4].reachable = false;
        agents[3].used_mem = 1000.0;
        let plan = place(&agents, &[request(5, &[json!(["hostname", "UNIQUE"])])], 9);
        assert_eq!(plan.placements.len(), 3);
        let unplaced = &plan.unplaced[0];
        assert_eq!(unplaced.count, 2);
        assert_eq!(
            unplaced.reasons,
            BTreeMap::from([
                ("constraint hostname:UNIQUE".to_owned(), 3),
                ("insufficient mem".to_owned(), 1),
                ("unreachable".to_owned(), 1),
            ])
        );
    }

    #[test]
    fn group_by_balances_racks() {
        let agents = agents(6, 8.0);
        let plan = place(&agents, &[request(7, &[json!(["rack", "GROUP_BY"])])], 5);
        assert!(plan.unplaced.is_empty());
        let even = plan.placements.iter().filter(|p| p.agent % 2 == 0).count();
        assert!(even == 3 || even == 4, "{even} of 7 on rack r0");
    }

    #[test]
    fn later_requests_see_earlier_placements() {
        let agents = agents(2, 1.0);
        let plan = place(&agents, &[request(2, &[]), request(1, &[])], 0);
        assert_eq!(plan.placements.len(), 2);
        assert_eq!(plan.unplaced[0].request, 1);
        assert_eq!(plan.placed_for(0), 2);
    }

    #[test]
    fn invalid_constraints_place_nothing() {
        let agents = agents(2, 8.0);
        let plan = place(&agents, &[request(2, &[json!(["rack", "LIKE", "["])])], 0);
        assert!(plan.placements.is_empty());
        assert!(plan.unplaced[0].error.is_some());
        assert_eq!(plan.unplaced[0].count, 2);
    }

    #[test]
    fn no_agents_places_nothing() {
        let plan = place(&[], &[request(2, &[])], 0);
        assert_eq!(plan.unplaced[0].count, 2);
        assert!(plan.unplaced[0].reasons.is_empty());
    }

    #[test]
    fn same_inputs_same_plan() {
        let agents = agents(10, 4.0);
        let requests = [request(17, &[json!(["rack", "GROUP_BY"])]), request(9, &[])];
        assert_eq!(place(&agents, &requests, 77), place(&agents, &requests, 77));
    }
}

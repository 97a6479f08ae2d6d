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

use super::fit::{fit, splitmix64, AgentSlot, CompiledRequest, PortChoice, Rejection, Spread};
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
            (splitmix64(seed) % agents.len() as u64) as usize
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

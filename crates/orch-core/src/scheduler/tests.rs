//! Property tests: placement never over-commits or breaks a constraint (checked by an
//! independent checker), and rolling restarts keep their bounds while finishing.

use std::collections::{BTreeSet, HashMap};

use proptest::prelude::*;
use regex::Regex;

use super::*;
use crate::model::{AgentId, AppId, Constraint, Operator, PortRange, Resources, UpgradeStrategy};

const FIELDS: [&str; 3] = ["hostname", "rack", "zone"];

/// cpus, mem, rack, zone, port count, reachable, public, used cpus.
type AgentSpec = (u8, u8, u8, u8, u8, bool, bool, u8);

fn agent_strategy() -> impl Strategy<Value = AgentSpec> {
    (
        1u8..8, // cpus
        1u8..8, // mem (x256)
        0u8..4, // rack (3 = missing)
        0u8..3, // zone
        1u8..6, // port count
        any::<bool>(),
        any::<bool>(), // public
        0u8..3,        // used cpus
    )
}

fn build_agents(specs: &[AgentSpec]) -> Vec<AgentSlot> {
    specs
        .iter()
        .enumerate()
        .map(
            |(i, &(cpus, mem, rack, zone, ports, reachable, public, used))| {
                let mut slot = AgentSlot::new(
                    AgentId(format!("a{i}")),
                    format!("h{}", i % 7),
                    Resources {
                        cpus: f64::from(cpus) * 0.5,
                        mem: f64::from(mem) * 256.0,
                        disk: 1000.0,
                        ports: vec![PortRange {
                            begin: 31000,
                            end: 31000 + u16::from(ports) - 1,
                        }],
                    },
                );
                if rack < 3 {
                    slot.attributes.insert("rack".into(), format!("r{rack}"));
                }
                slot.attributes.insert("zone".into(), format!("z{zone}"));
                slot.reachable = reachable || i % 3 != 0;
                if public {
                    slot.role = crate::model::PUBLIC_ROLE.into();
                }
                slot.used_cpus = f64::from(used.min(cpus)) * 0.25;
                if used > 0 {
                    slot.used_ports.insert(31000);
                }
                slot
            },
        )
        .collect()
}

fn constraint_strategy() -> impl Strategy<Value = Constraint> {
    (0usize..3, 0u8..7, 0u8..4).prop_map(|(field, op, value)| {
        let field = FIELDS[field].to_owned();
        let prefix = if field == "hostname" {
            "h"
        } else {
            &field[..1]
        };
        let (operator, value) = match op {
            0 => (Operator::Unique, None),
            1 => (
                Operator::Cluster,
                (value > 1).then(|| format!("{prefix}{}", value - 2)),
            ),
            2 => (Operator::GroupBy, (value > 0).then(|| value.to_string())),
            3 => (Operator::Like, Some(format!("{prefix}[0{}]", value % 3))),
            4 => (Operator::Unlike, Some(format!("{prefix}{}", value % 3))),
            5 => (Operator::MaxPer, Some((value + 1).to_string())),
            _ => (Operator::Is, Some(format!("{prefix}{}", value % 3))),
        };
        Constraint {
            field,
            operator,
            value,
        }
    })
}

fn request_strategy() -> impl Strategy<Value = PlacementRequest> {
    (
        1u8..4,
        1u8..4,
        prop::collection::vec(prop_oneof![Just(0u16), 31000u16..31006], 0..3),
        0u8..3,
        prop::collection::vec(constraint_strategy(), 0..3),
        0u32..12,
        prop::collection::vec(0usize..12, 0..4),
    )
        .prop_map(
            |(cpus, mem, ports, roles, constraints, count, existing)| PlacementRequest {
                app_id: AppId::parse("/p").expect("valid"),
                cpus: f64::from(cpus) * 0.25,
                mem: f64::from(mem) * 128.0,
                disk: 10.0,
                ports,
                accepted_roles: match roles {
                    0 => None,
                    1 => Some(vec![crate::model::PUBLIC_ROLE.into()]),
                    _ => Some(vec!["*".into(), crate::model::PUBLIC_ROLE.into()]),
                },
                constraints,
                count,
                existing: existing
                    .into_iter()
                    .map(|i| AgentId(format!("a{i}")))
                    .collect(),
            },
        )
}

fn value<'a>(agent: &'a AgentSlot, field: &str) -> Option<&'a str> {
    if field == "hostname" {
        Some(&agent.hostname)
    } else {
        agent.attributes.get(field).map(String::as_str)
    }
}

/// Marathon's check, written directly from the reference (§4.10) over a list of the
/// app's instance agents (before this one).
fn allowed(c: &Constraint, agent: &AgentSlot, before: &[&AgentSlot]) -> bool {
    let Some(v) = value(agent, &c.field) else {
        return c.operator == Operator::Unlike;
    };
    let same = before
        .iter()
        .filter(|a| value(a, &c.field) == Some(v))
        .count();
    let full = |pattern: &str| {
        Regex::new(&format!("^(?:{pattern})$"))
            .map(|r| r.is_match(v))
            .unwrap_or(false)
    };
    match c.operator {
        Operator::Unique => same == 0,
        Operator::Cluster => c.value.as_deref().is_none_or(|w| w == v) && same == before.len(),
        Operator::GroupBy => {
            let mut groups: HashMap<Option<&str>, usize> = HashMap::new();
            for a in before {
                *groups.entry(value(a, &c.field)).or_default() += 1;
            }
            let minimum: usize = c.value.as_deref().and_then(|v| v.parse().ok()).unwrap_or(0);
            let min = groups.values().copied().min().unwrap_or(0);
            same == 0 || (groups.len() >= minimum && same == min)
        }
        Operator::Like => full(c.value.as_deref().unwrap_or("")),
        Operator::Unlike => !full(c.value.as_deref().unwrap_or("")),
        Operator::MaxPer => same < c.value.as_deref().and_then(|v| v.parse().ok()).unwrap_or(0),
        Operator::Is => c.value.as_deref() == Some(v),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn placement_is_safe_and_complete(
        specs in prop::collection::vec(agent_strategy(), 0..12),
        requests in prop::collection::vec(request_strategy(), 1..5),
        seed in any::<u64>(),
    ) {
        let agents = build_agents(&specs);
        let plan = place(&agents, &requests, seed);
        // Placed + unplaced = requested, per request.
        for (r, request) in requests.iter().enumerate() {
            let unplaced: u32 = plan.unplaced.iter().filter(|u| u.request == r).map(|u| u.count).sum();
            prop_assert_eq!(u32::try_from(plan.placed_for(r)).expect("small") + unplaced, request.count);
            for u in plan.unplaced.iter().filter(|u| u.request == r && u.error.is_none()) {
                prop_assert_eq!(u.reasons.values().sum::<u32>() as usize, agents.len());
            }
        }
        // Replay the plan independently.
        let mut cpus: Vec<f64> = agents.iter().map(|a| a.used_cpus).collect();
        let mut mem: Vec<f64> = agents.iter().map(|a| a.used_mem).collect();
        let mut disk: Vec<f64> = agents.iter().map(|a| a.used_disk).collect();
        let mut ports: Vec<BTreeSet<u16>> = agents.iter().map(|a| a.used_ports.clone()).collect();
        let mut instances: Vec<Vec<&AgentSlot>> = requests
            .iter()
            .map(|r| r.existing.iter().filter_map(|id| agents.iter().find(|a| &a.id == id)).collect())
            .collect();
        for p in &plan.placements {
            let request = &requests[p.request];
            let agent = &agents[p.agent];
            prop_assert!(agent.reachable);
            let roles_ok = match &request.accepted_roles {
                None => agent.role == "*",
                Some(roles) => roles.contains(&agent.role),
            };
            prop_assert!(roles_ok);
            for c in &request.constraints {
                prop_assert!(allowed(c, agent, &instances[p.request]), "{:?} on {:?}", c, agent);
            }
            instances[p.request].push(agent);
            cpus[p.agent] += request.cpus;
            mem[p.agent] += request.mem;
            disk[p.agent] += request.disk;
            prop_assert!(cpus[p.agent] <= agent.total.cpus + 1e-6);
            prop_assert!(mem[p.agent] <= agent.total.mem + 1e-6);
            prop_assert!(disk[p.agent] <= agent.total.disk + 1e-6);
            prop_assert_eq!(p.ports.len(), request.ports.len());
            for (&want, &got) in request.ports.iter().zip(&p.ports) {
                prop_assert!(want == 0 || want == got);
                prop_assert!(agent.total.has_port(got));
                prop_assert!(ports[p.agent].insert(got), "port {} used twice", got);
            }
        }
    }

    #[test]
    fn rolling_restart_keeps_bounds_and_finishes(
        n in 0u32..12,
        old in 0u32..15,
        min in 0u32..=10,
        over in 0u32..=10,
        resident in any::<bool>(),
        events in prop::collection::vec(any::<u32>(), 400),
    ) {
        let strategy = UpgradeStrategy {
            minimum_health_capacity: f64::from(min) / 10.0,
            maximum_over_capacity: f64::from(over) / 10.0,
        };
        let (min_healthy, max_capacity) = strategy.bounds(n);
        let limit = if min_healthy == max_capacity && !resident { max_capacity + 1 } else { max_capacity };
        // Old instances: all healthy at the start. (healthy, dying)
        let mut old_alive = old;
        let mut old_dying = 0u32;
        let mut new_started = 0u32; // launched, not yet healthy
        let mut new_ready = 0u32;
        let mut done = false;
        for event in events {
            let counts = RestartCounts {
                old_active: old_alive + old_dying,
                old_killing: old_dying,
                old_healthy: old_alive,
                new_active: new_started + new_ready,
                new_healthy_ready: new_ready,
            };
            let step = restart_step(n, strategy, resident, counts);
            if step.done {
                prop_assert_eq!(new_ready, n);
                done = true;
                break;
            }
            let healthy_before = old_alive + new_ready;
            prop_assert!(step.kill <= old_alive);
            old_alive -= step.kill;
            old_dying += step.kill;
            let healthy = old_alive + new_ready;
            let floor = if resident && min_healthy == max_capacity { min_healthy.saturating_sub(1) } else { min_healthy };
            prop_assert!(healthy >= floor.min(healthy_before), "healthy {} < {}", healthy, floor);
            if step.start > 0 {
                new_started += step.start;
                prop_assert!(old_alive + old_dying + new_started + new_ready <= limit,
                    "over capacity: {} old, {} new > {}", old_alive + old_dying, new_started + new_ready, limit);
            }
            // One event: a dying old instance ends, or a new one becomes healthy and ready.
            match (old_dying > 0, new_started > 0) {
                (true, true) => if event % 2 == 0 { old_dying -= 1 } else { new_started -= 1; new_ready += 1 },
                (true, false) => old_dying -= 1,
                (false, true) => { new_started -= 1; new_ready += 1 }
                (false, false) => prop_assert!(step.kill > 0 || step.start > 0, "stuck: {:?}", counts),
            }
        }
        prop_assert!(done, "restart did not finish");
    }
}

//! Placement throughput: `scheduler::place` putting 1,000,000 instances of apps with and
//! without constraints on 10,000 agents of varied sizes (attributes `rack`, `zone`), on one
//! core. Prints placements/s and the process' peak memory (`VmHWM`) as a markdown table row.
//!
//! Run: `cargo bench --bench scheduler` (`ORCH_BENCH_AGENTS`, default 10000;
//! `ORCH_BENCH_INSTANCES`, default 1000000).

mod common;

use std::time::Instant;

use orch_core::model::{AgentId, AppId, Constraint, PortRange, Resources};
use orch_core::scheduler::{place, AgentSlot, PlacementRequest};
use serde_json::json;

fn agents(count: usize) -> Vec<AgentSlot> {
    (0..count)
        .map(|i| {
            let cpus = [8.0, 16.0, 32.0, 64.0][i % 4];
            let mut slot = AgentSlot::new(
                AgentId(format!("agent-{i}-S0")),
                format!("host-{i}.example"),
                Resources {
                    cpus,
                    mem: cpus * 4096.0,
                    disk: 500_000.0,
                    ports: vec![PortRange {
                        begin: 31000,
                        end: 32000,
                    }],
                },
            );
            slot.attributes
                .insert("rack".into(), format!("r{}", i % 50));
            slot.attributes.insert("zone".into(), format!("z{}", i % 5));
            slot
        })
        .collect()
}

fn app(n: usize, instances: u32, constraint: Option<serde_json::Value>) -> PlacementRequest {
    PlacementRequest {
        app_id: AppId::parse(&format!("/bench/app-{n}")).expect("valid app id"),
        cpus: [0.1, 0.2, 0.3][n % 3],
        mem: [64.0, 128.0, 256.0][n % 3],
        disk: 0.0,
        ports: if n % 2 == 0 { vec![0] } else { vec![] },
        accepted_roles: None,
        constraints: constraint
            .map(|c| Constraint::parse(&c).expect("valid constraint"))
            .into_iter()
            .collect(),
        count: instances,
        existing: vec![],
    }
}

/// 80% of the instances in 100-instance apps without constraints, the rest in apps with
/// `hostname:UNIQUE`, `rack:GROUP_BY`, `zone:LIKE` and `hostname:MAX_PER`.
fn requests(total: u32) -> Vec<PlacementRequest> {
    let mut requests = Vec::new();
    let mut n = 0;
    let mut add = |budget: u32, size: u32, constraint: Option<serde_json::Value>| {
        let mut left = budget;
        while left > 0 {
            let instances = size.min(left);
            requests.push(app(n, instances, constraint.clone()));
            n += 1;
            left -= instances;
        }
    };
    let tenth = total / 10;
    add(tenth, 1000, Some(json!(["hostname", "UNIQUE"])));
    add(tenth / 2, 500, Some(json!(["rack", "GROUP_BY"])));
    add(tenth / 4, 500, Some(json!(["zone", "LIKE", "z[0-2]"])));
    add(tenth / 4, 500, Some(json!(["hostname", "MAX_PER", "2"])));
    add(total - 2 * tenth, 100, None);
    // Interleave constrained and unconstrained apps as a real queue would.
    let mut mixed = Vec::with_capacity(requests.len());
    let (constrained, free): (Vec<_>, Vec<_>) = requests
        .into_iter()
        .partition(|r| !r.constraints.is_empty());
    let mut free = free.into_iter();
    for request in constrained {
        mixed.push(request);
        mixed.extend(free.by_ref().take(27));
    }
    mixed.extend(free);
    mixed
}

fn vm_hwm_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|kib| kib.parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0)
}

fn main() {
    if !common::invoked_as_bench("scheduler") {
        return;
    }
    let agent_count = common::env_count("ORCH_BENCH_AGENTS", 10_000);
    let total = u32::try_from(common::env_or("ORCH_BENCH_INSTANCES", 1_000_000)).expect("a count");
    let agents = agents(agent_count);
    let requests = requests(total);
    let wanted: u64 = requests.iter().map(|r| u64::from(r.count)).sum();
    let t0 = Instant::now();
    let plan = place(&agents, &requests, 42);
    let took = t0.elapsed();
    let placed = plan.placements.len();
    let unplaced: u64 = plan.unplaced.iter().map(|u| u64::from(u.count)).sum();
    assert_eq!(
        placed as u64 + unplaced,
        wanted,
        "placed + unplaced = requested"
    );
    println!(
        "| scheduler::place | {agent_count} agents, {} apps, {wanted} instances | placed {placed}, unplaced {unplaced} in {:.2} s | {:.0} placements/s | peak RSS (VmHWM) {:.0} MiB |",
        requests.len(),
        took.as_secs_f64(),
        placed as f64 / took.as_secs_f64(),
        vm_hwm_mib()
    );
}

//! The chaos figures (release build): the fault scenarios of `tests/chaos.rs` and
//! `tests/chaos_agents.rs` run longer, with their figures printed as table rows.
//!
//! 1. 20 leader kills (`kill -9`, restarted at once) under 6 clients writing and reading:
//!    write latency p50/p99 of acknowledged writes, writes acknowledged and lost (every
//!    history is checked for linearizability), time to the next acknowledged write.
//! 2. The leader cut off from the other masters (network namespaces), 10 times: time until
//!    another master acknowledges a write.
//! 3. An agent cut off from its master past `--agent-timeout` (2 s), 10 times: time from
//!    healing to exact instance counts (state and live processes).
//!
//! Run: `cargo bench --bench chaos` as root (`ORCH_CHAOS_ROUNDS`: leader kills, default 20;
//! the cuts take half as many).

#[path = "../tests/support/mod.rs"]
mod support;

#[path = "../tests/support/chaos.rs"]
mod chaos;
#[path = "../tests/support/linearizability.rs"]
mod linearizability;

mod common;

use std::time::Duration;

use support::{Cluster, Net};

fn main() {
    if !common::invoked_as_bench("chaos") {
        return;
    }
    let rounds = common::env_count("ORCH_CHAOS_ROUNDS", 20);
    common::runtime().block_on(async {
        leader_kills(rounds).await;
        leader_cuts(rounds / 2).await;
        agent_cuts(rounds / 2).await;
    });
}

fn spread(samples: &[Duration]) -> String {
    let mut sorted = samples.to_vec();
    sorted.sort();
    format!(
        "median {} · max {}",
        common::ms(common::percentile(&sorted, 50.0)),
        common::ms(sorted.last().copied().unwrap_or_default())
    )
}

async fn leader_kills(rounds: usize) {
    let mut c = Cluster::start(3, &[]);
    c.wait_for_leader(Duration::from_secs(30)).await;
    let workload = chaos::Workload::start(&c.http, chaos::urls(&c), 6, 6);
    let recoveries = chaos::kill_leader_rounds(&mut c, rounds).await;
    let leader = c.wait_for_leader(Duration::from_secs(30)).await;
    let history = workload.finish(&c.url(leader)).await;
    let verdict = linearizability::check(&history, Duration::from_secs(120));
    assert!(verdict.is_linearizable(), "{verdict:?}");
    let (acked, p50, p99) = chaos::write_latencies(&history);
    println!(
        "| chaos: {rounds} leader kills (kill -9) under 6 clients | {} operations, {acked} writes acknowledged, **0 lost**, linearizable | write p50 **{}** · p99 **{}** | next acknowledged write after a kill: {} |",
        history.len(),
        common::ms(p50),
        common::ms(p99),
        spread(&recoveries)
    );
}

async fn leader_cuts(rounds: usize) {
    let net = Net::new(3);
    let mut c = chaos::cluster_in(&net);
    c.wait_for_leader(Duration::from_secs(30)).await;
    let recoveries = chaos::cut_leader_rounds(&mut c, &net, rounds).await;
    println!(
        "| chaos: the leader cut off from the other masters, {rounds} times | a new leader acknowledges a write after {} |",
        spread(&recoveries)
    );
}

async fn agent_cuts(rounds: usize) {
    let net = Net::new(3);
    let (mut c, marker) = chaos::partitioned_agents(&net).await;
    let healed = chaos::agent_partition_rounds(&mut c, &net, ("/cut", &marker, 4), rounds).await;
    println!(
        "| chaos: an agent cut off past --agent-timeout (2 s), {rounds} times | exact counts (4 tasks, 4 processes) after healing: {} |",
        spread(&healed)
    );
}

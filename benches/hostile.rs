//! Hostile requests against one master (release build): `/ping` is asked every 10 ms for
//! `ORCH_BENCH_SECS` (default 30) after each request, and the master's RSS is sampled.
//!
//! 1. `POST /v2/apps` with `instances: 5000000`, `cpus: 0`, `mem: 0` (the request that once
//!    took a master to 3 GB): refused with 422.
//! 2. The largest app orch accepts, the same but with 10,000 instances, on 10 simulated
//!    agents (`orch agent --simulate 10 --containerizers mock`): launched within the launch
//!    budget, 1,000 tasks per control pass.
//!
//! Run: `cargo bench --bench hostile`. Target: `/ping` p99 ≤ 100 ms and RSS growth ≤ 100 MB
//! for the first.

#[path = "../tests/support/mod.rs"]
mod support;

mod common;

use std::time::{Duration, Instant};

use serde_json::json;
use support::Cluster;

const RESOURCES: &str = "cpus:200;mem:100000;disk:100000";

fn main() {
    if !common::invoked_as_bench("hostile") {
        return;
    }
    let secs = common::env_or("ORCH_BENCH_SECS", 30);
    common::runtime().block_on(async {
        let mut c = Cluster::start(1, &[]);
        c.wait_for_leader(Duration::from_secs(30)).await;
        c.add_agent(&[
            "--simulate",
            "10",
            "--containerizers",
            "mock",
            "--resources",
            RESOURCES,
        ]);
        c.wait_for_agents(0, 10, Duration::from_secs(60)).await;
        let apps = format!("{}/v2/apps", c.url(0));
        for (what, instances, want) in [
            ("POST 5,000,000 instances (cpus 0, mem 0)", 5_000_000, 422),
            ("POST 10,000 instances (cpus 0, mem 0), the cap", 10_000, 201),
        ] {
            let app = json!({"id": format!("/hostile/n{instances}"), "cmd": "sleep 1000",
                             "cpus": 0, "mem": 0, "instances": instances,
                             "portDefinitions": []});
            let pid = c.masters[0].pid();
            let before = common::rss_mib(pid);
            let r = c.http.post(&apps, &app).await;
            assert_eq!(r.status, want, "{what}: {}", r.body);
            let (pings, peak) = ping_for(&c, pid, Duration::from_secs(secs)).await;
            let mut sorted = pings.clone();
            sorted.sort();
            println!(
                "| hostile: {what} → {want}; `/ping` every 10 ms for {secs} s | {} pings | p50 {} | **p99 {}** | max {} | RSS {before:.1} → peak {peak:.1} MiB (**+{:.1} MiB**) |",
                sorted.len(),
                common::ms(common::percentile(&sorted, 50.0)),
                common::ms(common::percentile(&sorted, 99.0)),
                common::ms(sorted.last().copied().unwrap_or_default()),
                peak - before,
            );
        }
    });
}

/// `/ping` latencies every 10 ms for `span`, and the master's peak RSS (MiB) meanwhile.
async fn ping_for(c: &Cluster, pid: u32, span: Duration) -> (Vec<Duration>, f64) {
    let url = format!("{}/ping", c.url(0));
    let started = Instant::now();
    let mut pings = Vec::new();
    let mut peak: f64 = 0.0;
    while started.elapsed() < span {
        let t = Instant::now();
        let r = c.http.get(&url).await;
        assert_eq!(r.status, 200, "/ping: {}", r.body);
        pings.push(t.elapsed());
        if pings.len() % 10 == 0 {
            peak = peak.max(common::rss_mib(pid));
        }
        tokio::time::sleep(Duration::from_millis(10).saturating_sub(t.elapsed())).await;
    }
    (pings, peak.max(common::rss_mib(pid)))
}

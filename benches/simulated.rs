//! Scale benchmark with simulated agents: one master and one `orch agent --simulate 100
//! --containerizers mock` process (100 agents with mock tasks, each offering
//! `cpus:200;mem:100000`). POSTs one app with 10,000 instances (cpus 0.01, mem 1, no ports)
//! and times from just before the POST until `GET /v2/apps` reports all 10,000 tasks running
//! (polled every 50 ms).
//!
//! Run: `cargo bench --bench simulated` (`ORCH_BENCH_INSTANCES`, default 10000;
//! `ORCH_BENCH_WAIT_SECS`, how long to wait for all running, default 300;
//! `ORCH_BENCH_AGENTS`, default 100).

#[path = "../tests/support/mod.rs"]
mod support;

mod common;

use std::time::{Duration, Instant};

use serde_json::json;
use support::Cluster;

const RESOURCES: &str = "cpus:200;mem:100000;disk:100000";

fn main() {
    if !common::invoked_as_bench("simulated") {
        return;
    }
    let instances = common::env_or("ORCH_BENCH_INSTANCES", 10_000);
    let agents = common::env_or("ORCH_BENCH_AGENTS", 100);
    let wait = common::env_or("ORCH_BENCH_WAIT_SECS", 300);
    common::runtime().block_on(async {
        let mut c = Cluster::start(1, &[]);
        c.wait_for_leader(Duration::from_secs(30)).await;
        let n = agents.to_string();
        c.add_agent(&[
            "--simulate",
            &n,
            "--containerizers",
            "mock",
            "--resources",
            RESOURCES,
        ]);
        c.wait_for_agents(0, usize::try_from(agents).expect("a count"), Duration::from_secs(60))
            .await;
        let master = c.url(0);
        let app = json!({
            "id": "/sim/big", "cmd": "sleep 1000", "cpus": 0.01, "mem": 1,
            "instances": instances, "portDefinitions": []
        });
        let t0 = Instant::now();
        let r = c.http.post(&format!("{master}/v2/apps"), &app).await;
        assert_eq!(r.status, 201, "{}", r.body);
        let posted = t0.elapsed();
        let deadline = t0 + Duration::from_secs(wait);
        let mut last_log = Instant::now();
        let mut first_running = None;
        let took = loop {
            let r = c.http.get(&format!("{master}/v2/apps")).await;
            assert_eq!(r.status, 200, "GET /v2/apps: {}", r.body);
            let running = r.json()["apps"][0]["tasksRunning"].as_u64().unwrap_or(0);
            if running > 0 && first_running.is_none() {
                first_running = Some(t0.elapsed());
            }
            if running == instances {
                break t0.elapsed();
            }
            if last_log.elapsed() >= Duration::from_secs(1) {
                eprintln!("{:.1} s: {running} running", t0.elapsed().as_secs_f64());
                last_log = Instant::now();
            }
            c.masters[0].assert_running();
            c.agents[0].assert_running();
            assert!(
                Instant::now() < deadline,
                "{instances} tasks not running within {wait} s (have {running})"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        println!(
            "| simulated: POST 1 app × {instances} instances → all TASK_RUNNING, {agents} simulated agents (mock) | wall **{:.2} s** | POST answered {} | first task running {} | {:.0} tasks/s |",
            took.as_secs_f64(),
            common::ms(posted),
            common::ms(first_running.unwrap_or_default()),
            instances as f64 / took.as_secs_f64(),
        );
    });
}

//! Read benchmark: `GET /v2/apps?embed=apps.tasks` with 1,000 apps × 10 running tasks. The
//! tasks are real (placed by the master, reported running by agents): one `orch agent
//! --simulate 100 --containerizers mock` process runs them as mock tasks. The apps are
//! POSTed by 16 concurrent clients; once all 10,000 tasks run, 200 sequential GETs are timed
//! (until the whole body is read) after 5 unmeasured ones.
//!
//! Run: `cargo bench --bench apps_embed` (`ORCH_BENCH_APPS`, default 1000;
//! `ORCH_BENCH_WAIT_SECS`, how long to wait for all tasks running, default 300;
//! `ORCH_BENCH_REQUESTS`, default 200).

#[path = "../tests/support/mod.rs"]
mod support;

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use support::Cluster;

const RESOURCES: &str = "cpus:200;mem:100000;disk:100000";
const AGENTS: usize = 100;
const TASKS_PER_APP: u64 = 10;
const CLIENTS: usize = 16;
const WARMUP: usize = 5;

fn main() {
    if !common::invoked_as_bench("apps_embed") {
        return;
    }
    let apps = common::env_or("ORCH_BENCH_APPS", 1000);
    let requests = common::env_count("ORCH_BENCH_REQUESTS", 200);
    let wait = common::env_or("ORCH_BENCH_WAIT_SECS", 300);
    common::runtime().block_on(async {
        let mut c = Cluster::start(1, &[]);
        c.wait_for_leader(Duration::from_secs(30)).await;
        let n = AGENTS.to_string();
        c.add_agent(&[
            "--simulate",
            &n,
            "--containerizers",
            "mock",
            "--resources",
            RESOURCES,
        ]);
        c.wait_for_agents(0, AGENTS, Duration::from_secs(60)).await;
        let master = c.url(0);

        let next = Arc::new(AtomicU64::new(0));
        let mut clients = Vec::new();
        for _ in 0..CLIENTS {
            let next = Arc::clone(&next);
            let http = c.http.clone();
            let url = format!("{master}/v2/apps");
            clients.push(tokio::spawn(async move {
                loop {
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    if k >= apps {
                        return;
                    }
                    let app = json!({
                        "id": format!("/embed/app-{k}"), "cmd": "sleep 1000", "cpus": 0.01,
                        "mem": 1, "instances": TASKS_PER_APP, "portDefinitions": []
                    });
                    let r = http.post(&url, &app).await;
                    assert_eq!(r.status, 201, "POST app {k}: {}", r.body);
                }
            }));
        }
        for client in clients {
            client.await.expect("client task panicked");
        }
        let want = apps * TASKS_PER_APP;
        let deadline = Instant::now() + Duration::from_secs(wait);
        loop {
            let r = c.http.get(&format!("{master}/v2/apps")).await;
            assert_eq!(r.status, 200, "GET /v2/apps: {}", r.body);
            let running: u64 = r.json()["apps"]
                .as_array()
                .map(|a| a.iter().filter_map(|a| a["tasksRunning"].as_u64()).sum())
                .unwrap_or(0);
            if running == want {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{want} tasks not running within {wait} s (have {running})"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }

        let url = format!("{master}/v2/apps?embed=apps.tasks");
        let mut samples = Vec::new();
        let mut bytes = 0;
        for k in 0..WARMUP + requests {
            let t0 = Instant::now();
            let r = c
                .http
                .send(reqwest::Method::GET, &url, None, Some(Duration::from_secs(30)))
                .await
                .unwrap_or_else(|e| panic!("{e:#}"));
            let took = t0.elapsed();
            assert_eq!(r.status, 200, "GET {url}");
            if k == 0 {
                let body = r.json();
                let listed = body["apps"].as_array().expect("apps array");
                let tasks: usize = listed
                    .iter()
                    .map(|a| a["tasks"].as_array().map_or(0, Vec::len))
                    .sum();
                assert_eq!(listed.len() as u64, apps, "apps listed");
                assert_eq!(tasks as u64, want, "tasks embedded");
                bytes = r.body.len();
            }
            if k >= WARMUP {
                samples.push(took);
            }
        }
        c.masters[0].assert_running();
        samples.sort();
        println!(
            "| apps embed: GET /v2/apps?embed=apps.tasks, {apps} apps × {TASKS_PER_APP} running tasks ({:.1} MiB of JSON) | {requests} requests | p50 **{}** | p99 {} | max {} |",
            bytes as f64 / (1024.0 * 1024.0),
            common::ms(common::percentile(&samples, 50.0)),
            common::ms(common::percentile(&samples, 99.0)),
            common::ms(samples.last().copied().unwrap_or_default()),
        );
    });
}

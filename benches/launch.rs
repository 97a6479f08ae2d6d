//! Launch latency benchmark: one master and one agent (mesos containerizer, process tasks)
//! on this machine. Each launch POSTs a new app (`sleep 1000`, one instance, no ports) and
//! times from just before the POST to the `status_update_event` with `TASK_RUNNING` for that
//! app on `/v2/events` — Marathon's "create → running" path: Raft write, deployment,
//! placement, desired-set push to the agent, `orch executor` spawn, status update, Raft write.
//! One app per launch (rather than scaling one app by 1) because that is what a user creating
//! an app waits for; the apps stay running, so the agent holds N tasks at launch N.
//!
//! Next to it: a bare `sh -c 'sleep 1000'` spawn on the same machine, timed from before
//! `fork`+`exec` until `sleep` runs (the shell's process image is `sleep`, or it has a `sleep`
//! child), as the floor any launcher pays.
//!
//! Run: `cargo bench --bench launch` (`ORCH_BENCH_LAUNCHES`, default 200; 5 unmeasured
//! warm-up launches come first).

#[path = "../tests/support/mod.rs"]
mod support;

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use support::Cluster;

const WARMUP: usize = 5;
const RESOURCES: &str = "cpus:64;mem:65536;disk:10000;ports:[31000-31100]";

fn main() {
    if !common::invoked_as_bench("launch") {
        return;
    }
    let launches = common::env_count("ORCH_BENCH_LAUNCHES", 200);
    let bare = bare_spawns(launches);
    common::runtime().block_on(async {
        let mut c = Cluster::start(1, &[]);
        c.wait_for_leader(Duration::from_secs(30)).await;
        c.add_agent(&["--resources", RESOURCES, "--containerizers", "mesos"]);
        c.wait_for_agents(0, 1, Duration::from_secs(30)).await;
        let master = c.url(0);
        let mut events = support::follow_events(&master, &["status_update_event"]).await;

        let mut steps: Vec<(String, Vec<Duration>)> = Vec::new();
        let mut post = Vec::new();
        for n in 0..WARMUP + launches {
            let id = format!("/launch/app-{n}");
            let app = json!({
                "id": id, "cmd": "sleep 1000", "cpus": 0.01, "mem": 8,
                "instances": 1, "portDefinitions": []
            });
            let t0 = Instant::now();
            let r = c.http.post(&format!("{master}/v2/apps"), &app).await;
            let posted = t0.elapsed();
            assert_eq!(r.status, 201, "POST {id}: {}", r.body);
            // Every status the task passes through on the way, first time seen.
            let mut seen: Vec<(String, Duration)> = Vec::new();
            let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
            loop {
                let ev = tokio::time::timeout_at(deadline, events.recv())
                    .await
                    .unwrap_or_else(|_| panic!("{id}: not TASK_RUNNING within 30 s: {seen:?}"))
                    .expect("event stream ended");
                if ev.event_type != "status_update_event" || ev.data["appId"] != json!(id) {
                    continue;
                }
                let status = ev.data["taskStatus"].as_str().unwrap_or("?").to_string();
                if !seen.iter().any(|(s, _)| *s == status) {
                    seen.push((status.clone(), ev.at.duration_since(t0)));
                }
                if status == "TASK_RUNNING" {
                    break;
                }
            }
            if n >= WARMUP {
                for (status, at) in seen {
                    match steps.iter_mut().find(|(s, _)| *s == status) {
                        Some((_, v)) => v.push(at),
                        None => steps.push((status, vec![at])),
                    }
                }
                post.push(posted);
            }
        }
        c.masters[0].assert_running();
        c.agents[0].assert_running();
        post.sort();
        for (_, v) in &mut steps {
            v.sort();
        }
        let p = common::percentile;
        let mut total = steps
            .iter()
            .find(|(s, _)| s == "TASK_RUNNING")
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        total.sort();
        let breakdown: Vec<String> = steps
            .iter()
            .map(|(s, v)| format!("{s} ({} events) p50 {}", v.len(), common::ms(p(v, 50.0))))
            .collect();
        println!(
            "| launch: POST /v2/apps → TASK_RUNNING event, 1 master + 1 agent, process task | {launches} launches | p50 {} | p99 {} | max {} | POST answered: p50 {}, p99 {}; first event per status: {} |",
            common::ms(p(&total, 50.0)),
            common::ms(p(&total, 99.0)),
            common::ms(total.last().copied().unwrap_or_default()),
            common::ms(p(&post, 50.0)),
            common::ms(p(&post, 99.0)),
            breakdown.join(", "),
        );
    });
    println!(
        "| launch: bare `sh -c 'sleep 1000'` fork+exec → sleep running | {launches} spawns | p50 {} | p99 {} | max {} |",
        common::ms(common::percentile(&bare, 50.0)),
        common::ms(common::percentile(&bare, 99.0)),
        common::ms(bare.last().copied().unwrap_or_default()),
    );
}

/// Times `n` spawns of `sh -c 'sleep 1000'` until `sleep` runs; kills each afterwards.
fn bare_spawns(n: usize) -> Vec<Duration> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let t0 = Instant::now();
        let mut child = Command::new("sh")
            .args(["-c", "sleep 1000"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn sh");
        let pid = child.id();
        let deadline = t0 + Duration::from_secs(5);
        while !runs_sleep(pid) {
            assert!(Instant::now() < deadline, "sleep did not start within 5 s");
            std::thread::yield_now();
        }
        out.push(t0.elapsed());
        let _ = Command::new("pkill")
            .args(["-9", "-P", &pid.to_string()])
            .status();
        let _ = child.kill();
        let _ = child.wait();
    }
    out.sort();
    out
}

/// Whether `pid` is running `sleep`, or has a child that is.
fn runs_sleep(pid: u32) -> bool {
    let comm = |p: &str| std::fs::read_to_string(format!("/proc/{p}/comm")).unwrap_or_default();
    if comm(&pid.to_string()).trim() == "sleep" {
        return true;
    }
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .any(|c| comm(c).trim() == "sleep")
}

//! Agent loss benchmark: one master (default `--agent-timeout`, 5 s) and two agents (mesos
//! containerizer). One app with one instance (`sleep 1000`); each round SIGKILLs the agent
//! running it and times until a replacement task is `TASK_RUNNING` (its
//! `status_update_event` on `/v2/events`). Then the killed agent is restarted, the master
//! kills the surplus (old) task on it, and the next round starts once both agents are
//! reachable and the app has exactly one running task.
//!
//! Run: `cargo bench --bench agent_loss` (`ORCH_BENCH_ROUNDS`, default 10).

#[path = "../tests/support/mod.rs"]
mod support;

mod common;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::Cluster;

const RESOURCES: &str = "cpus:4;mem:4096;disk:1000;ports:[31000-31100]";
const APP: &str = "/survivor";

fn main() {
    if !common::invoked_as_bench("agent_loss") {
        return;
    }
    let rounds = common::env_count("ORCH_BENCH_ROUNDS", 10);
    common::runtime().block_on(async {
        let mut c = Cluster::start(1, &[]);
        c.wait_for_leader(Duration::from_secs(30)).await;
        for _ in 0..2 {
            c.add_agent(&["--resources", RESOURCES, "--containerizers", "mesos"]);
        }
        c.wait_for_agents(0, 2, Duration::from_secs(30)).await;
        let master = c.url(0);
        let mut events = support::follow_events(&master, &["status_update_event"]).await;
        let app = json!({
            "id": APP, "cmd": "sleep 1000", "cpus": 0.1, "mem": 16, "portDefinitions": []
        });
        let r = c.http.post(&format!("{master}/v2/apps"), &app).await;
        assert_eq!(r.status, 201, "{}", r.body);

        let mut samples = Vec::new();
        for round in 1..=rounds {
            let task = one_running(&c, Duration::from_secs(30)).await;
            let old_id = task["id"].clone();
            let host = task["host"].as_str().expect("task host").to_string();
            let lost = c
                .agents
                .iter()
                .position(|a| a.name == host)
                .unwrap_or_else(|| panic!("task host {host} is not one of our agents"));
            // Events from before the kill (the previous round's) are not answers.
            while events.try_recv().is_ok() {}
            let t0 = Instant::now();
            c.agents[lost].kill9();
            let ev = support::wait_status(
                &mut events,
                "TASK_RUNNING",
                Duration::from_secs(60),
                |d| d["appId"] == json!(APP) && d["taskId"] != old_id,
            )
            .await;
            let took = ev.at.duration_since(t0);
            eprintln!("round {round}: replacement running after {}", common::ms(took));
            samples.push(took);
            c.agents[lost].restart();
            c.wait_for_agents(0, 2, Duration::from_secs(30)).await;
        }
        one_running(&c, Duration::from_secs(30)).await;
        c.masters[0].assert_running();
        samples.sort();
        println!(
            "| agent loss: SIGKILL the agent of a 1-instance app → replacement TASK_RUNNING, agent timeout 5 s | {} rounds | median {} | min {} | max {} |",
            samples.len(),
            common::ms(common::percentile(&samples, 50.0)),
            common::ms(samples.first().copied().unwrap_or_default()),
            common::ms(samples.last().copied().unwrap_or_default()),
        );
    });
}

/// Waits until the app has exactly one task and it is `TASK_RUNNING`; returns it.
async fn one_running(c: &Cluster, timeout: Duration) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        let r = c
            .http
            .get(&format!("{}/v2/apps{APP}/tasks", c.url(0)))
            .await;
        let tasks = if r.status == 200 {
            r.json()["tasks"].as_array().cloned().unwrap_or_default()
        } else {
            Vec::new()
        };
        if tasks.len() == 1 && tasks[0]["state"] == json!("TASK_RUNNING") {
            return tasks[0].clone();
        }
        assert!(
            Instant::now() < deadline,
            "{APP}: no single running task within {timeout:?}: {}",
            r.body
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

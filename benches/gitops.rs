//! GitOps latency: one master and one agent (process tasks) on this machine.
//!
//! 1. Commit → deployment started, file watch: a local repo watched with a 1 h poll, so
//!    only the file watch can notice the commit. Timed from just before `git commit` to the
//!    `deployment_info` event on `/v2/events`.
//! 2. Commit → deployment started, webhook: a `file://` URL (fetched like a remote, no file
//!    watch, 1 h poll); timed from before `git commit`, through a generic CI webhook call,
//!    to `deployment_info`.
//! 3. Commit → all 10 instances of a process app RUNNING and passing a COMMAND health check
//!    at the new version (each round changes `cmd`, a rolling restart; the first creates it).
//!
//! Argo CD polls every 120–180 s and Flux every minute by default; both take webhooks.
//!
//! Run: `cargo bench --bench gitops` (`ORCH_BENCH_ROUNDS`, default 20; the 10-instance
//! rounds are a quarter of that, at least 3).

#[path = "../tests/support/mod.rs"]
mod support;

mod common;

use serde_json::{json, Value};
use std::time::{Duration, Instant};
use support::{Cluster, GitRepo};

const RESOURCES: &str = "cpus:64;mem:65536;disk:10000;ports:[31000-31100]";

fn main() {
    if !common::invoked_as_bench("gitops") {
        return;
    }
    let rounds = common::env_count("ORCH_BENCH_ROUNDS", 20);
    common::runtime().block_on(async {
        let mut c = Cluster::start(1, &[]);
        c.wait_for_leader(Duration::from_secs(30)).await;
        c.add_agent(&["--resources", RESOURCES, "--containerizers", "mesos"]);
        c.wait_for_agents(0, 1, Duration::from_secs(30)).await;
        let master = c.url(0);

        let watched = GitRepo::new();
        let hooked = GitRepo::new();
        let wide = GitRepo::new();
        for (repo, id) in [(&watched, "/watch/app"), (&hooked, "/hook/app")] {
            repo.write("apps/app.json", &app(id, 0));
            repo.commit("first");
        }
        wide.write("apps/wide.json", &wide_app(0));
        wide.commit("first");
        let configs = [
            json!({"repo": watched.path().display().to_string(), "name": "watched",
                "group": "/watch", "interval": "1h"}),
            json!({"repo": format!("file://{}", hooked.path().display()), "name": "hooked",
                "group": "/hook", "interval": "1h", "webhookSecret": "bench"}),
        ];
        for config in &configs {
            let r = c.http.post(&format!("{master}/v1/gitops"), config).await;
            assert_eq!(r.status, 201, "{}", r.body);
        }
        wait_applied(&c, &master, "watched", &watched.head()).await;
        wait_applied(&c, &master, "hooked", &hooked.head()).await;
        let mut events = support::follow_events(&master, &["deployment_info"]).await;

        let mut by_watch = Vec::new();
        let mut by_hook = Vec::new();
        for n in 1..=rounds {
            watched.write("apps/app.json", &app("/watch/app", n));
            let t0 = Instant::now();
            watched.commit(&format!("round {n}"));
            by_watch.push(deployment_started(&mut events, "/watch/app", t0).await);

            hooked.write("apps/app.json", &app("/hook/app", n));
            let t0 = Instant::now();
            let commit = hooked.commit(&format!("round {n}"));
            let body = json!({"ref": "refs/heads/main", "commit": commit}).to_string();
            let r = c
                .http
                .client
                .post(format!("{master}/v1/gitops/webhook"))
                .header("Authorization", "Bearer bench")
                .body(body)
                .send()
                .await
                .expect("webhook call");
            assert_eq!(r.status().as_u16(), 202);
            by_hook.push(deployment_started(&mut events, "/hook/app", t0).await);
        }

        let config = json!({"repo": wide.path().display().to_string(), "name": "wide",
            "group": "/wide", "interval": "1h"});
        let r = c.http.post(&format!("{master}/v1/gitops"), &config).await;
        assert_eq!(r.status, 201, "{}", r.body);
        let mut healthy = Vec::new();
        for n in 1..=(rounds / 4).max(3) {
            wide.write("apps/wide.json", &wide_app(n));
            let t0 = Instant::now();
            wide.commit(&format!("round {n}"));
            healthy.push(all_healthy(&c, &master, &format!("sleep 1000 # {n}"), t0).await);
        }

        println!("commit -> deployment started, 1 master + 1 agent, {rounds} rounds each");
        report("file watch (local repo, 1 h poll)", &mut by_watch);
        report("webhook (file:// remote, generic CI call)", &mut by_hook);
        println!(
            "commit -> 10 instances RUNNING and healthy (rolling restart; first round creates)"
        );
        report("10-instance process app", &mut healthy);
    });
}

fn app(id: &str, n: usize) -> String {
    json!({"id": id, "cmd": format!("sleep 1000 # {n}"), "cpus": 0.01, "mem": 8,
        "instances": 1, "portDefinitions": []})
    .to_string()
}

fn wide_app(n: usize) -> String {
    json!({"id": "/wide/app", "cmd": format!("sleep 1000 # {n}"), "cpus": 0.01, "mem": 8,
        "instances": 10, "portDefinitions": [],
        "healthChecks": [{"protocol": "COMMAND", "command": {"value": "true"},
            "intervalSeconds": 1, "gracePeriodSeconds": 10}]})
    .to_string()
}

async fn wait_applied(c: &Cluster, master: &str, name: &str, commit: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = c.http.get(&format!("{master}/v1/gitops/{name}")).await;
        if r.json()["lastApplied"] == commit {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{name} never applied {commit}: {}",
            r.body
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The time from `t0` to the `deployment_info` event of a deployment touching `app`.
async fn deployment_started(
    events: &mut tokio::sync::mpsc::UnboundedReceiver<support::Received>,
    app: &str,
    t0: Instant,
) -> Duration {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let event = tokio::time::timeout_at(deadline, events.recv())
            .await
            .unwrap_or_else(|_| panic!("no deployment of {app} within 30 s"))
            .expect("event stream open");
        let touches = |plan: &Value| {
            plan["steps"].as_array().into_iter().flatten().any(|step| {
                step["actions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|action| action["app"] == app)
            })
        };
        if event.event_type == "deployment_info" && touches(&event.data["plan"]) {
            return event.at.duration_since(t0);
        }
    }
}

/// Polls until `/wide/app` runs 10 healthy tasks of the definition with `cmd`.
async fn all_healthy(c: &Cluster, master: &str, cmd: &str, t0: Instant) -> Duration {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = c
            .http
            .get(&format!("{master}/v2/apps/wide/app?embed=app.tasks"))
            .await;
        let app = &r.json()["app"];
        let version = app["version"].clone();
        let current = app["cmd"] == cmd;
        let good = app["tasks"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|task| {
                task["state"] == "TASK_RUNNING"
                    && task["version"] == version
                    && task["healthCheckResults"]
                        .as_array()
                        .is_some_and(|results| results.iter().any(|h| h["alive"] == true))
            })
            .count();
        if current && good == 10 && app["tasks"].as_array().map_or(0, Vec::len) == 10 {
            return t0.elapsed();
        }
        assert!(
            Instant::now() < deadline,
            "10 healthy tasks never ran: {}",
            r.body
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn report(what: &str, samples: &mut [Duration]) {
    samples.sort();
    println!(
        "  {what}: median {}, min {}, max {} (n = {})",
        common::ms(common::percentile(samples, 50.0)),
        common::ms(samples[0]),
        common::ms(samples[samples.len() - 1]),
        samples.len()
    );
}

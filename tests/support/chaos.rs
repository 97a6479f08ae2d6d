//! The chaos suite's client load: several clients writing and reading a few apps through
//! every master while faults are injected, recording each operation with when it was
//! invoked, when it returned and what it saw. A write that got no clear answer (a timeout,
//! a 5xx) has an unknown outcome: it may or may not have taken effect. The history is then
//! checked for linearizability (`linearizability.rs`) and for lost writes.
//!
//! Also the fault scenarios the tests and `benches/chaos.rs` share: leader kills and cuts,
//! agent partitions, and exact task counts. Included by path, beside `linearizability.rs`,
//! by the crates that use it, so the others do not compile it.
//!
//! A write is `PUT /v2/apps/chaos/k<N>?force=true` setting `env.V` (it creates the app the
//! first time, 0 instances); a read is `GET /v2/apps/chaos/k<N>` (404: no value yet).

// Each crate that includes this file uses a part of it.
#![allow(dead_code)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::linearizability::{Op, Operation, Outcome, Recorder};
use crate::support::{Cluster, Http, Net};

/// One operation on app `chaos/k<key>`'s `env.V`.
pub type History = Vec<Operation<usize, String>>;

/// How long a client waits for one answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);

/// Clients writing and reading until stopped.
pub struct Workload {
    recorder: Recorder<usize, String>,
    stop: Arc<AtomicBool>,
    clients: Vec<tokio::task::JoinHandle<()>>,
    http: Http,
    keys: usize,
}

impl Workload {
    /// `clients` clients over `keys` apps, sending to `urls` (masters) in turn.
    pub fn start(http: &Http, urls: Vec<String>, keys: usize, clients: usize) -> Workload {
        let recorder = Recorder::new();
        let stop = Arc::new(AtomicBool::new(false));
        let clients = (0..clients)
            .map(|client| {
                let (recorder, stop, http, urls) = (
                    recorder.clone(),
                    Arc::clone(&stop),
                    http.clone(),
                    urls.clone(),
                );
                tokio::spawn(async move {
                    let mut n = 0usize;
                    while !stop.load(Ordering::Relaxed) {
                        n += 1;
                        let url = &urls[(client + n) % urls.len()];
                        let key = (client * 7 + n * 3) % keys;
                        let answered = if n % 2 == 0 {
                            let value = format!("c{client}-{n}");
                            write(&http, url, &recorder, client, key, value).await
                        } else {
                            read(&http, url, &recorder, client, key).await
                        };
                        if !answered {
                            // No leader or a refusal: a short pause before the next try.
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                })
            })
            .collect();
        Workload {
            recorder,
            stop,
            clients,
            http: http.clone(),
            keys,
        }
    }

    /// Stops the clients, then reads every key once more through `url` (after the faults
    /// healed) and returns the whole history.
    pub async fn finish(self, url: &str) -> History {
        self.stop.store(true, Ordering::Relaxed);
        for client in self.clients {
            let _ = client.await;
        }
        for key in 0..self.keys {
            let deadline = Instant::now() + Duration::from_secs(20);
            while !read(&self.http, url, &self.recorder, usize::MAX, key).await {
                assert!(
                    Instant::now() < deadline,
                    "no final read of key {key} through {url} within 20 s"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        self.recorder.history()
    }
}

/// One write; false unless it got a clear answer.
async fn write(
    http: &Http,
    url: &str,
    recorder: &Recorder<usize, String>,
    client: usize,
    key: usize,
    value: String,
) -> bool {
    let body = json!({"cmd": "sleep 1000", "instances": 0, "cpus": 0.01, "mem": 1,
                      "env": {"V": &value}});
    let id = recorder.call(client, Op::Write { key, value });
    let answer = http
        .send(
            reqwest::Method::PUT,
            &format!("{url}/v2/apps/chaos/k{key}?force=true"),
            Some(body.to_string()),
            Some(REQUEST_TIMEOUT),
        )
        .await;
    let outcome = match &answer {
        Ok(response) if response.ok() => Outcome::Written,
        // Refused before anything was written (a 4xx).
        Ok(response) if response.status < 500 => Outcome::Failed,
        // A timeout, a reset or a 5xx: it may have been applied.
        _ => Outcome::Unknown,
    };
    let answered = matches!(outcome, Outcome::Written);
    recorder.complete(id, outcome);
    answered
}

/// One read; false unless it got an answer.
async fn read(
    http: &Http,
    url: &str,
    recorder: &Recorder<usize, String>,
    client: usize,
    key: usize,
) -> bool {
    let id = recorder.call(client, Op::Read { key });
    let response = http
        .send(
            reqwest::Method::GET,
            &format!("{url}/v2/apps/chaos/k{key}"),
            None,
            Some(REQUEST_TIMEOUT),
        )
        .await;
    let outcome = match response {
        Ok(response) if response.status == 200 => Outcome::Read(
            response.json()["app"]["env"]["V"]
                .as_str()
                .map(str::to_owned),
        ),
        Ok(response) if response.status == 404 => Outcome::Read(None),
        // A read that saw nothing constrains nothing.
        _ => Outcome::Unknown,
    };
    let answered = matches!(outcome, Outcome::Read(_));
    recorder.complete(id, outcome);
    answered
}

/// Acknowledged writes and their latencies: how many, p50 and p99.
pub fn write_latencies(history: &History) -> (usize, Duration, Duration) {
    let mut latencies: Vec<Duration> = history
        .iter()
        .filter(|operation| matches!(operation.outcome, Outcome::Written))
        .filter_map(|operation| Some(Duration::from_nanos(operation.ret? - operation.call)))
        .collect();
    latencies.sort();
    let at = |percent: usize| {
        let rank = (latencies.len() * percent).div_ceil(100).max(1);
        latencies.get(rank - 1).copied().unwrap_or_default()
    };
    (latencies.len(), at(50), at(99))
}

/// `ORCH_CHAOS_ROUNDS`: how many faults each scenario injects (default 5).
pub fn rounds() -> usize {
    std::env::var("ORCH_CHAOS_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5)
}

/// Indexes `0..n` but `not`.
pub fn others(n: usize, not: usize) -> Vec<usize> {
    (0..n).filter(|&i| i != not).collect()
}

/// Every master's URL.
pub fn urls(c: &Cluster) -> Vec<String> {
    (0..c.masters.len()).map(|i| c.url(i)).collect()
}

/// Three masters, each in its own network namespace of `net`.
pub fn cluster_in(net: &Net) -> Cluster {
    let mut c = Cluster::empty();
    let addrs: Vec<String> = (0..3).map(|i| format!("{}:7000", net.ip(i))).collect();
    for (i, addr) in addrs.iter().enumerate() {
        let args = [
            "--listen",
            addr,
            "--advertise",
            addr,
            "--masters",
            &addrs.join(","),
            "--insecure",
        ];
        c.add_in(net.prefix(i), addr, args.map(str::to_owned).to_vec());
    }
    c
}

/// How long the scenarios wait for a leader or a write.
const PATIENCE: Duration = Duration::from_secs(20);

/// `rounds` times: kill -9 the leader, time until a surviving master acknowledges a write,
/// restart the killed one.
pub async fn kill_leader_rounds(c: &mut Cluster, rounds: usize) -> Vec<Duration> {
    let mut recoveries = Vec::new();
    for round in 0..rounds {
        tokio::time::sleep(Duration::from_millis(700)).await;
        let leader = c.wait_for_leader(PATIENCE).await;
        c.masters[leader].kill9();
        let (took, _) = c
            .write_until_ok(
                &others(3, leader),
                &format!("/probe/kill-{round}"),
                PATIENCE,
            )
            .await
            .unwrap_or_else(|e| panic!("no write after killing the leader: {e}"));
        recoveries.push(took);
        c.masters[leader].start();
    }
    recoveries
}

/// `rounds` times: cut the leader off from the other masters (clients still reach it),
/// time until another master acknowledges a write, heal after a second.
pub async fn cut_leader_rounds(c: &mut Cluster, net: &Net, rounds: usize) -> Vec<Duration> {
    let mut recoveries = Vec::new();
    for round in 0..rounds {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let leader = c.wait_for_leader(PATIENCE).await;
        for other in others(3, leader) {
            net.cut(leader, other);
        }
        let (took, via) = c
            .write_until_ok(&others(3, leader), &format!("/probe/cut-{round}"), PATIENCE)
            .await
            .unwrap_or_else(|e| panic!("no write with the leader cut off: {e}"));
        assert_ne!(via, leader);
        recoveries.push(took);
        tokio::time::sleep(Duration::from_secs(1)).await;
        net.heal();
        c.wait_for_leader(PATIENCE).await;
    }
    recoveries
}

/// Live processes whose command line is exactly `sleep <marker>` (task processes, in any
/// namespace; not the shells or supervisors around them).
pub fn processes_with(marker: &str) -> usize {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    let wanted = format!("sleep {marker}");
    entries
        .filter_map(Result::ok)
        .filter(|entry| {
            entry
                .file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter(|entry| {
            let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            cmdline.trim() == wanted && !stat.contains(") Z ")
        })
        .count()
}

/// The app's tasks in master 0's state.
pub async fn app_tasks(c: &Cluster, app: &str) -> Vec<Value> {
    let r = c
        .http
        .get(&format!("{}/v2/apps{app}/tasks", c.url(0)))
        .await;
    if r.status != 200 {
        return Vec::new();
    }
    r.json()["tasks"].as_array().cloned().unwrap_or_default()
}

/// Waits until the app has exactly `n` tasks, all running, and `n` live processes run
/// `sleep <marker>`; returns how long that took.
pub async fn settle(c: &Cluster, app: &str, marker: &str, n: usize, timeout: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let tasks = app_tasks(c, app).await;
        let running = tasks
            .iter()
            .filter(|t| t["state"] == "TASK_RUNNING")
            .count();
        let processes = processes_with(marker);
        if tasks.len() == n && running == n && processes == n {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < timeout,
            "not settled within {timeout:?}: {} tasks ({running} running), {processes} processes; want {n}\n{}",
            tasks.len(),
            c.all_logs(30)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A master on host 0 of `net` (`--agent-timeout 2s`) and agents `agent-1` and `agent-2` on
/// hosts 1 and 2, running 4 instances of `/cut` (`exec sleep <marker>`, spread by hostname);
/// returns the cluster and the marker once all 4 run.
pub async fn partitioned_agents(net: &Net) -> (Cluster, String) {
    let mut c = Cluster::empty();
    let master = format!("{}:7000", net.ip(0));
    let args = [
        "--listen",
        &master,
        "--advertise",
        &master,
        "--insecure",
        "--agent-timeout",
        "2s",
    ];
    c.add_in(net.prefix(0), &master, args.map(str::to_owned).to_vec());
    c.wait_for_leader(PATIENCE).await;
    let flags = [
        "--resources",
        "cpus:8;mem:4096",
        "--containerizers",
        "mesos",
    ];
    c.add_agent_in(net.prefix(1), &net.ip(1), &flags);
    c.add_agent_in(net.prefix(2), &net.ip(2), &flags);
    c.wait_for_agents(0, 2, PATIENCE).await;
    let marker = format!("{}", 50_000 + std::process::id() % 10_000);
    let app = json!({"id": "/cut", "cmd": format!("exec sleep {marker}"), "instances": 4,
                     "cpus": 0.1, "mem": 8, "constraints": [["hostname", "GROUP_BY"]]});
    let r = c.http.post(&format!("{}/v2/apps", c.url(0)), &app).await;
    assert_eq!(r.status, 201, "{}", r.body);
    settle(&c, "/cut", &marker, 4, Duration::from_secs(30)).await;
    (c, marker)
}

/// `rounds` times: cut agent `1 + round % 2` (host of `net`; agents `agent-1` and
/// `agent-2`, the master on host 0 with a 2 s `--agent-timeout`) off from the master until
/// all `n` instances of `app` run on the other agent, then heal; returns the time from
/// healing to exact counts each round.
pub async fn agent_partition_rounds(
    c: &mut Cluster,
    net: &Net,
    (app, marker, n): (&str, &str, usize),
    rounds: usize,
) -> Vec<Duration> {
    let mut healed = Vec::new();
    for round in 0..rounds {
        let victim = 1 + round % 2;
        let survivor = format!("agent-{}", 3 - victim);
        net.cut(0, victim);
        let deadline = Instant::now() + PATIENCE;
        loop {
            let tasks = app_tasks(c, app).await;
            let on_survivor = tasks
                .iter()
                .filter(|t| t["host"] == survivor.as_str() && t["state"] == "TASK_RUNNING")
                .count();
            if on_survivor == n {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "no replacements on {survivor}\n{}",
                c.all_logs(30)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(
            processes_with(marker) > n,
            "the cut-off agent's tasks ran on"
        );
        net.heal();
        healed.push(settle(c, app, marker, n, PATIENCE).await);
        c.wait_for_agents(0, 2, PATIENCE).await;
    }
    healed
}

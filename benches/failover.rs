//! Failover benchmark: 3 masters on this machine; each round SIGKILLs the leader and times how
//! long until a write (`PUT /v2/apps/bench`) succeeds through a surviving master, then restarts
//! the killed master and waits until it has caught up. The same measurement is made for a
//! 3-node etcd cluster (Debian's `etcd-server`, default timings) when `/usr/bin/etcd` exists.
//!
//! Run: `cargo bench --bench failover` (rounds: `ORCH_BENCH_ROUNDS`, default 20; systems:
//! `ORCH_BENCH_SYSTEMS`, default `orch,etcd`).

#[path = "../tests/support/mod.rs"]
mod support;

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::{first_success, free_port, tail, Cluster, Http};

fn main() {
    if !common::invoked_as_bench("failover") {
        return;
    }
    let rounds = common::env_count("ORCH_BENCH_ROUNDS", 20);
    let systems = std::env::var("ORCH_BENCH_SYSTEMS").unwrap_or_else(|_| "orch,etcd".into());
    common::runtime().block_on(async {
        if systems.split(',').any(|s| s == "orch") {
            let orch = orch_rounds(rounds).await;
            report("orch", &orch);
        }
        if systems.split(',').any(|s| s == "etcd") {
            if Path::new(ETCD).exists() {
                let e = etcd_rounds(rounds).await;
                report("etcd 3.x (default timings)", &e);
            } else {
                println!("etcd half skipped: {ETCD} not found (apt-get install etcd-server)");
            }
        }
    });
}

fn report(system: &str, samples: &[Duration]) {
    let mut s = samples.to_vec();
    s.sort();
    println!(
        "| failover: SIGKILL leader → write accepted | {system} | {} rounds | median {} | max {} |",
        s.len(),
        common::ms(common::percentile(&s, 50.0)),
        common::ms(s.last().copied().unwrap_or_default())
    );
}

async fn orch_rounds(rounds: usize) -> Vec<Duration> {
    let mut c = Cluster::start(3, &[]);
    let mut leader = c.wait_for_leader(Duration::from_secs(30)).await;
    c.write_until_ok(&[leader], "/bench", Duration::from_secs(10))
        .await
        .expect("first write");
    let mut samples = Vec::new();
    for round in 1..=rounds {
        let survivors: Vec<usize> = (0..3).filter(|&i| i != leader).collect();
        let t0 = Instant::now();
        c.masters[leader].kill9();
        if let Err(e) = c
            .write_until_ok(&survivors, "/bench", Duration::from_secs(15))
            .await
        {
            panic!("orch round {round}: {e}\n{}", c.all_logs(40));
        }
        let took = t0.elapsed();
        eprintln!("orch round {round}: {}", common::ms(took));
        samples.push(took);
        c.masters[leader].restart();
        leader = c.wait_for_leader(Duration::from_secs(20)).await;
        c.wait_all_caught_up(leader, &[0, 1, 2], Duration::from_secs(20))
            .await;
    }
    samples
}

// ---------------------------------------------------------------------------------------------
// etcd
// ---------------------------------------------------------------------------------------------

const ETCD: &str = "/usr/bin/etcd";
/// base64("bench") and base64("v").
const KEY: &str = "YmVuY2g=";
const VALUE: &str = "dg==";

#[derive(Debug)]
struct Etcd {
    name: String,
    client: String,
    args: Vec<String>,
    log: PathBuf,
    child: Option<Child>,
}

impl Etcd {
    fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("open etcd log");
        let err = log.try_clone().expect("clone etcd log handle");
        let child = Command::new(ETCD)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {ETCD}: {e}"));
        self.child = Some(child);
    }

    fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("----- {} log -----\n{}", self.name, tail(&self.log, 40));
        }
        self.kill9();
    }
}

/// `(member_id, leader_id)` from the v3 JSON gateway's maintenance status.
async fn etcd_status(http: &Http, e: &Etcd) -> Option<(String, String)> {
    let url = format!("{}/v3/maintenance/status", e.client);
    let r = http
        .send(
            reqwest::Method::POST,
            &url,
            Some("{}".into()),
            Some(Duration::from_millis(500)),
        )
        .await
        .ok()?;
    if r.status != 200 {
        return None;
    }
    let v: Value = serde_json::from_str(&r.body).ok()?;
    let id = v["header"]["member_id"].as_str()?.to_string();
    let leader = v["leader"].as_str()?.to_string();
    (leader != "0").then_some((id, leader))
}

/// Index of the node all running nodes agree is leader.
async fn etcd_leader(http: &Http, nodes: &[Etcd], timeout: Duration) -> usize {
    let deadline = Instant::now() + timeout;
    loop {
        let mut ids = Vec::new();
        let mut leaders = Vec::new();
        for n in nodes {
            match etcd_status(http, n).await {
                Some((id, l)) => {
                    ids.push(id);
                    leaders.push(l);
                }
                None => break,
            }
        }
        if ids.len() == nodes.len() && leaders.iter().all(|l| *l == leaders[0]) {
            if let Some(i) = ids.iter().position(|id| *id == leaders[0]) {
                return i;
            }
        }
        assert!(
            Instant::now() < deadline,
            "etcd: no agreed leader within {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn etcd_put(http: &Http, e: &Etcd) -> bool {
    etcd_put_url(http, &format!("{}/v3/kv/put", e.client)).await
}

async fn etcd_put_url(http: &Http, url: &str) -> bool {
    let body = json!({"key": KEY, "value": VALUE}).to_string();
    match http
        .send(
            reqwest::Method::POST,
            url,
            Some(body),
            Some(Duration::from_secs(3)),
        )
        .await
    {
        Ok(r) => r.status == 200 && r.body.contains("header") && !r.body.contains("\"error\""),
        Err(_) => false,
    }
}

async fn etcd_rounds(rounds: usize) -> Vec<Duration> {
    let dir = tempfile::Builder::new()
        .prefix("orch-bench-etcd-")
        .tempdir()
        .expect("temp dir");
    let peers: Vec<(u16, u16)> = (0..3).map(|_| (free_port(), free_port())).collect();
    let initial = peers
        .iter()
        .enumerate()
        .map(|(i, (_, p))| format!("e{}=http://127.0.0.1:{p}", i + 1))
        .collect::<Vec<_>>()
        .join(",");
    let mut nodes: Vec<Etcd> = peers
        .iter()
        .enumerate()
        .map(|(i, (c, p))| {
            let name = format!("e{}", i + 1);
            let client = format!("http://127.0.0.1:{c}");
            let peer = format!("http://127.0.0.1:{p}");
            let args = vec![
                "--name".into(),
                name.clone(),
                "--data-dir".into(),
                dir.path().join(&name).display().to_string(),
                "--listen-client-urls".into(),
                client.clone(),
                "--advertise-client-urls".into(),
                client.clone(),
                "--listen-peer-urls".into(),
                peer.clone(),
                "--initial-advertise-peer-urls".into(),
                peer,
                "--initial-cluster".into(),
                initial.clone(),
                "--initial-cluster-token".into(),
                "orch-bench".into(),
                "--initial-cluster-state".into(),
                "new".into(),
            ];
            Etcd {
                log: dir.path().join(format!("{name}.log")),
                name,
                client,
                args,
                child: None,
            }
        })
        .collect();
    for n in &mut nodes {
        n.start();
    }
    let http = Http::new();
    let mut leader = etcd_leader(&http, &nodes, Duration::from_secs(30)).await;
    assert!(
        etcd_put(&http, &nodes[leader]).await,
        "etcd: first put failed"
    );

    let mut samples = Vec::new();
    for round in 1..=rounds {
        let survivors: Vec<usize> = (0..3).filter(|&i| i != leader).collect();
        let t0 = Instant::now();
        nodes[leader].kill9();
        let urls: Vec<String> = survivors
            .iter()
            .map(|&i| format!("{}/v3/kv/put", nodes[i].client))
            .collect();
        let probe_http = http.clone();
        let res = first_success(
            move |k| {
                let http = probe_http.clone();
                let url = urls[k % urls.len()].clone();
                async move {
                    etcd_put_url(&http, &url)
                        .await
                        .then_some(())
                        .ok_or_else(|| format!("put via {url} failed"))
                }
            },
            Duration::from_millis(25),
            Duration::from_secs(30),
        )
        .await;
        if let Err(e) = res {
            panic!("etcd round {round}: {e}");
        }
        let took = t0.elapsed();
        eprintln!("etcd round {round}: {}", common::ms(took));
        samples.push(took);
        nodes[leader].start();
        leader = etcd_leader(&http, &nodes, Duration::from_secs(30)).await;
        // Healthy: every node answers a put (a follower forwards it to the leader).
        for node in &nodes {
            let deadline = Instant::now() + Duration::from_secs(30);
            while !etcd_put(&http, node).await {
                assert!(
                    Instant::now() < deadline,
                    "etcd round {round}: {} not healthy in 30 s",
                    node.name
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    samples
}

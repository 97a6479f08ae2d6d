//! DNS: propagation and throughput.
//!
//! 1. Propagation: one master, one agent running process tasks, `orch dns` as its own
//!    process. An app is scaled up one instance at a time, 50 times; each round is timed
//!    from the task's TASK_RUNNING on `/v2/events` to the first UDP answer whose SRV set
//!    holds its port (queried every millisecond). Mesos-DNS: up to 60 s refresh + 60 s TTL.
//! 2. Throughput: 1,000 tasks (10 apps × 100 instances on 10 simulated agents), `orch dns`
//!    following the master, and in the same run NSD serving the same records from a zone
//!    file (written from the same zone: `orch_dns::records` of the master's snapshot). Both
//!    on loopback, queried by `dnsperf` with every A and SRV name of the zone.
//!
//! Needs Debian's `dnsperf` and `nsd`. Run: `cargo bench --bench dns`
//! (`ORCH_BENCH_ROUNDS`, default 50; `ORCH_BENCH_SECONDS` per dnsperf run, default 10).

#[path = "../tests/support/mod.rs"]
mod support;

mod common;

use orch_core::state::Snapshot;
use orch_dns::{records, Zone, ZoneConfig};
use serde_json::json;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::{free_port, srv_ports, Cluster, DnsProcess};

fn main() {
    if !common::invoked_as_bench("dns") {
        return;
    }
    let rounds = common::env_count("ORCH_BENCH_ROUNDS", 50);
    let seconds = common::env_or("ORCH_BENCH_SECONDS", 10);
    common::runtime().block_on(async {
        propagation(rounds).await;
        throughput(seconds).await;
    });
}

/// Starts `orch dns` following `cluster`'s masters.
fn start_dns(cluster: &Cluster) -> DnsProcess {
    let masters: Vec<String> = cluster.masters.iter().map(|m| m.addr.clone()).collect();
    DnsProcess::start(cluster, &masters, &["--external-on", "false"])
}

async fn propagation(rounds: usize) {
    let mut cluster = Cluster::start(1, &[]);
    cluster.wait_for_leader(Duration::from_secs(30)).await;
    cluster.add_agent(&[
        "--resources",
        "cpus:64;mem:65536;disk:10000;ports:[31000-31200]",
        "--containerizers",
        "mesos",
    ]);
    cluster.wait_for_agents(0, 1, Duration::from_secs(30)).await;
    let dns = start_dns(&cluster);
    let server = dns.dns;
    let master = cluster.url(0);
    let mut events = support::follow_events(&master, &["status_update_event"]).await;
    let app = json!({"id": "/bench/web", "cmd": "sleep 100000", "cpus": 0.01, "mem": 8,
        "instances": 0, "portDefinitions": [{"port": 0}]});
    let created = cluster.http.post(&format!("{master}/v2/apps"), &app).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let mut delays = Vec::with_capacity(rounds);
    for round in 1..=rounds {
        let scaled = cluster
            .http
            .put(
                &format!("{master}/v2/apps/bench/web?force=true"),
                &json!({ "instances": round }),
            )
            .await;
        assert!(scaled.ok(), "{}", scaled.body);
        let running =
            support::wait_status(&mut events, "TASK_RUNNING", Duration::from_secs(30), |_| {
                true
            })
            .await;
        let port =
            u16::try_from(running.data["ports"][0].as_u64().expect("a port")).expect("a port");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if srv_ports(server, "_web-bench._tcp.marathon.mesos").contains(&port) {
                delays.push(running.at.elapsed());
                break;
            }
            assert!(
                Instant::now() < deadline,
                "round {round}: port {port} never resolved"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    delays.sort();
    println!(
        "propagation, TASK_RUNNING -> resolvable (n={}): median {}, p90 {}, max {} \
         ({} queries unanswered within {:?})",
        delays.len(),
        common::ms(common::percentile(&delays, 50.0)),
        common::ms(common::percentile(&delays, 90.0)),
        common::ms(*delays.last().unwrap_or(&Duration::ZERO)),
        support::UNANSWERED.load(std::sync::atomic::Ordering::Relaxed),
        support::QUERY_TIMEOUT,
    );
}

async fn throughput(seconds: u64) {
    let mut cluster = Cluster::start(1, &[]);
    cluster.wait_for_leader(Duration::from_secs(30)).await;
    cluster.add_agent(&[
        "--simulate",
        "10",
        "--containerizers",
        "mock",
        "--resources",
        "cpus:64;mem:65536;disk:10000;ports:[31000-31999]",
    ]);
    cluster
        .wait_for_agents(0, 10, Duration::from_secs(30))
        .await;
    let master = cluster.url(0);
    for n in 0..10 {
        let app = json!({"id": format!("/bench/app{n}"), "cmd": "sleep 100000", "cpus": 0.01,
            "mem": 8, "instances": 100, "portDefinitions": [{"port": 0, "name": "http"}]});
        let created = cluster.http.post(&format!("{master}/v2/apps"), &app).await;
        assert_eq!(created.status, 201, "{}", created.body);
    }
    let snapshot = wait_running_snapshot(&master, 1000).await;
    let zone = records(&snapshot, &ZoneConfig::new("mesos", 5));
    let dns = start_dns(&cluster);
    let orch_server = dns.dns;
    let services = format!("{}/v1/services/_app0-bench._tcp.marathon.mesos", dns.http);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let listed = cluster
            .http
            .send(reqwest::Method::GET, &services, None, None)
            .await;
        let count = listed.map_or(0, |r| r.json().as_array().map_or(0, Vec::len));
        if count == 100 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "orch dns never served the 1,000 tasks"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let dir = cluster.dir().to_owned();
    let queries = dir.join("queries.txt");
    std::fs::write(&queries, query_file(&zone)).expect("write the query file");
    let (mut nsd, nsd_server) = start_nsd(&dir, &zone);
    let mut qps = Vec::new();
    for (name, server) in [("orch dns", orch_server), ("NSD", nsd_server)] {
        let perf = dnsperf(server, &queries, seconds);
        println!(
            "{name:<9} {:>9.0} queries/s, average latency {:.3} ms, lost {}",
            perf.queries_per_second, perf.average_latency_ms, perf.lost
        );
        qps.push(perf.queries_per_second);
    }
    let cores = std::thread::available_parallelism().map_or(1.0, |n| n.get() as f64);
    println!(
        "orch dns / NSD = {:.2} (target >= 0.5); orch dns per core ({cores} cores, shared with \
         dnsperf) / Mesos-DNS's 8,500 per core = {:.1} (target >= 2)",
        qps[0] / qps[1],
        qps[0] / cores / 8_500.0
    );
    let _ = nsd.kill();
    let _ = nsd.wait();
    println!(
        "{} names ({} A, {} SRV queries in the file), {} tasks",
        zone.names.len(),
        zone.names.values().filter(|set| !set.a.is_empty()).count(),
        zone.names
            .values()
            .filter(|set| !set.srv.is_empty())
            .count(),
        snapshot.tasks.len()
    );
}

/// Reads the master's snapshot stream until `n` tasks run; returns that snapshot.
async fn wait_running_snapshot(master: &str, n: usize) -> Snapshot {
    orch_pki::tls::install_crypto_provider();
    let client = reqwest::Client::new();
    let mut response = client
        .get(format!("{master}/v1/snapshots"))
        .send()
        .await
        .expect("GET /v1/snapshots");
    let mut pending: Vec<u8> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        assert!(Instant::now() < deadline, "{n} tasks never ran");
        let chunk = tokio::time::timeout(Duration::from_secs(30), response.chunk())
            .await
            .expect("a snapshot within 30 s")
            .expect("the snapshot stream")
            .expect("the stream stays open");
        pending.extend_from_slice(&chunk);
        while let Some(end) = pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            if line.len() < 2 {
                continue;
            }
            let snapshot: Snapshot = serde_json::from_slice(&line).expect("a snapshot");
            let running = snapshot
                .tasks
                .values()
                .filter(|t| t.state == orch_core::model::TaskState::Running)
                .count();
            if running >= n {
                return snapshot;
            }
        }
    }
}

/// dnsperf's input: every name with A records as an A query, every SRV name as SRV.
fn query_file(zone: &Zone) -> String {
    let mut text = String::new();
    let mut names: Vec<_> = zone.names.iter().collect();
    names.sort_by(|a, b| a.0.cmp(b.0));
    for (name, set) in names {
        if !set.a.is_empty() {
            let _ = writeln!(text, "{name} A");
        }
        if !set.srv.is_empty() {
            let _ = writeln!(text, "{name} SRV");
        }
    }
    text
}

/// NSD on a free loopback port serving `zone` from a zone file in `dir`.
fn start_nsd(dir: &Path, zone: &Zone) -> (std::process::Child, SocketAddr) {
    let port = free_port();
    let mut text = format!(
        "$ORIGIN {apex}\n$TTL {ttl}\n@ IN SOA {} {} {} {} {} {} {}\n@ IN NS {}\n",
        zone.soa.mname,
        zone.soa.rname,
        zone.soa.serial,
        zone.soa.refresh,
        zone.soa.retry,
        zone.soa.expire,
        zone.soa.minimum,
        zone.soa.mname,
        apex = zone.apex,
        ttl = zone.ttl,
    );
    for (name, set) in &zone.names {
        if !name.ends_with(&zone.apex) {
            continue;
        }
        for ip in &set.a {
            let _ = writeln!(text, "{name} IN A {ip}");
        }
        for ip in &set.aaaa {
            let _ = writeln!(text, "{name} IN AAAA {ip}");
        }
        for srv in &set.srv {
            let _ = writeln!(
                text,
                "{name} IN SRV {} {} {} {}",
                srv.priority, srv.weight, srv.port, srv.target
            );
        }
    }
    std::fs::write(dir.join("mesos.zone"), text).expect("write the zone file");
    let config = format!(
        "server:\n  ip-address: 127.0.0.1@{port}\n  port: {port}\n  zonesdir: \"{dir}\"\n  \
         database: \"\"\n  pidfile: \"{dir}/nsd.pid\"\n  username: \"\"\n  chroot: \"\"\n  \
         xfrdfile: \"{dir}/xfrd.state\"\n  zonelistfile: \"{dir}/zone.list\"\n  verbosity: 0\n  \
         server-count: {cores}\n  rrl-ratelimit: 0\n  rrl-whitelist-ratelimit: 0\n\
         remote-control:\n  control-enable: no\nzone:\n  name: \"{apex}\"\n  zonefile: \"mesos.zone\"\n",
        dir = dir.display(),
        apex = zone.apex.trim_end_matches('.'),
        cores = std::thread::available_parallelism().map_or(1, usize::from),
    );
    let config_path = dir.join("nsd.conf");
    std::fs::write(&config_path, config).expect("write nsd.conf");
    let child = Command::new("nsd")
        .args(["-d", "-c"])
        .arg(&config_path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start nsd (Debian's nsd)");
    let server = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + Duration::from_secs(10);
    while silent(server) {
        assert!(Instant::now() < deadline, "nsd did not answer");
        std::thread::sleep(Duration::from_millis(100));
    }
    (child, server)
}

/// True while `server` does not answer the SOA of `mesos.`.
fn silent(server: SocketAddr) -> bool {
    support::try_query(server, "mesos.", hickory_proto::rr::RecordType::SOA).is_none()
}

/// What one dnsperf run measured.
struct Perf {
    queries_per_second: f64,
    average_latency_ms: f64,
    lost: u64,
}

/// `dnsperf` for `seconds` against `server` (4 clients, 200 queries in flight).
fn dnsperf(server: SocketAddr, queries: &Path, seconds: u64) -> Perf {
    let out = Command::new("dnsperf")
        .args(["-s", &server.ip().to_string()])
        .args(["-p", &server.port().to_string()])
        .arg("-d")
        .arg(queries)
        .args(["-l", &seconds.to_string(), "-c", "4", "-q", "200"])
        .output()
        .expect("run dnsperf (Debian's dnsperf)");
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |label: &str| -> f64 {
        text.lines()
            .find_map(|line| line.trim().strip_prefix(label))
            .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
            .unwrap_or_else(|| panic!("no '{label}' in dnsperf's output:\n{text}"))
    };
    Perf {
        queries_per_second: field("Queries per second:"),
        average_latency_ms: field("Average Latency (s):") * 1000.0,
        // A count dnsperf printed: whole and not negative.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        lost: field("Queries lost:") as u64,
    }
}

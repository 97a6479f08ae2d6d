//! `orch dns` end to end: real masters, a real agent running process tasks, `orch dns` as its
//! own process fed by `/v1/snapshots`, queried with Debian's `dig` and with raw UDP queries
//! where timing matters. Also the same server inside an agent (`--with-dns`) and across a
//! leader change.

mod support;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use support::{dig, follow_events, free_port, query, srv_ports, wait_dig, Cluster, DnsProcess};

const TEST_TIMEOUT: Duration = Duration::from_secs(150);

/// `orch` writes `<port> <unix ns>` lines into the stop file when its task gets SIGTERM.
fn stop_times(path: &Path) -> BTreeMap<u16, u128> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| {
            let (port, ns) = line.split_once(' ')?;
            Some((port.parse().ok()?, ns.trim().parse().ok()?))
        })
        .collect()
}

fn unix_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

/// An app whose task notes in `stop_file` the moment it receives SIGTERM, after noting in
/// `<stop_file>.ready` that its trap is set.
fn web_app(stop_file: &Path, instances: u32) -> Value {
    json!({
        "id": "/prod/web",
        "cmd": format!(
            "trap 'echo $PORT0 $(date +%s%N) >> {stops}; exit 0' TERM; echo $PORT0 >> {stops}.ready; \
             while :; do sleep 1 & wait $!; done",
            stops = stop_file.display()
        ),
        "cpus": 0.01, "mem": 16, "instances": instances,
        "portDefinitions": [{"port": 0, "name": "http", "labels": {"VIP_0": "/prod/web:8080"}}],
        "upgradeStrategy": {"minimumHealthCapacity": 0.5, "maximumOverCapacity": 0}
    })
}

fn median(values: &mut [Duration]) -> Duration {
    values.sort();
    values[values.len() / 2]
}

#[tokio::test]
async fn names_follow_the_tasks_of_a_running_cluster() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let mut cluster = Cluster::start(1, &[]);
        cluster.wait_for_leader(Duration::from_secs(20)).await;
        cluster.add_agent(&["--containerizers", "mesos"]);
        cluster.wait_for_agents(0, 1, Duration::from_secs(20)).await;
        let master = cluster.masters[0].addr.clone();
        let master_port = master.rsplit(':').next().unwrap_or_default().to_owned();
        let dns = DnsProcess::start(
            &cluster,
            std::slice::from_ref(&master),
            &["--vip-address", "127.0.0.9", "--external-on", "false"],
        );
        let server = dns.dns;

        // Masters and agents.
        wait_dig(server, &["leader.mesos"], Duration::from_secs(10), |a| a == "127.0.0.1").await;
        for name in ["master.mesos", "master0.mesos", "slave.mesos", "agent.mesos", "marathon.mesos"] {
            assert_eq!(wait_dig(server, &[name], Duration::from_secs(5), |_| true).await, "127.0.0.1", "{name}");
        }
        for name in ["_leader._tcp.mesos", "_leader._udp.mesos"] {
            let answer = dig(server, &["+short", name, "SRV"]).await;
            assert_eq!(answer.trim(), format!("0 1 {master_port} leader.mesos."), "{name}");
        }
        let soa = dig(server, &["+short", "mesos", "SOA"]).await;
        assert!(soa.starts_with("ns1.mesos. root.ns1.mesos. "), "{soa}");
        assert_eq!(dig(server, &["+short", "mesos", "NS"]).await.trim(), "ns1.mesos.");
        assert_eq!(dig(server, &["+short", "ns1.mesos"]).await.trim(), "127.0.0.1");

        // A group app with a named port and a VIP.
        let stop_file = cluster.dir().join("stops");
        let created = cluster
            .http
            .post(&format!("{}/v2/apps", cluster.url(0)), &web_app(&stop_file, 1))
            .await;
        assert_eq!(created.status, 201, "{}", created.body);
        let ports = {
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                let ports = srv_ports(server, "_web-prod._tcp.marathon.mesos");
                if !ports.is_empty() {
                    break ports;
                }
                assert!(Instant::now() < deadline, "web-prod never resolved");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        let port = *ports.iter().next().expect("one port");
        let tasks = cluster.http.get(&format!("{}/v2/apps/prod/web/tasks", cluster.url(0))).await.json();
        let task_id = tasks["tasks"][0]["id"].as_str().expect("a task id").to_owned();
        assert_eq!(tasks["tasks"][0]["ports"][0], port);

        for tcp in [false, true] {
            let transport: &[&str] = if tcp { &["+tcp"] } else { &[] };
            let ask = |args: &[&str]| {
                let mut all = vec!["+short"];
                all.extend_from_slice(transport);
                all.extend_from_slice(args);
                all.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>()
            };
            let short = |args: Vec<String>| async move {
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                dig(server, &args).await.trim().to_owned()
            };
            assert_eq!(short(ask(&["web-prod.marathon.mesos"])).await, "127.0.0.1");
            assert_eq!(short(ask(&["web-prod.marathon.slave.mesos"])).await, "127.0.0.1");
            let srv = short(ask(&["_web-prod._tcp.marathon.mesos", "SRV"])).await;
            let target = srv.split(' ').nth(3).expect("an SRV target").to_owned();
            assert_eq!(srv, format!("0 1 {port} {target}"));
            assert!(target.starts_with("web-prod-") && target.ends_with(".marathon.mesos."), "{target}");
            // T-H-S: a 5-character hash and the agent id's tail.
            let canonical = target.trim_end_matches(".marathon.mesos.");
            let parts: Vec<&str> = canonical.rsplitn(3, '-').collect();
            assert_eq!(parts.len(), 3, "{canonical}");
            assert_eq!(parts[1].len(), 5, "{canonical}");
            assert_eq!(short(ask(&[&target])).await, "127.0.0.1");
            let named = short(ask(&["_http._web-prod._tcp.marathon.mesos", "SRV"])).await;
            assert_eq!(named, srv);
            let slave_srv = short(ask(&["_web-prod._udp.marathon.slave.mesos", "SRV"])).await;
            assert!(slave_srv.starts_with(&format!("0 1 {port} web-prod-")), "{slave_srv}");
            assert!(slave_srv.ends_with(".marathon.slave.mesos."), "{slave_srv}");
            assert_eq!(
                short(ask(&["prodweb.marathon.l4lb.thisdcos.directory"])).await,
                "127.0.0.9"
            );
        }

        // NXDOMAIN for unknown names, NODATA for a known name without that type; both
        // carry the SOA. Other names are refused (external-on false).
        let nx = query(server, "nope.marathon.mesos.", RecordType::A);
        assert_eq!(nx.response_code(), ResponseCode::NXDomain);
        assert!(nx.authoritative());
        assert_eq!(nx.name_servers()[0].record_type(), RecordType::SOA);
        let nodata = query(server, "web-prod.marathon.mesos.", RecordType::AAAA);
        assert_eq!(nodata.response_code(), ResponseCode::NoError);
        assert!(nodata.answers().is_empty());
        assert_eq!(nodata.name_servers()[0].record_type(), RecordType::SOA);
        let refused = query(server, "example.com.", RecordType::A);
        assert_eq!(refused.response_code(), ResponseCode::Refused);

        // The HTTP API.
        let http = &cluster.http;
        let version = http.get(&format!("{}/v1/version", dns.http)).await.json();
        assert_eq!(version["Service"], "Mesos-DNS");
        let config = http.get(&format!("{}/v1/config", dns.http)).await.json();
        assert_eq!(config["Domain"], "mesos");
        assert_eq!(config["TTL"], 5);
        let hosts = http.get(&format!("{}/v1/hosts/web-prod.marathon.mesos", dns.http)).await.json();
        assert_eq!(hosts, json!([{"host": "web-prod.marathon.mesos.", "ip": "127.0.0.1"}]));
        let services = http
            .get(&format!("{}/v1/services/_web-prod._tcp.marathon.mesos", dns.http))
            .await
            .json();
        assert_eq!(services[0]["port"], port.to_string());
        assert_eq!(services[0]["ip"], "127.0.0.1");
        assert_eq!(services[0]["service"], "_web-prod._tcp.marathon.mesos");
        let unknown = http.get(&format!("{}/v1/hosts/nope.marathon.mesos", dns.http)).await.json();
        assert_eq!(unknown, json!([{"host": "", "ip": ""}]));
        let enumerate = http.get(&format!("{}/v1/enumerate", dns.http)).await.json();
        let listed = &enumerate["frameworks"][0];
        assert_eq!(listed["name"], "marathon");
        assert_eq!(listed["tasks"][0]["id"], task_id.as_str());
        assert_eq!(listed["tasks"][0]["name"], "web-prod");

        // Scale up: each new task resolves right after its TASK_RUNNING.
        let mut events_in = follow_events(&cluster.url(0), &["status_update_event"]).await;
        let scaled = http
            .put(&format!("{}/v2/apps/prod/web", cluster.url(0)), &json!({"instances": 4}))
            .await;
        assert!(scaled.ok(), "{}", scaled.body);
        let mut seen: BTreeMap<u16, Instant> = BTreeMap::new();
        let mut events: BTreeMap<u16, Instant> = BTreeMap::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while seen.len() < 4 || events.len() < 3 {
            assert!(Instant::now() < deadline, "scale-up: seen {seen:?}, events {events:?}");
            while let Ok(event) = events_in.try_recv() {
                let data = &event.data;
                if data["taskStatus"] == "TASK_RUNNING" && data["appId"] == "/prod/web" {
                    if let Some(port) = data["ports"][0].as_u64() {
                        events.entry(u16::try_from(port).expect("a port")).or_insert(event.at);
                    }
                }
            }
            let now = Instant::now();
            for port in srv_ports(server, "_web-prod._tcp.marathon.mesos") {
                seen.entry(port).or_insert(now);
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let mut delays: Vec<Duration> = events
            .iter()
            .map(|(port, event)| seen[port].saturating_duration_since(*event))
            .collect();
        let slowest = *delays.iter().max().expect("three delays");
        let median = median(&mut delays);
        assert!(median <= Duration::from_millis(100), "RUNNING → resolvable: median {median:?}");
        assert!(slowest <= Duration::from_secs(1), "RUNNING → resolvable: max {slowest:?}");

        // Scale down: the killed tasks vanish before they get SIGTERM (once every task has
        // set its SIGTERM trap).
        let ready = stop_file.with_extension("ready");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::fs::read_to_string(&ready).unwrap_or_default().lines().count() < 4 {
            assert!(Instant::now() < deadline, "the tasks never set their SIGTERM trap");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let scaled = http
            .put(&format!("{}/v2/apps/prod/web", cluster.url(0)), &json!({"instances": 1}))
            .await;
        assert!(scaled.ok(), "{}", scaled.body);
        let mut vanished: BTreeMap<u16, u128> = BTreeMap::new();
        let before: BTreeSet<u16> = seen.keys().copied().collect();
        let deadline = Instant::now() + Duration::from_secs(30);
        while vanished.len() < 3 {
            assert!(Instant::now() < deadline, "scale-down: vanished {vanished:?}");
            let now = unix_ns();
            let current = srv_ports(server, "_web-prod._tcp.marathon.mesos");
            for port in before.difference(&current) {
                vanished.entry(*port).or_insert(now);
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let stopped = wait_for_stops(&stop_file, 3).await;
        for (port, vanished_at) in &vanished {
            let stopped_at = stopped.get(port).copied().unwrap_or(0);
            assert!(
                *vanished_at < stopped_at,
                "task on port {port} got SIGTERM at {stopped_at} ns but was still in DNS until {vanished_at} ns"
            );
        }

        // Replace: a killed task leaves DNS before it stops; its replacement appears.
        let left = srv_ports(server, "_web-prod._tcp.marathon.mesos");
        assert_eq!(left.len(), 1, "{left:?}");
        let victim_port = *left.iter().next().expect("a port");
        let tasks = http.get(&format!("{}/v2/apps/prod/web/tasks", cluster.url(0))).await.json();
        let victim = tasks["tasks"]
            .as_array()
            .and_then(|tasks| tasks.iter().find(|t| t["ports"][0] == victim_port))
            .and_then(|t| t["id"].as_str())
            .expect("the surviving task")
            .to_owned();
        let killed = http
            .delete(&format!("{}/v2/apps/prod/web/tasks/{victim}", cluster.url(0)))
            .await;
        assert!(killed.ok(), "{}", killed.body);
        let mut gone_at = None;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            assert!(Instant::now() < deadline, "no replacement: gone at {gone_at:?}, now {:?}", srv_ports(server, "_web-prod._tcp.marathon.mesos"));
            let now = unix_ns();
            let current = srv_ports(server, "_web-prod._tcp.marathon.mesos");
            if !current.contains(&victim_port) {
                gone_at.get_or_insert(now);
            }
            if gone_at.is_some() && current.len() == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let stopped = wait_for_stops(&stop_file, 4).await;
        let gone_at = gone_at.expect("the victim vanished");
        assert!(gone_at < stopped[&victim_port], "replaced task got SIGTERM before it left DNS");
        drop(dns);
    })
    .await
    .expect("test timed out");
}

/// Waits until `n` tasks have noted their SIGTERM.
async fn wait_for_stops(path: &Path, n: usize) -> BTreeMap<u16, u128> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let stops = stop_times(path);
        if stops.len() >= n {
            return stops;
        }
        assert!(Instant::now() < deadline, "only {stops:?} stopped");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Three masters; `orch dns` follows whichever master answers, and an agent serves the same
/// names with `--with-dns`. After the leader is SIGKILLed, `_leader._tcp` names the new
/// leader and new tasks still resolve. Also: forwarding to a second `orch dns` (SERVFAIL once
/// it is gone), and `--healthy-only`.
#[tokio::test]
async fn names_follow_a_new_leader_and_agents_serve_them_too() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let mut cluster = Cluster::start(3, &[]);
        let leader = cluster.wait_for_leader(Duration::from_secs(20)).await;
        let agent_dns = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let agent_dns_http = SocketAddr::from(([127, 0, 0, 1], free_port()));
        cluster.add_agent(&[
            "--containerizers",
            "mesos",
            "--with-dns",
            "--dns-listen",
            &agent_dns.to_string(),
            "--dns-http-listen",
            &agent_dns_http.to_string(),
        ]);
        cluster
            .wait_for_agents(leader, 1, Duration::from_secs(20))
            .await;
        // The leader first in the list: the DNS process follows it, and must move on.
        let mut masters: Vec<String> = cluster.masters.iter().map(|m| m.addr.clone()).collect();
        masters.swap(0, leader);
        let mut upstream = DnsProcess::start(&cluster, &masters, &["--domain", "other"]);
        let upstream_dns = upstream.dns.to_string();
        let dns = DnsProcess::start(
            &cluster,
            &masters,
            &[
                "--healthy-only",
                "--resolvers",
                &upstream_dns,
                "--forward-timeout",
                "500ms",
            ],
        );
        let ports: Vec<String> = cluster
            .masters
            .iter()
            .map(|m| m.addr.rsplit(':').next().unwrap_or_default().to_owned())
            .collect();
        let first_port = &ports[leader];
        for server in [dns.dns, agent_dns] {
            wait_dig(
                server,
                &["_leader._tcp.mesos", "SRV"],
                Duration::from_secs(10),
                |a| a == format!("0 1 {first_port} leader.mesos."),
            )
            .await;
            let masters = wait_dig(server, &["master2.mesos"], Duration::from_secs(5), |a| {
                !a.is_empty()
            })
            .await;
            assert_eq!(masters, "127.0.0.1");
        }

        // Names outside the domain are answered by the upstream.
        wait_dig(dns.dns, &["leader.other"], Duration::from_secs(10), |a| {
            a == "127.0.0.1"
        })
        .await;
        let forwarded = dig(dns.dns, &["+tcp", "+short", "_leader._tcp.other", "SRV"]).await;
        assert_eq!(forwarded.trim(), format!("0 1 {first_port} leader.other."));
        // Not an open resolver: a server forwarding for 10.0.0.0/8 only refuses this
        // loopback client names outside its domain, and still answers its own.
        let closed = DnsProcess::start(
            &cluster,
            &masters,
            &[
                "--resolvers",
                &upstream_dns,
                "--forward-allow",
                "10.0.0.0/8,fd00::/8",
            ],
        );
        wait_dig(
            closed.dns,
            &["master2.mesos"],
            Duration::from_secs(10),
            |a| a == "127.0.0.1",
        )
        .await;
        let refused = dig(closed.dns, &["leader.other"]).await;
        assert!(refused.contains("status: REFUSED"), "{refused}");
        drop(closed);

        cluster.masters[leader].kill9();
        let survivors: Vec<usize> = (0..3).filter(|i| *i != leader).collect();
        let new_leader = cluster
            .wait_for_leader_among(&survivors, Some(3), Duration::from_secs(20))
            .await;
        let new_port = &ports[new_leader];
        for server in [dns.dns, agent_dns] {
            wait_dig(
                server,
                &["_leader._tcp.mesos", "SRV"],
                Duration::from_secs(10),
                |a| a == format!("0 1 {new_port} leader.mesos."),
            )
            .await;
        }
        // Two apps with COMMAND health checks: one passes, one never does. The healthy-only
        // server names the first only; the agent's server (running is enough) both.
        let checked = |id: &str, check: &str| {
            json!({"id": id, "cmd": "sleep 1000", "cpus": 0.01, "mem": 16,
                "portDefinitions": [{"port": 0}],
                "healthChecks": [{"protocol": "COMMAND", "command": {"value": check},
                    "gracePeriodSeconds": 0, "intervalSeconds": 1, "timeoutSeconds": 2,
                    "maxConsecutiveFailures": 0}]})
        };
        for app in [checked("/fine", "true"), checked("/sick", "false")] {
            let created = cluster
                .http
                .post(&format!("{}/v2/apps", cluster.url(new_leader)), &app)
                .await;
            assert_eq!(created.status, 201, "{}", created.body);
        }
        for server in [dns.dns, agent_dns] {
            wait_dig(
                server,
                &["fine.marathon.mesos"],
                Duration::from_secs(20),
                |a| a == "127.0.0.1",
            )
            .await;
        }
        wait_dig(
            agent_dns,
            &["sick.marathon.mesos"],
            Duration::from_secs(20),
            |a| a == "127.0.0.1",
        )
        .await;
        let sick = query(dns.dns, "sick.marathon.mesos.", RecordType::A);
        assert_eq!(sick.response_code(), ResponseCode::NXDomain, "{sick:?}");

        // The upstream gone: SERVFAIL within the forward timeout, never a hang.
        upstream.process.kill9();
        let asked = Instant::now();
        let failed = query(dns.dns, "leader.other.", RecordType::A);
        assert_eq!(failed.response_code(), ResponseCode::ServFail);
        assert!(
            asked.elapsed() < Duration::from_millis(900),
            "{:?}",
            asked.elapsed()
        );
        drop(dns);
    })
    .await
    .expect("test timed out");
}

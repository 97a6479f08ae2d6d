//! Load balancer: throughput against HAProxy, and backend change → routed.
//!
//! 1. Throughput: one master, one agent, an app of 4 process tasks each running nginx
//!    (`return 200 <port>`, keep-alive) on loopback. `orch lb` routes them by vhost on its HTTP
//!    port; in the same run Debian's HAProxy runs the haproxy.cfg that `orch lb
//!    --haproxy-config` writes for the same apps (marathon-lb's template and settings) on the
//!    same backends. `wrk -t2 -c64 -d<seconds>s --latency -H 'Host: bench.local'` against
//!    each, one after the other, same machine; then HAProxy once more with the same config
//!    minus marathon-lb's `option http-server-close` (server connections kept alive).
//! 2. Backend change → routed: the same app scaled up one instance at a time; each round is
//!    timed from the new task's TASK_RUNNING on `/v2/events` to the first response through
//!    `orch lb` that names the task's port (a client loop GETs through the LB back to back),
//!    split into the app's start (until nginx accepts on its port, polled every millisecond)
//!    and the rest. Then the same with a TCP health check and `--health-check`, from the
//!    task's `health_status_changed_event` (alive) to its first response through the LB.
//!
//! Needs Debian's `wrk`, `haproxy` and `nginx`. Run: `cargo bench --bench lb`
//! (`ORCH_BENCH_SECONDS` per wrk run, default 15; `ORCH_BENCH_ROUNDS`, default 20).

#[path = "../tests/support/mod.rs"]
mod support;

mod common;

use serde_json::json;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::{free_port, Cluster, LbProcess};

const HOST: &str = "bench.local";

fn main() {
    if !common::invoked_as_bench("lb") {
        return;
    }
    let seconds = common::env_or("ORCH_BENCH_SECONDS", 15);
    let rounds = common::env_count("ORCH_BENCH_ROUNDS", 20);
    common::runtime().block_on(async {
        let cluster = start_cluster().await;
        throughput(&cluster, seconds).await;
        change_to_routed(&cluster, rounds).await;
    });
}

async fn start_cluster() -> Cluster {
    let mut cluster = Cluster::start(1, &[]);
    cluster.wait_for_leader(Duration::from_secs(30)).await;
    cluster.add_agent(&[
        "--resources",
        "cpus:64;mem:65536;disk:10000;ports:[31000-31200]",
        "--containerizers",
        "mesos",
    ]);
    cluster.wait_for_agents(0, 1, Duration::from_secs(30)).await;
    cluster
}

/// An app of `instances` nginx tasks answering their own port, keep-alive on. Each task gets
/// a whole CPU: the agent enforces `cpus` as a CFS quota, and nginx at 0.01 CPU would be the
/// bottleneck.
fn nginx_app(id: &str, instances: usize, dir: &Path) -> serde_json::Value {
    let conf = dir.join("nginx.conf.in");
    std::fs::write(
        &conf,
        "worker_processes 1; daemon off; pid nginx.pid; error_log stderr error;\n\
         events { worker_connections 4096; }\n\
         http { access_log off; keepalive_requests 100000;\n\
           client_body_temp_path tmp; proxy_temp_path tmp; fastcgi_temp_path tmp;\n\
           uwsgi_temp_path tmp; scgi_temp_path tmp;\n\
           server { listen 127.0.0.1:PORT; location / { return 200 \"PORT\\n\"; } } }\n",
    )
    .expect("write nginx.conf.in");
    json!({
        "id": id,
        "cmd": format!(
            "mkdir -p tmp && sed \"s/PORT/$PORT0/g\" {} > nginx.conf && exec nginx -p \"$PWD\" -c \"$PWD/nginx.conf\"",
            conf.display()
        ),
        "cpus": 1, "mem": 16, "instances": instances,
        "portDefinitions": [{"port": 0}],
        "labels": {"HAPROXY_GROUP": "external", "HAPROXY_0_VHOST": HOST},
        "upgradeStrategy": {"minimumHealthCapacity": 1, "maximumOverCapacity": 1}
    })
}

/// GETs `url` with the bench Host until `done(body)`.
async fn wait_body(url: &str, timeout: Duration, mut done: impl FnMut(&str) -> bool) {
    orch_pki::tls::install_crypto_provider();
    let http = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(response) = http.get(url).header("Host", HOST).send().await {
            if response.status() == 200 && done(&response.text().await.unwrap_or_default()) {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "{url} never answered as expected"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One wrk run: (requests/s, p99 latency text, the summary lines).
fn wrk(url: &str, seconds: u64) -> (f64, String, String) {
    let out = Command::new("wrk")
        .args(["-t2", "-c64", &format!("-d{seconds}s"), "--latency", "-H"])
        .arg(format!("Host: {HOST}"))
        .arg(url)
        .output()
        .expect("run wrk (apt-get install wrk)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let rate = text
        .lines()
        .find_map(|line| line.trim().strip_prefix("Requests/sec:"))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("no Requests/sec in wrk's output:\n{text}"));
    let p99 = text
        .lines()
        .find_map(|line| line.trim().strip_prefix("99%"))
        .map_or_else(|| "?".to_owned(), |value| value.trim().to_owned());
    let summary = text
        .lines()
        .filter(|l| {
            l.contains("requests in") || l.contains("Non-2xx") || l.contains("Socket errors")
        })
        .map(str::trim)
        .collect::<Vec<_>>()
        .join("; ");
    (rate, p99, summary)
}

struct Haproxy(Child);

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn throughput(cluster: &Cluster, seconds: u64) {
    let master = cluster.url(0);
    let masters = vec![cluster.masters[0].addr.clone()];
    let app = nginx_app("/bench/web", 4, cluster.dir());
    let created = cluster.http.post(&format!("{master}/v2/apps"), &app).await;
    assert_eq!(created.status, 201, "{}", created.body);

    // orch lb, built in.
    let lb = LbProcess::start(cluster, &masters, &[]).await;
    let orch_url = format!("{}/", LbProcess::url(lb.http));
    let mut seen = std::collections::BTreeSet::new();
    wait_body(&orch_url, Duration::from_secs(30), |body| {
        seen.insert(body.to_owned());
        seen.len() == 4
    })
    .await;
    let (orch_rate, orch_p99, orch_summary) = wrk(&orch_url, seconds);
    let orch_pid = lb.process.pid();
    let orch_rss = common::rss_mib(orch_pid);
    drop(lb);

    // HAProxy with the config `orch lb --haproxy-config` writes for the same apps.
    let cfg = cluster.dir().join("haproxy.cfg");
    let reloads = cluster.dir().join("reloads");
    let (http_port, stats_port) = (free_port(), free_port());
    let reload = format!("echo reload >> {}", reloads.display());
    let args: Vec<String> = [
        "--masters",
        &masters.join(","),
        "--bind-addr",
        "127.0.0.1",
        "--haproxy-config",
        &cfg.display().to_string(),
        "--haproxy-reload",
        &reload,
        "--http-port",
        &http_port.to_string(),
        "--stats-port",
        &stats_port.to_string(),
        "--https-port",
        "0",
        "--app-id-port",
        "0",
        // marathon-lb's maxconn 50000 needs more file descriptors (2 per connection) than
        // this machine's hard limit (20,000) lets HAProxy raise to.
        "--maxconn",
        "9000",
    ]
    .iter()
    .map(|arg| (*arg).to_owned())
    .collect();
    let mut writer = support::Master::new(
        cluster.dir(),
        "lb-haproxy-mode",
        "127.0.0.1:0",
        cluster.dir().join("lb-haproxy-mode"),
        args,
    );
    writer.subcommand = "lb".into();
    writer.start();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !std::fs::read_to_string(&cfg).is_ok_and(|text| text.matches("\n  server ").count() == 4)
    {
        assert!(
            Instant::now() < deadline,
            "orch lb never wrote haproxy.cfg with 4 servers"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(writer);
    let haproxy = Haproxy(
        Command::new("haproxy")
            .args(["-db", "-f"])
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("run haproxy (apt-get install haproxy)"),
    );
    let haproxy_url = format!("http://127.0.0.1:{http_port}/");
    wait_body(&haproxy_url, Duration::from_secs(10), |_| true).await;
    let (haproxy_rate, haproxy_p99, haproxy_summary) = wrk(&haproxy_url, seconds);
    let haproxy_rss = common::rss_mib(haproxy.0.id());
    drop(haproxy);

    // The same config without marathon-lb's `option http-server-close`: HAProxy keeps its
    // server connections alive too, as orch lb does.
    let text = std::fs::read_to_string(&cfg).expect("read haproxy.cfg");
    let keep_alive_cfg = cluster.dir().join("haproxy-keep-alive.cfg");
    std::fs::write(
        &keep_alive_cfg,
        text.replace("  option http-server-close\n", ""),
    )
    .expect("write haproxy-keep-alive.cfg");
    let haproxy = Haproxy(
        Command::new("haproxy")
            .args(["-db", "-f"])
            .arg(&keep_alive_cfg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("run haproxy"),
    );
    wait_body(&haproxy_url, Duration::from_secs(10), |_| true).await;
    let (keep_alive_rate, keep_alive_p99, keep_alive_summary) = wrk(&haproxy_url, seconds);
    drop(haproxy);

    println!("throughput: wrk -t2 -c64 -d{seconds}s --latency, vhost routing, 4 nginx backends");
    println!(
        "  orch lb : {orch_rate:>10.0} req/s  p99 {orch_p99:>9}  RSS {orch_rss:.1} MiB  ({orch_summary})"
    );
    println!(
        "  haproxy : {haproxy_rate:>10.0} req/s  p99 {haproxy_p99:>9}  RSS {haproxy_rss:.1} MiB  ({haproxy_summary})"
    );
    println!(
        "  haproxy without http-server-close: {keep_alive_rate:>10.0} req/s  p99 {keep_alive_p99:>9}  ({keep_alive_summary})"
    );
    println!(
        "  ratio   : {:.2}x HAProxy's requests/s with marathon-lb's settings, {:.2}x without http-server-close",
        orch_rate / haproxy_rate,
        orch_rate / keep_alive_rate
    );
}

async fn change_to_routed(cluster: &Cluster, rounds: usize) {
    let master = cluster.url(0);
    let masters = vec![cluster.masters[0].addr.clone()];
    let lb = LbProcess::start(cluster, &masters, &[]).await;
    let url = format!("{}/", LbProcess::url(lb.http));
    let mut events = support::follow_events(&master, &["status_update_event"]).await;
    let (mut routed, mut listening, mut overhead) = (Vec::new(), Vec::new(), Vec::new());
    for round in 1..=rounds {
        scale(cluster, 4 + round).await;
        let running =
            support::wait_status(&mut events, "TASK_RUNNING", Duration::from_secs(30), |_| {
                true
            })
            .await;
        let port = running.data["ports"][0].as_u64().expect("the task's port");
        let port = u16::try_from(port).expect("a port");
        let listens = tokio::spawn(listening_after(port, running.at));
        let served = first_served_through(&url, port, running.at).await;
        let listens = listens.await.expect("the listen probe");
        routed.push(served);
        listening.push(listens);
        overhead.push(served.saturating_sub(listens));
    }
    report(
        &format!("backend change → routed ({rounds} scale-ups): TASK_RUNNING → first response from the task through orch lb"),
        &mut routed,
    );
    report(
        "  of which: TASK_RUNNING → nginx accepts on its port (the app starting)",
        &mut listening,
    );
    report(
        "  the rest: nginx accepting → first response through orch lb",
        &mut overhead,
    );
    drop(lb);

    // With health checks and --health-check: a task is routed once its check passes.
    let lb = LbProcess::start(cluster, &masters, &["--health-check"]).await;
    let url = format!("{}/", LbProcess::url(lb.http));
    let mut events = support::follow_events(&master, &["health_status_changed_event"]).await;
    let checked = json!({"healthChecks": [{"protocol": "TCP", "portIndex": 0, "delaySeconds": 0,
        "gracePeriodSeconds": 30, "intervalSeconds": 1, "timeoutSeconds": 1,
        "maxConsecutiveFailures": 3}], "instances": 4});
    let updated = cluster
        .http
        .put(&format!("{master}/v2/apps/bench/web?force=true"), &checked)
        .await;
    assert!(updated.ok(), "{}", updated.body);
    wait_body(&url, Duration::from_secs(60), |_| true).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    while let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(100), events.recv()).await {}
    let mut healthy_to_routed = Vec::new();
    for round in 1..=rounds {
        scale(cluster, 4 + round).await;
        let healthy = loop {
            let event = tokio::time::timeout(Duration::from_secs(30), events.recv())
                .await
                .expect("a health event within 30 s")
                .expect("the event stream");
            if event.data["alive"] == json!(true) {
                break event;
            }
        };
        let tasks = cluster
            .http
            .get(&format!("{master}/v2/apps/bench/web/tasks"))
            .await
            .json();
        let task_id = healthy.data["taskId"].clone();
        let port = tasks["tasks"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|task| task["id"] == task_id)
            .and_then(|task| task["ports"][0].as_u64())
            .unwrap_or_else(|| panic!("the healthy task {task_id} in {tasks}"));
        let port = u16::try_from(port).expect("a port");
        healthy_to_routed.push(first_served_through(&url, port, healthy.at).await);
    }
    report(
        &format!("healthy → routed ({rounds} scale-ups, TCP check, --health-check): health_status_changed_event alive → first response from the task through orch lb"),
        &mut healthy_to_routed,
    );
}

/// Sets the bench app's instances (overriding its deployment).
async fn scale(cluster: &Cluster, instances: usize) {
    let master = cluster.url(0);
    let scaled = cluster
        .http
        .put(
            &format!("{master}/v2/apps/bench/web?force=true"),
            &json!({ "instances": instances }),
        )
        .await;
    assert!(scaled.ok(), "{}", scaled.body);
}

/// From `since` until a GET through the LB at `url` is answered by the task on `port`.
async fn first_served_through(url: &str, port: u16, since: Instant) -> Duration {
    orch_pki::tls::install_crypto_provider();
    let http = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let want = format!("{port}\n");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(response) = http.get(url).header("Host", HOST).send().await {
            if response.text().await.is_ok_and(|body| body == want) {
                return since.elapsed();
            }
        }
        assert!(
            Instant::now() < deadline,
            "port {port} never served through orch lb"
        );
    }
}

/// From `since` until 127.0.0.1:`port` accepts a connection (polled every millisecond).
async fn listening_after(port: u16, since: Instant) -> Duration {
    let deadline = Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "port {port} never accepted");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    since.elapsed()
}

fn report(what: &str, delays: &mut [Duration]) {
    delays.sort();
    println!(
        "{what}: median {}, p90 {}, max {}",
        common::ms(common::percentile(delays, 50.0)),
        common::ms(common::percentile(delays, 90.0)),
        common::ms(common::percentile(delays, 100.0)),
    );
}

//! `orch lb` end to end: real masters, a real agent running process tasks that serve HTTP,
//! `orch lb` as its own process fed by `/v1/snapshots`, real clients. Routing by vhost, path,
//! app id, service port and VIP (found by its DNS name through `orch dns`); and no failed
//! request while an app restarts, scales down, or switches colour with `orch app
//! deploy-bluegreen` under a continuous load.

mod support;

use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{free_port, wait_dig, Cluster, DnsProcess, Http, LbProcess};

const TEST_TIMEOUT: Duration = Duration::from_secs(180);

/// The test backend: answers every GET and POST with `<app id>:<port> <path>`; on SIGTERM
/// it keeps serving for 300 ms (requests already on their way), then finishes what it
/// has accepted and exits, as a well-behaved service does.
const BACKEND: &str = r#"
import http.server, signal, sys, threading, time
app, port = sys.argv[1], int(sys.argv[2])
class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        body = f"{app}:{port} {self.path}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    do_GET = do_POST = answer
    def log_message(self, *args):
        pass
class Server(http.server.ThreadingHTTPServer):
    request_queue_size = 256
    daemon_threads = False
server = Server(("127.0.0.1", port), Handler)
def stop(*_):
    time.sleep(0.3)
    server.shutdown()
signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=stop).start())
server.serve_forever()
server.server_close()
"#;

/// A process app running [`BACKEND`] (written to `dir`), with an HTTP health check.
///
/// A quarter of a CPU: the agent enforces `cpus` as a CFS quota, and at 0.01 (1% of a CPU)
/// Python alone takes over 10 s to start and cannot keep up with the load, so health checks
/// fail and the tests measure the quota instead of the load balancer.
fn web_app(
    dir: &std::path::Path,
    id: &str,
    instances: u32,
    labels: Value,
    port_labels: Value,
) -> Value {
    let script = dir.join("backend.py");
    std::fs::write(&script, BACKEND).expect("write backend.py");
    json!({
        "id": id,
        "cmd": format!("exec python3 {} \"$MARATHON_APP_ID\" $PORT0", script.display()),
        "cpus": 0.25, "mem": 32, "instances": instances,
        "labels": labels,
        "portDefinitions": [{"port": 0, "name": "http", "labels": port_labels}],
        "healthChecks": [{
            "protocol": "HTTP", "path": "/whoami", "portIndex": 0,
            "gracePeriodSeconds": 30, "intervalSeconds": 1, "timeoutSeconds": 1,
            "maxConsecutiveFailures": 3
        }],
        "upgradeStrategy": {"minimumHealthCapacity": 0.5, "maximumOverCapacity": 0.5}
    })
}

/// A master and an agent offering task ports `ports` (each test its own range: the tests of
/// this file run side by side on one machine, and two agents handing out the same port
/// would send one test's traffic to another's task).
async fn start_cluster(ports: &str) -> Cluster {
    let mut cluster = Cluster::start(1, &[]);
    cluster.wait_for_leader(Duration::from_secs(20)).await;
    let resources = format!("cpus:8;mem:8192;disk:1000;ports:[{ports}]");
    cluster.add_agent(&["--resources", &resources, "--containerizers", "mesos"]);
    cluster.wait_for_agents(0, 1, Duration::from_secs(20)).await;
    cluster
}

/// Creates a [`web_app`] (arguments after the dir as there).
async fn create_web(
    cluster: &Cluster,
    id: &str,
    instances: u32,
    labels: Value,
    port_labels: Value,
) {
    create(
        cluster,
        &web_app(cluster.dir(), id, instances, labels, port_labels),
    )
    .await;
}

async fn create(cluster: &Cluster, app: &Value) {
    let created = cluster
        .http
        .post(&format!("{}/v2/apps", cluster.url(0)), app)
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
}

/// The app's first service port, as the master assigned it.
async fn service_port(cluster: &Cluster, id: &str) -> u16 {
    let app = cluster
        .http
        .get(&format!("{}/v2/apps{id}", cluster.url(0)))
        .await
        .json();
    let port = app["app"]["portDefinitions"][0]["port"]
        .as_u64()
        .expect("a service port");
    u16::try_from(port).expect("a port")
}

/// GETs `url` (with `headers`) until the body satisfies `done`; returns the bodies seen.
async fn get_until(
    http: &Http,
    url: &str,
    headers: &[(&str, &str)],
    timeout: Duration,
    mut done: impl FnMut(&str) -> bool,
) -> Vec<String> {
    let deadline = Instant::now() + timeout;
    let mut seen = Vec::new();
    loop {
        let mut request = http.client.get(url);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Ok(response) = request.send().await {
            if response.status() == 200 {
                let body = response.text().await.unwrap_or_default();
                let finished = done(&body);
                seen.push(body);
                if finished {
                    return seen;
                }
            }
        }
        assert!(
            Instant::now() < deadline,
            "{url} {headers:?}: never done; saw last {:?}",
            &seen[seen.len().saturating_sub(5)..]
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn wait_deployments_done(cluster: &Cluster, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let deployments = cluster
            .http
            .get(&format!("{}/v2/deployments", cluster.url(0)))
            .await
            .json();
        if deployments.as_array().is_some_and(Vec::is_empty) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "deployments never finished: {deployments}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn routes_follow_the_apps_of_a_running_cluster() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let cluster = start_cluster("28000-28199").await;
        let masters = vec![cluster.masters[0].addr.clone()];
        let lb = LbProcess::start(&cluster, &masters, &[]).await;
        let vip_port = free_port();
        let dns = DnsProcess::start(
            &cluster,
            &masters,
            &["--vip-address", "127.0.0.1", "--external-on", "false"],
        );

        create_web(
            &cluster,
            "/shop/web",
            2,
            json!({"HAPROXY_GROUP": "external",
            "HAPROXY_0_VHOST": "shop.example.com,www.shop.example.com"}),
            json!({"VIP_0": format!("/shop-web:{vip_port}")}),
        )
        .await;
        create_web(
            &cluster,
            "/shop/api",
            1,
            json!({"HAPROXY_GROUP": "external",
            "HAPROXY_0_VHOST": "shop.example.com", "HAPROXY_0_PATH": "/api /whoami"}),
            json!({}),
        )
        .await;
        create_web(
            &cluster,
            "/plain",
            1,
            json!({"HAPROXY_GROUP": "external", "HAPROXY_0_MODE": "tcp"}),
            json!({}),
        )
        .await;
        create_web(
            &cluster,
            "/internal/db",
            1,
            json!({"HAPROXY_GROUP": "internal", "HAPROXY_0_MODE": "http"}),
            json!({}),
        )
        .await;

        // Host (case and port ignored) and path rules on the HTTP port.
        let http = Http::new();
        let url = format!("{}/whoami", LbProcess::url(lb.http));
        let seen = get_until(
            &http,
            &url,
            &[("Host", "SHOP.example.com:80")],
            Duration::from_secs(30),
            |b| b.starts_with("/shop/api:"),
        )
        .await;
        assert!(
            seen.iter().all(|b| b.starts_with("/shop/api:")),
            "the path rule wins for its paths: {seen:?}"
        );
        let index = format!("{}/", LbProcess::url(lb.http));
        let seen = get_until(
            &http,
            &index,
            &[("Host", "www.shop.example.com")],
            Duration::from_secs(30),
            |b| b.starts_with("/shop/web:"),
        )
        .await;
        assert!(
            seen.iter()
                .all(|b| b.starts_with("/shop/web:") && b.ends_with(" /")),
            "{seen:?}"
        );
        let unknown = http
            .client
            .get(&url)
            .header("Host", "nobody.example.com")
            .send()
            .await
            .expect("the LB answers");
        assert_eq!(unknown.status(), 503, "no rule for this host");

        // Both tasks of /shop/web take turns behind its service port.
        let web_port = service_port(&cluster, "/shop/web").await;
        let mut ports = std::collections::BTreeSet::new();
        get_until(
            &http,
            &format!("http://127.0.0.1:{web_port}/whoami"),
            &[],
            Duration::from_secs(30),
            |b| {
                ports.insert(b.to_owned());
                ports.len() == 2
            },
        )
        .await;

        // /plain has no vhost: its service port is a tcp-mode frontend.
        let plain_port = service_port(&cluster, "/plain").await;
        get_until(
            &http,
            &format!("http://127.0.0.1:{plain_port}/whoami"),
            &[],
            Duration::from_secs(30),
            |b| b.starts_with("/plain:"),
        )
        .await;

        // The app-id port routes by X-Marathon-App-Id to http-mode apps only.
        let app_id_url = format!("{}/whoami", LbProcess::url(lb.app_id));
        for id in ["/shop/api", "/shop/web"] {
            get_until(
                &http,
                &app_id_url,
                &[("X-Marathon-App-Id", id)],
                Duration::from_secs(10),
                |b| b.starts_with(&format!("{id}:")),
            )
            .await;
        }
        let tcp_app = http
            .client
            .get(&app_id_url)
            .header("X-Marathon-App-Id", "/plain")
            .send()
            .await
            .expect("the LB answers");
        assert_eq!(tcp_app.status(), 503, "/plain is a tcp-mode app");

        // Another group's app is not served by this LB.
        let db_port = service_port(&cluster, "/internal/db").await;
        let other_group = http
            .client
            .get(&app_id_url)
            .header("X-Marathon-App-Id", "/internal/db")
            .send()
            .await
            .expect("the LB answers");
        assert_eq!(other_group.status(), 503);
        assert!(
            http.client
                .get(format!("http://127.0.0.1:{db_port}/whoami"))
                .send()
                .await
                .is_err(),
            "no listener for another group's port"
        );

        // The VIP: its DNS name gives the LB's address, its port reaches the app.
        let vip_ip = wait_dig(
            dns.dns,
            &["shop-web.marathon.l4lb.thisdcos.directory"],
            Duration::from_secs(20),
            |a| !a.is_empty(),
        )
        .await;
        assert_eq!(vip_ip, "127.0.0.1");
        get_until(
            &http,
            &format!("http://{vip_ip}:{vip_port}/whoami"),
            &[],
            Duration::from_secs(10),
            |b| b.starts_with("/shop/web:"),
        )
        .await;

        // Stats: the backends with their servers up, and the routing table.
        let stats = http
            .get(&format!("{}/haproxy?stats", LbProcess::url(lb.stats)))
            .await
            .body;
        assert!(stats.contains(&format!("shop_web_{web_port}")), "{stats}");
        let config = http
            .get(&format!("{}/_haproxy_getconfig", LbProcess::url(lb.stats)))
            .await
            .json();
        assert_eq!(
            config["backends"][format!("shop_web_{web_port}")]["servers"]
                .as_array()
                .map(Vec::len),
            Some(2),
            "{config}"
        );
        let metrics = http
            .get(&format!("{}/metrics", LbProcess::url(lb.stats)))
            .await
            .body;
        assert!(
            metrics.contains(&format!("shop_web_{web_port}")),
            "{metrics}"
        );
    })
    .await
    .expect("test timed out");
}

/// Counts requests and failures of `workers` clients that POST to `url` in a loop until
/// stopped. POST is not idempotent, so the LB never retries it on another task: every
/// request must reach a task that serves it to the end.
struct Load {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicUsize>,
    failures: Arc<std::sync::Mutex<Vec<String>>>,
    workers: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(url: String, host: &'static str, workers: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicUsize::new(0));
        let failures = Arc::new(std::sync::Mutex::new(Vec::new()));
        let workers = (0..workers)
            .map(|_| {
                let (stop, sent, failures, url) = (
                    Arc::clone(&stop),
                    Arc::clone(&sent),
                    Arc::clone(&failures),
                    url.clone(),
                );
                tokio::spawn(async move {
                    let http = Http::new();
                    while !stop.load(Ordering::Relaxed) {
                        let outcome = http
                            .client
                            .post(&url)
                            .header("Host", host)
                            .body("payload")
                            .send()
                            .await;
                        sent.fetch_add(1, Ordering::Relaxed);
                        let failure = match outcome {
                            Ok(response) if response.status() == 200 => match response.text().await
                            {
                                Ok(_) => None,
                                Err(error) => Some(format!("body: {error}")),
                            },
                            Ok(response) => Some(format!("status {}", response.status())),
                            Err(error) => Some(format!("{error:?}")),
                        };
                        if let Some(failure) = failure {
                            failures.lock().expect("failures").push(failure);
                        }
                    }
                })
            })
            .collect();
        Self {
            stop,
            sent,
            failures,
            workers,
        }
    }

    /// Stops the clients; returns (requests sent, failures).
    async fn finish(self) -> (usize, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        for worker in self.workers {
            worker.await.expect("a load worker");
        }
        let failures = self.failures.lock().expect("failures").clone();
        (self.sent.load(Ordering::Relaxed), failures)
    }
}

#[tokio::test]
async fn restarts_and_scale_downs_under_load_fail_no_request() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let cluster = start_cluster("28200-28399").await;
        let masters = vec![cluster.masters[0].addr.clone()];
        let lb = LbProcess::start(&cluster, &masters, &["--health-check"]).await;
        // A service port of its own: the other tests' LBs bind 10000 and up.
        let mut busy = web_app(
            cluster.dir(),
            "/busy",
            4,
            json!({"HAPROXY_GROUP": "external", "HAPROXY_0_VHOST": "busy.example.com"}),
            json!({}),
        );
        busy["portDefinitions"][0]["port"] = json!(free_port());
        create(&cluster, &busy).await;
        let url = format!("{}/whoami", LbProcess::url(lb.http));
        let http = Http::new();
        let mut serving = std::collections::BTreeSet::new();
        get_until(
            &http,
            &url,
            &[("Host", "busy.example.com")],
            Duration::from_secs(60),
            |b| {
                serving.insert(b.to_owned());
                serving.len() == 4
            },
        )
        .await;
        wait_deployments_done(&cluster, Duration::from_secs(30)).await;

        // A rolling restart of all 4 instances under a continuous load.
        let load = Load::start(url.clone(), "busy.example.com", 4);
        tokio::time::sleep(Duration::from_millis(300)).await;
        let restart = cluster
            .http
            .post(
                &format!("{}/v2/apps/busy/restart", cluster.url(0)),
                &json!({}),
            )
            .await;
        assert!(restart.ok(), "{}", restart.body);
        wait_deployments_done(&cluster, Duration::from_secs(90)).await;
        let (sent, failures) = load.finish().await;
        assert!(sent > 100, "the load ran: {sent} requests");
        assert!(
            failures.is_empty(),
            "{} of {sent} requests failed during the restart: {:?}",
            failures.len(),
            &failures[..failures.len().min(10)]
        );
        let after: std::collections::BTreeSet<String> = get_until(
            &http,
            &url,
            &[("Host", "busy.example.com")],
            Duration::from_secs(5),
            |_| true,
        )
        .await
        .into_iter()
        .collect();
        assert!(
            after.is_disjoint(&serving),
            "new tasks serve after the restart: {after:?} vs {serving:?}"
        );

        // Scale down from 4 to 1 under load.
        let load = Load::start(url.clone(), "busy.example.com", 4);
        tokio::time::sleep(Duration::from_millis(300)).await;
        let scaled = cluster
            .http
            .put(
                &format!("{}/v2/apps/busy?force=true", cluster.url(0)),
                &json!({"instances": 1}),
            )
            .await;
        assert!(scaled.ok(), "{}", scaled.body);
        wait_deployments_done(&cluster, Duration::from_secs(60)).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (sent, failures) = load.finish().await;
        assert!(sent > 50, "the load ran: {sent} requests");
        assert!(
            failures.is_empty(),
            "{} of {sent} requests failed during the scale-down: {:?}",
            failures.len(),
            &failures[..failures.len().min(10)]
        );
        let config = http
            .get(&format!("{}/_haproxy_getconfig", LbProcess::url(lb.stats)))
            .await
            .json();
        let servers: Vec<usize> = config["backends"]
            .as_object()
            .expect("backends")
            .values()
            .map(|b| b["servers"].as_array().map_or(0, Vec::len))
            .collect();
        assert_eq!(servers, vec![1], "{config}");
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn a_blue_green_switch_through_the_lb_fails_no_request() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let cluster = start_cluster("28400-28599").await;
        let masters = vec![cluster.masters[0].addr.clone()];
        let lb = LbProcess::start(&cluster, &masters, &["--health-check"]).await;
        let (port, alt_port) = (free_port(), free_port());
        let write = |release: u32| {
            let mut app = web_app(
                cluster.dir(),
                "/shop",
                3,
                json!({
                    "HAPROXY_GROUP": "external",
                    "HAPROXY_DEPLOYMENT_GROUP": "shop",
                    "HAPROXY_DEPLOYMENT_ALT_PORT": alt_port.to_string()
                }),
                json!({}),
            );
            app["portDefinitions"][0]["port"] = json!(port);
            app["env"] = json!({"RELEASE": release.to_string()});
            let path = cluster.dir().join(format!("shop-{release}.json"));
            std::fs::write(&path, app.to_string()).expect("write the app file");
            path.display().to_string()
        };
        let master = cluster.url(0);
        let deploy = |file: String| {
            let master = master.clone();
            async move {
                let out = support::run_orch(
                    &[
                        "--master",
                        &master,
                        "app",
                        "deploy-bluegreen",
                        &file,
                        "--step-delay",
                        "200ms",
                    ],
                    Duration::from_secs(120),
                )
                .await;
                assert!(out.status.success(), "{}", support::describe_output(&out));
            }
        };
        deploy(write(1)).await;
        let url = format!("http://127.0.0.1:{port}/");
        let http = Http::new();
        get_until(&http, &url, &[], Duration::from_secs(30), |b| {
            b.starts_with("/shop-blue:")
        })
        .await;

        // Blue → green under load on the port both colours share (HAPROXY_0_PORT).
        let load = Load::start(url.clone(), "shop.example.com", 4);
        tokio::time::sleep(Duration::from_millis(300)).await;
        deploy(write(2)).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let (sent, failures) = load.finish().await;
        assert!(sent > 100, "the load ran: {sent} requests");
        assert!(
            failures.is_empty(),
            "{} of {sent} requests failed during the switch: {:?}",
            failures.len(),
            &failures[..failures.len().min(10)]
        );
        let seen = get_until(&http, &url, &[], Duration::from_secs(5), |_| true).await;
        assert!(
            seen.iter().all(|b| b.starts_with("/shop-green:")),
            "{seen:?}"
        );
        let config = http
            .get(&format!("{}/_haproxy_getconfig", LbProcess::url(lb.stats)))
            .await
            .json();
        assert_eq!(
            config["backends"][format!("shop_{port}")]["servers"]
                .as_array()
                .map(Vec::len),
            Some(3),
            "{config}"
        );
    })
    .await
    .expect("test timed out");
}

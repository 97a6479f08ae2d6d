//! HAProxy mode end to end, with Debian's real `haproxy` (2.6): a real cluster runs HTTP
//! apps labelled for marathon-lb; the routing table of the master's snapshot becomes a
//! `haproxy.cfg` that passes `haproxy -c`, and a real HAProxy started on it routes by Host
//! header, path, `X-Marathon-App-Id`, SNI and service port as the table says, runs the
//! translated health checks, and follows a scale-up through HAProxy mode's reload. A second
//! test drives HAProxy mode's loop with hand-made snapshots: a change rewrites the file and
//! reloads once, the same text does nothing, a config HAProxy rejects keeps the old file and
//! does not reload, and a failed reload is retried.

mod support;

use orch_core::model::{Task, TaskState};
use orch_core::state::Snapshot;
use orch_core::testing::{self, AGENT0};
use orch_lb::{
    apply_haproxy_config, haproxy_config, routes, run_haproxy_mode, HaproxyApplied, HaproxyError,
    HaproxyMode, LbConfig, Limits, RouteConfig,
};
use serde_json::json;
use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{free_port, Cluster};
use tokio::sync::watch;

const TEST_TIMEOUT: Duration = Duration::from_secs(240);

/// A task's HTTP server: answers every GET with `<app> <port> <path> xff=<X-Forwarded-For>`.
const SERVER_PY: &str = r#"
import http.server, os, sys
name, port = sys.argv[1], int(os.environ["PORT0"])
class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        xff = self.headers.get("X-Forwarded-For", "-")
        body = f"{name} {port} {self.path} xff={xff}\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
"#;

/// A `haproxy` child process, killed on drop; its output goes to a log file.
struct Haproxy {
    child: Child,
    log: PathBuf,
}

impl Haproxy {
    /// `haproxy -W -db -f <config>`: master-worker in the foreground, so that SIGUSR2 to
    /// this process reloads it.
    fn start(config: &Path, log: &Path) -> Haproxy {
        let out = std::fs::File::create(log).expect("create the haproxy log");
        let err = out.try_clone().expect("clone the log handle");
        let child = Command::new("haproxy")
            .args(["-W", "-db", "-f"])
            .arg(config)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("start haproxy");
        Haproxy {
            child,
            log: log.to_owned(),
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("===== haproxy log =====\n{}", self.log());
        }
        // It may have exited already.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `haproxy -c -f <file>`: success and what it printed.
fn haproxy_check(file: &Path) -> (bool, String) {
    let output = Command::new("haproxy")
        .arg("-c")
        .arg("-f")
        .arg(file)
        .output()
        .expect("run haproxy -c");
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    (output.status.success(), text)
}

/// A self-signed certificate for `host` (real openssl): (certificate only, certificate + key).
fn certificate(dir: &Path, host: &str) -> (PathBuf, PathBuf) {
    let crt = dir.join(format!("{host}.crt"));
    let key = dir.join(format!("{host}.key"));
    let status = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&crt)
        .args(["-subj", &format!("/CN={host}")])
        .args(["-addext", &format!("subjectAltName=DNS:{host}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run openssl");
    assert!(status.success(), "openssl req failed");
    let pem = dir.join(format!("{host}.pem"));
    let mut both = std::fs::read(&crt).expect("read the certificate");
    both.extend(std::fs::read(&key).expect("read the key"));
    std::fs::write(&pem, both).expect("write the PEM");
    (crt, pem)
}

fn client() -> reqwest::Client {
    orch_pki::tls::install_crypto_provider();
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("build a client")
}

/// GET `http://127.0.0.1:<port><path>` with `headers`: (status, body).
async fn get(port: u16, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let mut request = client().get(format!("http://127.0.0.1:{port}{path}"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET :{port}{path}: {e}"));
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

/// HTTPS through curl (real TLS with SNI), trusting `ca`.
fn curl_https(port: u16, host: &str, path: &str, ca: &Path) -> String {
    let output = Command::new("curl")
        .args(["-sS", "--max-time", "5", "--resolve"])
        .arg(format!("{host}:{port}:127.0.0.1"))
        .arg("--cacert")
        .arg(ca)
        .arg(format!("https://{host}:{port}{path}"))
        .output()
        .expect("run curl");
    assert!(
        output.status.success(),
        "curl https://{host}:{port}{path}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The first word (app name) and second (task port) of a server's answer.
fn answer(body: &str) -> (String, u16) {
    let mut words = body.split_whitespace();
    let name = words.next().unwrap_or_default().to_owned();
    let port = words.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    (name, port)
}

/// The number of TASK_RUNNING tasks of `app` in `snapshot`.
fn running(snapshot: &Snapshot, app: &str) -> usize {
    snapshot
        .tasks
        .values()
        .filter(|t| t.app_id.as_str() == app && t.state == TaskState::Running)
        .count()
}

/// Rows of `/haproxy?stats;csv` for servers (not FRONTEND/BACKEND) of `backend`.
async fn server_rows(stats_port: u16, backend: &str) -> Vec<Vec<String>> {
    let (status, csv) = get(stats_port, "/haproxy?stats;csv", &[]).await;
    assert_eq!(status, 200, "{csv}");
    csv.lines()
        .map(|line| line.split(',').map(str::to_owned).collect::<Vec<_>>())
        .filter(|row| {
            row.len() > 36 && row[0] == backend && row[1] != "BACKEND" && row[1] != "FRONTEND"
        })
        .collect()
}

/// Polls `condition` every 100 ms until it holds or `timeout` passes.
async fn eventually<F, Fut>(what: &str, timeout: Duration, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while !condition().await {
        assert!(Instant::now() < deadline, "{what} within {timeout:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Logs of the code under test, shown for failing tests.
fn init_logs() {
    // Another test may have installed it already.
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
}

fn ip(text: &str) -> IpAddr {
    text.parse().expect("an IP")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn haproxy_routes_what_the_table_says() {
    init_logs();
    tokio::time::timeout(TEST_TIMEOUT, async {
        let mut cluster = Cluster::start(1, &[]);
        cluster.wait_for_leader(Duration::from_secs(20)).await;
        cluster.add_agent(&[
            "--resources",
            "cpus:4;mem:4096;disk:100;ports:[31000-31100]",
            "--containerizers",
            "mesos",
        ]);
        cluster.wait_for_agents(0, 1, Duration::from_secs(20)).await;
        let dir = cluster.dir().to_owned();
        let script = dir.join("server.py");
        std::fs::write(&script, SERVER_PY).expect("write server.py");

        let (web_port, api_port, tcp_port, internal_port) =
            (free_port(), free_port(), free_port(), free_port());
        // A quarter of a CPU each: `cpus` is enforced as a CFS quota, and Python needs it.
        let app = |id: &str, name: &str, port: u16, instances: u32, labels: serde_json::Value| {
            json!({
                "id": id, "cmd": format!("exec python3 {} {name}", script.display()),
                "cpus": 0.25, "mem": 32, "instances": instances,
                "portDefinitions": [{"port": port}], "labels": labels,
            })
        };
        let mut api = app(
            "/api",
            "api",
            api_port,
            1,
            json!({"HAPROXY_GROUP": "external", "HAPROXY_0_VHOST": "web.example.com",
                   "HAPROXY_0_PATH": "/api"}),
        );
        api["healthChecks"] = json!([{"protocol": "HTTP", "path": "/health", "portIndex": 0,
            "intervalSeconds": 1, "timeoutSeconds": 1, "gracePeriodSeconds": 30}]);
        let apps = [
            app(
                "/web",
                "web",
                web_port,
                2,
                json!({"HAPROXY_GROUP": "external", "HAPROXY_0_VHOST": "web.example.com"}),
            ),
            api,
            app(
                "/tcp",
                "tcp",
                tcp_port,
                1,
                json!({"HAPROXY_GROUP": "external", "HAPROXY_0_MODE": "tcp"}),
            ),
            app(
                "/internal",
                "internal",
                internal_port,
                1,
                json!({"HAPROXY_GROUP": "internal"}),
            ),
        ];
        for body in &apps {
            let created = cluster
                .http
                .post(&format!("{}/v2/apps", cluster.url(0)), body)
                .await;
            assert_eq!(created.status, 201, "{}", created.body);
        }

        // The master's snapshot stream, as `orch lb` would follow it.
        let master = cluster.masters[0].addr.clone();
        let access = orch_discovery::MasterAccess::plaintext().expect("an HTTP client");
        let mut snapshots = orch_discovery::from_masters(vec![master], access);
        let snapshot = tokio::time::timeout(
            Duration::from_secs(60),
            snapshots.wait_for(|s| {
                running(s, "/web") == 2
                    && running(s, "/api") == 1
                    && running(s, "/tcp") == 1
                    && running(s, "/internal") == 1
            }),
        )
        .await
        .expect("every task running within 60 s")
        .map(|s| Arc::clone(&s))
        .expect("the snapshot feed is open");

        // TASK_RUNNING means started, not listening yet: wait for every server to listen.
        for task in snapshot.tasks.values() {
            let port = task.ports[0];
            eventually(
                &format!("{} listening", task.id),
                Duration::from_secs(20),
                || async move {
                    tokio::net::TcpStream::connect(("127.0.0.1", port))
                        .await
                        .is_ok()
                },
            )
            .await;
        }

        let route_config = RouteConfig {
            groups: vec!["external".into()],
            ..RouteConfig::default()
        };
        let table = routes(&snapshot, &route_config);
        let backend_names: Vec<&str> = table.backends.keys().map(String::as_str).collect();
        let web_backend = format!("web_{web_port}");
        let api_backend = format!("api_{api_port}");
        let tcp_backend = format!("tcp_{tcp_port}");
        let mut expected = vec![
            web_backend.as_str(),
            api_backend.as_str(),
            tcp_backend.as_str(),
        ];
        expected.sort();
        assert_eq!(
            backend_names, expected,
            "the internal app is another group's"
        );

        let (ca, pem) = certificate(&dir, "web.example.com");
        let lb = LbConfig {
            routes: route_config,
            bind_addr: ip("127.0.0.1"),
            http_port: free_port(),
            https_port: free_port(),
            app_id_port: free_port(),
            stats_port: free_port(),
            ssl_certs: vec![pem],
            // HAProxy needs about two descriptors per connection: stay under this machine's
            // hard limit.
            limits: Limits {
                max_connections: 2000,
                ..Limits::default()
            },
            ..LbConfig::default()
        };
        let text = haproxy_config(&table, &lb);
        let config_path = dir.join("haproxy.cfg");
        std::fs::write(&config_path, &text).expect("write haproxy.cfg");
        let (valid, checked) = haproxy_check(&config_path);
        assert!(valid, "haproxy -c rejected the config:\n{checked}\n{text}");
        assert!(
            !checked.contains("WARNING"),
            "haproxy -c warned:\n{checked}\n{text}"
        );

        let haproxy = Haproxy::start(&config_path, &dir.join("haproxy.log"));
        let pid = haproxy.child.id();
        eventually(
            "HAProxy answering its health check",
            Duration::from_secs(10),
            || async {
                client()
                    .get(format!(
                        "http://127.0.0.1:{}/_haproxy_health_check",
                        lb.stats_port
                    ))
                    .send()
                    .await
                    .is_ok_and(|r| r.status().as_u16() == 200)
            },
        )
        .await;

        // Host rules on the HTTP port: path rules first, port and case of Host ignored.
        let web_tasks: BTreeSet<u16> = snapshot
            .tasks
            .values()
            .filter(|t| t.app_id.as_str() == "/web")
            .map(|t| t.ports[0])
            .collect();
        let mut seen = BTreeSet::new();
        for _ in 0..4 {
            let (status, body) = get(lb.http_port, "/", &[("Host", "web.example.com")]).await;
            assert_eq!(status, 200, "{body}");
            let (name, port) = answer(&body);
            assert_eq!(name, "web", "{body}");
            seen.insert(port);
        }
        assert_eq!(seen, web_tasks, "round robin over both /web tasks");
        let (_, body) = get(
            lb.http_port,
            "/api/users",
            &[("Host", "WEB.example.com:80")],
        )
        .await;
        assert_eq!(answer(&body).0, "api", "{body}");
        assert!(body.contains(" /api/users xff=127.0.0.1"), "{body}");
        let (_, body) = get(lb.http_port, "/apis", &[("Host", "web.example.com")]).await;
        assert_eq!(answer(&body).0, "api", "path_beg: {body}");
        let (status, _) = get(lb.http_port, "/", &[("Host", "nobody.example.com")]).await;
        assert_eq!(status, 503);

        // The app-id port: http-mode apps only.
        for (id, name) in [("/api", "api"), ("/web", "web")] {
            let (status, body) = get(lb.app_id_port, "/", &[("X-Marathon-App-Id", id)]).await;
            assert_eq!((status, answer(&body).0.as_str()), (200, name), "{body}");
        }
        let (status, _) = get(lb.app_id_port, "/", &[("X-Marathon-App-Id", "/tcp")]).await;
        assert_eq!(status, 503);

        // Service ports: http mode adds X-Forwarded-For, tcp mode passes bytes untouched.
        let (_, body) = get(web_port, "/x", &[]).await;
        assert_eq!(answer(&body).0, "web");
        assert!(body.ends_with("xff=127.0.0.1\n"), "{body}");
        let (_, body) = get(tcp_port, "/x", &[]).await;
        assert_eq!(answer(&body).0, "tcp");
        assert!(body.ends_with("xff=-\n"), "{body}");
        assert!(
            client()
                .get(format!("http://127.0.0.1:{internal_port}/"))
                .send()
                .await
                .is_err(),
            "nothing listens on the internal app's service port"
        );

        // HTTPS with SNI, verified against the certificate.
        assert_eq!(
            answer(&curl_https(lb.https_port, "web.example.com", "/", &ca)).0,
            "web"
        );
        assert_eq!(
            answer(&curl_https(lb.https_port, "web.example.com", "/api/1", &ca)).0,
            "api"
        );

        // The translated HTTP health check runs: the /api server is UP after an L7 check.
        eventually(
            "the /api server checked UP",
            Duration::from_secs(15),
            || async {
                let rows = server_rows(lb.stats_port, &api_backend).await;
                rows.len() == 1 && rows[0][17] == "UP" && rows[0][36] == "L7OK"
            },
        )
        .await;

        // HAProxy mode follows the cluster: the same snapshot gives the same text (no reload);
        // a scale-up rewrites the file and reloads the running HAProxy.
        let mode = HaproxyMode {
            config_path: config_path.clone(),
            reload_command: format!("kill -USR2 {pid}"),
            haproxy_binary: PathBuf::from("haproxy"),
        };
        assert_eq!(
            apply_haproxy_config(&mode, &text).await.expect("unchanged"),
            HaproxyApplied::Unchanged
        );
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let follower = tokio::spawn(run_haproxy_mode(
            LbConfig {
                haproxy: Some(mode),
                ..lb.clone()
            },
            snapshots.clone(),
            async move {
                let _ = stopped.await;
            },
        ));
        let scaled = cluster
            .http
            .put(
                &format!("{}/v2/apps/web", cluster.url(0)),
                &json!({"instances": 3}),
            )
            .await;
        assert!(scaled.ok(), "{}", scaled.body);
        eventually(
            "HAProxy serving three /web servers",
            Duration::from_secs(60),
            || async { server_rows(lb.stats_port, &web_backend).await.len() == 3 },
        )
        .await;
        let scaled = snapshots.borrow().clone();
        for task in scaled
            .tasks
            .values()
            .filter(|t| t.app_id.as_str() == "/web")
        {
            let port = task.ports[0];
            eventually(
                &format!("{} listening", task.id),
                Duration::from_secs(20),
                || async move {
                    tokio::net::TcpStream::connect(("127.0.0.1", port))
                        .await
                        .is_ok()
                },
            )
            .await;
        }
        let written = std::fs::read_to_string(&config_path).expect("read haproxy.cfg");
        let servers = |text: &str| text.lines().filter(|l| l.starts_with("  server ")).count();
        assert_eq!(servers(&written), servers(&text) + 1);
        let mut seen = BTreeSet::new();
        for _ in 0..6 {
            let (_, body) = get(lb.http_port, "/", &[("Host", "web.example.com")]).await;
            seen.insert(answer(&body).1);
        }
        assert_eq!(seen.len(), 3, "requests reach the new task: {seen:?}");
        let log = haproxy.log();
        assert!(log.contains("Reloading HAProxy"), "{log}");
        assert_eq!(
            log.matches("Loading success.").count(),
            2,
            "one reload: {log}"
        );

        let _ = stop.send(());
        tokio::time::timeout(Duration::from_secs(5), follower)
            .await
            .expect("HAProxy mode stops on shutdown")
            .expect("the task did not panic")
            .expect("HAProxy mode ends cleanly");
    })
    .await
    .expect("test timed out");
}

// ---------------------------------------------------------------------------------------------
// HAProxy mode's loop on hand-made snapshots
// ---------------------------------------------------------------------------------------------

fn web_snapshot(labels: serde_json::Value, index: u64) -> Snapshot {
    let mut definition = json!({"cmd": "sleep 100", "portDefinitions": [{"port": 10000}]});
    definition["labels"] = labels;
    let agent = testing::agent(AGENT0, "agent0", "127.0.0.1:5051", true);
    let task = Task {
        host: "agent0".into(),
        ip_addresses: vec!["127.0.0.1".into()],
        ..testing::task("/web", "a", AGENT0, &[31000])
    };
    Snapshot {
        applied_index: index,
        ..testing::snapshot_of([agent], [testing::app("/web", definition)], [task])
    }
}

fn lines(path: &Path) -> usize {
    std::fs::read_to_string(path).map_or(0, |text| text.lines().count())
}

#[tokio::test]
async fn haproxy_mode_writes_checks_and_reloads_only_on_change() {
    init_logs();
    tokio::time::timeout(Duration::from_secs(60), async {
        let dir = tempfile::tempdir().expect("a temp dir");
        let config_path = dir.path().join("haproxy.cfg");
        let reloads = dir.path().join("reloads");
        let allow = dir.path().join("allow");
        std::fs::write(&allow, "").expect("allow reloads");
        let mode = HaproxyMode {
            config_path: config_path.clone(),
            reload_command: format!(
                "test -e '{}' && echo reloaded >> '{}'",
                allow.display(),
                reloads.display()
            ),
            haproxy_binary: PathBuf::from("haproxy"),
        };
        let lb = LbConfig {
            routes: RouteConfig::default(),
            bind_addr: ip("127.0.0.1"),
            http_port: free_port(),
            https_port: free_port(),
            app_id_port: free_port(),
            stats_port: free_port(),
            haproxy: Some(mode.clone()),
            ..LbConfig::default()
        };
        let grouped = |vhost: &str| json!({"HAPROXY_GROUP": "external", "HAPROXY_0_VHOST": vhost});

        // Without HAProxy settings the mode refuses to start.
        let refused = run_haproxy_mode(
            LbConfig {
                haproxy: None,
                ..lb.clone()
            },
            watch::channel(Arc::new(Snapshot::default())).1,
            std::future::pending(),
        )
        .await;
        assert!(
            matches!(refused, Err(HaproxyError::NotConfigured)),
            "{refused:?}"
        );

        let (sender, receiver) = watch::channel(Arc::new(web_snapshot(grouped("a.example"), 1)));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let running = tokio::spawn(run_haproxy_mode(lb.clone(), receiver, async move {
            let _ = stopped.await;
        }));

        // The first snapshot: written, checked, reloaded once.
        eventually("the first reload", Duration::from_secs(10), || async {
            lines(&reloads) == 1
        })
        .await;
        let first = std::fs::read_to_string(&config_path).expect("the config is written");
        assert!(first.contains("backend web_10000"), "{first}");
        assert!(first.contains("hdr(host) -i a.example"), "{first}");
        assert!(haproxy_check(&config_path).0);

        // Another snapshot, same text: nothing happens.
        sender.send_replace(Arc::new(web_snapshot(grouped("a.example"), 2)));
        tokio::time::sleep(Duration::from_millis(700)).await;
        assert_eq!(lines(&reloads), 1);

        // A label HAProxy rejects (a certificate that does not exist): old file, no reload.
        let mut bad = grouped("a.example");
        bad["HAPROXY_0_SSL_CERT"] = json!(dir.path().join("missing.pem").display().to_string());
        sender.send_replace(Arc::new(web_snapshot(bad, 3)));
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(lines(&reloads), 1);
        assert_eq!(std::fs::read_to_string(&config_path).expect("read"), first);
        assert!(
            !dir.path().join("haproxy.cfg.tmp").exists(),
            "the rejected file is removed"
        );

        // A real change: rewritten and reloaded once more.
        sender.send_replace(Arc::new(web_snapshot(grouped("b.example"), 4)));
        eventually("the second reload", Duration::from_secs(10), || async {
            lines(&reloads) == 2
        })
        .await;
        let second = std::fs::read_to_string(&config_path).expect("read");
        assert!(second.contains("hdr(host) -i b.example"), "{second}");
        assert!(!second.contains("a.example"), "{second}");
        assert_eq!(
            apply_haproxy_config(&mode, &second)
                .await
                .expect("unchanged"),
            HaproxyApplied::Unchanged
        );

        // A reload that fails is retried with the next snapshot, even an unchanged one.
        std::fs::remove_file(&allow).expect("forbid reloads");
        sender.send_replace(Arc::new(web_snapshot(grouped("c.example"), 5)));
        eventually("the third config", Duration::from_secs(10), || async {
            std::fs::read_to_string(&config_path).is_ok_and(|t| t.contains("c.example"))
        })
        .await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(lines(&reloads), 2, "the reload command failed");
        std::fs::write(&allow, "").expect("allow reloads again");
        sender.send_replace(Arc::new(web_snapshot(grouped("c.example"), 6)));
        eventually("the retried reload", Duration::from_secs(10), || async {
            lines(&reloads) == 3
        })
        .await;
        sender.send_replace(Arc::new(web_snapshot(grouped("c.example"), 7)));
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(lines(&reloads), 3, "once retried, no more reloads");

        let _ = stop.send(());
        tokio::time::timeout(Duration::from_secs(5), running)
            .await
            .expect("HAProxy mode stops on shutdown")
            .expect("the task did not panic")
            .expect("HAProxy mode ends cleanly");
    })
    .await
    .expect("test timed out");
}

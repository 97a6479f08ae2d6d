//! The built-in load balancer through its library API (`orch_lb::Proxy`), with routing
//! tables built by hand and sent over a watch channel, real backends (HTTP servers in this
//! process answering with their name, a python3 `http.server` process, TCP echo servers),
//! and real clients (reqwest, raw sockets, `curl` for TLS with certificates made by the
//! `openssl` CLI).

mod support;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use orch_core::model::{AppId, TaskId};
use orch_lb::{
    Backend, Balance, Frontend, FrontendKind, LbConfig, LbError, Limits, Mode, Proxy, ProxyAddrs,
    RoutingTable, Server, VhostRoute,
};
use serde_json::{json, Value};
use sha1::{Digest, Sha1};
use std::collections::{BTreeMap, BTreeSet};
use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{free_port, parse_metrics};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch, Notify};
use tokio::task::JoinHandle;

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
/// Every test body runs within this.
const TEST_TIMEOUT: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------------------
// Backends
// ---------------------------------------------------------------------------------------

/// An HTTP server in this process answering JSON with its name, port, the request's path
/// and headers and the size of its body; `?sleep=<ms>` delays the answer; `?size=<n>`
/// answers `n` bytes instead; `Upgrade` requests are switched and echoed.
struct HttpBackend {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for HttpBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn http_backend(name: &str) -> HttpBackend {
    let listener = TcpListener::bind((LOCALHOST, 0))
        .await
        .expect("bind backend");
    let addr = listener.local_addr().expect("backend address");
    let server_name = name.to_owned();
    let task = tokio::spawn(async move {
        let mut connections = tokio::task::JoinSet::new();
        loop {
            while connections.try_join_next().is_some() {}
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let name = server_name.clone();
            connections.spawn(async move {
                let service = service_fn(move |request| answer(name.clone(), addr, request));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .with_upgrades()
                    .await;
            });
        }
    });
    HttpBackend { addr, task }
}

async fn answer(
    name: String,
    addr: SocketAddr,
    mut request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let query = request.uri().query().unwrap_or("").to_owned();
    if let Some(ms) = query
        .split('&')
        .find_map(|pair| pair.strip_prefix("sleep="))
        .and_then(|ms| ms.parse::<u64>().ok())
    {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    if let Some(size) = query
        .split('&')
        .find_map(|pair| pair.strip_prefix("size="))
        .and_then(|n| n.parse::<usize>().ok())
    {
        return Ok(Response::new(Full::new(Bytes::from(vec![b'x'; size]))));
    }
    if request.headers().contains_key(hyper::header::UPGRADE) {
        let upgrade = hyper::upgrade::on(&mut request);
        tokio::spawn(async move {
            if let Ok(upgraded) = upgrade.await {
                let (mut read, mut write) = tokio::io::split(TokioIo::new(upgraded));
                let _ = tokio::io::copy(&mut read, &mut write).await;
            }
        });
        let response = Response::builder()
            .status(StatusCode::SWITCHING_PROTOCOLS)
            .header("connection", "upgrade")
            .header("upgrade", "echo")
            .body(Full::new(Bytes::new()))
            .expect("101 response");
        return Ok(response);
    }
    let mut headers = BTreeMap::<String, Vec<String>>::new();
    for (key, value) in request.headers() {
        headers
            .entry(key.as_str().to_owned())
            .or_default()
            .push(value.to_str().unwrap_or("?").to_owned());
    }
    let path = request.uri().path().to_owned();
    let body_len = match request.into_body().collect().await {
        Ok(body) => body.to_bytes().len(),
        Err(_) => 0,
    };
    let body = json!({
        "server": name,
        "port": addr.port(),
        "path": path,
        "headers": headers,
        "body_len": body_len,
    });
    Ok(Response::builder()
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("response"))
}

/// A TCP server that greets with `<name>\n`, then echoes.
struct EchoBackend {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for EchoBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn echo_backend(name: &str) -> EchoBackend {
    let listener = TcpListener::bind((LOCALHOST, 0)).await.expect("bind echo");
    let addr = listener.local_addr().expect("echo address");
    let greeting = format!("{name}\n");
    let task = tokio::spawn(async move {
        let mut connections = tokio::task::JoinSet::new();
        loop {
            while connections.try_join_next().is_some() {}
            let Ok((mut stream, _)) = listener.accept().await else {
                continue;
            };
            let greeting = greeting.clone();
            connections.spawn(async move {
                if stream.write_all(greeting.as_bytes()).await.is_err() {
                    return;
                }
                let (mut read, mut write) = stream.split();
                let _ = tokio::io::copy(&mut read, &mut write).await;
            });
        }
    });
    EchoBackend { addr, task }
}

/// An address nothing listens on.
fn dead_addr() -> SocketAddr {
    SocketAddr::new(LOCALHOST, free_port())
}

// ---------------------------------------------------------------------------------------
// Tables
// ---------------------------------------------------------------------------------------

fn server(addr: SocketAddr) -> Server {
    Server {
        name: format!("127_0_0_1_{}", addr.port()),
        task_id: TaskId(format!("task-{}", addr.port())),
        host: "127.0.0.1".to_owned(),
        ip: addr.ip(),
        port: addr.port(),
    }
}

fn backend(name: &str, mode: Mode, servers: &[SocketAddr]) -> Backend {
    Backend {
        name: name.to_owned(),
        app_id: AppId::parse(&format!("/{}", name.replace('_', "-"))).expect("app id"),
        service_port: 10000,
        mode,
        balance: Balance::RoundRobin,
        sticky: false,
        redirect_to_https: false,
        hsts: false,
        health_check: None,
        servers: servers.iter().copied().map(server).collect(),
    }
}

fn frontend(backend: &str, port: u16, mode: Mode) -> Frontend {
    Frontend {
        name: backend.to_owned(),
        bind_addr: None,
        port,
        mode,
        ssl_cert: None,
        backend: backend.to_owned(),
        kind: FrontendKind::Service,
    }
}

fn vhost(host: &str, paths: &[&str], backend: &str) -> VhostRoute {
    VhostRoute {
        host: host.to_owned(),
        paths: paths.iter().map(|p| (*p).to_owned()).collect(),
        paths_ignore_case: false,
        backend: backend.to_owned(),
        ssl_cert: None,
    }
}

fn table(
    backends: Vec<Backend>,
    frontends: Vec<Frontend>,
    vhosts: Vec<VhostRoute>,
) -> RoutingTable {
    RoutingTable {
        applied_index: 1,
        backends: backends
            .into_iter()
            .map(|b| (b.name.clone(), Arc::new(b)))
            .collect(),
        frontends,
        vhosts,
        app_ids: BTreeMap::new(),
    }
}

// ---------------------------------------------------------------------------------------
// The proxy
// ---------------------------------------------------------------------------------------

/// Short timeouts so that every test is fast.
fn config() -> LbConfig {
    LbConfig {
        bind_addr: LOCALHOST,
        http_port: free_port(),
        https_port: free_port(),
        app_id_port: free_port(),
        stats_port: free_port(),
        limits: Limits {
            connect_timeout: Duration::from_secs(1),
            client_timeout: Duration::from_secs(10),
            server_timeout: Duration::from_secs(5),
            http_request_timeout: Duration::from_secs(2),
            keep_alive_timeout: Duration::from_secs(5),
            max_header_bytes: 16 * 1024,
            max_connections: 1000,
            retries: 3,
        },
        ..LbConfig::default()
    }
}

/// A running proxy.
struct Lb {
    addrs: ProxyAddrs,
    tables: watch::Sender<Arc<RoutingTable>>,
    hup: Arc<Notify>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), LbError>>>,
}

impl Lb {
    /// Starts a proxy serving `first` (whose `applied_index` must not be 0) and waits until
    /// it does.
    async fn start(config: LbConfig, first: RoutingTable) -> Lb {
        let index = first.applied_index;
        let proxy = Proxy::bind(Arc::new(config)).await.expect("bind the proxy");
        let addrs = proxy.addrs();
        let (tables, receiver) = watch::channel(Arc::new(first));
        let hup = Arc::new(Notify::new());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(proxy.run(receiver, Arc::clone(&hup), async move {
            let _ = stopped.await;
        }));
        let lb = Lb {
            addrs,
            tables,
            hup,
            stop: Some(stop),
            task: Some(task),
        };
        let client = client();
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let applied = match client.get(lb.stats_url("/_haproxy_getconfig")).send().await {
                Ok(response) => response.json::<Value>().await.ok(),
                Err(_) => None,
            };
            if applied.is_some_and(|table| table["applied_index"] == index) {
                return lb;
            }
            assert!(Instant::now() < deadline, "the first table was not applied");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn http(&self) -> SocketAddr {
        self.addrs.http.expect("http port bound")
    }

    fn stats_url(&self, path: &str) -> String {
        format!(
            "http://{}{path}",
            self.addrs.stats.expect("stats port bound")
        )
    }

    fn send(&self, table: RoutingTable) {
        self.tables.send_replace(Arc::new(table));
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(10), task)
                .await
                .expect("the proxy stops")
                .expect("no panic")
                .expect("run returns Ok");
        }
    }
}

impl Drop for Lb {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

fn client() -> reqwest::Client {
    orch_pki::tls::install_crypto_provider();
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("reqwest client")
}

/// GET `path` on `addr` with `Host: host`; status and JSON body (Null if not JSON).
async fn get(client: &reqwest::Client, addr: SocketAddr, host: &str, path: &str) -> (u16, Value) {
    let response = client
        .get(format!("http://{addr}{path}"))
        .header("host", host)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {host}{path} via {addr}: {e}"));
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Waits until `addr` accepts a connection (`true`) or refuses them (`false`).
async fn wait_listening(addr: SocketAddr, listening: bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if TcpStream::connect(addr).await.is_ok() == listening {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{addr} did not become {}",
            if listening { "listening" } else { "closed" }
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ---------------------------------------------------------------------------------------
// Raw HTTP/1.1 on one connection
// ---------------------------------------------------------------------------------------

struct RawHttp {
    stream: BufReader<TcpStream>,
}

impl RawHttp {
    async fn connect(addr: SocketAddr) -> RawHttp {
        RawHttp {
            stream: BufReader::new(TcpStream::connect(addr).await.expect("connect")),
        }
    }

    /// Sends `head` (a full request head) and reads one response: status, headers, body.
    async fn exchange(&mut self, head: &str) -> std::io::Result<(u16, Vec<String>, String)> {
        self.stream.get_mut().write_all(head.as_bytes()).await?;
        self.read_response().await
    }

    async fn get(&mut self, host: &str, path: &str) -> std::io::Result<(u16, Vec<String>, String)> {
        self.exchange(&format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n"))
            .await
    }

    async fn read_response(&mut self) -> std::io::Result<(u16, Vec<String>, String)> {
        let mut status_line = String::new();
        if self.stream.read_line(&mut status_line).await? == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "connection closed",
            ));
        }
        let status = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let mut headers = Vec::new();
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            self.stream.read_line(&mut line).await?;
            let line = line.trim_end().to_owned();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
            headers.push(line);
        }
        let mut body = vec![0u8; length];
        self.stream.read_exact(&mut body).await?;
        Ok((status, headers, String::from_utf8_lossy(&body).into_owned()))
    }
}

fn header<'a>(headers: &'a [String], name: &str) -> Option<&'a str> {
    headers.iter().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.eq_ignore_ascii_case(name).then_some(value.trim())
    })
}

async fn within<F: std::future::Future>(future: F) -> F::Output {
    tokio::time::timeout(TEST_TIMEOUT, future)
        .await
        .expect("the test finishes in time")
}

// ---------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vhost_and_path_routing_with_forwarded_headers() {
    within(async {
        let api = http_backend("api").await;
        let web = http_backend("web").await;
        let other = http_backend("other").await;
        let lb = Lb::start(
            config(),
            table(
                vec![
                    backend("web_api_10000", Mode::Http, &[api.addr]),
                    backend("web_10001", Mode::Http, &[web.addr]),
                    backend("other_10002", Mode::Http, &[other.addr]),
                ],
                vec![],
                vec![
                    vhost("web.example.com", &["/api", "/v2"], "web_api_10000"),
                    vhost("web.example.com", &[], "web_10001"),
                    vhost("other.example.com", &[], "other_10002"),
                ],
            ),
        )
        .await;
        let client = client();
        let http = lb.http();
        for (host, path, expected) in [
            ("web.example.com", "/api/users", "api"),
            ("web.example.com", "/v2", "api"),
            ("web.example.com", "/", "web"),
            ("WEB.Example.com:80", "/apis-are-prefixes", "api"),
            ("web.example.com", "/other", "web"),
            ("other.example.com", "/api", "other"),
        ] {
            let (status, body) = get(&client, http, host, path).await;
            assert_eq!(status, 200, "{host}{path}");
            assert_eq!(body["server"], expected, "{host}{path}");
        }
        let (status, body) = get(&client, http, "unknown.example.com", "/").await;
        assert_eq!(status, 503);
        assert_eq!(body, Value::Null);
        let text = client
            .get(format!("http://{http}/"))
            .header("host", "unknown.example.com")
            .send()
            .await
            .expect("503")
            .text()
            .await
            .expect("body");
        assert!(text.contains("503 Service Unavailable"), "{text}");

        // X-Forwarded-*: an existing X-Forwarded-For gets our line added.
        let response = client
            .get(format!("http://{http}/"))
            .header("host", "web.example.com")
            .header("x-forwarded-for", "203.0.113.7")
            .header("x-forwarded-proto", "https")
            .send()
            .await
            .expect("request");
        let body: Value = response.json().await.expect("json");
        let headers = &body["headers"];
        assert_eq!(
            headers["x-forwarded-for"],
            json!(["203.0.113.7", "127.0.0.1"])
        );
        assert_eq!(
            headers["x-forwarded-port"],
            json!([http.port().to_string()])
        );
        assert_eq!(headers["x-forwarded-proto"], json!(["http"]));
        assert_eq!(headers["host"], json!(["web.example.com"]));
        lb.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_id_port_routes_by_header() {
    within(async {
        let web = http_backend("web").await;
        let mut routing = table(
            vec![backend("prod_web_10000", Mode::Http, &[web.addr])],
            vec![],
            vec![],
        );
        routing
            .app_ids
            .insert("/prod/web".to_owned(), "prod_web_10000".to_owned());
        let lb = Lb::start(config(), routing).await;
        let client = client();
        let url = format!("http://{}/x", lb.addrs.app_id.expect("app-id port"));
        for app in ["/prod/web", "/PROD/Web"] {
            let response = client
                .get(&url)
                .header("x-marathon-app-id", app)
                .send()
                .await
                .expect("request");
            assert_eq!(response.status(), 200, "{app}");
            let body: Value = response.json().await.expect("json");
            assert_eq!(body["server"], "web");
            assert_eq!(body["path"], "/x");
        }
        let missing = client.get(&url).send().await.expect("request");
        assert_eq!(missing.status(), 503);
        let unknown = client
            .get(&url)
            .header("x-marathon-app-id", "/prod/other")
            .send()
            .await
            .expect("request");
        assert_eq!(unknown.status(), 503);
        lb.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_port_frontends_route_straight_to_their_backend() {
    within(async {
        let web = http_backend("web").await;
        let port = free_port();
        let lb = Lb::start(
            config(),
            table(
                vec![backend("web_10000", Mode::Http, &[web.addr])],
                vec![frontend("web_10000", port, Mode::Http)],
                vec![],
            ),
        )
        .await;
        wait_listening(SocketAddr::new(LOCALHOST, port), true).await;
        let (status, body) = get(
            &client(),
            SocketAddr::new(LOCALHOST, port),
            "anything",
            "/p",
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(body["server"], "web");
        assert_eq!(
            body["headers"]["x-forwarded-port"],
            json!([port.to_string()])
        );
        lb.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_mode_and_vips_balance_connections_and_skip_dead_servers() {
    within(async {
        let one = echo_backend("one").await;
        let two = echo_backend("two").await;
        let service_port = free_port();
        let vip_port = free_port();
        let mut vip = frontend("echo_10000", vip_port, Mode::Tcp);
        vip.name = "vip_echo_5555".to_owned();
        vip.kind = FrontendKind::Vip;
        let lb = Lb::start(
            config(),
            table(
                vec![backend(
                    "echo_10000",
                    Mode::Tcp,
                    &[dead_addr(), one.addr, two.addr],
                )],
                vec![frontend("echo_10000", service_port, Mode::Tcp), vip],
                vec![],
            ),
        )
        .await;
        // These two probe connections reach a server too.
        wait_listening(SocketAddr::new(LOCALHOST, service_port), true).await;
        wait_listening(SocketAddr::new(LOCALHOST, vip_port), true).await;
        let mut greeted = BTreeSet::new();
        for port in [service_port, vip_port, service_port, vip_port, service_port] {
            let addr = SocketAddr::new(LOCALHOST, port);
            let mut stream = BufReader::new(TcpStream::connect(addr).await.expect("connect"));
            let mut greeting = String::new();
            stream.read_line(&mut greeting).await.expect("greeting");
            greeted.insert(greeting.trim().to_owned());
            stream
                .get_mut()
                .write_all(b"hello through the lb\n")
                .await
                .expect("write");
            let mut echo = String::new();
            stream.read_line(&mut echo).await.expect("echo");
            assert_eq!(echo, "hello through the lb\n");
        }
        assert_eq!(
            greeted,
            BTreeSet::from(["one".to_owned(), "two".to_owned()]),
            "both live servers, never the dead one"
        );
        // Bytes are counted once the connections are done.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let stats: Value = client()
            .get(lb.stats_url("/haproxy?stats"))
            .send()
            .await
            .expect("stats")
            .json()
            .await
            .expect("json");
        let backend = &stats["backends"][0];
        assert_eq!(backend["name"], "echo_10000");
        assert!(backend["bytes_in"].as_u64().expect("bytes_in") >= 5 * 21);
        assert!(backend["bytes_out"].as_u64().expect("bytes_out") >= 5 * 21);
        assert_eq!(backend["total"], 5 + 2);
        assert_eq!(backend["servers_up"], 2);
        let vip = stats["frontends"]
            .as_array()
            .expect("frontends")
            .iter()
            .find(|f| f["name"] == "vip_echo_5555")
            .expect("vip frontend");
        assert_eq!(vip["total"], 2 + 1);
        lb.stop().await;
    })
    .await;
}

/// `openssl req` for a self-signed certificate of `host`; returns (combined PEM for the
/// LB, certificate alone for curl's `--cacert`).
fn make_cert(dir: &Path, host: &str, key: &[&str]) -> (PathBuf, PathBuf) {
    let cert = dir.join(format!("{host}.crt"));
    let key_file = dir.join(format!("{host}.key"));
    let output = std::process::Command::new("openssl")
        .args(["req", "-x509", "-nodes", "-days", "2", "-newkey"])
        .args(key)
        .arg("-keyout")
        .arg(&key_file)
        .arg("-out")
        .arg(&cert)
        .args(["-subj", &format!("/CN={host}")])
        .args(["-addext", &format!("subjectAltName=DNS:{host}")])
        .output()
        .expect("run openssl");
    assert!(
        output.status.success(),
        "openssl: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let pem = dir.join(format!("{host}.pem"));
    let mut combined = std::fs::read(&cert).expect("read cert");
    combined.extend(std::fs::read(&key_file).expect("read key"));
    std::fs::write(&pem, combined).expect("write pem");
    (pem, cert)
}

/// `curl -i` over TLS to `host:port` resolved to 127.0.0.1, trusting `ca`. Returns the exit
/// status's success, the status code and the output.
async fn curl_tls(host: &str, port: u16, path: &str, ca: &Path) -> (bool, u16, String) {
    let output = tokio::process::Command::new("curl")
        .args(["-sS", "-i", "--max-time", "10", "--cacert"])
        .arg(ca)
        .arg("--resolve")
        .arg(format!("{host}:{port}:127.0.0.1"))
        .arg(format!("https://{host}:{port}{path}"))
        .output()
        .await
        .expect("run curl");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let status = text
        .lines()
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    (output.status.success(), status, text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_picks_the_certificate_by_sni() {
    within(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let (a_pem, a_ca) = make_cert(dir.path(), "a.example.com", &["rsa:2048"]);
        let (b_pem, b_ca) = make_cert(
            dir.path(),
            "b.example.com",
            &["ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"],
        );
        let (c_pem, c_ca) = make_cert(
            dir.path(),
            "c.example.com",
            &["ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"],
        );
        let (d_pem, _) = make_cert(
            dir.path(),
            "d.example.com",
            &["ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"],
        );
        let bad = dir.path().join("bad.pem");
        std::fs::write(&bad, "-----BEGIN CERTIFICATE-----\nnot base64\n").expect("write");

        let a = http_backend("a").await;
        let b = http_backend("b").await;
        let c = http_backend("c").await;
        let mut b_backend = backend("b_10001", Mode::Http, &[b.addr]);
        b_backend.hsts = true;
        let mut a_vhost = vhost("a.example.com", &[], "a_10000");
        a_vhost.ssl_cert = Some(a_pem.to_string_lossy().into_owned());
        let mut b_vhost = vhost("b.example.com", &[], "b_10001");
        b_vhost.ssl_cert = Some(b_pem.to_string_lossy().into_owned());
        let own_port = free_port();
        let mut own = frontend("a_10000", own_port, Mode::Http);
        own.ssl_cert = Some(a_pem.to_string_lossy().into_owned());
        let mut config = config();
        config.ssl_certs = vec![bad, d_pem, c_pem];
        let https = config.https_port;
        let lb = Lb::start(
            config,
            table(
                vec![
                    backend("a_10000", Mode::Http, &[a.addr]),
                    b_backend,
                    backend("c_10002", Mode::Http, &[c.addr]),
                ],
                vec![own],
                vec![a_vhost, b_vhost, vhost("c.example.com", &[], "c_10002")],
            ),
        )
        .await;

        let (ok, status, text) = curl_tls("a.example.com", https, "/x", &a_ca).await;
        assert!(ok && status == 200, "{text}");
        assert!(text.contains("\"server\":\"a\""), "{text}");
        assert!(text.contains("\"x-forwarded-proto\":[\"https\"]"), "{text}");
        assert!(
            !text.to_lowercase().contains("strict-transport-security"),
            "{text}"
        );

        let (ok, status, text) = curl_tls("b.example.com", https, "/", &b_ca).await;
        assert!(ok && status == 200, "{text}");
        assert!(text.contains("\"server\":\"b\""), "{text}");
        assert!(
            text.to_lowercase()
                .contains("strict-transport-security: max-age=15768000"),
            "{text}"
        );

        // b.example.com's certificate is not a.example.com's.
        let (ok, _, text) = curl_tls("b.example.com", https, "/", &a_ca).await;
        assert!(!ok, "a's CA must not verify b's certificate: {text}");

        // No vhost certificate: the --ssl-certs entry whose SAN matches (not the first).
        let (ok, status, text) = curl_tls("c.example.com", https, "/", &c_ca).await;
        assert!(ok && status == 200, "{text}");
        assert!(text.contains("\"server\":\"c\""), "{text}");

        // A service port with its own certificate terminates TLS with it.
        wait_listening(SocketAddr::new(LOCALHOST, own_port), true).await;
        let (ok, status, text) = curl_tls("a.example.com", own_port, "/own", &a_ca).await;
        assert!(ok && status == 200, "{text}");
        assert!(text.contains("\"path\":\"/own\""), "{text}");
        lb.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_is_redirected_to_https_where_asked() {
    within(async {
        let web = http_backend("web").await;
        let mut secure = backend("secure_10000", Mode::Http, &[web.addr]);
        secure.redirect_to_https = true;
        let config = config();
        let https = config.https_port;
        let lb = Lb::start(
            config,
            table(
                vec![secure],
                vec![],
                vec![vhost("secure.example.com", &[], "secure_10000")],
            ),
        )
        .await;
        let response = client()
            .get(format!("http://{}/a/b?c=d", lb.http()))
            .header("host", "secure.example.com:80")
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), 301);
        assert_eq!(
            response.headers()["location"],
            format!("https://secure.example.com:{https}/a/b?c=d").as_str()
        );
        lb.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sticky_cookie_keeps_a_client_on_its_server() {
    within(async {
        let servers = [
            http_backend("s0").await,
            http_backend("s1").await,
            http_backend("s2").await,
        ];
        let addrs: Vec<_> = servers.iter().map(|s| s.addr).collect();
        let mut sticky = backend("sticky_10000", Mode::Http, &addrs);
        sticky.sticky = true;
        let lb = Lb::start(
            config(),
            table(
                vec![sticky],
                vec![],
                vec![vhost("s.example.com", &[], "sticky_10000")],
            ),
        )
        .await;
        let client = client();
        let url = format!("http://{}/", lb.http());
        let first = client
            .get(&url)
            .header("host", "s.example.com")
            .send()
            .await
            .expect("first request");
        let set_cookie = first.headers()["set-cookie"]
            .to_str()
            .expect("ascii")
            .to_owned();
        let first: Value = first.json().await.expect("json");
        let pinned = first["server"].as_str().expect("server").to_owned();
        let port = first["port"].as_u64().expect("port");
        let name = format!("127_0_0_1_{port}");
        let expected = hex::encode(Sha1::digest(name.as_bytes()))[..10].to_owned();
        assert_eq!(
            set_cookie,
            format!("mesosphere_server_id={expected}; path=/")
        );
        let cookie = format!("mesosphere_server_id={expected}");
        for _ in 0..9 {
            let response = client
                .get(&url)
                .header("host", "s.example.com")
                .header("cookie", format!("theme=dark; {cookie}"))
                .send()
                .await
                .expect("request");
            assert!(
                response.headers().get("set-cookie").is_none(),
                "a valid cookie is not set again"
            );
            let body: Value = response.json().await.expect("json");
            assert_eq!(body["server"], pinned.as_str());
            assert_eq!(
                body["headers"]["cookie"],
                json!(["theme=dark"]),
                "the server does not see the LB's cookie"
            );
        }
        // Without the cookie, requests spread; a stale cookie gets a new one.
        let mut seen = BTreeSet::new();
        for _ in 0..6 {
            let (_, body) = get(&client, lb.http(), "s.example.com", "/").await;
            seen.insert(body["server"].as_str().expect("server").to_owned());
        }
        assert_eq!(seen.len(), 3, "{seen:?}");
        let stale = client
            .get(&url)
            .header("host", "s.example.com")
            .header("cookie", "mesosphere_server_id=0123456789")
            .send()
            .await
            .expect("request");
        assert!(stale.headers().get("set-cookie").is_some());
        lb.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leastconn_prefers_the_idle_server() {
    within(async {
        let one = http_backend("one").await;
        let two = http_backend("two").await;
        let mut least = backend("least_10000", Mode::Http, &[one.addr, two.addr]);
        least.balance = Balance::LeastConn;
        let lb = Lb::start(
            config(),
            table(
                vec![least],
                vec![],
                vec![vhost("l.example.com", &[], "least_10000")],
            ),
        )
        .await;
        let http = lb.http();
        let slow =
            tokio::spawn(
                async move { get(&client(), http, "l.example.com", "/?sleep=1500").await },
            );
        tokio::time::sleep(Duration::from_millis(300)).await;
        let client = client();
        let mut quick = BTreeSet::new();
        for _ in 0..6 {
            let (status, body) = get(&client, http, "l.example.com", "/").await;
            assert_eq!(status, 200);
            quick.insert(body["server"].as_str().expect("server").to_owned());
        }
        let (status, slow) = slow.await.expect("slow request");
        assert_eq!(status, 200);
        let busy = slow["server"].as_str().expect("server");
        assert_eq!(
            quick.len(),
            1,
            "all quick requests on one server: {quick:?}"
        );
        assert!(
            !quick.contains(busy),
            "never the busy server {busy}: {quick:?}"
        );
        lb.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_hashing_is_stable_per_client() {
    within(async {
        let servers = [
            http_backend("s0").await,
            http_backend("s1").await,
            http_backend("s2").await,
            http_backend("s3").await,
        ];
        let addrs: Vec<_> = servers.iter().map(|s| s.addr).collect();
        let mut source = backend("source_10000", Mode::Http, &addrs);
        source.balance = Balance::Source;
        let lb = Lb::start(
            config(),
            table(
                vec![source],
                vec![],
                vec![vhost("h.example.com", &[], "source_10000")],
            ),
        )
        .await;
        let mut chosen = BTreeSet::new();
        for last in 1..=16u8 {
            let local = IpAddr::V4(Ipv4Addr::new(127, 0, 0, last));
            orch_pki::tls::install_crypto_provider();
            let client = reqwest::Client::builder()
                .no_proxy()
                .local_address(local)
                .timeout(Duration::from_secs(10))
                .build()
                .expect("client");
            let mut seen = BTreeSet::new();
            for _ in 0..4 {
                let (status, body) = get(&client, lb.http(), "h.example.com", "/").await;
                assert_eq!(status, 200);
                seen.insert(body["server"].as_str().expect("server").to_owned());
            }
            assert_eq!(seen.len(), 1, "client {local} moved: {seen:?}");
            chosen.extend(seen);
        }
        assert!(chosen.len() > 1, "16 clients on one server: {chosen:?}");
        lb.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrades_are_tunnelled() {
    within(async {
        let ws = http_backend("ws").await;
        let lb = Lb::start(
            config(),
            table(
                vec![backend("ws_10000", Mode::Http, &[ws.addr])],
                vec![],
                vec![vhost("ws.example.com", &[], "ws_10000")],
            ),
        )
        .await;
        let mut raw = RawHttp::connect(lb.http()).await;
        let (status, headers, _) = raw
            .exchange("GET /chat HTTP/1.1\r\nHost: ws.example.com\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
            .await
            .expect("handshake");
        assert_eq!(status, 101, "{headers:?}");
        assert_eq!(header(&headers, "upgrade"), Some("echo"));
        let stream = raw.stream.get_mut();
        stream.write_all(b"frames both ways").await.expect("write");
        let mut echoed = [0u8; 16];
        raw.stream.read_exact(&mut echoed).await.expect("echo");
        assert_eq!(&echoed, b"frames both ways");
        lb.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_bodies_stream_both_ways() {
    within(async {
        let web = http_backend("web").await;
        let lb = Lb::start(
            config(),
            table(
                vec![backend("web_10000", Mode::Http, &[web.addr])],
                vec![],
                vec![vhost("web.example.com", &[], "web_10000")],
            ),
        )
        .await;
        let client = client();
        let url = format!("http://{}/", lb.http());
        const SIZE: usize = 8 << 20;
        let body: Value = client
            .post(&url)
            .header("host", "web.example.com")
            .body(vec![7u8; SIZE])
            .send()
            .await
            .expect("upload")
            .json()
            .await
            .expect("json");
        assert_eq!(body["body_len"], SIZE);
        let download = client
            .get(format!("{url}?size={SIZE}"))
            .header("host", "web.example.com")
            .send()
            .await
            .expect("download");
        assert_eq!(download.status(), 200);
        assert_eq!(download.bytes().await.expect("body").len(), SIZE);

        // A chunked upload arriving in pieces, with pauses.
        let mut raw = RawHttp::connect(lb.http()).await;
        let stream = raw.stream.get_mut();
        stream
            .write_all(b"POST /chunked HTTP/1.1\r\nHost: web.example.com\r\nTransfer-Encoding: chunked\r\n\r\n")
            .await
            .expect("head");
        for _ in 0..3 {
            stream
                .write_all(format!("{:x}\r\n{}\r\n", 1000, "y".repeat(1000)).as_bytes())
                .await
                .expect("chunk");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        stream.write_all(b"0\r\n\r\n").await.expect("last chunk");
        let (status, _, body) = raw.read_response().await.expect("response");
        assert_eq!(status, 200);
        let body: Value = serde_json::from_str(&body).expect("json");
        assert_eq!(body["body_len"], 3000);
        assert_eq!(body["headers"]["transfer-encoding"], json!(["chunked"]));

        let stats: Value = client
            .get(lb.stats_url("/haproxy?stats"))
            .send()
            .await
            .expect("stats")
            .json()
            .await
            .expect("json");
        let backend = &stats["backends"][0];
        assert!(backend["bytes_in"].as_u64().expect("bytes_in") >= SIZE as u64);
        assert!(backend["bytes_out"].as_u64().expect("bytes_out") >= SIZE as u64);
        lb.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_changes_under_load_fail_no_request_and_close_no_connection() {
    within(async {
        let web: Vec<HttpBackend> = vec![
            http_backend("w0").await,
            http_backend("w1").await,
            http_backend("w2").await,
            http_backend("w3").await,
        ];
        let echo: Vec<EchoBackend> = vec![
            echo_backend("e0").await,
            echo_backend("e1").await,
            echo_backend("e2").await,
        ];
        let service_port = free_port();
        let tcp_port = free_port();
        let make = |w: &[usize], e: &[usize], index: u64| {
            let web_addrs: Vec<_> = w.iter().map(|i| web[*i].addr).collect();
            let echo_addrs: Vec<_> = e.iter().map(|i| echo[*i].addr).collect();
            let mut t = table(
                vec![
                    backend("web_10000", Mode::Http, &web_addrs),
                    backend("echo_10001", Mode::Tcp, &echo_addrs),
                ],
                vec![
                    frontend("web_10000", service_port, Mode::Http),
                    frontend("echo_10001", tcp_port, Mode::Tcp),
                ],
                vec![vhost("web.example.com", &[], "web_10000")],
            );
            t.applied_index = index;
            t
        };
        let lb = Lb::start(config(), make(&[0, 1], &[0, 1], 1)).await;
        let http = lb.http();
        let service = SocketAddr::new(LOCALHOST, service_port);
        let tcp = SocketAddr::new(LOCALHOST, tcp_port);
        wait_listening(service, true).await;
        wait_listening(tcp, true).await;

        let stop = Arc::new(AtomicBool::new(false));
        let failures = Arc::new(AtomicU64::new(0));
        let seen = Arc::new(std::sync::Mutex::new(BTreeMap::<String, u64>::new()));

        // Request loops over keep-alive client pools, on the vhost and the service port.
        let mut loops = Vec::new();
        for worker in 0..4 {
            let (stop, failures, seen) = (stop.clone(), failures.clone(), seen.clone());
            loops.push(tokio::spawn(async move {
                let client = client();
                let target = if worker % 2 == 0 { http } else { service };
                let mut ok = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    match client
                        .get(format!("http://{target}/"))
                        .header("host", "web.example.com")
                        .send()
                        .await
                    {
                        Ok(response) if response.status() == 200 => {
                            let body: Value = response.json().await.unwrap_or(Value::Null);
                            let server = body["server"].as_str().unwrap_or("?").to_owned();
                            *seen.lock().expect("lock").entry(server).or_default() += 1;
                            ok += 1;
                        }
                        Ok(response) => {
                            eprintln!("failed: {}", response.status());
                            failures.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(error) => {
                            eprintln!("failed: {error}");
                            failures.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                ok
            }));
        }
        // One raw keep-alive connection that must never be closed.
        let keep_alive = {
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut raw = RawHttp::connect(http).await;
                let mut served = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let (status, _, _) = raw
                        .get("web.example.com", "/")
                        .await
                        .expect("the keep-alive connection stays open");
                    assert_eq!(status, 200);
                    served += 1;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                served
            })
        };
        // One long tcp stream that must never be closed.
        let stream = {
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut stream = BufReader::new(TcpStream::connect(tcp).await.expect("connect"));
                let mut line = String::new();
                stream.read_line(&mut line).await.expect("greeting");
                let mut round_trips = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    stream
                        .get_mut()
                        .write_all(b"ping\n")
                        .await
                        .expect("stream open");
                    line.clear();
                    stream.read_line(&mut line).await.expect("stream open");
                    assert_eq!(line, "ping\n");
                    round_trips += 1;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                round_trips
            })
        };

        let steps: [(&[usize], &[usize]); 8] = [
            (&[0, 1, 2], &[0, 1, 2]),
            (&[1, 2], &[1, 2]),
            (&[2, 3], &[2]),
            (&[3], &[1, 2]),
            (&[0, 3], &[0]),
            (&[0, 1, 2, 3], &[0, 1, 2]),
            (&[1], &[2]),
            (&[0, 1, 2, 3], &[0, 1, 2]),
        ];
        for (index, (w, e)) in steps.iter().enumerate() {
            tokio::time::sleep(Duration::from_millis(150)).await;
            lb.send(make(w, e, index as u64 + 2));
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        stop.store(true, Ordering::Relaxed);
        let mut ok = 0;
        for l in loops {
            ok += l.await.expect("request loop");
        }
        let served = keep_alive.await.expect("keep-alive connection");
        let round_trips = stream.await.expect("tcp stream");
        assert_eq!(failures.load(Ordering::Relaxed), 0, "failed requests");
        assert!(ok > 100, "only {ok} requests");
        assert!(served > 20, "keep-alive connection served {served}");
        assert!(
            round_trips > 20,
            "tcp stream made {round_trips} round trips"
        );
        let seen = seen.lock().expect("lock").clone();
        for name in ["w0", "w1", "w2", "w3"] {
            assert!(
                seen.get(name).copied().unwrap_or(0) > 0,
                "{name} never served: {seen:?}"
            );
        }
        lb.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_servers_are_retried_without_client_errors() {
    within(async {
        let live = http_backend("live").await;
        // A real process as a second server: python3's http.server.
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("index.html"), "python").expect("write index");
        let python_port = free_port();
        let mut python = std::process::Command::new("python3")
            .args([
                "-m",
                "http.server",
                &python_port.to_string(),
                "--bind",
                "127.0.0.1",
            ])
            .current_dir(dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start python3 -m http.server");
        let python_addr = SocketAddr::new(LOCALHOST, python_port);
        wait_listening(python_addr, true).await;
        let dead = dead_addr();
        let lb = Lb::start(
            config(),
            table(
                vec![backend(
                    "web_10000",
                    Mode::Http,
                    &[dead, live.addr, python_addr],
                )],
                vec![],
                vec![vhost("web.example.com", &[], "web_10000")],
            ),
        )
        .await;
        let client = client();
        let url = format!("http://{}/", lb.http());
        let mut bodies = BTreeSet::new();
        for _ in 0..30 {
            let response = client
                .get(&url)
                .header("host", "web.example.com")
                .send()
                .await
                .expect("request");
            assert_eq!(response.status(), 200);
            let text = response.text().await.expect("body");
            bodies.insert(if text.contains("\"server\":\"live\"") {
                "live"
            } else {
                "python"
            });
        }
        assert_eq!(bodies.len(), 2, "both live servers served: {bodies:?}");
        python.kill().expect("kill python");
        python.wait().expect("reap python");
        for method in ["GET", "POST", "GET", "POST"] {
            for _ in 0..10 {
                let response = client
                    .request(method.parse().expect("method"), &url)
                    .header("host", "web.example.com")
                    .body("payload")
                    .send()
                    .await
                    .expect("request");
                assert_eq!(response.status(), 200, "{method}");
                let body: Value = response.json().await.expect("json from the live server");
                assert_eq!(body["server"], "live");
            }
        }
        let csv = client
            .get(lb.stats_url("/haproxy?stats;csv"))
            .send()
            .await
            .expect("csv")
            .text()
            .await
            .expect("csv body");
        let dead_row = csv
            .lines()
            .find(|line| line.starts_with(&format!("web_10000,127_0_0_1_{},", dead.port())))
            .unwrap_or_else(|| panic!("no row for the dead server:\n{csv}"));
        assert!(dead_row.contains(",DOWN,"), "{dead_row}");
        let live_row = csv
            .lines()
            .find(|line| line.starts_with(&format!("web_10000,127_0_0_1_{},", live.addr.port())))
            .expect("live server row");
        assert!(live_row.contains(",UP,"), "{live_row}");
        lb.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_get_400_and_others_are_served() {
    within(async {
        let web = http_backend("web").await;
        let lb = Lb::start(
            config(),
            table(
                vec![backend("web_10000", Mode::Http, &[web.addr])],
                vec![],
                vec![vhost("web.example.com", &[], "web_10000")],
            ),
        )
        .await;
        let mut bad = TcpStream::connect(lb.http()).await.expect("connect");
        bad.write_all(b"GET / HTTP/1.1\r\nHost: web.example.com\r\nthis is no header\r\n\r\n")
            .await
            .expect("write");
        let mut answer = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), bad.read_to_end(&mut answer))
            .await
            .expect("the connection is closed")
            .expect("read");
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
        let (status, body) = get(&client(), lb.http(), "web.example.com", "/").await;
        assert_eq!(status, 200);
        assert_eq!(body["server"], "web");
        lb.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_finishes_its_headers_is_cut() {
    within(async {
        let web = http_backend("web").await;
        let mut config = config();
        config.limits.http_request_timeout = Duration::from_millis(600);
        let lb = Lb::start(
            config,
            table(
                vec![backend("web_10000", Mode::Http, &[web.addr])],
                vec![],
                vec![vhost("web.example.com", &[], "web_10000")],
            ),
        )
        .await;
        let started = Instant::now();
        let mut slow = TcpStream::connect(lb.http()).await.expect("connect");
        slow.write_all(b"GET / HTTP/1.1\r\nHost: web.example.com\r\nX-Slow: 1")
            .await
            .expect("write");
        let http = lb.http();
        let others = tokio::spawn(async move {
            let client = client();
            for _ in 0..5 {
                let (status, _) = get(&client, http, "web.example.com", "/").await;
                assert_eq!(status, 200);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        let mut rest = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), slow.read_to_end(&mut rest)).await;
        let elapsed = started.elapsed();
        assert!(read.is_ok(), "the slow client was not cut");
        assert!(
            elapsed >= Duration::from_millis(500) && elapsed < Duration::from_secs(3),
            "cut after {elapsed:?}"
        );
        others.await.expect("others were served");
        lb.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_client_and_keep_alive_timeouts() {
    within(async {
        let web = http_backend("web").await;
        let mut config = config();
        config.limits.server_timeout = Duration::from_millis(300);
        // Shorter than `timeout server`: a stalled upload is also a request the server has
        // not answered yet, and the client's silence must be the timer that fires first.
        config.limits.client_timeout = Duration::from_millis(150);
        config.limits.keep_alive_timeout = Duration::from_millis(300);
        let lb = Lb::start(
            config,
            table(
                vec![backend("web_10000", Mode::Http, &[web.addr])],
                vec![],
                vec![vhost("web.example.com", &[], "web_10000")],
            ),
        )
        .await;
        // timeout server: no response head in time gives 504.
        let mut raw = RawHttp::connect(lb.http()).await;
        let started = Instant::now();
        let (status, _, body) = raw
            .get("web.example.com", "/?sleep=2000")
            .await
            .expect("a response");
        assert_eq!(status, 504, "{body}");
        assert!(body.contains("504 Gateway Time-out"), "{body}");
        assert!(started.elapsed() < Duration::from_millis(1500));

        // timeout http-keep-alive: an idle connection is closed.
        let mut idle = RawHttp::connect(lb.http()).await;
        assert_eq!(idle.get("web.example.com", "/").await.expect("served").0, 200);
        let idle_since = Instant::now();
        let mut rest = Vec::new();
        tokio::time::timeout(Duration::from_secs(3), idle.stream.read_to_end(&mut rest))
            .await
            .expect("the idle connection is closed")
            .expect("clean close");
        let waited = idle_since.elapsed();
        assert!(
            waited >= Duration::from_millis(250) && waited < Duration::from_millis(1500),
            "closed after {waited:?}"
        );

        // timeout client: a request body that stops coming is cut; others are served.
        let mut stalled = TcpStream::connect(lb.http()).await.expect("connect");
        stalled
            .write_all(b"POST / HTTP/1.1\r\nHost: web.example.com\r\nContent-Length: 100\r\n\r\n0123456789")
            .await
            .expect("partial body");
        let mut answer = Vec::new();
        let cut = tokio::time::timeout(Duration::from_secs(3), stalled.read_to_end(&mut answer)).await;
        assert!(cut.is_ok(), "the stalled upload was not cut");
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        let (status, _) = get(&client(), lb.http(), "web.example.com", "/").await;
        assert_eq!(status, 200);
        lb.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_request_heads_get_431() {
    within(async {
        let web = http_backend("web").await;
        let mut config = config();
        config.limits.max_header_bytes = 4096;
        let lb = Lb::start(
            config,
            table(
                vec![backend("web_10000", Mode::Http, &[web.addr])],
                vec![],
                vec![vhost("web.example.com", &[], "web_10000")],
            ),
        )
        .await;
        let mut big = TcpStream::connect(lb.http()).await.expect("connect");
        let request = format!(
            "GET / HTTP/1.1\r\nHost: web.example.com\r\nX-Big: {}\r\n\r\n",
            "a".repeat(6000)
        );
        big.write_all(request.as_bytes()).await.expect("write");
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), big.read_to_end(&mut answer)).await;
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
        let mut raw = RawHttp::connect(lb.http()).await;
        let (status, _, _) = raw
            .exchange(&format!(
                "GET / HTTP/1.1\r\nHost: web.example.com\r\nX-Fine: {}\r\n\r\n",
                "a".repeat(2000)
            ))
            .await
            .expect("a fitting request");
        assert_eq!(status, 200);
        lb.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_json_csv_metrics_and_control_endpoints() {
    within(async {
        let web = http_backend("web").await;
        let mut config = config();
        // A short watchdog period: connections add their counts to the frontend soon.
        config.limits.http_request_timeout = Duration::from_millis(400);
        let lb = Lb::start(
            config,
            table(
                vec![backend("web_10000", Mode::Http, &[web.addr])],
                vec![],
                vec![vhost("web.example.com", &[], "web_10000")],
            ),
        )
        .await;
        let client = client();
        // Let the sampler take a first sample, so the rate covers the requests.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        for _ in 0..5 {
            assert_eq!(get(&client, lb.http(), "web.example.com", "/").await.0, 200);
        }
        assert_eq!(
            get(&client, lb.http(), "nobody.example.com", "/").await.0,
            503
        );
        tokio::time::sleep(Duration::from_millis(1100)).await;

        let stats: Value = client
            .get(lb.stats_url("/haproxy?stats"))
            .send()
            .await
            .expect("stats")
            .json()
            .await
            .expect("json");
        let http_in = stats["frontends"]
            .as_array()
            .expect("frontends")
            .iter()
            .find(|f| f["name"] == "marathon_http_in")
            .expect("marathon_http_in");
        assert_eq!(http_in["requests"], 6);
        assert_eq!(http_in["hrsp_2xx"], 5);
        assert_eq!(http_in["hrsp_5xx"], 1);
        assert!(
            http_in["request_rate"].as_f64().expect("rate") > 0.0,
            "{http_in}"
        );
        assert!(http_in["bytes_in"].as_u64().expect("bytes") > 0);
        assert!(http_in["bytes_out"].as_u64().expect("bytes") > 0);
        let backend = &stats["backends"][0];
        assert_eq!(backend["name"], "web_10000");
        assert_eq!(backend["requests"], 5);
        assert_eq!(backend["hrsp_2xx"], 5);
        assert_eq!(backend["status"], "UP");
        assert_eq!(backend["servers"][0]["status"], "UP");
        assert_eq!(backend["servers"][0]["total"], 5);
        assert_eq!(backend["servers"][0]["current"], 0);

        let csv = client
            .get(lb.stats_url("/haproxy?stats;csv"))
            .send()
            .await
            .expect("csv")
            .text()
            .await
            .expect("csv body");
        let mut lines = csv.lines();
        let columns: Vec<&str> = lines
            .next()
            .expect("header")
            .trim_start_matches("# ")
            .split(',')
            .collect();
        let rows: Vec<BTreeMap<&str, &str>> = lines
            .map(|line| columns.iter().copied().zip(line.split(',')).collect())
            .collect();
        let row = |px: &str, sv: &str| {
            rows.iter()
                .find(|r| r.get("pxname") == Some(&px) && r.get("svname") == Some(&sv))
                .unwrap_or_else(|| panic!("no {px}/{sv} row in\n{csv}"))
                .clone()
        };
        let server_name = format!("127_0_0_1_{}", web.addr.port());
        let server_row = row("web_10000", &server_name);
        assert_eq!(server_row["status"], "UP");
        assert_eq!(server_row["scur"], "0");
        assert_eq!(server_row["qcur"], "0");
        assert_eq!(server_row["stot"], "5");
        assert_eq!(row("web_10000", "BACKEND")["hrsp_2xx"], "5");
        assert_eq!(row("web_10000", "BACKEND")["status"], "UP");
        let frontend_row = row("marathon_http_in", "FRONTEND");
        assert_eq!(frontend_row["status"], "OPEN");
        assert_eq!(frontend_row["req_tot"], "6");
        assert_eq!(frontend_row["hrsp_5xx"], "1");

        let metrics = client
            .get(lb.stats_url("/metrics"))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics body");
        let metrics = parse_metrics(&metrics);
        assert_eq!(
            metrics.get("orch_lb_frontend_requests_total{frontend=\"marathon_http_in\"}"),
            Some(&6.0)
        );
        assert_eq!(
            metrics.get(
                "orch_lb_frontend_responses_total{frontend=\"marathon_http_in\",code=\"2xx\"}"
            ),
            Some(&5.0)
        );
        assert_eq!(
            metrics.get(&format!(
                "orch_lb_backend_up{{backend=\"web_10000\",server=\"{server_name}\"}}"
            )),
            Some(&1.0)
        );
        assert_eq!(
            metrics.get("orch_lb_backend_servers_up{backend=\"web_10000\"}"),
            Some(&1.0)
        );
        assert!(
            metrics
                .get("orch_lb_frontend_bytes_in_total{frontend=\"marathon_http_in\"}")
                .copied()
                .unwrap_or(0.0)
                > 0.0
        );

        let health = client
            .get(lb.stats_url("/_haproxy_health_check"))
            .send()
            .await
            .expect("health");
        assert_eq!(health.status(), 200);
        let config: Value = client
            .get(lb.stats_url("/_haproxy_getconfig"))
            .send()
            .await
            .expect("getconfig")
            .json()
            .await
            .expect("json");
        assert_eq!(
            config["backends"]["web_10000"]["servers"][0]["name"],
            server_name.as_str()
        );
        assert_eq!(config["vhosts"][0]["host"], "web.example.com");

        for (method, path) in [("POST", "/_mlb_signal/hup"), ("GET", "/_mlb_signal/usr1")] {
            let response = client
                .request(method.parse().expect("method"), lb.stats_url(path))
                .send()
                .await
                .expect("signal");
            assert_eq!(response.status(), 200, "{path}");
            tokio::time::timeout(Duration::from_secs(2), lb.hup.notified())
                .await
                .unwrap_or_else(|_| panic!("{path} notifies"));
        }
        lb.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listeners_follow_the_frontends() {
    within(async {
        let web = http_backend("web").await;
        let first_port = free_port();
        let second_port = free_port();
        let blocked_port = free_port();
        let first = SocketAddr::new(LOCALHOST, first_port);
        let second = SocketAddr::new(LOCALHOST, second_port);
        let blocked = SocketAddr::new(LOCALHOST, blocked_port);
        let with = |ports: &[u16], index: u64| {
            let mut t = table(
                vec![backend("web_10000", Mode::Http, &[web.addr])],
                ports
                    .iter()
                    .map(|port| {
                        let mut f = frontend("web_10000", *port, Mode::Http);
                        f.name = format!("web_{port}");
                        f
                    })
                    .collect(),
                vec![],
            );
            t.applied_index = index;
            t
        };
        let lb = Lb::start(config(), with(&[first_port], 1)).await;
        wait_listening(first, true).await;
        let mut kept = RawHttp::connect(first).await;
        assert_eq!(kept.get("x", "/").await.expect("first request").0, 200);

        // The first port's frontend goes, a second comes.
        lb.send(with(&[second_port], 2));
        wait_listening(second, true).await;
        wait_listening(first, false).await;
        let (status, body) = get(&client(), second, "x", "/").await;
        assert_eq!((status, body["server"].as_str()), (200, Some("web")));
        // The connection accepted on the closed listener is still served.
        assert_eq!(kept.get("x", "/again").await.expect("still open").0, 200);

        // A port that cannot be bound does not stop the others and is tried again.
        let squatter = std::net::TcpListener::bind(blocked).expect("occupy a port");
        lb.send(with(&[first_port, second_port, blocked_port], 3));
        wait_listening(first, true).await;
        assert_eq!(get(&client(), first, "x", "/").await.0, 200);
        assert_eq!(get(&client(), second, "x", "/").await.0, 200);
        drop(squatter);
        wait_listening(blocked, false).await;
        lb.send(with(&[first_port, second_port, blocked_port], 4));
        wait_listening(blocked, true).await;
        assert_eq!(get(&client(), blocked, "x", "/").await.0, 200);
        lb.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_maxconn_wait_for_a_free_slot() {
    within(async {
        let web = http_backend("web").await;
        let mut config = config();
        config.limits.max_connections = 1;
        let lb = Lb::start(
            config,
            table(
                vec![backend("web_10000", Mode::Http, &[web.addr])],
                vec![],
                vec![vhost("web.example.com", &[], "web_10000")],
            ),
        )
        .await;
        let mut first = RawHttp::connect(lb.http()).await;
        assert_eq!(
            first.get("web.example.com", "/").await.expect("first").0,
            200
        );
        let mut second = RawHttp::connect(lb.http()).await;
        let waiting = tokio::time::timeout(
            Duration::from_millis(500),
            second.get("web.example.com", "/"),
        )
        .await;
        assert!(waiting.is_err(), "the second connection is not served yet");
        drop(first);
        let (status, _, _) = tokio::time::timeout(Duration::from_secs(5), second.read_response())
            .await
            .expect("served once the first closed")
            .expect("response");
        assert_eq!(status, 200);
        lb.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fixed_ports_that_cannot_be_bound_are_named() {
    within(async {
        let squatter = std::net::TcpListener::bind((LOCALHOST, 0)).expect("occupy a port");
        let mut config = config();
        config.app_id_port = squatter.local_addr().expect("address").port();
        let error = Proxy::bind(Arc::new(config)).await.expect_err("port taken");
        assert!(
            matches!(
                error,
                LbError::Listen {
                    port_name: "app-id",
                    ..
                }
            ),
            "{error}"
        );
        assert!(error.to_string().contains("app-id"), "{error}");
    })
    .await;
}

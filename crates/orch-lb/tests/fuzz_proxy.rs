//! Hostile HTTP request heads at the built-in proxy (issue 18), on stable with proptest (see
//! `orch-core/tests/common/fuzz.rs` for why not cargo-fuzz, and the `ORCH_FUZZ_CASES` knob).
//!
//! The proxy has no head parser of its own (hyper parses), so this is a real-socket test: a
//! running proxy on 127.0.0.1 with a vhost route to a real backend takes mutated valid heads
//! (absolute-form targets, chunked bodies, conflicting lengths, upgrades, folded and
//! oversized headers, ...) and random bytes, 32 connections at a time.
//!
//! Properties: every connection gets an HTTP/1.x status line or is closed, within the
//! proxy's request timeout (no hang); afterwards the proxy still routes a valid request and
//! its stats port still answers.

#[path = "../../orch-core/tests/common/fuzz.rs"]
mod fuzz;

use futures::stream::{self, StreamExt};
use orch_core::model::{AppId, TaskId};
use orch_lb::{Backend, Balance, LbConfig, Limits, Mode, Proxy, RoutingTable, Server, VhostRoute};
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::TestRunner;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch, Notify};

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// The proxy's `timeout http-request` here: the longest a bad head may hold a connection.
const REQUEST_TIMEOUT: Duration = Duration::from_millis(300);

/// A port free right now on 127.0.0.1.
fn free_port() -> u16 {
    std::net::TcpListener::bind((LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free port")
}

/// A backend answering every request head it reads with `200 ok` and closing; it counts
/// the requests it answered.
async fn backend() -> (SocketAddr, Arc<AtomicU64>) {
    let listener = TcpListener::bind((LOCALHOST, 0)).await.expect("bind");
    let address = listener.local_addr().expect("address");
    let served = Arc::new(AtomicU64::new(0));
    let count = Arc::clone(&served);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let count = Arc::clone(&count);
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buffer = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 65_536 {
                    match stream.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buffer[..n]),
                    }
                }
                count.fetch_add(1, Ordering::SeqCst);
                let _ = stream
                    .write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                    )
                    .await;
            });
        }
    });
    (address, served)
}

fn table(server: SocketAddr) -> RoutingTable {
    let backend = Backend {
        name: "web_10000".into(),
        app_id: AppId::parse("/web").expect("app id"),
        service_port: 10_000,
        mode: Mode::Http,
        balance: Balance::RoundRobin,
        sticky: false,
        redirect_to_https: false,
        hsts: false,
        health_check: None,
        servers: vec![Server {
            name: format!("127_0_0_1_{}", server.port()),
            task_id: TaskId("web.1".into()),
            host: "127.0.0.1".into(),
            ip: server.ip(),
            port: server.port(),
        }],
    };
    RoutingTable {
        applied_index: 1,
        backends: BTreeMap::from([(backend.name.clone(), Arc::new(backend))]),
        frontends: Vec::new(),
        vhosts: vec![VhostRoute {
            host: "web.example".into(),
            paths: Vec::new(),
            paths_ignore_case: false,
            backend: "web_10000".into(),
            ssl_cert: None,
        }],
        app_ids: BTreeMap::new(),
    }
}

/// Valid heads of many shapes, each routed to the backend when sent as they are.
fn seeds() -> Vec<Vec<u8>> {
    [
        "GET / HTTP/1.1\r\nHost: web.example\r\n\r\n",
        "GET /a/b?c=d&e=%20f#frag HTTP/1.1\r\nHost: WEB.example:80\r\nAccept: */*\r\nUser-Agent: x\r\n\r\n",
        "POST /upload HTTP/1.1\r\nHost: web.example\r\nContent-Length: 5\r\n\r\nhello",
        "POST / HTTP/1.1\r\nHost: web.example\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: web.example\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "GET http://web.example/abs HTTP/1.1\r\nHost: other.example\r\n\r\n",
        "GET / HTTP/1.0\r\nHost: web.example\r\nConnection: keep-alive\r\n\r\n",
        "GET /ws HTTP/1.1\r\nHost: web.example\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        "PUT /x HTTP/1.1\r\nHost: web.example\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nx",
        "OPTIONS * HTTP/1.1\r\nHost: web.example\r\n\r\n",
        "CONNECT web.example:443 HTTP/1.1\r\nHost: web.example:443\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: web.example\r\nCookie: mesosphere_server_id=abc; a=b\r\nX-Forwarded-For: 1.2.3.4\r\nConnection: close, x-hop\r\nx-hop: 1\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: web.example\r\nX-Folded: a\r\n b\r\n\r\n",
        "GET / HTTP/1.1\nHost: web.example\n\n",
        "GET / HTTP/1.1\r\nHost: web.example\r\n\r\nGET /2 HTTP/1.1\r\nHost: web.example\r\n\r\n",
    ]
    .iter()
    .map(|head| head.as_bytes().to_vec())
    .collect()
}

/// What the proxy sends back on one connection that sent `bytes`: the first line, or `None`
/// if it closed without one. The connection stays open (a half-closed client may get no
/// answer, see `a_half_closed_client_gets_its_answer`) until the reply's head is in, the
/// proxy closes, or the request timeout has long passed (then the test fails: a hang).
async fn send(proxy: SocketAddr, bytes: &[u8]) -> Option<String> {
    let mut stream = TcpStream::connect(proxy).await.expect("the proxy accepts");
    let _ = stream.write_all(bytes).await;
    let mut reply = Vec::new();
    let limit = REQUEST_TIMEOUT + Duration::from_secs(5);
    let read = tokio::time::timeout(limit, async {
        let mut buffer = [0u8; 4096];
        while !reply.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => reply.extend_from_slice(&buffer[..n]),
            }
        }
    })
    .await;
    assert!(
        read.is_ok(),
        "no answer and no close within {limit:?} for {:?}",
        String::from_utf8_lossy(bytes)
    );
    let text = String::from_utf8_lossy(&reply);
    text.lines().next().map(str::to_owned)
}

fn assert_status_line(line: &str, bytes: &[u8]) {
    let mut parts = line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    let code = parts.next().unwrap_or_default();
    assert!(
        matches!(version, "HTTP/1.1" | "HTTP/1.0")
            && code.len() == 3
            && code.parse::<u16>().is_ok_and(|c| (100..600).contains(&c)),
        "not an HTTP status line: {line:?} for {:?}",
        String::from_utf8_lossy(bytes)
    );
}

/// A running proxy on 127.0.0.1 routing `web.example` to `server`: its HTTP and stats
/// addresses, the stop sender and the task.
struct Running {
    http: SocketAddr,
    stats: SocketAddr,
    _tables: watch::Sender<Arc<RoutingTable>>,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), orch_lb::LbError>>,
}

async fn start(server: SocketAddr) -> Running {
    let config = LbConfig {
        bind_addr: LOCALHOST,
        http_port: free_port(),
        https_port: 0,
        app_id_port: 0,
        stats_port: free_port(),
        limits: Limits {
            connect_timeout: Duration::from_secs(1),
            client_timeout: Duration::from_secs(2),
            server_timeout: Duration::from_secs(2),
            http_request_timeout: REQUEST_TIMEOUT,
            keep_alive_timeout: Duration::from_secs(1),
            max_header_bytes: 16 * 1024,
            max_connections: 1_000,
            retries: 1,
        },
        ..LbConfig::default()
    };
    let proxy = Proxy::bind(Arc::new(config)).await.expect("bind the proxy");
    let addrs = proxy.addrs();
    let (tables, receiver) = watch::channel(Arc::new(table(server)));
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(proxy.run(receiver, Arc::new(Notify::new()), async move {
        let _ = stopped.await;
    }));
    let running = Running {
        http: addrs.http.expect("the HTTP port"),
        stats: addrs.stats.expect("the stats port"),
        _tables: tables,
        stop,
        task,
    };
    // Serving once the first table is in: a valid request routes to the backend.
    let valid = seeds()[0].clone();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while send(running.http, &valid)
        .await
        .is_none_or(|line| !line.starts_with("HTTP/1.1 200"))
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the proxy never routed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    running
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fuzz_lb_proxy_hostile_heads() {
    let (server, served) = backend().await;
    let Running {
        http,
        stats,
        _tables,
        stop,
        task,
    } = start(server).await;
    let valid = seeds()[0].clone();
    assert!(served.load(Ordering::SeqCst) > 0);
    // Every seed as it is gets an answer (but CONNECT, which the proxy just closes).
    for seed in seeds() {
        let line = send(http, &seed).await;
        if seed.starts_with(b"CONNECT") {
            continue;
        }
        let line =
            line.unwrap_or_else(|| panic!("no answer to {}", String::from_utf8_lossy(&seed)));
        assert_status_line(&line, &seed);
    }

    // Hostile heads, 32 connections at a time.
    let mut runner = TestRunner::new(fuzz::config(2_000));
    let heads = proptest::prop_oneof![
        4 => fuzz::mutated_bytes(seeds()),
        1 => fuzz::random_bytes(512),
        1 => (0usize..4, 1usize..40_000).prop_map(|(kind, len)| match kind {
            0 => format!("GET /{} HTTP/1.1\r\nHost: web.example\r\n\r\n", "a".repeat(len)),
            1 => format!("GET / HTTP/1.1\r\nHost: web.example\r\nX: {}\r\n\r\n", "b".repeat(len)),
            2 => format!("GET / HTTP/1.1\r\n{}\r\n", "H: v\r\n".repeat(len / 6 + 1)),
            _ => format!("POST / HTTP/1.1\r\nHost: web.example\r\nContent-Length: {len}\r\n\r\nshort"),
        }
        .into_bytes()),
    ];
    let count = fuzz::cases(2_000);
    let cases: Vec<Vec<u8>> = (0..count)
        .filter_map(|_| heads.new_tree(&mut runner).ok().map(|tree| tree.current()))
        .collect();
    let outcomes: Vec<(Vec<u8>, Option<String>)> = stream::iter(cases)
        .map(|bytes| async move {
            let line = send(http, &bytes).await;
            (bytes, line)
        })
        .buffer_unordered(32)
        .collect()
        .await;
    let mut answered = 0;
    for (bytes, line) in &outcomes {
        if let Some(line) = line {
            assert_status_line(line, bytes);
            answered += 1;
        }
    }
    assert!(answered > 0, "not one hostile head was answered");

    // Still serving: a valid request routes, the stats port answers.
    let line = send(http, &valid).await.expect("an answer");
    assert!(line.starts_with("HTTP/1.1 200"), "{line}");
    let stats_head = format!("GET /_haproxy_health_check HTTP/1.1\r\nHost: {stats}\r\n\r\n");
    let line = send(stats, stats_head.as_bytes())
        .await
        .expect("stats answer");
    assert!(line.starts_with("HTTP/1.1 200"), "{line}");
    assert!(!task.is_finished(), "the proxy stopped");
    let _ = stop.send(());
    let result = tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("the proxy stops");
    assert!(matches!(result, Ok(Ok(()))), "{result:?}");
}

/// Found while writing `fuzz_lb_proxy_hostile_heads`: a client that sends a whole request
/// and then shuts down its write side (`nc -N`, some HTTP/1.0 clients) is closed without an
/// answer whenever the proxy reads the EOF before it answers, while its hyper server ran
/// with `half_close` off. HAProxy answers such a client; the proxy now does too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_closed_client_gets_its_answer() {
    let (server, _served) = backend().await;
    let running = start(server).await;
    let mut unanswered = 0;
    for head in [
        &b"GET / HTTP/1.1\r\nHost: web.example\r\n\r\n"[..],
        b"GET / HTTP/1.1\nHost: web.example\n\n",
    ] {
        for _ in 0..10 {
            let mut stream = TcpStream::connect(running.http).await.expect("connect");
            stream.write_all(head).await.expect("send");
            stream.shutdown().await.expect("half-close");
            let mut reply = Vec::new();
            let _ =
                tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut reply)).await;
            if !reply.starts_with(b"HTTP/1.1 200") {
                unanswered += 1;
            }
        }
    }
    assert_eq!(
        unanswered, 0,
        "{unanswered} of 20 half-closed clients got no answer"
    );
    let _ = running.stop.send(());
}

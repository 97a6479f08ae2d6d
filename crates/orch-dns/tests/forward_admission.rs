//! Who gets names outside the zone forwarded, and how many forwards may be in flight, over
//! real sockets (issue 18: the DNS server must not be an open resolver).
//!
//! The unallowed client is real: the server allows `127.0.0.1/32` only and the client binds
//! `127.0.0.2` (any 127/8 address is local on Linux), so no traffic leaves loopback. A second
//! case allows no loopback at all and asks with Debian's `dig` from 127.0.0.1.
//!
//! The cap: an upstream that receives and never answers (a black hole); once 256 forwards
//! are waiting on it, the 257th query is answered SERVFAIL at once, and when the waiting
//! ones time out the slots are free again.

use hickory_proto::op::{Message, MessageType, Query, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use orch_dns::{parse_network, serve, DnsError, ForwardConfig, RecordSet, Soa, Zone};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, UdpSocket};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

/// Longest any single step may take before the test fails instead of hanging.
const STEP: Duration = Duration::from_secs(10);

/// A zone `mesos.` with one name, `web.marathon.mesos.` (A 10.0.0.1).
fn zone() -> Zone {
    let mut names = HashMap::new();
    names.insert(
        "web.marathon.mesos.".to_owned(),
        RecordSet {
            a: vec![Ipv4Addr::new(10, 0, 0, 1)],
            ..RecordSet::default()
        },
    );
    Zone {
        apex: "mesos.".into(),
        ttl: 5,
        soa: Soa {
            mname: "ns1.mesos.".into(),
            rname: "root.ns1.mesos.".into(),
            serial: 1,
            refresh: 60,
            retry: 600,
            expire: 86_400,
            minimum: 5,
        },
        names,
        frameworks: Vec::new(),
    }
}

/// A running server on 127.0.0.1 (UDP and TCP on one port).
struct Server {
    address: SocketAddr,
    _zones: watch::Sender<Arc<Zone>>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), DnsError>>,
}

impl Server {
    async fn start(forward: ForwardConfig) -> Self {
        for _ in 0..50 {
            let udp = UdpSocket::bind("127.0.0.1:0").await.expect("bind udp");
            let address = udp.local_addr().expect("udp address");
            let Ok(tcp) = TcpListener::bind(address).await else {
                continue;
            };
            let (zones, receiver) = watch::channel(Arc::new(zone()));
            let (stop, stopped) = oneshot::channel::<()>();
            let task = tokio::spawn(serve(udp, tcp, receiver, forward, async move {
                let _ = stopped.await;
            }));
            return Self {
                address,
                _zones: zones,
                stop: Some(stop),
                task,
            };
        }
        panic!("no free UDP+TCP port pair on 127.0.0.1");
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let result = tokio::time::timeout(STEP, &mut self.task)
            .await
            .expect("the server stops");
        assert!(matches!(result, Ok(Ok(()))), "{result:?}");
    }
}

fn query(id: u16, name: &str) -> Vec<u8> {
    let mut message = Message::new();
    message
        .set_id(id)
        .set_recursion_desired(true)
        .add_query(Query::query(
            Name::from_ascii(name).expect("name"),
            RecordType::A,
        ));
    message.to_vec().expect("encodable")
}

/// Asks `server` for `name` over UDP from `from`, and returns the reply.
async fn ask_udp(server: SocketAddr, from: IpAddr, id: u16, name: &str) -> Message {
    let socket = UdpSocket::bind((from, 0)).await.expect("bind the client");
    socket
        .send_to(&query(id, name), server)
        .await
        .expect("send");
    let mut buffer = vec![0u8; 4096];
    let (len, _) = tokio::time::timeout(STEP, socket.recv_from(&mut buffer))
        .await
        .expect("a reply in time")
        .expect("receive");
    let reply = Message::from_vec(&buffer[..len]).expect("a DNS reply");
    assert_eq!(reply.id(), id);
    reply
}

/// Asks `server` for `name` over TCP from `from`, and returns the reply.
async fn ask_tcp(server: SocketAddr, from: IpAddr, name: &str) -> Message {
    let socket = TcpSocket::new_v4().expect("socket");
    socket.bind((from, 0).into()).expect("bind the client");
    let mut stream = tokio::time::timeout(STEP, socket.connect(server))
        .await
        .expect("connect in time")
        .expect("connect");
    let body = query(4242, name);
    let length = u16::try_from(body.len()).expect("short");
    let mut framed = length.to_be_bytes().to_vec();
    framed.extend_from_slice(&body);
    stream.write_all(&framed).await.expect("send");
    let mut prefix = [0u8; 2];
    tokio::time::timeout(STEP, stream.read_exact(&mut prefix))
        .await
        .expect("a reply in time")
        .expect("read length");
    let mut reply = vec![0u8; usize::from(u16::from_be_bytes(prefix))];
    stream.read_exact(&mut reply).await.expect("read reply");
    Message::from_vec(&reply).expect("a DNS reply")
}

/// The reply of the fake resolver to `bytes`: every question answered with 192.0.2.53.
fn fake_reply(bytes: &[u8]) -> Option<Vec<u8>> {
    let query = Message::from_vec(bytes).ok()?;
    let mut reply = Message::new();
    reply
        .set_id(query.id())
        .set_message_type(MessageType::Response)
        .add_queries(query.queries().to_vec());
    for question in query.queries() {
        reply.add_answer(Record::from_rdata(
            question.name().clone(),
            60,
            RData::A(A::new(192, 0, 2, 53)),
        ));
    }
    reply.to_vec().ok()
}

/// A resolver on 127.0.0.1 (UDP and TCP on one port) answering every question with
/// 192.0.2.53.
async fn fake_resolver() -> SocketAddr {
    let (socket, listener) = loop {
        let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let address = socket.local_addr().expect("address");
        if let Ok(listener) = TcpListener::bind(address).await {
            break (socket, listener);
        }
    };
    let address = socket.local_addr().expect("address");
    tokio::spawn(async move {
        let mut buffer = vec![0u8; 4096];
        while let Ok((len, from)) = socket.recv_from(&mut buffer).await {
            if let Some(bytes) = fake_reply(&buffer[..len]) {
                let _ = socket.send_to(&bytes, from).await;
            }
        }
    });
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut prefix = [0u8; 2];
                stream.read_exact(&mut prefix).await?;
                let mut body = vec![0u8; usize::from(u16::from_be_bytes(prefix))];
                stream.read_exact(&mut body).await?;
                if let Some(bytes) = fake_reply(&body) {
                    let length = u16::try_from(bytes.len()).unwrap_or(0);
                    stream.write_all(&length.to_be_bytes()).await?;
                    stream.write_all(&bytes).await?;
                }
                std::io::Result::Ok(())
            });
        }
    });
    address
}

/// A UDP "resolver" that counts what it receives and never answers.
async fn black_hole() -> (SocketAddr, Arc<AtomicUsize>) {
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let address = socket.local_addr().expect("address");
    let received = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&received);
    tokio::spawn(async move {
        let mut buffer = vec![0u8; 4096];
        while socket.recv_from(&mut buffer).await.is_ok() {
            counter.fetch_add(1, Ordering::SeqCst);
        }
    });
    (address, received)
}

fn forwarding(resolvers: Vec<SocketAddr>, allow: &[&str]) -> ForwardConfig {
    ForwardConfig {
        resolvers,
        timeout: Duration::from_millis(2_000),
        allow: allow
            .iter()
            .map(|text| parse_network(text).expect("network"))
            .collect(),
        ..ForwardConfig::default()
    }
}

fn loopback(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}

fn is_forwarded_answer(reply: &Message) -> bool {
    reply.response_code() == ResponseCode::NoError
        && reply
            .answers()
            .iter()
            .any(|record| record.data() == &RData::A(A::new(192, 0, 2, 53)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unallowed_client_is_refused_out_of_zone_but_answered_in_zone() {
    let resolver = fake_resolver().await;
    let server = Server::start(forwarding(vec![resolver], &["127.0.0.1/32"])).await;

    let allowed = ask_udp(server.address, loopback(1), 1, "example.com.").await;
    assert!(is_forwarded_answer(&allowed), "{allowed:?}");
    let allowed = ask_tcp(server.address, loopback(1), "example.com.").await;
    assert!(is_forwarded_answer(&allowed), "{allowed:?}");

    let refused = ask_udp(server.address, loopback(2), 2, "example.com.").await;
    assert_eq!(
        refused.response_code(),
        ResponseCode::Refused,
        "{refused:?}"
    );
    assert!(refused.answers().is_empty());
    let refused = ask_tcp(server.address, loopback(2), "example.com.").await;
    assert_eq!(
        refused.response_code(),
        ResponseCode::Refused,
        "{refused:?}"
    );

    let in_zone = ask_udp(server.address, loopback(2), 3, "web.marathon.mesos.").await;
    assert_eq!(in_zone.response_code(), ResponseCode::NoError);
    assert!(in_zone.authoritative());
    assert_eq!(
        in_zone.answers().first().map(Record::data),
        Some(&RData::A(A::new(10, 0, 0, 1)))
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dig_from_loopback_is_refused_when_loopback_is_not_allowed() {
    let resolver = fake_resolver().await;
    let server = Server::start(forwarding(vec![resolver], &["10.0.0.0/8", "fd00::/8"])).await;
    let dig = |name: &'static str| {
        let address = server.address;
        tokio::task::spawn_blocking(move || {
            std::process::Command::new("dig")
                .args([
                    "@127.0.0.1",
                    "-p",
                    &address.port().to_string(),
                    "+time=5",
                    "+tries=1",
                    "+notcp",
                    name,
                    "A",
                ])
                .output()
        })
    };
    let out = dig("example.com")
        .await
        .expect("join")
        .expect("run dig (dnsutils)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("status: REFUSED"), "{text}");
    let out = dig("web.marathon.mesos")
        .await
        .expect("join")
        .expect("run dig");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("status: NOERROR"), "{text}");
    assert!(text.contains("10.0.0.1"), "{text}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_forward_past_the_cap_gets_servfail_at_once() {
    const CAP: usize = 256;
    let (hole, received) = black_hole().await;
    let forward = ForwardConfig {
        max_in_flight: CAP,
        timeout: Duration::from_secs(3),
        ..forwarding(vec![hole], &["127.0.0.0/8"])
    };
    let server = Server::start(forward).await;

    // CAP queries, each from its own socket, all waiting on the black hole.
    let mut waiting = Vec::new();
    for i in 0..CAP {
        let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let id = u16::try_from(i).expect("small");
        socket
            .send_to(&query(id, &format!("n{i}.example.com.")), server.address)
            .await
            .expect("send");
        waiting.push(socket);
    }
    let deadline = Instant::now() + STEP;
    while received.load(Ordering::SeqCst) < CAP {
        assert!(
            Instant::now() < deadline,
            "only {} forwards reached the upstream",
            received.load(Ordering::SeqCst)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let started = Instant::now();
    let over = ask_udp(server.address, loopback(1), 9999, "over.example.com.").await;
    let took = started.elapsed();
    assert_eq!(over.response_code(), ResponseCode::ServFail, "{over:?}");
    assert!(
        took < Duration::from_millis(1_000),
        "SERVFAIL took {took:?}, not at once"
    );
    assert_eq!(received.load(Ordering::SeqCst), CAP, "nothing past the cap");
    // Names in the zone are still answered meanwhile.
    let in_zone = ask_udp(server.address, loopback(1), 7, "web.marathon.mesos.").await;
    assert_eq!(in_zone.response_code(), ResponseCode::NoError);

    // The waiting ones time out (SERVFAIL) and free their slots.
    for socket in &waiting {
        let mut buffer = vec![0u8; 4096];
        let (len, _) = tokio::time::timeout(STEP, socket.recv_from(&mut buffer))
            .await
            .expect("a reply in time")
            .expect("receive");
        let reply = Message::from_vec(&buffer[..len]).expect("a DNS reply");
        assert_eq!(reply.response_code(), ResponseCode::ServFail);
    }
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    socket
        .send_to(&query(1, "again.example.com."), server.address)
        .await
        .expect("send");
    let deadline = Instant::now() + STEP;
    while received.load(Ordering::SeqCst) < CAP + 1 {
        assert!(Instant::now() < deadline, "a slot was not freed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    server.stop().await;
}

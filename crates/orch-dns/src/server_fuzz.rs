//! Hostile DNS packets (issue 18), fuzzed on stable with proptest (see
//! `orch-core/tests/common/fuzz.rs` for why not cargo-fuzz, and the `ORCH_FUZZ_CASES` knob).
//!
//! In process: random bytes and mutated valid queries are decoded as hickory-server decodes
//! them (`MessageRequest`), and whatever decodes goes through [`Handler::respond`] (the
//! whole request handler but the socket write) from random client addresses, over UDP and
//! TCP, and through [`answer`] without the handler's panic guard (which would turn a panic
//! into SERVFAIL and hide it). Over real sockets: a running server takes thousands of such
//! datagrams and garbage TCP streams, and still answers a valid query afterwards.
//!
//! Properties: nothing panics; every response carries the request's id, is a response,
//! encodes, and fits the transport's size limit; what does not decode is dropped or answered
//! FORMERR (hickory's rule), never answered with something that is not DNS.

use super::*;
use crate::answer::{max_size, Outcome};
use crate::records::records;
use crate::zone::ZoneConfig;
use hickory_proto::op::{Edns, MessageType, OpCode, Query};
use hickory_proto::rr::{DNSClass, Name, RecordType};
use hickory_proto::serialize::binary::BinDecodable;
use hickory_server::authority::MessageRequest;
use orch_core::model::{Goal, TaskState};
use orch_core::testing;
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[path = "../../orch-core/tests/common/fuzz.rs"]
mod common;

/// A zone built the way a server builds it: a plain app, an app with a VIP and two ports,
/// their running tasks on two agents, domain `mesos`.
fn zone() -> Zone {
    let app = |id: &str, definition: serde_json::Value| {
        testing::app(id, definition)
            .with_service_ports(None, BTreeSet::new)
            .expect("service ports left")
    };
    let apps = vec![
        app(
            "/hello",
            serde_json::json!({"cmd": "sleep 100", "portDefinitions": [{"port": 0}]}),
        ),
        app(
            "/prod/web",
            serde_json::json!({"cmd": "sleep 100", "portDefinitions": [
                {"port": 0, "name": "http", "labels": {"VIP_0": "/prod/web:80"}},
                {"port": 0, "protocol": "udp,tcp"}]}),
        ),
    ];
    let mut tasks = Vec::new();
    for (i, agent) in [testing::AGENT0, testing::AGENT1].into_iter().enumerate() {
        let port = 31_000 + u16::try_from(i).unwrap_or(0);
        for app in ["/hello", "/prod/web"] {
            let mut task = testing::task(app, &format!("t{i}"), agent, &[port, port + 100]);
            task.state = TaskState::Running;
            task.goal = Goal::Running;
            tasks.push(task);
        }
    }
    let config = ZoneConfig::new("mesos", 5);
    records(&testing::snapshot(apps, tasks), &config)
}

/// A handler on [`zone`] that forwards for nobody (out-of-zone names: REFUSED, no I/O).
fn handler() -> Handler {
    let (_, zones) = watch::channel(Arc::new(zone()));
    Handler {
        zones,
        forwarder: Forwarder::new(ForwardConfig {
            resolvers: vec![SocketAddr::from(([127, 0, 0, 1], 9))],
            allow: Vec::new(),
            ..ForwardConfig::default()
        }),
    }
}

fn query(name: &str, rtype: RecordType, edns: Option<(u16, u8)>, id: u16) -> Vec<u8> {
    let mut message = Message::new();
    message.set_id(id).set_recursion_desired(true);
    if let Ok(name) = Name::from_ascii(name) {
        message.add_query(Query::query(name, rtype));
    }
    if let Some((size, version)) = edns {
        let mut opt = Edns::new();
        opt.set_max_payload(size);
        opt.set_version(version);
        message.set_edns(opt);
    }
    message.to_vec().expect("encodable")
}

/// Valid queries for what the server answers and refuses: every record type in and out of
/// the zone, VIPs, SRV, wildcards, EDNS sizes and versions, two questions, other opcodes
/// and classes, zone transfers.
fn seeds() -> Vec<Vec<u8>> {
    let mut seeds = Vec::new();
    let names = [
        "hello.marathon.mesos.",
        "web-prod.marathon.mesos.",
        "_hello._tcp.marathon.mesos.",
        "_http._web-prod._tcp.marathon.mesos.",
        "mesos.",
        "ns1.mesos.",
        "leader.mesos.",
        "nope.marathon.mesos.",
        "*.marathon.mesos.",
        "hello.marathon.*.mesos.",
        "web.prod.l4lb.thisdcos.directory.",
        "prodweb.marathon.l4lb.thisdcos.directory.",
        "example.com.",
        ".",
    ];
    let types = [
        RecordType::A,
        RecordType::AAAA,
        RecordType::SRV,
        RecordType::ANY,
        RecordType::SOA,
        RecordType::NS,
        RecordType::TXT,
        RecordType::AXFR,
    ];
    let mut id = 1u16;
    for name in names {
        for rtype in types {
            for edns in [None, Some((4096, 0)), Some((600, 0)), Some((512, 1))] {
                seeds.push(query(name, rtype, edns, id));
                id = id.wrapping_add(1);
            }
        }
    }
    // Two questions; another opcode; class CHAOS; a response sent as a request.
    let mut two = Message::new();
    two.set_id(7)
        .add_query(Query::query(
            Name::from_ascii("hello.marathon.mesos.").expect("name"),
            RecordType::A,
        ))
        .add_query(Query::query(
            Name::from_ascii("example.com.").expect("name"),
            RecordType::A,
        ));
    let mut notify = two.clone();
    notify.set_op_code(OpCode::Notify);
    let mut chaos = Message::new();
    let mut question = Query::query(Name::from_ascii("mesos.").expect("name"), RecordType::TXT);
    question.set_query_class(DNSClass::CH);
    chaos.set_id(8).add_query(question);
    let mut response = two.clone();
    response.set_message_type(MessageType::Response);
    for message in [two, notify, chaos, response] {
        seeds.push(message.to_vec().expect("encodable"));
    }
    seeds
}

/// Checks a response to `request` over `transport`.
fn check_response(request: &MessageRequest, response: &Message, transport: Transport) {
    assert_eq!(response.id(), request.id(), "{response:?}");
    assert_eq!(response.message_type(), MessageType::Response);
    let bytes = response.to_vec().expect("a response encodes");
    let again = Message::from_vec(&bytes).expect("a response decodes");
    assert_eq!(again.id(), request.id());
    if request.queries().len() == 1 {
        let limit = max_size(transport, request.edns());
        assert!(
            bytes.len() <= limit,
            "{} bytes over {transport:?}, limit {limit}: {response:?}",
            bytes.len()
        );
    }
}

/// Everything the server does with `bytes` from `client`, but the socket write.
fn exercise(runtime: &tokio::runtime::Runtime, handler: &Handler, bytes: &[u8], client: IpAddr) {
    let Ok(message) = MessageRequest::from_bytes(bytes) else {
        return;
    };
    // The pure answer, without the handler's panic guard.
    let question = Question {
        header: message.header(),
        queries: message.queries(),
        edns: message.edns(),
    };
    let zone = Arc::clone(&handler.zones.borrow());
    for transport in [Transport::Udp, Transport::Tcp] {
        if let Outcome::Answer(response) =
            answer(&question, &zone, &mut StdRng::seed_from_u64(1), transport)
        {
            check_response(&message, &response, transport);
        }
    }
    for (protocol, transport) in [
        (Protocol::Udp, Transport::Udp),
        (Protocol::Tcp, Transport::Tcp),
    ] {
        let Ok(decoded) = MessageRequest::from_bytes(bytes) else {
            panic!("bytes decode once but not twice");
        };
        let request = Request::new(decoded, SocketAddr::new(client, 5353), protocol);
        let response = runtime.block_on(handler.respond(&request, transport));
        check_response(&message, &response, transport);
        if message.message_type() == MessageType::Query
            && message.op_code() == OpCode::Query
            && message.queries().len() == 1
        {
            assert_ne!(
                response.response_code(),
                ResponseCode::ServFail,
                "a panic or a forward for a client allowed nowhere: {response:?}"
            );
        }
    }
}

fn client() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<[u8; 4]>().prop_map(|octets| IpAddr::V4(Ipv4Addr::from(octets))),
        any::<[u8; 16]>().prop_map(|octets| IpAddr::V6(Ipv6Addr::from(octets))),
    ]
}

thread_local! {
    static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    static HANDLER: Handler = handler();
}

#[test]
fn every_seed_is_answered_or_refused() {
    let seeds = seeds();
    assert!(seeds.len() > 400);
    RUNTIME.with(|runtime| {
        HANDLER.with(|handler| {
            for bytes in &seeds {
                exercise(runtime, handler, bytes, IpAddr::V4(Ipv4Addr::LOCALHOST));
            }
            let hello = query("hello.marathon.mesos.", RecordType::A, None, 1);
            let message = MessageRequest::from_bytes(&hello).expect("a request");
            let request = Request::new(
                message,
                "127.0.0.1:5353".parse().expect("address"),
                Protocol::Udp,
            );
            let response = runtime.block_on(handler.respond(&request, Transport::Udp));
            assert_eq!(response.answers().len(), 2, "{response:?}");
        });
    });
}

proptest! {
    #![proptest_config(common::config(10_000))]

    #[test]
    fn fuzz_dns_mutated_queries(bytes in common::mutated_bytes(seeds()), client in client()) {
        RUNTIME.with(|runtime| HANDLER.with(|handler| exercise(runtime, handler, &bytes, client)));
    }

    #[test]
    fn fuzz_dns_random_packets(
        bytes in prop_oneof![
            common::random_bytes(600),
            // A query header with one question, then noise: past the first check more often.
            (any::<u16>(), common::random_bytes(300)).prop_map(|(id, tail)| {
                let mut bytes = id.to_be_bytes().to_vec();
                bytes.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
                bytes.extend(tail);
                bytes
            }),
        ],
        client in client(),
    ) {
        RUNTIME.with(|runtime| HANDLER.with(|handler| exercise(runtime, handler, &bytes, client)));
    }
}

/// Real sockets: thousands of hostile datagrams and garbage TCP streams, every reply that
/// comes back is DNS, and a valid query is still answered over UDP and TCP afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fuzz_dns_server_survives_hostile_traffic() {
    let udp = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = udp.local_addr().expect("address");
    let tcp = TcpListener::bind(address).await.expect("bind tcp");
    let (_zones, receiver) = watch::channel(Arc::new(zone()));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let forward = ForwardConfig {
        external_on: false,
        ..ForwardConfig::default()
    };
    let server = tokio::spawn(serve(udp, tcp, receiver, forward, async move {
        let _ = stopped.await;
    }));

    let mut runner = proptest::test_runner::TestRunner::new(common::config(2_000));
    let packets = proptest::collection::vec(
        prop_oneof![common::mutated_bytes(seeds()), common::random_bytes(600)],
        1..2,
    );
    let count = common::cases(2_000);
    let client = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("bind client");
    let mut sent = 0u32;
    let mut replies = 0u32;
    let mut buffer = vec![0u8; 65_535];
    while sent < count {
        let batch = packets
            .new_tree(&mut runner)
            .map(|tree| proptest::strategy::ValueTree::current(&tree))
            .unwrap_or_default();
        for packet in batch {
            let _ = client.send_to(&packet, address).await;
            sent += 1;
        }
        // Drain what came back so far: each reply must be a DNS response.
        while let Ok(Ok((len, _))) = tokio::time::timeout(
            Duration::from_millis(if sent % 200 == 0 { 20 } else { 0 }),
            client.recv_from(&mut buffer),
        )
        .await
        {
            let reply = Message::from_vec(&buffer[..len]).expect("every reply is DNS");
            assert_eq!(reply.message_type(), MessageType::Response);
            replies += 1;
        }
    }
    assert!(replies > 0, "no hostile datagram was answered at all");

    // Garbage streams over TCP: random frames, lying lengths, half frames.
    // At most 2,000 streams even in a soak: each leaves a socket in TIME_WAIT.
    for i in 0..common::cases(100).min(2_000) {
        let Ok(mut stream) = TcpStream::connect(address).await else {
            panic!("the TCP listener is gone after {i} streams");
        };
        let packet = packets
            .new_tree(&mut runner)
            .map(|tree| proptest::strategy::ValueTree::current(&tree))
            .unwrap_or_default()
            .concat();
        let length = u16::try_from(packet.len()).unwrap_or(u16::MAX);
        let declared = if i % 3 == 0 {
            length.saturating_add(7)
        } else {
            length
        };
        let _ = stream.write_all(&declared.to_be_bytes()).await;
        let _ = stream.write_all(&packet).await;
        if i % 5 == 0 {
            let _ = stream.shutdown().await;
        }
    }

    let hello = query("hello.marathon.mesos.", RecordType::A, None, 4242);
    client.send_to(&hello, address).await.expect("send");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let reply = loop {
        let (len, _) = tokio::time::timeout_at(deadline, client.recv_from(&mut buffer))
            .await
            .expect("the server still answers over UDP")
            .expect("receive");
        let reply = Message::from_vec(&buffer[..len]).expect("DNS");
        if reply.id() == 4242 {
            break reply;
        }
    };
    assert_eq!(reply.response_code(), ResponseCode::NoError);
    assert_eq!(reply.answers().len(), 2);

    let mut stream = TcpStream::connect(address).await.expect("connect");
    let length = u16::try_from(hello.len()).expect("short");
    stream.write_all(&length.to_be_bytes()).await.expect("send");
    stream.write_all(&hello).await.expect("send");
    let mut prefix = [0u8; 2];
    tokio::time::timeout(Duration::from_secs(10), stream.read_exact(&mut prefix))
        .await
        .expect("the server still answers over TCP")
        .expect("read");
    let mut body = vec![0u8; usize::from(u16::from_be_bytes(prefix))];
    stream.read_exact(&mut body).await.expect("read");
    assert_eq!(Message::from_vec(&body).expect("DNS").answers().len(), 2);

    assert!(!server.is_finished(), "the server stopped");
    let _ = stop.send(());
    let result = tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("the server stops");
    assert!(matches!(result, Ok(Ok(()))), "{result:?}");
}

/// Found by `fuzz_dns_server_survives_hostile_traffic`: a question whose name is a
/// compression pointer into the header (`a.` read from the id and flags bytes) was echoed
/// byte for byte by hickory's response builder, where the pointer then met the response's
/// header (QR set: label byte 0x80) and the client could not decode the reply.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_question_pointing_into_the_header_gets_a_decodable_reply() {
    let udp = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = udp.local_addr().expect("address");
    let tcp = TcpListener::bind(address).await.expect("bind tcp");
    let (_zones, receiver) = watch::channel(Arc::new(zone()));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let forward = ForwardConfig {
        external_on: false,
        ..ForwardConfig::default()
    };
    let server = tokio::spawn(serve(udp, tcp, receiver, forward, async move {
        let _ = stopped.await;
    }));
    // id 0x0161 and flags 0x0000 spell the name `a.`; the question points at offset 0.
    let request = [
        0x01, 0x61, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xc0, 0x00, 0x00,
        0x01, 0x00, 0x01,
    ];
    let decoded = MessageRequest::from_bytes(&request).expect("the request decodes");
    assert_eq!(decoded.queries()[0].name().to_string(), "a.");
    let client = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("bind client");
    client.send_to(&request, address).await.expect("send");
    let mut buffer = vec![0u8; 4096];
    let (len, _) = tokio::time::timeout(Duration::from_secs(10), client.recv_from(&mut buffer))
        .await
        .expect("a reply")
        .expect("receive");
    let reply = Message::from_vec(&buffer[..len]).expect("the reply is DNS");
    assert_eq!(reply.id(), 0x0161);
    assert_eq!(reply.response_code(), ResponseCode::Refused);
    assert_eq!(reply.queries()[0].name().to_string(), "a.");
    let _ = stop.send(());
    let _ = tokio::time::timeout(Duration::from_secs(10), server).await;
}

//! The DNS server and its HTTP API over real sockets, checked with Debian's `dig`: record
//! kinds, NXDOMAIN vs NODATA, truncation and EDNS0, forwarding (first reply, REFUSED, dead
//! and silent upstreams), zone updates, malformed packets, shutdown; and every `/v1` endpoint
//! with reqwest.

use orch_dns::{
    router, serve, DnsConfig, DnsError, EnumeratedFramework, EnumeratedRecord, EnumeratedTask,
    ForwardConfig, RecordSet, Soa, Srv, Zone,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

/// Longest any single step may take before the test fails instead of hanging.
const STEP: Duration = Duration::from_secs(15);

fn soa(domain: &str) -> Soa {
    Soa {
        mname: format!("ns1.{domain}."),
        rname: format!("root.ns1.{domain}."),
        serial: 7,
        refresh: 60,
        retry: 600,
        expire: 86_400,
        minimum: 5,
    }
}

fn a(ips: &[Ipv4Addr]) -> RecordSet {
    RecordSet {
        a: ips.to_vec(),
        ..RecordSet::default()
    }
}

/// The test zone of domain `domain`: web (2 A + 1 AAAA), its SRV to one task name, ns1, a
/// SRV-only name, and `big` with 100 A records.
fn zone(domain: &str) -> Zone {
    let name = |prefix: &str| format!("{prefix}.{domain}.");
    let mut names = HashMap::new();
    names.insert(
        name("web.marathon"),
        RecordSet {
            a: vec![Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2)],
            aaaa: vec!["fd00::1".parse().expect("v6")],
            srv: vec![],
        },
    );
    let task = name("web-abcde-s1.marathon.slave");
    names.insert(
        task.clone(),
        RecordSet {
            a: vec![Ipv4Addr::new(10, 0, 1, 1)],
            aaaa: vec!["fd00::11".parse().expect("v6")],
            srv: vec![],
        },
    );
    names.insert(
        name("_web._tcp.marathon"),
        RecordSet {
            srv: vec![Srv {
                target: task,
                port: 31000,
                priority: 0,
                weight: 1,
            }],
            ..RecordSet::default()
        },
    );
    names.insert(name("ns1"), a(&[Ipv4Addr::LOCALHOST]));
    names.insert(
        name("big.marathon"),
        a(&(0..100u8)
            .map(|i| Ipv4Addr::new(10, 1, 0, i))
            .collect::<Vec<_>>()),
    );
    Zone {
        apex: format!("{domain}."),
        ttl: 5,
        soa: soa(domain),
        names,
        frameworks: vec![EnumeratedFramework {
            name: "marathon".into(),
            tasks: vec![EnumeratedTask {
                name: "web".into(),
                id: "web.1234".into(),
                records: vec![EnumeratedRecord {
                    name: name("web.marathon"),
                    host: "10.0.0.1".into(),
                    rtype: "A",
                }],
            }],
        }],
    }
}

fn forwarding(resolvers: Vec<SocketAddr>) -> ForwardConfig {
    ForwardConfig {
        resolvers,
        external_on: true,
        timeout: Duration::from_millis(500),
        ..ForwardConfig::default()
    }
}

/// A running server on 127.0.0.1 (UDP and TCP on the same port, as dig expects).
struct Server {
    address: SocketAddr,
    zones: watch::Sender<Arc<Zone>>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), DnsError>>,
}

impl Server {
    async fn start(zone: Zone, forward: ForwardConfig) -> Self {
        for _ in 0..50 {
            let udp = UdpSocket::bind("127.0.0.1:0").await.expect("bind udp");
            let address = udp.local_addr().expect("udp address");
            let Ok(tcp) = TcpListener::bind(address).await else {
                continue;
            };
            let (zones, receiver) = watch::channel(Arc::new(zone));
            let (stop, stopped) = oneshot::channel::<()>();
            let task = tokio::spawn(serve(udp, tcp, receiver, forward, async move {
                let _ = stopped.await;
            }));
            return Self {
                address,
                zones,
                stop: Some(stop),
                task,
            };
        }
        panic!("no free UDP+TCP port pair on 127.0.0.1");
    }

    fn port(&self) -> u16 {
        self.address.port()
    }

    async fn dig(&self, args: &[&str]) -> Dig {
        dig(self.port(), args).await
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let result = tokio::time::timeout(STEP, &mut self.task)
            .await
            .expect("server stops after shutdown")
            .expect("server task joins");
        assert!(result.is_ok(), "server ended with {result:?}");
    }
}

/// What dig printed, split into header fields and sections.
#[derive(Debug, Default)]
struct Dig {
    status: String,
    flags: Vec<String>,
    answer: Vec<Vec<String>>,
    authority: Vec<Vec<String>>,
    additional: Vec<Vec<String>>,
    edns_udp: Option<u16>,
    raw: String,
}

impl Dig {
    fn parse(raw: String) -> Self {
        let mut dig = Dig::default();
        let mut section: Option<&str> = None;
        for line in raw.lines() {
            if let Some(rest) = line.split("status: ").nth(1) {
                dig.status = rest.split(',').next().unwrap_or_default().to_owned();
            }
            if let Some(rest) = line.strip_prefix(";; flags: ") {
                let flags = rest.split(';').next().unwrap_or_default();
                dig.flags = flags.split_whitespace().map(str::to_owned).collect();
            }
            if let Some(rest) = line.split("udp: ").nth(1) {
                dig.edns_udp = rest.trim().parse().ok();
            }
            if line.starts_with(";; ") && line.ends_with(" SECTION:") {
                section = line.strip_prefix(";; ").and_then(|s| s.split(' ').next());
                continue;
            }
            if line.trim().is_empty() {
                section = None;
                continue;
            }
            let fields: Vec<String> = line.split_whitespace().map(str::to_owned).collect();
            match section {
                Some("ANSWER") => dig.answer.push(fields),
                Some("AUTHORITY") => dig.authority.push(fields),
                Some("ADDITIONAL") => dig.additional.push(fields),
                _ => {}
            }
        }
        dig.raw = raw;
        dig
    }

    fn has_flag(&self, flag: &str) -> bool {
        self.flags.iter().any(|f| f == flag)
    }

    /// The rdata of every answer of type `rtype`, sorted.
    fn values(&self, rtype: &str) -> Vec<String> {
        let mut values: Vec<String> = self
            .answer
            .iter()
            .filter(|f| f.get(3).is_some_and(|t| t == rtype))
            .map(|f| f[4..].join(" "))
            .collect();
        values.sort();
        values
    }

    fn authority_is_soa_of(&self, apex: &str) -> bool {
        matches!(self.authority.as_slice(), [soa] if soa[0] == apex && soa[3] == "SOA")
    }
}

async fn dig(port: u16, args: &[&str]) -> Dig {
    let mut command = std::process::Command::new("dig");
    command
        .arg("@127.0.0.1")
        .arg("-p")
        .arg(port.to_string())
        .args(["+tries=1", "+time=2"])
        .args(args);
    let output = tokio::time::timeout(STEP, tokio::task::spawn_blocking(move || command.output()))
        .await
        .expect("dig finishes")
        .expect("dig task joins")
        .expect("dig runs (is dnsutils installed?)");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    Dig::parse(text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_over_udp_and_tcp() {
    let server = Server::start(zone("mesos"), forwarding(vec![])).await;
    for transport in ["+notcp", "+tcp"] {
        let out = server.dig(&[transport, "web.marathon.mesos", "A"]).await;
        assert_eq!(out.status, "NOERROR", "{}", out.raw);
        for flag in ["qr", "aa", "rd", "ra"] {
            assert!(out.has_flag(flag), "{flag} missing: {}", out.raw);
        }
        assert_eq!(out.values("A"), vec!["10.0.0.1", "10.0.0.2"], "{}", out.raw);
        assert!(out.answer.iter().all(|f| f[1] == "5"), "TTL 5: {}", out.raw);

        let out = server.dig(&[transport, "WEB.Marathon.Mesos", "AAAA"]).await;
        assert_eq!(out.values("AAAA"), vec!["fd00::1"], "{}", out.raw);

        let out = server
            .dig(&[transport, "_web._tcp.marathon.mesos", "SRV"])
            .await;
        assert_eq!(
            out.values("SRV"),
            vec!["0 1 31000 web-abcde-s1.marathon.slave.mesos."],
            "{}",
            out.raw
        );
        let mut extra: Vec<String> = out
            .additional
            .iter()
            .map(|f| format!("{} {} {}", f[0], f[3], f[4]))
            .collect();
        extra.sort();
        assert_eq!(
            extra,
            vec![
                "web-abcde-s1.marathon.slave.mesos. A 10.0.1.1",
                "web-abcde-s1.marathon.slave.mesos. AAAA fd00::11",
            ],
            "{}",
            out.raw
        );

        let out = server.dig(&[transport, "mesos", "SOA"]).await;
        assert_eq!(
            out.values("SOA"),
            vec!["ns1.mesos. root.ns1.mesos. 7 60 600 86400 5"],
            "{}",
            out.raw
        );
        assert!(out.has_flag("aa"));

        let out = server.dig(&[transport, "mesos", "NS"]).await;
        assert_eq!(out.values("NS"), vec!["ns1.mesos."], "{}", out.raw);
        assert!(
            out.additional
                .iter()
                .any(|f| f[0] == "ns1.mesos." && f[4] == "127.0.0.1"),
            "{}",
            out.raw
        );
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nxdomain_and_nodata_carry_the_soa() {
    let server = Server::start(zone("mesos"), forwarding(vec![])).await;
    for transport in ["+notcp", "+tcp"] {
        let out = server.dig(&[transport, "nope.marathon.mesos", "A"]).await;
        assert_eq!(out.status, "NXDOMAIN", "{}", out.raw);
        assert!(out.has_flag("aa"));
        assert!(out.answer.is_empty());
        assert!(out.authority_is_soa_of("mesos."), "{}", out.raw);

        let out = server
            .dig(&[transport, "_web._tcp.marathon.mesos", "A"])
            .await;
        assert_eq!(out.status, "NOERROR", "{}", out.raw);
        assert!(out.answer.is_empty());
        assert!(out.authority_is_soa_of("mesos."), "{}", out.raw);

        let out = server.dig(&[transport, "web.marathon.mesos", "MX"]).await;
        assert_eq!(out.status, "NOERROR", "{}", out.raw);
        assert!(out.authority_is_soa_of("mesos."), "{}", out.raw);

        let out = server
            .dig(&[transport, "nope.l4lb.thisdcos.directory", "A"])
            .await;
        assert_eq!(out.status, "NXDOMAIN", "{}", out.raw);
        assert!(out.has_flag("aa"));
        assert!(
            out.authority_is_soa_of("l4lb.thisdcos.directory."),
            "{}",
            out.raw
        );
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_answers_are_truncated_over_udp_only() {
    let server = Server::start(zone("mesos"), forwarding(vec![])).await;
    let plain = server
        .dig(&["+noedns", "+ignore", "big.marathon.mesos", "A"])
        .await;
    assert!(plain.has_flag("tc"), "{}", plain.raw);
    assert_eq!(plain.edns_udp, None, "no OPT without EDNS: {}", plain.raw);
    let few = plain.values("A").len();
    assert!((20..100).contains(&few), "{few} answers: {}", plain.raw);

    let edns = server
        .dig(&["+bufsize=1232", "+ignore", "big.marathon.mesos", "A"])
        .await;
    assert!(edns.has_flag("tc"), "{}", edns.raw);
    let more = edns.values("A").len();
    assert!(more > few && more < 100, "{more} answers: {}", edns.raw);
    assert_eq!(edns.edns_udp, Some(4096), "OPT echoed: {}", edns.raw);

    let big = server
        .dig(&["+bufsize=4096", "+ignore", "big.marathon.mesos", "A"])
        .await;
    assert!(!big.has_flag("tc"), "{}", big.raw);
    assert_eq!(big.values("A").len(), 100, "{}", big.raw);

    let tcp = server
        .dig(&["+tcp", "+noedns", "big.marathon.mesos", "A"])
        .await;
    assert!(!tcp.has_flag("tc"), "{}", tcp.raw);
    assert_eq!(tcp.values("A").len(), 100, "{}", tcp.raw);

    // Without +ignore dig retries over TCP and gets everything.
    let retried = server.dig(&["+noedns", "big.marathon.mesos", "A"]).await;
    assert_eq!(retried.values("A").len(), 100, "{}", retried.raw);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_zones_are_served_from_the_next_request() {
    let server = Server::start(zone("mesos"), forwarding(vec![])).await;
    let mut next = zone("mesos");
    next.names.insert(
        "new.marathon.mesos.".into(),
        a(&[Ipv4Addr::new(10, 9, 9, 9)]),
    );
    server.zones.send_replace(Arc::new(next));
    let out = server.dig(&["new.marathon.mesos", "A"]).await;
    assert_eq!(out.values("A"), vec!["10.9.9.9"], "{}", out.raw);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_names_are_forwarded_over_the_clients_transport() {
    let upstream = Server::start(zone("other"), forwarding(vec![])).await;
    let server = Server::start(zone("mesos"), forwarding(vec![upstream.address])).await;
    for transport in ["+notcp", "+tcp"] {
        let out = server.dig(&[transport, "web.marathon.other", "A"]).await;
        assert_eq!(out.status, "NOERROR", "{}", out.raw);
        assert_eq!(out.values("A"), vec!["10.0.0.1", "10.0.0.2"], "{}", out.raw);
        let out = server.dig(&[transport, "nope.marathon.other", "A"]).await;
        assert_eq!(out.status, "NXDOMAIN", "{}", out.raw);
        assert!(out.authority_is_soa_of("other."), "{}", out.raw);
    }
    // A forwarded answer too big for UDP comes back truncated; over TCP it is whole.
    let out = server
        .dig(&["+noedns", "+ignore", "big.marathon.other", "A"])
        .await;
    assert!(out.has_flag("tc"), "{}", out.raw);
    let out = server.dig(&["+tcp", "big.marathon.other", "A"]).await;
    assert_eq!(out.values("A").len(), 100, "{}", out.raw);
    server.stop().await;
    upstream.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarding_off_is_refused() {
    let upstream = Server::start(zone("other"), forwarding(vec![])).await;
    let mut config = forwarding(vec![upstream.address]);
    config.external_on = false;
    let server = Server::start(zone("mesos"), config).await;
    let out = server.dig(&["web.marathon.other", "A"]).await;
    assert_eq!(out.status, "REFUSED", "{}", out.raw);
    // No resolvers at all is REFUSED too.
    let lonely = Server::start(zone("mesos"), forwarding(vec![])).await;
    let out = lonely.dig(&["+tcp", "example.com", "A"]).await;
    assert_eq!(out.status, "REFUSED", "{}", out.raw);
    lonely.stop().await;
    server.stop().await;
    upstream.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_and_silent_upstreams_are_servfail_in_time() {
    let dead = {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        socket.local_addr().expect("address")
    };
    let server = Server::start(zone("mesos"), forwarding(vec![dead])).await;
    for transport in ["+notcp", "+tcp"] {
        let started = Instant::now();
        let out = server.dig(&[transport, "example.com", "A"]).await;
        assert_eq!(out.status, "SERVFAIL", "{transport}: {}", out.raw);
        assert!(
            started.elapsed() < Duration::from_millis(1500),
            "{transport}: dead upstream took {:?}",
            started.elapsed()
        );
    }
    server.stop().await;

    let silent = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let server = Server::start(
        zone("mesos"),
        forwarding(vec![silent.local_addr().expect("address")]),
    )
    .await;
    let started = Instant::now();
    let out = server.dig(&["example.com", "A"]).await;
    let took = started.elapsed();
    assert_eq!(out.status, "SERVFAIL", "{}", out.raw);
    assert!(
        took >= Duration::from_millis(450) && took < Duration::from_millis(1900),
        "silent upstream took {took:?}"
    );
    server.stop().await;
    drop(silent);
}

/// A valid query for `name` A, with `id`.
fn query(id: u16, name: &str) -> Vec<u8> {
    let mut packet = Vec::new();
    packet.extend_from_slice(&id.to_be_bytes());
    packet.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.split('.').filter(|l| !l.is_empty()) {
        packet.push(u8::try_from(label.len()).expect("short label"));
        packet.extend_from_slice(label.as_bytes());
    }
    packet.push(0);
    packet.extend_from_slice(&[0, 1, 0, 1]);
    packet
}

/// Malformed packets of every kind this test throws at the server.
fn malformed(rng: &mut StdRng, n: usize) -> Vec<u8> {
    let valid = query(rng.random(), "web.marathon.mesos.");
    match n % 7 {
        // Random bytes.
        0 => {
            let len = rng.random_range(0..700);
            (0..len).map(|_| rng.random()).collect()
        }
        // A valid query cut short.
        1 => valid[..rng.random_range(0..valid.len())].to_vec(),
        // Too many labels (a name far beyond 255 bytes).
        2 => {
            let mut packet = valid[..12].to_vec();
            for _ in 0..rng.random_range(130..400) {
                packet.extend_from_slice(&[1, b'a']);
            }
            packet.extend_from_slice(&[0, 0, 1, 0, 1]);
            packet
        }
        // Compression pointers: to itself, forward, out of range.
        3 => {
            let mut packet = valid[..12].to_vec();
            let target: u16 = match rng.random_range(0..3) {
                0 => 12,
                1 => rng.random_range(13..0x3fff),
                _ => rng.random_range(0..12),
            };
            packet.extend_from_slice(&(0xc000 | target).to_be_bytes());
            packet.extend_from_slice(&[0, 1, 0, 1]);
            packet
        }
        // Bit flips in a valid query.
        4 => {
            let mut packet = valid;
            for _ in 0..rng.random_range(1..6) {
                let at = rng.random_range(0..packet.len());
                packet[at] ^= 1 << rng.random_range(0..8);
            }
            packet
        }
        // Counts that lie (many questions, answers, additionals announced).
        5 => {
            let mut packet = valid;
            let at = rng.random_range(2..6) * 2;
            packet[at] = rng.random();
            packet[at + 1] = rng.random();
            packet
        }
        // A reply instead of a query, or a bad opcode.
        _ => {
            let mut packet = valid;
            packet[2] |= if rng.random() { 0x80 } else { 0x78 };
            packet
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_packets_never_stop_the_server() {
    let server = Server::start(zone("mesos"), forwarding(vec![])).await;
    let mut rng = StdRng::seed_from_u64(20_26);
    let client = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    for n in 0..5_000 {
        let packet = malformed(&mut rng, n);
        let _ = client.send_to(&packet, server.address).await;
        if n % 500 == 0 {
            tokio::task::yield_now().await;
        }
    }
    for n in 0..200 {
        let Ok(Ok(mut stream)) =
            tokio::time::timeout(STEP, TcpStream::connect(server.address)).await
        else {
            panic!("TCP connect {n} failed");
        };
        let packet = malformed(&mut rng, n);
        let mut framed = Vec::new();
        match n % 3 {
            // A correct length prefix around garbage.
            0 => {
                let len = u16::try_from(packet.len()).expect("short");
                framed.extend_from_slice(&len.to_be_bytes());
                framed.extend_from_slice(&packet);
            }
            // A length prefix that promises more than comes.
            1 => {
                framed.extend_from_slice(&u16::MAX.to_be_bytes());
                framed.extend_from_slice(&packet);
            }
            // No framing at all.
            _ => framed.extend_from_slice(&packet),
        }
        let _ = stream.write_all(&framed).await;
        let _ = stream.shutdown().await;
    }
    assert!(!server.task.is_finished(), "the server must keep running");
    for transport in ["+notcp", "+tcp"] {
        let out = server.dig(&[transport, "web.marathon.mesos", "A"]).await;
        assert_eq!(out.status, "NOERROR", "{}", out.raw);
        assert_eq!(out.values("A"), vec!["10.0.0.1", "10.0.0.2"], "{}", out.raw);
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_api_has_mesos_dns_shapes() {
    let (_zones, receiver) = watch::channel(Arc::new(zone("mesos")));
    let config = Arc::new(DnsConfig {
        resolvers: vec!["8.8.8.8:53".parse().expect("address")],
        ..DnsConfig::default()
    });
    let app = router(receiver, config);
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let base = format!("http://{address}");
    orch_pki::tls::install_crypto_provider();
    let client = reqwest::Client::builder()
        .timeout(STEP)
        .build()
        .expect("client");
    let get = |path: &str| {
        let request = client.get(format!("{base}{path}"));
        async move {
            let response = request.send().await.expect("request");
            let status = response.status().as_u16();
            let text = response.text().await.expect("body");
            (status, text)
        }
    };
    let json = |text: &str| -> serde_json::Value { serde_json::from_str(text).expect("JSON") };

    let (status, body) = get("/v1/version").await;
    assert_eq!(status, 200);
    let version = json(&body);
    assert_eq!(version["Service"], "Mesos-DNS");
    assert_eq!(version["URL"], "https://github.com/mesosphere/mesos-dns");
    assert!(version["Version"].is_string());

    let (status, body) = get("/v1/config").await;
    assert_eq!(status, 200);
    let config = json(&body);
    assert_eq!(config["Domain"], "mesos");
    assert_eq!(config["Resolvers"], serde_json::json!(["8.8.8.8"]));
    assert_eq!(config["TTL"], 5);

    let (status, body) = get("/v1/hosts/WEB.marathon.mesos").await;
    assert_eq!(status, 200);
    assert_eq!(
        json(&body),
        serde_json::json!([
            {"host": "web.marathon.mesos.", "ip": "10.0.0.1"},
            {"host": "web.marathon.mesos.", "ip": "10.0.0.2"},
            {"host": "web.marathon.mesos.", "ip": "fd00::1"},
        ])
    );
    let (status, body) = get("/v1/hosts/nope.marathon.mesos.").await;
    assert_eq!(status, 200);
    assert_eq!(json(&body), serde_json::json!([{"host": "", "ip": ""}]));

    let (status, body) = get("/v1/hosts/web.marathon.mesos/ports").await;
    assert_eq!(status, 501);
    assert!(body.contains("To be implemented..."), "{body}");

    let (status, body) = get("/v1/services/_web._tcp.marathon.mesos").await;
    assert_eq!(status, 200);
    assert_eq!(
        json(&body),
        serde_json::json!([
            {"service": "_web._tcp.marathon.mesos", "host": "web-abcde-s1.marathon.slave.mesos.",
             "ip": "10.0.1.1", "port": "31000"},
            {"service": "_web._tcp.marathon.mesos", "host": "web-abcde-s1.marathon.slave.mesos.",
             "ip": "fd00::11", "port": "31000"},
        ])
    );
    let (status, body) = get("/v1/services/_nope._tcp.marathon.mesos").await;
    assert_eq!(status, 200);
    assert_eq!(
        json(&body),
        serde_json::json!([{"service": "", "host": "", "ip": "", "port": ""}])
    );
    // No forwarding: a name outside the zone is unknown.
    let (_, body) = get("/v1/hosts/example.com").await;
    assert_eq!(json(&body), serde_json::json!([{"host": "", "ip": ""}]));

    let (status, body) = get("/v1/enumerate").await;
    assert_eq!(status, 200);
    assert_eq!(
        json(&body),
        serde_json::json!({"frameworks": [{"name": "marathon", "tasks": [{
            "name": "web", "id": "web.1234",
            "records": [{"name": "web.marathon.mesos.", "host": "10.0.0.1", "rtype": "A"}]
        }]}]})
    );
    server.abort();
}

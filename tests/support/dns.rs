//! `orch dns` processes, `dig`, and DNS queries over UDP.

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RData, RecordType};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::str::FromStr as _;
use std::time::{Duration, Instant};

use super::*;

/// An `orch dns` process following a cluster's masters, on ports picked at run time.
#[derive(Debug)]
pub struct DnsProcess {
    /// The process (killed on drop).
    pub process: Master,
    /// Its DNS address (UDP and TCP).
    pub dns: SocketAddr,
    /// `http://` + its HTTP API address.
    pub http: String,
}

impl DnsProcess {
    /// Starts `orch dns --masters <masters> --listen .. --http-listen .. <extra>`, logging
    /// into `cluster`'s dir.
    pub fn start(cluster: &Cluster, masters: &[String], extra: &[&str]) -> Self {
        let dns = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let http = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let mut args = vec![
            "--masters".to_owned(),
            masters.join(","),
            "--listen".to_owned(),
            dns.to_string(),
            "--http-listen".to_owned(),
            http.to_string(),
        ];
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        let name = format!("dns-{}", dns.port());
        let mut process = Master::new(
            cluster.dir(),
            &name,
            &dns.to_string(),
            cluster.dir().join(&name),
            args,
        );
        process.subcommand = "dns".into();
        process.start();
        Self {
            process,
            dns,
            http: format!("http://{http}"),
        }
    }
}

/// Runs Debian's `dig @server -p port +tries=1 +time=2 <args>` and returns its stdout.
pub async fn dig(server: SocketAddr, args: &[&str]) -> String {
    let out = tokio::process::Command::new("dig")
        .arg(format!("@{}", server.ip()))
        .args(["-p", &server.port().to_string(), "+tries=1", "+time=2"])
        .args(args)
        .output()
        .await
        .expect("run dig (Debian's dnsutils)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Polls `dig +short <args>` until `done` holds for its answer (lines sorted, joined by
/// spaces); panics with the last answer after `timeout`. Returns the answer.
pub async fn wait_dig(
    server: SocketAddr,
    args: &[&str],
    timeout: Duration,
    done: impl Fn(&str) -> bool,
) -> String {
    let deadline = Instant::now() + timeout;
    let mut all = vec!["+short"];
    all.extend_from_slice(args);
    loop {
        let out = dig(server, &all).await;
        let mut lines: Vec<&str> = out.lines().map(str::trim).collect();
        lines.sort_unstable();
        let answer = lines.join(" ");
        if done(&answer) {
            return answer;
        }
        assert!(
            Instant::now() < deadline,
            "dig {args:?} @{server}: still '{answer}' after {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// How long [`try_query`] waits for an answer.
pub const QUERY_TIMEOUT: Duration = Duration::from_millis(500);

/// How many of [`try_query`]'s queries got no answer in time (in this process).
pub static UNANSWERED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// One query over UDP, answered within [`QUERY_TIMEOUT`].
pub fn query(server: SocketAddr, name: &str, rtype: RecordType) -> Message {
    try_query(server, name, rtype).expect("an answer in time")
}

/// One query over UDP with EDNS0 (4096 bytes, so answers of up to ~60 SRV records come
/// whole); `None` when nothing (well-formed) comes back within `QUERY_TIMEOUT`.
pub fn try_query(server: SocketAddr, name: &str, rtype: RecordType) -> Option<Message> {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind a client socket");
    socket
        .set_read_timeout(Some(QUERY_TIMEOUT))
        .expect("set a read timeout");
    let mut edns = Edns::new();
    edns.set_max_payload(4096);
    let mut message = Message::new();
    message
        .set_id(query_id())
        .set_message_type(MessageType::Query)
        .set_op_code(OpCode::Query)
        .set_recursion_desired(true)
        .set_edns(edns)
        .add_query(Query::query(
            Name::from_str(name).expect("a valid name"),
            rtype,
        ));
    let bytes = message.to_vec().expect("encode the query");
    socket.send_to(&bytes, server).expect("send the query");
    let mut buffer = [0u8; 4096];
    let Ok((n, _)) = socket.recv_from(&mut buffer) else {
        UNANSWERED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        return None;
    };
    Message::from_vec(&buffer[..n]).ok()
}

/// A query id that differs from one call to the next.
fn query_id() -> u16 {
    static NEXT: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// The ports of the SRV answer for `name` (none when the server does not answer).
pub fn srv_ports(server: SocketAddr, name: &str) -> BTreeSet<u16> {
    let Some(answer) = try_query(server, name, RecordType::SRV) else {
        return BTreeSet::new();
    };
    answer
        .answers()
        .iter()
        .filter_map(|record| match record.data() {
            RData::SRV(srv) => Some(srv.port()),
            _ => None,
        })
        .collect()
}

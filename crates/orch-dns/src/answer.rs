//! The answer to one DNS request from the current [`Zone`], as Mesos-DNS's resolver gives it
//! (pure: no I/O, no clock; the RNG is passed in).
//!
//! Behaviour (reference: Mesos-DNS `resolver/resolver.go`):
//! - Names under the zone's apex or the VIP apex are answered here with the AA bit; other
//!   names are [`Outcome::Forward`]ed. RA is always set (Mesos-DNS's `recurseon` default).
//! - A, AAAA, SRV, SOA, NS and ANY are answered; SOA and NS exist only at an apex (NS is the
//!   SOA's primary name server). SRV answers carry the first A and first AAAA of each target
//!   in the additional section; NS answers carry the name server's addresses.
//! - No record of the asked type: NOERROR with the SOA in the authority section when the name
//!   exists (NODATA), NXDOMAIN with the SOA otherwise. As in Mesos-DNS, SRV, SOA and NS
//!   questions are never NXDOMAIN (their empty answers are NOERROR).
//! - Queries are lowercased (hickory's `LowerQuery`) and `.*` is stripped (Mesos-DNS's
//!   `cleanWild`) before the lookup; answers carry the question's name.
//! - Answers are shuffled (Fisher-Yates) on every response.
//! - Size: 512 bytes over UDP, or the EDNS0 size the query advertises (between 512 and
//!   4096); 65535 over TCP. Too big: the additional section goes first; if it is still too
//!   big, answers are dropped from the end and TC is set over UDP. An OPT record is echoed
//!   when the query had one (version 0; a query with a higher version gets BADVERS).
//! - An opcode other than QUERY is NOTIMP; a count of questions other than one is FORMERR;
//!   a class other than IN or ANY, and zone transfers, are REFUSED.
//!
//! Hot path: one hash lookup per name (the question, plus each SRV target), no work
//! proportional to the zone; the encoded size is only computed when an upper bound of it
//! exceeds the limit.
//!
//! May depend on: hickory-proto, rand, [`super::zone`].

use super::zone::{RecordSet, Zone, VIP_APEX};
use hickory_proto::op::message::{emit_message_parts, EmitAndCount};
use hickory_proto::op::{
    Edns, Header, LowerQuery, Message, MessageType, OpCode, Query, ResponseCode,
};
use hickory_proto::rr::rdata::{A, AAAA, NS, SOA, SRV};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder};
use hickory_proto::ProtoError;
use rand::seq::SliceRandom;
use rand::Rng;

/// Largest UDP answer whatever the client advertises, as EDNS0 advertises it.
const MAX_UDP_PAYLOAD: u16 = 4096;

/// Largest UDP answer whatever the client advertises.
pub const MAX_UDP_SIZE: usize = MAX_UDP_PAYLOAD as usize;
/// UDP answer limit without EDNS0 (RFC 1035).
pub const MIN_UDP_SIZE: usize = 512;
/// TCP answer limit.
pub const MAX_TCP_SIZE: usize = 65_535;

/// How the request came in; decides the size limit and whether truncation sets TC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// Datagrams.
    Udp,
    /// A stream with 2-byte length framing.
    Tcp,
}

/// What [`answer`] reads from a request (all of it is in hickory-server's `MessageRequest`).
#[derive(Clone, Copy, Debug)]
pub struct Question<'a> {
    /// The request's header.
    pub header: &'a Header,
    /// The request's questions (normally one).
    pub queries: &'a [LowerQuery],
    /// The request's EDNS0 OPT, if it had one.
    pub edns: Option<&'a Edns>,
}

/// What to do with a request.
#[derive(Debug)]
pub enum Outcome {
    /// Send this response.
    Answer(Message),
    /// The name is outside the zone: forward the request to the resolvers.
    Forward,
}

/// The size limit of a response over `transport` to a request with `edns`.
pub fn max_size(transport: Transport, edns: Option<&Edns>) -> usize {
    match (transport, edns) {
        (Transport::Tcp, _) => MAX_TCP_SIZE,
        (Transport::Udp, None) => MIN_UDP_SIZE,
        (Transport::Udp, Some(edns)) => {
            usize::from(edns.max_payload()).clamp(MIN_UDP_SIZE, MAX_UDP_SIZE)
        }
    }
}

/// The response to `question` from `zone`, or [`Outcome::Forward`] for a name outside it.
pub fn answer(
    question: &Question<'_>,
    zone: &Zone,
    rng: &mut impl Rng,
    transport: Transport,
) -> Outcome {
    let header = question.header;
    if header.op_code() != OpCode::Query {
        return Outcome::Answer(error_reply(question, ResponseCode::NotImp));
    }
    let [query] = question.queries else {
        return Outcome::Answer(error_reply(question, ResponseCode::FormErr));
    };
    if question.edns.is_some_and(|edns| edns.version() > 0) {
        return Outcome::Answer(error_reply(question, ResponseCode::BADVERS));
    }
    let mut key = query.name().to_ascii();
    if key.contains(".*") {
        key = key.replace(".*", "");
    }
    let Some(apex) = apex_of(zone, &key) else {
        return Outcome::Forward;
    };
    if !matches!(query.query_class(), DNSClass::IN | DNSClass::ANY)
        || matches!(query.query_type(), RecordType::AXFR | RecordType::IXFR)
    {
        return Outcome::Answer(error_reply(question, ResponseCode::Refused));
    }

    let owner = Name::from(query.name().clone());
    let records = zone.lookup(&key);
    let at_apex = key == apex;
    let mut answers = Vec::new();
    let mut additionals = Vec::new();
    let qtype = query.query_type();
    let any = qtype == RecordType::ANY;
    if let Some(records) = records {
        if any || qtype == RecordType::A {
            push_a(records, &owner, zone.ttl, &mut answers);
        }
        if any || qtype == RecordType::AAAA {
            push_aaaa(records, &owner, zone.ttl, &mut answers);
        }
        if any || qtype == RecordType::SRV {
            push_srv(zone, records, &owner, &mut answers, &mut additionals);
        }
    }
    if at_apex && (any || qtype == RecordType::SOA) {
        answers.push(soa_record(zone, owner.clone()));
    }
    if at_apex && (any || qtype == RecordType::NS) {
        push_ns(zone, &owner, &mut answers, &mut additionals);
    }

    let mut response = reply_to(question);
    response.set_authoritative(true);
    if answers.is_empty() {
        let exists = records.is_some() || at_apex;
        let never_nx = matches!(qtype, RecordType::SRV | RecordType::SOA | RecordType::NS);
        if !exists && !never_nx {
            response.set_response_code(ResponseCode::NXDomain);
        }
        let apex_name = Name::from_ascii(apex).unwrap_or_else(|_| owner.clone());
        response.add_name_server(soa_record(zone, apex_name));
    } else {
        answers.shuffle(rng);
    }
    response.insert_answers(answers);
    response.insert_additionals(additionals);
    fit(&mut response, max_size(transport, question.edns), transport);
    Outcome::Answer(response)
}

/// Makes a resolver's `reply` to a forwarded `question` fit the client's transport, as
/// [`answer`] does for its own responses (Mesos-DNS truncates forwarded replies too); its
/// OPT, if any, advertises this server's size.
pub fn fit_reply(reply: &mut Message, question: &Question<'_>, transport: Transport) {
    if let Some(edns) = reply.extensions_mut() {
        edns.set_max_payload(MAX_UDP_PAYLOAD);
    }
    fit(reply, max_size(transport, question.edns), transport);
}

/// A response to `question` with no records and `code` (the OPT echoed if the request had
/// one). Also used for forwarding failures (SERVFAIL, REFUSED).
pub fn error_reply(question: &Question<'_>, code: ResponseCode) -> Message {
    let mut response = reply_to(question);
    response.set_response_code(code);
    response
}

/// An empty response to `question`: id, opcode, RD and CD copied, RA set, the questions
/// echoed, and an OPT when the request had one.
fn reply_to(question: &Question<'_>) -> Message {
    let mut header = Header::response_from_request(question.header);
    header.set_message_type(MessageType::Response);
    header.set_recursion_available(true);
    let mut response = Message::new();
    response.set_header(header);
    for query in question.queries {
        response.add_query(query.original().clone());
    }
    if question.edns.is_some() {
        // The OPT advertises what this server accepts, which is also the most it sends
        // (hickory-server's UDP sender caps a response at the size its OPT advertises).
        let mut edns = Edns::new();
        edns.set_max_payload(MAX_UDP_PAYLOAD);
        edns.set_version(0);
        response.set_edns(edns);
    }
    response
}

/// The apex (`zone.apex` or [`VIP_APEX`]) `name` falls under, without allocating.
fn apex_of<'z>(zone: &'z Zone, name: &str) -> Option<&'z str> {
    [zone.apex.as_str(), VIP_APEX].into_iter().find(|apex| {
        name == *apex
            || (name.len() > apex.len()
                && name.ends_with(apex)
                && name.as_bytes()[name.len() - apex.len() - 1] == b'.')
    })
}

fn push_a(records: &RecordSet, owner: &Name, ttl: u32, out: &mut Vec<Record>) {
    for ip in &records.a {
        out.push(Record::from_rdata(owner.clone(), ttl, RData::A(A(*ip))));
    }
}

fn push_aaaa(records: &RecordSet, owner: &Name, ttl: u32, out: &mut Vec<Record>) {
    for ip in &records.aaaa {
        out.push(Record::from_rdata(
            owner.clone(),
            ttl,
            RData::AAAA(AAAA(*ip)),
        ));
    }
}

/// The SRV records of `records`, and the first A and first AAAA of each distinct target.
fn push_srv(
    zone: &Zone,
    records: &RecordSet,
    owner: &Name,
    answers: &mut Vec<Record>,
    additionals: &mut Vec<Record>,
) {
    let mut seen: Vec<&str> = Vec::new();
    for srv in &records.srv {
        let Ok(target) = Name::from_ascii(&srv.target) else {
            continue;
        };
        answers.push(Record::from_rdata(
            owner.clone(),
            zone.ttl,
            RData::SRV(SRV::new(srv.priority, srv.weight, srv.port, target.clone())),
        ));
        if seen.contains(&srv.target.as_str()) {
            continue;
        }
        seen.push(&srv.target);
        if let Some(host) = zone.lookup(&srv.target) {
            if let Some(ip) = host.a.first() {
                additionals.push(Record::from_rdata(
                    target.clone(),
                    zone.ttl,
                    RData::A(A(*ip)),
                ));
            }
            if let Some(ip) = host.aaaa.first() {
                additionals.push(Record::from_rdata(target, zone.ttl, RData::AAAA(AAAA(*ip))));
            }
        }
    }
}

/// The NS record of an apex and the name server's addresses.
fn push_ns(zone: &Zone, owner: &Name, answers: &mut Vec<Record>, additionals: &mut Vec<Record>) {
    let Ok(ns) = Name::from_ascii(&zone.soa.mname) else {
        return;
    };
    answers.push(Record::from_rdata(
        owner.clone(),
        zone.ttl,
        RData::NS(NS(ns.clone())),
    ));
    if let Some(host) = zone.lookup(&zone.soa.mname) {
        push_a(host, &ns, zone.ttl, additionals);
        push_aaaa(host, &ns, zone.ttl, additionals);
    }
}

/// The SOA of the zone, owned by `apex` (the domain or the VIP apex).
fn soa_record(zone: &Zone, apex: Name) -> Record {
    let soa = &zone.soa;
    let name = |text: &str| Name::from_ascii(text).unwrap_or_else(|_| Name::root());
    let seconds = |value: u32| i32::try_from(value).unwrap_or(i32::MAX);
    Record::from_rdata(
        apex,
        zone.ttl,
        RData::SOA(SOA::new(
            name(&soa.mname),
            name(&soa.rname),
            soa.serial,
            seconds(soa.refresh),
            seconds(soa.retry),
            seconds(soa.expire),
            soa.minimum,
        )),
    )
}

/// An upper bound of the encoded size of `name` (no compression).
fn name_bound(name: &Name) -> usize {
    name.len() + 1
}

/// An upper bound of the encoded size of `record`.
fn record_bound(record: &Record) -> usize {
    let data = match record.data() {
        RData::A(_) => 4,
        RData::AAAA(_) => 16,
        RData::SRV(srv) => 6 + name_bound(srv.target()),
        RData::NS(ns) => name_bound(&ns.0),
        RData::SOA(soa) => 20 + name_bound(soa.mname()) + name_bound(soa.rname()),
        _ => MAX_TCP_SIZE,
    };
    name_bound(record.name()) + 10 + data
}

/// An upper bound of the encoded size of `message`.
fn message_bound(message: &Message) -> usize {
    let questions: usize = message
        .queries()
        .iter()
        .map(|query| name_bound(query.name()) + 4)
        .sum();
    let records: usize = message.all_sections().map(record_bound).sum();
    let opt = if message.extensions().is_some() {
        11
    } else {
        0
    };
    12 + questions + records + opt
}

/// The questions emitted the way hickory-server emits them: the request's bytes, which
/// later names cannot point into, so answers repeat the question's name once in full.
struct RawQueries<'a>(&'a [Query]);

impl EmitAndCount for RawQueries<'_> {
    fn emit(&mut self, encoder: &mut BinEncoder<'_>) -> Result<usize, ProtoError> {
        for query in self.0 {
            encoder.emit_vec(&query.to_bytes()?)?;
        }
        Ok(self.0.len())
    }
}

/// The header (with the counts written and TC when records were left out) and size of
/// `message` encoded as hickory-server will send it, in at most `limit` bytes; `None` when
/// it cannot be encoded at all.
fn encode(message: &Message, limit: usize) -> Option<(Header, usize)> {
    let mut buffer = Vec::with_capacity(limit.min(MAX_UDP_SIZE));
    let mut encoder = BinEncoder::new(&mut buffer);
    encoder.set_max_size(u16::try_from(limit).unwrap_or(u16::MAX));
    // TC in the result then means "left records out".
    let mut header = *message.header();
    header.set_truncated(false);
    let header = emit_message_parts(
        &header,
        &mut RawQueries(message.queries()),
        &mut message.answers().iter(),
        &mut message.name_servers().iter(),
        &mut message.additionals().iter(),
        message.extensions().as_ref(),
        &[],
        &mut encoder,
    )
    .ok()?;
    let len = encoder.offset();
    Some((header, len))
}

/// The encoded size of `message` as hickory-server will send it, if it fits `limit`.
fn encoded_len(message: &Message, limit: usize) -> Option<usize> {
    encode(message, limit)
        .filter(|(header, _)| !header.truncated())
        .map(|(_, len)| len)
}

/// Makes `message` fit `limit` bytes: drop the additional section, then answers from the
/// end (setting TC over UDP).
fn fit(message: &mut Message, limit: usize, transport: Transport) {
    if message_bound(message) <= limit || encoded_len(message, limit).is_some() {
        return;
    }
    message.additionals_mut().clear();
    if encoded_len(message, limit).is_some() {
        return;
    }
    // How many answers fit, leaving room for the OPT record: hickory's encoder stops at
    // the first record that would cross its limit and reports how many it wrote.
    let opt = if message.extensions().is_some() {
        11
    } else {
        0
    };
    let edns = message.extensions_mut().take();
    message.name_servers_mut().clear();
    let fitting = encode(message, limit - opt)
        .map(|(header, _)| usize::from(header.answer_count()))
        .unwrap_or(0);
    message.answers_mut().truncate(fitting);
    *message.extensions_mut() = edns;
    if transport == Transport::Udp {
        message.set_truncated(true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zone::{Soa, Srv};
    use rand::rngs::StdRng;
    use rand::SeedableRng;
    use std::collections::{HashMap, HashSet};
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn soa() -> Soa {
        Soa {
            mname: "ns1.mesos.".into(),
            rname: "root.ns1.mesos.".into(),
            serial: 42,
            refresh: 60,
            retry: 600,
            expire: 86_400,
            minimum: 5,
        }
    }

    fn v4(last: u8) -> Ipv4Addr {
        Ipv4Addr::new(10, 0, 0, last)
    }

    /// web (2 A, 1 AAAA), its SRV to two task names, ns1, a VIP name, a name with 100 A.
    fn zone() -> Zone {
        let mut names = HashMap::new();
        names.insert(
            "web.marathon.mesos.".to_owned(),
            RecordSet {
                a: vec![v4(1), v4(2)],
                aaaa: vec![Ipv6Addr::LOCALHOST],
                srv: vec![],
            },
        );
        names.insert(
            "web-abcde-s1.marathon.slave.mesos.".to_owned(),
            RecordSet {
                a: vec![v4(11), v4(12)],
                aaaa: vec!["fd00::11".parse().expect("v6")],
                srv: vec![],
            },
        );
        names.insert(
            "web-fghij-s2.marathon.slave.mesos.".to_owned(),
            RecordSet {
                a: vec![v4(21)],
                ..RecordSet::default()
            },
        );
        let srv = |target: &str, port| Srv {
            target: target.to_owned(),
            port,
            priority: 0,
            weight: 1,
        };
        names.insert(
            "_web._tcp.marathon.mesos.".to_owned(),
            RecordSet {
                srv: vec![
                    srv("web-abcde-s1.marathon.slave.mesos.", 31000),
                    srv("web-abcde-s1.marathon.slave.mesos.", 31001),
                    srv("web-fghij-s2.marathon.slave.mesos.", 31002),
                ],
                ..RecordSet::default()
            },
        );
        names.insert(
            "ns1.mesos.".to_owned(),
            RecordSet {
                a: vec![v4(53)],
                ..RecordSet::default()
            },
        );
        names.insert(
            "web.marathon.l4lb.thisdcos.directory.".to_owned(),
            RecordSet {
                a: vec![v4(99)],
                ..RecordSet::default()
            },
        );
        names.insert(
            "big.marathon.mesos.".to_owned(),
            RecordSet {
                a: (0..100u8).map(|i| Ipv4Addr::new(10, 1, 0, i)).collect(),
                ..RecordSet::default()
            },
        );
        Zone {
            apex: "mesos.".into(),
            ttl: 5,
            soa: soa(),
            names,
            frameworks: Vec::new(),
        }
    }

    struct Ask {
        header: Header,
        queries: Vec<LowerQuery>,
        edns: Option<Edns>,
    }

    impl Ask {
        fn new(name: &str, qtype: RecordType) -> Self {
            let name = Name::from_ascii(name).expect("name");
            let mut header = Header::new();
            header.set_id(4321).set_recursion_desired(true);
            Self {
                header,
                queries: vec![LowerQuery::query(Query::query(name, qtype))],
                edns: None,
            }
        }

        fn edns(mut self, size: u16) -> Self {
            let mut edns = Edns::new();
            edns.set_max_payload(size);
            self.edns = Some(edns);
            self
        }

        fn question(&self) -> Question<'_> {
            Question {
                header: &self.header,
                queries: &self.queries,
                edns: self.edns.as_ref(),
            }
        }

        fn run_with(&self, rng: &mut StdRng, transport: Transport) -> Outcome {
            answer(&self.question(), &zone(), rng, transport)
        }

        fn over(&self, transport: Transport) -> Message {
            match self.run_with(&mut StdRng::seed_from_u64(7), transport) {
                Outcome::Answer(message) => message,
                Outcome::Forward => panic!("expected an answer, got Forward"),
            }
        }

        fn run(&self) -> Message {
            self.over(Transport::Udp)
        }
    }

    fn a_values(records: &[Record]) -> Vec<Ipv4Addr> {
        let mut out: Vec<_> = records
            .iter()
            .filter_map(|r| match r.data() {
                RData::A(a) => Some(a.0),
                _ => None,
            })
            .collect();
        out.sort();
        out
    }

    fn assert_soa_authority(message: &Message, apex: &str) {
        let [record] = message.name_servers() else {
            panic!("one authority record expected: {message}");
        };
        assert_eq!(record.name().to_ascii(), apex);
        let RData::SOA(soa) = record.data() else {
            panic!("SOA expected: {record}");
        };
        assert_eq!(soa.mname().to_ascii(), "ns1.mesos.");
        assert_eq!(soa.rname().to_ascii(), "root.ns1.mesos.");
        assert_eq!(soa.serial(), 42);
        assert_eq!(soa.minimum(), 5);
    }

    #[test]
    fn a_records_are_authoritative_with_ra_and_the_request_id() {
        let message = Ask::new("web.marathon.mesos.", RecordType::A).run();
        assert_eq!(message.response_code(), ResponseCode::NoError);
        assert_eq!(message.message_type(), MessageType::Response);
        assert!(message.authoritative());
        assert!(message.recursion_available());
        assert!(message.recursion_desired());
        assert!(!message.truncated());
        assert_eq!(message.id(), 4321);
        assert_eq!(a_values(message.answers()), vec![v4(1), v4(2)]);
        assert!(message.answers().iter().all(|r| r.ttl() == 5));
        assert!(message.name_servers().is_empty());
        assert_eq!(message.queries().len(), 1);
        assert!(message.extensions().is_none());
    }

    #[test]
    fn queries_are_lowercased_and_answered_with_the_question_name() {
        let message = Ask::new("WeB.Marathon.MESOS.", RecordType::A).run();
        assert_eq!(a_values(message.answers()), vec![v4(1), v4(2)]);
        assert!(message
            .answers()
            .iter()
            .all(|r| r.name().to_ascii() == "web.marathon.mesos."));
    }

    #[test]
    fn wildcard_labels_are_stripped_like_clean_wild() {
        let message = Ask::new("web.*.marathon.mesos.", RecordType::A).run();
        assert_eq!(a_values(message.answers()), vec![v4(1), v4(2)]);
    }

    #[test]
    fn aaaa_records() {
        let message = Ask::new("web.marathon.mesos.", RecordType::AAAA).run();
        let values: Vec<_> = message
            .answers()
            .iter()
            .map(|r| match r.data() {
                RData::AAAA(aaaa) => aaaa.0,
                other => panic!("AAAA expected, got {other}"),
            })
            .collect();
        assert_eq!(values, vec![Ipv6Addr::LOCALHOST]);
    }

    #[test]
    fn srv_records_carry_first_a_and_aaaa_of_each_target_once() {
        let message = Ask::new("_web._tcp.marathon.mesos.", RecordType::SRV).run();
        assert_eq!(message.response_code(), ResponseCode::NoError);
        let mut ports: Vec<_> = message
            .answers()
            .iter()
            .map(|r| match r.data() {
                RData::SRV(srv) => {
                    assert_eq!(srv.priority(), 0);
                    assert_eq!(srv.weight(), 1);
                    srv.port()
                }
                other => panic!("SRV expected, got {other}"),
            })
            .collect();
        ports.sort();
        assert_eq!(ports, vec![31000, 31001, 31002]);
        let extra: Vec<_> = message
            .additionals()
            .iter()
            .map(|r| (r.name().to_ascii(), r.record_type(), r.data().to_string()))
            .collect();
        assert_eq!(
            extra,
            vec![
                (
                    "web-abcde-s1.marathon.slave.mesos.".to_owned(),
                    RecordType::A,
                    "10.0.0.11".to_owned()
                ),
                (
                    "web-abcde-s1.marathon.slave.mesos.".to_owned(),
                    RecordType::AAAA,
                    "fd00::11".to_owned()
                ),
                (
                    "web-fghij-s2.marathon.slave.mesos.".to_owned(),
                    RecordType::A,
                    "10.0.0.21".to_owned()
                ),
            ]
        );
    }

    #[test]
    fn soa_and_ns_at_the_apex() {
        let message = Ask::new("mesos.", RecordType::SOA).run();
        assert!(message.authoritative());
        let [record] = message.answers() else {
            panic!("one SOA expected: {message}");
        };
        assert_eq!(record.name().to_ascii(), "mesos.");
        let RData::SOA(soa) = record.data() else {
            panic!("SOA expected");
        };
        assert_eq!(soa.serial(), 42);
        assert_eq!(soa.refresh(), 60);
        assert_eq!(soa.retry(), 600);
        assert_eq!(soa.expire(), 86_400);

        let message = Ask::new("mesos.", RecordType::NS).run();
        let [record] = message.answers() else {
            panic!("one NS expected: {message}");
        };
        assert_eq!(record.data().to_string(), "ns1.mesos.");
        assert_eq!(a_values(message.additionals()), vec![v4(53)]);
    }

    #[test]
    fn the_vip_apex_is_authoritative_with_its_own_soa_name() {
        let message = Ask::new("l4lb.thisdcos.directory.", RecordType::SOA).run();
        assert!(message.authoritative());
        let [record] = message.answers() else {
            panic!("one SOA expected: {message}");
        };
        assert_eq!(record.name().to_ascii(), "l4lb.thisdcos.directory.");

        let message = Ask::new("web.marathon.l4lb.thisdcos.directory.", RecordType::A).run();
        assert!(message.authoritative());
        assert_eq!(a_values(message.answers()), vec![v4(99)]);

        let message = Ask::new("nope.marathon.l4lb.thisdcos.directory.", RecordType::A).run();
        assert_eq!(message.response_code(), ResponseCode::NXDomain);
        assert_soa_authority(&message, "l4lb.thisdcos.directory.");
    }

    #[test]
    fn unknown_name_is_nxdomain_with_the_soa() {
        let message = Ask::new("nope.marathon.mesos.", RecordType::A).run();
        assert_eq!(message.response_code(), ResponseCode::NXDomain);
        assert!(message.authoritative());
        assert!(message.answers().is_empty());
        assert_soa_authority(&message, "mesos.");
        let message = Ask::new("nope.marathon.mesos.", RecordType::ANY).run();
        assert_eq!(message.response_code(), ResponseCode::NXDomain);
    }

    #[test]
    fn existing_name_without_the_type_is_nodata_with_the_soa() {
        let message = Ask::new("web-fghij-s2.marathon.slave.mesos.", RecordType::AAAA).run();
        assert_eq!(message.response_code(), ResponseCode::NoError);
        assert!(message.answers().is_empty());
        assert_soa_authority(&message, "mesos.");
        // Types Mesos-DNS does not serve are NODATA too.
        let message = Ask::new("web.marathon.mesos.", RecordType::TXT).run();
        assert_eq!(message.response_code(), ResponseCode::NoError);
        assert_soa_authority(&message, "mesos.");
        // SOA and NS below the apex.
        let message = Ask::new("web.marathon.mesos.", RecordType::SOA).run();
        assert_eq!(message.response_code(), ResponseCode::NoError);
        assert!(message.answers().is_empty());
        // The apex exists.
        let message = Ask::new("mesos.", RecordType::A).run();
        assert_eq!(message.response_code(), ResponseCode::NoError);
        assert_soa_authority(&message, "mesos.");
    }

    #[test]
    fn empty_srv_soa_ns_are_noerror_even_for_unknown_names() {
        for qtype in [RecordType::SRV, RecordType::SOA, RecordType::NS] {
            let message = Ask::new("_nope._tcp.marathon.mesos.", qtype).run();
            assert_eq!(message.response_code(), ResponseCode::NoError, "{qtype}");
            assert!(message.answers().is_empty());
            assert_soa_authority(&message, "mesos.");
        }
    }

    #[test]
    fn any_gives_every_type_of_the_name() {
        let message = Ask::new("web.marathon.mesos.", RecordType::ANY).run();
        let mut types: Vec<_> = message.answers().iter().map(|r| r.record_type()).collect();
        types.sort();
        assert_eq!(types, vec![RecordType::A, RecordType::A, RecordType::AAAA]);
        let message = Ask::new("mesos.", RecordType::ANY).run();
        let mut types: Vec<_> = message.answers().iter().map(|r| r.record_type()).collect();
        types.sort();
        assert_eq!(types, vec![RecordType::NS, RecordType::SOA]);
    }

    #[test]
    fn names_outside_the_zone_are_forwarded() {
        for name in ["example.com.", "mesos.example.com.", "xmesos.", "."] {
            let outcome = Ask::new(name, RecordType::A)
                .run_with(&mut StdRng::seed_from_u64(1), Transport::Udp);
            assert!(matches!(outcome, Outcome::Forward), "{name}");
        }
    }

    #[test]
    fn answers_are_shuffled_on_every_response() {
        let ask = Ask::new("big.marathon.mesos.", RecordType::A);
        let mut rng = StdRng::seed_from_u64(99);
        let mut orders = HashSet::new();
        let mut firsts = HashSet::new();
        for _ in 0..200 {
            let Outcome::Answer(message) = ask.run_with(&mut rng, Transport::Tcp) else {
                panic!("answer expected");
            };
            assert_eq!(message.answers().len(), 100);
            let order: Vec<String> = message
                .answers()
                .iter()
                .map(|r| r.data().to_string())
                .collect();
            firsts.insert(order[0].clone());
            orders.insert(order);
        }
        assert!(orders.len() > 190, "only {} orders", orders.len());
        assert!(firsts.len() > 50, "only {} first answers", firsts.len());
    }

    fn encoded(message: &Message) -> Vec<u8> {
        message.to_vec().expect("encodable")
    }

    /// The size hickory-server will send `message` with.
    fn wire_len(message: &Message) -> usize {
        encoded_len(message, MAX_TCP_SIZE).expect("encodable")
    }

    #[test]
    fn udp_without_edns_is_truncated_to_512_with_tc() {
        let message = Ask::new("big.marathon.mesos.", RecordType::A).run();
        assert!(message.truncated());
        let count = message.answers().len();
        assert!((20..100).contains(&count), "{count} answers");
        assert!(wire_len(&message) <= 512);
        // It is as full as it can be: one more answer would not fit.
        let mut more = message.clone();
        more.add_answer(message.answers()[0].clone());
        assert!(wire_len(&more) > 512);
    }

    #[test]
    fn edns_size_is_honoured_and_echoed() {
        let message = Ask::new("big.marathon.mesos.", RecordType::A)
            .edns(1232)
            .run();
        assert!(message.truncated());
        let len = wire_len(&message);
        // As full as it can be: one more answer would not fit.
        assert!(len <= 1232 && len > 1232 - 16, "{len} bytes");
        // The OPT is echoed with this server's own size.
        assert_eq!(
            message.extensions().as_ref().map(Edns::max_payload),
            Some(4096)
        );

        let message = Ask::new("big.marathon.mesos.", RecordType::A)
            .edns(4096)
            .run();
        assert!(!message.truncated());
        assert_eq!(message.answers().len(), 100);
        assert!(message.extensions().is_some());

        // Below 512 counts as 512; above 4096 as 4096.
        let small = Ask::new("big.marathon.mesos.", RecordType::A)
            .edns(100)
            .run();
        assert!(wire_len(&small) <= 512 && wire_len(&small) > 400);
        let huge = Ask::new("big.marathon.mesos.", RecordType::A)
            .edns(65_000)
            .run();
        assert_eq!(
            huge.extensions().as_ref().map(Edns::max_payload),
            Some(4096)
        );

        // Small answers echo the OPT too.
        let message = Ask::new("web.marathon.mesos.", RecordType::A)
            .edns(1232)
            .run();
        assert!(message.extensions().is_some());
        assert!(!message.truncated());
    }

    #[test]
    fn tcp_is_not_truncated_at_512() {
        let message = Ask::new("big.marathon.mesos.", RecordType::A).over(Transport::Tcp);
        assert!(!message.truncated());
        assert_eq!(message.answers().len(), 100);
    }

    #[test]
    fn additionals_go_before_answers_and_without_tc() {
        // 8 SRV targets, each with an A: the answers fit 512 bytes, their glue does not.
        let mut zone = zone();
        let mut srvs = Vec::new();
        for i in 0..8u8 {
            let target = format!("t{i}.marathon.slave.mesos.");
            zone.names.insert(
                target.clone(),
                RecordSet {
                    a: vec![v4(i)],
                    ..RecordSet::default()
                },
            );
            srvs.push(Srv {
                target,
                port: 1000 + u16::from(i),
                priority: 0,
                weight: 1,
            });
        }
        zone.names.insert(
            "_many._tcp.marathon.mesos.".into(),
            RecordSet {
                srv: srvs,
                ..RecordSet::default()
            },
        );
        let ask = Ask::new("_many._tcp.marathon.mesos.", RecordType::SRV);
        let Outcome::Answer(message) = answer(
            &ask.question(),
            &zone,
            &mut StdRng::seed_from_u64(3),
            Transport::Udp,
        ) else {
            panic!("answer expected");
        };
        assert_eq!(message.answers().len(), 8);
        assert!(message.additionals().is_empty());
        assert!(!message.truncated());
        assert!(wire_len(&message) <= 512);
    }

    #[test]
    fn forwarded_replies_fit_the_clients_transport() {
        let ask = Ask::new("big.example.com.", RecordType::A);
        let mut reply = Message::new();
        reply.set_header(Header::response_from_request(&ask.header));
        reply.add_query(ask.queries[0].original().clone());
        let owner = Name::from_ascii("big.example.com.").expect("name");
        for i in 0..100u8 {
            reply.add_answer(Record::from_rdata(
                owner.clone(),
                60,
                RData::A(A(Ipv4Addr::new(10, 2, 0, i))),
            ));
        }
        let mut over_tcp = reply.clone();
        fit_reply(&mut over_tcp, &ask.question(), Transport::Tcp);
        assert_eq!(over_tcp.answers().len(), 100);
        assert!(!over_tcp.truncated());
        fit_reply(&mut reply, &ask.question(), Transport::Udp);
        assert!(reply.truncated());
        assert!(wire_len(&reply) <= 512);
        assert!(reply.answers().len() > 20);
    }

    #[test]
    fn other_opcodes_are_notimp() {
        let mut ask = Ask::new("web.marathon.mesos.", RecordType::A);
        ask.header.set_op_code(OpCode::Update);
        let message = ask.run();
        assert_eq!(message.response_code(), ResponseCode::NotImp);
        assert!(message.answers().is_empty());
        assert_eq!(message.id(), 4321);
    }

    #[test]
    fn zero_or_several_questions_are_formerr() {
        let mut ask = Ask::new("web.marathon.mesos.", RecordType::A);
        ask.queries.clear();
        assert_eq!(ask.run().response_code(), ResponseCode::FormErr);
        let mut ask = Ask::new("web.marathon.mesos.", RecordType::A);
        ask.queries.push(ask.queries[0].clone());
        let message = ask.run();
        assert_eq!(message.response_code(), ResponseCode::FormErr);
        assert!(message.answers().is_empty());
    }

    #[test]
    fn higher_edns_versions_are_badvers() {
        let mut ask = Ask::new("web.marathon.mesos.", RecordType::A).edns(1232);
        if let Some(edns) = ask.edns.as_mut() {
            edns.set_version(1);
        }
        let message = ask.run();
        assert_eq!(message.response_code(), ResponseCode::BADVERS);
        // The high bits of BADVERS (16, which hickory decodes as its twin BADSIG) travel in
        // the OPT record.
        let decoded = Message::from_vec(&encoded(&message)).expect("decodable");
        assert_eq!(u16::from(decoded.response_code()), 16);
    }

    #[test]
    fn other_classes_and_transfers_are_refused() {
        let mut ask = Ask::new("web.marathon.mesos.", RecordType::A);
        let mut query = ask.queries[0].original().clone();
        query.set_query_class(DNSClass::CH);
        ask.queries = vec![LowerQuery::query(query)];
        assert_eq!(ask.run().response_code(), ResponseCode::Refused);
        let message = Ask::new("mesos.", RecordType::AXFR).run();
        assert_eq!(message.response_code(), ResponseCode::Refused);
    }

    #[test]
    fn every_response_encodes_and_decodes() {
        let names = [
            "web.marathon.mesos.",
            "_web._tcp.marathon.mesos.",
            "mesos.",
            "big.marathon.mesos.",
            "nope.mesos.",
            "l4lb.thisdcos.directory.",
        ];
        let types = [
            RecordType::A,
            RecordType::AAAA,
            RecordType::SRV,
            RecordType::SOA,
            RecordType::NS,
            RecordType::ANY,
            RecordType::MX,
        ];
        for name in names {
            for qtype in types {
                for transport in [Transport::Udp, Transport::Tcp] {
                    let message = Ask::new(name, qtype).over(transport);
                    let bytes = encoded(&message);
                    let limit = if transport == Transport::Udp {
                        512
                    } else {
                        65_535
                    };
                    assert!(bytes.len() <= limit, "{name} {qtype}");
                    let decoded = Message::from_vec(&bytes).expect("decodable");
                    assert_eq!(decoded.answers().len(), message.answers().len());
                    assert_eq!(decoded.response_code(), message.response_code());
                }
            }
        }
    }
}

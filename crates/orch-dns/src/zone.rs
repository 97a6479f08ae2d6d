//! The record set one snapshot yields: what the DNS server answers from and what the HTTP API
//! shows. Built by [`super::records`], never changed afterwards (a new snapshot makes a new
//! zone).
//!
//! Names are lowercase, fully qualified, with the trailing dot (`web.marathon.mesos.`).
//!
//! May depend on: std only.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// TTL, SOA and naming settings of the zone (Mesos-DNS's config keys in brackets).
#[derive(Clone, Debug, PartialEq)]
pub struct ZoneConfig {
    /// The domain, lowercase, without trailing dot (`domain`, default `mesos`).
    pub domain: String,
    /// TTL of every record, seconds (`ttl`; orch's default is 5 because updates are pushed).
    pub ttl: u32,
    /// Primary name server host, lowercase FQDN with trailing dot (`SOAMname`, `ns1.<domain>.`).
    pub soa_mname: String,
    /// Admin mailbox, FQDN with trailing dot (`SOARname`, `root.ns1.<domain>.`).
    pub soa_rname: String,
    /// `SOARefresh` (60).
    pub soa_refresh: u32,
    /// `SOARetry` (600).
    pub soa_retry: u32,
    /// `SOAExpire` (86400).
    pub soa_expire: u32,
    /// SRV weight (`srvRecordDefaultWeight`, 1).
    pub srv_weight: u16,
    /// Addresses of this DNS server: the A/AAAA records of `soa_mname`.
    pub ns_addresses: Vec<IpAddr>,
    /// Where VIP names (`<name>.marathon.l4lb.thisdcos.directory`) point: the load balancer.
    pub vip_addresses: Vec<IpAddr>,
    /// Only tasks whose health checks all pass (tasks of apps without checks always count).
    pub healthy_only: bool,
}

impl ZoneConfig {
    /// Mesos-DNS's defaults for `domain`, with a TTL of `ttl` seconds.
    pub fn new(domain: &str, ttl: u32) -> Self {
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        Self {
            soa_mname: format!("ns1.{domain}."),
            soa_rname: format!("root.ns1.{domain}."),
            domain,
            ttl,
            soa_refresh: 60,
            soa_retry: 600,
            soa_expire: 86_400,
            srv_weight: 1,
            ns_addresses: Vec::new(),
            vip_addresses: Vec::new(),
            healthy_only: false,
        }
    }
}

/// The zone apex of VIP names (dcos-net's layer-4 load balancer domain).
pub const VIP_APEX: &str = "l4lb.thisdcos.directory.";

/// SOA fields of a zone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Soa {
    /// Primary name server (FQDN with trailing dot).
    pub mname: String,
    /// Admin mailbox (FQDN with trailing dot).
    pub rname: String,
    /// Serial: the Raft index of the snapshot (it only grows).
    pub serial: u32,
    /// Refresh, seconds.
    pub refresh: u32,
    /// Retry, seconds.
    pub retry: u32,
    /// Expire, seconds.
    pub expire: u32,
    /// Minimum (negative-answer TTL): Mesos-DNS puts the record TTL here.
    pub minimum: u32,
}

/// One SRV value.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Srv {
    /// Target host (FQDN with trailing dot).
    pub target: String,
    /// Port.
    pub port: u16,
    /// Priority (0).
    pub priority: u16,
    /// Weight ([`ZoneConfig::srv_weight`]).
    pub weight: u16,
}

/// Every record of one name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecordSet {
    /// A values, without duplicates.
    pub a: Vec<Ipv4Addr>,
    /// AAAA values, without duplicates.
    pub aaaa: Vec<Ipv6Addr>,
    /// SRV values, without duplicates.
    pub srv: Vec<Srv>,
}

/// A record as `/v1/enumerate` lists it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct EnumeratedRecord {
    /// The name (FQDN with trailing dot).
    pub name: String,
    /// The value: an IP, or `target:port` for SRV.
    pub host: String,
    /// `A`, `AAAA` or `SRV`.
    pub rtype: &'static str,
}

/// A task and its records, for `/v1/enumerate`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct EnumeratedTask {
    /// Its DNS task name (`web-prod`).
    pub name: String,
    /// Its task id.
    pub id: String,
    /// Every record it contributes.
    pub records: Vec<EnumeratedRecord>,
}

/// A framework and its tasks, for `/v1/enumerate` (orch has one: `marathon`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct EnumeratedFramework {
    /// `marathon`.
    pub name: String,
    /// Its tasks with records.
    pub tasks: Vec<EnumeratedTask>,
}

/// The whole record set of one snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Zone {
    /// The domain apex, lowercase FQDN (`mesos.`).
    pub apex: String,
    /// TTL of every record, seconds.
    pub ttl: u32,
    /// SOA of the domain (also used for the VIP apex).
    pub soa: Soa,
    /// Records by name (lowercase FQDN with trailing dot). Holds the NS host's A records;
    /// the apex's SOA and NS come from [`Zone::soa`].
    pub names: HashMap<String, RecordSet>,
    /// Per-task records for `/v1/enumerate`.
    pub frameworks: Vec<EnumeratedFramework>,
}

impl Zone {
    /// The apex (`mesos.` or [`VIP_APEX`]) this zone is authoritative for that `name`
    /// (lowercase FQDN) falls under, if any.
    pub fn apex_of<'a>(&'a self, name: &str) -> Option<&'a str> {
        [self.apex.as_str(), VIP_APEX]
            .into_iter()
            .find(|apex| name == *apex || name.ends_with(&format!(".{apex}")))
    }

    /// The records of `name` (lowercase FQDN with trailing dot).
    pub fn lookup(&self, name: &str) -> Option<&RecordSet> {
        self.names.get(name)
    }
}

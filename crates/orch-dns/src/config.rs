//! The whole configuration of one DNS server (`orch dns` or an embedded one), how it maps
//! onto the zone's settings, and how `/v1/config` shows it with Mesos-DNS's Go field names.
//! Also the module's one error type, [`DnsError`].
//!
//! May depend on: std, serde_json, hickory-proto (error sources), ipnet, [`super::zone`],
//! [`super::allow`].

use super::allow::default_forward_allow;
use super::zone::ZoneConfig;
use ipnet::IpNet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

/// Why a DNS server or one of its requests failed.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    /// A resolver is neither `IP` nor `IP:PORT`.
    #[error("resolver '{value}' is not IP or IP:PORT")]
    BadResolver {
        /// The rejected text.
        value: String,
    },
    /// A client network is neither `IP/PREFIX` nor `IP`.
    #[error("network '{value}' is not IP/PREFIX or IP")]
    BadNetwork {
        /// The rejected text.
        value: String,
    },
    /// Forwarding is off (`external_on` false) or no resolver is configured: the answer is
    /// REFUSED, as Mesos-DNS's.
    #[error("no resolver to forward to")]
    NoResolvers,
    /// The client is in none of the networks forwarding is allowed for: REFUSED.
    #[error("forwarding is not allowed for client {client}")]
    ClientNotAllowed {
        /// The client's address.
        client: IpAddr,
    },
    /// As many forwards as allowed are in flight already: SERVFAIL at once.
    #[error("{limit} forwarded queries are in flight already")]
    TooManyForwards {
        /// The cap.
        limit: usize,
    },
    /// Every resolver failed (error, unusable reply) before the timeout: SERVFAIL.
    #[error("every resolver failed")]
    ResolversFailed,
    /// No resolver answered within the forward timeout: SERVFAIL.
    #[error("no resolver answered within {timeout:?}")]
    ForwardTimeout {
        /// The configured forward timeout.
        timeout: Duration,
    },
    /// One exchange with one resolver failed.
    #[error("exchange with resolver {resolver} failed")]
    Exchange {
        /// The resolver.
        resolver: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// A resolver's reply could not be decoded.
    #[error("reply of resolver {resolver} is not a DNS message")]
    BadReply {
        /// The resolver.
        resolver: SocketAddr,
        /// What the decoder said.
        source: hickory_proto::ProtoError,
    },
    /// A request could not be encoded for forwarding.
    #[error("cannot encode the request for forwarding")]
    EncodeRequest {
        /// What the encoder said.
        source: hickory_proto::ProtoError,
    },
    /// A listening socket could not be set up.
    #[error("cannot set up the DNS listener on {address}")]
    Listen {
        /// The address.
        address: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// The DNS server stopped with an error.
    #[error("the DNS server stopped")]
    Serve {
        /// What the server said.
        source: hickory_proto::ProtoError,
    },
}

/// The default cap on forwarded queries in flight at once.
pub const DEFAULT_MAX_FORWARDS: usize = 256;

/// Everything one DNS server needs to know (Mesos-DNS's keys in brackets).
#[derive(Clone, Debug, PartialEq)]
pub struct DnsConfig {
    /// Masters whose snapshots feed the zone, `host:port` (`masters`).
    pub masters: Vec<String>,
    /// DNS address, UDP and TCP (`listener` + `port`; default `0.0.0.0:53`).
    pub listen: SocketAddr,
    /// HTTP API address (`httplistener` + `httpport`; default `0.0.0.0:8123`); `None`: no
    /// HTTP API (`httpon` false).
    pub http_listen: Option<SocketAddr>,
    /// The domain, without trailing dot (`domain`, default `mesos`).
    pub domain: String,
    /// TTL of every record, seconds (`ttl`; default 5 because updates are pushed).
    pub ttl: u32,
    /// Upstreams for names outside the zone (`resolvers`); see [`parse_resolver`].
    pub resolvers: Vec<SocketAddr>,
    /// Forward names outside the zone (`externalon`, default true).
    pub external_on: bool,
    /// Only tasks whose health checks pass get records (orch's addition, default false).
    pub healthy_only: bool,
    /// How long a forwarded query may take before SERVFAIL (`timeout`, default 2 s).
    pub forward_timeout: Duration,
    /// Clients whose out-of-zone queries are forwarded (orch's addition; default
    /// [`super::allow::DEFAULT_FORWARD_ALLOW`]: loopback, private and link-local); others
    /// get REFUSED for names outside the zone.
    pub forward_allow: Vec<IpNet>,
    /// Most forwarded queries in flight at once; past it SERVFAIL at once (orch's addition;
    /// default [`DEFAULT_MAX_FORWARDS`]).
    pub max_forwards: usize,
    /// Where VIP names point (the load balancer's addresses).
    pub vip_addresses: Vec<IpAddr>,
}

impl Default for DnsConfig {
    fn default() -> Self {
        Self {
            masters: Vec::new(),
            listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 53),
            http_listen: Some(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 8123)),
            domain: "mesos".to_owned(),
            ttl: 5,
            resolvers: Vec::new(),
            external_on: true,
            healthy_only: false,
            forward_timeout: Duration::from_secs(2),
            forward_allow: default_forward_allow(),
            max_forwards: DEFAULT_MAX_FORWARDS,
            vip_addresses: Vec::new(),
        }
    }
}

/// A resolver as Mesos-DNS accepts it: `IP` (port 53) or `IP:PORT` (`[v6]:PORT` for IPv6).
pub fn parse_resolver(text: &str) -> Result<SocketAddr, DnsError> {
    let text = text.trim();
    if let Ok(address) = text.parse::<SocketAddr>() {
        return Ok(address);
    }
    let bare = text
        .strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
        .unwrap_or(text);
    bare.parse::<IpAddr>()
        .map(|ip| SocketAddr::new(ip, 53))
        .map_err(|_| DnsError::BadResolver {
            value: text.to_owned(),
        })
}

/// A resolver as `/v1/config` shows it: the bare IP when the port is 53.
fn resolver_text(resolver: &SocketAddr) -> String {
    if resolver.port() == 53 {
        resolver.ip().to_string()
    } else {
        resolver.to_string()
    }
}

impl DnsConfig {
    /// The zone settings this server's records are built with; `ns_addresses` are the
    /// addresses of this server (the A/AAAA records of the SOA's primary name server), and
    /// also where VIP names point unless `vip_addresses` says otherwise.
    pub fn zone_config(&self, ns_addresses: Vec<IpAddr>) -> ZoneConfig {
        let mut zone = ZoneConfig::new(&self.domain, self.ttl);
        zone.vip_addresses = if self.vip_addresses.is_empty() {
            ns_addresses.clone()
        } else {
            self.vip_addresses.clone()
        };
        zone.ns_addresses = ns_addresses;
        zone.healthy_only = self.healthy_only;
        zone
    }

    /// The configuration as Mesos-DNS's `/v1/config` shows it: its Go struct's field names.
    /// `RefreshSeconds` is 0 because orch pushes updates; `Timeout` is whole seconds,
    /// rounded up; `HealthyOnly`, `ForwardAllow` and `MaxForwards` are orch's own.
    pub fn mesos_dns_json(&self) -> serde_json::Value {
        let zone = ZoneConfig::new(&self.domain, self.ttl);
        let timeout =
            self.forward_timeout.as_secs() + u64::from(self.forward_timeout.subsec_nanos() > 0);
        let (http_listener, http_port) = match self.http_listen {
            Some(address) => (address.ip().to_string(), address.port()),
            None => (String::new(), 0),
        };
        serde_json::json!({
            "Masters": self.masters,
            "RefreshSeconds": 0,
            "TTL": self.ttl,
            "Port": self.listen.port(),
            "Domain": zone.domain,
            "Resolvers": self.resolvers.iter().map(resolver_text).collect::<Vec<_>>(),
            "Timeout": timeout,
            "Listener": self.listen.ip().to_string(),
            "HttpListener": http_listener,
            "HttpPort": http_port,
            "DnsOn": true,
            "HttpOn": self.http_listen.is_some(),
            "ExternalOn": self.external_on,
            "RecurseOn": true,
            "SOAMname": zone.soa_mname,
            "SOARname": zone.soa_rname,
            "SOARefresh": zone.soa_refresh,
            "SOARetry": zone.soa_retry,
            "SOAExpire": zone.soa_expire,
            "SOAMinttl": self.ttl,
            "SRVRecordDefaultWeight": zone.srv_weight,
            "IPSources": ["netinfo", "host"],
            "EnforceRFC952": false,
            "SetTruncateBit": true,
            "EnumerationOn": true,
            "HealthyOnly": self.healthy_only,
            "ForwardAllow": self.forward_allow.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "MaxForwards": self.max_forwards,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolvers_take_port_53_unless_given() {
        let cases = [
            ("8.8.8.8", "8.8.8.8:53"),
            ("10.0.0.1:5353", "10.0.0.1:5353"),
            ("::1", "[::1]:53"),
            ("[::1]", "[::1]:53"),
            ("[::1]:5353", "[::1]:5353"),
            (" 1.1.1.1 ", "1.1.1.1:53"),
        ];
        for (text, want) in cases {
            let got = parse_resolver(text).expect("a valid resolver");
            assert_eq!(got.to_string(), want, "{text}");
        }
        for bad in ["", "dns.google", "1.2.3.4:x", "1.2.3.4:70000"] {
            assert!(
                matches!(parse_resolver(bad), Err(DnsError::BadResolver { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn zone_config_carries_addresses_and_health() {
        let config = DnsConfig {
            domain: "Example".into(),
            ttl: 7,
            healthy_only: true,
            vip_addresses: vec!["10.0.0.9".parse().expect("ip")],
            ..DnsConfig::default()
        };
        let zone = config.zone_config(vec!["10.0.0.1".parse().expect("ip")]);
        assert_eq!(zone.domain, "example");
        assert_eq!(zone.ttl, 7);
        assert_eq!(zone.soa_mname, "ns1.example.");
        assert!(zone.healthy_only);
        let ip = |text: &str| text.parse::<IpAddr>().expect("ip");
        assert_eq!(zone.ns_addresses, [ip("10.0.0.1")]);
        assert_eq!(zone.vip_addresses, [ip("10.0.0.9")]);
        let by_default = DnsConfig::default().zone_config(vec![ip("10.0.0.1")]);
        assert_eq!(
            by_default.vip_addresses,
            [ip("10.0.0.1")],
            "VIPs point here by default"
        );
    }

    #[test]
    fn config_json_has_mesos_dns_field_names() {
        let config = DnsConfig {
            masters: vec!["10.0.0.1:8080".into()],
            resolvers: vec![
                parse_resolver("8.8.8.8").expect("ip"),
                parse_resolver("10.0.0.2:5353").expect("ip:port"),
            ],
            forward_timeout: Duration::from_millis(1500),
            ..DnsConfig::default()
        };
        let json = config.mesos_dns_json();
        assert_eq!(json["Masters"], serde_json::json!(["10.0.0.1:8080"]));
        assert_eq!(json["RefreshSeconds"], 0);
        assert_eq!(json["TTL"], 5);
        assert_eq!(json["Port"], 53);
        assert_eq!(json["Domain"], "mesos");
        assert_eq!(
            json["Resolvers"],
            serde_json::json!(["8.8.8.8", "10.0.0.2:5353"])
        );
        assert_eq!(json["Timeout"], 2);
        assert_eq!(json["Listener"], "0.0.0.0");
        assert_eq!(json["HttpListener"], "0.0.0.0");
        assert_eq!(json["HttpPort"], 8123);
        assert_eq!(json["HttpOn"], true);
        assert_eq!(json["ExternalOn"], true);
        assert_eq!(json["RecurseOn"], true);
        assert_eq!(json["SOAMname"], "ns1.mesos.");
        assert_eq!(json["SOARname"], "root.ns1.mesos.");
        assert_eq!(json["SOARefresh"], 60);
        assert_eq!(json["SOARetry"], 600);
        assert_eq!(json["SOAExpire"], 86400);
        assert_eq!(json["SOAMinttl"], 5);
        assert_eq!(json["SRVRecordDefaultWeight"], 1);
        assert_eq!(json["SetTruncateBit"], true);
        assert_eq!(json["EnumerationOn"], true);
        assert_eq!(json["EnforceRFC952"], false);
        assert_eq!(json["HealthyOnly"], false);
        assert_eq!(json["ForwardAllow"][0], "127.0.0.0/8");
        assert_eq!(json["MaxForwards"], 256);
        assert!(json["IPSources"].is_array());
        assert!(json["DnsOn"].is_boolean());
    }
}

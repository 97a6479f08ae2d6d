//! The `dns:` and `lb:` sections: the DNS server and the load balancer the first master
//! runs, with their defaults and rules.
//!
//! May depend on: provision::infra::{error, de}. No I/O.

use super::de::{null_as_default, one_or_many, yes};
use super::error::{invalid, InfraError};
use std::net::{IpAddr, SocketAddr};

/// The cluster's DNS server (`dns:`), run inside the first master (`--with-dns`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsEntry {
    /// Run it [default: true].
    #[serde(default = "yes")]
    pub enabled: bool,
    /// DNS address, UDP and TCP [default: `127.0.0.1:8053`].
    #[serde(default = "default_dns_listen")]
    pub listen: SocketAddr,
    /// Mesos-DNS HTTP API address [default: `127.0.0.1:8123`].
    #[serde(default = "default_dns_http_listen")]
    pub http_listen: SocketAddr,
    /// The domain served [default: `mesos`].
    #[serde(default = "default_dns_domain")]
    pub domain: String,
    /// Upstream resolvers (`IP` or `IP:PORT`) for other names [default: the nameservers of
    /// /etc/resolv.conf].
    #[serde(default, deserialize_with = "null_as_default")]
    pub resolvers: Vec<String>,
}

impl Default for DnsEntry {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: default_dns_listen(),
            http_listen: default_dns_http_listen(),
            domain: default_dns_domain(),
            resolvers: Vec::new(),
        }
    }
}

impl DnsEntry {
    pub(super) fn validate(&self) -> Result<(), InfraError> {
        for (key, address) in [
            ("dns.listen", self.listen),
            ("dns.http_listen", self.http_listen),
        ] {
            if address.port() == 0 {
                return Err(invalid(key, "needs a port other than 0"));
            }
        }
        if self.listen == self.http_listen {
            return Err(invalid("dns.http_listen", "must differ from dns.listen"));
        }
        let domain_ok = !self.domain.is_empty()
            && self.domain.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            });
        if !domain_ok {
            return Err(invalid(
                "dns.domain",
                format!("'{}' is not a domain name", self.domain),
            ));
        }
        Ok(())
    }
}

/// The cluster's load balancer (`lb:`), run inside the first master (`--with-lb`). Service
/// ports and VIP ports bind on `bind_addr` too.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LbEntry {
    /// Run it [default: true].
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Where every port binds [default: `127.0.0.1`].
    #[serde(default = "default_lb_bind_addr")]
    pub bind_addr: IpAddr,
    /// Host/path routing (`HAPROXY_{n}_VHOST`) [default: 8000]; 0 = off.
    #[serde(default = "default_lb_http_port")]
    pub http_port: u16,
    /// The same over TLS with SNI [default: 8443]; 0 = off.
    #[serde(default = "default_lb_https_port")]
    pub https_port: u16,
    /// `X-Marathon-App-Id` routing [default: 9091]; 0 = off.
    #[serde(default = "default_lb_app_id_port")]
    pub app_id_port: u16,
    /// Stats and control (`/haproxy?stats`, `/metrics`) [default: 9090]; 0 = off.
    #[serde(default = "default_lb_stats_port")]
    pub stats_port: u16,
    /// The `HAPROXY_GROUP`s served; `*` serves every app [default: `external`].
    #[serde(default = "default_lb_groups", deserialize_with = "one_or_many")]
    pub group: Vec<String>,
    /// Serve only tasks whose health checks pass (apps without checks: every running task)
    /// [default: false, as marathon-lb].
    #[serde(default)]
    pub health_check: bool,
    /// PEM files (chain and key) for the HTTPS port [default: a self-signed certificate].
    #[serde(default, deserialize_with = "null_as_default")]
    pub ssl_certs: Vec<String>,
}

impl Default for LbEntry {
    fn default() -> Self {
        Self {
            enabled: true,
            bind_addr: default_lb_bind_addr(),
            http_port: default_lb_http_port(),
            https_port: default_lb_https_port(),
            app_id_port: default_lb_app_id_port(),
            stats_port: default_lb_stats_port(),
            group: default_lb_groups(),
            health_check: false,
            ssl_certs: Vec::new(),
        }
    }
}

impl LbEntry {
    /// The ports bound on `bind_addr` at start, with their keys, 0s left out.
    pub fn fixed_ports(&self) -> Vec<(&'static str, u16)> {
        [
            ("lb.http_port", self.http_port),
            ("lb.https_port", self.https_port),
            ("lb.app_id_port", self.app_id_port),
            ("lb.stats_port", self.stats_port),
        ]
        .into_iter()
        .filter(|(_, port)| *port != 0)
        .collect()
    }

    pub(super) fn validate(&self) -> Result<(), InfraError> {
        let ports = self.fixed_ports();
        for (index, (key, port)) in ports.iter().enumerate() {
            if let Some((other, _)) = ports[..index].iter().find(|(_, p)| p == port) {
                return Err(invalid(*key, format!("{port} is also {other}")));
            }
        }
        if self.group.iter().any(|group| group.trim().is_empty()) {
            return Err(invalid("lb.group", "a group name cannot be empty"));
        }
        Ok(())
    }
}

fn default_lb_bind_addr() -> IpAddr {
    IpAddr::from([127, 0, 0, 1])
}

fn default_lb_http_port() -> u16 {
    8000
}

fn default_lb_https_port() -> u16 {
    8443
}

fn default_lb_app_id_port() -> u16 {
    9091
}

fn default_lb_stats_port() -> u16 {
    9090
}

fn default_lb_groups() -> Vec<String> {
    vec!["external".to_owned()]
}

fn default_dns_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8053))
}

fn default_dns_http_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8123))
}

fn default_dns_domain() -> String {
    "mesos".to_owned()
}

//! The one place that writes an `orch master` / `orch agent` command line, for every
//! provider: the local provider's processes ([`super::layout`]) and the nodes on machines of
//! their own ([`super::cluster_spec`]) describe a node as a [`NodeCommand`] and take its
//! [`NodeCommand::args`].
//!
//! Masters get `--listen`, `--masters` and `--data-dir`; agents `--masters`, `--listen`,
//! `--work-dir` and what they have of `--hostname`, `--resources`, `--attributes`,
//! `--containerizers` and `--public`; then `--advertise` (masters) or `--advertise-ip`
//! (agents) when they listen elsewhere than where they are reached, and the TLS files
//! (`--tls-cert`, `--tls-key`, `--tls-ca`, and a master's `--token-file`); the node that runs
//! the DNS server and the load balancer (the first master) their flags last.
//!
//! `orch up` never passes `--insecure`: its masters and agents serve HTTPS (an agent's API
//! to masters only).
//!
//! May depend on: provision::infra (DnsEntry, LbEntry, MachineRole). Pure.

use super::infra::{DnsEntry, LbEntry, MachineRole};
use std::net::SocketAddr;

/// What one node's command line says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeCommand {
    /// What it runs (`master`, or `agent` with `--public` for a public agent).
    pub role: MachineRole,
    /// Its HTTP address.
    pub listen: SocketAddr,
    /// Where it is reached when that is not `listen`: a master's `--advertise`, an agent's
    /// `--advertise-ip` (the IP).
    pub advertise: Option<SocketAddr>,
    /// Its TLS files on its machine, if it runs with TLS.
    pub tls: Option<TlsPaths>,
    /// Every master's API address, in `--masters` order.
    pub masters: Vec<SocketAddr>,
    /// Its `--data-dir` (masters) or `--work-dir` (agents).
    pub dir: String,
    /// An agent's `--hostname`, when it has a name of its own.
    pub hostname: Option<String>,
    /// An agent's `--resources`.
    pub resources: Option<String>,
    /// An agent's `--attributes`.
    pub attributes: Option<String>,
    /// An agent's `--containerizers`, comma-separated.
    pub containerizers: Option<String>,
    /// The DNS server this node runs (`--with-dns`), if any.
    pub dns: Option<DnsEntry>,
    /// The load balancer this node runs (`--with-lb`), if any.
    pub lb: Option<LbEntry>,
}

/// Where a node's TLS files are on its machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsPaths {
    /// Its certificate (`--tls-cert`).
    pub cert: String,
    /// Its key (`--tls-key`).
    pub key: String,
    /// The cluster CA (`--tls-ca`).
    pub ca: String,
    /// The management token (a master's `--token-file`).
    pub token: Option<String>,
}

impl NodeCommand {
    /// The arguments after the binary: `master ...` or `agent ...`.
    pub fn args(&self) -> Vec<String> {
        let masters = self
            .masters
            .iter()
            .map(SocketAddr::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let mut args = Vec::new();
        let mut flag = |name: &str, value: String| {
            args.push(format!("--{name}"));
            args.push(value);
        };
        match self.role {
            MachineRole::Master => {
                flag("listen", self.listen.to_string());
                flag("masters", masters);
                flag("data-dir", self.dir.clone());
                if let Some(advertise) = self.advertise {
                    flag("advertise", advertise.to_string());
                }
            }
            MachineRole::Agent | MachineRole::PublicAgent => {
                flag("masters", masters);
                flag("listen", self.listen.to_string());
                flag("work-dir", self.dir.clone());
                for (name, value) in [
                    ("hostname", &self.hostname),
                    ("resources", &self.resources),
                    ("attributes", &self.attributes),
                    ("containerizers", &self.containerizers),
                ] {
                    if let Some(value) = value {
                        flag(name, value.clone());
                    }
                }
                if let Some(advertise) = self.advertise {
                    flag("advertise-ip", advertise.ip().to_string());
                }
            }
        }
        if let Some(tls) = &self.tls {
            flag("tls-cert", tls.cert.clone());
            flag("tls-key", tls.key.clone());
            flag("tls-ca", tls.ca.clone());
            if let (MachineRole::Master, Some(token)) = (self.role, &tls.token) {
                flag("token-file", token.clone());
            }
        }
        let command = match self.role {
            MachineRole::Master => "master",
            MachineRole::Agent | MachineRole::PublicAgent => "agent",
        };
        let mut args = [vec![command.to_owned()], args].concat();
        if self.role == MachineRole::PublicAgent {
            args.push("--public".to_owned());
        }
        args.extend(service_args(self.dns.as_ref(), self.lb.as_ref()));
        args
    }
}

/// The flags for the DNS server (`--with-dns ...`) and the load balancer (`--with-lb ...`) a
/// master runs; VIP names point at the LB when it binds another address.
fn service_args(dns: Option<&DnsEntry>, lb: Option<&LbEntry>) -> Vec<String> {
    let mut args = Vec::new();
    if let Some(dns) = dns {
        args.push("--with-dns".to_owned());
        for (name, value) in [
            ("--dns-listen", dns.listen.to_string()),
            ("--dns-http-listen", dns.http_listen.to_string()),
            ("--dns-domain", dns.domain.clone()),
            ("--dns-resolvers", dns.resolvers.join(",")),
        ] {
            if !value.is_empty() {
                args.extend([name.to_owned(), value]);
            }
        }
        if let Some(lb) = lb {
            // VIP names resolve to the load balancer.
            if !lb.bind_addr.is_unspecified() && lb.bind_addr != dns.listen.ip() {
                args.extend(["--dns-vip-address".to_owned(), lb.bind_addr.to_string()]);
            }
        }
    }
    if let Some(lb) = lb {
        args.push("--with-lb".to_owned());
        for (name, value) in [
            ("--lb-bind-addr", lb.bind_addr.to_string()),
            ("--lb-http-port", lb.http_port.to_string()),
            ("--lb-https-port", lb.https_port.to_string()),
            ("--lb-app-id-port", lb.app_id_port.to_string()),
            ("--lb-stats-port", lb.stats_port.to_string()),
            ("--lb-group", lb.group.join(",")),
            ("--lb-ssl-certs", lb.ssl_certs.join(",")),
        ] {
            if !value.is_empty() {
                args.extend([name.to_owned(), value]);
            }
        }
        if lb.health_check {
            args.push("--lb-health-check".to_owned());
        }
    }
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent() -> NodeCommand {
        NodeCommand {
            role: MachineRole::Agent,
            listen: "127.0.0.1:5051".parse().expect("addr"),
            advertise: Some("10.0.0.4:5051".parse().expect("addr")),
            tls: Some(TlsPaths {
                cert: "/opt/orch/tls/node.pem".to_owned(),
                key: "/opt/orch/tls/node-key.pem".to_owned(),
                ca: "/opt/orch/tls/ca.pem".to_owned(),
                token: Some("/opt/orch/tls/token".to_owned()),
            }),
            masters: vec!["10.0.0.1:8080".parse().expect("addr")],
            dir: "/opt/orch/data".to_owned(),
            hostname: Some("agent-1".to_owned()),
            resources: Some("cpus:2".to_owned()),
            attributes: None,
            containerizers: Some("mesos".to_owned()),
            dns: None,
            lb: None,
        }
    }

    #[test]
    fn an_agent_names_only_what_it_has_and_a_public_one_ends_with_public() {
        assert_eq!(
            agent().args(),
            [
                "agent",
                "--masters",
                "10.0.0.1:8080",
                "--listen",
                "127.0.0.1:5051",
                "--work-dir",
                "/opt/orch/data",
                "--hostname",
                "agent-1",
                "--resources",
                "cpus:2",
                "--containerizers",
                "mesos",
                "--advertise-ip",
                "10.0.0.4",
                "--tls-cert",
                "/opt/orch/tls/node.pem",
                "--tls-key",
                "/opt/orch/tls/node-key.pem",
                "--tls-ca",
                "/opt/orch/tls/ca.pem"
            ],
            "an agent gets no token, and never --insecure"
        );
        let public = NodeCommand {
            role: MachineRole::PublicAgent,
            ..agent()
        };
        assert_eq!(public.args().last().map(String::as_str), Some("--public"));
    }

    #[test]
    fn the_services_come_last_and_vips_point_at_another_lb_address() {
        let master = NodeCommand {
            role: MachineRole::Master,
            listen: "127.0.0.1:8080".parse().expect("addr"),
            dns: Some(DnsEntry::default()),
            lb: Some(LbEntry {
                bind_addr: "127.0.0.2".parse().expect("ip"),
                ..LbEntry::default()
            }),
            ..agent()
        };
        let args = master.args();
        assert_eq!(args[..3], ["master", "--listen", "127.0.0.1:8080"]);
        assert!(args.contains(&"--token-file".to_owned()));
        assert!(!args.contains(&"--insecure".to_owned()));
        let at = |flag: &str| args.iter().position(|a| a == flag).expect(flag);
        assert!(at("--data-dir") < at("--with-dns"));
        assert_eq!(args[at("--dns-vip-address") + 1], "127.0.0.2");
        assert!(at("--with-dns") < at("--with-lb"));
        assert!(!args.contains(&"--hostname".to_owned()));
    }
}

//! What a cluster on machines of their own (docker, ssh, digital_ocean) consists of: the
//! machines it wants (`master-1`.., `agent-1`.., `public-agent-1`..), the machines that exist
//! ([`Machine`]: name, role, IP, the provider's id), and each node's command line once the
//! machines' IPs are known ([`NodeSpec`]). Pure: the same infra file and machines always give
//! the same specs, so a re-run of `orch up` can tell "running as specified" from "changed".
//!
//! Nodes reach each other at their machine's cluster address: its private IP where the
//! provider has a private network (DigitalOcean's VPC), else its IP. Every master listens on
//! `<its IP>:<port of api>` (on every address, advertising the private one, when it has a
//! private IP: the API is also reached at its public IP); every agent's own API listens on
//! `<its cluster address>:5051`, over TLS and for the masters only (they read task files
//! from it for their clients). The first master runs the DNS server
//! (on its cluster address) and the load balancer (on its IP), when enabled, with the ports
//! of the `dns:` and `lb:` sections.
//!
//! Every node runs with TLS: `--tls-cert`, `--tls-key`, `--tls-ca` (masters also
//! `--token-file`) name files in the machine's TLS dir (the provider's choice: by default
//! `<install_dir>/tls`), which the provider installs from `.orch/<cluster>/pki/`
//! ([`NodeSpec::tls`]).
//!
//! May depend on: provision::{infra, node_command, cluster_pki}. No I/O.

pub use super::infra::MachineRole;
use super::infra::{DnsEntry, Infra, LbEntry};
use super::node_command::{NodeCommand, TlsPaths};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

/// The port every agent's HTTP API listens on.
pub const AGENT_PORT: u16 = 5051;

/// A machine the cluster wants, before it exists.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WantedMachine {
    /// `master-N`, `agent-N` or `public-agent-N` (1-based).
    pub name: String,
    /// What it runs.
    pub role: MachineRole,
}

/// The machines of `infra`, masters first, then agents, then public agents.
pub fn wanted_machines(infra: &Infra) -> Vec<WantedMachine> {
    let group = |role: MachineRole, count: u32| {
        (1..=count).map(move |n| WantedMachine {
            name: format!("{}-{n}", role.prefix()),
            role,
        })
    };
    group(MachineRole::Master, infra.masters)
        .chain(group(MachineRole::Agent, infra.agents))
        .chain(group(MachineRole::PublicAgent, infra.public_agents))
        .collect()
}

/// A machine that exists (a container, an SSH host, a droplet).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Machine {
    /// Its name in the cluster, as in [`WantedMachine::name`].
    pub name: String,
    /// What it runs.
    pub role: MachineRole,
    /// The address the cluster's processes listen on and are reached at from outside.
    pub ip: IpAddr,
    /// Its address on the provider's private network, where there is one: masters and
    /// agents reach each other there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_ip: Option<IpAddr>,
    /// The provider's id: container id, `user@host:port`, droplet id.
    pub id: String,
    /// Where orch lives on it (binary, data, logs).
    pub install_dir: String,
    /// An agent's `--resources` when this machine has its own (ssh hosts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<String>,
    /// An agent's `--attributes` when this machine has its own (ssh hosts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attributes: Option<String>,
}

/// One node's process: how it is started and where it listens.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NodeSpec {
    /// The machine's name (`master-1`, ...).
    pub name: String,
    /// What it runs.
    pub role: MachineRole,
    /// Its HTTP address: the API for masters, the sandbox file API for agents.
    pub listen: SocketAddr,
    /// Its data dir (masters) or work dir (agents): `<install_dir>/data`.
    pub data_dir: String,
    /// The arguments after the binary (`master --listen ...`).
    pub args: Vec<String>,
    /// The TLS files the provider installs on the machine for this node.
    pub tls: Vec<InstallFile>,
    /// The sha256 of those files' contents as they are here (see
    /// [`super::cluster_pki::stamp_tls`]; empty until then): part of what a node runs as, so
    /// that a certificate issued again restarts the node.
    #[serde(default)]
    pub tls_digest: String,
}

/// A file of `.orch/<cluster>/` a node needs on its machine.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct InstallFile {
    /// Where it is here.
    pub source: PathBuf,
    /// Where it goes on the machine (absolute).
    pub target: String,
    /// A private key or the token: mode 0600 on the machine.
    pub private: bool,
}

impl Machine {
    /// Where the cluster's nodes reach this machine: its private IP, else its IP.
    pub fn cluster_ip(&self) -> IpAddr {
        self.private_ip.unwrap_or(self.ip)
    }
}

/// `<install_dir>/tls`: where a machine's TLS files go unless its provider says otherwise.
pub fn default_tls_dir(machine: &Machine) -> String {
    format!("{}/tls", machine.install_dir.trim_end_matches('/'))
}

/// The TLS files of `machine`'s node, from the cluster dir `cluster_dir` to `tls_dir` on the
/// machine: its certificate and key, the CA certificate (never its key), and for masters the
/// token.
pub fn tls_files(cluster_dir: &Path, machine: &Machine, tls_dir: &str) -> Vec<InstallFile> {
    use super::cluster_pki;
    let at = |file: &str| format!("{}/{file}", tls_dir.trim_end_matches('/'));
    let mut files = vec![
        InstallFile {
            source: cluster_pki::cert_path(cluster_dir, &machine.name),
            target: at("node.pem"),
            private: false,
        },
        InstallFile {
            source: cluster_pki::key_path(cluster_dir, &machine.name),
            target: at("node-key.pem"),
            private: true,
        },
        InstallFile {
            source: cluster_pki::ca_path(cluster_dir),
            target: at("ca.pem"),
            private: false,
        },
    ];
    if machine.role == MachineRole::Master {
        files.push(InstallFile {
            source: cluster_pki::token_path(cluster_dir),
            target: at("token"),
            private: true,
        });
    }
    files
}

/// The `--tls-*` (and `--token-file`) paths of `files`, as [`tls_files`] makes them.
fn tls_paths(files: &[InstallFile]) -> Option<TlsPaths> {
    let find = |suffix: &str| {
        files
            .iter()
            .find(|f| f.target.ends_with(suffix))
            .map(|f| f.target.clone())
    };
    Some(TlsPaths {
        cert: find("/node.pem")?,
        key: find("/node-key.pem")?,
        ca: find("/ca.pem")?,
        token: find("/token"),
    })
}

impl NodeSpec {
    /// True for masters.
    pub fn is_master(&self) -> bool {
        self.role == MachineRole::Master
    }
}

/// The masters' addresses among themselves and for the agents (their cluster IPs), in
/// `--masters` order.
pub fn cluster_master_addresses(infra: &Infra, machines: &[Machine]) -> Vec<SocketAddr> {
    machines
        .iter()
        .filter(|m| m.role == MachineRole::Master)
        .map(|m| SocketAddr::new(m.cluster_ip(), infra.api.port()))
        .collect()
}

/// The masters' API addresses from outside, in `--masters` order.
pub fn master_addresses(infra: &Infra, machines: &[Machine]) -> Vec<SocketAddr> {
    machines
        .iter()
        .filter(|m| m.role == MachineRole::Master)
        .map(|m| SocketAddr::new(m.ip, infra.api.port()))
        .collect()
}

/// Each machine's node: masters with the full `--masters` list, the first master with the
/// DNS server and load balancer, agents with their resources, attributes and `--public`;
/// every node with its TLS files from `cluster_dir` at `tls_dir(machine)` on its machine.
pub fn node_specs(
    infra: &Infra,
    machines: &[Machine],
    cluster_dir: &Path,
    tls_dir: &dyn Fn(&Machine) -> String,
) -> Vec<NodeSpec> {
    let masters = cluster_master_addresses(infra, machines);
    let first_master = machines
        .iter()
        .find(|m| m.role == MachineRole::Master)
        .map(|m| m.name.clone());
    machines
        .iter()
        .map(|machine| {
            let data_dir = format!("{}/data", machine.install_dir.trim_end_matches('/'));
            let is_agent = machine.role != MachineRole::Master;
            let runs_services = first_master.as_deref() == Some(machine.name.as_str());
            let tls = tls_files(cluster_dir, machine, &tls_dir(machine));
            let cluster_ip = machine.cluster_ip();
            let (listen, advertise) = match machine.role {
                // With a private IP: every address (the API is reached at the public one),
                // advertising the private one to the other masters.
                MachineRole::Master if cluster_ip != machine.ip => (
                    SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), infra.api.port()),
                    Some(SocketAddr::new(cluster_ip, infra.api.port())),
                ),
                MachineRole::Master => (SocketAddr::new(machine.ip, infra.api.port()), None),
                // An agent's own API speaks TLS to masters only: on its cluster address,
                // where the masters read task files from it.
                MachineRole::Agent | MachineRole::PublicAgent => {
                    (SocketAddr::new(cluster_ip, AGENT_PORT), None)
                }
            };
            let command = NodeCommand {
                role: machine.role,
                listen,
                advertise,
                tls: tls_paths(&tls),
                masters: masters.clone(),
                dir: data_dir.clone(),
                hostname: is_agent.then(|| machine.name.clone()),
                resources: machine
                    .resources
                    .clone()
                    .or_else(|| infra.agent_resources.clone())
                    .filter(|_| is_agent),
                attributes: machine
                    .attributes
                    .clone()
                    .or_else(|| infra.agent_attributes.clone())
                    .filter(|_| is_agent),
                containerizers: infra
                    .containerizers
                    .as_ref()
                    .map(|c| c.replace(' ', ""))
                    .filter(|_| is_agent),
                dns: infra
                    .dns
                    .enabled
                    .then(|| DnsEntry {
                        listen: SocketAddr::new(cluster_ip, infra.dns.listen.port()),
                        http_listen: SocketAddr::new(cluster_ip, infra.dns.http_listen.port()),
                        ..infra.dns.clone()
                    })
                    .filter(|_| runs_services),
                lb: infra
                    .lb
                    .enabled
                    .then(|| LbEntry {
                        bind_addr: machine.ip,
                        ..infra.lb.clone()
                    })
                    .filter(|_| runs_services),
            };
            NodeSpec {
                name: machine.name.clone(),
                role: machine.role,
                listen: command.listen,
                data_dir,
                args: command.args(),
                tls,
                tls_digest: String::new(),
            }
        })
        .collect()
}

/// The endpoints `orch up` and `orch status` print: the masters' APIs, DNS and the LB.
pub fn endpoint_lines(infra: &Infra, machines: &[Machine]) -> Vec<String> {
    let apis = master_addresses(infra, machines);
    let mut lines = vec![format!(
        "API     {} (Marathon /v2, orch /v1; TLS, token)",
        apis.iter()
            .map(|a| format!("https://{a}"))
            .collect::<Vec<_>>()
            .join(" ")
    )];
    let Some(first) = machines.iter().find(|m| m.role == MachineRole::Master) else {
        return lines;
    };
    if infra.dns.enabled {
        lines.push(format!(
            "DNS     {} (udp+tcp, *.{}), HTTP API http://{} (in {})",
            SocketAddr::new(first.cluster_ip(), infra.dns.listen.port()),
            infra.dns.domain,
            SocketAddr::new(first.cluster_ip(), infra.dns.http_listen.port()),
            first.name
        ));
    }
    if infra.lb.enabled {
        let port = |port: u16| match port {
            0 => "off".to_owned(),
            port => SocketAddr::new(first.ip, port).to_string(),
        };
        lines.push(format!(
            "LB      http {}, https {}, app-id {}, stats {}, group {} (in {})",
            port(infra.lb.http_port),
            port(infra.lb.https_port),
            port(infra.lb.app_id_port),
            port(infra.lb.stats_port),
            infra.lb.group.join(","),
            first.name
        ));
    }
    lines
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::infra::ProviderKind;

    /// A machine named `name` at `ip`, installed in `/opt/orch` (shared by the provision
    /// crate's tests).
    pub(crate) fn machine(name: &str, role: MachineRole, ip: &str) -> Machine {
        Machine {
            name: name.to_owned(),
            role,
            ip: ip.parse().expect("ip"),
            private_ip: None,
            id: name.to_owned(),
            install_dir: "/opt/orch".to_owned(),
            resources: None,
            attributes: None,
        }
    }

    fn infra() -> Infra {
        Infra {
            provider: ProviderKind::Docker,
            masters: 3,
            agents: 1,
            public_agents: 1,
            agent_attributes: Some("rack:r1".to_owned()),
            ..Infra::default()
        }
    }

    #[test]
    fn wanted_machines_are_named_by_role() {
        let names: Vec<String> = wanted_machines(&infra())
            .into_iter()
            .map(|m| m.name)
            .collect();
        assert_eq!(
            names,
            [
                "master-1",
                "master-2",
                "master-3",
                "agent-1",
                "public-agent-1"
            ]
        );
    }

    #[test]
    fn specs_carry_the_masters_list_and_the_services_on_the_first_master() {
        let machines = vec![
            machine("master-1", MachineRole::Master, "10.0.0.1"),
            machine("master-2", MachineRole::Master, "10.0.0.2"),
            machine("master-3", MachineRole::Master, "10.0.0.3"),
            machine("agent-1", MachineRole::Agent, "10.0.0.4"),
            machine("public-agent-1", MachineRole::PublicAgent, "10.0.0.5"),
        ];
        let specs = node_specs(
            &infra(),
            &machines,
            Path::new("/w/.orch/demo"),
            &default_tls_dir,
        );
        let list = "10.0.0.1:8080,10.0.0.2:8080,10.0.0.3:8080";
        assert_eq!(
            specs[1].args,
            [
                "master",
                "--listen",
                "10.0.0.2:8080",
                "--masters",
                list,
                "--data-dir",
                "/opt/orch/data",
                "--tls-cert",
                "/opt/orch/tls/node.pem",
                "--tls-key",
                "/opt/orch/tls/node-key.pem",
                "--tls-ca",
                "/opt/orch/tls/ca.pem",
                "--token-file",
                "/opt/orch/tls/token"
            ]
        );
        let sources: Vec<String> = specs[1]
            .tls
            .iter()
            .map(|f| f.source.display().to_string())
            .collect();
        assert_eq!(
            sources,
            [
                "/w/.orch/demo/pki/master-2.pem",
                "/w/.orch/demo/pki/master-2-key.pem",
                "/w/.orch/demo/pki/ca.pem",
                "/w/.orch/demo/token"
            ]
        );
        assert_eq!(specs[3].tls.len(), 3, "an agent gets no token");
        assert!(specs[3]
            .tls
            .iter()
            .all(|f| !f.source.ends_with("ca-key.pem")));
        // An agent's API (TLS, masters only) listens on its cluster address.
        assert_eq!(specs[3].listen, "10.0.0.4:5051".parse().expect("addr"));
        assert!(!specs[3].args.contains(&"--advertise-ip".to_owned()));
        assert!(specs[0].args.contains(&"--with-dns".to_owned()));
        assert!(specs[0].args.contains(&"10.0.0.1:8053".to_owned()));
        assert!(specs[0].args.contains(&"--with-lb".to_owned()));
        assert!(!specs[2].args.contains(&"--with-lb".to_owned()));
        assert!(specs[3].args.contains(&"rack:r1".to_owned()));
        assert!(!specs[3].args.contains(&"--public".to_owned()));
        assert_eq!(specs[4].args.last().map(String::as_str), Some("--public"));
        assert_eq!(
            node_specs(
                &infra(),
                &machines,
                Path::new("/w/.orch/demo"),
                &default_tls_dir
            ),
            specs,
            "pure"
        );
        assert!(specs
            .iter()
            .all(|s| !s.args.contains(&"--insecure".to_owned())));
    }

    #[test]
    fn with_a_private_network_nodes_reach_each_other_there() {
        let mut master = machine("master-1", MachineRole::Master, "203.0.113.1");
        master.private_ip = Some("10.10.0.1".parse().expect("ip"));
        let mut agent = machine("agent-1", MachineRole::Agent, "203.0.113.2");
        agent.private_ip = Some("10.10.0.2".parse().expect("ip"));
        let specs = node_specs(
            &infra(),
            &[master, agent],
            Path::new("/w"),
            &default_tls_dir,
        );
        let has = |i: usize, pair: [&str; 2]| specs[i].args.windows(2).any(|w| w == pair);
        assert!(has(0, ["--listen", "0.0.0.0:8080"]));
        assert!(has(0, ["--advertise", "10.10.0.1:8080"]));
        assert!(has(0, ["--masters", "10.10.0.1:8080"]));
        assert!(has(0, ["--dns-listen", "10.10.0.1:8053"]));
        assert!(has(1, ["--masters", "10.10.0.1:8080"]));
        assert!(has(1, ["--listen", "10.10.0.2:5051"]));
    }

    #[test]
    fn a_machine_of_its_own_resources_wins() {
        let mut agent = machine("agent-1", MachineRole::Agent, "127.0.0.21");
        agent.resources = Some("cpus:1;ports:[32000-32099]".to_owned());
        let infra = Infra {
            agent_resources: Some("cpus:2".to_owned()),
            ..infra()
        };
        let specs = node_specs(
            &infra,
            &[
                machine("master-1", MachineRole::Master, "127.0.0.11"),
                agent.clone(),
            ],
            Path::new("/w"),
            &default_tls_dir,
        );
        assert_eq!(specs[1].listen, "127.0.0.21:5051".parse().expect("addr"));
        let specs = node_specs(
            &infra,
            &[
                machine("master-1", MachineRole::Master, "127.0.0.11"),
                agent,
            ],
            Path::new("/w"),
            &default_tls_dir,
        );
        assert!(specs[1]
            .args
            .contains(&"cpus:1;ports:[32000-32099]".to_owned()));
        assert!(!specs[1].args.contains(&"cpus:2".to_owned()));
    }
}

//! What a cluster on machines of their own (docker, ssh, digital_ocean) consists of: the
//! machines it wants (`master-1`.., `agent-1`.., `public-agent-1`..), the machines that exist
//! ([`Machine`]: name, role, IP, the provider's id), and each node's command line once the
//! machines' IPs are known ([`NodeSpec`]). Pure: the same infra file and machines always give
//! the same specs, so a re-run of `orch up` can tell "running as specified" from "changed".
//!
//! Every master listens on `<its IP>:<port of api>`, every agent on `<its IP>:5051`; the first
//! master runs the DNS server and the load balancer (when enabled) on its own IP with the
//! ports of the `dns:` and `lb:` sections.
//!
//! May depend on: provision::{infra, node_command}. No I/O.

pub use super::infra::MachineRole;
use super::infra::{DnsEntry, Infra, LbEntry};
use super::node_command::NodeCommand;
use std::net::{IpAddr, SocketAddr};

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
    /// The address the cluster's processes listen on and advertise.
    pub ip: IpAddr,
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
}

impl NodeSpec {
    /// True for masters.
    pub fn is_master(&self) -> bool {
        self.role == MachineRole::Master
    }
}

/// The masters' API addresses, in `--masters` order.
pub fn master_addresses(infra: &Infra, machines: &[Machine]) -> Vec<SocketAddr> {
    machines
        .iter()
        .filter(|m| m.role == MachineRole::Master)
        .map(|m| SocketAddr::new(m.ip, infra.api.port()))
        .collect()
}

/// Each machine's node: masters with the full `--masters` list, the first master with the
/// DNS server and load balancer (on its own IP), agents with their resources, attributes and
/// `--public`.
pub fn node_specs(infra: &Infra, machines: &[Machine]) -> Vec<NodeSpec> {
    let masters = master_addresses(infra, machines);
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
            let command = NodeCommand {
                role: machine.role,
                listen: match machine.role {
                    MachineRole::Master => SocketAddr::new(machine.ip, infra.api.port()),
                    MachineRole::Agent | MachineRole::PublicAgent => {
                        SocketAddr::new(machine.ip, AGENT_PORT)
                    }
                },
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
                        listen: SocketAddr::new(machine.ip, infra.dns.listen.port()),
                        http_listen: SocketAddr::new(machine.ip, infra.dns.http_listen.port()),
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
            }
        })
        .collect()
}

/// The endpoints `orch up` and `orch status` print: the masters' APIs, DNS and the LB.
pub fn endpoint_lines(infra: &Infra, machines: &[Machine]) -> Vec<String> {
    let apis = master_addresses(infra, machines);
    let mut lines = vec![format!(
        "API     {} (Marathon /v2, orch /v1)",
        apis.iter()
            .map(|a| format!("http://{a}"))
            .collect::<Vec<_>>()
            .join(" ")
    )];
    let Some(first) = machines.iter().find(|m| m.role == MachineRole::Master) else {
        return lines;
    };
    if infra.dns.enabled {
        lines.push(format!(
            "DNS     {} (udp+tcp, *.{}), HTTP API http://{} (in {})",
            SocketAddr::new(first.ip, infra.dns.listen.port()),
            infra.dns.domain,
            SocketAddr::new(first.ip, infra.dns.http_listen.port()),
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
    if let Some(api) = apis.first() {
        lines.push(format!(
            "point the CLI at it: export ORCH_MASTER=http://{api}  (e.g. orch app list)"
        ));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::infra::ProviderKind;

    fn machine(name: &str, role: MachineRole, ip: &str) -> Machine {
        Machine {
            name: name.to_owned(),
            role,
            ip: ip.parse().expect("ip"),
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
        let specs = node_specs(&infra(), &machines);
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
                "--insecure"
            ]
        );
        assert!(specs[0].args.contains(&"--with-dns".to_owned()));
        assert!(specs[0].args.contains(&"10.0.0.1:8053".to_owned()));
        assert!(specs[0].args.contains(&"--with-lb".to_owned()));
        assert!(!specs[2].args.contains(&"--with-lb".to_owned()));
        assert_eq!(specs[3].listen, "10.0.0.4:5051".parse().expect("addr"));
        assert!(specs[3].args.contains(&"rack:r1".to_owned()));
        assert!(!specs[3].args.contains(&"--public".to_owned()));
        assert_eq!(specs[4].args.last().map(String::as_str), Some("--public"));
        assert_eq!(node_specs(&infra(), &machines), specs, "pure");
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
                agent,
            ],
        );
        assert!(specs[1]
            .args
            .contains(&"cpus:1;ports:[32000-32099]".to_owned()));
        assert!(!specs[1].args.contains(&"cpus:2".to_owned()));
    }
}

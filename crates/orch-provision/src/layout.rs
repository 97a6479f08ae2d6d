//! Where each process of a local cluster lives: its name, listen address, data or work dir,
//! log and pid file, task port range and command line. Pure: the one question that needs
//! the machine ("is this port free?") is a function passed in, so port planning is tested
//! with a scripted answer.
//!
//! Invariants: the first master listens exactly on the infra file's `api` address; the other
//! masters and then the agents take the next free ports after it, in order; agent N (1-based)
//! offers task ports `31000+1000(N-1)` to `31999+1000(N-1)`, so agents on one host never hand
//! out the same port.
//!
//! Every process runs with TLS from the cluster's PKI in `<dir>/pki/` (see
//! [`super::cluster_pki`]); an agent's `--hostname` is its name, which its certificate names.
//!
//! May depend on: provision::{infra, node_command, cluster_pki}, model (PortRange). No I/O.

use super::cluster_pki;
use super::infra::{DnsEntry, LbEntry, MachineRole};
use super::node_command::{NodeCommand, TlsPaths};
use orch_core::model::PortRange;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

/// The first task port of agent 1.
pub const TASK_PORTS_BASE: u16 = 31000;
/// How many task ports each agent offers.
pub const TASK_PORTS_PER_AGENT: u16 = 1000;

/// The ports a cluster wants cannot be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayoutError {
    /// The first master's port (the `api` address) is taken.
    #[error("port {port} on {ip} is already in use")]
    PortInUse {
        /// The address.
        ip: IpAddr,
        /// The port.
        port: u16,
    },
    /// Not enough free ports after the first.
    #[error("only {found} free ports after {after} on {ip}, {wanted} wanted")]
    NoFreePorts {
        /// The address.
        ip: IpAddr,
        /// The first port.
        after: u16,
        /// How many were found.
        found: usize,
        /// How many more were wanted.
        wanted: usize,
    },
}

/// One process of the cluster.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Node {
    /// `master-N` or `agent-N` (1-based).
    pub name: String,
    /// What it runs.
    pub role: MachineRole,
    /// Its HTTP address (masters: API + Raft; agents: sandbox files).
    pub listen: SocketAddr,
    /// Its `--data-dir` (masters) or `--work-dir` (agents), `<cluster dir>/<name>`.
    pub dir: PathBuf,
    /// The task ports an agent offers (none for masters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_ports: Option<PortRange>,
}

/// Every process of a local cluster and the directory holding their data.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Layout {
    /// The cluster's name.
    pub cluster: String,
    /// `.orch/<cluster>` in the directory `orch up` ran in, absolute.
    pub dir: PathBuf,
    /// The masters, in `--masters` order; the first serves the `api` address.
    pub masters: Vec<Node>,
    /// The agents.
    pub agents: Vec<Node>,
    /// The DNS server the first master runs (`--with-dns`), if any.
    #[serde(default)]
    pub dns: Option<DnsEntry>,
    /// The load balancer the first master runs (`--with-lb`), if any.
    #[serde(default)]
    pub lb: Option<LbEntry>,
}

/// The first `count` ports: `first` itself (which must be free), then the next free ports
/// after it in ascending order.
pub fn plan_ports(
    ip: IpAddr,
    first: u16,
    count: usize,
    mut is_free: impl FnMut(u16) -> bool,
) -> Result<Vec<u16>, LayoutError> {
    if count == 0 {
        return Ok(Vec::new());
    }
    if !is_free(first) {
        return Err(LayoutError::PortInUse { ip, port: first });
    }
    let mut ports = vec![first];
    let mut candidate = first;
    while ports.len() < count {
        candidate = match candidate.checked_add(1) {
            Some(next) => next,
            None => {
                return Err(LayoutError::NoFreePorts {
                    ip,
                    after: first,
                    found: ports.len() - 1,
                    wanted: count - 1,
                })
            }
        };
        if is_free(candidate) {
            ports.push(candidate);
        }
    }
    Ok(ports)
}

/// The task ports of agent `index` (0-based), or None past the port space.
pub fn task_ports(index: usize) -> Option<PortRange> {
    let offset = u16::try_from(index)
        .ok()?
        .checked_mul(TASK_PORTS_PER_AGENT)?;
    let begin = TASK_PORTS_BASE.checked_add(offset)?;
    let end = begin.checked_add(TASK_PORTS_PER_AGENT - 1)?;
    Some(PortRange { begin, end })
}

/// An agent's `--resources`: `base` (the infra file's `agent_resources`) plus its own port
/// range, unless `base` names ports itself.
pub fn agent_resources(base: Option<&str>, ports: Option<PortRange>) -> Option<String> {
    let base = base.map(str::trim).filter(|b| !b.is_empty());
    let ports = ports.filter(|_| !base.is_some_and(super::infra::names_ports));
    match (base, ports) {
        (None, None) => None,
        (Some(base), None) => Some(base.to_owned()),
        (None, Some(p)) => Some(format!("ports:[{}-{}]", p.begin, p.end)),
        (Some(base), Some(p)) => Some(format!(
            "{};ports:[{}-{}]",
            base.trim_end_matches(';'),
            p.begin,
            p.end
        )),
    }
}

impl Layout {
    /// Lays out `masters` masters and `agents` agents under `dir`, the first master on `api`
    /// and every other process on the next free port after it.
    pub fn plan(
        cluster: &str,
        dir: &Path,
        api: SocketAddr,
        masters: usize,
        agents: usize,
        is_free: impl FnMut(u16) -> bool,
    ) -> Result<Self, LayoutError> {
        let ip = api.ip();
        let ports = plan_ports(ip, api.port(), masters + agents, is_free)?;
        let node = |role: MachineRole, n: usize, port: u16| {
            let name = format!("{}-{}", role.prefix(), n + 1);
            Node {
                dir: dir.join(&name),
                name,
                role,
                listen: SocketAddr::new(ip, port),
                task_ports: match role {
                    MachineRole::Master => None,
                    MachineRole::Agent | MachineRole::PublicAgent => task_ports(n),
                },
            }
        };
        Ok(Self {
            cluster: cluster.to_owned(),
            dir: dir.to_owned(),
            masters: (0..masters)
                .map(|n| node(MachineRole::Master, n, ports[n]))
                .collect(),
            agents: (0..agents)
                .map(|n| node(MachineRole::Agent, n, ports[masters + n]))
                .collect(),
            dns: None,
            lb: None,
        })
    }

    /// The API address (the first master's).
    pub fn api(&self) -> Option<SocketAddr> {
        self.masters.first().map(|m| m.listen)
    }

    /// Every process, masters first.
    pub fn nodes(&self) -> impl Iterator<Item = &Node> {
        self.masters.iter().chain(&self.agents)
    }

    /// The `--masters` list.
    pub fn master_list(&self) -> String {
        self.masters
            .iter()
            .map(|m| m.listen.to_string())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// `<dir>/<name>.log`: the process's stdout and stderr.
    pub fn log_file(&self, node: &Node) -> PathBuf {
        self.dir.join(format!("{}.log", node.name))
    }

    /// `<dir>/<name>.pid`.
    pub fn pid_file(&self, node: &Node) -> PathBuf {
        self.dir.join(format!("{}.pid", node.name))
    }

    /// "1 master and 1 agent, API 127.0.0.1:8080", for messages.
    pub fn shape(&self) -> String {
        shape(
            self.masters.len(),
            self.agents.len(),
            self.api().map(|a| a.to_string()).unwrap_or_default(),
        )
    }

    /// The arguments after the binary: `master ...` or `agent ...`.
    pub fn args(
        &self,
        node: &Node,
        agent_resources_base: Option<&str>,
        containerizers: &[String],
    ) -> Vec<String> {
        let is_agent = node.role != MachineRole::Master;
        let first_master = self.masters.first().is_some_and(|m| m.name == node.name);
        let path = |p: std::path::PathBuf| p.display().to_string();
        NodeCommand {
            role: node.role,
            listen: node.listen,
            advertise: None,
            tls: Some(TlsPaths {
                cert: path(cluster_pki::cert_path(&self.dir, &node.name)),
                key: path(cluster_pki::key_path(&self.dir, &node.name)),
                ca: path(cluster_pki::ca_path(&self.dir)),
                token: Some(path(cluster_pki::token_path(&self.dir))),
            }),
            masters: self.masters.iter().map(|m| m.listen).collect(),
            dir: node.dir.display().to_string(),
            hostname: is_agent.then(|| node.name.clone()),
            resources: agent_resources(agent_resources_base, node.task_ports).filter(|_| is_agent),
            attributes: None,
            containerizers: (is_agent && !containerizers.is_empty())
                .then(|| containerizers.join(",")),
            dns: self.dns.clone().filter(|_| first_master),
            lb: self.lb.clone().filter(|_| first_master),
        }
        .args()
    }
}

/// "3 masters and 2 agents, API 127.0.0.1:8080".
pub fn shape(masters: usize, agents: usize, api: impl std::fmt::Display) -> String {
    let plural = |n: usize, word: &str| {
        if n == 1 {
            format!("1 {word}")
        } else {
            format!("{n} {word}s")
        }
    };
    format!(
        "{} and {}, API {api}",
        plural(masters, "master"),
        plural(agents, "agent")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCALHOST: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    #[test]
    fn the_first_port_is_the_api_and_the_rest_skip_taken_ports() {
        let taken = [8081, 8083];
        let ports = plan_ports(LOCALHOST, 8080, 4, |p| !taken.contains(&p)).expect("ports");
        assert_eq!(ports, vec![8080, 8082, 8084, 8085]);
        assert_eq!(
            plan_ports(LOCALHOST, 8080, 2, |p| p != 8080),
            Err(LayoutError::PortInUse {
                ip: LOCALHOST,
                port: 8080
            })
        );
        assert_eq!(
            plan_ports(LOCALHOST, 8080, 2, |p| p != 8080)
                .expect_err("taken")
                .to_string(),
            "port 8080 on 127.0.0.1 is already in use"
        );
        assert!(matches!(
            plan_ports(LOCALHOST, 65534, 4, |_| true),
            Err(LayoutError::NoFreePorts {
                found: 1,
                wanted: 3,
                ..
            })
        ));
    }

    #[test]
    fn agents_get_disjoint_task_port_ranges() {
        let ranges: Vec<PortRange> = (0..34).map(|i| task_ports(i).expect("in range")).collect();
        assert_eq!(
            ranges[0],
            PortRange {
                begin: 31000,
                end: 31999
            }
        );
        assert_eq!(
            ranges[1],
            PortRange {
                begin: 32000,
                end: 32999
            }
        );
        for pair in ranges.windows(2) {
            assert!(pair[0].end < pair[1].begin);
        }
        assert_eq!(task_ports(35), None);
    }

    #[test]
    fn agent_resources_add_the_range_unless_ports_are_given() {
        let range = task_ports(1);
        assert_eq!(
            agent_resources(None, range).as_deref(),
            Some("ports:[32000-32999]")
        );
        assert_eq!(
            agent_resources(Some("cpus:2;mem:512;"), range).as_deref(),
            Some("cpus:2;mem:512;ports:[32000-32999]")
        );
        assert_eq!(
            agent_resources(Some("cpus:2;ports:[5000-5001]"), range).as_deref(),
            Some("cpus:2;ports:[5000-5001]")
        );
    }

    #[test]
    fn a_layout_names_dirs_and_command_lines() {
        let dir = Path::new("/w/.orch/local");
        let api: SocketAddr = "127.0.0.1:9000".parse().expect("addr");
        let layout = Layout::plan("local", dir, api, 3, 2, |p| p != 9002).expect("layout");
        let listens: Vec<String> = layout.nodes().map(|n| n.listen.to_string()).collect();
        assert_eq!(
            listens,
            [
                "127.0.0.1:9000",
                "127.0.0.1:9001",
                "127.0.0.1:9003",
                "127.0.0.1:9004",
                "127.0.0.1:9005"
            ]
        );
        assert_eq!(layout.api(), Some(api));
        assert_eq!(layout.shape(), "3 masters and 2 agents, API 127.0.0.1:9000");
        let master = &layout.masters[1];
        assert_eq!(master.name, "master-2");
        assert_eq!(layout.log_file(master), dir.join("master-2.log"));
        assert_eq!(layout.pid_file(master), dir.join("master-2.pid"));
        assert_eq!(
            layout.args(master, None, &[]),
            [
                "master",
                "--listen",
                "127.0.0.1:9001",
                "--masters",
                "127.0.0.1:9000,127.0.0.1:9001,127.0.0.1:9003",
                "--data-dir",
                "/w/.orch/local/master-2",
                "--tls-cert",
                "/w/.orch/local/pki/master-2.pem",
                "--tls-key",
                "/w/.orch/local/pki/master-2-key.pem",
                "--tls-ca",
                "/w/.orch/local/pki/ca.pem",
                "--token-file",
                "/w/.orch/local/token"
            ]
        );
        let agent = &layout.agents[1];
        assert_eq!(
            layout.args(agent, Some("cpus:1"), &["mesos".to_owned()]),
            [
                "agent",
                "--masters",
                "127.0.0.1:9000,127.0.0.1:9001,127.0.0.1:9003",
                "--listen",
                "127.0.0.1:9005",
                "--work-dir",
                "/w/.orch/local/agent-2",
                "--hostname",
                "agent-2",
                "--resources",
                "cpus:1;ports:[32000-32999]",
                "--containerizers",
                "mesos",
                "--tls-cert",
                "/w/.orch/local/pki/agent-2.pem",
                "--tls-key",
                "/w/.orch/local/pki/agent-2-key.pem",
                "--tls-ca",
                "/w/.orch/local/pki/ca.pem"
            ]
        );
        let json = serde_json::to_string(&layout).expect("json");
        assert_eq!(serde_json::from_str::<Layout>(&json).expect("back"), layout);
    }
}

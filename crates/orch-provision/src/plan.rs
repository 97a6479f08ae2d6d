//! What `orch up` would change, as data: a [`Plan`] is a list of [`Action`]s, one per
//! decision a provider made while looking at what exists (create a machine, build the image,
//! upload the binary and why, start or restart a node and why, or leave it as it is). Each
//! action's `Display` is its line of `orch up --plan`, so the printed plan is the plan.
//!
//! May depend on: nothing of the crate (pure).

use std::fmt;
use std::net::IpAddr;

/// Every action a provider found for `orch up`, in the order it would take them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// The actions, in order.
    pub actions: Vec<Action>,
}

impl Plan {
    /// An empty plan.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends `action`.
    pub fn push(&mut self, action: Action) {
        self.actions.push(action);
    }

    /// The first action about `subject` (a machine, container or droplet) that `pick`
    /// accepts: how an executing step finds the decision the plan made for its machine.
    pub fn find(&self, subject: &str, pick: impl Fn(&Action) -> bool) -> Option<&Action> {
        self.actions
            .iter()
            .find(|a| a.subject() == Some(subject) && pick(a))
    }

    /// Whether any action is one `pick` accepts.
    pub fn any(&self, pick: impl Fn(&Action) -> bool) -> bool {
        self.actions.iter().any(pick)
    }
}

impl fmt::Display for Plan {
    /// One action per line, each ended by a newline.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for action in &self.actions {
            writeln!(f, "{action}")?;
        }
        Ok(())
    }
}

/// Why the orch binary would be uploaded to a host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UploadWhy {
    /// No binary is installed there.
    NotInstalled,
    /// The installed binary is not this one.
    Differs,
}

/// How a host runs its node, which decides the service file rendered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServiceFile {
    /// A systemd unit.
    SystemdUnit,
    /// A supervisor script (no systemd on the host).
    SupervisorScript,
}

impl fmt::Display for ServiceFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::SystemdUnit => "systemd unit",
            Self::SupervisorScript => "supervisor script",
        })
    }
}

/// One decision of a plan, with the machine (container, droplet, host) it concerns and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    // --- docker: the image, the network, each node's volume and container ---
    /// Build the node image.
    BuildImage {
        /// The image's name.
        image: String,
        /// Why (`missing`, `binary changed`).
        reason: String,
    },
    /// The node image carries this binary already.
    ImageCurrent {
        /// The image's name.
        image: String,
    },
    /// Create the cluster's network.
    CreateNetwork {
        /// The network's name.
        network: String,
        /// The subnet it would get.
        subnet: String,
    },
    /// The cluster's network exists.
    NetworkExists {
        /// The network's name.
        network: String,
        /// Its subnet.
        subnet: String,
    },
    /// Create a node's volume.
    CreateVolume {
        /// The volume's name.
        volume: String,
    },
    /// Create (and start) a node's container, which does not exist.
    CreateContainer {
        /// The container's name.
        container: String,
        /// Its cluster address.
        ip: String,
    },
    /// Recreate a node's container: its spec (command, image, mounts) changed.
    RecreateContainer {
        /// The container's name.
        container: String,
    },
    /// Start a node's container, which exists but does not run.
    StartContainer {
        /// The container's name.
        container: String,
        /// Its Docker status (`exited`, `created`, ...).
        status: String,
    },
    /// A node's container runs as specified.
    ContainerUnchanged {
        /// The container's name.
        container: String,
    },

    // --- digital_ocean: droplets and the firewall ---
    /// Create a droplet.
    CreateDroplet {
        /// The droplet's name.
        droplet: String,
        /// Its region.
        region: String,
        /// Its size slug.
        size: String,
        /// Its image slug.
        image: String,
    },
    /// A droplet exists.
    DropletExists {
        /// The droplet's name.
        droplet: String,
        /// Its id.
        id: u64,
        /// Its status (`new`, `active`, ...).
        status: String,
        /// Its public IPv4 address, when it has one.
        ip: Option<IpAddr>,
    },
    /// How the droplets to create are batched.
    CreateDropletsIn {
        /// Droplets to create.
        droplets: usize,
        /// Create requests.
        requests: usize,
        /// Droplets per request at most.
        batch: usize,
    },
    /// Create the cluster's firewall.
    CreateFirewall {
        /// The firewall's name.
        firewall: String,
        /// The tag it applies to.
        tag: String,
        /// The inbound rules, e.g. `22/tcp 80/tcp`.
        inbound: String,
    },
    /// The cluster's firewall exists.
    FirewallExists {
        /// The firewall's name.
        firewall: String,
        /// Its id.
        id: String,
    },
    /// Each droplet then goes through the ssh provider's steps (upload, render, start), once
    /// it exists (a new droplet has no binary: upload as a new machine).
    InstallOverSsh,

    // --- ssh: each host ---
    /// A host does not answer over SSH now; nothing is known of it.
    Unreachable {
        /// The host's name.
        machine: String,
        /// Its address.
        address: String,
        /// Its SSH port.
        port: u16,
        /// Why (the error chain).
        error: String,
    },
    /// A host's install dir belongs to another cluster: `orch up` would refuse it.
    ForeignInstallDir {
        /// The host's name.
        machine: String,
        /// The install dir.
        dir: String,
        /// The cluster that owns it.
        owner: String,
    },
    /// Upload the orch binary to a host.
    Upload {
        /// The host's name.
        machine: String,
        /// Why.
        why: UploadWhy,
    },
    /// A host has this orch binary already.
    BinaryUpToDate {
        /// The host's name.
        machine: String,
    },
    /// Write a host's service file: it is missing or differs from the one rendered now.
    WriteService {
        /// The host's name.
        machine: String,
        /// Which file.
        file: ServiceFile,
    },
    /// A host's service file is the one rendered now.
    ServiceUpToDate {
        /// The host's name.
        machine: String,
        /// Which file.
        file: ServiceFile,
    },
    /// Start a host's node: it does not run.
    StartNode {
        /// The host's name.
        machine: String,
    },
    /// Restart a host's node: its binary or service changed.
    RestartNode {
        /// The host's name.
        machine: String,
    },
    /// A host's node runs with the binary and service file it is to run with.
    NodeUnchanged {
        /// The host's name.
        machine: String,
    },

    // --- local: each node's process ---
    /// A new cluster: its ports (checked free) and dirs.
    LayOut {
        /// `1 master and 1 agent, API 127.0.0.1:5050`.
        shape: String,
        /// Where data, logs and pid files go.
        dir: String,
    },
    /// Start a node's process.
    StartProcess {
        /// The node's name.
        node: String,
        /// Where it listens.
        listen: String,
        /// Why: `new` or `not running`.
        why: String,
    },
    /// A node's recorded process runs.
    ProcessRunning {
        /// The node's name.
        node: String,
        /// Its pid.
        pid: i32,
    },

    // --- every provider ---
    /// Make (or keep) the cluster's identity in its dir: the CA and the management token,
    /// and a certificate for every node that has none that fits.
    Identity {
        /// The cluster dir, as shown.
        dir: String,
        /// Whether the CA exists already.
        exists: bool,
    },
    /// Register the gitops repos, once the cluster runs.
    RegisterRepos {
        /// The repos' effective names.
        repos: Vec<String>,
    },
}

impl Action {
    /// The machine, container, volume or droplet the action is about; None for the
    /// cluster-wide ones (image, network, firewall, repos).
    pub fn subject(&self) -> Option<&str> {
        match self {
            Self::CreateVolume { volume: s }
            | Self::CreateContainer { container: s, .. }
            | Self::RecreateContainer { container: s }
            | Self::StartContainer { container: s, .. }
            | Self::ContainerUnchanged { container: s }
            | Self::CreateDroplet { droplet: s, .. }
            | Self::DropletExists { droplet: s, .. }
            | Self::Unreachable { machine: s, .. }
            | Self::ForeignInstallDir { machine: s, .. }
            | Self::Upload { machine: s, .. }
            | Self::BinaryUpToDate { machine: s }
            | Self::WriteService { machine: s, .. }
            | Self::ServiceUpToDate { machine: s, .. }
            | Self::StartNode { machine: s }
            | Self::RestartNode { machine: s }
            | Self::NodeUnchanged { machine: s }
            | Self::StartProcess { node: s, .. }
            | Self::ProcessRunning { node: s, .. } => Some(s),
            Self::BuildImage { .. }
            | Self::ImageCurrent { .. }
            | Self::CreateNetwork { .. }
            | Self::NetworkExists { .. }
            | Self::CreateDropletsIn { .. }
            | Self::CreateFirewall { .. }
            | Self::FirewallExists { .. }
            | Self::InstallOverSsh
            | Self::LayOut { .. }
            | Self::Identity { .. }
            | Self::RegisterRepos { .. } => None,
        }
    }
}

impl fmt::Display for Action {
    /// The action's line of `orch up --plan`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BuildImage { image, reason } => write!(f, "build image {image} ({reason})"),
            Self::ImageCurrent { image } => {
                write!(f, "image {image} is current (binary unchanged)")
            }
            Self::CreateNetwork { network, subnet } => {
                write!(f, "create network {network} {subnet}")
            }
            Self::NetworkExists { network, subnet } => {
                write!(f, "network {network} {subnet} exists")
            }
            Self::CreateVolume { volume } => write!(f, "create volume {volume}"),
            Self::CreateContainer { container, ip } => {
                write!(f, "create container {container} ({ip})")
            }
            Self::RecreateContainer { container } => {
                write!(f, "recreate (spec changed) {container}")
            }
            Self::StartContainer { container, status } => {
                write!(f, "start ({status}) {container}")
            }
            Self::ContainerUnchanged { container } => {
                write!(f, "{container} running as specified")
            }
            Self::CreateDroplet {
                droplet,
                region,
                size,
                image,
            } => write!(f, "create droplet {droplet} ({region}, {size}, {image})"),
            Self::DropletExists {
                droplet,
                id,
                status,
                ip,
            } => {
                write!(f, "droplet {droplet} exists (id {id}, {status}")?;
                if let Some(ip) = ip {
                    write!(f, ", {ip}")?;
                }
                write!(f, ")")
            }
            Self::CreateDropletsIn {
                droplets,
                requests,
                batch,
            } => write!(
                f,
                "{droplets} droplet(s) to create in {requests} request(s) of at most {batch}"
            ),
            Self::CreateFirewall {
                firewall,
                tag,
                inbound,
            } => write!(
                f,
                "create firewall {firewall} for tag {tag} (inbound {inbound})"
            ),
            Self::FirewallExists { firewall, id } => write!(f, "firewall {firewall} exists ({id})"),
            Self::InstallOverSsh => write!(
                f,
                "install and start orch on every droplet over SSH (pinned host keys)"
            ),
            Self::Unreachable {
                machine,
                address,
                port,
                error,
            } => write!(
                f,
                "reach {machine} over SSH ({address}:{port}): not now: {error}"
            ),
            Self::ForeignInstallDir {
                machine,
                dir,
                owner,
            } => write!(
                f,
                "{machine}: {dir} belongs to cluster {owner}: `orch up` would refuse it"
            ),
            Self::Upload { machine, why } => write!(
                f,
                "upload orch to {machine} ({})",
                match why {
                    UploadWhy::NotInstalled => "not installed",
                    UploadWhy::Differs => "binary differs",
                }
            ),
            Self::BinaryUpToDate { machine } => write!(f, "{machine}: orch binary up to date"),
            Self::WriteService { machine, file } => {
                write!(f, "write the {file} of {machine} (missing or changed)")
            }
            Self::ServiceUpToDate { machine, file } => {
                write!(f, "{machine}: {file} up to date")
            }
            Self::StartNode { machine } => write!(f, "start {machine} (not running)"),
            Self::RestartNode { machine } => {
                write!(f, "restart {machine} (binary or service changed)")
            }
            Self::NodeUnchanged { machine } => write!(f, "{machine}: running as specified"),
            Self::LayOut { shape, dir } => {
                write!(
                    f,
                    "lay out {shape} (ports checked free); data and logs in {dir}"
                )
            }
            Self::StartProcess { node, listen, why } => {
                write!(f, "start {node} on {listen} ({why})")
            }
            Self::ProcessRunning { node, pid } => write!(f, "{node}: running (pid {pid})"),
            Self::Identity { dir, exists: false } => write!(
                f,
                "make the cluster's CA and management token in {dir}, and a certificate per node"
            ),
            Self::Identity { dir, exists: true } => write!(
                f,
                "keep the cluster's CA and management token in {dir}; issue a node's \
                 certificate where it is missing or names other addresses"
            ),
            Self::RegisterRepos { repos } => {
                write!(f, "register gitops repo(s) {}", repos.join(", "))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_action_prints_its_plan_line() {
        let ip: IpAddr = "10.0.0.2".parse().expect("an address");
        let cases = [
            (
                Action::BuildImage {
                    image: "orch-node:demo".into(),
                    reason: "missing".into(),
                },
                "build image orch-node:demo (missing)",
            ),
            (
                Action::ImageCurrent {
                    image: "orch-node:demo".into(),
                },
                "image orch-node:demo is current (binary unchanged)",
            ),
            (
                Action::CreateNetwork {
                    network: "orch-demo".into(),
                    subnet: "10.0.0.0/24".into(),
                },
                "create network orch-demo 10.0.0.0/24",
            ),
            (
                Action::NetworkExists {
                    network: "orch-demo".into(),
                    subnet: "10.0.0.0/24".into(),
                },
                "network orch-demo 10.0.0.0/24 exists",
            ),
            (
                Action::CreateVolume {
                    volume: "demo-master-1".into(),
                },
                "create volume demo-master-1",
            ),
            (
                Action::CreateContainer {
                    container: "demo-master-1".into(),
                    ip: ip.to_string(),
                },
                "create container demo-master-1 (10.0.0.2)",
            ),
            (
                Action::RecreateContainer {
                    container: "demo-agent-1".into(),
                },
                "recreate (spec changed) demo-agent-1",
            ),
            (
                Action::StartContainer {
                    container: "demo-agent-1".into(),
                    status: "exited".into(),
                },
                "start (exited) demo-agent-1",
            ),
            (
                Action::ContainerUnchanged {
                    container: "demo-agent-1".into(),
                },
                "demo-agent-1 running as specified",
            ),
            (
                Action::CreateDroplet {
                    droplet: "demo-master-2".into(),
                    region: "nyc3".into(),
                    size: "s-2vcpu-4gb".into(),
                    image: "debian-12-x64".into(),
                },
                "create droplet demo-master-2 (nyc3, s-2vcpu-4gb, debian-12-x64)",
            ),
            (
                Action::DropletExists {
                    droplet: "demo-master-1".into(),
                    id: 7,
                    status: "active".into(),
                    ip: Some(ip),
                },
                "droplet demo-master-1 exists (id 7, active, 10.0.0.2)",
            ),
            (
                Action::DropletExists {
                    droplet: "demo-master-1".into(),
                    id: 7,
                    status: "new".into(),
                    ip: None,
                },
                "droplet demo-master-1 exists (id 7, new)",
            ),
            (
                Action::CreateDropletsIn {
                    droplets: 3,
                    requests: 1,
                    batch: 10,
                },
                "3 droplet(s) to create in 1 request(s) of at most 10",
            ),
            (
                Action::CreateFirewall {
                    firewall: "orch-demo".into(),
                    tag: "orch-cluster-demo".into(),
                    inbound: "22/tcp 80/tcp".into(),
                },
                "create firewall orch-demo for tag orch-cluster-demo (inbound 22/tcp 80/tcp)",
            ),
            (
                Action::FirewallExists {
                    firewall: "orch-demo".into(),
                    id: "fw-1".into(),
                },
                "firewall orch-demo exists (fw-1)",
            ),
            (
                Action::InstallOverSsh,
                "install and start orch on every droplet over SSH (pinned host keys)",
            ),
            (
                Action::Unreachable {
                    machine: "agent-1".into(),
                    address: "10.0.0.3".into(),
                    port: 22,
                    error: "refused".into(),
                },
                "reach agent-1 over SSH (10.0.0.3:22): not now: refused",
            ),
            (
                Action::ForeignInstallDir {
                    machine: "agent-1".into(),
                    dir: "/opt/orch/x".into(),
                    owner: "other".into(),
                },
                "agent-1: /opt/orch/x belongs to cluster other: `orch up` would refuse it",
            ),
            (
                Action::Upload {
                    machine: "agent-1".into(),
                    why: UploadWhy::NotInstalled,
                },
                "upload orch to agent-1 (not installed)",
            ),
            (
                Action::Upload {
                    machine: "agent-1".into(),
                    why: UploadWhy::Differs,
                },
                "upload orch to agent-1 (binary differs)",
            ),
            (
                Action::BinaryUpToDate {
                    machine: "agent-1".into(),
                },
                "agent-1: orch binary up to date",
            ),
            (
                Action::WriteService {
                    machine: "agent-1".into(),
                    file: ServiceFile::SystemdUnit,
                },
                "write the systemd unit of agent-1 (missing or changed)",
            ),
            (
                Action::ServiceUpToDate {
                    machine: "agent-1".into(),
                    file: ServiceFile::SupervisorScript,
                },
                "agent-1: supervisor script up to date",
            ),
            (
                Action::StartNode {
                    machine: "master-3".into(),
                },
                "start master-3 (not running)",
            ),
            (
                Action::RestartNode {
                    machine: "master-3".into(),
                },
                "restart master-3 (binary or service changed)",
            ),
            (
                Action::NodeUnchanged {
                    machine: "master-3".into(),
                },
                "master-3: running as specified",
            ),
            (
                Action::LayOut {
                    shape: "1 master and 1 agent, API 127.0.0.1:5050".into(),
                    dir: ".orch/local".into(),
                },
                "lay out 1 master and 1 agent, API 127.0.0.1:5050 (ports checked free); \
                 data and logs in .orch/local",
            ),
            (
                Action::StartProcess {
                    node: "agent-1".into(),
                    listen: "127.0.0.1:5051".into(),
                    why: "not running".into(),
                },
                "start agent-1 on 127.0.0.1:5051 (not running)",
            ),
            (
                Action::ProcessRunning {
                    node: "master-1".into(),
                    pid: 42,
                },
                "master-1: running (pid 42)",
            ),
            (
                Action::Identity {
                    dir: ".orch/demo".into(),
                    exists: false,
                },
                "make the cluster's CA and management token in .orch/demo, and a certificate \
                 per node",
            ),
            (
                Action::RegisterRepos {
                    repos: vec!["apps".into(), "infra".into()],
                },
                "register gitops repo(s) apps, infra",
            ),
        ];
        for (action, line) in &cases {
            assert_eq!(action.to_string(), *line);
        }
        let plan = Plan {
            actions: cases.iter().map(|(a, _)| a.clone()).collect(),
        };
        let lines: Vec<String> = cases.iter().map(|(_, l)| (*l).to_owned()).collect();
        assert_eq!(plan.to_string(), format!("{}\n", lines.join("\n")));
        let upload = plan.find("agent-1", |a| matches!(a, Action::Upload { .. }));
        assert_eq!(
            upload.map(ToString::to_string).as_deref(),
            Some("upload orch to agent-1 (not installed)")
        );
        assert!(plan.find("agent-9", |_| true).is_none());
        assert!(plan.any(|a| matches!(a, Action::InstallOverSsh)));
    }
}

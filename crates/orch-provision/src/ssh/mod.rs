//! The ssh provider: an orch cluster on existing hosts reached over SSH (the infra file's
//! `ssh:` section), or on any hosts already resolved by another provider
//! ([`SshProvider::for_hosts`], used for droplets).
//!
//! Per host it checks the host key (pin or known_hosts), logs in (key file or ssh-agent),
//! uploads the orch binary through SFTP when its sha256 differs, renders the service from
//! `templates/` (a systemd unit, or a supervisor script started with setsid where systemd
//! does not run), and starts, restarts or leaves the node as its stamp and liveness say (see
//! [`node`]). Each host has its own install root with a marker naming the cluster; `destroy`
//! removes only roots whose marker names this cluster, after killing every process under it.
//!
//! May depend on: provision::{cluster_spec, infra, provider, state_file,
//! steps, templates}.

mod decide;
mod error;
pub mod known_hosts;
pub mod node;
mod provider;
pub mod session;
mod steps;

use crate::cluster_spec::{Machine, MachineRole, NodeSpec, WantedMachine};
use crate::infra::Infra;
use crate::plan::{Action, Plan};
use crate::provider::{Change, MachineStatus, Provider, ProviderError, ProviderOptions};
use crate::state_file::{State, StateFile};
use crate::steps::{Progress, Step};
pub use error::SshError;
use node::{Layout, ServiceKind};
pub use session::Identity;
use session::{Connection, Target};
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long `orch up` waits for a host to answer SSH.
pub const SSH_TIMEOUT: Duration = Duration::from_secs(300);
/// How long `orch destroy` retries a host that does not answer.
const DESTROY_SSH_TIMEOUT: Duration = Duration::from_secs(30);

/// One host, resolved: everything needed to reach it and run its node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SshHost {
    /// The machine's name in the cluster (`master-1`, `agent-2`, ...).
    pub name: String,
    /// What it runs.
    pub role: MachineRole,
    /// Where SSH reaches it (IP or DNS name).
    pub address: String,
    /// Its SSH port.
    pub port: u16,
    /// Its login.
    pub user: String,
    /// The address the cluster's processes listen on and advertise.
    pub ip: IpAddr,
    /// Its address on a private network the cluster's nodes share, if any (droplets in a
    /// VPC).
    pub private_ip: Option<IpAddr>,
    /// Its install root (absolute).
    pub install_dir: String,
    /// Its pinned host key (`ssh-ed25519 AAAA...`); checked instead of known_hosts.
    pub host_key: Option<String>,
    /// Record its host key in known_hosts at the first connection (a machine the cluster
    /// just made, e.g. a droplet), as `--trust-on-first-use` does for every host.
    pub accept_first_key: bool,
    /// How to log in.
    pub identity: Identity,
    /// Run installation commands through `sudo -n`.
    pub sudo: bool,
    /// An agent's own `--resources`.
    pub resources: Option<String>,
    /// An agent's own `--attributes`.
    pub attributes: Option<String>,
}

impl SshHost {
    /// The machine it is, for the state file.
    pub fn machine(&self) -> Machine {
        Machine {
            name: self.name.clone(),
            role: self.role,
            ip: self.ip,
            private_ip: self.private_ip,
            id: format!("{}@{}:{}", self.user, self.address, self.port),
            install_dir: self.install_dir.clone(),
            resources: self.resources.clone(),
            attributes: self.attributes.clone(),
        }
    }
}

/// `path` of the infra file: `~/` expanded, relative to `base`.
pub fn resolve_path(base: &Path, path: &str) -> PathBuf {
    if let Some(rest) = path.strip_prefix("~/") {
        if let Some(home) = std::env::var_os("HOME") {
            return PathBuf::from(home).join(rest);
        }
    }
    base.join(path)
}

/// The default known_hosts file, `~/.ssh/known_hosts`.
pub fn default_known_hosts() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/root"))
        .join(".ssh/known_hosts")
}

/// The ssh provider.
#[derive(Debug)]
pub struct SshProvider {
    cluster: String,
    hosts: Vec<SshHost>,
    binary: PathBuf,
    known_hosts: PathBuf,
    trust_on_first_use: bool,
    ssh_timeout: Duration,
    connections: HashMap<String, Arc<Connection>>,
    kinds: HashMap<String, ServiceKind>,
    binary_sha: Option<String>,
    /// Each host's node as the infra file specifies it, from which the plan renders the
    /// service file it compares with the host's (empty for hosts of another provider, whose
    /// plan does not look into them).
    nodes: Vec<NodeSpec>,
}

impl SshProvider {
    /// The provider of the infra file's `ssh:` section: hosts named `master-N`, `agent-N`,
    /// `public-agent-N` in the order the file lists them per role.
    pub fn from_infra(infra: &Infra, options: &ProviderOptions) -> Self {
        let ssh = &infra.ssh;
        let identity = match &ssh.identity_file {
            Some(file) => Identity::File(resolve_path(&options.base_dir, file)),
            None => Identity::Agent,
        };
        let mut counts: HashMap<MachineRole, u32> = HashMap::new();
        let hosts: Vec<SshHost> = ssh
            .hosts
            .iter()
            .filter_map(|entry| {
                let n = counts.entry(entry.role).or_default();
                *n += 1;
                Some(SshHost {
                    name: format!("{}-{n}", entry.role.prefix()),
                    role: entry.role,
                    address: entry.address.clone(),
                    port: entry.port.unwrap_or(ssh.port),
                    user: entry.user.clone().unwrap_or_else(|| ssh.user.clone()),
                    // validate() made sure every host has one.
                    ip: entry.cluster_ip()?,
                    private_ip: None,
                    install_dir: entry
                        .install_dir
                        .clone()
                        .unwrap_or_else(|| ssh.install_dir.clone()),
                    host_key: entry.host_key.clone(),
                    accept_first_key: false,
                    identity: identity.clone(),
                    sudo: ssh.sudo,
                    resources: entry.resources.clone(),
                    attributes: entry.attributes.clone(),
                })
            })
            .collect();
        let known_hosts = ssh
            .known_hosts
            .as_deref()
            .map_or_else(default_known_hosts, |k| resolve_path(&options.base_dir, k));
        let machines: Vec<Machine> = hosts.iter().map(SshHost::machine).collect();
        let mut provider =
            Self::for_hosts(hosts, options, &infra.cluster).with_known_hosts(known_hosts);
        provider.nodes = crate::cluster_spec::node_specs(
            infra,
            &machines,
            &options.cluster_dir,
            &crate::cluster_spec::default_tls_dir,
        );
        // The files as they are now: the plan compares the service the run would write.
        crate::cluster_pki::stamp_tls(&mut provider.nodes);
        provider
    }

    /// A provider driving `hosts` as they are (e.g. droplets another provider made), with
    /// `~/.ssh/known_hosts` unless [`SshProvider::with_known_hosts`] says otherwise.
    pub fn for_hosts(hosts: Vec<SshHost>, options: &ProviderOptions, cluster: &str) -> Self {
        Self {
            cluster: cluster.to_owned(),
            hosts,
            binary: options.binary.clone(),
            known_hosts: default_known_hosts(),
            trust_on_first_use: options.trust_on_first_use,
            ssh_timeout: SSH_TIMEOUT,
            connections: HashMap::new(),
            kinds: HashMap::new(),
            binary_sha: None,
            nodes: Vec::new(),
        }
    }

    /// Checks host keys against (and records them in) `path`.
    pub fn with_known_hosts(mut self, path: PathBuf) -> Self {
        self.known_hosts = path;
        self
    }

    /// Waits at most `timeout` for each host to answer SSH in step wait-ssh.
    pub fn with_ssh_timeout(mut self, timeout: Duration) -> Self {
        self.ssh_timeout = timeout;
        self
    }

    /// The hosts.
    pub fn hosts(&self) -> &[SshHost] {
        &self.hosts
    }

    /// The host of machine `name`.
    pub fn host(&self, name: &str) -> Option<&SshHost> {
        self.hosts.iter().find(|h| h.name == name)
    }

    /// How [`session`] reaches `host`.
    pub fn target(&self, host: &SshHost) -> Result<Target, SshError> {
        let pinned = match &host.host_key {
            Some(key) => {
                let text = key.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
                Some(
                    russh::keys::PublicKey::from_openssh(&text).map_err(|e| SshError::BadPin {
                        host: host.name.clone(),
                        reason: e.to_string(),
                    })?,
                )
            }
            None => None,
        };
        Ok(Target {
            name: host.name.clone(),
            address: host.address.clone(),
            port: host.port,
            user: host.user.clone(),
            pinned,
            known_hosts: self.known_hosts.clone(),
            trust_on_first_use: self.trust_on_first_use || host.accept_first_key,
            identity: host.identity.clone(),
            sudo: host.sudo,
        })
    }

    /// Waits until `host` answers SSH (host key accepted, login done), at most `timeout`;
    /// prints a line now and then while it waits. The connection is kept for later steps.
    pub async fn wait_ssh(
        &mut self,
        host: &SshHost,
        timeout: Duration,
        progress: &Progress,
    ) -> Result<(), SshError> {
        let connection = open_waiting(self.target(host)?, timeout, progress).await?;
        self.connections.insert(host.name.clone(), connection);
        Ok(())
    }

    fn layout(&self, host: &SshHost) -> Layout {
        Layout::new(&host.install_dir, &self.cluster, &host.name)
    }

    /// The connection to `name`, made when there is none (one attempt).
    async fn connection(&mut self, name: &str) -> Result<Arc<Connection>, ProviderError> {
        if let Some(connection) = self.connections.get(name).filter(|c| !c.is_closed()) {
            return Ok(connection.clone());
        }
        let host = self.known(name)?.clone();
        let target = self
            .target(&host)
            .map_err(|e| ProviderError::on_machine(Step::WaitSsh, name, e))?;
        let connection = Arc::new(
            Connection::open(&target)
                .await
                .map_err(|e| ProviderError::on_machine(Step::WaitSsh, name, e))?,
        );
        self.connections.insert(name.to_owned(), connection.clone());
        Ok(connection)
    }

    fn known(&self, name: &str) -> Result<&SshHost, ProviderError> {
        self.host(name).ok_or_else(|| {
            ProviderError::Refused(format!(
                "machine {name} is not among the hosts of the infra file"
            ))
        })
    }

    async fn connections_for(
        &mut self,
        names: impl Iterator<Item = &str>,
    ) -> Result<Vec<(SshHost, Arc<Connection>)>, ProviderError> {
        let mut out = Vec::new();
        for name in names {
            let connection = self.connection(name).await?;
            out.push((self.known(name)?.clone(), connection));
        }
        Ok(out)
    }

    async fn kind(
        &mut self,
        host: &SshHost,
        connection: &Connection,
    ) -> Result<ServiceKind, SshError> {
        if let Some(kind) = self.kinds.get(&host.name) {
            return Ok(*kind);
        }
        let kind = probe(connection).await?;
        self.kinds.insert(host.name.clone(), kind);
        Ok(kind)
    }

    async fn local_sha(&mut self) -> Result<String, ProviderError> {
        if let Some(sha) = &self.binary_sha {
            return Ok(sha.clone());
        }
        let path = self.binary.clone();
        let sha = tokio::task::spawn_blocking(move || sha256_file(&path))
            .await
            .map_err(|e| ProviderError::failed("hashing the orch binary", e))?
            .map_err(|e| ProviderError::failed("hashing the orch binary", e))?;
        self.binary_sha = Some(sha.clone());
        Ok(sha)
    }

    async fn wait_all(
        &mut self,
        machines: &[Machine],
        progress: &Progress,
    ) -> Result<(), ProviderError> {
        progress.step(Step::WaitSsh)?;
        let mut jobs = Vec::new();
        for machine in machines {
            let host = self.known(&machine.name)?.clone();
            let target = self.target(&host);
            let timeout = self.ssh_timeout;
            jobs.push(async move {
                progress.enter(Step::WaitSsh, &host.name)?;
                let begin = Instant::now();
                let target =
                    target.map_err(|e| ProviderError::on_machine(Step::WaitSsh, &host.name, e))?;
                let connection = open_waiting(target, timeout, progress)
                    .await
                    .map_err(|e| ProviderError::on_machine(Step::WaitSsh, &host.name, e))?;
                progress.machine(
                    &host.name,
                    format!(
                        "SSH {}@{}:{} answers ({:.1}s)",
                        host.user,
                        host.address,
                        host.port,
                        begin.elapsed().as_secs_f64()
                    ),
                );
                let kind = probe(&connection)
                    .await
                    .map_err(|e| ProviderError::on_machine(Step::WaitSsh, &host.name, e))?;
                Ok::<_, ProviderError>((host.name.clone(), connection, kind))
            });
        }
        for (name, connection, kind) in first_error(futures::future::join_all(jobs).await)? {
            self.kinds.insert(name.clone(), kind);
            self.connections.insert(name, connection);
        }
        Ok(())
    }
}

/// Opens a connection to `target`, retrying until `timeout`, printing while it waits.
async fn open_waiting(
    target: Target,
    timeout: Duration,
    progress: &Progress,
) -> Result<Arc<Connection>, SshError> {
    let name = target.name.clone();
    Connection::open_with_retries(&target, timeout, |waited, error| {
        progress.machine(&name, format!("waiting for SSH ({waited:.0?}): {error}"));
    })
    .await
    .map(Arc::new)
}

/// How the host keeps a node running: systemd when it runs the host.
async fn probe(connection: &Connection) -> Result<ServiceKind, SshError> {
    let out = connection
        .run_ok("probing for systemd", node::probe_script())
        .await?;
    Ok(if node::field(&out, "systemd") == Some("1") {
        ServiceKind::Systemd
    } else {
        ServiceKind::Supervised
    })
}

fn first_error<T>(results: Vec<Result<T, ProviderError>>) -> Result<Vec<T>, ProviderError> {
    results.into_iter().collect()
}

/// Hex sha256 of a file's content.
fn sha256_file(path: &Path) -> Result<String, SshError> {
    use std::io::Read as _;
    let local = |source| SshError::Local {
        path: path.to_owned(),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(local)?;
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buffer).map_err(local)?;
        if n == 0 {
            break;
        }
        context.update(&buffer[..n]);
    }
    Ok(hex::encode(context.finish()))
}

#[cfg(test)]
mod tests;

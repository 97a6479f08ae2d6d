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

pub mod known_hosts;
pub mod node;
pub mod session;

use crate::cluster_spec::{Machine, MachineRole, NodeSpec, WantedMachine};
use crate::infra::Infra;
use crate::provider::{Change, MachineStatus, Provider, ProviderError, ProviderOptions};
use crate::state_file::{State, StateFile};
use crate::steps::{Progress, Step};
use crate::templates::TemplateError;
use node::{Action, Layout, ServiceKind};
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

/// Why the ssh provider failed on a host.
#[derive(Debug, thiserror::Error)]
pub enum SshError {
    /// The host offered a key no pin or known_hosts entry names.
    #[error(
        "the host key of {host} is unknown: {fingerprint} ({key}); pin it in the infra file \
         (host_key: \"{key}\"), add the line `{label} {key}` to {}, or run \
         `orch up --trust-on-first-use` to accept it and record it there",
        known_hosts.display()
    )]
    UnknownHostKey {
        /// The host.
        host: String,
        /// How known_hosts names it.
        label: String,
        /// The offered key, `type base64`.
        key: String,
        /// Its fingerprint.
        fingerprint: String,
        /// The known_hosts file consulted.
        known_hosts: PathBuf,
    },
    /// The host offered a key other than the pinned or known one: always refused.
    #[error(
        "the host key of {host} differs from the expected one: expected {expected}, offered \
         {offered}; refused (the host may have been reinstalled, or someone is in between: \
         check, then fix the pin or the known_hosts entry)"
    )]
    HostKeyChanged {
        /// The host.
        host: String,
        /// The expected key's fingerprint and its source.
        expected: String,
        /// The offered key's fingerprint.
        offered: String,
    },
    /// The host offered a certificate, which is not checked.
    #[error("{host} offered a host certificate; pin its plain host key instead")]
    CertificateHostKey {
        /// The host.
        host: String,
    },
    /// The pinned key in the infra file is not a public key.
    #[error("the pinned host_key of {host} is not an OpenSSH public key: {reason}")]
    BadPin {
        /// The host.
        host: String,
        /// The parser's complaint.
        reason: String,
    },
    /// The known_hosts file cannot be read.
    #[error("cannot read {}", path.display())]
    KnownHostsRead {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The known_hosts file cannot be written (trust on first use).
    #[error("cannot record the host key in {}", path.display())]
    KnownHostsWrite {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// No SSH connection could be made (yet).
    #[error("cannot connect to {host}: {reason}")]
    Connect {
        /// The host.
        host: String,
        /// The cause.
        reason: String,
    },
    /// The host did not answer SSH in time.
    #[error("{host} did not answer SSH within {waited:?} (last: {last})")]
    Timeout {
        /// The host.
        host: String,
        /// How long it waited.
        waited: Duration,
        /// The last error.
        last: String,
    },
    /// The private key file cannot be used.
    #[error("cannot load the private key {}", path.display())]
    Key {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: russh::keys::Error,
    },
    /// ssh-agent cannot be used.
    #[error("{reason}")]
    Agent {
        /// What went wrong.
        reason: String,
    },
    /// The host refused the login.
    #[error("{host} refused the login of {user} with {tried}")]
    AuthRefused {
        /// The host.
        host: String,
        /// The login.
        user: String,
        /// The keys tried.
        tried: String,
    },
    /// The SSH session failed.
    #[error("SSH session with {host} failed")]
    Ssh {
        /// The host.
        host: String,
        /// The cause.
        source: russh::Error,
    },
    /// A script on the host failed.
    #[error("{what} failed on {host} (exit {status}): {output}")]
    Command {
        /// The host.
        host: String,
        /// What the script does.
        what: String,
        /// Its exit status.
        status: u32,
        /// What it printed.
        output: String,
    },
    /// SFTP failed.
    #[error("SFTP to {host} failed for {path}")]
    Sftp {
        /// The host.
        host: String,
        /// The remote path.
        path: String,
        /// The cause.
        source: russh_sftp::client::error::Error,
    },
    /// Writing the upload failed.
    #[error("uploading to {host}:{path} failed")]
    Upload {
        /// The host.
        host: String,
        /// The remote path.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A local file cannot be read.
    #[error("cannot read {}", path.display())]
    Local {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The binary on the host does not match after the upload.
    #[error("the orch binary on {host} has sha256 {found} after the upload, not {wanted}")]
    UploadMismatch {
        /// The host.
        host: String,
        /// The local binary's hash.
        wanted: String,
        /// The remote one's.
        found: String,
    },
    /// The install dir belongs to something else.
    #[error(
        "{dir} on {host} is not this cluster's ({owner}); choose another install_dir or remove it"
    )]
    ForeignInstallDir {
        /// The host.
        host: String,
        /// The install dir.
        dir: String,
        /// What owns it.
        owner: String,
    },
    /// A service template cannot be rendered.
    #[error(transparent)]
    Template(#[from] TemplateError),
}

impl SshError {
    /// True for failures a retry may cure (the host is not up yet).
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Connect { .. })
    }
}

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
    /// Its install root (absolute).
    pub install_dir: String,
    /// Its pinned host key (`ssh-ed25519 AAAA...`); checked instead of known_hosts.
    pub host_key: Option<String>,
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
        let hosts = ssh
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
                    install_dir: entry
                        .install_dir
                        .clone()
                        .unwrap_or_else(|| ssh.install_dir.clone()),
                    host_key: entry.host_key.clone(),
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
        Self::for_hosts(hosts, options, &infra.cluster).with_known_hosts(known_hosts)
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
            trust_on_first_use: self.trust_on_first_use,
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

    /// The plan's lines (see [`Provider::plan`]).
    async fn plan_lines(&mut self, wanted: &[WantedMachine]) -> Result<Vec<String>, ProviderError> {
        let sha = self.local_sha().await?;
        let mut lines = Vec::new();
        for machine in wanted {
            let host = self.known(&machine.name)?.clone();
            let name = &host.name;
            let connection = match self.connection(name).await {
                Ok(connection) => connection,
                Err(error) => {
                    lines.push(format!(
                        "reach {name} over SSH ({}:{}): not now: {}",
                        host.address,
                        host.port,
                        orch_core::errors::chain(&error)
                    ));
                    continue;
                }
            };
            let failed = |e: SshError| ProviderError::failed(format!("inspecting {name}"), e);
            let kind = self.kind(&host, &connection).await.map_err(failed)?;
            let layout = self.layout(&host);
            let out = connection
                .run_ok(
                    "inspecting the install dir",
                    &node::inspect_script(&layout, kind),
                )
                .await
                .map_err(failed)?;
            let marker = node::field(&out, "marker").unwrap_or("");
            if !marker.is_empty() && marker != self.cluster {
                lines.push(format!(
                    "{name}: {} belongs to cluster {marker}: `orch up` would refuse it",
                    layout.dir
                ));
                continue;
            }
            let remote_sha = node::field(&out, "sha").unwrap_or("");
            if remote_sha.is_empty() {
                lines.push(format!("upload orch to {name} (not installed)"));
            } else if remote_sha != sha {
                lines.push(format!("upload orch to {name} (binary differs)"));
            } else {
                lines.push(format!("{name}: orch binary up to date"));
            }
            lines.push(format!(
                "render the service of {name} ({}; rendered once the cluster's addresses are known)",
                match kind {
                    ServiceKind::Systemd => "systemd unit",
                    ServiceKind::Supervised => "supervisor script, no systemd",
                }
            ));
            let alive = node::field(&out, "alive") == Some("1");
            let started = node::field(&out, "started").filter(|s| !s.is_empty());
            let current = node::field(&out, "current").unwrap_or("");
            let binary_changes = remote_sha != sha;
            let action = if binary_changes && alive {
                Action::Restart
            } else {
                node::decide(alive, started, current)
            };
            lines.push(match action {
                Action::Start => format!("start {name} (not running)"),
                Action::Restart => format!("restart {name} (binary or service changed)"),
                Action::Nothing => format!(
                    "{name}: running as specified (unless the infra file changed its flags)"
                ),
            });
        }
        Ok(lines)
    }

    async fn upload_all(
        &mut self,
        machines: &[Machine],
        progress: &Progress,
    ) -> Result<(), ProviderError> {
        progress.step(Step::Upload)?;
        let sha = self.local_sha().await?;
        let hosts = self
            .connections_for(machines.iter().map(|m| m.name.as_str()))
            .await?;
        let binary = self.binary.clone();
        let jobs = hosts.into_iter().map(|(host, connection)| {
            let layout = self.layout(&host);
            let (sha, binary) = (sha.clone(), binary.clone());
            async move {
                progress.enter(Step::Upload, &host.name)?;
                let on = |e: SshError| ProviderError::on_machine(Step::Upload, &host.name, e);
                let out = connection
                    .run(&node::prepare_script(&layout))
                    .await
                    .map_err(on)?;
                if out.status == node::FOREIGN_EXIT {
                    return Err(on(SshError::ForeignInstallDir {
                        host: host.name.clone(),
                        dir: layout.dir.clone(),
                        owner: node::field(&out.stdout, "foreign").unwrap_or("").to_owned(),
                    }));
                }
                if out.status != 0 {
                    return Err(on(SshError::Command {
                        host: host.name.clone(),
                        what: format!("preparing {}", layout.dir),
                        status: out.status,
                        output: format!("{}{}", out.stdout, out.stderr).trim().to_owned(),
                    }));
                }
                if node::field(&out.stdout, "sha") == Some(sha.as_str()) {
                    progress.machine(
                        &host.name,
                        format!("orch is up to date (sha256 {})", &sha[..12]),
                    );
                    return Ok(());
                }
                let begin = Instant::now();
                let temp = if host.sudo {
                    format!("/tmp/.orch-upload-{}-{}", layout.cluster, host.name)
                } else {
                    layout.upload_temp()
                };
                let sent = connection.upload(&binary, &temp).await.map_err(on)?;
                let out = connection
                    .run_ok(
                        "installing the binary",
                        &node::install_binary_script(&layout, &temp),
                    )
                    .await
                    .map_err(on)?;
                let found = node::field(&out, "sha").unwrap_or("");
                if found != sha {
                    return Err(on(SshError::UploadMismatch {
                        host: host.name.clone(),
                        wanted: sha.clone(),
                        found: found.to_owned(),
                    }));
                }
                let seconds = begin.elapsed().as_secs_f64();
                progress.machine(
                    &host.name,
                    format!(
                        "uploaded orch ({:.1} MB) in {seconds:.1}s ({:.0} MB/s)",
                        sent as f64 / 1e6,
                        sent as f64 / 1e6 / seconds.max(0.001)
                    ),
                );
                Ok(())
            }
        });
        first_error(futures::future::join_all(jobs).await)?;
        Ok(())
    }

    async fn render_all(
        &mut self,
        machines: &[Machine],
        nodes: &[NodeSpec],
        progress: &Progress,
    ) -> Result<(), ProviderError> {
        progress.step(Step::Render)?;
        let hosts = self
            .connections_for(machines.iter().map(|m| m.name.as_str()))
            .await?;
        let mut jobs = Vec::new();
        for (host, connection) in hosts {
            let kind = self
                .kind(&host, &connection)
                .await
                .map_err(|e| ProviderError::on_machine(Step::Render, &host.name, e))?;
            let layout = self.layout(&host);
            let spec = nodes.iter().find(|n| n.name == host.name).cloned();
            jobs.push(async move {
                progress.enter(Step::Render, &host.name)?;
                let on = |e: SshError| ProviderError::on_machine(Step::Render, &host.name, e);
                let Some(spec) = spec else {
                    return Ok(());
                };
                let content =
                    node::render_service(&layout, &spec, kind).map_err(|e| on(e.into()))?;
                let path = layout.service_path(kind);
                let (mode, unit) = match kind {
                    ServiceKind::Systemd => ("644", true),
                    ServiceKind::Supervised => ("755", false),
                };
                let out = connection
                    .run_ok(
                        "writing the service file",
                        &node::write_file_script(&path, &content, mode, unit),
                    )
                    .await
                    .map_err(on)?;
                let what = match kind {
                    ServiceKind::Systemd => "systemd unit",
                    ServiceKind::Supervised => "supervisor script (no systemd)",
                };
                progress.machine(
                    &host.name,
                    if out.trim() == "unchanged" {
                        format!("{what} {path} unchanged")
                    } else {
                        format!("wrote {what} {path}")
                    },
                );
                Ok(())
            });
        }
        first_error(futures::future::join_all(jobs).await)?;
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

#[async_trait::async_trait]
impl Provider for SshProvider {
    fn name(&self) -> &'static str {
        "ssh"
    }

    async fn plan(
        &mut self,
        wanted: &[WantedMachine],
        _state: &State,
    ) -> Result<Vec<String>, ProviderError> {
        // The plan changes nothing, not even known_hosts.
        let trust_on_first_use = std::mem::replace(&mut self.trust_on_first_use, false);
        let lines = self.plan_lines(wanted).await;
        self.trust_on_first_use = trust_on_first_use;
        lines
    }

    async fn machines(
        &mut self,
        wanted: &[WantedMachine],
        state: &mut StateFile,
        progress: &Progress,
    ) -> Result<Vec<Machine>, ProviderError> {
        let mut machines = Vec::new();
        for want in wanted {
            progress.enter(Step::Machines, &want.name)?;
            let host = self.known(&want.name)?;
            let machine = host.machine();
            progress.machine(
                &machine.name,
                format!(
                    "{} (cluster IP {}, {})",
                    machine.id, machine.ip, machine.install_dir
                ),
            );
            state.update(|s| s.put_machine(machine.clone()))?;
            machines.push(machine);
        }
        Ok(machines)
    }

    async fn install(
        &mut self,
        machines: &[Machine],
        nodes: &[NodeSpec],
        progress: &Progress,
    ) -> Result<(), ProviderError> {
        self.wait_all(machines, progress).await?;
        self.upload_all(machines, progress).await?;
        self.render_all(machines, nodes, progress).await
    }

    async fn start(
        &mut self,
        machines: &[Machine],
        nodes: &[NodeSpec],
        progress: &Progress,
    ) -> Result<Vec<Change>, ProviderError> {
        let _ = machines;
        let hosts = self
            .connections_for(nodes.iter().map(|n| n.name.as_str()))
            .await?;
        let mut jobs = Vec::new();
        for (host, connection) in hosts {
            let step = if host.role == MachineRole::Master {
                Step::StartMasters
            } else {
                Step::StartAgents
            };
            let kind = self
                .kind(&host, &connection)
                .await
                .map_err(|e| ProviderError::on_machine(step, &host.name, e))?;
            let layout = self.layout(&host);
            jobs.push(async move {
                progress.enter(step, &host.name)?;
                let on = |e: SshError| ProviderError::on_machine(step, &host.name, e);
                let out = connection
                    .run_ok(
                        "reading the node's state",
                        &node::state_script(&layout, kind),
                    )
                    .await
                    .map_err(on)?;
                let alive = node::field(&out, "alive") == Some("1");
                let started = node::field(&out, "started").filter(|s| !s.is_empty());
                let current = node::field(&out, "current").unwrap_or("");
                let action = node::decide(alive, started, current);
                if action == Action::Nothing {
                    progress.machine(&host.name, "running as specified");
                    return Ok(Change::Unchanged);
                }
                let begin = Instant::now();
                connection
                    .run_ok("starting the node", &node::start_script(&layout, kind))
                    .await
                    .map_err(on)?;
                let why = match action {
                    Action::Start => "started (it was not running)",
                    _ => "restarted (its binary or service changed)",
                };
                progress.machine(
                    &host.name,
                    format!("{why} in {:.1}s", begin.elapsed().as_secs_f64()),
                );
                Ok(if action == Action::Start {
                    Change::Started
                } else {
                    Change::Restarted
                })
            });
        }
        first_error(futures::future::join_all(jobs).await)
    }

    async fn status(&mut self, state: &State) -> Result<Vec<MachineStatus>, ProviderError> {
        let mut statuses = Vec::new();
        for machine in &state.machines {
            let mut status = MachineStatus {
                name: machine.name.clone(),
                role: machine.role,
                ip: Some(machine.ip),
                id: machine.id.clone(),
                state: "unknown (not in the infra file)".to_owned(),
            };
            let Some(host) = self.host(&machine.name).cloned() else {
                statuses.push(status);
                continue;
            };
            let connection = match self.connection(&host.name).await {
                Ok(connection) => connection,
                Err(_) => {
                    status.state = "unreachable".to_owned();
                    statuses.push(status);
                    continue;
                }
            };
            let layout = self.layout(&host);
            let state = match self.kind(&host, &connection).await {
                Ok(kind) => connection
                    .run_ok(
                        "reading the node's state",
                        &node::state_script(&layout, kind),
                    )
                    .await
                    .ok(),
                Err(_) => None,
            };
            status.state = match state {
                None => "unreachable".to_owned(),
                Some(out) if node::field(&out, "installed") != Some("1") => "missing".to_owned(),
                Some(out) if node::field(&out, "alive") == Some("1") => "running".to_owned(),
                Some(_) => "stopped".to_owned(),
            };
            statuses.push(status);
        }
        Ok(statuses)
    }

    async fn destroy(
        &mut self,
        state: Option<&State>,
        progress: &Progress,
    ) -> Result<Vec<String>, ProviderError> {
        if let Some(state) = state {
            for machine in &state.machines {
                if self.host(&machine.name).is_none() {
                    progress.machine(
                        &machine.name,
                        format!(
                            "in the state ({}) but not in the infra file: not reached; remove {} there by hand",
                            machine.id, machine.install_dir
                        ),
                    );
                }
            }
        }
        let hosts = self.hosts.clone();
        let mut jobs = Vec::new();
        for host in hosts {
            let target = self.target(&host);
            let cached = self.connections.get(&host.name).cloned();
            let layout = self.layout(&host);
            jobs.push(async move {
                let on = |e: SshError| ProviderError::Failed {
                    what: format!("removing {} from {}", layout.dir, host.name),
                    source: Box::new(e),
                };
                let connection = match cached.filter(|c| !c.is_closed()) {
                    Some(connection) => connection,
                    None => open_waiting(target.map_err(on)?, DESTROY_SSH_TIMEOUT, progress)
                        .await
                        .map_err(on)?,
                };
                let out = connection
                    .run_ok("removing the node", &node::destroy_script(&layout))
                    .await
                    .map_err(on)?;
                let mut removed = Vec::new();
                for line in out.lines() {
                    match line.trim() {
                        "unit" => {
                            removed.push(format!("unit {} on {}", layout.unit_name(), host.name))
                        }
                        "removed" => {
                            progress.machine(
                                &host.name,
                                format!("stopped the node, removed {}", layout.dir),
                            );
                            removed.push(format!("{} on {}", layout.dir, host.name));
                        }
                        "absent" => {
                            progress.machine(&host.name, format!("{} does not exist", layout.dir))
                        }
                        other => {
                            if let Some(owner) = other.strip_prefix("foreign=") {
                                progress.machine(
                                    &host.name,
                                    format!(
                                        "left {}: it is not this cluster's ({owner})",
                                        layout.dir
                                    ),
                                );
                            }
                        }
                    }
                }
                Ok::<_, ProviderError>(removed)
            });
        }
        let removed = first_error(futures::future::join_all(jobs).await)?;
        for connection in self.connections.values() {
            connection.close().await;
        }
        self.connections.clear();
        Ok(removed.into_iter().flatten().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> ProviderOptions {
        ProviderOptions {
            binary: PathBuf::from("/usr/bin/orch"),
            trust_on_first_use: false,
            base_dir: PathBuf::from("/work/infra"),
            cluster_dir: PathBuf::from("/work/.orch/demo"),
            fail_at: None,
        }
    }

    #[test]
    fn the_example_infra_file_gives_named_hosts_with_their_defaults() {
        let infra = Infra::from_yaml(include_str!("../../../../infra/ssh.yaml"), "infra/ssh.yaml")
            .expect("infra/ssh.yaml is valid");
        let provider = SshProvider::from_infra(&infra, &options());
        let names: Vec<&str> = provider.hosts().iter().map(|h| h.name.as_str()).collect();
        assert_eq!(names, ["master-1", "agent-1", "public-agent-1"]);
        let agent = provider.host("agent-1").expect("agent-1");
        assert_eq!(agent.port, 22);
        assert_eq!(agent.user, "root");
        assert_eq!(agent.install_dir, "/opt/orch");
        assert_eq!(agent.identity, Identity::Agent);
        assert_eq!(agent.machine().id, "root@10.0.0.21:22");
        let wanted = crate::cluster_spec::wanted_machines(&infra);
        assert!(wanted.iter().all(|w| provider.host(&w.name).is_some()));
    }

    #[test]
    fn paths_are_relative_to_the_infra_file_and_pins_are_parsed() {
        let text = "provider: ssh\nssh:\n  identity_file: keys/id\n  known_hosts: kh\n  hosts:\n    - {address: 127.0.0.11, role: master, port: 2201, host_key: \"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEkhKHAn9++/tCLksL1sn0xzkf/DMhFY7gN+y6nYP+uR x\"}\n    - {address: 127.0.0.12, role: agent, host_key: \"ssh-ed25519 AAAA\"}\n";
        let infra = Infra::from_yaml(text, "f").expect("valid");
        let provider = SshProvider::from_infra(&infra, &options());
        let master = provider.host("master-1").expect("master");
        assert_eq!(
            master.identity,
            Identity::File(PathBuf::from("/work/infra/keys/id"))
        );
        let target = provider.target(master).expect("target");
        assert_eq!(target.known_hosts, PathBuf::from("/work/infra/kh"));
        assert_eq!(target.port, 2201);
        assert!(target.pinned.is_some());
        let agent = provider.host("agent-1").expect("agent");
        assert!(matches!(
            provider.target(agent),
            Err(SshError::BadPin { .. })
        ));
    }
}

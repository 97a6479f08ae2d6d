//! The local provider: every master and agent of a cluster as a process of this machine,
//! with data, logs, pid files and the state file in `.orch/<cluster>/` of the directory
//! `orch up` runs in. It is a [`Provider`](super::provider::Provider) like the others
//! ([`LocalProvider`]), so `orch up`, `--plan`, `orch status` and `orch destroy` take the one
//! flow of [`super::flow`].
//!
//! What it does at each step: [`prepare`] reads the state's local section (a restart reuses
//! its ports and dirs; nodes whose processes run are left alone) or plans a new layout (ports
//! checked free by binding them); the plan and the machines step both come from it. The
//! start steps spawn the missing processes ([`start::spawn`]) in their own process group (a
//! terminal's Ctrl-C reaches only `orch up`), output to `<name>.log`, pid to `<name>.pid` and
//! the state file; a process that ends while `orch up` waits fails it at once; on failure
//! [`LocalProvider::stop_started`] undoes the spawning.
//!
//! [`stop_cluster`] stops "everything", in this order: agents (SIGTERM, wait, SIGKILL after
//! 10 s), then what they leave behind by design, process tasks (the sessions of the cluster's
//! executors, see [`super::procs`]: SIGTERM, SIGKILL after a grace) and Docker containers of
//! the cluster's agents, then the masters.
//!
//! This module prepares (and owns the error type); `provider` is the provider, `start`
//! spawns, `stop` stops, `endpoints` says where the cluster serves.
//!
//! May depend on: provision::{infra, layout, plan, provider, state_file, steps, procs,
//! containers}, driver (pid identities). Spawns and signals processes, binds ports to test
//! them.

mod endpoints;
mod provider;
mod start;
mod stop;

pub use endpoints::endpoint_lines;
pub use provider::LocalProvider;
pub use start::{tail, NodeExit};
pub use stop::{node_status, stop_cluster, stop_tasks, terminate, NodeStatus, Stopped};

use super::containers;
use super::infra::MachineRole;
use super::infra::{DnsEntry, Infra, LbEntry};
use super::layout::{Layout, LayoutError, Node};
use super::procs::{self, ProcInfo};
use super::state_file::{LocalState, Pid};
use nix::sys::signal::Signal;
use orch_driver::executor::ProcId;
use start::spawn;
use std::collections::BTreeSet;
use std::fs::OpenOptions;
use std::io::Write as _;
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// How long a master or agent may take to exit after SIGTERM before SIGKILL.
pub const NODE_GRACE: Duration = Duration::from_secs(10);
/// How long tasks may take to exit after SIGTERM before SIGKILL.
pub const TASK_GRACE: Duration = Duration::from_secs(5);
/// How many log lines an error shows per process.
const LOG_TAIL: usize = 20;

/// Why a local cluster cannot be started or stopped.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    /// A port the cluster needs is taken.
    #[error("port {port} on {ip} is already in use; {hint}")]
    PortInUse {
        /// The address.
        ip: IpAddr,
        /// The port.
        port: u16,
        /// What to do about it.
        hint: String,
    },
    /// The ports cannot be planned.
    #[error(transparent)]
    Layout(LayoutError),
    /// The infra file asks for another shape than the cluster has.
    #[error(
        "cluster '{cluster}' was created with {was}; {file} now asks for {now}. \
         Run `orch destroy` first to change its shape (its data is in {dir})"
    )]
    ShapeChanged {
        /// The cluster.
        cluster: String,
        /// Its shape.
        was: String,
        /// What the file asks for.
        now: String,
        /// The infra file, as shown.
        file: String,
        /// The cluster dir.
        dir: String,
    },
    /// A file or directory cannot be created or written.
    #[error("cannot {what}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A process cannot be spawned.
    #[error("cannot start {name} ({program})")]
    Spawn {
        /// The node.
        name: String,
        /// The binary.
        program: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A process started now exited before the cluster was ready.
    #[error("{name} exited during startup ({status}); the end of its log ({log}):\n{tail}")]
    Exited {
        /// The node.
        name: String,
        /// How it ended.
        status: String,
        /// Its log file.
        log: String,
        /// The log's last lines.
        tail: String,
    },
}

fn io_error(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> LocalError {
    let what = what.into();
    move |source| LocalError::Io { what, source }
}

/// `<workdir>/.orch/<cluster>`.
pub fn cluster_dir(workdir: &Path, cluster: &str) -> PathBuf {
    workdir.join(".orch").join(cluster)
}

/// True when nothing listens on `ip:port` (we could bind it).
pub fn port_free(ip: IpAddr, port: u16) -> bool {
    TcpListener::bind(SocketAddr::new(ip, port)).is_ok()
}

/// The load balancer's fixed ports must be free; `hint` says what to change when one is not.
fn check_lb_ports(lb: &LbEntry, hint: &str) -> Result<(), LocalError> {
    for (_, port) in lb.fixed_ports() {
        if !port_free(lb.bind_addr, port) {
            return Err(LocalError::PortInUse {
                ip: lb.bind_addr,
                port,
                hint: hint.to_owned(),
            });
        }
    }
    Ok(())
}

/// The DNS server's ports (UDP and TCP, and the HTTP API) must be free; `hint` says what to
/// change when one is not.
fn check_dns_ports(dns: &DnsEntry, hint: &str) -> Result<(), LocalError> {
    let udp_free = std::net::UdpSocket::bind(dns.listen).is_ok();
    for (address, free) in [
        (
            dns.listen,
            udp_free && port_free(dns.listen.ip(), dns.listen.port()),
        ),
        (
            dns.http_listen,
            port_free(dns.http_listen.ip(), dns.http_listen.port()),
        ),
    ] {
        if !free {
            return Err(LocalError::PortInUse {
                ip: address.ip(),
                port: address.port(),
                hint: hint.to_owned(),
            });
        }
    }
    Ok(())
}

/// What the local provider is asked to run.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The cluster definition.
    pub infra: Infra,
    /// The infra file (absolute), None for the built-in defaults.
    pub infra_file: Option<PathBuf>,
    /// How messages name the infra file.
    pub infra_shown: String,
    /// The directory `.orch/` lives in (absolute).
    pub workdir: PathBuf,
    /// The agents' containerizers.
    pub containerizers: Vec<String>,
}

/// The outcome of [`prepare`].
#[derive(Debug)]
pub enum Prepared {
    /// Every process of the cluster runs already; nothing to do.
    AlreadyRunning(LocalState),
    /// These nodes (by name) are to be started; the record says where.
    ToStart {
        /// The cluster's processes, to be recorded.
        record: LocalState,
        /// The nodes not running.
        missing: Vec<String>,
        /// Whether the layout is new (no state file before).
        fresh: bool,
    },
}

/// Takes the recorded processes (`recorded`, from the state) or plans the cluster of
/// `request`, and works out which processes must be started. A restart keeps the recorded
/// ports and dirs; ports of processes to start must be free.
pub fn prepare(request: &Settings, recorded: Option<&LocalState>) -> Result<Prepared, LocalError> {
    let infra = &request.infra;
    let dir = cluster_dir(&request.workdir, &infra.cluster);
    if let Some(record) = recorded {
        let mut record = record.clone();
        let missing: Vec<String> = record
            .layout
            .nodes()
            .filter(|n| running(&record, n).is_none())
            .map(|n| n.name.clone())
            .collect();
        if missing.is_empty() {
            return Ok(Prepared::AlreadyRunning(record));
        }
        let layout = &record.layout;
        let same_shape = layout.masters.len() == infra.masters as usize
            && layout.agents.len() == infra.agents as usize
            && layout.api() == Some(infra.api);
        if !same_shape {
            return Err(LocalError::ShapeChanged {
                cluster: infra.cluster.clone(),
                was: layout.shape(),
                now: super::layout::shape(infra.masters as usize, infra.agents as usize, infra.api),
                file: request.infra_shown.clone(),
                dir: shown_dir(&request.workdir, &dir),
            });
        }
        for node in layout.nodes().filter(|n| missing.contains(&n.name)) {
            if !port_free(node.listen.ip(), node.listen.port()) {
                return Err(LocalError::PortInUse {
                    ip: node.listen.ip(),
                    port: node.listen.port(),
                    hint: format!(
                        "{} of cluster '{}' keeps it from its first start; stop what uses it, \
                         or `orch destroy` the cluster",
                        node.name, infra.cluster
                    ),
                });
            }
        }
        let first_master_missing = layout
            .masters
            .first()
            .is_some_and(|m| missing.contains(&m.name));
        if let Some(dns) = layout.dns.as_ref().filter(|_| first_master_missing) {
            check_dns_ports(
                dns,
                &format!(
                    "the DNS server of cluster '{}' keeps it from its first start; stop what \
                     uses it, or `orch destroy` the cluster",
                    infra.cluster
                ),
            )?;
        }
        if let Some(lb) = layout.lb.as_ref().filter(|_| first_master_missing) {
            check_lb_ports(
                lb,
                &format!(
                    "the load balancer of cluster '{}' keeps it from its first start; stop \
                     what uses it, or `orch destroy` the cluster",
                    infra.cluster
                ),
            )?;
        }
        record.containerizers.clone_from(&request.containerizers);
        return Ok(Prepared::ToStart {
            record,
            missing,
            fresh: false,
        });
    }
    let mut layout = Layout::plan(
        &infra.cluster,
        &dir,
        infra.api,
        infra.masters as usize,
        infra.agents as usize,
        |port| port_free(infra.api.ip(), port),
    )
    .map_err(|error| match error {
        LayoutError::PortInUse { ip, port } => LocalError::PortInUse {
            ip,
            port,
            hint: match &request.infra_file {
                Some(_) => format!("set api: in {}", request.infra_shown),
                None => format!(
                    "set api: in an infra file (orch up -f FILE, or {})",
                    super::infra::DEFAULT_FILE
                ),
            },
        },
        other => LocalError::Layout(other),
    })?;
    if infra.dns.enabled {
        check_dns_ports(&infra.dns, &format!("set dns: in {}", request.infra_shown))?;
        layout.dns = Some(infra.dns.clone());
    }
    if infra.lb.enabled {
        check_lb_ports(&infra.lb, &format!("set lb: in {}", request.infra_shown))?;
        layout.lb = Some(infra.lb.clone());
    }
    let missing = layout.nodes().map(|n| n.name.clone()).collect();
    Ok(Prepared::ToStart {
        record: LocalState {
            layout,
            containerizers: request.containerizers.clone(),
            pids: Default::default(),
        },
        missing,
        fresh: true,
    })
}

/// The recorded process of `node`, if it still runs and is really that node's (its
/// arguments name the node's dir).
pub fn running(state: &LocalState, node: &Node) -> Option<Pid> {
    let pid = *state.pids.get(&node.name)?;
    procs::is_ours(&pid.into(), &node.dir).then_some(pid)
}

/// `dir` relative to `workdir` when it lies below it (for messages).
pub fn shown_dir(workdir: &Path, dir: &Path) -> String {
    dir.strip_prefix(workdir)
        .unwrap_or(dir)
        .display()
        .to_string()
}

#[cfg(test)]
mod tests;

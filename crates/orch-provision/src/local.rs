//! The local provider: every master and agent of a cluster as a process of this machine,
//! with data, logs, pid files and the state file in `.orch/<cluster>/` of the directory
//! `orch up` runs in.
//!
//! Steps of `up`, each with its undo: [`prepare`] reads the state file (a restart reuses its
//! ports and dirs; a cluster whose processes all run is left alone) or plans a new layout
//! (ports checked free by binding them); [`start`] spawns the missing processes in their own
//! process group (a terminal's Ctrl-C reaches only `orch up`), output to `<name>.log`, pid to
//! `<name>.pid` and the state file; [`Started::wait_ready`] waits for a leader and every agent;
//! on failure [`Started::stop_started`] undoes the spawning.
//!
//! [`stop_cluster`] stops "everything", in this order: agents (SIGTERM, wait, SIGKILL after
//! 10 s), then what they leave behind by design, process tasks (the sessions of the cluster's
//! executors, see [`super::procs`]: SIGTERM, SIGKILL after a grace) and Docker containers of
//! the cluster's agents, then the masters.
//!
//! May depend on: provision::{infra, layout, state_file, procs, containers, cluster_api}, driver
//! (pid identities). Spawns and signals processes, binds ports to test them.

use super::cluster_api::{ClusterApi, ClusterApiError};
use super::containers;
use super::infra::MachineRole;
use super::infra::{DnsEntry, Infra, LbEntry};
use super::layout::{Layout, LayoutError, Node};
use super::procs::{self, ProcInfo};
use super::state_file::{LocalState, Pid, StateError};
use nix::sys::signal::Signal;
use orch_driver::executor::ProcId;
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
    /// The state file cannot be used.
    #[error(transparent)]
    State(#[from] StateError),
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
    /// No leader, or not every agent, within the timeout.
    #[error("the cluster was not ready within {timeout:?}: {last}\n{logs}")]
    NotReady {
        /// The timeout.
        timeout: Duration,
        /// What was seen last.
        last: String,
        /// The last lines of every log started now.
        logs: String,
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

/// What `orch up` asked for.
#[derive(Debug, Clone)]
pub struct UpRequest {
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
        /// The cluster (saved by [`start`]).
        record: LocalState,
        /// The nodes not running.
        missing: Vec<String>,
        /// Whether the layout is new (no state file before).
        fresh: bool,
    },
}

/// Reads or plans the cluster of `request` and works out which processes must be started.
/// A restart keeps the recorded ports and dirs; ports of processes to start must be free.
pub fn prepare(request: &UpRequest) -> Result<Prepared, LocalError> {
    let infra = &request.infra;
    let dir = cluster_dir(&request.workdir, &infra.cluster);
    if let Some(mut record) = LocalState::load(&dir)? {
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
        record.infra_file.clone_from(&request.infra_file);
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
            provider: "local".to_owned(),
            infra_file: request.infra_file.clone(),
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

/// A process of the cluster ended while `orch up` watched it.
#[derive(Debug)]
pub struct NodeExit {
    /// The node.
    pub name: String,
    /// How it ended (None when waiting failed).
    pub status: Option<ExitStatus>,
}

/// The processes `orch up` started, and a channel reporting those that end on their own.
#[derive(Debug)]
pub struct Started {
    /// The cluster as recorded.
    pub record: LocalState,
    /// The nodes started now, by name.
    pub started: Vec<String>,
    exits: mpsc::UnboundedReceiver<NodeExit>,
    stopping: Arc<AtomicBool>,
}

/// Spawns the `missing` nodes of `record` with the binary `program` (masters first), saving
/// the state file before the first and after each. On a failure, stops what it started.
pub async fn start(
    record: LocalState,
    missing: &[String],
    program: &Path,
    agent_resources: Option<&str>,
) -> Result<Started, LocalError> {
    let dir = record.layout.dir.clone();
    std::fs::create_dir_all(&dir).map_err(io_error(format!("create {}", dir.display())))?;
    record.save()?;
    let (tx, exits) = mpsc::unbounded_channel();
    let mut started = Started {
        record,
        started: Vec::new(),
        exits,
        stopping: Arc::new(AtomicBool::new(false)),
    };
    let nodes: Vec<Node> = started
        .record
        .layout
        .nodes()
        .filter(|n| missing.contains(&n.name))
        .cloned()
        .collect();
    for node in nodes {
        if let Err(error) = started.spawn(&node, program, agent_resources, tx.clone()) {
            started.stop_started().await;
            return Err(error);
        }
    }
    Ok(started)
}

impl Started {
    fn spawn(
        &mut self,
        node: &Node,
        program: &Path,
        agent_resources: Option<&str>,
        exits: mpsc::UnboundedSender<NodeExit>,
    ) -> Result<(), LocalError> {
        let layout = &self.record.layout;
        std::fs::create_dir_all(&node.dir)
            .map_err(io_error(format!("create {}", node.dir.display())))?;
        let args = layout.args(node, agent_resources, &self.record.containerizers);
        let log_path = layout.log_file(node);
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(io_error(format!("open {}", log_path.display())))?;
        let _ = writeln!(
            log,
            "===== orch up: {} {} =====",
            program.display(),
            args.join(" ")
        );
        let log_err = log
            .try_clone()
            .map_err(io_error(format!("open {}", log_path.display())))?;
        let mut child = tokio::process::Command::new(program)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .process_group(0)
            .spawn()
            .map_err(|source| LocalError::Spawn {
                name: node.name.clone(),
                program: program.display().to_string(),
                source,
            })?;
        let pid = child.id().unwrap_or_default();
        let pid_file = layout.pid_file(node);
        std::fs::write(&pid_file, format!("{pid}\n"))
            .map_err(io_error(format!("write {}", pid_file.display())))?;
        if let Some(id) = procs::identity(pid) {
            self.record.pids.insert(node.name.clone(), id.into());
        }
        self.started.push(node.name.clone());
        self.record.save()?;
        tracing::debug!(node = %node.name, pid, listen = %node.listen, "started");
        let (name, stopping) = (node.name.clone(), Arc::clone(&self.stopping));
        tokio::spawn(async move {
            let status = child.wait().await.ok();
            if !stopping.load(Ordering::SeqCst) {
                let _ = exits.send(NodeExit { name, status });
            }
        });
        Ok(())
    }

    /// The next process that ended on its own (never returns while stopping).
    pub async fn next_exit(&mut self) -> Option<NodeExit> {
        self.exits.recv().await
    }

    /// Waits until the API names a leader with every master as member and every agent is
    /// registered and reachable; fails early when a process started now exits.
    pub async fn wait_ready(&mut self, timeout: Duration) -> Result<(), LocalError> {
        let layout = &self.record.layout;
        let Some(api) = layout.api() else {
            return Ok(());
        };
        let client = ClusterApi::new(api).map_err(|e| LocalError::NotReady {
            timeout,
            last: e.to_string(),
            logs: String::new(),
        })?;
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(exit) = self.exits.try_recv() {
                let node = layout.nodes().find(|n| n.name == exit.name).cloned();
                let log = node.map(|n| layout.log_file(&n)).unwrap_or_default();
                return Err(LocalError::Exited {
                    name: exit.name,
                    status: exit
                        .status
                        .map_or_else(|| "unknown status".to_owned(), |s| s.to_string()),
                    tail: tail(&log, LOG_TAIL),
                    log: log.display().to_string(),
                });
            }
            let last = match ready(&client, layout.masters.len(), layout.agents.len()).await {
                Ok(None) => return Ok(()),
                Ok(Some(waiting)) => waiting,
                Err(error) => error.to_string(),
            };
            if Instant::now() >= deadline {
                return Err(LocalError::NotReady {
                    timeout,
                    last,
                    logs: self.log_tails(),
                });
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    fn log_tails(&self) -> String {
        let layout = &self.record.layout;
        layout
            .nodes()
            .filter(|n| self.started.contains(&n.name))
            .map(|n| {
                let log = layout.log_file(n);
                format!(
                    "----- {} ({}) -----\n{}",
                    n.name,
                    log.display(),
                    tail(&log, LOG_TAIL)
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// From now on, processes that end are not reported by [`Started::next_exit`].
    pub fn begin_stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
    }

    /// Stops the processes started now (agents first), SIGKILL after [`NODE_GRACE`].
    pub async fn stop_started(&mut self) {
        self.begin_stop();
        let layout = &self.record.layout;
        for role in [MachineRole::Agent, MachineRole::Master] {
            let pids: Vec<ProcId> = layout
                .nodes()
                .filter(|n| n.role == role && self.started.contains(&n.name))
                .filter_map(|n| self.record.pids.get(&n.name))
                .map(|pid| ProcId::from(*pid))
                .collect();
            terminate(&pids, NODE_GRACE).await;
        }
    }
}

/// None when the cluster is ready, else what it still waits for.
async fn ready(
    client: &ClusterApi,
    masters: usize,
    agents: usize,
) -> Result<Option<String>, ClusterApiError> {
    let view = client.leader().await?;
    if view.leader.is_none() {
        return Ok(Some("no leader yet".to_owned()));
    }
    if view.members < masters {
        return Ok(Some(format!(
            "{} of {masters} masters are members",
            view.members
        )));
    }
    let count = client.agents().await?;
    if count.reachable < agents {
        return Ok(Some(format!(
            "{} of {agents} agents registered and reachable",
            count.reachable
        )));
    }
    Ok(None)
}

/// The last `n` lines of a file (or why it cannot be read).
pub fn tail(path: &Path, n: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(n)..].join("\n")
        }
        Err(e) => format!("<cannot read {}: {e}>", path.display()),
    }
}

/// SIGTERM to every process, then waits up to `grace` for all to end; SIGKILL to those
/// left, and a short wait for them.
pub async fn terminate(pids: &[ProcId], grace: Duration) {
    let alive: Vec<ProcId> = pids.iter().copied().filter(ProcId::alive).collect();
    for id in &alive {
        procs::signal(id.pid, Signal::SIGTERM);
    }
    if wait_gone(&alive, grace).await {
        return;
    }
    for id in alive.iter().filter(|id| id.alive()) {
        tracing::warn!(
            pid = id.pid,
            "still running {grace:?} after SIGTERM; sending SIGKILL"
        );
        procs::signal(id.pid, Signal::SIGKILL);
    }
    wait_gone(&alive, Duration::from_secs(5)).await;
}

/// Waits until none of `pids` runs; false on timeout.
async fn wait_gone(pids: &[ProcId], timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if !pids.iter().any(ProcId::alive) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One process of a cluster, as `orch status` shows it.
#[derive(Debug, Clone)]
pub struct NodeStatus {
    /// The node.
    pub node: Node,
    /// Its recorded process.
    pub pid: Option<Pid>,
    /// Whether that process still runs.
    pub alive: bool,
}

/// The state of every node of `record`.
pub fn node_status(record: &LocalState) -> Vec<NodeStatus> {
    record
        .layout
        .nodes()
        .map(|node| NodeStatus {
            node: node.clone(),
            pid: record.pids.get(&node.name).copied(),
            alive: running(record, node).is_some(),
        })
        .collect()
}

/// What [`stop_cluster`] stopped.
#[derive(Debug, Default)]
pub struct Stopped {
    /// Agent processes.
    pub agents: usize,
    /// Task processes (executors and tasks).
    pub task_processes: usize,
    /// Docker containers removed, by name.
    pub containers: Vec<String>,
    /// Why containers could not be removed, if they could not.
    pub containers_error: Option<String>,
    /// Master processes.
    pub masters: usize,
}

/// Stops everything of the cluster in `dir`: its agents, their tasks (processes and
/// containers), then its masters. The processes are those `record` names (if it still runs
/// and is theirs) and any `orch master`/`orch agent` whose arguments lie under `dir` (so a
/// lost state file loses nothing).
pub async fn stop_cluster(record: Option<&LocalState>, dir: &Path) -> Stopped {
    let mut stopped = Stopped::default();
    let (mut agents, mut masters) = (Vec::new(), Vec::new());
    if let Some(record) = record {
        for node in record.layout.nodes() {
            if let Some(pid) = running(record, node) {
                match node.role {
                    MachineRole::Agent | MachineRole::PublicAgent => agents.push(ProcId::from(pid)),
                    MachineRole::Master => masters.push(ProcId::from(pid)),
                }
            }
        }
    }
    let known: BTreeSet<i32> = agents.iter().chain(&masters).map(|p| p.pid).collect();
    for process in procs::node_processes(dir, &procs::all(), &known) {
        let Some(id) = ProcId::of(process.pid) else {
            continue;
        };
        match process.subcommand() {
            Some("agent") => agents.push(id),
            _ => masters.push(id),
        }
    }
    stopped.agents = agents.len();
    terminate(&agents, NODE_GRACE).await;
    let masters_pids: BTreeSet<i32> = masters.iter().map(|p| p.pid).collect();
    stopped.task_processes = stop_tasks(dir, &masters_pids, TASK_GRACE).await;
    match containers::remove_tasks(dir, TASK_GRACE).await {
        Ok(names) => stopped.containers = names,
        Err(error) => {
            tracing::warn!(
                error = &error as &dyn std::error::Error,
                "cannot remove the cluster's containers"
            );
            stopped.containers_error = Some(orch_core::errors::chain(&error));
        }
    }
    stopped.masters = masters.len();
    terminate(&masters, NODE_GRACE).await;
    stopped
}

/// Stops the task processes of the cluster in `dir` (never `except`): SIGTERM, then SIGKILL
/// to what is left after `grace`; processes forked meanwhile are found by scanning again.
/// Returns how many processes were signalled.
pub async fn stop_tasks(dir: &Path, except: &BTreeSet<i32>, grace: Duration) -> usize {
    let start = Instant::now();
    let mut seen: BTreeSet<i32> = BTreeSet::new();
    let mut killed: BTreeSet<i32> = BTreeSet::new();
    loop {
        let found: Vec<ProcInfo> = procs::task_processes(dir, &procs::all(), except);
        if found.is_empty() {
            break;
        }
        let late = start.elapsed() >= grace;
        for process in &found {
            if seen.insert(process.pid) {
                procs::signal(process.pid, Signal::SIGTERM);
            } else if late && killed.insert(process.pid) {
                procs::signal(process.pid, Signal::SIGKILL);
            }
        }
        if start.elapsed() >= grace + Duration::from_secs(5) {
            tracing::warn!(left = found.len(), "task processes survive SIGKILL");
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    seen.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(workdir: &Path, api: SocketAddr) -> UpRequest {
        let infra = Infra {
            api,
            ..Infra::default()
        };
        UpRequest {
            infra,
            infra_file: Some(workdir.join("infra.yaml")),
            infra_shown: "infra.yaml".to_owned(),
            workdir: workdir.to_owned(),
            containerizers: vec!["mesos".to_owned()],
        }
    }

    #[test]
    fn a_taken_api_port_is_named_with_the_file_to_change() {
        let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
        let api = taken.local_addr().expect("addr");
        let dir = tempfile::tempdir().expect("temp dir");
        let error = prepare(&request(dir.path(), api)).expect_err("taken");
        assert_eq!(
            error.to_string(),
            format!(
                "port {} on 127.0.0.1 is already in use; set api: in infra.yaml",
                api.port()
            )
        );
    }

    #[test]
    fn a_restart_keeps_the_layout_and_refuses_another_shape() {
        let dir = tempfile::tempdir().expect("temp dir");
        let api: SocketAddr = {
            let probe = TcpListener::bind("127.0.0.1:0").expect("bind");
            probe.local_addr().expect("addr")
        };
        let request = request(dir.path(), api);
        let Prepared::ToStart {
            record,
            missing,
            fresh,
        } = prepare(&request).expect("plan")
        else {
            panic!("nothing runs yet");
        };
        assert!(fresh);
        assert_eq!(missing, ["master-1", "agent-1"]);
        assert_eq!(record.layout.api(), Some(api));
        assert_eq!(record.layout.dir, dir.path().join(".orch/local"));
        record.save().expect("save");
        let Prepared::ToStart {
            record: again,
            fresh,
            ..
        } = prepare(&request).expect("plan")
        else {
            panic!("nothing runs yet");
        };
        assert!(!fresh);
        assert_eq!(again.layout, record.layout);
        let mut bigger = request.clone();
        bigger.infra.masters = 3;
        let error = prepare(&bigger).expect_err("shape changed");
        assert!(
            error
                .to_string()
                .starts_with("cluster 'local' was created with 1 master and 1 agent"),
            "{error}"
        );
    }

    #[tokio::test]
    async fn terminate_stops_a_process_and_stop_tasks_finds_nothing_in_an_empty_dir() {
        let mut child = tokio::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("spawn sleep");
        let id = procs::identity(child.id().expect("pid")).expect("identity");
        let reaper = tokio::spawn(async move { child.wait().await });
        terminate(&[id], Duration::from_secs(5)).await;
        assert!(!id.alive());
        let status = reaper.await.expect("join").expect("wait");
        assert!(!status.success());
        let dir = tempfile::tempdir().expect("temp dir");
        assert_eq!(
            stop_tasks(dir.path(), &BTreeSet::new(), Duration::from_secs(1)).await,
            0
        );
    }
}

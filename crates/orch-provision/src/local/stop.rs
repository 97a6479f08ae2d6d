//! Stopping a local cluster, "everything" in order: agents, the tasks they leave behind
//! (process sessions and Docker containers), masters; and what `orch status` shows of each
//! process.
//!
//! May depend on: provision::{containers, procs, state_file, local}.

use super::*;

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

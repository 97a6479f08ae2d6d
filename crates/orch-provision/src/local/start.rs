//! Starting a local cluster: spawn each missing process in its own process group (output to
//! `<name>.log`, pid to `<name>.pid` and the state file), watch for processes that end on
//! their own, wait until the cluster is ready, and stop what was started when it is not.
//!
//! May depend on: provision::{cluster_api, layout, procs, state_file, local::stop}.

use super::*;

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

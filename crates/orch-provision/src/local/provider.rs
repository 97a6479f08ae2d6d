//! [`LocalProvider`]: the local cluster as a [`Provider`]. Its "machines" are the processes
//! of the layout, all on this machine; installing is nothing (they run this binary); starting
//! spawns the processes the plan says are not running. Unlike a machine's supervisor, nothing
//! restarts a local process, so a process started now that ends while `orch up` waits fails
//! the run at once ([`Provider::check_started`]), and the caller stops what was started
//! ([`LocalProvider::stop_started`]) or, in the foreground, watches for processes that end
//! ([`LocalProvider::next_exit`]).
//!
//! May depend on: provision::{cluster_spec, infra, plan, provider, state_file, steps, local}.

use super::*;
use crate::cluster_spec::{Machine, NodeSpec, WantedMachine};
use crate::plan::{Action, Plan};
use crate::provider::{Change, MachineStatus, Provider, ProviderError};
use crate::state_file::{State, StateFile};
use crate::steps::{Progress, Step};

/// The local provider.
#[derive(Debug)]
pub struct LocalProvider {
    settings: Settings,
    program: PathBuf,
    /// The processes as recorded, once the machines step has run.
    record: Option<LocalState>,
    /// The nodes started by this run, by name.
    started: Vec<String>,
    exits_tx: mpsc::UnboundedSender<NodeExit>,
    exits: mpsc::UnboundedReceiver<NodeExit>,
    stopping: Arc<AtomicBool>,
    /// Whether [`Provider::check_started`] has failed the run with a process's end (and the
    /// end of its log).
    exit_reported: bool,
}

/// A local error as the provider's: a refusal (a taken port, another shape) names what to
/// change; anything else is a failure of the local processes.
fn provider_error(error: LocalError) -> ProviderError {
    match error {
        LocalError::PortInUse { .. } | LocalError::ShapeChanged { .. } => {
            ProviderError::Refused(error.to_string())
        }
        other => ProviderError::failed("the local processes", other),
    }
}

impl LocalProvider {
    /// A provider running `settings`' cluster with the binary `program`.
    pub fn new(settings: Settings, program: PathBuf) -> Self {
        let (exits_tx, exits) = mpsc::unbounded_channel();
        Self {
            settings,
            program,
            record: None,
            started: Vec::new(),
            exits_tx,
            exits,
            stopping: Arc::new(AtomicBool::new(false)),
            exit_reported: false,
        }
    }

    /// The processes as recorded by this run (None before the machines step).
    pub fn record(&self) -> Option<&LocalState> {
        self.record.as_ref()
    }

    /// Whether this run started any process.
    pub fn started_any(&self) -> bool {
        !self.started.is_empty()
    }

    /// The next process started by this run that ended on its own (never returns once
    /// stopping has begun).
    pub async fn next_exit(&mut self) -> Option<NodeExit> {
        self.exits.recv().await
    }

    /// From now on, processes that end are not reported by [`LocalProvider::next_exit`].
    pub fn begin_stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
    }

    /// Stops the processes started by this run (agents first), SIGKILL after
    /// [`NODE_GRACE`].
    pub async fn stop_started(&mut self) {
        self.begin_stop();
        let Some(record) = &self.record else {
            return;
        };
        for roles in [
            &[MachineRole::Agent, MachineRole::PublicAgent][..],
            &[MachineRole::Master],
        ] {
            let pids: Vec<ProcId> = record
                .layout
                .nodes()
                .filter(|n| roles.contains(&n.role) && self.started.contains(&n.name))
                .filter_map(|n| record.pids.get(&n.name))
                .map(|pid| ProcId::from(*pid))
                .collect();
            terminate(&pids, NODE_GRACE).await;
        }
    }

    /// The end of the log of every process started by this run; nothing when the run failed
    /// because one of them ended (its error shows its log).
    pub fn started_logs(&self) -> String {
        let Some(record) = self.record.as_ref().filter(|_| !self.exit_reported) else {
            return String::new();
        };
        let layout = &record.layout;
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

    fn prepare(&self, state: &State) -> Result<Prepared, ProviderError> {
        prepare(&self.settings, state.local.as_ref()).map_err(provider_error)
    }
}

/// The "machine" of a process: this machine, with the node's address and dir.
fn machine_of(node: &Node) -> Machine {
    Machine {
        name: node.name.clone(),
        role: node.role,
        ip: node.listen.ip(),
        private_ip: None,
        id: node.listen.to_string(),
        install_dir: node.dir.display().to_string(),
        resources: None,
        attributes: None,
    }
}

#[async_trait::async_trait]
impl Provider for LocalProvider {
    fn name(&self) -> &'static str {
        "local"
    }

    async fn plan(
        &mut self,
        _wanted: &[WantedMachine],
        state: &State,
    ) -> Result<Plan, ProviderError> {
        let mut plan = Plan::new();
        let (record, missing, fresh) = match self.prepare(state)? {
            Prepared::AlreadyRunning(record) => (record, Vec::new(), false),
            Prepared::ToStart {
                record,
                missing,
                fresh,
            } => (record, missing, fresh),
        };
        if fresh {
            plan.push(Action::LayOut {
                shape: record.layout.shape(),
                dir: shown_dir(&self.settings.workdir, &record.layout.dir),
            });
        }
        for node in record.layout.nodes() {
            plan.push(if missing.contains(&node.name) {
                Action::StartProcess {
                    node: node.name.clone(),
                    listen: node.listen.to_string(),
                    why: if fresh { "new" } else { "not running" }.to_owned(),
                }
            } else {
                Action::ProcessRunning {
                    node: node.name.clone(),
                    pid: record.pids.get(&node.name).map_or(0, |p| p.pid),
                }
            });
        }
        Ok(plan)
    }

    async fn machines(
        &mut self,
        wanted: &[WantedMachine],
        state: &mut StateFile,
        progress: &Progress,
    ) -> Result<Vec<Machine>, ProviderError> {
        let record = match self.prepare(&state.state)? {
            Prepared::AlreadyRunning(record) | Prepared::ToStart { record, .. } => record,
        };
        for w in wanted {
            progress.enter(Step::Machines, &w.name)?;
        }
        let machines: Vec<Machine> = record.layout.nodes().map(machine_of).collect();
        for node in record.layout.nodes() {
            progress.machine(
                &node.name,
                format!(
                    "process on {}, data in {}",
                    node.listen,
                    shown_dir(&self.settings.workdir, &node.dir)
                ),
            );
        }
        let infra_file = self.settings.infra_file.clone();
        state.update(|s| {
            s.infra_file = infra_file;
            s.machines.clone_from(&machines);
            s.local = Some(record.clone());
        })?;
        self.record = Some(record);
        Ok(machines)
    }

    async fn install(
        &mut self,
        machines: &[Machine],
        _nodes: &[NodeSpec],
        _plan: &Plan,
        progress: &Progress,
    ) -> Result<(), ProviderError> {
        let names = || machines.iter().map(|m| m.name.as_str());
        progress.skip(
            Step::WaitSsh,
            names(),
            "nothing to wait for: the nodes are processes of this machine",
        )?;
        progress.skip(
            Step::Upload,
            names(),
            format!(
                "nothing to upload: the nodes run {}",
                self.program.display()
            ),
        )?;
        progress.skip(
            Step::Render,
            names(),
            "nothing to render: each node's command line is its process's arguments",
        )?;
        Ok(())
    }

    async fn start(
        &mut self,
        _machines: &[Machine],
        nodes: &[NodeSpec],
        plan: &Plan,
        state: &mut StateFile,
        progress: &Progress,
    ) -> Result<Vec<Change>, ProviderError> {
        let Some(mut record) = self.record.clone() else {
            return Err(ProviderError::Refused(
                "the local processes are started after the machines step".to_owned(),
            ));
        };
        let mut changes = Vec::new();
        for spec in nodes {
            let step = if spec.is_master() {
                Step::StartMasters
            } else {
                Step::StartAgents
            };
            progress.enter(step, &spec.name)?;
            let Some(node) = record.layout.nodes().find(|n| n.name == spec.name).cloned() else {
                return Err(ProviderError::Refused(format!(
                    "{} is not in the cluster's layout",
                    spec.name
                )));
            };
            let planned_start = plan.find(&node.name, |a| matches!(a, Action::StartProcess { .. }));
            if planned_start.is_none() {
                if let Some(pid) = running(&record, &node) {
                    progress.machine(&node.name, format!("running (pid {})", pid.pid));
                    changes.push(Change::Unchanged);
                    continue;
                }
                // It ran when the plan was made, and has ended since.
                progress.machine(&node.name, "ended since the plan was made");
            }
            let spawned = spawn(
                &record,
                &node,
                &self.program,
                self.settings.infra.agent_resources.as_deref(),
                self.exits_tx.clone(),
                Arc::clone(&self.stopping),
            );
            let id = match spawned {
                Ok(id) => id,
                Err(error) => {
                    self.record = Some(record);
                    return Err(ProviderError::on_machine(step, &node.name, error));
                }
            };
            self.started.push(node.name.clone());
            match id {
                Some(id) => {
                    record.pids.insert(node.name.clone(), id.into());
                    progress.machine(&node.name, format!("started (pid {})", id.pid));
                }
                None => progress.machine(&node.name, "started, and ended at once"),
            }
            self.record = Some(record.clone());
            state.update(|s| s.local = Some(record.clone()))?;
            changes.push(Change::Started);
        }
        Ok(changes)
    }

    fn check_started(&mut self) -> Result<(), ProviderError> {
        let Ok(exit) = self.exits.try_recv() else {
            return Ok(());
        };
        self.exit_reported = true;
        let log = self
            .record
            .as_ref()
            .and_then(|r| {
                let node = r.layout.nodes().find(|n| n.name == exit.name)?;
                Some(r.layout.log_file(node))
            })
            .unwrap_or_default();
        Err(provider_error(LocalError::Exited {
            status: exit.status_text(),
            name: exit.name,
            tail: tail(&log, LOG_TAIL),
            log: log.display().to_string(),
        }))
    }

    fn api_addresses(&self, _infra: &Infra, state: &State) -> Vec<SocketAddr> {
        state.local.as_ref().map_or_else(Vec::new, |record| {
            record.layout.masters.iter().map(|m| m.listen).collect()
        })
    }

    fn endpoints(&self, _infra: &Infra, state: &State) -> Vec<String> {
        state.local.as_ref().map_or_else(Vec::new, endpoint_lines)
    }

    async fn status(&mut self, state: &State) -> Result<Vec<MachineStatus>, ProviderError> {
        let Some(record) = &state.local else {
            return Ok(Vec::new());
        };
        Ok(node_status(record)
            .into_iter()
            .map(|status| MachineStatus {
                name: status.node.name.clone(),
                role: status.node.role,
                ip: Some(status.node.listen.ip()),
                id: match status.pid {
                    Some(pid) => format!("pid {} on {}", pid.pid, status.node.listen),
                    None => format!("no process on {}", status.node.listen),
                },
                state: if status.alive { "running" } else { "stopped" }.to_owned(),
            })
            .collect())
    }

    async fn destroy(
        &mut self,
        state: Option<&State>,
        progress: &Progress,
    ) -> Result<Vec<String>, ProviderError> {
        let dir = cluster_dir(&self.settings.workdir, &self.settings.infra.cluster);
        let record = state.and_then(|s| s.local.as_ref());
        let stopped = stop_cluster(record, &dir).await;
        if let Some(error) = &stopped.containers_error {
            progress.note(format!("task containers not removed: {error}"));
        }
        let count =
            |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
        let mut removed = vec![
            count(stopped.agents, "agent process", "agent processes"),
            count(stopped.task_processes, "task process", "task processes"),
            count(
                stopped.containers.len(),
                "task container",
                "task containers",
            ),
            count(stopped.masters, "master process", "master processes"),
        ];
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(|source| {
                ProviderError::failed(format!("cannot delete {}", dir.display()), source)
            })?;
            removed.push(shown_dir(&self.settings.workdir, &dir));
        }
        Ok(removed)
    }
}

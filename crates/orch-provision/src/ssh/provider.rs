//! [`Provider`] for [`SshProvider`]: the steps of `orch up`, `orch status` and
//! `orch destroy` on hosts reached over SSH.
//!
//! May depend on: provision::{cluster_spec, provider, state_file, steps, ssh::{node, session}}.

use super::*;

#[async_trait::async_trait]
impl Provider for SshProvider {
    fn name(&self) -> &'static str {
        "ssh"
    }

    async fn plan(
        &mut self,
        wanted: &[WantedMachine],
        _state: &State,
    ) -> Result<Plan, ProviderError> {
        // The plan changes nothing, not even known_hosts.
        let trust_on_first_use = std::mem::replace(&mut self.trust_on_first_use, false);
        let plan = self.plan_hosts(wanted).await;
        self.trust_on_first_use = trust_on_first_use;
        plan
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
        plan: &Plan,
        progress: &Progress,
    ) -> Result<(), ProviderError> {
        self.wait_all(machines, progress).await?;
        self.upload_all(machines, plan, progress).await?;
        self.render_all(machines, nodes, plan, progress).await
    }

    async fn start(
        &mut self,
        machines: &[Machine],
        nodes: &[NodeSpec],
        plan: &Plan,
        _state: &mut StateFile,
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
            let planned = decide::planned_start(plan, &host.name).cloned();
            jobs.push(async move {
                progress.enter(step, &host.name)?;
                let on = |e: SshError| ProviderError::on_machine(step, &host.name, e);
                let action = match planned {
                    Some(action) => action,
                    None => {
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
                        // After the upload and render steps the host's files are the wanted ones.
                        decide::start(&host.name, alive, started, current)
                    }
                };
                let Some(change) = decide::start_change(&action) else {
                    progress.machine(&host.name, "running as specified");
                    return Ok(Change::Unchanged);
                };
                let begin = Instant::now();
                connection
                    .run_ok("starting the node", &node::start_script(&layout, kind))
                    .await
                    .map_err(on)?;
                let why = match change {
                    Change::Started => "started (it was not running)",
                    _ => "restarted (its binary or service changed)",
                };
                progress.machine(
                    &host.name,
                    format!("{why} in {:.1}s", begin.elapsed().as_secs_f64()),
                );
                Ok(change)
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

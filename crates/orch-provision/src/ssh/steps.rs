//! The ssh provider's work across hosts: what `orch up --plan` would do on each, uploading
//! the binary, installing each node's TLS files and rendering the services on every host at
//! once.
//!
//! May depend on: provision::{cluster_spec, plan, provider, steps, ssh::{decide, node, session}}.

use super::*;

impl SshProvider {
    /// The plan (see [`Provider::plan`]): per host, [`decide`]'s upload, render and start.
    pub(super) async fn plan_hosts(
        &mut self,
        wanted: &[WantedMachine],
    ) -> Result<Plan, ProviderError> {
        let sha = self.local_sha().await?;
        let mut plan = Plan::new();
        for machine in wanted {
            let host = self.known(&machine.name)?.clone();
            let name = &host.name;
            let connection = match self.connection(name).await {
                Ok(connection) => connection,
                Err(error) => {
                    plan.push(Action::Unreachable {
                        machine: name.clone(),
                        address: host.address.clone(),
                        port: host.port,
                        error: orch_core::errors::chain(&error).to_string(),
                    });
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
                plan.push(Action::ForeignInstallDir {
                    machine: name.clone(),
                    dir: layout.dir.clone(),
                    owner: marker.to_owned(),
                });
                continue;
            }
            let remote_sha = node::field(&out, "sha").unwrap_or("");
            plan.push(decide::upload(name, remote_sha, &sha));
            let alive = node::field(&out, "alive") == Some("1");
            let started = node::field(&out, "started").filter(|s| !s.is_empty());
            let Some(spec) = self.nodes.iter().find(|n| n.name == *name) else {
                return Err(ProviderError::Refused(format!(
                    "{name} is not a node of the infra file"
                )));
            };
            // The file the render step will write, and the stamp the node will then be
            // started with: the start decision of `orch up` itself.
            let service =
                node::render_service(&layout, spec, kind).map_err(|e| failed(e.into()))?;
            let remote_service = node::field(&out, "service").unwrap_or("");
            let rendered = node::sha256_hex(service.as_bytes());
            plan.push(decide::service(name, kind, remote_service, &rendered));
            let after = node::stamp(&sha, &service);
            plan.push(decide::start(name, alive, started, &after));
        }
        Ok(plan)
    }

    pub(super) async fn upload_all(
        &mut self,
        machines: &[Machine],
        plan: &Plan,
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
            let planned = decide::planned_upload(plan, &host.name).cloned();
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
                // The plan's decision; the host's own sha where the plan could not reach it.
                let remote_sha = node::field(&out.stdout, "sha").unwrap_or("");
                let action =
                    planned.unwrap_or_else(|| decide::upload(&host.name, remote_sha, &sha));
                if !decide::uploads(&action) {
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

    pub(super) async fn render_all(
        &mut self,
        machines: &[Machine],
        nodes: &[NodeSpec],
        plan: &Plan,
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
            let write = decide::planned_write(plan, &host.name);
            jobs.push(async move {
                progress.enter(Step::Render, &host.name)?;
                let on = |e: SshError| ProviderError::on_machine(Step::Render, &host.name, e);
                let Some(spec) = spec else {
                    return Ok(());
                };
                install_tls(&connection, &host.name, &spec, progress)
                    .await
                    .map_err(on)?;
                let path = layout.service_path(kind);
                let what = match kind {
                    ServiceKind::Systemd => "systemd unit",
                    ServiceKind::Supervised => "supervisor script (no systemd)",
                };
                if !write {
                    progress.machine(&host.name, format!("{what} {path} unchanged"));
                    return Ok(());
                }
                let content =
                    node::render_service(&layout, &spec, kind).map_err(|e| on(e.into()))?;
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

/// Installs `spec`'s TLS files on the host (its certificate and key, the CA certificate, a
/// master's token: see [`crate::cluster_spec::tls_files`]), each only when it differs.
async fn install_tls(
    connection: &Connection,
    name: &str,
    spec: &NodeSpec,
    progress: &Progress,
) -> Result<(), SshError> {
    if spec.tls.is_empty() {
        return Ok(());
    }
    let mut files = Vec::new();
    for file in &spec.tls {
        let content = std::fs::read_to_string(&file.source).map_err(|source| SshError::Local {
            path: file.source.clone(),
            source,
        })?;
        files.push((file.target.clone(), content, file.private));
    }
    let out = connection
        .run_ok(
            "installing the TLS files",
            &node::install_files_script(&files),
        )
        .await?;
    let written = out.lines().filter(|l| l.starts_with("written=")).count();
    let dir = spec.tls[0]
        .target
        .rsplit_once('/')
        .map_or("", |(dir, _)| dir);
    progress.machine(
        name,
        match written {
            0 => format!("TLS files in {dir} up to date"),
            n => format!("installed {n} TLS file(s) in {dir} (keys 0600, no CA key)"),
        },
    );
    Ok(())
}

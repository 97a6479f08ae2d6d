//! [`Provider`] for [`DockerProvider`]: the steps of `orch up`, `orch status` and
//! `orch destroy` with containers of the local Docker engine.
//!
//! May depend on: provision::{cluster_spec, provider, state_file, steps,
//! docker::{containers, image, network}}, driver::docker (task labels).

use super::*;

#[async_trait::async_trait]
impl Provider for DockerProvider {
    fn name(&self) -> &'static str {
        "docker"
    }

    fn tls_dir(&self, _machine: &Machine) -> String {
        TLS_DIR.to_owned()
    }

    async fn plan(
        &mut self,
        wanted: &[WantedMachine],
        _state: &State,
    ) -> Result<Plan, ProviderError> {
        let docker = self.engine().await?;
        let mut plan = Plan::new();
        let image_state = image::state(&docker, &self.image, &self.options.binary)
            .await
            .map_err(failed("inspecting the node image"))?;
        let image_id = match &image_state {
            image::ImageState::Current(id) => {
                plan.push(Action::ImageCurrent {
                    image: self.image.clone(),
                });
                id.clone()
            }
            other => {
                plan.push(Action::BuildImage {
                    image: self.image.clone(),
                    reason: other.reason().unwrap_or("missing").to_owned(),
                });
                "(to be built)".to_owned()
            }
        };
        let subnet = match network::find(&docker, &self.network)
            .await
            .map_err(failed("inspecting the network"))?
        {
            Some((_, Some(subnet))) => {
                plan.push(Action::NetworkExists {
                    network: self.network.clone(),
                    subnet: subnet.to_string(),
                });
                subnet
            }
            Some((_, None)) => {
                return Err(ProviderError::Refused(format!(
                    "network {} exists without an IPv4 subnet",
                    self.network
                )))
            }
            None => {
                let subnet = network::plan_subnet(&docker, self.subnet)
                    .await
                    .map_err(failed("picking a subnet"))?;
                plan.push(Action::CreateNetwork {
                    network: self.network.clone(),
                    subnet: subnet.to_string(),
                });
                subnet
            }
        };
        let volumes = self
            .volumes(&docker)
            .await
            .map_err(failed("listing volumes"))?;
        let mountpoints: HashMap<String, String> = wanted
            .iter()
            .filter_map(|w| {
                volumes
                    .get(&containers::name(self.cluster(), &w.name))
                    .map(|m| (w.name.clone(), m.clone()))
            })
            .collect();
        let machines = self.machines_on(wanted, &subnet, &mountpoints)?;
        let nodes = self.node_specs(&machines);
        for (machine, node) in machines.iter().zip(&nodes) {
            let name = containers::name(self.cluster(), &machine.name);
            if !mountpoints.contains_key(&machine.name) {
                plan.push(Action::CreateVolume {
                    volume: name.clone(),
                });
            }
            let existing = containers::find(&docker, &name)
                .await
                .map_err(failed("inspecting containers"))?;
            let container = self.node_container(machine, node, &image_id);
            plan.push(containers::action(
                existing.as_ref(),
                &container.spec_hash(),
                &name,
                &container.ip,
            ));
        }
        Ok(plan)
    }

    async fn machines(
        &mut self,
        wanted: &[WantedMachine],
        state: &mut StateFile,
        progress: &Progress,
    ) -> Result<Vec<Machine>, ProviderError> {
        let docker = self.engine().await?;
        let image_id = image::ensure(
            &docker,
            &self.image,
            self.cluster(),
            &self.options.binary,
            INSTALL_DIR,
            progress,
        )
        .await
        .map_err(failed(format!("building image {}", self.image)))?;
        self.image_id = Some(image_id.clone());
        state.update(|s| {
            s.resources.insert("image".to_owned(), self.image.clone());
            s.resources.insert("image_id".to_owned(), image_id.clone());
        })?;
        let (network_id, subnet, created) =
            network::ensure(&docker, &self.network, self.cluster(), self.subnet)
                .await
                .map_err(failed(format!("network {}", self.network)))?;
        state.update(|s| {
            s.resources.insert("network".to_owned(), network_id.clone());
            s.resources
                .insert("network_name".to_owned(), self.network.clone());
            s.resources.insert("subnet".to_owned(), subnet.to_string());
        })?;
        progress.note(format!(
            "network {} {subnet}: {}",
            self.network,
            if created { "created" } else { "exists" }
        ));
        let mut mountpoints = HashMap::new();
        for w in wanted {
            progress.enter(Step::Machines, &w.name)?;
            let mountpoint = self
                .ensure_volume(&docker, &w.name)
                .await
                .map_err(|e| ProviderError::on_machine(Step::Machines, &w.name, e))?;
            if mountpoint.starts_with('/') {
                mountpoints.insert(w.name.clone(), mountpoint);
            }
        }
        let machines = self.machines_on(wanted, &subnet, &mountpoints)?;
        for machine in &machines {
            state.update(|s| s.put_machine(machine.clone()))?;
            progress.machine(
                &machine.name,
                format!(
                    "{} on {}, volume {} at {}",
                    machine.ip, self.network, machine.id, machine.install_dir
                ),
            );
        }
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
            "nothing to wait for: containers are reached through the Docker engine",
        )?;
        progress.skip(
            Step::Upload,
            names(),
            format!(
                "nothing to upload: the orch binary is in image {}",
                self.image
            ),
        )?;
        progress.skip(
            Step::Render,
            names(),
            "nothing to render: each node's command line is its container's command",
        )?;
        Ok(())
    }

    async fn start(
        &mut self,
        machines: &[Machine],
        nodes: &[NodeSpec],
        plan: &Plan,
        _state: &mut StateFile,
        progress: &Progress,
    ) -> Result<Vec<Change>, ProviderError> {
        let docker = self.engine().await?;
        let image_id = self.current_image(&docker).await?;
        let mut changes = Vec::new();
        for node in nodes {
            let step = if node.is_master() {
                Step::StartMasters
            } else {
                Step::StartAgents
            };
            progress.enter(step, &node.name)?;
            let machine = machines
                .iter()
                .find(|m| m.name == node.name)
                .ok_or_else(|| {
                    ProviderError::Refused(format!("no machine for node {}", node.name))
                })?;
            let container = self.node_container(machine, node, &image_id);
            let planned = containers::planned(plan, &container.name());
            let change = containers::ensure(&docker, &container, planned)
                .await
                .map_err(|e| ProviderError::on_machine(step, &node.name, e))?;
            progress.machine(
                &node.name,
                match change {
                    Change::Started => format!("started container {}", container.name()),
                    Change::Restarted => {
                        format!("recreated container {} (spec changed)", container.name())
                    }
                    Change::Unchanged => format!("{} running as specified", container.name()),
                },
            );
            changes.push(change);
        }
        Ok(changes)
    }

    async fn status(&mut self, state: &State) -> Result<Vec<MachineStatus>, ProviderError> {
        let docker = self.engine().await?;
        let mut statuses = Vec::new();
        for machine in &state.machines {
            let name = containers::name(self.cluster(), &machine.name);
            let existing = containers::find(&docker, &name)
                .await
                .map_err(failed("inspecting containers"))?;
            statuses.push(MachineStatus {
                name: machine.name.clone(),
                role: machine.role,
                ip: Some(machine.ip),
                id: existing
                    .as_ref()
                    .map_or_else(|| name.clone(), |e| e.id.chars().take(12).collect()),
                state: existing.map_or_else(|| "missing".to_owned(), |e| e.status),
            });
        }
        Ok(statuses)
    }

    async fn destroy(
        &mut self,
        state: Option<&State>,
        progress: &Progress,
    ) -> Result<Vec<String>, ProviderError> {
        let docker = self.engine().await?;
        let cluster_label = format!("{CLUSTER_LABEL}={}", self.cluster());
        let mut removed = Vec::new();
        // Nodes first (agents before masters), so that no agent starts a task meanwhile.
        let mut nodes = containers::list(&docker, &cluster_label)
            .await
            .map_err(failed("listing the cluster's containers"))?;
        nodes.sort_by_key(|c| {
            c.labels
                .as_ref()
                .and_then(|l| l.get(ROLE_LABEL))
                .is_some_and(|r| r == "master")
        });
        for container in &nodes {
            let name = containers::summary_name(container);
            containers::remove(&docker, &name)
                .await
                .map_err(failed(format!("removing {name}")))?;
            progress.note(format!("removed container {name}"));
            removed.push(format!("container {name}"));
        }
        // Docker tasks the agents started: their sandboxes lie in the agents' volumes.
        let volumes = self
            .volumes(&docker)
            .await
            .map_err(failed("listing the cluster's volumes"))?;
        let mountpoints: Vec<&String> = volumes.values().filter(|m| m.starts_with('/')).collect();
        let tasks = containers::list(&docker, TASK_LABEL)
            .await
            .map_err(failed("listing task containers"))?;
        for task in &tasks {
            let ours = task
                .labels
                .as_ref()
                .and_then(|l| l.get(SANDBOX_LABEL))
                .is_some_and(|s| mountpoints.iter().any(|m| Path::new(s).starts_with(m)));
            if !ours {
                continue;
            }
            let name = containers::summary_name(task);
            containers::remove(&docker, &name)
                .await
                .map_err(failed(format!("removing task container {name}")))?;
            progress.note(format!("removed task container {name}"));
            removed.push(format!("task container {name}"));
        }
        for name in volumes.keys() {
            let options = RemoveVolumeOptionsBuilder::default().force(true).build();
            match bounded(
                &format!("removing volume {name}"),
                docker.remove_volume(name, Some(options)),
            )
            .await
            {
                Err(error) if error.is_not_found() => {}
                other => other.map_err(failed(format!("removing volume {name}")))?,
            }
            progress.note(format!("removed volume {name}"));
            removed.push(format!("volume {name}"));
        }
        let filters: HashMap<&str, Vec<String>> = [("label", vec![cluster_label.clone()])].into();
        let networks = bounded(
            "listing networks",
            docker.list_networks(Some(
                ListNetworksOptionsBuilder::default()
                    .filters(&filters)
                    .build(),
            )),
        )
        .await
        .map_err(failed("listing the cluster's networks"))?;
        for network in networks {
            let Some(name) = network.name.or(network.id) else {
                continue;
            };
            match bounded(
                &format!("removing network {name}"),
                docker.remove_network(&name),
            )
            .await
            {
                Err(error) if error.is_not_found() => {}
                other => other.map_err(failed(format!("removing network {name}")))?,
            }
            progress.note(format!("removed network {name}"));
            removed.push(format!("network {name}"));
        }
        // The image this cluster built: by label (the tag may have moved on).
        let filters: HashMap<&str, Vec<String>> =
            [("label", vec![format!("{IMAGE_LABEL}={}", self.cluster())])].into();
        let images = bounded(
            "listing images",
            docker.list_images(Some(
                ListImagesOptionsBuilder::default()
                    .filters(&filters)
                    .build(),
            )),
        )
        .await
        .map_err(failed("listing the cluster's images"))?;
        let recorded = state.and_then(|s| s.resources.get("image").cloned());
        for summary in images {
            let tags: Vec<String> = summary
                .repo_tags
                .iter()
                .filter(|t| t.as_str() != "<none>:<none>")
                .cloned()
                .collect();
            let short_id = summary.id.trim_start_matches("sha256:").chars().take(12);
            let shown = match tags.first() {
                Some(tag) => tag.clone(),
                None => format!(
                    "{} (untagged: {})",
                    recorded.as_deref().unwrap_or("old build"),
                    short_id.collect::<String>()
                ),
            };
            let options = RemoveImageOptionsBuilder::default().force(true).build();
            match bounded(
                &format!("removing image {shown}"),
                docker.remove_image(&summary.id, Some(options), None),
            )
            .await
            {
                Err(error) if error.is_not_found() => {}
                Err(error) if error.is_conflict() => {
                    progress.note(format!("image {shown} kept: another container uses it"));
                    continue;
                }
                other => {
                    other.map_err(failed(format!("removing image {shown}")))?;
                }
            }
            progress.note(format!("removed image {shown}"));
            removed.push(format!("image {shown}"));
        }
        Ok(removed)
    }
}

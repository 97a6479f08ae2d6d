//! The docker provider: a whole cluster as containers of the local Docker engine. One image
//! built locally from the orch binary ([`image`]), one bridge network with a subnet so that
//! each machine has a fixed IP known before any container starts ([`network`]), one
//! container and one named volume per machine ([`containers`]). Containers, volumes and the
//! network are labelled `orch.cluster=<cluster>`, the image `orch.image-of=<cluster>`, so
//! `orch destroy` finds them even without the state file.
//!
//! Agents get the engine's socket mounted and run Docker tasks as siblings on the host
//! engine. An agent's volume is mounted at the volume's own path on the host (its
//! mountpoint), so the sandbox paths the agent hands to the engine exist on the host too.
//!
//! May depend on: provision::{cluster_spec, infra, provider, state_file, steps, templates},
//! driver::docker (task labels), model (is_url). Talks to the local engine (bollard).

pub mod containers;
pub mod image;
pub mod network;

use crate::cluster_spec::{self, Machine, MachineRole, NodeSpec, WantedMachine};
use crate::infra::Infra;
use crate::provider::{Change, MachineStatus, Provider, ProviderError, ProviderOptions};
use crate::state_file::{State, StateFile};
use crate::steps::{Progress, Step};
use bollard::models::VolumeCreateRequest;
use bollard::query_parameters::{
    ListImagesOptionsBuilder, ListNetworksOptionsBuilder, ListVolumesOptionsBuilder,
    RemoveImageOptionsBuilder, RemoveVolumeOptionsBuilder,
};
use bollard::Docker;
use containers::NodeContainer;
use network::Subnet;
use orch_driver::docker::{SANDBOX_LABEL, TASK_LABEL};
use orch_driver::engine::EngineError;
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

/// The label naming the cluster of a container, volume, network or image.
pub const CLUSTER_LABEL: &str = "orch.cluster";
/// The label naming a container's or volume's machine.
pub const MACHINE_LABEL: &str = "orch.machine";
/// The label naming a container's role (`master`, `agent`, `public_agent`).
pub const ROLE_LABEL: &str = "orch.role";
/// The label holding the hash of a container's spec.
pub const SPEC_LABEL: &str = "orch.spec-hash";
/// The label naming the cluster that built an image. Not [`CLUSTER_LABEL`]: containers
/// inherit their image's labels, and a task container run from the node image is no node.
pub const IMAGE_LABEL: &str = "orch.image-of";
/// The label holding the sha256 of the binary in an image.
pub const BINARY_LABEL: &str = "orch.binary-sha256";
/// The label holding the binary's size, inode and mtime in an image (see [`image::stamp`]).
pub const STAMP_LABEL: &str = "orch.binary-stamp";
/// Where masters keep their data (the volume's mount point).
pub const INSTALL_DIR: &str = "/var/lib/orch";
/// The engine's socket unless `docker.socket` names another.
pub const DEFAULT_SOCKET: &str = "/var/run/docker.sock";
/// Bound for one engine call (builds have their own).
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// Why a Docker call failed.
#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    /// An engine call failed or took too long.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// A local file or program failed.
    #[error("{what}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The image cannot be built.
    #[error("image {image}: {problem}")]
    Image {
        /// The image (or file) concerned.
        image: String,
        /// What is wrong.
        problem: String,
    },
    /// The network cannot be used.
    #[error("network {network}: {problem}")]
    Network {
        /// The network.
        network: String,
        /// What is wrong.
        problem: String,
    },
    /// Every candidate subnet overlaps a Docker network.
    #[error("no free 172.30.X.0/24 subnet among the Docker networks; name one in docker.subnet")]
    NoSubnet,
}

impl DockerError {
    /// True when the engine answered 404.
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            DockerError::Engine(EngineError::Call {
                source: bollard::errors::Error::DockerResponseServerError {
                    status_code: 404,
                    ..
                },
                ..
            })
        )
    }

    /// True when the engine answered 409 (in use, already exists).
    pub fn is_conflict(&self) -> bool {
        matches!(
            self,
            DockerError::Engine(EngineError::Call {
                source: bollard::errors::Error::DockerResponseServerError {
                    status_code: 409,
                    ..
                },
                ..
            })
        )
    }
}

fn engine_error(what: impl Into<String>, source: bollard::errors::Error) -> DockerError {
    DockerError::Engine(EngineError::Call {
        what: what.into(),
        source,
    })
}

/// Runs an engine call bounded by [`CALL_TIMEOUT`].
async fn bounded<T>(
    what: &str,
    call: impl std::future::Future<Output = Result<T, bollard::errors::Error>>,
) -> Result<T, DockerError> {
    Ok(orch_driver::engine::bounded(what, CALL_TIMEOUT, call).await?)
}

fn failed(what: impl Into<String>) -> impl FnOnce(DockerError) -> ProviderError {
    let what = what.into();
    move |error| ProviderError::failed(what, error)
}

/// Masters, agents and public agents as containers of the local Docker engine.
#[derive(Debug)]
pub struct DockerProvider {
    infra: Infra,
    options: ProviderOptions,
    network: String,
    image: String,
    socket: String,
    subnet: Option<Subnet>,
    docker: Option<Docker>,
    image_id: Option<String>,
}

impl DockerProvider {
    /// The provider for `infra`'s `docker:` section; refuses a subnet it cannot use.
    pub fn new(infra: &Infra, options: &ProviderOptions) -> Result<Self, ProviderError> {
        let docker = &infra.docker;
        let subnet = docker
            .subnet
            .as_deref()
            .map(str::parse::<Subnet>)
            .transpose()
            .map_err(|problem| ProviderError::Refused(format!("docker.subnet: {problem}")))?;
        Ok(Self {
            network: docker
                .network
                .clone()
                .unwrap_or_else(|| format!("orch-{}", infra.cluster)),
            image: docker
                .image
                .clone()
                .unwrap_or_else(|| format!("orch-node:{}", infra.cluster)),
            socket: docker
                .socket
                .clone()
                .unwrap_or_else(|| DEFAULT_SOCKET.to_owned()),
            infra: infra.clone(),
            options: options.clone(),
            subnet,
            docker: None,
            image_id: None,
        })
    }

    fn cluster(&self) -> &str {
        &self.infra.cluster
    }

    /// The local engine, connected once (API version negotiated).
    async fn engine(&mut self) -> Result<Docker, ProviderError> {
        if let Some(docker) = &self.docker {
            return Ok(docker.clone());
        }
        let refused = |e: &dyn std::fmt::Display| {
            ProviderError::Refused(format!(
                "no Docker engine answers (DOCKER_HOST or {DEFAULT_SOCKET}): {e}"
            ))
        };
        let docker = Docker::connect_with_local_defaults()
            .map_err(|e| refused(&e))?
            .with_timeout(Duration::from_secs(900));
        let docker = match tokio::time::timeout(CALL_TIMEOUT, docker.negotiate_version()).await {
            Ok(Ok(docker)) => docker,
            Ok(Err(e)) => return Err(refused(&e)),
            Err(_) => return Err(refused(&"no answer within a minute")),
        };
        self.docker = Some(docker.clone());
        Ok(docker)
    }

    /// The machines of `wanted` on `subnet`, with agents' install dirs at their volumes'
    /// mountpoints (`mountpoints`, by machine name) when known.
    fn machines_on(
        &self,
        wanted: &[WantedMachine],
        subnet: &Subnet,
        mountpoints: &HashMap<String, String>,
    ) -> Result<Vec<Machine>, ProviderError> {
        let mut numbers: HashMap<MachineRole, u32> = HashMap::new();
        wanted
            .iter()
            .enumerate()
            .map(|(position, w)| {
                let number = numbers.entry(w.role).or_insert(0);
                *number += 1;
                let position = u32::try_from(position).unwrap_or(u32::MAX);
                let ip =
                    network::machine_ip(subnet, w.role, *number, position).ok_or_else(|| {
                        ProviderError::Refused(format!(
                            "subnet {subnet} has no address for {} (use a larger docker.subnet)",
                            w.name
                        ))
                    })?;
                let install_dir = match (w.role, mountpoints.get(&w.name)) {
                    (MachineRole::Master, _) | (_, None) => INSTALL_DIR.to_owned(),
                    (_, Some(mountpoint)) => mountpoint.clone(),
                };
                Ok(Machine {
                    name: w.name.clone(),
                    role: w.role,
                    ip: IpAddr::V4(ip),
                    id: containers::name(self.cluster(), &w.name),
                    install_dir,
                    resources: None,
                    attributes: None,
                })
            })
            .collect()
    }

    /// The local gitops repos, bind-mounted read-only into masters at the same path.
    fn repo_paths(&self) -> Vec<String> {
        self.infra
            .gitops
            .iter()
            .filter_map(|entry| {
                let repo = entry.repo.strip_prefix("file://").unwrap_or(&entry.repo);
                if orch_core::model::is_url(repo) {
                    return None;
                }
                let path = crate::infra::absolute(&self.options.base_dir, repo);
                path.exists().then(|| path.display().to_string())
            })
            .collect()
    }

    /// The container `node` runs in.
    fn node_container(&self, machine: &Machine, node: &NodeSpec, image_id: &str) -> NodeContainer {
        let mut args = node.args.clone();
        let mut binds = Vec::new();
        let socket_exists = Path::new(&self.socket).exists();
        if node.is_master() {
            binds.extend(self.repo_paths().into_iter().map(|p| (p, true)));
        } else if socket_exists {
            binds.push((self.socket.clone(), false));
            if self.infra.containerizers.is_none() {
                args.extend(["--containerizers".to_owned(), "mesos,docker".to_owned()]);
            }
        }
        NodeContainer {
            cluster: self.cluster().to_owned(),
            machine: machine.name.clone(),
            role: machine.role,
            image_id: image_id.to_owned(),
            network: self.network.clone(),
            ip: machine.ip.to_string(),
            args,
            volume: containers::name(self.cluster(), &machine.name),
            volume_at: machine.install_dir.clone(),
            binds,
        }
    }

    /// The volume of `machine`, created when missing; returns its mountpoint on the host.
    async fn ensure_volume(&self, docker: &Docker, machine: &str) -> Result<String, DockerError> {
        let name = containers::name(self.cluster(), machine);
        let request = VolumeCreateRequest {
            name: Some(name.clone()),
            labels: Some(HashMap::from([
                (CLUSTER_LABEL.to_owned(), self.cluster().to_owned()),
                (MACHINE_LABEL.to_owned(), machine.to_owned()),
            ])),
            ..VolumeCreateRequest::default()
        };
        // Creating an existing volume returns it unchanged.
        let volume = bounded(
            &format!("creating volume {name}"),
            docker.create_volume(request),
        )
        .await?;
        Ok(volume.mountpoint)
    }

    /// The cluster's volumes: name → mountpoint.
    async fn volumes(&self, docker: &Docker) -> Result<HashMap<String, String>, DockerError> {
        let filters: HashMap<&str, Vec<String>> =
            [("label", vec![format!("{CLUSTER_LABEL}={}", self.cluster())])].into();
        let options = ListVolumesOptionsBuilder::default()
            .filters(&filters)
            .build();
        let listed = bounded("listing volumes", docker.list_volumes(Some(options))).await?;
        Ok(listed
            .volumes
            .unwrap_or_default()
            .into_iter()
            .map(|v| (v.name, v.mountpoint))
            .collect())
    }

    /// The image's id, known from `machines()` or looked up by tag.
    async fn current_image(&mut self, docker: &Docker) -> Result<String, ProviderError> {
        if let Some(id) = &self.image_id {
            return Ok(id.clone());
        }
        match image::state(docker, &self.image, &self.options.binary)
            .await
            .map_err(failed("inspecting the node image"))?
        {
            image::ImageState::Current(id) => {
                self.image_id = Some(id.clone());
                Ok(id)
            }
            other => Err(ProviderError::Refused(format!(
                "image {} is {}; the machines step builds it",
                self.image,
                other.reason().unwrap_or("missing")
            ))),
        }
    }
}

#[async_trait::async_trait]
impl Provider for DockerProvider {
    fn name(&self) -> &'static str {
        "docker"
    }

    async fn plan(
        &mut self,
        wanted: &[WantedMachine],
        _state: &State,
    ) -> Result<Vec<String>, ProviderError> {
        let docker = self.engine().await?;
        let mut lines = Vec::new();
        let image_state = image::state(&docker, &self.image, &self.options.binary)
            .await
            .map_err(failed("inspecting the node image"))?;
        let image_id = match &image_state {
            image::ImageState::Current(id) => {
                lines.push(format!(
                    "image {} is current (binary unchanged)",
                    self.image
                ));
                id.clone()
            }
            other => {
                lines.push(format!(
                    "build image {} ({})",
                    self.image,
                    other.reason().unwrap_or("missing")
                ));
                "(to be built)".to_owned()
            }
        };
        let subnet = match network::find(&docker, &self.network)
            .await
            .map_err(failed("inspecting the network"))?
        {
            Some((_, Some(subnet))) => {
                lines.push(format!("network {} {subnet} exists", self.network));
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
                lines.push(format!("create network {} {subnet}", self.network));
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
        let nodes = cluster_spec::node_specs(&self.infra, &machines);
        for (machine, node) in machines.iter().zip(&nodes) {
            let name = containers::name(self.cluster(), &machine.name);
            if !mountpoints.contains_key(&machine.name) {
                lines.push(format!("create volume {name}"));
            }
            let existing = containers::find(&docker, &name)
                .await
                .map_err(failed("inspecting containers"))?;
            let hash = self.node_container(machine, node, &image_id).spec_hash();
            lines.push(match containers::action(existing.as_ref(), &hash) {
                Some(action) if action == "create" => {
                    format!("create container {name} ({})", machine.ip)
                }
                Some(action) => format!("{action} {name}"),
                None => format!("{name} running as specified"),
            });
        }
        Ok(lines)
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
        progress: &Progress,
    ) -> Result<(), ProviderError> {
        progress.step(Step::WaitSsh)?;
        for machine in machines {
            progress.enter(Step::WaitSsh, &machine.name)?;
        }
        progress.note("nothing to wait for: containers are reached through the Docker engine");
        progress.step(Step::Upload)?;
        for machine in machines {
            progress.enter(Step::Upload, &machine.name)?;
        }
        progress.note(format!(
            "nothing to upload: the orch binary is in image {}",
            self.image
        ));
        progress.step(Step::Render)?;
        for machine in machines {
            progress.enter(Step::Render, &machine.name)?;
        }
        progress.note("nothing to render: each node's command line is its container's command");
        Ok(())
    }

    async fn start(
        &mut self,
        machines: &[Machine],
        nodes: &[NodeSpec],
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
            let change = containers::ensure(&docker, &container)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::infra::ProviderKind;

    fn options() -> ProviderOptions {
        ProviderOptions {
            binary: "/usr/local/bin/orch".into(),
            trust_on_first_use: false,
            base_dir: "/srv/infra".into(),
            cluster_dir: "/srv/.orch/demo".into(),
            fail_at: None,
        }
    }

    #[test]
    fn the_example_infra_file_names_network_image_and_socket() {
        let infra = Infra::from_yaml(include_str!("../../../../infra/docker.yaml"), "docker.yaml")
            .expect("infra/docker.yaml is valid");
        assert_eq!(infra.provider, ProviderKind::Docker);
        assert_eq!((infra.masters, infra.agents), (3, 2));
        let provider = DockerProvider::new(&infra, &options()).expect("provider");
        assert_eq!(provider.network, "orch-demo");
        assert_eq!(provider.image, "orch-node:demo");
        assert_eq!(provider.socket, DEFAULT_SOCKET);
        let refused = Infra {
            docker: crate::infra::DockerEntry {
                subnet: Some("10.0.0.0/31".to_owned()),
                ..Default::default()
            },
            ..infra
        };
        assert!(matches!(
            DockerProvider::new(&refused, &options()),
            Err(ProviderError::Refused(_))
        ));
    }

    #[test]
    fn machines_get_role_addresses_and_agents_their_volume_paths() {
        let infra = Infra {
            provider: ProviderKind::Docker,
            cluster: "demo".to_owned(),
            masters: 1,
            agents: 2,
            ..Infra::default()
        };
        let provider = DockerProvider::new(&infra, &options()).expect("provider");
        let wanted = cluster_spec::wanted_machines(&infra);
        let subnet: Subnet = "172.30.9.0/24".parse().expect("subnet");
        let mountpoints = HashMap::from([(
            "agent-1".to_owned(),
            "/var/lib/docker/volumes/orch-demo-agent-1/_data".to_owned(),
        )]);
        let machines = provider
            .machines_on(&wanted, &subnet, &mountpoints)
            .expect("machines");
        let ips: Vec<String> = machines.iter().map(|m| m.ip.to_string()).collect();
        assert_eq!(ips, ["172.30.9.11", "172.30.9.101", "172.30.9.102"]);
        assert_eq!(machines[0].install_dir, INSTALL_DIR);
        assert_eq!(machines[1].install_dir, mountpoints["agent-1"]);
        assert_eq!(machines[2].install_dir, INSTALL_DIR, "no volume yet");
        assert_eq!(machines[1].id, "orch-demo-agent-1");
        let nodes = cluster_spec::node_specs(&infra, &machines);
        let master = provider.node_container(&machines[0], &nodes[0], "sha256:i");
        assert_eq!(master.volume_at, INSTALL_DIR);
        assert!(master.binds.is_empty(), "no gitops repos, no socket");
        let agent = provider.node_container(&machines[1], &nodes[1], "sha256:i");
        assert_eq!(agent.volume, "orch-demo-agent-1");
        if Path::new(DEFAULT_SOCKET).exists() {
            assert_eq!(agent.binds, [(DEFAULT_SOCKET.to_owned(), false)]);
            assert!(agent
                .args
                .ends_with(&["--containerizers".to_owned(), "mesos,docker".to_owned()]));
        }
    }
}

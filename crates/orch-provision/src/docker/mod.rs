//! The docker provider: a whole cluster as containers of the local Docker engine. One image
//! built locally from the orch binary ([`image`]), one bridge network with a subnet so that
//! each machine has a fixed IP known before any container starts ([`network`]), one
//! container and one named volume per machine ([`containers`]). Containers, volumes and the
//! network are labelled `orch.cluster=<cluster>`, the image `orch.image-of=<cluster>`, so
//! `orch destroy` finds them even without the state file.
//!
//! Every node's certificate, key and the CA certificate (a master's token too) are bind-mounted
//! read-only from `.orch/<cluster>/` at [`TLS_DIR`] in its container; a certificate issued
//! again for a new address comes with a new command line, so the container is recreated.
//!
//! Agents get the engine's socket mounted and run Docker tasks as siblings on the host
//! engine. An agent's volume is mounted at the volume's own path on the host (its
//! mountpoint), so the sandbox paths the agent hands to the engine exist on the host too.
//!
//! May depend on: provision::{cluster_spec, infra, provider, state_file, steps, templates},
//! driver::docker (task labels), model (is_url). Talks to the local engine (bollard).

pub mod containers;
mod error;
pub mod image;
pub mod network;
mod provider;

use crate::cluster_spec::{self, Machine, MachineRole, NodeSpec, WantedMachine};
use crate::infra::Infra;
use crate::plan::{Action, Plan};
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
pub use error::DockerError;
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
/// Where a node's TLS files are in its container: bind-mounted read-only, file by file, from
/// `.orch/<cluster>/pki/` (never the CA key).
pub const TLS_DIR: &str = "/etc/orch/tls";
/// The engine's socket unless `docker.socket` names another.
pub const DEFAULT_SOCKET: &str = "/var/run/docker.sock";
/// Bound for one engine call (builds have their own).
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

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
                    private_ip: None,
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

    /// The specs of `machines`' nodes, with their TLS files at [`TLS_DIR`] (and their digest
    /// as the files are now).
    fn node_specs(&self, machines: &[Machine]) -> Vec<NodeSpec> {
        let mut specs =
            cluster_spec::node_specs(&self.infra, machines, &self.options.cluster_dir, &|_| {
                TLS_DIR.to_owned()
            });
        crate::cluster_pki::stamp_tls(&mut specs);
        specs
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
        let files = node
            .tls
            .iter()
            .map(|f| (f.source.display().to_string(), f.target.clone()))
            .collect();
        NodeContainer {
            files,
            files_digest: node.tls_digest.clone(),
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

#[cfg(test)]
mod tests;

//! One container per machine: `orch-<cluster>-<machine>`, hostname the machine's name, a
//! fixed IP on the cluster's network, the node's command line as its command and a named
//! volume at the machine's install dir (so recreating it keeps the Raft log and the agent's
//! id). Labelled with the cluster, the machine, the role and a hash of everything that makes
//! its spec (command, image id, mounts, address): a container whose hash differs is
//! recreated, one running as specified is left alone.
//!
//! May depend on: provision::{cluster_spec, provider}, the parent module (errors, labels,
//! engine calls). Talks to the engine.

use super::{bounded, DockerError, CLUSTER_LABEL, MACHINE_LABEL, ROLE_LABEL, SPEC_LABEL};
use crate::cluster_spec::MachineRole;
use crate::plan::{Action, Plan};
use crate::provider::Change;
use bollard::models::{
    ContainerCreateBody, ContainerSummary, EndpointIpamConfig, EndpointSettings, HostConfig,
    NetworkingConfig, RestartPolicy, RestartPolicyNameEnum,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, ListContainersOptionsBuilder, RemoveContainerOptionsBuilder,
};
use bollard::Docker;
use sha2::Digest as _;
use std::collections::HashMap;

/// Everything a node's container is made from.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct NodeContainer {
    /// The cluster's name.
    pub cluster: String,
    /// The machine's name (`master-1`, ...), also the hostname.
    pub machine: String,
    /// What it runs.
    pub role: MachineRole,
    /// The image's id (not its tag, so a rebuilt image changes the hash).
    pub image_id: String,
    /// The network's name.
    pub network: String,
    /// The container's fixed IP on the network.
    pub ip: String,
    /// The node's arguments (`master --listen ...`).
    pub args: Vec<String>,
    /// The machine's named volume.
    pub volume: String,
    /// Where the volume is mounted (the machine's install dir).
    pub volume_at: String,
    /// Host paths bind-mounted at the same path: (path, read-only).
    pub binds: Vec<(String, bool)>,
    /// Host files bind-mounted read-only elsewhere: (host path, path in the container).
    pub files: Vec<(String, String)>,
    /// The sha256 of those files' contents: a certificate issued again recreates the
    /// container (a bind-mounted file replaced on the host is not seen inside).
    pub files_digest: String,
}

impl NodeContainer {
    /// `orch-<cluster>-<machine>`.
    pub fn name(&self) -> String {
        name(&self.cluster, &self.machine)
    }

    /// The hash of the spec, as the container's [`SPEC_LABEL`].
    pub fn spec_hash(&self) -> String {
        let text = serde_json::to_string(self).unwrap_or_default();
        hex::encode(sha2::Sha256::digest(text.as_bytes()))[..16].to_owned()
    }

    /// The engine's create request.
    pub fn config(&self) -> ContainerCreateBody {
        let labels = HashMap::from([
            (CLUSTER_LABEL.to_owned(), self.cluster.clone()),
            (MACHINE_LABEL.to_owned(), self.machine.clone()),
            (ROLE_LABEL.to_owned(), self.role.name().to_owned()),
            (SPEC_LABEL.to_owned(), self.spec_hash()),
        ]);
        let mut binds = vec![format!("{}:{}", self.volume, self.volume_at)];
        binds.extend(self.binds.iter().map(|(path, read_only)| {
            format!("{path}:{path}{}", if *read_only { ":ro" } else { "" })
        }));
        binds.extend(
            self.files
                .iter()
                .map(|(source, target)| format!("{source}:{target}:ro")),
        );
        let endpoint = EndpointSettings {
            ipam_config: Some(EndpointIpamConfig {
                ipv4_address: Some(self.ip.clone()),
                ..EndpointIpamConfig::default()
            }),
            ..EndpointSettings::default()
        };
        ContainerCreateBody {
            hostname: Some(self.machine.clone()),
            image: Some(self.image_id.clone()),
            cmd: Some(self.args.clone()),
            labels: Some(labels),
            host_config: Some(HostConfig {
                binds: Some(binds),
                network_mode: Some(self.network.clone()),
                restart_policy: Some(RestartPolicy {
                    name: Some(RestartPolicyNameEnum::UNLESS_STOPPED),
                    maximum_retry_count: None,
                }),
                init: Some(false),
                ..HostConfig::default()
            }),
            networking_config: Some(NetworkingConfig {
                endpoints_config: Some(HashMap::from([(self.network.clone(), endpoint)])),
            }),
            ..ContainerCreateBody::default()
        }
    }
}

/// The container (and volume) name of `machine`.
pub fn name(cluster: &str, machine: &str) -> String {
    format!("orch-{cluster}-{machine}")
}

/// A container as it exists.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Existing {
    /// Its id.
    pub id: String,
    /// `running`, `exited`, `created`, ...
    pub status: String,
    /// Its spec label.
    pub spec_hash: Option<String>,
}

/// The container called `name`, None when there is none.
pub async fn find(docker: &Docker, name: &str) -> Result<Option<Existing>, DockerError> {
    match bounded(
        &format!("inspecting container {name}"),
        docker.inspect_container(name, None),
    )
    .await
    {
        Ok(container) => Ok(Some(Existing {
            id: container.id.unwrap_or_default(),
            status: container
                .state
                .and_then(|s| s.status)
                .map_or_else(|| "unknown".to_owned(), |s| s.to_string()),
            spec_hash: container
                .config
                .and_then(|c| c.labels)
                .and_then(|l| l.get(SPEC_LABEL).cloned()),
        })),
        Err(error) if error.is_not_found() => Ok(None),
        Err(error) => Err(error),
    }
}

/// What [`ensure`] would do to `existing` for the container `name` (address `ip`) with
/// `hash`: the plan's action for it, which [`ensure`] then carries out.
pub fn action(existing: Option<&Existing>, hash: &str, name: &str, ip: &str) -> Action {
    let container = name.to_owned();
    match existing {
        None => Action::CreateContainer {
            container,
            ip: ip.to_owned(),
        },
        Some(e) if e.spec_hash.as_deref() != Some(hash) => Action::RecreateContainer { container },
        Some(e) if e.status != "running" => Action::StartContainer {
            container,
            status: e.status.clone(),
        },
        Some(_) => Action::ContainerUnchanged { container },
    }
}

/// One engine call [`ensure`] makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Call {
    /// Remove the container (killing it).
    Remove,
    /// Create it.
    Create,
    /// Start it.
    Start,
}

/// The engine calls that carry out a container's `action`, in order, and what they change;
/// an action that is not a container's makes none.
pub fn calls(action: &Action) -> (&'static [Call], Change) {
    match action {
        Action::CreateContainer { .. } => (&[Call::Create, Call::Start], Change::Started),
        Action::RecreateContainer { .. } => (
            &[Call::Remove, Call::Create, Call::Start],
            Change::Restarted,
        ),
        Action::StartContainer { .. } => (&[Call::Start], Change::Started),
        _ => (&[], Change::Unchanged),
    }
}

/// The plan's decision for the container `name`, when it still holds at the start steps:
/// None when the plan could not know it (an image to build or a network or this volume to
/// create change the spec the plan hashed), or has none.
pub fn planned<'a>(plan: &'a Plan, name: &str) -> Option<&'a Action> {
    let earlier = |a: &Action| match a {
        Action::BuildImage { .. } | Action::CreateNetwork { .. } => true,
        Action::CreateVolume { volume } => volume == name,
        _ => false,
    };
    if plan.any(earlier) {
        return None;
    }
    plan.find(name, |a| {
        matches!(
            a,
            Action::CreateContainer { .. }
                | Action::RecreateContainer { .. }
                | Action::StartContainer { .. }
                | Action::ContainerUnchanged { .. }
        )
    })
}

/// Makes `node` run as specified: creates and starts it when missing, starts it when
/// stopped, recreates it when its spec changed. The decision is `planned` (see [`planned`])
/// or, without one, [`action`]'s on what exists now; the calls are [`calls`]'.
pub async fn ensure(
    docker: &Docker,
    node: &NodeContainer,
    planned: Option<&Action>,
) -> Result<Change, DockerError> {
    let name = node.name();
    let action = match planned {
        Some(action) => action.clone(),
        None => {
            let existing = find(docker, &name).await?;
            action(existing.as_ref(), &node.spec_hash(), &name, &node.ip)
        }
    };
    let (calls, change) = calls(&action);
    for call in calls {
        match call {
            Call::Remove => remove(docker, &name).await?,
            Call::Create => {
                let options = CreateContainerOptionsBuilder::default().name(&name).build();
                bounded(
                    &format!("creating container {name}"),
                    docker.create_container(Some(options), node.config()),
                )
                .await?;
            }
            Call::Start => start(docker, &name).await?,
        }
    }
    Ok(change)
}

async fn start(docker: &Docker, name: &str) -> Result<(), DockerError> {
    bounded(
        &format!("starting container {name}"),
        docker.start_container(name, None),
    )
    .await
}

/// Removes the container `name` (killing it); a missing one is fine.
pub async fn remove(docker: &Docker, name: &str) -> Result<(), DockerError> {
    let options = RemoveContainerOptionsBuilder::default().force(true).build();
    match bounded(
        &format!("removing container {name}"),
        docker.remove_container(name, Some(options)),
    )
    .await
    {
        Err(error) if error.is_not_found() => Ok(()),
        other => other,
    }
}

/// Every container (running or not) carrying `label` (`key` or `key=value`).
pub async fn list(docker: &Docker, label: &str) -> Result<Vec<ContainerSummary>, DockerError> {
    let filters: HashMap<&str, Vec<String>> = [("label", vec![label.to_owned()])].into();
    let options = ListContainersOptionsBuilder::default()
        .all(true)
        .filters(&filters)
        .build();
    bounded("listing containers", docker.list_containers(Some(options))).await
}

/// A listed container's name, without the leading `/`.
pub fn summary_name(container: &ContainerSummary) -> String {
    container
        .names
        .as_ref()
        .and_then(|n| n.first())
        .map(|n| n.trim_start_matches('/').to_owned())
        .or_else(|| container.id.clone())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node() -> NodeContainer {
        NodeContainer {
            cluster: "demo".to_owned(),
            machine: "agent-1".to_owned(),
            role: MachineRole::Agent,
            image_id: "sha256:aaa".to_owned(),
            network: "orch-demo".to_owned(),
            ip: "172.30.1.101".to_owned(),
            args: vec!["agent".to_owned(), "--listen".to_owned()],
            volume: "orch-demo-agent-1".to_owned(),
            volume_at: "/var/lib/orch".to_owned(),
            binds: vec![("/var/run/docker.sock".to_owned(), false)],
            files: vec![(
                "/w/.orch/demo/pki/agent-1.pem".to_owned(),
                "/etc/orch/tls/node.pem".to_owned(),
            )],
            files_digest: "d1".to_owned(),
        }
    }

    #[test]
    fn the_spec_hash_follows_args_image_and_mounts() {
        let base = node();
        assert_eq!(base.spec_hash(), node().spec_hash(), "stable");
        assert_eq!(base.spec_hash().len(), 16);
        let mut other = node();
        other.args.push("--public".to_owned());
        assert_ne!(other.spec_hash(), base.spec_hash());
        let mut other = node();
        other.image_id = "sha256:bbb".to_owned();
        assert_ne!(other.spec_hash(), base.spec_hash());
        let mut other = node();
        other.binds.clear();
        assert_ne!(other.spec_hash(), base.spec_hash());
        let mut other = node();
        other.files_digest = "d2".to_owned();
        assert_ne!(other.spec_hash(), base.spec_hash(), "new certificates");
    }

    #[test]
    fn the_config_carries_labels_address_and_mounts() {
        let config = node().config();
        let labels = config.labels.expect("labels");
        assert_eq!(labels[CLUSTER_LABEL], "demo");
        assert_eq!(labels[ROLE_LABEL], "agent");
        assert_eq!(labels[SPEC_LABEL], node().spec_hash());
        assert_eq!(config.hostname.as_deref(), Some("agent-1"));
        let host = config.host_config.expect("host config");
        assert_eq!(
            host.binds.expect("binds"),
            [
                "orch-demo-agent-1:/var/lib/orch",
                "/var/run/docker.sock:/var/run/docker.sock",
                "/w/.orch/demo/pki/agent-1.pem:/etc/orch/tls/node.pem:ro"
            ]
        );
        let endpoints = config
            .networking_config
            .and_then(|n| n.endpoints_config)
            .expect("endpoints");
        assert_eq!(
            endpoints["orch-demo"]
                .ipam_config
                .as_ref()
                .and_then(|i| i.ipv4_address.as_deref()),
            Some("172.30.1.101")
        );
    }

    #[test]
    fn the_action_depends_on_state_and_hash() {
        let running = Existing {
            id: "c1".to_owned(),
            status: "running".to_owned(),
            spec_hash: Some("h1".to_owned()),
        };
        let line = |e: Option<&Existing>, hash: &str| action(e, hash, "c", "10.0.0.2").to_string();
        assert_eq!(line(None, "h1"), "create container c (10.0.0.2)");
        assert_eq!(line(Some(&running), "h1"), "c running as specified");
        assert_eq!(line(Some(&running), "h2"), "recreate (spec changed) c");
        let exited = Existing {
            status: "exited".to_owned(),
            ..running
        };
        assert_eq!(line(Some(&exited), "h1"), "start (exited) c");
    }

    #[test]
    fn ensure_makes_exactly_the_calls_of_the_action() {
        let container = || "c".to_owned();
        let unchanged = Action::ContainerUnchanged {
            container: container(),
        };
        assert_eq!(calls(&unchanged), (&[][..], Change::Unchanged));
        let create = Action::CreateContainer {
            container: container(),
            ip: "10.0.0.2".to_owned(),
        };
        assert_eq!(
            calls(&create),
            (&[Call::Create, Call::Start][..], Change::Started)
        );
        let recreate = Action::RecreateContainer {
            container: container(),
        };
        assert_eq!(
            calls(&recreate),
            (
                &[Call::Remove, Call::Create, Call::Start][..],
                Change::Restarted
            )
        );
        let start = Action::StartContainer {
            container: container(),
            status: "exited".to_owned(),
        };
        assert_eq!(calls(&start), (&[Call::Start][..], Change::Started));
        // Not a container's action: nothing is called.
        let other = Action::StartNode {
            machine: container(),
        };
        assert_eq!(calls(&other), (&[][..], Change::Unchanged));
    }

    #[test]
    fn the_start_step_takes_the_plans_decision_unless_an_earlier_step_changes_it() {
        let unchanged = Action::ContainerUnchanged {
            container: "c".to_owned(),
        };
        let mut plan = Plan {
            actions: vec![
                Action::ImageCurrent {
                    image: "i".to_owned(),
                },
                unchanged.clone(),
            ],
        };
        let decided = planned(&plan, "c");
        assert_eq!(decided, Some(&unchanged));
        // The plan says unchanged: no engine call at all.
        assert_eq!(calls(&unchanged), (&[][..], Change::Unchanged));
        assert_eq!(planned(&plan, "d"), None);
        plan.actions.push(Action::CreateVolume {
            volume: "d".to_owned(),
        });
        assert_eq!(planned(&plan, "c"), Some(&unchanged));
        plan.actions.push(Action::BuildImage {
            image: "i".to_owned(),
            reason: "binary changed".to_owned(),
        });
        assert_eq!(planned(&plan, "c"), None);
    }
}

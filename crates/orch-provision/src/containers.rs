//! The Docker side of a local cluster: whether an engine answers (to offer the `docker`
//! containerizer), and removing the containers of a cluster's agents when it is stopped
//! (they outlive their agents by design). A container is the cluster's when its
//! `orch.agent` label names one of the cluster's agents or its `orch.sandbox` label lies
//! under the cluster dir. Without an engine there is nothing to remove.
//!
//! May depend on: driver::docker (labels). Talks to the local engine (bollard).

use bollard::query_parameters::{
    ListContainersOptionsBuilder, RemoveContainerOptionsBuilder, StopContainerOptionsBuilder,
};
use bollard::Docker;
use orch_driver::docker::{AGENT_LABEL, SANDBOX_LABEL, TASK_LABEL};
use orch_driver::engine::{bounded, EngineError};
use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::time::Duration;

/// How long a ping may take before the engine counts as absent.
const PING_TIMEOUT: Duration = Duration::from_secs(2);
/// Bound for listing and removing.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// The local engine (`DOCKER_HOST` or `/var/run/docker.sock`) when it answers a ping
/// within 2 s.
pub async fn engine() -> Option<Docker> {
    let docker = Docker::connect_with_local_defaults().ok()?;
    match tokio::time::timeout(PING_TIMEOUT, docker.ping()).await {
        Ok(Ok(_)) => Some(docker),
        _ => None,
    }
}

/// True when a container with these labels belongs to the cluster in `dir` whose agents
/// have the ids `agents`.
pub fn is_ours(labels: &HashMap<String, String>, dir: &Path, agents: &BTreeSet<String>) -> bool {
    labels.get(AGENT_LABEL).is_some_and(|a| agents.contains(a))
        || labels
            .get(SANDBOX_LABEL)
            .is_some_and(|s| Path::new(s).starts_with(dir))
}

/// The agent ids recorded in `<dir>/*/agent_id` (agents' work dirs).
pub fn agent_ids(dir: &Path) -> BTreeSet<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return BTreeSet::new();
    };
    entries
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path().join("agent_id")).ok())
        .map(|id| id.trim().to_owned())
        .filter(|id| !id.is_empty())
        .collect()
}

/// Stops (with `grace` before SIGKILL) and removes every task container of the cluster in
/// `dir`. Returns their names; an absent engine means none.
pub async fn remove_tasks(dir: &Path, grace: Duration) -> Result<Vec<String>, EngineError> {
    let Some(docker) = engine().await else {
        return Ok(Vec::new());
    };
    let agents = agent_ids(dir);
    let filters: HashMap<&str, Vec<String>> = [("label", vec![TASK_LABEL.to_owned()])].into();
    let options = ListContainersOptionsBuilder::default()
        .all(true)
        .filters(&filters)
        .build();
    let containers = bounded(
        "listing containers",
        CALL_TIMEOUT,
        docker.list_containers(Some(options)),
    )
    .await?;
    let mut removed = Vec::new();
    for container in containers {
        let labels = container.labels.unwrap_or_default();
        let Some(id) = container.id else { continue };
        if !is_ours(&labels, dir, &agents) {
            continue;
        }
        let name = container
            .names
            .and_then(|n| n.first().map(|n| n.trim_start_matches('/').to_owned()))
            .unwrap_or_else(|| id.clone());
        let seconds = i32::try_from(grace.as_secs()).unwrap_or(i32::MAX);
        let stop = StopContainerOptionsBuilder::default().t(seconds).build();
        // A stopped container answers 304; either way it is removed next.
        let _ = bounded(
            &format!("stopping {name}"),
            grace + CALL_TIMEOUT,
            docker.stop_container(&id, Some(stop)),
        )
        .await;
        let remove = RemoveContainerOptionsBuilder::default().force(true).build();
        match bounded(
            &format!("removing {name}"),
            CALL_TIMEOUT,
            docker.remove_container(&id, Some(remove)),
        )
        .await
        {
            Ok(()) => {}
            Err(EngineError::Call {
                source:
                    bollard::errors::Error::DockerResponseServerError {
                        status_code: 404, ..
                    },
                ..
            }) => {}
            Err(error) => return Err(error),
        }
        removed.push(name);
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn containers_are_ours_by_agent_or_sandbox() {
        let dir = Path::new("/w/.orch/local");
        let agents: BTreeSet<String> = ["a1-S0".to_owned()].into();
        let labels = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert!(is_ours(&labels(&[(AGENT_LABEL, "a1-S0")]), dir, &agents));
        assert!(is_ours(
            &labels(&[
                (AGENT_LABEL, "other-S0"),
                (SANDBOX_LABEL, "/w/.orch/local/agent-2/sandboxes/t")
            ]),
            dir,
            &agents
        ));
        assert!(!is_ours(
            &labels(&[
                (AGENT_LABEL, "other-S0"),
                (SANDBOX_LABEL, "/w/.orch/local2/agent-1/sandboxes/t")
            ]),
            dir,
            &agents
        ));
    }

    #[test]
    fn agent_ids_come_from_the_work_dirs() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir_all(dir.path().join("agent-1")).expect("mkdir");
        std::fs::create_dir_all(dir.path().join("master-1")).expect("mkdir");
        std::fs::write(dir.path().join("agent-1/agent_id"), "abc-S0\n").expect("write");
        assert_eq!(agent_ids(dir.path()), ["abc-S0".to_owned()].into());
    }
}

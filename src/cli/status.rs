//! `orch status`: whether the cluster of an infra file runs, each of its processes (pid,
//! address, alive or dead), the leader and agents as the API reports them, and the gitops
//! repos with their sync state when the API serves `/v1/gitops`.

use super::infra_file::{self, InfraArgs};
use super::up::{api_url, service_lines};
use orch_provision::cluster_api::ClusterApi;
use orch_provision::local;
use orch_provision::state_file::LocalState;

/// Runs `orch status`.
pub async fn run(args: InfraArgs) -> anyhow::Result<()> {
    let loaded = infra_file::load(&args)?;
    if loaded.infra.provider != orch_provision::infra::ProviderKind::Local {
        return super::remote::status(&loaded).await;
    }
    let cluster = &loaded.infra.cluster;
    let Some(record) = LocalState::load(&loaded.cluster_dir())? else {
        println!(
            "cluster '{cluster}' does not exist here (no {}); `orch up` creates it",
            loaded.shown_dir()
        );
        let others = other_clusters(&loaded.workdir, cluster);
        if !others.is_empty() {
            println!(
                "other clusters in .orch/: {} (name one with -f and its infra file)",
                others.join(", ")
            );
        }
        return Ok(());
    };
    let nodes = local::node_status(&record);
    let alive = nodes.iter().filter(|n| n.alive).count();
    let state = if alive == nodes.len() {
        "running".to_owned()
    } else if alive == 0 {
        "stopped".to_owned()
    } else {
        format!("partly running ({alive} of {} processes)", nodes.len())
    };
    println!("cluster '{cluster}': {state}");
    println!("API     {} (Marathon /v2, orch /v1)", api_url(&record));
    println!(
        "{:<9} {:<7} {:<8} {:<21} STATE",
        "NAME", "ROLE", "PID", "LISTEN"
    );
    for status in &nodes {
        let pid = status
            .pid
            .map_or_else(|| "-".to_owned(), |p| p.pid.to_string());
        println!(
            "{:<9} {:<7} {:<8} {:<21} {}",
            status.node.name,
            status.node.role.name(),
            pid,
            status.node.listen.to_string(),
            if status.alive { "alive" } else { "dead" }
        );
    }
    for line in service_lines(&record) {
        println!("{line}");
    }
    if alive == 0 {
        println!("`orch up` starts it again");
        return Ok(());
    }
    // Ask the live masters in order; the first that answers speaks for the cluster.
    let mut answered = false;
    for status in nodes
        .iter()
        .filter(|n| n.alive && n.node.role == orch_provision::infra::MachineRole::Master)
    {
        let api = ClusterApi::new(status.node.listen)?;
        let Ok(view) = api.leader().await else {
            continue;
        };
        answered = true;
        match view.leader {
            Some(leader) => println!(
                "leader  {leader} (term {}, {} of {} masters members)",
                view.term,
                view.members,
                record.layout.masters.len()
            ),
            None => println!(
                "leader  none (term {}); an election is under way or a majority is missing",
                view.term
            ),
        }
        match api.agents().await {
            Ok(count) => println!(
                "agents  {} registered, {} reachable",
                count.registered, count.reachable
            ),
            Err(error) => println!("agents  unknown ({error})"),
        }
        match api.gitops().await {
            Ok(Some(repos)) if repos.is_empty() => println!("gitops  no repos watched"),
            Ok(Some(repos)) => {
                println!("gitops  {:<16} {:<20} LAST APPLIED", "REPO", "SYNC");
                for repo in repos {
                    let commit = repo
                        .last_applied
                        .map_or_else(|| "-".to_owned(), |c| c.chars().take(12).collect());
                    println!("        {:<16} {:<20} {commit}", repo.name, repo.sync);
                }
            }
            Ok(None) => println!("gitops  not served by this master"),
            Err(error) => println!("gitops  unknown ({error})"),
        }
        break;
    }
    if !answered {
        println!(
            "the API does not answer (yet); see the logs in {}",
            loaded.shown_dir()
        );
    }
    Ok(())
}

/// The names of the other clusters with a state file in `<workdir>/.orch/`.
fn other_clusters(workdir: &std::path::Path, except: &str) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(workdir.join(".orch")) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .flatten()
        .filter(|e| e.path().join(orch_provision::state_file::FILE).exists())
        .filter_map(|e| e.file_name().to_str().map(str::to_owned))
        .filter(|name| name != except)
        .collect();
    names.sort();
    names
}

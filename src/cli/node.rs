//! `orch node list`: the agents the masters know (`/v1/agents`).

use super::client::{cell, columns, Client};
use clap::Subcommand;
use reqwest::Method;
use serde_json::Value;

/// Commands on agents.
#[derive(Debug, Subcommand)]
pub enum NodeCommand {
    /// List agents with their resources, usage, attributes and reachability.
    List,
}

pub async fn run(command: NodeCommand, client: &Client) -> anyhow::Result<()> {
    match command {
        NodeCommand::List => {
            let agents = client.call(Method::GET, "/v1/agents", None).await?;
            client.print(&agents, agents_table);
        }
    }
    Ok(())
}

fn agents_table(agents: &Value) -> String {
    let mut rows = vec![vec![
        "ID".into(),
        "HOSTNAME".into(),
        "ADDRESS".into(),
        "REACHABLE".into(),
        "TASKS".into(),
        "CPUS".into(),
        "MEM".into(),
        "ROLE".into(),
        "ATTRIBUTES".into(),
    ]];
    for agent in agents["agents"].as_array().into_iter().flatten() {
        let used_of = |key: &str| {
            format!(
                "{}/{}",
                cell(&agent["used"][key]),
                cell(&agent["resources"][key])
            )
        };
        let attributes: Vec<String> = agent["attributes"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(key, value)| format!("{key}:{}", cell(value)))
            .collect();
        rows.push(vec![
            cell(&agent["id"]),
            cell(&agent["hostname"]),
            cell(&agent["address"]),
            cell(&agent["reachable"]),
            cell(&agent["tasks"]),
            used_of("cpus"),
            used_of("mem"),
            cell(&agent["role"]),
            attributes.join(";"),
        ]);
    }
    columns(&rows)
}

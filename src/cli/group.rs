//! `orch group list|add|update|remove`: Marathon's `/v2/groups`.

use super::app::deployment_line;
use super::client::{cell, columns, id_path, read_definition, Client};
use clap::Subcommand;
use reqwest::Method;
use serde_json::Value;
use std::path::PathBuf;

/// Commands on groups.
#[derive(Debug, Subcommand)]
pub enum GroupCommand {
    /// List groups (the whole tree) with their apps.
    List,
    /// Create a group (with nested apps and groups) from a JSON or YAML file.
    Add {
        /// The definition (`-` reads standard input).
        file: PathBuf,
    },
    /// Update a group from a file (its `id` says which group).
    Update {
        /// The definition.
        file: PathBuf,
        /// Override deployments that hold its apps.
        #[arg(long)]
        force: bool,
    },
    /// Delete a group and everything in it.
    Remove {
        /// The group id.
        id: String,
        /// Override deployments that hold its apps.
        #[arg(long)]
        force: bool,
    },
}

pub async fn run(command: GroupCommand, client: &Client) -> anyhow::Result<()> {
    match command {
        GroupCommand::List => {
            let root = client.call(Method::GET, "/v2/groups", None).await?;
            client.print(&root, |root| {
                let mut rows = vec![vec!["GROUP".into(), "APPS".into(), "DEPENDENCIES".into()]];
                flatten(root, &mut rows);
                columns(&rows)
            });
        }
        GroupCommand::Add { file } => {
            let definition = read_definition(&file)?;
            let result = client
                .call(Method::POST, "/v2/groups", Some(&definition))
                .await?;
            let id = definition["id"].as_str().unwrap_or("/").to_owned();
            client.print(&result, |r| deployment_line(&id, r));
        }
        GroupCommand::Update { file, force } => {
            let definition = read_definition(&file)?;
            let id = definition["id"].as_str().unwrap_or("/").to_owned();
            let path = format!("/v2/groups/{}?force={force}", id_path(&id));
            let result = client.call(Method::PUT, &path, Some(&definition)).await?;
            client.print(&result, |r| deployment_line(&id, r));
        }
        GroupCommand::Remove { id, force } => {
            let path = format!("/v2/groups/{}?force={force}", id_path(&id));
            let result = client.call(Method::DELETE, &path, None).await?;
            client.print(&result, |r| deployment_line(&id, r));
        }
    }
    Ok(())
}

fn flatten(group: &Value, rows: &mut Vec<Vec<String>>) {
    let list = |key: &str| -> String {
        group[key]
            .as_array()
            .into_iter()
            .flatten()
            .map(|item| item.get("id").map_or_else(|| cell(item), cell))
            .collect::<Vec<_>>()
            .join(",")
    };
    rows.push(vec![cell(&group["id"]), list("apps"), list("dependencies")]);
    for child in group["groups"].as_array().into_iter().flatten() {
        flatten(child, rows);
    }
}

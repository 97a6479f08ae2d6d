//! `orch cluster status|add-master|remove-master`.

use super::client::{cell, columns, Client};
use clap::Subcommand;
use reqwest::Method;
use serde_json::{json, Value};

/// Commands on the master set.
#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Show the leader, term, commit index and every master.
    Status,
    /// Add the master listening at ADDR (started with `--id N` and the current masters).
    AddMaster {
        /// `host:port` of the new master.
        address: String,
    },
    /// Remove the master at ADDR from the master set.
    RemoveMaster {
        /// `host:port` of the master to remove.
        address: String,
    },
}

pub async fn run(command: ClusterCommand, client: &Client) -> anyhow::Result<()> {
    match command {
        ClusterCommand::Status => {
            let status = client.call(Method::GET, "/v1/cluster", None).await?;
            client.print(&status, status_table);
        }
        ClusterCommand::AddMaster { address } => {
            let body = json!({ "address": address });
            let added = client
                .call(Method::POST, "/v1/cluster/masters", Some(&body))
                .await?;
            client.print(&added, |a| {
                format!("added master {} as id {}\n", address, a["id"])
            });
        }
        ClusterCommand::RemoveMaster { address } => {
            let path = format!("/v1/cluster/masters/{address}");
            let removed = client.call(Method::DELETE, &path, None).await?;
            client.print(&removed, |r| {
                format!("removed master {} (id {})\n", address, r["id"])
            });
        }
    }
    Ok(())
}

fn status_table(status: &Value) -> String {
    let text = cell;
    let mut out = format!(
        "leader: {} (id {})  term: {}  commit index: {}\n\n",
        text(&status["leader_address"]),
        text(&status["leader"]),
        text(&status["term"]),
        text(&status["commit_index"]),
    );
    let mut rows = vec![vec![
        "ID".into(),
        "ADDRESS".into(),
        "ROLE".into(),
        "LAST CONTACT".into(),
    ]];
    for member in status["members"].as_array().into_iter().flatten() {
        let contact = member["last_contact_ms"]
            .as_u64()
            .map_or("-".to_owned(), |ms| format!("{ms} ms"));
        rows.push(vec![
            text(&member["id"]),
            text(&member["address"]),
            text(&member["role"]),
            contact,
        ]);
    }
    out.push_str(&columns(&rows));
    out
}

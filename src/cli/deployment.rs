//! `orch deployment list|rollback|stop|watch`: Marathon's `/v2/deployments`.

use super::client::{cell, columns, Client};
use clap::Subcommand;
use reqwest::Method;
use serde_json::{json, Value};
use std::time::Duration;

/// Commands on deployments.
#[derive(Debug, Subcommand)]
pub enum DeploymentCommand {
    /// List running deployments.
    List,
    /// Cancel a deployment and roll its changes back (a new deployment).
    Rollback {
        /// The deployment id.
        id: String,
    },
    /// Cancel a deployment without rolling back: tasks stay as they are.
    Stop {
        /// The deployment id.
        id: String,
    },
    /// Print a deployment's progress until it finishes.
    Watch {
        /// The deployment id.
        id: String,
    },
}

pub async fn run(command: DeploymentCommand, client: &Client) -> anyhow::Result<()> {
    match command {
        DeploymentCommand::List => {
            let deployments = client.call(Method::GET, "/v2/deployments", None).await?;
            client.print(&deployments, deployments_table);
        }
        DeploymentCommand::Rollback { id } => {
            let path = format!("/v2/deployments/{id}");
            let result = client.call(Method::DELETE, &path, None).await?;
            client.print(&result, |r| {
                format!(
                    "rolling back {id}: deployment {}\n",
                    cell(&r["deploymentId"])
                )
            });
        }
        DeploymentCommand::Stop { id } => {
            let path = format!("/v2/deployments/{id}?force=true");
            let result = client.call(Method::DELETE, &path, None).await?;
            client.print(&result, |_| format!("stopped {id}\n"));
        }
        DeploymentCommand::Watch { id } => {
            let mut last = String::new();
            loop {
                let deployments = client.call(Method::GET, "/v2/deployments", None).await?;
                let current = deployments
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|d| d["id"] == json!(id))
                    .cloned();
                let Some(current) = current else {
                    client.print(&json!({"id": id, "finished": true}), |_| {
                        format!("{id} finished\n")
                    });
                    return Ok(());
                };
                let line = progress(&current);
                if line != last {
                    if client.output == super::client::Output::Json {
                        println!("{current}");
                    } else {
                        print!("{line}");
                    }
                    last = line;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
    Ok(())
}

fn actions(deployment: &Value) -> String {
    deployment["currentActions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|action| format!("{} {}", cell(&action["action"]), cell(&action["app"])))
        .collect::<Vec<_>>()
        .join(", ")
}

fn progress(deployment: &Value) -> String {
    format!(
        "{} step {}/{}: {}\n",
        cell(&deployment["id"]),
        cell(&deployment["currentStep"]),
        cell(&deployment["totalSteps"]),
        actions(deployment)
    )
}

fn deployments_table(deployments: &Value) -> String {
    let mut rows = vec![vec![
        "ID".into(),
        "VERSION".into(),
        "APPS".into(),
        "STEP".into(),
        "CURRENT ACTIONS".into(),
    ]];
    for deployment in deployments.as_array().into_iter().flatten() {
        let apps: Vec<String> = deployment["affectedApps"]
            .as_array()
            .into_iter()
            .flatten()
            .map(cell)
            .collect();
        rows.push(vec![
            cell(&deployment["id"]),
            cell(&deployment["version"]),
            apps.join(","),
            format!(
                "{}/{}",
                cell(&deployment["currentStep"]),
                cell(&deployment["totalSteps"])
            ),
            actions(deployment),
        ]);
    }
    columns(&rows)
}

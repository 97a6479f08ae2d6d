//! `orch app list|show|add|update|scale|restart|remove|versions|deploy-bluegreen`: Marathon's
//! `/v2/apps` (blue/green deploys live in `cli::bluegreen`).

use super::client::{cell, columns, id_path, read_definition, Client};
use clap::Subcommand;
use reqwest::Method;
use serde_json::{json, Value};
use std::path::PathBuf;

/// Commands on apps.
#[derive(Debug, Subcommand)]
pub enum AppCommand {
    /// List apps with their instance counts and deployments.
    List,
    /// Show one app with its tasks.
    Show {
        /// The app id, e.g. /prod/web.
        id: String,
    },
    /// Create an app from a JSON or YAML file (`-` reads standard input).
    Add {
        /// The definition.
        file: PathBuf,
    },
    /// Replace an app's definition from a file (its `id` says which app).
    Update {
        /// The definition.
        file: PathBuf,
        /// Override a deployment that holds the app.
        #[arg(long)]
        force: bool,
    },
    /// Set an app's instance count.
    Scale {
        /// The app id.
        id: String,
        /// The new instance count.
        instances: u32,
        /// Override a deployment that holds the app.
        #[arg(long)]
        force: bool,
    },
    /// Restart every task of an app (a rolling restart).
    Restart {
        /// The app id.
        id: String,
        /// Override a deployment that holds the app.
        #[arg(long)]
        force: bool,
    },
    /// Delete an app and kill its tasks.
    Remove {
        /// The app id.
        id: String,
        /// Override a deployment that holds the app.
        #[arg(long)]
        force: bool,
    },
    /// List an app's stored versions, newest first.
    Versions {
        /// The app id.
        id: String,
    },
    /// Zero-downtime blue/green deploy as marathon-lb's zdd.py: start the next colour
    /// (`<id>-blue` / `<id>-green`), shift instances to it as its tasks turn healthy, then
    /// delete the old colour; `--new-instances K` stops at a canary split.
    DeployBluegreen(super::bluegreen::DeployArgs),
}

fn force_query(force: bool) -> &'static str {
    if force {
        "?force=true"
    } else {
        ""
    }
}

pub async fn run(command: AppCommand, client: &Client) -> anyhow::Result<()> {
    match command {
        AppCommand::List => {
            let apps = client.call(Method::GET, "/v2/apps", None).await?;
            client.print(&apps, apps_table);
        }
        AppCommand::Show { id } => {
            let path = format!("/v2/apps/{}?embed=app.tasks&embed=app.counts", id_path(&id));
            let app = client.call(Method::GET, &path, None).await?;
            client.print(&app, |app| {
                let app = &app["app"];
                let mut out = apps_table(&json!({ "apps": [app] }));
                out.push('\n');
                out.push_str(&super::task::tasks_table(&app["tasks"]));
                out
            });
        }
        AppCommand::Add { file } => {
            let definition = read_definition(&file)?;
            let created = client
                .call(Method::POST, "/v2/apps", Some(&definition))
                .await?;
            client.print(&created, |app| {
                format!(
                    "created {} (deployment {})\n",
                    cell(&app["id"]),
                    cell(&app["deployments"][0]["id"])
                )
            });
        }
        AppCommand::Update { file, force } => {
            let definition = read_definition(&file)?;
            let id = definition["id"]
                .as_str()
                .ok_or_else(|| anyhow::anyhow!("{} has no \"id\"", file.display()))?
                .to_owned();
            let path = format!("/v2/apps/{}{}", id_path(&id), force_query(force));
            let result = client.call(Method::PUT, &path, Some(&definition)).await?;
            client.print(&result, |r| deployment_line(&id, r));
        }
        AppCommand::Scale {
            id,
            instances,
            force,
        } => {
            let path = format!("/v2/apps/{}{}", id_path(&id), force_query(force));
            let body = json!({ "instances": instances });
            let result = client.call(Method::PUT, &path, Some(&body)).await?;
            client.print(&result, |r| deployment_line(&id, r));
        }
        AppCommand::Restart { id, force } => {
            let path = format!("/v2/apps/{}/restart{}", id_path(&id), force_query(force));
            let result = client.call(Method::POST, &path, None).await?;
            client.print(&result, |r| deployment_line(&id, r));
        }
        AppCommand::Remove { id, force } => {
            let path = format!("/v2/apps/{}{}", id_path(&id), force_query(force));
            let result = client.call(Method::DELETE, &path, None).await?;
            client.print(&result, |r| deployment_line(&id, r));
        }
        AppCommand::DeployBluegreen(args) => super::bluegreen::run(args, client).await?,
        AppCommand::Versions { id } => {
            let path = format!("/v2/apps/{}/versions", id_path(&id));
            let versions = client.call(Method::GET, &path, None).await?;
            client.print(&versions, |v| {
                v["versions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|version| format!("{}\n", cell(version)))
                    .collect()
            });
        }
    }
    Ok(())
}

/// `/web: deployment <id> (version <v>)`.
pub fn deployment_line(id: &str, result: &Value) -> String {
    format!(
        "{id}: deployment {} (version {})\n",
        cell(&result["deploymentId"]),
        cell(&result["version"])
    )
}

fn apps_table(apps: &Value) -> String {
    let mut rows = vec![vec![
        "ID".into(),
        "INSTANCES".into(),
        "RUNNING".into(),
        "HEALTHY".into(),
        "CPUS".into(),
        "MEM".into(),
        "DEPLOYMENTS".into(),
        "CMD / IMAGE".into(),
    ]];
    for app in apps["apps"].as_array().into_iter().flatten() {
        let what = app["cmd"]
            .as_str()
            .or_else(|| app["container"]["docker"]["image"].as_str())
            .unwrap_or("-");
        let deployments = app["deployments"].as_array().map_or(0, Vec::len);
        rows.push(vec![
            cell(&app["id"]),
            cell(&app["instances"]),
            cell(&app["tasksRunning"]),
            cell(&app["tasksHealthy"]),
            cell(&app["cpus"]),
            cell(&app["mem"]),
            deployments.to_string(),
            what.chars().take(48).collect(),
        ]);
    }
    columns(&rows)
}

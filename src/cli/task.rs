//! `orch task list|kill|logs`: Marathon's `/v2/tasks`, and sandbox files through the agent's
//! Mesos-compatible `/files` API.

use super::client::{cell, columns, id_path, Client};
use clap::Subcommand;
use reqwest::Method;
use serde_json::{json, Value};
use std::io::Write as _;
use std::time::Duration;

/// Commands on tasks.
#[derive(Debug, Subcommand)]
pub enum TaskCommand {
    /// List tasks, of every app or of one.
    List {
        /// Only this app's tasks.
        app: Option<String>,
    },
    /// Kill a task (its app starts a replacement unless --scale).
    Kill {
        /// The task id.
        task: String,
        /// Lower the app's instance count instead of replacing the task.
        #[arg(long)]
        scale: bool,
    },
    /// Print a task's stdout (or stderr) from its sandbox on its agent.
    Logs {
        /// The task id.
        task: String,
        /// Print stderr instead of stdout.
        #[arg(long)]
        stderr: bool,
        /// Keep printing what is appended.
        #[arg(long, short)]
        follow: bool,
    },
}

/// The largest chunk asked of an agent per read.
const CHUNK: u64 = 64 * 1024;

pub async fn run(command: TaskCommand, client: &Client) -> anyhow::Result<()> {
    match command {
        TaskCommand::List { app } => {
            let path = match &app {
                Some(app) => format!("/v2/apps/{}/tasks", id_path(app)),
                None => "/v2/tasks".to_owned(),
            };
            let tasks = client.call(Method::GET, &path, None).await?;
            client.print(&tasks, |t| tasks_table(&t["tasks"]));
        }
        TaskCommand::Kill { task, scale } => {
            let body = json!({ "ids": [task] });
            let path = format!("/v2/tasks/delete?scale={scale}");
            let result = client.call(Method::POST, &path, Some(&body)).await?;
            client.print(&result, |r| {
                let killed = r["tasks"].as_array().map_or(0, Vec::len);
                if r.get("deploymentId").is_some() || killed > 0 || scale {
                    format!("killing {task}\n")
                } else {
                    format!("no task {task}\n")
                }
            });
        }
        TaskCommand::Logs {
            task,
            stderr,
            follow,
        } => {
            logs(
                client,
                &task,
                if stderr { "stderr" } else { "stdout" },
                follow,
            )
            .await?
        }
    }
    Ok(())
}

/// Reads the task's file in chunks through the master (`/v1/tasks/{id}/files/read`), which
/// reads it from the task's agent.
async fn logs(client: &Client, task_id: &str, file: &str, follow: bool) -> anyhow::Result<()> {
    let mut offset = 0u64;
    let mut stdout = std::io::stdout();
    loop {
        let path =
            format!("/v1/tasks/{task_id}/files/read?path={file}&offset={offset}&length={CHUNK}");
        let chunk = client.call(Method::GET, &path, None).await?;
        let data = chunk["data"].as_str().unwrap_or_default();
        stdout.write_all(data.as_bytes())?;
        stdout.flush()?;
        offset += data.len() as u64;
        if (data.len() as u64) < CHUNK {
            if !follow {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

/// Tasks as a table.
pub fn tasks_table(tasks: &Value) -> String {
    let mut rows = vec![vec![
        "ID".into(),
        "APP".into(),
        "STATE".into(),
        "HOST".into(),
        "PORTS".into(),
        "HEALTHY".into(),
        "STARTED".into(),
    ]];
    for task in tasks.as_array().into_iter().flatten() {
        let ports: Vec<String> = task["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .map(cell)
            .collect();
        let results = task["healthCheckResults"].as_array();
        let healthy = match results {
            Some(results) if !results.is_empty() => results
                .iter()
                .all(|r| r["alive"] == json!(true))
                .to_string(),
            _ => "-".into(),
        };
        rows.push(vec![
            cell(&task["id"]),
            cell(&task["appId"]),
            cell(&task["state"]),
            cell(&task["host"]),
            ports.join(","),
            healthy,
            cell(&task["startedAt"]),
        ]);
    }
    columns(&rows)
}

//! `orch task list|kill|logs`: Marathon's `/v2/tasks`, and sandbox files through the agent's
//! Mesos-compatible `/files` API.

use super::client::{cell, columns, id_path, Client};
use anyhow::{bail, Context};
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

/// Finds the task's agent and sandbox, then reads the file in chunks.
async fn logs(client: &Client, task_id: &str, file: &str, follow: bool) -> anyhow::Result<()> {
    let tasks = client.call(Method::GET, "/v2/tasks", None).await?;
    let task = tasks["tasks"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|task| task["id"] == json!(task_id))
        .with_context(|| format!("no task {task_id}"))?;
    let agents = client.call(Method::GET, "/v1/agents", None).await?;
    let agent = agents["agents"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|agent| agent["id"] == task["slaveId"])
        .with_context(|| format!("the agent of {task_id} is not registered"))?;
    let address = agent["address"]
        .as_str()
        .context("agent without an address")?;
    // An agent's API is plaintext (loopback or --insecure): no system root is needed.
    let http = orch_pki::tls::cluster_http()
        .build()
        .context("cannot build the HTTP client")?;
    let state: Value = http
        .get(format!("http://{address}/state"))
        .send()
        .await
        .with_context(|| format!("cannot reach agent {address}"))?
        .json()
        .await
        .context("the agent's /state is not JSON")?;
    let directory = state["tasks"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|task| task["id"] == json!(task_id))
        .and_then(|task| task["directory"].as_str())
        .with_context(|| format!("agent {address} does not know task {task_id}"))?;
    let path = format!("{directory}/{file}");
    let mut offset = 0u64;
    let mut stdout = std::io::stdout();
    loop {
        let url = format!("http://{address}/files/read");
        let answer = http
            .get(format!("{url}?path={path}&offset={offset}&length={CHUNK}"))
            .send()
            .await
            .with_context(|| format!("cannot reach agent {address}"))?;
        if !answer.status().is_success() {
            bail!("{url}?path={path} answered {}", answer.status());
        }
        let chunk: Value = answer
            .json()
            .await
            .context("the agent's answer is not JSON")?;
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

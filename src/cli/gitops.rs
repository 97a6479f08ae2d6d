//! `orch gitops add|remove|status|sync|rollback|resume`: orch's `/v1/gitops`.

use super::client::{cell, columns, Client};
use anyhow::Context;
use clap::Subcommand;
use orch_core::model::{is_url, RepoConfig};
use reqwest::Method;
use serde_json::{json, Value};

/// Commands on watched git repos.
#[derive(Debug, Subcommand)]
pub enum GitopsCommand {
    /// Watch a repo: its app files become the desired state of the managed group.
    Add(Box<AddArgs>),
    /// Stop watching a repo (its apps stay).
    Remove {
        /// The repo's name [default: the only one].
        name: Option<String>,
    },
    /// Sync and health status of every watched repo, with the last syncs.
    Status {
        /// Only this repo.
        name: Option<String>,
    },
    /// Fetch now and sync the branch tip.
    Sync {
        /// The repo [default: the only one].
        name: Option<String>,
    },
    /// Deploy an earlier commit's definitions and pause auto-sync until `resume`.
    Rollback {
        /// The commit [default: the one applied before the current one].
        #[arg(long)]
        to: Option<String>,
        /// The repo [default: the only one].
        name: Option<String>,
    },
    /// Resume auto-sync after a rollback.
    Resume {
        /// The repo [default: the only one].
        name: Option<String>,
    },
}

/// The flags of `orch gitops add`.
#[derive(Debug, clap::Args)]
pub struct AddArgs {
    /// A local path or a URL (https, ssh, file).
    #[arg(long)]
    repo: String,
    /// Its name [default: the repo's last path segment].
    #[arg(long)]
    name: Option<String>,
    /// The branch to follow [default: the repo's HEAD branch].
    #[arg(long)]
    branch: Option<String>,
    /// The folder with app files.
    #[arg(long, default_value = "apps")]
    path: String,
    /// Poll interval.
    #[arg(long, default_value = "30s")]
    interval: String,
    /// Delete apps whose files are gone.
    #[arg(long)]
    prune: bool,
    /// Revert manual changes to managed apps.
    #[arg(long)]
    self_heal: bool,
    /// Redeploy the last healthy commit when a commit is not healthy in time.
    #[arg(long)]
    auto_rollback: bool,
    /// How long a commit may take to become healthy.
    #[arg(long, default_value = "10m")]
    rollback_deadline: String,
    /// The group the repo manages.
    #[arg(long, default_value = "/")]
    group: String,
    /// Files under the folder to skip (repeatable; `*` matches within a path segment).
    #[arg(long)]
    exclude: Vec<String>,
    /// A template variable NAME=VALUE for `{{ vars.NAME }}` (repeatable).
    #[arg(long = "var", value_parser = parse_var)]
    vars: Vec<(String, String)>,
    /// The webhook secret.
    #[arg(long, env = "ORCH_WEBHOOK_SECRET", hide_env_values = true)]
    webhook_secret: Option<String>,
    /// A token for https remotes (`--token` is the cluster's own token).
    #[arg(long = "git-token", env = "ORCH_GIT_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// A private key file for ssh remotes.
    #[arg(long)]
    ssh_key: Option<String>,
    /// The secret of the ACL token the repo acts with (it can never do more than that
    /// token) [default: the token this command sends; none for the management token].
    #[arg(long, env = "ORCH_GITOPS_TOKEN_SECRET", hide_env_values = true)]
    token_secret: Option<String>,
}

fn parse_var(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .ok_or_else(|| format!("'{text}' is not NAME=VALUE"))
}

pub async fn run(command: GitopsCommand, client: &Client) -> anyhow::Result<()> {
    match command {
        GitopsCommand::Add(add) => {
            let AddArgs {
                repo,
                name,
                branch,
                path,
                interval,
                prune,
                self_heal,
                auto_rollback,
                rollback_deadline,
                group,
                exclude,
                vars,
                webhook_secret,
                token,
                ssh_key,
                token_secret,
            } = *add;
            let mut config = RepoConfig::new(local_or_url(&repo)?);
            config.name = name.unwrap_or_default();
            config.branch = branch;
            config.path = path;
            config.interval = interval;
            config.prune = prune;
            config.self_heal = self_heal;
            config.auto_rollback = auto_rollback;
            config.rollback_deadline = rollback_deadline;
            config.group = group;
            config.exclude = exclude;
            config.vars = vars.into_iter().collect();
            config.webhook_secret = webhook_secret;
            config.token = token;
            config.ssh_key = ssh_key;
            config.token_secret = token_secret;
            let body = serde_json::to_value(&config)?;
            let status = client.call(Method::POST, "/v1/gitops", Some(&body)).await?;
            client.print(&status, |status| {
                format!("watching {} as {}\n", config.repo, cell(&status["name"]))
            });
        }
        GitopsCommand::Remove { name } => {
            let name = match name {
                Some(name) => name,
                None => only_repo(client).await?,
            };
            let result = client
                .call(Method::DELETE, &format!("/v1/gitops/{name}"), None)
                .await?;
            client.print(&result, |_| format!("stopped watching {name}\n"));
        }
        GitopsCommand::Status { name } => {
            let all = client.call(Method::GET, "/v1/gitops", None).await?;
            let repos: Vec<Value> = all["repos"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|repo| name.as_deref().is_none_or(|name| repo["name"] == name))
                .cloned()
                .collect();
            client.print(&json!({ "repos": repos }), |_| {
                repos
                    .iter()
                    .map(status_table)
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        GitopsCommand::Sync { name } => {
            let status = client
                .call(
                    Method::POST,
                    "/v1/gitops/sync",
                    Some(&json!({ "name": name })),
                )
                .await?;
            client.print(&status, status_table);
        }
        GitopsCommand::Rollback { to, name } => {
            let body = json!({ "name": name, "to": to });
            let status = client
                .call(Method::POST, "/v1/gitops/rollback", Some(&body))
                .await?;
            client.print(&status, status_table);
        }
        GitopsCommand::Resume { name } => {
            let status = client
                .call(
                    Method::POST,
                    "/v1/gitops/resume",
                    Some(&json!({ "name": name })),
                )
                .await?;
            client.print(&status, status_table);
        }
    }
    Ok(())
}

/// A local path made absolute (the master may run elsewhere in the file tree); URLs as given.
fn local_or_url(repo: &str) -> anyhow::Result<String> {
    if is_url(repo) {
        return Ok(repo.to_owned());
    }
    let path = std::fs::canonicalize(repo).with_context(|| format!("no repo at {repo}"))?;
    Ok(path.display().to_string())
}

async fn only_repo(client: &Client) -> anyhow::Result<String> {
    let all = client.call(Method::GET, "/v1/gitops", None).await?;
    match all["repos"].as_array().map(Vec::as_slice) {
        Some([only]) => Ok(cell(&only["name"])),
        _ => anyhow::bail!("name the repo: several or none are watched"),
    }
}

fn short(commit: &Value) -> String {
    let text = cell(commit);
    text.get(..7).unwrap_or(&text).to_owned()
}

/// One repo as text: a summary, its apps and its last syncs.
fn status_table(repo: &Value) -> String {
    let mut out = format!(
        "{}  {} @ {}  sync: {}  health: {}{}\n  fetched: {}  applied: {}  healthy: {}\n",
        cell(&repo["name"]),
        cell(&repo["config"]["repo"]),
        cell(&repo["branch"]),
        cell(&repo["sync"]),
        cell(&repo["health"]),
        if repo["paused"] == true {
            "  (paused)"
        } else {
            ""
        },
        short(&repo["lastFetched"]),
        short(&repo["lastApplied"]),
        short(&repo["lastHealthy"]),
    );
    if let Some(error) = repo["error"].as_str() {
        out.push_str(&format!("  error: {error}\n"));
    }
    let mut apps = vec![vec!["  APP".into(), "HEALTH".into(), "SYNC".into()]];
    for app in repo["apps"].as_array().into_iter().flatten() {
        apps.push(vec![
            format!("  {}", cell(&app["id"])),
            cell(&app["health"]),
            cell(&app["sync"]),
        ]);
    }
    out.push_str(&columns(&apps));
    let mut syncs = vec![vec![
        "  COMMIT".into(),
        "AT".into(),
        "RESULT".into(),
        "DEPLOYMENT".into(),
        "MESSAGE".into(),
    ]];
    for sync in repo["history"].as_array().into_iter().flatten() {
        syncs.push(vec![
            format!("  {}", short(&sync["commit"])),
            cell(&sync["at"]),
            cell(&sync["result"]),
            cell(&sync["deploymentId"]),
            cell(&sync["message"]),
        ]);
    }
    out.push_str(&columns(&syncs));
    out
}

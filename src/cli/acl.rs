//! `orch acl`: policies (`apply FILE`, `list`, `delete NAME`) and tokens (`create --name N
//! --policy P`, `list`, `revoke ID`) of the cluster's ACLs (`/v1/acl`; the management token
//! only).

use super::client::{cell, columns, Client};
use anyhow::Context;
use clap::Subcommand;
use reqwest::Method;
use serde_json::{json, Value};
use std::path::PathBuf;

/// ACL commands.
#[derive(Debug, Subcommand)]
pub enum AclCommand {
    /// ACL policies: paths with an access level, and capabilities.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// ACL tokens: who holds which policies.
    #[command(subcommand)]
    Token(TokenCommand),
}

/// Policy commands.
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Create or replace the policy in FILE (JSON: {"name", "rules": [{"path", "access"}],
    /// "capabilities": [...]}; `-` for standard input).
    Apply {
        /// The policy file.
        file: PathBuf,
    },
    /// List the policies.
    List,
    /// Delete a policy.
    Delete {
        /// Its name.
        name: String,
    },
}

/// Token commands.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Make a token; its secret is printed this once.
    Create {
        /// Its name.
        #[arg(long)]
        name: String,
        /// A policy it holds (repeat for several).
        #[arg(long = "policy", required = true)]
        policies: Vec<String>,
    },
    /// List the tokens (never their secrets).
    List,
    /// Revoke a token.
    Revoke {
        /// Its id.
        id: String,
    },
}

pub async fn run(command: AclCommand, client: &Client) -> anyhow::Result<()> {
    match command {
        AclCommand::Policy(PolicyCommand::Apply { file }) => {
            let text = if file.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin()).context("reading standard input")?
            } else {
                std::fs::read_to_string(&file)
                    .with_context(|| format!("cannot read {}", file.display()))?
            };
            let policy: Value = serde_json::from_str(&text)
                .with_context(|| format!("{} is not JSON", file.display()))?;
            let applied = client
                .call(Method::POST, "/v1/acl/policies", Some(&policy))
                .await?;
            client.print(&applied, |p| {
                format!("applied policy '{}'\n", cell(&p["name"]))
            });
        }
        AclCommand::Policy(PolicyCommand::List) => {
            let policies = client.call(Method::GET, "/v1/acl/policies", None).await?;
            client.print(&policies, policies_table);
        }
        AclCommand::Policy(PolicyCommand::Delete { name }) => {
            let path = format!("/v1/acl/policies/{name}");
            let removed = client.call(Method::DELETE, &path, None).await?;
            client.print(&removed, |_| format!("deleted policy '{name}'\n"));
        }
        AclCommand::Token(TokenCommand::Create { name, policies }) => {
            let body = json!({ "name": name, "policies": policies });
            let token = client
                .call(Method::POST, "/v1/acl/tokens", Some(&body))
                .await?;
            client.print(&token, |t| {
                format!(
                    "made token '{}' (id {}); its secret, shown only now:\n{}\n",
                    cell(&t["name"]),
                    cell(&t["id"]),
                    cell(&t["secret"])
                )
            });
        }
        AclCommand::Token(TokenCommand::List) => {
            let tokens = client.call(Method::GET, "/v1/acl/tokens", None).await?;
            client.print(&tokens, tokens_table);
        }
        AclCommand::Token(TokenCommand::Revoke { id }) => {
            let path = format!("/v1/acl/tokens/{id}");
            let revoked = client.call(Method::DELETE, &path, None).await?;
            client.print(&revoked, |_| format!("revoked token {id}\n"));
        }
    }
    Ok(())
}

fn policies_table(policies: &Value) -> String {
    let mut rows = vec![vec!["NAME".into(), "RULES".into(), "CAPABILITIES".into()]];
    for policy in policies["policies"].as_array().into_iter().flatten() {
        let rules: Vec<String> = policy["rules"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|rule| format!("{}:{}", cell(&rule["path"]), cell(&rule["access"])))
            .collect();
        let capabilities: Vec<String> = policy["capabilities"]
            .as_array()
            .into_iter()
            .flatten()
            .map(cell)
            .collect();
        rows.push(vec![
            cell(&policy["name"]),
            rules.join(" "),
            capabilities.join(","),
        ]);
    }
    columns(&rows)
}

fn tokens_table(tokens: &Value) -> String {
    let mut rows = vec![vec![
        "ID".into(),
        "NAME".into(),
        "POLICIES".into(),
        "CREATED".into(),
    ]];
    for token in tokens["tokens"].as_array().into_iter().flatten() {
        let policies: Vec<String> = token["policies"]
            .as_array()
            .into_iter()
            .flatten()
            .map(cell)
            .collect();
        rows.push(vec![
            cell(&token["id"]),
            cell(&token["name"]),
            policies.join(","),
            cell(&token["created"]),
        ]);
    }
    columns(&rows)
}

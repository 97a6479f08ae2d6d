//! `orch destroy`: remove everything of a cluster (a local cluster's agents, their tasks and
//! containers, masters; another provider's machines, networks and firewall) and delete
//! `.orch/<cluster>/`. Asks first on a terminal; elsewhere it needs `--yes`.

use super::infra_file::{self, InfraArgs};
use super::up::say;
use anyhow::Context;
use orch_provision::infra::ProviderKind;
use std::io::{BufRead, IsTerminal, Write};

/// Flags of `orch destroy`.
#[derive(Debug, clap::Args)]
pub struct DestroyArgs {
    #[command(flatten)]
    infra: InfraArgs,
    /// Do not ask.
    #[arg(long, short = 'y')]
    yes: bool,
}

/// Runs `orch destroy`.
pub async fn run(args: DestroyArgs, cluster: Option<&str>) -> anyhow::Result<()> {
    let loaded = infra_file::load(&args.infra, cluster)?;
    let cluster = &loaded.infra.cluster;
    let shown = loaded.shown_dir();
    let question = if loaded.infra.provider == ProviderKind::Local {
        // Everything of a local cluster lies under its dir.
        if !loaded.cluster_dir().exists() {
            say!("cluster '{cluster}' does not exist (no {shown}); nothing to destroy");
            return Ok(());
        }
        format!(
            "Destroy cluster '{cluster}' (its processes, tasks and containers) and delete {shown}?"
        )
    } else {
        // The provider's tags and labels find its machines even without a state file.
        format!(
            "Destroy cluster '{cluster}' ({} provider): every machine, network and \
             firewall it made, and {shown}?",
            loaded.infra.provider.name()
        )
    };
    if !args.yes && !confirm(&question)? {
        say!("nothing destroyed");
        return Ok(());
    }
    super::provision::destroy(&loaded).await
}

/// Asks `question [y/N]` on the terminal; refuses when stdin is not one.
fn confirm(question: &str) -> anyhow::Result<bool> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        anyhow::bail!("pass --yes to destroy without asking");
    }
    print!("{question} [y/N] ");
    std::io::stdout()
        .flush()
        .context("cannot write to stdout")?;
    let mut answer = String::new();
    stdin
        .lock()
        .read_line(&mut answer)
        .context("cannot read the answer")?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes"))
}

//! `orch destroy`: stop everything of a cluster (agents, their tasks and containers,
//! masters) and delete `.orch/<cluster>/`. Asks first on a terminal; elsewhere it needs
//! `--yes`.

use super::infra_file::{self, InfraArgs};
use super::up::{describe, say};
use anyhow::Context;
use orch_provision::local;
use orch_provision::state_file::LocalState;
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
pub async fn run(args: DestroyArgs) -> anyhow::Result<()> {
    let loaded = infra_file::load(&args.infra)?;
    let cluster = &loaded.infra.cluster;
    let dir = loaded.cluster_dir();
    let shown = loaded.shown_dir();
    if loaded.infra.provider != orch_provision::infra::ProviderKind::Local {
        // The provider's tags and labels find its machines even without a state file.
        if !args.yes
            && !confirm(&format!(
                "Destroy cluster '{cluster}' ({} provider): every machine, network and \
                 firewall it made, and {shown}?",
                loaded.infra.provider.name()
            ))?
        {
            say!("nothing destroyed");
            return Ok(());
        }
        return super::remote::destroy(&loaded).await;
    }
    if !dir.exists() {
        say!("cluster '{cluster}' does not exist (no {shown}); nothing to destroy");
        return Ok(());
    }
    if !args.yes && !confirm(&format!("Destroy cluster '{cluster}' and delete {shown}?"))? {
        say!("nothing destroyed");
        return Ok(());
    }
    let record = match LocalState::load(&dir) {
        Ok(record) => record,
        Err(error) => {
            eprintln!("warning: {error:#}; stopping whatever runs under {shown} anyway");
            None
        }
    };
    say!("stopping cluster '{cluster}' ...");
    let stopped = local::stop_cluster(record.as_ref(), &dir).await;
    std::fs::remove_dir_all(&dir).with_context(|| format!("cannot delete {shown}"))?;
    // Leave no empty .orch/ behind.
    let _ = std::fs::remove_dir(loaded.workdir.join(".orch"));
    say!(
        "cluster '{cluster}' destroyed: stopped {}; deleted {shown}",
        describe(&stopped)
    );
    Ok(())
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

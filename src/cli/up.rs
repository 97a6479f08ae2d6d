//! `orch up`: bring up (or repair) the cluster an infra file describes with its provider,
//! register its gitops repos and print where everything listens (`provision.rs`). A local
//! cluster's processes belong to this `orch up`: it stops what it started when the cluster
//! does not come up, and, unless `--detach`, stays in the foreground until SIGINT/SIGTERM and
//! then stops the whole cluster.

use super::infra_file::{self, InfraArgs, Loaded};
use super::provision::{self, ProvisionFlags};
use anyhow::Context;
use orch_core::model::RepoConfig;
use orch_provision::infra::{InfraError, ProviderKind};
use orch_provision::local::{self, LocalProvider, Stopped};
use std::io::Write as _;
use tokio::signal::unix::{signal, Signal, SignalKind};

/// Prints a line on stdout, ignoring a closed stdout: `orch up` must still stop its cluster
/// when its terminal is gone.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}
pub(super) use say;

/// Flags of `orch up`.
#[derive(Debug, clap::Args)]
pub struct UpArgs {
    #[command(flatten)]
    infra: InfraArgs,
    /// Leave the cluster running in the background and return once it is ready.
    #[arg(long)]
    detach: bool,
    /// The provider, instead of the infra file's `provider:` (local, docker, ssh,
    /// digital_ocean).
    #[arg(long)]
    provider: Option<String>,
    /// Print what would be done and do nothing.
    #[arg(long)]
    plan: bool,
    /// The orch binary to install on the machines [default: this one].
    #[arg(long, value_name = "PATH")]
    binary: Option<std::path::PathBuf>,
    /// Accept and record SSH host keys that neither known_hosts nor the infra file knows.
    #[arg(long)]
    trust_on_first_use: bool,
}

/// SIGINT, SIGTERM and SIGHUP (the terminal is gone), registered when created (so a signal
/// arriving while the cluster starts is not lost).
#[derive(Debug)]
pub(super) struct Signals {
    terminate: Signal,
    interrupt: Signal,
    hangup: Signal,
}

impl Signals {
    pub(super) fn new() -> anyhow::Result<Self> {
        Ok(Self {
            terminate: signal(SignalKind::terminate()).context("cannot handle SIGTERM")?,
            interrupt: signal(SignalKind::interrupt()).context("cannot handle SIGINT")?,
            hangup: signal(SignalKind::hangup()).context("cannot handle SIGHUP")?,
        })
    }

    /// Completes on the next SIGTERM, SIGINT or SIGHUP.
    pub(super) async fn recv(&mut self) {
        tokio::select! {
            _ = self.terminate.recv() => {}
            _ = self.interrupt.recv() => {}
            _ = self.hangup.recv() => {}
        }
    }
}

/// Runs `orch up`.
pub async fn run(args: UpArgs, cluster: Option<&str>) -> anyhow::Result<()> {
    let mut signals = Signals::new()?;
    let mut loaded = infra_file::load(&args.infra, cluster)?;
    if let Some(provider) = &args.provider {
        loaded.infra.provider = ProviderKind::parse(provider)?;
        loaded
            .infra
            .validate()
            .map_err(|source| InfraError::InFile {
                file: loaded.shown.clone(),
                source: Box::new(source),
            })?;
    }
    // Secrets come from this process's environment; a missing one fails before any step.
    let repos = loaded
        .infra
        .repo_configs(&loaded.base_dir(), |name| std::env::var(name).ok())
        .map_err(|source| InfraError::InFile {
            file: loaded.shown.clone(),
            source: Box::new(source),
        })?;
    let flags = ProvisionFlags {
        plan: args.plan,
        binary: args.binary.clone(),
        trust_on_first_use: args.trust_on_first_use,
    };
    if loaded.infra.provider == ProviderKind::Local {
        return up_local(&loaded, &flags, repos, args.detach, &mut signals).await;
    }
    let infra = &loaded.infra;
    let mut provider = provision::provider(&loaded, &flags).await?;
    let header = format!(
        "bringing up cluster '{}' ({} provider, {} masters, {} agents, {} public agents) from {}; state in {}",
        infra.cluster,
        provider.name(),
        infra.masters,
        infra.agents,
        infra.public_agents,
        loaded.shown,
        loaded.shown_dir()
    );
    provision::up(
        provider.as_mut(),
        &loaded,
        &flags,
        repos,
        header,
        &mut signals,
    )
    .await
    .with_context(|| {
        format!(
            "cluster '{}' is not up; `{}` again continues, `{}` removes what was made",
            infra.cluster,
            loaded.command("up"),
            loaded.command("destroy")
        )
    })?;
    Ok(())
}

/// `orch up` of a local cluster: the one flow, then the foreground (or `--detach`).
async fn up_local(
    loaded: &Loaded,
    flags: &ProvisionFlags,
    repos: Vec<RepoConfig>,
    detach: bool,
    signals: &mut Signals,
) -> anyhow::Result<()> {
    let infra = &loaded.infra;
    let mut provider = provision::local_provider(loaded, flags, true).await?;
    let recorded = orch_provision::state_file::load(&loaded.cluster_dir())
        .ok()
        .flatten()
        .and_then(|state| state.local);
    let header = format!(
        "{} cluster '{}' ({}) from {}; data and logs in {}",
        match &recorded {
            None => "starting",
            Some(r) if local::node_status(r).iter().all(|n| n.alive) => "checking",
            Some(_) => "restarting",
        },
        infra.cluster,
        recorded.as_ref().map_or_else(
            || {
                orch_provision::layout::shape(
                    infra.masters as usize,
                    infra.agents as usize,
                    infra.api,
                )
            },
            |r| r.layout.shape()
        ),
        loaded.shown,
        loaded.shown_dir()
    );
    let outcome = provision::up(&mut provider, loaded, flags, repos, header, signals).await;
    match outcome {
        Ok(Some(_)) => {}
        Ok(None) => return Ok(()),
        Err(error) if provider.started_any() => {
            let logs = provider.started_logs();
            provider.stop_started().await;
            if !logs.is_empty() {
                let _ = writeln!(std::io::stderr(), "{logs}");
            }
            return Err(error).context(format!(
                "cluster '{}' did not come up; stopped what was started",
                infra.cluster
            ));
        }
        Err(error) => return Err(error),
    }
    if !provider.started_any() {
        say!(
            "cluster '{}' is already running: API {}",
            infra.cluster,
            api_url(&provider)
        );
        return Ok(());
    }
    if detach {
        say!("running in the background: `orch status` shows it, `orch destroy` removes it");
        return Ok(());
    }
    say!("running in the foreground: Ctrl-C stops the cluster (`orch up --detach` leaves it running)");
    foreground(&mut provider, loaded, signals).await;
    Ok(())
}

/// `https://<first master>`.
fn api_url(provider: &LocalProvider) -> String {
    provider
        .record()
        .and_then(|r| r.layout.api())
        .map_or_else(|| "(none)".to_owned(), |a| format!("https://{a}"))
}

/// Reports the processes that end, until a signal; then stops the whole cluster.
async fn foreground(provider: &mut LocalProvider, loaded: &Loaded, signals: &mut Signals) {
    let mut watching = true;
    loop {
        tokio::select! {
            _ = signals.recv() => break,
            exit = provider.next_exit(), if watching => match exit {
                Some(exit) => {
                    let _ = writeln!(
                        std::io::stderr(),
                        "{} exited unexpectedly ({}); see {}/{}.log",
                        exit.name,
                        exit.status_text(),
                        loaded.shown_dir(),
                        exit.name
                    );
                }
                None => watching = false,
            },
        }
    }
    provider.begin_stop();
    let cluster = &loaded.infra.cluster;
    say!("stopping cluster '{cluster}' ...");
    let stopped = local::stop_cluster(provider.record(), &loaded.cluster_dir()).await;
    say!("cluster '{cluster}' stopped: {}", describe(&stopped));
    say!(
        "its data stays in {}; `orch up` starts it again, `orch destroy` deletes it",
        loaded.shown_dir()
    );
}

/// "1 agent, 2 task processes, 0 containers, 1 master".
fn describe(stopped: &Stopped) -> String {
    let count =
        |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    let mut text = format!(
        "{}, {}, {}, {}",
        count(stopped.agents, "agent", "agents"),
        count(stopped.task_processes, "task process", "task processes"),
        count(stopped.containers.len(), "container", "containers"),
        count(stopped.masters, "master", "masters")
    );
    if let Some(error) = &stopped.containers_error {
        text.push_str(&format!(" (containers not removed: {error})"));
    }
    text
}

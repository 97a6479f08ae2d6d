//! `orch up`, `orch status` and `orch destroy` with the docker, ssh and digital_ocean
//! providers: build the provider from the infra file, then run the step list of
//! `provision::remote`. `orch up` returns once the cluster is up: it runs on its machines.

use super::infra_file::Loaded;
use super::up::say;
use anyhow::Context;
use orch_provision::digital_ocean::DigitalOceanProvider;
use orch_provision::docker::DockerProvider;
use orch_provision::infra::{InfraError, ProviderKind};
use orch_provision::provider::{Change, Provider, ProviderOptions};
use orch_provision::remote::{self, UpRequest};
use orch_provision::ssh::SshProvider;
use orch_provision::steps::{FailAt, Progress, FAIL_AT_ENV};
use std::path::PathBuf;
use std::time::Instant;

/// What `orch up` passes on to a provider besides the infra file.
#[derive(Debug, Clone, Default)]
pub struct RemoteFlags {
    /// `--plan`: print what would be done, do nothing.
    pub plan: bool,
    /// `--binary PATH`: the orch binary to install [default: the running one].
    pub binary: Option<PathBuf>,
    /// `--trust-on-first-use`: accept and record host keys no known_hosts file or pin knows.
    pub trust_on_first_use: bool,
}

/// The provider the infra file names.
pub fn provider(loaded: &Loaded, flags: &RemoteFlags) -> anyhow::Result<Box<dyn Provider>> {
    let binary = match &flags.binary {
        Some(path) => path.clone(),
        None => std::env::current_exe().context("cannot find the orch binary")?,
    };
    let options = ProviderOptions {
        binary,
        trust_on_first_use: flags.trust_on_first_use,
        base_dir: loaded.base_dir(),
        cluster_dir: loaded.cluster_dir(),
        fail_at: fail_at(),
    };
    let infra = &loaded.infra;
    let provider: Box<dyn Provider> = match infra.provider {
        ProviderKind::Local => anyhow::bail!("the local provider has no machines of its own"),
        ProviderKind::Docker => Box::new(DockerProvider::new(infra, &options)?),
        ProviderKind::Ssh => Box::new(SshProvider::from_infra(infra, &options)),
        ProviderKind::DigitalOcean => {
            Box::new(DigitalOceanProvider::new(infra, options, |name| {
                std::env::var(name).ok()
            })?)
        }
    };
    Ok(provider)
}

/// The failure `ORCH_FAIL_AT` (`<step>` or `<step>:<machine>`) injects, if any: how the
/// tests break a run at any step.
fn fail_at() -> Option<FailAt> {
    FailAt::parse(&std::env::var(FAIL_AT_ENV).ok()?)
}

/// `orch up` (or `orch up --plan`) with a provider of machines.
pub async fn up(loaded: &Loaded, flags: &RemoteFlags) -> anyhow::Result<()> {
    let infra = &loaded.infra;
    // Secrets come from this process's environment; a missing one fails before any step.
    let repos = infra
        .repo_configs(&loaded.base_dir(), |name| std::env::var(name).ok())
        .map_err(|source| InfraError::InFile {
            file: loaded.shown.clone(),
            source: Box::new(source),
        })?;
    let mut provider = provider(loaded, flags)?;
    let request = UpRequest {
        infra: infra.clone(),
        infra_file: loaded.path.clone(),
        dir: loaded.cluster_dir(),
        repos,
    };
    if flags.plan {
        say!(
            "plan for cluster '{}' ({} provider, from {}); nothing is changed:",
            infra.cluster,
            provider.name(),
            loaded.shown
        );
        for action in remote::plan(provider.as_mut(), &request).await?.actions {
            say!("  {action}");
        }
        return Ok(());
    }
    say!(
        "bringing up cluster '{}' ({} provider, {} masters, {} agents, {} public agents) from {}; state in {}",
        infra.cluster,
        provider.name(),
        infra.masters,
        infra.agents,
        infra.public_agents,
        loaded.shown,
        loaded.shown_dir()
    );
    let begin = Instant::now();
    let summary = remote::up(provider.as_mut(), &request, &Progress::new(fail_at()))
        .await
        .with_context(|| {
            format!(
                "cluster '{}' is not up; `orch up -f {}` again continues, `orch destroy -f {}` removes what was made",
                infra.cluster, loaded.shown, loaded.shown
            )
        })?;
    let count = |change: Change| summary.changes.iter().filter(|(_, c)| *c == change).count();
    say!(
        "cluster '{}' is up in {:.1}s: {} started, {} restarted, {} unchanged",
        infra.cluster,
        begin.elapsed().as_secs_f64(),
        count(Change::Started),
        count(Change::Restarted),
        count(Change::Unchanged)
    );
    Ok(())
}

/// `orch status` with a provider of machines.
pub async fn status(loaded: &Loaded) -> anyhow::Result<()> {
    let infra = &loaded.infra;
    let mut provider = provider(loaded, &RemoteFlags::default())?;
    let Some(report) = remote::status(provider.as_mut(), infra, &loaded.cluster_dir()).await?
    else {
        println!(
            "cluster '{}' does not exist here (no {}); `orch up -f {}` creates it",
            infra.cluster,
            loaded.shown_dir(),
            loaded.shown
        );
        return Ok(());
    };
    let complete = report.state.last_step.as_deref() == Some("endpoints");
    println!(
        "cluster '{}' ({} provider): {}",
        infra.cluster,
        provider.name(),
        if complete {
            "up".to_owned()
        } else {
            format!(
                "incomplete (the last `orch up` got to {})",
                report.state.last_step.as_deref().unwrap_or("nothing")
            )
        }
    );
    println!(
        "{:<16} {:<13} {:<16} {:<10} ID",
        "MACHINE", "ROLE", "IP", "STATE"
    );
    for machine in &report.machines {
        println!(
            "{:<16} {:<13} {:<16} {:<10} {}",
            machine.name,
            machine.role.name(),
            machine
                .ip
                .map_or_else(|| "-".to_owned(), |ip| ip.to_string()),
            machine.state,
            machine.id
        );
    }
    match &report.leader {
        Some(leader) => println!("leader  {leader}"),
        None => println!("leader  none (no master answers, or no majority)"),
    }
    match report.agents {
        Some((registered, reachable)) => {
            println!("agents  {registered} registered, {reachable} reachable")
        }
        None => println!("agents  unknown"),
    }
    for line in orch_provision::cluster_spec::endpoint_lines(infra, &report.state.machines) {
        println!("{line}");
    }
    Ok(())
}

/// `orch destroy` with a provider of machines (after the confirmation).
pub async fn destroy(loaded: &Loaded) -> anyhow::Result<()> {
    let cluster = &loaded.infra.cluster;
    let mut provider = provider(loaded, &RemoteFlags::default())?;
    say!(
        "destroying cluster '{cluster}' ({} provider) ...",
        provider.name()
    );
    let removed = remote::destroy(
        provider.as_mut(),
        &loaded.cluster_dir(),
        &Progress::new(fail_at()),
    )
    .await?;
    let dir = loaded.cluster_dir();
    if dir.exists() {
        std::fs::remove_dir_all(&dir)
            .with_context(|| format!("cannot delete {}", loaded.shown_dir()))?;
    }
    let _ = std::fs::remove_dir(loaded.workdir.join(".orch"));
    say!(
        "cluster '{cluster}' destroyed: removed {}",
        if removed.is_empty() {
            "nothing (none of it existed)".to_owned()
        } else {
            removed.join(", ")
        }
    );
    Ok(())
}

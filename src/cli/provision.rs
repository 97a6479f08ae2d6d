//! `orch up`, `orch status` and `orch destroy` for every provider: build the provider the
//! infra file names, then run the flow of `orch_provision::flow` and print what it found.
//! What only the local provider does (stop what it started when `orch up` fails, stay in the
//! foreground) is in `up.rs`.

use super::infra_file::Loaded;
use super::up::{say, Signals};
use anyhow::Context;
use orch_core::model::RepoConfig;
use orch_provision::containers;
use orch_provision::digital_ocean::DigitalOceanProvider;
use orch_provision::docker::DockerProvider;
use orch_provision::flow::{self, StatusReport, UpRequest, UpSummary};
use orch_provision::infra::ProviderKind;
use orch_provision::local::{self, LocalProvider};
use orch_provision::provider::{Change, Provider, ProviderOptions};
use orch_provision::ssh::SshProvider;
use orch_provision::steps::{FailAt, Progress, FAIL_AT_ENV};
use std::path::PathBuf;
use std::time::Instant;

/// What `orch up` passes on to a provider besides the infra file.
#[derive(Debug, Clone, Default)]
pub struct ProvisionFlags {
    /// `--plan`: print what would be done, do nothing.
    pub plan: bool,
    /// `--binary PATH`: the orch binary to install [default: the running one].
    pub binary: Option<PathBuf>,
    /// `--trust-on-first-use`: accept and record host keys no known_hosts file or pin knows.
    pub trust_on_first_use: bool,
}

fn options(loaded: &Loaded, flags: &ProvisionFlags) -> anyhow::Result<ProviderOptions> {
    let binary = match &flags.binary {
        Some(path) => path.clone(),
        None => std::env::current_exe().context("cannot find the orch binary")?,
    };
    Ok(ProviderOptions {
        binary,
        trust_on_first_use: flags.trust_on_first_use,
        base_dir: loaded.base_dir(),
        cluster_dir: loaded.cluster_dir(),
        fail_at: fail_at(),
    })
}

/// The local provider of the infra file. With `detect`, the agents' containerizers not named
/// by the file are found out (docker too when an engine answers); else they are left empty
/// (for `status` and `destroy`, which start nothing).
pub async fn local_provider(
    loaded: &Loaded,
    flags: &ProvisionFlags,
    detect: bool,
) -> anyhow::Result<LocalProvider> {
    let infra = &loaded.infra;
    let containerizers = match infra.containerizer_names() {
        Some(names) => names,
        None if !detect => Vec::new(),
        None if containers::engine().await.is_some() => vec!["mesos".into(), "docker".into()],
        None => vec!["mesos".into()],
    };
    let settings = local::Settings {
        infra: infra.clone(),
        infra_file: loaded.path.clone(),
        infra_shown: loaded.shown.clone(),
        workdir: loaded.workdir.clone(),
        containerizers,
    };
    Ok(LocalProvider::new(settings, options(loaded, flags)?.binary))
}

/// The provider the infra file names.
pub async fn provider(
    loaded: &Loaded,
    flags: &ProvisionFlags,
) -> anyhow::Result<Box<dyn Provider>> {
    let options = options(loaded, flags)?;
    let infra = &loaded.infra;
    let provider: Box<dyn Provider> = match infra.provider {
        ProviderKind::Local => Box::new(local_provider(loaded, flags, false).await?),
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

/// `orch up` (or `orch up --plan`, then None) with any provider: makes the plan, prints it
/// (`--plan`) or `header` and carries it out. A signal before the cluster is up ends the run
/// with an error; what the run made stays (the caller decides what to undo).
pub async fn up(
    provider: &mut dyn Provider,
    loaded: &Loaded,
    flags: &ProvisionFlags,
    repos: Vec<RepoConfig>,
    header: String,
    signals: &mut Signals,
) -> anyhow::Result<Option<UpSummary>> {
    let infra = &loaded.infra;
    let request = UpRequest {
        infra: infra.clone(),
        infra_file: loaded.path.clone(),
        dir: loaded.cluster_dir(),
        repos,
    };
    let plan = flow::plan(provider, &request).await?;
    if flags.plan {
        say!(
            "plan for cluster '{}' ({} provider, from {}); nothing is changed:",
            infra.cluster,
            provider.name(),
            loaded.shown
        );
        for action in &plan.actions {
            say!("  {action}");
        }
        return Ok(None);
    }
    say!("{header}");
    let begin = Instant::now();
    let progress = Progress::new(fail_at());
    let summary = tokio::select! {
        summary = flow::up(provider, &request, &plan, &progress) => summary?,
        _ = signals.recv() => anyhow::bail!("interrupted before the cluster was up"),
    };
    let count = |change: Change| summary.changes.iter().filter(|(_, c)| *c == change).count();
    say!(
        "cluster '{}' is up in {:.1}s: {} started, {} restarted, {} unchanged",
        infra.cluster,
        begin.elapsed().as_secs_f64(),
        count(Change::Started),
        count(Change::Restarted),
        count(Change::Unchanged)
    );
    if let Some(line) = exports(&loaded.cluster_dir(), &summary) {
        say!("the CLI finds the cluster from this directory; elsewhere:\n{line}");
    }
    Ok(Some(summary))
}

/// `export ORCH_MASTER=https://... ORCH_TOKEN=... ORCH_CA=...` for the cluster in `dir`.
fn exports(dir: &std::path::Path, summary: &UpSummary) -> Option<String> {
    let api = summary.apis.first()?;
    let token = orch_provision::cluster_pki::read_token(dir)?;
    let ca = orch_provision::cluster_pki::ca_path(dir);
    Some(format!(
        "export ORCH_MASTER=https://{api} ORCH_TOKEN={token} ORCH_CA={}",
        ca.display()
    ))
}

/// `orch status` with any provider.
pub async fn status(loaded: &Loaded) -> anyhow::Result<()> {
    let infra = &loaded.infra;
    let mut provider = provider(loaded, &ProvisionFlags::default()).await?;
    let Some(report) = flow::status(provider.as_mut(), infra, &loaded.cluster_dir()).await? else {
        println!(
            "cluster '{}' does not exist here (no {}); `{}` creates it",
            infra.cluster,
            loaded.shown_dir(),
            loaded.command("up")
        );
        let others = other_clusters(&loaded.workdir, &infra.cluster);
        if !others.is_empty() {
            println!(
                "other clusters in .orch/: {} (name one with --cluster NAME, or -f and its infra file)",
                others.join(", ")
            );
        }
        return Ok(());
    };
    let local = infra.provider == ProviderKind::Local;
    if local {
        println!("cluster '{}': {}", infra.cluster, processes_state(&report));
    } else {
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
    }
    print_machines(&report);
    match &report.leader {
        Some((leader, term, members)) => println!(
            "leader  {leader} (term {term}, {members} of {} masters members)",
            report.apis.len()
        ),
        None => println!("leader  none (no master answers, or no majority)"),
    }
    match report.agents {
        Some((registered, reachable)) => {
            println!("agents  {registered} registered, {reachable} reachable")
        }
        None => println!("agents  unknown"),
    }
    match &report.gitops {
        Some(Ok(Some(repos))) if repos.is_empty() => println!("gitops  no repos watched"),
        Some(Ok(Some(repos))) => {
            println!("gitops  {:<16} {:<20} LAST APPLIED", "REPO", "SYNC");
            for repo in repos {
                let commit = repo
                    .last_applied
                    .as_deref()
                    .map_or_else(|| "-".to_owned(), |c| c.chars().take(12).collect());
                println!("        {:<16} {:<20} {commit}", repo.name, repo.sync);
            }
        }
        Some(Ok(None)) => println!("gitops  not served by this master"),
        Some(Err(error)) => println!("gitops  unknown ({error})"),
        None => {}
    }
    for line in &report.endpoints {
        println!("{line}");
    }
    if local && !report.machines.iter().any(|m| m.state == "running") {
        println!("`{}` starts it again", loaded.command("up"));
    }
    Ok(())
}

/// A local cluster's state from its processes: running, stopped or partly running.
fn processes_state(report: &StatusReport) -> String {
    let running = report
        .machines
        .iter()
        .filter(|m| m.state == "running")
        .count();
    match running {
        n if n == report.machines.len() => "running".to_owned(),
        0 => "stopped".to_owned(),
        n => format!(
            "partly running ({n} of {} processes)",
            report.machines.len()
        ),
    }
}

/// The machines as a table, each column as wide as its widest cell.
fn print_machines(report: &StatusReport) {
    let rows: Vec<[String; 5]> =
        std::iter::once(["MACHINE", "ROLE", "IP", "STATE", "ID"].map(str::to_owned))
            .chain(report.machines.iter().map(|m| {
                [
                    m.name.clone(),
                    m.role.name().to_owned(),
                    m.ip.map_or_else(|| "-".to_owned(), |ip| ip.to_string()),
                    m.state.clone(),
                    m.id.clone(),
                ]
            }))
            .collect();
    let width = |column: usize| rows.iter().map(|r| r[column].len()).max().unwrap_or(0);
    let widths: Vec<usize> = (0..4).map(width).collect();
    for row in &rows {
        let mut line = String::new();
        for (cell, width) in row.iter().zip(&widths) {
            line.push_str(&format!("{cell:<width$}  "));
        }
        line.push_str(&row[4]);
        println!("{line}");
    }
}

/// The names of the other clusters with a state file in `<workdir>/.orch/`.
fn other_clusters(workdir: &std::path::Path, except: &str) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(workdir.join(".orch")) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .flatten()
        .filter(|e| e.path().join(orch_provision::state_file::FILE).exists())
        .filter_map(|e| e.file_name().to_str().map(str::to_owned))
        .filter(|name| name != except)
        .collect();
    names.sort();
    names
}

/// `orch destroy` with any provider (after the confirmation).
pub async fn destroy(loaded: &Loaded) -> anyhow::Result<()> {
    let cluster = &loaded.infra.cluster;
    let mut provider = provider(loaded, &ProvisionFlags::default()).await?;
    say!(
        "destroying cluster '{cluster}' ({} provider) ...",
        provider.name()
    );
    let removed = flow::destroy(
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

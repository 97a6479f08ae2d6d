//! `orch up`: start (or restart) the cluster an infra file describes, register its gitops
//! repos, print where everything listens; then stay in the foreground until SIGINT/SIGTERM
//! and stop the whole cluster, or return at once with `--detach`.

use super::infra_file::{self, InfraArgs};
use anyhow::Context;
use orch_provision::cluster_api::ClusterApi;
use orch_provision::containers;
use orch_provision::infra::{InfraError, ProviderKind};
use orch_provision::local::{self, Prepared, Stopped, UpRequest};
use orch_provision::state_file::LocalState;
use std::io::Write as _;
use std::time::Duration;
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

/// How long `orch up` waits for a leader and every agent.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

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
    /// Print what would be done and do nothing (docker, ssh, digital_ocean).
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

/// What ended the wait for the cluster.
enum Startup {
    Ready,
    Failed(local::LocalError),
    Interrupted,
}

/// Runs `orch up`.
pub async fn run(args: UpArgs) -> anyhow::Result<()> {
    let mut signals = Signals::new()?;
    let mut loaded = infra_file::load(&args.infra)?;
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
    if loaded.infra.provider != ProviderKind::Local {
        let flags = super::remote::RemoteFlags {
            plan: args.plan,
            binary: args.binary.clone(),
            trust_on_first_use: args.trust_on_first_use,
        };
        return super::remote::up(&loaded, &flags).await;
    }
    if args.plan {
        anyhow::bail!("--plan is for the docker, ssh and digital_ocean providers; the local provider's `orch up` only starts processes of this machine");
    }
    let infra = loaded.infra.clone();
    // Secrets come from this process's environment; a missing one fails before anything
    // starts.
    let repos = infra
        .repo_configs(&loaded.base_dir(), |name| std::env::var(name).ok())
        .map_err(|source| orch_provision::infra::InfraError::InFile {
            file: loaded.shown.clone(),
            source: Box::new(source),
        })?;
    let containerizers = match infra.containerizer_names() {
        Some(names) => names,
        None if containers::engine().await.is_some() => vec!["mesos".into(), "docker".into()],
        None => vec!["mesos".into()],
    };
    let request = UpRequest {
        infra: infra.clone(),
        infra_file: loaded.path.clone(),
        infra_shown: loaded.shown.clone(),
        workdir: loaded.workdir.clone(),
        containerizers,
    };
    let (record, missing, fresh) = match local::prepare(&request)? {
        Prepared::AlreadyRunning(record) => {
            say!(
                "cluster '{}' is already running: API {}",
                infra.cluster,
                api_url(&record)
            );
            print_cluster(&record);
            return Ok(());
        }
        Prepared::ToStart {
            record,
            missing,
            fresh,
        } => (record, missing, fresh),
    };
    say!(
        "{} cluster '{}' ({}) from {}; data and logs in {}",
        if fresh { "starting" } else { "restarting" },
        infra.cluster,
        record.layout.shape(),
        loaded.shown,
        loaded.shown_dir()
    );
    let program = std::env::current_exe().context("cannot find the orch binary")?;
    let mut started =
        local::start(record, &missing, &program, infra.agent_resources.as_deref()).await?;
    let startup = tokio::select! {
        result = started.wait_ready(READY_TIMEOUT) => match result {
            Ok(()) => Startup::Ready,
            Err(error) => Startup::Failed(error),
        },
        _ = signals.recv() => Startup::Interrupted,
    };
    match startup {
        Startup::Ready => {}
        Startup::Failed(error) => {
            started.stop_started().await;
            return Err(error).context(format!(
                "cluster '{}' did not come up; stopped what was started",
                infra.cluster
            ));
        }
        Startup::Interrupted => {
            started.stop_started().await;
            anyhow::bail!("interrupted before the cluster was ready; stopped what was started");
        }
    }
    let mut gitops = Vec::new();
    if !repos.is_empty() {
        let api = api_client(&started.record)?;
        for config in &repos {
            let name = config.effective_name();
            if let Err(error) = api.register_repo(config).await {
                started.stop_started().await;
                return Err(error).context(format!(
                    "cannot register gitops repo '{name}' ({}); stopped what was started",
                    config.repo
                ));
            }
            gitops.push(format!(
                "GitOps  {name}: {} (folder {}, every {})",
                config.repo, config.path, config.interval
            ));
        }
    }
    say!("cluster '{}' is up", infra.cluster);
    print_cluster(&started.record);
    for line in &gitops {
        say!("{line}");
    }
    if args.detach {
        say!("running in the background: `orch status` shows it, `orch destroy` removes it");
        return Ok(());
    }
    say!("running in the foreground: Ctrl-C stops the cluster (`orch up --detach` leaves it running)");
    let mut watching = true;
    loop {
        tokio::select! {
            _ = signals.recv() => break,
            exit = started.next_exit(), if watching => match exit {
                Some(exit) => {
                    let status = exit
                        .status
                        .map_or_else(|| "unknown status".to_owned(), |s| s.to_string());
                    let _ = writeln!(
                        std::io::stderr(),
                        "{} exited unexpectedly ({status}); see {}/{}.log",
                        exit.name,
                        loaded.shown_dir(),
                        exit.name
                    );
                }
                None => watching = false,
            },
        }
    }
    started.begin_stop();
    say!("stopping cluster '{}' ...", infra.cluster);
    let dir = started.record.layout.dir.clone();
    let stopped = local::stop_cluster(Some(&started.record), &dir).await;
    say!(
        "cluster '{}' stopped: {}",
        infra.cluster,
        describe(&stopped)
    );
    say!(
        "its data stays in {}; `orch up` starts it again, `orch destroy` deletes it",
        loaded.shown_dir()
    );
    Ok(())
}

/// A client of the cluster's API (the first master).
pub(super) fn api_client(record: &LocalState) -> anyhow::Result<ClusterApi> {
    let api = record
        .layout
        .api()
        .context("the cluster's state file names no master")?;
    Ok(ClusterApi::new(api)?)
}

/// `http://<first master>`.
pub(super) fn api_url(record: &LocalState) -> String {
    record
        .layout
        .api()
        .map_or_else(|| "(none)".to_owned(), |a| format!("http://{a}"))
}

/// Where the cluster's services listen, one line each.
pub(super) fn print_cluster(record: &LocalState) {
    say!("API     {} (Marathon /v2, orch /v1)", api_url(record));
    for status in local::node_status(record) {
        let node = &status.node;
        let pid = status
            .pid
            .map_or_else(|| "-".to_owned(), |p| p.pid.to_string());
        let mut line = format!("{:<9} http://{:<21} pid {pid:<8}", node.name, node.listen);
        if let Some(ports) = node.task_ports {
            line.push_str(&format!(
                " task ports {}-{}, {}",
                ports.begin,
                ports.end,
                record.containerizers.join(",")
            ));
        }
        say!("{}", line.trim_end());
    }
    for line in service_lines(record) {
        say!("{line}");
    }
}

/// The cluster-wide services besides the API: DNS and the load balancer.
pub(super) fn service_lines(record: &LocalState) -> Vec<String> {
    let dns = match &record.layout.dns {
        Some(dns) => format!(
            "DNS     {} (udp+tcp, *.{}), HTTP API http://{} (in {})",
            dns.listen,
            dns.domain,
            dns.http_listen,
            record
                .layout
                .masters
                .first()
                .map_or("-", |m| m.name.as_str())
        ),
        None => "DNS     off (dns: enabled: false)".to_owned(),
    };
    let lb = match &record.layout.lb {
        Some(lb) => {
            let port = |port: u16| match port {
                0 => "off".to_owned(),
                port => format!("{}:{port}", lb.bind_addr),
            };
            format!(
                "LB      http {}, https {}, app-id {}, stats {}, group {} (in {})",
                port(lb.http_port),
                port(lb.https_port),
                port(lb.app_id_port),
                match lb.stats_port {
                    0 => "off".to_owned(),
                    stats => format!("http://{}:{stats}/haproxy?stats", lb.bind_addr),
                },
                lb.group.join(","),
                record
                    .layout
                    .masters
                    .first()
                    .map_or("-", |m| m.name.as_str())
            )
        }
        None => "LB      off (lb: enabled: false)".to_owned(),
    };
    vec![dns, lb]
}

/// "1 agent, 2 task processes, 0 containers, 1 master".
pub(super) fn describe(stopped: &Stopped) -> String {
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

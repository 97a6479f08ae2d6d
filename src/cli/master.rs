//! `orch master`: bind, start Raft, serve the API until SIGTERM/SIGINT, shut down cleanly.

use anyhow::Context;
use orch_master::api;
use orch_master::config::{MasterConfig, MasterSettings};
use orch_master::gitops::Gitops;
use orch_master::master::Master;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Flags of `orch master`; each overrides the same key of `--config`.
#[derive(Debug, clap::Args)]
pub struct MasterArgs {
    /// Address to listen on [default: 127.0.0.1:8080]. Without TLS only a loopback address,
    /// unless --insecure.
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Address other masters and clients reach this master at [default: the listen address,
    /// or this host's address when listening on 0.0.0.0].
    #[arg(long)]
    advertise: Option<String>,
    /// The initial masters, same order on every master [default: this master alone].
    #[arg(long, value_delimiter = ',')]
    masters: Option<Vec<String>>,
    /// Where the Raft log and snapshots live [default: ./orch-data/master].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Raft id [default: 1-based position of the advertise address in --masters]. A master
    /// not in --masters needs it, and joins when added with `orch cluster add-master`.
    #[arg(long)]
    id: Option<u64>,
    /// Snapshot and compact the Raft log every N entries [default: 5000].
    #[arg(long)]
    snapshot_logs: Option<u64>,
    /// Heartbeat silence after which an agent is unreachable and its tasks are replaced
    /// [default: 5s].
    #[arg(long)]
    agent_timeout: Option<String>,
    #[command(flatten)]
    security: super::node_security::NodeSecurityArgs,
    /// The file holding the cluster's management token (`orch pki init` writes pki/token):
    /// with TLS, every API request but GET /ping must carry it.
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// The largest snapshot this master receives from a leader, in bytes [default: 1 GiB].
    #[arg(long)]
    max_snapshot_bytes: Option<u64>,
    /// The secret that authenticates `/v1/gitops/webhook` calls for repos without their own.
    #[arg(long, env = "ORCH_WEBHOOK_SECRET", hide_env_values = true)]
    webhook_secret: Option<String>,
    #[command(flatten)]
    dns: super::dns::EmbeddedDnsArgs,
    #[command(flatten)]
    lb: super::lb::EmbeddedLbArgs,
    /// This master lost its data (an empty or corrupt data dir) but the cluster knows it as a
    /// member: join again under a new Raft id, replacing the old one (etcd's member replace).
    /// Without it such a master refuses to start, so that it cannot vote with a forgotten vote.
    #[arg(long)]
    rejoin: bool,
    /// A YAML file with the same settings (snake_case keys); unknown keys are errors.
    #[arg(long)]
    config: Option<PathBuf>,
}

pub async fn run(args: MasterArgs) -> anyhow::Result<()> {
    let from_flags = MasterSettings {
        listen: args.listen,
        advertise: args.advertise,
        masters: args.masters,
        data_dir: args.data_dir,
        id: args.id,
        snapshot_logs: args.snapshot_logs,
        agent_timeout: args.agent_timeout,
        max_snapshot_bytes: args.max_snapshot_bytes,
        insecure: args.security.insecure.then_some(true),
        tls_cert: args.security.tls_cert,
        tls_key: args.security.tls_key,
        tls_ca: args.security.tls_ca,
        token_file: args.token_file,
    };
    let settings = match &args.config {
        Some(path) => from_flags.or(MasterSettings::from_file(path)?),
        None => from_flags,
    };
    let config = MasterConfig {
        rejoin: args.rejoin,
        ..MasterConfig::from_settings(settings)?
    };
    super::node_security::warn_if_plaintext("master", config.listen, config.tls.is_some());
    // Started before listening: a master starting with an empty store asks its peers
    // whether it lost its data, and a peer that is starting too refuses the connection at
    // once instead of holding it unanswered.
    let master = Master::start(&config)
        .await
        .context("cannot start the master")?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    tracing::info!(
        master.id = config.id,
        listen = %config.listen,
        advertise = %config.advertise,
        masters = ?config.masters,
        joining = config.joining,
        "master started"
    );
    let gitops = Gitops::start(
        std::sync::Arc::clone(&master),
        config.data_dir.join("gitops"),
        args.webhook_secret.clone(),
    );
    if let Some(dns) = args.dns.config(config.masters.clone())? {
        let stopping = std::sync::Arc::clone(&master);
        super::dns::start_embedded(dns, master.snapshots(), async move {
            stopping.stopping().await;
        })
        .await?;
    }
    if let Some(lb) = args.lb.config(config.masters.clone()) {
        let stopping = std::sync::Arc::clone(&master);
        super::lb::start_embedded(lb, master.snapshots(), async move {
            stopping.stopping().await;
        })
        .await?;
    }
    let stopping = std::sync::Arc::clone(&master);
    let router = api::router(std::sync::Arc::clone(&master), gitops);
    let shutdown = async move {
        shutdown_signal().await;
        stopping.begin_shutdown();
    };
    let serving = async {
        match master.server_tls() {
            Some(tls) => orch_pki::serve::serve(listener, router, tls, shutdown).await,
            None => orch_pki::serve::serve_plain(listener, router, shutdown).await,
        }
    };
    tokio::select! {
        served = serving => served.context("the HTTP server failed")?,
        why = master.raft_stopped() => {
            // A master that can neither vote nor apply must not keep answering: exit, so
            // that its supervisor (systemd, Docker, `orch up`) restarts it from its disk.
            tracing::error!(%why, "the Raft core stopped: exiting");
            anyhow::bail!("the Raft core stopped: {why}");
        }
    }
    master.shutdown().await;
    tracing::info!("master stopped");
    Ok(())
}

/// Completes on SIGTERM or SIGINT.
pub(super) async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut terminate) => {
            tokio::select! {
                _ = terminate.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(error) => {
            tracing::warn!(
                error = &error as &dyn std::error::Error,
                "no SIGTERM handler; stopping on SIGINT only"
            );
            let _ = tokio::signal::ctrl_c().await;
        }
    }
    tracing::info!("shutting down");
}

//! `orch agent`: bind, open (and recover) the agent(s), register with the leader, run tasks
//! and serve the sandbox file API until SIGTERM/SIGINT. Tasks keep running when the agent
//! stops; the next start re-attaches to them.

use anyhow::Context;
use orch_agent::{Agent, AgentConfig, AgentInstance, AgentSettings};
use orch_driver::docker::DockerDriver;
use orch_driver::mock::MockDriver;
use orch_driver::process::ProcessDriver;
use orch_driver::Driver;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Flags of `orch agent`.
#[derive(Debug, clap::Args)]
pub struct AgentArgs {
    /// Every master's host:port, comma-separated; the agent finds the leader among them.
    #[arg(long, value_delimiter = ',', required = true)]
    masters: Vec<String>,
    /// Address of the agent's HTTP API (sandbox files, state) [default: 127.0.0.1:5051].
    /// Without TLS only a loopback address, unless --insecure.
    #[arg(long)]
    listen: Option<SocketAddr>,
    #[command(flatten)]
    security: super::node_security::NodeSecurityArgs,
    /// Where the agent id, status journal and task sandboxes live [default: ./orch-data/agent].
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Hostname reported to the masters [default: the system's].
    #[arg(long)]
    hostname: Option<String>,
    /// IP the masters and tasks reach this agent at [default: the listen IP, or the address
    /// of the default route's interface].
    #[arg(long)]
    advertise_ip: Option<IpAddr>,
    /// Resources offered, Mesos syntax, e.g. "cpus:4;mem:8192;disk:20000;ports:[31000-32000]"
    /// [default: detected: all cores, memory - 1 GiB, free disk, ports 31000-32000].
    #[arg(long)]
    resources: Option<String>,
    /// Attributes for constraints, e.g. "rack:r1;zone:a".
    #[arg(long)]
    attributes: Option<String>,
    /// Offer resources under the slave_public role (for public-facing apps).
    #[arg(long)]
    public: bool,
    /// Containerizers to offer: mesos, docker, mock [default: mesos, plus docker when the
    /// engine answers].
    #[arg(long, value_delimiter = ',')]
    containerizers: Option<Vec<String>>,
    /// Run N simulated agents (mock tasks) in this process, sharing one HTTP listener.
    #[arg(long)]
    simulate: Option<usize>,
    /// The user that tasks of apps written without the `root` capability and without a
    /// `user` run as (Docker tasks get its uid:gid).
    #[arg(long, default_value = "nobody")]
    unprivileged_user: String,
    /// How long the sandbox of a finished task is kept, e.g. "1week", "2days", "6h" (as
    /// Mesos' --gc_delay).
    #[arg(long, default_value = "1week", value_parser = humantime::parse_duration)]
    gc_delay: Duration,
    /// Used fraction of the work dir's disk above which finished tasks' sandboxes are removed
    /// early, oldest first.
    #[arg(long, default_value_t = orch_agent::DEFAULT_GC_DISK_WATERMARK)]
    gc_disk_watermark: f64,
    #[command(flatten)]
    dns: super::dns::EmbeddedDnsArgs,
    #[command(flatten)]
    lb: super::lb::EmbeddedLbArgs,
}

impl AgentArgs {
    /// True with `--simulate`.
    pub fn simulates(&self) -> bool {
        self.simulate.is_some()
    }
}

/// Runs `orch agent` until SIGTERM/SIGINT.
pub async fn run(args: AgentArgs) -> anyhow::Result<()> {
    let settings = AgentSettings {
        masters: args.masters.clone(),
        listen: args.listen,
        insecure: args.security.insecure,
        tls_cert: args.security.tls_cert,
        tls_key: args.security.tls_key,
        tls_ca: args.security.tls_ca,
        work_dir: args.work_dir,
        hostname: args.hostname,
        advertise_ip: args.advertise_ip,
        resources: args.resources,
        attributes: args.attributes,
        public: args.public,
        containerizers: args.containerizers,
        simulate: args.simulate,
        unprivileged_user: Some(args.unprivileged_user),
        gc_delay: Some(args.gc_delay),
        gc_disk_watermark: Some(args.gc_disk_watermark),
    };
    let docker =
        settings.containerizers.is_none() && settings.simulate.is_none() && docker_answers().await;
    let config = AgentConfig::from_settings(settings, docker)?;
    super::node_security::warn_if_plaintext("agent", config.listen, config.tls.is_some());
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let bound = listener.local_addr()?;
    let mut agents = Vec::new();
    for instance in config.instances(bound) {
        let work_dir = instance.work_dir.clone();
        let drivers = drivers(&instance).await?;
        let agent = Agent::open(instance, drivers)
            .await
            .with_context(|| format!("cannot open the agent in {}", work_dir.display()))?;
        tracing::info!(
            agent.id = %agent.id(),
            hostname = %agent.info().hostname,
            address = %agent.info().address,
            resources = %agent.info().resources,
            containerizers = ?agent.info().containerizers,
            "agent started"
        );
        agents.push(agent);
    }
    let dns = args.dns.config(config.masters.clone())?;
    let lb = args.lb.config(config.masters.clone());
    if dns.is_some() || lb.is_some() {
        // The agent shows its own certificate to follow the masters' snapshots.
        let access = match &config.tls {
            Some(tls) => {
                orch_discovery::MasterAccess::tls(tls.client_config(orch_pki::Role::Master)?, None)?
            }
            None => orch_discovery::MasterAccess::plaintext()?,
        };
        let snapshots = orch_discovery::from_masters(config.masters.clone(), access);
        if let Some(dns) = dns {
            super::dns::start_embedded(dns, snapshots.clone(), super::shutdown_signal()).await?;
        }
        if let Some(lb) = lb {
            super::lb::start_embedded(lb, snapshots, super::shutdown_signal()).await?;
        }
    }
    let loops: Vec<_> = agents
        .iter()
        .map(|agent| tokio::spawn(orch_agent::run(Arc::clone(agent))))
        .collect();
    tracing::info!(listen = %bound, masters = ?config.masters, "agent listening");
    match &config.tls {
        // With TLS, the API answers masters only (task files reach clients through them).
        Some(tls) => {
            let router = orch_agent::router_for_masters(agents);
            orch_pki::serve::serve(
                listener,
                router,
                tls.server_config()?,
                super::shutdown_signal(),
            )
            .await
        }
        None => {
            orch_agent::serve(
                listener,
                orch_agent::router(agents),
                super::shutdown_signal(),
            )
            .await
        }
    }
    .context("the HTTP server failed")?;
    for handle in loops {
        handle.abort();
    }
    tracing::info!("agent stopped; its tasks keep running");
    Ok(())
}

/// The drivers of one agent, one per containerizer it offers: `mesos` (process tasks under
/// `orch executor`), `docker` (the local engine) and `mock`.
async fn drivers(instance: &AgentInstance) -> anyhow::Result<Vec<Arc<dyn Driver>>> {
    let mut drivers: Vec<Arc<dyn Driver>> = Vec::new();
    for name in &instance.containerizers {
        match name.as_str() {
            "mesos" => drivers.push(Arc::new(
                ProcessDriver::new(&instance.work_dir)
                    .context("cannot set up the mesos containerizer")?,
            )),
            "docker" => {
                std::fs::create_dir_all(&instance.work_dir)
                    .with_context(|| format!("cannot create {}", instance.work_dir.display()))?;
                let id = orch_agent::load_or_create_agent_id(&instance.work_dir)?;
                drivers.push(Arc::new(
                    DockerDriver::connect(id.0)
                        .await
                        .context("cannot reach the Docker engine")?
                        .with_work_dir(&instance.work_dir),
                ));
            }
            "mock" => drivers.push(Arc::new(MockDriver::new())),
            other => anyhow::bail!("unknown containerizer {other} (known: mesos, docker, mock)"),
        }
    }
    Ok(drivers)
}

/// True when the local Docker engine answers a ping within 2 s.
pub async fn docker_answers() -> bool {
    let Ok(docker) = bollard::Docker::connect_with_local_defaults() else {
        return false;
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(2), docker.ping()).await,
        Ok(Ok(_))
    )
}

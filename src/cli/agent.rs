//! `orch agent`: bind, open (and recover) the agent(s), register with the leader, run tasks
//! and serve the sandbox file API until SIGTERM/SIGINT. Tasks keep running when the agent
//! stops; the next start re-attaches to them.

use crate::agent::{self, Agent, AgentConfig, AgentSettings};
use crate::driver::Driver;
use anyhow::Context;
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
    /// Address of the agent's HTTP API (sandbox files, state) [default: 0.0.0.0:5051].
    #[arg(long)]
    listen: Option<SocketAddr>,
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
}

/// Runs `orch agent` until SIGTERM/SIGINT.
pub async fn run(args: AgentArgs) -> anyhow::Result<()> {
    let settings = AgentSettings {
        masters: args.masters,
        listen: args.listen,
        work_dir: args.work_dir,
        hostname: args.hostname,
        advertise_ip: args.advertise_ip,
        resources: args.resources,
        attributes: args.attributes,
        public: args.public,
        containerizers: args.containerizers,
        simulate: args.simulate,
    };
    let docker =
        settings.containerizers.is_none() && settings.simulate.is_none() && docker_answers().await;
    let config = AgentConfig::from_settings(settings, docker)?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let bound = listener.local_addr()?;
    let mut agents = Vec::new();
    for instance in config.instances(bound) {
        let work_dir = instance.work_dir.clone();
        let agent = Agent::open(instance, drivers(&config))
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
    let loops: Vec<_> = agents
        .iter()
        .map(|agent| tokio::spawn(agent::run(Arc::clone(agent))))
        .collect();
    tracing::info!(listen = %bound, masters = ?config.masters, "agent listening");
    agent::serve(listener, agent::router(agents), super::shutdown_signal())
        .await
        .context("the HTTP server failed")?;
    for handle in loops {
        handle.abort();
    }
    tracing::info!("agent stopped; its tasks keep running");
    Ok(())
}

/// The drivers of an agent with `config`'s containerizers, in preference order.
///
/// No driver implementation is part of this build yet, so the list is empty and the agent
/// fails every task with "no containerizer for this task". Each containerizer name in
/// `config.containerizers` gets its driver here once the drivers land.
pub fn drivers(config: &AgentConfig) -> Vec<Arc<dyn Driver>> {
    let drivers: Vec<Arc<dyn Driver>> = Vec::new();
    let missing: Vec<&str> = config
        .containerizers
        .iter()
        .map(String::as_str)
        .filter(|name| !drivers.iter().any(|d| d.name() == *name))
        .collect();
    if !missing.is_empty() {
        tracing::warn!(
            ?missing,
            "no driver for these containerizers in this build; their tasks will fail"
        );
    }
    drivers
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

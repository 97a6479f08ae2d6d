//! The `orch` commands (clap). One file per command group; each builds its typed config and
//! calls into the library. `anyhow` is allowed here and in `main.rs` only.
//!
//! May depend on: everything (this is the edge).

mod acl;
mod agent;
mod app;
mod bluegreen;
mod client;
mod cluster;
mod cluster_dir;
mod deployment;
mod destroy;
mod dns;
mod executor;
mod gitops;
mod group;
mod infra_file;
mod lb;
mod master;
mod node;
mod node_security;
mod pki;
mod provision;
mod status;
mod task;
mod up;

use crate::telemetry::{self, LogFormat};
use clap::{Parser, Subcommand};

/// The command line.
#[derive(Debug, Parser)]
#[command(
    name = "orch",
    version,
    about = "Marathon-compatible orchestration in one binary"
)]
pub struct Cli {
    /// Log format on stderr (filter with RUST_LOG).
    #[arg(long, global = true, value_enum, default_value = "text")]
    log_format: LogFormat,
    /// The master to talk to (client commands) [default: the first master of the cluster in
    /// .orch/ here, else http://127.0.0.1:8080].
    #[arg(long, global = true, env = "ORCH_MASTER")]
    master: Option<String>,
    /// The cluster CA (PEM) to verify a master with TLS against (client commands) [default:
    /// .orch/<cluster>/pki/ca.pem here].
    #[arg(long, global = true, env = "ORCH_CA")]
    ca: Option<std::path::PathBuf>,
    /// The token to send to a master with TLS (client commands) [default:
    /// .orch/<cluster>/token here].
    #[arg(long, global = true, env = "ORCH_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Which cluster of .orch/ here the commands mean, when it holds several.
    #[arg(long, global = true, env = "ORCH_CLUSTER")]
    cluster: Option<String>,
    /// Output of client commands: a table, or the raw JSON.
    #[arg(
        short = 'o',
        long = "output",
        global = true,
        value_enum,
        default_value = "table"
    )]
    output: client::Output,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start the cluster an infra file describes (default: infra/local.yaml, else 1 master
    /// and 1 agent on this machine) and stay until Ctrl-C, or return with --detach.
    Up(up::UpArgs),
    /// Show whether the cluster runs: its processes, leader, agents and gitops repos.
    Status(infra_file::InfraArgs),
    /// Stop everything of the cluster and delete its data (.orch/<cluster>).
    Destroy(destroy::DestroyArgs),
    /// Run a master: Raft node, Marathon API and orch API on one port.
    Master(master::MasterArgs),
    /// Run an agent: registers with the leading master and runs its tasks.
    Agent(agent::AgentArgs),
    /// Serve Mesos-DNS-compatible DNS (and its HTTP API) for the cluster.
    Dns(dns::DnsArgs),
    /// Load-balance the cluster's apps as marathon-lb did (HAPROXY_* labels), built in or
    /// by writing a haproxy.cfg.
    Lb(lb::LbArgs),
    /// Inspect and change the master set.
    #[command(subcommand)]
    Cluster(cluster::ClusterCommand),
    /// Marathon apps: list, show, add, update, scale, restart, remove, versions,
    /// deploy-bluegreen.
    #[command(subcommand)]
    App(app::AppCommand),
    /// Deployments: list, rollback, stop, watch.
    #[command(subcommand)]
    Deployment(deployment::DeploymentCommand),
    /// Tasks: list, kill, logs.
    #[command(subcommand)]
    Task(task::TaskCommand),
    /// Groups: list, add, update, remove.
    #[command(subcommand)]
    Group(group::GroupCommand),
    /// Agents: list.
    #[command(subcommand)]
    Node(node::NodeCommand),
    /// Watched git repos: add, remove, status, sync, rollback, resume.
    #[command(subcommand)]
    Gitops(gitops::GitopsCommand),
    /// The cluster's identity by hand: init (CA and token), issue (a node's certificate).
    #[command(subcommand)]
    Pki(pki::PkiCommand),
    /// Access control: policies (apply, list, delete) and tokens (create, list, revoke).
    #[command(subcommand)]
    Acl(acl::AclCommand),
    /// The per-task supervisor the process driver spawns (internal).
    #[command(hide = true)]
    Executor(executor::ExecutorArgs),
}

/// Runs the parsed command to completion.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    telemetry::init(cli.log_format);
    match cli.command {
        Command::Executor(args) => return executor::run(args),
        Command::Pki(command) => return pki::run(command),
        _ => {}
    }
    let runtime = match &cli.command {
        // An agent waits on sockets and child processes: one worker thread serves it and
        // keeps its idle footprint small (each worker costs ~2 MiB). Simulated agents and
        // the master use one worker per core.
        Command::Agent(args) if !args.simulates() => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()?,
        _ => tokio::runtime::Runtime::new()?,
    };
    let output = cli.output;
    // `orch dns` and `orch lb` follow the masters with the CA and token of the flags or env.
    let credentials = client::Credentials {
        ca: cli.ca.clone(),
        token: cli.token.clone(),
    };
    let (master, ca, token, cluster) = (
        cli.master.clone(),
        cli.ca.clone(),
        cli.token.clone(),
        cli.cluster.clone(),
    );
    let client = move || {
        let (master, credentials) = client::target(master, ca, token, cluster.as_deref())?;
        client::Client::new(&master, output, &credentials)
    };
    let cluster = cli.cluster.clone();
    runtime.block_on(async move {
        match cli.command {
            Command::Master(args) => master::run(args).await,
            Command::Up(args) => up::run(args, cluster.as_deref()).await,
            Command::Status(args) => status::run(args, cluster.as_deref()).await,
            Command::Destroy(args) => destroy::run(args, cluster.as_deref()).await,
            Command::Cluster(command) => cluster::run(command, &client()?).await,
            Command::App(command) => app::run(command, &client()?).await,
            Command::Deployment(command) => deployment::run(command, &client()?).await,
            Command::Task(command) => task::run(command, &client()?).await,
            Command::Group(command) => group::run(command, &client()?).await,
            Command::Node(command) => node::run(command, &client()?).await,
            Command::Gitops(command) => gitops::run(command, &client()?).await,
            Command::Acl(command) => acl::run(command, &client()?).await,
            Command::Executor(args) => executor::run(args),
            Command::Pki(command) => pki::run(command),
            Command::Agent(args) => agent::run(args).await,
            Command::Dns(args) => dns::run(args, &credentials).await,
            Command::Lb(args) => lb::run(args, &credentials).await,
        }
    })
}

use master::shutdown_signal;

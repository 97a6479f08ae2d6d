//! The `orch` commands (clap). One file per command group; each builds its typed config and
//! calls into the library. `anyhow` is allowed here and in `main.rs` only.
//!
//! May depend on: everything (this is the edge).

mod agent;
mod client;
mod cluster;
mod master;

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
    /// The master to talk to (client commands).
    #[arg(
        long,
        global = true,
        env = "ORCH_MASTER",
        default_value = "http://127.0.0.1:8080"
    )]
    master: String,
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
    /// Run a master: Raft node, Marathon API and orch API on one port.
    Master(master::MasterArgs),
    /// Run an agent: registers with the leading master and runs its tasks.
    Agent(agent::AgentArgs),
    /// Inspect and change the master set.
    #[command(subcommand)]
    Cluster(cluster::ClusterCommand),
}

/// Runs the parsed command to completion.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    telemetry::init(cli.log_format);
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        match cli.command {
            Command::Master(args) => master::run(args).await,
            Command::Agent(args) => agent::run(args).await,
            Command::Cluster(command) => {
                let client = client::Client::new(&cli.master, cli.output)?;
                cluster::run(command, &client).await
            }
        }
    })
}

use master::shutdown_signal;

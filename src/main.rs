//! The `orch` binary: parse the command line, set up logging, run the command.

use clap::Parser;

mod cli;
mod telemetry;

/// mimalloc: glibc malloc was the largest user-space cost on the write path.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    orch_pki::tls::install_crypto_provider();
    let cli = cli::Cli::parse();
    match cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

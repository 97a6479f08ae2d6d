//! `orch executor --sandbox DIR`: the detached per-task supervisor of the process driver
//! (hidden; the agent starts it). See [`orch_driver::executor`].
//!
//! May depend on: driver.

use orch_driver::executor;
use std::path::PathBuf;

/// Arguments of `orch executor`.
#[derive(Debug, clap::Args)]
pub struct ExecutorArgs {
    /// The task's sandbox; the launch description is in `<sandbox>/.orch/task.json`.
    #[arg(long)]
    sandbox: PathBuf,
    /// Internal: become the task (join its cgroup, switch user, exec its command).
    #[arg(long, hide = true)]
    exec_task: bool,
}

/// Supervises the task of the sandbox to its end, or (with `--exec-task`) becomes it.
pub fn run(args: ExecutorArgs) -> anyhow::Result<()> {
    if args.exec_task {
        return Err(executor::exec_task(&args.sandbox).into());
    }
    executor::run(&args.sandbox)?;
    Ok(())
}

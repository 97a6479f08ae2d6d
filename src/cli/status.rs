//! `orch status`: whether the cluster of an infra file runs: each machine (for the local
//! provider, each process: pid, address, running or stopped), the leader and agents as the
//! API reports them, the gitops repos with their sync state, and where the cluster serves.

use super::infra_file::{self, InfraArgs};

/// Runs `orch status`.
pub async fn run(args: InfraArgs, cluster: Option<&str>) -> anyhow::Result<()> {
    let loaded = infra_file::load(&args, cluster)?;
    super::provision::status(&loaded).await
}

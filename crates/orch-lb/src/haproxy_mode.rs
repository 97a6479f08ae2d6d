//! HAProxy mode (`--haproxy-config PATH --haproxy-reload CMD`): for users who keep HAProxy,
//! a `haproxy.cfg` follows the snapshots and HAProxy is reloaded only when it changed, as
//! marathon-lb did.
//!
//! Per snapshot (bursts are coalesced: the newest snapshot after a few quiet milliseconds):
//! [`super::routes`] → [`super::haproxy_config`] → if the text differs from `PATH` on disk:
//! write `PATH.tmp` next to it, run `<haproxy binary> -c -f PATH.tmp`, rename it over `PATH`,
//! and run the reload command with `sh -c`. Guarantees:
//! - a config HAProxy rejects never replaces `PATH` and never triggers a reload: the checker's
//!   output is logged and the old file stays;
//! - the same text is never written or reloaded twice, but a reload that failed is retried
//!   with the next snapshot even if the text did not change again;
//! - no error stops the loop (bad labels are the users' and must not take the load balancer
//!   down); only [`run`] without an HAProxy configuration returns an error.
//!
//! May depend on: state, tokio, [`super::routes`], [`super::haproxy`], [`super::config`].

use super::config::{HaproxyMode, LbConfig};
use super::{haproxy_config, routes};
use orch_core::state::Snapshot;
use std::ffi::OsString;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;
use std::time::Duration;
use tokio::process::Command;
use tokio::sync::watch;

/// How long snapshots must stay quiet before a config is generated.
const DEBOUNCE: Duration = Duration::from_millis(5);
/// `haproxy -c` taking longer than this counts as a rejection.
const CHECK_TIMEOUT: Duration = Duration::from_secs(30);
/// A reload command taking longer than this counts as failed (and is killed).
const RELOAD_TIMEOUT: Duration = Duration::from_secs(60);

/// Why a config could not be put in place or HAProxy not reloaded.
#[derive(Debug, thiserror::Error)]
pub enum HaproxyError {
    /// [`run`] was called with a configuration without [`LbConfig::haproxy`].
    #[error("HAProxy mode needs --haproxy-config and --haproxy-reload")]
    NotConfigured,
    /// The config on disk could not be read for comparison.
    #[error("cannot read {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The new config could not be written.
    #[error("cannot write {path}")]
    Write {
        /// The temporary file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The checker could not be run at all.
    #[error("cannot run {binary} -c")]
    RunCheck {
        /// The haproxy binary.
        binary: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// `haproxy -c` rejected the new config (or took longer than 30 s).
    #[error("haproxy -c rejected the generated config {path}")]
    Rejected {
        /// The temporary file that was checked (removed since).
        path: PathBuf,
        /// What the checker printed (stdout and stderr).
        output: String,
    },
    /// The checked config could not be moved into place.
    #[error("cannot move {from} to {to}")]
    Rename {
        /// The temporary file.
        from: PathBuf,
        /// The config path.
        to: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The reload command could not be started.
    #[error("cannot run the reload command `{command}`")]
    RunReload {
        /// The command.
        command: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The reload command failed (non-zero exit, a signal, or longer than 60 s).
    #[error("the reload command `{command}` failed ({status})")]
    Reload {
        /// The command.
        command: String,
        /// Its exit status, or `timed out`.
        status: String,
        /// What it printed (stdout and stderr).
        output: String,
    },
}

/// What [`apply`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    /// The file already held this text: nothing written, nothing reloaded.
    Unchanged,
    /// The text passed `haproxy -c`, replaced the file and HAProxy was reloaded.
    Reloaded,
}

/// Follows `snapshots` until `shutdown`: a config per (coalesced) snapshot, written and
/// reloaded when it changed (see the module docs). Errors of a round are logged, never
/// returned.
pub async fn run(
    config: LbConfig,
    mut snapshots: watch::Receiver<Arc<Snapshot>>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), HaproxyError> {
    let mode = config.haproxy.clone().ok_or(HaproxyError::NotConfigured)?;
    tracing::info!(
        config = %mode.config_path.display(),
        reload = %mode.reload_command,
        "HAProxy mode"
    );
    tokio::pin!(shutdown);
    let mut reload_pending = false;
    let mut open = true;
    loop {
        let snapshot = Arc::clone(&snapshots.borrow_and_update());
        round(&config, &mode, &snapshot, &mut reload_pending).await;
        loop {
            tokio::select! {
                () = &mut shutdown => return Ok(()),
                changed = snapshots.changed(), if open => {
                    if changed.is_err() {
                        // No more snapshots: keep the last config until shutdown.
                        open = false;
                        continue;
                    }
                }
            }
            // Coalesce a burst: wait until the snapshots stay quiet for a moment.
            while open {
                match tokio::time::timeout(DEBOUNCE, snapshots.changed()).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_closed)) => open = false,
                    Err(_quiet) => break,
                }
            }
            break;
        }
    }
}

/// One snapshot's config: generated, put in place and reloaded as needed; errors logged.
async fn round(config: &LbConfig, mode: &HaproxyMode, snapshot: &Snapshot, pending: &mut bool) {
    let table = routes(snapshot, &config.routes);
    let text = haproxy_config(&table, config);
    let changed = match write_if_changed(mode, &text).await {
        Ok(changed) => changed,
        Err(HaproxyError::Rejected { path, output }) => {
            tracing::warn!(
                raft.index = snapshot.applied_index,
                path = %path.display(),
                %output,
                "haproxy -c rejected the new config; keeping the old one"
            );
            return;
        }
        Err(error) => {
            tracing::error!(
                raft.index = snapshot.applied_index,
                error = &error as &dyn std::error::Error,
                "the new HAProxy config was not put in place"
            );
            return;
        }
    };
    if !changed && !*pending {
        return;
    }
    match reload(mode).await {
        Ok(()) => {
            *pending = false;
            tracing::info!(
                raft.index = snapshot.applied_index,
                backends = table.backends.len(),
                "HAProxy config changed and reloaded"
            );
        }
        Err(error) => {
            *pending = true;
            let output = match &error {
                HaproxyError::Reload { output, .. } => output.as_str(),
                _ => "",
            };
            tracing::error!(
                raft.index = snapshot.applied_index,
                error = &error as &dyn std::error::Error,
                %output,
                "HAProxy reload failed; retrying with the next snapshot"
            );
        }
    }
}

/// Puts `text` in place of the config and reloads HAProxy, unless the file already holds it.
pub async fn apply(mode: &HaproxyMode, text: &str) -> Result<Applied, HaproxyError> {
    if !write_if_changed(mode, text).await? {
        return Ok(Applied::Unchanged);
    }
    reload(mode).await?;
    Ok(Applied::Reloaded)
}

/// Writes `text` to the config through a checked temporary file when it differs from the
/// file's content; false when it is the same.
async fn write_if_changed(mode: &HaproxyMode, text: &str) -> Result<bool, HaproxyError> {
    let path = &mode.config_path;
    match tokio::fs::read(path).await {
        Ok(current) if current == text.as_bytes() => return Ok(false),
        Ok(_) => {}
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(HaproxyError::Read {
                path: path.clone(),
                source,
            })
        }
    }
    let tmp = temporary(path);
    tokio::fs::write(&tmp, text)
        .await
        .map_err(|source| HaproxyError::Write {
            path: tmp.clone(),
            source,
        })?;
    if let Err(error) = check(&mode.haproxy_binary, &tmp).await {
        // Best effort: a leftover temporary file is overwritten next time anyway.
        let _ = tokio::fs::remove_file(&tmp).await;
        return Err(error);
    }
    tokio::fs::rename(&tmp, path)
        .await
        .map_err(|source| HaproxyError::Rename {
            from: tmp.clone(),
            to: path.clone(),
            source,
        })?;
    Ok(true)
}

/// `PATH.tmp`, next to `PATH` (so the rename stays on one file system).
fn temporary(path: &Path) -> PathBuf {
    let mut name: OsString = path.as_os_str().to_owned();
    name.push(".tmp");
    PathBuf::from(name)
}

/// `<binary> -c -f <file>`.
async fn check(binary: &Path, file: &Path) -> Result<(), HaproxyError> {
    let mut command = Command::new(binary);
    command.arg("-c").arg("-f").arg(file).kill_on_drop(true);
    let output = tokio::time::timeout(CHECK_TIMEOUT, command.output()).await;
    match output {
        Ok(Ok(output)) if output.status.success() => Ok(()),
        Ok(Ok(output)) => Err(HaproxyError::Rejected {
            path: file.to_owned(),
            output: printed(&output),
        }),
        Ok(Err(source)) => Err(HaproxyError::RunCheck {
            binary: binary.to_owned(),
            source,
        }),
        Err(_timeout) => Err(HaproxyError::Rejected {
            path: file.to_owned(),
            output: format!("no verdict within {CHECK_TIMEOUT:?}"),
        }),
    }
}

/// Runs the reload command with `sh -c`.
async fn reload(mode: &HaproxyMode) -> Result<(), HaproxyError> {
    let command_line = &mode.reload_command;
    let mut command = Command::new("sh");
    command.arg("-c").arg(command_line).kill_on_drop(true);
    match tokio::time::timeout(RELOAD_TIMEOUT, command.output()).await {
        Ok(Ok(output)) if output.status.success() => Ok(()),
        Ok(Ok(output)) => Err(HaproxyError::Reload {
            command: command_line.clone(),
            status: output.status.to_string(),
            output: printed(&output),
        }),
        Ok(Err(source)) => Err(HaproxyError::RunReload {
            command: command_line.clone(),
            source,
        }),
        Err(_timeout) => Err(HaproxyError::Reload {
            command: command_line.clone(),
            status: "timed out".to_owned(),
            output: String::new(),
        }),
    }
}

/// A process's stdout and stderr as text.
fn printed(output: &Output) -> String {
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    text.trim().to_owned()
}

//! Container output into the sandbox: a follower per container appends its stdout/stderr to
//! the sandbox's `stdout` and `stderr`, remembering the last copied timestamp in
//! `<sandbox>/.orch/docker-log-since` so a follower restarted after an agent restart resumes
//! there. The log files are opened without following a symlink.
//!
//! May depend on: driver::executor (state files), the Docker engine (bollard).

use super::{container_name, engine_message, DockerDriver};
use crate::executor::{write_atomic, StateFiles};
use bollard::query_parameters::LogsOptionsBuilder;
use bollard::Docker;
use futures::StreamExt;
use orch_core::model::TaskId;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::PoisonError;
use std::time::{Duration, SystemTime};

/// Where a follower records its progress, inside `<sandbox>/.orch/`.
const LOG_SINCE_FILE: &str = "docker-log-since";

impl DockerDriver {
    /// Starts (or restarts) the log follower of a task.
    pub(super) fn follow_logs(&self, task: &TaskId, sandbox: &Path) {
        let mut followers = self
            .followers
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if followers.get(task).is_some_and(|f| !f.is_finished()) {
            return;
        }
        let docker = self.docker.clone();
        let name = container_name(task);
        let sandbox = sandbox.to_owned();
        let task_id = task.clone();
        let handle = tokio::spawn(async move {
            if let Err(error) = copy_logs(&docker, &name, &sandbox).await {
                tracing::warn!(task.id = %task_id, %error, "log follower stopped");
            }
        });
        followers.insert(task.clone(), handle);
    }

    pub(super) async fn finish_logs(&self, task: &TaskId) {
        let handle = self
            .followers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(task);
        if let Some(handle) = handle {
            // The stream ends when the container stops; do not let a stuck one block us.
            let abort = handle.abort_handle();
            if tokio::time::timeout(Duration::from_secs(5), handle)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
    }
}

/// Copies a container's output into the sandbox until the container stops, resuming after
/// the last timestamp copied before.
async fn copy_logs(docker: &Docker, name: &str, sandbox: &Path) -> Result<(), String> {
    let files = StateFiles::new(sandbox);
    let since_file = files.dir().join(LOG_SINCE_FILE);
    let last_copied = std::fs::read_to_string(&since_file).ok();
    let last_time = last_copied
        .as_deref()
        .and_then(|t| humantime::parse_rfc3339_weak(t.trim().trim_end_matches('Z')).ok());
    let since_secs = last_time
        .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map_or(0, |d| i32::try_from(d.as_secs()).unwrap_or(i32::MAX));
    // The container may have put a symlink there (the sandbox is mounted into it): the
    // agent never follows one.
    let open = |file: &str| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
            .open(sandbox.join(file))
            .map_err(|e| format!("opening {file}: {e}"))
    };
    let (mut stdout, mut stderr) = (open("stdout")?, open("stderr")?);
    let options = LogsOptionsBuilder::default()
        .follow(true)
        .stdout(true)
        .stderr(true)
        .timestamps(true)
        .since(since_secs)
        .build();
    let mut stream = docker.logs(name, Some(options));
    let mut latest: Option<String> = None;
    let mut saved: Option<std::time::Instant> = None;
    while let Some(item) = stream.next().await {
        let output = item.map_err(|e| engine_message(&e))?;
        let (is_err, bytes) = match output {
            bollard::container::LogOutput::StdErr { message } => (true, message),
            bollard::container::LogOutput::StdOut { message }
            | bollard::container::LogOutput::Console { message } => (false, message),
            bollard::container::LogOutput::StdIn { .. } => continue,
        };
        let (stamp, line) = split_timestamp(&bytes);
        if let (Some(stamp), Some(last)) = (stamp, last_time) {
            let time = humantime::parse_rfc3339_weak(stamp.trim_end_matches('Z')).ok();
            if time.is_some_and(|t| t <= last) {
                continue;
            }
        }
        let target = if is_err { &mut stderr } else { &mut stdout };
        target
            .write_all(line)
            .map_err(|e| format!("writing the sandbox log: {e}"))?;
        if let Some(stamp) = stamp {
            latest = Some(stamp.to_owned());
        }
        // Progress is saved at most once a second: after a crash, up to a second of output
        // may be copied twice.
        if saved.is_none_or(|at| at.elapsed() > Duration::from_secs(1)) {
            if let Some(stamp) = &latest {
                let _ = write_atomic(&since_file, stamp.as_bytes());
            }
            saved = Some(std::time::Instant::now());
        }
    }
    if let Some(stamp) = &latest {
        let _ = write_atomic(&since_file, stamp.as_bytes());
    }
    Ok(())
}

/// Splits Docker's `<RFC3339Nano timestamp> <line>` into its parts.
fn split_timestamp(bytes: &[u8]) -> (Option<&str>, &[u8]) {
    if let Some(space) = bytes.iter().position(|b| *b == b' ') {
        if let Ok(stamp) = std::str::from_utf8(&bytes[..space]) {
            if stamp.len() >= 20 && stamp.ends_with('Z') && stamp.as_bytes()[4] == b'-' {
                return (Some(stamp), &bytes[space + 1..]);
            }
        }
    }
    (None, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_lines_lose_their_timestamp() {
        let (stamp, line) = split_timestamp(b"2024-01-02T03:04:05.123456789Z hello world\n");
        assert_eq!(stamp, Some("2024-01-02T03:04:05.123456789Z"));
        assert_eq!(line, b"hello world\n");
        let (stamp, line) = split_timestamp(b"no stamp here\n");
        assert_eq!(stamp, None);
        assert_eq!(line, b"no stamp here\n");
    }
}

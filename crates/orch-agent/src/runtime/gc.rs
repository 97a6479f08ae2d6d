//! Sandbox garbage collection, as Mesos' `--gc_delay`: the sandbox of a finished task is
//! removed [`GcPolicy::delay`] after the task ended, and sooner, oldest first, while the file
//! system of the work dir is fuller than [`GcPolicy::disk_watermark`]. The sandbox of a task
//! that runs is never removed: not one the agent tracks as live, nor one a driver says still
//! runs (or cannot tell about).
//!
//! When a task ended: the time its terminal status was reported (kept in the task table), or
//! after a restart the sandbox directory's modification time, which `finish` sets when the
//! driver has cleaned up. A sandbox is first renamed into `<work-dir>/gc-trash/` (under the
//! task table's lock, after checking once more that its task is not live), then deleted;
//! leftovers of an interrupted deletion go with the next sweep.
//!
//! May depend on: the runtime's task table and drivers, nix (statvfs).

use super::{lock, Agent};
use orch_core::model::TaskId;
use orch_driver::DriverError;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// Mesos' default `--gc_delay`: one week.
pub const DEFAULT_GC_DELAY: Duration = Duration::from_secs(7 * 24 * 3600);
/// Default `--gc-disk-watermark`: 90% used (Mesos' `--gc_disk_headroom` 0.1).
pub const DEFAULT_GC_DISK_WATERMARK: f64 = 0.9;
/// Longest pause between two sweeps.
const MAX_INTERVAL: Duration = Duration::from_secs(60);
/// Where sandboxes go to be deleted, in the work dir.
const TRASH: &str = "gc-trash";

/// When finished tasks' sandboxes are removed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GcPolicy {
    /// How long a finished task's sandbox is kept (`--gc-delay`).
    pub delay: Duration,
    /// The fraction of the work dir's file system (0..=1) above which finished sandboxes
    /// are removed early, oldest first (`--gc-disk-watermark`).
    pub disk_watermark: f64,
}

impl Default for GcPolicy {
    fn default() -> Self {
        Self {
            delay: DEFAULT_GC_DELAY,
            disk_watermark: DEFAULT_GC_DISK_WATERMARK,
        }
    }
}

impl GcPolicy {
    /// How often the agent sweeps: a quarter of the delay, from 100 ms to a minute.
    pub fn interval(&self) -> Duration {
        (self.delay / 4).clamp(Duration::from_millis(100), MAX_INTERVAL)
    }
}

/// The used fraction of the file system holding `path`, as `df` counts it.
pub(crate) fn disk_usage(path: &Path) -> Option<f64> {
    let stat = nix::sys::statvfs::statvfs(path).ok()?;
    let used = stat.blocks().saturating_sub(stat.blocks_free()) as f64;
    let available = stat.blocks_available() as f64;
    (used + available > 0.0).then(|| used / (used + available))
}

/// A finished task's sandbox that may go.
#[derive(Debug)]
struct Candidate {
    id: TaskId,
    ended: SystemTime,
}

impl Agent {
    /// Sweeps every [`GcPolicy::interval`] until dropped.
    pub(crate) async fn collect_garbage_forever(&self) {
        loop {
            tokio::time::sleep(self.gc.interval()).await;
            self.collect_garbage().await;
        }
    }

    /// One sweep: removes the sandboxes of finished tasks that ended more than the delay ago,
    /// then, while the disk is above the watermark, the oldest remaining ones. Returns the
    /// tasks whose sandboxes were removed, in that order.
    pub(crate) async fn collect_garbage(&self) -> Vec<TaskId> {
        self.empty_trash().await;
        let mut candidates = self.finished_sandboxes();
        candidates.sort_by(|a, b| a.ended.cmp(&b.ended).then_with(|| a.id.cmp(&b.id)));
        let now = SystemTime::now();
        let mut removed = Vec::new();
        let mut kept = Vec::new();
        for candidate in candidates {
            let age = now.duration_since(candidate.ended).unwrap_or_default();
            if age >= self.gc.delay && self.remove_sandbox(&candidate.id, "expired").await {
                removed.push(candidate.id);
            } else {
                kept.push(candidate);
            }
        }
        for candidate in kept {
            match disk_usage(&self.work_dir) {
                Some(usage) if usage > self.gc.disk_watermark => {}
                _ => break,
            }
            if self
                .remove_sandbox(&candidate.id, "the disk is above the watermark")
                .await
            {
                removed.push(candidate.id);
            }
        }
        removed
    }

    /// Sandboxes whose task is not live in the table, with when the task ended.
    fn finished_sandboxes(&self) -> Vec<Candidate> {
        let Ok(entries) = std::fs::read_dir(self.sandboxes()) else {
            return Vec::new();
        };
        let tasks = lock(&self.tasks);
        entries
            .flatten()
            .filter(|entry| entry.file_type().is_ok_and(|t| t.is_dir()))
            .filter_map(|entry| {
                let id = TaskId(entry.file_name().to_str()?.to_owned());
                let ended = match tasks.get(&id) {
                    Some(task) if !task.state.is_terminal() => return None,
                    Some(task) => task.finished_at,
                    None => None,
                };
                let ended = ended.or_else(|| entry.metadata().ok()?.modified().ok())?;
                Some(Candidate { id, ended })
            })
            .collect()
    }

    /// Whether any driver runs the task, or cannot tell.
    async fn maybe_running(&self, id: &TaskId) -> bool {
        for driver in &self.drivers {
            match driver.inspect(id).await {
                Ok(Some(_)) | Err(DriverError::UnknownTask(_)) => {}
                Ok(None) => return true,
                Err(error) => {
                    tracing::warn!(
                        task.id = %id,
                        driver = driver.name(),
                        error = &error as &dyn std::error::Error,
                        "cannot tell whether the task still runs; keeping its sandbox"
                    );
                    return true;
                }
            }
        }
        false
    }

    /// Moves a finished task's sandbox to the trash and deletes it; false if it stays.
    async fn remove_sandbox(&self, id: &TaskId, why: &str) -> bool {
        if self.maybe_running(id).await {
            return false;
        }
        let trash = self.work_dir.join(TRASH);
        if let Err(error) = std::fs::create_dir_all(&trash) {
            tracing::warn!(path = %trash.display(), %error, "cannot create the sandbox trash");
            return false;
        }
        let target = trash.join(format!(
            "{}.{}",
            id.0,
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        ));
        {
            // Checked and moved under the table's lock: a task starting now keeps its sandbox.
            let tasks = lock(&self.tasks);
            if tasks.get(id).is_some_and(|task| !task.state.is_terminal()) {
                return false;
            }
            if let Err(error) = std::fs::rename(self.sandbox(id), &target) {
                tracing::warn!(task.id = %id, %error, "cannot remove a finished task's sandbox");
                return false;
            }
        }
        tracing::info!(task.id = %id, why, "removed the sandbox of a finished task");
        delete(target).await;
        true
    }

    /// Deletes what an interrupted sweep left in the trash.
    async fn empty_trash(&self) {
        let Ok(entries) = std::fs::read_dir(self.work_dir.join(TRASH)) else {
            return;
        };
        for entry in entries.flatten() {
            delete(entry.path()).await;
        }
    }
}

async fn delete(path: PathBuf) {
    let shown = path.display().to_string();
    let removed = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(&path)).await;
    if let Ok(Err(error)) = removed {
        if error.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!(path = shown, %error, "cannot delete a removed sandbox");
        }
    }
}

/// Marks a sandbox's end: its modification time becomes now (the age after a restart).
pub(super) fn touch(sandbox: &Path) {
    let touched = std::fs::File::open(sandbox).and_then(|dir| dir.set_modified(SystemTime::now()));
    if let Err(error) = touched {
        if error.kind() != std::io::ErrorKind::NotFound {
            tracing::debug!(path = %sandbox.display(), %error, "cannot mark the sandbox's end");
        }
    }
}

//! The status journal: every status update gets the next sequence number and is appended
//! (fsynced) to `<work-dir>/status.journal` before it is sent. Updates stay until the master
//! acknowledges them; then the file is rewritten atomically without them.
//!
//! File format: one JSON object per line, either `{"acked":N}` (everything up to `N` was
//! acknowledged; written first by every compaction, so sequence numbers stay monotonic even
//! when nothing is pending) or `{"update":{...}}` (a [`StatusUpdate`]). A torn last line from a
//! crash is skipped and the file is rewritten clean on open.

use orch_core::protocol::StatusUpdate;
use orch_fs::{sync_dir, write_atomic};
use std::collections::VecDeque;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The journal file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// An I/O operation on the journal failed.
    #[error("status journal {path}: cannot {action}")]
    Io {
        /// The journal file.
        path: PathBuf,
        /// What was being done.
        action: &'static str,
        /// The cause.
        source: std::io::Error,
    },
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
enum Line {
    #[serde(rename = "acked")]
    Acked(u64),
    #[serde(rename = "update")]
    Update(StatusUpdate),
}

/// The durable queue of unacknowledged status updates.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: std::fs::File,
    pending: VecDeque<StatusUpdate>,
    last_seq: u64,
    acked: u64,
}

impl Journal {
    /// Opens (or creates) the journal at `path` and loads the unacknowledged updates.
    pub fn open(path: &Path) -> Result<Self, JournalError> {
        let io = |action| {
            move |source| JournalError::Io {
                path: path.to_owned(),
                action,
                source,
            }
        };
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(error) => return Err(io("read")(error)),
        };
        let mut acked = 0;
        let mut updates = Vec::new();
        for (number, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<Line>(line) {
                Ok(Line::Acked(through)) => acked = acked.max(through),
                Ok(Line::Update(update)) => updates.push(update),
                Err(error) => tracing::warn!(
                    path = %path.display(),
                    line = number + 1,
                    %error,
                    "skipping an unreadable status journal line (torn write?)"
                ),
            }
        }
        let last_seq = updates.iter().map(|u| u.seq).fold(acked, u64::max);
        updates.retain(|u| u.seq > acked);
        updates.sort_by_key(|u| u.seq);
        updates.dedup_by_key(|u| u.seq);
        let pending: VecDeque<StatusUpdate> = updates.into();
        // Rewrite clean (drops torn lines and acknowledged entries), then append from there.
        write_atomic(path, &render(acked, &pending)).map_err(io("rewrite"))?;
        let file = std::fs::OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(io("open"))?;
        Ok(Self {
            path: path.to_owned(),
            file,
            pending,
            last_seq,
            acked,
        })
    }

    /// Gives `update` the next sequence number and appends it durably. Returns the update as
    /// journaled.
    pub fn append(&mut self, mut update: StatusUpdate) -> Result<StatusUpdate, JournalError> {
        update.seq = self.last_seq + 1;
        let mut line =
            serde_json::to_vec(&Line::Update(update.clone())).map_err(|e| JournalError::Io {
                path: self.path.clone(),
                action: "encode an update",
                source: e.into(),
            })?;
        line.push(b'\n');
        self.file
            .write_all(&line)
            .and_then(|()| self.file.sync_data())
            .map_err(|source| JournalError::Io {
                path: self.path.clone(),
                action: "append",
                source,
            })?;
        self.last_seq = update.seq;
        self.pending.push_back(update.clone());
        Ok(update)
    }

    /// Up to `max` unacknowledged updates, oldest first.
    pub fn pending(&self, max: usize) -> Vec<StatusUpdate> {
        self.pending.iter().take(max).cloned().collect()
    }

    /// Every unacknowledged update.
    pub fn all_pending(&self) -> impl Iterator<Item = &StatusUpdate> {
        self.pending.iter()
    }

    /// The sequence number of the latest update ever journaled (0 before the first).
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// The highest acknowledged sequence number.
    pub fn acked(&self) -> u64 {
        self.acked
    }

    /// Drops every update with `seq <= through` and rewrites the file without them.
    pub fn ack(&mut self, through: u64) -> Result<(), JournalError> {
        let through = through.min(self.last_seq);
        if through <= self.acked {
            return Ok(());
        }
        let before = self.pending.len();
        self.pending.retain(|u| u.seq > through);
        self.acked = through;
        if self.pending.len() == before {
            return Ok(());
        }
        let io = |action| {
            let path = self.path.clone();
            move |source| JournalError::Io {
                path,
                action,
                source,
            }
        };
        write_atomic(&self.path, &render(self.acked, &self.pending)).map_err(io("compact"))?;
        self.file = std::fs::OpenOptions::new()
            .append(true)
            .open(&self.path)
            .map_err(io("reopen"))?;
        if let Some(dir) = self.path.parent() {
            sync_dir(dir).map_err(io("sync its directory"))?;
        }
        Ok(())
    }
}

fn render(acked: u64, pending: &VecDeque<StatusUpdate>) -> Vec<u8> {
    let mut out = Vec::new();
    let lines =
        std::iter::once(Line::Acked(acked)).chain(pending.iter().cloned().map(Line::Update));
    for line in lines {
        if let Ok(bytes) = serde_json::to_vec(&line) {
            out.extend_from_slice(&bytes);
            out.push(b'\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use orch_core::model::{TaskId, TaskState, Timestamp};

    fn update(task: &str, state: TaskState) -> StatusUpdate {
        StatusUpdate {
            seq: 0,
            task_id: TaskId(task.into()),
            state,
            message: String::new(),
            reason: None,
            timestamp: Timestamp::from_millis(1_000),
            ip_addresses: vec![],
            health: None,
        }
    }

    fn seqs(journal: &Journal) -> Vec<u64> {
        journal.pending(usize::MAX).iter().map(|u| u.seq).collect()
    }

    #[test]
    fn appends_number_updates_and_survive_a_restart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("status.journal");
        let mut journal = Journal::open(&path).expect("open");
        assert_eq!(journal.last_seq(), 0);
        for state in [TaskState::Starting, TaskState::Running, TaskState::Finished] {
            journal.append(update("a", state)).expect("append");
        }
        assert_eq!(seqs(&journal), vec![1, 2, 3]);
        drop(journal);

        let reopened = Journal::open(&path).expect("reopen");
        assert_eq!(seqs(&reopened), vec![1, 2, 3]);
        let states: Vec<TaskState> = reopened.pending(10).iter().map(|u| u.state).collect();
        assert_eq!(
            states,
            vec![TaskState::Starting, TaskState::Running, TaskState::Finished]
        );
        assert_eq!(reopened.pending(2).len(), 2);
    }

    #[test]
    fn acks_compact_and_sequence_numbers_continue_across_restarts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("status.journal");
        let mut journal = Journal::open(&path).expect("open");
        for _ in 0..4 {
            journal
                .append(update("a", TaskState::Running))
                .expect("append");
        }
        journal.ack(2).expect("ack");
        assert_eq!(seqs(&journal), vec![3, 4]);
        let text = std::fs::read_to_string(&path).expect("read");
        assert_eq!(text.lines().count(), 3, "{text}");
        // Acknowledging everything leaves only the marker, and numbering goes on.
        journal.ack(4).expect("ack");
        assert!(seqs(&journal).is_empty());
        drop(journal);

        let mut reopened = Journal::open(&path).expect("reopen");
        assert!(seqs(&reopened).is_empty());
        assert_eq!(reopened.last_seq(), 4);
        let next = reopened
            .append(update("b", TaskState::Starting))
            .expect("append");
        assert_eq!(next.seq, 5);
        // A stale or repeated ack changes nothing.
        reopened.ack(3).expect("ack");
        assert_eq!(seqs(&reopened), vec![5]);
    }

    #[test]
    fn a_torn_last_line_is_skipped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("status.journal");
        let mut journal = Journal::open(&path).expect("open");
        journal
            .append(update("a", TaskState::Running))
            .expect("append");
        drop(journal);
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .expect("open");
        file.write_all(b"{\"update\":{\"seq\":2,\"task_")
            .expect("write");
        drop(file);

        let mut reopened = Journal::open(&path).expect("reopen");
        assert_eq!(seqs(&reopened), vec![1]);
        let next = reopened
            .append(update("a", TaskState::Failed))
            .expect("append");
        assert_eq!(next.seq, 2);
        drop(reopened);
        assert_eq!(seqs(&Journal::open(&path).expect("again")), vec![1, 2]);
    }
}

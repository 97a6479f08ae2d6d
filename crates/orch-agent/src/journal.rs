//! The status journal: every status update gets the next sequence number and is appended
//! (fsynced) to `<work-dir>/status.journal`; only then may it be sent. Updates stay until the
//! master acknowledges them; then the file is rewritten atomically without them.
//!
//! File format: one JSON object per line, either `{"acked":N}` (everything up to `N` was
//! acknowledged; written first by every compaction, so sequence numbers stay monotonic even
//! when nothing is pending) or `{"update":{...}}` (a [`StatusUpdate`]).
//!
//! Faults:
//! - A write that fails (full disk, I/O error) loses nothing: the update keeps its number and
//!   waits in memory, unsent, until [`Journal::flush`] (called by every append and retried by
//!   the status sender with backoff) writes it.
//! - A torn write never swallows the next record: the file is cut back to the end of its last
//!   whole record on open and before writing again after a failed write.
//! - A line that does not parse is skipped with a warning; the lines after it are read, and a
//!   record glued behind a torn write (by older versions) is salvaged.

use orch_core::protocol::StatusUpdate;
use orch_fs::{sync_dir, write_atomic};
use std::collections::VecDeque;
use std::fs::File;
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

/// How each line of a journal starts.
const LINE_STARTS: [&[u8]; 2] = [b"{\"update\":", b"{\"acked\":"];

/// The durable queue of unacknowledged status updates.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    /// Open for appending; `None` after a failed reopen (the next flush reopens it).
    file: Option<File>,
    /// Where the file's last whole record ends: anything after it is a torn write.
    whole_len: u64,
    /// A write failed since the last good one: cut the file to `whole_len` before the next.
    torn: bool,
    /// Written durably, not yet acknowledged: what may be sent.
    pending: VecDeque<StatusUpdate>,
    /// Numbered but not yet written (a write failed): kept, never sent before it is written.
    unwritten: VecDeque<StatusUpdate>,
    last_seq: u64,
    acked: u64,
}

fn io_error(path: &Path, action: &'static str) -> impl FnOnce(std::io::Error) -> JournalError {
    let path = path.to_owned();
    move |source| JournalError::Io {
        path,
        action,
        source,
    }
}

/// What a journal file holds.
#[derive(Debug, Default)]
struct Parsed {
    acked: u64,
    updates: Vec<StatusUpdate>,
    /// Bytes up to the end of the last whole (newline-terminated) line.
    whole_len: usize,
    /// Lines skipped or salvaged.
    damaged: usize,
}

fn parse(path: &Path, bytes: &[u8]) -> Parsed {
    let mut parsed = Parsed::default();
    let mut number = 0;
    while let Some(end) = bytes[parsed.whole_len..].iter().position(|b| *b == b'\n') {
        let line = &bytes[parsed.whole_len..parsed.whole_len + end];
        parsed.whole_len += end + 1;
        number += 1;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let record = match serde_json::from_slice::<Line>(line) {
            Ok(record) => Some(record),
            Err(error) => {
                parsed.damaged += 1;
                let salvaged = salvage(line);
                tracing::warn!(
                    path = %path.display(),
                    line = number,
                    %error,
                    salvaged = salvaged.is_some(),
                    "skipping an unreadable status journal line"
                );
                salvaged
            }
        };
        match record {
            Some(Line::Acked(through)) => parsed.acked = parsed.acked.max(through),
            Some(Line::Update(update)) => parsed.updates.push(update),
            None => {}
        }
    }
    if parsed.whole_len < bytes.len() {
        tracing::warn!(
            path = %path.display(),
            bytes = bytes.len() - parsed.whole_len,
            "dropping a torn write at the end of the status journal"
        );
    }
    parsed
}

/// The last record that starts inside a damaged line and runs to its end (a torn write
/// followed, on the same line, by a whole record).
fn salvage(line: &[u8]) -> Option<Line> {
    (1..line.len()).rev().find_map(|at| {
        let rest = &line[at..];
        LINE_STARTS
            .iter()
            .any(|start| rest.starts_with(start))
            .then(|| serde_json::from_slice::<Line>(rest).ok())
            .flatten()
    })
}

fn open_append(path: &Path) -> std::io::Result<File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
}

impl Journal {
    /// Opens (or creates) the journal at `path` and loads the unacknowledged updates. A torn
    /// write at its end is cut off; damaged lines are skipped (and dropped by a rewrite, when
    /// the disk allows one).
    pub fn open(path: &Path) -> Result<Self, JournalError> {
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(error) => return Err(io_error(path, "read")(error)),
        };
        let parsed = parse(path, &bytes);
        let acked = parsed.acked;
        let last_seq = parsed.updates.iter().map(|u| u.seq).fold(acked, u64::max);
        let mut updates = parsed.updates;
        let total = updates.len();
        updates.retain(|u| u.seq > acked);
        let stale = total - updates.len();
        updates.sort_by_key(|u| u.seq);
        updates.dedup_by_key(|u| u.seq);
        let existed = path.exists();
        let file = open_append(path).map_err(io_error(path, "open"))?;
        let whole_len = u64::try_from(parsed.whole_len).unwrap_or(u64::MAX);
        if whole_len < u64::try_from(bytes.len()).unwrap_or(u64::MAX) {
            file.set_len(whole_len)
                .and_then(|()| file.sync_data())
                .map_err(io_error(path, "cut off a torn write"))?;
        }
        if !existed {
            if let Some(dir) = path.parent() {
                sync_dir(dir).map_err(io_error(path, "sync its directory"))?;
            }
        }
        let mut journal = Self {
            path: path.to_owned(),
            file: Some(file),
            whole_len,
            torn: false,
            pending: updates.into(),
            unwritten: VecDeque::new(),
            last_seq,
            acked,
        };
        if parsed.damaged > 0 || stale > 0 {
            // Tidy up, if the disk allows; the file as it is reads back the same.
            if let Err(error) = journal.compact() {
                tracing::warn!(
                    error = &error as &dyn std::error::Error,
                    "cannot rewrite the status journal; keeping it as it is"
                );
            }
        }
        Ok(journal)
    }

    /// Gives `update` the next sequence number and tries to write it (and any update still
    /// unwritten) durably. The numbered update is returned either way: when the write fails
    /// it stays in memory, unsent, until a later [`flush`](Self::flush) succeeds.
    pub fn append(&mut self, mut update: StatusUpdate) -> (StatusUpdate, Result<(), JournalError>) {
        update.seq = self.last_seq + 1;
        self.last_seq = update.seq;
        self.unwritten.push_back(update.clone());
        (update, self.flush())
    }

    /// Writes the updates a failed write left in memory, in order, after cutting off
    /// whatever that write left in the file. Nothing to do when none wait.
    pub fn flush(&mut self) -> Result<(), JournalError> {
        if self.unwritten.is_empty() {
            return Ok(());
        }
        let mut bytes = Vec::new();
        for update in &self.unwritten {
            let line = serde_json::to_vec(&Line::Update(update.clone()))
                .map_err(|e| io_error(&self.path, "encode an update")(e.into()))?;
            bytes.extend_from_slice(&line);
            bytes.push(b'\n');
        }
        let written = self.write_whole(&bytes);
        match written {
            Ok(()) => {
                self.whole_len += u64::try_from(bytes.len()).unwrap_or(u64::MAX);
                self.pending.extend(self.unwritten.drain(..));
                Ok(())
            }
            Err(error) => {
                self.torn = true;
                Err(error)
            }
        }
    }

    fn write_whole(&mut self, bytes: &[u8]) -> Result<(), JournalError> {
        let file = match &mut self.file {
            Some(file) => file,
            None => self
                .file
                .insert(open_append(&self.path).map_err(io_error(&self.path, "reopen"))?),
        };
        if self.torn {
            file.set_len(self.whole_len)
                .map_err(io_error(&self.path, "cut off a failed write"))?;
            self.torn = false;
        }
        file.write_all(bytes)
            .and_then(|()| file.sync_data())
            .map_err(io_error(&self.path, "append"))
    }

    /// Up to `max` unacknowledged updates that are written, oldest first: what may be sent.
    pub fn pending(&self, max: usize) -> Vec<StatusUpdate> {
        self.pending.iter().take(max).cloned().collect()
    }

    /// Every unacknowledged update, written or still waiting to be.
    pub fn all_pending(&self) -> impl Iterator<Item = &StatusUpdate> {
        self.pending.iter().chain(self.unwritten.iter())
    }

    /// How many updates wait in memory for a write to succeed.
    pub fn unwritten(&self) -> usize {
        self.unwritten.len()
    }

    /// The sequence number of the latest update ever journaled (0 before the first).
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// The highest acknowledged sequence number.
    pub fn acked(&self) -> u64 {
        self.acked
    }

    /// Drops every update with `seq <= through` and rewrites the file without them. Only
    /// written updates can be acknowledged (only they were sent).
    pub fn ack(&mut self, through: u64) -> Result<(), JournalError> {
        let written = self.pending.back().map_or(self.acked, |u| u.seq);
        let through = through.min(written);
        if through <= self.acked {
            return Ok(());
        }
        let before = self.pending.len();
        self.pending.retain(|u| u.seq > through);
        self.acked = through;
        if self.pending.len() == before {
            return Ok(());
        }
        self.compact()
    }

    /// Rewrites the file as the acknowledged mark and the written updates (the unwritten
    /// ones follow with the next flush).
    fn compact(&mut self) -> Result<(), JournalError> {
        let rendered = render(self.acked, &self.pending);
        write_atomic(&self.path, &rendered).map_err(io_error(&self.path, "compact"))?;
        self.whole_len = u64::try_from(rendered.len()).unwrap_or(u64::MAX);
        self.torn = false;
        match open_append(&self.path) {
            Ok(file) => self.file = Some(file),
            Err(error) => {
                self.file = None;
                return Err(io_error(&self.path, "reopen")(error));
            }
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

    /// Appends and expects the write to succeed.
    fn add(journal: &mut Journal, task: &str, state: TaskState) -> StatusUpdate {
        let (update, written) = journal.append(update(task, state));
        written.expect("append");
        update
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
            add(&mut journal, "a", state);
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
            add(&mut journal, "a", TaskState::Running);
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
        let next = add(&mut reopened, "b", TaskState::Starting);
        assert_eq!(next.seq, 5);
        // A stale or repeated ack changes nothing.
        reopened.ack(3).expect("ack");
        assert_eq!(seqs(&reopened), vec![5]);
    }

    /// Every line of the file parses: no torn or damaged line is left.
    fn clean(path: &Path) -> bool {
        std::fs::read_to_string(path)
            .expect("read")
            .lines()
            .all(|line| serde_json::from_str::<Line>(line).is_ok())
    }

    #[test]
    fn a_torn_write_never_swallows_the_records_after_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("status.journal");
        let mut journal = Journal::open(&path).expect("open");
        add(&mut journal, "a", TaskState::Starting);
        add(&mut journal, "a", TaskState::Running);
        drop(journal);
        // A crash in the middle of the third append.
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .expect("open");
        file.write_all(b"{\"update\":{\"seq\":3,\"task_id\":\"a\",\"st")
            .expect("write");
        drop(file);

        let mut journal = Journal::open(&path).expect("reopen");
        assert!(clean(&path), "the torn write was cut off");
        for state in [TaskState::Failed, TaskState::Starting] {
            add(&mut journal, "a", state);
        }
        drop(journal);
        let reopened = Journal::open(&path).expect("again");
        assert_eq!(seqs(&reopened), vec![1, 2, 3, 4]);
        let states: Vec<TaskState> = reopened.pending(10).iter().map(|u| u.state).collect();
        assert_eq!(
            states,
            vec![
                TaskState::Starting,
                TaskState::Running,
                TaskState::Failed,
                TaskState::Starting
            ]
        );
    }

    #[test]
    fn a_damaged_line_in_the_middle_is_skipped_and_the_records_after_it_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("status.journal");
        let line = |seq: u64| {
            let mut update = update("a", TaskState::Running);
            update.seq = seq;
            serde_json::to_string(&Line::Update(update)).expect("encode")
        };
        let text = [
            "{\"acked\":0}".to_owned(),
            line(1),
            "\u{0}\u{0}garbage, not JSON".to_owned(),
            line(2),
            // A torn write with the next record glued to it, as older agents left them.
            format!("{{\"update\":{{\"seq\":3,\"task_{}", line(4)),
            line(5),
            String::new(),
        ]
        .join("\n");
        let mut bytes = text.into_bytes();
        bytes.extend_from_slice(b"\xff\xfe not UTF-8\n");
        bytes.extend_from_slice(line(6).as_bytes());
        bytes.push(b'\n');
        std::fs::write(&path, bytes).expect("write");

        let mut journal = Journal::open(&path).expect("open");
        assert_eq!(seqs(&journal), vec![1, 2, 4, 5, 6]);
        assert!(clean(&path), "the damaged lines were dropped by a rewrite");
        assert_eq!(add(&mut journal, "a", TaskState::Finished).seq, 7);
        drop(journal);
        assert_eq!(
            seqs(&Journal::open(&path).expect("reopen")),
            vec![1, 2, 4, 5, 6, 7]
        );
    }

    /// A tmpfs of `size` at `dir`, unmounted on drop; `None` where mounting is not allowed.
    struct Tmpfs(PathBuf);

    impl Tmpfs {
        fn mount(dir: &Path, size: &str) -> Option<Self> {
            let status = std::process::Command::new("mount")
                .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
                .arg(dir)
                .stderr(std::process::Stdio::null())
                .status()
                .ok()?;
            status.success().then(|| Self(dir.to_owned()))
        }
    }

    impl Drop for Tmpfs {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(&self.0)
                .status();
        }
    }

    #[test]
    fn a_full_disk_delays_updates_but_loses_none() {
        let dir = tempfile::tempdir().expect("tempdir");
        let small = dir.path().join("small");
        std::fs::create_dir(&small).expect("mkdir");
        let Some(_mounted) = Tmpfs::mount(&small, "64k") else {
            println!("NOTE: cannot mount a tmpfs (not root?); full-disk journal test skipped");
            return;
        };
        let path = small.join("status.journal");
        let mut journal = Journal::open(&path).expect("open");
        add(&mut journal, "a", TaskState::Starting);
        // Fill the file system.
        let filler = small.join("filler");
        let mut file = std::fs::File::create(&filler).expect("create");
        while file.write_all(&[b'x'; 4096]).is_ok() {}
        drop(file);

        // Appends fail once the journal's last page is full; the first of them leaves part
        // of its line behind.
        let mut failed = Vec::new();
        for _ in 0..60 {
            let (update, written) = journal.append(update("a", TaskState::Running));
            if written.is_err() {
                failed.push(update.seq);
            }
        }
        let first = *failed.first().expect("the disk filled up");
        assert_eq!(failed, (first..=61).collect::<Vec<_>>());
        assert_eq!(journal.unwritten(), failed.len());
        // Nothing unwritten is offered for sending; recovery still sees it.
        assert_eq!(seqs(&journal), (1..first).collect::<Vec<_>>());
        assert_eq!(journal.all_pending().count(), 61);
        assert!(journal.flush().is_err(), "still full");
        let on_disk = std::fs::read(&path).expect("read");
        if journal.whole_len % 4096 != 0 {
            // The failed write filled the rest of the last page with part of a line.
            assert!(
                u64::try_from(on_disk.len()).expect("fits") > journal.whole_len,
                "no torn write to cut off"
            );
        }

        std::fs::remove_file(&filler).expect("free space");
        journal.flush().expect("written once there is room");
        assert_eq!(journal.unwritten(), 0);
        assert_eq!(seqs(&journal), (1..=61).collect::<Vec<_>>());
        assert_eq!(add(&mut journal, "a", TaskState::Finished).seq, 62);
        drop(journal);
        assert!(clean(&path));
        let reopened = Journal::open(&path).expect("reopen");
        assert_eq!(seqs(&reopened), (1..=62).collect::<Vec<_>>());
    }
}

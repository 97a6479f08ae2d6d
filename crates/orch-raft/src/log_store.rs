//! The Raft log, vote and committed marker in redb.
//!
//! Appends go to a writer thread, which commits everything queued in one redb transaction
//! (one fsync) and only then reports the entries durable through their callbacks. This keeps
//! blocking disk work off the async workers, and lets the committed marker, which openraft
//! saves on every commit advance, ride along with the next log commit instead of costing an
//! fsync of its own (a marker lost in a crash only means re-applying less on restart).
//! openraft 0.9 awaits each append's callback before its next step, so a batch rarely holds
//! more than one append; the store still honours the full `RaftLogStorage::append` contract
//! (entries readable when `append` returns, durable when the callback fires), serving
//! unflushed entries from memory, so it stays correct for a caller that pipelines appends.
//!
//! Truncate and purge go through the same queue, so they take effect in order with appends,
//! and they return only once written. Votes are written and fsynced before `save_vote`
//! returns.

use super::{codec, Entry, StorageError, StoreIo, TypeConfig};
use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{LogId, OptionalSend, RaftLogReader, StorageIOError, Vote};
use orch_core::model::MasterId;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::oneshot;

const LOGS: TableDefinition<u64, &[u8]> = TableDefinition::new("logs");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("log_meta");

const VOTE: &str = "vote";
const COMMITTED: &str = "committed";
const LAST_PURGED: &str = "last_purged";

const WRITER_STOPPED: &str = "the raft log writer has stopped";

type Boxed = Box<dyn std::error::Error + Send + Sync>;

/// An encoded entry; shared between the unflushed map and the writer's queue.
type Encoded = Arc<[u8]>;

/// Work for the writer thread, done in the order it was queued.
enum Job {
    /// Write these entries, then report them durable.
    Append {
        entries: Vec<(u64, Encoded)>,
        callback: LogFlushed<TypeConfig>,
    },
    /// Delete every entry from this index on.
    Truncate {
        from: u64,
        done: oneshot::Sender<Result<(), String>>,
    },
    /// Delete every entry up to this log id and remember it as purged.
    Purge {
        upto: LogId<MasterId>,
        done: oneshot::Sender<Result<(), String>>,
    },
}

/// The durable Raft log. Clones share the database, the unflushed entries and the writer.
#[derive(Clone)]
pub struct LogStore {
    db: Arc<Database>,
    /// Appended entries the writer has not flushed yet, by index.
    unflushed: Arc<Mutex<BTreeMap<u64, Encoded>>>,
    writer: mpsc::Sender<Job>,
    /// The newest committed log id (encoded) not yet written; the writer stores it with the
    /// next batch, so it never costs a commit of its own.
    committed_slot: Arc<Mutex<Option<Vec<u8>>>>,
    /// The last committed index openraft saved, for metrics.
    committed_index: Arc<AtomicU64>,
}

impl Debug for LogStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogStore").finish_non_exhaustive()
    }
}

impl LogStore {
    /// Opens the log tables in `db`, creating them when new, and starts the writer thread
    /// (it ends when the last clone of the store is dropped).
    pub fn open(db: Arc<Database>) -> Result<Self, Boxed> {
        let txn = db.begin_write()?;
        txn.open_table(LOGS)?;
        txn.open_table(META)?;
        txn.commit()?;
        let unflushed: Arc<Mutex<BTreeMap<u64, Encoded>>> = Arc::default();
        let (writer, jobs) = mpsc::channel();
        let committed_slot: Arc<Mutex<Option<Vec<u8>>>> = Arc::default();
        let shared = Shared {
            db: Arc::clone(&db),
            unflushed: Arc::clone(&unflushed),
            committed_slot: Arc::clone(&committed_slot),
        };
        std::thread::Builder::new()
            .name("raft-log-writer".into())
            .spawn(move || write_loop(&shared, &jobs))?;
        let store = Self {
            db,
            unflushed,
            writer,
            committed_slot,
            committed_index: Arc::default(),
        };
        let committed: Option<Option<LogId<MasterId>>> = store.read_meta(COMMITTED)?;
        let index = committed.flatten().map_or(0, |id| id.index);
        store.committed_index.store(index, Ordering::Relaxed);
        Ok(store)
    }

    /// The commit index as last saved by Raft (0 before any commit), updated live.
    pub fn committed_index(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.committed_index)
    }

    fn unflushed(&self) -> MutexGuard<'_, BTreeMap<u64, Encoded>> {
        locked(&self.unflushed)
    }

    fn read_meta<T: serde::de::DeserializeOwned>(&self, key: &str) -> Result<Option<T>, Boxed> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(META)?;
        match table.get(key)? {
            Some(bytes) => Ok(Some(codec::decode(bytes.value())?)),
            None => Ok(None),
        }
    }

    fn write_meta<T: serde::Serialize>(&self, key: &str, value: &T) -> Result<(), Boxed> {
        let bytes = codec::encode(value)?;
        let txn = self.db.begin_write()?;
        txn.open_table(META)?.insert(key, bytes.as_slice())?;
        txn.commit()?;
        Ok(())
    }

    fn last_flushed_id(&self) -> Result<Option<LogId<MasterId>>, Boxed> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(LOGS)?;
        let last = match table.last()? {
            Some((_, bytes)) => Some(codec::decode::<Entry>(bytes.value())?.log_id),
            None => None,
        };
        Ok(last)
    }

    /// Queues `job` and waits until the writer has done it.
    async fn queue_and_wait(
        &self,
        job: impl FnOnce(oneshot::Sender<Result<(), String>>) -> Job,
    ) -> Result<(), Boxed> {
        let (done, finished) = oneshot::channel();
        self.writer.send(job(done)).map_err(|_| WRITER_STOPPED)?;
        finished
            .await
            .map_err(|_| WRITER_STOPPED)?
            .map_err(Boxed::from)
    }
}

/// What the writer thread shares with the store.
struct Shared {
    db: Arc<Database>,
    unflushed: Arc<Mutex<BTreeMap<u64, Encoded>>>,
    committed_slot: Arc<Mutex<Option<Vec<u8>>>>,
}

fn locked<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The writer thread: take every queued job, do them all in one transaction, then report.
fn write_loop(shared: &Shared, jobs: &mpsc::Receiver<Job>) {
    while let Ok(first) = jobs.recv() {
        let batch: Vec<Job> = std::iter::once(first).chain(jobs.try_iter()).collect();
        let committed = locked(&shared.committed_slot).take();
        let result =
            write_batch(&shared.db, &batch, committed.as_deref()).map_err(|e| e.to_string());
        if result.is_ok() {
            let mut unflushed = locked(&shared.unflushed);
            for job in &batch {
                if let Job::Append { entries, .. } = job {
                    for (index, bytes) in entries {
                        // A later append may have replaced this index; keep that one.
                        if unflushed
                            .get(index)
                            .is_some_and(|current| Arc::ptr_eq(current, bytes))
                        {
                            unflushed.remove(index);
                        }
                    }
                }
            }
        }
        for job in batch {
            match job {
                Job::Append { callback, .. } => {
                    callback.log_io_completed(result.clone().map_err(std::io::Error::other));
                }
                Job::Truncate { done, .. } | Job::Purge { done, .. } => {
                    let _ = done.send(result.clone());
                }
            }
        }
    }
}

fn write_batch(db: &Database, batch: &[Job], committed: Option<&[u8]>) -> Result<(), Boxed> {
    let txn: WriteTransaction = db.begin_write()?;
    {
        let mut logs = txn.open_table(LOGS)?;
        let mut meta = txn.open_table(META)?;
        for job in batch {
            match job {
                Job::Append { entries, .. } => {
                    for (index, bytes) in entries {
                        logs.insert(index, &bytes[..])?;
                    }
                }
                Job::Truncate { from, .. } => {
                    logs.retain_in(*from.., |_, _| false)?;
                }
                Job::Purge { upto, .. } => {
                    logs.retain_in(..=upto.index, |_, _| false)?;
                    meta.insert(LAST_PURGED, codec::encode(upto)?.as_slice())?;
                }
            }
        }
        if let Some(committed) = committed {
            meta.insert(COMMITTED, committed)?;
        }
    }
    txn.commit()?;
    Ok(())
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let bounds = (cloned(range.start_bound()), cloned(range.end_bound()));
        let read = || -> Result<Vec<Entry>, Boxed> {
            // Take the unflushed entries first: one flushed meanwhile is then found on disk.
            let pending: Vec<(u64, Encoded)> = self
                .unflushed()
                .range(bounds)
                .map(|(i, b)| (*i, Arc::clone(b)))
                .collect();
            let mut encoded: BTreeMap<u64, Encoded> = BTreeMap::new();
            let txn = self.db.begin_read()?;
            let table = txn.open_table(LOGS)?;
            for item in table.range::<u64>(bounds)? {
                let (index, bytes) = item?;
                encoded.insert(index.value(), Arc::from(bytes.value()));
            }
            encoded.extend(pending);
            encoded
                .values()
                .map(|bytes| Ok(codec::decode(bytes)?))
                .collect()
        };
        read().map_err(|e| StorageIOError::read_logs(&StoreIo(e)).into())
    }
}

fn cloned(bound: Bound<&u64>) -> Bound<u64> {
    match bound {
        Bound::Included(x) => Bound::Included(*x),
        Bound::Excluded(x) => Bound::Excluded(*x),
        Bound::Unbounded => Bound::Unbounded,
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let last_purged: Option<LogId<MasterId>> = self
            .read_meta(LAST_PURGED)
            .map_err(|e| StorageIOError::read(&StoreIo(e)))?;
        let last_unflushed = match self.unflushed().last_key_value() {
            Some((_, bytes)) => Some(
                codec::decode::<Entry>(bytes)
                    .map_err(|e| StorageIOError::read_logs(&e))?
                    .log_id,
            ),
            None => None,
        };
        let last = match last_unflushed {
            Some(id) => Some(id),
            None => self
                .last_flushed_id()
                .map_err(|e| StorageIOError::read_logs(&StoreIo(e)))?,
        };
        Ok(LogState {
            last_purged_log_id: last_purged,
            last_log_id: last.or(last_purged),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<MasterId>) -> Result<(), StorageError> {
        self.write_meta(VOTE, vote)
            .map_err(|e| StorageIOError::write_vote(&StoreIo(e)).into())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<MasterId>>, StorageError> {
        self.read_meta(VOTE)
            .map_err(|e| StorageIOError::read_vote(&StoreIo(e)).into())
    }

    /// Not awaited: a committed marker lost in a crash only means re-applying less of the
    /// log on restart; the leader re-establishes the commit index.
    async fn save_committed(
        &mut self,
        committed: Option<LogId<MasterId>>,
    ) -> Result<(), StorageError> {
        self.committed_index
            .store(committed.map_or(0, |id| id.index), Ordering::Relaxed);
        let bytes = codec::encode(&committed).map_err(|e| StorageIOError::write(&e))?;
        *locked(&self.committed_slot) = Some(bytes);
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<MasterId>>, StorageError> {
        let committed: Option<Option<LogId<MasterId>>> = self
            .read_meta(COMMITTED)
            .map_err(|e| StorageIOError::read(&StoreIo(e)))?;
        Ok(committed.flatten())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut encoded = Vec::new();
        for entry in entries {
            let bytes = codec::encode(&entry).map_err(|e| StorageIOError::write_logs(&e))?;
            encoded.push((entry.log_id.index, Encoded::from(bytes)));
        }
        // Insert and queue under one lock, so the queue order matches the map's history.
        let mut unflushed = self.unflushed();
        unflushed.extend(
            encoded
                .iter()
                .map(|(index, bytes)| (*index, Arc::clone(bytes))),
        );
        let queued = self.writer.send(Job::Append {
            entries: encoded,
            callback,
        });
        drop(unflushed);
        queued.map_err(|_| StorageIOError::write_logs(&StoreIo(WRITER_STOPPED.into())).into())
    }

    async fn truncate(&mut self, log_id: LogId<MasterId>) -> Result<(), StorageError> {
        self.unflushed().split_off(&log_id.index);
        let from = log_id.index;
        self.queue_and_wait(|done| Job::Truncate { from, done })
            .await
            .map_err(|e| StorageIOError::write_logs(&StoreIo(e)).into())
    }

    async fn purge(&mut self, log_id: LogId<MasterId>) -> Result<(), StorageError> {
        self.queue_and_wait(|done| Job::Purge { upto: log_id, done })
            .await
            .map_err(|e| StorageIOError::write_logs(&StoreIo(e)).into())
    }
}

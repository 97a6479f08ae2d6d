//! The Raft log, vote and committed marker in redb. Every write commits durably before it
//! is acknowledged.

use super::{Entry, StorageError, StoreIo, TypeConfig};
use crate::model::MasterId;
use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{LogId, OptionalSend, RaftLogReader, StorageIOError, Vote};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

const LOGS: TableDefinition<u64, &[u8]> = TableDefinition::new("logs");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("log_meta");

const VOTE: &str = "vote";
const COMMITTED: &str = "committed";
const LAST_PURGED: &str = "last_purged";

/// The durable Raft log. Clones share the database.
#[derive(Clone)]
pub struct LogStore {
    db: Arc<Database>,
    /// The last committed index openraft saved, for metrics.
    committed_index: Arc<AtomicU64>,
}

impl Debug for LogStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogStore").finish_non_exhaustive()
    }
}

type Boxed = Box<dyn std::error::Error + Send + Sync>;

impl LogStore {
    /// Opens the log tables in `db`, creating them when new.
    pub fn open(db: Arc<Database>) -> Result<Self, Boxed> {
        let txn = db.begin_write()?;
        txn.open_table(LOGS)?;
        txn.open_table(META)?;
        txn.commit()?;
        let store = Self {
            db,
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

    fn read_meta<T: serde::de::DeserializeOwned>(&self, key: &str) -> Result<Option<T>, Boxed> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(META)?;
        match table.get(key)? {
            Some(bytes) => Ok(Some(serde_json::from_slice(bytes.value())?)),
            None => Ok(None),
        }
    }

    fn write_meta<T: serde::Serialize>(&self, key: &str, value: &T) -> Result<(), Boxed> {
        let bytes = serde_json::to_vec(value)?;
        let txn = self.db.begin_write()?;
        txn.open_table(META)?.insert(key, bytes.as_slice())?;
        txn.commit()?;
        Ok(())
    }

    fn last_entry_id(&self) -> Result<Option<LogId<MasterId>>, Boxed> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(LOGS)?;
        let last = match table.last()? {
            Some((_, bytes)) => Some(serde_json::from_slice::<Entry>(bytes.value())?.log_id),
            None => None,
        };
        Ok(last)
    }

    fn append_entries(&self, entries: impl IntoIterator<Item = Entry>) -> Result<(), Boxed> {
        let txn = self.db.begin_write()?;
        {
            let mut table = txn.open_table(LOGS)?;
            for entry in entries {
                table.insert(entry.log_id.index, serde_json::to_vec(&entry)?.as_slice())?;
            }
        }
        txn.commit()?;
        Ok(())
    }

    /// Removes the entries with index >= `from` (truncate) or <= `upto` (purge).
    fn remove_range(
        &self,
        range: impl RangeBounds<u64>,
        purged: Option<&LogId<MasterId>>,
    ) -> Result<(), Boxed> {
        let txn = self.db.begin_write()?;
        {
            let mut table = txn.open_table(LOGS)?;
            table.retain_in(range, |_, _| false)?;
            if let Some(purged) = purged {
                txn.open_table(META)?
                    .insert(LAST_PURGED, serde_json::to_vec(purged)?.as_slice())?;
            }
        }
        txn.commit()?;
        Ok(())
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let read = || -> Result<Vec<Entry>, Boxed> {
            let txn = self.db.begin_read()?;
            let table = txn.open_table(LOGS)?;
            let bounds = (cloned(range.start_bound()), cloned(range.end_bound()));
            let mut entries = Vec::new();
            for item in table.range::<u64>(bounds)? {
                let (_, bytes) = item?;
                entries.push(serde_json::from_slice(bytes.value())?);
            }
            Ok(entries)
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
        let last = self
            .last_entry_id()
            .map_err(|e| StorageIOError::read_logs(&StoreIo(e)))?;
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

    async fn save_committed(
        &mut self,
        committed: Option<LogId<MasterId>>,
    ) -> Result<(), StorageError> {
        self.committed_index
            .store(committed.map_or(0, |id| id.index), Ordering::Relaxed);
        self.write_meta(COMMITTED, &committed)
            .map_err(|e| StorageIOError::write(&StoreIo(e)).into())
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
        match self.append_entries(entries) {
            Ok(()) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                callback.log_io_completed(Err(std::io::Error::other(e.to_string())));
                Err(StorageIOError::write_logs(&StoreIo(e)).into())
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId<MasterId>) -> Result<(), StorageError> {
        self.remove_range(log_id.index.., None)
            .map_err(|e| StorageIOError::write_logs(&StoreIo(e)).into())
    }

    async fn purge(&mut self, log_id: LogId<MasterId>) -> Result<(), StorageError> {
        self.remove_range(..=log_id.index, Some(&log_id))
            .map_err(|e| StorageIOError::write_logs(&StoreIo(e)).into())
    }
}

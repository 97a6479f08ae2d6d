//! The Raft state machine: [`ClusterState`] in memory, the last snapshot in a file.
//!
//! After each applied batch the new state is published on a `watch` channel; consumers get
//! an immutable `Arc<ClusterState>` (cheap: the state uses persistent maps).

use super::{codec, Entry, StorageError, StoreIo, TypeConfig};
use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    BasicNode, EntryPayload, LogId, OptionalSend, RaftSnapshotBuilder, SnapshotMeta,
    StorageIOError, StoredMembership,
};
use orch_core::model::MasterId;
use orch_core::state::{events, Applied, ClusterState, Event};
use std::io::{Cursor, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::{broadcast, watch};

type Meta = SnapshotMeta<MasterId, BasicNode>;

/// The state machine the masters replicate.
pub struct StateMachine {
    store: SnapshotStore,
    state: ClusterState,
    last_applied: Option<LogId<MasterId>>,
    last_membership: StoredMembership<MasterId, BasicNode>,
    published: watch::Sender<Arc<ClusterState>>,
    /// Marathon events of what was applied (received by the event stream on the leader).
    events: broadcast::Sender<Arc<Event>>,
    /// Distinguishes snapshots built at the same log id.
    snapshots_built: u64,
}

impl std::fmt::Debug for StateMachine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateMachine")
            .field("last_applied", &self.last_applied)
            .finish_non_exhaustive()
    }
}

type Boxed = Box<dyn std::error::Error + Send + Sync>;

impl StateMachine {
    /// Opens the state machine, restoring the snapshot stored at `snapshot_path` if any.
    pub fn open(
        snapshot_path: &Path,
        events: broadcast::Sender<Arc<Event>>,
    ) -> Result<(Self, watch::Receiver<Arc<ClusterState>>), crate::RaftStoreError> {
        let (published, receiver) = watch::channel(Arc::new(ClusterState::default()));
        let mut machine = Self {
            store: SnapshotStore {
                path: snapshot_path.to_owned(),
            },
            state: ClusterState::default(),
            last_applied: None,
            last_membership: StoredMembership::default(),
            published,
            events,
            snapshots_built: 0,
        };
        let stored = machine
            .store
            .read()
            .map_err(|e| match e.downcast::<SnapshotCorrupt>() {
                Ok(corrupt) => crate::RaftStoreError::SnapshotCorrupt(*corrupt),
                Err(e) => crate::RaftStoreError::Load(
                    StorageIOError::read_snapshot(None, &StoreIo(e)).into(),
                ),
            })?;
        if let Some((meta, data)) = stored {
            machine
                .restore(&meta, &data)
                .map_err(crate::RaftStoreError::Load)?;
        }
        Ok((machine, receiver))
    }

    fn restore(&mut self, meta: &Meta, data: &[u8]) -> Result<(), StorageError> {
        let state: ClusterState = codec::decode(data)
            .map_err(|e| StorageIOError::read_snapshot(Some(meta.signature()), &e))?;
        self.state = state;
        self.last_applied = meta.last_log_id;
        self.last_membership = meta.last_membership.clone();
        self.published.send_replace(Arc::new(self.state.clone()));
        Ok(())
    }
}

/// The current snapshot in its own file, `<data-dir>/snapshot`: the magic [`MAGIC`], the
/// SHA-256 of everything after it, an 8-byte little-endian length, the meta, then the state
/// (both in the `codec` encoding). A file whose checksum does not match is refused
/// ([`SnapshotCorrupt`]): its master must not serve or vote from it. Files of the earlier
/// format (no magic, no checksum) are still read. Written to a temporary file, fsynced and
/// renamed over the old one, so a crash leaves the old or the new snapshot, never a mix. Kept
/// out of the redb file so that writing a large snapshot never stalls log appends.
#[derive(Clone, Debug)]
struct SnapshotStore {
    path: PathBuf,
}

/// The first bytes of a snapshot file with a checksum.
const MAGIC: &[u8; 8] = b"ORCHSNP2";

/// A snapshot file that is truncated or whose checksum does not match its content.
#[derive(Debug, thiserror::Error)]
#[error("snapshot file {path} is corrupt: {why}")]
pub struct SnapshotCorrupt {
    /// The file.
    pub path: String,
    /// What is wrong with it.
    pub why: &'static str,
}

impl SnapshotStore {
    fn read(&self) -> Result<Option<(Meta, Vec<u8>)>, Boxed> {
        use sha2::Digest as _;
        let bytes = match std::fs::read(&self.path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let corrupt = |why| SnapshotCorrupt {
            path: self.path.display().to_string(),
            why,
        };
        let body = match bytes.strip_prefix(MAGIC) {
            Some(checked) => {
                let (sum, body) = checked
                    .split_at_checked(32)
                    .ok_or_else(|| corrupt("truncated"))?;
                if sha2::Sha256::digest(body).as_slice() != sum {
                    return Err(corrupt("its checksum does not match").into());
                }
                body
            }
            None => &bytes[..],
        };
        let header: [u8; 8] = body
            .get(..8)
            .and_then(|h| h.try_into().ok())
            .ok_or_else(|| corrupt("truncated"))?;
        let meta_end = usize::try_from(u64::from_le_bytes(header))?
            .checked_add(8)
            .ok_or_else(|| corrupt("truncated"))?;
        let meta = codec::decode(body.get(8..meta_end).ok_or_else(|| corrupt("truncated"))?)?;
        Ok(Some((meta, body[meta_end..].to_vec())))
    }

    fn write(&self, meta: &Meta, data: &[u8]) -> Result<(), StorageError> {
        use sha2::Digest as _;
        let write = || -> Result<(), Boxed> {
            let meta_bytes = codec::encode(meta)?;
            let length = u64::try_from(meta_bytes.len())?.to_le_bytes();
            let sum = sha2::Sha256::new()
                .chain_update(length)
                .chain_update(&meta_bytes)
                .chain_update(data)
                .finalize();
            orch_fs::write_atomic_with(&self.path, 0o644, |file| {
                file.write_all(MAGIC)?;
                file.write_all(&sum)?;
                file.write_all(&length)?;
                file.write_all(&meta_bytes)?;
                file.write_all(data)
            })?;
            Ok(())
        };
        write()
            .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), &StoreIo(e)).into())
    }
}

/// Builds a snapshot from a frozen copy of the state, off the apply path.
#[derive(Debug)]
pub struct SnapshotBuilder {
    store: SnapshotStore,
    state: ClusterState,
    last_applied: Option<LogId<MasterId>>,
    last_membership: StoredMembership<MasterId, BasicNode>,
    snapshot_id: String,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let data =
            codec::encode(&self.state).map_err(|e| StorageIOError::read_state_machine(&e))?;
        let meta = Meta {
            last_log_id: self.last_applied,
            last_membership: self.last_membership.clone(),
            snapshot_id: self.snapshot_id.clone(),
        };
        self.store.write(&meta, &data)?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> Result<
        (
            Option<LogId<MasterId>>,
            StoredMembership<MasterId, BasicNode>,
        ),
        StorageError,
    > {
        Ok((self.last_applied, self.last_membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Applied>, StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut results = Vec::new();
        for entry in entries {
            self.last_applied = Some(entry.log_id);
            let index = entry.log_id.index;
            let applied = match entry.payload {
                EntryPayload::Normal(command) => self.state.apply(index, command),
                EntryPayload::Blank => {
                    self.state.skip(index);
                    Applied::Nothing
                }
                EntryPayload::Membership(membership) => {
                    self.state.skip(index);
                    self.last_membership = StoredMembership::new(Some(entry.log_id), membership);
                    Applied::Nothing
                }
            };
            results.push(applied);
        }
        self.published.send_replace(Arc::new(self.state.clone()));
        if self.events.receiver_count() > 0 {
            let mut produced = Vec::new();
            for applied in &results {
                events(applied, &mut produced);
            }
            for event in produced {
                // Nobody listening is fine.
                let _ = self.events.send(Arc::new(event));
            }
        }
        Ok(results)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.snapshots_built += 1;
        let at = self
            .last_applied
            .map(|id| format!("{}-{}", id.leader_id, id.index))
            .unwrap_or_default();
        SnapshotBuilder {
            store: self.store.clone(),
            state: self.state.clone(),
            last_applied: self.last_applied,
            last_membership: self.last_membership.clone(),
            snapshot_id: format!("{at}-{}", self.snapshots_built),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &Meta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let data = snapshot.into_inner();
        self.restore(meta, &data)?;
        self.store.write(meta, &data)
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        let stored = self
            .store
            .read()
            .map_err(|e| StorageIOError::read_snapshot(None, &StoreIo(e)))?;
        Ok(stored.map(|(meta, data)| Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> Meta {
        Meta {
            last_log_id: None,
            last_membership: StoredMembership::default(),
            snapshot_id: "1".into(),
        }
    }

    #[test]
    fn a_snapshot_reads_back_and_a_flipped_byte_is_refused_by_its_checksum() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = SnapshotStore {
            path: dir.path().join("snapshot"),
        };
        let data = codec::encode(&ClusterState::default()).expect("encode");
        store.write(&meta(), &data).expect("write");
        let (read_meta, read_data) = store.read().expect("read").expect("a snapshot");
        assert_eq!((read_meta, read_data), (meta(), data));

        let mut bytes = std::fs::read(&store.path).expect("file");
        let last = bytes.len() - 1;
        bytes[last] ^= 0x40;
        std::fs::write(&store.path, &bytes).expect("corrupt it");
        let error = store.read().expect_err("refused");
        let corrupt = error
            .downcast::<SnapshotCorrupt>()
            .expect("a checksum error");
        assert_eq!(corrupt.why, "its checksum does not match");
        let (events, _) = broadcast::channel(1);
        let opened = StateMachine::open(&store.path, events);
        assert!(matches!(
            opened,
            Err(crate::RaftStoreError::SnapshotCorrupt(_))
        ));
    }
}

//! openraft glue: the type configuration, the durable log store (redb), the state machine
//! wrapper around [`ClusterState`], and the HTTP network between masters.
//!
//! Durability: log entries and votes are on disk (redb, fsync) before openraft is told so;
//! concurrent appends share one commit (see `log_store`). The state machine lives in memory
//! and is rebuilt on start from the last snapshot (its own file, written atomically) plus the
//! committed log.
//!
//! May depend on: orch-core (state, model), orch-fs (the snapshot file), openraft, redb,
//! reqwest, tokio. Never the master, the API or anything above them.

// openraft's storage and RPC errors are large by design; boxing them would fight its traits.
#![allow(clippy::result_large_err)]

pub mod codec;
pub mod guard;
mod log_store;
mod network;
mod state_machine;

pub use log_store::LogStore;
pub use network::{HttpNetwork, PeerContacts, TARGET_HEADER};
pub use state_machine::{SnapshotCorrupt, StateMachine};

use orch_core::model::MasterId;
use orch_core::state::{Applied, ClusterState, Command};
use std::io::Cursor;
use std::path::Path;
use std::sync::Arc;
use tokio::sync::watch;

openraft::declare_raft_types!(
    /// The Raft types of the masters: commands in, outcomes out, nodes addressed by `host:port`.
    pub TypeConfig:
        D = Command,
        R = Applied,
        NodeId = MasterId,
        Node = openraft::BasicNode,
        SnapshotData = Cursor<Vec<u8>>,
);

/// A handle on the local Raft node.
pub type Raft = openraft::Raft<TypeConfig>;
/// A Raft log entry.
pub type Entry = openraft::Entry<TypeConfig>;
/// An error of a Raft API call, with `E` the call's own error.
pub type RaftError<E = openraft::error::Infallible> = openraft::error::RaftError<MasterId, E>;
/// Why a client write did not commit.
pub type ClientWriteError = openraft::error::ClientWriteError<MasterId, openraft::BasicNode>;
/// The membership the cluster has agreed on.
pub type Membership = openraft::Membership<MasterId, openraft::BasicNode>;
/// A storage failure as openraft sees it.
pub type StorageError = openraft::StorageError<MasterId>;

/// Why the durable store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum RaftStoreError {
    /// The data directory could not be created.
    #[error("cannot create data directory {path}")]
    CreateDir {
        /// The directory.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The redb database could not be opened or initialised.
    #[error("cannot open the raft store at {path}")]
    Open {
        /// The database file.
        path: String,
        /// The cause.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The snapshot on disk could not be loaded.
    #[error("cannot load the raft state machine")]
    Load(#[source] StorageError),
    /// The snapshot file's checksum does not match: this master's data cannot be trusted.
    #[error(transparent)]
    SnapshotCorrupt(state_machine::SnapshotCorrupt),
}

/// Opens (or creates) the durable log store and the state machine in `data_dir`.
/// The receiver sees every state the machine reaches, starting with the restored one.
/// `data_dir` is made the owner's alone (0700): the log holds repos' webhook secrets and git
/// tokens.
pub fn open_store(
    data_dir: &Path,
    events: tokio::sync::broadcast::Sender<Arc<orch_core::state::Event>>,
) -> Result<(LogStore, StateMachine, watch::Receiver<Arc<ClusterState>>), RaftStoreError> {
    use std::os::unix::fs::PermissionsExt as _;
    let create_dir_error = |source| RaftStoreError::CreateDir {
        path: data_dir.display().to_string(),
        source,
    };
    std::fs::create_dir_all(data_dir).map_err(create_dir_error)?;
    std::fs::set_permissions(data_dir, std::fs::Permissions::from_mode(0o700))
        .map_err(create_dir_error)?;
    let path = data_dir.join("raft.redb");
    let open_error = |source: Box<dyn std::error::Error + Send + Sync>| RaftStoreError::Open {
        path: path.display().to_string(),
        source,
    };
    let db = Arc::new(redb::Database::create(&path).map_err(|e| open_error(Box::new(e)))?);
    let log_store = LogStore::open(Arc::clone(&db)).map_err(open_error)?;
    let (state_machine, states) = StateMachine::open(&data_dir.join("snapshot"), events)?;
    Ok((log_store, state_machine, states))
}

/// True if `data_dir` holds a Raft store (a master that has run there before).
pub fn has_store(data_dir: &Path) -> bool {
    data_dir.join("raft.redb").exists()
}

/// The file holding the Raft id a master was given when it rejoined under a new id.
const ID_FILE: &str = "raft_id";

/// The Raft id stored in `data_dir` by [`store_id`], if any.
pub fn stored_id(data_dir: &Path) -> std::io::Result<Option<MasterId>> {
    match std::fs::read_to_string(data_dir.join(ID_FILE)) {
        Ok(text) => text.trim().parse().map(Some).map_err(std::io::Error::other),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(error),
    }
}

/// Stores the Raft id of the master using `data_dir` (durably, before its store exists), so
/// that every later start uses it rather than the id `--masters` gives.
pub fn store_id(data_dir: &Path, id: MasterId) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::create_dir_all(data_dir)?;
    std::fs::set_permissions(data_dir, std::fs::Permissions::from_mode(0o700))?;
    orch_fs::write_atomic(&data_dir.join(ID_FILE), id.to_string().as_bytes())
}

#[cfg(test)]
mod conformance_tests;

/// A redb or encoding failure inside the store, as handed to openraft.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
struct StoreIo(Box<dyn std::error::Error + Send + Sync>);

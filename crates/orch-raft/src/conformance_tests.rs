//! openraft's storage conformance suite against the redb log store and our state machine.

use super::{open_store, LogStore, StateMachine, StorageError, TypeConfig};
use openraft::testing::{StoreBuilder, Suite};

/// Each build gets a fresh directory, kept alive as the suite's guard value.
struct RedbBuilder;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, tempfile::TempDir> for RedbBuilder {
    async fn build(&self) -> Result<(tempfile::TempDir, LogStore, StateMachine), StorageError> {
        let dir = tempfile::tempdir().map_err(|e| openraft::StorageIOError::write(&e))?;
        let (log_store, state_machine, _) =
            open_store(dir.path(), tokio::sync::broadcast::channel(1).0)
                .map_err(|e| openraft::StorageIOError::write(&e))?;
        Ok((dir, log_store, state_machine))
    }
}

#[test]
fn redb_store_passes_openraft_suite() -> Result<(), StorageError> {
    Suite::test_all(RedbBuilder)
}

//! Pure domain types: ids, timestamps and Marathon app definitions.
//!
//! Everything here is plain data with serde: no I/O, no clock, no tokio. Values that need the
//! clock (timestamps) or randomness (ids) are created by the shells and passed in.
//!
//! May depend on: nothing internal.

mod app;
mod app_id;
mod timestamp;

pub use app::{App, VersionInfo};
pub use app_id::{AppId, AppIdError};
pub use timestamp::{Timestamp, TimestampError};

/// A Raft node id of a master (1-based; the position in the initial `--masters` list).
pub type MasterId = u64;

/// The id of a deployment, as Marathon's plan ids: a UUID string chosen by the leader.
#[derive(
    Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct DeploymentId(pub String);

impl std::fmt::Display for DeploymentId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

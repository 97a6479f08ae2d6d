//! The state file of a local cluster, `.orch/<cluster>/state.json`: the layout (ports,
//! dirs), the infra file it came from, the containerizers offered and the pid (+ start time)
//! of every process started, so that a later `orch up` reuses the same ports and data and
//! `orch status`/`orch destroy` find the processes again. Written atomically (temporary
//! file + rename).
//!
//! May depend on: provision::layout, driver::executor (ProcId). Reads and writes one file.

use super::layout::{Layout, Node};
use orch_driver::executor::ProcId;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The state file's name inside the cluster dir.
pub const FILE: &str = super::state_file::FILE;

/// The state file cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// Reading or writing failed.
    #[error("cannot access {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not a state file.
    #[error("{path} is not a cluster state file")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The parser's complaint.
        source: serde_json::Error,
    },
}

/// A process as recorded: pid and start time (so a reused pid is not mistaken for it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Pid {
    /// The pid.
    pub pid: i32,
    /// Its start time (clock ticks since boot, `/proc/<pid>/stat` field 22).
    pub start_time: u64,
}

impl From<ProcId> for Pid {
    fn from(id: ProcId) -> Self {
        Self {
            pid: id.pid,
            start_time: id.start_time,
        }
    }
}

impl From<Pid> for ProcId {
    fn from(pid: Pid) -> Self {
        Self {
            pid: pid.pid,
            start_time: pid.start_time,
        }
    }
}

/// What `.orch/<cluster>/state.json` holds.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ClusterRecord {
    /// The provider that made it (`local`).
    pub provider: String,
    /// The infra file it was made from (absolute), or None for the built-in defaults.
    pub infra_file: Option<PathBuf>,
    /// Ports and dirs.
    #[serde(flatten)]
    pub layout: Layout,
    /// The agents' containerizers at the last start.
    #[serde(default)]
    pub containerizers: Vec<String>,
    /// The last started process of each node, by name.
    #[serde(default)]
    pub pids: BTreeMap<String, Pid>,
}

impl ClusterRecord {
    /// The state file of the cluster in `dir`.
    pub fn path(dir: &Path) -> PathBuf {
        dir.join(FILE)
    }

    /// Reads the state file in `dir`; None when there is none.
    pub fn load(dir: &Path) -> Result<Option<Self>, RecordError> {
        let path = Self::path(dir);
        let text = match std::fs::read(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(RecordError::Io { path, source }),
        };
        serde_json::from_slice(&text)
            .map(Some)
            .map_err(|source| RecordError::Corrupt { path, source })
    }

    /// Writes the state file (atomically).
    pub fn save(&self) -> Result<(), RecordError> {
        let path = Self::path(&self.layout.dir);
        let io = |source| RecordError::Io {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(&self.layout.dir).map_err(io)?;
        let text = serde_json::to_vec_pretty(self).map_err(|source| RecordError::Corrupt {
            path: path.clone(),
            source,
        })?;
        orch_fs::write_atomic(&path, &text).map_err(io)
    }

    /// The recorded process of `node`, if it still runs and is really that node's (its
    /// arguments name the node's dir).
    pub fn running(&self, node: &Node) -> Option<Pid> {
        let pid = *self.pids.get(&node.name)?;
        super::procs::is_ours(&pid.into(), &node.dir).then_some(pid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    #[test]
    fn a_record_round_trips_and_a_missing_one_is_none() {
        let dir = tempfile::tempdir().expect("temp dir");
        let cluster_dir = dir.path().join(".orch/local");
        assert_eq!(ClusterRecord::load(&cluster_dir).expect("load"), None);
        let api: SocketAddr = "127.0.0.1:9000".parse().expect("addr");
        let layout = Layout::plan("local", &cluster_dir, api, 1, 1, |_| true).expect("layout");
        let mut record = ClusterRecord {
            provider: "local".into(),
            infra_file: None,
            layout,
            containerizers: vec!["mesos".into()],
            pids: BTreeMap::new(),
        };
        record.pids.insert(
            "master-1".into(),
            Pid {
                pid: 1,
                start_time: 1,
            },
        );
        record.save().expect("save");
        assert_eq!(
            ClusterRecord::load(&cluster_dir).expect("load"),
            Some(record.clone())
        );
        // pid 1 is not a master of ours.
        assert_eq!(record.running(&record.layout.masters[0]), None);
        std::fs::write(ClusterRecord::path(&cluster_dir), "{").expect("write");
        assert!(ClusterRecord::load(&cluster_dir).is_err());
    }
}

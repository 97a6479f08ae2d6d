//! The state file of a cluster, `.orch/<cluster>/state.json`, for every provider; always
//! written atomically (temporary file + rename), and read and written only here.
//!
//! Two contents, told apart by the provider that wrote them:
//! - [`State`] (docker, ssh, digital_ocean): which machines exist (name, role, IP, the
//!   provider's id), the provider's other resources (network, image, firewall) by kind, and
//!   how far the last `orch up` got. Saved after every change ([`StateFile`]), so a crash
//!   loses at most the resource being made, which the provider finds again by its tags or
//!   labels.
//! - [`LocalState`] (local): the layout (ports, dirs), the infra file it came from, the
//!   containerizers offered and the pid (+ start time) of every process started, so that a
//!   later `orch up` reuses the same ports and data and `orch status`/`orch destroy` find the
//!   processes again.
//!
//! May depend on: provision::{cluster_spec (Machine), layout (Layout)}, driver::executor
//! (ProcId). Reads and writes one file.

use super::cluster_spec::Machine;
use super::layout::Layout;
use orch_driver::executor::ProcId;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The state file's name inside the cluster dir.
pub const FILE: &str = "state.json";

/// The state file cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Reading or writing failed.
    #[error("cannot access {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not a state file (of the kind asked for).
    #[error("{path} is not a cluster state file")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The parser's complaint.
        source: serde_json::Error,
    },
}

/// What `.orch/<cluster>/state.json` holds.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct State {
    /// The provider that made it (`docker`, `ssh`, `digital_ocean`).
    pub provider: String,
    /// The cluster's name.
    pub cluster: String,
    /// The infra file it was made from (absolute).
    #[serde(default)]
    pub infra_file: Option<PathBuf>,
    /// The machines that exist, in the order the cluster wants them.
    #[serde(default)]
    pub machines: Vec<Machine>,
    /// The provider's other resources, kind → id (`network`, `image`, `firewall`, ...).
    #[serde(default)]
    pub resources: BTreeMap<String, String>,
    /// The last step the last `orch up` finished (`endpoints` when it got to the end).
    #[serde(default)]
    pub last_step: Option<String>,
}

impl State {
    /// The machine called `name`.
    pub fn machine(&self, name: &str) -> Option<&Machine> {
        self.machines.iter().find(|m| m.name == name)
    }

    /// Records `machine`, replacing a record of the same name.
    pub fn put_machine(&mut self, machine: Machine) {
        match self.machines.iter_mut().find(|m| m.name == machine.name) {
            Some(slot) => *slot = machine,
            None => self.machines.push(machine),
        }
    }

    /// Forgets the machine called `name`.
    pub fn remove_machine(&mut self, name: &str) {
        self.machines.retain(|m| m.name != name);
    }
}

/// A state file on disk and its content: every change is saved at once.
#[derive(Debug)]
pub struct StateFile {
    path: PathBuf,
    /// The content as last saved.
    pub state: State,
}

impl StateFile {
    /// `<dir>/state.json`, read when it exists, else a new state (nothing is written until
    /// the first [`StateFile::save`]).
    pub fn open(dir: &Path, fresh: State) -> Result<Self, StateError> {
        let path = dir.join(FILE);
        let state = load(dir)?.unwrap_or(fresh);
        Ok(Self { path, state })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Changes the state with `change` and saves it.
    pub fn update(&mut self, change: impl FnOnce(&mut State)) -> Result<(), StateError> {
        change(&mut self.state);
        self.save()
    }

    /// Writes the state atomically.
    pub fn save(&self) -> Result<(), StateError> {
        write(&self.path, &self.state)
    }
}

/// The state of a cluster on machines of its own in `<dir>/state.json`, None when there is
/// none.
pub fn load(dir: &Path) -> Result<Option<State>, StateError> {
    read(&dir.join(FILE))
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

/// What `.orch/<cluster>/state.json` holds for a local cluster.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LocalState {
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

impl LocalState {
    /// Reads the state file of the local cluster in `dir`; None when there is none.
    pub fn load(dir: &Path) -> Result<Option<Self>, StateError> {
        read(&dir.join(FILE))
    }

    /// Writes the state file in the cluster's dir.
    pub fn save(&self) -> Result<(), StateError> {
        write(&self.layout.dir.join(FILE), self)
    }
}

/// The content of `path`, None when there is no file.
fn read<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, StateError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(StateError::Io {
                path: path.to_owned(),
                source,
            })
        }
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|source| StateError::Corrupt {
            path: path.to_owned(),
            source,
        })
}

/// Writes `content` to `path` atomically, creating its directory.
fn write(path: &Path, content: &impl Serialize) -> Result<(), StateError> {
    let io = |source| StateError::Io {
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let text = serde_json::to_string_pretty(content).map_err(|source| StateError::Corrupt {
        path: path.to_owned(),
        source,
    })?;
    orch_fs::write_atomic(path, (text + "\n").as_bytes()).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster_spec::MachineRole;
    use std::net::SocketAddr;

    #[test]
    fn every_update_is_on_disk() {
        let dir = tempfile::tempdir().expect("tempdir");
        let fresh = State {
            provider: "docker".to_owned(),
            cluster: "demo".to_owned(),
            ..State::default()
        };
        let mut file = StateFile::open(dir.path(), fresh).expect("open");
        assert!(
            load(dir.path()).expect("load").is_none(),
            "nothing written yet"
        );
        let machine = Machine {
            name: "master-1".to_owned(),
            role: MachineRole::Master,
            ip: "10.1.0.2".parse().expect("ip"),
            id: "abc".to_owned(),
            install_dir: "/opt/orch".to_owned(),
            resources: None,
            attributes: None,
        };
        file.update(|s| s.put_machine(machine.clone()))
            .expect("save");
        file.update(|s| {
            s.resources.insert("network".to_owned(), "n1".to_owned());
        })
        .expect("save");
        let read = load(dir.path()).expect("load").expect("some");
        assert_eq!(read.machine("master-1"), Some(&machine));
        assert_eq!(read.resources["network"], "n1");
        std::fs::write(dir.path().join(FILE), "{").expect("write");
        assert!(matches!(load(dir.path()), Err(StateError::Corrupt { .. })));
    }

    #[test]
    fn a_local_state_round_trips_and_a_missing_one_is_none() {
        let dir = tempfile::tempdir().expect("temp dir");
        let cluster_dir = dir.path().join(".orch/local");
        assert_eq!(LocalState::load(&cluster_dir).expect("load"), None);
        let api: SocketAddr = "127.0.0.1:9000".parse().expect("addr");
        let layout = Layout::plan("local", &cluster_dir, api, 1, 1, |_| true).expect("layout");
        let mut record = LocalState {
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
            LocalState::load(&cluster_dir).expect("load"),
            Some(record.clone())
        );
        std::fs::write(cluster_dir.join(FILE), "{").expect("write");
        assert!(LocalState::load(&cluster_dir).is_err());
    }
}

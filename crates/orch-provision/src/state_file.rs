//! The state file of a cluster, `.orch/<cluster>/state.json`, for every provider; always
//! written atomically (temporary file + rename), and read and written only here.
//!
//! One content, [`State`], for every provider: which machines exist (name, role, IP, the
//! provider's id), the provider's other resources (network, image, firewall) by kind, and
//! how far the last `orch up` got, and the masters' API addresses (for the CLI). Saved after every change ([`StateFile`]), so a crash loses
//! at most the resource being made, which the provider finds again by its tags, labels or
//! (local) the processes' arguments. The local provider adds its own section
//! ([`LocalState`]): the layout (ports, dirs), the containerizers offered and the pid (+
//! start time) of every process started, so that a later `orch up` reuses the same ports and
//! data and `orch status`/`orch destroy` find the processes again. A local state file of
//! the earlier flat shape (the section's fields at the top) is read as well.
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
    #[serde(default)]
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
    /// The masters' API addresses (HTTPS), as `orch up` reached them: where the CLI run in
    /// this directory finds the cluster without `--master`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub apis: Vec<std::net::SocketAddr>,
    /// The local provider's processes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local: Option<LocalState>,
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

/// The state of the cluster in `<dir>/state.json`, None when there is none.
pub fn load(dir: &Path) -> Result<Option<State>, StateError> {
    let path = dir.join(FILE);
    let Some(value) = read::<serde_json::Value>(&path)? else {
        return Ok(None);
    };
    let corrupt = |source| StateError::Corrupt {
        path: path.clone(),
        source,
    };
    let flat_local = value.get("provider").and_then(|p| p.as_str()) == Some("local")
        && value.get("local").is_none()
        && value.get("masters").is_some();
    if flat_local {
        let flat: FlatLocalState = serde_json::from_value(value).map_err(corrupt)?;
        return Ok(Some(flat.into_state()));
    }
    serde_json::from_value(value).map(Some).map_err(corrupt)
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

/// The local provider's section of the state: its processes.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LocalState {
    /// Ports and dirs.
    pub layout: Layout,
    /// The agents' containerizers at the last start.
    #[serde(default)]
    pub containerizers: Vec<String>,
    /// The last started process of each node, by name.
    #[serde(default)]
    pub pids: BTreeMap<String, Pid>,
}

/// A local state file as written before the local provider shared [`State`]: the section's
/// fields at the top.
#[derive(serde::Deserialize)]
struct FlatLocalState {
    infra_file: Option<PathBuf>,
    #[serde(flatten)]
    layout: Layout,
    #[serde(default)]
    containerizers: Vec<String>,
    #[serde(default)]
    pids: BTreeMap<String, Pid>,
}

impl FlatLocalState {
    fn into_state(self) -> State {
        State {
            provider: "local".to_owned(),
            cluster: self.layout.cluster.clone(),
            infra_file: self.infra_file,
            local: Some(LocalState {
                layout: self.layout,
                containerizers: self.containerizers,
                pids: self.pids,
            }),
            ..State::default()
        }
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
            private_ip: None,
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
    fn a_local_section_round_trips_and_the_flat_shape_is_read() {
        let dir = tempfile::tempdir().expect("temp dir");
        let cluster_dir = dir.path().join(".orch/local");
        assert_eq!(load(&cluster_dir).expect("load"), None);
        let api: SocketAddr = "127.0.0.1:9000".parse().expect("addr");
        let layout = Layout::plan("local", &cluster_dir, api, 1, 1, |_| true).expect("layout");
        let mut local = LocalState {
            layout,
            containerizers: vec!["mesos".into()],
            pids: BTreeMap::new(),
        };
        local.pids.insert(
            "master-1".into(),
            Pid {
                pid: 1,
                start_time: 1,
            },
        );
        let state = State {
            provider: "local".into(),
            cluster: "local".into(),
            infra_file: Some(dir.path().join("infra.yaml")),
            local: Some(local.clone()),
            ..State::default()
        };
        let file = StateFile::open(&cluster_dir, state.clone()).expect("open");
        file.save().expect("save");
        assert_eq!(load(&cluster_dir).expect("load"), Some(state.clone()));

        // The shape written before the local provider shared `State`.
        let mut flat = serde_json::to_value(&local.layout).expect("layout json");
        flat["provider"] = "local".into();
        flat["infra_file"] = serde_json::to_value(&state.infra_file).expect("path");
        flat["containerizers"] = serde_json::json!(["mesos"]);
        flat["pids"] = serde_json::json!({"master-1": {"pid": 1, "start_time": 1}});
        std::fs::write(cluster_dir.join(FILE), flat.to_string()).expect("write");
        assert_eq!(load(&cluster_dir).expect("load"), Some(state));
        std::fs::write(cluster_dir.join(FILE), "{").expect("write");
        assert!(load(&cluster_dir).is_err());
    }
}

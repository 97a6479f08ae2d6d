//! The state file of a cluster on machines of its own (docker, ssh, digital_ocean),
//! `.orch/<cluster>/state.json`: which machines exist (name, role, IP, the provider's id),
//! the provider's other resources (network, image, firewall) by kind, and how far the last
//! `orch up` got. Written atomically (temporary file + rename) after every change, so a crash
//! loses at most the resource being made, which the provider finds again by its tags or
//! labels.
//!
//! May depend on: provision::cluster_spec (Machine). Reads and writes one file.

use super::cluster_spec::Machine;
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
    /// The file is not a state file of this kind.
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
        let io = |source| StateError::Io {
            path: self.path.clone(),
            source,
        };
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let text =
            serde_json::to_string_pretty(&self.state).map_err(|source| StateError::Corrupt {
                path: self.path.clone(),
                source,
            })?;
        orch_fs::write_atomic(&self.path, (text + "\n").as_bytes()).map_err(io)
    }
}

/// The state in `<dir>/state.json`, None when there is none.
pub fn load(dir: &Path) -> Result<Option<State>, StateError> {
    let path = dir.join(FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(StateError::Io { path, source }),
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|source| StateError::Corrupt { path, source })
}

/// The `provider` a state file in `dir` names, whatever its kind (local clusters keep their
/// own record in the same file); None when there is no file or it names none.
pub fn provider_of(dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(dir.join(FILE)).ok()?;
    let value: serde_json::Value = serde_json::from_str(&text).ok()?;
    value["provider"].as_str().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster_spec::MachineRole;

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
        assert_eq!(provider_of(dir.path()).as_deref(), Some("docker"));
        std::fs::write(dir.path().join(FILE), "{").expect("write");
        assert!(matches!(load(dir.path()), Err(StateError::Corrupt { .. })));
    }
}

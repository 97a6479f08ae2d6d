//! The agent's durable identity: its id (`<uuid>-S0`, created once in `<work-dir>/agent_id`)
//! and the highest desired-set generation it accepted (`<work-dir>/generation`), so that a
//! restarted agent keeps its id and still refuses stale desired sets.

use orch_core::model::AgentId;
use orch_core::protocol::Generation;
use orch_fs::write_atomic;
use std::path::{Path, PathBuf};

/// An identity file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// Reading or writing a file failed.
    #[error("cannot access {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A file holds something else than expected.
    #[error("{path} is corrupt: {problem}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> IdentityError + '_ {
    move |source| IdentityError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Reads the agent id from `<work_dir>/agent_id`, creating it (a fresh `<uuid>-S0`) on first
/// start. The work dir is created if needed.
pub fn load_or_create_agent_id(work_dir: &Path) -> Result<AgentId, IdentityError> {
    std::fs::create_dir_all(work_dir).map_err(io(work_dir))?;
    let path = work_dir.join("agent_id");
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let id = text.trim();
            if id.is_empty() || id.contains(['/', ' ']) {
                return Err(IdentityError::Corrupt {
                    path,
                    problem: format!("'{id}' is not an agent id"),
                });
            }
            Ok(AgentId(id.to_owned()))
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let id = AgentId(format!("{}-S0", uuid::Uuid::new_v4()));
            write_atomic(&path, id.0.as_bytes()).map_err(io(&path))?;
            Ok(id)
        }
        Err(error) => Err(io(&path)(error)),
    }
}

/// The highest accepted generation, persisted in `<work_dir>/generation` as `TERM.INDEX`.
#[derive(Debug)]
pub struct GenerationStore {
    path: PathBuf,
    highest: Generation,
}

/// What [`GenerationStore::offer`] decided about a desired set's generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offer {
    /// Newer than anything accepted: now the highest (and persisted).
    Newer,
    /// The same generation as the highest: harmless to apply again.
    Same,
    /// Older than the highest: must be rejected.
    Stale,
}

impl GenerationStore {
    /// Loads the persisted generation (0.0 when the file does not exist yet).
    pub fn open(work_dir: &Path) -> Result<Self, IdentityError> {
        let path = work_dir.join("generation");
        let highest = match std::fs::read_to_string(&path) {
            Ok(text) => {
                text.trim()
                    .parse::<Generation>()
                    .map_err(|problem| IdentityError::Corrupt {
                        path: path.clone(),
                        problem,
                    })?
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Generation::default(),
            Err(error) => return Err(io(&path)(error)),
        };
        Ok(Self { path, highest })
    }

    /// The highest generation accepted so far.
    pub fn highest(&self) -> Generation {
        self.highest
    }

    /// Compares `generation` with the highest accepted one; a newer one is persisted before
    /// this returns [`Offer::Newer`].
    pub fn offer(&mut self, generation: Generation) -> Result<Offer, IdentityError> {
        match generation.cmp(&self.highest) {
            std::cmp::Ordering::Less => Ok(Offer::Stale),
            std::cmp::Ordering::Equal => Ok(Offer::Same),
            std::cmp::Ordering::Greater => {
                write_atomic(&self.path, generation.to_string().as_bytes())
                    .map_err(io(&self.path))?;
                self.highest = generation;
                Ok(Offer::Newer)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generation(term: u64, index: u64) -> Generation {
        Generation { term, index }
    }

    #[test]
    fn agent_id_is_created_once_and_reused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let work = dir.path().join("agent");
        let first = load_or_create_agent_id(&work).expect("create");
        assert!(first.0.ends_with("-S0"), "{first}");
        assert_eq!(first.0.len(), 36 + 3);
        let again = load_or_create_agent_id(&work).expect("reload");
        assert_eq!(first, again);
    }

    #[test]
    fn generations_are_ordered_by_term_then_index_and_survive_restart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = GenerationStore::open(dir.path()).expect("open");
        assert_eq!(store.highest(), Generation::default());
        assert_eq!(store.offer(generation(1, 5)).expect("offer"), Offer::Newer);
        assert_eq!(store.offer(generation(1, 5)).expect("offer"), Offer::Same);
        assert_eq!(store.offer(generation(1, 4)).expect("offer"), Offer::Stale);
        // A newer term wins even with a lower index; the deposed leader's set then loses.
        assert_eq!(store.offer(generation(2, 1)).expect("offer"), Offer::Newer);
        assert_eq!(store.offer(generation(1, 99)).expect("offer"), Offer::Stale);

        let mut restarted = GenerationStore::open(dir.path()).expect("reopen");
        assert_eq!(restarted.highest(), generation(2, 1));
        assert_eq!(
            restarted.offer(generation(1, 99)).expect("offer"),
            Offer::Stale
        );
    }

    #[test]
    fn a_corrupt_generation_file_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("generation"), "x").expect("write");
        assert!(matches!(
            GenerationStore::open(dir.path()),
            Err(IdentityError::Corrupt { .. })
        ));
    }
}

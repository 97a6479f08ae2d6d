//! Why an infra file cannot be used: [`InfraError`], and [`invalid`] for a key that breaks a
//! rule. Every part of the infra file reports through it, so errors name the file and the key
//! (`infra/local.yaml: masters: must be 1, 3 or 5`).
//!
//! May depend on: nothing of the crate.

/// Why an infra file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum InfraError {
    /// The file cannot be read.
    #[error("cannot read {file}")]
    Read {
        /// The file, as given.
        file: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not YAML of the expected shape (unknown key, wrong type).
    #[error("{file}")]
    Parse {
        /// The file, as given.
        file: String,
        /// The parser's complaint (names key and line).
        source: serde_yaml_ng::Error,
    },
    /// A value breaks a rule; wrapped in [`InfraError::InFile`] once the file is known.
    #[error("{key}: {problem}")]
    Invalid {
        /// The key, e.g. `masters` or `gitops[0].interval`.
        key: String,
        /// What is wrong.
        problem: String,
    },
    /// An error about the named file.
    #[error("{file}")]
    InFile {
        /// The file, as given (or "built-in defaults").
        file: String,
        /// What is wrong in it.
        source: Box<InfraError>,
    },
    /// The provider exists in the design but not in this build.
    #[error("provider '{provider}' is not built yet (only 'local' is)")]
    NotBuilt {
        /// Its name.
        provider: String,
    },
    /// `--provider` names no provider.
    #[error("unknown provider '{provider}' (known: local, docker, ssh, digital_ocean)")]
    UnknownProvider {
        /// What was given.
        provider: String,
    },
}

/// A key (`masters`, `gitops[0].interval`) that breaks a rule.
pub(crate) fn invalid(key: impl Into<String>, problem: impl Into<String>) -> InfraError {
    InfraError::Invalid {
        key: key.into(),
        problem: problem.into(),
    }
}

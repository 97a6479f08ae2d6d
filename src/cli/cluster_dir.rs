//! Which cluster of `.orch/` in the current directory a command means when it is not told
//! otherwise, and what the CLI takes from there: the cluster CA (`pki/ca.pem`), the management
//! token (`token`), the masters' API addresses (the state file's `apis`) and the infra file
//! `orch up` was run with. Flags and the environment always come first; the directory fills
//! in only what they leave out.
//!
//! The cluster is the one named by `--cluster`/`ORCH_CLUSTER`, else the only one in `.orch/`;
//! with several and none named, a command that needs one fails and lists them.
//!
//! May depend on: orch_provision::{cluster_pki, state_file}.

use anyhow::{bail, Context};
use orch_provision::state_file::{self, State};
use orch_provision::{cluster_pki, local};
use std::path::{Path, PathBuf};

/// The clusters of `<workdir>/.orch/`: directories holding a state file or a token, by name.
pub fn clusters(workdir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(workdir.join(".orch")) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .flatten()
        .filter(|e| {
            let path = e.path();
            path.join(state_file::FILE).exists() || cluster_pki::token_path(&path).exists()
        })
        .filter_map(|e| e.file_name().to_str().map(str::to_owned))
        .collect();
    names.sort();
    names
}

/// What choosing a cluster found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Choice {
    /// `.orch/` holds no cluster.
    None,
    /// This cluster's dir (absolute).
    One(PathBuf),
    /// Several clusters and none named: their names.
    Several(Vec<String>),
}

/// The cluster of `<workdir>/.orch/` a command means: `named` (`--cluster`/`ORCH_CLUSTER`),
/// else the only one. A named cluster that does not exist is an error.
pub fn choose(workdir: &Path, named: Option<&str>) -> anyhow::Result<Choice> {
    let names = clusters(workdir);
    if let Some(name) = named {
        if !names.iter().any(|n| n == name) {
            bail!(
                "there is no cluster '{name}' in {} ({})",
                workdir.join(".orch").display(),
                if names.is_empty() {
                    "none at all".to_owned()
                } else {
                    format!("there are: {}", names.join(", "))
                }
            );
        }
        return Ok(Choice::One(local::cluster_dir(workdir, name)));
    }
    Ok(match names.as_slice() {
        [] => Choice::None,
        [only] => Choice::One(local::cluster_dir(workdir, only)),
        _ => Choice::Several(names),
    })
}

/// The message when a command needs one cluster and `.orch/` holds several.
pub fn several(names: &[String]) -> String {
    format!(
        "several clusters in .orch/: {}; name one with --cluster NAME (or ORCH_CLUSTER), or \
         give --master, --ca and --token",
        names.join(", ")
    )
}

/// What a client command takes from a cluster dir.
#[derive(Debug, Clone, Default)]
pub struct Found {
    /// `pki/ca.pem` (absolute), when it exists.
    pub ca: Option<PathBuf>,
    /// The management token, when there is one.
    pub token: Option<String>,
    /// `https://<first master's API>`, when the state file records one.
    pub master: Option<String>,
}

/// The CA, token and master URL of the cluster in `dir`.
pub fn found(dir: &Path) -> anyhow::Result<Found> {
    let ca = cluster_pki::ca_path(dir);
    let state: Option<State> = state_file::load(dir)
        .with_context(|| format!("cannot read the state of the cluster in {}", dir.display()))?;
    let master = state.and_then(|s| {
        let api = s
            .apis
            .first()
            .copied()
            .or_else(|| s.local.as_ref().and_then(|l| l.layout.api()))?;
        Some(format!("https://{api}"))
    });
    Ok(Found {
        ca: ca.exists().then_some(ca),
        token: cluster_pki::read_token(dir),
        master,
    })
}

/// The infra file `orch up` recorded in the state of the cluster in `dir` (None: it ran
/// with the built-in defaults, or there is no state).
pub fn recorded_infra_file(dir: &Path) -> Option<PathBuf> {
    state_file::load(dir).ok().flatten()?.infra_file
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_cluster_is_chosen_several_must_be_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let workdir = dir.path();
        assert_eq!(choose(workdir, None).expect("none"), Choice::None);
        for name in ["a", "b"] {
            let cluster = workdir.join(".orch").join(name);
            std::fs::create_dir_all(&cluster).expect("mkdir");
            std::fs::write(cluster.join("token"), "t\n").expect("token");
            if name == "a" {
                assert_eq!(
                    choose(workdir, None).expect("one"),
                    Choice::One(cluster.clone())
                );
            }
        }
        std::fs::create_dir_all(workdir.join(".orch").join("empty")).expect("mkdir");
        assert_eq!(
            choose(workdir, None).expect("several"),
            Choice::Several(vec!["a".to_owned(), "b".to_owned()])
        );
        assert_eq!(
            choose(workdir, Some("b")).expect("named"),
            Choice::One(workdir.join(".orch").join("b"))
        );
        let error = choose(workdir, Some("c")).expect_err("no such cluster");
        assert!(error.to_string().contains("there are: a, b"), "{error}");
        let found = found(&workdir.join(".orch").join("b")).expect("found");
        assert_eq!(found.token.as_deref(), Some("t"));
        assert_eq!(found.ca, None);
        assert_eq!(found.master, None);
    }
}

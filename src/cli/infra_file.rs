//! The `-f FILE` option `orch up`, `orch status` and `orch destroy` share, and loading the
//! infra file it names. Without `-f`: the infra file `orch up` recorded for the cluster of
//! `.orch/` here (the only one, or the one `--cluster` names), so these commands need no flag
//! where `orch up` ran; else `infra/local.yaml` when it exists, else the built-in defaults (1
//! master, 1 agent, API 127.0.0.1:8080, no gitops).

use anyhow::Context;
use orch_provision::infra::{absolute, Infra, DEFAULT_FILE};
use orch_provision::local::cluster_dir;
use std::path::{Path, PathBuf};

/// Which infra file to use.
#[derive(Debug, Clone, clap::Args)]
pub struct InfraArgs {
    /// The infra file [default: infra/local.yaml if it exists, else built-in defaults:
    /// 1 master and 1 agent, API 127.0.0.1:8080].
    #[arg(short = 'f', long = "file")]
    pub file: Option<PathBuf>,
}

/// An infra file, loaded and validated.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The definition.
    pub infra: Infra,
    /// The file (absolute), None for the built-in defaults.
    pub path: Option<PathBuf>,
    /// How messages name it.
    pub shown: String,
    /// The current directory, where `.orch/` lives.
    pub workdir: PathBuf,
}

impl Loaded {
    /// `.orch/<cluster>` (absolute).
    pub fn cluster_dir(&self) -> PathBuf {
        cluster_dir(&self.workdir, &self.infra.cluster)
    }

    /// `.orch/<cluster>`, as messages show it.
    pub fn shown_dir(&self) -> String {
        Path::new(".orch")
            .join(&self.infra.cluster)
            .display()
            .to_string()
    }

    /// The directory relative repo paths are resolved against: the infra file's.
    pub fn base_dir(&self) -> PathBuf {
        self.path
            .as_deref()
            .and_then(Path::parent)
            .map_or_else(|| self.workdir.clone(), Path::to_owned)
    }
}

impl Loaded {
    /// `orch <command>` with the `-f` that names this infra file (none for the defaults).
    pub fn command(&self, command: &str) -> String {
        match &self.path {
            Some(_) => format!("orch {command} -f {}", self.shown),
            None => format!("orch {command}"),
        }
    }
}

/// Loads the infra file `-f` names, or the one recorded for the cluster of `.orch/` here
/// (`cluster` names it among several), or the default one, or the built-in defaults.
pub fn load(args: &InfraArgs, cluster: Option<&str>) -> anyhow::Result<Loaded> {
    let workdir = std::env::current_dir().context("cannot read the current directory")?;
    let recorded = match super::cluster_dir::choose(&workdir, cluster)? {
        super::cluster_dir::Choice::One(dir) => {
            super::cluster_dir::recorded_infra_file(&dir).filter(|f| f.exists())
        }
        _ => None,
    };
    let (path, shown) = match (&args.file, recorded) {
        (Some(file), _) => (file.clone(), file.display().to_string()),
        (None, Some(file)) => {
            let shown = file
                .strip_prefix(&workdir)
                .unwrap_or(&file)
                .display()
                .to_string();
            (file, shown)
        }
        (None, None) => {
            let default = PathBuf::from(DEFAULT_FILE);
            if !default.exists() {
                return Ok(Loaded {
                    infra: Infra::default(),
                    path: None,
                    shown: "built-in defaults".to_owned(),
                    workdir,
                });
            }
            (default, DEFAULT_FILE.to_owned())
        }
    };
    let infra = Infra::load(&path, &shown)?;
    Ok(Loaded {
        infra,
        path: Some(absolute(&workdir, &path)),
        shown,
        workdir,
    })
}

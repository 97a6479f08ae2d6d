//! Git repositories for the GitOps tests.

use std::path::Path;
use std::process::Command;

/// Runs git (as a test user) in `dir` and returns its trimmed stdout; panics if it fails.
pub fn git_in(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .args(["-c", "user.name=orch-test", "-c", "user.email=test@orch"])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git runs");
    assert!(
        output.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// A git repo in a temp dir for GitOps tests: write files, commit, read the head.
pub struct GitRepo {
    dir: tempfile::TempDir,
}

impl GitRepo {
    /// `git init` on branch `main`.
    pub fn new() -> GitRepo {
        let dir = tempfile::Builder::new()
            .prefix("orch-repo-")
            .tempdir()
            .expect("create temp dir");
        let repo = GitRepo { dir };
        repo.git(&["init", "-q", "-b", "main"]);
        repo
    }

    /// The repo's folder.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Runs git in the repo and returns its trimmed stdout; panics if it fails.
    pub fn git(&self, args: &[&str]) -> String {
        git_in(self.path(), args)
    }

    /// Writes `text` to `path` (relative; folders are created).
    pub fn write(&self, path: &str, text: &str) {
        let file = self.path().join(path);
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent).expect("create folders");
        }
        std::fs::write(file, text).expect("write file");
    }

    /// Removes `path`.
    pub fn remove(&self, path: &str) {
        std::fs::remove_file(self.path().join(path)).expect("remove file");
    }

    /// Commits everything and returns the new head.
    pub fn commit(&self, message: &str) -> String {
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "--allow-empty", "-m", message]);
        self.head()
    }

    /// The head commit id.
    pub fn head(&self) -> String {
        self.git(&["rev-parse", "HEAD"])
    }
}

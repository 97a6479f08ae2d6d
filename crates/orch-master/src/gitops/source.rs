//! A watched repo's commits and files, through git2. A local path is read in place (its
//! branch tip, never its working tree); a URL is fetched into a bare cache repo, shallow
//! where the transport allows. Blocking: callers run it on a blocking thread.
//!
//! May depend on: model (the config), gitops::parse (the files it hands out).

use super::parse::{excluded, is_app_file, SourceFile};
use git2::{Cred, FetchOptions, RemoteCallbacks, Repository, TreeWalkMode, TreeWalkResult};
use orch_core::model::{is_url, RepoConfig};
use std::path::{Path, PathBuf};

/// Why a repo could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// Opening, fetching or reading failed in git.
    #[error("{action}")]
    Git {
        /// What was being done.
        action: String,
        /// The git error.
        source: git2::Error,
    },
    /// A file under the watched folder is not UTF-8.
    #[error("{file}: not UTF-8 text")]
    NotText {
        /// The file, relative to the repo root.
        file: String,
    },
}

fn git(action: impl Into<String>) -> impl FnOnce(git2::Error) -> SourceError {
    let action = action.into();
    move |source| SourceError::Git { action, source }
}

/// The newest commit of the watched branch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fetched {
    /// The commit id (40 hex digits).
    pub commit: String,
    /// The branch it is the tip of.
    pub branch: String,
}

/// One watched repo.
#[derive(Debug)]
pub struct Source {
    config: RepoConfig,
    /// Where a remote repo is cached (a bare repo); unused for local ones.
    cache: PathBuf,
}

impl Source {
    /// A source for `config`, caching remote repos under `cache_dir`.
    pub fn new(config: RepoConfig, cache_dir: &Path) -> Self {
        let cache = cache_dir.join(format!("{}.git", config.effective_name()));
        Self { config, cache }
    }

    /// The local repo path, when the repo is not a URL.
    pub fn local_path(&self) -> Option<PathBuf> {
        let repo = self.config.repo.as_str();
        (!is_url(repo)).then(|| PathBuf::from(repo))
    }

    /// What to watch for new commits in a local repo: its git dir (HEAD, packed-refs) and
    /// its branch refs.
    pub fn watch_paths(&self) -> Option<Vec<(PathBuf, bool)>> {
        let repo = Repository::open(self.local_path()?).ok()?;
        let git_dir = repo.path().to_path_buf();
        Some(vec![
            (git_dir.clone(), false),
            (git_dir.join("refs").join("heads"), true),
        ])
    }

    /// Fetches (remote) or reads (local) the tip of the watched branch.
    pub fn fetch(&self) -> Result<Fetched, SourceError> {
        match self.local_path() {
            Some(path) => {
                let repo = Repository::open(&path)
                    .map_err(git(format!("cannot open repo {}", path.display())))?;
                let branch = match &self.config.branch {
                    Some(branch) => branch.clone(),
                    None => head_branch(&repo).unwrap_or_else(|| "main".to_owned()),
                };
                let commit = tip(&repo, &format!("refs/heads/{branch}"))?;
                Ok(Fetched { commit, branch })
            }
            None => self.fetch_remote(),
        }
    }

    fn fetch_remote(&self) -> Result<Fetched, SourceError> {
        let repo = self.cache_repo()?;
        let url = orch_core::model::redact_url(&self.config.repo);
        let mut remote = repo
            .remote_anonymous(&self.config.repo)
            .map_err(git(format!("bad remote {url}")))?;
        let branch = match &self.config.branch {
            Some(branch) => branch.clone(),
            None => {
                remote
                    .connect_auth(git2::Direction::Fetch, Some(self.callbacks()), None)
                    .map_err(git(format!("cannot reach {url}")))?;
                let default = remote.default_branch().ok();
                let _ = remote.disconnect();
                default
                    .as_ref()
                    .and_then(|name| name.as_str().ok())
                    .and_then(|name| name.strip_prefix("refs/heads/"))
                    .unwrap_or("main")
                    .to_owned()
            }
        };
        let refspec = format!("+refs/heads/{branch}:refs/remotes/origin/{branch}");
        let shallow = remote.fetch(&[&refspec], Some(&mut self.fetch_options(1)), None);
        if shallow.is_err() {
            // Not every transport (the local one among them) can fetch shallow.
            remote
                .fetch(&[&refspec], Some(&mut self.fetch_options(0)), None)
                .map_err(git(format!("cannot fetch {branch} from {url}")))?;
        }
        let commit = tip(&repo, &format!("refs/remotes/origin/{branch}"))?;
        Ok(Fetched { commit, branch })
    }

    /// The app files under the watched folder at `commit`, in path order.
    pub fn files_at(&self, commit: &str) -> Result<Vec<SourceFile>, SourceError> {
        let repo = match self.local_path() {
            Some(path) => Repository::open(&path)
                .map_err(git(format!("cannot open repo {}", path.display())))?,
            None => self.cache_repo()?,
        };
        let oid = git2::Oid::from_str(commit).map_err(git(format!("bad commit id {commit}")))?;
        let found = match repo.find_commit(oid) {
            Ok(found) => found,
            Err(_) if self.local_path().is_none() => {
                // A shallow cache lacks older commits (a rollback): fetch the full history.
                self.unshallow(&repo)?;
                repo.find_commit(oid)
                    .map_err(git(format!("commit {commit} not found")))?
            }
            Err(error) => return Err(git(format!("commit {commit} not found"))(error)),
        };
        let tree = found.tree().map_err(git("cannot read the commit's tree"))?;
        let folder = self.config.path.trim_matches('/');
        let root = if folder.is_empty() || folder == "." {
            tree
        } else {
            match tree.get_path(Path::new(folder)) {
                Ok(entry) => entry
                    .to_object(&repo)
                    .and_then(|object| object.peel_to_tree())
                    .map_err(git(format!("{folder} is not a folder")))?,
                // No folder: no apps.
                Err(_) => return Ok(Vec::new()),
            }
        };
        let mut blobs = Vec::new();
        root.walk(TreeWalkMode::PreOrder, |dir, entry| {
            let relative = format!("{dir}{}", entry.name().unwrap_or_default());
            if entry.kind() == Some(git2::ObjectType::Blob)
                && is_app_file(&relative)
                && !excluded(&relative, &self.config.exclude)
            {
                blobs.push((relative, entry.id()));
            }
            TreeWalkResult::Ok
        })
        .map_err(git("cannot list the watched folder"))?;
        let mut files = Vec::with_capacity(blobs.len());
        for (relative, id) in blobs {
            let path = if folder.is_empty() || folder == "." {
                relative
            } else {
                format!("{folder}/{relative}")
            };
            let blob = repo
                .find_blob(id)
                .map_err(git(format!("cannot read {path}")))?;
            let text = String::from_utf8(blob.content().to_vec())
                .map_err(|_| SourceError::NotText { file: path.clone() })?;
            files.push(SourceFile { path, text });
        }
        files.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(files)
    }

    /// The full id of the commit `spec` names (a full or abbreviated id, a branch, a tag).
    pub fn resolve(&self, spec: &str) -> Result<String, SourceError> {
        let repo = match self.local_path() {
            Some(path) => Repository::open(&path)
                .map_err(git(format!("cannot open repo {}", path.display())))?,
            None => {
                let repo = self.cache_repo()?;
                if repo.revparse_single(spec).is_err() {
                    self.unshallow(&repo)?;
                }
                repo
            }
        };
        let object = repo
            .revparse_single(spec)
            .map_err(git(format!("no commit {spec}")))?;
        let commit = object
            .peel_to_commit()
            .map_err(git(format!("{spec} is not a commit")))?;
        Ok(commit.id().to_string())
    }

    fn cache_repo(&self) -> Result<Repository, SourceError> {
        match Repository::open_bare(&self.cache) {
            Ok(repo) => Ok(repo),
            Err(_) => Repository::init_bare(&self.cache).map_err(git(format!(
                "cannot create the cache repo {}",
                self.cache.display()
            ))),
        }
    }

    fn unshallow(&self, repo: &Repository) -> Result<(), SourceError> {
        let url = orch_core::model::redact_url(&self.config.repo);
        let mut remote = repo
            .remote_anonymous(&self.config.repo)
            .map_err(git(format!("bad remote {url}")))?;
        let mut options = self.fetch_options(0);
        options.depth(i32::MAX);
        remote
            .fetch(
                &["+refs/heads/*:refs/remotes/origin/*"],
                Some(&mut options),
                None,
            )
            .map_err(git(format!("cannot fetch the history of {url}")))
    }

    fn fetch_options(&self, depth: i32) -> FetchOptions<'_> {
        let mut options = FetchOptions::new();
        options.remote_callbacks(self.callbacks());
        if depth > 0 {
            options.depth(depth);
        }
        options
    }

    /// Credentials: the token for https, the key (or the ssh agent) for ssh.
    fn callbacks(&self) -> RemoteCallbacks<'_> {
        let mut callbacks = RemoteCallbacks::new();
        let mut tries = 0;
        callbacks.credentials(move |_url, username, allowed| {
            tries += 1;
            if tries > 3 {
                return Err(git2::Error::from_str("authentication failed"));
            }
            if allowed.contains(git2::CredentialType::USER_PASS_PLAINTEXT) {
                if let Some(token) = &self.config.token {
                    return Cred::userpass_plaintext("x-access-token", token);
                }
            }
            if allowed.contains(git2::CredentialType::SSH_KEY) {
                let user = username.unwrap_or("git");
                return match &self.config.ssh_key {
                    Some(key) => Cred::ssh_key(user, None, Path::new(key), None),
                    None => Cred::ssh_key_from_agent(user),
                };
            }
            Cred::default()
        });
        callbacks
    }
}

/// The branch HEAD names, if it names one.
fn head_branch(repo: &Repository) -> Option<String> {
    let head = repo.find_reference("HEAD").ok()?;
    let target = head.symbolic_target().ok()??;
    target.strip_prefix("refs/heads/").map(str::to_owned)
}

fn tip(repo: &Repository, reference: &str) -> Result<String, SourceError> {
    let found = repo
        .find_reference(reference)
        .map_err(git(format!("no branch {reference}")))?;
    let commit = found
        .peel_to_commit()
        .map_err(git(format!("{reference} is not a commit")))?;
    Ok(commit.id().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn run_git(dir: &Path, args: &[&str]) -> String {
        let output = Command::new("git")
            .args([
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@t",
                "-c",
                "init.defaultBranch=main",
            ])
            .args(args)
            .current_dir(dir)
            .output()
            .expect("git runs");
        assert!(output.status.success(), "git {args:?}: {output:?}");
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }

    fn repo_with_apps() -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("temp dir");
        run_git(dir.path(), &["init", "-q"]);
        std::fs::create_dir_all(dir.path().join("apps/web")).expect("mkdir");
        std::fs::write(dir.path().join("apps/a.json"), r#"{"id": "/a"}"#).expect("write");
        std::fs::write(dir.path().join("apps/web/b.yaml"), "id: /web/b\n").expect("write");
        std::fs::write(dir.path().join("apps/notes.txt"), "not an app").expect("write");
        std::fs::write(dir.path().join("README.md"), "outside").expect("write");
        run_git(dir.path(), &["add", "-A"]);
        run_git(dir.path(), &["commit", "-qm", "apps"]);
        dir
    }

    #[test]
    fn a_local_repo_is_read_at_its_branch_tip_not_its_working_tree() {
        let dir = repo_with_apps();
        let head = run_git(dir.path(), &["rev-parse", "HEAD"]);
        let source = Source::new(
            RepoConfig::new(dir.path().display().to_string()),
            dir.path(),
        );
        let fetched = source.fetch().expect("fetch");
        assert_eq!(
            fetched,
            Fetched {
                commit: head.clone(),
                branch: "main".into()
            }
        );
        std::fs::write(dir.path().join("apps/c.json"), "uncommitted").expect("write");
        let files = source.files_at(&head).expect("files");
        let paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["apps/a.json", "apps/web/b.yaml"]);
        assert_eq!(files[1].text, "id: /web/b\n");
        assert!(source.watch_paths().is_some());
    }

    #[test]
    fn a_url_is_fetched_into_a_cache_and_older_commits_stay_reachable() {
        let dir = repo_with_apps();
        let first = run_git(dir.path(), &["rev-parse", "HEAD"]);
        std::fs::write(dir.path().join("apps/a.json"), r#"{"id": "/a2"}"#).expect("write");
        run_git(dir.path(), &["commit", "-qam", "change"]);
        let second = run_git(dir.path(), &["rev-parse", "HEAD"]);
        let cache = tempfile::tempdir().expect("cache");
        let url = format!("file://{}", dir.path().display());
        let source = Source::new(RepoConfig::new(url), cache.path());
        assert_eq!(source.local_path(), None);
        let fetched = source.fetch().expect("fetch");
        assert_eq!(
            fetched,
            Fetched {
                commit: second.clone(),
                branch: "main".into()
            }
        );
        assert_eq!(
            source.files_at(&second).expect("files")[0].text,
            r#"{"id": "/a2"}"#
        );
        assert_eq!(
            source.files_at(&first).expect("files")[0].text,
            r#"{"id": "/a"}"#
        );
        let unknown = "0".repeat(40);
        assert!(source.files_at(&unknown).is_err());
    }

    #[test]
    fn a_missing_branch_or_repo_is_an_error() {
        let dir = repo_with_apps();
        let mut config = RepoConfig::new(dir.path().display().to_string());
        config.branch = Some("nope".into());
        let error = Source::new(config, dir.path())
            .fetch()
            .expect_err("no branch");
        assert!(error.to_string().contains("refs/heads/nope"), "{error}");
        let missing = Source::new(RepoConfig::new("/nonexistent/repo"), dir.path());
        assert!(missing.fetch().is_err());
    }
}

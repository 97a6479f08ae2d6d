//! GitOps records kept in the cluster state: what repo a reconciler watches
//! ([`RepoConfig`], the body of `POST /v1/gitops`) and what it has done with it
//! ([`RepoRecord`]: pause, last applied and last healthy commit, failed commits, the last
//! syncs). Everything that must survive a change of leader lives here; what only the
//! leading reconciler knows (last fetched commit, current error) does not.

use super::{DeploymentId, Timestamp};
use std::collections::{BTreeMap, BTreeSet};

/// How many syncs a repo's history keeps.
pub const SYNC_HISTORY: usize = 20;

/// The label every app applied from git carries: the commit its definition last changed at.
pub const COMMIT_LABEL: &str = "orch.gitops/commit";

/// The label naming the watched repo an app came from (what prune may delete).
pub const REPO_LABEL: &str = "orch.gitops/repo";

/// One watched repo (JSON keys in camelCase; defaults as documented per field).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RepoConfig {
    /// Its name, unique in the cluster [default: the repo's last path segment].
    #[serde(default)]
    pub name: String,
    /// A local path (absolute) or a URL (`https://`, `ssh://`, `git@host:path`, `file://`).
    pub repo: String,
    /// The branch to follow [default: the branch the repo's HEAD names, else `main`].
    #[serde(default)]
    pub branch: Option<String>,
    /// The folder holding app files, relative to the repo root [default: `apps`].
    #[serde(default = "default_path")]
    pub path: String,
    /// Files under `path` to skip: relative paths, `*` matching within one segment.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// The group whose apps the repo defines; relative ids are resolved below it
    /// [default: `/`].
    #[serde(default = "default_group")]
    pub group: String,
    /// Poll interval in humantime form [default: `30s`].
    #[serde(default = "default_interval")]
    pub interval: String,
    /// Delete apps this repo created once their files are gone [default: false].
    #[serde(default)]
    pub prune: bool,
    /// Revert manual changes to managed apps [default: false].
    #[serde(default)]
    pub self_heal: bool,
    /// Redeploy the last healthy commit when a commit is not healthy in time
    /// [default: false].
    #[serde(default)]
    pub auto_rollback: bool,
    /// How long a commit may take to become healthy [default: `10m`].
    #[serde(default = "default_rollback_deadline")]
    pub rollback_deadline: String,
    /// Values for `{{ vars.NAME }}` in app files.
    #[serde(default)]
    pub vars: BTreeMap<String, String>,
    /// The webhook secret (GitHub HMAC key, GitLab token, or bearer token).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_secret: Option<String>,
    /// A token for https remotes (sent as the password of user `x-access-token`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// A private key file for ssh remotes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh_key: Option<String>,
    /// The secret of the ACL token the repo is to act with, as a client sends it
    /// (`tokenSecret`): the master resolves it to [`RepoConfig::acl_token`] and never keeps it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_secret: Option<String>,
    /// The id of the ACL token the repo acts with: it can never do more than that token
    /// (none: the cluster's own rights, for repos the management token adds). Set by the
    /// master from `tokenSecret` or the adding token, never taken from clients.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acl_token: Option<String>,
}

/// True for what git takes as a URL: `scheme://...` or scp-like `host:path` (a colon before
/// the first slash).
pub fn is_url(repo: &str) -> bool {
    if repo.contains("://") {
        return true;
    }
    match (repo.find(':'), repo.find('/')) {
        (Some(colon), Some(slash)) => colon < slash,
        (Some(_), None) => true,
        _ => false,
    }
}

fn default_path() -> String {
    "apps".to_owned()
}

fn default_group() -> String {
    "/".to_owned()
}

fn default_interval() -> String {
    "30s".to_owned()
}

fn default_rollback_deadline() -> String {
    "10m".to_owned()
}

impl RepoConfig {
    /// A config for `repo` with every default.
    pub fn new(repo: impl Into<String>) -> Self {
        Self {
            name: String::new(),
            repo: repo.into(),
            branch: None,
            path: default_path(),
            exclude: Vec::new(),
            group: default_group(),
            interval: default_interval(),
            prune: false,
            self_heal: false,
            auto_rollback: false,
            rollback_deadline: default_rollback_deadline(),
            vars: BTreeMap::new(),
            webhook_secret: None,
            token: None,
            ssh_key: None,
            token_secret: None,
            acl_token: None,
        }
    }

    /// The name, or the repo's last path segment without `.git` when none is set.
    pub fn effective_name(&self) -> String {
        if !self.name.is_empty() {
            return self.name.clone();
        }
        let trimmed = self.repo.trim_end_matches('/');
        let last = trimmed
            .rsplit(['/', ':'])
            .find(|segment| !segment.is_empty())
            .unwrap_or("repo");
        let last = last.strip_suffix(".git").unwrap_or(last);
        if last.is_empty() || last == "." || last == ".." {
            "repo".to_owned()
        } else {
            last.to_owned()
        }
    }

    /// The config as others may see it: secrets replaced by `"***"`.
    pub fn redacted(&self) -> Self {
        let hide = |secret: &Option<String>| secret.as_ref().map(|_| "***".to_owned());
        Self {
            repo: redact_url(&self.repo),
            webhook_secret: hide(&self.webhook_secret),
            token: hide(&self.token),
            ..self.clone()
        }
    }
}

/// `url` with the credentials of its user part replaced by `***`
/// (`https://user:secret@host/r` → `https://***@host/r`), for logs and status. scp-like
/// `git@host:path` names a user only and stays.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://***{}", &rest[at..]),
        None => url.to_owned(),
    }
}

/// The outcome of one sync.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum SyncResult {
    /// The commit's definitions were written (a deployment started, or nothing differed).
    Applied,
    /// The commit was not applied: a file is invalid or the cluster refused it.
    Error,
    /// The commit did not become healthy in time and was rolled back.
    Failed,
    /// An earlier commit was deployed by `rollback` or auto-rollback.
    RolledBack,
}

/// One entry of a repo's sync history.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncRecord {
    /// The commit synced.
    pub commit: String,
    /// When.
    pub at: Timestamp,
    /// The deployment it started, if any.
    pub deployment_id: Option<DeploymentId>,
    /// What happened.
    pub result: SyncResult,
    /// The error or a remark.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// A watched repo in the cluster state.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RepoRecord {
    /// What to watch.
    pub config: RepoConfig,
    /// Auto-sync paused (after a manual rollback) until resumed.
    pub paused: bool,
    /// The commit whose definitions were last written.
    pub last_applied: Option<String>,
    /// The last commit whose apps all became healthy.
    pub last_healthy: Option<String>,
    /// Commits auto-rollback gave up on; never synced again.
    pub failed: BTreeSet<String>,
    /// The newest syncs, oldest first, at most [`SYNC_HISTORY`].
    pub history: Vec<SyncRecord>,
}

impl RepoRecord {
    /// A repo nothing was synced from yet.
    pub fn new(config: RepoConfig) -> Self {
        Self {
            config,
            paused: false,
            last_applied: None,
            last_healthy: None,
            failed: BTreeSet::new(),
            history: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_in_urls_are_hidden() {
        assert_eq!(
            redact_url("https://x-access-token:ghp_abc@github.com/o/r.git"),
            "https://***@github.com/o/r.git"
        );
        assert_eq!(
            redact_url("https://github.com/o/r"),
            "https://github.com/o/r"
        );
        assert_eq!(redact_url("ssh://git@host/r@x"), "ssh://***@host/r@x");
        assert_eq!(redact_url("git@host:o/r.git"), "git@host:o/r.git");
        assert_eq!(redact_url("/srv/repo"), "/srv/repo");
    }

    #[test]
    fn names_come_from_the_repo_and_secrets_are_hidden() {
        assert_eq!(
            RepoConfig::new("/srv/git/shop.git").effective_name(),
            "shop"
        );
        assert_eq!(
            RepoConfig::new("git@github.com:acme/site.git").effective_name(),
            "site"
        );
        assert_eq!(RepoConfig::new("/").effective_name(), "repo");
        let mut config = RepoConfig::new("https://example.com/a/b");
        config.webhook_secret = Some("s3cret".into());
        assert_eq!(config.redacted().webhook_secret.as_deref(), Some("***"));
        assert_eq!(config.redacted().token, None);
    }

    #[test]
    fn urls_and_paths_are_told_apart() {
        assert!(is_url("https://x/y"));
        assert!(is_url("file:///srv/repo"));
        assert!(is_url("git@github.com:acme/site.git"));
        assert!(!is_url(".."));
        assert!(!is_url("/srv/repo"));
        assert!(!is_url("./a:b"));
    }

    #[test]
    fn json_fills_defaults_and_refuses_unknown_keys() {
        let config: RepoConfig =
            serde_json::from_str(r#"{"repo": "/r", "selfHeal": true}"#).expect("a minimal config");
        assert_eq!(config.path, "apps");
        assert_eq!(config.group, "/");
        assert_eq!(config.interval, "30s");
        assert!(config.self_heal);
        assert!(serde_json::from_str::<RepoConfig>(r#"{"repo": "/r", "prun": true}"#).is_err());
    }
}

//! The `gitops:` entries and the top-level `vars:` they share: typed and checked here;
//! [`super::Infra::repo_configs`] turns them into [`RepoConfig`]s.
//!
//! May depend on: provision::infra::{error, de}, model (RepoConfig). No I/O.

use super::de::null_as_default;
use super::error::{invalid, InfraError};
use orch_core::model::RepoConfig;
use serde::de::{self, Deserializer, Visitor};
use std::fmt;
use std::path::Path;

/// A template variable's value: YAML strings, numbers and booleans are all taken as text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VarValue(pub String);

impl<'de> serde::Deserialize<'de> for VarValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Scalar;
        impl Visitor<'_> for Scalar {
            type Value = VarValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string, number or boolean")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<VarValue, E> {
                Ok(VarValue(v.to_owned()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<VarValue, E> {
                Ok(VarValue(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<VarValue, E> {
                Ok(VarValue(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<VarValue, E> {
                Ok(VarValue(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<VarValue, E> {
                Ok(VarValue(v.to_string()))
            }
        }
        deserializer.deserialize_any(Scalar)
    }
}

/// One repo to watch (`gitops:` item). Defaults are those of [`RepoConfig`].
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GitopsEntry {
    /// A local path (relative to the infra file's directory) or a URL (`https://`,
    /// `ssh://`, `git@host:path`, `file://`). Required.
    pub repo: String,
    /// The repo's name in the cluster [default: the repo's last path segment].
    #[serde(default)]
    pub name: Option<String>,
    /// The branch to follow [default: the branch HEAD names, else `main`].
    #[serde(default)]
    pub branch: Option<String>,
    /// The folder of app files inside the repo [default: `apps`].
    #[serde(default)]
    pub path: Option<String>,
    /// Files under `path` to skip (`*` matches within one segment) [default: none].
    #[serde(default, deserialize_with = "null_as_default")]
    pub exclude: Vec<String>,
    /// The group the repo's apps live under [default: `/`].
    #[serde(default)]
    pub group: Option<String>,
    /// Poll interval, e.g. `30s` [default: `30s`].
    #[serde(default)]
    pub interval: Option<String>,
    /// Delete apps whose files are gone [default: false].
    #[serde(default)]
    pub prune: bool,
    /// Revert manual changes to managed apps [default: false].
    #[serde(default)]
    pub self_heal: bool,
    /// Redeploy the last healthy commit when a commit is not healthy in time
    /// [default: false].
    #[serde(default)]
    pub auto_rollback: bool,
    /// How long a commit may take to become healthy, e.g. `10m` [default: `10m`].
    #[serde(default)]
    pub rollback_deadline: Option<String>,
    /// The webhook secret, literally [default: none]. Prefer `webhook_secret_env`.
    #[serde(default)]
    pub webhook_secret: Option<String>,
    /// The name of an environment variable of `orch up` holding the webhook secret.
    #[serde(default)]
    pub webhook_secret_env: Option<String>,
    /// The name of an environment variable holding a token for https remotes.
    #[serde(default)]
    pub token_env: Option<String>,
    /// The name of an environment variable holding the secret of the ACL token the repo acts
    /// with (it can never do more than that token) [default: none, the cluster's own rights].
    #[serde(default)]
    pub token_secret_env: Option<String>,
    /// A private key file for ssh remotes (relative to the infra file's directory; `~/` is
    /// the home directory).
    #[serde(default)]
    pub ssh_key: Option<String>,
}

impl GitopsEntry {
    /// The repo's name in the cluster: `name`, else the last segment of `repo`.
    pub fn repo_name(&self) -> String {
        let mut config = RepoConfig::new(self.repo.clone());
        config.name = self.name.clone().unwrap_or_default();
        config.effective_name()
    }

    pub(super) fn validate(&self, at: &str) -> Result<(), InfraError> {
        if self.repo.trim().is_empty() {
            return Err(invalid(format!("{at}.repo"), "must name a path or URL"));
        }
        if let Some(name) = &self.name {
            if name.is_empty() || name.contains(['/', ' ']) {
                return Err(invalid(
                    format!("{at}.name"),
                    format!("'{name}' is not a name (no spaces or '/')"),
                ));
            }
        }
        if let Some(path) = &self.path {
            if Path::new(path).is_absolute() || path.split('/').any(|s| s == "..") {
                return Err(invalid(
                    format!("{at}.path"),
                    format!("'{path}' must be a folder inside the repo (relative, no '..')"),
                ));
            }
        }
        if let Some(group) = &self.group {
            if !group.starts_with('/') {
                return Err(invalid(
                    format!("{at}.group"),
                    format!("'{group}' must be an absolute group id (start with '/')"),
                ));
            }
        }
        for (key, value) in [
            ("interval", &self.interval),
            ("rollback_deadline", &self.rollback_deadline),
        ] {
            if let Some(text) = value {
                match humantime::parse_duration(text) {
                    Ok(d) if !d.is_zero() => {}
                    Ok(_) => return Err(invalid(format!("{at}.{key}"), "must be more than 0")),
                    Err(e) => {
                        return Err(invalid(
                            format!("{at}.{key}"),
                            format!("'{text}' is not a duration like 30s or 10m: {e}"),
                        ))
                    }
                }
            }
        }
        if self.webhook_secret.is_some() && self.webhook_secret_env.is_some() {
            return Err(invalid(
                format!("{at}.webhook_secret_env"),
                "give webhook_secret or webhook_secret_env, not both",
            ));
        }
        for (key, var) in [
            ("webhook_secret_env", &self.webhook_secret_env),
            ("token_env", &self.token_env),
            ("token_secret_env", &self.token_secret_env),
        ] {
            if let Some(var) = var {
                let ok = !var.is_empty()
                    && var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                    && !var.starts_with(|c: char| c.is_ascii_digit());
                if !ok {
                    return Err(invalid(
                        format!("{at}.{key}"),
                        format!("'{var}' is not an environment variable name"),
                    ));
                }
            }
        }
        Ok(())
    }
}

//! The infra file (`infra/local.yaml`): what `orch up` should create. Typed, strict
//! (`deny_unknown_fields`), every key optional with the default documented on its field, and
//! checked once by [`Infra::validate`]. Errors name the file and the key
//! (`infra/local.yaml: masters: must be 1, 3 or 5`).
//!
//! Each `gitops:` entry becomes a [`RepoConfig`] (the body of `POST /v1/gitops`) through
//! [`Infra::repo_configs`], with local repo paths made absolute (relative to the infra file's
//! directory), `vars` copied from the top level and secrets read from the environment where a
//! `*_env` key names a variable. The environment is an input (a lookup function), so this
//! module stays testable without touching the process environment.
//!
//! Its parts, each depending only on those listed before it: `error` (the error type),
//! `de` (serde helpers), `services` (`dns:`, `lb:`), `gitops` (`gitops:`, `vars:`),
//! `providers` (`docker:`, `ssh:`, `digital_ocean:` and the machine roles); this module
//! (the whole file, its rules, `--provider`) uses them all, never the reverse.
//!
//! May depend on: model (RepoConfig, Resources). No network, no processes.

mod de;
mod error;
mod gitops;
mod providers;
mod services;

use de::null_as_default;
use error::invalid;
pub use error::InfraError;
pub use gitops::{GitopsEntry, VarValue};
use orch_core::model::Resources;
use orch_core::model::{is_url, RepoConfig};
pub use providers::{DigitalOceanEntry, DockerEntry, MachineRole, SshEntry, SshHostEntry};
pub use services::{DnsEntry, LbEntry};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Component, Path, PathBuf};

/// The infra file `orch up` reads when no `-f` is given (relative to the current directory).
pub const DEFAULT_FILE: &str = "infra/local.yaml";

/// How many agents the local provider runs at most: each takes its own 1000 task ports from
/// 31000 up.
pub const MAX_AGENTS: u32 = 34;

/// How many agents (public ones included) the other providers make at most.
pub const MAX_REMOTE_AGENTS: u32 = 250;

/// Where the cluster's machines come from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProviderKind {
    /// Every process on this machine, data under `.orch/<cluster>/` (the embedded default).
    #[default]
    Local,
    /// Containers of the local Docker engine, on a network of their own.
    Docker,
    /// Existing hosts reached over SSH.
    Ssh,
    /// DigitalOcean droplets made through its API.
    DigitalOcean,
}

impl ProviderKind {
    /// Parses a provider name as the infra file spells it.
    pub fn parse(name: &str) -> Result<Self, InfraError> {
        match name {
            "local" => Ok(Self::Local),
            "docker" => Ok(Self::Docker),
            "ssh" => Ok(Self::Ssh),
            "digital_ocean" => Ok(Self::DigitalOcean),
            other => Err(InfraError::UnknownProvider {
                provider: other.to_owned(),
            }),
        }
    }

    /// The name as the infra file spells it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::Docker => "docker",
            Self::Ssh => "ssh",
            Self::DigitalOcean => "digital_ocean",
        }
    }
}

/// A cluster definition (YAML, snake_case keys; unknown keys are errors).
#[derive(Clone, Debug, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Infra {
    /// The cluster's name; its data, logs and pid files live in `.orch/<cluster>/` in the
    /// current directory [default: `local`]. Letters, digits, `-` and `_`.
    #[serde(default = "default_cluster")]
    pub cluster: String,
    /// Where the machines come from [default: `local`; only `local` is built].
    #[serde(default)]
    pub provider: ProviderKind,
    /// How many masters: 1, 3 or 5 [default: 1].
    #[serde(default = "one")]
    pub masters: u32,
    /// How many agents, 1 to [`MAX_AGENTS`] with the local provider [default: 1].
    #[serde(default = "one")]
    pub agents: u32,
    /// How many public agents (`orch agent --public`, for the `slave_public` role), on their
    /// own machines; not with the local provider [default: 0].
    #[serde(default)]
    pub public_agents: u32,
    /// The first master's API address; the other masters and the agents take the next free
    /// ports after it [default: `127.0.0.1:8080`].
    #[serde(default = "default_api")]
    pub api: SocketAddr,
    /// Each agent's `--resources` (Mesos syntax, e.g. `cpus:2;mem:4096`) [default: detected].
    /// Without a `ports` item every agent gets its own 1000 task ports (agent N:
    /// `31000+1000(N-1)` to `31999+1000(N-1)`); a `ports` item is allowed only with one
    /// agent, since agents on one host must not hand out the same ports.
    #[serde(default)]
    pub agent_resources: Option<String>,
    /// Each agent's `--attributes` for constraints, e.g. `rack:r1;zone:a` [default: none].
    #[serde(default)]
    pub agent_attributes: Option<String>,
    /// The agents' containerizers, comma-separated: `mesos`, `docker`, `mock`
    /// [default: `mesos,docker` when a Docker engine answers, else `mesos`].
    #[serde(default)]
    pub containerizers: Option<String>,
    /// Template variables for app files (`{{ vars.NAME }}`), copied into every gitops repo
    /// [default: none].
    #[serde(default, deserialize_with = "null_as_default")]
    pub vars: BTreeMap<String, VarValue>,
    /// Repos whose app files the cluster follows [default: none].
    #[serde(default, deserialize_with = "null_as_default")]
    pub gitops: Vec<GitopsEntry>,
    /// The Mesos-DNS-compatible DNS server the first master runs [default: on, 127.0.0.1:8053
    /// and HTTP 127.0.0.1:8123, domain `mesos`].
    #[serde(default)]
    pub dns: DnsEntry,
    /// The marathon-lb-compatible load balancer the first master runs [default: on,
    /// 127.0.0.1: HTTP 8000, HTTPS 8443, app-id 9091, stats 9090, group `external`].
    #[serde(default)]
    pub lb: LbEntry,
    /// The docker provider's settings.
    #[serde(default)]
    pub docker: DockerEntry,
    /// The ssh provider's settings and hosts.
    #[serde(default)]
    pub ssh: SshEntry,
    /// The digital_ocean provider's settings.
    #[serde(default)]
    pub digital_ocean: DigitalOceanEntry,
}

fn default_cluster() -> String {
    "local".to_owned()
}

fn one() -> u32 {
    1
}

fn default_api() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}

impl Default for Infra {
    /// What `orch up` uses without an infra file: one master on 127.0.0.1:8080, one agent.
    fn default() -> Self {
        Self {
            cluster: default_cluster(),
            provider: ProviderKind::Local,
            masters: 1,
            agents: 1,
            public_agents: 0,
            api: default_api(),
            agent_resources: None,
            agent_attributes: None,
            containerizers: None,
            vars: BTreeMap::new(),
            gitops: Vec::new(),
            dns: DnsEntry::default(),
            lb: LbEntry::default(),
            docker: DockerEntry::default(),
            ssh: SshEntry::default(),
            digital_ocean: DigitalOceanEntry::default(),
        }
    }
}

/// The containerizers an agent knows.
const CONTAINERIZERS: &[&str] = &["mesos", "docker", "mock"];

impl Infra {
    /// Parses and validates YAML; `file` names the source in errors. An empty document
    /// means every default.
    pub fn from_yaml(text: &str, file: &str) -> Result<Self, InfraError> {
        let parse_error = |source| InfraError::Parse {
            file: file.to_owned(),
            source,
        };
        let value: serde_yaml_ng::Value = serde_yaml_ng::from_str(text).map_err(parse_error)?;
        let infra = if value.is_null() {
            Self::default()
        } else {
            let mut infra = serde_yaml_ng::from_str::<Self>(text).map_err(parse_error)?;
            infra
                .counts_from_ssh_hosts(|key| value.get(key).is_some())
                .map_err(|source| InfraError::InFile {
                    file: file.to_owned(),
                    source: Box::new(source),
                })?;
            infra
        };
        infra.validate().map_err(|source| InfraError::InFile {
            file: file.to_owned(),
            source: Box::new(source),
        })?;
        Ok(infra)
    }

    /// Reads, parses and validates the file at `path` (`shown` is how errors name it).
    pub fn load(path: &Path, shown: &str) -> Result<Self, InfraError> {
        let text = std::fs::read_to_string(path).map_err(|source| InfraError::Read {
            file: shown.to_owned(),
            source,
        })?;
        Self::from_yaml(&text, shown)
    }

    /// Checks every rule a parser cannot: counts, names, addresses, durations, resources.
    pub fn validate(&self) -> Result<(), InfraError> {
        let name_ok = !self.cluster.is_empty()
            && self.cluster.len() <= 63
            && !self.cluster.starts_with(['-', '_'])
            && self
                .cluster
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !name_ok {
            return Err(invalid(
                "cluster",
                format!(
                    "'{}' is not a name (1-63 letters, digits, '-' or '_')",
                    self.cluster
                ),
            ));
        }
        self.validate_counts()?;
        if ![1, 3, 5].contains(&self.masters) {
            return Err(invalid("masters", "must be 1, 3 or 5"));
        }
        if self.api.ip().is_unspecified() {
            return Err(invalid(
                "api",
                format!(
                    "{} is not an address masters can advertise; name one, e.g. 127.0.0.1:{}",
                    self.api,
                    self.api.port()
                ),
            ));
        }
        if self.api.port() == 0 {
            return Err(invalid("api", "needs a port other than 0"));
        }
        if self.dns.enabled {
            self.dns.validate()?;
        }
        if self.lb.enabled {
            self.lb.validate()?;
        }
        if let Some(text) = &self.agent_resources {
            Resources::parse_mesos(text, Resources::default())
                .map_err(|e| invalid("agent_resources", e.to_string()))?;
            if names_ports(text) && self.agents > 1 {
                return Err(invalid(
                    "agent_resources",
                    "a ports item is allowed only with agents: 1 (agents on one host must \
                     not offer the same ports; without it each agent gets its own range)",
                ));
            }
        }
        if let Some(list) = &self.containerizers {
            let names = containerizer_list(list);
            if names.is_empty() {
                return Err(invalid(
                    "containerizers",
                    "names none (mesos, docker, mock)",
                ));
            }
            if let Some(unknown) = names.iter().find(|n| !CONTAINERIZERS.contains(&n.as_str())) {
                return Err(invalid(
                    "containerizers",
                    format!("unknown containerizer '{unknown}' (known: mesos, docker, mock)"),
                ));
            }
        }
        for name in self.vars.keys() {
            if name.is_empty() || name.contains(char::is_whitespace) {
                return Err(invalid("vars", format!("'{name}' is not a variable name")));
            }
        }
        let mut names = BTreeSet::new();
        for (i, entry) in self.gitops.iter().enumerate() {
            entry.validate(&format!("gitops[{i}]"))?;
            let name = entry.repo_name();
            if !names.insert(name.clone()) {
                return Err(invalid(
                    format!("gitops[{i}].name"),
                    format!("'{name}' names two repos; give each a distinct name"),
                ));
            }
        }
        Ok(())
    }

    /// With the ssh provider the hosts' roles fix the counts: `masters`, `agents` and
    /// `public_agents` are taken from `ssh.hosts`, and must agree with them where the file
    /// gives them (`given` tells whether a top-level key is present).
    pub fn counts_from_ssh_hosts(
        &mut self,
        given: impl Fn(&str) -> bool,
    ) -> Result<(), InfraError> {
        if self.provider != ProviderKind::Ssh {
            return Ok(());
        }
        for (key, role) in [
            ("masters", MachineRole::Master),
            ("agents", MachineRole::Agent),
            ("public_agents", MachineRole::PublicAgent),
        ] {
            let from_hosts = self.ssh.count(role);
            let field = match role {
                MachineRole::Master => &mut self.masters,
                MachineRole::Agent => &mut self.agents,
                MachineRole::PublicAgent => &mut self.public_agents,
            };
            if given(key) && *field != from_hosts {
                return Err(invalid(
                    key,
                    format!(
                        "is {} but ssh.hosts has {from_hosts} {} host(s); leave {key} out or make them agree",
                        *field,
                        role.name()
                    ),
                ));
            }
            *field = from_hosts;
        }
        Ok(())
    }

    fn validate_counts(&self) -> Result<(), InfraError> {
        if self.provider == ProviderKind::Ssh {
            // The hosts fix the counts: check them first.
            self.ssh.validate()?;
        }
        match self.provider {
            ProviderKind::Local => {
                if !(1..=MAX_AGENTS).contains(&self.agents) {
                    return Err(invalid(
                        "agents",
                        format!(
                            "must be 1 to {MAX_AGENTS} (each agent takes 1000 task ports from 31000 up)"
                        ),
                    ));
                }
                if self.public_agents != 0 {
                    return Err(invalid(
                        "public_agents",
                        "needs a provider with machines of their own (docker, ssh, digital_ocean)",
                    ));
                }
            }
            ProviderKind::Docker | ProviderKind::Ssh | ProviderKind::DigitalOcean => {
                if self.agents + self.public_agents == 0 {
                    return Err(invalid("agents", "a cluster needs at least one agent"));
                }
                if self.agents + self.public_agents > MAX_REMOTE_AGENTS {
                    return Err(invalid(
                        "agents",
                        format!("agents + public_agents must be at most {MAX_REMOTE_AGENTS}"),
                    ));
                }
                if let Some(text) = &self.agent_attributes {
                    orch_core::model::parse_attributes(text)
                        .map_err(|e| invalid("agent_attributes", e.to_string()))?;
                }
            }
        }
        match self.provider {
            ProviderKind::Local => Ok(()),
            ProviderKind::Docker => self.docker.validate(),
            ProviderKind::Ssh => Ok(()),
            ProviderKind::DigitalOcean => {
                self.digital_ocean.validate()?;
                match self.gitops.iter().position(|g| !is_url(&g.repo)) {
                    Some(i) => Err(invalid(
                        format!("gitops[{i}].repo"),
                        "must be a URL: droplets cannot read a path of this machine",
                    )),
                    None => Ok(()),
                }
            }
        }
    }

    /// The containerizers given, in order (None when the key is absent).
    pub fn containerizer_names(&self) -> Option<Vec<String>> {
        self.containerizers.as_deref().map(containerizer_list)
    }

    /// The `POST /v1/gitops` bodies of the `gitops:` entries. Local repo paths and ssh keys
    /// are resolved against `base_dir` (the infra file's directory, absolute); `env` looks up
    /// the variables the `*_env` keys name.
    pub fn repo_configs(
        &self,
        base_dir: &Path,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Vec<RepoConfig>, InfraError> {
        let vars: BTreeMap<String, String> = self
            .vars
            .iter()
            .map(|(k, v)| (k.clone(), v.0.clone()))
            .collect();
        let from_env = |key: String, var: &str| {
            env(var).ok_or_else(|| invalid(key, format!("environment variable {var} is not set")))
        };
        let mut configs = Vec::new();
        for (i, entry) in self.gitops.iter().enumerate() {
            let repo = if is_url(&entry.repo) {
                entry.repo.clone()
            } else {
                absolute(base_dir, &entry.repo).display().to_string()
            };
            let mut config = RepoConfig::new(repo);
            config.name = entry.name.clone().unwrap_or_default();
            config.branch = entry.branch.clone();
            if let Some(path) = &entry.path {
                config.path = path.clone();
            }
            config.exclude = entry.exclude.clone();
            if let Some(group) = &entry.group {
                config.group = group.clone();
            }
            if let Some(interval) = &entry.interval {
                config.interval = interval.clone();
            }
            config.prune = entry.prune;
            config.self_heal = entry.self_heal;
            config.auto_rollback = entry.auto_rollback;
            if let Some(deadline) = &entry.rollback_deadline {
                config.rollback_deadline = deadline.clone();
            }
            config.vars = vars.clone();
            config.webhook_secret = match (&entry.webhook_secret, &entry.webhook_secret_env) {
                (Some(secret), _) => Some(secret.clone()),
                (None, Some(var)) => {
                    Some(from_env(format!("gitops[{i}].webhook_secret_env"), var)?)
                }
                (None, None) => None,
            };
            config.token = match &entry.token_env {
                Some(var) => Some(from_env(format!("gitops[{i}].token_env"), var)?),
                None => None,
            };
            config.token_secret = match &entry.token_secret_env {
                Some(var) => Some(from_env(format!("gitops[{i}].token_secret_env"), var)?),
                None => None,
            };
            config.ssh_key = entry.ssh_key.as_ref().map(|key| {
                let home = key.strip_prefix("~/").zip(env("HOME"));
                match home {
                    Some((rest, home)) => absolute(Path::new(&home), rest),
                    None => absolute(base_dir, key),
                }
                .display()
                .to_string()
            });
            configs.push(config);
        }
        Ok(configs)
    }
}

/// True when a Mesos resource text has a `ports` item.
pub fn names_ports(text: &str) -> bool {
    text.split(';')
        .filter_map(|item| item.split_once(':'))
        .any(|(name, _)| name.split('(').next().unwrap_or(name).trim() == "ports")
}

fn containerizer_list(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// `path` made absolute against `base` with `.` and `..` resolved textually (the path need
/// not exist yet).
pub fn absolute(base: &Path, path: impl AsRef<Path>) -> PathBuf {
    let joined = base.join(path);
    let mut out = PathBuf::new();
    for component in joined.components() {
        match component {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests;

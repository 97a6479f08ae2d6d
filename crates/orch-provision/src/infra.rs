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
//! May depend on: model (RepoConfig, Resources). No network, no processes.

use super::provider_config::{DigitalOceanEntry, DockerEntry, MachineRole, SshEntry};
use orch_core::model::Resources;
use orch_core::model::{is_url, RepoConfig};
use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize as _;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Component, Path, PathBuf};

/// The infra file `orch up` reads when no `-f` is given (relative to the current directory).
pub const DEFAULT_FILE: &str = "infra/local.yaml";

/// How many agents the local provider runs at most: each takes its own 1000 task ports from
/// 31000 up.
pub const MAX_AGENTS: u32 = 34;

/// How many agents (public ones included) the other providers make at most.
pub const MAX_REMOTE_AGENTS: u32 = 250;

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

fn invalid(key: impl Into<String>, problem: impl Into<String>) -> InfraError {
    InfraError::Invalid {
        key: key.into(),
        problem: problem.into(),
    }
}

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

/// `key:` with no value (YAML null) reads as the type's default (an empty list or map).
fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: serde::Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
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

/// The cluster's DNS server (`dns:`), run inside the first master (`--with-dns`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsEntry {
    /// Run it [default: true].
    #[serde(default = "yes")]
    pub enabled: bool,
    /// DNS address, UDP and TCP [default: `127.0.0.1:8053`].
    #[serde(default = "default_dns_listen")]
    pub listen: SocketAddr,
    /// Mesos-DNS HTTP API address [default: `127.0.0.1:8123`].
    #[serde(default = "default_dns_http_listen")]
    pub http_listen: SocketAddr,
    /// The domain served [default: `mesos`].
    #[serde(default = "default_dns_domain")]
    pub domain: String,
    /// Upstream resolvers (`IP` or `IP:PORT`) for other names [default: the nameservers of
    /// /etc/resolv.conf].
    #[serde(default, deserialize_with = "null_as_default")]
    pub resolvers: Vec<String>,
}

impl Default for DnsEntry {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: default_dns_listen(),
            http_listen: default_dns_http_listen(),
            domain: default_dns_domain(),
            resolvers: Vec::new(),
        }
    }
}

impl DnsEntry {
    fn validate(&self) -> Result<(), InfraError> {
        for (key, address) in [
            ("dns.listen", self.listen),
            ("dns.http_listen", self.http_listen),
        ] {
            if address.port() == 0 {
                return Err(invalid(key, "needs a port other than 0"));
            }
        }
        if self.listen == self.http_listen {
            return Err(invalid("dns.http_listen", "must differ from dns.listen"));
        }
        let domain_ok = !self.domain.is_empty()
            && self.domain.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            });
        if !domain_ok {
            return Err(invalid(
                "dns.domain",
                format!("'{}' is not a domain name", self.domain),
            ));
        }
        Ok(())
    }
}

/// The cluster's load balancer (`lb:`), run inside the first master (`--with-lb`). Service
/// ports and VIP ports bind on `bind_addr` too.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LbEntry {
    /// Run it [default: true].
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Where every port binds [default: `127.0.0.1`].
    #[serde(default = "default_lb_bind_addr")]
    pub bind_addr: IpAddr,
    /// Host/path routing (`HAPROXY_{n}_VHOST`) [default: 8000]; 0 = off.
    #[serde(default = "default_lb_http_port")]
    pub http_port: u16,
    /// The same over TLS with SNI [default: 8443]; 0 = off.
    #[serde(default = "default_lb_https_port")]
    pub https_port: u16,
    /// `X-Marathon-App-Id` routing [default: 9091]; 0 = off.
    #[serde(default = "default_lb_app_id_port")]
    pub app_id_port: u16,
    /// Stats and control (`/haproxy?stats`, `/metrics`) [default: 9090]; 0 = off.
    #[serde(default = "default_lb_stats_port")]
    pub stats_port: u16,
    /// The `HAPROXY_GROUP`s served; `*` serves every app [default: `external`].
    #[serde(default = "default_lb_groups", deserialize_with = "one_or_many")]
    pub group: Vec<String>,
    /// Serve only tasks whose health checks pass (apps without checks: every running task)
    /// [default: false, as marathon-lb].
    #[serde(default)]
    pub health_check: bool,
    /// PEM files (chain and key) for the HTTPS port [default: a self-signed certificate].
    #[serde(default, deserialize_with = "null_as_default")]
    pub ssl_certs: Vec<String>,
}

impl Default for LbEntry {
    fn default() -> Self {
        Self {
            enabled: true,
            bind_addr: default_lb_bind_addr(),
            http_port: default_lb_http_port(),
            https_port: default_lb_https_port(),
            app_id_port: default_lb_app_id_port(),
            stats_port: default_lb_stats_port(),
            group: default_lb_groups(),
            health_check: false,
            ssl_certs: Vec::new(),
        }
    }
}

impl LbEntry {
    /// The ports bound on `bind_addr` at start, with their keys, 0s left out.
    pub fn fixed_ports(&self) -> Vec<(&'static str, u16)> {
        [
            ("lb.http_port", self.http_port),
            ("lb.https_port", self.https_port),
            ("lb.app_id_port", self.app_id_port),
            ("lb.stats_port", self.stats_port),
        ]
        .into_iter()
        .filter(|(_, port)| *port != 0)
        .collect()
    }

    fn validate(&self) -> Result<(), InfraError> {
        let ports = self.fixed_ports();
        for (index, (key, port)) in ports.iter().enumerate() {
            if let Some((other, _)) = ports[..index].iter().find(|(_, p)| p == port) {
                return Err(invalid(*key, format!("{port} is also {other}")));
            }
        }
        if self.group.iter().any(|group| group.trim().is_empty()) {
            return Err(invalid("lb.group", "a group name cannot be empty"));
        }
        Ok(())
    }
}

fn default_lb_bind_addr() -> IpAddr {
    IpAddr::from([127, 0, 0, 1])
}

fn default_lb_http_port() -> u16 {
    8000
}

fn default_lb_https_port() -> u16 {
    8443
}

fn default_lb_app_id_port() -> u16 {
    9091
}

fn default_lb_stats_port() -> u16 {
    9090
}

fn default_lb_groups() -> Vec<String> {
    vec!["external".to_owned()]
}

/// `group: external` or `group: [external, internal]`.
fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(one) => vec![one],
        OneOrMany::Many(many) => many,
    })
}

fn yes() -> bool {
    true
}

fn default_dns_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8053))
}

fn default_dns_http_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8123))
}

fn default_dns_domain() -> String {
    "mesos".to_owned()
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
    /// A private key file for ssh remotes (relative to the infra file's directory; `~/` is
    /// the home directory).
    #[serde(default)]
    pub ssh_key: Option<String>,
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

impl GitopsEntry {
    /// The repo's name in the cluster: `name`, else the last segment of `repo`.
    pub fn repo_name(&self) -> String {
        let mut config = RepoConfig::new(self.repo.clone());
        config.name = self.name.clone().unwrap_or_default();
        config.effective_name()
    }

    fn validate(&self, at: &str) -> Result<(), InfraError> {
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
mod tests {
    use super::*;

    fn error_text(result: Result<Infra, InfraError>) -> String {
        orch_core::errors::chain(&result.expect_err("the file is invalid"))
    }

    #[test]
    fn an_empty_file_means_every_default() {
        for text in ["", "# only a comment\n", "{}"] {
            let infra = Infra::from_yaml(text, "x.yaml").expect("defaults");
            assert_eq!(infra, Infra::default());
        }
        let infra = Infra::default();
        assert_eq!(infra.cluster, "local");
        assert_eq!((infra.masters, infra.agents), (1, 1));
        assert_eq!(infra.api.to_string(), "127.0.0.1:8080");
        assert_eq!(infra.provider, ProviderKind::Local);
    }

    #[test]
    fn a_full_file_parses() {
        let text = r#"
cluster: dev
provider: local
masters: 3
agents: 2
api: 127.0.0.1:9000
agent_resources: "cpus:2;mem:2048"
containerizers: mesos
vars: {DOMAIN: example.com, REPLICAS: 3, DEBUG: true}
gitops:
  - repo: ..
    name: apps
    branch: main
    path: apps
    exclude: [nginx.json]
    group: /shop
    interval: 1m
    prune: true
    self_heal: true
    auto_rollback: true
    rollback_deadline: 5m
    webhook_secret_env: HOOK
    token_env: TOKEN
    ssh_key: keys/id
"#;
        let infra = Infra::from_yaml(text, "infra/dev.yaml").expect("valid");
        assert_eq!(infra.cluster, "dev");
        assert_eq!((infra.masters, infra.agents), (3, 2));
        assert_eq!(infra.api.port(), 9000);
        assert_eq!(infra.containerizer_names(), Some(vec!["mesos".to_owned()]));
        assert_eq!(infra.vars["REPLICAS"], VarValue("3".into()));
        assert_eq!(infra.vars["DEBUG"], VarValue("true".into()));
        let env = |name: &str| match name {
            "HOOK" => Some("hook-secret".to_owned()),
            "TOKEN" => Some("tok".to_owned()),
            _ => None,
        };
        let configs = infra
            .repo_configs(Path::new("/src/project/infra"), env)
            .expect("configs");
        assert_eq!(configs.len(), 1);
        let config = &configs[0];
        assert_eq!(config.repo, "/src/project");
        assert_eq!(config.name, "apps");
        assert_eq!(config.branch.as_deref(), Some("main"));
        assert_eq!(config.exclude, vec!["nginx.json".to_owned()]);
        assert_eq!(config.group, "/shop");
        assert_eq!(config.interval, "1m");
        assert!(config.prune && config.self_heal && config.auto_rollback);
        assert_eq!(config.rollback_deadline, "5m");
        assert_eq!(config.vars["DOMAIN"], "example.com");
        assert_eq!(config.webhook_secret.as_deref(), Some("hook-secret"));
        assert_eq!(config.token.as_deref(), Some("tok"));
        assert_eq!(
            config.ssh_key.as_deref(),
            Some("/src/project/infra/keys/id")
        );
        // camelCase JSON, as POST /v1/gitops takes it.
        let json = serde_json::to_value(config).expect("json");
        assert_eq!(json["selfHeal"], true);
        assert_eq!(json["rollbackDeadline"], "5m");
    }

    #[test]
    fn repo_urls_are_kept_and_defaults_come_from_the_repo_config() {
        let text = "gitops:\n  - repo: https://example.com/acme/site.git\n  - repo: git@host:x/y\n  - repo: ./here\n";
        let infra = Infra::from_yaml(text, "f").expect("valid");
        let configs = infra
            .repo_configs(Path::new("/base"), |_| None)
            .expect("configs");
        assert_eq!(configs[0].repo, "https://example.com/acme/site.git");
        assert_eq!(configs[1].repo, "git@host:x/y");
        assert_eq!(configs[2].repo, "/base/here");
        assert_eq!(configs[0].path, "apps");
        assert_eq!(configs[0].group, "/");
        assert_eq!(configs[0].interval, "30s");
        assert_eq!(configs[0].rollback_deadline, "10m");
        assert_eq!(configs[0].webhook_secret, None);
        assert!(Infra::from_yaml("gitops:\n", "f")
            .expect("null")
            .gitops
            .is_empty());
    }

    #[test]
    fn the_repos_infra_file_is_valid() {
        let infra = Infra::from_yaml(
            include_str!("../../../infra/local.yaml"),
            "infra/local.yaml",
        )
        .expect("infra/local.yaml is valid");
        assert_eq!(infra.api, default_api());
        assert_eq!((infra.masters, infra.agents), (1, 1));
        let configs = infra
            .repo_configs(Path::new("/src/orch/infra"), |_| None)
            .expect("configs");
        assert_eq!(configs.len(), 1);
        assert_eq!(configs[0].repo, "/src/orch");
        assert_eq!(configs[0].path, "apps");
        assert_eq!(
            configs[0].exclude,
            ["nginx.json", "bridged-webapp.json", "rsvp.json"]
        );
        let with_key = Infra::from_yaml("gitops:\n  - repo: /r\n    ssh_key: ~/.ssh/id\n", "f")
            .expect("valid")
            .repo_configs(Path::new("/base"), |name| {
                (name == "HOME").then(|| "/home/me".to_owned())
            })
            .expect("configs");
        assert_eq!(with_key[0].ssh_key.as_deref(), Some("/home/me/.ssh/id"));
    }

    #[test]
    fn a_missing_environment_variable_names_the_key() {
        let text = "gitops:\n  - repo: /r\n    token_env: NOPE\n";
        let infra = Infra::from_yaml(text, "f").expect("valid");
        let error = infra
            .repo_configs(Path::new("/"), |_| None)
            .expect_err("unset");
        assert_eq!(
            error.to_string(),
            "gitops[0].token_env: environment variable NOPE is not set"
        );
    }

    #[test]
    fn errors_name_the_file_and_the_key() {
        let cases = [
            (
                "masters: 2\n",
                "infra/local.yaml: masters: must be 1, 3 or 5",
            ),
            ("agents: 0\n", "infra/local.yaml: agents: must be 1 to 34"),
            (
                "cluster: a/b\n",
                "infra/local.yaml: cluster: 'a/b' is not a name",
            ),
            (
                "api: 0.0.0.0:8080\n",
                "infra/local.yaml: api: 0.0.0.0:8080 is not",
            ),
            ("api: nonsense\n", "infra/local.yaml: api: invalid"),
            ("mastres: 3\n", "infra/local.yaml: unknown field `mastres`"),
            (
                "masters: three\n",
                "infra/local.yaml: masters: invalid type",
            ),
            (
                "provider: aws\n",
                "infra/local.yaml: provider: unknown variant `aws`",
            ),
            (
                "agent_resources: gpus:1\n",
                "infra/local.yaml: agent_resources: invalid resource 'gpus:1'",
            ),
            (
                "agents: 2\nagent_resources: ports:[1000-2000]\n",
                "infra/local.yaml: agent_resources: a ports item is allowed only with agents: 1",
            ),
            (
                "containerizers: mesos,rkt\n",
                "infra/local.yaml: containerizers: unknown containerizer 'rkt'",
            ),
            (
                "gitops:\n  - repo: /r\n    interval: soon\n",
                "infra/local.yaml: gitops[0].interval: 'soon' is not a duration",
            ),
            (
                "gitops:\n  - repo: /r\n    webhook_secret: a\n    webhook_secret_env: B\n",
                "infra/local.yaml: gitops[0].webhook_secret_env: give webhook_secret or",
            ),
            (
                "gitops:\n  - repo: /a/x\n  - repo: /b/x\n",
                "infra/local.yaml: gitops[1].name: 'x' names two repos",
            ),
            (
                "gitops:\n  - repo: /r\n    colour: red\n",
                "infra/local.yaml: gitops[0]: unknown field `colour`",
            ),
            (
                "gitops:\n  - repo: /r\n    path: /abs\n",
                "infra/local.yaml: gitops[0].path: '/abs' must be a folder inside the repo",
            ),
            (
                "vars: {A: [1, 2]}\n",
                "infra/local.yaml: vars.A: invalid type",
            ),
        ];
        for (text, want) in cases {
            let got = error_text(Infra::from_yaml(text, "infra/local.yaml"));
            assert!(
                got.starts_with(want),
                "for {text:?}:\n got {got}\nwant {want}..."
            );
        }
    }

    #[test]
    fn providers_parse_and_their_sections_are_checked() {
        assert_eq!(
            ProviderKind::parse("local").expect("local"),
            ProviderKind::Local
        );
        assert!(ProviderKind::parse("aws").is_err());
        let ssh = "provider: ssh\nssh:\n  hosts:\n    - {address: 127.0.0.11, role: master}\n    - {address: 127.0.0.21, role: agent}\n    - {address: 127.0.0.22, role: public_agent}\n";
        let infra = Infra::from_yaml(ssh, "f").expect("valid file");
        assert_eq!(
            (infra.masters, infra.agents, infra.public_agents),
            (1, 1, 1)
        );
        let cases = [
            ("provider: docker\npublic_agents: 2\ndocker: {network: 'a b'}\n", "f: docker.network: 'a b' is not a network name"),
            ("provider: docker\ndocker: {subnet: 10.0.0.0}\n", "f: docker.subnet: '10.0.0.0' is not a CIDR subnet"),
            ("public_agents: 1\n", "f: public_agents: needs a provider with machines of their own"),
            (&format!("masters: 3\n{ssh}"), "f: masters: is 3 but ssh.hosts has 1 master host(s)"),
            ("provider: ssh\nssh: {hosts: [{address: db.example, role: master}]}\n", "f: ssh.hosts[0].ip: 'db.example' is not an IP address"),
            ("provider: ssh\nssh: {hosts: [{address: 10.0.0.1, role: agent}]}\n", "f: ssh.hosts: has 0 masters"),
            ("provider: ssh\nssh: {hosts: [{address: 10.0.0.1, role: king}]}\n", "f: ssh.hosts[0].role: unknown variant `king`"),
            ("provider: digital_ocean\n", "f: digital_ocean.region: '' is not a region slug"),
            ("provider: digital_ocean\ndigital_ocean: {region: nyc3}\n", "f: digital_ocean.ssh_keys: names no key"),
            ("provider: digital_ocean\ndigital_ocean: {region: nyc3, ssh_keys: [1]}\ngitops: [{repo: ..}]\n", "f: gitops[0].repo: must be a URL"),
        ];
        for (text, want) in cases {
            let got = error_text(Infra::from_yaml(text, "f"));
            assert!(
                got.starts_with(want),
                "for {text:?}:\n got {got}\nwant {want}..."
            );
        }
    }

    #[test]
    fn paths_are_made_absolute_and_ports_found() {
        assert_eq!(absolute(Path::new("/a/b"), "../c/./d"), Path::new("/a/c/d"));
        assert_eq!(absolute(Path::new("/a/b"), "/x"), Path::new("/x"));
        assert!(names_ports("cpus:1; ports(*):[1-2]"));
        assert!(!names_ports("cpus:1;mem:2"));
    }
}

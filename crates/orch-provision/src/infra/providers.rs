//! The infra file's per-provider sections (`docker:`, `ssh:`, `digital_ocean:`), typed and
//! validated. Only the section of the provider in use is checked; the others may be absent.
//!
//! May depend on: provision::infra::error. No I/O.

use super::error::{invalid, InfraError};
use std::net::IpAddr;

/// What a machine of a cluster runs.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum MachineRole {
    /// `orch master`.
    Master,
    /// `orch agent`.
    Agent,
    /// `orch agent --public` (resources under the slave_public role).
    PublicAgent,
}

impl MachineRole {
    /// `master`, `agent` or `public_agent`, as the infra file spells it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Master => "master",
            Self::Agent => "agent",
            Self::PublicAgent => "public_agent",
        }
    }

    /// The prefix of machine names: `master`, `agent`, `public-agent`.
    pub fn prefix(self) -> &'static str {
        match self {
            Self::Master => "master",
            Self::Agent => "agent",
            Self::PublicAgent => "public-agent",
        }
    }
}

/// `docker:` — masters and agents as containers of the local Docker engine.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DockerEntry {
    /// The user-defined bridge network the containers join [default: `orch-<cluster>`].
    #[serde(default)]
    pub network: Option<String>,
    /// The network's subnet in CIDR form, e.g. `172.30.0.0/24` [default: Docker picks one].
    #[serde(default)]
    pub subnet: Option<String>,
    /// The image's name [default: `orch-node:<cluster>`]; it is built locally from the orch
    /// binary, never pulled.
    #[serde(default)]
    pub image: Option<String>,
    /// The engine's socket, mounted into agents so that they run Docker tasks
    /// [default: `/var/run/docker.sock`].
    #[serde(default)]
    pub socket: Option<String>,
}

/// `ssh:` — existing hosts reached over SSH.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SshEntry {
    /// The login every host uses unless it names its own [default: `root`].
    #[serde(default = "default_user")]
    pub user: String,
    /// The SSH port unless a host names its own [default: 22].
    #[serde(default = "default_ssh_port")]
    pub port: u16,
    /// A private key file (OpenSSH format, unencrypted); without it the keys of ssh-agent
    /// (`SSH_AUTH_SOCK`) are tried.
    #[serde(default)]
    pub identity_file: Option<String>,
    /// Run installation commands through `sudo -n` (for a login other than root)
    /// [default: false].
    #[serde(default)]
    pub sudo: bool,
    /// The known_hosts file host keys are checked against [default: `~/.ssh/known_hosts`].
    #[serde(default)]
    pub known_hosts: Option<String>,
    /// Where orch lives on each host: binary, data, logs [default: `/opt/orch`].
    #[serde(default = "default_install_dir")]
    pub install_dir: String,
    /// The hosts. Their roles fix how many masters and agents the cluster has.
    #[serde(default)]
    pub hosts: Vec<SshHostEntry>,
}

impl Default for SshEntry {
    fn default() -> Self {
        Self {
            user: default_user(),
            port: default_ssh_port(),
            identity_file: None,
            sudo: false,
            known_hosts: None,
            install_dir: default_install_dir(),
            hosts: Vec::new(),
        }
    }
}

/// One host of `ssh.hosts`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SshHostEntry {
    /// Where SSH reaches it: an IP address or a DNS name.
    pub address: String,
    /// What it runs: `master`, `agent` or `public_agent`.
    pub role: MachineRole,
    /// The address the cluster's processes listen on and advertise [default: `address`
    /// when it is an IP].
    #[serde(default)]
    pub ip: Option<IpAddr>,
    /// Its SSH port [default: `ssh.port`].
    #[serde(default)]
    pub port: Option<u16>,
    /// Its login [default: `ssh.user`].
    #[serde(default)]
    pub user: Option<String>,
    /// Its host key, pinned (`ssh-ed25519 AAAA...`); checked instead of known_hosts.
    #[serde(default)]
    pub host_key: Option<String>,
    /// Its install dir [default: `ssh.install_dir`].
    #[serde(default)]
    pub install_dir: Option<String>,
    /// An agent's `--resources` [default: the top-level `agent_resources`, else detected].
    #[serde(default)]
    pub resources: Option<String>,
    /// An agent's `--attributes` [default: the top-level `agent_attributes`].
    #[serde(default)]
    pub attributes: Option<String>,
}

impl SshHostEntry {
    /// The address the cluster uses: `ip`, else `address` parsed as an IP.
    pub fn cluster_ip(&self) -> Option<IpAddr> {
        self.ip.or_else(|| self.address.parse().ok())
    }
}

/// `digital_ocean:` — droplets made through DigitalOcean's API v2.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DigitalOceanEntry {
    /// The region slug, e.g. `nyc3`.
    #[serde(default)]
    pub region: String,
    /// The size slug of masters and agents [default: `s-2vcpu-4gb`].
    #[serde(default = "default_size")]
    pub size: String,
    /// The image slug [default: `debian-12-x64`].
    #[serde(default = "default_image")]
    pub image: String,
    /// SSH keys put on the droplets: ids or fingerprints of keys in the account.
    #[serde(default)]
    pub ssh_keys: Vec<String>,
    /// The VPC the droplets join [default: the region's default VPC].
    #[serde(default)]
    pub vpc_uuid: Option<String>,
    /// The API's base URL [default: `https://api.digitalocean.com`].
    #[serde(default = "default_do_api")]
    pub api_url: String,
    /// The private key matching one of `ssh_keys` (the login is root) [default: ssh-agent].
    #[serde(default)]
    pub identity_file: Option<String>,
    /// The SSH port of the droplets [default: 22].
    #[serde(default = "default_ssh_port")]
    pub ssh_port: u16,
    /// Sources allowed to reach the cluster's ports through the cloud firewall
    /// [default: `0.0.0.0/0` and `::/0` for the API and LB ports; SSH from everywhere].
    #[serde(default)]
    pub allow_from: Vec<String>,
    /// Where orch lives on each droplet [default: `/opt/orch`]; `{machine}` in it is
    /// replaced by the machine's name (for droplets that share a filesystem, as the test
    /// fake's do).
    #[serde(default = "default_install_dir")]
    pub install_dir: String,
}

impl Default for DigitalOceanEntry {
    fn default() -> Self {
        Self {
            region: String::new(),
            size: default_size(),
            image: default_image(),
            ssh_keys: Vec::new(),
            vpc_uuid: None,
            api_url: default_do_api(),
            identity_file: None,
            ssh_port: default_ssh_port(),
            allow_from: Vec::new(),
            install_dir: default_install_dir(),
        }
    }
}

fn default_user() -> String {
    "root".to_owned()
}

fn default_ssh_port() -> u16 {
    22
}

fn default_install_dir() -> String {
    "/opt/orch".to_owned()
}

fn default_size() -> String {
    "s-2vcpu-4gb".to_owned()
}

fn default_image() -> String {
    "debian-12-x64".to_owned()
}

fn default_do_api() -> String {
    "https://api.digitalocean.com".to_owned()
}

fn is_docker_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | ':' | '/'))
}

impl DockerEntry {
    /// Checks names and the subnet.
    pub fn validate(&self) -> Result<(), InfraError> {
        if let Some(network) = &self.network {
            if !is_docker_name(network) || network.contains([':', '/']) {
                return Err(invalid(
                    "docker.network",
                    format!("'{network}' is not a network name (letters, digits, '_.-')"),
                ));
            }
        }
        if let Some(image) = &self.image {
            if !is_docker_name(image) || image.chars().any(|c| c.is_ascii_uppercase()) {
                return Err(invalid(
                    "docker.image",
                    format!("'{image}' is not an image name (lower case, e.g. orch-node:demo)"),
                ));
            }
        }
        if let Some(subnet) = &self.subnet {
            let ok = subnet.split_once('/').is_some_and(|(ip, bits)| {
                ip.parse::<IpAddr>().is_ok() && bits.parse::<u8>().is_ok_and(|b| b <= 32)
            });
            if !ok {
                return Err(invalid(
                    "docker.subnet",
                    format!("'{subnet}' is not a CIDR subnet like 172.30.0.0/24"),
                ));
            }
        }
        Ok(())
    }
}

impl SshEntry {
    /// Checks the hosts: each with a usable address and cluster IP, no address twice, at
    /// least one master and one agent, and 1, 3 or 5 masters.
    pub fn validate(&self) -> Result<(), InfraError> {
        if self.user.is_empty() {
            return Err(invalid("ssh.user", "must name a login"));
        }
        if self.hosts.is_empty() {
            return Err(invalid(
                "ssh.hosts",
                "names no host; list each with its address and role (master, agent, public_agent)",
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, host) in self.hosts.iter().enumerate() {
            let at = format!("ssh.hosts[{i}]");
            if host.address.trim().is_empty() || host.address.contains(char::is_whitespace) {
                return Err(invalid(
                    format!("{at}.address"),
                    "must be an IP or host name",
                ));
            }
            if host.cluster_ip().is_none() {
                return Err(invalid(
                    format!("{at}.ip"),
                    format!(
                        "'{}' is not an IP address; give the IP the cluster uses in ip:",
                        host.address
                    ),
                ));
            }
            let port = host.port.unwrap_or(self.port);
            if !seen.insert((host.address.clone(), port)) {
                return Err(invalid(
                    format!("{at}.address"),
                    format!("{}:{port} is listed twice", host.address),
                ));
            }
            if let Some(key) = &host.host_key {
                if key.split_whitespace().count() < 2 {
                    return Err(invalid(
                        format!("{at}.host_key"),
                        "must be '<type> <base64>', e.g. a line of ssh-keyscan without the host",
                    ));
                }
            }
            if host
                .install_dir
                .as_deref()
                .is_some_and(|d| !d.starts_with('/'))
            {
                return Err(invalid(
                    format!("{at}.install_dir"),
                    "must be an absolute path",
                ));
            }
        }
        if !self.install_dir.starts_with('/') {
            return Err(invalid("ssh.install_dir", "must be an absolute path"));
        }
        let masters = self.count(MachineRole::Master);
        if ![1, 3, 5].contains(&masters) {
            return Err(invalid(
                "ssh.hosts",
                format!("has {masters} masters; a cluster needs 1, 3 or 5"),
            ));
        }
        if self.count(MachineRole::Agent) + self.count(MachineRole::PublicAgent) == 0 {
            return Err(invalid("ssh.hosts", "has no agent"));
        }
        Ok(())
    }

    /// How many hosts have `role`.
    pub fn count(&self, role: MachineRole) -> u32 {
        let n = self.hosts.iter().filter(|h| h.role == role).count();
        u32::try_from(n).unwrap_or(u32::MAX)
    }
}

impl DigitalOceanEntry {
    /// Checks the slugs, keys and URL.
    pub fn validate(&self) -> Result<(), InfraError> {
        let slug = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        };
        if !slug(&self.region) {
            return Err(invalid(
                "digital_ocean.region",
                format!("'{}' is not a region slug, e.g. nyc3", self.region),
            ));
        }
        for (key, value) in [("size", &self.size), ("image", &self.image)] {
            if !slug(value) {
                return Err(invalid(
                    format!("digital_ocean.{key}"),
                    format!("'{value}' is not a slug"),
                ));
            }
        }
        if self.ssh_keys.is_empty() {
            return Err(invalid(
                "digital_ocean.ssh_keys",
                "names no key; droplets are reached over SSH as root with one of them",
            ));
        }
        if !self.install_dir.starts_with('/') {
            return Err(invalid(
                "digital_ocean.install_dir",
                "must be an absolute path",
            ));
        }
        if !(self.api_url.starts_with("https://") || self.api_url.starts_with("http://")) {
            return Err(invalid(
                "digital_ocean.api_url",
                format!("'{}' is not an http(s) URL", self.api_url),
            ));
        }
        Ok(())
    }
}

//! `orch agent` settings: flags → validated [`AgentConfig`], with the machine's resources and
//! address detected when not given.

use crate::runtime::{GcPolicy, DEFAULT_GC_DELAY, DEFAULT_GC_DISK_WATERMARK};
use orch_core::model::{
    parse_attributes, Attributes, PortRange, Resources, DEFAULT_ROLE, PUBLIC_ROLE,
};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

/// The containerizers an agent can offer.
pub const CONTAINERIZERS: [&str; 3] = ["mesos", "docker", "mock"];

/// Port range offered when `--resources` names no ports.
pub const DEFAULT_PORTS: PortRange = PortRange {
    begin: 31000,
    end: 32000,
};

/// Memory kept back for the system when detecting `mem`, MiB.
pub const RESERVED_MEM_MB: f64 = 1024.0;

/// Why agent settings are unusable. Each message names the flag at fault.
#[derive(Debug, thiserror::Error)]
pub enum AgentConfigError {
    /// `--masters` is missing or empty.
    #[error("--masters is required (host:port of every master, comma-separated)")]
    NoMasters,
    /// A master address is not `host:port`.
    #[error("--masters: '{0}' is not host:port")]
    BadMaster(String),
    /// `--resources` or `--attributes` does not parse.
    #[error("{flag}")]
    Resources {
        /// The flag.
        flag: &'static str,
        /// What the parser said.
        source: orch_core::model::ResourcesError,
    },
    /// An unknown containerizer name.
    #[error("--containerizers: unknown '{0}' (mesos, docker, mock)")]
    UnknownContainerizer(String),
    /// A plaintext listener off loopback without `--insecure`.
    #[error("{0}")]
    Insecure(String),
    /// The TLS flags cannot be used.
    #[error("cannot use the TLS files")]
    Tls(#[source] orch_pki::PkiError),
    /// `--simulate 0`.
    #[error("--simulate must be at least 1")]
    ZeroSimulate,
    /// The work dir cannot be created.
    #[error("--work-dir {path}: cannot create it")]
    WorkDir {
        /// The directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// `--gc-disk-watermark` is not a fraction.
    #[error("--gc-disk-watermark must be a fraction of the disk above 0 and at most 1, not {0}")]
    GcWatermark(f64),
    /// No hostname was given and the system's cannot be read.
    #[error("--hostname not given and the system hostname is unreadable")]
    Hostname(#[source] nix::Error),
}

/// The flags of `orch agent`, unvalidated.
#[derive(Debug, Clone, Default)]
pub struct AgentSettings {
    /// `--masters`: every master's `host:port`.
    pub masters: Vec<String>,
    /// `--listen` (default `127.0.0.1:5051`).
    pub listen: Option<SocketAddr>,
    /// `--insecure`: serve plaintext HTTP on an address other than loopback.
    pub insecure: bool,
    /// `--tls-cert`, `--tls-key`, `--tls-ca`: talk to the masters over TLS.
    pub tls_cert: Option<PathBuf>,
    /// See `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// See `tls_cert`.
    pub tls_ca: Option<PathBuf>,
    /// `--work-dir` (default `./orch-data/agent`).
    pub work_dir: Option<PathBuf>,
    /// `--hostname` (default: the system's).
    pub hostname: Option<String>,
    /// `--advertise-ip` (default: the listen IP, or the default route's source address).
    pub advertise_ip: Option<IpAddr>,
    /// `--resources` in Mesos syntax; names not given are detected.
    pub resources: Option<String>,
    /// `--attributes` in Mesos syntax.
    pub attributes: Option<String>,
    /// `--public`: offer resources under the `slave_public` role.
    pub public: bool,
    /// `--containerizers` (default: `mesos`, plus `docker` when the engine answers).
    pub containerizers: Option<Vec<String>>,
    /// `--simulate N`: N mock agents in this process.
    pub simulate: Option<usize>,
    /// `--unprivileged-user` (default `nobody`).
    pub unprivileged_user: Option<String>,
    /// `--gc-delay`: how long a finished task's sandbox is kept (default one week).
    pub gc_delay: Option<std::time::Duration>,
    /// `--gc-disk-watermark`: the used fraction of the work dir's disk above which finished
    /// sandboxes go early, oldest first (default 0.9).
    pub gc_disk_watermark: Option<f64>,
}

/// A validated agent configuration.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// Master addresses (`host:port`), tried in order to find the leader.
    pub masters: Vec<String>,
    /// Address the HTTP server binds.
    pub listen: SocketAddr,
    /// Where ids, journals and sandboxes live.
    pub work_dir: PathBuf,
    /// Hostname reported to the masters.
    pub hostname: String,
    /// IP tasks and the masters reach this agent at.
    pub advertise_ip: IpAddr,
    /// Resources offered (per simulated agent, in simulation).
    pub resources: Resources,
    /// Attributes for constraints.
    pub attributes: Attributes,
    /// `*` or `slave_public`.
    pub role: String,
    /// Containerizers to offer (`mock` only in simulation).
    pub containerizers: Vec<String>,
    /// Number of simulated agents; `None` for one real agent.
    pub simulate: Option<usize>,
    /// Its certificate and the cluster CA, when it talks to the masters over TLS.
    pub tls: Option<std::sync::Arc<orch_pki::tls::NodeTls>>,
    /// Who runs the tasks marked unprivileged that name no user.
    pub unprivileged_user: String,
    /// When finished tasks' sandboxes are removed.
    pub gc: GcPolicy,
}

impl AgentConfig {
    /// Validates `settings`, filling defaults from the machine. `docker_answers` is whether
    /// the Docker engine is reachable (decides the default containerizers).
    pub fn from_settings(
        settings: AgentSettings,
        docker_answers: bool,
    ) -> Result<Self, AgentConfigError> {
        let masters = settings
            .masters
            .into_iter()
            .map(|m| checked_master(&m))
            .collect::<Result<Vec<_>, _>>()?;
        if masters.is_empty() {
            return Err(AgentConfigError::NoMasters);
        }
        if settings.simulate == Some(0) {
            return Err(AgentConfigError::ZeroSimulate);
        }
        let gc = GcPolicy {
            delay: settings.gc_delay.unwrap_or(DEFAULT_GC_DELAY),
            disk_watermark: settings
                .gc_disk_watermark
                .unwrap_or(DEFAULT_GC_DISK_WATERMARK),
        };
        if !(gc.disk_watermark > 0.0 && gc.disk_watermark <= 1.0) {
            return Err(AgentConfigError::GcWatermark(gc.disk_watermark));
        }
        let listen = settings
            .listen
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 5051)));
        let serves_tls = settings.tls_cert.is_some();
        if !serves_tls && !orch_core::listen::plaintext_allowed(listen, settings.insecure) {
            return Err(AgentConfigError::Insecure(orch_core::listen::refusal(
                "agent", listen,
            )));
        }
        let work_dir = settings
            .work_dir
            .unwrap_or_else(|| PathBuf::from("./orch-data/agent"));
        std::fs::create_dir_all(&work_dir).map_err(|source| AgentConfigError::WorkDir {
            path: work_dir.clone(),
            source,
        })?;
        let hostname = match settings.hostname {
            Some(name) => name,
            None => nix::unistd::gethostname()
                .map_err(AgentConfigError::Hostname)?
                .to_string_lossy()
                .into_owned(),
        };
        let advertise_ip = settings
            .advertise_ip
            .unwrap_or_else(|| default_advertise_ip(listen.ip()));
        let resources = Resources::parse_mesos(
            settings.resources.as_deref().unwrap_or(""),
            detect_resources(&work_dir),
        )
        .map_err(|source| AgentConfigError::Resources {
            flag: "--resources",
            source,
        })?;
        let attributes =
            parse_attributes(settings.attributes.as_deref().unwrap_or("")).map_err(|source| {
                AgentConfigError::Resources {
                    flag: "--attributes",
                    source,
                }
            })?;
        let containerizers = match (settings.simulate, settings.containerizers) {
            (Some(_), _) => vec!["mock".to_owned()],
            (None, Some(list)) if !list.is_empty() => {
                let mut names = Vec::new();
                for name in list {
                    let name = name.trim().to_ascii_lowercase();
                    if !CONTAINERIZERS.contains(&name.as_str()) {
                        return Err(AgentConfigError::UnknownContainerizer(name));
                    }
                    if !names.contains(&name) {
                        names.push(name);
                    }
                }
                names
            }
            (None, _) if docker_answers => vec!["mesos".to_owned(), "docker".to_owned()],
            (None, _) => vec!["mesos".to_owned()],
        };
        let tls = orch_pki::tls::TlsFiles::from_flags(
            settings.tls_cert,
            settings.tls_key,
            settings.tls_ca,
        )
        .and_then(|files| files.map(|f| f.load()).transpose())
        .map_err(AgentConfigError::Tls)?
        .map(std::sync::Arc::new);
        Ok(Self {
            tls,
            masters,
            listen,
            work_dir,
            hostname,
            advertise_ip,
            resources,
            attributes,
            role: if settings.public {
                PUBLIC_ROLE
            } else {
                DEFAULT_ROLE
            }
            .to_owned(),
            containerizers,
            simulate: settings.simulate,
            unprivileged_user: settings
                .unprivileged_user
                .unwrap_or_else(|| "nobody".to_owned()),
            gc,
        })
    }
}

/// `host:port`, with an optional `http://` prefix removed.
fn checked_master(value: &str) -> Result<String, AgentConfigError> {
    let value = value
        .trim()
        .trim_start_matches("http://")
        .trim_end_matches('/');
    match value.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {
            Ok(value.to_owned())
        }
        _ => Err(AgentConfigError::BadMaster(value.to_owned())),
    }
}

/// The listen IP, or for a wildcard the source address of the default route (found by
/// "connecting" a UDP socket, which sends nothing), or 127.0.0.1 as a last resort.
pub fn default_advertise_ip(listen: IpAddr) -> IpAddr {
    if !listen.is_unspecified() {
        return listen;
    }
    let routed = std::net::UdpSocket::bind("0.0.0.0:0")
        .and_then(|socket| {
            socket.connect("192.0.2.1:9")?;
            socket.local_addr()
        })
        .map(|addr| addr.ip())
        .ok()
        .filter(|ip| !ip.is_unspecified());
    routed.unwrap_or(IpAddr::from([127, 0, 0, 1]))
}

/// Resources of this machine: all cores, memory minus [`RESERVED_MEM_MB`], the free disk of
/// `work_dir`'s file system and [`DEFAULT_PORTS`]. Unreadable values are 0.
pub fn detect_resources(work_dir: &Path) -> Resources {
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get() as f64)
        .unwrap_or(1.0);
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| mem_total_mb(&text))
        .map(|total| (total - RESERVED_MEM_MB).max(0.0))
        .unwrap_or(0.0);
    let disk = nix::sys::statvfs::statvfs(work_dir)
        .map(|stat| {
            (stat.blocks_available() as f64) * (stat.fragment_size() as f64) / (1024.0 * 1024.0)
        })
        .map(f64::floor)
        .unwrap_or(0.0);
    Resources {
        cpus,
        mem,
        disk,
        ports: vec![DEFAULT_PORTS],
    }
}

/// `MemTotal` of `/proc/meminfo`, in MiB.
fn mem_total_mb(meminfo: &str) -> Option<f64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some((kib / 1024.0).floor())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(dir: &Path) -> AgentSettings {
        AgentSettings {
            masters: vec!["127.0.0.1:8080".into(), "http://m2:8080/".into()],
            work_dir: Some(dir.join("agent")),
            hostname: Some("node-1".into()),
            ..AgentSettings::default()
        }
    }

    #[test]
    fn parses_meminfo() {
        let text = "MemTotal:       24576000 kB\nMemFree:         1000 kB\n";
        assert_eq!(mem_total_mb(text), Some(24000.0));
        assert_eq!(mem_total_mb("nothing"), None);
    }

    #[test]
    fn detects_the_machine() {
        let dir = tempfile::tempdir().expect("tempdir");
        let detected = detect_resources(dir.path());
        assert!(detected.cpus >= 1.0);
        assert!(detected.mem > 0.0, "{detected}");
        assert!(detected.disk > 0.0, "{detected}");
        assert_eq!(detected.ports, vec![DEFAULT_PORTS]);
    }

    #[test]
    fn defaults_come_from_the_machine_and_flags_override_them() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = AgentConfig::from_settings(settings(dir.path()), false).expect("valid");
        assert_eq!(config.masters, vec!["127.0.0.1:8080", "m2:8080"]);
        assert_eq!(config.listen, SocketAddr::from(([127, 0, 0, 1], 5051)));
        assert_eq!(config.containerizers, vec!["mesos"]);
        assert_eq!(config.role, "*");
        assert_eq!(config.gc, GcPolicy::default());
        assert_eq!(
            config.gc.delay,
            std::time::Duration::from_secs(7 * 24 * 3600)
        );
        assert!(config.resources.cpus >= 1.0);
        assert!(!config.advertise_ip.is_unspecified());
        assert!(dir.path().join("agent").is_dir());

        let mut custom = settings(dir.path());
        custom.resources = Some("cpus:2;mem:100".into());
        custom.attributes = Some("rack:r1".into());
        custom.public = true;
        custom.listen = Some(SocketAddr::from(([127, 0, 0, 2], 1)));
        let config = AgentConfig::from_settings(custom, true).expect("valid");
        assert_eq!((config.resources.cpus, config.resources.mem), (2.0, 100.0));
        assert!(config.resources.disk > 0.0);
        assert_eq!(config.role, "slave_public");
        assert_eq!(
            config.attributes.get("rack").map(String::as_str),
            Some("r1")
        );
        assert_eq!(config.containerizers, vec!["mesos", "docker"]);
        assert_eq!(config.advertise_ip, IpAddr::from([127, 0, 0, 2]));
    }

    #[test]
    fn bad_settings_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut no_masters = settings(dir.path());
        no_masters.masters.clear();
        assert!(matches!(
            AgentConfig::from_settings(no_masters, false),
            Err(AgentConfigError::NoMasters)
        ));
        let mut bad_master = settings(dir.path());
        bad_master.masters = vec!["nohost".into()];
        assert!(AgentConfig::from_settings(bad_master, false).is_err());
        let mut bad_resources = settings(dir.path());
        bad_resources.resources = Some("gpus:1".into());
        assert!(AgentConfig::from_settings(bad_resources, false).is_err());
        for watermark in [0.0, 1.5, f64::NAN] {
            let mut bad_gc = settings(dir.path());
            bad_gc.gc_disk_watermark = Some(watermark);
            assert!(matches!(
                AgentConfig::from_settings(bad_gc, false),
                Err(AgentConfigError::GcWatermark(_))
            ));
        }
        let mut gc = settings(dir.path());
        gc.gc_delay = Some(std::time::Duration::from_secs(60));
        gc.gc_disk_watermark = Some(0.5);
        let config = AgentConfig::from_settings(gc, false).expect("valid");
        assert_eq!(
            config.gc,
            GcPolicy {
                delay: std::time::Duration::from_secs(60),
                disk_watermark: 0.5
            }
        );
        let mut bad_containerizer = settings(dir.path());
        bad_containerizer.containerizers = Some(vec!["lxc".into()]);
        assert!(AgentConfig::from_settings(bad_containerizer, false).is_err());
        let mut simulated = settings(dir.path());
        simulated.simulate = Some(3);
        simulated.containerizers = Some(vec!["mesos".into()]);
        let config = AgentConfig::from_settings(simulated, true).expect("valid");
        assert_eq!(config.containerizers, vec!["mock"]);

        let mut everywhere = settings(dir.path());
        everywhere.listen = Some(SocketAddr::from(([0, 0, 0, 0], 5051)));
        match AgentConfig::from_settings(everywhere.clone(), false) {
            Err(AgentConfigError::Insecure(message)) => {
                assert!(message.contains("pass --insecure"), "{message}")
            }
            other => panic!("a plaintext listener off loopback: {other:?}"),
        }
        everywhere.insecure = true;
        assert!(AgentConfig::from_settings(everywhere, false).is_ok());
    }
}

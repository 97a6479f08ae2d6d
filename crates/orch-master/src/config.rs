//! Typed configuration of each process, merged from command-line flags and an optional
//! config file (YAML, strict: unknown keys are errors), validated once at startup.
//!
//! May depend on: model.

use orch_core::model::MasterId;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};

/// Why a configuration is unusable. Each message names the setting at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {path}")]
    ReadFile {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The config file is not valid YAML for this schema (unknown keys included).
    #[error("invalid config file {path}: {reason}")]
    ParseFile {
        /// The file.
        path: String,
        /// What the parser said, including the key and line.
        reason: String,
    },
    /// An address is not `host:port`.
    #[error("{setting}: '{value}' is not host:port")]
    BadAddress {
        /// The flag or key.
        setting: &'static str,
        /// The rejected value.
        value: String,
    },
    /// The same address appears twice in `--masters`.
    #[error("--masters lists {address} twice")]
    DuplicateMaster {
        /// The repeated address.
        address: String,
    },
    /// The advertise address is not in `--masters` and no `--id` says which node this is.
    #[error(
        "this master's address {advertise} is not in --masters ({masters}); give it its place in the list, \
         or start it with --id N to join an existing cluster (then run `orch cluster add-master {advertise}`)"
    )]
    NotInMasters {
        /// This master's address.
        advertise: String,
        /// The list given.
        masters: String,
    },
    /// `--id` contradicts the position of the advertise address in `--masters`, or takes the id
    /// of another listed master.
    #[error("--id {id} contradicts --masters: {reason}")]
    IdMismatch {
        /// The id given.
        id: MasterId,
        /// Which way it contradicts.
        reason: String,
    },
    /// A plaintext listener off loopback without `--insecure`.
    #[error("{0}")]
    Insecure(String),
    /// Some of the TLS flags, not all three.
    #[error("--tls-cert, --tls-key and --tls-ca go together: give all three, or none")]
    TlsIncomplete,
    /// TLS without a token, or a token without TLS.
    #[error(
        "--token-file goes with TLS: a master with --tls-* asks every client for the token \
         in it (`orch pki init` makes one), and one without TLS serves loopback only, with no token"
    )]
    TokenWithoutTls,
    /// A numeric setting is out of range.
    #[error("{setting} must be {rule}")]
    OutOfRange {
        /// The flag or key.
        setting: &'static str,
        /// The rule it breaks.
        rule: &'static str,
    },
}

/// Settings of `orch master` as they may appear in its `--config` file. Every field is
/// optional; a flag on the command line wins over the file.
#[derive(Debug, Default, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MasterSettings {
    /// Address to listen on (default `127.0.0.1:8080`).
    pub listen: Option<SocketAddr>,
    /// Address other masters and clients use for this master (default: the listen address, or
    /// the host's address when listening on `0.0.0.0`).
    pub advertise: Option<String>,
    /// The initial master set, in the same order on every master (default: this master alone).
    pub masters: Option<Vec<String>>,
    /// Where the Raft log and snapshots live (default `./orch-data/master`).
    pub data_dir: Option<PathBuf>,
    /// Raft node id (default: 1-based position of the advertise address in `masters`).
    pub id: Option<MasterId>,
    /// Build a snapshot and compact the log every this many entries (default 5000).
    pub snapshot_logs: Option<u64>,
    /// How long an agent may go without a heartbeat before it is unreachable (default `5s`;
    /// a number alone means seconds).
    pub agent_timeout: Option<String>,
    /// The largest snapshot this master receives from a leader, in bytes (default 1 GiB).
    pub max_snapshot_bytes: Option<u64>,
    /// Serve plaintext HTTP on an address other than loopback (default false).
    pub insecure: Option<bool>,
    /// This master's certificate (PEM), for HTTPS and as its client certificate.
    pub tls_cert: Option<PathBuf>,
    /// Its private key (PEM).
    pub tls_key: Option<PathBuf>,
    /// The cluster CA (PEM): peers' and clients' certificates are verified against it.
    pub tls_ca: Option<PathBuf>,
    /// The file holding the cluster's management token (required with TLS).
    pub token_file: Option<PathBuf>,
}

impl MasterSettings {
    /// Reads a YAML settings file; unknown keys are errors.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::ReadFile {
            path: path.display().to_string(),
            source,
        })?;
        serde_yaml_ng::from_str(&text).map_err(|e| ConfigError::ParseFile {
            path: path.display().to_string(),
            reason: e.to_string(),
        })
    }

    /// `self` with every unset field taken from `fallback`.
    pub fn or(self, fallback: Self) -> Self {
        Self {
            listen: self.listen.or(fallback.listen),
            advertise: self.advertise.or(fallback.advertise),
            masters: self.masters.or(fallback.masters),
            data_dir: self.data_dir.or(fallback.data_dir),
            id: self.id.or(fallback.id),
            snapshot_logs: self.snapshot_logs.or(fallback.snapshot_logs),
            agent_timeout: self.agent_timeout.or(fallback.agent_timeout),
            max_snapshot_bytes: self.max_snapshot_bytes.or(fallback.max_snapshot_bytes),
            insecure: self.insecure.or(fallback.insecure),
            tls_cert: self.tls_cert.or(fallback.tls_cert),
            tls_key: self.tls_key.or(fallback.tls_key),
            tls_ca: self.tls_ca.or(fallback.tls_ca),
            token_file: self.token_file.or(fallback.token_file),
        }
    }
}

/// Raft timings in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RaftTimings {
    /// Leader heartbeat period.
    pub heartbeat_ms: u64,
    /// Lower bound of the randomised election timeout (the upper bound is twice this).
    pub election_timeout_ms: u64,
}

impl Default for RaftTimings {
    fn default() -> Self {
        Self {
            heartbeat_ms: 50,
            election_timeout_ms: 150,
        }
    }
}

/// A validated master configuration.
#[derive(Debug, Clone)]
pub struct MasterConfig {
    /// Address the HTTP server binds.
    pub listen: SocketAddr,
    /// `host:port` other masters and clients reach this master at.
    pub advertise: String,
    /// The initial master set (this master included unless it joins an existing cluster).
    pub masters: Vec<String>,
    /// This master's Raft id.
    pub id: MasterId,
    /// True when this master is not in `masters`: it waits to be added with `add-master`.
    pub joining: bool,
    /// Raft log and snapshot directory.
    pub data_dir: PathBuf,
    /// Snapshot and compact the log every this many entries.
    pub snapshot_logs: u64,
    /// Raft timings.
    pub raft: RaftTimings,
    /// Heartbeat silence after which an agent is unreachable.
    pub agent_timeout: std::time::Duration,
    /// The largest snapshot this master receives, in bytes.
    pub max_snapshot_bytes: u64,
    /// Plaintext HTTP off loopback was asked for (`--insecure`).
    pub insecure: bool,
    /// The TLS files, when this master serves HTTPS.
    pub tls: Option<TlsFiles>,
    /// The management token's file (with TLS).
    pub token_file: Option<PathBuf>,
    /// `--rejoin`: a master whose data is gone but that the cluster knows as a member joins
    /// again under a new id, replacing its old one (see `master::rejoin`).
    pub rejoin: bool,
}

pub use orch_pki::tls::TlsFiles;

impl MasterConfig {
    /// Fills defaults and checks the settings against each other.
    pub fn from_settings(settings: MasterSettings) -> Result<Self, ConfigError> {
        let listen = settings
            .listen
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080)));
        let insecure = settings.insecure.unwrap_or(false);
        let tls = TlsFiles::from_flags(settings.tls_cert, settings.tls_key, settings.tls_ca)
            .map_err(|_| ConfigError::TlsIncomplete)?;
        if tls.is_some() != settings.token_file.is_some() {
            return Err(ConfigError::TokenWithoutTls);
        }
        if tls.is_none() && !orch_core::listen::plaintext_allowed(listen, insecure) {
            return Err(ConfigError::Insecure(orch_core::listen::refusal(
                "master", listen,
            )));
        }
        let advertise = match settings.advertise {
            Some(advertise) => checked_address("--advertise", advertise)?,
            None => default_advertise(listen),
        };
        let masters = match settings.masters {
            Some(list) if !list.is_empty() => list
                .into_iter()
                .map(|a| checked_address("--masters", a))
                .collect::<Result<Vec<_>, _>>()?,
            _ => vec![advertise.clone()],
        };
        for (i, address) in masters.iter().enumerate() {
            if masters[..i].contains(address) {
                return Err(ConfigError::DuplicateMaster {
                    address: address.clone(),
                });
            }
        }
        let position = masters
            .iter()
            .position(|m| *m == advertise)
            .map(|p| p as MasterId + 1);
        let (id, joining) = match (position, settings.id) {
            (Some(position), None) => (position, false),
            (Some(position), Some(id)) if id == position => (id, false),
            (Some(position), Some(id)) => {
                let reason = format!("{advertise} is number {position} in the list");
                return Err(ConfigError::IdMismatch { id, reason });
            }
            (None, Some(0)) => {
                return Err(ConfigError::OutOfRange {
                    setting: "--id",
                    rule: "at least 1",
                })
            }
            (None, Some(id)) => {
                if let Some(owner) = usize::try_from(id - 1).ok().and_then(|i| masters.get(i)) {
                    let reason = format!("id {id} belongs to {owner}, number {id} in --masters");
                    return Err(ConfigError::IdMismatch { id, reason });
                }
                (id, true)
            }
            (None, None) => {
                return Err(ConfigError::NotInMasters {
                    advertise,
                    masters: masters.join(","),
                });
            }
        };
        let snapshot_logs = settings.snapshot_logs.unwrap_or(5000);
        if snapshot_logs == 0 {
            return Err(ConfigError::OutOfRange {
                setting: "--snapshot-logs",
                rule: "at least 1",
            });
        }
        let max_snapshot_bytes = settings
            .max_snapshot_bytes
            .unwrap_or(orch_raft::guard::DEFAULT_MAX_SNAPSHOT_BYTES);
        if max_snapshot_bytes < 1 << 20 {
            return Err(ConfigError::OutOfRange {
                setting: "--max-snapshot-bytes",
                rule: "at least 1048576 (one snapshot chunk)",
            });
        }
        Ok(Self {
            max_snapshot_bytes,
            insecure,
            tls,
            token_file: settings.token_file,
            listen,
            advertise,
            masters,
            id,
            joining,
            data_dir: settings
                .data_dir
                .unwrap_or_else(|| PathBuf::from("./orch-data/master")),
            snapshot_logs,
            raft: RaftTimings::default(),
            agent_timeout: parse_duration("--agent-timeout", settings.agent_timeout.as_deref(), 5)?,
            rejoin: false,
        })
    }
}

/// A duration in humantime form (`5s`, `500ms`) or plain seconds; `default_secs` when unset.
pub fn parse_duration(
    setting: &'static str,
    value: Option<&str>,
    default_secs: u64,
) -> Result<std::time::Duration, ConfigError> {
    let Some(text) = value.map(str::trim) else {
        return Ok(std::time::Duration::from_secs(default_secs));
    };
    let parsed = match text.parse::<u64>() {
        Ok(seconds) => Ok(std::time::Duration::from_secs(seconds)),
        Err(_) => humantime::parse_duration(text),
    };
    match parsed {
        Ok(duration) if !duration.is_zero() => Ok(duration),
        _ => Err(ConfigError::OutOfRange {
            setting,
            rule: "a positive duration such as 5s or 500ms",
        }),
    }
}

/// Accepts `host:port` with a non-empty host and a numeric port.
fn checked_address(setting: &'static str, value: String) -> Result<String, ConfigError> {
    let value = value
        .trim()
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    match value.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => Ok(value),
        _ => Err(ConfigError::BadAddress { setting, value }),
    }
}

/// The listen address, or for a wildcard listen address this host's first non-loopback
/// address (falling back to loopback), with the listen port.
fn default_advertise(listen: SocketAddr) -> String {
    if !listen.ip().is_unspecified() {
        return listen.to_string();
    }
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let host_ip = (hostname.trim(), 0)
        .to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.find(|a| a.is_ipv4() && !a.ip().is_loopback()))
        .map(|a| a.ip())
        .unwrap_or(IpAddr::from([127, 0, 0, 1]));
    SocketAddr::new(host_ip, listen.port()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(masters: &[&str], advertise: &str, id: Option<MasterId>) -> MasterSettings {
        MasterSettings {
            advertise: Some(advertise.into()),
            masters: Some(masters.iter().map(|m| m.to_string()).collect()),
            id,
            ..MasterSettings::default()
        }
    }

    #[test]
    fn plaintext_off_loopback_needs_insecure() {
        let config = MasterConfig::from_settings(MasterSettings::default()).expect("defaults");
        assert_eq!(config.listen, SocketAddr::from(([127, 0, 0, 1], 8080)));
        let everywhere = MasterSettings {
            listen: Some(SocketAddr::from(([0, 0, 0, 0], 8080))),
            advertise: Some("10.0.0.2:8080".into()),
            ..MasterSettings::default()
        };
        match MasterConfig::from_settings(everywhere.clone()) {
            Err(error @ ConfigError::Insecure(_)) => {
                assert!(error.to_string().contains("pass --insecure"), "{error}")
            }
            other => panic!("a plaintext listener off loopback: {other:?}"),
        }
        let insecure = MasterSettings {
            insecure: Some(true),
            ..everywhere
        };
        assert!(
            MasterConfig::from_settings(insecure)
                .expect("--insecure")
                .insecure
        );
    }

    #[test]
    fn a_token_goes_with_tls() {
        let token_only = MasterSettings {
            token_file: Some(PathBuf::from("pki/token")),
            ..MasterSettings::default()
        };
        assert!(matches!(
            MasterConfig::from_settings(token_only),
            Err(ConfigError::TokenWithoutTls)
        ));
        let tls_only = MasterSettings {
            tls_cert: Some(PathBuf::from("m1.pem")),
            tls_key: Some(PathBuf::from("m1-key.pem")),
            tls_ca: Some(PathBuf::from("ca.pem")),
            ..MasterSettings::default()
        };
        assert!(matches!(
            MasterConfig::from_settings(tls_only),
            Err(ConfigError::TokenWithoutTls)
        ));
    }

    #[test]
    fn id_is_the_position_in_masters() {
        let config = MasterConfig::from_settings(settings(&["a:1", "b:2", "c:3"], "b:2", None))
            .expect("valid");
        assert_eq!((config.id, config.joining), (2, false));
    }

    #[test]
    fn joiner_needs_an_unused_id() {
        let joiner =
            MasterConfig::from_settings(settings(&["a:1"], "b:2", Some(2))).expect("valid");
        assert_eq!((joiner.id, joiner.joining), (2, true));
        assert!(matches!(
            MasterConfig::from_settings(settings(&["a:1"], "b:2", None)),
            Err(ConfigError::NotInMasters { .. })
        ));
        assert!(matches!(
            MasterConfig::from_settings(settings(&["a:1"], "b:2", Some(1))),
            Err(ConfigError::IdMismatch { .. })
        ));
    }

    #[test]
    fn inconsistent_lists_are_refused() {
        assert!(matches!(
            MasterConfig::from_settings(settings(&["a:1", "a:1"], "a:1", None)),
            Err(ConfigError::DuplicateMaster { .. })
        ));
        assert!(matches!(
            MasterConfig::from_settings(settings(&["a:1", "b:2"], "b:2", Some(1))),
            Err(ConfigError::IdMismatch { .. })
        ));
        assert!(matches!(
            MasterConfig::from_settings(settings(&["a"], "a", None)),
            Err(ConfigError::BadAddress { .. })
        ));
    }

    #[test]
    fn unknown_keys_in_the_file_are_errors() {
        let parsed: Result<MasterSettings, _> =
            serde_yaml_ng::from_str("listen: 127.0.0.1:1\nlistne: x\n");
        let message = parsed.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(message.contains("listne"), "{message}");
    }
}

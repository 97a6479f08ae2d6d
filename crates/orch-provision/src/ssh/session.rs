//! One SSH connection to a host with russh: the host key checked against its pin or the
//! known_hosts file (and recorded there on trust-on-first-use), login with a key file or the
//! keys of ssh-agent, `sh` scripts run through `sh -s` (or `sudo -n sh -s`) with the script on
//! stdin, and file uploads through SFTP.
//!
//! May depend on: provision::ssh::{known_hosts, SshError}.

use super::known_hosts::{self, Verdict};
use super::SshError;
use russh::client::{self, Handle};
use russh::keys::agent::client::AgentClient;
use russh::keys::{PrivateKeyWithHashAlg, PublicKey};
use russh::ChannelMsg;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt as _;

/// How a connection attempt may take at most.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// The ciphers offered, in order of preference.
const CIPHERS: &[russh::cipher::Name] = &[
    russh::cipher::AES_256_GCM,
    russh::cipher::CHACHA20_POLY1305,
    russh::cipher::AES_256_CTR,
    russh::cipher::AES_128_CTR,
];

/// How to log in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Identity {
    /// A private key file (OpenSSH format, unencrypted), absolute.
    File(PathBuf),
    /// The keys of the ssh-agent at `SSH_AUTH_SOCK`.
    Agent,
}

/// Everything needed to reach one host.
#[derive(Clone, Debug)]
pub struct Target {
    /// The machine's name, for messages.
    pub name: String,
    /// Host name or IP.
    pub address: String,
    /// SSH port.
    pub port: u16,
    /// Login.
    pub user: String,
    /// The pinned host key, when the infra file gives one.
    pub pinned: Option<PublicKey>,
    /// The known_hosts file.
    pub known_hosts: PathBuf,
    /// Record unknown host keys instead of refusing them.
    pub trust_on_first_use: bool,
    /// How to log in.
    pub identity: Identity,
    /// Run scripts through `sudo -n`.
    pub sudo: bool,
}

impl Target {
    /// `user@address:port`.
    pub fn id(&self) -> String {
        format!("{}@{}:{}", self.user, self.address, self.port)
    }

    /// `name (address:port)`.
    fn shown(&self) -> String {
        format!("{} ({}:{})", self.name, self.address, self.port)
    }
}

/// What the host key check saw, kept for the error message when it refused.
#[derive(Debug, Default)]
struct Seen {
    refusal: Option<SshError>,
}

struct Checker {
    target: Target,
    seen: Arc<Mutex<Seen>>,
}

impl Checker {
    fn verify(&self, offered: &PublicKey) -> Result<(), SshError> {
        let target = &self.target;
        let label = known_hosts::host_label(&target.address, target.port);
        let entries = match std::fs::read_to_string(&target.known_hosts) {
            Ok(text) => known_hosts::parse(&text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(source) => {
                return Err(SshError::KnownHostsRead {
                    path: target.known_hosts.clone(),
                    source,
                })
            }
        };
        match known_hosts::check(offered, &label, target.pinned.as_ref(), &entries) {
            Verdict::Known => Ok(()),
            Verdict::Changed { expected } => Err(SshError::HostKeyChanged {
                host: target.shown(),
                expected,
                offered: known_hosts::fingerprint(offered),
            }),
            Verdict::Unknown if target.trust_on_first_use => {
                let line = known_hosts::line(&label, offered).unwrap_or_default();
                known_hosts::append(&target.known_hosts, &line).map_err(|source| {
                    SshError::KnownHostsWrite {
                        path: target.known_hosts.clone(),
                        source,
                    }
                })
            }
            Verdict::Unknown => Err(SshError::UnknownHostKey {
                host: target.shown(),
                label,
                key: known_hosts::line("", offered)
                    .unwrap_or_default()
                    .trim()
                    .to_owned(),
                fingerprint: known_hosts::fingerprint(offered),
                known_hosts: target.known_hosts.clone(),
            }),
        }
    }
}

impl client::Handler for Checker {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        server_public_key: &russh::keys::PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let russh::keys::PublicKeyOrCertificate::PublicKey { key, .. } = server_public_key else {
            let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
            seen.refusal = Some(SshError::CertificateHostKey {
                host: self.target.shown(),
            });
            return Ok(false);
        };
        match self.verify(key) {
            Ok(()) => Ok(true),
            Err(refusal) => {
                let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
                seen.refusal = Some(refusal);
                Ok(false)
            }
        }
    }
}

/// What a script printed and how it exited.
#[derive(Clone, Debug, Default)]
pub struct Output {
    /// The exit status (255 when none was sent).
    pub status: u32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

/// An authenticated SSH connection.
pub struct Connection {
    handle: Handle<Checker>,
    target: Target,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("target", &self.target.id())
            .finish()
    }
}

impl Connection {
    /// Connects, checks the host key and logs in (one attempt).
    pub async fn open(target: &Target) -> Result<Self, SshError> {
        let config = Arc::new(client::Config {
            keepalive_interval: Some(Duration::from_secs(15)),
            nodelay: true,
            // AES-GCM first: ring's is hardware-accelerated, so uploads are fast.
            preferred: russh::Preferred {
                cipher: std::borrow::Cow::Borrowed(CIPHERS),
                ..russh::Preferred::default()
            },
            ..client::Config::default()
        });
        let seen = Arc::new(Mutex::new(Seen::default()));
        let checker = Checker {
            target: target.clone(),
            seen: seen.clone(),
        };
        let address = (target.address.as_str(), target.port);
        let connected =
            tokio::time::timeout(CONNECT_TIMEOUT, client::connect(config, address, checker)).await;
        let refusal = || {
            seen.lock()
                .unwrap_or_else(|e| e.into_inner())
                .refusal
                .take()
        };
        let mut handle = match connected {
            Ok(Ok(handle)) => handle,
            Ok(Err(source)) => {
                return Err(refusal().unwrap_or(SshError::Connect {
                    host: target.shown(),
                    reason: source.to_string(),
                }))
            }
            Err(_) => {
                return Err(SshError::Connect {
                    host: target.shown(),
                    reason: format!("no SSH handshake within {CONNECT_TIMEOUT:?}"),
                })
            }
        };
        authenticate(&mut handle, target).await?;
        Ok(Self {
            handle,
            target: target.clone(),
        })
    }

    /// Retries [`Connection::open`] until it succeeds or `timeout` passes; a refused host key
    /// or a refused login fails at once. `on_wait` is called now and then with the last error.
    pub async fn open_with_retries(
        target: &Target,
        timeout: Duration,
        mut on_wait: impl FnMut(Duration, &SshError),
    ) -> Result<Self, SshError> {
        let begin = Instant::now();
        let mut reported = Instant::now();
        loop {
            match Self::open(target).await {
                Ok(connection) => return Ok(connection),
                Err(error) if !error.is_transient() => return Err(error),
                Err(error) => {
                    if begin.elapsed() >= timeout {
                        return Err(SshError::Timeout {
                            host: target.shown(),
                            waited: timeout,
                            last: error.to_string(),
                        });
                    }
                    if reported.elapsed() >= Duration::from_secs(5) {
                        on_wait(begin.elapsed(), &error);
                        reported = Instant::now();
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    }

    /// The host this connects to.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// True once the connection is gone.
    pub fn is_closed(&self) -> bool {
        self.handle.is_closed()
    }

    /// Runs `script` with `sh -s` (through `sudo -n` when the host says so).
    pub async fn run(&self, script: &str) -> Result<Output, SshError> {
        let ssh = |source: russh::Error| SshError::Ssh {
            host: self.target.shown(),
            source,
        };
        let mut channel = self.handle.channel_open_session().await.map_err(ssh)?;
        let command = if self.target.sudo {
            "sudo -n sh -s"
        } else {
            "sh -s"
        };
        channel.exec(true, command).await.map_err(ssh)?;
        channel
            .data_bytes(script.as_bytes().to_vec())
            .await
            .map_err(ssh)?;
        channel.eof().await.map_err(ssh)?;
        let mut out = Output {
            status: 255,
            ..Output::default()
        };
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        while let Some(message) = channel.wait().await {
            match message {
                ChannelMsg::Data { data } => stdout.extend_from_slice(&data),
                ChannelMsg::ExtendedData { data, .. } => stderr.extend_from_slice(&data),
                ChannelMsg::ExitStatus { exit_status } => out.status = exit_status,
                _ => {}
            }
        }
        out.stdout = String::from_utf8_lossy(&stdout).into_owned();
        out.stderr = String::from_utf8_lossy(&stderr).into_owned();
        Ok(out)
    }

    /// Runs `script` and fails unless it exits 0; returns its stdout.
    pub async fn run_ok(&self, what: &str, script: &str) -> Result<String, SshError> {
        let out = self.run(script).await?;
        if out.status != 0 {
            return Err(SshError::Command {
                host: self.target.shown(),
                what: what.to_owned(),
                status: out.status,
                output: format!("{}{}", out.stdout, out.stderr).trim().to_owned(),
            });
        }
        Ok(out.stdout)
    }

    /// Copies the local file `local` to `remote` through SFTP; returns the bytes sent.
    pub async fn upload(&self, local: &std::path::Path, remote: &str) -> Result<u64, SshError> {
        let sftp_error = |source: russh_sftp::client::error::Error| SshError::Sftp {
            host: self.target.shown(),
            path: remote.to_owned(),
            source,
        };
        let ssh = |source: russh::Error| SshError::Ssh {
            host: self.target.shown(),
            source,
        };
        let mut file = tokio::fs::File::open(local)
            .await
            .map_err(|source| SshError::Local {
                path: local.to_owned(),
                source,
            })?;
        let channel = self.handle.channel_open_session().await.map_err(ssh)?;
        channel.request_subsystem(true, "sftp").await.map_err(ssh)?;
        let sftp = russh_sftp::client::SftpSession::new(channel.into_stream())
            .await
            .map_err(sftp_error)?;
        sftp.set_timeout(60);
        let mut remote_file = sftp.create(remote).await.map_err(sftp_error)?;
        let copied = tokio::io::copy(&mut file, &mut remote_file)
            .await
            .map_err(|source| SshError::Upload {
                host: self.target.shown(),
                path: remote.to_owned(),
                source,
            })?;
        remote_file
            .shutdown()
            .await
            .map_err(|source| SshError::Upload {
                host: self.target.shown(),
                path: remote.to_owned(),
                source,
            })?;
        let _ = sftp.close().await;
        Ok(copied)
    }

    /// Closes the connection.
    pub async fn close(&self) {
        let _ = self
            .handle
            .disconnect(russh::Disconnect::ByApplication, "", "en")
            .await;
    }
}

async fn authenticate(handle: &mut Handle<Checker>, target: &Target) -> Result<(), SshError> {
    let ssh = |source: russh::Error| SshError::Ssh {
        host: target.shown(),
        source,
    };
    let refused = |tried: String| SshError::AuthRefused {
        host: target.shown(),
        user: target.user.clone(),
        tried,
    };
    match &target.identity {
        Identity::File(path) => {
            let key = russh::keys::load_secret_key(path, None).map_err(|source| SshError::Key {
                path: path.clone(),
                source,
            })?;
            let hash = handle
                .best_supported_rsa_hash()
                .await
                .map_err(ssh)?
                .flatten();
            let result = handle
                .authenticate_publickey(
                    target.user.clone(),
                    PrivateKeyWithHashAlg::new(Arc::new(key), hash),
                )
                .await
                .map_err(ssh)?;
            if result.success() {
                Ok(())
            } else {
                Err(refused(format!("the key {}", path.display())))
            }
        }
        Identity::Agent => {
            let mut agent = AgentClient::connect_env()
                .await
                .map_err(|source| SshError::Agent {
                    reason: format!("cannot reach ssh-agent (SSH_AUTH_SOCK): {source}"),
                })?;
            let identities =
                agent
                    .request_identities()
                    .await
                    .map_err(|source| SshError::Agent {
                        reason: format!("cannot list the keys of ssh-agent: {source}"),
                    })?;
            if identities.is_empty() {
                return Err(SshError::Agent {
                    reason: "ssh-agent holds no key; `ssh-add` one or set ssh.identity_file"
                        .to_owned(),
                });
            }
            let hash = handle
                .best_supported_rsa_hash()
                .await
                .map_err(ssh)?
                .flatten();
            for identity in &identities {
                let key = identity.public_key().into_owned();
                let result = handle
                    .authenticate_publickey_with(target.user.clone(), key, hash, &mut agent)
                    .await;
                if matches!(result, Ok(r) if r.success()) {
                    return Ok(());
                }
            }
            Err(refused(format!("{} key(s) of ssh-agent", identities.len())))
        }
    }
}

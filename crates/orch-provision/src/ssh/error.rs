//! Why the ssh provider failed on a host ([`SshError`]), and which failures are worth a
//! retry.
//!
//! May depend on: provision::{templates (TemplateError), ssh::{known_hosts, session}}.

use crate::templates::TemplateError;
use std::path::PathBuf;
use std::time::Duration;

/// Why the ssh provider failed on a host.
#[derive(Debug, thiserror::Error)]
pub enum SshError {
    /// The host offered a key no pin or known_hosts entry names.
    #[error(
        "the host key of {host} is unknown: {fingerprint} ({key}); pin it in the infra file \
         (host_key: \"{key}\"), add the line `{label} {key}` to {}, or run \
         `orch up --trust-on-first-use` to accept it and record it there",
        known_hosts.display()
    )]
    UnknownHostKey {
        /// The host.
        host: String,
        /// How known_hosts names it.
        label: String,
        /// The offered key, `type base64`.
        key: String,
        /// Its fingerprint.
        fingerprint: String,
        /// The known_hosts file consulted.
        known_hosts: PathBuf,
    },
    /// The host offered a key other than the pinned or known one: always refused.
    #[error(
        "the host key of {host} differs from the expected one: expected {expected}, offered \
         {offered}; refused (the host may have been reinstalled, or someone is in between: \
         check, then fix the pin or the known_hosts entry)"
    )]
    HostKeyChanged {
        /// The host.
        host: String,
        /// The expected key's fingerprint and its source.
        expected: String,
        /// The offered key's fingerprint.
        offered: String,
    },
    /// The host offered a certificate, which is not checked.
    #[error("{host} offered a host certificate; pin its plain host key instead")]
    CertificateHostKey {
        /// The host.
        host: String,
    },
    /// The pinned key in the infra file is not a public key.
    #[error("the pinned host_key of {host} is not an OpenSSH public key: {reason}")]
    BadPin {
        /// The host.
        host: String,
        /// The parser's complaint.
        reason: String,
    },
    /// The known_hosts file cannot be read.
    #[error("cannot read {}", path.display())]
    KnownHostsRead {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The known_hosts file cannot be written (trust on first use).
    #[error("cannot record the host key in {}", path.display())]
    KnownHostsWrite {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// No SSH connection could be made (yet).
    #[error("cannot connect to {host}: {reason}")]
    Connect {
        /// The host.
        host: String,
        /// The cause.
        reason: String,
    },
    /// The host did not answer SSH in time.
    #[error("{host} did not answer SSH within {waited:?} (last: {last})")]
    Timeout {
        /// The host.
        host: String,
        /// How long it waited.
        waited: Duration,
        /// The last error.
        last: String,
    },
    /// The private key file cannot be used.
    #[error("cannot load the private key {}", path.display())]
    Key {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: russh::keys::Error,
    },
    /// ssh-agent cannot be used.
    #[error("{reason}")]
    Agent {
        /// What went wrong.
        reason: String,
    },
    /// The host refused the login.
    #[error("{host} refused the login of {user} with {tried}")]
    AuthRefused {
        /// The host.
        host: String,
        /// The login.
        user: String,
        /// The keys tried.
        tried: String,
    },
    /// The SSH session failed.
    #[error("SSH session with {host} failed")]
    Ssh {
        /// The host.
        host: String,
        /// The cause.
        source: russh::Error,
    },
    /// A script on the host failed.
    #[error("{what} failed on {host} (exit {status}): {output}")]
    Command {
        /// The host.
        host: String,
        /// What the script does.
        what: String,
        /// Its exit status.
        status: u32,
        /// What it printed.
        output: String,
    },
    /// SFTP failed.
    #[error("SFTP to {host} failed for {path}")]
    Sftp {
        /// The host.
        host: String,
        /// The remote path.
        path: String,
        /// The cause.
        source: russh_sftp::client::error::Error,
    },
    /// Writing the upload failed.
    #[error("uploading to {host}:{path} failed")]
    Upload {
        /// The host.
        host: String,
        /// The remote path.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A local file cannot be read.
    #[error("cannot read {}", path.display())]
    Local {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The binary on the host does not match after the upload.
    #[error("the orch binary on {host} has sha256 {found} after the upload, not {wanted}")]
    UploadMismatch {
        /// The host.
        host: String,
        /// The local binary's hash.
        wanted: String,
        /// The remote one's.
        found: String,
    },
    /// The install dir belongs to something else.
    #[error(
        "{dir} on {host} is not this cluster's ({owner}); choose another install_dir or remove it"
    )]
    ForeignInstallDir {
        /// The host.
        host: String,
        /// The install dir.
        dir: String,
        /// What owns it.
        owner: String,
    },
    /// A service template cannot be rendered.
    #[error(transparent)]
    Template(#[from] TemplateError),
}

impl SshError {
    /// True for failures a retry may cure (the host is not up yet).
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Connect { .. })
    }
}

//! The cluster's identity: a certificate authority (`ca.pem`, its key `ca-key.pem`), a
//! certificate and key per master and per agent signed by it (`<name>.pem`,
//! `<name>-key.pem`), and the management token (`token`). Every private key and the token
//! are written with mode 0600; nothing is overwritten (a second `init` is refused, so a CA
//! in use is never replaced by accident).
//!
//! A node's certificate says what it is in its subject: common name = the node's name,
//! organisation = `orch:master` or `orch:agent` (as Kubernetes puts groups in O). A master's
//! certificate also carries its addresses and DNS names, so clients can verify the name they
//! dialled. [`identity`] reads name and role back from a peer's certificate, for the routes
//! that only masters or only one agent may call.
//!
//! [`tls`] makes the rustls server and client configurations a node uses from its files, and
//! [`serve`] serves a node's API (axum router) over them.
//!
//! May depend on: orch-fs (private writes), rcgen (issuing), x509-parser (reading), rustls
//! (ring), reqwest (the builder of in-cluster clients, not used here), rand; tokio, hyper and
//! axum in [`serve`] only: the rest has no network and no runtime.

pub mod serve;
pub mod tls;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// The CA certificate's file name.
pub const CA_CERT: &str = "ca.pem";
/// The CA key's file name.
pub const CA_KEY: &str = "ca-key.pem";
/// The management token's file name.
pub const TOKEN: &str = "token";

/// What a node is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// A master: serves the API and Raft.
    Master,
    /// An agent: runs tasks.
    Agent,
}

impl Role {
    /// `master` or `agent`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Master => "master",
            Self::Agent => "agent",
        }
    }

    /// The organisation a certificate of this role carries.
    fn organisation(self) -> &'static str {
        match self {
            Self::Master => "orch:master",
            Self::Agent => "orch:agent",
        }
    }

    /// `master` or `agent`, else None.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "master" => Some(Self::Master),
            "agent" => Some(Self::Agent),
            _ => None,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why the PKI cannot be made, read or used.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// A file cannot be read or written.
    #[error("cannot {what} {path}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// `init` where a CA exists already.
    #[error("{path} exists already: the cluster has a CA (delete the directory to start over)")]
    Exists {
        /// The CA certificate.
        path: PathBuf,
    },
    /// A certificate or key cannot be made or parsed.
    #[error("cannot {what}")]
    Certificate {
        /// What was being done.
        what: String,
        /// The cause.
        source: rcgen::Error,
    },
    /// A TLS configuration cannot be made from the files.
    #[error("cannot {what}")]
    Tls {
        /// What was being done.
        what: String,
        /// The cause.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Some of the TLS flags, not all three.
    #[error("--tls-cert, --tls-key and --tls-ca go together: give all three, or none")]
    Incomplete,
    /// A PEM file holds no certificate.
    #[error("{0} holds no certificate")]
    Empty(PathBuf),
    /// A node name that cannot be a file name or a certificate subject.
    #[error("node name '{0}': use letters, digits, '.', '_' and '-' (at most 64)")]
    BadName(String),
}

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> PkiError {
    let path = path.to_owned();
    move |source| PkiError::Io { what, path, source }
}

fn certificate(what: impl Into<String>) -> impl FnOnce(rcgen::Error) -> PkiError {
    let what = what.into();
    move |source| PkiError::Certificate { what, source }
}

/// A certificate and its private key, in PEM.
#[derive(Clone, Debug)]
pub struct Issued {
    /// The certificate.
    pub cert_pem: String,
    /// The private key.
    pub key_pem: String,
}

/// The cluster's CA: it issues every node's certificate.
pub struct Authority {
    cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl fmt::Debug for Authority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authority").finish_non_exhaustive()
    }
}

impl Authority {
    /// Makes a new CA for `cluster` and writes it to `dir` (`ca.pem`, `ca-key.pem` 0600);
    /// refuses when `dir` has a CA already.
    pub fn init(dir: &Path, cluster: &str) -> Result<Self, PkiError> {
        let cert_path = dir.join(CA_CERT);
        if cert_path.exists() {
            return Err(PkiError::Exists { path: cert_path });
        }
        std::fs::create_dir_all(dir).map_err(io("create", dir))?;
        let key = KeyPair::generate().map_err(certificate("generate the CA key"))?;
        let mut params = CertificateParams::default();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, format!("orch cluster {cluster} CA"));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params
            .self_signed(&key)
            .map_err(certificate("sign the CA certificate"))?;
        let key_path = dir.join(CA_KEY);
        orch_fs::write_private(&key_path, key.serialize_pem().as_bytes())
            .map_err(io("write", &key_path))?;
        orch_fs::write_atomic(&cert_path, cert.pem().as_bytes())
            .map_err(io("write", &cert_path))?;
        Ok(Self {
            cert_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        })
    }

    /// The CA in `dir`.
    pub fn load(dir: &Path) -> Result<Self, PkiError> {
        let cert_path = dir.join(CA_CERT);
        let key_path = dir.join(CA_KEY);
        let cert_pem = std::fs::read_to_string(&cert_path).map_err(io("read", &cert_path))?;
        let key_pem = std::fs::read_to_string(&key_path).map_err(io("read", &key_path))?;
        let key = KeyPair::from_pem(&key_pem)
            .map_err(certificate(format!("read the key {}", key_path.display())))?;
        let issuer = Issuer::from_ca_cert_pem(&cert_pem, key)
            .map_err(certificate(format!("read the CA {}", cert_path.display())))?;
        Ok(Self { cert_pem, issuer })
    }

    /// The CA certificate, in PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// A certificate for the node `name` of `role`, valid for `ips` and `dns_names` (a
    /// master's addresses; also usable as a client certificate).
    pub fn issue(
        &self,
        role: Role,
        name: &str,
        ips: &[IpAddr],
        dns_names: &[String],
    ) -> Result<Issued, PkiError> {
        let valid_name = !name.is_empty()
            && name.len() <= 64
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if !valid_name {
            return Err(PkiError::BadName(name.to_owned()));
        }
        let key = KeyPair::generate().map_err(certificate("generate a node key"))?;
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, name);
        params
            .distinguished_name
            .push(DnType::OrganizationName, role.organisation());
        params.subject_alt_names = ips.iter().map(|ip| SanType::IpAddress(*ip)).collect();
        for dns in dns_names {
            let dns = dns
                .clone()
                .try_into()
                .map_err(certificate(format!("use the DNS name {dns}")))?;
            params.subject_alt_names.push(SanType::DnsName(dns));
        }
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(certificate(format!("sign the certificate of {name}")))?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

/// Writes `issued` as `<dir>/<name>.pem` and `<dir>/<name>-key.pem` (0600); returns both
/// paths.
pub fn write_issued(
    dir: &Path,
    name: &str,
    issued: &Issued,
) -> Result<(PathBuf, PathBuf), PkiError> {
    let cert = dir.join(format!("{name}.pem"));
    let key = dir.join(format!("{name}-key.pem"));
    orch_fs::write_private(&key, issued.key_pem.as_bytes()).map_err(io("write", &key))?;
    orch_fs::write_atomic(&cert, issued.cert_pem.as_bytes()).map_err(io("write", &cert))?;
    Ok((cert, key))
}

/// A new management token (256 random bits, hex).
pub fn new_token() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

/// Writes a new management token to `<dir>/token` (0600) unless one is there; returns it.
pub fn ensure_token(dir: &Path) -> Result<String, PkiError> {
    let path = dir.join(TOKEN);
    match std::fs::read_to_string(&path) {
        Ok(token) if !token.trim().is_empty() => return Ok(token.trim().to_owned()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => return Err(io("read", &path)(source)),
    }
    std::fs::create_dir_all(dir).map_err(io("create", dir))?;
    let token = new_token();
    orch_fs::write_private(&path, format!("{token}\n").as_bytes()).map_err(io("write", &path))?;
    Ok(token)
}

/// Who a peer's certificate (DER) says it is: its role and name; None when it names no
/// orch role. Whether the certificate is the cluster CA's is the TLS layer's to check.
pub fn identity(cert_der: &[u8]) -> Option<(Role, String)> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der).ok()?;
    let subject = cert.subject();
    let role = subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok())
        .find_map(|o| match o {
            "orch:master" => Some(Role::Master),
            "orch:agent" => Some(Role::Agent),
            _ => None,
        })?;
    let name = subject
        .iter_common_name()
        .find_map(|cn| cn.as_str().ok())?
        .to_owned();
    Some((role, name))
}

/// What a node certificate (PEM) names: its role, its name (common name), and the
/// addresses and DNS names it is valid for; None when it is not an orch node certificate.
/// `orch up` compares this with what a node needs before it issues the certificate again.
pub fn certificate_names(cert_pem: &str) -> Option<CertificateNames> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(cert_pem.as_bytes()).ok()?;
    let (role, name) = identity(&pem.contents)?;
    let (_, cert) = x509_parser::parse_x509_certificate(&pem.contents).ok()?;
    let mut ips = Vec::new();
    let mut dns_names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for general in &san.value.general_names {
            match general {
                x509_parser::extensions::GeneralName::DNSName(dns) => {
                    dns_names.push((*dns).to_owned());
                }
                x509_parser::extensions::GeneralName::IPAddress(bytes) => {
                    if let Ok(octets) = <[u8; 4]>::try_from(*bytes) {
                        ips.push(IpAddr::from(octets));
                    } else if let Ok(octets) = <[u8; 16]>::try_from(*bytes) {
                        ips.push(IpAddr::from(octets));
                    }
                }
                _ => {}
            }
        }
    }
    Some(CertificateNames {
        role,
        name,
        ips,
        dns_names,
    })
}

/// The names a node certificate carries (see [`certificate_names`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertificateNames {
    /// `orch:master` or `orch:agent`.
    pub role: Role,
    /// The common name: the node's name.
    pub name: String,
    /// The IP addresses it is valid for, in the certificate's order.
    pub ips: Vec<IpAddr>,
    /// The DNS names it is valid for, in the certificate's order.
    pub dns_names: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path)
            .expect("metadata")
            .permissions()
            .mode()
            & 0o777
    }

    fn der(pem: &str) -> Vec<u8> {
        x509_parser::pem::parse_x509_pem(pem.as_bytes())
            .expect("a PEM certificate")
            .1
            .contents
    }

    #[test]
    fn a_ca_issues_node_certificates_that_name_their_role() {
        let dir = tempfile::tempdir().expect("temp dir");
        let ca = Authority::init(dir.path(), "demo").expect("init");
        assert_eq!(mode(&dir.path().join(CA_KEY)), 0o600);
        assert!(matches!(
            Authority::init(dir.path(), "demo"),
            Err(PkiError::Exists { .. })
        ));
        let loaded = Authority::load(dir.path()).expect("load");
        let ip: IpAddr = "10.0.0.2".parse().expect("ip");
        let master = loaded
            .issue(Role::Master, "master-1", &[ip], &["m1.example".to_owned()])
            .expect("issue");
        let (cert, key) = write_issued(dir.path(), "master-1", &master).expect("write");
        assert_eq!(mode(&key), 0o600);
        assert!(cert.exists());
        assert_eq!(
            identity(&der(&master.cert_pem)),
            Some((Role::Master, "master-1".to_owned()))
        );
        let agent = ca.issue(Role::Agent, "agent-1", &[], &[]).expect("issue");
        assert_eq!(
            identity(&der(&agent.cert_pem)),
            Some((Role::Agent, "agent-1".to_owned()))
        );
        assert_eq!(identity(&der(ca.cert_pem())), None, "the CA is no node");
        assert_eq!(
            certificate_names(&master.cert_pem),
            Some(CertificateNames {
                role: Role::Master,
                name: "master-1".to_owned(),
                ips: vec![ip],
                dns_names: vec!["m1.example".to_owned()],
            })
        );
        assert_eq!(certificate_names(ca.cert_pem()), None);
        assert!(matches!(
            ca.issue(Role::Agent, "../x", &[], &[]),
            Err(PkiError::BadName(_))
        ));
    }

    #[test]
    fn the_token_is_made_once_and_private() {
        let dir = tempfile::tempdir().expect("temp dir");
        let token = ensure_token(dir.path()).expect("token");
        assert_eq!(token.len(), 64);
        assert_eq!(mode(&dir.path().join(TOKEN)), 0o600);
        assert_eq!(ensure_token(dir.path()).expect("again"), token);
        assert_ne!(new_token(), token);
    }
}

//! rustls configurations from a node's PKI files (`--tls-cert`, `--tls-key`, `--tls-ca`):
//! the server side asks every client for a certificate, verifies one that is shown against
//! the cluster CA and lets clients without one in (routes decide who may call them); the
//! client side trusts the cluster CA only and shows the node's own certificate. The crypto
//! is rustls with ring; no OpenSSL.

use super::{PkiError, Role};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A node's TLS files (`--tls-cert`, `--tls-key`, `--tls-ca`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// Its certificate (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM).
    pub key: PathBuf,
    /// The cluster CA (PEM).
    pub ca: PathBuf,
}

impl TlsFiles {
    /// All three flags, none, or the error naming them.
    pub fn from_flags(
        cert: Option<PathBuf>,
        key: Option<PathBuf>,
        ca: Option<PathBuf>,
    ) -> Result<Option<Self>, PkiError> {
        match (cert, key, ca) {
            (Some(cert), Some(key), Some(ca)) => Ok(Some(Self { cert, key, ca })),
            (None, None, None) => Ok(None),
            _ => Err(PkiError::Incomplete),
        }
    }

    /// The files read.
    pub fn load(&self) -> Result<NodeTls, PkiError> {
        NodeTls::load(&self.cert, &self.key, &self.ca)
    }
}

/// A node's certificate chain and key, and the cluster CA.
#[derive(Debug)]
pub struct NodeTls {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    roots: Arc<RootCertStore>,
}

fn tls_error(what: &str) -> impl FnOnce(rustls::Error) -> PkiError + '_ {
    move |source| PkiError::Tls {
        what: what.to_owned(),
        source: Box::new(source),
    }
}

fn unreadable(path: &Path) -> impl FnOnce(rustls::pki_types::pem::Error) -> PkiError + '_ {
    move |source| PkiError::Tls {
        what: format!("read {}", path.display()),
        source: Box::new(source),
    }
}

/// Makes ring the process's crypto provider, once; later calls do nothing. reqwest's TLS
/// (built without a provider of its own) needs it before any client is built, TLS or not:
/// every process and test that builds an HTTP client calls this first.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The builder of a client for traffic inside the cluster (masters, agents, discovery): the
/// crypto provider installed, and no system root trusted. Such a client speaks plaintext
/// (loopback or `--insecure`) or TLS with the cluster CA (a preconfigured TLS setup
/// replaces this one), and a node's container image has no system roots to load.
pub fn cluster_http() -> reqwest::ClientBuilder {
    install_crypto_provider();
    reqwest::Client::builder().tls_certs_only(Vec::new())
}

/// `Authorization: Bearer <token>` as a client's default headers, marked sensitive (kept out
/// of debug output).
pub fn bearer(
    token: &str,
) -> Result<reqwest::header::HeaderMap, reqwest::header::InvalidHeaderValue> {
    let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {}", token.trim()))?;
    value.set_sensitive(true);
    Ok(reqwest::header::HeaderMap::from_iter([(
        reqwest::header::AUTHORIZATION,
        value,
    )]))
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl NodeTls {
    /// Reads the node's certificate (chain), its key and the CA certificate (PEM files).
    pub fn load(cert: &Path, key: &Path, ca: &Path) -> Result<Self, PkiError> {
        let chain = CertificateDer::pem_file_iter(cert)
            .map_err(unreadable(cert))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(unreadable(cert))?;
        if chain.is_empty() {
            return Err(PkiError::Empty(cert.to_owned()));
        }
        let key = PrivateKeyDer::from_pem_file(key).map_err(unreadable(key))?;
        let roots = load_roots(ca)?;
        Ok(Self {
            chain,
            key,
            roots: Arc::new(roots),
        })
    }

    /// The server side: the node's certificate; a client certificate asked for and, when
    /// shown, verified against the CA.
    pub fn server_config(&self) -> Result<Arc<ServerConfig>, PkiError> {
        let verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::clone(&self.roots), provider())
                .allow_unauthenticated()
                .build()
                .map_err(|source| PkiError::Tls {
                    what: "verify client certificates against the CA".to_owned(),
                    source: Box::new(source),
                })?;
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(tls_error("choose TLS versions"))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.chain.clone(), self.key.clone_key())
            .map_err(tls_error("use the node's certificate and key"))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }

    /// The client side: servers verified against the CA and the name dialled, and taken only
    /// when their certificate is one of `server_role` (a master); the node's certificate
    /// shown.
    pub fn client_config(&self, server_role: Role) -> Result<ClientConfig, PkiError> {
        let inner =
            WebPkiServerVerifier::builder_with_provider(Arc::clone(&self.roots), provider())
                .build()
                .map_err(|source| PkiError::Tls {
                    what: "verify server certificates against the CA".to_owned(),
                    source: Box::new(source),
                })?;
        ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(tls_error("choose TLS versions"))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(RoleVerifier {
                inner,
                role: server_role,
            }))
            .with_client_auth_cert(self.chain.clone(), self.key.clone_key())
            .map_err(tls_error("use the node's certificate and key"))
    }
}

/// The certificates of the CA file `ca`, as trust roots.
fn load_roots(ca: &Path) -> Result<RootCertStore, PkiError> {
    let mut roots = RootCertStore::empty();
    for ca_cert in CertificateDer::pem_file_iter(ca).map_err(unreadable(ca))? {
        roots
            .add(ca_cert.map_err(unreadable(ca))?)
            .map_err(tls_error("use the CA certificate"))?;
    }
    if roots.is_empty() {
        return Err(PkiError::Empty(ca.to_owned()));
    }
    Ok(roots)
}

/// The client side of a tool or operator (the CLI): servers verified against the CA in
/// `ca` (a PEM file) and the name dialled, no certificate shown (the token authenticates).
pub fn trusting(ca: &Path) -> Result<ClientConfig, PkiError> {
    let roots = load_roots(ca)?;
    Ok(ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(tls_error("choose TLS versions"))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// The CA's verdict on a server certificate, then its role: an agent follows, and a master
/// replicates to, only a server that shows a master certificate.
#[derive(Debug)]
struct RoleVerifier {
    inner: Arc<WebPkiServerVerifier>,
    role: Role,
}

impl ServerCertVerifier for RoleVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verified = self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )?;
        match super::identity(end_entity) {
            Some((role, _)) if role == self.role => Ok(verified),
            other => Err(rustls::Error::General(format!(
                "the server's certificate is not a {} certificate of the cluster ({other:?})",
                self.role
            ))),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

//! TLS termination with rustls (ring): which certificate a handshake gets, by SNI, as
//! marathon-lb's HAProxy `ssl crt` lines choose:
//!
//! 1. on a service port whose frontend has `HAPROXY_{n}_SSL_CERT`: that file;
//! 2. a vhost rule of the SNI name with an `SSL_CERT`: that file;
//! 3. the first of `--ssl-certs` whose names (SAN, wildcards included) cover the SNI name;
//! 4. the first of `--ssl-certs`;
//! 5. a self-signed certificate for `localhost` generated at start (marathon-lb ships a
//!    default self-signed certificate too).
//!
//! Certificate files are PEM, HAProxy style: the chain and the private key (PKCS#8, PKCS#1
//! or SEC1) in one file. Each file is loaded once and cached by path; a file that cannot be
//! used is logged once (as [`LbError::Certificate`]) and skipped, and tried again when the
//! next routing table arrives. SNI matches against `--ssl-certs` are memoised per name.
//!
//! May depend on: std, rustls, rcgen, tracing, [`super::live`], [`crate::LbError`].

use super::live::TableCell;
use crate::LbError;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::server::{ClientHello, ParsedCertificate, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// At most this many SNI names are memoised (a client choosing random names cannot grow
/// the memo without bound; it is cleared when full).
const MAX_MEMO: usize = 4096;

/// The certificates the proxy can offer.
#[derive(Debug)]
pub(crate) struct CertStore {
    /// The crypto provider (ring).
    provider: Arc<CryptoProvider>,
    /// Loaded files by path; `None` for a file that could not be used.
    files: Mutex<HashMap<String, Option<Arc<CertifiedKey>>>>,
    /// Paths already reported as unusable.
    warned: Mutex<HashSet<String>>,
    /// `--ssl-certs` that could be used, in order.
    defaults: Vec<Arc<CertifiedKey>>,
    /// SNI name → index into `defaults` of the first certificate covering it.
    memo: Mutex<HashMap<String, Option<usize>>>,
    /// The generated certificate, if generation worked.
    self_signed: Option<Arc<CertifiedKey>>,
}

impl CertStore {
    /// Loads `ssl_certs` (skipping, with a warning, those that cannot be used) and
    /// generates the self-signed fallback.
    pub fn new(ssl_certs: &[PathBuf]) -> Self {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut store = Self {
            provider,
            files: Mutex::new(HashMap::new()),
            warned: Mutex::new(HashSet::new()),
            defaults: Vec::new(),
            memo: Mutex::new(HashMap::new()),
            self_signed: None,
        };
        store.defaults = ssl_certs
            .iter()
            .filter_map(|path| store.file(&path.to_string_lossy()))
            .collect();
        store.self_signed = match self_signed(&store.provider) {
            Ok(key) => Some(Arc::new(key)),
            Err(error) => {
                tracing::warn!(
                    error = &error as &dyn std::error::Error,
                    "no default certificate"
                );
                None
            }
        };
        store
    }

    /// The crypto provider.
    pub fn provider(&self) -> &Arc<CryptoProvider> {
        &self.provider
    }

    /// The certificate in the PEM file at `path`, loaded on first use.
    pub fn file(&self, path: &str) -> Option<Arc<CertifiedKey>> {
        if let Some(entry) = lock(&self.files).get(path) {
            return entry.clone();
        }
        let loaded = match load(path, &self.provider) {
            Ok(key) => Some(Arc::new(key)),
            Err(error) => {
                if lock(&self.warned).insert(path.to_owned()) {
                    tracing::warn!(
                        error = &error as &dyn std::error::Error,
                        "certificate skipped"
                    );
                }
                None
            }
        };
        lock(&self.files).insert(path.to_owned(), loaded.clone());
        loaded
    }

    /// Forgets the files that could not be used, so they are tried again.
    pub fn forget_failures(&self) {
        lock(&self.files).retain(|_, entry| entry.is_some());
    }

    /// The first `--ssl-certs` certificate whose names cover `name`.
    fn matching_default(&self, name: &str) -> Option<Arc<CertifiedKey>> {
        if self.defaults.is_empty() {
            return None;
        }
        let memoised = lock(&self.memo).get(name).copied();
        let index = match memoised {
            Some(index) => index,
            None => {
                let index = ServerName::try_from(name).ok().and_then(|server_name| {
                    self.defaults
                        .iter()
                        .position(|key| covers(key, &server_name))
                });
                let mut memo = lock(&self.memo);
                if memo.len() >= MAX_MEMO {
                    memo.clear();
                }
                memo.insert(name.to_owned(), index);
                index
            }
        };
        index.and_then(|i| self.defaults.get(i).cloned())
    }

    /// The first `--ssl-certs` certificate, else the self-signed one.
    fn fallback(&self) -> Option<Arc<CertifiedKey>> {
        self.defaults
            .first()
            .cloned()
            .or_else(|| self.self_signed.clone())
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// Whether `key`'s end-entity certificate is valid for `name`.
fn covers(key: &CertifiedKey, name: &ServerName<'_>) -> bool {
    key.end_entity_cert()
        .ok()
        .and_then(|der| ParsedCertificate::try_from(der).ok())
        .is_some_and(|parsed| rustls::client::verify_server_name(&parsed, name).is_ok())
}

/// Reads a PEM file holding a certificate chain and its private key.
pub(crate) fn load(path: &str, provider: &CryptoProvider) -> Result<CertifiedKey, LbError> {
    let bad = |reason: String| LbError::Certificate {
        path: path.to_owned(),
        reason,
    };
    let pem = std::fs::read(path).map_err(|error| bad(error.to_string()))?;
    let chain = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| bad(format!("bad PEM: {error}")))?;
    if chain.is_empty() {
        return Err(bad("no CERTIFICATE block".to_owned()));
    }
    let key = PrivateKeyDer::from_pem_slice(&pem)
        .map_err(|error| bad(format!("no usable private key: {error}")))?;
    CertifiedKey::from_der(chain, key, provider).map_err(|error| bad(error.to_string()))
}

/// A fresh self-signed certificate for `localhost`.
fn self_signed(provider: &CryptoProvider) -> Result<CertifiedKey, LbError> {
    let bad = |reason: String| LbError::Certificate {
        path: "(self-signed)".to_owned(),
        reason,
    };
    let generated = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])
        .map_err(|error| bad(error.to_string()))?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        generated.signing_key.serialize_der(),
    ));
    CertifiedKey::from_der(vec![generated.cert.der().clone()], key, provider)
        .map_err(|error| bad(error.to_string()))
}

/// Picks a certificate per handshake from the newest table (see the module docs).
#[derive(Debug)]
pub(crate) struct Resolver {
    /// The newest table.
    cell: Arc<TableCell>,
    /// The certificates.
    certs: Arc<CertStore>,
    /// The service-port listener this resolver serves (`None` for the HTTPS port).
    listener: Option<SocketAddr>,
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let live = self.cell.load();
        let own = self
            .listener
            .and_then(|listener| live.frontends.get(&listener))
            .and_then(|frontend| frontend.frontend.ssl_cert.as_deref())
            .and_then(|path| self.certs.file(path));
        if own.is_some() {
            return own;
        }
        if let Some(name) = hello.server_name() {
            if let Some(key) = live.vhost_cert(name).and_then(|path| self.certs.file(path)) {
                return Some(key);
            }
            if let Some(key) = self.certs.matching_default(name) {
                return Some(key);
            }
        }
        self.certs.fallback()
    }
}

/// A TLS server configuration choosing certificates as the module docs say; `listener` is
/// the service-port listener it is for (`None`: the HTTPS port, which also announces
/// `http/1.1` by ALPN).
pub(crate) fn server_config(
    cell: Arc<TableCell>,
    certs: Arc<CertStore>,
    listener: Option<SocketAddr>,
) -> Result<Arc<ServerConfig>, LbError> {
    let provider = Arc::clone(certs.provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|source| LbError::Tls { source })?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(Resolver {
            cell,
            certs,
            listener,
        }));
    if listener.is_none() {
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
    }
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_cert(dir: &std::path::Path, file: &str, names: &[&str]) -> PathBuf {
        let generated = rcgen::generate_simple_self_signed(
            names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>(),
        )
        .expect("generate");
        let path = dir.join(file);
        let pem = format!(
            "{}{}",
            generated.cert.pem(),
            generated.signing_key.serialize_pem()
        );
        std::fs::write(&path, pem).expect("write pem");
        path
    }

    fn same(a: &Arc<CertifiedKey>, b: &Arc<CertifiedKey>) -> bool {
        a.cert == b.cert
    }

    #[test]
    fn defaults_match_by_san_and_fall_back_to_the_first() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = write_cert(dir.path(), "a.pem", &["a.example.com"]);
        let b = write_cert(dir.path(), "b.pem", &["*.b.example.com"]);
        let bad = dir.path().join("bad.pem");
        std::fs::write(&bad, "not a certificate").expect("write");
        let store = CertStore::new(&[bad, a.clone(), b.clone()]);
        assert_eq!(store.defaults.len(), 2, "the bad file is skipped");
        let first = store.file(&a.to_string_lossy()).expect("a loads");
        let second = store.file(&b.to_string_lossy()).expect("b loads");
        let by_san = store.matching_default("x.b.example.com").expect("wildcard");
        assert!(same(&by_san, &second));
        assert!(store.matching_default("other.example.com").is_none());
        assert!(same(&store.fallback().expect("fallback"), &first));
        assert!(store.file("/nonexistent.pem").is_none());
    }

    #[test]
    fn without_certificates_the_self_signed_one_is_offered() {
        let store = CertStore::new(&[]);
        let key = store.fallback().expect("self-signed");
        let name = ServerName::try_from("localhost").expect("name");
        assert!(covers(&key, &name));
    }

    #[test]
    fn a_key_that_does_not_match_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let one = rcgen::generate_simple_self_signed(vec!["a".to_owned()]).expect("one");
        let two = rcgen::generate_simple_self_signed(vec!["b".to_owned()]).expect("two");
        let path = dir.path().join("mixed.pem");
        std::fs::write(
            &path,
            format!("{}{}", one.cert.pem(), two.signing_key.serialize_pem()),
        )
        .expect("write");
        let provider = rustls::crypto::ring::default_provider();
        let error = load(&path.to_string_lossy(), &provider).expect_err("mismatch");
        assert!(matches!(error, LbError::Certificate { .. }), "{error}");
    }
}

//! What every listener and connection of one proxy shares: the configuration, the newest
//! table, the certificates, the connection limit, the HTTP server settings, the counters
//! of the fixed frontends and the shutdown signal.
//!
//! May depend on: std, tokio (sync), hyper, hyper-util (timer), rustls, [`super::live`],
//! [`super::stats`], [`super::tls`], [`crate`] (the configuration).

use super::live::TableCell;
use super::stats::Counters;
use super::tls::CertStore;
use crate::LbConfig;
use hyper::server::conn::http1;
use hyper_util::rt::TokioTimer;
use rustls::ServerConfig;
use std::sync::Arc;
use tokio::sync::{watch, Semaphore};

/// hyper's default read buffer limit (`8192 + 4096 * 100`): request heads larger than
/// this need a larger buffer.
const HYPER_DEFAULT_MAX_BUF: usize = 8192 + 4096 * 100;

/// What a listener is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ListenerKind {
    /// The HTTP port (`marathon_http_in`): host and path rules.
    Http,
    /// The HTTPS port (`marathon_https_in`): TLS, then host and path rules.
    Https,
    /// The app-id port (`marathon_http_appid_in`): `X-Marathon-App-Id`.
    AppId,
    /// A service port or VIP from the table.
    Service,
}

/// The counters of the fixed frontends, named as in marathon-lb's config.
#[derive(Debug, Default)]
pub(crate) struct FixedFrontends {
    /// `marathon_http_in`.
    pub http: Arc<Counters>,
    /// `marathon_https_in`.
    pub https: Arc<Counters>,
    /// `marathon_http_appid_in`.
    pub app_id: Arc<Counters>,
}

impl FixedFrontends {
    /// `(name, counters)` of the fixed frontends whose port is bound.
    pub fn bound<'a>(&'a self, config: &LbConfig) -> Vec<(&'static str, &'a Arc<Counters>)> {
        [
            ("marathon_http_in", config.http_port, &self.http),
            ("marathon_http_appid_in", config.app_id_port, &self.app_id),
            ("marathon_https_in", config.https_port, &self.https),
        ]
        .into_iter()
        .filter(|(_, port, _)| *port != 0)
        .map(|(name, _, counters)| (name, counters))
        .collect()
    }

    /// The counters of `kind` (service ports have their own, in the table).
    pub fn of(&self, kind: ListenerKind) -> Option<&Arc<Counters>> {
        match kind {
            ListenerKind::Http => Some(&self.http),
            ListenerKind::Https => Some(&self.https),
            ListenerKind::AppId => Some(&self.app_id),
            ListenerKind::Service => None,
        }
    }
}

/// Shared by every listener and connection.
#[derive(Debug)]
pub(crate) struct Shared {
    /// The configuration.
    pub config: Arc<LbConfig>,
    /// The newest table.
    pub cell: Arc<TableCell>,
    /// The certificates.
    pub certs: Arc<CertStore>,
    /// The HTTPS port's TLS settings.
    pub https_tls: Option<Arc<ServerConfig>>,
    /// `maxconn`: one permit per client connection being served.
    pub connections: Arc<Semaphore>,
    /// HTTP/1.1 server settings (timeouts, header limit).
    pub http: http1::Builder,
    /// The fixed frontends' counters.
    pub fixed: FixedFrontends,
    /// Becomes `true` (or closes) when the proxy stops.
    pub shutdown: watch::Receiver<bool>,
}

/// The HTTP/1.1 server settings for `config`'s limits.
pub(crate) fn http_builder(config: &LbConfig) -> http1::Builder {
    let limits = &config.limits;
    let mut builder = http1::Builder::new();
    // `timeout http-request` is the connection watchdog's (one timer per connection instead
    // of hyper's one per request).
    builder
        .timer(TokioTimer::new())
        .keep_alive(!limits.keep_alive_timeout.is_zero())
        // A client may shut its write side once its request is sent and wait for the
        // answer (as HAProxy allows): it gets it.
        .half_close(true)
        .header_read_timeout(None)
        .writev(false);
    if limits.max_header_bytes > 0 {
        builder.max_header_size(limits.max_header_bytes);
        if limits.max_header_bytes >= HYPER_DEFAULT_MAX_BUF {
            builder.max_buf_size(limits.max_header_bytes.saturating_add(8192));
        }
    }
    builder
}

/// The semaphore of `maxconn` (0 means no limit).
pub(crate) fn connection_limit(max_connections: usize) -> Arc<Semaphore> {
    let permits = if max_connections == 0 {
        Semaphore::MAX_PERMITS
    } else {
        max_connections.min(Semaphore::MAX_PERMITS)
    };
    Arc::new(Semaphore::new(permits))
}

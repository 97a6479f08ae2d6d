//! The whole configuration of one load balancer (`orch lb` or an embedded one, `--with-lb`),
//! with marathon-lb's and HAProxy's defaults (HAProxy's `timeout connect 3s`, `client 30s`,
//! `server 30s`, `http-request 15s`, `http-keep-alive 1s`, `retries 3`, `maxconn 50000`).
//!
//! May depend on: std, [`super::table`].

use super::table::RouteConfig;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;

/// One load balancer's settings.
#[derive(Clone, Debug)]
pub struct LbConfig {
    /// Every master's `host:port` (where snapshots come from when no master is in-process).
    pub masters: Vec<String>,
    /// Which apps and tasks it serves.
    pub routes: RouteConfig,
    /// Where the fixed ports and service ports bind unless `HAPROXY_{n}_BIND_ADDR` says.
    pub bind_addr: IpAddr,
    /// Host/path routing port (`marathon_http_in`); 0 = not bound.
    pub http_port: u16,
    /// TLS with SNI on the same rules (`marathon_https_in`); 0 = not bound.
    pub https_port: u16,
    /// `X-Marathon-App-Id` routing port (`marathon_http_appid_in`); 0 = not bound.
    pub app_id_port: u16,
    /// Stats and control (`/haproxy?stats`, `/metrics`, `/_haproxy_health_check`,
    /// `/_haproxy_getconfig`, `/_mlb_signal/hup`); 0 = not bound.
    pub stats_port: u16,
    /// Certificates (PEM: chain and key in one file) for the HTTPS port when no
    /// `HAPROXY_{n}_SSL_CERT` matches the SNI name; the first is the default.
    pub ssl_certs: Vec<PathBuf>,
    /// Timeouts and limits.
    pub limits: Limits,
    /// HAProxy mode: write a haproxy.cfg and reload HAProxy instead of proxying.
    pub haproxy: Option<HaproxyMode>,
}

impl Default for LbConfig {
    fn default() -> Self {
        Self {
            masters: Vec::new(),
            routes: RouteConfig::default(),
            bind_addr: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            http_port: 80,
            https_port: 443,
            app_id_port: 9091,
            stats_port: 9090,
            ssl_certs: Vec::new(),
            limits: Limits::default(),
            haproxy: None,
        }
    }
}

/// Timeouts and limits, HAProxy's names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// `timeout connect`: connecting to a server.
    pub connect_timeout: Duration,
    /// `timeout client`: a client silent this long (mid-request or in a tcp stream) is cut.
    pub client_timeout: Duration,
    /// `timeout server`: a server silent this long is cut (504 on http).
    pub server_timeout: Duration,
    /// `timeout http-request`: the whole request head must arrive within this (408).
    pub http_request_timeout: Duration,
    /// `timeout http-keep-alive`: an idle keep-alive client connection is closed.
    pub keep_alive_timeout: Duration,
    /// `tune.bufsize`-like cap on a request head (431 beyond it).
    pub max_header_bytes: usize,
    /// `maxconn`: client connections accepted at once across all listeners.
    pub max_connections: usize,
    /// `retries`: more servers tried when connecting fails (idempotent requests and tcp).
    pub retries: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(3),
            client_timeout: Duration::from_secs(30),
            server_timeout: Duration::from_secs(30),
            http_request_timeout: Duration::from_secs(15),
            keep_alive_timeout: Duration::from_secs(1),
            max_header_bytes: 16 * 1024,
            max_connections: 50_000,
            retries: 3,
        }
    }
}

/// `--haproxy-config PATH --haproxy-reload CMD`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HaproxyMode {
    /// Where haproxy.cfg is written.
    pub config_path: PathBuf,
    /// A shell command run after a changed config passed `haproxy -c`.
    pub reload_command: String,
    /// The haproxy binary used for `haproxy -c -f`.
    pub haproxy_binary: PathBuf,
}

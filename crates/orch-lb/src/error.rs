//! The load balancer's one error type: why it could not start, and why one connection or
//! body stream ended early (these are logged at debug and never stop the proxy).
//!
//! May depend on: std, hyper, rustls.

use std::net::SocketAddr;

/// Why a load balancer could not start, or why one stream through it ended early.
#[derive(Debug, thiserror::Error)]
pub enum LbError {
    /// A fixed port (http, https, app-id, stats) could not be bound.
    #[error("cannot listen on {address} (the {port_name} port)")]
    Listen {
        /// The address.
        address: SocketAddr,
        /// Which port: `http`, `https`, `app-id` or `stats`.
        port_name: &'static str,
        /// The cause.
        source: std::io::Error,
    },
    /// A certificate file could not be read or holds no usable certificate and key.
    #[error("cannot use the certificate {path}: {reason}")]
    Certificate {
        /// The PEM file.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// TLS could not be set up (no usable protocol versions in the crypto provider).
    #[error("cannot set up TLS")]
    Tls {
        /// The cause.
        source: rustls::Error,
    },
    /// The stats port stopped serving.
    #[error("the stats port stopped serving")]
    Stats {
        /// The cause.
        source: std::io::Error,
    },
    /// A client sent nothing for `timeout client` in the middle of a request body.
    #[error("the client was silent for {seconds:.1}s (timeout client)")]
    ClientTimeout {
        /// The timeout, seconds.
        seconds: f64,
    },
    /// A server sent nothing for `timeout server` in the middle of a response body.
    #[error("the server was silent for {seconds:.1}s (timeout server)")]
    ServerTimeout {
        /// The timeout, seconds.
        seconds: f64,
    },
    /// Reading a request body from the client failed.
    #[error("reading the request body failed")]
    ClientBody {
        /// The cause.
        source: hyper::Error,
    },
    /// Reading a response body from the server failed.
    #[error("reading the response body failed")]
    ServerBody {
        /// The cause.
        source: hyper::Error,
    },
    /// Connecting to a server failed (refused, unreachable, or `timeout connect`).
    #[error("cannot connect to the server {address}")]
    Connect {
        /// The server.
        address: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// HAProxy mode stopped.
    #[error("HAProxy mode failed")]
    Haproxy {
        /// The cause.
        #[from]
        source: super::haproxy_mode::HaproxyError,
    },
}

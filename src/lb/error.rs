//! The load balancer's one error type.
//!
//! May depend on: std.

use std::net::SocketAddr;

/// Why a load balancer could not start or keep running.
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
}

//! One client connection's context, shared by its requests: where it came from and which
//! listener it hit (for routing and the `X-Forwarded-*` headers, computed once per
//! connection), whether it speaks TLS (and the SNI name), its meter, and how many requests
//! it has seen and has in progress (read by the keep-alive watchdog), and its counts not yet
//! added to its frontend (added by the watchdog periodically and when the connection ends).
//!
//! May depend on: std, hyper (header values), [`super::io`], [`super::shared`],
//! [`super::stats`].

use super::io::ClientMeter;
use super::shared::{ListenerKind, Shared};
use super::stats::Tally;
use hyper::header::HeaderValue;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64};
use std::sync::Arc;

/// One client connection.
#[derive(Debug)]
pub(crate) struct ConnCtx {
    /// The proxy.
    pub shared: Arc<Shared>,
    /// The listener's purpose.
    pub kind: ListenerKind,
    /// The listener's address (the key of its frontend in the table).
    pub listener: SocketAddr,
    /// For service ports: the backend its frontend had when the connection was accepted
    /// (used if the frontend leaves the table while the connection lives).
    pub accept_backend: Option<String>,
    /// The client.
    pub client: SocketAddr,
    /// Whether the client speaks TLS to us.
    pub tls: bool,
    /// The TLS SNI name, if any.
    pub sni: Option<String>,
    /// Counts its bytes and reads.
    pub meter: Arc<ClientMeter>,
    /// The client's address, as an `X-Forwarded-For` value.
    pub forwarded_for: HeaderValue,
    /// The LB port the client hit, as an `X-Forwarded-Port` value.
    pub forwarded_port: HeaderValue,
    /// Requests whose response has not ended.
    pub in_flight: AtomicU32,
    /// Requests so far.
    pub requests: AtomicU64,
    /// `meter.reads` when the last response ended (more reads since: a new head began).
    pub idle_reads: AtomicU64,
    /// Requests and responses not yet added to the frontend.
    pub tally: Tally,
}

impl ConnCtx {
    /// Adds the connection's pending counts (bytes, requests, responses) to its frontend.
    pub fn flush(&self) {
        self.meter.flush();
        self.tally.flush(&self.meter.frontend);
    }
}

impl Drop for ConnCtx {
    fn drop(&mut self) {
        self.flush();
    }
}

/// The client's address as an `X-Forwarded-For` value (IPv4-mapped addresses as IPv4).
pub(crate) fn forwarded_for(client: SocketAddr) -> HeaderValue {
    HeaderValue::from_str(&client.ip().to_canonical().to_string())
        .unwrap_or_else(|_| HeaderValue::from_static("unknown"))
}

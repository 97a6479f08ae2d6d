//! Upstream HTTP connections: opening one (TCP connect within `timeout connect`, no Nagle,
//! hyper's HTTP/1.1 client handshake, a task driving it) and keeping idle keep-alive ones
//! per server for reuse.
//!
//! Guarantees: a connection the server closed is never handed out; a retired pool (its
//! server left the routing table) holds nothing and accepts nothing, so no new request goes
//! to a server that left. Reuse is last-in first-out (the warmest connection).
//!
//! May depend on: std, tokio, hyper, hyper-util, [`super::body`], [`super::io`],
//! [`super::server`], [`super::timeouts`], [`crate::lb::LbError`].

use super::body::RequestBody;
use super::io::Metered;
use super::server::ServerState;
use super::timeouts::within;
use crate::lb::LbError;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

/// The sending half of an upstream connection.
pub(crate) type Sender = SendRequest<RequestBody>;

/// At most this many idle connections are kept per server.
const MAX_IDLE: usize = 1024;

/// Idle connections to one server.
#[derive(Debug, Default)]
pub(crate) struct Pool {
    /// Idle connections, the most recently used last.
    idle: Mutex<Vec<Idle>>,
    /// The server left the routing table.
    retired: AtomicBool,
}

/// An idle connection.
#[derive(Debug)]
pub(crate) struct Idle {
    /// Its sending half.
    pub sender: Sender,
    /// Since when it is idle.
    pub since: Instant,
}

impl Pool {
    /// The most recently used idle connection that is still open.
    pub fn take(&self) -> Option<Idle> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        while let Some(connection) = idle.pop() {
            if !connection.sender.is_closed() {
                return Some(connection);
            }
        }
        None
    }

    /// Keeps `sender` for reuse, unless it is closed or the pool is retired or full.
    pub fn put(&self, sender: Sender) {
        if sender.is_closed() || self.retired.load(Relaxed) {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < MAX_IDLE && !self.retired.load(Relaxed) {
            idle.push(Idle {
                sender,
                since: Instant::now(),
            });
        }
    }

    /// Closes every idle connection and pools no more.
    pub fn retire(&self) {
        self.retired.store(true, Relaxed);
        let drained = std::mem::take(&mut *self.idle.lock().unwrap_or_else(|p| p.into_inner()));
        drop(drained);
    }

    /// How many idle connections it holds.
    pub fn len(&self) -> usize {
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

/// Opens an HTTP/1.1 connection to `server` (within `timeout`).
pub(crate) async fn connect(
    server: &Arc<ServerState>,
    timeout: Duration,
) -> Result<Sender, LbError> {
    let stream = connect_tcp(server, timeout).await?;
    let io = TokioIo::new(Metered::new(stream, Arc::clone(server)));
    let (sender, connection) = http1::handshake(io)
        .await
        .map_err(|error| LbError::Connect {
            address: server.address,
            source: io::Error::other(error),
        })?;
    tokio::spawn(async move {
        if let Err(error) = connection.with_upgrades().await {
            tracing::debug!(
                error = &error as &dyn std::error::Error,
                "upstream connection ended"
            );
        }
    });
    Ok(sender)
}

/// Opens a TCP connection to `server` (within `timeout`), without Nagle's delay.
pub(crate) async fn connect_tcp(
    server: &ServerState,
    timeout: Duration,
) -> Result<TcpStream, LbError> {
    let address = server.address;
    let stream = match within(timeout, TcpStream::connect(address)).await {
        Some(Ok(stream)) => stream,
        Some(Err(source)) => return Err(LbError::Connect { address, source }),
        None => {
            return Err(LbError::Connect {
                address,
                source: io::Error::new(io::ErrorKind::TimedOut, "timeout connect"),
            })
        }
    };
    // Latency matters more than packet count here; failure only costs that.
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

//! Upstream HTTP connections: opening one (TCP connect within `timeout connect`, no Nagle,
//! hyper's HTTP/1.1 client handshake) and keeping idle keep-alive ones per server for
//! reuse.
//!
//! An [`Upstream`] is driven by whoever uses it (the request waiting for its response head,
//! then the response body as the client reads it), not by a task of its own: a request
//! costs no task switches on the upstream side. An idle pooled connection is not driven;
//! when it is taken, it is driven once first, so a connection the server closed meanwhile
//! is noticed and dropped.
//!
//! Guarantees: a retired pool (its server left the routing table) holds nothing and accepts
//! nothing, so no new request goes to a server that left. Reuse is last-in first-out (the
//! warmest connection).
//!
//! May depend on: std, tokio, hyper, hyper-util, bytes, tracing, [`super::body`],
//! [`super::io`], [`super::server`], [`super::timeouts`], [`crate::LbError`].

use super::body::RequestBody;
use super::io::Metered;
use super::server::ServerState;
use super::timeouts::within;
use crate::LbError;
use bytes::Bytes;
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, Connection, SendRequest};
use hyper::client::conn::TrySendError;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::future::{poll_fn, Future};
use std::io;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

/// An upstream socket, counted at its server.
pub(crate) type UpstreamStream = Metered<TcpStream, ServerState>;

/// At most this many idle connections are kept per server.
const MAX_IDLE: usize = 1024;

/// One HTTP/1.1 connection to a server.
pub(crate) struct Upstream {
    /// Where requests go in.
    sender: SendRequest<RequestBody>,
    /// The connection's state machine (reads and writes happen when it is polled).
    connection: Option<Connection<TokioIo<UpstreamStream>, RequestBody>>,
    /// `connection` completed (closed, failed or upgraded) and must not be polled again.
    finished: bool,
    /// When it last went idle (for pooled connections).
    pub idle_since: Instant,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("finished", &self.finished)
            .field("idle_since", &self.idle_since)
            .finish_non_exhaustive()
    }
}

/// What a request on an [`Upstream`] gives.
pub(crate) type Sent = Result<Response<Incoming>, TrySendError<Request<RequestBody>>>;

impl Upstream {
    /// Whether it can still carry requests (as far as is known without driving it).
    pub fn is_open(&self) -> bool {
        !self.finished && self.connection.is_some() && !self.sender.is_closed()
    }

    /// Drives the connection: reads and writes whatever is ready. `Ready` once it has
    /// completed (it is then never polled again).
    pub fn poll_connection(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.finished {
            return Poll::Ready(());
        }
        let Some(connection) = self.connection.as_mut() else {
            self.finished = true;
            return Poll::Ready(());
        };
        match connection.poll_without_shutdown(cx) {
            Poll::Ready(result) => {
                if let Err(error) = result {
                    tracing::debug!(
                        error = &error as &dyn std::error::Error,
                        "upstream connection ended"
                    );
                }
                self.finished = true;
                Poll::Ready(())
            }
            Poll::Pending => Poll::Pending,
        }
    }

    /// Drives the connection until it takes a request (`true`) or ends (`false`).
    pub async fn ready(&mut self) -> bool {
        poll_fn(|cx| {
            let ended = self.poll_connection(cx).is_ready();
            match self.sender.poll_ready(cx) {
                Poll::Ready(result) => Poll::Ready(result.is_ok() && !ended),
                Poll::Pending if ended => Poll::Ready(false),
                Poll::Pending => Poll::Pending,
            }
        })
        .await
    }

    /// Sends `request` and drives the connection until the response head arrives. A
    /// request the connection could not take comes back in the error.
    pub async fn send(&mut self, request: Request<RequestBody>) -> Sent {
        let mut response = pin!(self.sender.try_send_request(request));
        poll_fn(|cx| {
            if let Poll::Ready(sent) = response.as_mut().poll(cx) {
                return Poll::Ready(sent);
            }
            if self.poll_connection(cx).is_pending() {
                return Poll::Pending;
            }
            if let Poll::Ready(sent) = response.as_mut().poll(cx) {
                return Poll::Ready(sent);
            }
            // The connection ended with the request still queued: dropping the
            // connection hands it back (or fails it).
            self.connection = None;
            response.as_mut().poll(cx)
        })
        .await
    }

    /// Drives an upgraded connection (after a `101`) to its end and returns the socket
    /// and the bytes already read past the response head.
    pub async fn into_upgraded(mut self) -> Option<(UpstreamStream, Bytes)> {
        poll_fn(|cx| self.poll_connection(cx)).await;
        let parts = self.connection.take()?.into_parts();
        Some((parts.io.into_inner(), parts.read_buf))
    }
}

/// Idle connections to one server.
#[derive(Debug, Default)]
pub(crate) struct Pool {
    /// Idle connections, the most recently used last. Boxed: a connection is large and
    /// moves through exchanges and response bodies, which then move a pointer.
    #[allow(clippy::vec_box)]
    idle: Mutex<Vec<Box<Upstream>>>,
    /// The server left the routing table.
    retired: AtomicBool,
}

impl Pool {
    /// The most recently used idle connection not known to be closed.
    pub fn take(&self) -> Option<Box<Upstream>> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        while let Some(upstream) = idle.pop() {
            if upstream.is_open() {
                return Some(upstream);
            }
        }
        None
    }

    /// Keeps `upstream` for reuse, unless it is closed or the pool is retired or full.
    pub fn put(&self, mut upstream: Box<Upstream>) {
        if !upstream.is_open() || self.retired.load(Relaxed) {
            return;
        }
        upstream.idle_since = Instant::now();
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < MAX_IDLE && !self.retired.load(Relaxed) {
            idle.push(upstream);
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
) -> Result<Box<Upstream>, LbError> {
    let stream = connect_tcp(server, timeout).await?;
    let io = TokioIo::new(Metered::new(stream, Arc::clone(server)));
    let (sender, connection) = http1::Builder::new()
        .writev(false)
        .handshake(io)
        .await
        .map_err(|error| LbError::Connect {
            address: server.address,
            source: io::Error::other(error),
        })?;
    Ok(Box::new(Upstream {
        sender,
        connection: Some(connection),
        finished: false,
        idle_since: Instant::now(),
    }))
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
    // Latency matters more than packet count; failure only costs that.
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

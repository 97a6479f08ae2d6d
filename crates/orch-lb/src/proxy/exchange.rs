//! The bookkeeping of one request: [`InFlight`] marks a client connection busy (its
//! keep-alive watchdog leaves it alone) from the request head until the response ends, and
//! then notes how much the client had sent (more after that is a new request head);
//! [`Exchange`] counts the request at its server (`current`, which `leastconn` reads, and
//! `total`; the backend's are the sums over its servers) while it is being served, and when it ends puts the upstream
//! connection back into the server's pool if the response was read to its end.
//!
//! May depend on: std, [`super::conn`], [`super::live`], [`super::pool`], [`super::server`].

use super::conn::ConnCtx;
use super::live::Live;
use super::pool::Upstream;
use super::server::ServerState;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

/// A request in progress on a client connection.
#[derive(Debug)]
pub(crate) struct InFlight(Arc<ConnCtx>);

impl InFlight {
    /// Marks `conn` busy with one more request.
    pub fn start(conn: Arc<ConnCtx>) -> Self {
        conn.in_flight.fetch_add(1, Relaxed);
        conn.requests.fetch_add(1, Relaxed);
        Self(conn)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let conn = &self.0;
        conn.idle_reads
            .store(conn.meter.reads.load(Relaxed), Relaxed);
        conn.in_flight.fetch_sub(1, Relaxed);
    }
}

/// A request being served by one server.
#[derive(Debug)]
pub(crate) struct Exchange {
    /// The table the request was routed with.
    live: Arc<Live>,
    /// The backend's index in it.
    backend: usize,
    /// The server's index in the backend.
    server: usize,
    /// The upstream connection, pooled again when `reusable`.
    pub upstream: Option<Box<Upstream>>,
    /// The client connection's busy mark, kept until the response ends.
    pub in_flight: Option<InFlight>,
    /// The response was read to its end: the connection can serve another request.
    pub reusable: bool,
}

impl Exchange {
    /// Counts a request at server `server` of backend `backend` of `live`.
    pub fn start(live: Arc<Live>, backend: usize, server: usize) -> Self {
        let exchange = Self {
            live,
            backend,
            server,
            upstream: None,
            in_flight: None,
            reusable: false,
        };
        let counters = &exchange.server().counters;
        counters.current.fetch_add(1, Relaxed);
        counters.total.fetch_add(1, Relaxed);
        exchange
    }

    /// The server's state.
    pub fn server(&self) -> &ServerState {
        &self.live.backends[self.backend].servers[self.server].state
    }
}

impl Drop for Exchange {
    fn drop(&mut self) {
        let state = &self.live.backends[self.backend].servers[self.server].state;
        state.counters.current.fetch_sub(1, Relaxed);
        if self.reusable {
            if let Some(upstream) = self.upstream.take() {
                state.pool.put(upstream);
            }
        }
    }
}

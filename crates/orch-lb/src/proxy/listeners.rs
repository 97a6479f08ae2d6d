//! Binding listeners, and keeping the service-port listeners in step with the table.
//!
//! [`Listeners::update`] diffs the table's frontends by listener address (bind address or
//! the LB's, and port): it binds the new ones, closes the listeners of the removed ones and
//! leaves the others untouched. Closing a listener stops accepting only; connections it
//! accepted run in their own tasks and are never touched. A port that cannot be bound is
//! logged (once, while it keeps failing) and tried again with the next table; it does not
//! stop the others.
//!
//! Sockets get `SO_REUSEADDR` (a port freed a moment ago can be bound again) and
//! marathon-lb's `backlog 10000` (capped by the kernel's `somaxconn`).
//!
//! May depend on: std, tokio, tracing, [`super::accept`], [`super::live`],
//! [`super::shared`], [`super::tls`].

use super::accept::accept_loop;
use super::live::Live;
use super::shared::{ListenerKind, Shared};
use super::tls;
use std::collections::{HashMap, HashSet};
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::{TcpListener, TcpSocket};
use tokio::task::JoinHandle;

/// marathon-lb's `backlog`.
const BACKLOG: u32 = 10_000;

/// Binds `address` for listening.
pub(crate) fn bind(address: SocketAddr) -> io::Result<TcpListener> {
    let socket = if address.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    socket.listen(BACKLOG)
}

/// The service-port listeners of one proxy.
#[derive(Debug)]
pub(crate) struct Listeners {
    /// The proxy.
    shared: Arc<Shared>,
    /// Accept loops by listener address.
    open: HashMap<SocketAddr, JoinHandle<()>>,
    /// Addresses that could not be bound (already reported).
    failing: HashSet<SocketAddr>,
}

impl Listeners {
    /// No listeners yet.
    pub fn new(shared: Arc<Shared>) -> Self {
        Self {
            shared,
            open: HashMap::new(),
            failing: HashSet::new(),
        }
    }

    /// Listens on exactly the frontends of `live` (see the module docs).
    pub fn update(&mut self, live: &Live) {
        self.open.retain(|address, task| {
            let keep = live.frontends.contains_key(address);
            if !keep {
                task.abort();
                tracing::info!(%address, "listener closed");
            }
            keep
        });
        self.failing
            .retain(|address| live.frontends.contains_key(address));
        for address in live.frontends.keys() {
            if self.open.contains_key(address) {
                continue;
            }
            match bind(*address) {
                Ok(listener) => {
                    self.failing.remove(address);
                    let tls = match tls::server_config(
                        Arc::clone(&self.shared.cell),
                        Arc::clone(&self.shared.certs),
                        Some(*address),
                    ) {
                        Ok(config) => Some(config),
                        Err(error) => {
                            tracing::warn!(error = &error as &dyn std::error::Error, %address, "no TLS on this port");
                            None
                        }
                    };
                    let task = tokio::spawn(accept_loop(
                        listener,
                        ListenerKind::Service,
                        *address,
                        Arc::clone(&self.shared),
                        tls,
                    ));
                    self.open.insert(*address, task);
                    tracing::info!(%address, "listening");
                }
                Err(error) => {
                    if self.failing.insert(*address) {
                        tracing::warn!(error = &error as &dyn std::error::Error, %address, "cannot listen; trying again with the next table");
                    } else {
                        tracing::debug!(error = &error as &dyn std::error::Error, %address, "still cannot listen");
                    }
                }
            }
        }
    }
}

impl Drop for Listeners {
    fn drop(&mut self) {
        for task in self.open.values() {
            task.abort();
        }
    }
}

//! The built-in load balancer: a tokio + hyper proxy serving the newest
//! [`RoutingTable`] of a watch channel, as marathon-lb's HAProxy would, without reloads.
//!
//! - Fixed ports, bound by [`Proxy::bind`]: HTTP (host and path rules), HTTPS (TLS with
//!   SNI, then the same rules), app-id (`X-Marathon-App-Id`), stats. A port of 0 is not
//!   bound.
//! - Service ports and VIPs: one listener per frontend of the table, opened and closed as
//!   tables come and go ([`listeners`]); tcp or http mode, TLS where the frontend has a
//!   certificate.
//! - A new table takes effect for the next connection and the next request on every
//!   connection; requests in progress finish with the table they started with. Nothing is
//!   reloaded and no accepted connection is closed because of a table.
//!
//! Layout: [`accept`] (accepting, `maxconn`, TLS, mode), [`http_conn`] (an HTTP client
//! connection and its timeouts), [`forward`] (one HTTP request), [`tcp`] (tcp mode and
//! tunnels), [`balance`], [`route`], [`headers`], [`replies`], [`body`], [`pool`]
//! (upstream connections), [`exchange`], [`live`] (a table made servable), [`server`]
//! (state that outlives tables), [`stats`], [`stats_report`], [`stats_csv`],
//! [`stats_prometheus`], [`stats_http`], [`tls`], [`io`], [`timeouts`], [`conn`],
//! [`shared`].
//!
//! May depend on: std, tokio, hyper, hyper-util, rustls, tokio-rustls, rcgen, axum,
//! tracing, sha1, hex, serde; [`crate`] (table, configuration, error).

mod accept;
mod balance;
mod body;
mod conn;
mod exchange;
mod forward;
mod headers;
mod http_conn;
mod io;
mod listeners;
mod live;
mod pool;
mod replies;
mod route;
mod server;
mod shared;
mod stats;
mod stats_csv;
mod stats_http;
mod stats_prometheus;
mod stats_report;
mod tcp;
mod timeouts;
mod tls;

use crate::{LbConfig, LbError, RoutingTable};
use listeners::Listeners;
use live::{Registry, TableCell};
use shared::{ListenerKind, Shared};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

/// How long stopping waits for the stats port's open requests.
const STATS_STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// The addresses the fixed ports are bound to (`None`: not bound).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProxyAddrs {
    /// The HTTP port.
    pub http: Option<SocketAddr>,
    /// The HTTPS port.
    pub https: Option<SocketAddr>,
    /// The app-id port.
    pub app_id: Option<SocketAddr>,
    /// The stats port.
    pub stats: Option<SocketAddr>,
}

/// A bound, not yet running proxy.
#[derive(Debug)]
pub struct Proxy {
    /// What listeners and connections share.
    shared: Arc<Shared>,
    /// The fixed ports' listeners, with their purpose and configured address.
    fixed: Vec<(TcpListener, ListenerKind, SocketAddr)>,
    /// The stats port's listener.
    stats: Option<TcpListener>,
    /// Where the fixed ports are bound.
    addrs: ProxyAddrs,
    /// Tells connections the proxy stops.
    stop: watch::Sender<bool>,
}

impl Proxy {
    /// Binds the fixed ports of `config` on its `bind_addr` (0 = not bound), loads its
    /// certificates (skipping unusable ones, with a warning) and generates the self-signed
    /// fallback. Must run inside a tokio runtime.
    ///
    /// Errors: [`LbError::Listen`] naming the port that could not be bound;
    /// [`LbError::Tls`] if TLS cannot be set up at all.
    pub async fn bind(config: Arc<LbConfig>) -> Result<Proxy, LbError> {
        let certs = Arc::new(tls::CertStore::new(&config.ssl_certs));
        let empty = Arc::new(RoutingTable::default());
        let cell = Arc::new(TableCell::new(
            Registry::default().build(empty, config.bind_addr),
        ));
        let https_tls = if config.https_port == 0 {
            None
        } else {
            Some(tls::server_config(
                Arc::clone(&cell),
                Arc::clone(&certs),
                None,
            )?)
        };

        let mut fixed = Vec::new();
        let mut addrs = ProxyAddrs::default();
        for (port, port_name, kind) in [
            (config.http_port, "http", ListenerKind::Http),
            (config.https_port, "https", ListenerKind::Https),
            (config.app_id_port, "app-id", ListenerKind::AppId),
        ] {
            if port == 0 {
                continue;
            }
            let (listener, bound) = bind_fixed(SocketAddr::new(config.bind_addr, port), port_name)?;
            match kind {
                ListenerKind::Http => addrs.http = Some(bound),
                ListenerKind::Https => addrs.https = Some(bound),
                ListenerKind::AppId | ListenerKind::Service => addrs.app_id = Some(bound),
            }
            fixed.push((listener, kind, SocketAddr::new(config.bind_addr, port)));
        }
        let stats = if config.stats_port == 0 {
            None
        } else {
            let (listener, bound) = bind_fixed(
                SocketAddr::new(config.bind_addr, config.stats_port),
                "stats",
            )?;
            addrs.stats = Some(bound);
            Some(listener)
        };

        let (stop, shutdown) = watch::channel(false);
        let shared = Arc::new(Shared {
            http: shared::http_builder(&config),
            connections: shared::connection_limit(config.limits.max_connections),
            config,
            cell,
            certs,
            https_tls,
            fixed: shared::FixedFrontends::default(),
            shutdown,
        });
        Ok(Proxy {
            shared,
            fixed,
            stats,
            addrs,
            stop,
        })
    }

    /// Where the fixed ports are bound.
    pub fn addrs(&self) -> ProxyAddrs {
        self.addrs
    }

    /// Serves until `shutdown` completes: the table in `tables` now and every newer one
    /// (a closed channel keeps the last table in service). `hup` is notified (one permit)
    /// by the stats port's `/_mlb_signal/hup` and `/_mlb_signal/usr1`.
    ///
    /// On shutdown the listeners close, HTTP connections finish their requests in progress
    /// and close, tcp streams and tunnels are closed.
    pub async fn run(
        self,
        mut tables: watch::Receiver<Arc<RoutingTable>>,
        hup: Arc<Notify>,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), LbError> {
        let Proxy {
            shared,
            fixed,
            stats,
            stop,
            ..
        } = self;
        let mut tasks: Vec<JoinHandle<()>> = fixed
            .into_iter()
            .map(|(listener, kind, address)| {
                let tls = match kind {
                    ListenerKind::Https => shared.https_tls.clone(),
                    _ => None,
                };
                tokio::spawn(accept::accept_loop(
                    listener,
                    kind,
                    address,
                    Arc::clone(&shared),
                    tls,
                ))
            })
            .collect();
        let stats_task = stats.map(|listener| {
            let router = stats_http::router(Arc::clone(&shared), hup);
            let mut stopped = shared.shutdown.clone();
            tokio::spawn(async move {
                axum::serve(listener, router)
                    .with_graceful_shutdown(async move {
                        let _ = stopped.changed().await;
                    })
                    .await
                    .map_err(|source| LbError::Stats { source })
            })
        });

        let mut registry = Registry::default();
        let mut listeners = Listeners::new(Arc::clone(&shared));
        let first = Arc::clone(&tables.borrow_and_update());
        apply(&shared, &mut registry, &mut listeners, first);

        let mut sampler = tokio::time::interval(Duration::from_secs(1));
        sampler.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut tables_open = true;
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                changed = tables.changed(), if tables_open => match changed {
                    Ok(()) => {
                        let table = Arc::clone(&tables.borrow_and_update());
                        apply(&shared, &mut registry, &mut listeners, table);
                    }
                    Err(_) => tables_open = false,
                },
                _ = sampler.tick() => sample(&shared),
                () = &mut shutdown => break,
            }
        }

        drop(listeners);
        for task in &tasks {
            task.abort();
        }
        tasks.clear();
        stop.send_replace(true);
        if let Some(task) = stats_task {
            match tokio::time::timeout(STATS_STOP_TIMEOUT, task).await {
                Ok(Ok(Err(error))) => {
                    tracing::warn!(error = &error as &dyn std::error::Error, "stats port");
                }
                Ok(_) => {}
                Err(_) => tracing::debug!("stats port still busy at shutdown"),
            }
        }
        Ok(())
    }
}

/// Binds a fixed port; the error names it.
fn bind_fixed(
    address: SocketAddr,
    port_name: &'static str,
) -> Result<(TcpListener, SocketAddr), LbError> {
    let listen_error = |source| LbError::Listen {
        address,
        port_name,
        source,
    };
    let listener = listeners::bind(address).map_err(listen_error)?;
    let bound = listener.local_addr().map_err(listen_error)?;
    Ok((listener, bound))
}

/// Puts `table` in service: builds it, loads the certificates it names, swaps it in and
/// updates the listeners.
fn apply(
    shared: &Shared,
    registry: &mut Registry,
    listeners: &mut Listeners,
    table: Arc<RoutingTable>,
) {
    shared.certs.forget_failures();
    for path in table
        .frontends
        .iter()
        .filter_map(|f| f.ssl_cert.as_deref())
        .chain(table.vhosts.iter().filter_map(|v| v.ssl_cert.as_deref()))
    {
        shared.certs.file(path);
    }
    let live = Arc::new(registry.build(table, shared.config.bind_addr));
    shared.cell.store(Arc::clone(&live));
    listeners.update(&live);
    tracing::debug!(
        raft.index = live.table.applied_index,
        frontends = live.frontends.len(),
        backends = live.backends.len(),
        "routing table in service"
    );
}

/// Records every counter's totals for the rates.
fn sample(shared: &Shared) {
    let live = shared.cell.load();
    for (_, counters) in shared.fixed.bound(&shared.config) {
        counters.sample();
    }
    for frontend in live.frontends.values() {
        frontend.counters.sample();
    }
    for backend in &live.backends {
        backend.state.counters.sample();
        for server in &backend.servers {
            server.state.counters.sample();
        }
    }
}

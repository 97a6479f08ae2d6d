//! One running load balancer: a routing table per snapshot (and per `/_mlb_signal/hup`),
//! served by the built-in proxy; or, in HAProxy mode, a haproxy.cfg per change.
//!
//! May depend on: tokio, state, [`super::routes`], [`super::proxy`], [`super::haproxy_mode`].

use super::config::LbConfig;
use super::error::LbError;
use super::proxy::Proxy;
use super::routes::routes;
use super::table::{RouteConfig, RoutingTable};
use orch_core::state::Snapshot;
use std::future::Future;
use std::sync::Arc;
use tokio::sync::{watch, Notify};

/// What a load balancer holds before it runs: the built-in proxy with its fixed ports
/// bound, or nothing in HAProxy mode (HAProxy binds them).
#[derive(Debug)]
pub enum Listeners {
    /// The built-in proxy.
    Proxy(Box<Proxy>),
    /// HAProxy mode.
    Haproxy,
}

impl Listeners {
    /// Binds the fixed ports (unless in HAProxy mode), so that a taken port is an error
    /// before anything runs.
    pub async fn bind(config: &LbConfig) -> Result<Self, LbError> {
        match config.haproxy {
            Some(_) => Ok(Self::Haproxy),
            None => Ok(Self::Proxy(Box::new(
                Proxy::bind(Arc::new(config.clone())).await?,
            ))),
        }
    }
}

/// Serves `snapshots` until `shutdown`.
pub async fn run(
    config: LbConfig,
    listeners: Listeners,
    snapshots: watch::Receiver<Arc<Snapshot>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), LbError> {
    match listeners {
        Listeners::Haproxy => super::haproxy_mode::run(config, snapshots, shutdown)
            .await
            .map_err(LbError::from),
        Listeners::Proxy(proxy) => {
            let hup = Arc::new(Notify::new());
            let (tables_sender, tables) = watch::channel(Arc::new(RoutingTable::default()));
            tokio::spawn(follow(
                snapshots,
                config.routes.clone(),
                Arc::clone(&hup),
                tables_sender,
            ));
            proxy.run(tables, hup, shutdown).await
        }
    }
}

/// Publishes the table of every snapshot (and again on `hup`) while anyone listens; a table
/// that routes the same as the current one is not published.
async fn follow(
    mut snapshots: watch::Receiver<Arc<Snapshot>>,
    config: RouteConfig,
    hup: Arc<Notify>,
    tables: watch::Sender<Arc<RoutingTable>>,
) {
    loop {
        let snapshot = Arc::clone(&snapshots.borrow_and_update());
        let table = routes(&snapshot, &config);
        tables.send_if_modified(|current| {
            let changed = !same_routes(current, &table);
            if changed {
                *current = Arc::new(table);
            }
            changed
        });
        tokio::select! {
            changed = snapshots.changed() => if changed.is_err() { return },
            () = hup.notified() => tracing::info!("hup: routes rebuilt from the newest snapshot"),
            () = tables.closed() => return,
        }
    }
}

/// Whether two tables route alike (the snapshot index aside).
fn same_routes(a: &RoutingTable, b: &RoutingTable) -> bool {
    a.backends == b.backends
        && a.frontends == b.frontends
        && a.vhosts == b.vhosts
        && a.app_ids == b.app_ids
}

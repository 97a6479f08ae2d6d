//! One DNS service: rebuilds the zone from every snapshot and serves it over DNS (UDP and TCP)
//! and Mesos-DNS's HTTP API until shutdown.

use super::{records, DnsConfig, DnsError, ForwardConfig};
use orch_core::state::Snapshot;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::watch;

/// The bound sockets of one DNS service.
#[derive(Debug)]
pub struct Listeners {
    /// DNS over UDP.
    pub udp: UdpSocket,
    /// DNS over TCP (same address).
    pub tcp: TcpListener,
    /// The HTTP API, if enabled.
    pub http: Option<TcpListener>,
}

impl Listeners {
    /// Binds the addresses of `config`.
    pub async fn bind(config: &DnsConfig) -> Result<Self, DnsError> {
        let bind_error = |address: SocketAddr| {
            move |source: std::io::Error| DnsError::Listen { address, source }
        };
        let udp = UdpSocket::bind(config.listen)
            .await
            .map_err(bind_error(config.listen))?;
        let tcp = TcpListener::bind(config.listen)
            .await
            .map_err(bind_error(config.listen))?;
        let http = match config.http_listen {
            Some(address) => Some(
                TcpListener::bind(address)
                    .await
                    .map_err(bind_error(address))?,
            ),
            None => None,
        };
        Ok(Self { udp, tcp, http })
    }
}

/// Serves `snapshots` until `shutdown` completes.
pub async fn run(
    config: DnsConfig,
    listeners: Listeners,
    mut snapshots: watch::Receiver<Arc<Snapshot>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), DnsError> {
    let zone_config = config.zone_config(own_addresses(config.listen.ip()));
    let first = records(&snapshots.borrow_and_update(), &zone_config);
    let (zones, zone) = watch::channel(Arc::new(first));
    tokio::spawn(async move {
        while snapshots.changed().await.is_ok() {
            let snapshot = Arc::clone(&snapshots.borrow_and_update());
            zones.send_replace(Arc::new(records(&snapshot, &zone_config)));
        }
    });
    tracing::info!(
        listen = %config.listen,
        http = ?config.http_listen,
        domain = %config.domain,
        "DNS serving"
    );
    let (stop, stopped) = watch::channel(false);
    if let Some(http) = listeners.http {
        let router = super::http::router(zone.clone(), Arc::new(config.clone()));
        let mut stopped = stopped.clone();
        tokio::spawn(async move {
            let shutdown = async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            };
            if let Err(error) = axum::serve(http, router)
                .with_graceful_shutdown(shutdown)
                .await
            {
                tracing::error!(
                    error = &error as &dyn std::error::Error,
                    "the DNS HTTP API failed"
                );
            }
        });
    }
    let result = super::serve(
        listeners.udp,
        listeners.tcp,
        zone,
        ForwardConfig::from_config(&config),
        shutdown,
    )
    .await;
    stop.send_replace(true);
    result
}

/// The addresses this server answers at: the listen IP, or every non-loopback address of
/// this host when listening on all of them (Mesos-DNS's `listener` rule).
fn own_addresses(listen: IpAddr) -> Vec<IpAddr> {
    if !listen.is_unspecified() {
        return vec![listen];
    }
    match nix::ifaddrs::getifaddrs() {
        Ok(interfaces) => {
            let mut addresses: Vec<IpAddr> = interfaces
                .filter_map(|interface| interface.address)
                .filter_map(|address| {
                    address
                        .as_sockaddr_in()
                        .map(|v4| IpAddr::V4(v4.ip()))
                        .or_else(|| address.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip())))
                })
                .filter(|ip| !ip.is_loopback() && !is_link_local(ip))
                .collect();
            addresses.sort();
            addresses.dedup();
            addresses
        }
        Err(error) => {
            tracing::warn!(%error, "cannot list this host's addresses for ns1");
            Vec::new()
        }
    }
}

fn is_link_local(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) == 0xfe80,
    }
}

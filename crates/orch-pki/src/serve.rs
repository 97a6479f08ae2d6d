//! HTTPS for a node's API (a master's one port, an agent's API): each connection's TLS
//! handshake asks for a client certificate; the identity it proves ([`Peer`]: a master or an
//! agent of the cluster CA, or nobody) goes with every request of that connection, for the
//! routes that only masters or agents may call. At most [`MAX_CONNECTIONS`] are open at once;
//! the next waits for one to close.
//!
//! May depend on: the crate's identity, the router. Accepts connections, handshakes.

use crate::Role;
use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// How long a client may take to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long open connections may take to finish once the server stops.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// The most connections served at once (each holds a task and its buffers).
pub const MAX_CONNECTIONS: usize = 4096;

/// Who the client of a connection proved to be with its certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer(pub Option<(Role, String)>);

/// Serves `router` over TLS on `listener` until `shutdown` completes; open connections get
/// [`DRAIN_TIMEOUT`] to finish.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    config: Arc<rustls::ServerConfig>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let (stop, stopping) = watch::channel(false);
    let open = Arc::new(());
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    tokio::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            slot = Arc::clone(&slots).acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_closed) => break,
            },
            () = &mut shutdown => break,
        };
        let (tcp, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(error = &error as &dyn std::error::Error, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = tcp.set_nodelay(true);
        let (acceptor, router, mut stopping, open) = (
            acceptor.clone(),
            router.clone(),
            stopping.clone(),
            Arc::clone(&open),
        );
        tokio::spawn(async move {
            let _open = (open, slot);
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(error)) => {
                    tracing::debug!(%remote, error = &error as &dyn std::error::Error, "TLS handshake failed");
                    return;
                }
                Err(_) => return,
            };
            let peer = Peer(
                tls.get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|chain| chain.first())
                    .and_then(|cert| crate::identity(cert)),
            );
            let service =
                hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
                    request.extensions_mut().insert(peer.clone());
                    request.extensions_mut().insert(ConnectInfo(remote));
                    let mut router = router.clone();
                    tower_service::Service::call(&mut router, request)
                });
            let connection = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tls), service)
                .with_upgrades();
            tokio::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                _ = stopping.changed() => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
        });
    }
    let _ = stop.send(true);
    let deadline = tokio::time::Instant::now() + DRAIN_TIMEOUT;
    while Arc::strong_count(&open) > 1 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

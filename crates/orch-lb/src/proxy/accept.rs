//! Accepting client connections on one listener and handing each to its mode.
//!
//! `maxconn`: a listener accepts only while the shared semaphore has a free permit, and an
//! accepted connection is served once it holds one; so beyond the limit new connections
//! wait in the kernel's backlog (as with HAProxy), at most one per listener waits accepted,
//! and each is served as soon as a served connection ends. Each accepted socket gets `TCP_NODELAY`, then its own task: TLS first
//! where the listener asks (the HTTPS port; a service port whose frontend has an
//! `SSL_CERT`), then HTTP or TCP by the frontend's mode in the newest table. Accept errors
//! (e.g. out of file descriptors) are logged and retried after a short pause; they never
//! end the loop.
//!
//! May depend on: std, tokio, tokio-rustls, rustls, tracing, [`super::conn`],
//! [`super::http_conn`], [`super::io`], [`super::live`], [`super::shared`],
//! [`super::stats`], [`super::tcp`], [`super::timeouts`], [`crate`] (modes).

use super::conn::{forwarded_for, ConnCtx};
use super::http_conn;
use super::io::{ClientMeter, Metered};
use super::live::Live;
use super::shared::{ListenerKind, Shared};
use super::stats::Tally;
use super::tcp;
use super::timeouts::within;
use crate::Mode;
use hyper::header::HeaderValue;
use rustls::ServerConfig;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::OwnedSemaphorePermit;
use tokio_rustls::TlsAcceptor;

/// How long to pause after an accept error that is not about one connection.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

/// Accepts connections on `listener` (known as `address`) forever.
pub(crate) async fn accept_loop(
    listener: TcpListener,
    kind: ListenerKind,
    address: SocketAddr,
    shared: Arc<Shared>,
    tls: Option<Arc<ServerConfig>>,
) {
    loop {
        // Accept only while a slot is free, without keeping it: a listener that holds a slot
        // while waiting for a client would starve the other listeners.
        match shared.connections.acquire().await {
            Ok(free) => drop(free),
            Err(_) => return,
        }
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                if is_per_connection(&error) {
                    tracing::debug!(error = &error as &dyn std::error::Error, %address, "accept");
                } else {
                    tracing::warn!(error = &error as &dyn std::error::Error, %address, "accept failed");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                }
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&shared.connections).acquire_owned().await else {
            return;
        };
        // Latency matters more than packet count; failure only costs that.
        let _ = stream.set_nodelay(true);
        tokio::spawn(connection(
            stream,
            peer,
            kind,
            address,
            Arc::clone(&shared),
            tls.clone(),
            permit,
        ));
    }
}

/// Errors that concern one connection only.
fn is_per_connection(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    )
}

/// Serves one accepted connection (holding its `maxconn` permit until it ends).
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    kind: ListenerKind,
    listener: SocketAddr,
    shared: Arc<Shared>,
    tls: Option<Arc<ServerConfig>>,
    _permit: OwnedSemaphorePermit,
) {
    let live = shared.cell.load();
    let (counters, mode, backend, tls) = match shared.fixed.of(kind) {
        Some(counters) => (
            Arc::clone(counters),
            Mode::Http,
            None,
            if kind == ListenerKind::Https {
                tls
            } else {
                None
            },
        ),
        None => {
            let Some(frontend) = live.frontends.get(&listener) else {
                // The frontend left the table between accept and now.
                return;
            };
            let wants_tls = frontend.frontend.ssl_cert.is_some();
            (
                Arc::clone(&frontend.counters),
                frontend.frontend.mode,
                frontend.backend,
                if wants_tls { tls } else { None },
            )
        }
    };
    let _open = counters.open();
    let local_port = stream.local_addr().map_or(listener.port(), |a| a.port());
    let meter = Arc::new(ClientMeter::new(Arc::clone(&counters)));
    let io = Metered::new(stream, Arc::clone(&meter));
    let accept_backend = backend.map(|b| live.backends[b].backend.name.clone());
    let context = |tls: bool, sni: Option<String>| ConnCtx {
        shared: Arc::clone(&shared),
        kind,
        listener,
        accept_backend,
        client: peer,
        tls,
        sni,
        meter,
        forwarded_for: forwarded_for(peer),
        forwarded_port: HeaderValue::from(local_port),
        in_flight: 0.into(),
        requests: 0.into(),
        idle_reads: 0.into(),
        tally: Tally::default(),
    };
    match tls {
        None => serve(io, mode, context(false, None), live, backend, &shared).await,
        Some(config) => {
            let handshake = TlsAcceptor::from(config).accept(io);
            match within(shared.config.limits.http_request_timeout, handshake).await {
                Some(Ok(stream)) => {
                    let sni = stream.get_ref().1.server_name().map(str::to_owned);
                    serve(stream, mode, context(true, sni), live, backend, &shared).await;
                }
                Some(Err(error)) => {
                    tracing::debug!(error = &error as &dyn std::error::Error, client = %peer, "TLS handshake failed");
                }
                None => tracing::debug!(client = %peer, "TLS handshake timed out"),
            }
        }
    }
}

/// Serves `io` in `mode`.
async fn serve<I>(
    io: I,
    mode: Mode,
    ctx: ConnCtx,
    live: Arc<Live>,
    backend: Option<usize>,
    shared: &Shared,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    match mode {
        Mode::Http => {
            drop(live);
            http_conn::serve(io, Arc::new(ctx)).await;
        }
        Mode::Tcp => tcp::serve(io, ctx.client, live, backend, shared).await,
    }
}

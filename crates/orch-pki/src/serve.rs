//! HTTPS for a node's API (a master's one port, an agent's API): each connection's TLS
//! handshake asks for a client certificate; the identity it proves ([`Peer`]: a master or an
//! agent of the cluster CA, or nobody) goes with every request of that connection, for the
//! routes that only masters or agents may call. At most [`MAX_CONNECTIONS`] are open at once;
//! the next waits for one to close ([`Capped`] does the same for plain HTTP).
//!
//! May depend on: the crate's identity, the router. Accepts connections, handshakes.

use crate::Role;
use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use std::future::Future;
use std::net::SocketAddr;
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

/// How long a client may take to send a request's head, also while a kept-alive
/// connection waits for its next request: an idle or trickling client loses its slot.
const HEAD_TIMEOUT: Duration = Duration::from_secs(30);
/// The most bytes a connection buffers, which bounds a request's head (a larger head is
/// refused with 431); bodies stream and have their own limits.
const MAX_HEAD_BYTES: usize = 64 << 10;

/// Serves `router` over TLS on `listener` until `shutdown` completes; open connections get
/// [`DRAIN_TIMEOUT`] to finish.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    config: Arc<rustls::ServerConfig>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    serve_with(listener, router, Some(acceptor), shutdown).await
}

/// Serves `router` over plain HTTP (loopback, or `--insecure`) with the same limits as
/// [`serve`]: connections capped, heads bounded in size and time. Every peer is nobody.
pub async fn serve_plain(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, router, None, shutdown).await
}

async fn serve_with(
    listener: TcpListener,
    router: Router,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::serve::Listener as _;
    let (stop, stopping) = watch::channel(false);
    let open = Arc::new(());
    let mut listener = Capped::new(listener, MAX_CONNECTIONS);
    tokio::pin!(shutdown);
    loop {
        let (tcp, remote) = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let _ = tcp.get_ref().set_nodelay(true);
        let (tls, router, stopping, open) = (
            tls.clone(),
            router.clone(),
            stopping.clone(),
            Arc::clone(&open),
        );
        tokio::spawn(async move {
            let _open = open;
            let Some(acceptor) = tls else {
                let context = (Peer(None), remote, router, stopping);
                return serve_connection(tcp, context).await;
            };
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
            serve_connection(tls, (peer, remote, router, stopping)).await;
        });
    }
    let _ = stop.send(true);
    let deadline = tokio::time::Instant::now() + DRAIN_TIMEOUT;
    while Arc::strong_count(&open) > 1 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// Serves one connection's requests, each with the peer and the remote address, until it
/// closes or the server stops (then it finishes gracefully).
async fn serve_connection<I>(
    io: I,
    (peer, remote, router, mut stopping): (Peer, SocketAddr, Router, watch::Receiver<bool>),
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(peer.clone());
        request.extensions_mut().insert(ConnectInfo(remote));
        let mut router = router.clone();
        tower_service::Service::call(&mut router, request)
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEAD_TIMEOUT)
        .max_buf_size(MAX_HEAD_BYTES)
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    tokio::pin!(connection);
    tokio::select! {
        _ = connection.as_mut() => {}
        _ = stopping.changed() => {
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
        }
    }
}

/// A listener for `axum::serve` (plain HTTP) that holds at most `max` connections open at
/// once, as [`serve`] does over TLS: `accept` waits for a slot, which each connection gives
/// back when it closes.
#[derive(Debug)]
pub struct Capped<L> {
    inner: L,
    slots: Arc<tokio::sync::Semaphore>,
}

impl<L> Capped<L> {
    /// `inner`, holding at most `max` connections.
    pub fn new(inner: L, max: usize) -> Self {
        Self {
            inner,
            slots: Arc::new(tokio::sync::Semaphore::new(max)),
        }
    }
}

impl<L: axum::serve::Listener> axum::serve::Listener for Capped<L> {
    type Io = CappedIo<L::Io>;
    type Addr = L::Addr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let slot = match Arc::clone(&self.slots).acquire_owned().await {
            Ok(slot) => slot,
            // Never closed: this listener owns the semaphore.
            Err(_closed) => std::future::pending().await,
        };
        let (io, addr) = self.inner.accept().await;
        (CappedIo { io, _slot: slot }, addr)
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// A connection of a [`Capped`] listener: its slot is free again when it is dropped.
#[derive(Debug)]
pub struct CappedIo<T> {
    io: T,
    _slot: tokio::sync::OwnedSemaphorePermit,
}

impl<T> CappedIo<T> {
    /// The connection.
    pub fn get_ref(&self) -> &T {
        &self.io
    }
}

impl<T: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for CappedIo<T> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<T: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for CappedIo<T> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    #[tokio::test]
    async fn a_capped_listener_holds_no_more_connections_than_its_slots() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let router = Router::new().route("/", axum::routing::get(|| async { "ok" }));
        tokio::spawn(async move { axum::serve(Capped::new(listener, 1), router).await });
        let get = b"GET / HTTP/1.1\r\nhost: x\r\n\r\n";
        let mut first = tokio::net::TcpStream::connect(addr).await.expect("connect");
        first.write_all(get).await.expect("write");
        let mut answer = [0u8; 12];
        first
            .read_exact(&mut answer)
            .await
            .expect("the first is served");
        assert_eq!(&answer, b"HTTP/1.1 200");
        // The only slot is held by the open first connection: the second waits.
        let mut second = tokio::net::TcpStream::connect(addr).await.expect("connect");
        second.write_all(get).await.expect("write");
        let waited =
            tokio::time::timeout(Duration::from_millis(300), second.read_exact(&mut answer)).await;
        assert!(
            waited.is_err(),
            "a second connection was served while the first held the slot"
        );
        drop(first);
        tokio::time::timeout(Duration::from_secs(5), second.read_exact(&mut answer))
            .await
            .expect("served once the first closed")
            .expect("read");
        assert_eq!(&answer, b"HTTP/1.1 200");
    }
}

//! The TCP mode (service ports in tcp mode and VIPs): pick a server (the backend's
//! balance; a refused or timed-out connect marks it down and another is tried, up to
//! `retries` more), then copy bytes both ways until both sides are done, either side has
//! been silent for the idle timeout, or the proxy stops. Bytes are counted at the frontend
//! (client socket) and at the server and backend (upstream socket).
//!
//! [`tunnel`] is also what upgraded HTTP connections (WebSocket) run on.
//!
//! May depend on: std, tokio, tracing, [`super::balance`], [`super::exchange`],
//! [`super::io`], [`super::live`], [`super::pool`], [`super::shared`].

use super::balance;
use super::exchange::Exchange;
use super::io::{Metered, Ticks};
use super::live::Live;
use super::pool::connect_tcp;
use super::shared::Shared;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use tokio::time::Instant;

/// Proxies one client connection to a server of backend `backend` of `live` (closes it at
/// once when there is no backend or no server can be connected).
pub(crate) async fn serve<I>(
    client: I,
    peer: SocketAddr,
    live: Arc<Live>,
    backend: Option<usize>,
    shared: &Shared,
) where
    I: AsyncRead + AsyncWrite + Unpin,
{
    let Some(b) = backend else {
        return;
    };
    let limits = &shared.config.limits;
    let lb = &live.backends[b];
    let mut tried = Vec::new();
    let mut retries = limits.retries;
    let (server, stream) = loop {
        let Some(server) = balance::pick(lb, peer.ip(), &tried) else {
            return;
        };
        let state = &lb.servers[server].state;
        match connect_tcp(state, limits.connect_timeout).await {
            Ok(stream) => {
                state.mark_up();
                break (server, stream);
            }
            Err(error) => {
                tracing::debug!(error = &error as &dyn std::error::Error, "connect failed");
                state.mark_down();
                tried.push(server);
                if retries == 0 {
                    return;
                }
                retries -= 1;
                lb.state.counters.retries.fetch_add(1, Relaxed);
            }
        }
    };
    let upstream = Metered::new(stream, Arc::clone(&lb.servers[server].state));
    let _exchange = Exchange::start(Arc::clone(&live), b, server);
    let idle = limits.client_timeout.min(limits.server_timeout);
    tunnel(client, upstream, idle, shared.shutdown.clone()).await;
}

/// Copies bytes between `a` and `b` until both directions are done, nothing moved for
/// `idle` (checked every `idle`, so the cut comes between one and two `idle`s of silence;
/// zero: never), or `shutdown` changes.
pub(crate) async fn tunnel<A, B>(a: A, b: B, idle: Duration, mut shutdown: watch::Receiver<bool>)
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let ticks = Arc::new(Ticks::default());
    let mut a = Metered::new(a, Arc::clone(&ticks));
    let mut b = Metered::new(b, Arc::clone(&ticks));
    let copy = tokio::io::copy_bidirectional(&mut a, &mut b);
    tokio::pin!(copy);
    let check = tokio::time::sleep(idle);
    tokio::pin!(check);
    let mut seen = 0;
    loop {
        tokio::select! {
            result = &mut copy => {
                if let Err(error) = result {
                    tracing::debug!(error = &error as &dyn std::error::Error, "tunnel ended");
                }
                return;
            }
            () = &mut check, if !idle.is_zero() => {
                let now = ticks.0.load(Relaxed);
                if now == seen {
                    tracing::debug!("tunnel idle: closed");
                    return;
                }
                seen = now;
                check.as_mut().reset(Instant::now() + idle);
            }
            _ = shutdown.changed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test(start_paused = true)]
    async fn a_silent_tunnel_is_cut_and_a_busy_one_is_not() {
        let (client, mut client_far) = tokio::io::duplex(1024);
        let (server, mut server_far) = tokio::io::duplex(1024);
        let (_keep, shutdown) = watch::channel(false);
        let tunnel = tokio::spawn(tunnel(client, server, Duration::from_secs(10), shutdown));
        for _ in 0..5 {
            client_far.write_all(b"ping").await.expect("write");
            let mut buf = [0u8; 4];
            server_far.read_exact(&mut buf).await.expect("read");
            assert_eq!(&buf, b"ping");
            tokio::time::sleep(Duration::from_secs(8)).await;
        }
        assert!(!tunnel.is_finished(), "busy for 40s with 10s idle limit");
        tokio::time::sleep(Duration::from_secs(25)).await;
        assert!(tunnel.is_finished(), "silent for 25s");
    }

    #[tokio::test]
    async fn shutdown_ends_a_tunnel() {
        let (client, _client_far) = tokio::io::duplex(1024);
        let (server, _server_far) = tokio::io::duplex(1024);
        let (stop, shutdown) = watch::channel(false);
        let tunnel = tokio::spawn(tunnel(client, server, Duration::ZERO, shutdown));
        stop.send_replace(true);
        tokio::time::timeout(Duration::from_secs(5), tunnel)
            .await
            .expect("ended")
            .expect("no panic");
    }
}

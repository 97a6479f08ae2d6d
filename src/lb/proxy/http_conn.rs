//! One HTTP client connection: hyper's HTTP/1.1 server (keep-alive, upgrades) with the
//! proxy as its service, plus the limits hyper does not enforce itself.
//!
//! - `timeout http-request`: hyper's header read timeout (a client that does not finish
//!   a request head in time is disconnected; hyper closes without a 408).
//! - Request heads over `max_header_bytes`: hyper answers 431 and closes; malformed
//!   requests get 400 and are closed. Other connections are not affected.
//! - `timeout http-keep-alive`: a watchdog wakes every `keep_alive_timeout` and closes the
//!   connection when no request is in progress, at least one was served, and nothing was
//!   read since the previous wake-up (so an idle connection goes after one to two
//!   timeouts).
//! - Shutdown: in-progress requests finish, then the connection closes.
//!
//! Each request reads the newest table through a per-connection cache (one atomic load when
//! the table did not change).
//!
//! May depend on: std, tokio, hyper, hyper-util, tracing, [`super::conn`],
//! [`super::forward`], [`super::live`].

use super::conn::ConnCtx;
use super::forward;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::cell::RefCell;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;

/// Serves HTTP on `io` until the client or the proxy ends the connection.
pub(crate) async fn serve<I>(io: I, ctx: Arc<ConnCtx>)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let shared = Arc::clone(&ctx.shared);
    let cache = RefCell::new(shared.cell.cached());
    let service_ctx = Arc::clone(&ctx);
    let service = service_fn(move |request| {
        let live = Arc::clone(cache.borrow_mut().refresh(&service_ctx.shared.cell));
        forward::handle(live, Arc::clone(&service_ctx), request)
    });
    let connection = shared
        .http
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    tokio::pin!(connection);

    let keep_alive = shared.config.limits.keep_alive_timeout;
    let watchdog = tokio::time::sleep(keep_alive);
    tokio::pin!(watchdog);
    let mut shutdown = shared.shutdown.clone();
    let mut seen = ctx.meter.reads.load(Relaxed);
    let mut closing = false;
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(
                        error = &error as &dyn std::error::Error,
                        client = %ctx.client,
                        "client connection ended"
                    );
                }
                return;
            }
            () = &mut watchdog, if !closing && !keep_alive.is_zero() => {
                let reads = ctx.meter.reads.load(Relaxed);
                if reads == seen
                    && ctx.in_flight.load(Relaxed) == 0
                    && ctx.requests.load(Relaxed) > 0
                {
                    connection.as_mut().graceful_shutdown();
                    closing = true;
                }
                seen = reads;
                watchdog.as_mut().reset(Instant::now() + keep_alive);
            }
            _ = shutdown.changed(), if !closing => {
                connection.as_mut().graceful_shutdown();
                closing = true;
            }
        }
    }
}

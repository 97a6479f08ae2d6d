//! One HTTP client connection: hyper's HTTP/1.1 server (keep-alive, upgrades) with the
//! proxy as its service, plus the limits hyper does not enforce the way HAProxy does.
//!
//! - Request heads over `max_header_bytes`: hyper answers 431 and closes; malformed
//!   requests get 400 and are closed. Other connections are not affected.
//! - A watchdog ([`Watchdog`]) wakes every half of the shorter of `timeout http-request`
//!   and `timeout http-keep-alive` and looks at the connection's counters:
//!   - waiting for a request head (a new connection, or bytes of a new head arrived) for
//!     `timeout http-request` → the connection is closed (no 408 is sent);
//!   - idle between requests for `timeout http-keep-alive` → closed gracefully;
//!   - a request in progress → left alone (`timeout server`/`client` apply to it).
//!
//!   So a limit is enforced within half a period of its value. One timer per connection,
//!   none per request. Each look also adds the connection's counts to its frontend.
//! - Shutdown: requests in progress finish, then the connection closes.
//!
//! Each request reads the newest table through a per-connection cache (one atomic load when
//! the table did not change). The connection's future polls hyper first and touches the
//! watchdog and the shutdown signal only when its deadline passed or the signal changed, so a
//! wake-up costs little beyond hyper's own work.
//!
//! May depend on: std, tokio, hyper, hyper-util, tracing, [`super::conn`],
//! [`super::forward`], [`crate`] (limits).

use super::conn::ConnCtx;
use super::forward;
use crate::Limits;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::cell::RefCell;
use std::future::{poll_fn, Future};
use std::pin::pin;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;

/// The shortest watchdog period.
const MIN_PERIOD: Duration = Duration::from_millis(10);

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
    let mut connection = pin!(shared
        .http
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades());

    let mut watchdog = Watchdog::new(&shared.config.limits);
    let mut sleep = pin!(tokio::time::sleep_until(watchdog.deadline));
    let stop_flag = shared.shutdown.clone();
    let mut stop_signal = shared.shutdown.clone();
    let mut stop_wait = pin!(stop_signal.changed());
    let mut registered = false;
    let mut closing = false;
    poll_fn(|cx| loop {
        if let Poll::Ready(result) = connection.as_mut().poll(cx) {
            if let Err(error) = result {
                tracing::debug!(
                    error = &error as &dyn std::error::Error,
                    client = %ctx.client,
                    "client connection ended"
                );
            }
            return Poll::Ready(());
        }
        if closing {
            return Poll::Pending;
        }
        if !registered {
            // Both wake this task from now on without being polled again.
            registered = true;
            let _ = stop_wait.as_mut().poll(cx);
            if watchdog.enabled() {
                let _ = sleep.as_mut().poll(cx);
            }
        }
        if !matches!(stop_flag.has_changed(), Ok(false)) {
            connection.as_mut().graceful_shutdown();
            closing = true;
            continue;
        }
        if watchdog.enabled() && sleep.is_elapsed() {
            ctx.flush();
            match watchdog.check(&ctx, Instant::now()) {
                Verdict::Keep => {
                    sleep.as_mut().reset(watchdog.deadline);
                    let _ = sleep.as_mut().poll(cx);
                }
                Verdict::CloseIdle => {
                    connection.as_mut().graceful_shutdown();
                    closing = true;
                    continue;
                }
                Verdict::Cut => {
                    tracing::debug!(client = %ctx.client, "no request head within timeout http-request");
                    return Poll::Ready(());
                }
            }
        }
        return Poll::Pending;
    })
    .await;
}

/// What the watchdog decided.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    /// Nothing to do.
    Keep,
    /// Idle past `timeout http-keep-alive`: close gracefully.
    CloseIdle,
    /// No complete request head within `timeout http-request`: close now.
    Cut,
}

/// Where a connection stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// A request is in progress.
    Busy,
    /// Waiting for a request head: a new connection, or bytes of a new head arrived.
    Head,
    /// Idle between requests.
    Idle,
}

/// The keep-alive and request-head timeouts of one connection.
#[derive(Debug)]
struct Watchdog {
    /// `timeout http-request` (zero: none).
    head_timeout: Duration,
    /// `timeout http-keep-alive` (zero: keep-alive is off, none).
    idle_timeout: Duration,
    /// How often it looks.
    period: Duration,
    /// When it looks next (its timer fires then).
    deadline: Instant,
    /// The phase seen last.
    phase: Phase,
    /// Since when the connection is in `phase` with no new request (as far as the checks
    /// can tell).
    since: Instant,
    /// The connection's request count at the last look: a connection that took requests
    /// since then is not idle, whatever phase each look happened to catch.
    seen_requests: u64,
}

impl Watchdog {
    fn new(limits: &Limits) -> Self {
        let shortest = [limits.http_request_timeout, limits.keep_alive_timeout]
            .into_iter()
            .filter(|d| !d.is_zero())
            .min()
            .unwrap_or(Duration::ZERO);
        let period = if shortest.is_zero() {
            Duration::ZERO
        } else {
            (shortest / 2).max(MIN_PERIOD)
        };
        let now = Instant::now();
        Self {
            head_timeout: limits.http_request_timeout,
            idle_timeout: limits.keep_alive_timeout,
            period,
            deadline: now + period,
            phase: Phase::Head,
            since: now,
            seen_requests: 0,
        }
    }

    fn enabled(&self) -> bool {
        !self.period.is_zero()
    }

    /// Looks at the connection (at `now`, past the deadline) and sets the next deadline.
    fn check(&mut self, ctx: &ConnCtx, now: Instant) -> Verdict {
        let reads = ctx.meter.reads.load(Relaxed);
        let requests = ctx.requests.load(Relaxed);
        let phase = if ctx.in_flight.load(Relaxed) > 0 {
            Phase::Busy
        } else if requests == 0 || reads != ctx.idle_reads.load(Relaxed) {
            Phase::Head
        } else {
            Phase::Idle
        };
        self.judge(phase, requests, now)
    }

    /// The verdict for a connection in `phase` having taken `requests` so far, at `now`;
    /// sets the next deadline.
    fn judge(&mut self, phase: Phase, requests: u64, now: Instant) -> Verdict {
        self.deadline = now + self.period;
        let took_requests = requests != self.seen_requests;
        self.seen_requests = requests;
        if phase != self.phase || took_requests {
            self.phase = phase;
            self.since = now;
        }
        let waited = now.saturating_duration_since(self.since);
        match phase {
            Phase::Head if !self.head_timeout.is_zero() && waited >= self.head_timeout => {
                Verdict::Cut
            }
            Phase::Idle if !self.idle_timeout.is_zero() && waited >= self.idle_timeout => {
                Verdict::CloseIdle
            }
            _ => Verdict::Keep,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(head_ms: u64, idle_ms: u64) -> Limits {
        Limits {
            http_request_timeout: Duration::from_millis(head_ms),
            keep_alive_timeout: Duration::from_millis(idle_ms),
            ..Limits::default()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_head_that_takes_too_long_is_cut() {
        let mut dog = Watchdog::new(&limits(600, 5000));
        assert_eq!(dog.period, Duration::from_millis(300));
        let start = Instant::now();
        let at = |ms| start + Duration::from_millis(ms);
        assert_eq!(dog.judge(Phase::Head, 0, at(300)), Verdict::Keep);
        assert_eq!(dog.deadline, at(600));
        assert_eq!(dog.judge(Phase::Head, 0, at(600)), Verdict::Cut);
    }

    #[tokio::test(start_paused = true)]
    async fn idle_connections_close_and_busy_ones_do_not() {
        let mut dog = Watchdog::new(&limits(15_000, 1000));
        assert_eq!(dog.period, Duration::from_millis(500));
        let start = Instant::now();
        let at = |ms| start + Duration::from_millis(ms);
        for ms in (500..=5000).step_by(500) {
            assert_eq!(
                dog.judge(Phase::Busy, 0, at(ms)),
                Verdict::Keep,
                "busy at {ms}"
            );
        }
        assert_eq!(dog.judge(Phase::Idle, 0, at(5500)), Verdict::Keep);
        assert_eq!(dog.judge(Phase::Idle, 0, at(6000)), Verdict::Keep);
        assert_eq!(dog.judge(Phase::Idle, 0, at(6500)), Verdict::CloseIdle);
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_taking_requests_between_looks_is_not_idle() {
        let mut dog = Watchdog::new(&limits(15_000, 1000));
        let start = Instant::now();
        let at = |ms| start + Duration::from_millis(ms);
        // Every look lands between two requests, but requests keep coming.
        for (look, ms) in (500..=5000).step_by(500).enumerate() {
            assert_eq!(
                dog.judge(Phase::Idle, 10 * look as u64 + 1, at(ms)),
                Verdict::Keep,
                "took requests before {ms}"
            );
        }
        assert_eq!(dog.judge(Phase::Idle, 91, at(5500)), Verdict::Keep);
        assert_eq!(dog.judge(Phase::Idle, 91, at(6000)), Verdict::CloseIdle);
    }

    #[tokio::test(start_paused = true)]
    async fn zero_timeouts_disable_the_checks() {
        let dog = Watchdog::new(&limits(0, 0));
        assert!(!dog.enabled());
        let mut dog = Watchdog::new(&limits(0, 1000));
        let start = Instant::now();
        assert_eq!(
            dog.judge(Phase::Head, 0, start + Duration::from_secs(3600)),
            Verdict::Keep,
            "no http-request timeout"
        );
    }
}

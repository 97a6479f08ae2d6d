//! Counters of one frontend, backend or server: plain atomics bumped on the hot path
//! (`Relaxed`: each counter is independent and read only for reporting), plus rates that a
//! once-a-second sampler derives from the totals, so the hot path never touches a clock or a
//! lock for them.
//!
//! May depend on: std, hyper (status codes).

use hyper::StatusCode;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

/// How many one-second samples the rates span (the rate is over the last
/// `RATE_SAMPLES - 1` seconds).
const RATE_SAMPLES: usize = 4;

/// The counters HAProxy keeps per proxy (frontend or backend) and per server.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// Connections (frontends, tcp backends) or requests (http backends, servers) now open.
    pub current: AtomicU64,
    /// Connections (frontends, tcp) or dispatches to a server (backends, servers) so far.
    pub total: AtomicU64,
    /// HTTP requests so far.
    pub requests: AtomicU64,
    /// Responses by class: 1xx, 2xx, 3xx, 4xx, 5xx, other.
    pub responses: [AtomicU64; 6],
    /// Bytes received from clients (frontends) or sent to servers (backends, servers).
    pub bytes_in: AtomicU64,
    /// Bytes sent to clients (frontends) or received from servers (backends, servers).
    pub bytes_out: AtomicU64,
    /// Connection attempts to servers that failed.
    pub connect_errors: AtomicU64,
    /// Connection attempts retried on another server.
    pub retries: AtomicU64,
    /// `(total, requests)` once a second, newest last.
    samples: Mutex<VecDeque<(u64, u64)>>,
}

/// Requests and responses one client connection counted and has not yet added to its
/// frontend (so that requests do not each touch the frontend's shared counters).
#[derive(Debug, Default)]
pub(crate) struct Tally {
    /// Requests.
    requests: AtomicU64,
    /// Responses by class, as in [`Counters::responses`].
    responses: [AtomicU64; 6],
}

impl Tally {
    /// Counts a request.
    pub fn request(&self) {
        self.requests.fetch_add(1, Relaxed);
    }

    /// Counts a response.
    pub fn response(&self, status: StatusCode) {
        self.responses[class(status)].fetch_add(1, Relaxed);
    }

    /// Adds what it counted to `counters` and starts again from zero.
    pub fn flush(&self, counters: &Counters) {
        let requests = self.requests.swap(0, Relaxed);
        if requests > 0 {
            counters.requests.fetch_add(requests, Relaxed);
        }
        for (pending, total) in self.responses.iter().zip(&counters.responses) {
            let n = pending.swap(0, Relaxed);
            if n > 0 {
                total.fetch_add(n, Relaxed);
            }
        }
    }
}

/// The index of `status`'s class: 1xx, 2xx, 3xx, 4xx, 5xx, other.
fn class(status: StatusCode) -> usize {
    match status.as_u16() {
        100..=199 => 0,
        200..=299 => 1,
        300..=399 => 2,
        400..=499 => 3,
        500..=599 => 4,
        _ => 5,
    }
}

/// A point-in-time copy of [`Counters`], for the stats port.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub(crate) struct CounterSnapshot {
    /// `scur`.
    pub current: u64,
    /// `stot`.
    pub total: u64,
    /// `req_tot`.
    pub requests: u64,
    /// `hrsp_1xx`.
    pub hrsp_1xx: u64,
    /// `hrsp_2xx`.
    pub hrsp_2xx: u64,
    /// `hrsp_3xx`.
    pub hrsp_3xx: u64,
    /// `hrsp_4xx`.
    pub hrsp_4xx: u64,
    /// `hrsp_5xx`.
    pub hrsp_5xx: u64,
    /// `hrsp_other`.
    pub hrsp_other: u64,
    /// `bin`.
    pub bytes_in: u64,
    /// `bout`.
    pub bytes_out: u64,
    /// `econ`.
    pub connect_errors: u64,
    /// `wretr`.
    pub retries: u64,
    /// `rate`: new connections (or dispatches) per second over the last seconds.
    pub rate: f64,
    /// `req_rate`: requests per second over the last seconds.
    pub request_rate: f64,
}

impl Counters {
    /// Counts one response by its class.
    pub fn count_response(&self, status: StatusCode) {
        self.responses[class(status)].fetch_add(1, Relaxed);
    }

    /// Records the totals for the rates (called once a second).
    pub fn sample(&self) {
        let point = (self.total.load(Relaxed), self.requests.load(Relaxed));
        let mut samples = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        if samples.len() == RATE_SAMPLES {
            samples.pop_front();
        }
        samples.push_back(point);
    }

    /// `(connections, requests)` per second over the sampled window (0 before two samples).
    fn rates(&self) -> (f64, f64) {
        let samples = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        match (samples.front(), samples.back()) {
            (Some(first), Some(last)) if samples.len() > 1 => {
                let seconds = (samples.len() - 1) as f64;
                (
                    last.0.saturating_sub(first.0) as f64 / seconds,
                    last.1.saturating_sub(first.1) as f64 / seconds,
                )
            }
            _ => (0.0, 0.0),
        }
    }

    /// A copy of every counter.
    pub fn snapshot(&self) -> CounterSnapshot {
        let (rate, request_rate) = self.rates();
        let r = |i: usize| self.responses[i].load(Relaxed);
        CounterSnapshot {
            current: self.current.load(Relaxed),
            total: self.total.load(Relaxed),
            requests: self.requests.load(Relaxed),
            hrsp_1xx: r(0),
            hrsp_2xx: r(1),
            hrsp_3xx: r(2),
            hrsp_4xx: r(3),
            hrsp_5xx: r(4),
            hrsp_other: r(5),
            bytes_in: self.bytes_in.load(Relaxed),
            bytes_out: self.bytes_out.load(Relaxed),
            connect_errors: self.connect_errors.load(Relaxed),
            retries: self.retries.load(Relaxed),
            rate,
            request_rate,
        }
    }

    /// Counts one more open connection (or request) until the returned guard is dropped.
    pub fn open(&self) -> Open<'_> {
        self.current.fetch_add(1, Relaxed);
        self.total.fetch_add(1, Relaxed);
        Open(self)
    }
}

/// Decrements [`Counters::current`] when dropped.
#[derive(Debug)]
pub(crate) struct Open<'a>(&'a Counters);

impl Drop for Open<'_> {
    fn drop(&mut self) {
        self.0.current.fetch_sub(1, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_are_counted_by_class() {
        let counters = Counters::default();
        for code in [101, 200, 204, 301, 404, 503, 502] {
            counters.count_response(StatusCode::from_u16(code).expect("valid code"));
        }
        let snap = counters.snapshot();
        assert_eq!(
            (
                snap.hrsp_1xx,
                snap.hrsp_2xx,
                snap.hrsp_3xx,
                snap.hrsp_4xx,
                snap.hrsp_5xx
            ),
            (1, 2, 1, 1, 2)
        );
    }

    #[test]
    fn tallies_add_up_when_flushed() {
        let counters = Counters::default();
        let tally = Tally::default();
        tally.request();
        tally.request();
        tally.response(StatusCode::OK);
        tally.response(StatusCode::BAD_GATEWAY);
        assert_eq!(counters.snapshot().requests, 0);
        tally.flush(&counters);
        tally.flush(&counters);
        let snap = counters.snapshot();
        assert_eq!((snap.requests, snap.hrsp_2xx, snap.hrsp_5xx), (2, 1, 1));
    }

    #[test]
    fn rates_span_the_sampled_seconds() {
        let counters = Counters::default();
        assert_eq!(counters.snapshot().request_rate, 0.0);
        for second in 0..6u64 {
            counters.requests.store(second * 10, Relaxed);
            counters.total.store(second * 2, Relaxed);
            counters.sample();
        }
        let snap = counters.snapshot();
        assert_eq!(snap.request_rate, 10.0);
        assert_eq!(snap.rate, 2.0);
    }

    #[test]
    fn open_guard_tracks_current() {
        let counters = Counters::default();
        {
            let _a = counters.open();
            let _b = counters.open();
            assert_eq!(counters.current.load(Relaxed), 2);
        }
        assert_eq!(counters.current.load(Relaxed), 0);
        assert_eq!(counters.total.load(Relaxed), 2);
    }
}

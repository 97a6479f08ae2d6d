//! The runtime state of backends and servers that outlives routing tables: counters,
//! the round-robin position, a server's up/down mark and its pool of idle upstream
//! connections. A new table reuses the state of every backend and server it still has, so
//! counters keep counting and idle connections keep being reused; a server that leaves is
//! retired (its idle connections are closed, none is pooled again).
//!
//! Up and down: a failed connect marks a server down and a successful one marks it up again
//! (the cluster's own health checks decide membership; this only steers new traffic away
//! from a server that just refused). A down server gets one probe connection every
//! [`FIRST_PROBE_AFTER`] for its first [`QUICK_PROBES`] failures, then the wait doubles with
//! every failed probe up to [`PROBE_AFTER`], so it comes
//! back without health checks of our own: a task that refused because it was still starting
//! (it is routed from TASK_RUNNING on) serves a few milliseconds later, a dead one costs one
//! connect every 2 s.
//!
//! May depend on: std, [`super::io`], [`super::pool`], [`super::stats`].

use super::io::Meter;
use super::pool::Pool;
use super::stats::Counters;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a down server is left alone before one connection probes it again, at most.
pub(crate) const PROBE_AFTER: Duration = Duration::from_secs(2);

/// The wait before the first probes after a server went down.
pub(crate) const FIRST_PROBE_AFTER: Duration = Duration::from_millis(10);

/// Failures in a row probed every [`FIRST_PROBE_AFTER`] before the wait starts doubling.
pub(crate) const QUICK_PROBES: u32 = 10;

/// One backend's state.
#[derive(Debug, Default)]
pub(crate) struct BackendState {
    /// Its own counters: requests, responses, connect errors, retries; `total` and the
    /// bytes only of servers that left (the stats add its servers' counters, so the hot
    /// path counts a dispatch once, at the server).
    pub counters: Counters,
    /// The next round-robin position.
    pub next: AtomicUsize,
}

/// One server's state (per backend: the same task in two backends has two).
#[derive(Debug)]
pub(crate) struct ServerState {
    /// Where it listens.
    pub address: SocketAddr,
    /// Its counters (`current`: requests or tcp connections in progress, for leastconn).
    pub counters: Counters,
    /// Its backend's state.
    pub backend: Arc<BackendState>,
    /// Idle keep-alive connections to it.
    pub pool: Pool,
    /// Whether the last connect succeeded.
    up: AtomicBool,
    /// When it was marked down (or last probed), milliseconds since `epoch`.
    down_at: AtomicU64,
    /// Failed connects in a row (sets the wait before the next probe).
    failures: AtomicU32,
    /// The reference point of `down_at`.
    epoch: Instant,
}

impl ServerState {
    /// A server that is up, with no connections.
    pub fn new(address: SocketAddr, backend: Arc<BackendState>) -> Self {
        Self {
            address,
            counters: Counters::default(),
            backend,
            pool: Pool::default(),
            up: AtomicBool::new(true),
            down_at: AtomicU64::new(0),
            failures: AtomicU32::new(0),
            epoch: Instant::now(),
        }
    }

    /// Whether the last connect to it succeeded.
    pub fn is_up(&self) -> bool {
        self.up.load(Relaxed)
    }

    /// A connect to it failed.
    pub fn mark_down(&self) {
        self.counters.connect_errors.fetch_add(1, Relaxed);
        self.backend.counters.connect_errors.fetch_add(1, Relaxed);
        self.down_at.store(self.millis(), Relaxed);
        self.failures.fetch_add(1, Relaxed);
        self.up.store(false, Relaxed);
    }

    /// A connect to it succeeded.
    pub fn mark_up(&self) {
        if !self.up.load(Relaxed) {
            self.up.store(true, Relaxed);
            self.failures.store(0, Relaxed);
        }
    }

    /// For a down server: whether this caller may probe it now (at most one caller per wait,
    /// see the module docs). Up servers always give `true`.
    pub fn claim_probe(&self) -> bool {
        if self.is_up() {
            return true;
        }
        let now = self.millis();
        let at = self.down_at.load(Relaxed);
        now >= at.saturating_add(u64::try_from(self.probe_wait().as_millis()).unwrap_or(u64::MAX))
            && self
                .down_at
                .compare_exchange(at, now, Relaxed, Relaxed)
                .is_ok()
    }

    /// It left the routing table: close its idle connections, pool no more, and leave
    /// its totals to the backend (what it serves from now on is not counted there).
    pub fn retire(&self) {
        self.pool.retire();
        let backend = &self.backend.counters;
        for (from, to) in [
            (&self.counters.total, &backend.total),
            (&self.counters.bytes_in, &backend.bytes_in),
            (&self.counters.bytes_out, &backend.bytes_out),
        ] {
            to.fetch_add(from.load(Relaxed), Relaxed);
        }
    }

    /// [`FIRST_PROBE_AFTER`], doubled per failure after the first [`QUICK_PROBES`], at most
    /// [`PROBE_AFTER`].
    fn probe_wait(&self) -> Duration {
        let doublings = self
            .failures
            .load(Relaxed)
            .saturating_sub(QUICK_PROBES)
            .min(16);
        FIRST_PROBE_AFTER
            .saturating_mul(1 << doublings)
            .min(PROBE_AFTER)
    }

    fn millis(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

/// Upstream sockets count their bytes at the server (a backend's are the sums over its
/// servers).
impl Meter for ServerState {
    fn read(&self, n: usize) {
        self.counters.bytes_out.fetch_add(n as u64, Relaxed);
    }

    fn written(&self, n: usize) {
        self.counters.bytes_in.fetch_add(n as u64, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_down_server_is_probed_once_per_interval() {
        let address = SocketAddr::from(([127, 0, 0, 1], 1));
        let server = ServerState {
            epoch: Instant::now()
                .checked_sub(PROBE_AFTER * 2)
                .expect("the machine is up longer than two probe intervals"),
            ..ServerState::new(address, Arc::new(BackendState::default()))
        };
        assert!(server.is_up() && server.claim_probe());
        server.mark_down();
        assert!(!server.is_up());
        assert!(!server.claim_probe(), "not right after the failure");
        // The failure happened one interval ago (at the epoch).
        server.down_at.store(0, Relaxed);
        assert!(server.claim_probe(), "one probe after the interval");
        assert!(!server.claim_probe(), "only one");
        server.mark_up();
        assert!(server.is_up() && server.claim_probe());
        assert_eq!(server.counters.connect_errors.load(Relaxed), 1);
        assert_eq!(server.backend.counters.connect_errors.load(Relaxed), 1);
    }

    #[test]
    fn the_wait_between_probes_starts_short_doubles_up_to_the_cap_and_resets_when_up() {
        let server = ServerState::new(
            SocketAddr::from(([127, 0, 0, 1], 1)),
            Arc::new(BackendState::default()),
        );
        let mut waits = Vec::new();
        for _ in 0..20 {
            server.mark_down();
            waits.push(server.probe_wait().as_millis());
        }
        let mut expected = vec![10; 10];
        expected.extend([20, 40, 80, 160, 320, 640, 1280, 2000, 2000, 2000]);
        assert_eq!(waits, expected);
        server.mark_up();
        server.mark_down();
        assert_eq!(server.probe_wait(), FIRST_PROBE_AFTER);
    }
}

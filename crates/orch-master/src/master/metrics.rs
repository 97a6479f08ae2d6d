//! Prometheus metrics of a master: Raft progress gauges (read at scrape time) and the
//! latency of committed writes.

use super::ClusterStatus;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::time::Duration;

/// The registry and its metrics.
#[derive(Debug)]
pub(super) struct Metrics {
    registry: Registry,
    term: Gauge,
    commit_index: Gauge,
    applied_index: Gauge,
    is_leader: Gauge,
    write_latency: Histogram,
}

impl Metrics {
    pub(super) fn new() -> Self {
        let mut registry = Registry::default();
        let (term, commit_index, applied_index, is_leader) = (
            Gauge::default(),
            Gauge::default(),
            Gauge::default(),
            Gauge::default(),
        );
        // 0.25 ms .. ~4 s.
        let write_latency = Histogram::new(exponential_buckets(0.000_25, 2.0, 15));
        registry.register("orch_raft_term", "Current Raft term", term.clone());
        registry.register(
            "orch_raft_commit_index",
            "Last committed Raft log index",
            commit_index.clone(),
        );
        registry.register(
            "orch_raft_applied_index",
            "Last applied Raft log index",
            applied_index.clone(),
        );
        registry.register(
            "orch_raft_is_leader",
            "1 if this master leads",
            is_leader.clone(),
        );
        registry.register(
            "orch_write_latency_seconds",
            "Time from submitting a write to Raft until it is applied",
            write_latency.clone(),
        );
        Self {
            registry,
            term,
            commit_index,
            applied_index,
            is_leader,
            write_latency,
        }
    }

    pub(super) fn observe_write(&self, elapsed: Duration) {
        self.write_latency.observe(elapsed.as_secs_f64());
    }

    pub(super) fn render(&self, status: &ClusterStatus, is_leader: bool) -> String {
        let gauge_value = |value: u64| i64::try_from(value).unwrap_or(i64::MAX);
        self.term.set(gauge_value(status.term));
        self.commit_index.set(gauge_value(status.commit_index));
        self.applied_index.set(gauge_value(status.applied_index));
        self.is_leader.set(i64::from(is_leader));
        let mut text = String::new();
        if encode(&mut text, &self.registry).is_err() {
            text.clear();
        }
        text
    }
}

//! Helpers shared by the `benches/*.rs` targets (each is `harness = false`).
#![allow(dead_code)]

use std::time::Duration;

/// True when the target was started by `cargo bench` (which passes `--bench`). Under
/// `cargo test --all-targets` the same binary is run without it: then print a note and let
/// `main` return at once.
pub fn invoked_as_bench(name: &str) -> bool {
    if std::env::args().any(|a| a == "--bench") {
        true
    } else {
        println!("bench `{name}`: skipped (run it with `cargo bench --bench {name}`)");
        false
    }
}

/// A multi-threaded tokio runtime for the bench driver.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("build tokio runtime")
}

/// The `p`-th percentile (0..=100) of `sorted` (nearest rank); zero when empty.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    // A rank within 0..=len: `as` saturates, and the clamp below keeps it in range.
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Milliseconds with one decimal.
pub fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// `VmRSS` of a process in MiB, from `/proc/<pid>/status`.
pub fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("read /proc/{pid}/status: {e}"));
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .unwrap_or_else(|| panic!("no VmRSS line in /proc/{pid}/status"));
    let kib: f64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("cannot parse {line:?}"));
    kib / 1024.0
}

/// An environment variable parsed as a number, or `default`.
pub fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// [`env_or`] for a count of things in memory.
pub fn env_count(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A numeric field of `/proc/<pid>/status` (e.g. `VmRSS`, `RssAnon`, `Threads`), as the
/// number written there (kB for the memory fields); `None` when absent.
pub fn proc_status_field(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let prefix = format!("{field}:");
    status
        .lines()
        .find(|l| l.starts_with(&prefix))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

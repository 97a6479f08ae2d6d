//! Memory benchmark: one master; `VmRSS` (from `/proc/<pid>/status`) when idle, then after
//! POSTing 10,000 apps of ~1 KiB each with 32 concurrent clients. Reports both in MiB.
//!
//! Run: `cargo bench --bench rss` (`ORCH_BENCH_APPS`, default 10000).

#[path = "../tests/support/mod.rs"]
mod support;

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::{app_body, Cluster};

const CONCURRENCY: usize = 32;

fn main() {
    if !common::invoked_as_bench("rss") {
        return;
    }
    let apps = common::env_count("ORCH_BENCH_APPS", 10_000);
    common::runtime().block_on(async {
        let mut c = Cluster::start(1, &[]);
        c.wait_for_leader(Duration::from_secs(30)).await;
        // Let start-up allocations settle before the idle reading.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let pid = c.masters[0].pid();
        let idle = common::rss_mib(pid);

        let next = Arc::new(AtomicUsize::new(0));
        let url = format!("{}/v2/apps", c.url(0));
        let t0 = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..CONCURRENCY {
            let next = Arc::clone(&next);
            let http = c.http.clone();
            let url = url.clone();
            tasks.push(tokio::spawn(async move {
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= apps {
                        return;
                    }
                    let body = app_body(&format!("/rss/app-{n}"), 1024);
                    let r = http.post(&url, &body).await;
                    assert_eq!(r.status, 201, "POST app {n}: {}", r.body);
                }
            }));
        }
        for t in tasks {
            t.await.expect("client task panicked");
        }
        let took = t0.elapsed();
        c.masters[0].assert_running();
        let loaded = common::rss_mib(pid);
        let count = c.app_ids(0).await.len();
        assert_eq!(count, apps, "GET /v2/apps lists every posted app");
        println!(
            "| rss: one master | idle {idle:.1} MiB | after {apps} apps (~1 KiB each) {loaded:.1} MiB | posted in {:.1} s ({:.0} apps/s, {CONCURRENCY} clients) |",
            took.as_secs_f64(),
            apps as f64 / took.as_secs_f64()
        );
    });
}

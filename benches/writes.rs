//! Write throughput benchmark: 3 masters on this machine; 64 concurrent clients each doing
//! `PUT /v2/apps/<client>-<n mod 160>` with a ~1 KiB JSON body for a fixed time after a warm-up.
//! Measured twice: all clients to the leader, and clients spread over all three masters
//! (followers forward to the leader). Reports writes/s and p50/p99 latency.
//!
//! Run: `cargo bench --bench writes` (`ORCH_BENCH_SECS` measured seconds, default 10;
//! `ORCH_BENCH_CLIENTS`, default 64).

#[path = "../tests/support/mod.rs"]
mod support;

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use support::{app_body, Cluster, Http};

const WARMUP: Duration = Duration::from_secs(3);
/// Each client updates its own 160 apps in turn: 64 clients keep 10,240 apps, the scale the
/// RSS benchmark uses, and every PUT after the first round is an update, as in Marathon use.
const APPS_PER_CLIENT: u64 = 160;

fn main() {
    if !common::invoked_as_bench("writes") {
        return;
    }
    let secs = common::env_or("ORCH_BENCH_SECS", 10);
    let clients = common::env_count("ORCH_BENCH_CLIENTS", 64);
    common::runtime().block_on(async {
        let mut c = Cluster::start(3, &[]);
        let leader = c.wait_for_leader(Duration::from_secs(30)).await;
        let measure = Duration::from_secs(secs);

        let to_leader = vec![c.url(leader)];
        let r = phase(&c.http, "a", &to_leader, clients, measure).await;
        r.print("to the leader", clients, measure);

        let all: Vec<String> = (0..3).map(|i| c.url(i)).collect();
        let r = phase(&c.http, "b", &all, clients, measure).await;
        r.print("spread over 3 masters", clients, measure);

        for i in 0..3 {
            c.masters[i].assert_running();
        }
    });
}

#[derive(Debug)]
struct PhaseResult {
    latencies: Vec<Duration>,
    errors: usize,
    first_error: Option<String>,
}

impl PhaseResult {
    fn print(&self, label: &str, clients: usize, measure: Duration) {
        let mut l = self.latencies.clone();
        l.sort();
        println!(
            "| writes: PUT /v2/apps, ~1 KiB, {clients} clients, {label} | {:.0} writes/s | p50 {} | p99 {} | errors {} |",
            l.len() as f64 / measure.as_secs_f64(),
            common::ms(common::percentile(&l, 50.0)),
            common::ms(common::percentile(&l, 99.0)),
            self.errors
        );
        if let Some(e) = &self.first_error {
            println!("  first error: {e}");
        }
    }
}

async fn phase(
    http: &Http,
    tag: &str,
    targets: &[String],
    clients: usize,
    measure: Duration,
) -> PhaseResult {
    let start = Instant::now();
    let warm_end = start + WARMUP;
    let end = warm_end + measure;
    let targets = Arc::new(targets.to_vec());
    let mut tasks = Vec::new();
    for client in 0..clients {
        let http = http.clone();
        let targets = Arc::clone(&targets);
        let tag = tag.to_string();
        tasks.push(tokio::spawn(async move {
            let base = &targets[client % targets.len()];
            let mut latencies = Vec::new();
            let mut errors = 0usize;
            let mut first_error = None;
            let mut n = 0u64;
            while Instant::now() < end {
                n += 1;
                let id = format!("/{tag}{client}-{}", n % APPS_PER_CLIENT);
                let body = app_body(&id, 1024).to_string();
                let url = format!("{base}/v2/apps{id}");
                let t0 = Instant::now();
                let res = http
                    .send(reqwest::Method::PUT, &url, Some(body), None)
                    .await;
                let t1 = Instant::now();
                let counted = t0 >= warm_end && t1 <= end;
                match res {
                    Ok(r) if r.ok() => {
                        if counted {
                            latencies.push(t1 - t0);
                        }
                    }
                    Ok(r) => {
                        if counted {
                            errors += 1;
                        }
                        first_error
                            .get_or_insert_with(|| format!("{} {}: {}", r.status, url, r.body));
                    }
                    Err(e) => {
                        if counted {
                            errors += 1;
                        }
                        first_error.get_or_insert_with(|| format!("{e:#}"));
                    }
                }
            }
            (latencies, errors, first_error)
        }));
    }
    let mut out = PhaseResult {
        latencies: Vec::new(),
        errors: 0,
        first_error: None,
    };
    for t in tasks {
        let (l, e, f) = t.await.expect("client task panicked");
        out.latencies.extend(l);
        out.errors += e;
        if out.first_error.is_none() {
            out.first_error = f;
        }
    }
    out
}

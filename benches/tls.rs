//! What TLS and tokens cost: the same three measurements on a cluster without them (masters on
//! loopback, plain HTTP) and on one with them (every master and agent with `orch pki`
//! certificates, mutual TLS between them, clients over HTTPS with the management token), in
//! one run:
//! - `writes`: 64 clients (by default) `PUT /v2/apps/<id>` (~1 KiB) to the leader for a fixed time;
//! - `launch`: `POST /v2/apps` of a one-instance process app → its task RUNNING, one app at a
//!   time, through a real agent;
//! - `failover`: SIGKILL of the leader → a write accepted by a survivor.
//!
//! Run: `cargo bench --bench tls` (`ORCH_BENCH_SECS` measured seconds of writes, default 10;
//! `ORCH_BENCH_CLIENTS`, default 64; `ORCH_BENCH_ROUNDS` launches and failovers, default 10).

#[path = "../tests/support/mod.rs"]
mod support;

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use support::{app_body, free_addr, Cluster, Http};

const WARMUP: Duration = Duration::from_secs(3);

fn main() {
    if !common::invoked_as_bench("tls") {
        return;
    }
    let secs = common::env_or("ORCH_BENCH_SECS", 10);
    let rounds = common::env_count("ORCH_BENCH_ROUNDS", 10);
    let clients = common::env_count("ORCH_BENCH_CLIENTS", 64);
    common::runtime().block_on(async {
        for tls in [false, true] {
            let mode = if tls { "TLS + token" } else { "plain" };
            let mut c = cluster(tls).await;
            let leader = c.wait_for_leader(Duration::from_secs(30)).await;
            let measure = Duration::from_secs(secs);
            let (done, errors, first) = writes(&c.http, &c.url(leader), clients, measure).await;
            println!(
                "| writes: PUT /v2/apps, ~1 KiB, {clients} clients, to the leader | {mode} | {:.0} writes/s | errors {errors} {} |",
                done as f64 / measure.as_secs_f64(),
                first.unwrap_or_default()
            );
            let mut launches = launch(&mut c, tls, leader, rounds).await;
            launches.sort();
            println!(
                "| launch: POST /v2/apps → TASK_RUNNING, process task | {mode} | {rounds} apps | median {} | max {} |",
                common::ms(common::percentile(&launches, 50.0)),
                common::ms(launches.last().copied().unwrap_or_default())
            );
            let mut failovers = failover(&mut c, rounds).await;
            failovers.sort();
            println!(
                "| failover: SIGKILL leader → write accepted | {mode} | {rounds} rounds | median {} | max {} |",
                common::ms(common::percentile(&failovers, 50.0)),
                common::ms(failovers.last().copied().unwrap_or_default())
            );
        }
    });
}

/// Three masters, plain or with TLS and the management token.
async fn cluster(tls: bool) -> Cluster {
    if !tls {
        return Cluster::start(3, &[]);
    }
    let mut c = Cluster::empty();
    let dir = c.dir().to_owned();
    let pki = dir.join("pki");
    support::tls::issue(&dir, &["m1", "m2", "m3"], &["agent-1"]).await;
    let addrs: Vec<String> = (0..3).map(|_| free_addr()).collect();
    for (i, addr) in addrs.iter().enumerate() {
        let mut args = vec![
            "--listen".to_owned(),
            addr.clone(),
            "--masters".to_owned(),
            addrs.join(","),
        ];
        args.extend(support::tls::master_flags(&pki, &format!("m{}", i + 1)));
        c.add(addr, args);
    }
    c.http = Http::trusting(&pki.join("ca.pem"), &pki.join("token"));
    c.scheme = "https";
    c
}

/// Writes by `clients` clients for `measure` after a warm-up: (writes, errors, first error).
async fn writes(
    http: &Http,
    base: &str,
    clients: usize,
    measure: Duration,
) -> (usize, usize, Option<String>) {
    let warm_end = Instant::now() + WARMUP;
    let end = warm_end + measure;
    let base = Arc::new(base.to_owned());
    let mut tasks = Vec::new();
    for client in 0..clients {
        let (http, base) = (http.clone(), Arc::clone(&base));
        tasks.push(tokio::spawn(async move {
            let (mut done, mut errors, mut first) = (0, 0, None);
            let mut n = 0u64;
            while Instant::now() < end {
                n += 1;
                let id = format!("/w{client}-{}", n % 160);
                let body = app_body(&id, 1024).to_string();
                let t0 = Instant::now();
                let res = http
                    .send(
                        reqwest::Method::PUT,
                        &format!("{base}/v2/apps{id}"),
                        Some(body),
                        None,
                    )
                    .await;
                let counted = t0 >= warm_end && Instant::now() <= end;
                match res {
                    Ok(r) if r.ok() => done += usize::from(counted),
                    Ok(r) => {
                        errors += usize::from(counted);
                        first.get_or_insert_with(|| format!("{}: {}", r.status, r.body));
                    }
                    Err(e) => {
                        errors += usize::from(counted);
                        first.get_or_insert_with(|| format!("{e:#}"));
                    }
                }
            }
            (done, errors, first)
        }));
    }
    let (mut done, mut errors, mut first) = (0, 0, None);
    for task in tasks {
        let (d, e, f) = task.await.expect("a client task");
        done += d;
        errors += e;
        first = first.or(f);
    }
    (done, errors, first)
}

/// One agent (with its certificate under TLS), then `rounds` apps created one at a time:
/// the time from POST to the task RUNNING.
async fn launch(c: &mut Cluster, tls: bool, leader: usize, rounds: usize) -> Vec<Duration> {
    let mut extra = vec!["--containerizers".to_owned(), "mesos".to_owned()];
    if tls {
        extra.extend(support::tls::tls_flags(&c.dir().join("pki"), "agent-1"));
    }
    c.add_agent(&extra.iter().map(String::as_str).collect::<Vec<_>>());
    c.wait_for_agents(leader, 1, Duration::from_secs(30)).await;
    let mut samples = Vec::new();
    for round in 0..rounds {
        let id = format!("/launch-{round}");
        let app = json!({"id": id, "cmd": "sleep 1000", "cpus": 0.01, "mem": 8, "instances": 1});
        let t0 = Instant::now();
        let created = c
            .http
            .send(
                reqwest::Method::POST,
                &format!("{}/v2/apps", c.url(leader)),
                Some(app.to_string()),
                None,
            )
            .await
            .expect("POST /v2/apps");
        assert!(created.ok(), "{} {}", created.status, created.body);
        loop {
            let tasks = c
                .http
                .send(
                    reqwest::Method::GET,
                    &format!("{}/v2/apps{id}/tasks", c.url(leader)),
                    None,
                    None,
                )
                .await
                .expect("GET tasks");
            let running = tasks.ok()
                && tasks.json()["tasks"]
                    .as_array()
                    .is_some_and(|t| t.iter().any(|t| t["state"] == "TASK_RUNNING"));
            if running {
                break;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "{id} never ran: {}",
                tasks.body
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        samples.push(t0.elapsed());
    }
    samples
}

/// `rounds` times: SIGKILL the leader, time until a survivor accepts a write, restart it.
async fn failover(c: &mut Cluster, rounds: usize) -> Vec<Duration> {
    let mut leader = c.wait_for_leader(Duration::from_secs(30)).await;
    let mut samples = Vec::new();
    for _ in 0..rounds {
        let survivors: Vec<usize> = (0..3).filter(|&i| i != leader).collect();
        let t0 = Instant::now();
        c.masters[leader].kill9();
        c.write_until_ok(&survivors, "/bench", Duration::from_secs(15))
            .await
            .expect("a write after the failover");
        samples.push(t0.elapsed());
        c.masters[leader].restart();
        leader = c.wait_for_leader(Duration::from_secs(30)).await;
        c.wait_all_caught_up(leader, &[0, 1, 2], Duration::from_secs(30))
            .await;
    }
    samples
}

//! The chaos suite's client load: several clients writing and reading a few apps through
//! every master while faults are injected, recording each operation with when it was
//! invoked, when it returned and what it saw. A write that got no clear answer (a timeout,
//! a 5xx) has an unknown outcome: it may or may not have taken effect. The history is then
//! checked for linearizability (`linearizability.rs`) and for lost writes.
//!
//! Included by path, beside `linearizability.rs`, by the crates that use it (`tests/chaos.rs`,
//! `benches/chaos.rs`), so the others do not compile it.
//!
//! A write is `PUT /v2/apps/chaos/k<N>?force=true` setting `env.V` (it creates the app the
//! first time, 0 instances); a read is `GET /v2/apps/chaos/k<N>` (404: no value yet).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::linearizability::{Op, Operation, Outcome, Recorder};
use crate::support::Http;

/// One operation on app `chaos/k<key>`'s `env.V`.
pub type History = Vec<Operation<usize, String>>;

/// How long a client waits for one answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);

/// Clients writing and reading until stopped.
pub struct Workload {
    recorder: Recorder<usize, String>,
    stop: Arc<AtomicBool>,
    clients: Vec<tokio::task::JoinHandle<()>>,
    http: Http,
    keys: usize,
}

impl Workload {
    /// `clients` clients over `keys` apps, sending to `urls` (masters) in turn.
    pub fn start(http: &Http, urls: Vec<String>, keys: usize, clients: usize) -> Workload {
        let recorder = Recorder::new();
        let stop = Arc::new(AtomicBool::new(false));
        let clients = (0..clients)
            .map(|client| {
                let (recorder, stop, http, urls) = (
                    recorder.clone(),
                    Arc::clone(&stop),
                    http.clone(),
                    urls.clone(),
                );
                tokio::spawn(async move {
                    let mut n = 0usize;
                    while !stop.load(Ordering::Relaxed) {
                        n += 1;
                        let url = &urls[(client + n) % urls.len()];
                        let key = (client * 7 + n * 3) % keys;
                        let answered = if n % 2 == 0 {
                            let value = format!("c{client}-{n}");
                            write(&http, url, &recorder, client, key, value).await
                        } else {
                            read(&http, url, &recorder, client, key).await
                        };
                        if !answered {
                            // No leader or a refusal: a short pause before the next try.
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                })
            })
            .collect();
        Workload {
            recorder,
            stop,
            clients,
            http: http.clone(),
            keys,
        }
    }

    /// Stops the clients, then reads every key once more through `url` (after the faults
    /// healed) and returns the whole history.
    pub async fn finish(self, url: &str) -> History {
        self.stop.store(true, Ordering::Relaxed);
        for client in self.clients {
            let _ = client.await;
        }
        for key in 0..self.keys {
            let deadline = Instant::now() + Duration::from_secs(20);
            while !read(&self.http, url, &self.recorder, usize::MAX, key).await {
                assert!(
                    Instant::now() < deadline,
                    "no final read of key {key} through {url} within 20 s"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        self.recorder.history()
    }
}

/// One write; false unless it got a clear answer.
async fn write(
    http: &Http,
    url: &str,
    recorder: &Recorder<usize, String>,
    client: usize,
    key: usize,
    value: String,
) -> bool {
    let body = json!({"cmd": "sleep 1000", "instances": 0, "cpus": 0.01, "mem": 1,
                      "env": {"V": &value}});
    let id = recorder.call(client, Op::Write { key, value });
    let answer = http
        .send(
            reqwest::Method::PUT,
            &format!("{url}/v2/apps/chaos/k{key}?force=true"),
            Some(body.to_string()),
            Some(REQUEST_TIMEOUT),
        )
        .await;
    let outcome = match &answer {
        Ok(response) if response.ok() => Outcome::Written,
        // Refused before anything was written (a 4xx).
        Ok(response) if response.status < 500 => Outcome::Failed,
        // A timeout, a reset or a 5xx: it may have been applied.
        _ => Outcome::Unknown,
    };
    let answered = matches!(outcome, Outcome::Written);
    recorder.complete(id, outcome);
    answered
}

/// One read; false unless it got an answer.
async fn read(
    http: &Http,
    url: &str,
    recorder: &Recorder<usize, String>,
    client: usize,
    key: usize,
) -> bool {
    let id = recorder.call(client, Op::Read { key });
    let response = http
        .send(
            reqwest::Method::GET,
            &format!("{url}/v2/apps/chaos/k{key}"),
            None,
            Some(REQUEST_TIMEOUT),
        )
        .await;
    let outcome = match response {
        Ok(response) if response.status == 200 => Outcome::Read(
            response.json()["app"]["env"]["V"]
                .as_str()
                .map(str::to_owned),
        ),
        Ok(response) if response.status == 404 => Outcome::Read(None),
        // A read that saw nothing constrains nothing.
        _ => Outcome::Unknown,
    };
    let answered = matches!(outcome, Outcome::Read(_));
    recorder.complete(id, outcome);
    answered
}

/// Acknowledged writes and their latencies: how many, p50 and p99.
pub fn write_latencies(history: &History) -> (usize, Duration, Duration) {
    let mut latencies: Vec<Duration> = history
        .iter()
        .filter(|operation| matches!(operation.outcome, Outcome::Written))
        .filter_map(|operation| Some(Duration::from_nanos(operation.ret? - operation.call)))
        .collect();
    latencies.sort();
    let at = |percent: usize| {
        let rank = (latencies.len() * percent).div_ceil(100).max(1);
        latencies.get(rank - 1).copied().unwrap_or_default()
    };
    (latencies.len(), at(50), at(99))
}

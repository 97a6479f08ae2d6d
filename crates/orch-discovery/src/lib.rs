//! Where DNS and the load balancer get their [`Snapshot`]s when no master runs in their
//! process (a master in the same process hands out its own: `Master::snapshots`): from
//! `GET /v1/snapshots` of the masters over HTTP. The feed holds one stream open to one master
//! at a time and moves to the next master of the list when that one fails or goes silent, so
//! it follows the cluster across leader changes without polling.
//!
//! May depend on: orch-core (state), orch-pki (the crypto provider reqwest needs), reqwest,
//! tokio.

use orch_core::state::Snapshot;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// A master sends a keep-alive line every 10 s; this long without a byte means it is gone.
const SILENCE_LIMIT: Duration = Duration::from_secs(25);

/// Pause after every master of the list has failed once.
const ROUND_PAUSE: Duration = Duration::from_millis(250);

/// The snapshots the masters at `masters` (`host:port`) publish. Starts empty (the default
/// snapshot) until the first one arrives; the feed runs until every receiver is dropped.
pub fn from_masters(masters: Vec<String>) -> watch::Receiver<Arc<Snapshot>> {
    let (sender, receiver) = watch::channel(Arc::new(Snapshot::default()));
    tokio::spawn(follow(masters, sender));
    receiver
}

async fn follow(masters: Vec<String>, sender: watch::Sender<Arc<Snapshot>>) {
    let http = match orch_pki::tls::cluster_http()
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(2))
        .build()
    {
        Ok(http) => http,
        Err(error) => {
            tracing::error!(
                error = &error as &dyn std::error::Error,
                "no HTTP client for the snapshot feed"
            );
            return;
        }
    };
    loop {
        for master in &masters {
            if sender.is_closed() {
                return;
            }
            match read_stream(&http, master, &sender).await {
                Ok(()) => tracing::info!(master, "snapshot stream ended"),
                Err(error) => tracing::warn!(master, %error, "snapshot stream failed"),
            }
        }
        tokio::time::sleep(ROUND_PAUSE).await;
    }
}

/// Reads one master's stream until it ends, fails or goes silent.
async fn read_stream(
    http: &reqwest::Client,
    master: &str,
    sender: &watch::Sender<Arc<Snapshot>>,
) -> Result<(), String> {
    let mut response = http
        .get(format!("http://{master}/v1/snapshots"))
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|e| orch_core::errors::chain(&e))?;
    tracing::info!(master, "following the master's snapshots");
    let mut pending: Vec<u8> = Vec::new();
    loop {
        let chunk = tokio::select! {
            () = sender.closed() => return Ok(()),
            chunk = tokio::time::timeout(SILENCE_LIMIT, response.chunk()) => chunk,
        };
        let chunk = match chunk {
            Err(_silent) => return Err(format!("nothing for {SILENCE_LIMIT:?}")),
            Ok(Err(error)) => return Err(orch_core::errors::chain(&error)),
            Ok(Ok(None)) => return Ok(()),
            Ok(Ok(Some(chunk))) => chunk,
        };
        pending.extend_from_slice(&chunk);
        // Only the newest complete line matters: older ones are already superseded.
        let Some(end) = pending.iter().rposition(|byte| *byte == b'\n') else {
            continue;
        };
        let complete: Vec<u8> = pending.drain(..=end).collect();
        let newest = complete[..end]
            .rsplit(|byte| *byte == b'\n')
            .find(|line| !line.iter().all(u8::is_ascii_whitespace));
        if let Some(line) = newest {
            let snapshot: Snapshot = serde_json::from_slice(line)
                .map_err(|e| format!("a snapshot that does not parse: {e}"))?;
            sender.send_replace(Arc::new(snapshot));
        }
    }
}

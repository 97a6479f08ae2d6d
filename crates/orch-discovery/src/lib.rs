//! Where DNS and the load balancer get their [`Snapshot`]s when no master runs in their
//! process (a master in the same process hands out its own: `Master::snapshots`): from
//! `GET /v1/snapshots` of the masters over HTTP. The feed holds one stream open to one master
//! at a time and moves to the next master of the list when that one fails or goes silent, so
//! it follows the cluster across leader changes without polling.
//!
//! The masters of a cluster with TLS are followed over HTTPS ([`MasterAccess`]): verified
//! against the cluster CA, showing a node certificate (an agent's DNS and load balancer) or
//! sending a token (`orch dns`, `orch lb`).
//!
//! May depend on: orch-core (state), orch-pki (TLS configs), reqwest, tokio.

use orch_core::state::Snapshot;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// A master sends a keep-alive line every 10 s; this long without a byte means it is gone.
const SILENCE_LIMIT: Duration = Duration::from_secs(25);

/// Pause after every master of the list has failed once.
const ROUND_PAUSE: Duration = Duration::from_millis(250);

/// Why a [`MasterAccess`] cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    /// The token is not a valid header value.
    #[error("the token is not a valid header value")]
    Token(#[from] reqwest::header::InvalidHeaderValue),
    /// The HTTP client cannot be built.
    #[error("cannot build the HTTP client")]
    Client(#[from] reqwest::Error),
}

/// How the feed reaches the masters.
#[derive(Clone, Debug)]
pub struct MasterAccess {
    scheme: &'static str,
    http: reqwest::Client,
}

impl MasterAccess {
    /// Plain HTTP, as to masters without TLS (loopback development mode).
    pub fn plaintext() -> Result<Self, reqwest::Error> {
        Ok(Self {
            scheme: "http",
            http: builder().build()?,
        })
    }

    /// HTTPS with `tls` (the cluster CA, and a node certificate when it shows one), sending
    /// `token` as `Authorization: Bearer` when given.
    pub fn tls(tls: rustls::ClientConfig, token: Option<&str>) -> Result<Self, AccessError> {
        let mut builder = builder().tls_backend_preconfigured(tls);
        if let Some(token) = token {
            builder = builder.default_headers(orch_pki::tls::bearer(token)?);
        }
        Ok(Self {
            scheme: "https",
            http: builder.build()?,
        })
    }
}

fn builder() -> reqwest::ClientBuilder {
    orch_pki::tls::cluster_http()
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(2))
}

/// The snapshots the masters at `masters` (`host:port`) publish, reached with `access`.
/// Starts empty (the default snapshot) until the first one arrives; the feed runs until
/// every receiver is dropped.
pub fn from_masters(masters: Vec<String>, access: MasterAccess) -> watch::Receiver<Arc<Snapshot>> {
    let (sender, receiver) = watch::channel(Arc::new(Snapshot::default()));
    tokio::spawn(follow(masters, access, sender));
    receiver
}

async fn follow(masters: Vec<String>, access: MasterAccess, sender: watch::Sender<Arc<Snapshot>>) {
    loop {
        for master in &masters {
            if sender.is_closed() {
                return;
            }
            match read_stream(&access, master, &sender).await {
                Ok(()) => tracing::info!(master, "snapshot stream ended"),
                Err(error) => tracing::warn!(master, %error, "snapshot stream failed"),
            }
        }
        tokio::time::sleep(ROUND_PAUSE).await;
    }
}

/// Reads one master's stream until it ends, fails or goes silent.
async fn read_stream(
    access: &MasterAccess,
    master: &str,
    sender: &watch::Sender<Arc<Snapshot>>,
) -> Result<(), String> {
    let mut response = access
        .http
        .get(format!("{}://{master}/v1/snapshots", access.scheme))
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

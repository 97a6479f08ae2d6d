//! Marathon's event stream (`/v2/events`).

use std::time::Duration;

/// One `orch` event received from `/v2/events`, stamped when the bench read it.
#[derive(Debug, Clone)]
pub struct Received {
    /// When the frame was read by the bench.
    pub at: std::time::Instant,
    /// The `event:` line.
    pub event_type: String,
    /// The `data:` JSON.
    pub data: serde_json::Value,
}

/// Follows `GET <master>/v2/events?event_type=...` (server-sent events) in a background task
/// and forwards every event. Returns once `event_stream_attached` has been read, so events
/// caused by requests made after the call are not missed. Panics if the stream cannot be
/// opened within 10 s.
pub async fn follow_events(
    master: &str,
    types: &[&str],
) -> tokio::sync::mpsc::UnboundedReceiver<Received> {
    let mut query: Vec<String> = vec!["event_type=event_stream_attached".into()];
    query.extend(types.iter().map(|t| format!("event_type={t}")));
    let url = format!("{master}/v2/events?{}", query.join("&"));
    // No total timeout: the stream stays open for the whole bench.
    orch_pki::tls::install_crypto_provider();
    let client = reqwest::Client::builder()
        .no_proxy()
        .connect_timeout(Duration::from_secs(2))
        .build()
        .expect("build reqwest client");
    let mut resp = tokio::time::timeout(Duration::from_secs(10), client.get(&url).send())
        .await
        .unwrap_or_else(|_| panic!("GET {url}: no answer within 10 s"))
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    assert_eq!(resp.status().as_u16(), 200, "GET {url}");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut buf: Vec<u8> = Vec::new();
        while let Ok(Some(chunk)) = resp.chunk().await {
            let at = std::time::Instant::now();
            buf.extend_from_slice(&chunk);
            while let Some(end) = find_frame_end(&buf) {
                let frame: Vec<u8> = buf.drain(..end).collect();
                let text = String::from_utf8_lossy(&frame);
                let mut event_type = String::new();
                let mut data = String::new();
                for line in text.lines() {
                    if let Some(t) = line.strip_prefix("event:") {
                        event_type = t.trim().to_string();
                    } else if let Some(d) = line.strip_prefix("data:") {
                        data.push_str(d.trim());
                    }
                }
                if data.is_empty() {
                    continue; // heartbeat
                }
                let Ok(data) = serde_json::from_str(&data) else {
                    panic!("event {event_type} with bad JSON: {data}");
                };
                if tx
                    .send(Received {
                        at,
                        event_type,
                        data,
                    })
                    .is_err()
                {
                    return;
                }
            }
        }
    });
    let first = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .unwrap_or_else(|_| panic!("{url}: no event_stream_attached within 10 s"))
        .unwrap_or_else(|| panic!("{url}: stream ended before event_stream_attached"));
    assert_eq!(
        first.event_type, "event_stream_attached",
        "{url}: first event"
    );
    rx
}

/// End (exclusive) of the first complete SSE frame in `buf`: after a blank line, written as
/// `\r\n\r\n` or `\n\n`; a lone `\r\n` heartbeat at the start is a frame of its own.
fn find_frame_end(buf: &[u8]) -> Option<usize> {
    if buf.starts_with(b"\r\n") {
        return Some(2);
    }
    if buf.starts_with(b"\n") {
        return Some(1);
    }
    let crlf = buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4);
    let lf = buf.windows(2).position(|w| w == b"\n\n").map(|i| i + 2);
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Waits (at most `timeout`) for a `status_update_event` with `taskStatus` `state` for which
/// `matches(data)` holds; returns it. Panics on timeout or when the stream ends.
pub async fn wait_status(
    events: &mut tokio::sync::mpsc::UnboundedReceiver<Received>,
    state: &str,
    timeout: Duration,
    mut matches: impl FnMut(&serde_json::Value) -> bool,
) -> Received {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let ev = tokio::time::timeout_at(deadline, events.recv())
            .await
            .unwrap_or_else(|_| panic!("no {state} status_update_event within {timeout:?}"))
            .unwrap_or_else(|| panic!("event stream ended while waiting for {state}"));
        if ev.event_type == "status_update_event"
            && ev.data["taskStatus"] == serde_json::json!(state)
            && matches(&ev.data)
        {
            return ev;
        }
    }
}

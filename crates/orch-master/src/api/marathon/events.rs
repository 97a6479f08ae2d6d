//! `GET /v2/events`: Marathon's event stream as server-sent events.
//!
//! Frames are `event: <type>\r\ndata: <json>\r\n\r\n`, with a bare `\r\n` heartbeat every
//! 10 s and `event_stream_attached` first, as Marathon (Jetty) writes them. `event_type`
//! (repeatable) filters. A standby master answers 302 to the leader's stream (Marathon 1.7+).
//! A client that falls more than [`EVENT_BUFFER`] events behind is disconnected.

use crate::master::{Master, EVENT_BUFFER};
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures::StreamExt;
use orch_core::model::Timestamp;
use orch_core::state::Event;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::broadcast::error::RecvError;

const HEARTBEAT: Duration = Duration::from_secs(10);

pub(super) fn routes() -> Router<Arc<Master>> {
    Router::new().route("/v2/events", get(stream))
}

async fn stream(
    State(master): State<Arc<Master>>,
    RawQuery(query): RawQuery,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
) -> Response {
    let query = query.unwrap_or_default();
    if !master.is_leader() {
        let Some(leader) = master.leader() else {
            return crate::api::ApiError::NoLeader.into_response();
        };
        let separator = if query.is_empty() { "" } else { "?" };
        let location = format!(
            "{}://{}/v2/events{separator}{query}",
            master.scheme(),
            leader.address
        );
        let mut response = StatusCode::FOUND.into_response();
        if let Ok(value) = HeaderValue::from_str(&location) {
            response.headers_mut().insert(header::LOCATION, value);
        }
        return response;
    }
    let wanted: Vec<String> = query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .filter(|(key, _)| *key == "event_type")
        .map(|(_, value)| value.to_owned())
        .collect();
    let remote = remote.ip().to_string();
    let attached = Event::new(
        "event_stream_attached",
        &Timestamp::from_system_time(SystemTime::now()).to_rfc3339(),
        json!({ "remoteAddress": remote }),
    );
    let light = query.split('&').any(|pair| pair == "plan-format=light");
    let first = wanted_frame(&wanted, light, &attached);
    let feed = Feed {
        master: Arc::clone(&master),
        receiver: master.events(),
        heartbeat: tokio::time::interval_at(tokio::time::Instant::now() + HEARTBEAT, HEARTBEAT),
        wanted,
        light,
    };
    let frames = futures::stream::iter(first.map(Ok)).chain(futures::stream::unfold(
        feed,
        |mut feed| async move {
            let frame = feed.next().await?;
            Some((Ok::<Bytes, std::io::Error>(frame), feed))
        },
    ));
    let mut response = Response::new(Body::from_stream(frames));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream;charset=utf-8"),
    );
    response
}

/// What one client's stream reads from.
struct Feed {
    master: Arc<Master>,
    receiver: tokio::sync::broadcast::Receiver<Arc<Event>>,
    heartbeat: tokio::time::Interval,
    wanted: Vec<String>,
    /// `plan-format=light`: deployment plans without `original` and `target`.
    light: bool,
}

impl Feed {
    /// The next frame, or `None` when the stream ends (shutdown, or the client fell behind).
    async fn next(&mut self) -> Option<Bytes> {
        loop {
            tokio::select! {
                () = self.master.stopping() => return None,
                _ = self.heartbeat.tick() => return Some(Bytes::from_static(b"\r\n")),
                received = self.receiver.recv() => match received {
                    Ok(event) => {
                        if let Some(frame) = wanted_frame(&self.wanted, self.light, &event) {
                            return Some(frame);
                        }
                    }
                    Err(RecvError::Lagged(missed)) => {
                        tracing::warn!(missed, limit = EVENT_BUFFER, "event stream client too slow: disconnecting");
                        return None;
                    }
                    Err(RecvError::Closed) => return None,
                }
            }
        }
    }
}

/// The SSE frame of `event` if it passes the `event_type` filter.
fn wanted_frame(wanted: &[String], light: bool, event: &Event) -> Option<Bytes> {
    if !wanted.is_empty() && !wanted.iter().any(|w| w == event.event_type) {
        return None;
    }
    let data = match event.json.get("plan") {
        Some(plan) if light && plan.get("original").is_some() => {
            let mut json = event.json.clone();
            if let Some(plan) = json.get_mut("plan").and_then(Value::as_object_mut) {
                plan.remove("original");
                plan.remove("target");
            }
            json.to_string()
        }
        _ => event.json.to_string(),
    };
    Some(Bytes::from(format!(
        "event: {}\r\ndata: {data}\r\n\r\n",
        event.event_type
    )))
}

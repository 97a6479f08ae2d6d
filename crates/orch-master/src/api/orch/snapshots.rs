//! `GET /v1/snapshots`: the discovery view of this master as newline-delimited JSON, one
//! [`Snapshot`](orch_core::state::Snapshot) now and one after every change (intermediate ones
//! are skipped when the reader is slower than the changes). Answered by any master from its
//! own replicated state, so DNS and load balancers keep working while the leader changes.
//! A blank line every 10 s keeps idle connections alive.

use crate::master::Master;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use orch_core::state::Snapshot;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

const KEEPALIVE: Duration = Duration::from_secs(10);

/// The newest snapshot's line, so that a snapshot is serialised once however many streams
/// (DNS servers, load balancers) follow this master.
static LAST_LINE: Mutex<Option<(Weak<Snapshot>, Bytes)>> = Mutex::new(None);

/// `snapshot` as one line of JSON.
fn line_of(snapshot: &Arc<Snapshot>) -> Result<Bytes, serde_json::Error> {
    let mut last = LAST_LINE.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some((cached, line)) = last.as_ref() {
        if cached
            .upgrade()
            .is_some_and(|cached| Arc::ptr_eq(&cached, snapshot))
        {
            return Ok(line.clone());
        }
    }
    let mut line = serde_json::to_vec(&**snapshot)?;
    line.push(b'\n');
    let line = Bytes::from(line);
    *last = Some((Arc::downgrade(snapshot), line.clone()));
    Ok(line)
}

pub(super) fn routes() -> Router<Arc<Master>> {
    Router::new().route("/v1/snapshots", get(stream))
}

async fn stream(State(master): State<Arc<Master>>) -> Response {
    let mut snapshots = master.snapshots();
    snapshots.mark_changed();
    let lines = futures::stream::unfold(
        (master, snapshots),
        |(master, mut snapshots)| async move {
            let line = tokio::select! {
                () = master.stopping() => return None,
                // A master whose Raft core stopped serves no more snapshots: the feed ends and
                // DNS and the LB move to another master.
                _ = master.raft_stopped() => return None,
                changed = tokio::time::timeout(KEEPALIVE, snapshots.changed()) => match changed {
                    Ok(Ok(())) => {
                        let snapshot = Arc::clone(&snapshots.borrow_and_update());
                        match line_of(&snapshot) {
                            Ok(line) => line,
                            Err(error) => {
                                tracing::error!(error = &error as &dyn std::error::Error, "a snapshot could not be serialised");
                                return None;
                            }
                        }
                    }
                    Ok(Err(_closed)) => return None,
                    Err(_idle) => Bytes::from_static(b"\n"),
                },
            };
            Some((Ok::<Bytes, std::io::Error>(line), (master, snapshots)))
        },
    );
    let mut response = Response::new(Body::from_stream(lines));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    response
}

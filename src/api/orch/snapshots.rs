//! `GET /v1/snapshots`: the discovery view of this master as newline-delimited JSON, one
//! [`Snapshot`](crate::state::Snapshot) now and one after every change (intermediate ones
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
use std::sync::Arc;
use std::time::Duration;

const KEEPALIVE: Duration = Duration::from_secs(10);

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
                changed = tokio::time::timeout(KEEPALIVE, snapshots.changed()) => match changed {
                    Ok(Ok(())) => {
                        let snapshot = Arc::clone(&snapshots.borrow_and_update());
                        match serde_json::to_vec(&*snapshot) {
                            Ok(mut line) => {
                                line.push(b'\n');
                                Bytes::from(line)
                            }
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

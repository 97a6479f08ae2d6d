//! Leader-only handling: a `/v1`, `/v2` or `/master` request reaching a follower is forwarded to the
//! leader as Marathon's `LeaderProxyFilter` does, and every response carries
//! `X-Marathon-Leader` and Marathon's no-cache headers.
//!
//! Answered locally on any master: `/ping`, `/metrics`, `/internal/*`, `GET /v1/cluster`,
//! `GET /v1/snapshots`
//! and `GET /v2/leader`.

use super::{ApiError, MAX_BODY_BYTES};
use crate::master::{Leader, Master};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use std::time::Duration;

/// How long a follower waits to learn of a leader before giving up (Marathon: 10 × 250 ms).
const LEADER_PATIENCE: Duration = Duration::from_millis(2500);
/// Marathon's `--leader_proxy_read_timeout` default.
const PROXY_TIMEOUT: Duration = Duration::from_secs(10);

const VIA: HeaderName = HeaderName::from_static("x-marathon-via");
const LEADER: HeaderName = HeaderName::from_static("x-marathon-leader");

/// Headers that describe one connection, not the message; never copied by the proxy.
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    header::HOST,
    header::CONTENT_LENGTH,
    header::TRANSFER_ENCODING,
    header::TE,
    header::TRAILER,
    header::UPGRADE,
    header::PROXY_AUTHORIZATION,
];

/// The middleware: serve locally, or forward to the leader.
pub(super) async fn leader_only(
    State(master): State<Arc<Master>>,
    request: Request,
    next: Next,
) -> Response {
    let (leader, mut response) = if answered_locally(request.method(), request.uri().path()) {
        (master.leader(), next.run(request).await)
    } else {
        match master.wait_for_leader(LEADER_PATIENCE).await {
            None => (None, ApiError::NoLeader.into_response()),
            Some(leader) if leader.id == master.id() => (Some(leader), next.run(request).await),
            Some(leader) => match forward(&master, &leader.address, request).await {
                Ok(response) => return response,
                Err(error) => (Some(leader), error.into_response()),
            },
        }
    };
    add_marathon_headers(response.headers_mut(), leader.as_ref(), master.scheme());
    response
}

fn answered_locally(method: &Method, path: &str) -> bool {
    let is_get = method == Method::GET;
    !(path.starts_with("/v1/") || path.starts_with("/v2/") || path.starts_with("/master/"))
        || (is_get
            && (path == "/v1/cluster"
                || path == "/v1/snapshots"
                || path == "/v2/leader"
                || path == "/v2/events"))
}

fn add_marathon_headers(headers: &mut HeaderMap, leader: Option<&Leader>, scheme: &str) {
    if let Some(leader) = leader {
        if let Ok(value) = HeaderValue::from_str(&format!("{scheme}://{}", leader.address)) {
            headers.insert(LEADER, value);
        }
    }
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, no-store, must-revalidate"),
    );
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    headers.insert(header::EXPIRES, HeaderValue::from_static("0"));
}

/// Sends `request` to the leader and relays its answer, headers included.
async fn forward(master: &Master, leader: &str, request: Request) -> Result<Response, ApiError> {
    let via = format!("1.1 {}", master.address());
    let previous_via = request
        .headers()
        .get(&VIA)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    if previous_via.split(',').any(|hop| hop.trim() == via) {
        return Err(ApiError::ProxyLoop);
    }
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| ApiError::TooLarge {
            limit: MAX_BODY_BYTES,
        })?;
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut headers = parts.headers;
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
    let via_chain = if previous_via.is_empty() {
        via
    } else {
        format!("{previous_via}, {via}")
    };
    if let Ok(value) = HeaderValue::from_str(&via_chain) {
        headers.insert(VIA, value);
    }
    let answer = master
        .http()
        .request(
            parts.method,
            format!("{}://{leader}{path}", master.scheme()),
        )
        .headers(headers)
        .body(body)
        .timeout(PROXY_TIMEOUT)
        .send()
        .await
        .map_err(|error| {
            if error.is_connect() {
                ApiError::LeaderUnreachable(error)
            } else {
                ApiError::ProxyFailed(error)
            }
        })?;
    let status = answer.status();
    let mut answer_headers = answer.headers().clone();
    for name in &HOP_BY_HOP {
        answer_headers.remove(name);
    }
    let bytes = answer.bytes().await.map_err(ApiError::ProxyFailed)?;
    let mut response = Response::new(Body::from(bytes));
    *response.status_mut() = status;
    *response.headers_mut() = answer_headers;
    Ok(response)
}

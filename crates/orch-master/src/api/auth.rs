//! Authentication of the API on a master with TLS (`--token-file`): every request but
//! `GET /ping` carries the token, in any of the three forms the clients of Marathon send:
//! `Authorization: Bearer <token>`, DC/OS' `Authorization: token=<token>` (marathon-python's
//! `auth_token=`), or HTTP Basic with the token as the password and any user name
//! (marathon-lb's `--auth-credentials`, marathon-python's `username=`/`password=`). Without
//! it: 401 with Marathon's `{"message": ...}`. The `/internal/*` routes are authenticated by
//! the certificate the client showed instead (see `raft_rpc` and `agent_rpc`), and the gitops
//! webhook by its own signature or secret (a forge cannot send the cluster's token). A master
//! without TLS listens on loopback only and asks for no token.
//!
//! May depend on: the master (its token). Pure but for reading request headers.

use crate::master::Master;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine as _;
use std::sync::Arc;

/// The gitops webhook: it authenticates its callers itself.
const WEBHOOK: &str = "/v1/gitops/webhook";

/// The middleware.
pub(super) async fn authenticate(
    State(master): State<Arc<Master>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(token) = master.api_token() else {
        return next.run(request).await;
    };
    let path = request.uri().path();
    let open = (request.method() == Method::GET && path == "/ping")
        || path.starts_with("/internal/")
        || path == WEBHOOK;
    if open
        || presented(request.headers())
            .is_some_and(|given| same(given.as_bytes(), token.as_bytes()))
    {
        return next.run(request).await;
    }
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Basic realm=\"orch\"")],
        Json(serde_json::json!({
            "message": "authentication required: send the cluster's token as \
                        `Authorization: Bearer <token>`, `Authorization: token=<token>` or \
                        HTTP Basic with the token as the password"
        })),
    )
        .into_response()
}

/// The token a request carries, in any of the three forms.
fn presented(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    if let Some(token) = value.strip_prefix("Bearer ") {
        return Some(token.trim().to_owned());
    }
    if let Some(token) = value.strip_prefix("token=") {
        return Some(token.trim().to_owned());
    }
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    text.split_once(':')
        .map(|(_, password)| password.to_owned())
}

/// Byte equality in time independent of where the inputs differ.
fn same(given: &[u8], token: &[u8]) -> bool {
    given.len() == token.len() && given.iter().zip(token).fold(0u8, |d, (a, b)| d | (a ^ b)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn with(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(value).expect("a header"),
        );
        headers
    }

    #[test]
    fn the_token_is_read_in_the_three_forms_marathon_clients_send() {
        assert_eq!(presented(&with("Bearer abc")).as_deref(), Some("abc"));
        assert_eq!(presented(&with("token=abc")).as_deref(), Some("abc"));
        let basic = base64::engine::general_purpose::STANDARD.encode("anyone:abc");
        assert_eq!(
            presented(&with(&format!("Basic {basic}"))).as_deref(),
            Some("abc")
        );
        assert_eq!(presented(&with("Digest abc")), None);
        assert_eq!(presented(&HeaderMap::new()), None);
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abd", b"abc"));
        assert!(!same(b"ab", b"abc"));
    }
}

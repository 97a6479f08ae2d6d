//! Authentication and authorisation of the API on a master with TLS (`--token-file`): every
//! request but `GET /ping` carries a token, in any of the three forms the clients of
//! Marathon send: `Authorization: Bearer <token>`, DC/OS' `Authorization: token=<token>`
//! (marathon-python's `auth_token=`), or HTTP Basic with the token as the password and any
//! user name (marathon-lb's `--auth-credentials`, marathon-python's `username=`/`password=`).
//! Without a valid one: 401 with Marathon's `{"message": ...}`.
//!
//! The token is the management token (everything), or an ACL token, whose grants the request
//! then runs under ([`Caller`]: writes commit as that token, reads see what it may read).
//! What is not an app or group path is checked here, by [`needs`]: cluster-wide reads (event
//! and snapshot streams, agents, gitops, metrics) need read on `/**`, cluster-wide writes
//! admin on `/**`, ACLs the management token.
//!
//! The `/internal/*` routes are authenticated by the certificate the client showed instead
//! (see `raft_rpc` and `agent_rpc`), `/v1/snapshots` by a token or any node certificate of
//! the cluster (an agent's DNS and load balancer follow it), and the gitops webhook by its own signature or secret
//! (a forge cannot send the cluster's token). A master without TLS listens on loopback only
//! and asks for no token.
//!
//! May depend on: the master (its token, the ACL tokens in its state). Pure but for reading
//! request headers.

use crate::master::{Caller, Master};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine as _;
use orch_core::model::{Access, Grants};
use sha2::Digest as _;
use std::sync::Arc;

/// The gitops webhook: it authenticates its callers itself.
const WEBHOOK: &str = "/v1/gitops/webhook";

/// The snapshot stream DNS and the load balancer follow: a token, or a node certificate.
const SNAPSHOTS: &str = "/v1/snapshots";

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
    let node = path == SNAPSHOTS
        && matches!(
            request.extensions().get::<orch_pki::serve::Peer>(),
            Some(orch_pki::serve::Peer(Some(_)))
        );
    if open || node {
        return next.run(request).await;
    }
    let caller = match presented(request.headers()) {
        Some(given) if same(given.as_bytes(), token.as_bytes()) => Caller::Management,
        Some(given) => match master.state().acl_grants(&secret_sha256(&given)) {
            Some(grants) => Caller::Token(Arc::new(grants)),
            None => return unauthorized(),
        },
        None => return unauthorized(),
    };
    if let Caller::Token(grants) = &caller {
        if let Some(lacks) = lacking(grants, request.method(), path) {
            let what = format!("{} {path}", request.method());
            return forbidden(&grants.token, &what, &lacks);
        }
    }
    caller.scope(next.run(request)).await
}

/// The SHA-256 of a token secret, hex: what the state keeps of ACL tokens.
pub(super) fn secret_sha256(secret: &str) -> String {
    hex::encode(sha2::Sha256::digest(secret.as_bytes()))
}

fn unauthorized() -> Response {
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

/// What a route needs of an ACL token before its handler runs.
#[derive(Debug, PartialEq, Eq)]
enum Need {
    /// Nothing more than a valid token (`/v2/info`, `/v2/leader`).
    Token,
    /// Rights on the app and group paths it reads or writes, held by the state ([`Caller`]).
    Paths,
    /// Write on one path, checked here (the launch queue's delay is not in the state).
    WriteOn(String),
    /// `access` on everything (`/**`): the cluster's own resources.
    Everything(Access),
    /// The management token (ACLs).
    Management,
}

/// What `method path` needs.
fn needs(method: &Method, path: &str) -> Need {
    let read = method == Method::GET || method == Method::HEAD;
    let under = |prefix: &str| path == prefix || path.starts_with(&format!("{prefix}/"));
    if under("/v1/acl") {
        return Need::Management;
    }
    if path == "/v2/info" || path == "/v2/leader" {
        return Need::Token;
    }
    if let Some(id) = path
        .strip_prefix("/v2/queue")
        .and_then(|rest| rest.strip_suffix("/delay"))
    {
        if !read {
            return Need::WriteOn(id.to_owned());
        }
    }
    let paths = under("/v2/apps")
        || (under("/v1/tasks") && read)
        || under("/v2/groups")
        || under("/v2/deployments")
        || path == "/v2/queue"
        || (path == "/v2/tasks" && read)
        || (path == "/v2/tasks/delete" && !read);
    match (paths, read) {
        (true, _) => Need::Paths,
        (false, true) => Need::Everything(Access::Read),
        (false, false) => Need::Everything(Access::Admin),
    }
}

/// What `grants` lack to call `method path`, if anything.
fn lacking(grants: &Grants, method: &Method, path: &str) -> Option<String> {
    match needs(method, path) {
        Need::Token | Need::Paths => None,
        Need::WriteOn(id) => {
            (!grants.allows(&id, Access::Write)).then(|| format!("write access on {id}"))
        }
        Need::Everything(access) => {
            (!grants.allows_everything(access)).then(|| format!("{} access on /**", access.name()))
        }
        Need::Management => Some("the management token".to_owned()),
    }
}

/// A 403 with Marathon's error shape.
fn forbidden(token: &str, what: &str, lacks: &str) -> Response {
    (
        StatusCode::FORBIDDEN,
        Json(serde_json::json!({
            "message": format!("token '{token}' may not {what}: it lacks {lacks}")
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
    fn routes_need_what_they_touch() {
        assert_eq!(needs(&Method::POST, "/v1/acl/tokens"), Need::Management);
        assert_eq!(needs(&Method::GET, "/v1/acl/policies"), Need::Management);
        assert_eq!(needs(&Method::GET, "/v2/info"), Need::Token);
        assert_eq!(needs(&Method::PUT, "/v2/apps/team-a/web"), Need::Paths);
        assert_eq!(needs(&Method::GET, "/v2/groups"), Need::Paths);
        assert_eq!(needs(&Method::GET, "/v1/tasks/t/files/read"), Need::Paths);
        assert_eq!(needs(&Method::POST, "/v2/tasks/delete"), Need::Paths);
        assert_eq!(
            needs(&Method::DELETE, "/v2/queue/team-a/web/delay"),
            Need::WriteOn("/team-a/web".into())
        );
        assert_eq!(
            needs(&Method::GET, "/v2/events"),
            Need::Everything(Access::Read)
        );
        assert_eq!(
            needs(&Method::GET, "/v1/snapshots"),
            Need::Everything(Access::Read)
        );
        assert_eq!(
            needs(&Method::POST, "/v1/gitops"),
            Need::Everything(Access::Admin)
        );
        assert_eq!(
            needs(&Method::DELETE, "/v1/cluster/masters/x:1"),
            Need::Everything(Access::Admin)
        );
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

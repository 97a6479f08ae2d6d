//! Webhook calls that trigger a sync: who sent them (GitHub, GitLab or any CI with a bearer
//! token), whether they know the repo's secret, and what they ask for.
//!
//! - GitHub: `X-Hub-Signature-256: sha256=<hex>` is the HMAC-SHA256 of the raw body keyed
//!   with the secret; `X-GitHub-Event` is `ping` or `push` (others are ignored). Bodies sent
//!   as `application/x-www-form-urlencoded` (`payload=<json>`) are read too.
//! - GitLab: `X-Gitlab-Token` is the secret itself; `X-Gitlab-Event: Push Hook` is a push.
//! - Anything else: `Authorization: Bearer <secret>` with an optional JSON body
//!   `{"ref": "main" | "refs/heads/main", "commit": "<sha>"}`; an empty body means "sync the
//!   watched branch".
//!
//! Secrets are compared in constant time. Authentication comes before the body is read, so
//! an unauthenticated caller learns nothing about it. Pure: no I/O; never panics.
//!
//! May depend on: nothing internal.

use axum::http::HeaderMap;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::Value;
use sha2::Sha256;

/// What an authenticated webhook call asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Hook {
    /// A test delivery (GitHub's `ping`): nothing to sync.
    Ping,
    /// Something was pushed: sync.
    Push {
        /// The branch pushed to (`None` for tags, or when the caller did not say: the
        /// watched branch).
        branch: Option<String>,
        /// The commit pushed, when the caller said.
        commit: Option<String>,
    },
}

/// Why a webhook call does not trigger a sync.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    /// No recognised authentication, or a wrong signature or token (HTTP 401).
    #[error("webhook call not authenticated")]
    Unauthorized,
    /// Authenticated, but the body cannot be read (HTTP 400).
    #[error("malformed webhook call: {0}")]
    Malformed(String),
    /// Authenticated and readable, but not something to sync on (HTTP 202/200).
    #[error("webhook call ignored: {0}")]
    Ignored(String),
}

const GITHUB_SIGNATURE: &str = "x-hub-signature-256";
const GITHUB_EVENT: &str = "x-github-event";
const GITLAB_TOKEN: &str = "x-gitlab-token";
const GITLAB_EVENT: &str = "x-gitlab-event";
const AUTHORIZATION: &str = "authorization";

/// The commit id git uses for "no commit" (a deleted branch).
const NO_COMMIT: &str = "0000000000000000000000000000000000000000";

/// Authenticates a webhook call with the repo's `secret` and reads what it asks for.
pub fn authenticate(headers: &HeaderMap, body: &[u8], secret: &str) -> Result<Hook, WebhookError> {
    if secret.is_empty() {
        return Err(WebhookError::Unauthorized);
    }
    if let Some(signature) = header(headers, GITHUB_SIGNATURE) {
        verify_github(signature?, body, secret)?;
        return github(headers, body);
    }
    if let Some(token) = header(headers, GITLAB_TOKEN) {
        if !same_secret(token?, secret) {
            return Err(WebhookError::Unauthorized);
        }
        return gitlab(headers, body);
    }
    if let Some(authorization) = header(headers, AUTHORIZATION) {
        let token = bearer(authorization?).ok_or(WebhookError::Unauthorized)?;
        if !same_secret(token, secret) {
            return Err(WebhookError::Unauthorized);
        }
        return generic(body);
    }
    Err(WebhookError::Unauthorized)
}

/// A header's value: `None` when absent, `Some(Err)` when present but not text.
fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<Result<&'a str, WebhookError>> {
    headers.get(name).map(|value| {
        value
            .to_str()
            .map(str::trim)
            .map_err(|_| WebhookError::Unauthorized)
    })
}

fn verify_github(signature: &str, body: &[u8], secret: &str) -> Result<(), WebhookError> {
    let hex_digest = signature
        .strip_prefix("sha256=")
        .ok_or(WebhookError::Unauthorized)?;
    let tag = hex::decode(hex_digest).map_err(|_| WebhookError::Unauthorized)?;
    let mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
        .map_err(|_| WebhookError::Unauthorized)?;
    mac.chain_update(body)
        .verify_slice(&tag)
        .map_err(|_| WebhookError::Unauthorized)
}

/// `Bearer <token>` (the scheme in any case) → the token.
fn bearer(authorization: &str) -> Option<&str> {
    let (scheme, token) = authorization.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|token| !token.is_empty())
}

/// Compares a presented token with the secret in constant time: both are run through
/// HMAC-SHA256 under a fixed key and the tags compared with `verify_slice`, so neither the
/// position of the first difference nor the secret's length shows in the timing.
fn same_secret(presented: &str, secret: &str) -> bool {
    const KEY: &[u8] = b"orch gitops webhook token comparison";
    let tag = |text: &str| {
        Hmac::<Sha256>::new_from_slice(KEY)
            .map(|mac| mac.chain_update(text.as_bytes()))
            .ok()
    };
    match (tag(presented), tag(secret)) {
        (Some(presented), Some(secret)) => {
            let presented = presented.finalize().into_bytes();
            secret.verify_slice(&presented).is_ok()
        }
        _ => false,
    }
}

fn github(headers: &HeaderMap, body: &[u8]) -> Result<Hook, WebhookError> {
    let event = match header(headers, GITHUB_EVENT) {
        Some(Ok(event)) => event,
        Some(Err(_)) | None => {
            return Err(WebhookError::Malformed(
                "missing X-GitHub-Event header".into(),
            ))
        }
    };
    match event {
        "ping" => Ok(Hook::Ping),
        "push" => {
            let payload = json_object(&github_payload(headers, body)?)?;
            if payload.get("deleted") == Some(&Value::Bool(true)) {
                return Err(WebhookError::Ignored("a branch or tag was deleted".into()));
            }
            push(&payload, &["after"])
        }
        other => Err(WebhookError::Ignored(format!(
            "GitHub event `{other}` is not a push"
        ))),
    }
}

/// The JSON of a GitHub delivery: the body, or its `payload` form field.
fn github_payload(headers: &HeaderMap, body: &[u8]) -> Result<Vec<u8>, WebhookError> {
    let form = headers
        .get("content-type")
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/x-www-form-urlencoded"));
    if !form {
        return Ok(body.to_vec());
    }
    body.split(|b| *b == b'&')
        .find_map(|pair| pair.strip_prefix(b"payload="))
        .map(percent_decode)
        .ok_or_else(|| WebhookError::Malformed("form body without a `payload` field".into()))?
}

/// Decodes `application/x-www-form-urlencoded` bytes (`+` is a space, `%XX` a byte).
fn percent_decode(encoded: &[u8]) -> Result<Vec<u8>, WebhookError> {
    let mut out = Vec::with_capacity(encoded.len());
    let mut bytes = encoded.iter();
    while let Some(&byte) = bytes.next() {
        match byte {
            b'+' => out.push(b' '),
            b'%' => {
                let pair = [
                    bytes.next().copied().unwrap_or(b'!'),
                    bytes.next().copied().unwrap_or(b'!'),
                ];
                let decoded = hex::decode(pair)
                    .map_err(|_| WebhookError::Malformed("bad %-escape in the form body".into()))?;
                out.extend(decoded);
            }
            _ => out.push(byte),
        }
    }
    Ok(out)
}

fn gitlab(headers: &HeaderMap, body: &[u8]) -> Result<Hook, WebhookError> {
    match header(headers, GITLAB_EVENT) {
        Some(Ok("Push Hook")) => {
            let payload = json_object(body)?;
            let deleted = payload.get("after").and_then(Value::as_str) == Some(NO_COMMIT)
                && payload.get("checkout_sha").is_none_or(Value::is_null);
            if deleted {
                return Err(WebhookError::Ignored("a branch was deleted".into()));
            }
            push(&payload, &["checkout_sha", "after"])
        }
        Some(Ok(other)) => Err(WebhookError::Ignored(format!(
            "GitLab event `{other}` is not a push"
        ))),
        Some(Err(_)) | None => Err(WebhookError::Malformed(
            "missing X-Gitlab-Event header".into(),
        )),
    }
}

fn generic(body: &[u8]) -> Result<Hook, WebhookError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Hook::Push {
            branch: None,
            commit: None,
        });
    }
    push(&json_object(body)?, &["commit"])
}

fn json_object(body: &[u8]) -> Result<serde_json::Map<String, Value>, WebhookError> {
    match serde_json::from_slice(body) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(_) => Err(WebhookError::Malformed(
            "the body is not a JSON object".into(),
        )),
        Err(error) => Err(WebhookError::Malformed(format!(
            "the body is not JSON: {error}"
        ))),
    }
}

/// A push from `ref` and the first of `commit_keys` that holds a commit.
fn push(
    payload: &serde_json::Map<String, Value>,
    commit_keys: &[&str],
) -> Result<Hook, WebhookError> {
    let branch = match payload.get("ref") {
        None | Some(Value::Null) => None,
        Some(Value::String(reference)) => branch_of(reference),
        Some(_) => return Err(WebhookError::Malformed("`ref` must be a string".into())),
    };
    let mut commit = None;
    for key in commit_keys {
        match payload.get(*key) {
            None | Some(Value::Null) => {}
            Some(Value::String(sha)) if sha.is_empty() || sha == NO_COMMIT => {}
            Some(Value::String(sha)) => {
                commit = Some(sha.clone());
                break;
            }
            Some(_) => return Err(WebhookError::Malformed(format!("`{key}` must be a string"))),
        }
    }
    Ok(Hook::Push { branch, commit })
}

/// `refs/heads/X` and `X` name branch X; tags and other refs name no branch.
fn branch_of(reference: &str) -> Option<String> {
    let reference = reference.trim();
    if let Some(branch) = reference.strip_prefix("refs/heads/") {
        return (!branch.is_empty()).then(|| branch.to_owned());
    }
    if reference.is_empty() || reference.starts_with("refs/") {
        return None;
    }
    Some(reference.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderName, HeaderValue};
    use proptest::prelude::*;

    const SECRET: &str = "It's a Secret to Everybody";

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(
                HeaderName::from_bytes(name.as_bytes()).expect("name"),
                HeaderValue::from_str(value).expect("value"),
            );
        }
        map
    }

    fn sign(secret: &str, body: &[u8]) -> String {
        let mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
            .expect("any key length")
            .chain_update(body);
        format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
    }

    #[test]
    fn hmac_matches_githubs_documented_example() {
        // The example in GitHub's "Validating webhook deliveries" documentation.
        assert_eq!(
            sign(SECRET, b"Hello, World!"),
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
        );
    }

    #[test]
    fn github_push_with_a_valid_signature() {
        let body = br#"{"ref": "refs/heads/main", "after": "abc123", "deleted": false}"#;
        let signature = sign(SECRET, body);
        let hook = authenticate(
            &headers(&[
                ("X-GitHub-Event", "push"),
                ("X-Hub-Signature-256", &signature),
            ]),
            body,
            SECRET,
        );
        assert_eq!(
            hook,
            Ok(Hook::Push {
                branch: Some("main".into()),
                commit: Some("abc123".into())
            })
        );
        let tag = br#"{"ref": "refs/tags/v1.0", "after": "def456"}"#;
        let hook = authenticate(
            &headers(&[
                ("X-GitHub-Event", "push"),
                ("X-Hub-Signature-256", &sign(SECRET, tag)),
            ]),
            tag,
            SECRET,
        );
        assert_eq!(
            hook,
            Ok(Hook::Push {
                branch: None,
                commit: Some("def456".into())
            })
        );
    }

    #[test]
    fn github_ping_and_other_events() {
        let body = br#"{"zen": "Keep it logically awesome.", "hook_id": 1}"#;
        let signature = sign(SECRET, body);
        let call = |event: &str| {
            authenticate(
                &headers(&[
                    ("X-GitHub-Event", event),
                    ("X-Hub-Signature-256", &signature),
                ]),
                body,
                SECRET,
            )
        };
        assert_eq!(call("ping"), Ok(Hook::Ping));
        assert!(matches!(call("issues"), Err(WebhookError::Ignored(_))));
    }

    #[test]
    fn github_form_encoded_payloads_are_read() {
        let body = b"payload=%7B%22ref%22%3A%22refs%2Fheads%2Fdev%22%2C%22after%22%3A%22a1%22%7D";
        let hook = authenticate(
            &headers(&[
                ("X-GitHub-Event", "push"),
                ("X-Hub-Signature-256", &sign(SECRET, body)),
                ("Content-Type", "application/x-www-form-urlencoded"),
            ]),
            body,
            SECRET,
        );
        assert_eq!(
            hook,
            Ok(Hook::Push {
                branch: Some("dev".into()),
                commit: Some("a1".into())
            })
        );
    }

    #[test]
    fn github_deleted_branches_are_ignored() {
        let body =
            format!(r#"{{"ref": "refs/heads/old", "after": "{NO_COMMIT}", "deleted": true}}"#);
        let hook = authenticate(
            &headers(&[
                ("X-GitHub-Event", "push"),
                ("X-Hub-Signature-256", &sign(SECRET, body.as_bytes())),
            ]),
            body.as_bytes(),
            SECRET,
        );
        assert!(matches!(hook, Err(WebhookError::Ignored(_))), "{hook:?}");
    }

    #[test]
    fn github_bad_signatures_are_unauthorized() {
        let body = br#"{"ref": "refs/heads/main", "after": "abc"}"#;
        let call = |signature: &str, body: &[u8]| {
            authenticate(
                &headers(&[
                    ("X-GitHub-Event", "push"),
                    ("X-Hub-Signature-256", signature),
                ]),
                body,
                SECRET,
            )
        };
        let good = sign(SECRET, body);
        assert!(call(&good, body).is_ok());
        // Another secret, another body, a truncated tag, no prefix, not hex.
        assert_eq!(
            call(&sign("other", body), body),
            Err(WebhookError::Unauthorized)
        );
        assert_eq!(call(&good, b"{}"), Err(WebhookError::Unauthorized));
        assert_eq!(
            call(&good[..good.len() - 2], body),
            Err(WebhookError::Unauthorized)
        );
        assert_eq!(
            call(&good["sha256=".len()..], body),
            Err(WebhookError::Unauthorized)
        );
        assert_eq!(call("sha256=zz", body), Err(WebhookError::Unauthorized));
        // The event header alone is no authentication.
        assert_eq!(
            authenticate(&headers(&[("X-GitHub-Event", "push")]), body, SECRET),
            Err(WebhookError::Unauthorized)
        );
    }

    #[test]
    fn malformed_bodies_after_authentication() {
        let body = b"{not json";
        let hook = authenticate(
            &headers(&[
                ("X-GitHub-Event", "push"),
                ("X-Hub-Signature-256", &sign(SECRET, body)),
            ]),
            body,
            SECRET,
        );
        assert!(matches!(hook, Err(WebhookError::Malformed(_))), "{hook:?}");
        let hook = authenticate(
            &headers(&[("Authorization", &format!("Bearer {SECRET}"))]),
            b"[1, 2]",
            SECRET,
        );
        assert!(matches!(hook, Err(WebhookError::Malformed(_))), "{hook:?}");
        let hook = authenticate(
            &headers(&[("Authorization", &format!("Bearer {SECRET}"))]),
            br#"{"ref": 7}"#,
            SECRET,
        );
        assert!(matches!(hook, Err(WebhookError::Malformed(_))), "{hook:?}");
    }

    #[test]
    fn gitlab_push_hooks() {
        let body = br#"{"object_kind": "push", "ref": "refs/heads/main",
            "after": "aaa", "checkout_sha": "bbb"}"#;
        let call = |token: &str, event: &str| {
            authenticate(
                &headers(&[("X-Gitlab-Token", token), ("X-Gitlab-Event", event)]),
                body,
                SECRET,
            )
        };
        assert_eq!(
            call(SECRET, "Push Hook"),
            Ok(Hook::Push {
                branch: Some("main".into()),
                commit: Some("bbb".into())
            })
        );
        assert!(matches!(
            call(SECRET, "Merge Request Hook"),
            Err(WebhookError::Ignored(_))
        ));
        assert_eq!(call("wrong", "Push Hook"), Err(WebhookError::Unauthorized));
        assert_eq!(
            call(&SECRET[1..], "Push Hook"),
            Err(WebhookError::Unauthorized)
        );
        let without_checkout = br#"{"ref": "refs/heads/dev", "after": "ccc"}"#;
        assert_eq!(
            authenticate(
                &headers(&[("X-Gitlab-Token", SECRET), ("X-Gitlab-Event", "Push Hook")]),
                without_checkout,
                SECRET,
            ),
            Ok(Hook::Push {
                branch: Some("dev".into()),
                commit: Some("ccc".into())
            })
        );
    }

    #[test]
    fn bearer_tokens_for_any_ci() {
        let auth = format!("Bearer {SECRET}");
        let call = |body: &[u8]| authenticate(&headers(&[("Authorization", &auth)]), body, SECRET);
        assert_eq!(
            call(b""),
            Ok(Hook::Push {
                branch: None,
                commit: None
            })
        );
        assert_eq!(
            call(br#"{"ref": "refs/heads/main", "commit": "0a1b"}"#),
            Ok(Hook::Push {
                branch: Some("main".into()),
                commit: Some("0a1b".into())
            })
        );
        assert_eq!(
            call(br#"{"ref": "release"}"#),
            Ok(Hook::Push {
                branch: Some("release".into()),
                commit: None
            })
        );
        let lower = format!("bearer {SECRET}");
        assert!(authenticate(&headers(&[("Authorization", &lower)]), b"", SECRET).is_ok());
        let wrong = |value: &str| authenticate(&headers(&[("Authorization", value)]), b"", SECRET);
        assert_eq!(wrong("Bearer nope"), Err(WebhookError::Unauthorized));
        assert_eq!(
            wrong(&format!("Basic {SECRET}")),
            Err(WebhookError::Unauthorized)
        );
        assert_eq!(wrong("Bearer "), Err(WebhookError::Unauthorized));
        assert_eq!(wrong(SECRET), Err(WebhookError::Unauthorized));
    }

    #[test]
    fn no_authentication_or_no_secret_is_unauthorized() {
        assert_eq!(
            authenticate(&HeaderMap::new(), b"", SECRET),
            Err(WebhookError::Unauthorized)
        );
        // An empty secret configures nothing: even a matching empty token fails.
        assert_eq!(
            authenticate(
                &headers(&[("X-Gitlab-Token", ""), ("X-Gitlab-Event", "Push Hook")]),
                b"{}",
                ""
            ),
            Err(WebhookError::Unauthorized)
        );
        assert_eq!(
            authenticate(
                &headers(&[
                    ("X-Hub-Signature-256", &sign("", b"{}")),
                    ("X-GitHub-Event", "ping")
                ]),
                b"{}",
                ""
            ),
            Err(WebhookError::Unauthorized)
        );
    }

    #[test]
    fn secrets_compare_exactly() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "abcd"));
        assert!(!same_secret("", "a"));
    }

    const HEADER_NAMES: [&str; 7] = [
        "x-github-event",
        "x-hub-signature-256",
        "x-gitlab-token",
        "x-gitlab-event",
        "authorization",
        "content-type",
        "x-other",
    ];

    proptest! {
        #[test]
        fn never_panics_on_any_input(
            pairs in proptest::collection::vec((0..HEADER_NAMES.len(), proptest::collection::vec(any::<u8>(), 0..80)), 0..6),
            body in proptest::collection::vec(any::<u8>(), 0..300),
            sign_it in any::<bool>(),
            event in prop_oneof![Just("push"), Just("ping"), Just("Push Hook"), Just("x")],
        ) {
            let mut map = HeaderMap::new();
            for (name, value) in pairs {
                if let Ok(value) = HeaderValue::from_bytes(&value) {
                    map.append(HEADER_NAMES[name], value);
                }
            }
            if sign_it {
                map.insert(GITHUB_SIGNATURE, HeaderValue::from_str(&sign(SECRET, &body)).expect("ascii"));
                map.insert(GITHUB_EVENT, HeaderValue::from_static(event));
            }
            let result = authenticate(&map, &body, SECRET);
            if sign_it {
                prop_assert_ne!(result, Err(WebhookError::Unauthorized));
            }
        }

        #[test]
        fn signed_json_pushes_are_read(reference in "[a-z/]{0,20}", sha in "[0-9a-f]{1,40}") {
            let body = serde_json::json!({"ref": reference, "after": sha}).to_string();
            let hook = authenticate(
                &headers(&[("X-GitHub-Event", "push"), ("X-Hub-Signature-256", &sign(SECRET, body.as_bytes()))]),
                body.as_bytes(),
                SECRET,
            );
            let expected_commit = (sha != NO_COMMIT).then(|| sha.clone());
            prop_assert_eq!(hook, Ok(Hook::Push { branch: branch_of(&reference), commit: expected_commit }));
        }
    }
}

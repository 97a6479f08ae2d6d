//! TEMPORARY interface copy (replaced by the gitpure branch).
#![allow(missing_docs, dead_code, unused)]
#[derive(Debug)]
pub enum Hook {
    Ping,
    Push {
        branch: Option<String>,
        commit: Option<String>,
    },
}
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("u")]
    Unauthorized,
    #[error("m")]
    Malformed(String),
    #[error("i")]
    Ignored(String),
}
pub fn authenticate(
    headers: &axum::http::HeaderMap,
    body: &[u8],
    secret: &str,
) -> Result<Hook, WebhookError> {
    Err(WebhookError::Unauthorized)
}

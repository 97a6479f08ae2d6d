//! The HTTP client of DigitalOcean's API v2: bearer token, JSON bodies, every request
//! within the run's [`Budget`], a 429 waited out (`retry-after`, else `ratelimit-reset`) and
//! retried, lists followed page by page (`links.pages.next`), and errors that carry
//! DigitalOcean's `id`, `message` and `request_id`.
//!
//! A POST that failed for another reason than a 429 is never retried here: a create that
//! may have happened is found again by listing by tag.
//!
//! May depend on: provision::{digital_ocean::rate, steps (Progress)}. Talks HTTP (reqwest).

use super::rate::{after_429, Budget};
use crate::steps::Progress;
use reqwest::Method;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// Per-request bound.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How many 429s in a row one request waits out before giving up.
const MAX_RATE_LIMITED: u32 = 8;
/// How many times a GET or DELETE is retried after no answer or a 5xx.
const MAX_RETRIES: u32 = 3;
/// The longest a 429 makes us wait at once.
const MAX_429_WAIT: Duration = Duration::from_secs(120);
/// Items asked for per page (DigitalOcean's maximum).
pub const PER_PAGE: u32 = 200;

/// A request to DigitalOcean failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client")]
    Client(#[source] reqwest::Error),
    /// No answer (connection, timeout).
    #[error("{method} {path}: no answer from DigitalOcean")]
    Unreachable {
        /// The method.
        method: Method,
        /// The path (and query).
        path: String,
        /// The cause.
        source: reqwest::Error,
    },
    /// An error answer, with DigitalOcean's own words.
    #[error("{method} {path}: {status} {id}: {message:?}{}", request_id.as_ref().map(|r| format!(" (request id {r})")).unwrap_or_default())]
    Status {
        /// The method.
        method: Method,
        /// The path (and query).
        path: String,
        /// The HTTP status code.
        status: u16,
        /// DigitalOcean's short code (`not_found`, `unprocessable_entity`, ...).
        id: String,
        /// DigitalOcean's message.
        message: String,
        /// The request id DigitalOcean gave, for its support.
        request_id: Option<String>,
    },
    /// Still rate limited after waiting several times.
    #[error("{method} {path}: still rate limited (429) after {attempts} waits")]
    RateLimited {
        /// The method.
        method: Method,
        /// The path (and query).
        path: String,
        /// How many 429s were waited out.
        attempts: u32,
    },
    /// A 2xx answer that is not the JSON expected.
    #[error("{method} {path}: unexpected answer: {problem}")]
    Shape {
        /// The method.
        method: Method,
        /// The path (and query).
        path: String,
        /// What is wrong.
        problem: String,
    },
}

impl ApiError {
    /// The HTTP status of an error answer.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// DigitalOcean's API with one token and one request budget.
#[derive(Debug, Clone)]
pub struct Api {
    http: reqwest::Client,
    base: String,
    token: String,
    budget: Arc<Budget>,
    progress: Progress,
}

impl Api {
    /// A client of the API at `base` (`https://api.digitalocean.com`) with `token`; notes
    /// (rate limit waits) go to `progress`.
    pub fn new(base: &str, token: String, progress: Progress) -> Result<Self, ApiError> {
        orch_pki::tls::install_crypto_provider();
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("orch/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(ApiError::Client)?;
        Ok(Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
            token,
            budget: Arc::new(Budget::per_minute()),
            progress,
        })
    }

    /// GET `path` with `query`; the JSON body.
    pub async fn get(&self, path: &str, query: &[(&str, &str)]) -> Result<Value, ApiError> {
        let path = with_query(path, query);
        self.send(Method::GET, &path, None)
            .await
            .map(Option::unwrap_or_default)
    }

    /// POST `body` to `path`; the JSON body of the answer.
    pub async fn post(&self, path: &str, body: &Value) -> Result<Value, ApiError> {
        self.send(Method::POST, path, Some(body))
            .await
            .map(Option::unwrap_or_default)
    }

    /// PUT `body` to `path`; the JSON body of the answer.
    pub async fn put(&self, path: &str, body: &Value) -> Result<Value, ApiError> {
        self.send(Method::PUT, path, Some(body))
            .await
            .map(Option::unwrap_or_default)
    }

    /// DELETE `path` with `query` (204, no body).
    pub async fn delete(&self, path: &str, query: &[(&str, &str)]) -> Result<(), ApiError> {
        let path = with_query(path, query);
        self.send(Method::DELETE, &path, None).await.map(|_| ())
    }

    /// Every item under `key` of every page of the list at `path`.
    pub async fn list(
        &self,
        path: &str,
        query: &[(&str, &str)],
        key: &str,
    ) -> Result<Vec<Value>, ApiError> {
        let per_page = PER_PAGE.to_string();
        let mut query = query.to_vec();
        query.push(("per_page", &per_page));
        let mut next = Some(with_query(path, &query));
        let mut items = Vec::new();
        while let Some(path) = next.take() {
            let page = self
                .send(Method::GET, &path, None)
                .await?
                .unwrap_or_default();
            let Some(list) = page.get(key).and_then(Value::as_array) else {
                return Err(ApiError::Shape {
                    method: Method::GET,
                    path,
                    problem: format!("no '{key}' list"),
                });
            };
            items.extend(list.iter().cloned());
            next = next_page(&page);
            if next.as_deref() == Some(path.as_str()) {
                break;
            }
        }
        Ok(items)
    }

    /// Sends one request within the budget, waiting out 429s and retrying what is safe to
    /// retry; the body (None for 204).
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Option<Value>, ApiError> {
        let mut limited = 0;
        let mut failed = 0;
        loop {
            self.budget.take().await;
            let mut request = self
                .http
                .request(method.clone(), format!("{}{path}", self.base))
                .bearer_auth(&self.token)
                .header("accept", "application/json");
            if let Some(body) = body {
                request = request.json(body);
            }
            let retryable = method != Method::POST;
            let response = match request.send().await {
                Ok(response) => response,
                Err(source) if retryable && failed < MAX_RETRIES => {
                    failed += 1;
                    self.progress.note(format!(
                        "{method} {path}: no answer ({source}); retrying ({failed} of {MAX_RETRIES})"
                    ));
                    tokio::time::sleep(Duration::from_secs(u64::from(failed))).await;
                    continue;
                }
                Err(source) => {
                    return Err(ApiError::Unreachable {
                        method,
                        path: path.to_owned(),
                        source,
                    })
                }
            };
            let status = response.status().as_u16();
            if status == 429 {
                limited += 1;
                if limited > MAX_RATE_LIMITED {
                    return Err(ApiError::RateLimited {
                        method,
                        path: path.to_owned(),
                        attempts: MAX_RATE_LIMITED,
                    });
                }
                let header = |name: &str| {
                    response
                        .headers()
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned)
                };
                let wait = after_429(
                    header("retry-after").as_deref(),
                    header("ratelimit-reset").as_deref(),
                    epoch_now(),
                    Duration::from_secs(5),
                    MAX_429_WAIT,
                );
                self.progress.note(format!(
                    "{method} {path}: rate limited by DigitalOcean (429); waiting {}s, then retrying",
                    wait.as_secs_f64()
                ));
                tokio::time::sleep(wait).await;
                continue;
            }
            let text = response.text().await.unwrap_or_default();
            if (500..600).contains(&status) && retryable && failed < MAX_RETRIES {
                failed += 1;
                self.progress.note(format!(
                    "{method} {path}: {status} from DigitalOcean; retrying ({failed} of {MAX_RETRIES})"
                ));
                tokio::time::sleep(Duration::from_secs(u64::from(failed))).await;
                continue;
            }
            if !(200..300).contains(&status) {
                return Err(status_error(method, path, status, &text));
            }
            if text.trim().is_empty() {
                return Ok(None);
            }
            return serde_json::from_str(&text)
                .map(Some)
                .map_err(|e| ApiError::Shape {
                    method,
                    path: path.to_owned(),
                    problem: format!("not JSON ({e})"),
                });
        }
    }
}

/// The error of a non-2xx answer, from DigitalOcean's `{"id","message","request_id"}`
/// body (or the raw body when it is not that).
pub fn status_error(method: Method, path: &str, status: u16, body: &str) -> ApiError {
    let json: Value = serde_json::from_str(body).unwrap_or_default();
    let field = |name: &str| json.get(name).and_then(Value::as_str).map(str::to_owned);
    ApiError::Status {
        method,
        path: path.to_owned(),
        status,
        id: field("id").unwrap_or_else(|| "error".to_owned()),
        message: field("message").unwrap_or_else(|| body.trim().chars().take(300).collect()),
        request_id: field("request_id"),
    }
}

/// The path and query of the next page (`links.pages.next`), None on the last page.
pub fn next_page(page: &Value) -> Option<String> {
    let next = page.pointer("/links/pages/next")?.as_str()?;
    // An absolute URL: keep its path and query, so the pages come from the base we use.
    let without_scheme = next.split_once("://").map_or(next, |(_, rest)| rest);
    let start = without_scheme.find('/')?;
    let path = &without_scheme[start..];
    (!path.is_empty()).then(|| path.to_owned())
}

/// `path?k=v&...`, values percent-encoded.
pub fn with_query(path: &str, query: &[(&str, &str)]) -> String {
    if query.is_empty() {
        return path.to_owned();
    }
    let pairs: Vec<String> = query
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect();
    format!("{path}?{}", pairs.join("&"))
}

fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn epoch_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn errors_show_digitaloceans_message_and_request_id() {
        let body = r#"{"id":"unprocessable_entity","message":"Region is not available","request_id":"7d5c0b0f-1"}"#;
        let error = status_error(Method::POST, "/v2/droplets", 422, body);
        assert_eq!(
            error.to_string(),
            r#"POST /v2/droplets: 422 unprocessable_entity: "Region is not available" (request id 7d5c0b0f-1)"#
        );
        assert_eq!(error.status(), Some(422));
        let bare = status_error(Method::GET, "/v2/firewalls", 502, "bad gateway\n");
        assert_eq!(
            bare.to_string(),
            r#"GET /v2/firewalls: 502 error: "bad gateway""#
        );
    }

    #[test]
    fn the_next_page_is_taken_from_links_as_a_path() {
        let page = json!({"droplets": [], "links": {"pages": {
            "first": "https://api.digitalocean.com/v2/droplets?page=1&per_page=2",
            "next": "https://api.digitalocean.com/v2/droplets?page=2&per_page=2&tag_name=orch-cluster-x"}},
            "meta": {"total": 5}});
        assert_eq!(
            next_page(&page).as_deref(),
            Some("/v2/droplets?page=2&per_page=2&tag_name=orch-cluster-x")
        );
        assert_eq!(next_page(&json!({"links": {"pages": {}}})), None);
        assert_eq!(next_page(&json!({"links": {}})), None);
        assert_eq!(
            next_page(&json!({"links": {"pages": {"next": "/v2/x?page=3"}}})).as_deref(),
            Some("/v2/x?page=3")
        );
    }

    #[test]
    fn queries_are_encoded() {
        assert_eq!(
            with_query(
                "/v2/droplets",
                &[("tag_name", "orch-cluster-a b"), ("per_page", "200")]
            ),
            "/v2/droplets?tag_name=orch-cluster-a%20b&per_page=200"
        );
        assert_eq!(with_query("/v2/firewalls", &[]), "/v2/firewalls");
    }
}

//! HTTP with short timeouts, and Prometheus text.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context as _;
use serde_json::Value;

use super::*;

/// A fully read HTTP response.
#[derive(Debug, Clone)]
pub struct Resp {
    /// Status code.
    pub status: u16,
    /// Response headers.
    pub headers: reqwest::header::HeaderMap,
    /// Body as text.
    pub body: String,
}

impl Resp {
    /// Body parsed as JSON (panics with the body if it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| {
            panic!(
                "response body is not JSON ({e}); status {}: {}",
                self.status, self.body
            )
        })
    }

    /// A header as a string, if present.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }

    /// Whether the status is 2xx.
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// Small reqwest wrapper: no proxy, short timeouts, JSON content type on bodies.
#[derive(Debug, Clone)]
pub struct Http {
    /// The underlying client.
    pub client: reqwest::Client,
}

impl Default for Http {
    fn default() -> Self {
        Http::new()
    }
}

impl Http {
    /// Client with [`HTTP_TIMEOUT`] per request and a 1 s connect timeout.
    pub fn new() -> Http {
        orch_pki::tls::install_crypto_provider();
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(HTTP_TIMEOUT)
            .connect_timeout(Duration::from_secs(1))
            .build()
            .expect("build reqwest client");
        Http { client }
    }

    /// A client of the cluster `orch up` made in `cluster_dir` (`.orch/<cluster>`): HTTPS
    /// verified against its CA (`pki/ca.pem`), with its management token (`token`) as Bearer.
    pub fn for_cluster(cluster_dir: &std::path::Path) -> Http {
        Http::trusting(
            &cluster_dir.join("pki").join("ca.pem"),
            &cluster_dir.join("token"),
        )
    }

    /// A client of masters with TLS: HTTPS verified against the CA file `ca`, with the token
    /// in `token_file` as Bearer.
    pub fn trusting(ca: &std::path::Path, token_file: &std::path::Path) -> Http {
        orch_pki::tls::install_crypto_provider();
        let tls = orch_pki::tls::trusting(ca)
            .unwrap_or_else(|e| panic!("the cluster CA {}: {e}", ca.display()));
        let token = std::fs::read_to_string(token_file).expect("the cluster token");
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            reqwest::header::AUTHORIZATION,
            format!("Bearer {}", token.trim())
                .parse()
                .expect("a header value"),
        );
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(HTTP_TIMEOUT)
            .connect_timeout(Duration::from_secs(1))
            .tls_backend_preconfigured(tls)
            .default_headers(headers)
            .build()
            .expect("build reqwest client");
        Http { client }
    }

    /// Sends a request; `body` is sent as `application/json`; `timeout` overrides the default.
    pub async fn send(
        &self,
        method: reqwest::Method,
        url: &str,
        body: Option<String>,
        timeout: Option<Duration>,
    ) -> anyhow::Result<Resp> {
        let mut req = self.client.request(method.clone(), url);
        if let Some(b) = body {
            req = req.header("Content-Type", "application/json").body(b);
        }
        if let Some(t) = timeout {
            req = req.timeout(t);
        }
        let resp = req
            .send()
            .await
            .with_context(|| format!("{method} {url}"))?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp
            .text()
            .await
            .with_context(|| format!("read body of {method} {url}"))?;
        Ok(Resp {
            status,
            headers,
            body,
        })
    }

    /// GET, panicking with context on a transport error.
    pub async fn get(&self, url: &str) -> Resp {
        self.send(reqwest::Method::GET, url, None, None)
            .await
            .unwrap_or_else(|e| panic!("{e:#}"))
    }

    /// POST a JSON value, panicking with context on a transport error.
    pub async fn post(&self, url: &str, body: &Value) -> Resp {
        self.send(reqwest::Method::POST, url, Some(body.to_string()), None)
            .await
            .unwrap_or_else(|e| panic!("{e:#}"))
    }

    /// PUT a JSON value, panicking with context on a transport error.
    pub async fn put(&self, url: &str, body: &Value) -> Resp {
        self.send(reqwest::Method::PUT, url, Some(body.to_string()), None)
            .await
            .unwrap_or_else(|e| panic!("{e:#}"))
    }

    /// PATCH a JSON value, panicking with context on a transport error.
    pub async fn patch(&self, url: &str, body: &Value) -> Resp {
        self.send(reqwest::Method::PATCH, url, Some(body.to_string()), None)
            .await
            .unwrap_or_else(|e| panic!("{e:#}"))
    }

    /// DELETE, panicking with context on a transport error.
    pub async fn delete(&self, url: &str) -> Resp {
        self.send(reqwest::Method::DELETE, url, None, None)
            .await
            .unwrap_or_else(|e| panic!("{e:#}"))
    }

    /// POST raw bytes as `application/json`, panicking with context on a transport error.
    pub async fn post_raw(&self, url: &str, body: impl Into<String>) -> Resp {
        self.send(reqwest::Method::POST, url, Some(body.into()), None)
            .await
            .unwrap_or_else(|e| panic!("{e:#}"))
    }
}

/// Parses Prometheus text into `name -> value` for samples without labels, and
/// `name{labels} -> value` for the others.
pub fn parse_metrics(text: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        // `name{a="b c"} value [timestamp]`: the key ends at the last '}' or the first space.
        let (key, rest) = match line.rfind('}') {
            Some(i) => (&line[..=i], line[i + 1..].trim()),
            None => match line.split_once(' ') {
                Some((k, r)) => (k, r.trim()),
                None => continue,
            },
        };
        if let Some(v) = rest
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<f64>().ok())
        {
            out.insert(key.to_string(), v);
        }
    }
    out
}

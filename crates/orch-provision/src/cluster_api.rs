//! The few API calls provisioning makes to the cluster it started: who leads
//! (`GET /v1/cluster`), how many agents are registered (`GET /v1/agents`), registering a
//! watched repo (`POST /v1/gitops`) and the gitops summary (`GET /v1/gitops`). Short
//! timeouts, no proxy (the cluster is local or directly reachable). A cluster of `orch up`
//! is reached over HTTPS, its masters verified against the cluster CA, with the management
//! token ([`Access`], from `.orch/<cluster>/`).
//!
//! May depend on: model (RepoConfig), provision::cluster_pki (where the CA and token are),
//! orch-pki (the TLS client configuration). Talks HTTP (reqwest).

use orch_core::model::RepoConfig;
use serde_json::Value;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Per-request bound.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// A call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClusterApiError {
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client")]
    Client(#[source] reqwest::Error),
    /// The cluster CA or the token cannot be used.
    #[error("cannot use the cluster's CA {ca} and token")]
    Credentials {
        /// The CA file.
        ca: PathBuf,
        /// The cause.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// No answer.
    #[error("{method} {url}: no answer")]
    Unreachable {
        /// The method.
        method: &'static str,
        /// The URL.
        url: String,
        /// The cause.
        source: reqwest::Error,
    },
    /// A non-2xx answer.
    #[error("{method} {url} answered {status}: {body}")]
    Status {
        /// The method.
        method: &'static str,
        /// The URL.
        url: String,
        /// The status code.
        status: u16,
        /// The body as sent.
        body: String,
    },
    /// A 2xx answer that is not the JSON expected.
    #[error("{url} answered something else than the JSON expected: {body}")]
    Shape {
        /// The URL.
        url: String,
        /// The body as sent.
        body: String,
    },
}

/// Who leads, as one master sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderView {
    /// The leader's `host:port`, if there is one.
    pub leader: Option<String>,
    /// The Raft term.
    pub term: u64,
    /// How many masters are members.
    pub members: usize,
}

/// The agents the leader knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgentCount {
    /// Registered agents.
    pub registered: usize,
    /// Of those, reachable ones.
    pub reachable: usize,
}

/// One watched repo of `GET /v1/gitops`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoSummary {
    /// Its name.
    pub name: String,
    /// Its sync state, as text (`Synced`, `OutOfSync/Healthy`, ...).
    pub sync: String,
    /// The commit last applied, if any.
    pub last_applied: Option<String>,
}

/// How a client gets into a cluster of `orch up`: the CA its masters' certificates are
/// verified against, and the management token.
#[derive(Clone, PartialEq, Eq)]
pub struct Access {
    /// The cluster CA (`.orch/<cluster>/pki/ca.pem`).
    pub ca: PathBuf,
    /// The management token.
    pub token: String,
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Access")
            .field("ca", &self.ca)
            .finish_non_exhaustive()
    }
}

impl Access {
    /// The CA and token kept in `cluster_dir`, None when the cluster has none (yet).
    pub fn of_cluster(cluster_dir: &Path) -> Option<Self> {
        let ca = super::cluster_pki::ca_path(cluster_dir);
        let token = super::cluster_pki::read_token(cluster_dir)?;
        ca.exists().then_some(Self { ca, token })
    }
}

/// A client of one master's API.
#[derive(Debug, Clone)]
pub struct ClusterApi {
    base: String,
    http: reqwest::Client,
}

impl ClusterApi {
    /// A client of the master at `address`: HTTPS with `access`, else plaintext HTTP.
    pub fn new(address: SocketAddr, access: Option<&Access>) -> Result<Self, ClusterApiError> {
        let mut http = orch_pki::tls::cluster_http()
            .no_proxy()
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(Duration::from_secs(1));
        let scheme = match access {
            Some(access) => {
                let credentials = |source: Box<dyn std::error::Error + Send + Sync>| {
                    ClusterApiError::Credentials {
                        ca: access.ca.clone(),
                        source,
                    }
                };
                let tls =
                    orch_pki::tls::trusting(&access.ca).map_err(|e| credentials(Box::new(e)))?;
                let headers =
                    orch_pki::tls::bearer(&access.token).map_err(|e| credentials(Box::new(e)))?;
                http = http.tls_backend_preconfigured(tls).default_headers(headers);
                "https"
            }
            None => "http",
        };
        Ok(Self {
            base: format!("{scheme}://{address}"),
            http: http.build().map_err(ClusterApiError::Client)?,
        })
    }

    /// `https://host:port` (or `http://`).
    pub fn base(&self) -> &str {
        &self.base
    }

    async fn send(
        &self,
        method: &'static str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, String), ClusterApiError> {
        let url = format!("{}{path}", self.base);
        let request = match body {
            Some(body) => self.http.post(&url).json(body),
            None => self.http.get(&url),
        };
        let unreachable = |source| ClusterApiError::Unreachable {
            method,
            url: url.clone(),
            source,
        };
        let response = request.send().await.map_err(unreachable)?;
        let status = response.status().as_u16();
        let text = response.text().await.map_err(unreachable)?;
        Ok((status, text))
    }

    async fn get_json(&self, path: &str) -> Result<Value, ClusterApiError> {
        let (status, body) = self.send("GET", path, None).await?;
        let url = format!("{}{path}", self.base);
        if !(200..300).contains(&status) {
            return Err(ClusterApiError::Status {
                method: "GET",
                url,
                status,
                body,
            });
        }
        serde_json::from_str(&body).map_err(|_| ClusterApiError::Shape { url, body })
    }

    /// `GET /v1/cluster`.
    pub async fn leader(&self) -> Result<LeaderView, ClusterApiError> {
        let json = self.get_json("/v1/cluster").await?;
        Ok(LeaderView {
            leader: json["leader_address"].as_str().map(str::to_owned),
            term: json["term"].as_u64().unwrap_or(0),
            members: json["members"].as_array().map_or(0, Vec::len),
        })
    }

    /// `GET /v1/agents`.
    pub async fn agents(&self) -> Result<AgentCount, ClusterApiError> {
        let json = self.get_json("/v1/agents").await?;
        let agents = json["agents"]
            .as_array()
            .ok_or_else(|| ClusterApiError::Shape {
                url: format!("{}/v1/agents", self.base),
                body: json.to_string(),
            })?;
        Ok(AgentCount {
            registered: agents.len(),
            reachable: agents
                .iter()
                .filter(|a| a["reachable"] == Value::Bool(true))
                .count(),
        })
    }

    /// `POST /v1/gitops` with the repo's config; the answer's JSON.
    pub async fn register_repo(&self, config: &RepoConfig) -> Result<Value, ClusterApiError> {
        let body = serde_json::to_value(config).map_err(|_| ClusterApiError::Shape {
            url: format!("{}/v1/gitops", self.base),
            body: String::new(),
        })?;
        let (status, text) = self.send("POST", "/v1/gitops", Some(&body)).await?;
        if !(200..300).contains(&status) {
            return Err(ClusterApiError::Status {
                method: "POST",
                url: format!("{}/v1/gitops", self.base),
                status,
                body: text,
            });
        }
        Ok(serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// `GET /v1/gitops` summarised; None when the master does not serve it (404).
    pub async fn gitops(&self) -> Result<Option<Vec<RepoSummary>>, ClusterApiError> {
        match self.get_json("/v1/gitops").await {
            Ok(json) => Ok(Some(repo_summaries(&json))),
            Err(ClusterApiError::Status { status: 404, .. }) => Ok(None),
            Err(error) => Err(error),
        }
    }
}

/// The repos of a `GET /v1/gitops` answer (`{"repos":[{"name","sync","lastApplied"}]}`);
/// fields that are missing or of another shape are shown as best as possible.
pub fn repo_summaries(json: &Value) -> Vec<RepoSummary> {
    let text = |value: &Value| -> String {
        match value {
            Value::String(s) => s.clone(),
            Value::Null => "-".to_owned(),
            Value::Object(map) => map
                .values()
                .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
                .collect::<Vec<_>>()
                .join("/"),
            other => other.to_string(),
        }
    };
    json["repos"]
        .as_array()
        .map(|repos| {
            repos
                .iter()
                .map(|repo| RepoSummary {
                    name: text(&repo["name"]),
                    sync: text(&repo["sync"]),
                    last_applied: repo["lastApplied"].as_str().map(str::to_owned),
                })
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn gitops_summaries_tolerate_shapes() {
        let json = json!({"repos": [
            {"name": "apps", "sync": "Synced", "lastApplied": "0123456789abcdef"},
            {"name": "other", "sync": {"status": "OutOfSync", "health": "Healthy"}},
            {"name": "third"}
        ]});
        let repos = repo_summaries(&json);
        assert_eq!(repos.len(), 3);
        assert_eq!(repos[0].sync, "Synced");
        assert_eq!(repos[0].last_applied.as_deref(), Some("0123456789abcdef"));
        assert_eq!(repos[1].sync, "Healthy/OutOfSync");
        assert_eq!(repos[2].sync, "-");
        assert_eq!(repos[2].last_applied, None);
        assert!(repo_summaries(&json!({})).is_empty());
    }
}

//! Finding and following the leading master.
//!
//! A registration task keeps a [`Session`] (the leader's address and the heartbeat interval)
//! on a watch channel. Loops that talk to the master wait for a session, and report any
//! failure (connection error, timeout, 503 or other non-success answer) with
//! [`LeaderClient::lost`]; the registration task then registers again: it posts
//! `/internal/agent/register` to each master in turn until one answers 200, following the
//! leader address a follower names in its 503 ([`NotLeader`]), with a short backoff between
//! rounds.

use orch_core::protocol::{NotLeader, Registered, Registration};
use std::collections::VecDeque;
use std::time::Duration;
use tokio::sync::watch;

/// Timeout of a single ordinary request to a master.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Timeout of establishing a connection to a master.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest pause between registration rounds.
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// How many leader hints one round follows before giving up on them.
const MAX_HINTS: usize = 3;

/// A request to the leader failed.
#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client")]
    Client(#[source] reqwest::Error),
    /// The TLS files cannot be used.
    #[error("cannot use the TLS files")]
    Tls(#[source] orch_pki::PkiError),
    /// The request did not complete (connection refused, timeout, ...).
    #[error("request to {master} failed")]
    Transport {
        /// The master asked.
        master: String,
        /// The cause.
        source: reqwest::Error,
    },
    /// The master answered with an unexpected status.
    #[error("{master} answered {status}")]
    Status {
        /// The master asked.
        master: String,
        /// The status code.
        status: reqwest::StatusCode,
    },
}

/// Registration with one leader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The leader's `host:port`.
    pub master: String,
    /// `https` when the agent has TLS, else `http`.
    pub scheme: &'static str,
    /// How often to send heartbeats.
    pub heartbeat_interval: Duration,
    /// Counts registrations, so a stale failure report cannot end a newer session.
    pub epoch: u64,
}

impl Session {
    /// `<scheme>://<leader><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", base_url(self.scheme, &self.master))
    }
}

fn base_url(scheme: &str, master: &str) -> String {
    if master.contains("://") {
        master.trim_end_matches('/').to_owned()
    } else {
        format!("{scheme}://{master}")
    }
}

/// The agent's view of the leader: a registration loop plus the current session.
#[derive(Debug)]
pub struct LeaderClient {
    masters: Vec<String>,
    http: reqwest::Client,
    scheme: &'static str,
    registration: Registration,
    session: watch::Sender<Option<Session>>,
}

impl LeaderClient {
    /// A client for `masters` that registers with `registration`; with `tls`, over HTTPS
    /// showing the agent's certificate, to masters that show a master certificate of the
    /// cluster CA only.
    pub fn new(
        masters: Vec<String>,
        registration: Registration,
        tls: Option<&orch_pki::tls::NodeTls>,
    ) -> Result<Self, LeaderError> {
        let mut http = orch_pki::tls::cluster_http()
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true);
        let scheme = match tls {
            Some(tls) => {
                http = http.tls_backend_preconfigured(
                    tls.client_config(orch_pki::Role::Master)
                        .map_err(LeaderError::Tls)?,
                );
                "https"
            }
            None => "http",
        };
        let http = http.build().map_err(LeaderError::Client)?;
        Ok(Self {
            masters,
            http,
            scheme,
            registration,
            session: watch::Sender::new(None),
        })
    }

    /// The shared HTTP client.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The current session, waiting for a registration if there is none.
    pub async fn session(&self) -> Session {
        let mut receiver = self.session.subscribe();
        loop {
            if let Some(session) = receiver.borrow_and_update().clone() {
                return session;
            }
            if receiver.changed().await.is_err() {
                // The sender lives in self, so this cannot happen while self exists.
                std::future::pending::<()>().await;
            }
        }
    }

    /// Completes once `session` is no longer the current one (lost, or replaced).
    pub async fn ended(&self, session: &Session) {
        let mut receiver = self.session.subscribe();
        let still =
            |current: &Option<Session>| current.as_ref().is_some_and(|c| c.epoch == session.epoch);
        if receiver.wait_for(|current| !still(current)).await.is_err() {
            // The sender lives in self, so this cannot happen while self exists.
            std::future::pending::<()>().await;
        }
    }

    /// The current session, if registered.
    pub fn current(&self) -> Option<Session> {
        self.session.borrow().clone()
    }

    /// Ends `session` (if it is still the current one) so the agent registers again.
    pub fn lost(&self, session: &Session, error: &LeaderError) {
        let ended = self.session.send_if_modified(|current| {
            if current.as_ref().is_some_and(|c| c.epoch == session.epoch) {
                *current = None;
                true
            } else {
                false
            }
        });
        if ended {
            tracing::warn!(
                master = %session.master,
                error = error as &dyn std::error::Error,
                "lost the leader; registering again"
            );
        }
    }

    /// Sends `request` (built for the session's leader) and returns the response if its
    /// status is a success; any failure ends the session.
    pub async fn send(
        &self,
        session: &Session,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, LeaderError> {
        let result = match request.send().await {
            Ok(response) if response.status().is_success() => return Ok(response),
            Ok(response) => Err(LeaderError::Status {
                master: session.master.clone(),
                status: response.status(),
            }),
            Err(source) => Err(LeaderError::Transport {
                master: session.master.clone(),
                source,
            }),
        };
        if let Err(error) = &result {
            self.lost(session, error);
        }
        result
    }

    /// Registers whenever there is no session; runs until dropped.
    pub async fn run(&self) {
        let mut receiver = self.session.subscribe();
        let mut epoch = 0;
        let mut hint: Option<String> = None;
        loop {
            let registered = receiver.borrow_and_update().is_some();
            if registered {
                if receiver.changed().await.is_err() {
                    return;
                }
                // Try the master we just lost first: it may only have hiccupped.
                hint = self.current().map(|s| s.master).or(hint);
                continue;
            }
            let mut backoff = Duration::from_millis(100);
            let (master, registered) = loop {
                if let Some(found) = self.register_round(hint.take()).await {
                    break found;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            };
            epoch += 1;
            tracing::info!(
                master = %master,
                agent.id = %self.registration.agent.id,
                heartbeat_interval_ms = registered.heartbeat_interval_ms,
                "registered"
            );
            hint = Some(master.clone());
            self.session.send_replace(Some(Session {
                master,
                scheme: self.scheme,
                heartbeat_interval: Duration::from_millis(registered.heartbeat_interval_ms.max(10)),
                epoch,
            }));
        }
    }

    /// One pass over `hint` and every master; the first that accepts the registration wins.
    async fn register_round(&self, hint: Option<String>) -> Option<(String, Registered)> {
        let mut queue: VecDeque<String> = self.masters.iter().cloned().collect();
        if let Some(hint) = hint {
            queue.retain(|m| *m != hint);
            queue.push_front(hint);
        }
        let mut hints = 0;
        while let Some(master) = queue.pop_front() {
            match self.register_with(&master).await {
                Ok(registered) => return Some((master, registered)),
                Err(Some(leader)) if hints < MAX_HINTS && leader != master => {
                    hints += 1;
                    queue.retain(|m| *m != leader);
                    queue.push_front(leader);
                }
                Err(_) => {}
            }
        }
        None
    }

    /// Registers with one master. `Err(Some(leader))` when it named another leader.
    async fn register_with(&self, master: &str) -> Result<Registered, Option<String>> {
        let response = self
            .http
            .post(format!(
                "{}/internal/agent/register",
                base_url(self.scheme, master)
            ))
            .timeout(REQUEST_TIMEOUT)
            .json(&self.registration)
            .send()
            .await;
        let response = match response {
            Ok(response) => response,
            Err(error) => {
                tracing::debug!(master, %error, "master unreachable");
                return Err(None);
            }
        };
        let status = response.status();
        if status == reqwest::StatusCode::SERVICE_UNAVAILABLE {
            let leader = response
                .json::<NotLeader>()
                .await
                .ok()
                .and_then(|n| n.leader);
            tracing::debug!(master, ?leader, "not the leader");
            return Err(leader);
        }
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            tracing::warn!(master, %status, body, "registration refused");
            return Err(None);
        }
        response.json::<Registered>().await.map_err(|error| {
            tracing::warn!(master, %error, "unreadable registration answer");
            None
        })
    }
}

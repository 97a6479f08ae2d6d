//! `/internal/agent/*`: the master side of the agent protocol (see `protocol`). Answered by
//! the leader only: a follower says 503 with the leader's address, so agents follow the
//! leader themselves instead of long-polling through a proxy.
//!
//! A master with TLS answers these routes only to agents showing an agent certificate of the
//! cluster CA, and each only as itself (as Kubernetes' node authorizer does): the
//! certificate's name must be the hostname the agent registers with, and the hostname of
//! the agent whose id a request names. Anyone else gets 403.

use crate::master::{AgentProtocolError, Master, WriteError};
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Extension;
use axum::{Json, Router};
use orch_core::model::AgentId;
use orch_core::protocol::{Generation, Heartbeat, NotLeader, Registration, StatusBatch};
use std::sync::Arc;
use std::time::Duration;

/// The longest long poll the master holds.
const MAX_WAIT: Duration = Duration::from_secs(30);

pub(super) fn routes() -> Router<Arc<Master>> {
    Router::new()
        .route("/internal/agent/register", post(register))
        .route("/internal/agent/heartbeat", post(heartbeat))
        .route("/internal/agent/{id}/desired", get(desired))
        .route("/internal/agent/{id}/status", post(status))
}

/// The name on the agent certificate a request came with (TLS masters only).
#[derive(Clone, Debug)]
struct CertifiedAgent(String);

/// The middleware: with TLS, only agents of the cluster CA may call.
pub(super) async fn agents_only(
    State(master): State<Arc<Master>>,
    mut request: Request,
    next: Next,
) -> Response {
    if master.server_tls().is_none() {
        return next.run(request).await;
    }
    let name = match request.extensions().get::<orch_pki::serve::Peer>() {
        Some(orch_pki::serve::Peer(Some((orch_pki::Role::Agent, name)))) => name.clone(),
        peer => {
            tracing::warn!(?peer, path = %request.uri().path(), "refusing an agent rpc from a client that is not an agent");
            return forbidden(
                "/internal/agent/* answers the agents of this cluster only: show an agent \
                 certificate of the cluster CA",
            );
        }
    };
    request.extensions_mut().insert(CertifiedAgent(name));
    next.run(request).await
}

/// A refusal when the certificate is not that of the agent `hostname` names.
fn not_as(cert: Option<&CertifiedAgent>, hostname: &str) -> Option<Response> {
    let CertifiedAgent(name) = cert?;
    (name != hostname).then(|| {
        forbidden(&format!(
            "the certificate of agent {name} cannot act as agent {hostname}"
        ))
    })
}

/// A refusal when the certificate is not that of the registered agent `id`.
fn not_agent(master: &Master, cert: Option<&CertifiedAgent>, id: &AgentId) -> Option<Response> {
    cert?;
    let state = master.state();
    match state.agents.get(id) {
        Some(agent) => not_as(cert, &agent.info.hostname),
        None => None,
    }
}

fn forbidden(message: &str) -> Response {
    (
        StatusCode::FORBIDDEN,
        Json(serde_json::json!({ "message": message })),
    )
        .into_response()
}

async fn register(
    State(master): State<Arc<Master>>,
    cert: Option<Extension<CertifiedAgent>>,
    body: Result<Json<Registration>, JsonRejection>,
) -> Response {
    let Json(registration) = match body {
        Ok(body) => body,
        Err(rejection) => return bad_request(&rejection.body_text()),
    };
    let cert = cert.map(|Extension(cert)| cert);
    if let Some(refusal) = not_as(cert.as_ref(), &registration.agent.hostname)
        .or_else(|| not_agent(&master, cert.as_ref(), &registration.agent.id))
    {
        return refusal;
    }
    answer(&master, master.register_agent(registration).await)
}

async fn heartbeat(
    State(master): State<Arc<Master>>,
    cert: Option<Extension<CertifiedAgent>>,
    body: Result<Json<Heartbeat>, JsonRejection>,
) -> Response {
    let Json(heartbeat) = match body {
        Ok(body) => body,
        Err(rejection) => return bad_request(&rejection.body_text()),
    };
    let cert = cert.map(|Extension(cert)| cert);
    if let Some(refusal) = not_agent(&master, cert.as_ref(), &heartbeat.agent_id) {
        return refusal;
    }
    match master.agent_heartbeat(heartbeat).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(error) => refusal(&master, &error),
    }
}

#[derive(Debug, serde::Deserialize)]
struct DesiredQuery {
    after: Option<String>,
    wait_ms: Option<u64>,
}

async fn desired(
    State(master): State<Arc<Master>>,
    cert: Option<Extension<CertifiedAgent>>,
    Path(id): Path<String>,
    Query(query): Query<DesiredQuery>,
) -> Response {
    let id = AgentId(id);
    if let Some(refusal) = not_agent(&master, cert.map(|Extension(c)| c).as_ref(), &id) {
        return refusal;
    }
    let after = match query.after.as_deref().map(str::parse::<Generation>) {
        None => Generation::default(),
        Some(Ok(generation)) => generation,
        Some(Err(reason)) => return bad_request(&format!("after: {reason}")),
    };
    let wait = Duration::from_millis(query.wait_ms.unwrap_or(0)).min(MAX_WAIT);
    answer(&master, master.desired_set(&id, after, wait).await)
}

async fn status(
    State(master): State<Arc<Master>>,
    cert: Option<Extension<CertifiedAgent>>,
    Path(id): Path<String>,
    body: Result<Json<StatusBatch>, JsonRejection>,
) -> Response {
    let cert = cert.map(|Extension(c)| c);
    if let Some(refusal) = not_agent(&master, cert.as_ref(), &AgentId(id.clone())) {
        return refusal;
    }
    let Json(batch) = match body {
        Ok(body) => body,
        Err(rejection) => return bad_request(&rejection.body_text()),
    };
    if batch.agent_id.0 != id {
        return bad_request("the agent id in the path and the body differ");
    }
    answer(&master, master.agent_status(batch).await)
}

fn answer<T: serde::Serialize>(master: &Master, result: Result<T, AgentProtocolError>) -> Response {
    match result {
        Ok(body) => Json(body).into_response(),
        Err(error) => refusal(master, &error),
    }
}

fn refusal(master: &Master, error: &AgentProtocolError) -> Response {
    let message = || Json(serde_json::json!({ "message": error.to_string() }));
    match error {
        AgentProtocolError::Write(WriteError::NotLeader { .. }) => {
            let leader = master.leader().map(|leader| leader.address);
            (StatusCode::SERVICE_UNAVAILABLE, Json(NotLeader { leader })).into_response()
        }
        AgentProtocolError::UnknownAgent(_) => (StatusCode::NOT_FOUND, message()).into_response(),
        AgentProtocolError::Protocol(_) => bad_request(&error.to_string()),
        AgentProtocolError::Write(_) | AgentProtocolError::Unexpected(_) => {
            (StatusCode::SERVICE_UNAVAILABLE, message()).into_response()
        }
    }
}

fn bad_request(message: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(serde_json::json!({ "message": message })),
    )
        .into_response()
}

//! `/v1/acl`: policies (apply, list, delete) and tokens (create, list, revoke), kept in the
//! Raft state. Only the management token reaches these routes (see `api::auth`). A token's
//! secret is made here, answered once at creation, and stored only as its SHA-256.

use crate::api::auth::secret_sha256;
use crate::api::body::JsonObject;
use crate::api::ApiError;
use crate::master::Master;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Json, Router};
use orch_core::model::{policy_from_json, valid_name, AclToken, Timestamp, Violation};
use orch_core::state::{Applied, Command, Rejection};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::SystemTime;

pub(super) fn routes() -> Router<Arc<Master>> {
    Router::new()
        .route("/v1/acl/policies", get(policies).post(apply_policy))
        .route("/v1/acl/policies/{name}", delete(delete_policy))
        .route("/v1/acl/tokens", get(tokens).post(create_token))
        .route("/v1/acl/tokens/{id}", delete(revoke_token))
}

async fn policies(State(master): State<Arc<Master>>) -> Result<Json<Value>, ApiError> {
    let state = master.read_state().await?;
    let policies: Vec<_> = state.acl_policies.values().map(|p| p.as_ref()).collect();
    Ok(Json(json!({ "policies": policies })))
}

/// Creates (201) or replaces (200) a policy.
async fn apply_policy(
    State(master): State<Arc<Master>>,
    JsonObject(body): JsonObject,
) -> Result<Response, ApiError> {
    let policy = policy_from_json(&body).map_err(|violations| ApiError::Invalid { violations })?;
    let answer = serde_json::to_value(&policy).unwrap_or_default();
    match master.write(Command::SetAclPolicy { policy }).await? {
        Applied::AclChanged { created } => {
            let status = if created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            Ok((status, Json(answer)).into_response())
        }
        other => Err(refused(other)),
    }
}

async fn delete_policy(
    State(master): State<Arc<Master>>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    match master
        .write(Command::RemoveAclPolicy { name: name.clone() })
        .await?
    {
        Applied::AclChanged { .. } => Ok(Json(json!({ "removed": name }))),
        other => Err(refused(other)),
    }
}

/// Every token, without its secret.
async fn tokens(State(master): State<Arc<Master>>) -> Result<Json<Value>, ApiError> {
    let state = master.read_state().await?;
    let tokens: Vec<Value> = state.acl_tokens.values().map(|t| described(t)).collect();
    Ok(Json(json!({ "tokens": tokens })))
}

/// Makes a token: 201 with `{"id", "name", "policies", "secret"}`, the only time the secret
/// is shown.
async fn create_token(
    State(master): State<Arc<Master>>,
    JsonObject(body): JsonObject,
) -> Result<Response, ApiError> {
    let mut violations = Vec::new();
    let name = match body.get("name").and_then(Value::as_str) {
        Some(name) if valid_name(name) => name.to_owned(),
        Some(_) => {
            violations.push(Violation::new(
                "/name",
                "1 to 64 characters of a-z, 0-9, - and _",
            ));
            String::new()
        }
        None => {
            violations.push(Violation::new("/name", "error.path.missing"));
            String::new()
        }
    };
    let policies: Vec<String> = match body.get("policies") {
        Some(Value::Array(items)) if !items.is_empty() => items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| match item.as_str() {
                Some(name) => Some(name.to_owned()),
                None => {
                    violations.push(Violation::new(
                        format!("/policies({i})"),
                        "error.expected.jsstring",
                    ));
                    None
                }
            })
            .collect(),
        _ => {
            violations.push(Violation::new(
                "/policies",
                "a non-empty array of policy names",
            ));
            Vec::new()
        }
    };
    if !violations.is_empty() {
        return Err(ApiError::Invalid { violations });
    }
    let secret = orch_pki::new_token();
    let token = AclToken {
        id: uuid::Uuid::new_v4().to_string(),
        name,
        policies,
        secret_sha256: secret_sha256(&secret),
        created: Timestamp::from_system_time(SystemTime::now()).to_rfc3339(),
    };
    let mut answer = described(&token);
    match master.write(Command::CreateAclToken { token }).await? {
        Applied::AclChanged { .. } => {
            answer["secret"] = Value::String(secret);
            Ok((StatusCode::CREATED, Json(answer)).into_response())
        }
        other => Err(refused(other)),
    }
}

async fn revoke_token(
    State(master): State<Arc<Master>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    match master
        .write(Command::RevokeAclToken { id: id.clone() })
        .await?
    {
        Applied::AclChanged { .. } => Ok(Json(json!({ "revoked": id }))),
        other => Err(refused(other)),
    }
}

/// A token as listed: everything but its secret's hash.
fn described(token: &AclToken) -> Value {
    json!({
        "id": token.id,
        "name": token.name,
        "policies": token.policies,
        "created": token.created,
    })
}

/// The API error of a refused ACL write.
fn refused(applied: Applied) -> ApiError {
    match applied {
        Applied::Rejected(Rejection::AclPolicyUnknown(name)) => {
            ApiError::AclNotFound(format!("ACL policy '{name}' does not exist"))
        }
        Applied::Rejected(Rejection::AclTokenUnknown(id)) => {
            ApiError::AclNotFound(format!("ACL token '{id}' does not exist"))
        }
        Applied::Rejected(Rejection::AclPoliciesUnknown(names)) => ApiError::Invalid {
            violations: names
                .iter()
                .map(|name| Violation::new("/policies", format!("no policy is named '{name}'")))
                .collect(),
        },
        other => crate::api::marathon::unexpected(other),
    }
}

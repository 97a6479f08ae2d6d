//! `/v1/gitops`: watched repos (add, change, remove), their status, sync now, rollback,
//! resume, and the webhook endpoint for GitHub, GitLab and generic CI calls.

use crate::api::ApiError;
use crate::gitops::status::{repo_status, RepoStatus};
use crate::gitops::webhook::{self, Hook, WebhookError};
use crate::gitops::Gitops;
use crate::master::{Caller, Master};
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use orch_core::model::{GroupId, RepoConfig};
use orch_core::state::{Applied, Command, Rejection};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;

pub(super) fn routes() -> Router<Arc<Master>> {
    Router::new()
        .route("/v1/gitops", get(list).post(add))
        .route("/v1/gitops/sync", post(sync))
        .route("/v1/gitops/rollback", post(rollback))
        .route("/v1/gitops/resume", post(resume))
        .route("/v1/gitops/webhook", post(hook))
        .route("/v1/gitops/{name}", get(show).delete(remove))
}

/// The body of sync, rollback and resume (all optional).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Target {
    /// The repo [default: the only one].
    name: Option<String>,
    /// Rollback: the commit to deploy.
    to: Option<String>,
}

fn target(query: &HashMap<String, String>, body: &Bytes) -> Result<Target, ApiError> {
    let mut target: Target = if body.iter().all(u8::is_ascii_whitespace) {
        Target::default()
    } else {
        serde_json::from_slice(body).map_err(|error| ApiError::InvalidJson {
            reason: error.to_string(),
        })?
    };
    if let Some(name) = query.get("name") {
        target.name = Some(name.clone());
    }
    if let Some(to) = query.get("to") {
        target.to = Some(to.clone());
    }
    Ok(target)
}

fn status_of(gitops: &Gitops, name: &str) -> Result<RepoStatus, ApiError> {
    let state = gitops.master().state();
    let record = state
        .repos
        .get(name)
        .ok_or_else(|| crate::gitops::GitopsError::UnknownRepo(name.to_owned()))?;
    Ok(repo_status(name, record, &gitops.live(name)))
}

async fn list(Extension(gitops): Extension<Arc<Gitops>>) -> Json<Value> {
    let state = gitops.master().state();
    let repos: Vec<RepoStatus> = state
        .repos
        .iter()
        .map(|(name, record)| repo_status(name, record, &gitops.live(name)))
        .collect();
    Json(json!({ "repos": repos }))
}

async fn show(
    Extension(gitops): Extension<Arc<Gitops>>,
    Path(name): Path<String>,
) -> Result<Json<RepoStatus>, ApiError> {
    Ok(Json(status_of(&gitops, &name)?))
}

/// Watches a repo, or changes how a repo of the same name is watched. The repo acts with the
/// ACL token whose secret the body's `tokenSecret` gives, else with the caller's own token
/// (none for the management token): it can never do more than that token.
async fn add(
    State(master): State<Arc<Master>>,
    Extension(gitops): Extension<Arc<Gitops>>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let mut config: RepoConfig =
        serde_json::from_slice(&body).map_err(|error| ApiError::InvalidJson {
            reason: error.to_string(),
        })?;
    if config.acl_token.is_some() {
        return Err(ApiError::invalid(
            "/aclToken",
            "set by the master from tokenSecret, never by clients",
        ));
    }
    let token_secret = config.token_secret.take();
    config.name = config.effective_name();
    validate(&config)?;
    config.acl_token = match token_secret {
        Some(secret) => Some(repo_token(&master, &secret)?),
        None => Caller::grants().map(|grants| grants.id.clone()),
    };
    let existed = master.state().repos.contains_key(&config.name);
    let name = config.name.clone();
    match master.write(Command::SetRepo { config }).await? {
        Applied::RepoChanged { .. } => {}
        other => return Err(crate::api::marathon::unexpected(other)),
    }
    let status = if existed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(status_of(&gitops, &name)?)).into_response())
}

/// The id of the ACL token whose secret is `secret`.
fn repo_token(master: &Master, secret: &str) -> Result<String, ApiError> {
    master
        .state()
        .acl_token_by_secret(&crate::api::auth::secret_sha256(secret))
        .map(|token| token.id.clone())
        .ok_or_else(|| ApiError::invalid("/tokenSecret", "no ACL token has this secret"))
}

/// 422 naming the field of a config that cannot work.
fn validate(config: &RepoConfig) -> Result<(), ApiError> {
    if config.repo.trim().is_empty() {
        return Err(ApiError::invalid("/repo", "must not be empty"));
    }
    let name_ok = config
        .name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if !name_ok
        || matches!(
            config.name.as_str(),
            "sync" | "rollback" | "resume" | "webhook"
        )
    {
        return Err(ApiError::invalid(
            "/name",
            "letters, digits, '-', '_' and '.' only, and not sync, rollback, resume or webhook",
        ));
    }
    for (field, value) in [
        ("/interval", &config.interval),
        ("/rollbackDeadline", &config.rollback_deadline),
    ] {
        if humantime::parse_duration(value).is_err() {
            return Err(ApiError::invalid(
                field,
                format!("'{value}' is not a duration such as 30s or 10m"),
            ));
        }
    }
    if GroupId::parse(&config.group).is_err() {
        return Err(ApiError::invalid("/group", "not a valid group id"));
    }
    if config.path.split('/').any(|segment| segment == "..") {
        return Err(ApiError::invalid("/path", "must stay inside the repo"));
    }
    Ok(())
}

async fn remove(
    State(master): State<Arc<Master>>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    match master
        .write(Command::RemoveRepo { name: name.clone() })
        .await?
    {
        Applied::RepoChanged { .. } => Ok(Json(json!({ "removed": name }))),
        Applied::Rejected(Rejection::RepoUnknown(name)) => {
            Err(crate::gitops::GitopsError::UnknownRepo(name).into())
        }
        other => Err(crate::api::marathon::unexpected(other)),
    }
}

/// Fetches now and syncs the branch tip; answers the repo's status afterwards.
async fn sync(
    gitops: Extension<Arc<Gitops>>,
    query: Query<HashMap<String, String>>,
    body: Bytes,
) -> Result<Json<RepoStatus>, ApiError> {
    act(gitops, query, body, Action::Sync).await
}

async fn rollback(
    gitops: Extension<Arc<Gitops>>,
    query: Query<HashMap<String, String>>,
    body: Bytes,
) -> Result<Json<RepoStatus>, ApiError> {
    act(gitops, query, body, Action::Rollback).await
}

async fn resume(
    gitops: Extension<Arc<Gitops>>,
    query: Query<HashMap<String, String>>,
    body: Bytes,
) -> Result<Json<RepoStatus>, ApiError> {
    act(gitops, query, body, Action::Resume).await
}

/// What a `POST /v1/gitops/{action}` asks of a repo's reconciler.
#[derive(Clone, Copy, Debug)]
enum Action {
    Sync,
    Rollback,
    Resume,
}

/// Runs `action` on the repo the request names (or the only one); answers its status.
async fn act(
    Extension(gitops): Extension<Arc<Gitops>>,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
    action: Action,
) -> Result<Json<RepoStatus>, ApiError> {
    let target = target(&query, &body)?;
    let name = gitops.resolve(target.name.as_deref())?;
    match action {
        Action::Sync => gitops.sync(&name).await?,
        Action::Rollback => gitops.rollback(&name, target.to).await?,
        Action::Resume => gitops.resume(&name).await?,
    }
    Ok(Json(status_of(&gitops, &name)?))
}

/// A push from GitHub, GitLab or CI: every repo whose secret authenticates the call and
/// whose branch was pushed is fetched now. 401 when no repo's secret matches.
async fn hook(
    Extension(gitops): Extension<Arc<Gitops>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let state = gitops.master().state();
    let mut authenticated = false;
    let mut triggered = Vec::new();
    let mut ignored = Vec::new();
    for (name, record) in state.repos.iter() {
        let Some(secret) = gitops.secret_of(&record.config) else {
            continue;
        };
        match webhook::authenticate(&headers, &body, &secret) {
            Err(WebhookError::Unauthorized) => continue,
            Err(WebhookError::Malformed(reason)) => {
                return Err(ApiError::BadRequest(format!("malformed webhook: {reason}")))
            }
            Err(WebhookError::Ignored(reason)) => {
                authenticated = true;
                ignored.push(json!({"repo": name, "reason": reason}));
            }
            Ok(Hook::Ping) => return Ok(Json(json!({"message": "pong"})).into_response()),
            Ok(Hook::Push { branch, .. }) => {
                authenticated = true;
                let watched = gitops
                    .live(name)
                    .branch
                    .or_else(|| record.config.branch.clone());
                let matches = match (&branch, &watched) {
                    (None, _) => true,
                    (Some(pushed), Some(watched)) => pushed == watched,
                    // Not fetched yet: the first fetch will see the branch anyway.
                    (Some(_), None) => true,
                };
                if matches && gitops.wake(name) {
                    triggered.push(name.clone());
                } else {
                    let pushed = branch.unwrap_or_default();
                    ignored.push(json!({"repo": name, "reason": format!("push to {pushed}, not the watched branch")}));
                }
            }
        }
    }
    if !authenticated {
        return Err(ApiError::Unauthorized);
    }
    let status = if triggered.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    Ok((
        status,
        Json(json!({"triggered": triggered, "ignored": ignored})),
    )
        .into_response())
}

//! API errors and their HTTP form: Marathon's status codes and `{"message", "details"}` bodies.

use crate::gitops::GitopsError;
use crate::master::{MembershipError, ReadError, WriteError};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use orch_core::model::AppError;
pub use orch_core::model::Violation;

/// Everything a handler can answer other than success.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The body is not JSON, or not the JSON shape expected.
    #[error("Invalid JSON")]
    InvalidJson {
        /// What the parser said.
        reason: String,
    },
    /// The object breaks validation rules.
    #[error("Object is not valid")]
    Invalid {
        /// Each failing field.
        violations: Vec<Violation>,
    },
    /// The body exceeds the size limit.
    #[error("Request body too large (at most {limit} bytes)")]
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// No app has this id.
    #[error("App '{0}' does not exist")]
    AppNotFound(String),
    /// The app exists but not in this version.
    #[error("App '{id}' does not exist in version {version}")]
    AppVersionNotFound {
        /// The app.
        id: String,
        /// The version asked for.
        version: String,
    },
    /// Running deployments hold the app.
    #[error("App is locked by one or more deployments. Override with the option '?force=true'. View details at '/v2/deployments/<DEPLOYMENT_ID>'.")]
    AppLocked(Vec<orch_core::model::DeploymentId>),
    /// No deployment has this id.
    #[error("DeploymentPlan {0} does not exist")]
    DeploymentNotFound(String),
    /// No task has this id.
    #[error("Task '{0}' does not exist")]
    TaskNotFound(String),
    /// Nothing waits in the launch queue for this app.
    #[error("Application {0} not found in tasks queue.")]
    NotQueued(String),
    /// An app with this id exists.
    #[error("An app with id [{0}] already exists.")]
    AppExists(String),
    /// A request Marathon answers with 400 (e.g. an unparsable task id).
    #[error("{0}")]
    BadRequest(String),
    /// No route matches.
    #[error("URI not found")]
    UnknownRoute,
    /// No leader could be found in time.
    #[error("Could not determine the current leader")]
    NoLeader,
    /// No leader is known (`GET /v2/leader`).
    #[error("There is no leader")]
    NoLeaderKnown,
    /// This master is not the leader (for leader-only calls answered locally).
    #[error("This master is not the leader")]
    NotLeader,
    /// A forwarded request came back to us.
    #[error("Detected proxying loop.")]
    ProxyLoop,
    /// The leader this master knows of does not accept connections (it is probably down and
    /// an election is under way).
    #[error("Could not reach the current leader")]
    LeaderUnreachable(#[source] reqwest::Error),
    /// Forwarding to the leader failed.
    #[error("Failed to proxy the request to the leader")]
    ProxyFailed(#[source] reqwest::Error),
    /// The write did not commit.
    #[error(transparent)]
    Write(#[from] WriteError),
    /// A bug: something that should not happen did.
    #[error("{0}")]
    Internal(String),
    /// No group has this id.
    #[error("Group '{0}' does not exist")]
    GroupNotFound(String),
    /// The group exists but not in this version.
    #[error("Group '{id}' does not exist in version {version}")]
    GroupVersionNotFound {
        /// The group.
        id: String,
        /// The version asked for.
        version: String,
    },
    /// A group with this id exists (a create).
    #[error("Group {0} is already created. Use PUT to change this group.")]
    GroupExists(String),
    /// An app and a group would have the same id.
    #[error("An app or group with id [{0}] already exists.")]
    IdConflict(String),
    /// A consistent read could not be served.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// A membership change failed.
    #[error(transparent)]
    Membership(#[from] MembershipError),
    /// A gitops request failed.
    #[error(transparent)]
    Gitops(#[from] GitopsError),
    /// A webhook call without valid credentials.
    #[error("invalid webhook signature or token")]
    Unauthorized,
    /// The caller's token does not allow this (403).
    #[error("{0}")]
    Forbidden(String),
    /// No ACL policy or token has this name or id.
    #[error("{0}")]
    AclNotFound(String),
}

impl ApiError {
    /// A rejected restricted write: the token, the id it would change and what it lacks.
    pub fn forbidden(token: &str, path: &str, lacks: &str) -> Self {
        Self::Forbidden(format!(
            "token '{token}' may not change {path}: it lacks {lacks}"
        ))
    }
}

impl From<AppError> for ApiError {
    fn from(error: AppError) -> Self {
        match error {
            AppError::Invalid { violations } => Self::Invalid { violations },
            AppError::PortsExhausted(exhausted) => Self::invalid("/", exhausted.to_string()),
        }
    }
}

impl ApiError {
    /// One violation at `path`.
    pub fn invalid(path: &str, error: impl Into<String>) -> Self {
        Self::Invalid {
            violations: vec![Violation::new(path, error)],
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            Self::InvalidJson { .. } | Self::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::AppNotFound(_)
            | Self::AppVersionNotFound { .. }
            | Self::DeploymentNotFound(_)
            | Self::TaskNotFound(_)
            | Self::NotQueued(_)
            | Self::UnknownRoute
            | Self::NotLeader
            | Self::NoLeaderKnown
            | Self::GroupNotFound(_)
            | Self::AclNotFound(_)
            | Self::GroupVersionNotFound { .. } => StatusCode::NOT_FOUND,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::AppExists(_)
            | Self::AppLocked(_)
            | Self::GroupExists(_)
            | Self::IdConflict(_) => StatusCode::CONFLICT,
            Self::ProxyLoop | Self::ProxyFailed(_) => StatusCode::BAD_GATEWAY,
            Self::NoLeader | Self::LeaderUnreachable(_) | Self::Write(_) | Self::Read(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Gitops(error) => match error {
                GitopsError::UnknownRepo(_) => StatusCode::NOT_FOUND,
                GitopsError::Ambiguous(_) => StatusCode::BAD_REQUEST,
                GitopsError::NotLeader => StatusCode::SERVICE_UNAVAILABLE,
                GitopsError::Timeout => StatusCode::GATEWAY_TIMEOUT,
                GitopsError::Failed(_) => StatusCode::CONFLICT,
            },
            Self::Membership(error) => match error {
                MembershipError::NotLeader { .. } | MembershipError::Raft(_) => {
                    StatusCode::SERVICE_UNAVAILABLE
                }
                MembershipError::Unreachable { .. } | MembershipError::CatchUpTimeout { .. } => {
                    StatusCode::BAD_GATEWAY
                }
                MembershipError::IdTaken { .. } | MembershipError::LastMaster => {
                    StatusCode::CONFLICT
                }
                MembershipError::Unknown { .. } => StatusCode::NOT_FOUND,
            },
        }
    }

    fn body(&self) -> serde_json::Value {
        match self {
            Self::InvalidJson { reason } => {
                json!({"message": self.to_string(), "details": [{"path": "/", "errors": [reason]}]})
            }
            Self::Invalid { violations } => {
                json!({"message": self.to_string(), "details": violations})
            }
            Self::AppLocked(deployments) => {
                let ids: Vec<_> = deployments.iter().map(|id| json!({"id": id})).collect();
                json!({"message": self.to_string(), "deployments": ids})
            }
            _ => json!({"message": orch_core::errors::chain(self)}),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::warn!(error = &self as &dyn std::error::Error, %status, "request failed");
        }
        let mut response = (status, Json(self.body())).into_response();
        if matches!(self, Self::TooLarge { .. }) {
            // The rest of the body is not read, so the connection cannot carry another request.
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

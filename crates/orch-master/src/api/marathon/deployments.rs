//! `/v2/deployments`: running deployments; `DELETE` rolls one back (a new deployment) or,
//! with `force=true`, just stops it.

use super::{deployment_result, new_deployment_id, now, query_flag, unexpected};
use crate::api::ApiError;
use crate::master::Master;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Json, Router};
use orch_core::model::{AppId, DeploymentId};
use orch_core::state::{Applied, Command};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;

pub(super) fn routes() -> Router<Arc<Master>> {
    Router::new()
        .route("/v2/deployments", get(list))
        .route("/v2/deployments/{id}", delete(cancel))
}

async fn list(State(master): State<Arc<Master>>) -> Result<Json<Value>, ApiError> {
    let state = master.read_state().await?;
    let mut deployments: Vec<_> = state.deployments.values().collect();
    deployments.sort_by_key(|deployment| deployment.version);
    let json = deployments
        .iter()
        .map(|deployment| {
            let mut json = deployment.to_json();
            let actions = json.get_mut("currentActions").and_then(Value::as_array_mut);
            for action in actions.into_iter().flatten() {
                let results = AppId::parse(action["app"].as_str().unwrap_or_default())
                    .map(|app| master.readiness_of(&app))
                    .unwrap_or_default();
                action["readinessCheckResults"] = serde_json::to_value(results).unwrap_or_default();
            }
            json
        })
        .collect();
    Ok(Json(Value::Array(json)))
}

async fn cancel(
    State(master): State<Arc<Master>>,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let force = query_flag(&query, "force", false);
    let revert = (!force).then(|| (new_deployment_id(), now()));
    let command = Command::CancelDeployment {
        id: DeploymentId(id),
        revert: revert.clone(),
    };
    match master.write(command).await? {
        Applied::DeploymentCanceled { .. } => match revert {
            Some((deployment_id, version)) => {
                Ok(deployment_result(StatusCode::OK, &deployment_id, version))
            }
            None => Ok(StatusCode::ACCEPTED.into_response()),
        },
        other => Err(unexpected(other)),
    }
}

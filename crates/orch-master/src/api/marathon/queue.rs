//! `/v2/queue`: apps with instances waiting to launch (in backoff, or with no agent that
//! fits, and why), and resetting an app's launch delay.

use super::app_info::{app_info, Embed};
use crate::api::ApiError;
use crate::master::Master;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Json, Router};
use orch_core::model::AppId;
use serde_json::{json, Value};
use std::sync::Arc;

pub(super) fn routes() -> Router<Arc<Master>> {
    Router::new()
        .route("/v2/queue", get(list))
        .route("/v2/queue/{*path}", delete(reset_delay))
}

async fn list(State(master): State<Arc<Master>>) -> Result<Json<Value>, ApiError> {
    let state = master.read_state().await?;
    let queue = master.launch_queue();
    let items: Vec<Value> = queue
        .iter()
        .filter_map(|(id, entry)| {
            let app = state.apps.get(id)?;
            let reasons: Vec<Value> = entry
                .reasons
                .iter()
                .map(|(reason, declined)| {
                    json!({"reason": reason, "declined": declined, "processed": entry.agents_considered})
                })
                .collect();
            Some(json!({
                "app": app_info(app, &state, Embed::default()),
                "count": entry.count,
                "delay": {
                    "timeLeftSeconds": entry.delay_left_ms.div_ceil(1000),
                    "overdue": entry.delay_left_ms == 0,
                },
                "since": entry.since.to_rfc3339(),
                "processedOffersSummary": {
                    "processedOffersCount": entry.agents_considered,
                    "unusedOffersCount": entry.reasons.values().sum::<u32>(),
                    "rejectSummaryLastOffers": reasons,
                    "rejectSummaryLaunchAttempt": reasons,
                },
            }))
        })
        .collect();
    Ok(Json(json!({ "queue": items })))
}

/// `DELETE /v2/queue/{appId}/delay`.
async fn reset_delay(
    State(master): State<Arc<Master>>,
    Path(path): Path<String>,
) -> Result<Response, ApiError> {
    let Some(id) = path.strip_suffix("/delay") else {
        return Err(ApiError::UnknownRoute);
    };
    let app = AppId::parse(id).map_err(|_| ApiError::NotQueued(format!("/{id}")))?;
    if master.reset_launch_delay(&app) {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(ApiError::NotQueued(app.to_string()))
    }
}

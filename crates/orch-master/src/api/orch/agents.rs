//! `/v1/agents`: the agents with their resources, usage, attributes, reachability and task
//! counts (`orch node list`).

use crate::api::mesos::{resources_json, usage};
use crate::api::ApiError;
use crate::master::Master;
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use orch_core::model::Reachability;
use serde_json::{json, Value};
use std::sync::Arc;

pub(super) fn routes() -> Router<Arc<Master>> {
    Router::new().route("/v1/agents", get(list))
}

async fn list(State(master): State<Arc<Master>>) -> Result<Json<Value>, ApiError> {
    let state = master.read_state().await?;
    let usage = usage(&state);
    let agents: Vec<Value> = state
        .agents
        .values()
        .map(|agent| {
            let info = &agent.info;
            let usage = usage.get(&info.id).cloned().unwrap_or_default();
            let unreachable_since = match agent.reachability {
                Reachability::Reachable => None,
                Reachability::Unreachable { since } => Some(since.to_rfc3339()),
            };
            json!({
                "id": info.id,
                "hostname": info.hostname,
                "address": info.address,
                "role": info.role,
                "attributes": info.attributes,
                "containerizers": info.containerizers,
                "resources": resources_json(&info.resources),
                "used": resources_json(&usage.used),
                "tasks": usage.tasks,
                "reachable": agent.is_reachable(),
                "unreachableSince": unreachable_since,
                "registeredAt": agent.registered_at.to_rfc3339(),
                "statusSeq": agent.last_update_seq,
            })
        })
        .collect();
    Ok(Json(json!({ "agents": agents })))
}

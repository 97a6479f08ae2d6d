//! `/v1/cluster`: the master set, and changes to it.

use crate::api::ApiError;
use crate::master::{ClusterStatus, Master};
use axum::extract::{Path, State};
use axum::routing::{delete, get};
use axum::{Json, Router};
use orch_core::model::MasterId;
use std::sync::Arc;

pub(super) fn routes() -> Router<Arc<Master>> {
    Router::new()
        .route("/v1/cluster", get(status))
        .route("/v1/cluster/masters", axum::routing::post(add))
        .route("/v1/cluster/masters/{address}", delete(remove))
}

/// The body of `POST /v1/cluster/masters`.
#[derive(Debug, serde::Deserialize, serde::Serialize)]
pub struct AddMaster {
    /// `host:port` of the master to add.
    pub address: String,
}

/// The answer to a membership change.
#[derive(Debug, serde::Serialize)]
struct MembershipChanged {
    id: MasterId,
    address: String,
}

async fn status(State(master): State<Arc<Master>>) -> Json<ClusterStatus> {
    Json(master.cluster_status())
}

async fn add(
    State(master): State<Arc<Master>>,
    Json(body): Json<AddMaster>,
) -> Result<Json<impl serde::Serialize>, ApiError> {
    let id = master.add_master(&body.address).await?;
    Ok(Json(MembershipChanged {
        id,
        address: body.address,
    }))
}

async fn remove(
    State(master): State<Arc<Master>>,
    Path(address): Path<String>,
) -> Result<Json<impl serde::Serialize>, ApiError> {
    let id = master.remove_master(&address).await?;
    Ok(Json(MembershipChanged { id, address }))
}

//! orch's own API under `/v1`.

mod acl;
mod agents;
mod cluster;
mod gitops;
mod snapshots;
mod task_files;

use crate::master::Master;
use axum::Router;
use std::sync::Arc;

pub(super) fn routes() -> Router<Arc<Master>> {
    acl::routes()
        .merge(cluster::routes())
        .merge(agents::routes())
        .merge(gitops::routes())
        .merge(snapshots::routes())
        .merge(task_files::routes())
}

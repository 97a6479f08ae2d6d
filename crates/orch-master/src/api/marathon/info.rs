//! `/v2/info` and `/v2/leader`.
//!
//! `/v2/info` emits exactly the keys Marathon emits (marathon-python rejects unknown ones).
//! Values describe orch's behaviour in Marathon's terms: where orch has no such setting
//! (ZooKeeper, Mesos offers) the value is Marathon's default.

use crate::api::ApiError;
use crate::master::Master;
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use std::sync::Arc;

/// The Marathon API version orch speaks.
const MARATHON_API_VERSION: &str = "1.10.0";

pub(super) fn routes() -> Router<Arc<Master>> {
    Router::new()
        .route("/v2/info", get(info))
        .route("/v2/leader", get(leader).delete(abdicate))
}

async fn info(State(master): State<Arc<Master>>) -> Json<Value> {
    let leader = master.leader().map(|leader| leader.address);
    let status = master.cluster_status();
    let (hostname, port) = master
        .address()
        .rsplit_once(':')
        .unwrap_or((master.address(), "8080"));
    let http_port: u16 = port.parse().unwrap_or(8080);
    let masters = status
        .members
        .iter()
        .map(|m| m.address.as_str())
        .collect::<Vec<_>>()
        .join(",");
    Json(json!({
        "name": "marathon",
        "version": MARATHON_API_VERSION,
        "buildref": concat!("orch-", env!("CARGO_PKG_VERSION")),
        "elected": master.is_leader(),
        "leader": leader,
        "frameworkId": "orch",
        "marathon_config": marathon_config(hostname, &masters, status.members.len() > 1),
        "zookeeper_config": {
            "zk": format!("raft://{masters}/orch"),
            "zk_compression": false,
            "zk_compression_threshold": 65536,
            "zk_connection_timeout": 10000,
            "zk_max_node_size": 1024000,
            "zk_max_versions": 50,
            "zk_session_timeout": 10000,
            "zk_timeout": 10000,
        },
        "http_config": { "http_port": http_port, "https_port": 8443 },
    }))
}

/// Marathon's `marathon_config` keys, exactly; see the module doc for the values.
fn marathon_config(hostname: &str, masters: &str, ha: bool) -> Value {
    json!({
        "access_control_allow_origin": null,
        "checkpoint": true,
        "decline_offer_duration": 120000,
        "default_network_name": null,
        "env_vars_prefix": null,
        "executor": "//cmd",
        "failover_timeout": 604800,
        "features": [],
        "framework_name": "marathon",
        "ha": ha,
        "hostname": hostname,
        "launch_token": 100,
        "launch_token_refresh_interval": 30000,
        "leader_proxy_connection_timeout_ms": 5000,
        "leader_proxy_read_timeout_ms": 10000,
        "local_port_max": 20000,
        "local_port_min": 10000,
        "master": format!("orch://{masters}"),
        "max_instances_per_offer": 5,
        "mesos_bridge_name": "mesos-bridge",
        "mesos_heartbeat_failure_threshold": 5,
        "mesos_heartbeat_interval": 15000,
        "mesos_leader_ui_url": null,
        "mesos_role": null,
        "mesos_user": "root",
        "new_group_enforce_role": "off",
        "min_revive_offers_interval": 5000,
        "offer_matching_timeout": 3000,
        "on_elected_prepare_timeout": 180000,
        "reconciliation_initial_delay": 15000,
        "reconciliation_interval": 600000,
        "scale_apps_initial_delay": 15000,
        "scale_apps_interval": 300000,
        "store_cache": true,
        "task_launch_confirm_timeout": 300000,
        "task_launch_timeout": 300000,
        "task_lost_expunge_initial_delay": 300000,
        "task_lost_expunge_interval": 30000,
        "task_reservation_timeout": 20000,
        "webui_url": null,
        "maintenance_mode": false,
    })
}

async fn leader(State(master): State<Arc<Master>>) -> Result<Json<Value>, ApiError> {
    match master.leader() {
        Some(leader) => Ok(Json(json!({ "leader": leader.address }))),
        None => Err(ApiError::NoLeaderKnown),
    }
}

/// Reached only on the leader (the proxy forwards it there).
async fn abdicate(State(master): State<Arc<Master>>) -> Result<Json<Value>, ApiError> {
    master.step_down().map_err(|_| ApiError::NotLeader)?;
    Ok(Json(json!({ "message": "Leadership abdicated" })))
}

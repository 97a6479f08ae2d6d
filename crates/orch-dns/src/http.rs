//! Mesos-DNS's HTTP API over the newest [`Zone`], with its response shapes, including the
//! single empty object it returns (with 200) for an unknown name.
//!
//! | Endpoint | Response |
//! | --- | --- |
//! | `GET /v1/version` | `{"Service":"Mesos-DNS","Version":..,"URL":..}` |
//! | `GET /v1/config` | [`DnsConfig::mesos_dns_json`] |
//! | `GET /v1/hosts/{host}` | `[{"host","ip"}]`: every A, then every AAAA |
//! | `GET /v1/hosts/{host}/ports` | 501 `To be implemented...` |
//! | `GET /v1/services/{service}` | `[{"service","host","ip","port"}]`: per SRV, the first A and the first AAAA of its target |
//! | `GET /v1/enumerate` | `{"frameworks":[..]}` from [`Zone::frameworks`] |
//!
//! Names are lowercased, `.*` is stripped and a trailing dot added; only names in the zone
//! are answered (no forwarding).
//!
//! May depend on: axum, tokio (watch), serde, [`super::config`], [`super::names`],
//! [`super::zone`].

use super::config::DnsConfig;
use super::names::normalize_query;
use super::zone::Zone;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use std::sync::Arc;
use tokio::sync::watch;

/// The repository `/v1/version` names, as Mesos-DNS does.
const MESOS_DNS_URL: &str = "https://github.com/mesosphere/mesos-dns";

/// What every handler reads.
#[derive(Clone, Debug)]
struct ApiState {
    /// The newest zone.
    zones: watch::Receiver<Arc<Zone>>,
    /// The server's configuration.
    config: Arc<DnsConfig>,
}

impl ApiState {
    fn zone(&self) -> Arc<Zone> {
        Arc::clone(&self.zones.borrow())
    }
}

/// The HTTP API (`/v1/...`) of a DNS server.
pub fn router(zones: watch::Receiver<Arc<Zone>>, config: Arc<DnsConfig>) -> Router {
    Router::new()
        .route("/v1/version", get(version))
        .route("/v1/config", get(config_json))
        .route("/v1/hosts/{host}", get(hosts))
        .route("/v1/hosts/{host}/ports", get(ports))
        .route("/v1/services/{service}", get(services))
        .route("/v1/enumerate", get(enumerate))
        .with_state(ApiState { zones, config })
}

async fn version() -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "Service": "Mesos-DNS",
        "Version": env!("CARGO_PKG_VERSION"),
        "URL": MESOS_DNS_URL,
    }))
}

async fn config_json(State(state): State<ApiState>) -> Json<serde_json::Value> {
    Json(state.config.mesos_dns_json())
}

/// One row of `/v1/hosts/{host}`.
#[derive(Debug, Default, serde::Serialize)]
struct HostRow {
    host: String,
    ip: String,
}

async fn hosts(State(state): State<ApiState>, Path(host): Path<String>) -> Json<Vec<HostRow>> {
    let name = normalize_query(&host);
    let zone = state.zone();
    let mut rows = Vec::new();
    if let Some(records) = zone.lookup(&name) {
        let v4 = records.a.iter().map(ToString::to_string);
        let v6 = records.aaaa.iter().map(ToString::to_string);
        for ip in v4.chain(v6) {
            rows.push(HostRow {
                host: name.clone(),
                ip,
            });
        }
    }
    if rows.is_empty() {
        rows.push(HostRow::default());
    }
    Json(rows)
}

async fn ports() -> impl IntoResponse {
    (StatusCode::NOT_IMPLEMENTED, "To be implemented...")
}

/// One row of `/v1/services/{service}`.
#[derive(Debug, Default, serde::Serialize)]
struct ServiceRow {
    service: String,
    host: String,
    ip: String,
    port: String,
}

async fn services(
    State(state): State<ApiState>,
    Path(service): Path<String>,
) -> Json<Vec<ServiceRow>> {
    let name = normalize_query(&service);
    let zone = state.zone();
    let mut rows = Vec::new();
    for srv in zone.lookup(&name).map(|r| r.srv.as_slice()).unwrap_or(&[]) {
        let Some(target) = zone.lookup(&srv.target) else {
            continue;
        };
        let first_v4 = target.a.first().map(ToString::to_string);
        let first_v6 = target.aaaa.first().map(ToString::to_string);
        for ip in first_v4.into_iter().chain(first_v6) {
            rows.push(ServiceRow {
                service: service.clone(),
                host: srv.target.clone(),
                ip,
                port: srv.port.to_string(),
            });
        }
    }
    if rows.is_empty() {
        rows.push(ServiceRow::default());
    }
    Json(rows)
}

async fn enumerate(State(state): State<ApiState>) -> Json<serde_json::Value> {
    let zone = state.zone();
    Json(serde_json::json!({ "frameworks": zone.frameworks }))
}

//! The stats port (marathon-lb's `listen stats`, 9090), served by axum:
//!
//! | Path | Response |
//! | --- | --- |
//! | `GET /haproxy?stats` (also `?stats;json`) | the [`super::stats_report::Report`] as JSON |
//! | `GET /haproxy?stats;csv` | HAProxy-style CSV |
//! | `GET /metrics` | Prometheus text |
//! | `GET /_haproxy_health_check` | 200 (HAProxy's `monitor-uri` page) |
//! | `GET /_haproxy_getconfig` | the routing table in use, as JSON |
//! | `GET` or `POST /_mlb_signal/hup`, `/_mlb_signal/usr1` | notifies the service (re-read and rebuild) and answers 200 |
//!
//! May depend on: std, axum, tokio (sync), serde_json, [`super::shared`],
//! [`super::stats_csv`], [`super::stats_prometheus`], [`super::stats_report`].

use super::shared::Shared;
use super::stats_csv::csv;
use super::stats_prometheus::prometheus;
use super::stats_report::{report, Report};
use axum::extract::{RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use std::sync::Arc;
use tokio::sync::Notify;

/// What the handlers read.
#[derive(Clone, Debug)]
struct StatsState {
    /// The proxy.
    shared: Arc<Shared>,
    /// Notified by the signal endpoints.
    hup: Arc<Notify>,
}

impl StatsState {
    fn report(&self) -> Report {
        let live = self.shared.cell.load();
        let fixed: Vec<_> = self
            .shared
            .fixed
            .bound(&self.shared.config)
            .into_iter()
            .map(|(name, counters)| (name, counters.as_ref()))
            .collect();
        report(&live, &fixed)
    }
}

/// The stats port's routes.
pub(crate) fn router(shared: Arc<Shared>, hup: Arc<Notify>) -> Router {
    Router::new()
        .route("/haproxy", get(stats))
        .route("/metrics", get(metrics))
        .route("/_haproxy_health_check", get(health))
        .route("/_haproxy_getconfig", get(getconfig))
        .route("/_mlb_signal/hup", get(signal).post(signal))
        .route("/_mlb_signal/usr1", get(signal).post(signal))
        .with_state(StatsState { shared, hup })
}

async fn stats(State(state): State<StatsState>, RawQuery(query): RawQuery) -> Response {
    let query = query.unwrap_or_default();
    if query.starts_with("stats;csv") {
        (
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            csv(&state.report()),
        )
            .into_response()
    } else if query == "stats" || query.starts_with("stats;") {
        Json(state.report()).into_response()
    } else {
        StatusCode::NOT_FOUND.into_response()
    }
}

async fn metrics(State(state): State<StatsState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        prometheus(&state.report()),
    )
        .into_response()
}

async fn health() -> Response {
    (
        [(header::CONTENT_TYPE, "text/html")],
        "<html><body><h1>200 OK</h1>\nService ready.\n</body></html>\n",
    )
        .into_response()
}

async fn getconfig(State(state): State<StatsState>) -> Response {
    let live = state.shared.cell.load();
    Json(live.table.as_ref()).into_response()
}

async fn signal(State(state): State<StatsState>) -> Response {
    state.hup.notify_one();
    "Sent signal to marathon-lb\n".into_response()
}

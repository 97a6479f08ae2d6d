//! Load balancing as marathon-lb did it, driven by the snapshot stream: no config reloads,
//! no dropped connections when tasks come and go.
//!
//! - `table` (data) and `routes` (pure): a [`orch_core::state::Snapshot`] becomes a
//!   [`RoutingTable`] under marathon-lb's `HAPROXY_*` and `VIP_*` labels.
//! - `proxy`: the built-in tokio + hyper proxy: the HTTP, HTTPS (SNI) and app-id ports, one
//!   listener per exposed service port and VIP, tcp and http modes, balancing, stickiness,
//!   timeouts and limits; the stats port (JSON, Prometheus, control endpoints).
//! - `haproxy`: the same table as a marathon-lb-equivalent `haproxy.cfg` (pure), and
//!   `haproxy_mode` (HAProxy mode): write, `haproxy -c`, reload only on change.
//! - `service`: one running load balancer: a table per snapshot until shutdown. Where
//!   snapshots come from is the business of `orch-discovery` (or of a master in the same process).
//! - `bluegreen` (pure): zdd's blue/green planner, driven by `orch app deploy-bluegreen`.
//!
//! May depend on: orch-core (model, state) only among orch's crates; `table`, `routes`,
//! `haproxy` and `bluegreen` are pure (checked by `tests/crate_graph.rs`), `proxy`,
//! `haproxy_mode` and `service` also use tokio, hyper and rustls.

pub mod bluegreen;
mod config;
mod error;
mod haproxy;
mod haproxy_mode;
mod proxy;
mod routes;
mod service;
mod table;

pub use config::{HaproxyMode, LbConfig, Limits};
pub use error::LbError;
pub use haproxy::haproxy_config;
pub use haproxy_mode::{
    apply as apply_haproxy_config, run as run_haproxy_mode, Applied as HaproxyApplied, HaproxyError,
};
pub use proxy::{Proxy, ProxyAddrs};
pub use routes::routes;
pub use service::{run, Listeners};
pub use table::{
    Backend, BackendCheck, Balance, Frontend, FrontendKind, Mode, RouteConfig, RoutingTable,
    Server, VhostRoute,
};

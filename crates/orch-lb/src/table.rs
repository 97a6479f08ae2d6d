//! The routing table: everything the load balancer serves, as data. [`super::routes`] builds
//! one from each snapshot; the proxy swaps it in without a reload, and the HAProxy writer
//! renders the same table as a marathon-lb-equivalent `haproxy.cfg`.
//!
//! Names follow marathon-lb so that tools keyed on them (zdd, autoscalers, dashboards) keep
//! working: a backend and its own frontend are `<app id without the leading '/', '/' as
//! '_'>_<service port>` (`/prod/web` port 10001 gives `prod_web_10001`); a server is
//! `<host>_<ip>_<port>` (or `<ip>_<port>` when host is the IP) with every character outside
//! `[A-Za-z0-9-]` made `_` (marathon-lb keeps `-`).
//!
//! May depend on: model, std, serde.

use orch_core::model::{AppId, TaskId};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

/// What the load balancer serves for one snapshot.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct RoutingTable {
    /// The Raft log index of the snapshot it was built from.
    pub applied_index: u64,
    /// Backends by name.
    pub backends: BTreeMap<String, Arc<Backend>>,
    /// Listeners of their own: one per exposed service port, plus one per VIP port; sorted
    /// by port, at most one per (bind address, port).
    pub frontends: Vec<Frontend>,
    /// Host (and path) rules of the HTTP and HTTPS ports, in match order: the first rule
    /// whose host equals the request's host (port and case ignored) and whose paths (if
    /// any) prefix the request path wins.
    pub vhosts: Vec<VhostRoute>,
    /// App id (`/prod/web`) → backend, for the app-id port's `X-Marathon-App-Id` header:
    /// the first http-mode port of each app.
    pub app_ids: BTreeMap<String, String>,
}

/// Layer 4 or layer 7, HAProxy's `mode`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Bytes both ways (the default, as in marathon-lb).
    #[default]
    Tcp,
    /// HTTP/1.1 requests, each routed and counted.
    Http,
}

/// How a backend picks a server for a new connection or request (HAProxy's `balance`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Balance {
    /// In turn.
    #[default]
    RoundRobin,
    /// The server with the fewest active connections (ties in turn).
    LeastConn,
    /// A hash of the client's IP, so a client keeps its server while the set is stable.
    Source,
}

/// One app port's servers and how traffic reaches them.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Backend {
    /// `<app>_<service port>` (see the module docs).
    pub name: String,
    /// The app it serves (for a blue/green pair: the id both colours share).
    pub app_id: AppId,
    /// The app's service port for this port index (or `HAPROXY_{n}_PORT`).
    pub service_port: u16,
    /// `HAPROXY_{n}_MODE`.
    pub mode: Mode,
    /// `HAPROXY_{n}_BALANCE`.
    pub balance: Balance,
    /// `HAPROXY_{n}_STICKY`: a `mesosphere_server_id` cookie pins a client to its server.
    pub sticky: bool,
    /// `HAPROXY_{n}_REDIRECT_TO_HTTPS`: plain-HTTP requests get a 301 to https.
    pub redirect_to_https: bool,
    /// `HAPROXY_{n}_USE_HSTS`: responses carry `Strict-Transport-Security`.
    pub hsts: bool,
    /// The app's Marathon health check for this port, as HAProxy's active check (HAProxy
    /// mode only; the built-in proxy trusts the cluster's own checks).
    pub health_check: Option<BackendCheck>,
    /// The tasks in rotation, sorted by name.
    pub servers: Vec<Server>,
}

/// A Marathon health check translated for HAProxy, as marathon-lb does it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct BackendCheck {
    /// `option httpchk GET <path>` for http-mode backends; `None` for a plain connect.
    pub http_path: Option<String>,
    /// A port other than the server's, when the check targets one.
    pub port: Option<u16>,
    /// `inter`, seconds.
    pub interval_seconds: i64,
    /// `timeout check`, seconds.
    pub timeout_seconds: i64,
    /// `fall`: maxConsecutiveFailures + 1.
    pub falls: i64,
}

/// One task serving one backend.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Server {
    /// `<host>_<ip>_<port>`, sanitised (see the module docs).
    pub name: String,
    /// The task.
    pub task_id: TaskId,
    /// Its agent's hostname.
    pub host: String,
    /// The address traffic goes to: its agent's IP for a host port, the task's own IP for a
    /// container-network port without one (each falling back to the other).
    pub ip: IpAddr,
    /// The port: the task's host port, or its container port without one.
    pub port: u16,
}

/// A listener of its own.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Frontend {
    /// The backend's name, or `vip_<name>_<port>` for a VIP listener.
    pub name: String,
    /// `HAPROXY_{n}_BIND_ADDR`; `None` binds the LB's `--bind-addr`.
    pub bind_addr: Option<IpAddr>,
    /// The service port (or `HAPROXY_{n}_PORT`, or the VIP's port).
    pub port: u16,
    /// Its backend's mode (VIP listeners are always tcp).
    pub mode: Mode,
    /// `HAPROXY_{n}_SSL_CERT`: a PEM file (certificate chain and key) to terminate TLS.
    pub ssl_cert: Option<String>,
    /// The backend it sends to.
    pub backend: String,
    /// Service port or VIP.
    pub kind: FrontendKind,
}

/// Why a frontend exists.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FrontendKind {
    /// An exposed service port.
    Service,
    /// A `VIP_{n}` label (`/name:port`): a layer-4 listener reachable by the VIP's DNS name.
    Vip,
}

/// A host (and path) rule of the HTTP and HTTPS ports.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct VhostRoute {
    /// The host name, lowercase (`HAPROXY_{n}_VHOST`, one rule per name).
    pub host: String,
    /// `HAPROXY_{n}_PATH`: path prefixes; empty matches every path.
    pub paths: Vec<String>,
    /// The PATH label started with `-i`: prefixes match ignoring case.
    pub paths_ignore_case: bool,
    /// The backend it sends to.
    pub backend: String,
    /// The port's `HAPROXY_{n}_SSL_CERT`, offered on the HTTPS port for this host (SNI).
    pub ssl_cert: Option<String>,
}

/// Which apps and tasks one load balancer takes (marathon-lb's `--group`, `--strict-mode`,
/// `--health-check`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteConfig {
    /// HAPROXY_GROUP values served; `*` takes every app, grouped or not.
    pub groups: Vec<String>,
    /// Only ports labelled `HAPROXY_{n}_ENABLED=true` are exposed.
    pub strict_mode: bool,
    /// Tasks of apps with health checks are served only while every check passes.
    pub health_check: bool,
}

impl Default for RouteConfig {
    fn default() -> Self {
        Self {
            groups: vec!["external".to_owned()],
            strict_mode: false,
            health_check: false,
        }
    }
}

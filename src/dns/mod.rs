//! Service discovery as Mesos-DNS did it, driven by the snapshot stream instead of polling.
//!
//! - [`records`] (pure): a [`crate::state::Snapshot`] becomes a [`Zone`]: Mesos-DNS's name
//!   grammar for Marathon tasks, masters, agents, and VIP names.
//! - [`server`]: authoritative DNS over UDP and TCP (hickory-server) from the newest zone;
//!   other names are forwarded to the configured resolvers.
//! - [`http`]: Mesos-DNS's HTTP API (`/v1/version`, `/v1/config`, `/v1/hosts`, ...).
//! - [`source`]: where snapshots come from: a master in this process, or `/v1/snapshots`
//!   of the masters over HTTP (with failover between them).
//!
//! May depend on: model, state (pure parts); server, http and source also on tokio,
//! hickory, axum, reqwest and [`crate::master`] (an embedded DNS reads its master directly).
//! Not on api, cli, agent, gitops.

mod answer;
mod config;
mod forward;
mod http;
mod server;
mod zone;

pub use answer::{answer, error_reply, fit_reply, max_size, Outcome, Question, Transport};
pub use config::{parse_resolver, DnsConfig, DnsError};
pub use forward::{forward, ForwardConfig};
pub use http::router;
pub use server::{serve, serve_sockets, TCP_IDLE_TIMEOUT};
pub use zone::{
    EnumeratedFramework, EnumeratedRecord, EnumeratedTask, RecordSet, Soa, Srv, Zone, ZoneConfig,
    VIP_APEX,
};

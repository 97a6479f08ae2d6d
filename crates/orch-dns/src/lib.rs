//! Service discovery as Mesos-DNS did it, driven by the snapshot stream instead of polling.
//!
//! - `records` (pure): a [`orch_core::state::Snapshot`] becomes a [`Zone`]: Mesos-DNS's name
//!   grammar for Marathon tasks, masters, agents, and VIP names (`names`: label mangling and
//!   the task hash).
//! - `answer` (pure): one query against a zone, as Mesos-DNS answers it (NXDOMAIN vs NODATA,
//!   shuffling, truncation).
//! - `server` + `forward`: authoritative DNS over UDP and TCP (hickory-server) from the
//!   newest zone; other names are forwarded to the configured resolvers, only for the
//!   client networks of `allow` and with a cap on forwards in flight.
//! - `http`: Mesos-DNS's HTTP API (`/v1/version`, `/v1/config`, `/v1/hosts`, ...).
//! - `service`: one running server: a zone per snapshot, DNS and HTTP until shutdown. Where
//!   snapshots come from is the business of `orch-discovery` (or of a master in the same process).
//!
//! May depend on: orch-core (model, state) only among orch's crates; `records`, `names`,
//! `answer` and `zone` are pure (checked by `tests/crate_graph.rs`), `server`, `forward`,
//! `http` and `service` also use tokio, hickory and axum.

mod allow;
mod answer;
mod config;
mod forward;
mod http;
mod names;
mod records;
mod server;
mod service;
mod zone;

pub use allow::{default_forward_allow, forward_allowed, parse_network, DEFAULT_FORWARD_ALLOW};
pub use config::{parse_resolver, DnsConfig, DnsError, DEFAULT_MAX_FORWARDS};
pub use forward::{ForwardConfig, Forwarder};
pub use http::router;
pub use ipnet::IpNet;
pub use records::records;
pub use server::{serve, TCP_IDLE_TIMEOUT};
pub use service::{run, Listeners};
pub use zone::{
    EnumeratedFramework, EnumeratedRecord, EnumeratedTask, RecordSet, Soa, Srv, Zone, ZoneConfig,
    VIP_APEX,
};

//! # orch-core
//!
//! The pure core of orch: everything the cluster decides, as plain data and deterministic
//! functions, with no runtime, no network, no clock and no filesystem. The shells
//! (masters, agents, DNS, the load balancer) read the clock and do the I/O, then call in here.
//!
//! - [`model`]: domain types (ids, timestamps, Marathon apps, groups, agents, tasks).
//! - [`state`]: the replicated [`state::ClusterState`], the Raft payload [`state::Command`]
//!   and its deterministic `apply`.
//! - [`scheduler`]: fit, place, kill selection, backoff, rolling-restart arithmetic.
//! - [`protocol`]: the agent <-> master wire types.
//! - [`errors`]: error text with its causes.
//! - [`listen`]: where a node without TLS may listen (loopback, unless `--insecure`).
//!
//! May depend on: serde, serde_json, thiserror, humantime, imbl, regex. No tokio and no I/O
//! crate (checked by `tests/crate_graph.rs`).

pub mod errors;
pub mod listen;
pub mod model;
pub mod protocol;
pub mod scheduler;
pub mod state;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

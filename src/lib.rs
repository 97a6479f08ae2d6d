//! # orch
//!
//! One binary that does what a Mesos + Marathon + Mesos-DNS + marathon-lb cluster did, driven
//! from git. This crate is the whole product; `main.rs` only parses the command line and calls
//! [`cli::run`].
//!
//! # Layout
//!
//! - [`model`]: pure domain types (ids, timestamps, apps).
//! - [`state`]: the replicated [`state::ClusterState`], the Raft payload [`state::Command`] and
//!   its deterministic `apply`.
//! - [`scheduler`]: the pure scheduling core: fit, place, kill selection, backoff, rolling
//!   restart arithmetic.
//! - [`raft`]: openraft glue (durable redb log store, state machine, HTTP network).
//! - [`master`]: a running master: Raft node, writes with timeouts, leadership, membership,
//!   metrics. Its [`master::Master`] handle is all the API layer sees.
//! - [`agent`]: `orch agent`: registration with the leader, desired-set sync, task runner
//!   over [`driver`]s, durable status journal, recovery, sandbox file API.
//! - [`api`]: axum routers: Marathon `/v2`, orch `/v1`, Raft RPC `/internal/raft`, leader proxy.
//! - [`config`]: typed, validated configuration of each process.
//! - [`errors`]: error text with its causes, for API answers and status fields.
//! - [`discovery`], [`dns`], [`lb`]: the snapshot feed, Mesos-DNS-compatible DNS, and the
//!   marathon-lb-compatible load balancer.
//! - [`provision`]: `orch up`/`status`/`destroy`: infra files, the local provider (every
//!   process on this machine, state in `.orch/<cluster>/`).
//! - [`cli`]: the `orch` commands.
//! - [`telemetry`]: logging setup.
//!
//! The write path: HTTP handler validates → builds a `Command` carrying every id and
//! timestamp → `Master::write` (Raft on the leader; followers proxy the request) → every
//! master applies it → a new immutable `Arc<ClusterState>` on a watch channel.

pub mod agent;
pub mod api;
pub mod cli;
pub mod config;
pub mod discovery;
pub mod dns;
pub mod driver;
pub mod errors;
pub mod gitops;
pub mod lb;
pub mod master;
pub mod model;
pub mod protocol;
pub mod provision;
pub mod raft;
pub mod scheduler;
pub mod state;
pub mod telemetry;

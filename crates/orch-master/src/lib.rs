//! # orch-master
//!
//! A running master: the Raft node and its leader loop ([`master`]), the HTTP surface
//! ([`api`]: Marathon `/v2`, orch `/v1`, Raft RPC, the agent protocol), the GitOps
//! reconciler ([`gitops`]) and the master's configuration ([`config`]).
//!
//! May depend on: orch-core, orch-raft, orch-probe (readiness checks), orch-pki (TLS from the
//! node's files, peer identities). Not on the agent, drivers, DNS, the load balancer or
//! provisioning.

pub mod api;
pub mod config;
pub mod gitops;
pub mod master;

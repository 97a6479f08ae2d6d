//! Agents as the masters record them.

use super::address::{parse_ip, split_host_port};
use super::{Attributes, Resources, Timestamp};
use std::net::IpAddr;

/// A stable agent id, kept in the agent's work dir (Mesos' `<uuid>-S0` shape).
#[derive(
    Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct AgentId(pub String);

impl std::fmt::Display for AgentId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The role of resources that only apps accepting `slave_public` may use.
pub const PUBLIC_ROLE: &str = "slave_public";

/// The default role: resources any app may use.
pub const DEFAULT_ROLE: &str = "*";

/// What an agent tells the master about itself when it registers.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AgentInfo {
    /// Its stable id.
    pub id: AgentId,
    /// Hostname used for constraints, `HOST` and DNS.
    pub hostname: String,
    /// `ip:port` of its HTTP API (sandbox files, health).
    pub address: String,
    /// Total resources it offers.
    pub resources: Resources,
    /// Attributes for constraints.
    pub attributes: Attributes,
    /// `*`, or `slave_public` for `--public` agents.
    pub role: String,
    /// Containerizers it runs: `mesos`, `docker`, `mock`.
    pub containerizers: Vec<String>,
}

/// Whether the master hears from an agent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Reachability {
    /// Heartbeats arrive.
    Reachable,
    /// No heartbeat for longer than the agent timeout, since this time.
    Unreachable {
        /// When the leader declared it unreachable.
        since: Timestamp,
    },
}

/// An agent in the cluster state.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Agent {
    /// What it said when it last registered.
    pub info: AgentInfo,
    /// When it first registered.
    pub registered_at: Timestamp,
    /// Reachability as the leader last recorded it.
    pub reachability: Reachability,
    /// The highest status update sequence number applied from it (updates at or below are
    /// duplicates and are only acknowledged again).
    pub last_update_seq: u64,
    /// The Raft index at which the set of tasks it should run last changed (long polls of
    /// its desired set answer when this passes the index they last saw).
    pub desired_index: u64,
}

impl Agent {
    /// True unless the leader declared it unreachable.
    pub fn is_reachable(&self) -> bool {
        matches!(self.reachability, Reachability::Reachable)
    }

    /// Its IP: the host of its `ip:port` address, else its hostname if that is an IP. No name
    /// lookups: an agent known only by name has no IP here.
    pub fn ip(&self) -> Option<IpAddr> {
        parse_ip(split_host_port(&self.info.address).0).or_else(|| parse_ip(&self.info.hostname))
    }
}

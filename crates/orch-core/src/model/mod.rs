//! Pure domain types: ids, timestamps, Marathon app definitions (typed, normalised,
//! validated, with service ports), groups, agents, resources, tasks and constraints.
//!
//! Everything here is plain data with serde: no I/O, no clock, no tokio. Values that need the
//! clock (timestamps) or randomness (ids) are created by the shells and passed in.
//!
//! May depend on: nothing internal.

mod acl;
mod address;
mod agent;
mod app;
mod app_id;
mod app_normalize;
mod app_spec;
mod app_validation;
mod constraint;
mod deployment;
mod gitops;
mod group;
mod health;
mod ports;
mod resources;
mod task;
mod timestamp;

pub use acl::{
    covers, needed_capabilities, policy_from_json, reserved_label, runs_as_root, valid_name,
    Access, AclPolicy, AclRule, AclToken, Capability, Grants, WIDENING_PARAMETERS,
};
pub use address::{parse_ip, split_host_port};
pub use agent::{Agent, AgentId, AgentInfo, Reachability, DEFAULT_ROLE, PUBLIC_ROLE};
pub use app::{App, AppError, VersionInfo};
pub use app_id::{AppId, AppIdError};
pub use app_spec::{
    AppSpec, Container, ContainerType, Disabled, Docker, DockerParameter, EnvValue, Fetch,
    KillSelection, Network, NetworkMode, PortDefinition, PortMapping, Secret, UnreachableEnabled,
    UnreachableStrategy, UpgradeStrategy,
};
pub use app_validation::{Violation, MAX_INSTANCES, PORT_NAME_PATTERN};
pub use constraint::{Constraint, Operator};
pub use deployment::{ActionKind, Deployment, DeploymentAction, DeploymentStep};
pub use gitops::{
    is_url, redact_url, RepoConfig, RepoRecord, SyncRecord, SyncResult, COMMIT_LABEL, REPO_LABEL,
    SYNC_HISTORY,
};
pub use group::{Group, GroupId, GroupUpdate};
pub use health::{
    CommandCheck, HealthCheck, HealthProtocol, HealthTarget, ReadinessCheck, ReadinessProtocol,
};
pub use ports::{assign_service_ports, PortsExhausted, SERVICE_PORTS};
pub use resources::{
    format_ranges, parse_attributes, Attributes, PortRange, Resources, ResourcesError,
};
pub use task::{safe_path, Goal, HealthResult, Task, TaskId, TaskState};
pub use timestamp::{Timestamp, TimestampError};

/// A Raft node id of a master (1-based; the position in the initial `--masters` list).
pub type MasterId = u64;

/// The id of a deployment, as Marathon's plan ids: a UUID string chosen by the leader.
#[derive(
    Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct DeploymentId(pub String);

impl std::fmt::Display for DeploymentId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

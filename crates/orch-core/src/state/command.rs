//! The Raft payload and what applying it produced.

use crate::model::Deployment;
use crate::model::{
    AclPolicy, AclToken, AgentId, AgentInfo, App, AppError, AppId, DeploymentId, Grants, GroupId,
    GroupUpdate, MasterId, RepoConfig, SyncRecord, Task, TaskId, Timestamp,
};
use crate::protocol::StatusUpdate;
use crate::state::DeploymentChange;
use serde_json::{Map, Value};
use std::sync::Arc;

/// A change to the cluster state, as written to the Raft log.
///
/// Append-only: add variants at the end; never change the meaning of an existing one.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Command {
    /// Create an app; rejected if the id exists. Its 0 service ports are assigned on apply.
    CreateApp {
        /// The app, with its version already chosen by the leader (boxed: the payload is
        /// large next to the other variants; the wire form is the same).
        app: Box<App>,
        /// The deployment that brings it up.
        deployment_id: DeploymentId,
        /// Cancel deployments that hold the app instead of refusing.
        force: bool,
    },
    /// Create or update an app (Marathon's PUT and PATCH; a rollback is a full update with
    /// the stored version's definition). Validated on apply; rejected if invalid.
    UpdateApp {
        /// Which app.
        id: AppId,
        /// The new version timestamp.
        version: Timestamp,
        /// The client's fields.
        patch: Map<String, Value>,
        /// Merge `patch` over the existing definition (true) or replace it (false).
        partial: bool,
        /// The deployment that rolls the change out.
        deployment_id: DeploymentId,
        /// Cancel deployments that hold the app instead of refusing.
        force: bool,
    },
    /// Delete an app; rejected if unknown.
    DeleteApp {
        /// Which app.
        id: AppId,
        /// The version of the change.
        version: Timestamp,
        /// The deployment that stops it.
        deployment_id: DeploymentId,
        /// Cancel deployments that hold the app instead of refusing.
        force: bool,
    },
    /// Several commands written as one entry, applied in order; each has its own outcome.
    Batch(Vec<Command>),
    /// An agent registered (or registered again, keeping its id): it is reachable.
    RegisterAgent {
        /// What it offers.
        info: AgentInfo,
        /// When the leader accepted it.
        at: Timestamp,
    },
    /// The leader stopped hearing from these agents.
    AgentsUnreachable {
        /// Which agents.
        agents: Vec<AgentId>,
        /// When the leader decided so.
        at: Timestamp,
    },
    /// An unreachable agent sent a heartbeat again, running these tasks.
    AgentReachable {
        /// Which agent.
        agent_id: AgentId,
        /// The tasks it runs.
        running: Vec<TaskId>,
        /// When the leader heard from it.
        at: Timestamp,
    },
    /// New tasks placed by the scheduler (each is skipped if its app or agent is gone).
    LaunchTasks {
        /// The tasks, in TASK_STAGING.
        tasks: Vec<Task>,
    },
    /// Kill these tasks (goal: decommissioned).
    KillTasks {
        /// Which tasks.
        task_ids: Vec<TaskId>,
    },
    /// Status updates from an agent, each applied once by sequence number.
    StatusUpdates {
        /// Which agent.
        agent_id: AgentId,
        /// The updates in sequence order.
        updates: Vec<StatusUpdate>,
    },
    /// Restart every task of an app (a config change without a new definition).
    RestartApp {
        /// Which app.
        id: AppId,
        /// The version of the restart.
        version: Timestamp,
        /// The deployment that rolls it.
        deployment_id: DeploymentId,
        /// Cancel deployments that hold the app instead of refusing.
        force: bool,
    },
    /// The leader saw step `step` of a deployment take full effect.
    DeploymentStepDone {
        /// Which deployment.
        id: DeploymentId,
        /// The step (0-based).
        step: usize,
        /// When the leader saw it.
        at: Timestamp,
    },
    /// Cancel a deployment; with `revert`, a new deployment restores what it changed.
    CancelDeployment {
        /// Which deployment.
        id: DeploymentId,
        /// The revert deployment's id and version, for a rollback.
        revert: Option<(DeploymentId, Timestamp)>,
    },
    /// Create (`create`: refused if it exists) or update a group and everything in it, as
    /// one deployment. Validated on apply.
    UpdateGroup {
        /// The update, ids resolved.
        update: GroupUpdate,
        /// The version of the change.
        version: Timestamp,
        /// Refuse if the group exists (`POST`).
        create: bool,
        /// The deployment that rolls the change out.
        deployment_id: DeploymentId,
        /// Cancel deployments that hold its apps instead of refusing.
        force: bool,
    },
    /// Delete a group: every app and group below it (the root: everything).
    DeleteGroup {
        /// Which group.
        id: GroupId,
        /// The version of the change.
        version: Timestamp,
        /// The deployment that stops its apps.
        deployment_id: DeploymentId,
        /// Cancel deployments that hold its apps instead of refusing.
        force: bool,
    },
    /// Watch a repo (or change how one is watched, keeping its history), by name.
    SetRepo {
        /// The repo, its name resolved.
        config: RepoConfig,
    },
    /// Stop watching a repo (its apps stay).
    RemoveRepo {
        /// Which repo.
        name: String,
    },
    /// What a repo's reconciler did: a sync, a healthy or failed commit, a pause.
    RecordRepo {
        /// Which repo.
        name: String,
        /// The change.
        change: RepoChange,
    },
    /// Create or replace an ACL policy, by name.
    SetAclPolicy {
        /// The policy, validated.
        policy: AclPolicy,
    },
    /// Delete an ACL policy (tokens naming it lose what it gave).
    RemoveAclPolicy {
        /// Which policy.
        name: String,
    },
    /// Create an ACL token; rejected if a policy it names does not exist.
    CreateAclToken {
        /// The token, its id chosen and its secret hashed by the leader.
        token: AclToken,
    },
    /// Revoke an ACL token.
    RevokeAclToken {
        /// Which token.
        id: String,
    },
    /// `command` on behalf of a token: applied only if everything it changes lies within
    /// the token's grants (paths, capabilities); otherwise nothing changes.
    Restricted {
        /// What the token may do, as resolved when the request came in.
        grants: Grants,
        /// The command.
        command: Box<Command>,
    },
    /// These masters hold the cluster's data (the leader saw them acknowledge entries): one
    /// of them starting again with an empty data dir was wiped, and must rejoin as a
    /// replaced member instead of voting again with a forgotten vote.
    MastersSeen {
        /// Their Raft ids.
        ids: Vec<MasterId>,
    },
    /// `command` only if no app or group changed since the writer read the state (a
    /// compare-and-set on [`ClusterState::definitions_index`]); otherwise nothing changes
    /// and the writer plans again from newer state. GitOps writes its group this way.
    IfDefinitionsAt {
        /// The `definitions_index` of the state the command was planned from.
        index: u64,
        /// The command.
        command: Box<Command>,
    },
}

/// A change to a watched repo's record; fields left `None` stay as they are.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RepoChange {
    /// A sync to append to the history.
    pub sync: Option<SyncRecord>,
    /// The commit whose definitions were written.
    pub applied: Option<String>,
    /// A commit whose apps all became healthy.
    pub healthy: Option<String>,
    /// A commit given up on.
    pub failed: Option<String>,
    /// Pause (true) or resume (false) auto-sync.
    pub paused: Option<bool>,
}

/// The outcome of applying one log entry, returned to the client that wrote it.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Applied {
    /// The entry was not a command (a blank or membership entry).
    Nothing,
    /// A new app exists.
    AppCreated {
        /// The app as stored.
        app: Arc<App>,
        /// Its deployment.
        deployment_id: DeploymentId,
        /// The deployment started and those superseded.
        change: DeploymentChange,
    },
    /// An app was created or updated by an update.
    AppUpdated {
        /// True if the app did not exist before.
        created: bool,
        /// The new version.
        version: Timestamp,
        /// Its deployment.
        deployment_id: DeploymentId,
        /// The app as stored.
        app: Arc<App>,
        /// The deployment started and those superseded.
        change: DeploymentChange,
    },
    /// An app was deleted (or restarted: then `app` is set).
    AppDeleted {
        /// The version of the change.
        version: Timestamp,
        /// Its deployment.
        deployment_id: DeploymentId,
        /// The deployment started and those superseded.
        change: DeploymentChange,
    },
    /// A deployment step took full effect.
    DeploymentStepDone {
        /// The deployment after the step.
        deployment: Arc<Deployment>,
        /// The step that finished (0-based).
        step: usize,
        /// It was the last step.
        finished: bool,
        /// When the leader saw it.
        at: Timestamp,
    },
    /// A deployment was cancelled (and maybe reverted by a new one).
    DeploymentCanceled {
        /// The cancelled deployment.
        canceled: Arc<Deployment>,
        /// The revert deployment, if any.
        change: DeploymentChange,
    },
    /// The command did not apply to the state it met.
    Rejected(Rejection),
    /// The outcomes of a [`Command::Batch`], in order.
    Batch(Vec<Applied>),
    /// An agent registered.
    AgentRegistered {
        /// It had registered before (same id).
        known_before: bool,
    },
    /// Tasks were placed.
    TasksLaunched {
        /// How many of those asked for (the rest lost their app or agent meanwhile).
        launched: usize,
    },
    /// Tasks are being killed.
    TasksKilled {
        /// The ids that existed.
        task_ids: Vec<TaskId>,
    },
    /// Status updates were stored.
    StatusApplied {
        /// Every update of the agent up to this sequence number is stored.
        through: u64,
        /// The tasks whose state changed, as they are now.
        changed: Vec<Arc<Task>>,
        /// Health check results stored.
        health: Vec<HealthChange>,
    },
    /// A watched repo was added, changed or removed.
    RepoChanged {
        /// Which repo.
        name: String,
    },
    /// An ACL policy or token was created, replaced or removed.
    AclChanged {
        /// It did not exist before.
        created: bool,
    },
    /// A group was created, updated or deleted.
    GroupChanged {
        /// Which group.
        id: GroupId,
        /// The version of the change.
        version: Timestamp,
        /// Its deployment.
        deployment_id: DeploymentId,
        /// The deployment started and those superseded.
        change: DeploymentChange,
    },
}

/// A health check result stored on a task.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct HealthChange {
    /// The task as it is now.
    pub task: Arc<Task>,
    /// The check's `alive` flipped (or this is its first result).
    pub alive_changed: bool,
    /// The task's overall health changed.
    pub healthy_changed: bool,
    /// The check failed.
    pub failed: bool,
    /// The check's definition, as the app has it.
    pub check: serde_json::Value,
    /// When the agent ran it.
    pub at: Timestamp,
}

/// Why a command changed nothing.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Rejection {
    /// An app with this id exists already.
    AppExists(AppId),
    /// No app has this id.
    AppUnknown(AppId),
    /// The resulting app definition is not valid, or no service port is left.
    InvalidApp(AppError),
    /// Running deployments hold the app (Marathon's 409 unless `force`).
    AppLocked(Vec<DeploymentId>),
    /// No deployment has this id.
    DeploymentUnknown(DeploymentId),
    /// A group with this id exists already (a create).
    GroupExists(GroupId),
    /// No group has this id.
    GroupUnknown(GroupId),
    /// The change would make an app id equal a group id.
    IdConflict {
        /// The id both would have.
        id: String,
    },
    /// The dependencies of the apps and groups would form a cycle.
    CyclicDependencies,
    /// No watched repo has this name.
    RepoUnknown(String),
    /// No ACL policy has this name.
    AclPolicyUnknown(String),
    /// No ACL token has this id.
    AclTokenUnknown(String),
    /// A token names policies that do not exist.
    AclPoliciesUnknown(Vec<String>),
    /// Apps or groups changed after the writer read the state ([`Command::IfDefinitionsAt`]).
    DefinitionsChanged {
        /// The definitions index the writer read.
        expected: u64,
        /// The definitions index now.
        actual: u64,
    },
    /// A restricted command would change what its token may not (403).
    Forbidden {
        /// The token's name.
        token: String,
        /// The id (or resource) it would change.
        path: String,
        /// What it lacks there: `write access`, `admin access on /**`, `the capability
        /// 'privileged' (container.docker.privileged)`, ...
        lacks: String,
    },
}

//! The replicated cluster state and the only way to change it.
//!
//! [`Command`] is the Raft log payload: an append-only enum (variants are never removed or
//! changed in meaning, because old logs and snapshots must replay). Every value a command
//! needs that is not a pure function of the state (ids, timestamps, versions) is chosen by
//! the leader-side handler and carried in the command, so [`ClusterState::apply`] is
//! deterministic: every master applying the same log reaches the same state.
//!
//! [`ClusterState`] is cheap to clone (persistent maps), so the Raft state machine can publish
//! an immutable snapshot after every batch on a `watch` channel.
//!
//! May depend on: model, protocol (status updates are stored as agents send them).

mod acl;
mod cautious;
mod command;
mod deployments;
mod events;
mod gitops;
mod groups;
mod snapshot;
mod tasks;

pub use command::{Applied, Command, HealthChange, Rejection, RepoChange};
pub use deployments::DeploymentChange;
pub use events::{events, Event};
pub use groups::GroupChanges;
pub use snapshot::{serves, Snapshot};

use crate::model::{
    AclPolicy, AclToken, Agent, AgentId, App, AppError, AppId, Deployment, DeploymentId, Grants,
    Group, GroupId, MasterId, RepoRecord, Task, TaskId, Timestamp,
};
use imbl::{OrdMap, Vector};
use serde_json::{Map, Value};
use std::collections::BTreeSet;
use std::sync::Arc;

/// How many versions of an app are kept (Marathon's `--zk_max_versions` default).
pub const MAX_APP_VERSIONS: usize = 50;

/// Everything the masters agree on.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ClusterState {
    /// The Raft log index of the last command applied (0 before any).
    pub applied_index: u64,
    /// The log index of the last command that changed an app or a group (0 before any):
    /// what [`Command::IfDefinitionsAt`] compares.
    #[serde(default)]
    pub definitions_index: u64,
    /// Marathon apps by id.
    #[serde(deserialize_with = "cautious::ord_map")]
    pub apps: OrdMap<AppId, Arc<App>>,
    /// Registered agents by id.
    #[serde(deserialize_with = "cautious::ord_map")]
    pub agents: OrdMap<AgentId, Arc<Agent>>,
    /// Tasks that have not ended (terminal tasks are expunged when their status arrives).
    #[serde(deserialize_with = "cautious::ord_map")]
    pub tasks: OrdMap<TaskId, Arc<Task>>,
    /// The latest failed task of each app (Marathon's `lastTaskFailure`).
    #[serde(deserialize_with = "cautious::ord_map")]
    pub last_task_failure: OrdMap<AppId, Arc<Task>>,
    /// Stored versions of each app, newest first (the current one included), at most
    /// [`MAX_APP_VERSIONS`]; dropped with the app.
    #[serde(default, deserialize_with = "cautious::ord_map_of_vectors")]
    pub app_versions: OrdMap<AppId, Vector<Arc<App>>>,
    /// Running deployments.
    #[serde(deserialize_with = "cautious::ord_map")]
    pub deployments: OrdMap<DeploymentId, Arc<Deployment>>,
    /// Explicit groups (created through `/v2/groups`); the others exist through app ids.
    #[serde(default, deserialize_with = "cautious::ord_map")]
    pub groups: OrdMap<GroupId, Arc<Group>>,
    /// Watched git repos by name.
    #[serde(default, deserialize_with = "cautious::ord_map")]
    pub repos: OrdMap<String, Arc<RepoRecord>>,
    /// ACL policies by name.
    #[serde(default, deserialize_with = "cautious::ord_map")]
    pub acl_policies: OrdMap<String, Arc<AclPolicy>>,
    /// ACL tokens by id (their secrets' hashes only).
    #[serde(default, deserialize_with = "cautious::ord_map")]
    pub acl_tokens: OrdMap<String, Arc<AclToken>>,
    /// Masters that hold the cluster's data ([`Command::MastersSeen`]).
    #[serde(default)]
    pub masters_seen: std::collections::BTreeSet<MasterId>,
    /// The grants of the restricted command being applied, while it is (see
    /// [`Command::Restricted`]); never stored.
    #[serde(skip)]
    acting: Option<Arc<Grants>>,
}

impl ClusterState {
    /// Applies the command at log `index`. Deterministic: no clock, no randomness, no I/O.
    /// A command that cannot take effect (e.g. creating an app that exists) changes nothing
    /// and says why in [`Applied::Rejected`].
    pub fn apply(&mut self, index: u64, command: Command) -> Applied {
        self.applied_index = index;
        let (apps, groups) = (self.apps.clone(), self.groups.clone());
        let applied = self.apply_command(index, command);
        if !(apps.ptr_eq(&self.apps) && groups.ptr_eq(&self.groups)) {
            self.definitions_index = index;
        }
        applied
    }

    fn apply_command(&mut self, index: u64, command: Command) -> Applied {
        match command {
            Command::CreateApp {
                app,
                deployment_id,
                force,
            } => {
                if self.apps.contains_key(&app.id) {
                    return Applied::Rejected(Rejection::AppExists(app.id));
                }
                let id = app.id.clone();
                let version = app.version;
                let app = match app.with_service_ports(None, || self.service_ports_in_use(&id)) {
                    Ok(app) => app,
                    Err(error) => return Applied::Rejected(Rejection::InvalidApp(error.into())),
                };
                let changes = vec![(id.clone(), Some(app))];
                match self.change_apps(index, changes, version, deployment_id.clone(), force) {
                    Ok(change) => match self.apps.get(&id) {
                        Some(app) => Applied::AppCreated {
                            app: Arc::clone(app),
                            deployment_id,
                            change,
                        },
                        None => Applied::Rejected(Rejection::AppUnknown(id)),
                    },
                    Err(rejection) => Applied::Rejected(rejection),
                }
            }
            Command::UpdateApp {
                id,
                version,
                patch,
                partial,
                deployment_id,
                force,
            } => match self.app_after_update(&id, version, &patch, partial) {
                Ok((app, created)) => {
                    let changes = vec![(id.clone(), Some(app))];
                    match self.change_apps(index, changes, version, deployment_id.clone(), force) {
                        Ok(change) => match self.apps.get(&id) {
                            Some(app) => Applied::AppUpdated {
                                created,
                                version,
                                deployment_id,
                                app: Arc::clone(app),
                                change,
                            },
                            None => Applied::Rejected(Rejection::AppUnknown(id)),
                        },
                        Err(rejection) => Applied::Rejected(rejection),
                    }
                }
                Err(error) => Applied::Rejected(Rejection::InvalidApp(error)),
            },
            Command::DeleteApp {
                id,
                version,
                deployment_id,
                force,
            } => {
                if !self.apps.contains_key(&id) {
                    return Applied::Rejected(Rejection::AppUnknown(id));
                }
                match self.change_apps(
                    index,
                    vec![(id, None)],
                    version,
                    deployment_id.clone(),
                    force,
                ) {
                    Ok(change) => Applied::AppDeleted {
                        version,
                        deployment_id,
                        change,
                    },
                    Err(rejection) => Applied::Rejected(rejection),
                }
            }
            Command::RestartApp {
                id,
                version,
                deployment_id,
                force,
            } => {
                let Some(app) = self.apps.get(&id) else {
                    return Applied::Rejected(Rejection::AppUnknown(id));
                };
                let mut restarted = App::clone(app);
                restarted.version = version;
                restarted.version_info.last_config_change_at = version;
                let changes = vec![(id.clone(), Some(restarted))];
                match self.change_apps(index, changes, version, deployment_id.clone(), force) {
                    Ok(change) => match self.apps.get(&id) {
                        Some(app) => Applied::AppUpdated {
                            created: false,
                            version,
                            deployment_id,
                            app: Arc::clone(app),
                            change,
                        },
                        None => Applied::Rejected(Rejection::AppUnknown(id)),
                    },
                    Err(rejection) => Applied::Rejected(rejection),
                }
            }
            Command::DeploymentStepDone { id, step, at } => {
                self.deployment_step_done(&id, step, at)
            }
            Command::CancelDeployment { id, revert } => self.cancel_deployment(index, &id, revert),
            Command::RegisterAgent { info, at } => self.register_agent(index, info, at),
            Command::AgentsUnreachable { agents, at } => self.agents_unreachable(&agents, at),
            Command::AgentReachable {
                agent_id,
                running,
                at,
            } => self.agent_reachable(index, &agent_id, &running, at),
            Command::LaunchTasks { tasks } => self.launch_tasks(index, tasks),
            Command::KillTasks { task_ids } => self.kill_tasks(index, &task_ids),
            Command::StatusUpdates { agent_id, updates } => {
                self.status_updates(index, &agent_id, updates)
            }
            Command::UpdateGroup {
                update,
                version,
                create,
                deployment_id,
                force,
            } => self.update_group(index, &update, version, create, deployment_id, force),
            Command::DeleteGroup {
                id,
                version,
                deployment_id,
                force,
            } => self.delete_group(index, &id, version, deployment_id, force),
            Command::SetRepo { config } => self.set_repo(config),
            Command::RemoveRepo { name } => self.remove_repo(&name),
            Command::RecordRepo { name, change } => self.record_repo(&name, change),
            Command::SetAclPolicy { policy } => self.set_acl_policy(policy),
            Command::RemoveAclPolicy { name } => self.remove_acl_policy(&name),
            Command::CreateAclToken { token } => self.create_acl_token(token),
            Command::RevokeAclToken { id } => self.revoke_acl_token(&id),
            Command::Restricted { grants, command } => {
                self.apply_restricted(index, grants, *command)
            }
            Command::MastersSeen { ids } => {
                self.masters_seen.extend(ids);
                Applied::Nothing
            }
            Command::IfDefinitionsAt {
                index: expected,
                command,
            } => {
                if expected == self.definitions_index {
                    self.apply_command(index, *command)
                } else {
                    Applied::Rejected(Rejection::DefinitionsChanged {
                        expected,
                        actual: self.definitions_index,
                    })
                }
            }
            Command::Batch(commands) => Applied::Batch(
                commands
                    .into_iter()
                    .map(|command| self.apply(index, command))
                    .collect(),
            ),
        }
    }

    /// What an update of app `id` would store (and whether it creates the app): `patch`
    /// merged over the current definition (`partial`) or replacing it, validated, with
    /// service ports assigned. Used by `apply` and by handlers checking a request first.
    pub fn app_after_update(
        &self,
        id: &AppId,
        version: Timestamp,
        patch: &Map<String, Value>,
        partial: bool,
    ) -> Result<(App, bool), AppError> {
        let in_use = || self.service_ports_in_use(id);
        match self.apps.get(id) {
            Some(existing) => Ok((existing.updated(version, patch, partial, in_use)?, false)),
            None => {
                let app = App::from_json(id.clone(), version, patch)?;
                Ok((app.with_service_ports(None, in_use)?, true))
            }
        }
    }

    /// The service ports of every app but `except`.
    pub fn service_ports_in_use(&self, except: &AppId) -> BTreeSet<u16> {
        self.apps
            .iter()
            .filter(|(id, _)| *id != except)
            .flat_map(|(_, app)| app.spec.service_ports())
            .filter(|port| *port != 0)
            .collect()
    }

    /// The stored version `version` of app `id`.
    pub fn app_version(&self, id: &AppId, version: Timestamp) -> Option<&Arc<App>> {
        self.app_versions
            .get(id)?
            .iter()
            .find(|app| app.version == version)
    }

    /// Makes `app` current and records it as its newest version.
    fn store(&mut self, mut app: App) -> Arc<App> {
        if let Some(grants) = &self.acting {
            self.mark_unprivileged(grants, &mut app);
        }
        let app = Arc::new(app);
        self.apps.insert(app.id.clone(), Arc::clone(&app));
        let versions = self.app_versions.entry(app.id.clone()).or_default();
        versions.push_front(Arc::clone(&app));
        versions.truncate(MAX_APP_VERSIONS);
        app
    }

    /// Records that a log entry without a command (a blank or membership entry) was applied.
    pub fn skip(&mut self, index: u64) {
        self.applied_index = index;
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod lifecycle_tests;

//! App changes as deployments: locking (409 unless forced), plans ordered by dependencies,
//! step progress, rollback and cancellation. Deterministic like the rest of `apply`.

use super::groups::{covers, dependencies_of};
use super::{Applied, ClusterState, Rejection};
use crate::model::{
    ActionKind, App, AppId, Deployment, DeploymentAction, DeploymentId, DeploymentStep, Goal,
    Group, GroupId, TaskId, TaskState, Timestamp,
};
use imbl::OrdMap;
use std::collections::BTreeMap;
use std::sync::Arc;

/// What a change did to deployments: the one it started, and the ones it superseded.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DeploymentChange {
    /// The new deployment (none when nothing needs rolling out).
    pub started: Option<Arc<Deployment>>,
    /// Running deployments cancelled by a forced change.
    pub superseded: Vec<Arc<Deployment>>,
    /// The new deployment had nothing left to wait for (e.g. an app with no instances), so
    /// it finished as it started.
    #[serde(default)]
    pub finished: bool,
}

impl ClusterState {
    /// The running deployments that affect `app`.
    pub fn deployments_of<'a>(
        &'a self,
        app: &'a AppId,
    ) -> impl Iterator<Item = &'a Arc<Deployment>> + 'a {
        self.deployments.values().filter(move |d| d.affects(app))
    }

    /// Where `app` stands in the deployments that affect it: waiting while one of them has
    /// not reached the app's step, rolling once one has.
    pub fn deployment_step(&self, app: &AppId) -> DeploymentStep {
        let mut step = DeploymentStep::Idle;
        for deployment in self.deployments_of(app) {
            match deployment.step_of(app) {
                Some(index) if index > deployment.current_step => return DeploymentStep::Waiting,
                Some(_) => step = DeploymentStep::Rolling,
                None => {}
            }
        }
        step
    }

    /// Applies a change of apps (`None` = delete) as one deployment. Locked apps refuse the
    /// change unless `force`, which cancels the deployments holding them.
    pub(super) fn change_apps(
        &mut self,
        index: u64,
        changes: Vec<(AppId, Option<App>)>,
        version: Timestamp,
        deployment_id: DeploymentId,
        force: bool,
    ) -> Result<DeploymentChange, Rejection> {
        self.check_tree(&changes)?;
        let mut holding: Vec<DeploymentId> = Vec::new();
        for (id, _) in &changes {
            for deployment in self.deployments_of(id) {
                if !holding.contains(&deployment.id) {
                    holding.push(deployment.id.clone());
                }
            }
        }
        if !holding.is_empty() && !force {
            return Err(Rejection::AppLocked(holding));
        }
        let superseded: Vec<Arc<Deployment>> = holding
            .iter()
            .filter_map(|id| self.deployments.remove(id))
            .collect();
        let mut original = Vec::new();
        let mut target = Vec::new();
        for (id, after) in changes {
            original.push((id.clone(), self.apps.get(&id).cloned()));
            let after = match after {
                Some(app) => Some(self.store(app)),
                None => {
                    self.remove_app(index, &id);
                    None
                }
            };
            target.push((id, after));
        }
        let steps = plan_steps(&original, &target, &self.groups);
        let mut deployment = Deployment {
            id: deployment_id.clone(),
            version,
            steps,
            current_step: 0,
            original,
            target,
        };
        // Steps that already took effect (nothing to launch or kill) are done at once.
        while deployment.current_step < deployment.steps.len()
            && deployment.current_actions().iter().all(|action| {
                self.app_tasks(&action.app).next().is_none() && self.action_done(action)
            })
        {
            deployment.current_step += 1;
        }
        let finished = deployment.current_step >= deployment.steps.len();
        let started = (!deployment.steps.is_empty()).then(|| Arc::new(deployment));
        if let (Some(deployment), false) = (&started, finished) {
            self.deployments
                .insert(deployment_id, Arc::clone(deployment));
        }
        Ok(DeploymentChange {
            started,
            superseded,
            finished,
        })
    }

    /// Deletes an app: its tasks are killed, its versions dropped.
    fn remove_app(&mut self, index: u64, id: &AppId) {
        self.apps.remove(id);
        self.app_versions.remove(id);
        let tasks: Vec<TaskId> = self
            .app_tasks(id)
            .filter(|task| task.goal == Goal::Running)
            .map(|task| task.id.clone())
            .collect();
        self.kill_tasks(index, &tasks);
    }

    /// Marks step `step` of deployment `id` done; the deployment ends after its last step.
    pub(super) fn deployment_step_done(
        &mut self,
        id: &DeploymentId,
        step: usize,
        at: Timestamp,
    ) -> Applied {
        let Some(deployment) = self.deployments.get(id).cloned() else {
            return Applied::Nothing;
        };
        if deployment.current_step != step {
            return Applied::Nothing;
        }
        let next = Deployment {
            current_step: step + 1,
            ..Deployment::clone(&deployment)
        };
        let next = Arc::new(next);
        let finished = next.current_step >= next.steps.len();
        if finished {
            self.deployments.remove(id);
        } else {
            self.deployments.insert(id.clone(), Arc::clone(&next));
        }
        Applied::DeploymentStepDone {
            deployment: next,
            step,
            finished,
            at,
        }
    }

    /// Cancels deployment `id`; with `revert`, a new deployment restores what it changed.
    pub(super) fn cancel_deployment(
        &mut self,
        index: u64,
        id: &DeploymentId,
        revert: Option<(DeploymentId, Timestamp)>,
    ) -> Applied {
        let Some(canceled) = self.deployments.remove(id) else {
            return Applied::Rejected(Rejection::DeploymentUnknown(id.clone()));
        };
        let Some((revert_id, version)) = revert else {
            return Applied::DeploymentCanceled {
                canceled,
                change: DeploymentChange::default(),
            };
        };
        let changes = canceled
            .original
            .iter()
            .map(|(app_id, before)| {
                let restored = before.as_ref().map(|before| {
                    let config_changed = self.apps.get(app_id).is_none_or(|current| {
                        current.version_info.last_config_change_at
                            != before.version_info.last_config_change_at
                    });
                    let mut app = App::clone(before);
                    app.version = version;
                    app.version_info.last_scaling_at = version;
                    if config_changed {
                        app.version_info.last_config_change_at = version;
                    }
                    app
                });
                (app_id.clone(), restored)
            })
            .collect();
        match self.change_apps(index, changes, version, revert_id, true) {
            Ok(change) => Applied::DeploymentCanceled { canceled, change },
            Err(rejection) => Applied::Rejected(rejection),
        }
    }

    /// True when `action` of a deployment has taken full effect: for an app that runs,
    /// exactly `instances` tasks of its current configuration running (and healthy, where it
    /// has health checks) and no other task left; for a stopped app, no task left.
    pub fn action_done(&self, action: &DeploymentAction) -> bool {
        let mut tasks = self.app_tasks(&action.app).peekable();
        let Some(app) = self.apps.get(&action.app) else {
            return tasks.peek().is_none();
        };
        if action.action == ActionKind::StopApplication {
            return false;
        }
        let config = app.version_info.last_config_change_at;
        let checked = !app.spec.health_checks.is_empty();
        let mut ready = 0i64;
        for task in tasks {
            let current = task.goal == Goal::Running
                && task.version >= config
                && task.state == TaskState::Running
                && (!checked || task.healthy() == Some(true));
            if !current {
                return false;
            }
            ready += 1;
        }
        ready == app.spec.instances
    }
}

/// The steps of a change: stops first, then the other actions ordered so that an app comes
/// after the apps (and groups) it depends on.
fn plan_steps(
    original: &[(AppId, Option<Arc<App>>)],
    target: &[(AppId, Option<Arc<App>>)],
    groups: &OrdMap<GroupId, Arc<Group>>,
) -> Vec<Vec<DeploymentAction>> {
    let mut stops = Vec::new();
    let mut others: Vec<(DeploymentAction, &Arc<App>)> = Vec::new();
    for ((id, before), (_, after)) in original.iter().zip(target) {
        let action = match (before, after) {
            (None, None) => continue,
            (Some(_), None) => {
                stops.push(DeploymentAction {
                    action: ActionKind::StopApplication,
                    app: id.clone(),
                });
                continue;
            }
            (None, Some(_)) => ActionKind::StartApplication,
            (Some(before), Some(after)) => {
                if before.version_info.last_config_change_at
                    != after.version_info.last_config_change_at
                {
                    ActionKind::RestartApplication
                } else if before.spec.instances != after.spec.instances {
                    ActionKind::ScaleApplication
                } else {
                    continue;
                }
            }
        };
        if let Some(app) = after {
            others.push((
                DeploymentAction {
                    action,
                    app: id.clone(),
                },
                app,
            ));
        }
    }
    // Depth = the longest chain of dependencies among the changed apps.
    let mut depth: BTreeMap<AppId, usize> = BTreeMap::new();
    for _ in 0..others.len() {
        for (action, app) in &others {
            let deepest = others
                .iter()
                .filter(|(other, _)| other.app != action.app && depends_on(app, &other.app, groups))
                .map(|(other, _)| depth.get(&other.app).copied().unwrap_or(0) + 1)
                .max()
                .unwrap_or(0);
            depth.insert(action.app.clone(), deepest.min(others.len()));
        }
    }
    let mut steps: Vec<Vec<DeploymentAction>> = Vec::new();
    if !stops.is_empty() {
        steps.push(stops);
    }
    let levels = depth.values().copied().max().map_or(0, |max| max + 1);
    for level in 0..levels {
        let step: Vec<DeploymentAction> = others
            .iter()
            .filter(|(action, _)| depth.get(&action.app) == Some(&level))
            .map(|(action, _)| action.clone())
            .collect();
        if !step.is_empty() {
            steps.push(step);
        }
    }
    steps
}

/// True if `app` depends on `other` directly, or on a group that contains it, or if a group
/// holding `app` does.
fn depends_on(app: &App, other: &AppId, groups: &OrdMap<GroupId, Arc<Group>>) -> bool {
    dependencies_of(&app.id, &app.spec.dependencies, groups)
        .any(|dependency| covers(dependency, other))
}

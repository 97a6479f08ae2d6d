//! Deployments: the plan that rolls a change of apps out, step by step.

use super::{App, AppId, DeploymentId, Timestamp};
use serde_json::{json, Value};
use std::sync::Arc;

/// What a deployment step does to one app (Marathon's action names).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ActionKind {
    /// A new app: launch its instances.
    StartApplication,
    /// Only the instance count changed.
    ScaleApplication,
    /// The configuration changed (or a restart was asked): replace every task, rolling.
    RestartApplication,
    /// The app was deleted: kill its tasks.
    StopApplication,
}

impl ActionKind {
    /// Marathon's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::StartApplication => "StartApplication",
            Self::ScaleApplication => "ScaleApplication",
            Self::RestartApplication => "RestartApplication",
            Self::StopApplication => "StopApplication",
        }
    }
}

/// One action of a step.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DeploymentAction {
    /// What happens.
    pub action: ActionKind,
    /// To which app.
    pub app: AppId,
}

/// A running deployment, stored in the replicated state so a new leader resumes it.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Deployment {
    /// Its id (`Marathon-Deployment-Id`).
    pub id: DeploymentId,
    /// The version of the change it rolls out.
    pub version: Timestamp,
    /// Steps run one after the other (dependencies first); actions in a step run together.
    pub steps: Vec<Vec<DeploymentAction>>,
    /// Index of the step in progress.
    pub current_step: usize,
    /// Each affected app before the change (`None`: it did not exist), for rollback.
    pub original: Vec<(AppId, Option<Arc<App>>)>,
    /// Each affected app after the change (`None`: deleted).
    pub target: Vec<(AppId, Option<Arc<App>>)>,
}

impl Deployment {
    /// The apps it changes.
    pub fn affected_apps(&self) -> impl Iterator<Item = &AppId> {
        self.target.iter().map(|(id, _)| id)
    }

    /// True if it changes `app`.
    pub fn affects(&self, app: &AppId) -> bool {
        self.affected_apps().any(|id| id == app)
    }

    /// The step `app` is in, if it is affected.
    pub fn step_of(&self, app: &AppId) -> Option<usize> {
        self.steps
            .iter()
            .position(|step| step.iter().any(|action| &action.app == app))
    }

    /// The actions of the step in progress.
    pub fn current_actions(&self) -> &[DeploymentAction] {
        self.steps.get(self.current_step).map_or(&[], Vec::as_slice)
    }

    fn steps_json(&self) -> Value {
        self.steps
            .iter()
            .map(|step| json!({ "actions": step.iter().map(action_json).collect::<Vec<_>>() }))
            .collect()
    }

    /// `GET /v2/deployments` JSON: `currentStep` is 1-based.
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "version": self.version.to_rfc3339(),
            "affectedApps": self.affected_apps().collect::<Vec<_>>(),
            "affectedPods": [],
            "steps": self.steps_json(),
            "currentActions": self.current_actions().iter().map(|action| {
                let mut json = action_json(action);
                if let Some(object) = json.as_object_mut() {
                    object.insert("readinessCheckResults".into(), json!([]));
                }
                json
            }).collect::<Vec<_>>(),
            "currentStep": (self.current_step + 1).min(self.steps.len()),
            "totalSteps": self.steps.len(),
        })
    }

    /// The plan as events carry it; `light` leaves out `original` and `target` (root groups
    /// holding the affected apps before and after).
    pub fn plan_json(&self, light: bool) -> Value {
        let mut plan = json!({
            "id": self.id,
            "version": self.version.to_rfc3339(),
            "steps": self.steps_json(),
        });
        if !light {
            if let Some(object) = plan.as_object_mut() {
                object.insert("original".into(), root_group(&self.original, self.version));
                object.insert("target".into(), root_group(&self.target, self.version));
            }
        }
        plan
    }

    /// The JSON of one step's actions (`currentStep` of events).
    pub fn step_json(&self, step: usize) -> Value {
        let actions: Vec<Value> = self
            .steps
            .get(step)
            .map(|actions| actions.iter().map(action_json).collect())
            .unwrap_or_default();
        json!({ "actions": actions })
    }
}

fn action_json(action: &DeploymentAction) -> Value {
    json!({ "action": action.action.as_str(), "app": action.app })
}

fn root_group(apps: &[(AppId, Option<Arc<App>>)], version: Timestamp) -> Value {
    let apps: Vec<Value> = apps
        .iter()
        .filter_map(|(_, app)| app.as_ref().map(|app| Value::Object(app.to_json())))
        .collect();
    json!({
        "id": "/",
        "apps": apps,
        "groups": [],
        "pods": [],
        "dependencies": [],
        "version": version.to_rfc3339(),
    })
}

/// Where an app stands in the deployments that touch it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DeploymentStep {
    /// No deployment touches the app: it is scaled, old tasks are left as they are.
    #[default]
    Idle,
    /// A deployment has reached the app's step: tasks of an older configuration are
    /// replaced within its `upgradeStrategy`.
    Rolling,
    /// A deployment has a step for the app that it has not reached: the app waits.
    Waiting,
}

//! Marathon's event bus entries derived from what applying a command produced
//! (`status_update_event`, `instance_changed_event`, ...). Pure: the timestamps come from the
//! commands.

use super::{Applied, DeploymentChange, HealthChange};
use crate::model::{ActionKind, Deployment, Task, TaskState};
use serde_json::{json, Value};

/// One event of `/v2/events`: its type and its JSON (which includes `eventType` and
/// `timestamp`).
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Marathon's `eventType`.
    pub event_type: &'static str,
    /// The whole event object.
    pub json: Value,
}

impl Event {
    /// An event of `event_type` with `fields` plus `eventType` and `timestamp`.
    pub fn new(event_type: &'static str, timestamp: &str, fields: Value) -> Self {
        let mut json = fields;
        if let Some(object) = json.as_object_mut() {
            object.insert("eventType".into(), json!(event_type));
            object.insert("timestamp".into(), json!(timestamp));
        }
        Self { event_type, json }
    }
}

/// The events an applied entry produces, in order.
pub fn events(applied: &Applied, out: &mut Vec<Event>) {
    match applied {
        Applied::Batch(all) => {
            for one in all {
                events(one, out);
            }
        }
        Applied::StatusApplied {
            changed, health, ..
        } => {
            for task in changed {
                out.push(status_update_event(task));
                out.push(instance_changed_event(task));
                if task.reason.as_deref() == Some(UNHEALTHY_KILL_REASON) {
                    out.push(unhealthy_instance_kill_event(task));
                }
            }
            for change in health {
                health_events(change, out);
            }
        }
        Applied::AppCreated { change, .. }
        | Applied::AppUpdated { change, .. }
        | Applied::AppDeleted { change, .. } => deployment_change(change, out),
        Applied::DeploymentStepDone {
            deployment,
            step,
            finished,
            at,
        } => {
            let at = at.to_rfc3339();
            let plan = deployment.plan_json(false);
            out.push(Event::new(
                "deployment_step_success",
                &at,
                json!({"plan": plan, "currentStep": deployment.step_json(*step)}),
            ));
            for action in deployment.steps.get(*step).into_iter().flatten() {
                if action.action == ActionKind::StopApplication {
                    out.push(Event::new(
                        "app_terminated_event",
                        &at,
                        json!({"appId": action.app}),
                    ));
                }
            }
            if *finished {
                out.push(Event::new(
                    "deployment_success",
                    &at,
                    json!({"id": deployment.id, "plan": plan}),
                ));
            } else {
                out.push(deployment_info(deployment, &at));
            }
        }
        Applied::GroupChanged {
            id,
            version,
            change,
            ..
        } => {
            out.push(Event::new(
                "group_change_success",
                &version.to_rfc3339(),
                json!({"groupId": id, "version": version.to_rfc3339()}),
            ));
            deployment_change(change, out);
        }
        Applied::DeploymentCanceled { canceled, change } => {
            deployment_failed(canceled, out);
            deployment_change(change, out);
        }
        _ => {}
    }
}

/// `deployment_failed` for superseded deployments, `deployment_info` for the new one.
fn deployment_change(change: &DeploymentChange, out: &mut Vec<Event>) {
    for superseded in &change.superseded {
        deployment_failed(superseded, out);
    }
    if let Some(started) = &change.started {
        let at = started.version.to_rfc3339();
        out.push(deployment_info(started, &at));
        if change.finished {
            out.push(Event::new(
                "deployment_success",
                &at,
                json!({"id": started.id, "plan": started.plan_json(false)}),
            ));
        }
    }
}

fn deployment_info(deployment: &Deployment, at: &str) -> Event {
    Event::new(
        "deployment_info",
        at,
        json!({
            "plan": deployment.plan_json(false),
            "currentStep": deployment.step_json(deployment.current_step),
        }),
    )
}

/// A cancelled (or superseded) deployment: its step in progress failed, then the plan.
fn deployment_failed(deployment: &Deployment, out: &mut Vec<Event>) {
    let at = deployment.version.to_rfc3339();
    let plan = deployment.plan_json(false);
    out.push(Event::new(
        "deployment_step_failure",
        &at,
        json!({"plan": plan, "currentStep": deployment.step_json(deployment.current_step)}),
    ));
    out.push(Event::new(
        "deployment_failed",
        &at,
        json!({"id": deployment.id, "plan": plan, "reason": "cancelled"}),
    ));
}

/// The reason of a task the agent killed because it failed its health checks.
pub const UNHEALTHY_KILL_REASON: &str = "REASON_TASK_UNHEALTHY_CHECK_FAILED";

fn health_events(change: &HealthChange, out: &mut Vec<Event>) {
    let task = &change.task;
    let at = change.at.to_rfc3339();
    let version = task.version.to_rfc3339();
    if change.failed {
        out.push(Event::new(
            "failed_health_check_event",
            &at,
            json!({"appId": task.app_id, "taskId": task.id.instance_id(), "instanceId": task.id.instance_id(), "healthCheck": change.check}),
        ));
    }
    if change.alive_changed {
        out.push(Event::new(
            "health_status_changed_event",
            &at,
            json!({"appId": task.app_id, "instanceId": task.id.instance_id(), "taskId": task.id, "version": version, "alive": !change.failed}),
        ));
    }
    if change.healthy_changed {
        out.push(Event::new(
            "instance_health_changed_event",
            &at,
            json!({"instanceId": task.id.instance_id(), "runSpecId": task.app_id, "runSpecVersion": version, "healthy": task.healthy()}),
        ));
    }
}

fn unhealthy_instance_kill_event(task: &Task) -> Event {
    Event::new(
        "unhealthy_instance_kill_event",
        &task.updated_at.to_rfc3339(),
        json!({
            "appId": task.app_id,
            "taskId": task.id,
            "instanceId": task.id.instance_id(),
            "version": task.version.to_rfc3339(),
            "reason": task.message,
            "host": task.host,
            "slaveId": task.agent_id,
        }),
    )
}

fn ip_addresses(task: &Task) -> Value {
    task.ip_addresses
        .iter()
        .map(|ip| json!({"ipAddress": ip, "protocol": if ip.contains(':') { "IPv6" } else { "IPv4" }}))
        .collect()
}

fn status_update_event(task: &Task) -> Event {
    Event::new(
        "status_update_event",
        &task.updated_at.to_rfc3339(),
        json!({
            "slaveId": task.agent_id,
            "taskId": task.id,
            "taskStatus": task.state,
            "message": task.message,
            "appId": task.app_id,
            "host": task.host,
            "ipAddresses": ip_addresses(task),
            "ports": task.ports,
            "version": task.version.to_rfc3339(),
        }),
    )
}

/// Marathon's instance condition names for task states.
fn condition(state: TaskState) -> &'static str {
    match state {
        TaskState::Staging => "Staging",
        TaskState::Starting => "Starting",
        TaskState::Running => "Running",
        TaskState::Killing => "Killing",
        TaskState::Finished => "Finished",
        TaskState::Failed => "Failed",
        TaskState::Killed => "Killed",
        TaskState::Lost | TaskState::Gone => "Gone",
        TaskState::Unreachable => "Unreachable",
        TaskState::Error => "Error",
    }
}

fn instance_changed_event(task: &Task) -> Event {
    Event::new(
        "instance_changed_event",
        &task.updated_at.to_rfc3339(),
        json!({
            "instanceId": task.id.instance_id(),
            "condition": condition(task.state),
            "runSpecId": task.app_id,
            "agentId": task.agent_id,
            "host": task.host,
            "runSpecVersion": task.version.to_rfc3339(),
            "goal": match task.goal { crate::model::Goal::Running => "Running", crate::model::Goal::Decommissioned => "Decommissioned" },
        }),
    )
}

//! The apps of a deployment group as the Marathon API shows them (`GET /v2/apps` with
//! `embed=apps.tasks`): instance counts, deployment labels, deployments in progress, and
//! which tasks are in the load balancer's rotation. Pure: reads JSON only.
//!
//! May depend on: serde_json, orch_core::model (timestamps), the sibling modules.

use super::definition::{self, Colour, COLOUR, GROUP, STARTED_AT};
use super::error::BlueGreenError;
use orch_core::model::Timestamp;
use serde_json::Value;
use std::collections::BTreeMap;

/// Task states that will not run again or are already being killed.
const GOING: [&str; 10] = [
    "TASK_KILLING",
    "TASK_KILLED",
    "TASK_FINISHED",
    "TASK_FAILED",
    "TASK_LOST",
    "TASK_ERROR",
    "TASK_DROPPED",
    "TASK_GONE",
    "TASK_GONE_BY_OPERATOR",
    "TASK_UNKNOWN",
];

/// One task of an app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveTask {
    /// The task id.
    pub id: String,
    /// Its Mesos state (`TASK_RUNNING`, ...).
    pub state: String,
    /// `Some(true)` when it has health results and all are alive; `None` without results.
    pub healthy: Option<bool>,
}

impl LiveTask {
    /// Whether the task is in the load balancer's rotation: running, and healthy if its app
    /// has health checks.
    pub fn serving(&self, health_checked: bool) -> bool {
        self.state == "TASK_RUNNING" && (!health_checked || self.healthy == Some(true))
    }

    /// Whether killing it still lowers what runs (it is neither gone nor being killed).
    pub fn killable(&self) -> bool {
        !GOING.contains(&self.state.as_str())
    }
}

/// One app of the group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveApp {
    /// The app id.
    pub id: String,
    /// Its instance count.
    pub instances: u32,
    /// Its labels (string values only).
    pub labels: BTreeMap<String, String>,
    /// Its first service port.
    pub service_port: Option<u16>,
    /// Whether it has health checks.
    pub health_checked: bool,
    /// Whether a deployment holds it.
    pub deploying: bool,
    /// Its tasks.
    pub tasks: Vec<LiveTask>,
}

impl LiveApp {
    /// Reads one app of `GET /v2/apps?embed=apps.tasks`.
    pub fn from_json(app: &Value) -> Result<LiveApp, BlueGreenError> {
        let id = app["id"]
            .as_str()
            .ok_or(BlueGreenError::BadAnswer {
                app: "?".into(),
                field: "id",
            })?
            .to_owned();
        let bad = |field| BlueGreenError::BadAnswer {
            app: id.clone(),
            field,
        };
        let instances = app["instances"]
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| bad("instances"))?;
        let labels = app["labels"]
            .as_object()
            .into_iter()
            .flatten()
            .filter_map(|(name, value)| Some((name.clone(), value.as_str()?.to_owned())))
            .collect();
        let tasks = app["tasks"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|task| {
                let id = task["id"].as_str().ok_or_else(|| bad("tasks[].id"))?;
                let results = task["healthCheckResults"].as_array();
                let healthy = results.filter(|r| !r.is_empty()).map(|results| {
                    results
                        .iter()
                        .all(|result| result["alive"] == Value::Bool(true))
                });
                Ok(LiveTask {
                    id: id.to_owned(),
                    state: task["state"].as_str().unwrap_or_default().to_owned(),
                    healthy,
                })
            })
            .collect::<Result<Vec<_>, BlueGreenError>>()?;
        Ok(LiveApp {
            service_port: definition::service_ports(app).1,
            health_checked: app["healthChecks"]
                .as_array()
                .is_some_and(|checks| !checks.is_empty()),
            deploying: app["deployments"]
                .as_array()
                .is_some_and(|deployments| !deployments.is_empty()),
            id,
            instances,
            labels,
            tasks,
        })
    }

    /// The tasks in the load balancer's rotation, at most `instances` of them.
    pub fn serving(&self) -> u32 {
        let serving = self
            .tasks
            .iter()
            .filter(|task| task.serving(self.health_checked))
            .count();
        u32::try_from(serving)
            .unwrap_or(u32::MAX)
            .min(self.instances)
    }

    /// `HAPROXY_DEPLOYMENT_COLOUR`.
    pub fn colour(&self) -> Option<Colour> {
        self.labels.get(COLOUR).and_then(|c| Colour::parse(c))
    }

    /// `HAPROXY_DEPLOYMENT_STARTED_AT`, if it is a timestamp.
    pub fn started_at(&self) -> Option<Timestamp> {
        self.labels
            .get(STARTED_AT)
            .and_then(|text| Timestamp::parse(text).ok())
    }

    /// A label holding a count.
    pub fn count_label(&self, name: &str) -> Option<u32> {
        self.labels.get(name).and_then(|v| v.trim().parse().ok())
    }

    /// Up to `count` tasks to kill: those out of rotation first, then by id (the order zdd
    /// uses), never one already being killed.
    pub fn victims(&self, count: u32) -> Vec<String> {
        let mut candidates: Vec<&LiveTask> =
            self.tasks.iter().filter(|task| task.killable()).collect();
        candidates.sort_by_key(|task| (task.serving(self.health_checked), task.id.as_str()));
        candidates
            .into_iter()
            .take(usize::try_from(count).unwrap_or(usize::MAX))
            .map(|task| task.id.clone())
            .collect()
    }

    /// `/web-blue (3 instances)`.
    pub fn describe(&self) -> String {
        let plural = if self.instances == 1 { "" } else { "s" };
        format!("{} ({} instance{plural})", self.id, self.instances)
    }
}

/// The apps of `GET /v2/apps` whose `HAPROXY_DEPLOYMENT_GROUP` is `group`, oldest deploy
/// first (by `HAPROXY_DEPLOYMENT_STARTED_AT`; apps without it count as oldest).
pub fn group_members(answer: &Value, group: &str) -> Result<Vec<LiveApp>, BlueGreenError> {
    let mut members = answer["apps"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|app| definition::label(app, GROUP).is_some_and(|g| g.trim() == group))
        .map(LiveApp::from_json)
        .collect::<Result<Vec<_>, _>>()?;
    members.sort_by(|a, b| (a.started_at(), &a.id).cmp(&(b.started_at(), &b.id)));
    Ok(members)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn task(id: &str, state: &str, alive: Option<bool>) -> Value {
        let results = match alive {
            Some(alive) => json!([{"alive": alive}]),
            None => json!([]),
        };
        json!({"id": id, "state": state, "healthCheckResults": results})
    }

    #[test]
    fn apps_of_the_group_are_read_oldest_first() {
        let answer = json!({"apps": [
            {"id": "/web-green", "instances": 1, "deployments": [{"id": "d1"}],
             "portDefinitions": [{"port": 10001}],
             "labels": {GROUP: "web", COLOUR: "green", STARTED_AT: "2024-01-02T00:00:00.000Z"},
             "healthChecks": [{"protocol": "HTTP"}],
             "tasks": [task("g1", "TASK_RUNNING", Some(true)), task("g2", "TASK_RUNNING", None)]},
            {"id": "/other", "instances": 1, "labels": {GROUP: "other"}},
            {"id": "/web-blue", "instances": 3, "deployments": [],
             "portDefinitions": [{"port": 10000}],
             "labels": {GROUP: "web", COLOUR: "blue", STARTED_AT: "2024-01-01T00:00:00.000Z"},
             "tasks": [task("b1", "TASK_RUNNING", None), task("b2", "TASK_STAGING", None)]}
        ]});
        let members = group_members(&answer, "web").expect("valid");
        let ids: Vec<&str> = members.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(ids, ["/web-blue", "/web-green"]);
        let (blue, green) = (&members[0], &members[1]);
        assert_eq!(
            (blue.colour(), green.colour()),
            (Some(Colour::Blue), Some(Colour::Green))
        );
        assert_eq!(
            (blue.service_port, green.service_port),
            (Some(10000), Some(10001))
        );
        assert!(green.deploying && !blue.deploying);
        // Without checks a running task serves; with checks only a healthy one does.
        assert_eq!((blue.serving(), green.serving()), (1, 1));
        assert_eq!(blue.describe(), "/web-blue (3 instances)");
    }

    #[test]
    fn victims_are_out_of_rotation_tasks_first_and_never_dying_ones() {
        let app = LiveApp::from_json(&json!({
            "id": "/web-blue", "instances": 4, "healthChecks": [{"protocol": "HTTP"}],
            "tasks": [task("a", "TASK_RUNNING", Some(true)), task("b", "TASK_RUNNING", Some(false)),
                      task("c", "TASK_KILLING", Some(true)), task("d", "TASK_RUNNING", Some(true))]
        }))
        .expect("valid");
        assert_eq!(app.victims(2), ["b", "a"]);
        assert_eq!(app.victims(9), ["b", "a", "d"]);
        assert_eq!(app.serving(), 2);
    }

    #[test]
    fn answers_without_ids_or_counts_are_errors() {
        assert!(matches!(
            LiveApp::from_json(&json!({"instances": 1})),
            Err(BlueGreenError::BadAnswer { field: "id", .. })
        ));
        assert!(matches!(
            LiveApp::from_json(&json!({"id": "/a", "instances": -1})),
            Err(BlueGreenError::BadAnswer {
                field: "instances",
                ..
            })
        ));
    }
}

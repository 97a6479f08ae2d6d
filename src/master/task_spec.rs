//! What an agent needs to run a task, built from the app definition and the task's placement.

use crate::model::{App, Task};
use crate::protocol::{PortAssignment, TaskSpec};
use crate::state::ClusterState;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Marathon's default SIGTERM → SIGKILL window.
const DEFAULT_KILL_GRACE_MS: u64 = 3_000;

/// The spec of `task`, or `None` if its app is gone (it is then being killed anyway).
pub fn task_spec(state: &ClusterState, task: &Task) -> Option<TaskSpec> {
    let app = state.apps.get(&task.app_id)?;
    Some(build(app, task))
}

fn build(app: &App, task: &Task) -> TaskSpec {
    let definition = &app.definition;
    let ports = task
        .ports
        .iter()
        .enumerate()
        .map(|(index, host_port)| PortAssignment {
            host_port: *host_port,
            container_port: None,
            requested: 0,
            name: port_name(definition, index),
            protocol: "tcp".into(),
        })
        .collect();
    TaskSpec {
        task_id: task.id.clone(),
        app_id: task.app_id.clone(),
        app_version: task.version,
        cmd: string(definition, "cmd"),
        args: strings(definition.get("args")),
        user: string(definition, "user"),
        env: string_map(definition.get("env")),
        labels: string_map(definition.get("labels")),
        cpus: number(definition, "cpus", 1.0),
        mem: number(definition, "mem", 128.0),
        disk: number(definition, "disk", 0.0),
        ports,
        docker: None,
        kill_grace_ms: definition
            .get("taskKillGracePeriodSeconds")
            .and_then(Value::as_u64)
            .map_or(DEFAULT_KILL_GRACE_MS, |seconds| {
                seconds.saturating_mul(1000)
            }),
        health_checks: Vec::new(),
    }
}

fn port_name(definition: &Map<String, Value>, index: usize) -> Option<String> {
    definition
        .get("portDefinitions")?
        .get(index)?
        .get("name")?
        .as_str()
        .map(str::to_owned)
}

fn string(definition: &Map<String, Value>, key: &str) -> Option<String> {
    definition
        .get(key)
        .and_then(Value::as_str)
        .map(str::to_owned)
}

fn number(definition: &Map<String, Value>, key: &str, default: f64) -> f64 {
    definition
        .get(key)
        .and_then(Value::as_f64)
        .unwrap_or(default)
}

fn strings(value: Option<&Value>) -> Vec<String> {
    value
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

fn string_map(value: Option<&Value>) -> BTreeMap<String, String> {
    value
        .and_then(Value::as_object)
        .map(|object| {
            object
                .iter()
                .filter_map(|(key, value)| Some((key.clone(), value.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

//! Marathon's AppInfo: an app's definition plus what `embed` asks for (tasks, counts,
//! deployments, lastTaskFailure, readiness, task stats), and the app list filters.

use super::tasks::{task_json, TaskJson};
use crate::master::ReadinessResult;
use orch_core::model::{App, TaskState};
use orch_core::state::ClusterState;
use serde_json::{json, Map, Value};

/// What to add to each app's JSON.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Embed {
    pub(super) tasks: bool,
    pub(super) counts: bool,
    pub(super) deployments: bool,
    pub(super) last_task_failure: bool,
    pub(super) readiness: bool,
    pub(super) task_stats: bool,
}

impl Embed {
    /// `embed` values with their `apps.`, `app.` or `group.apps.` prefix stripped, over
    /// `defaults`. Unknown embeds are ignored, as Marathon does.
    pub(super) fn parse(query: &[(String, String)], defaults: Embed) -> Embed {
        let mut embed = defaults;
        for (_, value) in query.iter().filter(|(key, _)| key == "embed") {
            let name = value
                .strip_prefix("group.apps.")
                .or_else(|| value.strip_prefix("apps."))
                .or_else(|| value.strip_prefix("app."))
                .unwrap_or(value);
            match name {
                "tasks" => {
                    embed.tasks = true;
                    embed.deployments = true;
                }
                "counts" => embed.counts = true,
                "deployments" => embed.deployments = true,
                "lastTaskFailure" => embed.last_task_failure = true,
                "readiness" => embed.readiness = true,
                "taskStats" => embed.task_stats = true,
                "failures" => {
                    embed.tasks = true;
                    embed.last_task_failure = true;
                    embed.deployments = true;
                }
                other => tracing::debug!(embed = other, "unknown embed ignored"),
            }
        }
        embed
    }
}

/// Marathon's AppInfo: the definition plus the embedded parts, serialised without an
/// intermediate JSON tree for the tasks.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct AppInfo<'a> {
    #[serde(flatten)]
    definition: Map<String, Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tasks_staged: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tasks_running: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tasks_healthy: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tasks_unhealthy: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    task_stats: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    deployments: Option<Vec<Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tasks: Option<Vec<TaskJson<'a>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_task_failure: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    readiness_check_results: Option<Value>,
}

impl AppInfo<'_> {
    /// Adds the readiness check results (`embed=apps.readiness`), which the leader keeps.
    pub(super) fn with_readiness(mut self, embed: Embed, results: Vec<ReadinessResult>) -> Self {
        if embed.readiness {
            self.readiness_check_results = Some(serde_json::to_value(results).unwrap_or_default());
        }
        self
    }
}

/// The app's JSON with the embedded parts.
pub(super) fn app_info<'a>(app: &'a App, state: &'a ClusterState, embed: Embed) -> AppInfo<'a> {
    let mut info = AppInfo {
        definition: app.to_json(),
        tasks_staged: None,
        tasks_running: None,
        tasks_healthy: None,
        tasks_unhealthy: None,
        task_stats: None,
        deployments: None,
        tasks: None,
        last_task_failure: None,
        readiness_check_results: None,
    };
    if embed.counts {
        let (mut staged, mut running, mut healthy, mut unhealthy) = (0, 0, 0, 0);
        for task in state.app_tasks(&app.id) {
            match task.state {
                TaskState::Staging | TaskState::Starting => staged += 1,
                TaskState::Running => running += 1,
                _ => {}
            }
            match task.healthy() {
                Some(true) => healthy += 1,
                Some(false) => unhealthy += 1,
                None => {}
            }
        }
        info.tasks_staged = Some(staged);
        info.tasks_running = Some(running);
        info.tasks_healthy = Some(healthy);
        info.tasks_unhealthy = Some(unhealthy);
    }
    if embed.task_stats {
        info.task_stats = Some(json!({}));
    }
    if embed.deployments {
        info.deployments = Some(
            state
                .deployments_of(&app.id)
                .map(|deployment| json!({"id": deployment.id}))
                .collect(),
        );
    }
    if embed.tasks {
        let service_ports = app.spec.service_ports();
        info.tasks = Some(
            state
                .app_tasks(&app.id)
                .map(|task| task_json(task, &service_ports))
                .collect(),
        );
    }
    if embed.last_task_failure {
        info.last_task_failure = state.last_task_failure.get(&app.id).map(|failed| {
            json!({
                "appId": failed.app_id,
                "host": failed.host,
                "message": failed.message,
                "state": failed.state,
                "taskId": failed.id,
                "timestamp": failed.updated_at.to_rfc3339(),
                "version": failed.version.to_rfc3339(),
                "slaveId": failed.agent_id,
            })
        });
    }
    if embed.readiness {
        info.readiness_check_results = Some(json!([]));
    }
    info
}

/// `GET /v2/apps` filters: `id` and `cmd` (case-insensitive substrings) and `label`.
pub(super) fn matches(app: &App, query: &[(String, String)]) -> bool {
    query.iter().all(|(key, value)| match key.as_str() {
        "id" => app
            .id
            .as_str()
            .to_lowercase()
            .contains(&value.to_lowercase()),
        "cmd" => app
            .spec
            .cmd
            .as_deref()
            .is_some_and(|cmd| cmd.to_lowercase().contains(&value.to_lowercase())),
        "label" => label_selector(value)
            .iter()
            .all(|term| term.holds(&app.spec.labels)),
        _ => true,
    })
}

/// One term of Marathon's label selector.
#[derive(Debug, PartialEq)]
enum Term {
    Exists(String),
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
}

impl Term {
    fn holds(&self, labels: &std::collections::BTreeMap<String, String>) -> bool {
        match self {
            Term::Exists(key) => labels.contains_key(key),
            Term::Equals(key, value) => labels.get(key) == Some(value),
            Term::NotEquals(key, value) => labels.get(key) != Some(value),
            Term::In(key, values) => labels.get(key).is_some_and(|v| values.contains(v)),
            Term::NotIn(key, values) => labels.get(key).is_none_or(|v| !values.contains(v)),
        }
    }
}

/// Parses `key`, `key==v`, `key!=v`, `key in (a,b)`, `key notin (a,b)`, comma-separated
/// (commas inside parentheses belong to the set; `\` escapes a character).
fn label_selector(text: &str) -> Vec<Term> {
    let mut terms = Vec::new();
    let mut current = String::new();
    let mut depth = 0;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(next) = chars.next() {
                    current.push(next);
                }
            }
            '(' => {
                depth += 1;
                current.push(c);
            }
            ')' => {
                depth -= 1;
                current.push(c);
            }
            ',' if depth == 0 => terms.push(std::mem::take(&mut current)),
            _ => current.push(c),
        }
    }
    terms.push(current);
    terms
        .iter()
        .filter_map(|term| parse_term(term.trim()))
        .collect()
}

fn parse_term(term: &str) -> Option<Term> {
    if term.is_empty() {
        return None;
    }
    if let Some((key, value)) = term.split_once("==") {
        return Some(Term::Equals(key.trim().into(), value.trim().into()));
    }
    if let Some((key, value)) = term.split_once("!=") {
        return Some(Term::NotEquals(key.trim().into(), value.trim().into()));
    }
    let set = |rest: &str| -> Vec<String> {
        rest.trim()
            .trim_start_matches('(')
            .trim_end_matches(')')
            .split(',')
            .map(|v| v.trim().to_owned())
            .collect()
    };
    if let Some((key, rest)) = term.split_once(" notin ") {
        return Some(Term::NotIn(key.trim().into(), set(rest)));
    }
    if let Some((key, rest)) = term.split_once(" in ") {
        return Some(Term::In(key.trim().into(), set(rest)));
    }
    Some(Term::Exists(term.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_selectors_parse_like_marathon() {
        assert_eq!(
            label_selector("env==prod, tier in (a,b), !x!=y, beta"),
            vec![
                Term::Equals("env".into(), "prod".into()),
                Term::In("tier".into(), vec!["a".into(), "b".into()]),
                Term::NotEquals("!x".into(), "y".into()),
                Term::Exists("beta".into()),
            ]
        );
        let labels = [("env".to_owned(), "prod".to_owned())].into();
        assert!(label_selector("env==prod").iter().all(|t| t.holds(&labels)));
        assert!(!label_selector("env notin (prod)")
            .iter()
            .all(|t| t.holds(&labels)));
        assert!(label_selector("a\\,b notin (x)")
            .iter()
            .all(|t| t.holds(&labels)));
    }
}

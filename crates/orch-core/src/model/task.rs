//! Tasks: ids in Marathon's format, Mesos task states and the task record of the cluster state.

use super::{AgentId, AppId, Timestamp};

/// A Marathon task id: `<safePath>.instance-<uuid>._app.<incarnation>`
/// (`prod_web.instance-3b5e…._app.1`). The app id can be recovered from it.
#[derive(
    Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct TaskId(pub String);

impl TaskId {
    /// The id of incarnation `incarnation` of instance `instance` (a UUID chosen by the leader).
    pub fn new(app: &AppId, instance: &str, incarnation: u32) -> Self {
        Self(format!(
            "{}.instance-{instance}._app.{incarnation}",
            safe_path(app)
        ))
    }

    /// The app this task belongs to, parsed from the id (new and legacy formats).
    pub fn app_id(&self) -> Option<AppId> {
        let prefix = match self
            .0
            .find(".instance-")
            .or_else(|| self.0.find(".marathon-"))
        {
            Some(at) => &self.0[..at],
            None => self.0.rsplit_once('.').map(|(prefix, _)| prefix)?,
        };
        AppId::parse(&prefix.replace('_', "/")).ok()
    }

    /// The instance part (`<safePath>.instance-<uuid>`), shared by every incarnation.
    pub fn instance_id(&self) -> &str {
        self.0
            .split_once("._app.")
            .map_or(&self.0, |(instance, _)| instance)
    }
}

impl std::fmt::Display for TaskId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// `/prod/web` → `prod_web`, as Marathon builds task ids.
pub fn safe_path(app: &AppId) -> String {
    app.to_string().trim_start_matches('/').replace('/', "_")
}

/// Mesos task states, as the API shows them.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[allow(clippy::upper_case_acronyms)]
pub enum TaskState {
    /// Assigned to an agent, not started yet.
    #[serde(rename = "TASK_STAGING")]
    Staging,
    /// The agent is starting it.
    #[serde(rename = "TASK_STARTING")]
    Starting,
    /// Running.
    #[serde(rename = "TASK_RUNNING")]
    Running,
    /// Being killed (grace period).
    #[serde(rename = "TASK_KILLING")]
    Killing,
    /// Exited with status 0.
    #[serde(rename = "TASK_FINISHED")]
    Finished,
    /// Exited non-zero, or could not start.
    #[serde(rename = "TASK_FAILED")]
    Failed,
    /// Killed on request.
    #[serde(rename = "TASK_KILLED")]
    Killed,
    /// Legacy: lost with its agent.
    #[serde(rename = "TASK_LOST")]
    Lost,
    /// Its agent stopped answering.
    #[serde(rename = "TASK_UNREACHABLE")]
    Unreachable,
    /// Gone for good (its agent came back without it, or it was expunged).
    #[serde(rename = "TASK_GONE")]
    Gone,
    /// The agent could not even try (bad spec).
    #[serde(rename = "TASK_ERROR")]
    Error,
}

impl TaskState {
    /// Every state, for parsing and listing.
    pub const ALL: [TaskState; 11] = [
        Self::Staging,
        Self::Starting,
        Self::Running,
        Self::Killing,
        Self::Finished,
        Self::Failed,
        Self::Killed,
        Self::Lost,
        Self::Unreachable,
        Self::Gone,
        Self::Error,
    ];

    /// The Mesos name, e.g. `TASK_RUNNING`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Staging => "TASK_STAGING",
            Self::Starting => "TASK_STARTING",
            Self::Running => "TASK_RUNNING",
            Self::Killing => "TASK_KILLING",
            Self::Finished => "TASK_FINISHED",
            Self::Failed => "TASK_FAILED",
            Self::Killed => "TASK_KILLED",
            Self::Lost => "TASK_LOST",
            Self::Unreachable => "TASK_UNREACHABLE",
            Self::Gone => "TASK_GONE",
            Self::Error => "TASK_ERROR",
        }
    }

    /// Parses a Mesos name, with or without the `TASK_` prefix, in any case.
    pub fn parse(text: &str) -> Option<Self> {
        let upper = text.to_ascii_uppercase();
        let name = upper.strip_prefix("TASK_").unwrap_or(&upper);
        Self::ALL
            .into_iter()
            .find(|state| &state.as_str()[5..] == name)
    }

    /// True once the task can never run again.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Finished | Self::Failed | Self::Killed | Self::Lost | Self::Gone | Self::Error
        )
    }

    /// Terminal states that count as a failure for launch backoff (Killed does not).
    pub fn is_failure(self) -> bool {
        matches!(
            self,
            Self::Finished | Self::Failed | Self::Lost | Self::Gone | Self::Error
        )
    }
}

impl std::fmt::Display for TaskState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the scheduler wants of a task.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Goal {
    /// Keep it running.
    Running,
    /// Kill it; forget it once terminal.
    Decommissioned,
}

/// The result of the latest health check of one kind on a task.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HealthResult {
    /// Index of the health check in the app definition.
    pub index: usize,
    /// Alive per the latest result.
    pub alive: bool,
    /// Failures in a row.
    pub consecutive_failures: u32,
    /// Time of the first success.
    pub first_success: Option<Timestamp>,
    /// Time of the latest success.
    pub last_success: Option<Timestamp>,
    /// Time of the latest failure.
    pub last_failure: Option<Timestamp>,
    /// Why the latest check failed.
    pub last_failure_cause: Option<String>,
}

/// A task in the cluster state: where it runs, what it should do and what it does.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Task {
    /// Its id.
    pub id: TaskId,
    /// Its app.
    pub app_id: AppId,
    /// The agent it was placed on.
    pub agent_id: AgentId,
    /// That agent's hostname.
    pub host: String,
    /// Host ports allocated to it, in port-definition order.
    pub ports: Vec<u16>,
    /// The app version it runs.
    pub version: Timestamp,
    /// The latest state reported (TASK_STAGING until the agent says otherwise).
    pub state: TaskState,
    /// What the scheduler wants of it.
    pub goal: Goal,
    /// When it was placed.
    pub staged_at: Timestamp,
    /// When it was first reported running.
    pub started_at: Option<Timestamp>,
    /// When the latest status update happened on the agent.
    pub updated_at: Timestamp,
    /// The latest status message.
    pub message: String,
    /// The latest status reason (Mesos `REASON_*`), if any.
    pub reason: Option<String>,
    /// The task's IP addresses (the agent's, or the container's).
    pub ip_addresses: Vec<String>,
    /// Health check results, one per check that has run.
    pub health: Vec<HealthResult>,
}

impl Task {
    /// Healthy when every check has a result and all are alive; `None` without results.
    pub fn healthy(&self) -> Option<bool> {
        if self.health.is_empty() {
            None
        } else {
            Some(self.health.iter().all(|result| result.alive))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_ids_round_trip_their_app() {
        let app = AppId::parse("/prod/web").expect("valid");
        let id = TaskId::new(&app, "3b5e6f", 1);
        assert_eq!(id.0, "prod_web.instance-3b5e6f._app.1");
        assert_eq!(id.app_id(), Some(app));
        assert_eq!(id.instance_id(), "prod_web.instance-3b5e6f");
        let legacy = TaskId("test-app.5dd78972-6771-11e5-94e1-be5b2935a987".into());
        assert_eq!(legacy.app_id(), AppId::parse("/test-app").ok());
    }

    #[test]
    fn states_parse_loosely_and_print_as_mesos() {
        assert_eq!(TaskState::parse("running"), Some(TaskState::Running));
        assert_eq!(TaskState::parse("TASK_KILLED"), Some(TaskState::Killed));
        assert_eq!(TaskState::parse("nope"), None);
        assert_eq!(
            serde_json::to_string(&TaskState::Unreachable)
                .ok()
                .as_deref(),
            Some("\"TASK_UNREACHABLE\"")
        );
        assert!(TaskState::Finished.is_failure());
        assert!(!TaskState::Killed.is_failure());
    }
}

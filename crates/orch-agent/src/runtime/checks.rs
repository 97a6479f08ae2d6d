//! The runtime's side of health checks: starts a running task's checks ([`health::start`]),
//! journals their results as status updates and kills a task that fails them.
//!
//! May depend on: the runtime's task table and journal, health, protocol, driver.

use super::{lock, Agent};
use crate::health::{self, HealthSink, TaskContext};
use orch_core::model::{TaskId, TaskState, Timestamp};
use orch_core::protocol::{HealthReport, StatusUpdate, TaskSpec};
use orch_driver::Driver;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

impl Agent {
    /// Journals a health check result of a task that is RUNNING and not being killed, as an
    /// update with its current state; false (nothing journaled) otherwise.
    fn report_health(&self, task_id: &TaskId, report: HealthReport) -> bool {
        let tasks = lock(&self.tasks);
        let Some(entry) = tasks.get(task_id) else {
            return false;
        };
        if entry.state != TaskState::Running || entry.kill.borrow().is_some() {
            return false;
        }
        let update = StatusUpdate {
            seq: 0,
            task_id: task_id.clone(),
            state: entry.state,
            message: report.cause.clone().unwrap_or_default(),
            reason: None,
            timestamp: Timestamp::from_system_time(SystemTime::now()),
            ip_addresses: entry.ip_addresses.clone(),
            health: Some(report),
        };
        let (update, written) = lock(&self.journal).append(update);
        tracing::info!(
            agent.id = %self.info.id,
            task.id = %task_id,
            seq = update.seq,
            health = ?update.health,
            "task health"
        );
        if let Err(error) = written {
            tracing::error!(
                agent.id = %self.info.id,
                seq = update.seq,
                error = &error as &dyn std::error::Error,
                "cannot write the status journal; the health report waits in memory and is sent once written"
            );
        }
        drop(tasks);
        self.status_ready.notify_one();
        true
    }

    /// Kills a live task for failing a health check (unless a kill is already under way):
    /// its terminal update will be TASK_KILLED with [`health::UNHEALTHY_REASON`] and `message`.
    fn kill_unhealthy(&self, id: &TaskId, message: String) {
        let mut tasks = lock(&self.tasks);
        let Some(entry) = tasks.get_mut(id) else {
            return;
        };
        if entry.state.is_terminal() || entry.kill.borrow().is_some() {
            return;
        }
        let grace = entry.grace();
        entry.unhealthy = Some(message);
        entry.kill.send_replace(Some(grace));
    }

    /// Starts the health checks of a running task; `running_for` is how long it has run.
    pub(super) fn start_checks(
        self: &Arc<Self>,
        spec: Option<&TaskSpec>,
        driver: &Arc<dyn Driver>,
        task_ip: Option<String>,
        running_for: Duration,
    ) -> Option<health::Checks> {
        let spec = spec.filter(|spec| !spec.health_checks.is_empty())?;
        let context = TaskContext {
            mock: driver.name() == "mock",
            agent_ip: self.agent_ip.clone(),
            task_ip,
            sandbox: self.sandbox(&spec.task_id),
            hostname: self.info.hostname.clone(),
        };
        let now = tokio::time::Instant::now();
        let started = now.checked_sub(running_for).unwrap_or(now);
        Some(health::start(self, spec, &context, started))
    }
}

impl HealthSink for Agent {
    fn health(&self, task: &TaskId, report: HealthReport) -> bool {
        self.report_health(task, report)
    }

    fn unhealthy(&self, task: &TaskId, message: String) {
        self.kill_unhealthy(task, message);
    }
}

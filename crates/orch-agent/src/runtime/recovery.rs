//! Task records on disk (`<work-dir>/tasks/<task-id>.json`) and recovery after a restart:
//! what the drivers still run is watched again, what ended meanwhile gets its real terminal
//! status, and recorded tasks no driver knows become TASK_GONE.
//!
//! May depend on: the runtime's task table and lifecycle, protocol, driver, model, orch-fs.

use super::{lock, Agent, Entry, TaskRecord};
use orch_core::model::{TaskId, TaskState};
use orch_fs::write_atomic;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::SystemTime;

impl Agent {
    pub(super) fn write_record(&self, record: &TaskRecord) -> std::io::Result<()> {
        let bytes = serde_json::to_vec(record).map_err(std::io::Error::other)?;
        write_atomic(&self.record_path(&record.spec.task_id), &bytes)
    }

    pub(super) fn mark_terminal(&self, id: &TaskId, state: TaskState) {
        let path = self.record_path(id);
        let Ok(text) = std::fs::read(&path) else {
            return;
        };
        let Ok(mut record) = serde_json::from_slice::<TaskRecord>(&text) else {
            return;
        };
        record.terminal = Some(state);
        if let Err(error) = self.write_record(&record) {
            tracing::warn!(task.id = %id, %error, "cannot mark a task record terminal");
        }
    }

    /// Rebuilds the task table after a restart (see [`Agent::open`]).
    pub(super) async fn recover(self: &Arc<Self>) {
        let records = self.load_records();
        let journaled_end: BTreeMap<TaskId, TaskState> = lock(&self.journal)
            .all_pending()
            .filter(|u| u.state.is_terminal())
            .map(|u| (u.task_id.clone(), u.state))
            .collect();
        let mut recovered = BTreeMap::new();
        for driver in &self.drivers {
            match driver.recover().await {
                Ok(found) => {
                    for task in found {
                        recovered.insert(task.task_id.clone(), (Arc::clone(driver), task.exit));
                    }
                }
                Err(error) => tracing::error!(
                    driver = driver.name(),
                    error = &error as &dyn std::error::Error,
                    "driver recovery failed; its tasks will be reported gone"
                ),
            }
        }
        let mut seen = BTreeSet::new();
        for (id, (driver, exit)) in recovered {
            seen.insert(id.clone());
            let record = records.get(&id);
            let spec = record.map(|r| Arc::new(r.spec.clone()));
            let ended = record
                .and_then(|r| r.terminal)
                .or_else(|| journaled_end.get(&id).copied());
            if let Some(state) = ended {
                lock(&self.tasks).insert(id.clone(), Entry::new(spec, state));
                self.finish(&id, &driver, state).await;
                continue;
            }
            let entry = Entry::new(spec.clone(), TaskState::Running);
            let kill = entry.kill.subscribe();
            lock(&self.tasks).insert(id.clone(), entry);
            match exit {
                Some(exit) => {
                    tracing::info!(task.id = %id, state = %exit.state, "task ended while the agent was away");
                    self.report(
                        &id,
                        exit.state,
                        exit.message,
                        exit.reason.as_deref(),
                        vec![],
                    );
                    self.finish(&id, &driver, exit.state).await;
                }
                None => {
                    tracing::info!(task.id = %id, driver = driver.name(), "re-attached to a running task");
                    // The grace period counts from the start, about when its record was written.
                    let running_for = std::fs::metadata(self.record_path(&id))
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|at| SystemTime::now().duration_since(at).ok())
                        .unwrap_or_default();
                    let checks = self.start_checks(spec.as_deref(), &driver, None, running_for);
                    let agent = Arc::clone(self);
                    tokio::spawn(async move { agent.supervise(id, driver, kill, checks).await });
                }
            }
        }
        for (id, record) in records {
            if seen.contains(&id) {
                continue;
            }
            let spec = Some(Arc::new(record.spec));
            match record.terminal.or_else(|| journaled_end.get(&id).copied()) {
                Some(state) => {
                    lock(&self.tasks).insert(id, Entry::new(spec, state));
                }
                None => {
                    lock(&self.tasks).insert(id.clone(), Entry::new(spec, TaskState::Running));
                    self.report(
                        &id,
                        TaskState::Gone,
                        "the task vanished while the agent was away",
                        Some("REASON_EXECUTOR_TERMINATED"),
                        vec![],
                    );
                    self.mark_terminal(&id, TaskState::Gone);
                }
            }
        }
    }

    fn load_records(&self) -> BTreeMap<TaskId, TaskRecord> {
        let dir = self.work_dir.join("tasks");
        let mut records = BTreeMap::new();
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return records;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            match std::fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|bytes| {
                    serde_json::from_slice::<TaskRecord>(&bytes).map_err(|e| e.to_string())
                }) {
                Ok(record) => {
                    records.insert(record.spec.task_id.clone(), record);
                }
                Err(error) => {
                    tracing::warn!(path = %path.display(), error, "skipping an unreadable task record")
                }
            }
        }
        records
    }
}

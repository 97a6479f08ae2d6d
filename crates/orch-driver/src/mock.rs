//! A scripted driver for tests and simulations: no processes, only tokio timers.
//!
//! The script comes from the task's labels:
//!
//! - `ORCH_MOCK_RUN_FOR`: how long the task runs (`500ms`, `2s`); absent = until stopped;
//! - `ORCH_MOCK_EXIT_CODE`: its exit code when the time is up (default 0);
//! - `ORCH_MOCK_FAIL_START`: `true` makes `start` fail;
//! - `ORCH_MOCK_HEALTHY`: `true`/`false`, read by the agent's health checking through
//!   [`MockDriver::healthy`].
//!
//! A task costs one map entry and a watch channel: thousands fit in one process. Mock tasks
//! die with the agent, so `recover` finds nothing.
//!
//! May depend on: protocol, model.

use super::{BoxFuture, Driver, DriverError, Exit, Launch, Recovered, Started};
use orch_core::model::{TaskId, TaskState};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// Label: how long a mock task runs.
pub const RUN_FOR_LABEL: &str = "ORCH_MOCK_RUN_FOR";
/// Label: the exit code when the run time is over.
pub const EXIT_CODE_LABEL: &str = "ORCH_MOCK_EXIT_CODE";
/// Label: `true` makes the start fail.
pub const FAIL_START_LABEL: &str = "ORCH_MOCK_FAIL_START";
/// Label: what health checks of the task report.
pub const HEALTHY_LABEL: &str = "ORCH_MOCK_HEALTHY";

/// The script of one mock task, parsed from its labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MockScript {
    /// `None` = runs until stopped.
    pub run_for: Option<Duration>,
    /// Exit code when `run_for` is over.
    pub exit_code: i32,
    /// Whether `start` fails.
    pub fail_start: bool,
    /// What health checks report, if the label is set.
    pub healthy: Option<bool>,
}

impl MockScript {
    /// Reads the script from task labels; a malformed label is a start failure.
    pub fn from_labels(labels: &BTreeMap<String, String>) -> Result<Self, String> {
        let run_for = labels
            .get(RUN_FOR_LABEL)
            .map(|text| {
                humantime::parse_duration(text.trim())
                    .map_err(|e| format!("bad {RUN_FOR_LABEL} '{text}': {e}"))
            })
            .transpose()?;
        let exit_code = labels
            .get(EXIT_CODE_LABEL)
            .map(|text| {
                text.trim()
                    .parse::<i32>()
                    .map_err(|e| format!("bad {EXIT_CODE_LABEL} '{text}': {e}"))
            })
            .transpose()?
            .unwrap_or(0);
        let flag = |name: &str| -> Result<Option<bool>, String> {
            labels
                .get(name)
                .map(|text| match text.trim().to_ascii_lowercase().as_str() {
                    "true" => Ok(true),
                    "false" => Ok(false),
                    _ => Err(format!("bad {name} '{text}': expected true or false")),
                })
                .transpose()
        };
        Ok(Self {
            run_for,
            exit_code,
            fail_start: flag(FAIL_START_LABEL)?.unwrap_or(false),
            healthy: flag(HEALTHY_LABEL)?,
        })
    }

    /// How a task with this script ends on its own.
    fn natural_exit(&self) -> Exit {
        if self.exit_code == 0 {
            Exit {
                state: TaskState::Finished,
                message: "Command exited with status 0".to_owned(),
                reason: None,
            }
        } else {
            Exit {
                state: TaskState::Failed,
                message: format!("Command exited with status {}", self.exit_code),
                reason: Some("REASON_COMMAND_EXECUTOR_FAILED".to_owned()),
            }
        }
    }
}

/// A task's exit if it ended, its deadline and a receiver for a stop.
type TaskView = (Option<Exit>, Option<Instant>, watch::Receiver<Option<Exit>>);

#[derive(Debug)]
struct MockTask {
    script: MockScript,
    /// When it ends on its own.
    deadline: Option<Instant>,
    /// Set when it was stopped.
    stopped: watch::Sender<Option<Exit>>,
}

/// The scripted driver. Cheap to clone; clones share their tasks.
#[derive(Debug, Clone, Default)]
pub struct MockDriver {
    tasks: Arc<Mutex<HashMap<TaskId, MockTask>>>,
}

impl MockDriver {
    /// A driver with no tasks.
    pub fn new() -> Self {
        Self::default()
    }

    /// What health checks of `task` report: the `ORCH_MOCK_HEALTHY` label, `None` if the
    /// label is absent or the task unknown.
    pub fn healthy(&self, task: &TaskId) -> Option<bool> {
        self.lock().get(task).and_then(|t| t.script.healthy)
    }

    /// How many tasks the driver holds (started and not destroyed).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether the driver holds no tasks.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<TaskId, MockTask>> {
        self.tasks.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The task's exit if it has ended, plus what to wait on otherwise.
    fn state(&self, task: &TaskId) -> Option<TaskView> {
        let tasks = self.lock();
        let entry = tasks.get(task)?;
        let stopped = entry.stopped.borrow().clone();
        let exit = stopped.or_else(|| match entry.deadline {
            Some(deadline) if Instant::now() >= deadline => Some(entry.script.natural_exit()),
            _ => None,
        });
        Some((exit, entry.deadline, entry.stopped.subscribe()))
    }
}

fn unknown(task: &TaskId) -> Exit {
    Exit {
        state: TaskState::Gone,
        message: format!("unknown task {task}"),
        reason: None,
    }
}

impl Driver for MockDriver {
    fn name(&self) -> &'static str {
        "mock"
    }

    fn start(&self, launch: Launch) -> BoxFuture<'_, Result<Started, DriverError>> {
        Box::pin(async move {
            let script = MockScript::from_labels(&launch.spec.labels)
                .map_err(|message| DriverError::StartFailed { message })?;
            if script.fail_start {
                return Err(DriverError::StartFailed {
                    message: format!("mock start failure ({FAIL_START_LABEL}=true)"),
                });
            }
            let mut tasks = self.lock();
            tasks
                .entry(launch.spec.task_id)
                .or_insert_with(|| MockTask {
                    deadline: script.run_for.map(|d| Instant::now() + d),
                    script,
                    stopped: watch::channel(None).0,
                });
            Ok(Started {
                ip_addresses: vec![launch.agent_ip],
            })
        })
    }

    fn recover(&self) -> BoxFuture<'_, Result<Vec<Recovered>, DriverError>> {
        Box::pin(async { Ok(Vec::new()) })
    }

    fn wait<'a>(&'a self, task: &'a TaskId) -> BoxFuture<'a, Exit> {
        Box::pin(async move {
            let Some((exit, deadline, mut stopped)) = self.state(task) else {
                return unknown(task);
            };
            if let Some(exit) = exit {
                return exit;
            }
            let natural = async {
                match deadline {
                    Some(deadline) => tokio::time::sleep_until(deadline).await,
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = natural => {}
                _ = stopped.wait_for(Option::is_some) => {}
            }
            match self.state(task) {
                Some((Some(exit), _, _)) => exit,
                Some((None, _, _)) => Exit {
                    state: TaskState::Failed,
                    message: "mock task ended without a status".to_owned(),
                    reason: None,
                },
                // Destroyed while waiting: it was stopped.
                None => Exit {
                    state: TaskState::Killed,
                    message: "Task killed".to_owned(),
                    reason: None,
                },
            }
        })
    }

    fn stop<'a>(
        &'a self,
        task: &'a TaskId,
        _grace: Duration,
    ) -> BoxFuture<'a, Result<(), DriverError>> {
        Box::pin(async move {
            let tasks = self.lock();
            let entry = tasks
                .get(task)
                .ok_or_else(|| DriverError::UnknownTask(task.clone()))?;
            let ended = entry
                .deadline
                .is_some_and(|deadline| Instant::now() >= deadline);
            if !ended {
                entry.stopped.send_if_modified(|exit| {
                    if exit.is_some() {
                        return false;
                    }
                    *exit = Some(Exit {
                        state: TaskState::Killed,
                        message: "Task killed".to_owned(),
                        reason: None,
                    });
                    true
                });
            }
            Ok(())
        })
    }

    fn destroy<'a>(&'a self, task: &'a TaskId) -> BoxFuture<'a, Result<(), DriverError>> {
        Box::pin(async move {
            self.lock().remove(task);
            Ok(())
        })
    }

    fn inspect<'a>(&'a self, task: &'a TaskId) -> BoxFuture<'a, Result<Option<Exit>, DriverError>> {
        Box::pin(async move {
            self.state(task)
                .map(|(exit, _, _)| exit)
                .ok_or_else(|| DriverError::UnknownTask(task.clone()))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use orch_core::model::{AppId, Timestamp};
    use orch_core::protocol::TaskSpec;
    use std::path::PathBuf;

    fn launch(id: &str, labels: &[(&str, &str)]) -> Launch {
        Launch {
            spec: TaskSpec {
                task_id: TaskId(id.to_owned()),
                app_id: AppId::parse("/mock").expect("valid app id"),
                app_version: Timestamp::from_millis(0),
                cmd: None,
                args: vec![],
                user: None,
                unprivileged: false,
                env: BTreeMap::new(),
                labels: labels
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
                cpus: 0.1,
                mem: 32.0,
                disk: 0.0,
                ports: vec![],
                docker: None,
                kill_grace_ms: 0,
                health_checks: Vec::new(),
            },
            sandbox: PathBuf::from("/nonexistent"),
            hostname: "h".to_owned(),
            agent_ip: "10.0.0.1".to_owned(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn runs_for_the_scripted_time_then_exits_with_the_code() {
        let driver = MockDriver::new();
        let started = driver
            .start(launch(
                "a",
                &[(RUN_FOR_LABEL, "2s"), (EXIT_CODE_LABEL, "3")],
            ))
            .await
            .expect("the mock driver answers");
        assert_eq!(started.ip_addresses, vec!["10.0.0.1".to_owned()]);
        let id = TaskId("a".to_owned());
        assert_eq!(
            driver.inspect(&id).await.expect("the mock driver answers"),
            None
        );
        let begin = Instant::now();
        let exit = driver.wait(&id).await;
        assert_eq!(begin.elapsed(), Duration::from_secs(2));
        assert_eq!(exit.state, TaskState::Failed);
        assert_eq!(exit.message, "Command exited with status 3");
        assert_eq!(
            driver.inspect(&id).await.expect("the mock driver answers"),
            Some(exit)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn exit_zero_is_finished() {
        let driver = MockDriver::new();
        driver
            .start(launch("a", &[(RUN_FOR_LABEL, "500ms")]))
            .await
            .expect("the mock driver answers");
        let exit = driver.wait(&TaskId("a".to_owned())).await;
        assert_eq!(exit.state, TaskState::Finished);
    }

    #[tokio::test(start_paused = true)]
    async fn stop_kills_a_forever_task() {
        let driver = MockDriver::new();
        driver
            .start(launch("a", &[]))
            .await
            .expect("the mock driver answers");
        let id = TaskId("a".to_owned());
        let waiter = {
            let driver = driver.clone();
            let id = id.clone();
            tokio::spawn(async move { driver.wait(&id).await })
        };
        tokio::time::sleep(Duration::from_secs(3600)).await;
        assert_eq!(
            driver.inspect(&id).await.expect("the mock driver answers"),
            None
        );
        driver
            .stop(&id, Duration::from_secs(3))
            .await
            .expect("the mock driver answers");
        let exit = waiter.await.expect("the mock driver answers");
        assert_eq!(exit.state, TaskState::Killed);
        driver.destroy(&id).await.expect("the mock driver answers");
        assert!(driver.is_empty());
        assert!(matches!(
            driver.inspect(&id).await,
            Err(DriverError::UnknownTask(_))
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn fail_start_and_bad_labels_fail_the_start() {
        let driver = MockDriver::new();
        let error = driver
            .start(launch("a", &[(FAIL_START_LABEL, "true")]))
            .await
            .unwrap_err();
        assert!(matches!(error, DriverError::StartFailed { .. }));
        let error = driver
            .start(launch("b", &[(RUN_FOR_LABEL, "soon")]))
            .await
            .unwrap_err();
        assert!(error.to_string().contains(RUN_FOR_LABEL), "{error}");
        assert!(driver.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn health_comes_from_the_label() {
        let driver = MockDriver::new();
        driver
            .start(launch("a", &[(HEALTHY_LABEL, "false")]))
            .await
            .expect("the mock driver answers");
        driver
            .start(launch("b", &[(HEALTHY_LABEL, "true")]))
            .await
            .expect("the mock driver answers");
        driver
            .start(launch("c", &[]))
            .await
            .expect("the mock driver answers");
        assert_eq!(driver.healthy(&TaskId("a".to_owned())), Some(false));
        assert_eq!(driver.healthy(&TaskId("b".to_owned())), Some(true));
        assert_eq!(driver.healthy(&TaskId("c".to_owned())), None);
        assert!(driver
            .recover()
            .await
            .expect("the mock driver answers")
            .is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn thousands_of_tasks_are_cheap() {
        let driver = MockDriver::new();
        for i in 0..5000 {
            driver
                .start(launch(&format!("t{i}"), &[(RUN_FOR_LABEL, "1s")]))
                .await
                .expect("the mock driver answers");
        }
        let waits = (0..5000).map(|i| {
            let driver = driver.clone();
            async move { driver.wait(&TaskId(format!("t{i}"))).await }
        });
        let exits = futures::future::join_all(waits).await;
        assert!(exits.iter().all(|e| e.state == TaskState::Finished));
        assert_eq!(driver.len(), 5000);
    }
}

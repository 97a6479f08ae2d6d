//! The process driver (Mesos' "mesos" containerizer): each task runs in its own process group
//! under a detached `orch executor` supervisor, so it outlives the agent.
//!
//! All state lives in the sandbox (`<sandbox>/.orch/`, see [`super::executor`]), so a restarted
//! agent finds its tasks by scanning `<work-dir>/sandboxes/*/.orch/`. Memory and cpu limits
//! use a cgroup per task when the machine has a writable hierarchy ([`super::cgroup`]); without
//! one the driver says so once and runs tasks unlimited.
//!
//! Pids are recorded with their start time ([`ProcId`]); a recorded task or supervisor is
//! signalled only while both still match, so a pid reused after an agent restart (or after
//! the task ended) never gets a signal meant for the task: such a task counts as gone.
//!
//! May depend on: driver::{env, executor, cgroup}, protocol, model.

use super::cgroup::{CgroupVersion, Cgroups};
use super::env::task_env;
use super::executor::{
    read_json, write_json, ExitRecord, LaunchFile, ProcId, StateFiles, TaskCommand,
};
use super::{BoxFuture, Driver, DriverError, Exit, Launch, Recovered, Started};
use nix::sys::signal::Signal;
use nix::unistd::Pid;
use orch_core::model::{TaskId, TaskState};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;
use tokio::time::{sleep, Instant};

/// How often the driver looks at a task's state files.
const POLL: Duration = Duration::from_millis(50);
/// How long a supervisor may take to start its task.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs tasks as supervised process groups.
#[derive(Debug)]
pub struct ProcessDriver {
    work_dir: PathBuf,
    executable: PathBuf,
    cgroups: Option<Cgroups>,
    /// Sandboxes of the tasks started or recovered (others are looked up by id).
    sandboxes: Mutex<HashMap<TaskId, PathBuf>>,
}

impl ProcessDriver {
    /// A driver for the agent with work dir `work_dir`, running supervisors from the current
    /// executable.
    pub fn new(work_dir: impl Into<PathBuf>) -> Result<Self, DriverError> {
        let executable = std::env::current_exe().map_err(|source| DriverError::Io {
            context: "finding the current executable".to_owned(),
            source,
        })?;
        Ok(Self::with_executable(work_dir, executable))
    }

    /// A driver whose supervisors run `executable executor ...` (tests pass the `orch` binary).
    pub fn with_executable(work_dir: impl Into<PathBuf>, executable: impl Into<PathBuf>) -> Self {
        let cgroups = match Cgroups::detect() {
            Ok(cgroups) => {
                tracing::info!(version = ?cgroups.version(), "process tasks get cgroup limits");
                Some(cgroups)
            }
            Err(reason) => {
                tracing::warn!(
                    %reason,
                    "cgroups are not writable: process tasks run without memory and cpu limits"
                );
                None
            }
        };
        Self {
            work_dir: work_dir.into(),
            executable: executable.into(),
            cgroups,
            sandboxes: Mutex::new(HashMap::new()),
        }
    }

    /// The cgroup interface enforcing limits, `None` when tasks run unlimited.
    pub fn limits(&self) -> Option<CgroupVersion> {
        self.cgroups.as_ref().map(Cgroups::version)
    }

    fn sandbox(&self, task: &TaskId) -> PathBuf {
        self.sandboxes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(task)
            .cloned()
            .unwrap_or_else(|| self.work_dir.join("sandboxes").join(&task.0))
    }

    fn remember(&self, task: &TaskId, sandbox: &Path) {
        self.sandboxes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(task.clone(), sandbox.to_owned());
    }

    async fn start_task(&self, launch: Launch) -> Result<Started, DriverError> {
        let spec = &launch.spec;
        let files = StateFiles::new(&launch.sandbox);
        let started = Started {
            ip_addresses: vec![launch.agent_ip.clone()],
        };
        self.remember(&spec.task_id, &launch.sandbox);
        // Idempotent: a task already launched is not launched again.
        if files.launch().exists() {
            return match read_json::<ExitRecord>(&files.exit()) {
                Ok(record) if !record.started => Err(DriverError::StartFailed {
                    message: record.error.unwrap_or_else(|| "start failed".to_owned()),
                }),
                _ => Ok(started),
            };
        }
        let command = match (&spec.cmd, spec.args.is_empty()) {
            (Some(cmd), _) => TaskCommand::Shell(cmd.clone()),
            (None, false) => TaskCommand::Exec(spec.args.clone()),
            (None, true) => {
                return Err(DriverError::StartFailed {
                    message: "the task has neither cmd nor args".to_owned(),
                })
            }
        };
        std::fs::create_dir_all(files.dir()).map_err(|source| DriverError::Io {
            context: format!("creating {}", files.dir().display()),
            source,
        })?;
        let launch_file = LaunchFile {
            task_id: spec.task_id.clone(),
            command,
            env: task_env(spec, &launch.sandbox.to_string_lossy(), &launch.hostname),
            user: spec.user.clone(),
            cgroup: self
                .cgroups
                .as_ref()
                .map(|c| c.plan(&cgroup_name(&spec.task_id), spec.mem, spec.cpus)),
            mem_mib: spec.mem,
        };
        write_json(&files.launch(), &launch_file).map_err(state_error)?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(files.log())
            .map_err(|source| DriverError::Io {
                context: format!("opening {}", files.log().display()),
                source,
            })?;
        let log_err = log.try_clone().map_err(|source| DriverError::Io {
            context: "duplicating the executor log".to_owned(),
            source,
        })?;
        let mut child = tokio::process::Command::new(&self.executable)
            .arg("executor")
            .arg("--sandbox")
            .arg(&launch.sandbox)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(|e| DriverError::StartFailed {
                message: format!(
                    "Failed to start the executor {}: {e}",
                    self.executable.display()
                ),
            })?;
        let pid = child.id().and_then(|pid| i32::try_from(pid).ok());
        if let Some(identity) = pid.and_then(ProcId::of) {
            // The executor writes this too; writing it here closes the window before it does.
            identity.write(&files.executor_pid()).map_err(state_error)?;
        }
        // Reap the supervisor when it ends (it is our child until the agent exits).
        tokio::spawn(async move {
            let _ = child.wait().await;
        });
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if files.exit().exists() {
                let record: ExitRecord = read_json(&files.exit()).map_err(state_error)?;
                if !record.started {
                    return Err(DriverError::StartFailed {
                        message: record.error.unwrap_or_else(|| "start failed".to_owned()),
                    });
                }
                return Ok(started);
            }
            if files.task_pid().exists() {
                tracing::info!(task.id = %spec.task_id, "process task started");
                return Ok(started);
            }
            let executor_alive = ProcId::read(&files.executor_pid()).is_some_and(|p| p.alive());
            if !executor_alive && !files.exit().exists() && !files.task_pid().exists() {
                let log = std::fs::read_to_string(files.log()).unwrap_or_default();
                return Err(DriverError::StartFailed {
                    message: format!(
                        "The executor exited before starting the task: {}",
                        log.lines().last().unwrap_or("(no log)")
                    ),
                });
            }
            if Instant::now() >= deadline {
                return Err(DriverError::StartFailed {
                    message: format!("The task did not start within {START_TIMEOUT:?}"),
                });
            }
            // The supervisor writes the pid within a few milliseconds: poll finely.
            sleep(Duration::from_millis(2)).await;
        }
    }

    /// How the task ended, `None` while it runs. A vanished supervisor is turned into a
    /// recorded failure here (and what is left of the task is killed).
    fn check(&self, task: &TaskId) -> Option<Exit> {
        let sandbox = self.sandbox(task);
        let files = StateFiles::new(&sandbox);
        let launch: LaunchFile = match read_json(&files.launch()) {
            Ok(launch) => launch,
            Err(_) => {
                return Some(Exit {
                    state: TaskState::Gone,
                    message: format!("unknown task {task}"),
                    reason: None,
                })
            }
        };
        if let Some(exit) = read_exit(&files, &launch) {
            return Some(exit);
        }
        if ProcId::read(&files.executor_pid()).is_some_and(|p| p.alive()) {
            return None;
        }
        // The supervisor may have written its record between the two looks.
        if let Some(exit) = read_exit(&files, &launch) {
            return Some(exit);
        }
        if let Some(task_pid) = ProcId::read(&files.task_pid()) {
            task_pid.signal_group(Signal::SIGKILL);
        }
        let record = ExitRecord {
            started: files.task_pid().exists(),
            killed: files.kill().exists(),
            executor_vanished: true,
            error: Some("Executor terminated unexpectedly".to_owned()),
            ..ExitRecord::default()
        };
        if let Err(error) = write_json(&files.exit(), &record) {
            tracing::error!(task.id = %task, %error, "cannot record the vanished executor");
        }
        Some(exit_of(&record, launch.mem_mib))
    }
}

/// Reason given to start failures (Mesos' for a command that could not launch).
const START_FAILED: &str = "REASON_COMMAND_EXECUTOR_FAILED";

fn read_exit(files: &StateFiles, launch: &LaunchFile) -> Option<Exit> {
    let record: ExitRecord = read_json(&files.exit()).ok()?;
    Some(exit_of(&record, launch.mem_mib))
}

fn state_error(error: super::executor::ExecutorError) -> DriverError {
    DriverError::Io {
        context: error.to_string(),
        source: std::io::Error::other(error),
    }
}

/// The cgroup directory name of a task: its id with anything unusual replaced.
fn cgroup_name(task: &TaskId) -> String {
    task.0
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The name `strsignal` gives common signals, as Mesos' messages show them.
pub fn signal_name(signal: i32) -> String {
    match Signal::try_from(signal) {
        Ok(Signal::SIGKILL) => "Killed".to_owned(),
        Ok(Signal::SIGTERM) => "Terminated".to_owned(),
        Ok(Signal::SIGINT) => "Interrupt".to_owned(),
        Ok(Signal::SIGHUP) => "Hangup".to_owned(),
        Ok(Signal::SIGQUIT) => "Quit".to_owned(),
        Ok(Signal::SIGABRT) => "Aborted".to_owned(),
        Ok(Signal::SIGSEGV) => "Segmentation fault".to_owned(),
        Ok(Signal::SIGPIPE) => "Broken pipe".to_owned(),
        Ok(other) => other.as_str().to_owned(),
        Err(_) => format!("signal {signal}"),
    }
}

/// Maps what the supervisor recorded to the task's final status.
pub fn exit_of(record: &ExitRecord, mem_mib: f64) -> Exit {
    let how = match (record.code, record.signal) {
        (Some(code), _) => format!("Command exited with status {code}"),
        (None, Some(signal)) => format!("Command terminated with signal {}", signal_name(signal)),
        (None, None) => "Command ended".to_owned(),
    };
    if !record.started {
        return Exit {
            state: TaskState::Failed,
            message: record.error.clone().unwrap_or(how),
            reason: Some(START_FAILED.to_owned()),
        };
    }
    if record.oom_killed {
        let used = record
            .memory_max_used
            .map(|bytes| format!(" Maximum Used: {}MB", bytes / (1024 * 1024)))
            .unwrap_or_default();
        return Exit {
            state: TaskState::Failed,
            message: format!("Memory limit exceeded: Requested: {mem_mib}MB{used}"),
            reason: Some("REASON_CONTAINER_LIMITATION_MEMORY".to_owned()),
        };
    }
    if record.killed {
        return Exit {
            state: TaskState::Killed,
            message: how,
            reason: None,
        };
    }
    if record.executor_vanished {
        return Exit {
            state: TaskState::Failed,
            message: record.error.clone().unwrap_or(how),
            reason: Some("REASON_EXECUTOR_TERMINATED".to_owned()),
        };
    }
    if let Some(error) = &record.error {
        return Exit {
            state: TaskState::Failed,
            message: error.clone(),
            reason: Some(START_FAILED.to_owned()),
        };
    }
    if record.code == Some(0) {
        Exit {
            state: TaskState::Finished,
            message: how,
            reason: None,
        }
    } else {
        Exit {
            state: TaskState::Failed,
            message: how,
            reason: Some(START_FAILED.to_owned()),
        }
    }
}

impl Driver for ProcessDriver {
    fn name(&self) -> &'static str {
        "mesos"
    }

    fn start(&self, launch: Launch) -> BoxFuture<'_, Result<Started, DriverError>> {
        Box::pin(self.start_task(launch))
    }

    fn recover(&self) -> BoxFuture<'_, Result<Vec<Recovered>, DriverError>> {
        Box::pin(async move {
            let root = self.work_dir.join("sandboxes");
            let entries = match std::fs::read_dir(&root) {
                Ok(entries) => entries,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
                Err(source) => {
                    return Err(DriverError::Io {
                        context: format!("scanning {}", root.display()),
                        source,
                    })
                }
            };
            let mut found = Vec::new();
            for entry in entries.flatten() {
                let sandbox = entry.path();
                let files = StateFiles::new(&sandbox);
                let Ok(launch) = read_json::<LaunchFile>(&files.launch()) else {
                    continue;
                };
                self.remember(&launch.task_id, &sandbox);
                let exit = self.check(&launch.task_id);
                tracing::info!(task.id = %launch.task_id, ?exit, "recovered process task");
                found.push(Recovered {
                    task_id: launch.task_id,
                    exit,
                });
            }
            found.sort_by(|a, b| a.task_id.cmp(&b.task_id));
            Ok(found)
        })
    }

    fn wait<'a>(&'a self, task: &'a TaskId) -> BoxFuture<'a, Exit> {
        Box::pin(async move {
            loop {
                if let Some(exit) = self.check(task) {
                    return exit;
                }
                sleep(POLL).await;
            }
        })
    }

    fn stop<'a>(
        &'a self,
        task: &'a TaskId,
        grace: Duration,
    ) -> BoxFuture<'a, Result<(), DriverError>> {
        Box::pin(async move {
            let files = StateFiles::new(&self.sandbox(task));
            if !files.launch().exists() {
                return Err(DriverError::UnknownTask(task.clone()));
            }
            if self.check(task).is_some() {
                return Ok(());
            }
            std::fs::write(files.kill(), b"").map_err(|source| DriverError::Io {
                context: format!("writing {}", files.kill().display()),
                source,
            })?;
            let deadline = Instant::now() + grace;
            let mut signalled = false;
            while Instant::now() < deadline {
                if self.check(task).is_some() {
                    return Ok(());
                }
                if !signalled {
                    if let Some(pid) = ProcId::read(&files.task_pid()) {
                        if pid.signal_group(Signal::SIGTERM) {
                            tracing::info!(task.id = %task, ?grace, "sent SIGTERM");
                            signalled = true;
                        }
                    }
                }
                sleep(Duration::from_millis(20)).await;
            }
            if let Some(pid) = ProcId::read(&files.task_pid()) {
                if pid.signal_group(Signal::SIGKILL) {
                    tracing::info!(task.id = %task, "grace period over: sent SIGKILL");
                }
            }
            // The supervisor notices at once; give it a moment to write the record.
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline && self.check(task).is_none() {
                sleep(Duration::from_millis(20)).await;
            }
            Ok(())
        })
    }

    fn destroy<'a>(&'a self, task: &'a TaskId) -> BoxFuture<'a, Result<(), DriverError>> {
        Box::pin(async move {
            let sandbox = self.sandbox(task);
            let files = StateFiles::new(&sandbox);
            let Ok(launch) = read_json::<LaunchFile>(&files.launch()) else {
                // Already destroyed, or never started.
                return Ok(());
            };
            // Nothing of the task may survive its destruction, and nothing else may be hit:
            // a recorded pid is signalled only while its start time still matches.
            if let Some(task_pid) = ProcId::read(&files.task_pid()) {
                task_pid.signal_group(Signal::SIGKILL);
            }
            for pid_file in [files.task_pid(), files.executor_pid()] {
                if let Some(pid) = ProcId::read(&pid_file) {
                    pid.signal(Signal::SIGKILL);
                }
            }
            if let Some(cgroup) = &launch.cgroup {
                let deadline = Instant::now() + Duration::from_secs(5);
                loop {
                    let pids = cgroup.pids();
                    if pids.is_empty() {
                        break;
                    }
                    for pid in pids {
                        let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
                    }
                    if Instant::now() >= deadline {
                        break;
                    }
                    sleep(Duration::from_millis(20)).await;
                }
                if let Err(source) = cgroup.remove() {
                    return Err(DriverError::Io {
                        context: format!("removing the cgroup of {task}"),
                        source,
                    });
                }
            }
            std::fs::remove_dir_all(files.dir()).map_err(|source| DriverError::Io {
                context: format!("removing {}", files.dir().display()),
                source,
            })?;
            self.sandboxes
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(task);
            Ok(())
        })
    }

    fn inspect<'a>(&'a self, task: &'a TaskId) -> BoxFuture<'a, Result<Option<Exit>, DriverError>> {
        Box::pin(async move {
            if !StateFiles::new(&self.sandbox(task)).launch().exists() {
                return Err(DriverError::UnknownTask(task.clone()));
            }
            Ok(self.check(task))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(code: Option<i32>, signal: Option<i32>) -> ExitRecord {
        ExitRecord {
            started: true,
            code,
            signal,
            ..ExitRecord::default()
        }
    }

    #[test]
    fn exit_statuses_map_to_mesos_states() {
        let exit = exit_of(&record(Some(0), None), 32.0);
        assert_eq!(exit.state, TaskState::Finished);
        assert_eq!(exit.message, "Command exited with status 0");
        let exit = exit_of(&record(Some(3), None), 32.0);
        assert_eq!(exit.state, TaskState::Failed);
        assert_eq!(exit.message, "Command exited with status 3");
        let exit = exit_of(&record(None, Some(9)), 32.0);
        assert_eq!(exit.state, TaskState::Failed);
        assert_eq!(exit.message, "Command terminated with signal Killed");
        let killed = ExitRecord {
            killed: true,
            ..record(None, Some(15))
        };
        let exit = exit_of(&killed, 32.0);
        assert_eq!(exit.state, TaskState::Killed);
        assert_eq!(exit.message, "Command terminated with signal Terminated");
    }

    #[test]
    fn memory_limits_and_start_failures_have_reasons() {
        let oom = ExitRecord {
            oom_killed: true,
            memory_max_used: Some(32 * 1024 * 1024),
            ..record(None, Some(9))
        };
        let exit = exit_of(&oom, 32.0);
        assert_eq!(exit.state, TaskState::Failed);
        assert_eq!(
            exit.message,
            "Memory limit exceeded: Requested: 32MB Maximum Used: 32MB"
        );
        assert_eq!(
            exit.reason.as_deref(),
            Some("REASON_CONTAINER_LIMITATION_MEMORY")
        );
        let failed = ExitRecord {
            error: Some("Failed to execute 'x'".to_owned()),
            ..ExitRecord::default()
        };
        let exit = exit_of(&failed, 32.0);
        assert_eq!(exit.state, TaskState::Failed);
        assert_eq!(exit.message, "Failed to execute 'x'");
    }

    /// An unrelated process leading its own process group, as one that reused a task's pid.
    fn stranger() -> std::process::Child {
        use std::os::unix::process::CommandExt;
        std::process::Command::new("sleep")
            .arg("30")
            .process_group(0)
            .spawn()
            .expect("sleep runs")
    }

    fn running(child: &mut std::process::Child) -> bool {
        matches!(child.try_wait(), Ok(None))
    }

    fn write_records(files: &StateFiles, task: &TaskId, pids: [(&std::process::Child, u64); 2]) {
        std::fs::create_dir_all(files.dir()).expect("mkdir");
        let launch = LaunchFile {
            task_id: task.clone(),
            command: TaskCommand::Shell("sleep 30".to_owned()),
            env: Default::default(),
            user: None,
            cgroup: None,
            mem_mib: 32.0,
        };
        write_json(&files.launch(), &launch).expect("launch file");
        for ((child, skew), file) in pids
            .into_iter()
            .zip([files.task_pid(), files.executor_pid()])
        {
            let pid = i32::try_from(child.id()).expect("pids fit");
            let real = ProcId::of(pid).expect("the stranger runs");
            let recorded = ProcId {
                start_time: real.start_time + skew,
                ..real
            };
            recorded.write(&file).expect("pid file");
        }
    }

    #[tokio::test]
    async fn a_recorded_pid_that_names_another_process_now_is_never_signalled() {
        let work = tempfile::tempdir().expect("tempdir");
        let task = TaskId("reused.instance-1._app.1".to_owned());
        let files = StateFiles::new(&work.path().join("sandboxes").join(&task.0));
        let (mut in_task_group, mut as_executor) = (stranger(), stranger());
        // The task and its executor ended while the agent was away; their pids now belong
        // to strangers (same pids, other start times).
        write_records(&files, &task, [(&in_task_group, 1), (&as_executor, 1)]);
        let driver = ProcessDriver::with_executable(work.path(), "/nonexistent");
        let recovered = driver.recover().await.expect("recover");
        let exit = recovered[0].exit.clone().expect("ended");
        assert_eq!(exit.reason.as_deref(), Some("REASON_EXECUTOR_TERMINATED"));
        driver
            .stop(&task, Duration::from_millis(100))
            .await
            .expect("stop");
        driver.destroy(&task).await.expect("destroy");
        sleep(Duration::from_millis(200)).await;
        assert!(
            running(&mut in_task_group),
            "the stranger's group was killed"
        );
        assert!(running(&mut as_executor), "the stranger was killed");

        // The same records with the real start times do reach them.
        write_records(&files, &task, [(&in_task_group, 0), (&as_executor, 0)]);
        driver.destroy(&task).await.expect("destroy");
        let deadline = Instant::now() + Duration::from_secs(10);
        while running(&mut in_task_group) || running(&mut as_executor) {
            assert!(Instant::now() < deadline, "the recorded processes survived");
            sleep(Duration::from_millis(20)).await;
        }
    }

    #[test]
    fn cgroup_names_are_safe() {
        assert_eq!(
            cgroup_name(&TaskId("a_b.instance-1/x._app.1".to_owned())),
            "a_b.instance-1_x._app.1"
        );
    }
}

//! The per-task supervisor of the process driver: `orch executor --sandbox DIR`.
//!
//! The agent's [`super::process::ProcessDriver`] writes the launch description to
//! `<sandbox>/.orch/task.json` and spawns the supervisor detached (own session, so it outlives
//! the agent). The supervisor:
//!
//! 1. creates the task's cgroup (if the launch file names one) and checks that an `args`
//!    program exists (else it records a start failure);
//! 2. spawns itself again as `orch executor --sandbox DIR --exec-task` in a new process group
//!    with cwd = sandbox, the task's environment and stdout/stderr appended to
//!    `<sandbox>/stdout` and `<sandbox>/stderr`. That trampoline joins the cgroup, switches
//!    user if asked, and execs the command (`/bin/sh -c cmd`, or `args` directly), so the task
//!    is limited from its first instruction;
//! 3. records the task's pid in `.orch/task.pid`, waits for it, kills what is left of its
//!    process group, and writes how it ended to `.orch/exit.json` (atomically: temporary
//!    file, fsync, rename) before exiting.
//!
//! Files in `<sandbox>/.orch/`: `task.json` ([`LaunchFile`]), `executor.pid` and `task.pid`
//! ([`ProcId`]), `kill` (the driver asked for a stop), `exec-error` (the trampoline could not
//! exec), `exit.json` ([`ExitRecord`]), `executor.log` (the supervisor's own log).
//!
//! This code runs synchronously in its own small process: no tokio.
//!
//! May depend on: driver::cgroup, model.

use super::cgroup::CgroupPlan;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use orch_core::model::TaskId;
use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The supervisor's directory inside a sandbox.
pub const STATE_DIR: &str = ".orch";
/// The PATH used when neither the task nor the agent has one.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Why the executor could not do its job.
#[derive(Debug, thiserror::Error)]
pub enum ExecutorError {
    /// A file could not be read or written, or a process not started.
    #[error("{context}")]
    Io {
        /// What was being done.
        context: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A state file is not valid JSON.
    #[error("{context}")]
    Json {
        /// Which file.
        context: String,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
}

fn io_error(context: impl Into<String>) -> impl FnOnce(io::Error) -> ExecutorError {
    let context = context.into();
    move |source| ExecutorError::Io { context, source }
}

/// What to run.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum TaskCommand {
    /// `cmd`, run by `/bin/sh -c`.
    Shell(String),
    /// `args`, exec'd directly (the first is the program, looked up in `PATH`).
    Exec(Vec<String>),
}

/// The launch description the driver writes for the supervisor.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LaunchFile {
    /// The task.
    pub task_id: TaskId,
    /// What to run.
    pub command: TaskCommand,
    /// Variables added to the supervisor's own environment (they win).
    pub env: BTreeMap<String, String>,
    /// Run as this user, if set.
    pub user: Option<String>,
    /// The task's cgroup, when limits are enforced.
    pub cgroup: Option<CgroupPlan>,
    /// Requested memory in MiB (for the limit message).
    pub mem_mib: f64,
}

/// How a task ended, as the supervisor saw it.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ExitRecord {
    /// Whether the command was exec'd (false: a start failure, see `error`).
    pub started: bool,
    /// Its exit code, if it exited.
    pub code: Option<i32>,
    /// The signal that ended it, if one did.
    pub signal: Option<i32>,
    /// The driver had asked it to stop.
    pub killed: bool,
    /// The OOM killer killed a process of its cgroup.
    pub oom_killed: bool,
    /// The most memory the cgroup used, in bytes.
    pub memory_max_used: Option<u64>,
    /// The supervisor disappeared before writing a record (written by the driver).
    pub executor_vanished: bool,
    /// What went wrong, for start failures and vanished supervisors.
    pub error: Option<String>,
}

/// A process identity that survives pid reuse: the pid plus its start time in clock ticks
/// since boot (`/proc/<pid>/stat` field 22), recorded when the process starts. Stored as
/// `"<pid> <start>"`. The driver signals a recorded process only through
/// [`ProcId::signal`] and [`ProcId::signal_group`], which check the start time first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcId {
    /// The pid.
    pub pid: i32,
    /// Its start time.
    pub start_time: u64,
}

impl ProcId {
    /// The identity of a running (non-zombie) process.
    pub fn of(pid: i32) -> Option<Self> {
        let (state, start_time) = proc_stat(pid)?;
        (state != 'Z' && state != 'X').then_some(Self { pid, start_time })
    }

    /// Reads an identity from a pid file.
    pub fn read(path: &Path) -> Option<Self> {
        let text = fs::read_to_string(path).ok()?;
        let mut parts = text.split_whitespace();
        let pid = parts.next()?.parse().ok()?;
        let start_time = parts.next()?.parse().ok()?;
        Some(Self { pid, start_time })
    }

    /// Writes the identity atomically.
    pub fn write(&self, path: &Path) -> Result<(), ExecutorError> {
        write_atomic(path, format!("{} {}", self.pid, self.start_time).as_bytes())
    }

    /// Whether this very process still runs (not a zombie, not a reused pid).
    pub fn alive(&self) -> bool {
        Self::of(self.pid).is_some_and(|now| now.start_time == self.start_time)
    }

    /// A pidfd of this very process: opened first, then its start time checked, so the fd
    /// cannot name a process that took over the pid. `None` when it is gone.
    fn pidfd(&self) -> Option<std::os::fd::OwnedFd> {
        let pid = rustix::process::Pid::from_raw(self.pid)?;
        let fd = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()).ok()?;
        self.alive().then_some(fd)
    }

    /// Sends `signal` to this very process. False, and nothing is sent, when it is gone or
    /// its pid now belongs to another process (the start time differs).
    pub fn signal(&self, signal: Signal) -> bool {
        let Some(fd) = self.pidfd() else {
            return false;
        };
        let Some(signal) = rustix::process::Signal::from_named_raw(signal as i32) else {
            return false;
        };
        rustix::process::pidfd_send_signal(&fd, signal).is_ok()
    }

    /// Sends `signal` to the process group this process leads, only while this very process
    /// (pid and start time) is alive. False, and nothing is sent, otherwise: a group whose
    /// leader is gone may be a stranger's that reuses the number.
    pub fn signal_group(&self, signal: Signal) -> bool {
        // Holding the pidfd between the check and the signal keeps the window to the leader
        // dying and its pid being reused within two system calls.
        let Some(_fd) = self.pidfd() else {
            return false;
        };
        killpg(Pid::from_raw(self.pid), signal).is_ok()
    }
}

/// (state, start time) from `/proc/<pid>/stat`.
fn proc_stat(pid: i32) -> Option<(char, u64)> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses: fields start after the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let state = fields.first()?.chars().next()?;
    let start_time = fields.get(19)?.parse().ok()?;
    Some((state, start_time))
}

/// The supervisor's files of one sandbox.
#[derive(Debug, Clone)]
pub struct StateFiles {
    dir: PathBuf,
}

impl StateFiles {
    /// The files of `sandbox`.
    pub fn new(sandbox: &Path) -> Self {
        Self {
            dir: sandbox.join(STATE_DIR),
        }
    }
    /// `.orch/` itself.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
    /// The launch description.
    pub fn launch(&self) -> PathBuf {
        self.dir.join("task.json")
    }
    /// The supervisor's [`ProcId`].
    pub fn executor_pid(&self) -> PathBuf {
        self.dir.join("executor.pid")
    }
    /// The task's [`ProcId`] (also its process group id).
    pub fn task_pid(&self) -> PathBuf {
        self.dir.join("task.pid")
    }
    /// Present once the driver asked the task to stop.
    pub fn kill(&self) -> PathBuf {
        self.dir.join("kill")
    }
    /// The trampoline's exec error.
    pub fn exec_error(&self) -> PathBuf {
        self.dir.join("exec-error")
    }
    /// The [`ExitRecord`].
    pub fn exit(&self) -> PathBuf {
        self.dir.join("exit.json")
    }
    /// The supervisor's log.
    pub fn log(&self) -> PathBuf {
        self.dir.join("executor.log")
    }
}

/// Writes a file atomically: temporary file, fsync, rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ExecutorError> {
    orch_fs::write_atomic(path, bytes).map_err(io_error(format!("writing {}", path.display())))
}

/// Reads a JSON state file.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, ExecutorError> {
    let text = fs::read(path).map_err(io_error(format!("reading {}", path.display())))?;
    serde_json::from_slice(&text).map_err(|source| ExecutorError::Json {
        context: format!("parsing {}", path.display()),
        source,
    })
}

/// Writes a JSON state file atomically.
pub fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<(), ExecutorError> {
    let bytes = serde_json::to_vec_pretty(value).map_err(|source| ExecutorError::Json {
        context: format!("encoding {}", path.display()),
        source,
    })?;
    write_atomic(path, &bytes)
}

/// The supervisor: runs the task of `sandbox` to its end and records how it ended.
pub fn run(sandbox: &Path) -> Result<(), ExecutorError> {
    // Detach from the agent's session so the agent's death does not take us along. This
    // fails only if we already lead a process group, which is fine too.
    let _ = nix::unistd::setsid();
    let files = StateFiles::new(sandbox);
    let launch: LaunchFile = read_json(&files.launch())?;
    if let Some(me) = i32::try_from(std::process::id()).ok().and_then(ProcId::of) {
        me.write(&files.executor_pid())?;
    }
    tracing::info!(task.id = %launch.task_id, "executor started");
    let record = supervise(sandbox, &files, &launch);
    tracing::info!(task.id = %launch.task_id, ?record, "task ended");
    write_json(&files.exit(), &record)
}

fn start_failure(message: String) -> ExitRecord {
    ExitRecord {
        error: Some(message),
        ..ExitRecord::default()
    }
}

fn supervise(sandbox: &Path, files: &StateFiles, launch: &LaunchFile) -> ExitRecord {
    if let TaskCommand::Exec(args) = &launch.command {
        let Some(program) = args.first() else {
            return start_failure("Failed to launch: empty args".to_owned());
        };
        let path = launch
            .env
            .get("PATH")
            .cloned()
            .or_else(|| std::env::var("PATH").ok())
            .unwrap_or_else(|| DEFAULT_PATH.to_owned());
        if resolve_program(program, &path, sandbox).is_none() {
            return start_failure(format!(
                "Failed to execute '{program}': No such file or directory"
            ));
        }
    }
    if let Some(cgroup) = &launch.cgroup {
        if let Err(e) = cgroup.create() {
            let _ = cgroup.remove();
            return start_failure(format!("Failed to set up the task's cgroup: {e}"));
        }
    }
    let record = run_task(sandbox, files, launch);
    if let Some(cgroup) = &launch.cgroup {
        // Best effort (the driver's destroy removes it otherwise): SIGKILLed leftovers take
        // a moment to leave the group.
        for _ in 0..50 {
            if cgroup.pids().is_empty() {
                let _ = cgroup.remove();
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
    record
}

fn run_task(sandbox: &Path, files: &StateFiles, launch: &LaunchFile) -> ExitRecord {
    let open = |name: &str| {
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(sandbox.join(name))
    };
    let (stdout, stderr) = match (open("stdout"), open("stderr")) {
        (Ok(out), Ok(err)) => (out, err),
        (Err(e), _) | (_, Err(e)) => {
            return start_failure(format!("Failed to open the sandbox's stdout/stderr: {e}"))
        }
    };
    let spawned = Command::new("/proc/self/exe")
        .arg("executor")
        .arg("--sandbox")
        .arg(sandbox)
        .arg("--exec-task")
        .current_dir(sandbox)
        .envs(&launch.env)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .process_group(0)
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => return start_failure(format!("Failed to launch the task: {e}")),
    };
    // Linux pids are at most pid_max (2^22): they fit an i32.
    #[allow(clippy::cast_possible_wrap)]
    let pid = child.id() as i32;
    let identity = ProcId::of(pid).unwrap_or(ProcId { pid, start_time: 0 });
    if let Err(e) = identity.write(&files.task_pid()) {
        tracing::error!(error = %e, "cannot record the task pid");
    }
    // Wait for the end without reaping: while the leader is a zombie its pid cannot be
    // reused, so the group signalled below is the task's. Then reap it.
    let _ = nix::sys::wait::waitid(
        nix::sys::wait::Id::Pid(Pid::from_raw(pid)),
        nix::sys::wait::WaitPidFlag::WEXITED | nix::sys::wait::WaitPidFlag::WNOWAIT,
    );
    // Whatever the task left behind in its group goes with it.
    let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
    let status = child.wait();
    let exec_error = fs::read_to_string(files.exec_error()).ok();
    let (oom_killed, memory_max_used) = match &launch.cgroup {
        Some(cgroup) => (cgroup.oom_kills() > 0, cgroup.max_used()),
        None => (false, None),
    };
    let mut record = ExitRecord {
        started: exec_error.is_none(),
        killed: files.kill().exists(),
        oom_killed,
        memory_max_used,
        error: exec_error,
        ..ExitRecord::default()
    };
    match status {
        Ok(status) => {
            record.code = status.code();
            record.signal = status.signal();
        }
        Err(e) => record.error = Some(format!("Failed to wait for the task: {e}")),
    }
    record
}

/// Finds `program` as `execvp` would: a path with a `/` is taken as is (relative to the
/// sandbox, the task's cwd), a bare name is searched in `path`.
pub fn resolve_program(program: &str, path: &str, cwd: &Path) -> Option<PathBuf> {
    let executable = |candidate: &Path| {
        fs::metadata(candidate).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.contains('/') {
        let candidate = cwd.join(program);
        return executable(&candidate).then_some(candidate);
    }
    path.split(':')
        .filter(|dir| !dir.is_empty())
        .map(|dir| cwd.join(dir).join(program))
        .find(|candidate| executable(candidate))
}

/// The trampoline: joins the cgroup, switches user and execs the task's command. Returns
/// only on failure, after recording the error in `.orch/exec-error`.
pub fn exec_task(sandbox: &Path) -> ExecutorError {
    let files = StateFiles::new(sandbox);
    let error = match prepare_and_exec(&files) {
        Ok(never) => match never {},
        Err(error) => error,
    };
    let _ = write_atomic(&files.exec_error(), error.to_string().as_bytes());
    error
}

fn prepare_and_exec(files: &StateFiles) -> Result<std::convert::Infallible, ExecutorError> {
    let launch: LaunchFile = read_json(&files.launch())?;
    if let Some(cgroup) = &launch.cgroup {
        cgroup
            .join(0)
            .map_err(io_error("Failed to join the task's cgroup"))?;
    }
    if let Some(user) = &launch.user {
        switch_user(user)?;
    }
    let mut command = match &launch.command {
        TaskCommand::Shell(cmd) => {
            let mut command = Command::new("/bin/sh");
            command.arg("-c").arg(cmd);
            command
        }
        TaskCommand::Exec(args) => {
            let Some((program, rest)) = args.split_first() else {
                return Err(ExecutorError::Io {
                    context: "Failed to launch: empty args".to_owned(),
                    source: io::Error::from(io::ErrorKind::InvalidInput),
                });
            };
            let mut command = Command::new(program);
            command.args(rest);
            command
        }
    };
    let source = command.exec();
    Err(ExecutorError::Io {
        context: format!("Failed to execute the task's command: {source}"),
        source,
    })
}

fn switch_user(name: &str) -> Result<(), ExecutorError> {
    use nix::unistd::{initgroups, setgid, setuid, User};
    let failed = |what: &str, e: nix::Error| ExecutorError::Io {
        context: format!("Failed to switch to user '{name}': {what}"),
        source: io::Error::from(e),
    };
    let user = User::from_name(name)
        .map_err(|e| failed("lookup", e))?
        .ok_or_else(|| ExecutorError::Io {
            context: format!("Failed to switch to user '{name}': no such user"),
            source: io::Error::from(io::ErrorKind::NotFound),
        })?;
    let c_name = std::ffi::CString::new(name).map_err(|_| ExecutorError::Io {
        context: format!("Failed to switch to user '{name}': bad name"),
        source: io::Error::from(io::ErrorKind::InvalidInput),
    })?;
    // The sandbox (the working directory) becomes the task's, as Mesos hands it over; the
    // supervisor's files in `.orch/` stay root's.
    nix::unistd::chown(".", Some(user.uid), Some(user.gid))
        .map_err(|e| failed("chown of the sandbox", e))?;
    initgroups(&c_name, user.gid).map_err(|e| failed("initgroups", e))?;
    setgid(user.gid).map_err(|e| failed("setgid", e))?;
    setuid(user.uid).map_err(|e| failed("setuid", e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_identity_is_alive_and_survives_a_round_trip() {
        let me = ProcId::of(i32::try_from(std::process::id()).expect("pid fits"))
            .expect("files in a temp dir");
        assert!(me.alive());
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("pid");
        me.write(&path).expect("files in a temp dir");
        assert_eq!(ProcId::read(&path), Some(me));
        let reused = ProcId {
            start_time: me.start_time + 1,
            ..me
        };
        assert!(!reused.alive());
    }

    #[test]
    fn programs_resolve_like_execvp() {
        let dir = tempfile::tempdir().expect("temp dir");
        assert_eq!(
            resolve_program("sh", "/nonexistent:/bin", dir.path()),
            Some(PathBuf::from("/bin/sh"))
        );
        assert_eq!(
            resolve_program("no-such-program-x", "/bin:/usr/bin", dir.path()),
            None
        );
        assert_eq!(
            resolve_program("/bin/sh", "", dir.path()),
            Some(PathBuf::from("/bin/sh"))
        );
        fs::write(dir.path().join("script"), "#!/bin/sh\n").expect("files in a temp dir");
        assert_eq!(resolve_program("./script", "", dir.path()), None);
        fs::set_permissions(dir.path().join("script"), fs::Permissions::from_mode(0o755))
            .expect("files in a temp dir");
        assert!(resolve_program("./script", "", dir.path()).is_some());
    }

    #[test]
    fn exit_records_round_trip() {
        let dir = tempfile::tempdir().expect("temp dir");
        let record = ExitRecord {
            started: true,
            code: Some(3),
            ..ExitRecord::default()
        };
        write_json(&dir.path().join("exit.json"), &record).expect("files in a temp dir");
        let back: ExitRecord =
            read_json(&dir.path().join("exit.json")).expect("files in a temp dir");
        assert_eq!(back, record);
    }
}

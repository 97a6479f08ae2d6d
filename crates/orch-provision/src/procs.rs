//! This machine's processes as `/proc` shows them: whether a recorded process is still the
//! one we started, which processes belong to a cluster's tasks, and signals to them.
//!
//! Which processes are a cluster's tasks: every process task runs under a detached
//! `orch executor --sandbox <sandbox>` that leads its own session (`setsid`), and the task
//! runs in its own process group inside that session. So the tasks of a cluster are the
//! processes in the session of an executor whose sandbox lies under the cluster dir, found
//! (a) by the live executor's command line, or (b) for an executor that is already gone, by
//! the pid it recorded in `<sandbox>/.orch/executor.pid` (its session id), then only if the
//! process's cwd or an argument lies under the cluster dir (the session id might have been
//! reused). A shell whose cwd merely lies under the cluster dir is not in such a session and
//! is left alone.
//!
//! May depend on: driver::executor (pid files). Reads `/proc`; sends signals.

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use orch_driver::executor::{ProcId, STATE_DIR};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// One process as `/proc/<pid>` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcInfo {
    /// Its pid.
    pub pid: i32,
    /// Its process group.
    pub pgrp: i32,
    /// Its session.
    pub session: i32,
    /// Its arguments (argv).
    pub cmdline: Vec<String>,
    /// Its working directory, when readable.
    pub cwd: Option<PathBuf>,
}

impl ProcInfo {
    /// Reads `/proc/<pid>`; None when it is gone, unreadable or a zombie.
    pub fn read(pid: i32) -> Option<Self> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // The command name may hold spaces and parentheses: fields start after the last ')'.
        let fields: Vec<&str> = stat[stat.rfind(')')? + 1..].split_whitespace().collect();
        let state = fields.first()?.chars().next()?;
        if state == 'Z' || state == 'X' {
            return None;
        }
        let pgrp = fields.get(2)?.parse().ok()?;
        let session = fields.get(3)?.parse().ok()?;
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let cmdline = cmdline
            .split(|b| *b == 0)
            .filter(|arg| !arg.is_empty())
            .map(|arg| String::from_utf8_lossy(arg).into_owned())
            .collect();
        let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).ok();
        Some(Self {
            pid,
            pgrp,
            session,
            cmdline,
            cwd,
        })
    }

    /// True when one of its arguments is `path` or lies under it.
    pub fn has_arg_under(&self, path: &Path) -> bool {
        self.cmdline
            .iter()
            .any(|arg| Path::new(arg).starts_with(path))
    }

    /// True when it runs in `path` or below.
    pub fn runs_under(&self, path: &Path) -> bool {
        self.cwd.as_deref().is_some_and(|cwd| cwd.starts_with(path))
    }

    /// True for `orch executor --sandbox <dir under path>`.
    pub fn is_executor_under(&self, path: &Path) -> bool {
        self.cmdline.get(1).is_some_and(|a| a == "executor")
            && self
                .cmdline
                .windows(2)
                .any(|w| w[0] == "--sandbox" && Path::new(&w[1]).starts_with(path))
    }

    /// The subcommand (`master`, `agent`, ...) when its first argument names one.
    pub fn subcommand(&self) -> Option<&str> {
        self.cmdline.get(1).map(String::as_str)
    }
}

/// Every live process but this one.
pub fn all() -> Vec<ProcInfo> {
    let me = i32::try_from(std::process::id()).unwrap_or(i32::MAX);
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()))
        .filter(|pid| *pid != me)
        .filter_map(ProcInfo::read)
        .collect()
}

/// The identity (pid + start time) of a live process.
pub fn identity(pid: u32) -> Option<ProcId> {
    ProcId::of(i32::try_from(pid).ok()?)
}

/// True when the process `id` names still runs (same start time, not a zombie) and has
/// `arg` among its arguments: it is the very process we started with that argument.
pub fn is_ours(id: &ProcId, arg: &Path) -> bool {
    id.alive()
        && ProcInfo::read(id.pid).is_some_and(|p| p.cmdline.iter().any(|a| Path::new(a) == arg))
}

/// Sends `signal` to `pid`; a process that is gone already is not an error.
pub fn signal(pid: i32, signal: Signal) {
    if pid > 1 {
        let _ = kill(Pid::from_raw(pid), signal);
    }
}

/// The pids the executors of sandboxes under `dir` recorded (`*/sandboxes/*/.orch/executor.pid`),
/// alive or not: the session ids of their tasks.
pub fn recorded_executors(dir: &Path) -> BTreeSet<i32> {
    let mut pids = BTreeSet::new();
    let Ok(nodes) = std::fs::read_dir(dir) else {
        return pids;
    };
    for node in nodes.flatten() {
        let Ok(sandboxes) = std::fs::read_dir(node.path().join("sandboxes")) else {
            continue;
        };
        for sandbox in sandboxes.flatten() {
            let file = sandbox.path().join(STATE_DIR).join("executor.pid");
            if let Some(id) = ProcId::read(&file) {
                pids.insert(id.pid);
            }
        }
    }
    pids
}

/// The processes of the tasks of the cluster in `dir` (see the module doc), among `procs`,
/// leaving out `except` (the cluster's masters and agents).
pub fn task_processes(dir: &Path, procs: &[ProcInfo], except: &BTreeSet<i32>) -> Vec<ProcInfo> {
    let live_sessions: BTreeSet<i32> = procs
        .iter()
        .filter(|p| p.is_executor_under(dir))
        .map(|p| p.session)
        .collect();
    let recorded = recorded_executors(dir);
    procs
        .iter()
        .filter(|p| !except.contains(&p.pid) && p.session > 1)
        .filter(|p| {
            p.is_executor_under(dir)
                || live_sessions.contains(&p.session)
                || (recorded.contains(&p.session) && (p.runs_under(dir) || p.has_arg_under(dir)))
        })
        .cloned()
        .collect()
}

/// `orch master` and `orch agent` processes whose arguments name a dir under `dir` (a
/// cluster's processes even when its record is lost), leaving out `except`.
pub fn node_processes(dir: &Path, procs: &[ProcInfo], except: &BTreeSet<i32>) -> Vec<ProcInfo> {
    procs
        .iter()
        .filter(|p| !except.contains(&p.pid))
        .filter(|p| matches!(p.subcommand(), Some("master" | "agent")) && p.has_arg_under(dir))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proc(pid: i32, session: i32, cmdline: &[&str], cwd: &str) -> ProcInfo {
        ProcInfo {
            pid,
            pgrp: pid,
            session,
            cmdline: cmdline.iter().map(|s| s.to_string()).collect(),
            cwd: Some(PathBuf::from(cwd)),
        }
    }

    #[test]
    fn tasks_are_found_by_their_executors_session() {
        let dir = Path::new("/w/.orch/local");
        let procs = vec![
            proc(
                10,
                10,
                &[
                    "/bin/orch",
                    "executor",
                    "--sandbox",
                    "/w/.orch/local/agent-1/sandboxes/t1",
                ],
                "/w",
            ),
            // The task, in the executor's session, even after a chdir elsewhere.
            proc(11, 10, &["sleep", "1000"], "/tmp"),
            // A shell sitting in a sandbox: not in an executor's session.
            proc(20, 20, &["bash"], "/w/.orch/local/agent-1/sandboxes/t1"),
            // An executor of another cluster.
            proc(
                30,
                30,
                &[
                    "/bin/orch",
                    "executor",
                    "--sandbox",
                    "/w/.orch/other/agent-1/sandboxes/t",
                ],
                "/w",
            ),
            proc(
                31,
                30,
                &["sleep", "5"],
                "/w/.orch/other/agent-1/sandboxes/t",
            ),
            // The agent (excluded) and a master.
            proc(
                40,
                5,
                &["/bin/orch", "agent", "--work-dir", "/w/.orch/local/agent-1"],
                "/w",
            ),
            proc(
                41,
                5,
                &[
                    "/bin/orch",
                    "master",
                    "--data-dir",
                    "/w/.orch/local/master-1",
                ],
                "/w",
            ),
            proc(
                42,
                5,
                &[
                    "/bin/orch",
                    "master",
                    "--data-dir",
                    "/w/.orch/local/master-10",
                ],
                "/w",
            ),
        ];
        let except: BTreeSet<i32> = [40].into();
        let tasks: Vec<i32> = task_processes(dir, &procs, &except)
            .iter()
            .map(|p| p.pid)
            .collect();
        assert_eq!(tasks, vec![10, 11]);
        let nodes: Vec<i32> = node_processes(dir, &procs, &except)
            .iter()
            .map(|p| p.pid)
            .collect();
        assert_eq!(nodes, vec![41, 42]);
        assert!(procs[6].has_arg_under(dir));
        assert!(!procs[4].is_executor_under(dir));
    }

    #[test]
    fn this_process_reads_as_itself() {
        let me =
            ProcInfo::read(i32::try_from(std::process::id()).expect("pid")).expect("/proc/self");
        assert!(!me.cmdline.is_empty());
        assert!(me.cwd.is_some());
        let id = identity(std::process::id()).expect("identity");
        assert!(id.alive());
        let exe = PathBuf::from(&me.cmdline[0]);
        assert!(is_ours(&id, &exe));
        assert!(!is_ours(&id, Path::new("/nowhere")));
    }
}

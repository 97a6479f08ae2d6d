//! Processes: the binary under test, free ports, signals, bounded waits, log tails, one-shot `orch` commands.

use std::collections::HashSet;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The `orch` binary cargo built for this test or bench target.
pub const BIN: &str = env!("CARGO_BIN_EXE_orch");

/// SIGKILLs every process whose command line or working directory lies under `dir`: the
/// detached task supervisors and tasks that agents of a test started (they outlive agents by
/// design).
pub fn kill_processes_under(dir: &Path) {
    let Ok(dir) = dir.canonicalize() else { return };
    let needle = dir.display().to_string();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == std::process::id() {
            continue;
        }
        let cwd = std::fs::read_link(entry.path().join("cwd")).unwrap_or_default();
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cwd.starts_with(&dir) || cmdline.contains(&needle) {
            // It may be gone already: ignore the outcome.
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
        }
    }
}

/// Default per-request timeout of [`Http`].
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(5);

/// Ports handed out by [`free_port`] in this process, never handed out twice.
static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// A TCP port on 127.0.0.1 that was free a moment ago (bind port 0, read it, drop the socket).
pub fn free_port() -> u16 {
    for _ in 0..100 {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0 to pick a port");
        let port = listener
            .local_addr()
            .expect("local_addr of probe socket")
            .port();
        drop(listener);
        let mut guard = HANDED_OUT.lock().expect("port set lock");
        if guard.get_or_insert_with(HashSet::new).insert(port) {
            return port;
        }
    }
    panic!("could not find a free port that was not handed out before (100 tries)");
}

/// `127.0.0.1:<free port>`.
pub fn free_addr() -> String {
    format!("127.0.0.1:{}", free_port())
}

/// Sends `signal` (e.g. "TERM", "INT", "KILL") to `pid` through the shell's `kill` builtin.
pub fn send_signal(pid: u32, signal: &str) {
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!("kill -s {signal} {pid}"))
        .status()
        .expect("run sh -c kill");
    assert!(status.success(), "kill -s {signal} {pid} failed: {status}");
}

/// Polls `child` until it exits or `timeout` passes.
pub fn wait_exit(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait on child") {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Last `n` lines of a file (or a note that it cannot be read).
pub fn tail(path: &Path, n: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let lines: Vec<&str> = text.lines().collect();
            let start = lines.len().saturating_sub(n);
            lines[start..].join("\n")
        }
        Err(e) => format!("<cannot read {}: {e}>", path.display()),
    }
}

/// Runs `orch ARGS...` to completion with a bounded wait; panics if it does not exit in time.
pub async fn run_orch(args: &[&str], timeout: Duration) -> std::process::Output {
    run_orch_in(None, args, timeout).await
}

/// [`run_orch`] with `dir` (if given) as the current directory.
pub async fn run_orch_in(
    dir: Option<&Path>,
    args: &[&str],
    timeout: Duration,
) -> std::process::Output {
    let mut command = tokio::process::Command::new(BIN);
    if let Some(dir) = dir {
        command.current_dir(dir);
    }
    run_to_end(command, args, timeout).await
}

/// Runs `command ARGS` with stdin closed and its output captured; bounded by `timeout`.
async fn run_to_end(
    mut command: tokio::process::Command,
    args: &[&str],
    timeout: Duration,
) -> std::process::Output {
    let child = command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("spawn orch {}: {e}", args.join(" ")));
    match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Ok(out) => out.unwrap_or_else(|e| panic!("wait for orch {}: {e}", args.join(" "))),
        Err(_) => panic!("`orch {}` did not exit within {timeout:?}", args.join(" ")),
    }
}

/// The variables that point a client command at a cluster (or inject a failure): tests of
/// what the CLI finds in `.orch/` run without them.
pub const CLIENT_ENV: [&str; 5] = [
    "ORCH_MASTER",
    "ORCH_CA",
    "ORCH_TOKEN",
    "ORCH_CLUSTER",
    "ORCH_FAIL_AT",
];

/// `orch ARGS` in `dir` with none of [`CLIENT_ENV`]: all it knows of a cluster comes from
/// `.orch/`. Panics if it does not exit within `timeout`.
pub async fn run_orch_bare(dir: &Path, args: &[&str], timeout: Duration) -> std::process::Output {
    let mut command = tokio::process::Command::new(BIN);
    for var in CLIENT_ENV {
        command.env_remove(var);
    }
    command.current_dir(dir);
    run_to_end(command, args, timeout).await
}

/// Formats a process output for failure messages.
pub fn describe_output(out: &std::process::Output) -> String {
    format!(
        "status: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `VmRSS` of process `pid` in KiB, from `/proc/<pid>/status`.
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/status: {e}"));
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS in /proc/{pid}/status"))
}

//! `orch master` and `orch agent` processes, killed when dropped.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use super::*;

/// One `orch master` (or `orch agent`, see [`Master::agent`]) process, possibly stopped,
/// restartable with the same arguments.
#[derive(Debug)]
pub struct Master {
    /// The subcommand: `master` or `agent`.
    pub subcommand: String,
    /// Name used in logs and messages, e.g. "master-2".
    pub name: String,
    /// Advertised (and listen) address, `127.0.0.1:port`.
    pub addr: String,
    /// Its `--data-dir`.
    pub data_dir: PathBuf,
    /// Arguments after the binary name (`master ...`).
    pub args: Vec<String>,
    /// Environment variables set for the process.
    pub env: Vec<(String, String)>,
    /// A command the binary runs under, e.g. `ip netns exec NS` ([`super::Net::prefix`]).
    pub prefix: Vec<String>,
    stdout_path: PathBuf,
    stderr_path: PathBuf,
    child: Option<Child>,
    starts: u32,
}

impl Master {
    /// Describes a master; does not start it. `args` are the flags after `master`.
    pub fn new(dir: &Path, name: &str, addr: &str, data_dir: PathBuf, args: Vec<String>) -> Master {
        Master {
            subcommand: "master".into(),
            name: name.to_string(),
            addr: addr.to_string(),
            data_dir,
            args,
            env: Vec::new(),
            prefix: Vec::new(),
            stdout_path: dir.join(format!("{name}.stdout.log")),
            stderr_path: dir.join(format!("{name}.stderr.log")),
            child: None,
            starts: 0,
        }
    }

    /// Describes an `orch agent` process listening on `addr`; does not start it.
    pub fn agent(
        dir: &Path,
        name: &str,
        addr: &str,
        work_dir: PathBuf,
        args: Vec<String>,
    ) -> Master {
        let mut agent = Master::new(dir, name, addr, work_dir, args);
        agent.subcommand = "agent".into();
        agent
    }

    /// `http://addr`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Starts the process (appending to its log files). Panics if it is already running.
    pub fn start(&mut self) {
        assert!(!self.is_running(), "{} is already running", self.name);
        self.starts += 1;
        let mut argv = vec![self.subcommand.clone()];
        argv.extend(self.args.iter().cloned());
        let open = |p: &Path| -> File {
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .unwrap_or_else(|e| panic!("open log file {}: {e}", p.display()))
        };
        let mut out = open(&self.stdout_path);
        let mut err = open(&self.stderr_path);
        let marker = format!(
            "===== start #{} of {}: orch {} =====\n",
            self.starts,
            self.name,
            argv.join(" ")
        );
        let _ = out.write_all(marker.as_bytes());
        let _ = err.write_all(marker.as_bytes());
        let (program, mut all) = match self.prefix.split_first() {
            Some((program, rest)) => (program.as_str(), rest.to_vec()),
            None => (BIN, Vec::new()),
        };
        if !self.prefix.is_empty() {
            all.push(BIN.to_owned());
        }
        all.extend(argv.iter().cloned());
        let child = Command::new(program)
            .args(&all)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .env("RUST_BACKTRACE", "1")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {BIN} {}: {e}", argv.join(" ")));
        self.child = Some(child);
    }

    /// Whether the process is alive (reaps it if it has exited).
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            None => false,
            Some(c) => c.try_wait().expect("try_wait on master").is_none(),
        }
    }

    /// Panics (with the log tail) if the process has exited on its own.
    pub fn assert_running(&mut self) {
        if let Some(c) = self.child.as_mut() {
            if let Some(status) = c.try_wait().expect("try_wait on master") {
                panic!(
                    "{} exited unexpectedly with {status}\n{}",
                    self.name,
                    self.logs(60)
                );
            }
        } else {
            panic!("{} is not started", self.name);
        }
    }

    /// OS pid of the running process.
    pub fn pid(&self) -> u32 {
        self.child
            .as_ref()
            .map(Child::id)
            .unwrap_or_else(|| panic!("{} is not running", self.name))
    }

    /// How the process ended, if it has (reaping it).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().expect("try_wait on master"))
    }

    /// SIGKILL and reap.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Sends `signal` ("TERM" or "INT") and waits (bounded) for the exit; returns the status.
    pub fn stop_with(&mut self, signal: &str, timeout: Duration) -> ExitStatus {
        let mut c = self
            .child
            .take()
            .unwrap_or_else(|| panic!("{} is not running", self.name));
        if let Some(status) = c.try_wait().expect("try_wait on master") {
            panic!(
                "{} had already exited with {status} before SIG{signal}\n{}",
                self.name,
                self.logs(60)
            );
        }
        send_signal(c.id(), signal);
        match wait_exit(&mut c, timeout) {
            Some(status) => status,
            None => {
                let _ = c.kill();
                let _ = c.wait();
                panic!(
                    "{} did not exit within {timeout:?} after SIG{signal}\n{}",
                    self.name,
                    self.logs(60)
                );
            }
        }
    }

    /// SIGTERM, wait up to 10 s, assert exit code 0.
    pub fn terminate(&mut self) {
        let status = self.stop_with("TERM", Duration::from_secs(10));
        assert!(
            status.success(),
            "{} exited with {status} after SIGTERM (want 0)\n{}",
            self.name,
            self.logs(60)
        );
    }

    /// Starts again with the same arguments (and data dir).
    pub fn restart(&mut self) {
        self.start();
    }

    /// Tail of stdout and stderr, for failure messages.
    pub fn logs(&self, n: usize) -> String {
        format!(
            "----- {} stderr ({}) -----\n{}\n----- {} stdout -----\n{}\n",
            self.name,
            self.stderr_path.display(),
            tail(&self.stderr_path, n),
            self.name,
            tail(&self.stdout_path, n)
        )
    }
}

impl Drop for Master {
    fn drop(&mut self) {
        self.kill9();
    }
}

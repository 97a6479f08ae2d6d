//! Harness for real-process tests and benchmarks: spawns `orch master` processes on ports
//! chosen at run time, each with its own data dir inside one temp dir, and talks to them over
//! HTTP with short timeouts.
//!
//! Invariants:
//! - every child process is killed when its [`Master`] (or the [`Cluster`] holding it) is
//!   dropped, including during a panic; on a panic the tail of every master's log is printed;
//! - every wait is bounded and panics with a message naming what it waited for;
//! - set `ORCH_TEST_KEEP=1` to keep the temp dir (data dirs and logs) after the run.
//!
//! Shared by `tests/*.rs` and `benches/*.rs` (through `#[path]`), so not every helper is used
//! by every crate.
#![allow(dead_code)]

pub mod sshd;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RData, RecordType};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::str::FromStr as _;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};
use serde_json::{json, Value};

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

// ---------------------------------------------------------------------------------------------
// Master processes
// ---------------------------------------------------------------------------------------------

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
        let child = Command::new(BIN)
            .args(&argv)
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

// ---------------------------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------------------------

/// A fully read HTTP response.
#[derive(Debug, Clone)]
pub struct Resp {
    /// Status code.
    pub status: u16,
    /// Response headers.
    pub headers: reqwest::header::HeaderMap,
    /// Body as text.
    pub body: String,
}

impl Resp {
    /// Body parsed as JSON (panics with the body if it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| {
            panic!(
                "response body is not JSON ({e}); status {}: {}",
                self.status, self.body
            )
        })
    }

    /// A header as a string, if present.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }

    /// Whether the status is 2xx.
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// Small reqwest wrapper: no proxy, short timeouts, JSON content type on bodies.
#[derive(Debug, Clone)]
pub struct Http {
    /// The underlying client.
    pub client: reqwest::Client,
}

impl Default for Http {
    fn default() -> Self {
        Http::new()
    }
}

impl Http {
    /// Client with [`HTTP_TIMEOUT`] per request and a 1 s connect timeout.
    pub fn new() -> Http {
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(HTTP_TIMEOUT)
            .connect_timeout(Duration::from_secs(1))
            .build()
            .expect("build reqwest client");
        Http { client }
    }

    /// Sends a request; `body` is sent as `application/json`; `timeout` overrides the default.
    pub async fn send(
        &self,
        method: reqwest::Method,
        url: &str,
        body: Option<String>,
        timeout: Option<Duration>,
    ) -> anyhow::Result<Resp> {
        let mut req = self.client.request(method.clone(), url);
        if let Some(b) = body {
            req = req.header("Content-Type", "application/json").body(b);
        }
        if let Some(t) = timeout {
            req = req.timeout(t);
        }
        let resp = req
            .send()
            .await
            .with_context(|| format!("{method} {url}"))?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp
            .text()
            .await
            .with_context(|| format!("read body of {method} {url}"))?;
        Ok(Resp {
            status,
            headers,
            body,
        })
    }

    /// GET, panicking with context on a transport error.
    pub async fn get(&self, url: &str) -> Resp {
        self.send(reqwest::Method::GET, url, None, None)
            .await
            .unwrap_or_else(|e| panic!("{e:#}"))
    }

    /// POST a JSON value, panicking with context on a transport error.
    pub async fn post(&self, url: &str, body: &Value) -> Resp {
        self.send(reqwest::Method::POST, url, Some(body.to_string()), None)
            .await
            .unwrap_or_else(|e| panic!("{e:#}"))
    }

    /// PUT a JSON value, panicking with context on a transport error.
    pub async fn put(&self, url: &str, body: &Value) -> Resp {
        self.send(reqwest::Method::PUT, url, Some(body.to_string()), None)
            .await
            .unwrap_or_else(|e| panic!("{e:#}"))
    }

    /// PATCH a JSON value, panicking with context on a transport error.
    pub async fn patch(&self, url: &str, body: &Value) -> Resp {
        self.send(reqwest::Method::PATCH, url, Some(body.to_string()), None)
            .await
            .unwrap_or_else(|e| panic!("{e:#}"))
    }

    /// DELETE, panicking with context on a transport error.
    pub async fn delete(&self, url: &str) -> Resp {
        self.send(reqwest::Method::DELETE, url, None, None)
            .await
            .unwrap_or_else(|e| panic!("{e:#}"))
    }

    /// POST raw bytes as `application/json`, panicking with context on a transport error.
    pub async fn post_raw(&self, url: &str, body: impl Into<String>) -> Resp {
        self.send(reqwest::Method::POST, url, Some(body.into()), None)
            .await
            .unwrap_or_else(|e| panic!("{e:#}"))
    }
}

/// Parses Prometheus text into `name -> value` for samples without labels, and
/// `name{labels} -> value` for the others.
pub fn parse_metrics(text: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        // `name{a="b c"} value [timestamp]`: the key ends at the last '}' or the first space.
        let (key, rest) = match line.rfind('}') {
            Some(i) => (&line[..=i], line[i + 1..].trim()),
            None => match line.split_once(' ') {
                Some((k, r)) => (k, r.trim()),
                None => continue,
            },
        };
        if let Some(v) = rest
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<f64>().ok())
        {
            out.insert(key.to_string(), v);
        }
    }
    out
}

/// An app definition of roughly `size` bytes of JSON (padded through a label), with
/// `instances: 0` so nothing needs to be scheduled, and no ports (so tens of thousands of
/// them fit in the 10000-20000 service port range).
pub fn app_body(id: &str, size: usize) -> Value {
    let mut app = json!({
        "id": id,
        "cmd": "sleep 3600",
        "cpus": 0.1,
        "mem": 32,
        "instances": 0,
        "portDefinitions": [],
        "env": {"MODE": "test"},
        "labels": {"owner": "orch-tests"}
    });
    let len = app.to_string().len();
    if size > len + 20 {
        app["labels"]["pad"] = Value::String("x".repeat(size - len - 20));
    }
    app
}

/// A small app definition.
pub fn app(id: &str) -> Value {
    app_body(id, 0)
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

/// Formats a process output for failure messages.
pub fn describe_output(out: &std::process::Output) -> String {
    format!(
        "status: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

// ---------------------------------------------------------------------------------------------
// Clusters
// ---------------------------------------------------------------------------------------------

/// What `GET /v1/cluster` on one master said.
#[derive(Debug, Clone)]
pub struct View {
    /// Index (into [`Cluster::masters`]) of the master asked.
    pub from: usize,
    /// The raw JSON.
    pub json: Value,
}

impl View {
    /// `leader_address`, if any.
    pub fn leader_address(&self) -> Option<String> {
        self.json
            .get("leader_address")
            .and_then(Value::as_str)
            .map(str::to_string)
    }

    /// Member count.
    pub fn member_count(&self) -> usize {
        self.json
            .get("members")
            .and_then(Value::as_array)
            .map_or(0, Vec::len)
    }

    /// `(address, role)` of every member.
    pub fn roles(&self) -> Vec<(String, String)> {
        self.json
            .get("members")
            .and_then(Value::as_array)
            .map(|ms| {
                ms.iter()
                    .map(|m| {
                        (
                            m.get("address")
                                .and_then(Value::as_str)
                                .unwrap_or("?")
                                .to_string(),
                            m.get("role")
                                .and_then(Value::as_str)
                                .unwrap_or("?")
                                .to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// A set of masters sharing one temp dir. Kills every process on drop; prints logs on panic.
#[derive(Debug)]
pub struct Cluster {
    /// The masters, in `--masters` order for clusters made by [`Cluster::start`].
    pub masters: Vec<Master>,
    /// Agents added with [`Cluster::add_agent`].
    pub agents: Vec<Master>,
    /// HTTP client.
    pub http: Http,
    /// Environment variables for masters added from now on.
    pub master_env: Vec<(String, String)>,
    dir: Option<tempfile::TempDir>,
}

impl Default for Cluster {
    fn default() -> Self {
        Cluster::empty()
    }
}

impl Cluster {
    /// No masters yet; a fresh temp dir.
    pub fn empty() -> Cluster {
        let dir = tempfile::Builder::new()
            .prefix("orch-it-")
            .tempdir()
            .expect("create temp dir");
        Cluster {
            masters: Vec::new(),
            agents: Vec::new(),
            http: Http::new(),
            master_env: Vec::new(),
            dir: Some(dir),
        }
    }

    /// The temp dir holding data dirs and logs.
    pub fn dir(&self) -> &Path {
        self.dir.as_ref().expect("temp dir").path()
    }

    /// Starts `n` masters that form one cluster (`--masters` lists all of them; for `n == 1`
    /// the flag is omitted). `extra` flags are appended to every master.
    pub fn start(n: usize, extra: &[&str]) -> Cluster {
        let mut c = Cluster::empty();
        let addrs: Vec<String> = (0..n).map(|_| free_addr()).collect();
        for addr in &addrs {
            let mut args = vec![
                "--listen".to_string(),
                addr.clone(),
                "--advertise".to_string(),
                addr.clone(),
            ];
            if n > 1 {
                args.push("--masters".into());
                args.push(addrs.join(","));
            }
            args.extend(extra.iter().map(|s| s.to_string()));
            c.add(addr, args);
        }
        c
    }

    /// Adds and starts a master at `addr` with exactly `args` plus `--data-dir <own dir>`
    /// (appended unless `args` already has `--data-dir` or `--config`). Returns its index.
    pub fn add(&mut self, addr: &str, mut args: Vec<String>) -> usize {
        let i = self.masters.len();
        let name = format!("master-{}", i + 1);
        let data_dir = self.dir().join(&name).join("data");
        if !args.iter().any(|a| a == "--data-dir" || a == "--config") {
            args.push("--data-dir".into());
            args.push(data_dir.display().to_string());
        }
        let mut m = Master::new(self.dir(), &name, addr, data_dir, args);
        m.env = self.master_env.clone();
        m.start();
        self.masters.push(m);
        i
    }

    /// Adds and starts agent `agent-<n>` following every master, with its own work dir and
    /// hostname, `--advertise-ip 127.0.0.1`, and `extra` flags (e.g. `--resources`,
    /// `--containerizers`). Returns its index in [`Cluster::agents`].
    pub fn add_agent(&mut self, extra: &[&str]) -> usize {
        let i = self.agents.len();
        let name = format!("agent-{}", i + 1);
        let addr = free_addr();
        let work_dir = self.dir().join(&name).join("work");
        let masters: Vec<&str> = self.masters.iter().map(|m| m.addr.as_str()).collect();
        let mut args: Vec<String> = vec![
            "--masters".into(),
            masters.join(","),
            "--listen".into(),
            addr.clone(),
            "--work-dir".into(),
            work_dir.display().to_string(),
            "--hostname".into(),
            name.clone(),
            "--advertise-ip".into(),
            "127.0.0.1".into(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let mut agent = Master::agent(self.dir(), &name, &addr, work_dir, args);
        agent.start();
        self.agents.push(agent);
        i
    }

    /// Waits until `n` agents are registered and reachable (per `GET /v1/agents` on master `i`).
    pub async fn wait_for_agents(&mut self, i: usize, n: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let url = format!("{}/v1/agents", self.url(i));
            let r = match self.http.send(reqwest::Method::GET, &url, None, None).await {
                Ok(r) => r,
                Err(error) => {
                    assert!(Instant::now() < deadline, "{url}: {error:#}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let reachable = r.json()["agents"].as_array().map_or(0, |a| {
                a.iter().filter(|a| a["reachable"] == json!(true)).count()
            });
            if r.status == 200 && reachable >= n {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{n} agents did not register within {timeout:?} (last answer {} {})",
                r.status,
                r.body
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `http://addr` of master `i`.
    pub fn url(&self, i: usize) -> String {
        self.masters[i].url()
    }

    /// Index of the master whose address is `addr`.
    pub fn index_of(&self, addr: &str) -> Option<usize> {
        self.masters.iter().position(|m| m.addr == addr)
    }

    /// Indices of masters whose process is alive.
    pub fn running(&mut self) -> Vec<usize> {
        (0..self.masters.len())
            .filter(|&i| self.masters[i].is_running())
            .collect()
    }

    /// Logs of every master and agent.
    pub fn all_logs(&self, n: usize) -> String {
        self.masters
            .iter()
            .chain(&self.agents)
            .map(|m| m.logs(n))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// `GET /v1/cluster` on master `i`.
    pub async fn view(&self, i: usize) -> anyhow::Result<View> {
        let r = self
            .http
            .send(
                reqwest::Method::GET,
                &format!("{}/v1/cluster", self.url(i)),
                None,
                Some(Duration::from_secs(2)),
            )
            .await?;
        if r.status != 200 {
            bail!(
                "GET /v1/cluster on {} answered {}: {}",
                self.masters[i].addr,
                r.status,
                r.body
            );
        }
        let json = serde_json::from_str(&r.body)
            .with_context(|| format!("/v1/cluster body: {}", r.body))?;
        Ok(View { from: i, json })
    }

    /// Waits until every master in `among` is up and reports the same leader, which is one of
    /// `among`, with `members` members (when given) and no learner. Returns the leader's index.
    pub async fn wait_for_leader_among(
        &mut self,
        among: &[usize],
        members: Option<usize>,
        timeout: Duration,
    ) -> usize {
        let deadline = Instant::now() + timeout;
        let mut last: Vec<String> = Vec::new();
        loop {
            for &i in among {
                self.masters[i].assert_running();
            }
            match self.leader_agreement(among, members).await {
                Ok(i) => return i,
                Err(e) => {
                    last.push(format!("{e:#}"));
                    if last.len() > 3 {
                        last.remove(0);
                    }
                }
            }
            if Instant::now() >= deadline {
                panic!(
                    "no agreed leader among {:?} (members {members:?}) within {timeout:?}; last observations:\n{}\n{}",
                    among.iter().map(|&i| self.masters[i].addr.clone()).collect::<Vec<_>>(),
                    last.join("\n"),
                    self.all_logs(40)
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits for a leader agreed by all running masters, with all of them as members.
    pub async fn wait_for_leader(&mut self, timeout: Duration) -> usize {
        let among = self.running();
        let n = self.masters.len();
        self.wait_for_leader_among(&among, Some(n), timeout).await
    }

    async fn leader_agreement(
        &self,
        among: &[usize],
        members: Option<usize>,
    ) -> anyhow::Result<usize> {
        let mut leader: Option<String> = None;
        for &i in among {
            let v = self.view(i).await?;
            let Some(addr) = v.leader_address() else {
                bail!("{} reports no leader: {}", self.masters[i].addr, v.json);
            };
            if let Some(l) = &leader {
                if *l != addr {
                    bail!(
                        "{} reports leader {addr}, another master reports {l}",
                        self.masters[i].addr
                    );
                }
            }
            if let Some(m) = members {
                if v.member_count() != m {
                    bail!(
                        "{} reports {} members, want {m}: {}",
                        self.masters[i].addr,
                        v.member_count(),
                        v.json
                    );
                }
            }
            if v.roles().iter().any(|(_, r)| r == "learner") {
                bail!(
                    "{} still reports a learner: {}",
                    self.masters[i].addr,
                    v.json
                );
            }
            leader = Some(addr);
        }
        let addr = leader.ok_or_else(|| anyhow!("no masters to ask"))?;
        let idx = self
            .index_of(&addr)
            .ok_or_else(|| anyhow!("leader {addr} is not one of our masters"))?;
        if !among.contains(&idx) {
            bail!("leader {addr} is not among the masters asked");
        }
        Ok(idx)
    }

    /// `GET /metrics` on master `i`, parsed.
    pub async fn metrics(&self, i: usize) -> anyhow::Result<BTreeMap<String, f64>> {
        let r = self
            .http
            .send(
                reqwest::Method::GET,
                &format!("{}/metrics", self.url(i)),
                None,
                Some(Duration::from_secs(2)),
            )
            .await?;
        if r.status != 200 {
            bail!(
                "GET /metrics on {} answered {}",
                self.masters[i].addr,
                r.status
            );
        }
        Ok(parse_metrics(&r.body))
    }

    /// One metric value on master `i`.
    pub async fn metric(&self, i: usize, name: &str) -> anyhow::Result<f64> {
        let m = self.metrics(i).await?;
        m.get(name)
            .copied()
            .ok_or_else(|| anyhow!("metric {name} missing on {}", self.masters[i].addr))
    }

    /// Waits until master `i`'s `orch_raft_applied_index` is at least `index`.
    pub async fn wait_applied(&mut self, i: usize, index: f64, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            self.masters[i].assert_running();
            let last = match self.metric(i, "orch_raft_applied_index").await {
                Ok(v) if v >= index => return,
                Ok(v) => format!("applied index {v}"),
                Err(e) => format!("{e:#}"),
            };
            if Instant::now() >= deadline {
                panic!(
                    "{} did not reach applied index {index} within {timeout:?} (last: {last})\n{}",
                    self.masters[i].addr,
                    self.all_logs(40)
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until every master in `among` has applied the leader's current commit index.
    pub async fn wait_all_caught_up(&mut self, leader: usize, among: &[usize], timeout: Duration) {
        let commit = self
            .metric(leader, "orch_raft_commit_index")
            .await
            .unwrap_or_else(|e| panic!("read leader commit index: {e:#}"));
        for &i in among {
            self.wait_applied(i, commit, timeout).await;
        }
    }

    /// One line per master: its Raft gauges (term, commit, applied, is_leader), for messages.
    pub async fn raft_summary(&self) -> String {
        let mut out = Vec::new();
        for i in 0..self.masters.len() {
            let line = match self.metrics(i).await {
                Ok(m) => {
                    let g = |k: &str| m.get(k).map_or("?".to_string(), |v| v.to_string());
                    format!(
                        "{} {}: term {} commit {} applied {} is_leader {}",
                        self.masters[i].name,
                        self.masters[i].addr,
                        g("orch_raft_term"),
                        g("orch_raft_commit_index"),
                        g("orch_raft_applied_index"),
                        g("orch_raft_is_leader")
                    )
                }
                Err(e) => format!("{} {}: {e:#}", self.masters[i].name, self.masters[i].addr),
            };
            out.push(line);
        }
        out.join("\n")
    }

    /// POST an app through master `i`; panics unless 201.
    pub async fn create_app(&self, i: usize, id: &str) -> Resp {
        let r = self
            .http
            .post(&format!("{}/v2/apps", self.url(i)), &app(id))
            .await;
        assert_eq!(
            r.status, 201,
            "POST /v2/apps {id} via {}: {}",
            self.masters[i].addr, r.body
        );
        r
    }

    /// `GET /v2/apps` through master `i`: the set of app ids.
    pub async fn app_ids(&self, i: usize) -> Vec<String> {
        let r = self.http.get(&format!("{}/v2/apps", self.url(i))).await;
        assert_eq!(
            r.status, 200,
            "GET /v2/apps via {}: {}",
            self.masters[i].addr, r.body
        );
        let mut ids: Vec<String> = r.json()["apps"]
            .as_array()
            .unwrap_or_else(|| panic!("GET /v2/apps has no apps array: {}", r.body))
            .iter()
            .map(|a| {
                a["id"]
                    .as_str()
                    .unwrap_or_else(|| panic!("app without id: {a}"))
                    .to_string()
            })
            .collect();
        ids.sort();
        ids
    }

    /// Asserts that `GET /v2/apps` through master `i` lists every id in `want` (ids with '/').
    pub async fn assert_has_apps(&self, i: usize, want: &[String]) {
        let have = self.app_ids(i).await;
        let missing: Vec<&String> = want.iter().filter(|w| !have.contains(w)).collect();
        assert!(
            missing.is_empty(),
            "via {}: {} of {} apps missing: {:?} (have {} apps)",
            self.masters[i].addr,
            missing.len(),
            want.len(),
            missing,
            have.len()
        );
    }

    /// Starts a write (`PUT /v2/apps/<id>`) through `targets` in turn every 25 ms (each with
    /// a 3 s timeout, without waiting for earlier ones) until one is answered 2xx or `timeout`
    /// passes. Returns the time until the first success and the index of the master that
    /// answered it.
    pub async fn write_until_ok(
        &self,
        targets: &[usize],
        id: &str,
        timeout: Duration,
    ) -> Result<(Duration, usize), String> {
        let body = app(id).to_string();
        let path = id.trim_start_matches('/').to_string();
        let probes: Vec<(usize, String, String)> = targets
            .iter()
            .map(|&i| {
                (
                    i,
                    self.masters[i].addr.clone(),
                    format!("{}/v2/apps/{path}", self.url(i)),
                )
            })
            .collect();
        let http = self.http.clone();
        first_success(
            move |k| {
                let (i, addr, url) = probes[k % probes.len()].clone();
                let http = http.clone();
                let body = body.clone();
                async move {
                    let method = reqwest::Method::PUT;
                    match http
                        .send(method, &url, Some(body), Some(Duration::from_secs(3)))
                        .await
                    {
                        Ok(r) if r.ok() => Ok(i),
                        Ok(r) => Err(format!("{addr} answered {}: {}", r.status, r.body)),
                        Err(e) => Err(format!("{e:#}")),
                    }
                }
            },
            Duration::from_millis(25),
            timeout,
        )
        .await
    }
}

/// Starts `probe(k)` for k = 0, 1, 2, ... every `interval` without waiting for earlier probes,
/// until one returns `Ok` or `timeout` passes; returns the time from the call to the first
/// success and that probe's value. Probes still running when it returns are aborted.
pub async fn first_success<F, Fut, T>(
    mut probe: F,
    interval: Duration,
    timeout: Duration,
) -> Result<(Duration, T), String>
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = Result<T, String>> + Send + 'static,
    T: Send + 'static,
{
    let start = Instant::now();
    let deadline = tokio::time::Instant::from_std(start + timeout);
    let mut set = tokio::task::JoinSet::new();
    let mut next = tokio::time::Instant::from_std(start);
    let mut k = 0usize;
    let mut last = String::from("no probe finished");
    loop {
        if tokio::time::Instant::now() >= next {
            set.spawn(probe(k));
            k += 1;
            next += interval;
        }
        tokio::select! {
            Some(joined) = set.join_next(), if !set.is_empty() => match joined {
                Ok(Ok(v)) => return Ok((start.elapsed(), v)),
                Ok(Err(e)) => last = e,
                Err(e) => last = format!("probe task failed: {e}"),
            },
            _ = tokio::time::sleep_until(next) => {}
            _ = tokio::time::sleep_until(deadline) => {
                return Err(format!("no success within {timeout:?} ({k} tries); last: {last}"));
            }
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "\n===== orch test failed; logs from {} =====",
                self.dir().display()
            );
            eprintln!("{}", self.all_logs(80));
        }
        for m in self.masters.iter_mut().chain(&mut self.agents) {
            m.kill9();
        }
        kill_processes_under(self.dir());
        if std::env::var_os("ORCH_TEST_KEEP").is_some() {
            if let Some(d) = self.dir.take() {
                eprintln!("keeping {}", d.keep().display());
            }
        }
    }
}

/// Builds the busybox test image `tag` (`FROM scratch` + Debian's busybox-static, no
/// registry needed); `Err` explains why it cannot be built.
pub fn build_busybox_image(tag: &str) -> Result<(), String> {
    let busybox = Path::new("/bin/busybox");
    if !busybox.exists() {
        return Err("/bin/busybox missing (apt-get install busybox-static)".to_owned());
    }
    let context = tempfile::tempdir().map_err(|e| e.to_string())?;
    std::fs::copy(busybox, context.path().join("busybox")).map_err(|e| e.to_string())?;
    std::fs::write(
        context.path().join("Dockerfile"),
        "FROM scratch\nCOPY busybox /bin/busybox\n\
         RUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\nCMD [\"/bin/sh\"]\n",
    )
    .map_err(|e| e.to_string())?;
    let out = Command::new("docker")
        .args(["build", "-q", "-t", tag])
        .arg(context.path())
        .output()
        .map_err(|e| format!("running docker build: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "docker build failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// Runs git (as a test user) in `dir` and returns its trimmed stdout; panics if it fails.
pub fn git_in(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .args(["-c", "user.name=orch-test", "-c", "user.email=test@orch"])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git runs");
    assert!(
        output.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// A git repo in a temp dir for GitOps tests: write files, commit, read the head.
pub struct GitRepo {
    dir: tempfile::TempDir,
}

impl GitRepo {
    /// `git init` on branch `main`.
    pub fn new() -> GitRepo {
        let dir = tempfile::Builder::new()
            .prefix("orch-repo-")
            .tempdir()
            .expect("create temp dir");
        let repo = GitRepo { dir };
        repo.git(&["init", "-q", "-b", "main"]);
        repo
    }

    /// The repo's folder.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Runs git in the repo and returns its trimmed stdout; panics if it fails.
    pub fn git(&self, args: &[&str]) -> String {
        git_in(self.path(), args)
    }

    /// Writes `text` to `path` (relative; folders are created).
    pub fn write(&self, path: &str, text: &str) {
        let file = self.path().join(path);
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent).expect("create folders");
        }
        std::fs::write(file, text).expect("write file");
    }

    /// Removes `path`.
    pub fn remove(&self, path: &str) {
        std::fs::remove_file(self.path().join(path)).expect("remove file");
    }

    /// Commits everything and returns the new head.
    pub fn commit(&self, message: &str) -> String {
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "--allow-empty", "-m", message]);
        self.head()
    }

    /// The head commit id.
    pub fn head(&self) -> String {
        self.git(&["rev-parse", "HEAD"])
    }
}

// ---------------------------------------------------------------------------------------------
// Marathon's event stream
// ---------------------------------------------------------------------------------------------

/// One `orch` event received from `/v2/events`, stamped when the bench read it.
#[derive(Debug, Clone)]
pub struct Received {
    /// When the frame was read by the bench.
    pub at: std::time::Instant,
    /// The `event:` line.
    pub event_type: String,
    /// The `data:` JSON.
    pub data: serde_json::Value,
}

/// Follows `GET <master>/v2/events?event_type=...` (server-sent events) in a background task
/// and forwards every event. Returns once `event_stream_attached` has been read, so events
/// caused by requests made after the call are not missed. Panics if the stream cannot be
/// opened within 10 s.
pub async fn follow_events(
    master: &str,
    types: &[&str],
) -> tokio::sync::mpsc::UnboundedReceiver<Received> {
    let mut query: Vec<String> = vec!["event_type=event_stream_attached".into()];
    query.extend(types.iter().map(|t| format!("event_type={t}")));
    let url = format!("{master}/v2/events?{}", query.join("&"));
    // No total timeout: the stream stays open for the whole bench.
    let client = reqwest::Client::builder()
        .no_proxy()
        .connect_timeout(Duration::from_secs(2))
        .build()
        .expect("build reqwest client");
    let mut resp = tokio::time::timeout(Duration::from_secs(10), client.get(&url).send())
        .await
        .unwrap_or_else(|_| panic!("GET {url}: no answer within 10 s"))
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    assert_eq!(resp.status().as_u16(), 200, "GET {url}");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut buf: Vec<u8> = Vec::new();
        while let Ok(Some(chunk)) = resp.chunk().await {
            let at = std::time::Instant::now();
            buf.extend_from_slice(&chunk);
            while let Some(end) = find_frame_end(&buf) {
                let frame: Vec<u8> = buf.drain(..end).collect();
                let text = String::from_utf8_lossy(&frame);
                let mut event_type = String::new();
                let mut data = String::new();
                for line in text.lines() {
                    if let Some(t) = line.strip_prefix("event:") {
                        event_type = t.trim().to_string();
                    } else if let Some(d) = line.strip_prefix("data:") {
                        data.push_str(d.trim());
                    }
                }
                if data.is_empty() {
                    continue; // heartbeat
                }
                let Ok(data) = serde_json::from_str(&data) else {
                    panic!("event {event_type} with bad JSON: {data}");
                };
                if tx
                    .send(Received {
                        at,
                        event_type,
                        data,
                    })
                    .is_err()
                {
                    return;
                }
            }
        }
    });
    let first = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .unwrap_or_else(|_| panic!("{url}: no event_stream_attached within 10 s"))
        .unwrap_or_else(|| panic!("{url}: stream ended before event_stream_attached"));
    assert_eq!(
        first.event_type, "event_stream_attached",
        "{url}: first event"
    );
    rx
}

/// End (exclusive) of the first complete SSE frame in `buf`: after a blank line, written as
/// `\r\n\r\n` or `\n\n`; a lone `\r\n` heartbeat at the start is a frame of its own.
fn find_frame_end(buf: &[u8]) -> Option<usize> {
    if buf.starts_with(b"\r\n") {
        return Some(2);
    }
    if buf.starts_with(b"\n") {
        return Some(1);
    }
    let crlf = buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4);
    let lf = buf.windows(2).position(|w| w == b"\n\n").map(|i| i + 2);
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Waits (at most `timeout`) for a `status_update_event` with `taskStatus` `state` for which
/// `matches(data)` holds; returns it. Panics on timeout or when the stream ends.
pub async fn wait_status(
    events: &mut tokio::sync::mpsc::UnboundedReceiver<Received>,
    state: &str,
    timeout: Duration,
    mut matches: impl FnMut(&serde_json::Value) -> bool,
) -> Received {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let ev = tokio::time::timeout_at(deadline, events.recv())
            .await
            .unwrap_or_else(|_| panic!("no {state} status_update_event within {timeout:?}"))
            .unwrap_or_else(|| panic!("event stream ended while waiting for {state}"));
        if ev.event_type == "status_update_event"
            && ev.data["taskStatus"] == serde_json::json!(state)
            && matches(&ev.data)
        {
            return ev;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// DNS
// ---------------------------------------------------------------------------------------------

/// An `orch dns` process following a cluster's masters, on ports picked at run time.
#[derive(Debug)]
pub struct DnsProcess {
    /// The process (killed on drop).
    pub process: Master,
    /// Its DNS address (UDP and TCP).
    pub dns: SocketAddr,
    /// `http://` + its HTTP API address.
    pub http: String,
}

impl DnsProcess {
    /// Starts `orch dns --masters <masters> --listen .. --http-listen .. <extra>`, logging
    /// into `cluster`'s dir.
    pub fn start(cluster: &Cluster, masters: &[String], extra: &[&str]) -> Self {
        let dns = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let http = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let mut args = vec![
            "--masters".to_owned(),
            masters.join(","),
            "--listen".to_owned(),
            dns.to_string(),
            "--http-listen".to_owned(),
            http.to_string(),
        ];
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        let name = format!("dns-{}", dns.port());
        let mut process = Master::new(
            cluster.dir(),
            &name,
            &dns.to_string(),
            cluster.dir().join(&name),
            args,
        );
        process.subcommand = "dns".into();
        process.start();
        Self {
            process,
            dns,
            http: format!("http://{http}"),
        }
    }
}

/// Runs Debian's `dig @server -p port +tries=1 +time=2 <args>` and returns its stdout.
pub async fn dig(server: SocketAddr, args: &[&str]) -> String {
    let out = tokio::process::Command::new("dig")
        .arg(format!("@{}", server.ip()))
        .args(["-p", &server.port().to_string(), "+tries=1", "+time=2"])
        .args(args)
        .output()
        .await
        .expect("run dig (Debian's dnsutils)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Polls `dig +short <args>` until `done` holds for its answer (lines sorted, joined by
/// spaces); panics with the last answer after `timeout`. Returns the answer.
pub async fn wait_dig(
    server: SocketAddr,
    args: &[&str],
    timeout: Duration,
    done: impl Fn(&str) -> bool,
) -> String {
    let deadline = Instant::now() + timeout;
    let mut all = vec!["+short"];
    all.extend_from_slice(args);
    loop {
        let out = dig(server, &all).await;
        let mut lines: Vec<&str> = out.lines().map(str::trim).collect();
        lines.sort_unstable();
        let answer = lines.join(" ");
        if done(&answer) {
            return answer;
        }
        assert!(
            Instant::now() < deadline,
            "dig {args:?} @{server}: still '{answer}' after {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// How long [`try_query`] waits for an answer.
pub const QUERY_TIMEOUT: Duration = Duration::from_millis(500);

/// How many of [`try_query`]'s queries got no answer in time (in this process).
pub static UNANSWERED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// One query over UDP, answered within [`QUERY_TIMEOUT`].
pub fn query(server: SocketAddr, name: &str, rtype: RecordType) -> Message {
    try_query(server, name, rtype).expect("an answer in time")
}

/// One query over UDP with EDNS0 (4096 bytes, so answers of up to ~60 SRV records come
/// whole); `None` when nothing (well-formed) comes back within `QUERY_TIMEOUT`.
pub fn try_query(server: SocketAddr, name: &str, rtype: RecordType) -> Option<Message> {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind a client socket");
    socket
        .set_read_timeout(Some(QUERY_TIMEOUT))
        .expect("set a read timeout");
    let mut edns = Edns::new();
    edns.set_max_payload(4096);
    let mut message = Message::new();
    message
        .set_id(query_id())
        .set_message_type(MessageType::Query)
        .set_op_code(OpCode::Query)
        .set_recursion_desired(true)
        .set_edns(edns)
        .add_query(Query::query(
            Name::from_str(name).expect("a valid name"),
            rtype,
        ));
    let bytes = message.to_vec().expect("encode the query");
    socket.send_to(&bytes, server).expect("send the query");
    let mut buffer = [0u8; 4096];
    let Ok((n, _)) = socket.recv_from(&mut buffer) else {
        UNANSWERED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        return None;
    };
    Message::from_vec(&buffer[..n]).ok()
}

/// A query id that differs from one call to the next.
fn query_id() -> u16 {
    static NEXT: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// The ports of the SRV answer for `name` (none when the server does not answer).
pub fn srv_ports(server: SocketAddr, name: &str) -> BTreeSet<u16> {
    let Some(answer) = try_query(server, name, RecordType::SRV) else {
        return BTreeSet::new();
    };
    answer
        .answers()
        .iter()
        .filter_map(|record| match record.data() {
            RData::SRV(srv) => Some(srv.port()),
            _ => None,
        })
        .collect()
}

/// An `orch lb` process of a test cluster, on free ports of 127.0.0.1.
#[derive(Debug)]
pub struct LbProcess {
    /// The process (killed on drop).
    pub process: Master,
    /// Host/path routing port.
    pub http: u16,
    /// TLS port.
    pub https: u16,
    /// X-Marathon-App-Id port.
    pub app_id: u16,
    /// Stats and control port.
    pub stats: u16,
}

impl LbProcess {
    /// Starts `orch lb --masters <masters> --bind-addr 127.0.0.1 --http-port .. --https-port
    /// .. --app-id-port .. --stats-port .. <extra>`, logging into `cluster`'s dir, and waits
    /// until its stats port answers.
    pub async fn start(cluster: &Cluster, masters: &[String], extra: &[&str]) -> Self {
        let (http, https, app_id, stats) = (free_port(), free_port(), free_port(), free_port());
        let mut args = vec![
            "--masters".to_owned(),
            masters.join(","),
            "--bind-addr".into(),
            "127.0.0.1".into(),
        ];
        for (flag, port) in [
            ("--http-port", http),
            ("--https-port", https),
            ("--app-id-port", app_id),
            ("--stats-port", stats),
        ] {
            args.extend([flag.to_owned(), port.to_string()]);
        }
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        let name = format!("lb-{stats}");
        let mut process = Master::new(
            cluster.dir(),
            &name,
            &format!("127.0.0.1:{stats}"),
            cluster.dir().join(&name),
            args,
        );
        process.subcommand = "lb".into();
        process.start();
        let lb = Self {
            process,
            http,
            https,
            app_id,
            stats,
        };
        let health = format!("http://127.0.0.1:{stats}/_haproxy_health_check");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !cluster
            .http
            .send(reqwest::Method::GET, &health, None, None)
            .await
            .is_ok_and(|r| r.ok())
        {
            assert!(
                Instant::now() < deadline,
                "orch lb never answered:\n{}",
                lb.process.logs(30)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        lb
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(port: u16) -> String {
        format!("http://127.0.0.1:{port}")
    }
}

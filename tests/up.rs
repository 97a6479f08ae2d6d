//! `orch up`, `orch status` and `orch destroy` with the local provider, as a user runs them:
//! real processes, each test in its own temp dir as the current directory, with an infra
//! file whose `api:` is a port picked at run time (never 8080).
//!
//! The tests run one at a time (a lock): each cluster takes the ports after its API port,
//! which a parallel test could otherwise have picked.

mod support;

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};
use support::{describe_output, free_port, git_in, send_signal, tail, Http, BIN};

/// One test at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Bound for one `orch` command.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(90);
/// Bound for a whole test.
const TEST_TIMEOUT: Duration = Duration::from_secs(240);

/// A temp dir used as the current directory of `orch`, holding `infra.yaml`. Whatever runs
/// under it is killed on drop; on a panic the cluster's logs are printed.
struct Workdir {
    dir: tempfile::TempDir,
    api: u16,
}

impl Workdir {
    /// `infra.yaml` with `api: 127.0.0.1:<free port>` and `extra` lines.
    fn new(extra: &str) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("orch-up-")
            .tempdir()
            .expect("create temp dir");
        let api = free_port();
        let text = format!(
            "api: 127.0.0.1:{api}\n{}{}{extra}",
            dns_lines(),
            lb_lines().0
        );
        std::fs::write(dir.path().join("infra.yaml"), text).expect("write infra.yaml");
        Self { dir, api }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn cluster_dir(&self) -> PathBuf {
        self.path().join(".orch/local")
    }

    fn api_url(&self) -> String {
        format!("https://127.0.0.1:{}", self.api)
    }

    /// A client of the cluster with its CA and token, once `orch up` has made them.
    async fn http(&self) -> Http {
        let deadline = Instant::now() + Duration::from_secs(60);
        let dir = self.cluster_dir();
        while !(dir.join("pki/ca.pem").exists() && dir.join("token").exists()) {
            assert!(
                Instant::now() < deadline,
                "no CA and token in {}",
                dir.display()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Http::for_cluster(&dir)
    }

    /// `orch ARGS` here with no ORCH_* variable: all it knows comes from `.orch/`.
    async fn orch_bare(&self, args: &[&str]) -> Output {
        support::run_orch_bare(self.path(), args, COMMAND_TIMEOUT).await
    }

    /// Runs `orch ARGS` here with stdin closed; bounded.
    async fn orch(&self, args: &[&str]) -> Output {
        support::run_orch_in(Some(self.path()), args, COMMAND_TIMEOUT).await
    }

    /// Runs `orch ARGS` and asserts exit 0; returns stdout.
    async fn orch_ok(&self, args: &[&str]) -> String {
        let out = self.orch(args).await;
        assert!(
            out.status.success(),
            "orch {} failed:\n{}\n{}",
            args.join(" "),
            describe_output(&out),
            self.logs()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `(name, pid)` from the pid files in `.orch/local/`.
    fn pids(&self) -> Vec<(String, i32)> {
        let Ok(entries) = std::fs::read_dir(self.cluster_dir()) else {
            return Vec::new();
        };
        let mut pids: Vec<(String, i32)> = entries
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_str()?.strip_suffix(".pid")?.to_owned();
                let pid = std::fs::read_to_string(e.path())
                    .ok()?
                    .trim()
                    .parse()
                    .ok()?;
                Some((name, pid))
            })
            .collect();
        pids.sort();
        pids
    }

    /// Live processes whose cwd or an argument lies under this dir.
    fn processes_under(&self) -> Vec<String> {
        let dir = self.path().canonicalize().expect("canonical temp dir");
        let mut found = Vec::new();
        for entry in std::fs::read_dir("/proc").expect("read /proc").flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<i32>().ok())
            else {
                continue;
            };
            if u32::try_from(pid).is_ok_and(|pid| pid == std::process::id()) || !alive(pid) {
                continue;
            }
            let cwd = std::fs::read_link(entry.path().join("cwd")).unwrap_or_default();
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if cwd.starts_with(&dir) || cmdline.contains(&dir.display().to_string()) {
                found.push(format!("{pid} {cmdline}"));
            }
        }
        found
    }

    /// Waits (bounded) until no process runs under this dir.
    async fn assert_no_processes(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let left = self.processes_under();
            if left.is_empty() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "processes still running under {}:\n{}",
                self.path().display(),
                left.join("\n")
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The tail of every log in `.orch/local/`.
    fn logs(&self) -> String {
        let Ok(entries) = std::fs::read_dir(self.cluster_dir()) else {
            return String::from("(no .orch/local)");
        };
        entries
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "log"))
            .map(|e| {
                format!(
                    "----- {} -----\n{}",
                    e.path().display(),
                    tail(&e.path(), 40)
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Workdir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
        support::kill_processes_under(self.path());
    }
}

/// True while `pid` exists and is not a zombie.
fn alive(pid: i32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let state = stat
        .rfind(')')
        .and_then(|i| stat[i + 1..].split_whitespace().next())
        .unwrap_or("X");
    state != "Z" && state != "X"
}

/// Polls `GET url` until `done(json)` holds; panics with the last answer after `timeout`.
async fn wait_json(http: &Http, url: &str, timeout: Duration, done: impl Fn(&Value) -> bool) {
    let deadline = Instant::now() + timeout;
    loop {
        let last = match http.send(reqwest::Method::GET, url, None, None).await {
            Ok(r) if r.ok() => {
                if done(&r.json()) {
                    return;
                }
                r.body
            }
            Ok(r) => format!("{} {}", r.status, r.body),
            Err(e) => format!("{e:#}"),
        };
        assert!(
            Instant::now() < deadline,
            "{url}: not there within {timeout:?}; last answer: {last}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn reachable_agents(json: &Value) -> usize {
    json["agents"].as_array().map_or(0, |a| {
        a.iter().filter(|a| a["reachable"] == json!(true)).count()
    })
}

#[tokio::test]
async fn up_status_up_again_destroy() {
    let _serial = SERIAL.lock().await;
    tokio::time::timeout(TEST_TIMEOUT, async {
        // Containerizers left to detection: mesos, plus docker when an engine answers.
        let wd = Workdir::new("");
        let out = wd.orch_ok(&["up", "-f", "infra.yaml", "--detach"]).await;
        assert!(out.contains("cluster 'local' is up"), "{out}");
        assert!(
            out.contains(&format!(
                "API     {} (Marathon /v2, orch /v1; TLS, token)",
                wd.api_url()
            )),
            "{out}"
        );
        assert!(
            out.contains("DNS     127.0.0.1:") && out.contains("LB      http 127.0.0.1:"),
            "{out}"
        );
        let pids = wd.pids();
        let names: Vec<&str> = pids.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["agent-1", "master-1"]);
        assert!(pids.iter().all(|(_, pid)| alive(*pid)), "{pids:?}");
        assert!(wd.cluster_dir().join("state.json").exists());
        assert!(wd.cluster_dir().join("master-1.log").exists());

        let status = wd.orch_ok(&["status", "-f", "infra.yaml"]).await;
        assert!(status.contains("cluster 'local': running"), "{status}");
        assert!(
            status.contains(&format!("leader  127.0.0.1:{}", wd.api)),
            "{status}"
        );
        assert!(
            status.contains("agents  1 registered, 1 reachable"),
            "{status}"
        );
        assert!(status.contains("master-1  master"), "{status}");

        // Already running: reported, nothing changes, also without --detach.
        for args in [
            &["up", "-f", "infra.yaml"][..],
            &["up", "-f", "infra.yaml", "--detach"],
        ] {
            let again = wd.orch_ok(args).await;
            assert!(
                again.contains(&format!(
                    "cluster 'local' is already running: API {}",
                    wd.api_url()
                )),
                "{again}"
            );
            assert_eq!(wd.pids(), pids);
            assert!(pids.iter().all(|(_, pid)| alive(*pid)));
        }

        // Not on a terminal and no --yes: refused, nothing stopped.
        let refused = wd.orch(&["destroy", "-f", "infra.yaml"]).await;
        assert!(!refused.status.success());
        assert!(
            String::from_utf8_lossy(&refused.stderr)
                .contains("pass --yes to destroy without asking"),
            "{}",
            describe_output(&refused)
        );
        assert!(pids.iter().all(|(_, pid)| alive(*pid)));

        let destroyed = wd.orch_ok(&["destroy", "-f", "infra.yaml", "--yes"]).await;
        assert!(
            destroyed.contains("cluster 'local' destroyed"),
            "{destroyed}"
        );
        assert!(
            pids.iter().all(|(_, pid)| !alive(*pid)),
            "{pids:?} still alive"
        );
        assert!(!wd.path().join(".orch").exists(), ".orch/ is left");
        wd.assert_no_processes(Duration::from_secs(5)).await;

        let again = wd.orch_ok(&["destroy", "-f", "infra.yaml", "--yes"]).await;
        assert!(again.contains("does not exist"), "{again}");
        let status = wd.orch_ok(&["status", "-f", "infra.yaml"]).await;
        assert!(
            status.contains("cluster 'local' does not exist here"),
            "{status}"
        );
    })
    .await
    .expect("test timed out");
}

/// `curl` against the cluster with its CA and `extra` arguments; (status, body).
fn curl(ca: &Path, extra: &[&str]) -> (u16, String) {
    let out = std::process::Command::new("curl")
        .args(["-s", "--max-time", "5", "--cacert"])
        .arg(ca)
        .args(["-w", "\n%{http_code}"])
        .args(extra)
        .output()
        .expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_owned())
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

/// A cluster of `orch up` answers only HTTPS, verified against the CA it made, and only with
/// its token; the CLI run where `orch up` ran needs no flag and no environment variable.
#[tokio::test]
async fn up_makes_a_tls_cluster_whose_cli_needs_no_flags() {
    let _serial = SERIAL.lock().await;
    tokio::time::timeout(TEST_TIMEOUT, async {
        let wd = Workdir::new("containerizers: mesos\n");
        let out = wd.orch_ok(&["up", "-f", "infra.yaml", "--detach"]).await;
        let dir = wd.cluster_dir();
        let ca = dir.join("pki/ca.pem");
        let token = std::fs::read_to_string(dir.join("token")).expect("the token");
        let token = token.trim();
        assert!(
            out.contains(&format!(
                "export ORCH_MASTER={} ORCH_TOKEN={token} ORCH_CA={}",
                wd.api_url(),
                ca.display()
            )),
            "{out}"
        );
        // Private keys and the token are 0600; the CA key stays here.
        for file in [
            "pki/ca-key.pem",
            "pki/master-1-key.pem",
            "pki/agent-1-key.pem",
            "token",
        ] {
            assert_eq!(mode(&dir.join(file)), 0o600, "{file}");
        }
        // HTTPS verified with the CA: the token gets in, nothing else does.
        let cluster = format!("{}/v1/cluster", wd.api_url());
        let bearer = format!("Authorization: Bearer {token}");
        let (status, body) = curl(&ca, &["-H", &bearer, &cluster]);
        assert_eq!(status, 200, "{body}");
        assert_eq!(curl(&ca, &[&cluster]).0, 401);
        assert_eq!(
            curl(&ca, &["-H", "Authorization: Bearer wrong", &cluster]).0,
            401
        );
        let plain = std::process::Command::new("curl")
            .args([
                "-s",
                "--max-time",
                "5",
                &format!("http://127.0.0.1:{}/ping", wd.api),
            ])
            .output()
            .expect("run curl");
        assert!(
            !plain.status.success() || plain.stdout.is_empty(),
            "plaintext answered: {plain:?}"
        );
        let s_client = std::process::Command::new("openssl")
            .args([
                "s_client",
                "-connect",
                &format!("127.0.0.1:{}", wd.api),
                "-CAfile",
            ])
            .arg(&ca)
            .stdin(Stdio::null())
            .output()
            .expect("run openssl");
        let shown = String::from_utf8_lossy(&s_client.stdout);
        assert!(shown.contains("Verify return code: 0 (ok)"), "{shown}");

        // The CLI, run here with no flag and no environment: master, CA and token from .orch/.
        let app = wd.path().join("app.json");
        std::fs::write(
            &app,
            r#"{"id":"/bare","cmd":"echo hello-bare; sleep 1000","cpus":0.1,"mem":16,"instances":1}"#,
        )
        .expect("write app.json");
        let added = wd.orch_bare(&["app", "add", "app.json"]).await;
        assert!(added.status.success(), "{}", describe_output(&added));
        let listed = wd.orch_bare(&["app", "list"]).await;
        assert!(
            listed.status.success() && String::from_utf8_lossy(&listed.stdout).contains("/bare"),
            "{}",
            describe_output(&listed)
        );
        let nodes = wd.orch_bare(&["node", "list"]).await;
        assert!(
            String::from_utf8_lossy(&nodes.stdout).contains("agent-1"),
            "{}",
            describe_output(&nodes)
        );
        // A task's output, read through the master from its agent (which answers masters only).
        let deadline = Instant::now() + Duration::from_secs(30);
        let task_id = loop {
            let tasks = wd.orch_bare(&["-o", "json", "task", "list"]).await;
            let tasks: Value = serde_json::from_slice(&tasks.stdout).unwrap_or_default();
            let running = tasks["tasks"].as_array().into_iter().flatten().find(|t| {
                t["appId"] == "/bare" && t["state"] == "TASK_RUNNING"
            });
            if let Some(id) = running.and_then(|t| t["id"].as_str()) {
                break id.to_owned();
            }
            assert!(Instant::now() < deadline, "/bare never ran: {tasks}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        let logs = wd.orch_bare(&["task", "logs", &task_id]).await;
        assert!(
            String::from_utf8_lossy(&logs.stdout).contains("hello-bare"),
            "{}",
            describe_output(&logs)
        );
        // status and destroy need no -f where `orch up` ran.
        let status = wd.orch_bare(&["status"]).await;
        assert!(
            String::from_utf8_lossy(&status.stdout).contains("cluster 'local': running"),
            "{}",
            describe_output(&status)
        );
        // With a second cluster dir, one must be named.
        std::fs::create_dir_all(wd.path().join(".orch/other")).expect("mkdir");
        std::fs::write(wd.path().join(".orch/other/token"), "x\n").expect("token");
        let several = wd.orch_bare(&["app", "list"]).await;
        assert!(!several.status.success());
        assert!(
            String::from_utf8_lossy(&several.stderr)
                .contains("several clusters in .orch/: local, other"),
            "{}",
            describe_output(&several)
        );
        let named = wd.orch_bare(&["--cluster", "local", "app", "list"]).await;
        assert!(named.status.success(), "{}", describe_output(&named));
        std::fs::remove_dir_all(wd.path().join(".orch/other")).expect("rm");

        let destroyed = wd.orch_bare(&["destroy", "--yes"]).await;
        assert!(
            String::from_utf8_lossy(&destroyed.stdout).contains("cluster 'local' destroyed"),
            "{}",
            describe_output(&destroyed)
        );
        wd.assert_no_processes(Duration::from_secs(5)).await;
        assert!(!dir.exists());
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn three_masters_and_two_agents_with_disjoint_task_ports() {
    let _serial = SERIAL.lock().await;
    tokio::time::timeout(TEST_TIMEOUT, async {
        let wd = Workdir::new("masters: 3\nagents: 2\ncontainerizers: mesos\n");
        let out = wd.orch_ok(&["up", "-f", "infra.yaml", "--detach"]).await;
        assert!(out.contains("3 masters and 2 agents"), "{out}");
        let names: Vec<String> = wd.pids().into_iter().map(|(n, _)| n).collect();
        assert_eq!(
            names,
            ["agent-1", "agent-2", "master-1", "master-2", "master-3"]
        );

        let status = wd.orch_ok(&["status", "-f", "infra.yaml"]).await;
        assert!(status.contains("cluster 'local': running"), "{status}");
        assert!(status.contains("3 of 3 masters members"), "{status}");
        assert!(
            status.contains("agents  2 registered, 2 reachable"),
            "{status}"
        );

        let http = wd.http().await;
        let agents = http
            .get(&format!("{}/v1/agents", wd.api_url()))
            .await
            .json();
        assert_eq!(reachable_agents(&agents), 2, "{agents}");
        let mut ranges: Vec<String> = agents["agents"]
            .as_array()
            .expect("agents")
            .iter()
            .map(|a| a["resources"]["ports"].to_string())
            .collect();
        ranges.sort();
        assert_eq!(ranges.len(), 2);
        assert!(ranges[0].contains("31000-31999"), "{ranges:?}");
        assert!(ranges[1].contains("32000-32999"), "{ranges:?}");

        wd.orch_ok(&["destroy", "-f", "infra.yaml", "--yes"]).await;
        wd.assert_no_processes(Duration::from_secs(5)).await;
        assert!(!wd.cluster_dir().exists());
    })
    .await
    .expect("test timed out");
}

/// The local provider takes the one flow: `--plan` prints what `up` then does and changes
/// nothing; a node that exits at once, or a failure injected at any later step, fails `up`
/// and stops what it started; a re-run starts only what does not run.
#[tokio::test]
async fn the_plan_is_what_up_does_and_a_failed_up_stops_what_it_started() {
    let _serial = SERIAL.lock().await;
    tokio::time::timeout(TEST_TIMEOUT, async {
        let wd = Workdir::new("containerizers: mesos\n");
        let plan = wd.orch_ok(&["up", "-f", "infra.yaml", "--plan"]).await;
        assert!(
            plan.contains("plan for cluster 'local' (local provider, from infra.yaml)"),
            "{plan}"
        );
        assert!(plan.contains("  lay out 1 master and 1 agent"), "{plan}");
        assert!(
            plan.contains("  make the cluster's CA and management token in .orch/local"),
            "{plan}"
        );
        assert!(
            plan.contains(&format!("  start master-1 on 127.0.0.1:{} (new)\n", wd.api)),
            "{plan}"
        );
        assert!(plan.contains("  start agent-1 on 127.0.0.1:"), "{plan}");
        assert!(!wd.path().join(".orch").exists(), "--plan changed nothing");

        // A node that ends at once fails the run at once, with its reason.
        let begin = Instant::now();
        let out = wd
            .orch(&[
                "up",
                "-f",
                "infra.yaml",
                "--detach",
                "--binary",
                "/bin/false",
            ])
            .await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{}", describe_output(&out));
        assert!(
            stderr.contains("stopped what was started")
                && stderr.contains("master-1 exited during startup (exit status: 1)"),
            "{}",
            describe_output(&out)
        );
        assert!(
            begin.elapsed() < Duration::from_secs(20),
            "{:?}",
            begin.elapsed()
        );

        // A failure injected once the nodes run stops them again.
        let out = tokio::process::Command::new(BIN)
            .current_dir(wd.path())
            .args(["up", "-f", "infra.yaml", "--detach"])
            .env("ORCH_FAIL_AT", "wait-agents")
            .stdin(Stdio::null())
            .output()
            .await
            .expect("run orch up");
        assert!(!out.status.success(), "{}", describe_output(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr)
                .contains("stopped what was started: failure injected at step wait-agents"),
            "{}",
            describe_output(&out)
        );
        wd.assert_no_processes(Duration::from_secs(5)).await;

        let up = wd.orch_ok(&["up", "-f", "infra.yaml", "--detach"]).await;
        assert!(up.contains("restarting cluster 'local'"), "{up}");
        assert!(up.contains(": 2 started, 0 restarted, 0 unchanged"), "{up}");
        let pids = wd.pids();
        let pid_of = |pids: &[(String, i32)], name: &str| {
            pids.iter()
                .find(|(n, _)| n == name)
                .map(|(_, pid)| *pid)
                .expect("a pid file")
        };
        let (master, agent) = (pid_of(&pids, "master-1"), pid_of(&pids, "agent-1"));
        std::process::Command::new("kill")
            .args(["-KILL", &agent.to_string()])
            .status()
            .expect("kill the agent");
        let deadline = Instant::now() + Duration::from_secs(5);
        while alive(agent) {
            assert!(Instant::now() < deadline, "agent-1 survives SIGKILL");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }

        let plan = wd.orch_ok(&["up", "-f", "infra.yaml", "--plan"]).await;
        assert!(
            plan.contains(&format!("  master-1: running (pid {master})")),
            "{plan}"
        );
        assert!(plan.contains("  start agent-1 on 127.0.0.1:"), "{plan}");
        assert!(plan.contains("(not running)"), "{plan}");
        let up = wd.orch_ok(&["up", "-f", "infra.yaml", "--detach"]).await;
        assert!(up.contains(": 1 started, 0 restarted, 1 unchanged"), "{up}");
        let again = wd.pids();
        assert_eq!(pid_of(&again, "master-1"), master);
        assert_ne!(pid_of(&again, "agent-1"), agent);
        assert!(again.iter().all(|(_, pid)| alive(*pid)), "{again:?}");

        wd.orch_ok(&["destroy", "-f", "infra.yaml", "--yes"]).await;
        wd.assert_no_processes(Duration::from_secs(5)).await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn a_taken_port_is_named_and_nothing_starts() {
    let _serial = SERIAL.lock().await;
    tokio::time::timeout(TEST_TIMEOUT, async {
        let wd = Workdir::new("");
        let _taken = std::net::TcpListener::bind(("127.0.0.1", wd.api)).expect("take the API port");
        let out = wd.orch(&["up", "-f", "infra.yaml", "--detach"]).await;
        assert!(!out.status.success(), "{}", describe_output(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(&format!(
                "port {} on 127.0.0.1 is already in use; set api: in infra.yaml",
                wd.api
            )),
            "{}",
            describe_output(&out)
        );
        assert!(!wd.cluster_dir().join("state.json").exists());
        wd.assert_no_processes(Duration::from_secs(1)).await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn foreground_up_stops_everything_on_sigint_and_restarts_on_the_same_ports() {
    let _serial = SERIAL.lock().await;
    tokio::time::timeout(TEST_TIMEOUT, async {
        let wd = Workdir::new("containerizers: mesos\n");
        let stdout = wd.path().join("up.stdout");
        let stderr = wd.path().join("up.stderr");
        let mut up = std::process::Command::new(BIN)
            .args(["up", "-f", "infra.yaml"])
            .current_dir(wd.path())
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout).expect("create up.stdout"))
            .stderr(std::fs::File::create(&stderr).expect("create up.stderr"))
            .spawn()
            .expect("spawn orch up");
        let up_output = || {
            format!(
                "--- orch up stdout ---\n{}\n--- stderr ---\n{}",
                tail(&stdout, 40),
                tail(&stderr, 40)
            )
        };
        let http = wd.http().await;
        wait_json(
            &http,
            &format!("{}/v1/agents", wd.api_url()),
            Duration::from_secs(60),
            |json| reachable_agents(json) == 1,
        )
        .await;
        let created = http
            .post(
                &format!("{}/v2/apps", wd.api_url()),
                &json!({"id": "/sleeper", "cmd": "sleep 1000", "cpus": 0.1, "mem": 16, "instances": 1}),
            )
            .await;
        assert_eq!(created.status, 201, "{}", created.body);
        wait_json(
            &http,
            &format!("{}/v2/apps/sleeper/tasks", wd.api_url()),
            Duration::from_secs(30),
            |json| {
                json["tasks"]
                    .as_array()
                    .is_some_and(|t| t.len() == 1 && t[0]["state"] == json!("TASK_RUNNING"))
            },
        )
        .await;
        // TASK_RUNNING comes once the task's pid is known; the exec into `sleep` follows.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let running = wd.processes_under();
            if running.iter().any(|p| p.contains("sleep 1000")) {
                assert!(running.iter().any(|p| p.contains(" executor ")), "{running:?}");
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the task's process is not under the cluster dir: {running:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // The foreground `orch up` is waiting (its banner is out).
        let deadline = Instant::now() + Duration::from_secs(10);
        while !tail(&stdout, 40).contains("Ctrl-C stops the cluster") {
            assert!(Instant::now() < deadline, "no foreground banner\n{}", up_output());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }

        send_signal(up.id(), "INT");
        let status = support::wait_exit(&mut up, Duration::from_secs(60))
            .unwrap_or_else(|| panic!("orch up did not exit after SIGINT\n{}", up_output()));
        assert!(status.success(), "orch up exited with {status}\n{}", up_output());
        assert!(
            tail(&stdout, 40).contains("cluster 'local' stopped"),
            "{}",
            up_output()
        );
        wd.assert_no_processes(Duration::from_secs(5)).await;
        assert!(wd.cluster_dir().join("state.json").exists(), "the data stays");

        // A restart reuses the recorded ports and data: the app is still there.
        let out = wd.orch_ok(&["up", "-f", "infra.yaml", "--detach"]).await;
        assert!(out.contains("restarting cluster 'local'"), "{out}");
        assert!(out.contains(&format!("API     {}", wd.api_url())), "{out}");
        let app = http.get(&format!("{}/v2/apps/sleeper", wd.api_url())).await;
        assert_eq!(app.status, 200, "{}", app.body);
        wd.orch_ok(&["destroy", "-f", "infra.yaml", "--yes"]).await;
        wd.assert_no_processes(Duration::from_secs(5)).await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn invalid_infra_files_are_refused_with_the_key_named() {
    let _serial = SERIAL.lock().await;
    tokio::time::timeout(TEST_TIMEOUT, async {
        let wd = Workdir::new("");
        let cases = [
            (
                "masters: 2\n",
                "error: bad.yaml: masters: must be 1, 3 or 5",
            ),
            ("mastres: 3\n", "error: bad.yaml: unknown field `mastres`"),
            ("agents: many\n", "error: bad.yaml: agents: invalid type"),
            (
                "provider: digital_ocean\n",
                "error: bad.yaml: digital_ocean.region: '' is not a region slug",
            ),
            (
                "provider: docker\npublic_agents: 1\ndocker: {subnet: 10.9.0.0/40}\n",
                "error: bad.yaml: docker.subnet: '10.9.0.0/40' is not a CIDR subnet",
            ),
            (
                "gitops:\n  - repo: ..\n    interval: often\n",
                "error: bad.yaml: gitops[0].interval: 'often' is not a duration",
            ),
            (
                "gitops:\n  - repo: ..\n    webhook_secret_env: ORCH_TEST_UNSET_SECRET\n",
                "error: bad.yaml: gitops[0].webhook_secret_env: environment variable \
                 ORCH_TEST_UNSET_SECRET is not set",
            ),
        ];
        for (text, want) in cases {
            std::fs::write(wd.path().join("bad.yaml"), text).expect("write bad.yaml");
            let out = wd.orch(&["up", "-f", "bad.yaml", "--detach"]).await;
            assert!(!out.status.success(), "{text:?} was accepted");
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                stderr.contains(want),
                "for {text:?}:\n{}",
                describe_output(&out)
            );
        }
        let out = wd
            .orch(&["up", "--provider", "ssh", "-f", "infra.yaml"])
            .await;
        assert!(
            String::from_utf8_lossy(&out.stderr)
                .contains("error: infra.yaml: ssh.hosts: names no host"),
            "{}",
            describe_output(&out)
        );
        let missing = wd.orch(&["up", "-f", "nope.yaml"]).await;
        assert!(
            String::from_utf8_lossy(&missing.stderr).contains("cannot read nope.yaml"),
            "{}",
            describe_output(&missing)
        );
        assert!(!wd.path().join(".orch").exists(), "nothing may be created");
        // Without -f and without infra/local.yaml: the built-in defaults (cluster 'local').
        let status = wd.orch_ok(&["status"]).await;
        assert!(
            status.contains("cluster 'local' does not exist here"),
            "{status}"
        );
    })
    .await
    .expect("test timed out");
}

/// An `lb:` section on free ports (never the defaults 8000, 8443, 9091, 9090), and its
/// HTTP and stats ports.
fn lb_lines() -> (String, u16, u16) {
    let (http, stats) = (free_port(), free_port());
    let text = format!(
        "lb:\n  http_port: {http}\n  https_port: {}\n  app_id_port: {}\n  stats_port: {stats}\n",
        free_port(),
        free_port()
    );
    (text, http, stats)
}

/// A `dns:` section on free ports (never the default 8053 and 8123).
fn dns_lines() -> String {
    format!(
        "dns:\n  listen: 127.0.0.1:{}\n  http_listen: 127.0.0.1:{}\n",
        free_port(),
        free_port()
    )
}

fn web(instances: u32, cmd: &str) -> String {
    serde_json::to_string_pretty(&json!({
        "id": "/web", "cmd": cmd, "cpus": 0.1, "mem": 16, "instances": instances,
        "upgradeStrategy": {"minimumHealthCapacity": 1, "maximumOverCapacity": 1}
    }))
    .expect("json")
}

/// The README's promise: `orch up` in a fresh clone runs what the repo says, and follows
/// its commits (a rolling deployment per change; a bad commit applies nothing and is named
/// by file and line; a fixing commit syncs again).
#[tokio::test]
async fn up_in_a_fresh_clone_runs_the_repo_and_follows_its_commits() {
    let _serial = SERIAL.lock().await;
    tokio::time::timeout(TEST_TIMEOUT, async {
        let wd = Workdir::new("");
        let origin = support::GitRepo::new();
        let dns = std::net::SocketAddr::from(([127, 0, 0, 1], free_port()));
        let (lb, lb_http, lb_stats) = lb_lines();
        origin.write(
            "infra/local.yaml",
            &format!(
                "api: 127.0.0.1:{}\ncontainerizers: mesos\nagent_resources: \"cpus:4;mem:4096\"\n\
                 gitops:\n  - repo: ..\n    name: site\n    path: apps\n    interval: 1h\n\
                 dns:\n  listen: {dns}\n  http_listen: 127.0.0.1:{}\n{lb}",
                wd.api,
                free_port()
            ),
        );
        origin.write("apps/web.json", &web(1, "sleep 1000"));
        origin.write(
            "apps/page.json",
            &json!({
                "id": "/page", "cmd": "echo hello from page > index.html; exec python3 -m http.server $PORT0",
                "cpus": 0.1, "mem": 32, "portDefinitions": [{"port": 0}],
                "labels": {"HAPROXY_GROUP": "external", "HAPROXY_0_VHOST": "page.localhost"}
            })
            .to_string(),
        );
        origin.write(
            "apps/worker.yaml",
            "id: /jobs/worker\ncmd: sleep 1001\ncpus: 0.1\nmem: 16\n",
        );
        origin.commit("cluster and apps");
        let clone = wd.path().join("site");
        let origin_path = origin.path().display().to_string();
        git_in(wd.path(), &["clone", "-q", &origin_path, "site"]);
        let first = git_in(&clone, &["rev-parse", "HEAD"]);

        let out = wd
            .orch_ok(&["up", "-f", "site/infra/local.yaml", "--detach"])
            .await;
        assert!(out.contains("cluster 'local' is up"), "{out}");
        let http = wd.http().await;
        let gitops = format!("{}/v1/gitops/site", wd.api_url());
        let synced = |commit: String| {
            move |s: &Value| {
                s["lastApplied"] == commit.as_str()
                    && s["sync"] == "Synced"
                    && s["health"] == "Healthy"
            }
        };
        wait_json(
            &http,
            &gitops,
            Duration::from_secs(30),
            synced(first.clone()),
        )
        .await;
        let tasks = format!("{}/v2/tasks", wd.api_url());
        let running = |n: usize| {
            move |t: &Value| {
                t["tasks"].as_array().is_some_and(|tasks| {
                    tasks
                        .iter()
                        .filter(|t| t["appId"] == "/web" && t["state"] == "TASK_RUNNING")
                        .count()
                        == n
                })
            }
        };
        wait_json(&http, &tasks, Duration::from_secs(30), running(1)).await;
        assert!(
            out.contains(&format!("DNS     {dns} (udp+tcp, *.mesos)")),
            "{out}"
        );
        support::wait_dig(
            dns,
            &["web.marathon.mesos"],
            Duration::from_secs(10),
            |answer| answer == "127.0.0.1",
        )
        .await;

        // The load balancer in master-1 routes by the app's vhost label.
        assert!(
            out.contains(&format!("LB      http 127.0.0.1:{lb_http}, ")),
            "{out}"
        );
        assert!(
            out.contains(&format!("stats http://127.0.0.1:{lb_stats}/haproxy?stats")),
            "{out}"
        );
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let page = Http::new()
                .client
                .get(format!("http://127.0.0.1:{lb_http}/"))
                .header("Host", "page.localhost")
                .send()
                .await;
            if let Ok(page) = page {
                if page.status() == 200 {
                    let body = page.text().await.unwrap_or_default();
                    assert_eq!(body.trim(), "hello from page");
                    break;
                }
            }
            assert!(std::time::Instant::now() < deadline, "page.localhost never served through the LB");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }

        // A change of instances and cmd: one rolling deployment, then Synced/Healthy there.
        std::fs::write(clone.join("apps/web.json"), web(2, "sleep 1002")).expect("write");
        git_in(&clone, &["commit", "-qam", "two instances, new cmd"]);
        let second = git_in(&clone, &["rev-parse", "HEAD"]);
        wait_json(
            &http,
            &gitops,
            Duration::from_secs(30),
            synced(second.clone()),
        )
        .await;
        let app = http
            .get(&format!("{}/v2/apps/web?embed=app.tasks", wd.api_url()))
            .await
            .json();
        assert_eq!(app["app"]["cmd"], "sleep 1002");
        assert_eq!(app["app"]["labels"]["orch.gitops/commit"], second.as_str());
        let version = app["app"]["version"].clone();
        let tasks_now = app["app"]["tasks"].as_array().cloned().unwrap_or_default();
        assert_eq!(tasks_now.len(), 2, "{app:#}");
        assert!(tasks_now
            .iter()
            .all(|t| t["version"] == version && t["state"] == "TASK_RUNNING"));
        let status = http.get(&gitops).await.json();
        assert_eq!(status["history"][0]["commit"], second.as_str());
        assert!(
            status["history"][0]["deploymentId"].is_string(),
            "{status:#}"
        );

        // Invalid JSON on line 3: nothing applied, the status names file and line.
        std::fs::write(
            clone.join("apps/web.json"),
            "{\n  \"id\": \"/web\",\n  \"instances\": 3,,\n  \"cmd\": \"sleep 1\"\n}\n",
        )
        .expect("write");
        git_in(&clone, &["commit", "-qam", "broken"]);
        wait_json(&http, &gitops, Duration::from_secs(30), |s| {
            s["sync"] == "Error"
                && s["error"]
                    .as_str()
                    .is_some_and(|e| e.contains("apps/web.json:3"))
        })
        .await;
        let status = http.get(&gitops).await.json();
        assert_eq!(status["lastApplied"], second.as_str(), "{status:#}");
        assert_eq!(status["history"][0]["result"], "Error");
        let app = http
            .get(&format!("{}/v2/apps/web", wd.api_url()))
            .await
            .json();
        assert_eq!(app["app"]["instances"], 2);
        assert_eq!(app["app"]["version"], version);
        let printed = wd.orch_ok(&["status", "-f", "site/infra/local.yaml"]).await;
        assert!(printed.contains("site"), "{printed}");

        // A fixing commit syncs again.
        std::fs::write(clone.join("apps/web.json"), web(3, "sleep 1002")).expect("write");
        git_in(&clone, &["commit", "-qam", "fixed"]);
        let fixed = git_in(&clone, &["rev-parse", "HEAD"]);
        wait_json(&http, &gitops, Duration::from_secs(30), synced(fixed)).await;
        wait_json(&http, &tasks, Duration::from_secs(30), running(3)).await;
        let worker = http
            .get(&format!("{}/v2/apps/jobs/worker", wd.api_url()))
            .await;
        assert_eq!(worker.status, 200, "the YAML app runs too: {}", worker.body);

        wd.orch_ok(&["destroy", "-f", "site/infra/local.yaml", "--yes"])
            .await;
        wd.assert_no_processes(Duration::from_secs(30)).await;
    })
    .await
    .expect("test timed out");
}

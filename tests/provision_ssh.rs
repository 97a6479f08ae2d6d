//! `orch up`, `orch status` and `orch destroy` with the ssh provider against real Debian sshd
//! hosts on loopback addresses (tests/support/sshd.rs): each test has its own addresses
//! (`127.0.<test>.<host>`), so masters use port 8080 and agents 5051 on their own IPs; each
//! agent gets its own task port range (the kernel is shared).
//!
//! The orch binary installed is a copy of the test build without debug info (`--binary`).

mod support;

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};
use support::sshd::{stripped_orch, SshdHosts};
use support::{describe_output, Http, BIN};

/// Bound for one `orch` command.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(240);
/// Bound for a whole test.
const TEST_TIMEOUT: Duration = Duration::from_secs(900);

/// A temp dir as the current directory of `orch`, with `infra.yaml` for `hosts`.
struct Workdir {
    dir: tempfile::TempDir,
    cluster: String,
}

/// How the infra file names one host.
struct HostLine {
    role: &'static str,
    extra: String,
}

fn master() -> HostLine {
    HostLine {
        role: "master",
        extra: String::new(),
    }
}

/// An agent with its own task ports `base..base+99`.
fn agent(base: u16) -> HostLine {
    HostLine {
        role: "agent",
        extra: format!(
            ", resources: \"cpus:2;mem:2048;disk:4096;ports:[{base}-{}]\"",
            base + 99
        ),
    }
}

impl Workdir {
    /// `infra.yaml` with `hosts` (in order, one line each) and `extra` lines in `ssh:`;
    /// known_hosts is `known_hosts` in this dir, which holds every host unless `known` is
    /// false.
    fn new(
        cluster: &str,
        hosts: &SshdHosts,
        lines: &[HostLine],
        known: bool,
        pins: &[Option<String>],
    ) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("orch-ssh-")
            .tempdir()
            .expect("create temp dir");
        if known {
            std::fs::write(dir.path().join("known_hosts"), hosts.known_hosts())
                .expect("write known_hosts");
        }
        let mut text = format!(
            "cluster: {cluster}\nprovider: ssh\ndns: {{enabled: false}}\nlb: {{enabled: false}}\n\
             containerizers: mesos\nssh:\n  user: root\n  identity_file: {}\n  known_hosts: known_hosts\n  hosts:\n",
            hosts.client_key.display()
        );
        for (i, (host, line)) in hosts.hosts.iter().zip(lines).enumerate() {
            let pin = pins
                .get(i)
                .cloned()
                .flatten()
                .map(|k| format!(", host_key: \"{k}\""))
                .unwrap_or_default();
            text.push_str(&format!(
                "    - {{address: {}, port: {}, role: {}, install_dir: {}{}{pin}}}\n",
                host.ip,
                host.port,
                line.role,
                host.install_dir.display(),
                line.extra
            ));
        }
        std::fs::write(dir.path().join("infra.yaml"), text).expect("write infra.yaml");
        Self {
            dir,
            cluster: cluster.to_owned(),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Runs `orch ARGS` here with `env`; bounded.
    async fn orch_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut command = tokio::process::Command::new(BIN);
        for var in support::CLIENT_ENV {
            command.env_remove(var);
        }
        command
            .current_dir(self.path())
            .args(args)
            .env_remove("SSH_AUTH_SOCK")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        for (key, value) in env {
            command.env(key, value);
        }
        let child = command.spawn().expect("spawn orch");
        match tokio::time::timeout(COMMAND_TIMEOUT, child.wait_with_output()).await {
            Ok(out) => out.expect("wait for orch"),
            Err(_) => panic!(
                "`orch {}` did not exit within {COMMAND_TIMEOUT:?}",
                args.join(" ")
            ),
        }
    }

    async fn up_with(&self, extra: &[&str], env: &[(&str, &str)]) -> Output {
        let binary = stripped_orch();
        let binary = binary.to_str().expect("utf-8 path");
        let mut args = vec!["up", "-f", "infra.yaml", "--binary", binary];
        args.extend_from_slice(extra);
        self.orch_env(&args, env).await
    }

    /// `orch up`, asserted to succeed; returns stdout and how long it took.
    async fn up_ok(&self, hosts: &SshdHosts) -> (String, Duration) {
        let begin = Instant::now();
        let out = self.up_with(&[], &[]).await;
        let took = begin.elapsed();
        assert!(
            out.status.success(),
            "orch up failed:\n{}\n{}",
            describe_output(&out),
            node_logs(hosts)
        );
        (String::from_utf8_lossy(&out.stdout).into_owned(), took)
    }

    async fn destroy_ok(&self, hosts: &SshdHosts) -> String {
        let out = self
            .orch_env(&["destroy", "-f", "infra.yaml", "--yes"], &[])
            .await;
        assert!(
            out.status.success(),
            "orch destroy failed:\n{}\n{}",
            describe_output(&out),
            node_logs(hosts)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn state_dir(&self) -> PathBuf {
        self.path().join(".orch").join(&self.cluster)
    }
}

/// The tail of each host's node log, for failure messages.
fn node_logs(hosts: &SshdHosts) -> String {
    hosts
        .hosts
        .iter()
        .map(|h| {
            format!(
                "--- {} node.log ---\n{}\n",
                h.ip,
                support::tail(&h.install_dir.join("logs/node.log"), 30)
            )
        })
        .collect::<String>()
        + &hosts.logs()
}

/// Asserts that nothing of the cluster is left on the hosts.
fn assert_clean(hosts: &SshdHosts) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = hosts.processes_under_roots();
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "processes left under the install roots: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    for host in &hosts.hosts {
        assert!(
            !host.install_dir.exists(),
            "{} still exists",
            host.install_dir.display()
        );
    }
}

/// Kills the supervisor and the node of a host (its service is stopped).
fn break_host(root: &Path) {
    for file in ["supervisor.pid", "node.pid"] {
        let pid =
            std::fs::read_to_string(root.join(file)).unwrap_or_else(|e| panic!("read {file}: {e}"));
        support::send_signal(pid.trim().parse().expect("a pid"), "KILL");
    }
}

async fn wait_task_running(http: &Http, master: &str, app: &str, timeout: Duration) -> Value {
    let begin = Instant::now();
    loop {
        let r = http.get(&format!("{master}/v2/tasks")).await;
        if r.ok() {
            let tasks: Vec<Value> = r.json()["tasks"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter(|t| t["appId"] == json!(app))
                .collect();
            if let Some(task) = tasks.iter().find(|t| t["state"] == json!("TASK_RUNNING")) {
                return task.clone();
            }
        }
        assert!(
            begin.elapsed() < timeout,
            "no TASK_RUNNING task of {app} within {timeout:?}: {}",
            r.body
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn bounded(test: impl std::future::Future<Output = ()>) {
    tokio::time::timeout(TEST_TIMEOUT, test)
        .await
        .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_rerun_repair_status_destroy() {
    bounded(async {
        let mut hosts = SshdHosts::start(&["127.0.31.1", "127.0.31.2", "127.0.31.3"]);
        let work = Workdir::new(
            "sshup",
            &hosts,
            &[master(), agent(33100), agent(33200)],
            true,
            &[],
        );
        let plan = work.up_with(&["--plan"], &[]).await;
        let text = describe_output(&plan);
        assert!(plan.status.success(), "{text}");
        assert!(
            text.contains("upload orch to master-1 (not installed)"),
            "{text}"
        );
        assert!(text.contains("start agent-2 (not running)"), "{text}");
        assert!(
            !hosts.hosts[0].install_dir.exists(),
            "the plan changed something"
        );

        let (first, took) = work.up_ok(&hosts).await;
        eprintln!("first orch up: {took:.1?}\n{first}");
        assert!(first.contains("uploaded orch"), "{first}");
        assert!(first.contains("3 started, 0 restarted"), "{first}");
        assert!(work.state_dir().join("state.json").exists());

        let master = format!("https://{}:8080", hosts.hosts[0].ip);
        let http = Http::for_cluster(&work.state_dir());
        let mut app = support::app("/sleeper");
        app["instances"] = json!(1);
        let r = http.post(&format!("{master}/v2/apps"), &app).await;
        assert!(r.ok(), "POST /v2/apps: {} {}", r.status, r.body);
        let task = wait_task_running(&http, &master, "/sleeper", Duration::from_secs(60)).await;

        // TLS only, with the token; each host has its node's key (0600) and the CA
        // certificate, never the CA key.
        let plain = Http::new()
            .send(
                reqwest::Method::GET,
                &format!("http://{}:8080/v2/info", hosts.hosts[0].ip),
                None,
                None,
            )
            .await;
        assert!(plain.map_or(true, |r| !r.ok()), "plaintext answered");
        for host in &hosts.hosts {
            let tls = host.install_dir.join("tls");
            let key = tls.join("node-key.pem");
            let mode = std::os::unix::fs::PermissionsExt::mode(
                &std::fs::metadata(&key).expect("the node key").permissions(),
            ) & 0o777;
            assert_eq!(mode, 0o600, "{}", key.display());
            assert!(tls.join("ca.pem").exists());
            assert!(!tls.join("ca-key.pem").exists());
        }
        assert!(hosts.hosts[0].install_dir.join("tls/token").exists());
        assert!(
            !hosts.hosts[1].install_dir.join("tls/token").exists(),
            "agents get no token"
        );

        // The CLI here needs no flag and no environment: master, CA and token from .orch/.
        let listed = work.orch_env(&["app", "list"], &[]).await;
        assert!(
            listed.status.success() && String::from_utf8_lossy(&listed.stdout).contains("/sleeper"),
            "{}",
            describe_output(&listed)
        );
        let agent_host = task["host"].as_str().unwrap_or("").to_owned();

        let (again, took) = work.up_ok(&hosts).await;
        eprintln!("re-run: {took:.1?}\n{again}");
        assert!(
            again.contains("0 started, 0 restarted, 3 unchanged"),
            "{again}"
        );
        assert!(!again.contains("uploaded orch"), "{again}");
        assert!(again.contains("orch is up to date"), "{again}");
        let plan = work.up_with(&["--plan"], &[]).await;
        let text = describe_output(&plan);
        assert!(text.contains("master-1: running as specified"), "{text}");
        assert!(text.contains("agent-1: orch binary up to date"), "{text}");

        // A certificate issued again (here: its file was lost) is installed and restarts
        // exactly its node.
        std::fs::remove_file(work.state_dir().join("pki/agent-1.pem")).expect("rm cert");
        let (renewed, _) = work.up_ok(&hosts).await;
        assert!(
            renewed.contains("certificate issued for agent-1"),
            "{renewed}"
        );
        assert!(renewed.contains("agent-1: restarted"), "{renewed}");
        assert!(
            renewed.contains("0 started, 1 restarted, 2 unchanged"),
            "{renewed}"
        );

        break_host(&hosts.hosts[2].install_dir);
        let (repaired, _) = work.up_ok(&hosts).await;
        assert!(repaired.contains("agent-2: started"), "{repaired}");
        assert!(
            repaired.contains("1 started, 0 restarted, 2 unchanged"),
            "{repaired}"
        );

        // A changed spec (agent-2's attributes) restarts exactly that node.
        let file = work.path().join("infra.yaml");
        let text = std::fs::read_to_string(&file).expect("read infra.yaml");
        let changed = text.replace(
            "ports:[33200-33299]\"",
            "ports:[33200-33299]\", attributes: \"rack:r2\"",
        );
        assert_ne!(text, changed);
        std::fs::write(&file, changed).expect("write infra.yaml");
        // The plan says so before: the service it renders now differs on that host only.
        let plan = work.up_with(&["--plan"], &[]).await;
        let text = describe_output(&plan);
        assert!(
            text.contains("write the supervisor script of agent-2 (missing or changed)"),
            "{text}"
        );
        assert!(
            text.contains("restart agent-2 (binary or service changed)"),
            "{text}"
        );
        assert!(
            text.contains("agent-1: supervisor script up to date"),
            "{text}"
        );
        assert!(text.contains("agent-1: running as specified"), "{text}");
        let (restarted, _) = work.up_ok(&hosts).await;
        assert!(restarted.contains("agent-2: restarted"), "{restarted}");
        assert!(
            restarted.contains("0 started, 1 restarted, 2 unchanged"),
            "{restarted}"
        );

        // `orch status` needs no -f where `orch up` ran.
        let out = work.orch_env(&["status"], &[]).await;
        let status = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "{}", describe_output(&out));
        for name in ["master-1", "agent-1", "agent-2"] {
            assert!(
                status
                    .lines()
                    .any(|l| l.starts_with(name) && l.contains("running")),
                "{name} not running in:\n{status}"
            );
        }
        assert!(status.contains("2 reachable"), "{status}");

        // A host whose sshd is down is unreachable; its node keeps running.
        hosts.stop(1);
        let out = work.orch_env(&["status", "-f", "infra.yaml"], &[]).await;
        let status = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "{}", describe_output(&out));
        assert!(
            status
                .lines()
                .any(|l| l.starts_with("agent-1") && l.contains("unreachable")),
            "agent-1 not unreachable in:\n{status}"
        );
        hosts.restart(1);

        let removed = work.destroy_ok(&hosts).await;
        assert!(
            removed.contains("destroyed"),
            "{removed} (task on {agent_host})"
        );
        assert_clean(&hosts);
        assert!(!work.state_dir().exists());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_keys_are_checked() {
    bounded(async {
        let hosts = SshdHosts::start(&["127.0.32.1", "127.0.32.2"]);
        let lines = [master(), agent(33300)];
        let other_key = Some(hosts.hosts[1].host_key.clone());

        // The pin names another host's key: refused, even when trusting on first use.
        let pinned = Workdir::new("sshkeys", &hosts, &lines, true, &[other_key]);
        for flags in [&[][..], &["--trust-on-first-use"][..]] {
            let out = pinned.up_with(flags, &[]).await;
            let text = describe_output(&out);
            assert!(!out.status.success(), "{text}");
            assert!(text.contains("differs from the expected one"), "{text}");
            assert!(text.contains("master-1"), "{text}");
            assert!(text.contains("pinned in the infra file"), "{text}");
        }
        for host in &hosts.hosts {
            assert!(!host.install_dir.exists(), "installed despite a wrong key");
        }
        drop(pinned);

        // Unknown hosts: refused without the flag, accepted and recorded with it.
        let unknown = Workdir::new("sshkeys", &hosts, &lines, false, &[]);
        let out = unknown.up_with(&[], &[]).await;
        let text = describe_output(&out);
        assert!(!out.status.success(), "{text}");
        assert!(text.contains("is unknown: SHA256:"), "{text}");
        assert!(text.contains("--trust-on-first-use"), "{text}");
        assert!(!hosts.hosts[0].install_dir.exists());
        let known_hosts = unknown.path().join("known_hosts");
        assert!(!known_hosts.exists(), "refusing wrote known_hosts");

        let out = unknown
            .up_with(&["--trust-on-first-use"], &[("ORCH_FAIL_AT", "upload")])
            .await;
        let text = describe_output(&out);
        assert!(!out.status.success(), "{text}");
        assert!(text.contains("failure injected at step upload"), "{text}");
        let recorded = std::fs::read_to_string(&known_hosts).expect("known_hosts written");
        for host in &hosts.hosts {
            assert!(
                recorded.contains(&host.known_hosts_line()),
                "{} missing in:\n{recorded}",
                host.known_hosts_line()
            );
        }
        // The recorded keys are used from now on, without the flag.
        unknown.destroy_ok(&hosts).await;
        assert_clean(&hosts);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_at_any_step_is_cleaned_up_by_a_rerun_or_destroy() {
    bounded(async {
        let hosts = SshdHosts::start(&["127.0.33.1", "127.0.33.2"]);
        let work = Workdir::new("sshfail", &hosts, &[master(), agent(33400)], true, &[]);
        for (i, step) in orch_provision::steps::Step::ALL.iter().enumerate() {
            let name = step.name();
            let out = work.up_with(&[], &[("ORCH_FAIL_AT", name)]).await;
            let text = describe_output(&out);
            assert!(
                !out.status.success(),
                "ORCH_FAIL_AT={name} succeeded:\n{text}"
            );
            assert!(
                text.contains(&format!("failure injected at step {name}")),
                "{text}"
            );
            if i % 2 == 0 {
                let (again, _) = work.up_ok(&hosts).await;
                assert!(
                    again.contains("cluster 'sshfail' is up"),
                    "after {name}: {again}"
                );
                let master = format!("https://{}:8080/v2/info", hosts.hosts[0].ip);
                let http = Http::for_cluster(&work.state_dir());
                assert!(http.get(&master).await.ok(), "after {name}: no API");
            } else {
                work.destroy_ok(&hosts).await;
                assert_clean(&hosts);
            }
        }
        work.destroy_ok(&hosts).await;
        assert_clean(&hosts);
    })
    .await;
}

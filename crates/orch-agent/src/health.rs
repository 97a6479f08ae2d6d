//! Health checks the agent runs for its RUNNING tasks (marathon-api.md §4.6).
//!
//! One tokio task per check of a task ([`start`]): it waits `delay_seconds` (MESOS_* checks
//! only; Marathon-level checks start at once), then probes every `interval_seconds`, each
//! probe bounded by `timeout_seconds`:
//!
//! - `HTTP`, `MESOS_HTTP`: `GET http://<host>:<port><path>` through [`orch_probe::get`]; the
//!   first status line decides: 200–399 healthy, 1xx ignored with `ignore_http1xx` (else a
//!   failure), anything else a failure. Redirects are not followed.
//! - `HTTPS`, `MESOS_HTTPS`: the same over TLS, without certificate verification (as Mesos
//!   does it).
//! - `TCP`, `MESOS_TCP`: a TCP connect succeeds.
//! - `COMMAND`: `/bin/sh -c <command>` in the task's sandbox with the task's environment
//!   (on top of the agent's, as tasks get it), in its own process group; exit 0 is healthy.
//!   At the timeout (or when checking stops) the whole group is killed.
//! - Tasks of the mock driver: the `ORCH_MOCK_HEALTHY` label (what `MockDriver::healthy`
//!   reports; healthy when absent); no network.
//!
//! Marathon-level checks probe the agent's address (the host port); MESOS_* checks probe the
//! task's own address (the container's IP under bridge networking). An unspecified address
//! becomes `127.0.0.1`.
//!
//! The [`Tracker`] decides what to report: the first result, every flip of `alive`, and every
//! counted failure (repeated successes are not reported, to keep the journal small). Failures
//! within `grace_period_seconds` of the task's start are not counted until the first success.
//! When `consecutive_failures` reaches `max_consecutive_failures` (> 0), the check asks its
//! [`HealthSink`] to kill the task and stops. All checks of a task stop when the [`Checks`]
//! handle is dropped.
//!
//! May depend on: protocol, driver, model, orch-probe.

use orch_core::model::TaskId;
use orch_core::protocol::{HealthCheckSpec, HealthReport, TaskSpec};
use orch_driver::env::task_env;
use orch_driver::mock::MockScript;
use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

/// The reason of a task killed for failing its health checks.
pub const UNHEALTHY_REASON: &str = "REASON_TASK_UNHEALTHY_CHECK_FAILED";

/// The shortest interval and timeout used (a zero in a spec would mean a busy loop).
const MIN_PERIOD: Duration = Duration::from_secs(1);

/// Where check results go: implemented by the agent runtime.
pub(crate) trait HealthSink: Send + Sync + 'static {
    /// Reports a result as a status update; false when the task no longer runs (or is being
    /// killed), which stops the check.
    fn health(&self, task: &TaskId, report: HealthReport) -> bool;

    /// Kills the task for failing a check; `message` names the check and the cause.
    fn unhealthy(&self, task: &TaskId, message: String);
}

/// What one probe found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The check passed.
    Healthy,
    /// The check failed, for this reason.
    Failed(String),
    /// Neither (an HTTP 1xx with `ignore_http1xx`).
    Ignored,
}

/// What to do after a result.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Step {
    /// A result to report.
    pub report: Option<HealthReport>,
    /// Kill the task, with this message.
    pub kill: Option<String>,
}

/// The state of one check of one task: counts failures and decides what is reported.
#[derive(Debug, Clone)]
pub(crate) struct Tracker {
    index: usize,
    protocol: String,
    grace: Duration,
    max_failures: u32,
    failures: u32,
    alive: Option<bool>,
    succeeded: bool,
}

impl Tracker {
    /// A fresh tracker for check `index`.
    pub fn new(index: usize, check: &HealthCheckSpec) -> Self {
        Self {
            index,
            protocol: check.protocol.clone(),
            grace: Duration::from_secs(check.grace_period_seconds),
            max_failures: check.max_consecutive_failures,
            failures: 0,
            alive: None,
            succeeded: false,
        }
    }

    /// Takes one result, `since_start` after the task started.
    pub fn observe(&mut self, outcome: Outcome, since_start: Duration) -> Step {
        match outcome {
            Outcome::Ignored => Step::default(),
            Outcome::Healthy => {
                self.succeeded = true;
                self.failures = 0;
                let changed = self.alive != Some(true);
                self.alive = Some(true);
                Step {
                    report: changed.then(|| self.report(None)),
                    kill: None,
                }
            }
            Outcome::Failed(cause) => {
                if !self.succeeded && since_start < self.grace {
                    return Step::default();
                }
                self.failures = self.failures.saturating_add(1);
                self.alive = Some(false);
                let kill =
                    (self.max_failures > 0 && self.failures >= self.max_failures).then(|| {
                        format!(
                            "health check {} ({}) failed {} times in a row: {cause}",
                            self.index, self.protocol, self.failures
                        )
                    });
                Step {
                    report: Some(self.report(Some(cause))),
                    kill,
                }
            }
        }
    }

    fn report(&self, cause: Option<String>) -> HealthReport {
        HealthReport {
            index: self.index,
            alive: self.alive == Some(true),
            consecutive_failures: self.failures,
            cause,
        }
    }
}

/// Where and how a task is probed.
#[derive(Debug, Clone)]
pub(crate) struct TaskContext {
    /// Whether the mock driver runs the task (results come from its labels).
    pub mock: bool,
    /// The agent's advertised IP.
    pub agent_ip: String,
    /// The task's own address, if known.
    pub task_ip: Option<String>,
    /// The task's sandbox.
    pub sandbox: PathBuf,
    /// The agent's hostname (`HOST`).
    pub hostname: String,
}

/// How one check probes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Probe {
    /// A fixed result (mock tasks).
    Fixed(bool),
    /// An HTTP GET (over TLS with `tls`).
    Http {
        /// Address to connect to.
        host: String,
        /// Port.
        port: u16,
        /// Request path, starting with `/`.
        path: String,
        /// HTTPS.
        tls: bool,
        /// 1xx is neither success nor failure.
        ignore_1xx: bool,
    },
    /// A TCP connect.
    Tcp {
        /// Address to connect to.
        host: String,
        /// Port.
        port: u16,
    },
    /// A shell command.
    Command {
        /// Passed to `/bin/sh -c`.
        command: String,
        /// Working directory (the sandbox).
        cwd: PathBuf,
        /// The task's environment.
        env: BTreeMap<String, String>,
    },
    /// The check cannot run (e.g. no port); every probe fails with this cause.
    Invalid(String),
}

fn probe_host(address: &str) -> String {
    match address.parse::<std::net::IpAddr>() {
        Ok(ip) if ip.is_unspecified() => "127.0.0.1".to_owned(),
        Ok(ip) => ip.to_string(),
        Err(_) if address.trim().is_empty() => "127.0.0.1".to_owned(),
        Err(_) => address.to_owned(),
    }
}

impl Probe {
    /// The probe for `check` of `spec`.
    pub fn for_check(spec: &TaskSpec, check: &HealthCheckSpec, task: &TaskContext) -> Self {
        if task.mock {
            let healthy = MockScript::from_labels(&spec.labels)
                .ok()
                .and_then(|script| script.healthy)
                .unwrap_or(true);
            return Self::Fixed(healthy);
        }
        let protocol = check.protocol.to_ascii_uppercase();
        let mesos = protocol.starts_with("MESOS_");
        let host = if mesos {
            probe_host(task.task_ip.as_deref().unwrap_or(&task.agent_ip))
        } else {
            probe_host(&task.agent_ip)
        };
        let port = || {
            check
                .port
                .filter(|port| *port != 0)
                .ok_or_else(|| format!("{protocol} health check without a port"))
        };
        let http = |tls: bool| match port() {
            Ok(port) => {
                let path = check.path.clone().unwrap_or_default();
                let path = if path.starts_with('/') {
                    path
                } else {
                    format!("/{path}")
                };
                Self::Http {
                    host: host.clone(),
                    port,
                    path,
                    tls,
                    ignore_1xx: check.ignore_http1xx,
                }
            }
            Err(cause) => Self::Invalid(cause),
        };
        match protocol.as_str() {
            "HTTP" | "MESOS_HTTP" => http(false),
            "HTTPS" | "MESOS_HTTPS" => http(true),
            "TCP" | "MESOS_TCP" => match port() {
                Ok(port) => Self::Tcp {
                    host: host.clone(),
                    port,
                },
                Err(cause) => Self::Invalid(cause),
            },
            "COMMAND" => match check.command.as_deref().map(str::trim) {
                Some(command) if !command.is_empty() => Self::Command {
                    command: command.to_owned(),
                    cwd: task.sandbox.clone(),
                    env: task_env(spec, &task.sandbox.to_string_lossy(), &task.hostname),
                },
                _ => Self::Invalid("COMMAND health check without a command".to_owned()),
            },
            other => Self::Invalid(format!("unknown health check protocol '{other}'")),
        }
    }

    /// Runs the probe once; an HTTP(S) GET gives up after `timeout` (the caller bounds the
    /// other probes).
    pub async fn run(&self, timeout: Duration) -> Outcome {
        match self {
            Self::Fixed(true) => Outcome::Healthy,
            Self::Fixed(false) => {
                Outcome::Failed("scripted unhealthy (ORCH_MOCK_HEALTHY=false)".into())
            }
            Self::Http {
                host,
                port,
                path,
                tls,
                ignore_1xx,
            } => {
                let scheme = if *tls { "https" } else { "http" };
                let url = format!("{scheme}://{}{path}", host_port(host, *port));
                match orch_probe::get(&url, timeout).await {
                    Ok(status) => judge_status(status, *ignore_1xx),
                    Err(error) => Outcome::Failed(error.to_string()),
                }
            }
            Self::Tcp { host, port } => tcp_connect(host, *port).await,
            Self::Command { command, cwd, env } => run_command(command, cwd, env).await,
            Self::Invalid(cause) => Outcome::Failed(cause.clone()),
        }
    }
}

fn judge_status(status: u16, ignore_1xx: bool) -> Outcome {
    match status {
        200..=399 => Outcome::Healthy,
        100..=199 if ignore_1xx => Outcome::Ignored,
        _ => Outcome::Failed(format!("HTTP status {status}")),
    }
}

fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

async fn tcp_connect(host: &str, port: u16) -> Outcome {
    match TcpStream::connect((host, port)).await {
        Ok(_) => Outcome::Healthy,
        Err(error) => Outcome::Failed(format!(
            "cannot connect to {}: {error}",
            host_port(host, port)
        )),
    }
}

/// Kills a process group when dropped, unless disarmed (the group leader was reaped).
struct GroupKill(Option<i32>);

impl Drop for GroupKill {
    fn drop(&mut self) {
        if let Some(pgid) = self.0 {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pgid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

async fn run_command(command: &str, cwd: &PathBuf, env: &BTreeMap<String, String>) -> Outcome {
    let spawned = tokio::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(command)
        .current_dir(cwd)
        .envs(env)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .kill_on_drop(true)
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(error) => return Outcome::Failed(format!("cannot run the command: {error}")),
    };
    // Dropped mid-wait (timeout, checks stopped): the whole group goes, leader not yet reaped.
    let mut group = GroupKill(child.id().and_then(|pid| i32::try_from(pid).ok()));
    let status = child.wait().await;
    group.0 = None;
    match status {
        Ok(status) if status.success() => Outcome::Healthy,
        Ok(status) => Outcome::Failed(match (status.code(), status_signal(&status)) {
            (Some(code), _) => format!("Command exited with status {code}"),
            (None, Some(signal)) => format!("Command terminated with signal {signal}"),
            (None, None) => "Command failed".to_owned(),
        }),
        Err(error) => Outcome::Failed(format!("cannot wait for the command: {error}")),
    }
}

fn status_signal(status: &std::process::ExitStatus) -> Option<i32> {
    use std::os::unix::process::ExitStatusExt;
    status.signal()
}

/// How long one probe of `check` may take.
fn probe_timeout(check: &HealthCheckSpec) -> Duration {
    Duration::from_secs(check.timeout_seconds).max(MIN_PERIOD)
}

/// Runs one check until the sink refuses a report or the task is to be killed.
async fn check_loop<S, P, F>(
    sink: Arc<S>,
    task: TaskId,
    index: usize,
    check: HealthCheckSpec,
    started: Instant,
    mut probe: P,
) where
    S: HealthSink,
    P: FnMut() -> F,
    F: Future<Output = Outcome>,
{
    if check.protocol.to_ascii_uppercase().starts_with("MESOS_") {
        tokio::time::sleep(Duration::from_secs(check.delay_seconds)).await;
    }
    let period = Duration::from_secs(check.interval_seconds).max(MIN_PERIOD);
    let timeout = probe_timeout(&check);
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut tracker = Tracker::new(index, &check);
    loop {
        ticks.tick().await;
        let outcome = tokio::time::timeout(timeout, probe())
            .await
            .unwrap_or_else(|_| Outcome::Failed(format!("timed out after {}s", timeout.as_secs())));
        let step = tracker.observe(outcome, started.elapsed());
        if let Some(report) = step.report {
            if !sink.health(&task, report) {
                return;
            }
        }
        if let Some(message) = step.kill {
            tracing::warn!(task.id = %task, index, message, "killing an unhealthy task");
            sink.unhealthy(&task, message);
            return;
        }
    }
}

/// The running checks of one task; dropping it stops them all.
#[derive(Debug, Default)]
pub(crate) struct Checks(Vec<JoinHandle<()>>);

impl Drop for Checks {
    fn drop(&mut self) {
        for handle in &self.0 {
            handle.abort();
        }
    }
}

/// Starts one tokio task per health check of `spec`; `started` is when the task started
/// running (the grace period counts from there).
pub(crate) fn start<S: HealthSink>(
    sink: &Arc<S>,
    spec: &TaskSpec,
    task: &TaskContext,
    started: Instant,
) -> Checks {
    let handles = spec
        .health_checks
        .iter()
        .enumerate()
        .map(|(index, check)| {
            let probe = Arc::new(Probe::for_check(spec, check, task));
            let timeout = probe_timeout(check);
            tokio::spawn(check_loop(
                Arc::clone(sink),
                spec.task_id.clone(),
                index,
                check.clone(),
                started,
                move || {
                    let probe = Arc::clone(&probe);
                    async move { probe.run(timeout).await }
                },
            ))
        })
        .collect();
    Checks(handles)
}

#[cfg(test)]
mod tests {
    use super::*;
    use orch_core::model::{AppId, Timestamp};
    use std::sync::Mutex;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    const LIMIT: Duration = Duration::from_secs(30);

    fn check(protocol: &str) -> HealthCheckSpec {
        HealthCheckSpec {
            protocol: protocol.to_owned(),
            path: None,
            port: None,
            command: None,
            grace_period_seconds: 0,
            interval_seconds: 10,
            timeout_seconds: 5,
            max_consecutive_failures: 3,
            delay_seconds: 0,
            ignore_http1xx: false,
        }
    }

    fn spec(checks: Vec<HealthCheckSpec>) -> TaskSpec {
        TaskSpec {
            task_id: TaskId("app.1".into()),
            app_id: AppId::parse("/app").expect("valid"),
            app_version: Timestamp::from_millis(0),
            cmd: Some("sleep 100".into()),
            args: vec![],
            user: None,
            unprivileged: false,
            env: [("GREETING".to_owned(), "hello".to_owned())].into(),
            labels: Default::default(),
            cpus: 0.1,
            mem: 32.0,
            disk: 0.0,
            ports: vec![],
            docker: None,
            kill_grace_ms: 100,
            health_checks: checks,
        }
    }

    fn context(sandbox: PathBuf) -> TaskContext {
        TaskContext {
            mock: false,
            agent_ip: "0.0.0.0".into(),
            task_ip: None,
            sandbox,
            hostname: "node-1".into(),
        }
    }

    fn failed(cause: &str) -> Outcome {
        Outcome::Failed(cause.to_owned())
    }

    fn report(alive: bool, failures: u32, cause: Option<&str>) -> Option<HealthReport> {
        Some(HealthReport {
            index: 1,
            alive,
            consecutive_failures: failures,
            cause: cause.map(str::to_owned),
        })
    }

    #[test]
    fn reports_the_first_result_flips_and_every_failure_but_not_repeated_successes() {
        let mut tracker = Tracker::new(1, &check("HTTP"));
        let t = Duration::from_secs(1);
        assert_eq!(
            tracker.observe(Outcome::Healthy, t).report,
            report(true, 0, None)
        );
        assert_eq!(tracker.observe(Outcome::Healthy, t), Step::default());
        assert_eq!(tracker.observe(Outcome::Ignored, t), Step::default());
        let step = tracker.observe(failed("HTTP status 500"), t);
        assert_eq!(step.report, report(false, 1, Some("HTTP status 500")));
        assert_eq!(step.kill, None);
        assert_eq!(
            tracker.observe(failed("x"), t).report,
            report(false, 2, Some("x"))
        );
        assert_eq!(
            tracker.observe(Outcome::Healthy, t).report,
            report(true, 0, None)
        );
        assert_eq!(
            tracker.observe(failed("y"), t).report,
            report(false, 1, Some("y"))
        );
    }

    #[test]
    fn kills_when_failures_reach_the_maximum_and_never_with_zero() {
        let mut tracker = Tracker::new(0, &check("TCP"));
        let t = Duration::ZERO;
        assert_eq!(tracker.observe(failed("refused"), t).kill, None);
        assert_eq!(tracker.observe(failed("refused"), t).kill, None);
        let step = tracker.observe(failed("refused"), t);
        assert_eq!(
            step.kill.as_deref(),
            Some("health check 0 (TCP) failed 3 times in a row: refused")
        );
        assert_eq!(step.report.map(|r| r.consecutive_failures), Some(3));

        let mut never = Tracker::new(
            0,
            &HealthCheckSpec {
                max_consecutive_failures: 0,
                ..check("TCP")
            },
        );
        for _ in 0..100 {
            assert_eq!(never.observe(failed("refused"), t).kill, None);
        }
    }

    #[test]
    fn failures_in_the_grace_period_do_not_count_until_the_first_success() {
        let grace = HealthCheckSpec {
            grace_period_seconds: 60,
            max_consecutive_failures: 1,
            ..check("HTTP")
        };
        let mut tracker = Tracker::new(1, &grace);
        assert_eq!(
            tracker.observe(failed("starting"), Duration::from_secs(59)),
            Step::default()
        );
        let step = tracker.observe(failed("still"), Duration::from_secs(60));
        assert_eq!(step.report, report(false, 1, Some("still")));
        assert!(step.kill.is_some());

        let mut early = Tracker::new(1, &grace);
        assert_eq!(
            early
                .observe(Outcome::Healthy, Duration::from_secs(5))
                .report,
            report(true, 0, None)
        );
        let step = early.observe(failed("down"), Duration::from_secs(6));
        assert_eq!(step.report, report(false, 1, Some("down")));
        assert!(step.kill.is_some(), "a success ends the grace period");
    }

    #[test]
    fn probes_are_built_from_the_spec() {
        let dir = PathBuf::from("/sandbox");
        let mut task = context(dir.clone());
        let http = HealthCheckSpec {
            port: Some(8080),
            path: Some("health".into()),
            ..check("HTTP")
        };
        assert_eq!(
            Probe::for_check(&spec(vec![]), &http, &task),
            Probe::Http {
                host: "127.0.0.1".into(),
                port: 8080,
                path: "/health".into(),
                tls: false,
                ignore_1xx: false,
            }
        );
        task.agent_ip = "10.0.0.5".into();
        task.task_ip = Some("172.17.0.2".into());
        let mesos = HealthCheckSpec {
            port: Some(80),
            ..check("MESOS_HTTPS")
        };
        assert_eq!(
            Probe::for_check(&spec(vec![]), &mesos, &task),
            Probe::Http {
                host: "172.17.0.2".into(),
                port: 80,
                path: "/".into(),
                tls: true,
                ignore_1xx: false,
            }
        );
        let tcp = HealthCheckSpec {
            port: Some(80),
            ..check("TCP")
        };
        assert_eq!(
            Probe::for_check(&spec(vec![]), &tcp, &task),
            Probe::Tcp {
                host: "10.0.0.5".into(),
                port: 80
            }
        );
        assert_eq!(
            Probe::for_check(&spec(vec![]), &check("MESOS_TCP"), &task),
            Probe::Invalid("MESOS_TCP health check without a port".into())
        );
        assert!(matches!(
            Probe::for_check(&spec(vec![]), &check("GOPHER"), &task),
            Probe::Invalid(_)
        ));
        let command = HealthCheckSpec {
            command: Some("true".into()),
            ..check("COMMAND")
        };
        match Probe::for_check(&spec(vec![]), &command, &task) {
            Probe::Command { command, cwd, env } => {
                assert_eq!((command.as_str(), cwd), ("true", dir));
                assert_eq!(env.get("MESOS_TASK_ID").map(String::as_str), Some("app.1"));
                assert_eq!(env.get("GREETING").map(String::as_str), Some("hello"));
            }
            other => panic!("not a command probe: {other:?}"),
        }
        task.mock = true;
        assert_eq!(
            Probe::for_check(&spec(vec![]), &tcp, &task),
            Probe::Fixed(true)
        );
        let mut unhealthy = spec(vec![]);
        unhealthy
            .labels
            .insert(orch_driver::mock::HEALTHY_LABEL.into(), "false".into());
        assert_eq!(
            Probe::for_check(&unhealthy, &tcp, &task),
            Probe::Fixed(false)
        );
    }

    /// Records what a check loop reports; refuses reports after `accept` of them.
    #[derive(Debug, Default)]
    struct Recorder {
        reports: Mutex<Vec<(Duration, HealthReport)>>,
        kills: Mutex<Vec<String>>,
        accept: Option<usize>,
        origin: Mutex<Option<Instant>>,
    }

    impl HealthSink for Recorder {
        fn health(&self, _task: &TaskId, report: HealthReport) -> bool {
            let origin = self.origin.lock().expect("lock").expect("origin set");
            let mut reports = self.reports.lock().expect("lock");
            if self.accept.is_some_and(|n| reports.len() >= n) {
                return false;
            }
            reports.push((origin.elapsed(), report));
            true
        }

        fn unhealthy(&self, _task: &TaskId, message: String) {
            self.kills.lock().expect("lock").push(message);
        }
    }

    /// Runs a check loop on paused time with scripted outcomes (`None` = hangs).
    async fn scripted(
        sink: Arc<Recorder>,
        check: HealthCheckSpec,
        outcomes: Vec<Option<Outcome>>,
    ) -> Vec<Duration> {
        let origin = Instant::now();
        *sink.origin.lock().expect("lock") = Some(origin);
        let script = Arc::new(Mutex::new(outcomes.into_iter()));
        let calls = Arc::new(Mutex::new(Vec::new()));
        let probe = {
            let calls = Arc::clone(&calls);
            move || {
                calls.lock().expect("lock").push(origin.elapsed());
                let next = script.lock().expect("lock").next();
                async move {
                    match next {
                        Some(Some(outcome)) => outcome,
                        Some(None) => std::future::pending().await,
                        None => std::future::pending().await,
                    }
                }
            }
        };
        let run = check_loop(sink, TaskId("t".into()), 1, check, origin, probe);
        // The loop ends by itself (kill or refusal) or hangs on an exhausted script.
        let _ = tokio::time::timeout(Duration::from_secs(3600), run).await;
        let calls = calls.lock().expect("lock").clone();
        calls
    }

    #[tokio::test(start_paused = true)]
    async fn checks_every_interval_times_out_and_kills_at_the_maximum() {
        let sink = Arc::new(Recorder::default());
        let calls = scripted(
            Arc::clone(&sink),
            HealthCheckSpec {
                delay_seconds: 15,
                ..check("HTTP")
            },
            vec![
                Some(Outcome::Healthy),
                Some(Outcome::Healthy),
                None,
                Some(failed("HTTP status 503")),
                Some(Outcome::Ignored),
                Some(failed("HTTP status 503")),
                Some(Outcome::Healthy),
            ],
        )
        .await;
        let secs = |s: u64| Duration::from_secs(s);
        // Marathon-level checks ignore delaySeconds; a hanging probe times out after 5 s.
        assert_eq!(
            calls,
            vec![secs(0), secs(10), secs(20), secs(30), secs(40), secs(50)]
        );
        let reports = sink.reports.lock().expect("lock").clone();
        let seen: Vec<(Duration, u32, Option<String>)> = reports
            .into_iter()
            .map(|(at, r)| (at, r.consecutive_failures, r.cause))
            .collect();
        assert_eq!(
            seen,
            vec![
                (secs(0), 0, None),
                (secs(25), 1, Some("timed out after 5s".into())),
                (secs(30), 2, Some("HTTP status 503".into())),
                (secs(50), 3, Some("HTTP status 503".into())),
            ]
        );
        assert_eq!(
            *sink.kills.lock().expect("lock"),
            vec!["health check 1 (HTTP) failed 3 times in a row: HTTP status 503".to_owned()]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn mesos_checks_wait_the_delay_and_stop_when_the_task_stops_running() {
        let sink = Arc::new(Recorder {
            accept: Some(1),
            ..Recorder::default()
        });
        let calls = scripted(
            Arc::clone(&sink),
            HealthCheckSpec {
                delay_seconds: 15,
                ..check("MESOS_TCP")
            },
            vec![
                Some(Outcome::Healthy),
                Some(failed("refused")),
                Some(failed("refused")),
            ],
        )
        .await;
        assert_eq!(
            calls,
            vec![Duration::from_secs(15), Duration::from_secs(25)]
        );
        assert_eq!(sink.reports.lock().expect("lock").len(), 1);
        assert!(sink.kills.lock().expect("lock").is_empty());
    }

    /// A server answering every connection with `answer` (raw bytes), then closing.
    async fn raw_server(answer: &'static str) -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("address").port();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buffer = [0_u8; 1024];
                    let _ = stream.read(&mut buffer).await;
                    let _ = stream.write_all(answer.as_bytes()).await;
                    if answer.starts_with("HTTP/1.1 1") {
                        // An interim answer only: keep the connection open.
                        tokio::time::sleep(LIMIT).await;
                    }
                });
            }
        });
        port
    }

    fn http(port: u16, ignore_1xx: bool, tls: bool) -> Probe {
        Probe::Http {
            host: "127.0.0.1".into(),
            port,
            path: "/health".into(),
            tls,
            ignore_1xx,
        }
    }

    async fn run(probe: &Probe) -> Outcome {
        tokio::time::timeout(LIMIT, probe.run(LIMIT))
            .await
            .expect("in time")
    }

    #[tokio::test]
    async fn http_probes_judge_the_status_line() {
        let ok = raw_server("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n").await;
        let redirect = raw_server("HTTP/1.1 302 Found\r\nLocation: /x\r\n\r\n").await;
        let broken = raw_server("HTTP/1.1 503 Service Unavailable\r\n\r\n").await;
        let interim = raw_server("HTTP/1.1 100 Continue\r\n\r\n").await;
        let garbage = raw_server("SSH-2.0-OpenSSH\r\n").await;
        assert_eq!(run(&http(ok, false, false)).await, Outcome::Healthy);
        assert_eq!(run(&http(redirect, false, false)).await, Outcome::Healthy);
        assert_eq!(
            run(&http(broken, false, false)).await,
            failed("HTTP status 503")
        );
        assert_eq!(run(&http(interim, true, false)).await, Outcome::Ignored);
        assert_eq!(
            run(&http(interim, false, false)).await,
            failed("HTTP status 100")
        );
        let Outcome::Failed(cause) = run(&http(garbage, false, false)).await else {
            panic!("garbage is not healthy");
        };
        assert!(cause.contains("bad HTTP status line"), "{cause}");
        let closed = closed_port().await;
        let Outcome::Failed(cause) = run(&http(closed, false, false)).await else {
            panic!("nothing listens");
        };
        assert!(cause.starts_with("cannot connect to 127.0.0.1:"), "{cause}");
    }

    #[tokio::test]
    async fn the_http_probe_sends_the_path_and_host() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("address").port();
        let server = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.expect("accept");
            let mut request = Vec::new();
            let mut buffer = [0_u8; 1024];
            while !request.ends_with(b"\r\n\r\n") {
                let n = stream.read(&mut buffer).await.expect("read");
                assert!(n > 0, "request ended early");
                request.extend_from_slice(&buffer[..n]);
            }
            stream
                .write_all(b"HTTP/1.0 204 No Content\r\n\r\n")
                .await
                .expect("write");
            String::from_utf8(request).expect("utf-8")
        });
        assert_eq!(run(&http(port, false, false)).await, Outcome::Healthy);
        let request = server.await.expect("server");
        assert!(request.starts_with("GET /health HTTP/1.1\r\n"), "{request}");
        assert!(
            request.contains(&format!("Host: 127.0.0.1:{port}\r\n")),
            "{request}"
        );
    }

    async fn closed_port() -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        listener.local_addr().expect("address").port()
    }

    #[tokio::test]
    async fn tcp_probes_connect() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let open = listener.local_addr().expect("address").port();
        let probe = Probe::Tcp {
            host: "127.0.0.1".into(),
            port: open,
        };
        assert_eq!(run(&probe).await, Outcome::Healthy);
        let closed = Probe::Tcp {
            host: "127.0.0.1".into(),
            port: closed_port().await,
        };
        assert!(matches!(run(&closed).await, Outcome::Failed(_)));
    }

    #[tokio::test]
    async fn https_probes_fail_against_a_plain_server() {
        let plain = raw_server("HTTP/1.1 200 OK\r\n\r\n").await;
        let Outcome::Failed(cause) = run(&http(plain, false, true)).await else {
            panic!("a plain-text server is no HTTPS server");
        };
        assert!(cause.contains("https://127.0.0.1:"), "{cause}");
    }

    /// An HTTPS server with a self-signed certificate answering every request with `answer`.
    async fn self_signed_server(answer: &'static str) -> u16 {
        use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
        let key = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("cert");
        let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.signing_key.serialize_der()));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(vec![key.cert.der().clone()], der)
            .expect("server config");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("address").port();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(mut stream) = acceptor.accept(stream).await else {
                        return;
                    };
                    let mut buffer = [0_u8; 1024];
                    let _ = stream.read(&mut buffer).await;
                    let _ = stream.write_all(answer.as_bytes()).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        port
    }

    #[tokio::test]
    async fn https_probes_accept_a_self_signed_server() {
        let ok = self_signed_server("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n").await;
        let broken = self_signed_server("HTTP/1.1 500 Oops\r\nContent-Length: 0\r\n\r\n").await;
        assert_eq!(run(&http(ok, false, true)).await, Outcome::Healthy);
        assert_eq!(
            run(&http(broken, false, true)).await,
            failed("HTTP status 500")
        );
    }

    fn command(text: &str, cwd: &std::path::Path) -> Probe {
        let sandbox = cwd.to_owned();
        let check = HealthCheckSpec {
            command: Some(text.into()),
            ..check("COMMAND")
        };
        Probe::for_check(&spec(vec![]), &check, &context(sandbox))
    }

    #[tokio::test]
    async fn command_probes_run_in_the_sandbox_with_the_task_env() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("marker"), "x").expect("write");
        let healthy = command(
            r#"test -f marker && test "$GREETING" = hello && test "$MESOS_TASK_ID" = app.1"#,
            dir.path(),
        );
        assert_eq!(run(&healthy).await, Outcome::Healthy);
        assert_eq!(
            run(&command("exit 3", dir.path())).await,
            failed("Command exited with status 3")
        );
        assert_eq!(
            run(&command("kill -9 $$", dir.path())).await,
            failed("Command terminated with signal 9")
        );
    }

    #[tokio::test]
    async fn a_timed_out_command_is_killed_with_its_children() {
        let dir = tempfile::tempdir().expect("tempdir");
        let probe = command("sleep 60 & echo $! > child; wait", dir.path());
        let outcome = tokio::time::timeout(Duration::from_millis(500), probe.run(LIMIT)).await;
        assert!(outcome.is_err(), "the command should still run");
        let pid: i32 = std::fs::read_to_string(dir.path().join("child"))
            .expect("child pid")
            .trim()
            .parse()
            .expect("pid");
        let gone = tokio::time::timeout(LIMIT, async {
            loop {
                let state = std::fs::read_to_string(format!("/proc/{pid}/stat"));
                // Gone, or a zombie waiting for its reaper.
                if state.map_or(true, |s| s.split_whitespace().nth(2) == Some("Z")) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        assert!(gone.is_ok(), "the check's child {pid} survived the timeout");
    }
}

//! Agent runtime tests: a scripted in-memory driver, a fake master on a real socket, and the
//! files API served on a real socket.

use super::*;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use orch_core::model::{AppId, Resources, TaskId, TaskState, Timestamp};
use orch_core::protocol::{
    DesiredSet, Generation, NotLeader, Registered, Registration, StatusAck, StatusBatch,
    StatusUpdate, TaskSpec,
};
use orch_driver::{BoxFuture, Driver, DriverError, Exit, Launch, Recovered, Started};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

pub(crate) const LIMIT: Duration = Duration::from_secs(30);

/// A driver whose tasks run until the test ends them; `cmd = "fail"` fails to start.
#[derive(Debug)]
pub(crate) struct ScriptedDriver {
    name: &'static str,
    tasks: Mutex<HashMap<TaskId, Option<Exit>>>,
    changed: watch::Sender<u64>,
    recoverable: Mutex<Vec<Recovered>>,
    destroyed: Mutex<Vec<TaskId>>,
    graces: Mutex<Vec<Duration>>,
}

impl ScriptedDriver {
    pub(crate) fn new(recoverable: Vec<Recovered>) -> Arc<Self> {
        Self::named("mock", recoverable)
    }

    /// Under another driver name (`mesos`: health checks probe for real).
    fn named(name: &'static str, recoverable: Vec<Recovered>) -> Arc<Self> {
        let tasks = recoverable
            .iter()
            .map(|r| (r.task_id.clone(), r.exit.clone()))
            .collect();
        Arc::new(Self {
            name,
            tasks: Mutex::new(tasks),
            changed: watch::Sender::new(0),
            recoverable: Mutex::new(recoverable),
            destroyed: Mutex::new(Vec::new()),
            graces: Mutex::new(Vec::new()),
        })
    }

    fn end(&self, id: &str, state: TaskState, message: &str) {
        self.tasks.lock().expect("lock").insert(
            TaskId(id.into()),
            Some(Exit {
                state,
                message: message.into(),
                reason: None,
            }),
        );
        self.changed.send_modify(|n| *n += 1);
    }
}

impl Driver for ScriptedDriver {
    fn name(&self) -> &'static str {
        self.name
    }

    fn start(&self, launch: Launch) -> BoxFuture<'_, Result<Started, DriverError>> {
        Box::pin(async move {
            if launch.spec.cmd.as_deref() == Some("fail") {
                return Err(DriverError::StartFailed {
                    message: "scripted start failure".into(),
                });
            }
            std::fs::write(launch.sandbox.join("stdout"), "started\n").map_err(|source| {
                DriverError::Io {
                    context: "stdout".into(),
                    source,
                }
            })?;
            self.tasks
                .lock()
                .expect("lock")
                .entry(launch.spec.task_id.clone())
                .or_insert(None);
            Ok(Started {
                ip_addresses: vec![launch.agent_ip],
            })
        })
    }

    fn recover(&self) -> BoxFuture<'_, Result<Vec<Recovered>, DriverError>> {
        Box::pin(async move { Ok(self.recoverable.lock().expect("lock").clone()) })
    }

    fn wait<'a>(&'a self, task: &'a TaskId) -> BoxFuture<'a, Exit> {
        Box::pin(async move {
            let mut changed = self.changed.subscribe();
            loop {
                let exit = self
                    .tasks
                    .lock()
                    .expect("lock")
                    .get(task)
                    .cloned()
                    .flatten();
                if let Some(exit) = exit {
                    return exit;
                }
                let _ = changed.changed().await;
            }
        })
    }

    fn stop<'a>(
        &'a self,
        task: &'a TaskId,
        grace: Duration,
    ) -> BoxFuture<'a, Result<(), DriverError>> {
        Box::pin(async move {
            self.graces.lock().expect("lock").push(grace);
            self.end(
                &task.0,
                TaskState::Killed,
                "Command terminated with signal Terminated",
            );
            Ok(())
        })
    }

    fn destroy<'a>(&'a self, task: &'a TaskId) -> BoxFuture<'a, Result<(), DriverError>> {
        Box::pin(async move {
            self.destroyed.lock().expect("lock").push(task.clone());
            Ok(())
        })
    }

    fn inspect<'a>(&'a self, task: &'a TaskId) -> BoxFuture<'a, Result<Option<Exit>, DriverError>> {
        Box::pin(async move {
            Ok(self
                .tasks
                .lock()
                .expect("lock")
                .get(task)
                .cloned()
                .flatten())
        })
    }
}

pub(crate) fn spec(id: &str, cmd: &str) -> TaskSpec {
    TaskSpec {
        task_id: TaskId(id.into()),
        app_id: AppId::parse("/app").expect("valid"),
        app_version: Timestamp::from_millis(0),
        cmd: Some(cmd.into()),
        args: vec![],
        user: None,
        unprivileged: false,
        env: Default::default(),
        labels: Default::default(),
        cpus: 0.1,
        mem: 32.0,
        disk: 0.0,
        ports: vec![],
        docker: None,
        kill_grace_ms: 100,
        health_checks: Vec::new(),
    }
}

pub(crate) fn set(index: u64, tasks: Vec<TaskSpec>) -> DesiredSet {
    DesiredSet {
        generation: Generation { term: 1, index },
        tasks,
    }
}

pub(crate) fn instance(work_dir: &Path, masters: Vec<String>) -> AgentInstance {
    AgentInstance {
        work_dir: work_dir.to_owned(),
        masters,
        hostname: "node-1".into(),
        address: "127.0.0.1:5051".into(),
        agent_ip: "127.0.0.1".into(),
        resources: Resources::default(),
        attributes: Default::default(),
        role: "*".into(),
        containerizers: vec!["mock".into()],
        tls: None,
        unprivileged_user: "nobody".into(),
        gc: GcPolicy::default(),
    }
}

/// What the fake master saw and serves.
#[derive(Debug, Clone)]
pub(crate) struct FakeMaster {
    registrations: Arc<Mutex<Vec<Registration>>>,
    updates: Arc<Mutex<Vec<StatusUpdate>>>,
    heartbeats: Arc<Mutex<u64>>,
    pub(crate) desired: Arc<watch::Sender<DesiredSet>>,
    /// Desired-set polls answered.
    pub(crate) polls: Arc<std::sync::atomic::AtomicU64>,
    /// Whether this master leads; else it answers 503 naming `peer`.
    leading: Arc<std::sync::atomic::AtomicBool>,
    peer: Arc<Mutex<Option<String>>>,
}

#[derive(Debug, serde::Deserialize)]
struct PollQuery {
    after: String,
    wait_ms: u64,
}

pub(crate) async fn serve_on_port_zero(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address").to_string();
    tokio::spawn(async move { axum::serve(listener, router).await });
    address
}

impl FakeMaster {
    pub(crate) async fn start() -> (Self, String) {
        let master = Self {
            registrations: Arc::default(),
            updates: Arc::default(),
            heartbeats: Arc::default(),
            desired: Arc::new(watch::Sender::new(set(0, vec![]))),
            polls: Arc::default(),
            leading: Arc::new(true.into()),
            peer: Arc::default(),
        };
        let address = master.clone().serve().await;
        (master, address)
    }

    /// A second master sharing this one's state (as if replicated), not leading.
    async fn peer(&self) -> (Self, String) {
        let other = Self {
            leading: Arc::new(false.into()),
            peer: Arc::default(),
            ..self.clone()
        };
        let address = other.clone().serve().await;
        (other, address)
    }

    fn lead(&self, leading: bool, peer: &str) {
        self.leading
            .store(leading, std::sync::atomic::Ordering::SeqCst);
        *self.peer.lock().expect("lock") = Some(peer.to_owned());
    }

    async fn serve(self) -> String {
        let master = self;
        let router = Router::new()
            .route(
                "/internal/agent/register",
                post(
                    |State(m): State<FakeMaster>, Json(r): Json<Registration>| async move {
                        m.registrations.lock().expect("lock").push(r);
                        Json(Registered {
                            heartbeat_interval_ms: 50,
                        })
                    },
                ),
            )
            .route(
                "/internal/agent/heartbeat",
                post(|State(m): State<FakeMaster>| async move {
                    *m.heartbeats.lock().expect("lock") += 1;
                    StatusCode::NO_CONTENT
                }),
            )
            .route(
                "/internal/agent/{id}/desired",
                get(
                    |State(m): State<FakeMaster>,
                     UrlPath(_id): UrlPath<String>,
                     Query(q): Query<PollQuery>| async move {
                        m.polls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        let after: Generation = q.after.parse().expect("TERM.INDEX");
                        let mut rx = m.desired.subscribe();
                        let wait = Duration::from_millis(q.wait_ms.min(500));
                        let _ = tokio::time::timeout(wait, rx.wait_for(|s| s.generation != after))
                            .await;
                        let current = m.desired.borrow().clone();
                        Json(current)
                    },
                ),
            )
            .route(
                "/internal/agent/{id}/status",
                post(
                    |State(m): State<FakeMaster>, Json(batch): Json<StatusBatch>| async move {
                        let mut updates = m.updates.lock().expect("lock");
                        let mut through = updates.last().map_or(0, |u| u.seq);
                        for update in batch.updates {
                            if update.seq == through + 1 {
                                through = update.seq;
                                updates.push(update);
                            }
                        }
                        Json(StatusAck { through })
                    },
                ),
            )
            .layer(axum::middleware::from_fn_with_state(
                master.clone(),
                only_when_leading,
            ))
            .with_state(master.clone());
        serve_on_port_zero(router).await
    }

    fn states_of(&self, task: &str) -> Vec<TaskState> {
        self.updates
            .lock()
            .expect("lock")
            .iter()
            .filter(|u| u.task_id.0 == task)
            .map(|u| u.state)
            .collect()
    }

    pub(crate) async fn wait_for_state(&self, task: &str, state: TaskState) {
        tokio::time::timeout(LIMIT, async {
            while !self.states_of(task).contains(&state) {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{task} never reached {state}: {:?}", self.states_of(task)));
    }
}

async fn only_when_leading(
    State(master): State<FakeMaster>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    if master.leading.load(std::sync::atomic::Ordering::SeqCst) {
        next.run(request).await
    } else {
        let leader = master.peer.lock().expect("lock").clone();
        (StatusCode::SERVICE_UNAVAILABLE, Json(NotLeader { leader })).into_response()
    }
}

/// A follower that points at `leader`.
async fn fake_follower(leader: String) -> String {
    let router = Router::new().fallback(move || {
        let leader = leader.clone();
        async move {
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(NotLeader {
                    leader: Some(leader),
                }),
            )
                .into_response()
        }
    });
    serve_on_port_zero(router).await
}

#[tokio::test]
async fn follows_the_leader_runs_tasks_and_reports_every_status_in_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (master, leader) = FakeMaster::start().await;
    let follower = fake_follower(leader.clone()).await;
    let driver = ScriptedDriver::new(vec![]);
    let drivers: Vec<Arc<dyn Driver>> = vec![driver.clone()];
    let agent = Agent::open(
        instance(dir.path(), vec![follower, leader.clone()]),
        drivers,
    )
    .await
    .expect("open");
    let loops = tokio::spawn(run(Arc::clone(&agent)));

    master
        .desired
        .send_replace(set(1, vec![spec("a", "sleep"), spec("b", "fail")]));
    master.wait_for_state("a", TaskState::Running).await;
    master.wait_for_state("b", TaskState::Failed).await;
    assert_eq!(agent.leader().current().map(|s| s.master), Some(leader));
    assert_eq!(
        master.registrations.lock().expect("lock")[0].agent.id,
        *agent.id()
    );

    driver.end("a", TaskState::Finished, "Command exited with status 0");
    master.wait_for_state("a", TaskState::Finished).await;

    master
        .desired
        .send_replace(set(2, vec![spec("a", "sleep"), spec("c", "sleep")]));
    master.wait_for_state("c", TaskState::Running).await;
    master.desired.send_replace(set(3, vec![]));
    master.wait_for_state("c", TaskState::Killed).await;
    assert_eq!(
        *driver.graces.lock().expect("lock"),
        vec![Duration::from_millis(100)]
    );

    // A set from a deposed leader (older generation) changes nothing.
    assert!(!agent.apply_desired(set(2, vec![spec("d", "sleep")])));
    assert!(!agent.actual().contains_key(&TaskId("d".into())));

    assert_eq!(
        master.states_of("a"),
        vec![TaskState::Starting, TaskState::Running, TaskState::Finished]
    );
    assert_eq!(
        master.states_of("b"),
        vec![TaskState::Starting, TaskState::Failed]
    );
    assert_eq!(
        master.states_of("c"),
        vec![
            TaskState::Starting,
            TaskState::Running,
            TaskState::Killing,
            TaskState::Killed
        ]
    );
    let seqs: Vec<u64> = master
        .updates
        .lock()
        .expect("lock")
        .iter()
        .map(|u| u.seq)
        .collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
    let running = master
        .updates
        .lock()
        .expect("lock")
        .iter()
        .find(|u| u.task_id.0 == "a" && u.state == TaskState::Running)
        .map(|u| u.ip_addresses.clone());
    assert_eq!(running, Some(vec!["127.0.0.1".to_owned()]));
    tokio::time::timeout(LIMIT, async {
        while !agent.pending_updates(10).is_empty() || *master.heartbeats.lock().expect("lock") == 0
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("every update acknowledged, heartbeats sent");
    assert!(driver.destroyed.lock().expect("lock").len() >= 3);
    loops.abort();
}

#[tokio::test]
async fn a_leader_change_loses_no_status_update() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (first, first_address) = FakeMaster::start().await;
    let (second, second_address) = first.peer().await;
    second.lead(false, &first_address);
    let driver = ScriptedDriver::new(vec![]);
    let agent = Agent::open(
        instance(
            dir.path(),
            vec![second_address.clone(), first_address.clone()],
        ),
        vec![driver.clone()],
    )
    .await
    .expect("open");
    let loops = tokio::spawn(run(Arc::clone(&agent)));
    first.desired.send_replace(set(1, vec![spec("a", "sleep")]));
    first.wait_for_state("a", TaskState::Running).await;

    // Leadership moves; updates made meanwhile must still arrive, in order, once.
    first.lead(false, &second_address);
    second.lead(true, &first_address);
    driver.end("a", TaskState::Failed, "Command exited with status 1");
    first.desired.send_replace(DesiredSet {
        generation: Generation { term: 2, index: 1 },
        tasks: vec![spec("a", "sleep"), spec("b", "sleep")],
    });
    first.wait_for_state("a", TaskState::Failed).await;
    first.wait_for_state("b", TaskState::Running).await;
    assert_eq!(
        agent.leader().current().map(|s| s.master),
        Some(second_address)
    );
    let seqs: Vec<u64> = first
        .updates
        .lock()
        .expect("lock")
        .iter()
        .map(|u| u.seq)
        .collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
    assert_eq!(
        first.states_of("a"),
        vec![TaskState::Starting, TaskState::Running, TaskState::Failed]
    );
    assert!(first.registrations.lock().expect("lock").len() >= 2);
    loops.abort();
}

#[tokio::test]
async fn a_restarted_agent_recovers_its_tasks_and_keeps_numbering() {
    let dir = tempfile::tempdir().expect("tempdir");
    let unreachable = vec!["127.0.0.1:9".to_owned()];
    let first_id;
    {
        let driver = ScriptedDriver::new(vec![]);
        let agent = Agent::open(
            instance(dir.path(), unreachable.clone()),
            vec![driver.clone()],
        )
        .await
        .expect("open");
        first_id = agent.id().clone();
        assert!(agent.apply_desired(set(
            5,
            vec![spec("x", "sleep"), spec("y", "sleep"), spec("z", "sleep")]
        )));
        tokio::time::timeout(LIMIT, async {
            while agent.live_tasks().len() < 3
                || agent
                    .actual()
                    .values()
                    .any(|t| t.state != TaskState::Running)
            {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("all running");
        assert_eq!(agent.pending_updates(100).len(), 6);
    }

    // The agent went away: x still runs, y failed meanwhile, z vanished.
    let driver = ScriptedDriver::new(vec![
        Recovered {
            task_id: TaskId("x".into()),
            exit: None,
        },
        Recovered {
            task_id: TaskId("y".into()),
            exit: Some(Exit {
                state: TaskState::Failed,
                message: "Command exited with status 3".into(),
                reason: None,
            }),
        },
    ]);
    let agent = Agent::open(instance(dir.path(), unreachable), vec![driver.clone()])
        .await
        .expect("reopen");
    assert_eq!(*agent.id(), first_id);
    assert_eq!(agent.generation(), Generation { term: 1, index: 5 });
    let pending = agent.pending_updates(100);
    let seqs: Vec<u64> = pending.iter().map(|u| u.seq).collect();
    assert_eq!(seqs, (1..=8).collect::<Vec<_>>());
    let last: Vec<(&str, TaskState, &str)> = pending[6..]
        .iter()
        .map(|u| (u.task_id.0.as_str(), u.state, u.message.as_str()))
        .collect();
    assert_eq!(
        last,
        vec![
            ("y", TaskState::Failed, "Command exited with status 3"),
            (
                "z",
                TaskState::Gone,
                "the task vanished while the agent was away"
            ),
        ]
    );
    assert_eq!(agent.live_tasks(), vec![TaskId("x".into())]);

    // Stale sets stay refused after the restart; ended tasks are not restarted.
    assert!(!agent.apply_desired(set(4, vec![])));
    assert!(agent.apply_desired(set(6, vec![spec("y", "sleep")])));
    assert_eq!(
        agent.actual().get(&TaskId("y".into())).map(|t| t.state),
        Some(TaskState::Failed)
    );
    // x was not desired: killed through the re-attached supervisor; z was forgotten.
    tokio::time::timeout(LIMIT, async {
        while !agent
            .pending_updates(100)
            .iter()
            .any(|u| u.task_id.0 == "x" && u.state == TaskState::Killed)
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("x killed");
    assert!(!agent.actual().contains_key(&TaskId("z".into())));
}

#[tokio::test]
async fn serves_files_state_and_health_on_a_real_socket() {
    let dir = tempfile::tempdir().expect("tempdir");
    let agent = Agent::open(instance(dir.path(), vec!["127.0.0.1:9".into()]), vec![])
        .await
        .expect("open");
    // Without a driver the task fails, but its sandbox exists.
    assert!(agent.apply_desired(set(1, vec![spec("t1", "sleep")])));
    tokio::time::timeout(LIMIT, async {
        while agent.live_tasks().len() == 1
            || agent.actual().get(&TaskId("t1".into())).map(|t| t.state) != Some(TaskState::Failed)
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("failed");
    let failed = agent.pending_updates(10);
    assert_eq!(
        failed.last().map(|u| u.message.as_str()),
        Some("no containerizer for this task")
    );
    let sandbox = agent.sandboxes().join("t1");
    std::fs::write(sandbox.join("stdout"), "line 1\nline 2\n").expect("write");
    std::os::unix::fs::symlink("/etc/passwd", sandbox.join("passwd")).expect("symlink");

    let address = serve_on_port_zero(router(vec![Arc::clone(&agent)])).await;
    orch_pki::tls::install_crypto_provider();
    let http = reqwest::Client::new();
    let get = |path: String| {
        let http = http.clone();
        let url = format!("http://{address}{path}");
        async move {
            let response = tokio::time::timeout(LIMIT, http.get(&url).send())
                .await
                .expect("in time")
                .expect("answered");
            let status = response.status().as_u16();
            let body: serde_json::Value = response.json().await.unwrap_or_default();
            (status, body)
        }
    };
    let (status, end) = get("/files/read?path=t1/stdout&offset=-1".into()).await;
    assert_eq!(
        (status, end),
        (200, serde_json::json!({"data": "", "offset": 14}))
    );
    let absolute = sandbox.join("stdout").display().to_string();
    let (status, chunk) = get(format!("/files/read?path={absolute}&offset=7&length=6")).await;
    assert_eq!(
        (status, chunk),
        (200, serde_json::json!({"data": "line 2", "offset": 7}))
    );
    let (status, listing) = get("/files/browse?path=t1".into()).await;
    assert_eq!(status, 200);
    let first = &listing[0];
    for key in ["path", "size", "mode", "mtime", "nlink", "uid", "gid"] {
        assert!(first.get(key).is_some(), "{key} missing in {first}");
    }
    let (status, denied) = get("/files/read?path=t1/passwd".into()).await;
    assert_eq!(status, 403);
    assert!(denied["message"].is_string());
    assert_eq!(get("/files/read?path=../agent_id".into()).await.0, 403);
    assert_eq!(get("/files/read?path=t1/nothing".into()).await.0, 404);
    let (status, state) = get("/state".into()).await;
    assert_eq!(status, 200);
    assert_eq!(state["id"], agent.id().0.as_str());
    assert_eq!(state["tasks"][0]["id"], "t1");
    assert_eq!(state["tasks"][0]["state"], "TASK_FAILED");
    assert_eq!(
        state["tasks"][0]["directory"],
        sandbox.display().to_string()
    );
    let health = http
        .get(format!("http://{address}/health"))
        .send()
        .await
        .expect("health");
    assert_eq!(health.status().as_u16(), 200);
}

fn health_check(
    protocol: &str,
    port: Option<u16>,
    max: u32,
) -> orch_core::protocol::HealthCheckSpec {
    orch_core::protocol::HealthCheckSpec {
        protocol: protocol.into(),
        path: Some("/ping".into()),
        port,
        command: None,
        grace_period_seconds: 0,
        interval_seconds: 1,
        timeout_seconds: 1,
        max_consecutive_failures: max,
        delay_seconds: 0,
        ignore_http1xx: false,
    }
}

impl FakeMaster {
    fn health_of(&self, task: &str) -> Vec<orch_core::protocol::HealthReport> {
        self.updates
            .lock()
            .expect("lock")
            .iter()
            .filter(|u| u.task_id.0 == task)
            .filter_map(|u| u.health.clone())
            .collect()
    }

    fn last_of(&self, task: &str) -> Option<StatusUpdate> {
        self.updates
            .lock()
            .expect("lock")
            .iter()
            .rev()
            .find(|u| u.task_id.0 == task)
            .cloned()
    }
}

#[tokio::test]
async fn health_checks_report_changes_and_kill_the_task_at_max_failures() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (master, leader) = FakeMaster::start().await;
    let healthy = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let app = {
        let healthy = Arc::clone(&healthy);
        Router::new().route(
            "/ping",
            get(move || {
                let up = healthy.load(std::sync::atomic::Ordering::SeqCst);
                async move {
                    if up {
                        StatusCode::OK
                    } else {
                        StatusCode::INTERNAL_SERVER_ERROR
                    }
                }
            }),
        )
    };
    let app_address = serve_on_port_zero(app).await;
    let port: u16 = app_address
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port");
    let driver = ScriptedDriver::named("mesos", vec![]);
    let agent = Agent::open(instance(dir.path(), vec![leader]), vec![driver.clone()])
        .await
        .expect("open");
    let loops = tokio::spawn(run(Arc::clone(&agent)));
    let mut task = spec("web", "serve");
    task.health_checks = vec![health_check("HTTP", Some(port), 2)];
    master.desired.send_replace(set(1, vec![task]));
    tokio::time::timeout(LIMIT, async {
        while master.health_of("web").is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("a first health report");
    // Repeated successes are not reported.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        master.health_of("web"),
        vec![orch_core::protocol::HealthReport {
            index: 0,
            alive: true,
            consecutive_failures: 0,
            cause: None
        }]
    );
    healthy.store(false, std::sync::atomic::Ordering::SeqCst);
    master.wait_for_state("web", TaskState::Killed).await;

    let reports: Vec<(bool, u32, Option<String>)> = master
        .health_of("web")
        .into_iter()
        .map(|r| (r.alive, r.consecutive_failures, r.cause))
        .collect();
    let cause = Some("HTTP status 500".to_owned());
    assert_eq!(
        reports,
        vec![
            (true, 0, None),
            (false, 1, cause.clone()),
            (false, 2, cause)
        ]
    );
    assert_eq!(
        master.states_of("web"),
        vec![
            TaskState::Starting,
            TaskState::Running,
            TaskState::Running,
            TaskState::Running,
            TaskState::Running,
            TaskState::Killing,
            TaskState::Killed
        ]
    );
    let killed = master.last_of("web").expect("terminal update");
    assert_eq!(killed.reason.as_deref(), Some(UNHEALTHY_REASON));
    assert_eq!(
        killed.message,
        "health check 0 (HTTP) failed 2 times in a row: HTTP status 500"
    );
    assert_eq!(killed.health, None);
    assert_eq!(
        *driver.graces.lock().expect("lock"),
        vec![Duration::from_millis(100)]
    );
    // Checks stopped with the task: nothing more is reported.
    let count = master.updates.lock().expect("lock").len();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(master.updates.lock().expect("lock").len(), count);
    loops.abort();
}

#[tokio::test]
async fn mock_tasks_take_their_health_from_the_label() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (master, leader) = FakeMaster::start().await;
    let drivers: Vec<Arc<dyn Driver>> = vec![Arc::new(orch_driver::mock::MockDriver::new())];
    let agent = Agent::open(instance(dir.path(), vec![leader]), drivers)
        .await
        .expect("open");
    let loops = tokio::spawn(run(Arc::clone(&agent)));
    // Nothing listens on port 1: a real probe would fail.
    let mut good = spec("good", "serve");
    good.health_checks = vec![health_check("TCP", Some(1), 1)];
    let mut bad = good.clone();
    bad.task_id = TaskId("bad".into());
    bad.labels
        .insert(orch_driver::mock::HEALTHY_LABEL.into(), "false".into());
    master.desired.send_replace(set(1, vec![good, bad]));
    master.wait_for_state("bad", TaskState::Killed).await;
    let killed = master.last_of("bad").expect("terminal update");
    assert_eq!(killed.reason.as_deref(), Some(UNHEALTHY_REASON));
    assert!(
        killed.message.contains("ORCH_MOCK_HEALTHY=false"),
        "{}",
        killed.message
    );
    assert_eq!(master.health_of("good").len(), 1);
    assert!(master.health_of("good")[0].alive);
    assert_eq!(
        master.last_of("good").map(|u| u.state),
        Some(TaskState::Running)
    );
    loops.abort();
}

#[tokio::test]
async fn recovered_tasks_get_their_checks_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    let unreachable = vec!["127.0.0.1:9".to_owned()];
    let mut task = spec("x", "sleep");
    task.health_checks = vec![orch_core::protocol::HealthCheckSpec {
        command: Some("test -n \"$MESOS_TASK_ID\"".into()),
        ..health_check("COMMAND", None, 3)
    }];
    let health_reports = |agent: &Agent| {
        agent
            .pending_updates(100)
            .into_iter()
            .filter(|u| u.health.is_some())
            .count()
    };
    {
        let driver = ScriptedDriver::named("mesos", vec![]);
        let agent = Agent::open(instance(dir.path(), unreachable.clone()), vec![driver])
            .await
            .expect("open");
        assert!(agent.apply_desired(set(1, vec![task])));
        tokio::time::timeout(LIMIT, async {
            while health_reports(&agent) == 0 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .expect("checked before the restart");
    }
    let driver = ScriptedDriver::named(
        "mesos",
        vec![Recovered {
            task_id: TaskId("x".into()),
            exit: None,
        }],
    );
    let agent = Agent::open(instance(dir.path(), unreachable), vec![driver])
        .await
        .expect("reopen");
    tokio::time::timeout(LIMIT, async {
        while health_reports(&agent) < 2 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("checked again after the restart");
    let last = agent
        .pending_updates(100)
        .into_iter()
        .rev()
        .find(|u| u.health.is_some())
        .expect("a report");
    assert_eq!(last.state, TaskState::Running);
    assert_eq!(last.health.map(|h| h.alive), Some(true));
}

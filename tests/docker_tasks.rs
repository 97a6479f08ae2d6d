//! Docker apps end to end: real `orch master` and `orch agent` processes running busybox
//! containers through the local Docker engine (a tiny image built here from Debian's
//! busybox-static; no registry is reachable). Covers bridge networking with a dynamic host
//! port, host networking, a missing image (TASK_FAILED with the engine's message in
//! `lastTaskFailure`), an agent SIGKILL and restart that keeps the container, and scaling to
//! 0 removing the container. Skipped, with a printed note, when no Docker engine answers.

mod support;

use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use support::Cluster;

const IMAGE: &str = "orch-test-busybox:1";
/// Bound on every test body.
const TEST_TIMEOUT: Duration = Duration::from_secs(150);
/// Bound on each wait inside a test.
const WAIT: Duration = Duration::from_secs(40);

/// Whether a Docker engine answers and the test image exists (built once per process).
/// `None` means skip (a note was printed); a failed build with a live engine panics.
fn docker_ready() -> Option<()> {
    static READY: OnceLock<Result<bool, String>> = OnceLock::new();
    let ready = READY.get_or_init(|| {
        let info = Command::new("docker")
            .args(["info", "--format", "{{.ServerVersion}}"])
            .output();
        match info {
            Ok(out) if out.status.success() => {}
            Ok(out) => {
                println!(
                    "NOTE: no Docker engine answers ({}); Docker task tests skipped",
                    String::from_utf8_lossy(&out.stderr).trim()
                );
                return Ok(false);
            }
            Err(error) => {
                println!("NOTE: no docker CLI ({error}); Docker task tests skipped");
                return Ok(false);
            }
        }
        support::build_busybox_image(IMAGE).map(|()| true)
    });
    match ready {
        Ok(true) => Some(()),
        Ok(false) => None,
        Err(error) => panic!("a Docker engine answers but the test image cannot be built: {error}"),
    }
}

/// Removes, on drop, every container whose sandbox lies under the cluster's dir (so a failed
/// test leaves no container behind).
struct ContainerSweeper(PathBuf);

impl Drop for ContainerSweeper {
    fn drop(&mut self) {
        let prefix = self.0.display().to_string();
        for (id, _) in containers(|sandbox| sandbox.starts_with(&prefix)) {
            let _ = Command::new("docker").args(["rm", "-f", &id]).output();
        }
    }
}

/// `(container id, running?)` of every container (running or not) labelled with an orch
/// sandbox for which `keep` holds.
fn containers(keep: impl Fn(&str) -> bool) -> Vec<(String, bool)> {
    let out = Command::new("docker")
        .args([
            "ps",
            "-a",
            "--no-trunc",
            "--filter",
            "label=orch.sandbox",
            "--format",
            "{{.ID}}\t{{.State}}\t{{.Label \"orch.sandbox\"}}",
        ])
        .output()
        .expect("run docker ps");
    assert!(
        out.status.success(),
        "docker ps failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| {
            let mut parts = line.splitn(3, '\t');
            let id = parts.next()?;
            let state = parts.next()?;
            let sandbox = parts.next()?;
            keep(sandbox).then(|| (id.to_owned(), state == "running"))
        })
        .collect()
}

/// The containers of one task (matched by its sandbox directory name).
fn containers_of(task_id: &str) -> Vec<(String, bool)> {
    let suffix = format!("/{task_id}");
    containers(|sandbox| sandbox.ends_with(&suffix))
}

/// A cluster of 1 master and 1 agent offering the docker containerizer, host ports in
/// `ports` (a range of its own per test, below Linux's ephemeral range, so that parallel
/// tests never publish the same host port).
async fn docker_cluster(ports: &str) -> (Cluster, ContainerSweeper) {
    let mut cluster = Cluster::start(1, &[]);
    let sweeper = ContainerSweeper(cluster.dir().to_path_buf());
    let resources = format!("cpus:2;mem:1024;disk:1000;ports:[{ports}]");
    cluster.add_agent(&[
        "--resources",
        &resources,
        "--containerizers",
        "mesos,docker",
    ]);
    cluster.wait_for_agents(0, 1, Duration::from_secs(20)).await;
    (cluster, sweeper)
}

async fn post_app(cluster: &Cluster, app: &Value) {
    let r = cluster
        .http
        .post(&format!("{}/v2/apps", cluster.url(0)), app)
        .await;
    assert_eq!(
        r.status, 201,
        "POST /v2/apps {app}: {} {}",
        r.status, r.body
    );
}

/// `GET /v2/apps/<id>/tasks` (empty if the app is unknown).
async fn tasks_of(cluster: &Cluster, app: &str) -> Vec<Value> {
    let r = cluster
        .http
        .get(&format!("{}/v2/apps{app}/tasks", cluster.url(0)))
        .await;
    if r.status != 200 {
        return Vec::new();
    }
    r.json()["tasks"].as_array().cloned().unwrap_or_default()
}

/// Waits until `app` has exactly `n` tasks, all TASK_RUNNING; returns them.
async fn wait_running(cluster: &Cluster, app: &str, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + WAIT;
    loop {
        let tasks = tasks_of(cluster, app).await;
        if tasks.len() == n && tasks.iter().all(|t| t["state"] == json!("TASK_RUNNING")) {
            return tasks;
        }
        assert!(
            Instant::now() < deadline,
            "{app}: want {n} TASK_RUNNING tasks within {WAIT:?}, have {tasks:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// GETs `url` until it answers 200 (bounded); returns the body.
async fn http_answer(url: &str) -> String {
    orch_pki::tls::install_crypto_provider();
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(2))
        .build()
        .expect("reqwest client");
    let deadline = Instant::now() + WAIT;
    loop {
        let last = match client.get(url).send().await {
            Ok(r) if r.status().is_success() => {
                return r.text().await.unwrap_or_default();
            }
            Ok(r) => format!("status {}", r.status()),
            Err(e) => e.to_string(),
        };
        assert!(
            Instant::now() < deadline,
            "{url} did not answer 200 within {WAIT:?} (last: {last})"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn host_port(task: &Value) -> u16 {
    let port = task["ports"][0]
        .as_u64()
        .unwrap_or_else(|| panic!("task without a host port: {task}"));
    u16::try_from(port).unwrap_or_else(|_| panic!("host port {port} out of range"))
}

fn task_id(task: &Value) -> String {
    task["id"]
        .as_str()
        .unwrap_or_else(|| panic!("task without id: {task}"))
        .to_owned()
}

/// Waits until the task has no container left.
async fn wait_container_gone(task: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        let left = containers_of(task);
        if left.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "containers of {task} still exist after {WAIT:?}: {left:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn bridge_app(id: &str) -> Value {
    json!({
        "id": id,
        "cmd": "httpd -f -p 8080 -h /etc",
        "cpus": 0.1,
        "mem": 32,
        "instances": 1,
        "container": {
            "type": "DOCKER",
            "docker": {"image": IMAGE},
            "portMappings": [{"containerPort": 8080, "hostPort": 0}]
        },
        "networks": [{"mode": "container/bridge"}]
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bridge_app_serves_http_on_its_host_port_and_scale_to_zero_removes_the_container() {
    if docker_ready().is_none() {
        return;
    }
    tokio::time::timeout(TEST_TIMEOUT, async {
        let (cluster, _sweeper) = docker_cluster("32100-32109").await;
        post_app(&cluster, &bridge_app("/web")).await;
        let task = wait_running(&cluster, "/web", 1).await.remove(0);
        let port = host_port(&task);
        assert!(
            (32100..=32109).contains(&port),
            "host port {port} not from the agent's range: {task}"
        );
        let id = task_id(&task);
        let found = containers_of(&id);
        assert!(
            matches!(found.as_slice(), [(_, true)]),
            "want one running container for {id}, have {found:?}"
        );
        // httpd serves /etc: the container's /etc/hostname is its (short) container id.
        let hostname = http_answer(&format!("http://127.0.0.1:{port}/hostname")).await;
        assert!(
            found[0].0.starts_with(hostname.trim()) && !hostname.trim().is_empty(),
            "GET /hostname on host port {port} answered {hostname:?}, not container {}",
            found[0].0
        );

        let r = cluster
            .http
            .put(
                &format!("{}/v2/apps/web", cluster.url(0)),
                &json!({"instances": 0}),
            )
            .await;
        assert!(
            r.ok(),
            "PUT /v2/apps/web instances 0: {} {}",
            r.status,
            r.body
        );
        wait_running(&cluster, "/web", 0).await;
        wait_container_gone(&id).await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_networking_app_serves_http_on_its_port() {
    if docker_ready().is_none() {
        return;
    }
    tokio::time::timeout(TEST_TIMEOUT, async {
        let (cluster, _sweeper) = docker_cluster("32110-32119").await;
        let app = json!({
            "id": "/hostweb",
            "cmd": "mkdir -p /www && echo host-net > /www/index.html && exec httpd -f -p $PORT0 -h /www",
            "cpus": 0.1,
            "mem": 32,
            "instances": 1,
            "container": {"type": "DOCKER", "docker": {"image": IMAGE}},
            "networks": [{"mode": "host"}],
            "portDefinitions": [{"port": 0, "name": "http"}]
        });
        post_app(&cluster, &app).await;
        let task = wait_running(&cluster, "/hostweb", 1).await.remove(0);
        let port = host_port(&task);
        assert!(
            (32110..=32119).contains(&port),
            "host port {port} not from the agent's range: {task}"
        );
        let body = http_answer(&format!("http://127.0.0.1:{port}/index.html")).await;
        assert_eq!(body.trim(), "host-net", "GET on host port {port}");
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_image_fails_the_task_with_the_engine_message() {
    if docker_ready().is_none() {
        return;
    }
    tokio::time::timeout(TEST_TIMEOUT, async {
        let (cluster, _sweeper) = docker_cluster("32130-32139").await;
        let image = format!("orch-missing-image-{}:1", uuid::Uuid::new_v4().simple());
        let app = json!({
            "id": "/noimage",
            "cmd": "sleep 1000",
            "cpus": 0.1,
            "mem": 32,
            "instances": 1,
            "container": {"type": "DOCKER", "docker": {"image": image}},
            "networks": [{"mode": "host"}]
        });
        post_app(&cluster, &app).await;
        let deadline = Instant::now() + WAIT;
        let failure = loop {
            let r = cluster
                .http
                .get(&format!("{}/v2/apps/noimage", cluster.url(0)))
                .await;
            assert_eq!(r.status, 200, "GET /v2/apps/noimage: {}", r.body);
            let failure = r.json()["app"]["lastTaskFailure"].clone();
            if failure.is_object() {
                break failure;
            }
            assert!(
                Instant::now() < deadline,
                "no lastTaskFailure within {WAIT:?}: {}",
                r.body
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        assert_eq!(failure["state"], json!("TASK_FAILED"), "{failure}");
        assert_eq!(failure["appId"], json!("/noimage"), "{failure}");
        let message = failure["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(&image),
            "lastTaskFailure message should carry the engine's error about {image}: {failure}"
        );
        // The app is not running anything meanwhile.
        let running: Vec<Value> = tasks_of(&cluster, "/noimage")
            .await
            .into_iter()
            .filter(|t| t["state"] == json!("TASK_RUNNING"))
            .collect();
        assert!(
            running.is_empty(),
            "tasks running without an image: {running:?}"
        );
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_sigkill_and_restart_keeps_the_same_container_running() {
    if docker_ready().is_none() {
        return;
    }
    tokio::time::timeout(TEST_TIMEOUT, async {
        let (mut cluster, _sweeper) = docker_cluster("32120-32129").await;
        post_app(&cluster, &bridge_app("/sturdy")).await;
        let task = wait_running(&cluster, "/sturdy", 1).await.remove(0);
        let id = task_id(&task);
        let port = host_port(&task);
        let before = containers_of(&id);
        assert!(
            matches!(before.as_slice(), [(_, true)]),
            "want one running container for {id}, have {before:?}"
        );
        http_answer(&format!("http://127.0.0.1:{port}/hostname")).await;

        cluster.agents[0].kill9();
        let during = containers_of(&id);
        assert_eq!(during, before, "the container must outlive the agent");
        cluster.agents[0].restart();
        // The restarted agent answers its own API, then re-registers.
        let state_url = format!("{}/state", cluster.agents[0].url());
        http_answer(&state_url).await;
        cluster.wait_for_agents(0, 1, Duration::from_secs(20)).await;

        // Watch for a few seconds: the same task, still running, in the same container.
        let watch_until = Instant::now() + Duration::from_secs(6);
        while Instant::now() < watch_until {
            cluster.agents[0].assert_running();
            let tasks = tasks_of(&cluster, "/sturdy").await;
            let ids: Vec<String> = tasks.iter().map(task_id).collect();
            assert_eq!(ids, vec![id.clone()], "tasks after the restart: {tasks:#?}");
            assert_eq!(
                tasks[0]["state"],
                json!("TASK_RUNNING"),
                "task after the agent restart: {}",
                tasks[0]
            );
            assert_eq!(
                containers_of(&id),
                before,
                "container after the agent restart"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let body = http_answer(&format!("http://127.0.0.1:{port}/hostname")).await;
        assert!(
            before[0].0.starts_with(body.trim()),
            "after the restart port {port} answered {body:?}, not container {}",
            before[0].0
        );

        // The restarted agent still controls the container: deleting the app removes it.
        let r = cluster
            .http
            .delete(&format!("{}/v2/apps/sturdy", cluster.url(0)))
            .await;
        assert!(r.ok(), "DELETE /v2/apps/sturdy: {} {}", r.status, r.body);
        wait_container_gone(&id).await;
    })
    .await
    .expect("test timed out");
}

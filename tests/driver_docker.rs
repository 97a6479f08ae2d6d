//! The Docker driver against the local engine, with a tiny busybox image built here
//! (`FROM scratch` + Debian's busybox-static). Skipped, with a note, when no engine answers.

mod support;

use orch_core::model::{AppId, TaskId, TaskState, Timestamp};
use orch_core::protocol::{DockerNetwork, DockerSpec, PortAssignment, TaskSpec, VolumeSpec};
use orch_driver::docker::DockerDriver;
use orch_driver::{Driver, DriverError, Launch};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const IMAGE: &str = "orch-test-busybox:1";
const TIMEOUT: Duration = Duration::from_secs(120);

/// Builds the test image once per process; `Err` explains why Docker tests cannot run.
fn image() -> Result<(), String> {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    BUILT
        .get_or_init(|| support::build_busybox_image(IMAGE))
        .clone()
}

/// A driver with its own agent label, or `None` (after printing why) without Docker.
async fn driver(agent: &str) -> Option<DockerDriver> {
    let driver = match DockerDriver::connect(agent).await {
        Ok(driver) => driver,
        Err(error) => {
            println!("NOTE: no Docker engine answers ({error}); Docker driver test skipped");
            return None;
        }
    };
    if let Err(error) = tokio::task::spawn_blocking(image).await.unwrap() {
        panic!("an engine answers but the test image cannot be built: {error}");
    }
    Some(driver)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn spec(name: &str, cmd: Option<&str>, args: &[&str], network: DockerNetwork) -> TaskSpec {
    TaskSpec {
        task_id: TaskId(format!(
            "dtest.instance-{name}-{}._app.1",
            uuid::Uuid::new_v4()
        )),
        app_id: AppId::parse("/dtest").unwrap(),
        app_version: Timestamp::from_millis(0),
        cmd: cmd.map(str::to_owned),
        args: args.iter().map(|a| (*a).to_owned()).collect(),
        user: None,
        unprivileged: false,
        env: BTreeMap::new(),
        labels: BTreeMap::new(),
        cpus: 0.2,
        mem: 64.0,
        disk: 0.0,
        ports: vec![],
        docker: Some(DockerSpec {
            image: IMAGE.to_owned(),
            network,
            privileged: false,
            parameters: vec![],
            force_pull_image: false,
            volumes: vec![],
        }),
        kill_grace_ms: 1000,
        health_checks: Vec::new(),
    }
}

fn launch(work: &Path, spec: TaskSpec) -> Launch {
    let sandbox = work.join("sandboxes").join(&spec.task_id.0);
    std::fs::create_dir_all(&sandbox).unwrap();
    Launch {
        spec,
        sandbox,
        hostname: "node-1".to_owned(),
        agent_ip: "127.0.0.1".to_owned(),
    }
}

fn sandbox_file(work: &Path, task: &TaskId, file: &str) -> PathBuf {
    work.join("sandboxes").join(&task.0).join(file)
}

async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn http_get(url: &str) -> Option<String> {
    orch_pki::tls::install_crypto_provider();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .ok()?;
    let response = client.get(url).send().await.ok()?;
    response
        .status()
        .is_success()
        .then_some(response.text().await.ok()?)
}

async fn get_eventually(url: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(body) = http_get(url).await {
            return body;
        }
        assert!(Instant::now() < deadline, "{url} never answered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn bridge_ports_env_volume_logs_and_stop() {
    tokio::time::timeout(TIMEOUT, async {
        let agent = format!("agent-{}", uuid::Uuid::new_v4());
        let Some(driver) = driver(&agent).await else {
            return;
        };
        let work = tempfile::tempdir().unwrap();
        let data = tempfile::tempdir().unwrap();
        std::fs::write(data.path().join("hello.txt"), "hello from the host\n").unwrap();
        let host_port = free_port();
        let mut spec = spec(
            "bridge",
            Some(
                "echo \"port=$PORT0 task=$MESOS_TASK_ID sandbox=$MESOS_SANDBOX mine=$MINE\"; \
                 echo to-stderr >&2; echo in-sandbox > $MESOS_SANDBOX/marker; \
                 exec httpd -f -p 8080 -h /data",
            ),
            &[],
            DockerNetwork::Bridge,
        );
        spec.env.insert("MINE".to_owned(), "yes".to_owned());
        spec.ports = vec![PortAssignment {
            host_port,
            container_port: Some(8080),
            requested: 0,
            name: Some("http".to_owned()),
            protocol: "tcp".to_owned(),
        }];
        if let Some(docker) = spec.docker.as_mut() {
            docker.volumes.push(VolumeSpec {
                container_path: "/data".to_owned(),
                host_path: Some(data.path().display().to_string()),
                name: None,
                read_only: true,
            });
        }
        let id = spec.task_id.clone();
        let started = driver.start(launch(work.path(), spec)).await.unwrap();
        assert_eq!(started.ip_addresses.len(), 1);
        let body = get_eventually(&format!("http://127.0.0.1:{host_port}/hello.txt")).await;
        assert_eq!(body, "hello from the host\n");
        let stdout = sandbox_file(work.path(), &id, "stdout");
        let expected = format!("port={host_port} task={id} sandbox=/mnt/mesos/sandbox mine=yes\n");
        eventually("the container's stdout in the sandbox", || {
            std::fs::read_to_string(&stdout).unwrap_or_default() == expected
        })
        .await;
        let stderr = sandbox_file(work.path(), &id, "stderr");
        eventually("the container's stderr in the sandbox", || {
            std::fs::read_to_string(&stderr).unwrap_or_default() == "to-stderr\n"
        })
        .await;
        assert_eq!(
            std::fs::read_to_string(sandbox_file(work.path(), &id, "marker")).unwrap(),
            "in-sandbox\n"
        );
        assert_eq!(driver.inspect(&id).await.unwrap(), None);

        let begin = Instant::now();
        driver.stop(&id, Duration::from_secs(1)).await.unwrap();
        let exit = driver.wait(&id).await;
        assert_eq!(exit.state, TaskState::Killed, "{exit:?}");
        assert!(begin.elapsed() < Duration::from_secs(20));
        driver.destroy(&id).await.unwrap();
        assert!(matches!(
            driver.inspect(&id).await,
            Err(DriverError::UnknownTask(_))
        ));
        assert!(stdout.exists(), "destroy keeps the sandbox files");
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn host_network_and_exit_codes() {
    tokio::time::timeout(TIMEOUT, async {
        let Some(driver) = driver(&format!("agent-{}", uuid::Uuid::new_v4())).await else {
            return;
        };
        let work = tempfile::tempdir().unwrap();
        let port = free_port();
        let server = spec(
            "host",
            Some(&format!(
                "mkdir -p /www && echo \"host=$HOST\" > /www/index.html && exec httpd -f -p {port} -h /www"
            )),
            &[],
            DockerNetwork::Host,
        );
        let id = server.task_id.clone();
        let started = driver.start(launch(work.path(), server)).await.unwrap();
        assert_eq!(started.ip_addresses, vec!["127.0.0.1".to_owned()]);
        let body = get_eventually(&format!("http://127.0.0.1:{port}/")).await;
        assert_eq!(body, "host=node-1\n");
        driver.stop(&id, Duration::from_secs(1)).await.unwrap();
        assert_eq!(driver.wait(&id).await.state, TaskState::Killed);
        driver.destroy(&id).await.unwrap();

        let failing = spec("fail", Some("exit 3"), &[], DockerNetwork::Bridge);
        let id = failing.task_id.clone();
        driver.start(launch(work.path(), failing)).await.unwrap();
        let exit = driver.wait(&id).await;
        assert_eq!(exit.state, TaskState::Failed);
        assert_eq!(exit.message, "Container exited with status 3");
        driver.destroy(&id).await.unwrap();

        let args = spec("args", None, &["echo", "from", "args"], DockerNetwork::Bridge);
        let id = args.task_id.clone();
        driver.start(launch(work.path(), args)).await.unwrap();
        assert_eq!(driver.wait(&id).await.state, TaskState::Finished);
        assert_eq!(
            std::fs::read_to_string(sandbox_file(work.path(), &id, "stdout")).unwrap(),
            "from args\n"
        );
        driver.destroy(&id).await.unwrap();
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn grace_is_honoured_for_a_container_that_ignores_sigterm() {
    tokio::time::timeout(TIMEOUT, async {
        let Some(driver) = driver(&format!("agent-{}", uuid::Uuid::new_v4())).await else {
            return;
        };
        let work = tempfile::tempdir().unwrap();
        let stubborn = spec(
            "stubborn",
            Some("trap 'echo got-term' TERM; echo ready; while true; do sleep 0.1; done"),
            &[],
            DockerNetwork::Bridge,
        );
        let id = stubborn.task_id.clone();
        driver.start(launch(work.path(), stubborn)).await.unwrap();
        let stdout = sandbox_file(work.path(), &id, "stdout");
        eventually("the trap", || {
            std::fs::read_to_string(&stdout)
                .unwrap_or_default()
                .contains("ready")
        })
        .await;
        let begin = Instant::now();
        driver.stop(&id, Duration::from_secs(2)).await.unwrap();
        assert!(
            begin.elapsed() >= Duration::from_secs(2),
            "killed before the grace"
        );
        let exit = driver.wait(&id).await;
        assert_eq!(exit.state, TaskState::Killed);
        assert_eq!(exit.message, "Container exited with status 137");
        eventually("the SIGTERM line", || {
            std::fs::read_to_string(&stdout)
                .unwrap_or_default()
                .contains("got-term")
        })
        .await;
        driver.destroy(&id).await.unwrap();
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn a_missing_image_fails_the_start_with_the_engine_message() {
    tokio::time::timeout(TIMEOUT, async {
        let Some(driver) = driver(&format!("agent-{}", uuid::Uuid::new_v4())).await else {
            return;
        };
        let work = tempfile::tempdir().unwrap();
        let mut missing = spec("missing", Some("true"), &[], DockerNetwork::Bridge);
        if let Some(docker) = missing.docker.as_mut() {
            docker.image = "orch-test-no-such-image:never".to_owned();
        }
        match driver.start(launch(work.path(), missing)).await {
            Err(DriverError::StartFailed { message }) => {
                assert!(
                    message.starts_with("Failed to pull image 'orch-test-no-such-image:never': "),
                    "{message}"
                );
                assert!(message.len() > 60, "no engine message: {message}");
            }
            other => panic!("expected StartFailed, got {other:?}"),
        }
        let mut bad = spec("badparam", Some("true"), &[], DockerNetwork::Bridge);
        if let Some(docker) = bad.docker.as_mut() {
            docker.parameters = vec![("volume-driver".to_owned(), "x".to_owned())];
        }
        match driver.start(launch(work.path(), bad)).await {
            Err(DriverError::StartFailed { message }) => {
                assert!(message.contains("volume-driver"), "{message}")
            }
            other => panic!("expected StartFailed, got {other:?}"),
        }
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn recover_finds_containers_after_a_new_driver_is_created() {
    tokio::time::timeout(TIMEOUT, async {
        let agent = format!("agent-{}", uuid::Uuid::new_v4());
        let Some(first) = driver(&agent).await else {
            return;
        };
        let work = tempfile::tempdir().unwrap();
        let long = spec(
            "long",
            Some("echo started; exec sleep 300"),
            &[],
            DockerNetwork::Bridge,
        );
        let short = spec("short", Some("sleep 1; exit 7"), &[], DockerNetwork::Bridge);
        let (long_id, short_id) = (long.task_id.clone(), short.task_id.clone());
        first.start(launch(work.path(), long)).await.unwrap();
        first.start(launch(work.path(), short)).await.unwrap();
        drop(first);
        tokio::time::sleep(Duration::from_secs(2)).await;

        let second = DockerDriver::connect(&agent).await.unwrap();
        let recovered = second.recover().await.unwrap();
        assert_eq!(recovered.len(), 2, "{recovered:?}");
        let long_found = recovered.iter().find(|r| r.task_id == long_id).unwrap();
        assert_eq!(long_found.exit, None);
        let short_found = recovered.iter().find(|r| r.task_id == short_id).unwrap();
        let exit = short_found.exit.clone().unwrap();
        assert_eq!(exit.state, TaskState::Failed);
        assert_eq!(exit.message, "Container exited with status 7");

        // Another agent's driver does not see them.
        let other = DockerDriver::connect("someone-else").await.unwrap();
        assert!(other
            .recover()
            .await
            .unwrap()
            .iter()
            .all(|r| r.task_id != long_id));

        second.stop(&long_id, Duration::from_secs(1)).await.unwrap();
        assert_eq!(second.wait(&long_id).await.state, TaskState::Killed);
        let stdout = sandbox_file(work.path(), &long_id, "stdout");
        let text = std::fs::read_to_string(&stdout).unwrap();
        assert_eq!(text.matches("started").count(), 1, "{text}");
        second.destroy(&long_id).await.unwrap();
        second.destroy(&short_id).await.unwrap();
        assert!(second.recover().await.unwrap().is_empty());
    })
    .await
    .unwrap();
}

//! The Docker driver against the local engine, with a tiny image built here (`FROM scratch`
//! plus `/bin/busybox`). Each test is skipped, with a note, when no engine answers.

use super::*;
use bollard::models::ContainerCreateBody;
use orch_core::model::{AppId, Timestamp};
use orch_core::protocol::DockerSpec;
use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::Instant;

const IMAGE: &str = "orch-test-busybox:1";
const LIMIT: Duration = Duration::from_secs(120);

/// Builds the test image once per process; `Err` says why it cannot be built.
fn image() -> Result<(), String> {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let context = tempfile::tempdir().map_err(|e| e.to_string())?;
            std::fs::copy("/bin/busybox", context.path().join("busybox"))
                .map_err(|e| format!("/bin/busybox (apt-get install busybox-static): {e}"))?;
            std::fs::write(
                context.path().join("Dockerfile"),
                "FROM scratch\nCOPY busybox /bin/busybox\n\
                 RUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\nCMD [\"/bin/sh\"]\n",
            )
            .map_err(|e| e.to_string())?;
            let out = std::process::Command::new("docker")
                .args(["build", "-q", "-t", IMAGE])
                .arg(context.path())
                .output()
                .map_err(|e| format!("running docker build: {e}"))?;
            if out.status.success() {
                Ok(())
            } else {
                Err(String::from_utf8_lossy(&out.stderr).into_owned())
            }
        })
        .clone()
}

/// A driver for `work` labelled `agent`, or `None` (after a note) without an engine.
async fn driver(agent: &str, work: &Path) -> Option<DockerDriver> {
    let driver = match DockerDriver::connect(agent).await {
        Ok(driver) => driver.with_work_dir(work),
        Err(error) => {
            println!("NOTE: no Docker engine answers ({error}); Docker driver test skipped");
            return None;
        }
    };
    let built = tokio::task::spawn_blocking(image)
        .await
        .unwrap_or_else(|e| Err(e.to_string()));
    if let Err(error) = built {
        panic!("an engine answers but the test image cannot be built: {error}");
    }
    Some(driver)
}

/// Removes the container when the test ends, however it ends.
struct Removed(String);

impl Drop for Removed {
    fn drop(&mut self) {
        let _ = std::process::Command::new("docker")
            .args(["rm", "-f", &self.0])
            .output();
    }
}

fn unique(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{name}-{}-{nanos}", std::process::id())
}

fn spec(task: &TaskId, parameters: &[(&str, &str)]) -> TaskSpec {
    TaskSpec {
        task_id: task.clone(),
        app_id: AppId::parse("/labels").expect("valid app id"),
        app_version: Timestamp::from_millis(0),
        cmd: Some("exec sleep 300".to_owned()),
        args: vec![],
        user: None,
        unprivileged: false,
        env: BTreeMap::new(),
        labels: BTreeMap::new(),
        cpus: 0.1,
        mem: 32.0,
        disk: 0.0,
        ports: vec![],
        docker: Some(DockerSpec {
            image: IMAGE.to_owned(),
            network: DockerNetwork::Host,
            privileged: false,
            parameters: parameters
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            force_pull_image: false,
            volumes: vec![],
        }),
        kill_grace_ms: 1000,
        health_checks: Vec::new(),
    }
}

#[tokio::test]
async fn a_recovered_sandbox_comes_from_the_work_dir_never_from_a_label() {
    let work = tempfile::tempdir().expect("tempdir");
    let agent = unique("agent");
    let Some(driver) = driver(&agent, work.path()).await else {
        return;
    };
    // Where a hostile `orch.sandbox` label points (in real life /etc/cron.d).
    let elsewhere = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(elsewhere.path().join(".orch")).expect("mkdir");
    std::fs::write(elsewhere.path().join(".orch/keep"), "mine").expect("write");
    let task = TaskId(unique("labels.instance"));
    let name = container_name(&task);
    let _removed = Removed(name.clone());
    tokio::time::timeout(LIMIT, async {
        // An app may no longer set the label itself...
        match driver
            .start(Launch {
                spec: spec(&task, &[("label", "orch.sandbox=/etc/cron.d")]),
                sandbox: work.path().join("sandboxes").join(&task.0),
                hostname: "node-1".to_owned(),
                agent_ip: "127.0.0.1".to_owned(),
            })
            .await
        {
            Err(DriverError::StartFailed { message }) => {
                assert!(message.contains("reserved for orch"), "{message}")
            }
            other => panic!("an orch. label parameter must fail the start: {other:?}"),
        }
        // ...but a container made before that (or by hand) still carries it.
        let labels = HashMap::from([
            (TASK_LABEL.to_owned(), task.0.clone()),
            (AGENT_LABEL.to_owned(), agent.clone()),
            (
                SANDBOX_LABEL.to_owned(),
                elsewhere.path().display().to_string(),
            ),
        ]);
        let body = ContainerCreateBody {
            image: Some(IMAGE.to_owned()),
            cmd: Some(vec![
                "/bin/sh".to_owned(),
                "-c".to_owned(),
                "echo from-the-task; exec sleep 300".to_owned(),
            ]),
            labels: Some(labels),
            ..ContainerCreateBody::default()
        };
        let options = CreateContainerOptionsBuilder::default().name(&name).build();
        driver
            .docker
            .create_container(Some(options), body)
            .await
            .expect("create");
        driver
            .docker
            .start_container(&name, None)
            .await
            .expect("start");

        let recovered = driver.recover().await.expect("recover");
        assert_eq!(
            recovered,
            vec![Recovered {
                task_id: task.clone(),
                exit: None
            }]
        );
        let sandbox = work.path().join("sandboxes").join(&task.0);
        let stdout = sandbox.join("stdout");
        let deadline = Instant::now() + Duration::from_secs(30);
        while !std::fs::read_to_string(&stdout).is_ok_and(|t| t.contains("from-the-task")) {
            assert!(
                Instant::now() < deadline,
                "no output in {}",
                stdout.display()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        driver
            .stop(&task, Duration::from_secs(1))
            .await
            .expect("stop");
        assert!(StateFiles::new(&sandbox).kill().exists());
        assert_eq!(driver.wait(&task).await.state, TaskState::Killed);
        driver.destroy(&task).await.expect("destroy");
        assert!(!StateFiles::new(&sandbox).dir().exists());
        // Nothing was written to, or removed from, where the label pointed.
        let left: Vec<_> = std::fs::read_dir(elsewhere.path())
            .expect("list")
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(left, vec![std::ffi::OsString::from(".orch")]);
        assert_eq!(
            std::fs::read_to_string(elsewhere.path().join(".orch/keep")).expect("kept"),
            "mine"
        );
        assert!(!elsewhere.path().join(".orch/kill").exists());
    })
    .await
    .expect("in time");
}

//! `orch up`, `orch status` and `orch destroy` with the docker provider, against the real
//! Docker engine: the cluster's image is built locally from the orch binary cargo built
//! (never pulled), each machine is a container with its own IP on the cluster's network,
//! reached from here directly. Each test has its own cluster name and subnet; whatever a
//! test leaves is destroyed on drop. Without an engine the tests say so and pass.

mod support;

use bollard::query_parameters::{
    KillContainerOptionsBuilder, ListContainersOptionsBuilder, ListNetworksOptionsBuilder,
    ListVolumesOptionsBuilder,
};
use bollard::Docker;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::Path;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};
use support::{describe_output, git_in, Http, BIN};

/// Bound for one `orch` command (an image build of a debug binary included).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(300);

/// The local engine, or None (the test then has nothing to run against).
async fn engine() -> Option<Docker> {
    let docker = Docker::connect_with_local_defaults().ok()?;
    let docker = tokio::time::timeout(Duration::from_secs(5), docker.negotiate_version())
        .await
        .ok()?
        .ok()?;
    tokio::time::timeout(Duration::from_secs(5), docker.ping())
        .await
        .ok()?
        .ok()?;
    Some(docker)
}

/// A temp dir holding `docker.yaml` for one cluster; destroyed on drop.
struct DockerCluster {
    dir: tempfile::TempDir,
    name: String,
}

impl DockerCluster {
    fn new(name: &str, body: &str) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("orch-docker-")
            .tempdir()
            .expect("temp dir");
        let text = format!("cluster: {name}\nprovider: docker\n{body}");
        std::fs::write(dir.path().join("docker.yaml"), text).expect("write docker.yaml");
        Self {
            dir,
            name: name.to_owned(),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn state_file(&self) -> std::path::PathBuf {
        self.path()
            .join(".orch")
            .join(&self.name)
            .join("state.json")
    }

    /// `orch ARGS -f docker.yaml` here, with `env`; bounded.
    async fn orch(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut command = tokio::process::Command::new(BIN);
        command
            .current_dir(self.path())
            .args(args)
            .args(["-f", "docker.yaml"])
            .env_remove("ORCH_FAIL_AT")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (key, value) in env {
            command.env(key, value);
        }
        let child = command.spawn().expect("spawn orch");
        match tokio::time::timeout(COMMAND_TIMEOUT, child.wait_with_output()).await {
            Ok(out) => out.expect("wait for orch"),
            Err(_) => panic!(
                "`orch {}` took longer than {COMMAND_TIMEOUT:?}",
                args.join(" ")
            ),
        }
    }

    /// `orch ARGS` here without `-f` and without any ORCH_* variable: the CLI finds the
    /// cluster, its CA and token in `.orch/`.
    async fn bare(&self, args: &[&str]) -> Output {
        support::run_orch_bare(self.path(), args, COMMAND_TIMEOUT).await
    }

    fn cluster_dir(&self) -> std::path::PathBuf {
        self.path().join(".orch").join(&self.name)
    }

    /// `orch ARGS`, which must succeed; returns its stdout.
    async fn ok(&self, args: &[&str]) -> String {
        let out = self.orch(args, &[]).await;
        assert!(
            out.status.success(),
            "orch {} failed:\n{}",
            args.join(" "),
            describe_output(&out)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for DockerCluster {
    fn drop(&mut self) {
        let _ = std::process::Command::new(BIN)
            .current_dir(self.path())
            .args(["destroy", "-f", "docker.yaml", "--yes"])
            .env_remove("ORCH_FAIL_AT")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Containers, volumes and networks labelled with the cluster.
async fn leftovers(docker: &Docker, cluster: &str) -> Vec<String> {
    let filters: HashMap<&str, Vec<String>> =
        [("label", vec![format!("orch.cluster={cluster}")])].into();
    let mut left = Vec::new();
    let containers = docker
        .list_containers(Some(
            ListContainersOptionsBuilder::default()
                .all(true)
                .filters(&filters)
                .build(),
        ))
        .await
        .expect("list containers");
    left.extend(
        containers
            .into_iter()
            .map(|c| format!("container {:?}", c.names)),
    );
    let volumes = docker
        .list_volumes(Some(
            ListVolumesOptionsBuilder::default()
                .filters(&filters)
                .build(),
        ))
        .await
        .expect("list volumes");
    left.extend(
        volumes
            .volumes
            .unwrap_or_default()
            .into_iter()
            .map(|v| format!("volume {}", v.name)),
    );
    let networks = docker
        .list_networks(Some(
            ListNetworksOptionsBuilder::default()
                .filters(&filters)
                .build(),
        ))
        .await
        .expect("list networks");
    left.extend(
        networks
            .into_iter()
            .map(|n| format!("network {:?}", n.name)),
    );
    left
}

/// The id and state of each of `names`' containers.
async fn container_ids(docker: &Docker, names: &[String]) -> Vec<(String, String)> {
    let mut ids = Vec::new();
    for name in names {
        let c = docker
            .inspect_container(name, None)
            .await
            .unwrap_or_else(|e| panic!("inspect {name}: {e}"));
        ids.push((
            c.id.unwrap_or_default(),
            c.state
                .and_then(|s| s.status)
                .map(|s| s.to_string())
                .unwrap_or_default(),
        ));
    }
    ids
}

/// Polls `check` every 500 ms until it returns Some, or panics after `limit`.
async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let begin = Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(begin.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The leader's address as the first of `apis` that answers reports it.
async fn leader(http: &Http, apis: &[String]) -> Option<String> {
    for api in apis {
        if let Ok(resp) = http
            .send(
                reqwest::Method::GET,
                &format!("{api}/v1/cluster"),
                None,
                None,
            )
            .await
        {
            if resp.ok() {
                if let Some(leader) = resp.json()["leader_address"].as_str() {
                    return Some(leader.to_owned());
                }
            }
        }
    }
    None
}

/// Running tasks of `app` as the first answering of `apis` reports them.
async fn running_tasks(http: &Http, apis: &[String], app: &str) -> usize {
    for api in apis {
        if let Ok(resp) = http
            .send(
                reqwest::Method::GET,
                &format!("{api}/v2/apps/{app}/tasks"),
                None,
                None,
            )
            .await
        {
            if resp.ok() {
                let json: Value = resp.json();
                return json["tasks"].as_array().map_or(0, |tasks| {
                    tasks
                        .iter()
                        .filter(|t| t["state"] == "TASK_RUNNING")
                        .count()
                });
            }
        }
    }
    0
}

/// Waits until `n` tasks of `app` run; on timeout panics with what the masters say.
async fn wait_running(http: &Http, apis: &[String], app: &str, n: usize, limit: Duration) {
    let begin = Instant::now();
    while running_tasks(http, apis, app).await != n {
        if begin.elapsed() > limit {
            let mut said = String::new();
            for api in apis {
                for path in [
                    format!("/v2/apps/{app}"),
                    "/v2/queue".to_owned(),
                    "/v1/agents".to_owned(),
                ] {
                    let body = match http
                        .send(reqwest::Method::GET, &format!("{api}{path}"), None, None)
                        .await
                    {
                        Ok(resp) => format!("{} {}", resp.status, resp.body),
                        Err(error) => error.to_string(),
                    };
                    said.push_str(&format!("\n{api}{path}: {body}"));
                }
            }
            panic!("{n} tasks of {app} not running within {limit:?}:{said}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_three_master_cluster_comes_up_survives_a_killed_leader_and_goes_away() {
    let Some(docker) = engine().await else {
        eprintln!("no Docker engine: nothing to test");
        return;
    };
    tokio::time::timeout(Duration::from_secs(900), async {
        let cluster = DockerCluster::new(
            "pdock-full",
            "masters: 3\nagents: 2\ndocker:\n  subnet: 172.30.231.0/24\n\
             gitops:\n  - repo: repo\n    name: apps\n    group: /git\n    interval: 2s\n",
        );
        // A local gitops repo: bind-mounted read-only into the masters.
        let repo = cluster.path().join("repo");
        std::fs::create_dir_all(repo.join("apps")).expect("mkdir repo");
        let hello = json!({"id": "hello", "cmd": "while true; do sleep 1; done",
            "cpus": 0.1, "mem": 16, "instances": 1});
        std::fs::write(repo.join("apps/hello.json"), hello.to_string()).expect("app file");
        git_in(&repo, &["init", "-q", "-b", "main"]);
        git_in(&repo, &["add", "-A"]);
        git_in(&repo, &["commit", "-q", "-m", "hello"]);
        let out = cluster.ok(&["up"]).await;
        assert!(out.contains("repo apps: registered"), "{out}");
        assert!(
            out.contains("API     https://172.30.231.11:8080 https://172.30.231.12:8080 https://172.30.231.13:8080"),
            "{out}"
        );
        assert!(out.contains("5 started, 0 restarted"), "{out}");
        let apis: Vec<String> = (11..=13)
            .map(|n| format!("https://172.30.231.{n}:8080"))
            .collect();
        let http = Http::for_cluster(&cluster.cluster_dir());

        // TLS only, with the token: the cluster's CA verifies every master; no token, 401.
        let ca = cluster.cluster_dir().join("pki/ca.pem");
        let token = std::fs::read_to_string(cluster.cluster_dir().join("token")).expect("token");
        for api in &apis {
            let curl = |auth: Option<String>| {
                let mut command = std::process::Command::new("curl");
                if let Some(auth) = auth {
                    command.args(["-H", &auth]);
                }
                let out = command
                    .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "5", "--cacert"])
                    .arg(&ca)
                    .arg(format!("{api}/v1/cluster"))
                    .output()
                    .expect("run curl");
                String::from_utf8_lossy(&out.stdout).into_owned()
            };
            assert_eq!(curl(Some(format!("Authorization: Bearer {}", token.trim()))), "200");
            assert_eq!(curl(None), "401");
        }
        let plain = http.send(reqwest::Method::GET, &apis[0].replace("https", "http"), None, None).await;
        assert!(plain.map_or(true, |r| !r.ok()), "plaintext answered");

        // The repo's app, under its own group (a sync of the repo must not touch the apps
        // posted below).
        wait_running(&http, &apis, "git/hello", 1, Duration::from_secs(120)).await;

        // A process app: a busybox shell loop in the agents' containers.
        let app = json!({"id": "/sleeper", "cmd": "while true; do sleep 1; done",
            "cpus": 0.1, "mem": 16, "instances": 2});
        let resp = http.post(&format!("{}/v2/apps", apis[0]), &app).await;
        assert_eq!(resp.status, 201, "{}", resp.body);
        wait_running(&http, &apis, "sleeper", 2, Duration::from_secs(120)).await;

        // A Docker task, run by an agent on this engine from the node image (its busybox):
        // its sandbox lies in the agent's volume, a path the engine can bind.
        let boxed = json!({"id": "/boxed",
            "cmd": "echo from-docker > $MESOS_SANDBOX/hello.txt && while true; do sleep 1; done",
            "cpus": 0.1, "mem": 32, "instances": 1,
            "container": {"type": "DOCKER", "docker": {"image": "orch-node:pdock-full"}}});
        let resp = http.post(&format!("{}/v2/apps", apis[0]), &boxed).await;
        assert_eq!(resp.status, 201, "{}", resp.body);
        wait_running(&http, &apis, "boxed", 1, Duration::from_secs(120)).await;
        let filters: HashMap<&str, Vec<String>> =
            [("label", vec!["orch.task-id".to_owned()])].into();
        let tasks = docker
            .list_containers(Some(
                ListContainersOptionsBuilder::default()
                    .filters(&filters)
                    .build(),
            ))
            .await
            .expect("list task containers");
        let mut volumes = Vec::new();
        for agent in ["agent-1", "agent-2"] {
            let volume = docker
                .inspect_volume(&format!("orch-pdock-full-{agent}"))
                .await
                .expect("agent volume");
            volumes.push(volume.mountpoint);
        }
        let sandbox = tasks
            .iter()
            .filter_map(|t| t.labels.as_ref()?.get("orch.sandbox").cloned())
            .find(|s| s.contains("/sandboxes/boxed."))
            .expect("the task container carries its sandbox");
        assert!(
            volumes.iter().any(|v| sandbox.starts_with(v.as_str())),
            "{sandbox} lies in an agent volume ({volumes:?})"
        );


        // A re-run changes nothing.
        let names: Vec<String> = ["master-1", "master-2", "master-3", "agent-1", "agent-2"]
            .iter()
            .map(|m| format!("orch-pdock-full-{m}"))
            .collect();
        let before = container_ids(&docker, &names).await;
        let out = cluster.ok(&["up"]).await;
        assert!(out.contains("0 started, 0 restarted, 5 unchanged"), "{out}");
        assert!(out.contains("image orch-node:pdock-full: current"), "{out}");
        assert_eq!(container_ids(&docker, &names).await, before);
        let plan = cluster.ok(&["up", "--plan"]).await;
        assert!(plan.contains("orch-pdock-full-master-2 running as specified"), "{plan}");

        // Kill the leader's container: the others elect a new leader and keep working.
        let old = leader(&http, &apis).await.expect("a leader");
        let index = apis
            .iter()
            .position(|a| a.ends_with(&old))
            .expect("the leader is a master");
        let killed = &names[index];
        docker
            .kill_container(killed, Some(KillContainerOptionsBuilder::default().signal("SIGKILL").build()))
            .await
            .expect("kill the leader");
        let others: Vec<String> = apis
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != index)
            .map(|(_, a)| a.clone())
            .collect();
        let new = eventually("a new leader", Duration::from_secs(60), || async {
            leader(&http, &others).await.filter(|l| *l != old)
        })
        .await;
        let new_api = format!("https://{new}");
        eventually("scaled to 3", Duration::from_secs(90), || async {
            let resp = http
                .send(
                    reqwest::Method::PUT,
                    &format!("{new_api}/v2/apps/sleeper"),
                    Some(json!({"instances": 3}).to_string()),
                    None,
                )
                .await
                .ok()?;
            if !resp.ok() {
                return None;
            }
            (running_tasks(&http, &others, "sleeper").await == 3).then_some(())
        })
        .await;

        // `orch up` repairs the killed master.
        let out = cluster.ok(&["up"]).await;
        assert!(out.contains("1 started, 0 restarted, 4 unchanged"), "{out}");
        let repaired = container_ids(&docker, std::slice::from_ref(killed)).await;
        assert_eq!(repaired[0].1, "running");

        // The repaired master may answer before it has caught up: ask until one knows the
        // agents. `orch status` needs no -f where `orch up` ran.
        let status = eventually("status with agents", Duration::from_secs(60), || async {
            let out = cluster.bare(&["status"]).await;
            let status = String::from_utf8_lossy(&out.stdout).into_owned();
            (out.status.success() && !status.contains("agents  unknown")).then_some(status)
        })
        .await;
        // Client commands too: master, CA and token from .orch/.
        let listed = cluster.bare(&["app", "list"]).await;
        assert!(
            listed.status.success() && String::from_utf8_lossy(&listed.stdout).contains("/sleeper"),
            "{}",
            describe_output(&listed)
        );
        assert!(status.contains("): up"), "{status}");
        for machine in ["master-1", "master-3", "agent-2"] {
            assert!(status.contains(machine), "{status}");
        }
        assert!(status.contains("leader  172.30.231."), "{status}");
        assert!(status.contains("agents  2 registered, 2 reachable"), "{status}");
        assert_eq!(status.matches("running").count(), 5, "{status}");

        let out = cluster.bare(&["destroy", "--yes"]).await;
        assert!(out.status.success(), "{}", describe_output(&out));
        let out = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.contains("network orch-pdock-full"), "{out}");
        assert!(out.contains("image orch-node:pdock-full"), "{out}");
        assert!(out.contains("task container orch-boxed."), "{out}");
        assert_eq!(leftovers(&docker, "pdock-full").await, Vec::<String>::new());
        assert!(!cluster.state_file().exists());
        assert!(docker.inspect_image("orch-node:pdock-full").await.is_err());
    })
    .await
    .expect("test within 15 minutes");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failure_at_any_step_is_repaired_by_up_or_removed_by_destroy() {
    let Some(docker) = engine().await else {
        eprintln!("no Docker engine: nothing to test");
        return;
    };
    const STEPS: [&str; 10] = [
        "machines",
        "wait-ssh",
        "upload",
        "render",
        "start-masters",
        "wait-leader",
        "start-agents",
        "wait-agents",
        "gitops",
        "endpoints",
    ];
    tokio::time::timeout(Duration::from_secs(1200), async {
        let image = "orch-node:pdock-shared";
        // A first cluster builds the shared image (and stops after the machines step);
        // the image is its, so the failing cluster's destroys leave it for the next round.
        let seed = DockerCluster::new(
            "pdock-seed",
            &format!("docker:\n  subnet: 172.30.233.0/24\n  image: {image}\n"),
        );
        let out = seed.orch(&["up"], &[("ORCH_FAIL_AT", "wait-ssh")]).await;
        assert!(!out.status.success(), "{}", describe_output(&out));
        let id = docker.inspect_image(image).await.expect("image built").id;

        let body = format!("docker:\n  subnet: 172.30.232.0/24\n  image: {image}\n");
        for (round, step) in STEPS.iter().enumerate() {
            let cluster = DockerCluster::new("pdock-fail", &body);
            let out = cluster.orch(&["up"], &[("ORCH_FAIL_AT", step)]).await;
            let text = describe_output(&out);
            assert!(!out.status.success(), "{step}: {text}");
            assert!(
                text.contains(&format!("failure injected at step {step}")),
                "{step}: {text}"
            );
            if round % 2 == 0 {
                let out = cluster.ok(&["up"]).await;
                assert!(out.contains("is up in"), "{step}: {out}");
                assert!(out.contains("current (binary unchanged)"), "{step}: {out}");
            }
            cluster.ok(&["destroy", "--yes"]).await;
            assert_eq!(
                leftovers(&docker, "pdock-fail").await,
                Vec::<String>::new(),
                "after a failure at {step}"
            );
            assert!(!cluster.state_file().exists(), "{step}");
            assert_eq!(
                docker.inspect_image(image).await.expect("image kept").id,
                id,
                "the shared image is reused, not rebuilt"
            );
        }
        seed.ok(&["destroy", "--yes"]).await;
        assert_eq!(leftovers(&docker, "pdock-seed").await, Vec::<String>::new());
        assert!(
            docker.inspect_image(image).await.is_err(),
            "the seed's image is gone"
        );
    })
    .await
    .expect("test within 20 minutes");
}

//! Agents end to end: real `orch master` and `orch agent` processes running real process
//! tasks: Marathon's environment and sandboxes, agent restarts that keep tasks, agent loss
//! and replacement, status updates across a leader change, and the sandbox file API.

mod support;

use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use support::Cluster;

const RESOURCES: &str = "cpus:4;mem:4096;disk:1000;ports:[31000-31100]";

fn agent_flags() -> Vec<&'static str> {
    vec!["--resources", RESOURCES, "--containerizers", "mesos"]
}

/// The tasks of `app` (`GET /v2/tasks` on master `i`, filtered by app id).
async fn tasks_of(cluster: &Cluster, i: usize, app: &str) -> Vec<Value> {
    let r = cluster
        .http
        .get(&format!("{}/v2/tasks", cluster.url(i)))
        .await;
    if r.status != 200 {
        return Vec::new();
    }
    r.json()["tasks"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|task| task["appId"] == json!(app))
        .collect()
}

/// Waits until `app` has exactly `n` tasks and all are TASK_RUNNING; returns them.
async fn wait_running(
    cluster: &Cluster,
    i: usize,
    app: &str,
    n: usize,
    timeout: Duration,
) -> Vec<Value> {
    let deadline = Instant::now() + timeout;
    loop {
        let tasks = tasks_of(cluster, i, app).await;
        if tasks.len() == n && tasks.iter().all(|t| t["state"] == json!("TASK_RUNNING")) {
            return tasks;
        }
        assert!(
            Instant::now() < deadline,
            "{app}: want {n} running tasks within {timeout:?}, have {tasks:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The sandbox of `task` on agent `agent`.
fn sandbox(cluster: &Cluster, agent: usize, task: &Value) -> PathBuf {
    let id = task["id"].as_str().expect("task id");
    cluster.agents[agent].data_dir.join("sandboxes").join(id)
}

/// Waits for `path` to exist and have content; returns it.
async fn read_when_ready(path: &PathBuf, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(text) = std::fs::read_to_string(path) {
            if !text.is_empty() {
                return text;
            }
        }
        assert!(
            Instant::now() < deadline,
            "{} not written within {timeout:?}",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| !stat.contains(") Z "))
        .unwrap_or(false)
}

async fn wait_dead(pid: u32, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while alive(pid) {
        assert!(
            Instant::now() < deadline,
            "process {pid} still alive after {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn agent_of(cluster: &Cluster, task: &Value) -> usize {
    let host = task["host"].as_str().expect("host");
    cluster
        .agents
        .iter()
        .position(|agent| agent.name == host)
        .expect("task host is one of our agents")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_task_gets_marathon_environment_ports_and_sandbox() {
    let mut cluster = Cluster::start(1, &[]);
    cluster.add_agent(&agent_flags());
    cluster.wait_for_agents(0, 1, Duration::from_secs(15)).await;
    let app = json!({
        "id": "/env-app",
        "cmd": "env > env.txt; echo hello-out; echo hello-err >&2; exec sleep 1000",
        "cpus": 0.1, "mem": 32,
        "portDefinitions": [{"port": 0, "name": "http"}],
        "labels": {"team": "blue"},
        "env": {"EXTRA": "yes"}
    });
    let r = cluster
        .http
        .post(&format!("{}/v2/apps", cluster.url(0)), &app)
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let tasks = wait_running(&cluster, 0, "/env-app", 1, Duration::from_secs(15)).await;
    let task = &tasks[0];
    let port = task["ports"][0].as_u64().expect("a host port");
    assert!(
        (31000..=31100).contains(&port),
        "port {port} from the agent's range"
    );
    let env = read_when_ready(
        &sandbox(&cluster, 0, task).join("env.txt"),
        Duration::from_secs(5),
    )
    .await;
    for want in [
        format!("PORT0={port}"),
        format!("PORT={port}"),
        format!("PORTS={port}"),
        format!("PORT_HTTP={port}"),
        format!("MESOS_TASK_ID={}", task["id"].as_str().unwrap_or_default()),
        "MARATHON_APP_ID=/env-app".to_string(),
        "MARATHON_APP_LABEL_TEAM=blue".to_string(),
        "MARATHON_APP_RESOURCE_CPUS=0.1".to_string(),
        "HOST=agent-1".to_string(),
        "EXTRA=yes".to_string(),
    ] {
        assert!(
            env.lines().any(|line| line == want),
            "{want} missing from:\n{env}"
        );
    }

    // The sandbox through the agent's Mesos-compatible file API.
    let agent = cluster.agents[0].url();
    let dir = sandbox(&cluster, 0, task);
    let stdout = dir.join("stdout").display().to_string();
    let r = cluster
        .http
        .get(&format!(
            "{agent}/files/read?path={stdout}&offset=0&length=4096"
        ))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.json()["data"]
            .as_str()
            .unwrap_or_default()
            .contains("hello-out"),
        "{}",
        r.body
    );
    let r = cluster
        .http
        .get(&format!("{agent}/files/read?path={stdout}&offset=-1"))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.json()["offset"].as_u64().unwrap_or(0) >= "hello-out\n".len() as u64,
        "{}",
        r.body
    );
    let r = cluster
        .http
        .get(&format!("{agent}/files/browse?path={}", dir.display()))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let names: Vec<String> = r
        .json()
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter_map(|f| f["path"].as_str().map(str::to_owned))
        .collect();
    assert!(names.iter().any(|p| p.ends_with("/stderr")), "{names:?}");
    for escape in [
        format!("{}/../../../../etc/passwd", dir.display()),
        "/etc/passwd".to_string(),
    ] {
        let r = cluster
            .http
            .get(&format!(
                "{agent}/files/read?path={escape}&offset=0&length=100"
            ))
            .await;
        assert!(
            r.status == 403 || r.status == 404,
            "{escape}: {} {}",
            r.status,
            r.body
        );
        assert!(!r.body.contains("root:"), "{escape} leaked /etc/passwd");
    }

    // Agents and the Mesos views count the task and its resources.
    let r = cluster
        .http
        .get(&format!("{}/v1/agents", cluster.url(0)))
        .await;
    let agents = r.json()["agents"].clone();
    assert_eq!(agents[0]["tasks"], json!(1), "{agents}");
    assert_eq!(agents[0]["used"]["cpus"], json!(0.1), "{agents}");
    assert_eq!(agents[0]["hostname"], json!("agent-1"), "{agents}");
    let r = cluster
        .http
        .get(&format!("{}/master/slaves", cluster.url(0)))
        .await;
    assert_eq!(
        r.json()["slaves"][0]["resources"]["ports"],
        json!("[31000-31100]"),
        "{}",
        r.body
    );
    let r = cluster
        .http
        .get(&format!("{}/master/state", cluster.url(0)))
        .await;
    let state = r.json();
    assert_eq!(state["frameworks"][0]["name"], json!("marathon"), "{state}");
    assert_eq!(
        state["frameworks"][0]["tasks"][0]["state"],
        json!("TASK_RUNNING"),
        "{state}"
    );

    // Deleting the app kills the task.
    let r = cluster
        .http
        .delete(&format!("{}/v2/apps/env-app", cluster.url(0)))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !tasks_of(&cluster, 0, "/env-app").await.is_empty() {
        assert!(
            Instant::now() < deadline,
            "task not killed after the app was deleted"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_restart_keeps_tasks_and_reports_what_ended_meanwhile() {
    // A long agent timeout: this test is about restarts, not about loss.
    let mut cluster = Cluster::start(1, &["--agent-timeout", "60s"]);
    cluster.add_agent(&agent_flags());
    cluster.wait_for_agents(0, 1, Duration::from_secs(15)).await;
    let master = cluster.url(0);
    let long =
        json!({"id": "/long", "cmd": "echo $$ > pid; exec sleep 1000", "cpus": 0.1, "mem": 16});
    let short = json!({"id": "/short", "cmd": "echo $$ > pid; sleep 3; exit 7", "cpus": 0.1, "mem": 16, "backoffSeconds": 60});
    for app in [&long, &short] {
        let r = cluster.http.post(&format!("{master}/v2/apps"), app).await;
        assert_eq!(r.status, 201, "{}", r.body);
    }
    let long_task = wait_running(&cluster, 0, "/long", 1, Duration::from_secs(15))
        .await
        .remove(0);
    let short_task = wait_running(&cluster, 0, "/short", 1, Duration::from_secs(15))
        .await
        .remove(0);
    let work_dir = cluster.agents[0].data_dir.clone();
    let pid_of = |task: &Value| -> u32 {
        let id = task["id"].as_str().unwrap_or_default();
        let path = work_dir.join("sandboxes").join(id).join("pid");
        std::fs::read_to_string(&path)
            .ok()
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or(0)
    };
    read_when_ready(
        &sandbox(&cluster, 0, &long_task).join("pid"),
        Duration::from_secs(5),
    )
    .await;
    let long_pid = pid_of(&long_task);
    assert!(alive(long_pid));

    cluster.agents[0].kill9();
    // The short task exits with 7 while its agent is down.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(alive(long_pid), "the task must outlive its agent");
    cluster.agents[0].restart();

    // The short task's end is reported with its real exit status...
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let r = cluster.http.get(&format!("{master}/v2/apps/short")).await;
        let failure = r.json()["app"]["lastTaskFailure"].clone();
        if failure["taskId"] == short_task["id"] {
            assert_eq!(failure["state"], json!("TASK_FAILED"), "{failure}");
            assert!(
                failure["message"]
                    .as_str()
                    .unwrap_or_default()
                    .contains('7'),
                "{failure}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the exit of {} was not reported: {}",
            short_task["id"],
            r.body
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // ...and the long one kept running, same task, same process.
    let again = wait_running(&cluster, 0, "/long", 1, Duration::from_secs(10))
        .await
        .remove(0);
    assert_eq!(again["id"], long_task["id"]);
    assert_eq!(pid_of(&again), long_pid);
    assert!(alive(long_pid));

    // The re-attached task is still under control: scaling to 0 kills it.
    let r = cluster
        .http
        .put(&format!("{master}/v2/apps/long"), &json!({"instances": 0}))
        .await;
    assert!(r.ok(), "{}", r.body);
    wait_dead(long_pid, Duration::from_secs(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_agent_tasks_are_replaced_and_killed_when_it_returns() {
    let mut cluster = Cluster::start(1, &[]);
    cluster.add_agent(&agent_flags());
    cluster.add_agent(&agent_flags());
    cluster.wait_for_agents(0, 2, Duration::from_secs(15)).await;
    let master = cluster.url(0);
    let app =
        json!({"id": "/survivor", "cmd": "echo $$ > pid; exec sleep 1000", "cpus": 0.1, "mem": 16});
    let r = cluster.http.post(&format!("{master}/v2/apps"), &app).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let first = wait_running(&cluster, 0, "/survivor", 1, Duration::from_secs(15))
        .await
        .remove(0);
    let lost = agent_of(&cluster, &first);
    read_when_ready(
        &sandbox(&cluster, lost, &first).join("pid"),
        Duration::from_secs(5),
    )
    .await;
    let old_pid: u32 = std::fs::read_to_string(sandbox(&cluster, lost, &first).join("pid"))
        .ok()
        .and_then(|p| p.trim().parse().ok())
        .expect("pid file");

    let killed_at = Instant::now();
    cluster.agents[lost].kill9();
    let deadline = killed_at + Duration::from_secs(5 + 2);
    let replacement = loop {
        let tasks = tasks_of(&cluster, 0, "/survivor").await;
        if let Some(task) = tasks
            .iter()
            .find(|t| t["state"] == json!("TASK_RUNNING") && t["id"] != first["id"])
        {
            break task.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no replacement within agent-timeout + 2 s: {tasks:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_ne!(agent_of(&cluster, &replacement), lost);
    eprintln!("replacement running after {:?}", killed_at.elapsed());

    // The lost agent comes back: the replaced task is killed; one instance remains.
    assert!(
        alive(old_pid),
        "the old task ran on while its agent was away"
    );
    cluster.agents[lost].restart();
    wait_dead(old_pid, Duration::from_secs(15)).await;
    let tasks = wait_running(&cluster, 0, "/survivor", 1, Duration::from_secs(10)).await;
    assert_eq!(tasks[0]["id"], replacement["id"]);
    cluster.wait_for_agents(0, 2, Duration::from_secs(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_updates_survive_a_leader_change() {
    let mut cluster = Cluster::start(3, &["--agent-timeout", "30s"]);
    let leader = cluster.wait_for_leader(Duration::from_secs(15)).await;
    cluster.add_agent(&agent_flags());
    cluster
        .wait_for_agents(leader, 1, Duration::from_secs(15))
        .await;
    let app = json!({"id": "/steady", "cmd": "echo $$ > pid; exec sleep 1000", "cpus": 0.1, "mem": 16, "instances": 2, "backoffSeconds": 60});
    let r = cluster
        .http
        .post(&format!("{}/v2/apps", cluster.url(leader)), &app)
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let tasks = wait_running(&cluster, leader, "/steady", 2, Duration::from_secs(15)).await;
    let victim = &tasks[0];
    read_when_ready(
        &sandbox(&cluster, 0, victim).join("pid"),
        Duration::from_secs(5),
    )
    .await;
    let victim_pid: u32 = std::fs::read_to_string(sandbox(&cluster, 0, victim).join("pid"))
        .ok()
        .and_then(|p| p.trim().parse().ok())
        .expect("pid file");

    // The leader dies; while no leader is known the task fails: the agent must keep the
    // update until a new leader acknowledges it.
    cluster.masters[leader].kill9();
    support::send_signal(victim_pid, "KILL");
    let new_leader = cluster.wait_for_leader(Duration::from_secs(15)).await;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let r = cluster
            .http
            .get(&format!("{}/v2/apps/steady", cluster.url(new_leader)))
            .await;
        let failure = r.json()["app"]["lastTaskFailure"].clone();
        if failure["taskId"] == victim["id"] {
            assert_eq!(failure["state"], json!("TASK_FAILED"), "{failure}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the failure of {} was lost: {}",
            victim["id"],
            r.body
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The failed task is gone and never comes back; the other one is untouched.
    let after = tasks_of(&cluster, new_leader, "/steady").await;
    assert!(after.iter().all(|t| t["id"] != victim["id"]), "{after:#?}");
    assert!(
        after
            .iter()
            .any(|t| t["id"] == tasks[1]["id"] && t["state"] == json!("TASK_RUNNING")),
        "{after:#?}"
    );
    // Every update the agent issued is stored, each once: the master's count of applied
    // sequence numbers reaches what the agent issued, and the agent has no unacknowledged one.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = cluster
            .http
            .get(&format!("{}/v1/agents", cluster.url(new_leader)))
            .await;
        let applied = r.json()["agents"][0]["statusSeq"]
            .as_u64()
            .expect("statusSeq");
        let r = cluster
            .http
            .get(&format!("{}/state", cluster.agents[0].url()))
            .await;
        let (issued, acked) = (
            r.json()["last_seq"].as_u64(),
            r.json()["acked_seq"].as_u64(),
        );
        if Some(applied) == issued && acked == issued {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "master applied through {applied}, agent issued {issued:?}, acknowledged {acked:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

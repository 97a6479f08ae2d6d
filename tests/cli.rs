//! The client commands against a real master and agent: `orch app`, `orch task` (logs
//! through the agent's sandbox API), `orch node list`, `orch deployment list`, tables and
//! `-o json`.

mod support;

use serde_json::{json, Value};
use std::time::{Duration, Instant};
use support::{describe_output, run_orch, Cluster};

async fn orch(master: &str, args: &[&str]) -> String {
    let mut all = vec!["--master", master];
    all.extend_from_slice(args);
    let out = run_orch(&all, Duration::from_secs(30)).await;
    assert!(
        out.status.success(),
        "orch {}: {}",
        args.join(" "),
        describe_output(&out)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_commands_manage_apps_tasks_and_show_nodes() {
    let mut cluster = Cluster::start(1, &[]);
    cluster.add_agent(&[
        "--resources",
        "cpus:2;mem:1024;disk:100;ports:[31000-31010]",
        "--containerizers",
        "mesos",
    ]);
    cluster.wait_for_agents(0, 1, Duration::from_secs(15)).await;
    let master = cluster.url(0);
    let file = cluster.dir().join("app.yaml");
    std::fs::write(
        &file,
        "id: /cli-app\ncmd: echo from-the-sandbox; exec sleep 1000\ncpus: 0.1\nmem: 16\n",
    )
    .expect("write app file");
    let added = orch(&master, &["app", "add", file.to_str().unwrap_or_default()]).await;
    assert!(added.contains("created /cli-app"), "{added}");

    let deadline = Instant::now() + Duration::from_secs(15);
    let task = loop {
        let listed: Value =
            serde_json::from_str(&orch(&master, &["-o", "json", "task", "list", "/cli-app"]).await)
                .expect("json");
        if let Some(task) = listed["tasks"]
            .as_array()
            .and_then(|t| t.first())
            .filter(|t| t["state"] == json!("TASK_RUNNING"))
        {
            break task.clone();
        }
        assert!(Instant::now() < deadline, "no running task: {listed}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let task_id = task["id"].as_str().expect("task id").to_owned();
    let table = orch(&master, &["task", "list"]).await;
    assert!(
        table.starts_with("ID") && table.contains(&task_id) && table.contains("TASK_RUNNING"),
        "{table}"
    );

    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let logs = orch(&master, &["task", "logs", &task_id]).await;
        if logs.contains("from-the-sandbox") {
            break;
        }
        assert!(Instant::now() < deadline, "stdout not readable: {logs:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let nodes = orch(&master, &["node", "list"]).await;
    assert!(
        nodes.contains("agent-1") && nodes.contains("0.1/2"),
        "{nodes}"
    );
    let apps = orch(&master, &["app", "list"]).await;
    assert!(apps.contains("/cli-app"), "{apps}");
    let show = orch(&master, &["app", "show", "/cli-app"]).await;
    assert!(show.contains(&task_id), "{show}");

    let scaled = orch(&master, &["app", "scale", "/cli-app", "2"]).await;
    assert!(scaled.contains("deployment"), "{scaled}");
    let deployments = orch(&master, &["-o", "json", "deployment", "list"]).await;
    assert!(
        serde_json::from_str::<Value>(&deployments).is_ok(),
        "{deployments}"
    );
    let versions = orch(&master, &["app", "versions", "/cli-app"]).await;
    assert_eq!(versions.lines().count(), 2, "{versions}");

    // Groups from a file; an unknown embed is ignored, as Marathon does.
    let group = cluster.dir().join("group.json");
    std::fs::write(
        &group,
        r#"{"id": "/team", "apps": [{"id": "/team/worker", "cmd": "sleep 1000", "cpus": 0.1, "mem": 16, "instances": 0}]}"#,
    )
    .expect("write group file");
    let added = orch(
        &master,
        &["group", "add", group.to_str().unwrap_or_default()],
    )
    .await;
    assert!(added.contains("/team: deployment"), "{added}");
    let groups = orch(&master, &["group", "list"]).await;
    assert!(
        groups.contains("/team") && groups.contains("/team/worker"),
        "{groups}"
    );
    let r = cluster
        .http
        .get(&format!("{master}/v2/apps?embed=apps.nonsense"))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let removed = orch(&master, &["group", "remove", "/team"]).await;
    assert!(removed.contains("deployment"), "{removed}");

    let killed = orch(&master, &["task", "kill", &task_id]).await;
    assert!(killed.contains("killing"), "{killed}");
    let removed = orch(&master, &["app", "remove", "/cli-app"]).await;
    assert!(removed.contains("deployment"), "{removed}");
    let args = ["--master", master.as_str(), "app", "show", "/cli-app"];
    let out = run_orch(&args, Duration::from_secs(30)).await;
    assert!(!out.status.success(), "show of a deleted app must fail");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("does not exist"),
        "{}",
        describe_output(&out)
    );
}

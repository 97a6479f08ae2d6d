//! Health checks run by agents, end to end: results in the task JSON, a task that starts
//! failing its HTTP check is killed and replaced, COMMAND and TCP checks, and a deployment
//! that waits for health (a never-healthy version leaves the old one serving).

mod support;

use serde_json::{json, Value};
use std::time::{Duration, Instant};
use support::Cluster;

async fn start() -> Cluster {
    let mut cluster = Cluster::start(1, &[]);
    cluster.add_agent(&[
        "--resources",
        "cpus:4;mem:4096;disk:100;ports:[31000-31100]",
        "--containerizers",
        "mesos",
    ]);
    cluster.wait_for_agents(0, 1, Duration::from_secs(15)).await;
    cluster
}

async fn tasks(cluster: &Cluster, app: &str) -> Vec<Value> {
    let url = format!("{}/v2/apps/{app}/tasks", cluster.url(0));
    match cluster
        .http
        .send(reqwest::Method::GET, &url, None, None)
        .await
    {
        Ok(r) if r.status == 200 => r.json()["tasks"].as_array().cloned().unwrap_or_default(),
        _ => Vec::new(),
    }
}

/// Waits until `check` holds for the app's tasks; returns them.
async fn wait_for(
    cluster: &Cluster,
    app: &str,
    what: &str,
    timeout: Duration,
    check: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = Instant::now() + timeout;
    loop {
        let tasks = tasks(cluster, app).await;
        if check(&tasks) {
            return tasks;
        }
        assert!(
            Instant::now() < deadline,
            "{app}: {what} within {timeout:?}: {tasks:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn alive(task: &Value) -> Option<bool> {
    let results = task["healthCheckResults"].as_array()?;
    if results.is_empty() {
        return None;
    }
    Some(results.iter().all(|r| r["alive"] == json!(true)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_failing_its_http_check_is_replaced() {
    let cluster = start().await;
    let app = json!({
        "id": "/web", "cpus": 0.1, "mem": 64,
        "cmd": "touch ok && exec python3 -m http.server $PORT0 --bind 127.0.0.1",
        "healthChecks": [{"protocol": "HTTP", "path": "/ok", "portIndex": 0, "gracePeriodSeconds": 10,
                          "intervalSeconds": 1, "timeoutSeconds": 1, "maxConsecutiveFailures": 2}]
    });
    let r = cluster
        .http
        .post(&format!("{}/v2/apps", cluster.url(0)), &app)
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let healthy = wait_for(
        &cluster,
        "web",
        "a healthy task",
        Duration::from_secs(20),
        |t| t.len() == 1 && alive(&t[0]) == Some(true),
    )
    .await;
    let first = healthy[0]["id"].as_str().expect("id").to_owned();
    let result = &healthy[0]["healthCheckResults"][0];
    assert!(
        result["firstSuccess"].is_string() && result["consecutiveFailures"] == json!(0),
        "{result}"
    );
    let app_json = cluster
        .http
        .get(&format!("{}/v2/apps/web", cluster.url(0)))
        .await
        .json();
    assert_eq!(app_json["app"]["tasksHealthy"], json!(1), "{app_json}");

    // The check starts failing (404): after 2 failures the task is killed and replaced.
    let sandbox = cluster.agents[0].data_dir.join("sandboxes").join(&first);
    std::fs::remove_file(sandbox.join("ok")).expect("remove the health file");
    wait_for(
        &cluster,
        "web",
        "a healthy replacement",
        Duration::from_secs(30),
        |t| t.len() == 1 && t[0]["id"] != json!(first) && alive(&t[0]) == Some(true),
    )
    .await;
    let app_json = cluster
        .http
        .get(&format!("{}/v2/apps/web", cluster.url(0)))
        .await
        .json();
    let failure = &app_json["app"]["lastTaskFailure"];
    assert!(
        failure.is_null() || failure["taskId"] != json!(first),
        "a health kill is not a failure: {failure}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn command_and_tcp_checks_report_health() {
    let cluster = start().await;
    let master = cluster.url(0);
    let command = json!({
        "id": "/cmd", "cpus": 0.1, "mem": 16, "cmd": "touch healthy; exec sleep 1000",
        "healthChecks": [{"protocol": "COMMAND", "command": {"value": "test -f healthy"},
                          "gracePeriodSeconds": 5, "intervalSeconds": 1, "timeoutSeconds": 2, "maxConsecutiveFailures": 0}]
    });
    let tcp = json!({
        "id": "/tcp", "cpus": 0.1, "mem": 64, "cmd": "exec python3 -m http.server $PORT0 --bind 127.0.0.1",
        "healthChecks": [{"protocol": "TCP", "portIndex": 0, "gracePeriodSeconds": 5, "intervalSeconds": 1, "timeoutSeconds": 1}]
    });
    for app in [&command, &tcp] {
        let r = cluster.http.post(&format!("{master}/v2/apps"), app).await;
        assert_eq!(r.status, 201, "{}", r.body);
    }
    for id in ["cmd", "tcp"] {
        wait_for(
            &cluster,
            id,
            "a healthy task",
            Duration::from_secs(20),
            |t| t.len() == 1 && alive(&t[0]) == Some(true),
        )
        .await;
    }
    // The COMMAND check turns unhealthy when its file goes; with no failure limit the task
    // stays, unhealthy.
    let task = tasks(&cluster, "cmd").await.remove(0);
    let id = task["id"].as_str().expect("id");
    let sandbox = cluster.agents[0].data_dir.join("sandboxes").join(id);
    std::fs::remove_file(sandbox.join("healthy")).expect("remove");
    let unhealthy = wait_for(
        &cluster,
        "cmd",
        "an unhealthy task",
        Duration::from_secs(15),
        |t| t.len() == 1 && alive(&t[0]) == Some(false),
    )
    .await;
    assert_eq!(unhealthy[0]["id"], task["id"]);
    assert!(
        unhealthy[0]["healthCheckResults"][0]["lastFailureCause"].is_string(),
        "{unhealthy:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_never_healthy_version_leaves_the_old_one_serving() {
    let cluster = start().await;
    let master = cluster.url(0);
    let app = json!({
        "id": "/steady", "cpus": 0.1, "mem": 16, "instances": 2, "cmd": "touch healthy; exec sleep 1000",
        "healthChecks": [{"protocol": "COMMAND", "command": {"value": "test -f healthy"},
                          "gracePeriodSeconds": 30, "intervalSeconds": 1, "timeoutSeconds": 2, "maxConsecutiveFailures": 0}]
    });
    let r = cluster.http.post(&format!("{master}/v2/apps"), &app).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let old = wait_for(
        &cluster,
        "steady",
        "2 healthy tasks",
        Duration::from_secs(20),
        |t| t.len() == 2 && t.iter().all(|t| alive(t) == Some(true)),
    )
    .await;
    // The deployment of the first version finished only once both were healthy.
    let deployments = cluster
        .http
        .get(&format!("{master}/v2/deployments"))
        .await
        .json();
    assert_eq!(deployments, json!([]));

    // A version whose tasks run but never pass their check.
    let r = cluster
        .http
        .put(
            &format!("{master}/v2/apps/steady"),
            &json!({"cmd": "exec sleep 1001"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    tokio::time::sleep(Duration::from_secs(5)).await;
    let now = tasks(&cluster, "steady").await;
    for task in &old {
        assert!(
            now.iter()
                .any(|t| t["id"] == task["id"] && t["state"] == json!("TASK_RUNNING")),
            "old task gone: {now:#?}"
        );
    }
    let deployments = cluster
        .http
        .get(&format!("{master}/v2/deployments"))
        .await
        .json();
    assert_eq!(
        deployments.as_array().map(Vec::len),
        Some(1),
        "{deployments}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployments_wait_for_readiness_checks() {
    let cluster = start().await;
    let master = cluster.url(0);
    let app = json!({
        "id": "/ready", "cpus": 0.1, "mem": 64, "instances": 2,
        "cmd": "exec python3 -m http.server $PORT0 --bind 127.0.0.1",
        "portDefinitions": [{"port": 0, "name": "http"}],
        "readinessChecks": [{"name": "ready", "protocol": "HTTP", "path": "/ready", "portName": "http",
                             "intervalSeconds": 2, "timeoutSeconds": 1, "httpStatusCodesForReady": [200]}]
    });
    let r = cluster.http.post(&format!("{master}/v2/apps"), &app).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let running = wait_for(
        &cluster,
        "ready",
        "2 running tasks",
        Duration::from_secs(20),
        |t| t.len() == 2 && t.iter().all(|t| t["state"] == json!("TASK_RUNNING")),
    )
    .await;
    // Running but not ready (404 on /ready): the deployment waits and says why.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let deployments = cluster
            .http
            .get(&format!("{master}/v2/deployments"))
            .await
            .json();
        assert_eq!(
            deployments.as_array().map(Vec::len),
            Some(1),
            "{deployments}"
        );
        let results = deployments[0]["currentActions"][0]["readinessCheckResults"].clone();
        let seen = results.as_array().is_some_and(|r| {
            r.len() == 2
                && r.iter().all(|r| {
                    r["ready"] == json!(false) && r["lastResponse"]["status"] == json!(404)
                })
        });
        if seen {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no readiness results: {deployments}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The tasks turn ready: the deployment finishes.
    for task in &running {
        let sandbox = cluster.agents[0]
            .data_dir
            .join("sandboxes")
            .join(task["id"].as_str().expect("id"));
        std::fs::write(sandbox.join("ready"), "yes").expect("write ready file");
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let deployments = cluster
            .http
            .get(&format!("{master}/v2/deployments"))
            .await
            .json();
        if deployments == json!([]) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "deployment did not finish once ready: {deployments}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let app = cluster
        .http
        .get(&format!("{master}/v2/apps/ready?embed=app.readiness"))
        .await
        .json();
    let results = app["app"]["readinessCheckResults"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(results.len(), 2, "{app}");
    assert!(
        results
            .iter()
            .all(|r| r["ready"] == json!(true) && r["name"] == json!("ready")),
        "{app}"
    );

    // A restart keeps the old tasks until the new ones are ready.
    let old: Vec<Value> = tasks(&cluster, "ready").await;
    let r = cluster
        .http
        .put(
            &format!("{master}/v2/apps/ready"),
            &json!({"cmd": "exec python3 -m http.server $PORT0 --bind 127.0.0.1 --directory ."}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let both = wait_for(
        &cluster,
        "ready",
        "new tasks running beside the old",
        Duration::from_secs(20),
        |t| {
            t.iter()
                .filter(|t| t["state"] == json!("TASK_RUNNING"))
                .count()
                >= 3
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let now = tasks(&cluster, "ready").await;
    for task in &old {
        assert!(
            now.iter().any(|t| t["id"] == task["id"]),
            "an old task went before a new one was ready: {now:#?}"
        );
    }
    let old_ids: Vec<&Value> = old.iter().map(|t| &t["id"]).collect();
    for task in both
        .iter()
        .chain(now.iter())
        .filter(|t| !old_ids.contains(&&t["id"]))
    {
        let sandbox = cluster.agents[0]
            .data_dir
            .join("sandboxes")
            .join(task["id"].as_str().expect("id"));
        let _ = std::fs::write(sandbox.join("ready"), "yes");
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let now = tasks(&cluster, "ready").await;
        let deployments = cluster
            .http
            .get(&format!("{master}/v2/deployments"))
            .await
            .json();
        if deployments == json!([])
            && now.len() == 2
            && now.iter().all(|t| !old_ids.contains(&&t["id"]))
        {
            break;
        }
        // New tasks launched meanwhile get their ready file too.
        for task in now.iter().filter(|t| !old_ids.contains(&&t["id"])) {
            let sandbox = cluster.agents[0]
                .data_dir
                .join("sandboxes")
                .join(task["id"].as_str().expect("id"));
            if sandbox.exists() {
                let _ = std::fs::write(sandbox.join("ready"), "yes");
            }
        }
        assert!(
            Instant::now() < deadline,
            "restart did not finish: {now:#?} {deployments}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

//! Deployments end to end (real masters and agents running process tasks): rolling restarts
//! within Marathon's capacity bounds, a broken version that leaves the old one serving,
//! rollback, locks, and a leader killed in the middle of a deployment.

mod support;

use serde_json::{json, Value};
use std::time::{Duration, Instant};
use support::Cluster;

const RESOURCES: &str = "cpus:8;mem:8192;disk:1000;ports:[31000-31200]";

fn agent_flags() -> Vec<&'static str> {
    vec!["--resources", RESOURCES, "--containerizers", "mesos"]
}

async fn get(cluster: &Cluster, i: usize, path: &str) -> Option<Value> {
    let url = format!("{}{path}", cluster.url(i));
    let r = cluster
        .http
        .send(reqwest::Method::GET, &url, None, None)
        .await
        .ok()?;
    (r.status == 200).then(|| r.json())
}

async fn tasks(cluster: &Cluster, i: usize, app: &str) -> Vec<Value> {
    get(cluster, i, &format!("/v2/apps/{app}/tasks"))
        .await
        .and_then(|v| v["tasks"].as_array().cloned())
        .unwrap_or_default()
}

async fn deployments(cluster: &Cluster, i: usize) -> Option<Vec<Value>> {
    get(cluster, i, "/v2/deployments")
        .await
        .and_then(|v| v.as_array().cloned())
}

/// Waits until `app` runs exactly `n` tasks of `version` and no deployment is left.
async fn wait_settled(
    cluster: &Cluster,
    i: usize,
    app: &str,
    n: usize,
    version: &str,
    timeout: Duration,
) {
    let deadline = Instant::now() + timeout;
    loop {
        let tasks = tasks(cluster, i, app).await;
        let settled = tasks.len() == n
            && tasks
                .iter()
                .all(|t| t["state"] == json!("TASK_RUNNING") && t["version"] == json!(version));
        if settled && deployments(cluster, i).await.is_some_and(|d| d.is_empty()) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{app} did not settle at {n} tasks of {version} within {timeout:?}: {tasks:#?}\ndeployments: {:#?}",
            deployments(cluster, i).await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The app's current version (retried: a busy master may briefly answer 503).
async fn app_version(cluster: &Cluster, i: usize, app: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let version = get(cluster, i, &format!("/v2/apps/{app}"))
            .await
            .and_then(|v| v["app"]["version"].as_str().map(str::to_owned));
        if let Some(version) = version {
            return version;
        }
        assert!(Instant::now() < deadline, "no version of {app}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn start(masters: usize, agents: usize) -> (Cluster, usize) {
    let mut cluster = Cluster::start(masters, &[]);
    let leader = cluster.wait_for_leader(Duration::from_secs(15)).await;
    for _ in 0..agents {
        cluster.add_agent(&agent_flags());
    }
    cluster
        .wait_for_agents(leader, agents, Duration::from_secs(15))
        .await;
    (cluster, leader)
}

/// A rolling restart of 4 instances with `strategy`: at every observed moment the running
/// count stays at or above ceil(4 × minimumHealthCapacity) and the task count at or below
/// floor(4 × (1 + maximumOverCapacity)) (+1 when both bounds meet, as Marathon allows).
async fn restart_within_bounds(min_health: f64, max_over: f64) {
    let (cluster, leader) = start(1, 2).await;
    let app = json!({
        "id": "/roll", "cmd": "sleep 1000", "cpus": 0.01, "mem": 8, "instances": 4,
        "upgradeStrategy": {"minimumHealthCapacity": min_health, "maximumOverCapacity": max_over}
    });
    let r = cluster
        .http
        .post(&format!("{}/v2/apps", cluster.url(leader)), &app)
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let first = app_version(&cluster, leader, "roll").await;
    wait_settled(&cluster, leader, "roll", 4, &first, Duration::from_secs(20)).await;

    // Marathon's bounds for 4 instances: small whole numbers, exact in f64.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let (min_healthy, mut max_capacity) = (
        (4.0 * min_health).ceil() as usize,
        (4.0 * (1.0 + max_over)).floor() as usize,
    );
    if min_healthy == max_capacity {
        max_capacity += 1;
    }
    let r = cluster
        .http
        .put(
            &format!("{}/v2/apps/roll", cluster.url(leader)),
            &json!({"cmd": "sleep 1001"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let second = app_version(&cluster, leader, "roll").await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut observations = 0;
    loop {
        let tasks = tasks(&cluster, leader, "roll").await;
        let running = tasks
            .iter()
            .filter(|t| t["state"] == json!("TASK_RUNNING"))
            .count();
        observations += 1;
        assert!(
            running >= min_healthy,
            "{min_health}/{max_over}: {running} running < {min_healthy}: {tasks:#?}"
        );
        assert!(
            tasks.len() <= max_capacity,
            "{min_health}/{max_over}: {} tasks > {max_capacity}: {tasks:#?}",
            tasks.len()
        );
        let done = tasks.len() == 4
            && tasks
                .iter()
                .all(|t| t["state"] == json!("TASK_RUNNING") && t["version"] == json!(second))
            && deployments(&cluster, leader)
                .await
                .is_some_and(|d| d.is_empty());
        if done {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "restart did not finish: {tasks:#?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(observations > 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_restart_full_health_and_double_capacity() {
    restart_within_bounds(1.0, 1.0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_restart_half_health_no_extra_capacity() {
    restart_within_bounds(0.5, 0.0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_restart_zero_health_no_extra_capacity() {
    restart_within_bounds(0.0, 0.0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_restart_full_health_no_extra_capacity() {
    restart_within_bounds(1.0, 0.0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_version_keeps_the_old_one_serving_until_rolled_back() {
    let (cluster, leader) = start(1, 1).await;
    let master = cluster.url(leader);
    let app = json!({"id": "/keep", "cmd": "sleep 1000", "cpus": 0.01, "mem": 8, "instances": 2, "backoffSeconds": 1});
    let r = cluster.http.post(&format!("{master}/v2/apps"), &app).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let good = app_version(&cluster, leader, "keep").await;
    wait_settled(&cluster, leader, "keep", 2, &good, Duration::from_secs(20)).await;
    let old_ids: Vec<Value> = tasks(&cluster, leader, "keep")
        .await
        .iter()
        .map(|t| t["id"].clone())
        .collect();

    let r = cluster
        .http
        .put(&format!("{master}/v2/apps/keep"), &json!({"cpus": 100}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let deployment = r.json()["deploymentId"]
        .as_str()
        .expect("deploymentId")
        .to_owned();
    // Locked while it runs: a change without force is refused with the deployment named.
    let locked = cluster
        .http
        .put(&format!("{master}/v2/apps/keep"), &json!({"instances": 3}))
        .await;
    assert_eq!(locked.status, 409, "{}", locked.body);
    assert_eq!(locked.json()["deployments"][0]["id"], json!(deployment));

    tokio::time::sleep(Duration::from_secs(3)).await;
    let now: Vec<Value> = tasks(&cluster, leader, "keep").await;
    for id in &old_ids {
        assert!(
            now.iter()
                .any(|t| &t["id"] == id && t["state"] == json!("TASK_RUNNING")),
            "old task {id} must keep serving: {now:#?}"
        );
    }
    let running = deployments(&cluster, leader).await.unwrap_or_default();
    assert!(
        running.iter().any(|d| d["id"] == json!(deployment)),
        "{running:#?}"
    );
    // The launch queue says why the new version waits: no agent has room for it.
    let queue = get(&cluster, leader, "/v2/queue").await.expect("queue");
    let item = &queue["queue"][0];
    assert_eq!(item["app"]["id"], json!("/keep"), "{queue}");
    let reasons = item["processedOffersSummary"]["rejectSummaryLastOffers"].clone();
    let cpus = reasons
        .as_array()
        .is_some_and(|r| r.iter().any(|r| r["reason"] == json!("insufficient cpus")));
    assert!(cpus, "{queue}");

    // Rollback: a new deployment restores the old definition.
    let r = cluster
        .http
        .delete(&format!("{master}/v2/deployments/{deployment}"))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.json()["deploymentId"].is_string(), "{}", r.body);
    let restored = get(&cluster, leader, "/v2/apps/keep").await.expect("app");
    assert_eq!(restored["app"]["cpus"], json!(0.01), "{restored}");
    let version = app_version(&cluster, leader, "keep").await;
    wait_settled(
        &cluster,
        leader,
        "keep",
        2,
        &version,
        Duration::from_secs(20),
    )
    .await;
    let r = cluster
        .http
        .delete(&format!("{master}/v2/deployments/{deployment}"))
        .await;
    assert_eq!(r.status, 404, "{}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_leader_completes_a_deployment_the_old_one_started() {
    let (mut cluster, leader) = start(3, 2).await;
    let app = json!({
        "id": "/resume", "cmd": "sleep 1000", "cpus": 0.01, "mem": 8, "instances": 4,
        "upgradeStrategy": {"minimumHealthCapacity": 0.5, "maximumOverCapacity": 0.0}
    });
    let r = cluster
        .http
        .post(&format!("{}/v2/apps", cluster.url(leader)), &app)
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let first = app_version(&cluster, leader, "resume").await;
    wait_settled(
        &cluster,
        leader,
        "resume",
        4,
        &first,
        Duration::from_secs(20),
    )
    .await;
    let r = cluster
        .http
        .put(
            &format!("{}/v2/apps/resume", cluster.url(leader)),
            &json!({"cmd": "sleep 1002"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let second = app_version(&cluster, leader, "resume").await;
    cluster.masters[leader].kill9();
    let new_leader = cluster.wait_for_leader(Duration::from_secs(15)).await;
    wait_settled(
        &cluster,
        new_leader,
        "resume",
        4,
        &second,
        Duration::from_secs(30),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_scale_and_task_kills_through_the_api() {
    let (cluster, leader) = start(1, 1).await;
    let master = cluster.url(leader);
    let app = json!({"id": "/ops", "cmd": "sleep 1000", "cpus": 0.01, "mem": 8, "instances": 2});
    assert_eq!(
        cluster
            .http
            .post(&format!("{master}/v2/apps"), &app)
            .await
            .status,
        201
    );
    let v1 = app_version(&cluster, leader, "ops").await;
    wait_settled(&cluster, leader, "ops", 2, &v1, Duration::from_secs(20)).await;

    // Restart: every task replaced by one of a new version.
    let r = cluster
        .http
        .post(&format!("{master}/v2/apps/ops/restart"), &json!({}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let v2 = app_version(&cluster, leader, "ops").await;
    assert_ne!(v1, v2);
    wait_settled(&cluster, leader, "ops", 2, &v2, Duration::from_secs(20)).await;

    // Kill one task: it is replaced. Kill one with scale: the app shrinks.
    let ids: Vec<String> = tasks(&cluster, leader, "ops")
        .await
        .iter()
        .filter_map(|t| t["id"].as_str().map(str::to_owned))
        .collect();
    let r = cluster
        .http
        .delete(&format!("{master}/v2/apps/ops/tasks/{}", ids[0]))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["task"]["id"], json!(ids[0]));
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let now = tasks(&cluster, leader, "ops").await;
        if now.len() == 2
            && now
                .iter()
                .all(|t| t["id"] != json!(ids[0]) && t["state"] == json!("TASK_RUNNING"))
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "killed task not replaced: {now:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let r = cluster
        .http
        .post(
            &format!("{master}/v2/tasks/delete?scale=true"),
            &json!({"ids": [ids[1]]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.json()["deploymentId"].is_string(), "{}", r.body);
    let app = get(&cluster, leader, "/v2/apps/ops").await.expect("app");
    assert_eq!(app["app"]["instances"], json!(1));
    let deadline = Instant::now() + Duration::from_secs(15);
    while tasks(&cluster, leader, "ops").await.len() != 1 {
        assert!(
            Instant::now() < deadline,
            "scale-down by kill did not settle"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Unknown task: 404 with Marathon's message; unparsable id: 400.
    let r = cluster
        .http
        .delete(&format!(
            "{master}/v2/apps/ops/tasks/ops.instance-nope._app.1"
        ))
        .await;
    assert_eq!(r.status, 404, "{}", r.body);
    let r = cluster
        .http
        .post(
            &format!("{master}/v2/tasks/delete"),
            &json!({"ids": ["bad"]}),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
}

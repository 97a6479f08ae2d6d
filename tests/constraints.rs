//! Placement constraints and accepted resource roles end to end: real `orch master` and
//! `orch agent` processes (mesos containerizer, `sleep` tasks, small resources) with agent
//! attributes. Checks where instances land (`GET /v2/apps/<id>/tasks`) and what
//! `GET /v2/queue` says about instances that cannot be placed.

mod support;

use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use support::Cluster;

/// Small agents: each holds 10 tasks of 0.1 cpus at most.
const RESOURCES: &str = "cpus:1;mem:512;disk:100;ports:[31200-31209]";
const TEST_TIMEOUT: Duration = Duration::from_secs(120);
const WAIT: Duration = Duration::from_secs(30);

/// 1 master; agents with the given `--attributes` (and extra flags), all registered.
async fn cluster_with(agents: &[(&str, &[&str])]) -> Cluster {
    let mut cluster = Cluster::start(1, &[]);
    for (attributes, extra) in agents {
        let mut flags = vec![
            "--resources",
            RESOURCES,
            "--containerizers",
            "mesos",
            "--attributes",
            attributes,
        ];
        flags.extend_from_slice(extra);
        cluster.add_agent(&flags);
    }
    cluster
        .wait_for_agents(0, agents.len(), Duration::from_secs(20))
        .await;
    cluster
}

/// A `sleep` app with no ports.
fn sleeper(id: &str, instances: u32, extra: Value) -> Value {
    let mut app = json!({
        "id": id,
        "cmd": "sleep 1000",
        "cpus": 0.1,
        "mem": 16,
        "instances": instances,
        "portDefinitions": []
    });
    if let (Some(app), Some(extra)) = (app.as_object_mut(), extra.as_object()) {
        app.extend(extra.clone());
    }
    app
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

async fn tasks_of(cluster: &Cluster, app: &str) -> Vec<Value> {
    let r = cluster
        .http
        .get(&format!("{}/v2/apps{app}/tasks", cluster.url(0)))
        .await;
    assert_eq!(r.status, 200, "GET /v2/apps{app}/tasks: {}", r.body);
    r.json()["tasks"].as_array().cloned().unwrap_or_default()
}

/// Waits until `app` has exactly `n` tasks, all TASK_RUNNING; returns how many run on each
/// agent hostname.
async fn wait_running(cluster: &Cluster, app: &str, n: usize) -> BTreeMap<String, usize> {
    let deadline = Instant::now() + WAIT;
    loop {
        let tasks = tasks_of(cluster, app).await;
        if tasks.len() == n && tasks.iter().all(|t| t["state"] == json!("TASK_RUNNING")) {
            let mut per_host = BTreeMap::new();
            for t in &tasks {
                let host = t["host"].as_str().unwrap_or("?").to_owned();
                *per_host.entry(host).or_insert(0) += 1;
            }
            return per_host;
        }
        assert!(
            Instant::now() < deadline,
            "{app}: want {n} TASK_RUNNING tasks within {WAIT:?}, have {tasks:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Asserts that `app` keeps exactly the placement `want` for `for_how_long` (nothing extra
/// gets placed later).
async fn stays(cluster: &Cluster, app: &str, want: &BTreeMap<String, usize>, how_long: Duration) {
    let n = want.values().sum();
    let until = Instant::now() + how_long;
    while Instant::now() < until {
        let have = wait_running(cluster, app, n).await;
        assert_eq!(&have, want, "{app}: placement changed");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Waits until `GET /v2/queue` has an entry for `app` with `count` waiting instances and a
/// reject reason `reason` counted on `declined` agents; returns the entry.
async fn wait_queued(
    cluster: &Cluster,
    app: &str,
    count: u64,
    reason: &str,
    declined: u64,
) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let r = cluster
            .http
            .get(&format!("{}/v2/queue", cluster.url(0)))
            .await;
        assert_eq!(r.status, 200, "GET /v2/queue: {}", r.body);
        let entry = r.json()["queue"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .find(|e| e["app"]["id"] == json!(app));
        if let Some(entry) = entry {
            let reasons = entry["processedOffersSummary"]["rejectSummaryLastOffers"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let matches = reasons
                .iter()
                .any(|x| x["reason"] == json!(reason) && x["declined"] == json!(declined));
            if entry["count"] == json!(count) && matches {
                return entry;
            }
        }
        assert!(
            Instant::now() < deadline,
            "GET /v2/queue: want {app} with count {count} and reason {reason:?} declined on \
             {declined} agents within {WAIT:?}; last answer: {}",
            r.body
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn hosts(pairs: &[(&str, usize)]) -> BTreeMap<String, usize> {
    pairs.iter().map(|(h, n)| ((*h).to_owned(), *n)).collect()
}

/// agent-1 rack r1 zone z1, agent-2 rack r1 zone z2, agent-3 rack r2 (no zone).
const RACKS: [(&str, &[&str]); 3] = [
    ("rack:r1;zone:z1", &[]),
    ("rack:r1;zone:z2", &[]),
    ("rack:r2", &[]),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostname_unique_places_one_per_agent_and_the_queue_says_why() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let cluster = cluster_with(&RACKS).await;
        post_app(
            &cluster,
            &sleeper("/uniq", 4, json!({"constraints": [["hostname", "UNIQUE"]]})),
        )
        .await;
        let placed = wait_running(&cluster, "/uniq", 3).await;
        let want = hosts(&[("agent-1", 1), ("agent-2", 1), ("agent-3", 1)]);
        assert_eq!(placed, want, "hostname:UNIQUE with 4 instances on 3 agents");
        let entry = wait_queued(&cluster, "/uniq", 1, "constraint hostname:UNIQUE", 3).await;
        assert_eq!(
            entry["processedOffersSummary"]["processedOffersCount"],
            json!(3),
            "every agent considered: {entry}"
        );
        stays(&cluster, "/uniq", &want, Duration::from_secs(2)).await;

        // A fourth agent lets the waiting instance run, and the queue entry goes away.
        let mut cluster = cluster;
        cluster.add_agent(&[
            "--resources",
            RESOURCES,
            "--containerizers",
            "mesos",
            "--attributes",
            "rack:r3",
        ]);
        let placed = wait_running(&cluster, "/uniq", 4).await;
        assert!(
            placed.len() == 4 && placed.values().all(|&n| n == 1),
            "one per agent: {placed:?}"
        );
        let deadline = Instant::now() + WAIT;
        loop {
            let r = cluster
                .http
                .get(&format!("{}/v2/queue", cluster.url(0)))
                .await;
            let queued = r.json()["queue"]
                .as_array()
                .is_some_and(|q| q.iter().any(|e| e["app"]["id"] == json!("/uniq")));
            if !queued {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "/uniq still queued with every instance running: {}",
                r.body
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_by_max_per_like_and_unlike_on_attributes() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let cluster = cluster_with(&RACKS).await;
        let apps = [
            ("/grouped", 4, json!([["rack", "GROUP_BY", "2"]])),
            ("/maxper", 3, json!([["rack", "MAX_PER", "1"]])),
            ("/like", 2, json!([["zone", "LIKE", "z[12]"]])),
            ("/unlike", 2, json!([["rack", "UNLIKE", "r1"]])),
            ("/nozone", 1, json!([["zone", "UNLIKE", "z.*"]])),
        ];
        for (id, instances, constraints) in apps {
            let app = sleeper(id, instances, json!({ "constraints": constraints }));
            post_app(&cluster, &app).await;
        }

        // GROUP_BY rack with 2 groups: 2 instances on rack r1 (agents 1 and 2), 2 on r2.
        let placed = wait_running(&cluster, "/grouped", 4).await;
        let r1 = placed.get("agent-1").copied().unwrap_or(0)
            + placed.get("agent-2").copied().unwrap_or(0);
        let r2 = placed.get("agent-3").copied().unwrap_or(0);
        assert_eq!((r1, r2), (2, 2), "rack:GROUP_BY:2 spread: {placed:?}");

        // MAX_PER 1 per rack: 2 run (one on r1, one on r2), 1 waits.
        let placed = wait_running(&cluster, "/maxper", 2).await;
        assert_eq!(
            placed.get("agent-3"),
            Some(&1),
            "one on rack r2: {placed:?}"
        );
        assert_eq!(
            placed.get("agent-1").copied().unwrap_or(0)
                + placed.get("agent-2").copied().unwrap_or(0),
            1,
            "one on rack r1: {placed:?}"
        );
        wait_queued(&cluster, "/maxper", 1, "constraint rack:MAX_PER:1", 3).await;

        // LIKE zone z[12]: only agents 1 and 2 (agent-3 has no zone attribute).
        let placed = wait_running(&cluster, "/like", 2).await;
        assert!(
            !placed.contains_key("agent-3"),
            "zone:LIKE:z[12] placed on agent-3 (no zone): {placed:?}"
        );

        // UNLIKE rack r1: only agent-3.
        let placed = wait_running(&cluster, "/unlike", 2).await;
        assert_eq!(placed, hosts(&[("agent-3", 2)]), "rack:UNLIKE:r1");

        // UNLIKE accepts an agent that lacks the attribute: only agent-3 has no zone.
        let placed = wait_running(&cluster, "/nozone", 1).await;
        assert_eq!(placed, hosts(&[("agent-3", 1)]), "zone:UNLIKE:z.*");

        // A LIKE nothing matches leaves every instance waiting.
        post_app(
            &cluster,
            &sleeper(
                "/nowhere",
                1,
                json!({"constraints": [["rack", "LIKE", "r9"]]}),
            ),
        )
        .await;
        wait_queued(&cluster, "/nowhere", 1, "constraint rack:LIKE:r9", 3).await;
        assert!(tasks_of(&cluster, "/nowhere").await.is_empty());

        // The waiting MAX_PER instance stays waiting.
        let maxper = placed_of(&cluster, "/maxper").await;
        stays(&cluster, "/maxper", &maxper, Duration::from_secs(2)).await;
    })
    .await
    .expect("test timed out");
}

/// Current placement of `app` (hostname -> count).
async fn placed_of(cluster: &Cluster, app: &str) -> BTreeMap<String, usize> {
    let mut per_host = BTreeMap::new();
    for t in tasks_of(cluster, app).await {
        let host = t["host"].as_str().unwrap_or("?").to_owned();
        *per_host.entry(host).or_insert(0) += 1;
    }
    per_host
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slave_public_apps_run_only_on_public_agents() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        // agent-1 is private (role *), agent-2 offers its resources as slave_public.
        let cluster = cluster_with(&[("rack:r1", &[]), ("rack:r1", &["--public"])]).await;
        post_app(
            &cluster,
            &sleeper(
                "/edge",
                3,
                json!({"acceptedResourceRoles": ["slave_public"]}),
            ),
        )
        .await;
        post_app(&cluster, &sleeper("/inner", 3, json!({}))).await;
        post_app(
            &cluster,
            &sleeper(
                "/anywhere",
                4,
                json!({"acceptedResourceRoles": ["*", "slave_public"],
                       "constraints": [["hostname", "MAX_PER", "2"]]}),
            ),
        )
        .await;
        let placed = wait_running(&cluster, "/edge", 3).await;
        assert_eq!(
            placed,
            hosts(&[("agent-2", 3)]),
            "slave_public app placement"
        );
        let placed = wait_running(&cluster, "/inner", 3).await;
        assert_eq!(
            placed,
            hosts(&[("agent-1", 3)]),
            "default-role app placement"
        );
        let placed = wait_running(&cluster, "/anywhere", 4).await;
        assert_eq!(
            placed,
            hosts(&[("agent-1", 2), ("agent-2", 2)]),
            "app accepting both roles"
        );

        // With the public agent full for it, a slave_public app waits: the private agent
        // is refused for its role.
        post_app(
            &cluster,
            &sleeper(
                "/edge-unique",
                2,
                json!({"acceptedResourceRoles": ["slave_public"],
                       "constraints": [["hostname", "UNIQUE"]]}),
            ),
        )
        .await;
        let placed = wait_running(&cluster, "/edge-unique", 1).await;
        assert_eq!(placed, hosts(&[("agent-2", 1)]), "slave_public + UNIQUE");
        let entry = wait_queued(&cluster, "/edge-unique", 1, "role", 1).await;
        let reasons = entry["processedOffersSummary"]["rejectSummaryLastOffers"].clone();
        assert!(
            reasons.as_array().is_some_and(|r| r
                .iter()
                .any(|x| x["reason"] == json!("constraint hostname:UNIQUE"))),
            "the public agent is refused by the constraint: {entry}"
        );
    })
    .await
    .expect("test timed out");
}

//! `orch app deploy-bluegreen` against a real master and agent running HTTP servers with
//! HTTP health checks: the first deploy makes `<id>-blue`; the next one moves every
//! instance to `<id>-green` (labels, alternating service port) without the tasks in
//! rotation ever dropping below the target, and deletes blue; a canary stops at its split,
//! `--complete-cur` finishes it and `--complete-prev` rolls one back; a colour that never
//! turns healthy stops the deploy after `--max-wait` and is rolled back; bad files and
//! flags create nothing.
//!
//! The load balancer under load (zero failed requests during a switch) is the
//! integrator's test once `orch lb` lands: it can reuse [`deploy_sampled`]'s idea with
//! requests through the LB's port 10500 instead of `/v2/apps` samples.

mod support;

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use support::{describe_output, run_orch, Cluster};

const TARGET: u64 = 3;

/// A master and an agent offering `ports` (each test its own range: agents of tests running
/// side by side share this machine's ports).
async fn start(ports: &str) -> Cluster {
    let mut cluster = Cluster::start(1, &[]);
    let resources = format!("cpus:4;mem:4096;disk:100;ports:[{ports}]");
    cluster.add_agent(&["--resources", &resources, "--containerizers", "mesos"]);
    cluster.wait_for_agents(0, 1, Duration::from_secs(15)).await;
    cluster
}

/// The app file: 3 Python HTTP servers with a 1 s HTTP health check, service port 10500,
/// alternate port 10501; `release` goes into the environment so each deploy changes it.
fn write_app(dir: &Path, release: u32) -> PathBuf {
    write_app_checking(dir, release, "/")
}

/// [`write_app`] with the health check asking for `check_path` (a missing file fails it).
/// A quarter of a CPU each: `cpus` is enforced as a CFS quota, and Python's start needs it.
fn write_app_checking(dir: &Path, release: u32, check_path: &str) -> PathBuf {
    let app = json!({
        "id": "/bg", "instances": TARGET, "cpus": 0.25, "mem": 32,
        "cmd": "exec python3 -m http.server $PORT0 --bind 127.0.0.1",
        "env": {"RELEASE": release.to_string()},
        "portDefinitions": [{"port": 10500, "name": "http"}],
        "healthChecks": [{"protocol": "HTTP", "path": check_path, "portIndex": 0,
                          "gracePeriodSeconds": 15, "intervalSeconds": 3,
                          "timeoutSeconds": 2, "maxConsecutiveFailures": 3}],
        "labels": {"HAPROXY_DEPLOYMENT_GROUP": "bg", "HAPROXY_DEPLOYMENT_ALT_PORT": "10501",
                   "HAPROXY_GROUP": "external"}
    });
    let path = dir.join(format!("bg-{release}.json"));
    std::fs::write(&path, app.to_string()).expect("write the app file");
    path
}

async fn get(cluster: &Cluster, path: &str) -> (u16, Value) {
    let r = cluster.http.get(&format!("{}{path}", cluster.url(0))).await;
    (r.status, r.json())
}

/// The apps of deployment group `bg` with their tasks.
async fn group(cluster: &Cluster) -> Vec<Value> {
    let (status, apps) = get(
        cluster,
        "/v2/apps?label=HAPROXY_DEPLOYMENT_GROUP==bg&embed=apps.tasks",
    )
    .await;
    assert_eq!(status, 200, "{apps}");
    apps["apps"].as_array().cloned().unwrap_or_default()
}

/// Tasks running with every health check passing: what the load balancer routes to.
fn in_rotation(app: &Value) -> u64 {
    app["tasks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|task| {
            task["state"] == json!("TASK_RUNNING")
                && task["healthCheckResults"]
                    .as_array()
                    .is_some_and(|r| !r.is_empty() && r.iter().all(|r| r["alive"] == json!(true)))
        })
        .count() as u64
}

/// What sampling the group during a deploy saw.
#[derive(Debug)]
struct Samples {
    /// How many samples.
    count: usize,
    /// The fewest tasks in rotation across both colours.
    fewest: u64,
    /// Whether some sample had tasks of both colours in rotation.
    both_serving: bool,
}

/// Runs `orch app deploy-bluegreen ARGS` with short steps while sampling the group's tasks
/// in rotation every 50 ms; returns the command's output and what the samples saw.
async fn deploy_sampled(cluster: &Cluster, args: &[&str]) -> (std::process::Output, Samples) {
    let master = cluster.url(0);
    let mut all: Vec<String> = ["--master", &master, "app", "deploy-bluegreen"]
        .iter()
        .chain(args)
        .map(|s| s.to_string())
        .collect();
    all.extend(["--step-delay", "200ms"].map(String::from));
    if !args.contains(&"--max-wait") {
        all.extend(["--max-wait", "60s"].map(String::from));
    }
    let run = tokio::spawn(async move {
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        run_orch(&all, Duration::from_secs(120)).await
    });
    let mut samples = Samples {
        count: 0,
        fewest: u64::MAX,
        both_serving: false,
    };
    while !run.is_finished() {
        let apps = group(cluster).await;
        let serving: Vec<u64> = apps.iter().map(in_rotation).collect();
        samples.count += 1;
        samples.fewest = samples.fewest.min(serving.iter().sum());
        samples.both_serving |= serving.len() == 2 && serving.iter().all(|n| *n > 0);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let out = run.await.expect("the deploy task");
    (out, samples)
}

async fn deploy_ok(cluster: &Cluster, args: &[&str]) -> (String, Samples) {
    let (out, samples) = deploy_sampled(cluster, args).await;
    assert!(out.status.success(), "{}", describe_output(&out));
    (String::from_utf8_lossy(&out.stdout).into_owned(), samples)
}

/// `(instances, tasks in rotation, labels, service port, RELEASE)` of app `id`, or `None`
/// when it does not exist.
async fn app(cluster: &Cluster, id: &str) -> Option<(u64, u64, Value, Value, Value)> {
    let (status, body) = get(cluster, &format!("/v2/apps/{id}")).await;
    if status == 404 {
        return None;
    }
    assert_eq!(status, 200, "{body}");
    let app = &body["app"];
    Some((
        app["instances"].as_u64().expect("instances"),
        in_rotation(app),
        app["labels"].clone(),
        app["portDefinitions"][0]["port"].clone(),
        app["env"]["RELEASE"].clone(),
    ))
}

/// The ids of the group's apps with their instance counts, sorted.
async fn layout(cluster: &Cluster) -> Vec<(String, u64)> {
    let mut apps: Vec<(String, u64)> = group(cluster)
        .await
        .iter()
        .map(|a| {
            (
                a["id"].as_str().unwrap_or_default().to_owned(),
                a["instances"].as_u64().unwrap_or_default(),
            )
        })
        .collect();
    apps.sort();
    apps
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deploy_moves_every_instance_to_the_other_colour_without_dropping_below_the_target() {
    let cluster = start("29100-29199").await;
    let first = write_app(cluster.dir(), 1);
    let (out, _) = deploy_ok(&cluster, &[first.to_str().expect("path")]).await;
    assert!(out.contains("deployed /bg-blue (blue)"), "{out}");
    let (instances, serving, labels, port, _) = app(&cluster, "bg-blue").await.expect("blue");
    assert_eq!((instances, serving, port), (TARGET, TARGET, json!(10500)));
    assert_eq!(labels["HAPROXY_DEPLOYMENT_COLOUR"], "blue", "{labels}");
    assert_eq!(labels["HAPROXY_0_PORT"], "10500", "{labels}");
    assert_eq!(layout(&cluster).await, [("/bg-blue".to_owned(), TARGET)]);

    let second = write_app(cluster.dir(), 2);
    let (out, samples) = deploy_ok(&cluster, &[second.to_str().expect("path")]).await;
    assert!(
        out.contains(
            "created /bg-green (green) with 1 instance(s), growing to 3 on service port 10501"
        ) && out.contains("scaled /bg-blue to 2")
            && out.contains("deleted /bg-blue")
            && out.contains("deployed /bg-green (green)"),
        "{out}"
    );
    assert!(
        samples.fewest >= TARGET && samples.both_serving && samples.count >= 10,
        "rotation during the switch: {samples:?}\n{out}"
    );
    let (instances, serving, labels, port, release) =
        app(&cluster, "bg-green").await.expect("green");
    assert_eq!((instances, serving), (TARGET, TARGET), "{out}");
    assert_eq!((port, release), (json!(10501), json!("2")));
    for (label, value) in [
        ("HAPROXY_DEPLOYMENT_COLOUR", "green"),
        ("HAPROXY_0_PORT", "10500"),
        ("HAPROXY_APP_ID", "/bg"),
        ("HAPROXY_DEPLOYMENT_GROUP", "bg"),
        ("HAPROXY_DEPLOYMENT_ALT_PORT", "10501"),
        ("HAPROXY_DEPLOYMENT_TARGET_INSTANCES", "3"),
        ("HAPROXY_GROUP", "external"),
    ] {
        assert_eq!(labels[label], value, "{label}: {labels}");
    }
    assert!(
        labels["HAPROXY_DEPLOYMENT_STARTED_AT"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z')),
        "{labels}"
    );
    assert!(
        app(&cluster, "bg-blue").await.is_none(),
        "blue must be deleted"
    );

    // The third deploy goes back to blue on the file's port.
    let third = write_app(cluster.dir(), 3);
    let (_, samples) = deploy_ok(&cluster, &[third.to_str().expect("path"), "-o", "json"]).await;
    assert!(samples.fewest >= TARGET, "{samples:?}");
    let (_, _, labels, port, release) = app(&cluster, "bg-blue").await.expect("blue again");
    assert_eq!((port, release), (json!(10500), json!("3")));
    assert_eq!(labels["HAPROXY_DEPLOYMENT_COLOUR"], "blue");
    assert_eq!(layout(&cluster).await, [("/bg-blue".to_owned(), TARGET)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_splits_by_instances_then_completes_or_rolls_back() {
    let cluster = start("29200-29299").await;
    let file = |release| write_app(cluster.dir(), release);
    let path = |p: &PathBuf| p.to_str().expect("path").to_owned();
    deploy_ok(&cluster, &[&path(&file(1))]).await;

    // Canary: 1 new green, 2 old blue.
    let second = path(&file(2));
    let (out, samples) = deploy_ok(&cluster, &[&second, "--new-instances", "1"]).await;
    assert!(
        out.contains("traffic splits 1:2 by instance ratio"),
        "{out}"
    );
    assert!(samples.fewest >= TARGET, "{samples:?}");
    assert_eq!(
        layout(&cluster).await,
        [("/bg-blue".to_owned(), 2), ("/bg-green".to_owned(), 1)]
    );
    let (_, serving, labels, ..) = app(&cluster, "bg-green").await.expect("green");
    assert_eq!(serving, 1);
    assert_eq!(labels["HAPROXY_DEPLOYMENT_NEW_INSTANCES"], "1", "{labels}");

    // A plain deploy over a split says which flags to use and changes nothing.
    let master = cluster.url(0);
    let out = run_orch(
        &["--master", &master, "app", "deploy-bluegreen", &second],
        Duration::from_secs(30),
    )
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success()
            && stderr.contains("--resume")
            && stderr.contains("--complete-cur to move every instance to /bg-green")
            && stderr.contains("--complete-prev to roll back to /bg-blue"),
        "{}",
        describe_output(&out)
    );
    // Resuming a canary that reached its split leaves it there.
    let (out, _) = deploy_ok(&cluster, &[&second, "--resume"]).await;
    assert!(out.contains("traffic splits 1:2"), "{out}");
    assert_eq!(
        layout(&cluster).await,
        [("/bg-blue".to_owned(), 2), ("/bg-green".to_owned(), 1)]
    );

    // --complete-cur: everything to green, blue deleted.
    let (out, samples) = deploy_ok(&cluster, &[&second, "--complete-cur"]).await;
    assert!(out.contains("deleted /bg-blue"), "{out}");
    assert!(samples.fewest >= TARGET, "{samples:?}");
    assert_eq!(layout(&cluster).await, [("/bg-green".to_owned(), TARGET)]);
    assert_eq!(app(&cluster, "bg-green").await.expect("green").1, TARGET);

    // Another canary (blue this time), rolled back with --complete-prev.
    let third = path(&file(3));
    let (out, _) = deploy_ok(&cluster, &[&third, "-n", "1"]).await;
    assert!(out.contains("traffic splits 1:2"), "{out}");
    let (_, _, _, port, release) = app(&cluster, "bg-blue").await.expect("blue canary");
    assert_eq!((port, release), (json!(10500), json!("3")));
    let (out, samples) = deploy_ok(&cluster, &[&third, "--complete-prev"]).await;
    assert!(out.contains("deleted /bg-blue"), "{out}");
    assert!(samples.fewest >= TARGET, "{samples:?}");
    assert_eq!(layout(&cluster).await, [("/bg-green".to_owned(), TARGET)]);
    let (_, serving, _, port, release) = app(&cluster, "bg-green").await.expect("green");
    assert_eq!((serving, port, release), (TARGET, json!(10501), json!("2")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_colour_that_never_turns_healthy_stops_the_deploy_and_is_rolled_back() {
    let cluster = start("29400-29499").await;
    let good = write_app(cluster.dir(), 1);
    let good = good.to_str().expect("path");
    deploy_ok(&cluster, &[good]).await;

    // Green's health check never passes: no blue task goes, and the deploy gives up.
    let broken = write_app_checking(cluster.dir(), 2, "/missing");
    let (out, samples) = deploy_sampled(
        &cluster,
        &[broken.to_str().expect("path"), "--max-wait", "4s"],
    )
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success()
            && stderr.contains("no progress for 4s")
            && stderr.contains("--complete-prev to roll back"),
        "{}",
        describe_output(&out)
    );
    assert!(samples.fewest >= TARGET, "{samples:?}");
    assert_eq!(
        layout(&cluster).await,
        [("/bg-blue".to_owned(), TARGET), ("/bg-green".to_owned(), 1)]
    );

    // Rolling back deletes green although its deployment is stuck.
    let (out, samples) = deploy_ok(&cluster, &[good, "--complete-prev"]).await;
    assert!(out.contains("deleted /bg-green"), "{out}");
    assert!(samples.fewest >= TARGET, "{samples:?}");
    assert_eq!(layout(&cluster).await, [("/bg-blue".to_owned(), TARGET)]);
    let (status, deployments) = get(&cluster, "/v2/deployments").await;
    assert_eq!((status, deployments), (200, json!([])));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_files_and_flags_are_refused_and_create_nothing() {
    let cluster = Cluster::start(1, &[]);
    let master = cluster.url(0);
    let dir = cluster.dir();
    let cases = [
        (
            "no-alt.yaml",
            "id: /bg\ncmd: sleep 100\nportDefinitions: [{port: 10500}]\n\
             labels: {HAPROXY_DEPLOYMENT_GROUP: bg}\n",
            vec![],
            "lacks the label(s) HAPROXY_DEPLOYMENT_ALT_PORT",
        ),
        (
            "no-labels.json",
            r#"{"id": "/bg", "cmd": "sleep 100", "portDefinitions": [{"port": 10500}]}"#,
            vec![],
            "HAPROXY_DEPLOYMENT_GROUP, HAPROXY_DEPLOYMENT_ALT_PORT",
        ),
        (
            "two-ports.json",
            r#"{"id": "/bg", "cmd": "sleep 100", "portDefinitions": [{"port": 10500}, {"port": 10502}],
                "labels": {"HAPROXY_DEPLOYMENT_GROUP": "bg", "HAPROXY_DEPLOYMENT_ALT_PORT": "10501"}}"#,
            vec![],
            "exactly one service port",
        ),
        (
            "ok.json",
            r#"{"id": "/bg", "cmd": "sleep 100", "portDefinitions": [{"port": 10500}],
                "labels": {"HAPROXY_DEPLOYMENT_GROUP": "bg", "HAPROXY_DEPLOYMENT_ALT_PORT": "10501"}}"#,
            vec!["--resume"],
            "--resume: deployment group bg has no unfinished or canary deploy",
        ),
        (
            "ok.json",
            r#"{"id": "/bg", "cmd": "sleep 100", "portDefinitions": [{"port": 10500}],
                "labels": {"HAPROXY_DEPLOYMENT_GROUP": "bg", "HAPROXY_DEPLOYMENT_ALT_PORT": "10501"}}"#,
            vec!["--new-instances", "1"],
            "--new-instances needs a running colour",
        ),
    ];
    let started = Instant::now();
    for (name, text, flags, expected) in cases {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("write the app file");
        let mut args = vec![
            "--master",
            master.as_str(),
            "app",
            "deploy-bluegreen",
            path.to_str().expect("path"),
        ];
        args.extend(flags);
        let out = run_orch(&args, Duration::from_secs(30)).await;
        assert!(
            !out.status.success() && String::from_utf8_lossy(&out.stderr).contains(expected),
            "{name}: expected {expected:?}\n{}",
            describe_output(&out)
        );
    }
    let (status, apps) = get(&cluster, "/v2/apps").await;
    assert_eq!((status, apps), (200, json!({"apps": []})));
    assert!(started.elapsed() < Duration::from_secs(60));
}

//! The master's HTTP contract against a real single master: /ping, /v2/info, /v2/leader,
//! the /v2/apps CRUD cycle (status codes, headers, shapes), /metrics, /v1/cluster, and a
//! clean exit on SIGINT.

mod support;

use std::time::Duration;

use serde_json::{json, Value};
use support::Cluster;

const FORM: Duration = Duration::from_secs(20);

/// `2026-11-22T10:00:00.123Z`-shaped (digits in place, literal separators).
fn is_marathon_timestamp(s: &str) -> bool {
    let pattern = "dddd-dd-ddTdd:dd:dd.dddZ";
    s.len() == pattern.len()
        && s.chars()
            .zip(pattern.chars())
            .all(|(c, p)| if p == 'd' { c.is_ascii_digit() } else { c == p })
}

#[tokio::test]
async fn single_master_http_contract() {
    let mut c = Cluster::start(1, &[]);
    c.wait_for_leader_among(&[0], Some(1), FORM).await;
    let base = c.url(0);
    let addr = c.masters[0].addr.clone();
    let leader_header = format!("http://{addr}");

    // /ping
    let r = c.http.get(&format!("{base}/ping")).await;
    assert_eq!((r.status, r.body.trim()), (200, "pong"));
    let ct = r.header("content-type").unwrap_or_default();
    assert!(ct.starts_with("text/plain"), "/ping content-type {ct:?}");

    // /v2/info
    let r = c.http.get(&format!("{base}/v2/info")).await;
    assert_eq!(r.status, 200, "/v2/info: {}", r.body);
    let info = r.json();
    assert_eq!(info["name"], "marathon", "{info}");
    assert_eq!(info["elected"], true, "{info}");
    assert_eq!(info["leader"], Value::String(addr.clone()), "{info}");
    for key in [
        "version",
        "buildref",
        "frameworkId",
        "marathon_config",
        "zookeeper_config",
        "http_config",
    ] {
        assert!(info.get(key).is_some(), "/v2/info has {key}: {info}");
    }
    assert!(
        info["marathon_config"].is_object() && info["zookeeper_config"].is_object(),
        "{info}"
    );
    assert!(info["http_config"].get("http_port").is_some(), "{info}");
    assert!(info["http_config"].get("https_port").is_some(), "{info}");
    assert_eq!(
        r.header("X-Marathon-Leader").as_deref(),
        Some(leader_header.as_str())
    );

    // /v2/leader
    let r = c.http.get(&format!("{base}/v2/leader")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), json!({"leader": addr}));

    // POST /v2/apps
    let r = c
        .http
        .post(&format!("{base}/v2/apps"), &support::app("/api/one"))
        .await;
    assert_eq!(r.status, 201, "POST: {}", r.body);
    assert!(
        r.header("Location")
            .is_some_and(|l| l.contains("/v2/apps/api/one")),
        "Location: {:?}",
        r.header("Location")
    );
    assert!(
        r.header("Marathon-Deployment-Id")
            .is_some_and(|d| !d.is_empty()),
        "Marathon-Deployment-Id header"
    );
    assert_eq!(
        r.header("X-Marathon-Leader").as_deref(),
        Some(leader_header.as_str())
    );
    let created = r.json();
    assert_eq!(created["id"], "/api/one");
    let v1 = created["version"]
        .as_str()
        .unwrap_or_else(|| panic!("version string: {created}"))
        .to_string();
    assert!(
        is_marathon_timestamp(&v1),
        "version {v1:?} looks like 2026-11-22T10:00:00.123Z"
    );

    // The leading '/' is optional.
    let r = c
        .http
        .post(&format!("{base}/v2/apps"), &support::app("api-two"))
        .await;
    assert_eq!(r.status, 201, "POST without leading slash: {}", r.body);
    let r = c.http.get(&format!("{base}/v2/apps/api-two")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["app"]["id"], "/api-two");
    let r = c
        .http
        .post(&format!("{base}/v2/apps"), &support::app("/my-app.v2/x-1"))
        .await;
    assert_eq!(r.status, 201, "id with digits, '-' and '.': {}", r.body);

    // GET
    let ids = c.app_ids(0).await;
    assert_eq!(ids, vec!["/api-two", "/api/one", "/my-app.v2/x-1"]);
    let r = c.http.get(&format!("{base}/v2/apps/api/one")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["app"]["cmd"], "sleep 3600");

    // PUT: partial update merges keys.
    let r = c
        .http
        .put(
            &format!("{base}/v2/apps/api/one"),
            &json!({"labels": {"tier": "web"}}),
        )
        .await;
    assert_eq!(r.status, 200, "PUT update: {}", r.body);
    let v = r.json();
    assert!(v["deploymentId"].is_string(), "{v}");
    assert!(
        v["version"].as_str().is_some_and(is_marathon_timestamp),
        "{v}"
    );
    let r = c.http.get(&format!("{base}/v2/apps/api/one")).await;
    let app = r.json()["app"].clone();
    assert_eq!(app["labels"]["tier"], "web", "{app}");
    assert_eq!(app["cmd"], "sleep 3600", "partial update kept cmd: {app}");
    assert_eq!(
        app["mem"].as_f64(),
        Some(32.0),
        "partial update kept mem: {app}"
    );

    // PUT creating an app -> 201.
    let r = c
        .http
        .put(
            &format!("{base}/v2/apps/api-new"),
            &json!({"cmd": "sleep 1", "instances": 0}),
        )
        .await;
    assert_eq!(r.status, 201, "PUT create: {}", r.body);
    let r = c.http.get(&format!("{base}/v2/apps/api-new")).await;
    assert_eq!(r.status, 200, "{}", r.body);

    // DELETE
    let r = c.http.delete(&format!("{base}/v2/apps/api-new")).await;
    assert_eq!(r.status, 200, "DELETE: {}", r.body);
    assert!(
        r.json()["deploymentId"].is_string() && r.json()["version"].is_string(),
        "{}",
        r.body
    );
    let r = c.http.get(&format!("{base}/v2/apps/api-new")).await;
    assert_eq!(r.status, 404);
    assert_eq!(
        r.json(),
        json!({"message": "App '/api-new' does not exist"})
    );
    let r = c.http.delete(&format!("{base}/v2/apps/api-new")).await;
    assert_eq!(r.status, 404, "DELETE twice: {}", r.body);

    // /metrics
    let r = c.http.get(&format!("{base}/metrics")).await;
    assert_eq!(r.status, 200);
    let m = support::parse_metrics(&r.body);
    for g in [
        "orch_raft_term",
        "orch_raft_commit_index",
        "orch_raft_applied_index",
        "orch_raft_is_leader",
    ] {
        assert!(m.contains_key(g), "/metrics has {g}:\n{}", r.body);
    }
    assert_eq!(m["orch_raft_is_leader"], 1.0);
    assert!(
        m["orch_raft_commit_index"] >= 4.0,
        "4 writes committed: {}",
        m["orch_raft_commit_index"]
    );
    assert!(
        r.body.contains("orch_write_latency_seconds_bucket"),
        "histogram buckets:\n{}",
        r.body
    );
    assert!(
        m.iter()
            .any(|(k, v)| k.starts_with("orch_write_latency_seconds_count") && *v >= 4.0),
        "write latency count >= 4:\n{}",
        r.body
    );

    // /v1/cluster
    let v = c.view(0).await.expect("/v1/cluster");
    assert_eq!(
        v.json["leader_address"],
        Value::String(addr.clone()),
        "{}",
        v.json
    );
    assert_eq!(
        v.roles(),
        vec![(addr.clone(), "leader".to_string())],
        "{}",
        v.json
    );
    assert!(v.json["commit_index"].as_u64().is_some(), "{}", v.json);

    // SIGINT -> clean exit 0.
    let status = c.masters[0].stop_with("INT", Duration::from_secs(10));
    assert!(
        status.success(),
        "exit after SIGINT: {status}\n{}",
        c.masters[0].logs(40)
    );
}

/// The `path`s of a 422 body's details, with their errors.
fn details(v: &Value) -> Vec<(String, Vec<String>)> {
    v["details"]
        .as_array()
        .unwrap_or_else(|| panic!("422 body has details: {v}"))
        .iter()
        .map(|d| {
            let errors = d["errors"]
                .as_array()
                .map(|e| {
                    e.iter()
                        .filter_map(|e| e.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default();
            (d["path"].as_str().unwrap_or_default().to_string(), errors)
        })
        .collect()
}

#[tokio::test]
async fn app_definitions_defaults_legacy_forms_validation_versions_and_patch() {
    let mut c = Cluster::start(1, &[]);
    c.wait_for_leader(FORM).await;
    let apps = format!("{}/v2/apps", c.url(0));

    // Defaults appear in GET; the default port gets the first service port.
    let r = c
        .http
        .post(
            &apps,
            &json!({"id": "/defaults", "cmd": "sleep 3600", "instances": 0}),
        )
        .await;
    assert_eq!(r.status, 201, "POST: {}", r.body);
    let created = r.json();
    assert_eq!(created["portDefinitions"][0]["port"], 10000, "{created}");
    let v1 = created["version"].as_str().expect("version").to_string();
    let app = c.http.get(&format!("{apps}/defaults")).await.json()["app"].clone();
    for (key, want) in [
        ("cpus", json!(1.0)),
        ("mem", json!(128.0)),
        ("disk", json!(0.0)),
        ("gpus", json!(0)),
        ("instances", json!(0)),
        ("backoffSeconds", json!(1)),
        ("backoffFactor", json!(1.15)),
        ("maxLaunchDelaySeconds", json!(300)),
        ("killSelection", json!("YOUNGEST_FIRST")),
        ("requirePorts", json!(false)),
        ("networks", json!([{"mode": "host"}])),
        (
            "upgradeStrategy",
            json!({"minimumHealthCapacity": 1.0, "maximumOverCapacity": 1.0}),
        ),
        (
            "unreachableStrategy",
            json!({"inactiveAfterSeconds": 0, "expungeAfterSeconds": 0}),
        ),
        (
            "portDefinitions",
            json!([{"port": 10000, "protocol": "tcp", "name": "default"}]),
        ),
        ("labels", json!({})),
        ("constraints", json!([])),
    ] {
        assert_eq!(app[key], want, "default {key}: {app}");
    }
    for absent in [
        "ports",
        "uris",
        "acceptedResourceRoles",
        "taskKillGracePeriodSeconds",
    ] {
        assert!(app.get(absent).is_none(), "{absent} not emitted: {app}");
    }

    // Legacy input comes back canonical, with the next service ports.
    let r = c
        .http
        .post(
            &apps,
            &json!({"id": "/legacy", "cmd": "sleep 3600", "instances": 0, "ports": [0, 0],
                    "uris": ["http://example.com/a.tgz"],
                    "healthChecks": [{"protocol": "TCP"}]}),
        )
        .await;
    assert_eq!(r.status, 201, "POST legacy: {}", r.body);
    let app = c.http.get(&format!("{apps}/legacy")).await.json()["app"].clone();
    assert_eq!(
        app["portDefinitions"],
        json!([{"port": 10001, "protocol": "tcp"}, {"port": 10002, "protocol": "tcp"}]),
        "{app}"
    );
    assert_eq!(app["fetch"][0]["uri"], "http://example.com/a.tgz", "{app}");
    assert_eq!(app["fetch"][0]["extract"], true, "{app}");
    assert_eq!(app["healthChecks"][0]["portIndex"], 0, "{app}");
    assert_eq!(app["healthChecks"][0]["timeoutSeconds"], 20, "{app}");
    assert!(
        app.get("ports").is_none() && app.get("uris").is_none(),
        "{app}"
    );

    // A bad app: 422 with Marathon's details; nothing is created.
    let r = c
        .http
        .post(
            &apps,
            &json!({"id": "/bad", "cmd": "sleep 1", "cpus": -1,
                    "upgradeStrategy": {"minimumHealthCapacity": 2}}),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.body);
    let v = r.json();
    assert_eq!(v["message"], "Object is not valid", "{v}");
    let found = details(&v);
    assert!(
        found.contains(&("/cpus".into(), vec!["is less than 0".into()])),
        "{v}"
    );
    assert!(
        found
            .iter()
            .any(|(path, _)| path == "/upgradeStrategy/minimumHealthCapacity"),
        "{v}"
    );
    let r = c
        .http
        .post(
            &apps,
            &json!({"id": "/bad", "cmd": "sleep 1", "mem": "lots"}),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert_eq!(
        details(&r.json()),
        vec![("/mem".into(), vec!["error.expected.jsnumber".into()])]
    );
    assert_eq!(c.http.get(&format!("{apps}/bad")).await.status, 404);

    // PUT changes the config; versions are listed newest first and readable.
    let r = c
        .http
        .put(&format!("{apps}/defaults"), &json!({"cmd": "sleep 10"}))
        .await;
    assert_eq!(r.status, 200, "PUT: {}", r.body);
    let v2 = r.json()["version"].as_str().expect("version").to_string();
    let r = c.http.get(&format!("{apps}/defaults/versions")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json(), json!({"versions": [v2, v1]}));
    let r = c.http.get(&format!("{apps}/defaults/versions/{v1}")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["cmd"], "sleep 3600", "{}", r.body);
    assert_eq!(r.json()["version"], v1.as_str(), "{}", r.body);
    let r = c
        .http
        .get(&format!(
            "{apps}/defaults/versions/2001-01-01T00:00:00.000Z"
        ))
        .await;
    assert_eq!(r.status, 404, "{}", r.body);
    assert_eq!(
        r.json()["message"],
        "App '/defaults' does not exist in version 2001-01-01T00:00:00.000Z"
    );
    assert_eq!(
        c.http.get(&format!("{apps}/nope/versions")).await.status,
        404
    );

    // Rollback: PUT {"version": v1} restores that definition as a new version.
    let r = c
        .http
        .put(&format!("{apps}/defaults"), &json!({"version": v1}))
        .await;
    assert_eq!(r.status, 200, "rollback: {}", r.body);
    let app = c.http.get(&format!("{apps}/defaults")).await.json()["app"].clone();
    assert_eq!(app["cmd"], "sleep 3600", "{app}");
    assert_eq!(app["portDefinitions"][0]["port"], 10000, "{app}");
    let versions = c
        .http
        .get(&format!("{apps}/defaults/versions"))
        .await
        .json();
    assert_eq!(versions["versions"].as_array().map(Vec::len), Some(3));

    // PATCH merges, keeps service ports, refuses invalid changes and unknown apps.
    let r = c
        .http
        .patch(
            &format!("{apps}/legacy"),
            &json!({"labels": {"tier": "web"}}),
        )
        .await;
    assert_eq!(r.status, 200, "PATCH: {}", r.body);
    assert!(r.json()["deploymentId"].is_string(), "{}", r.body);
    let app = c.http.get(&format!("{apps}/legacy")).await.json()["app"].clone();
    assert_eq!(app["labels"], json!({"tier": "web"}), "{app}");
    assert_eq!(app["cmd"], "sleep 3600", "{app}");
    assert_eq!(app["portDefinitions"][1]["port"], 10002, "{app}");
    let r = c
        .http
        .patch(&format!("{apps}/legacy"), &json!({"backoffFactor": 0.5}))
        .await;
    assert_eq!(r.status, 422, "{}", r.body);
    let r = c
        .http
        .patch(&format!("{apps}/nope"), &json!({"cmd": "sleep 1"}))
        .await;
    assert_eq!(r.status, 404, "{}", r.body);
    assert_eq!(r.json()["message"], "App '/nope' does not exist");
    // PUT with partialUpdate=false replaces the definition (defaults come back).
    let r = c
        .http
        .put(
            &format!("{apps}/legacy?partialUpdate=False"),
            &json!({"cmd": "sleep 5", "instances": 0}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let app = c.http.get(&format!("{apps}/legacy")).await.json()["app"].clone();
    assert_eq!(app["labels"], json!({}), "{app}");
    assert_eq!(
        app["portDefinitions"],
        json!([{"port": 10001, "protocol": "tcp", "name": "default"}]),
        "the previous version's first port is reused: {app}"
    );
}

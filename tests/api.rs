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

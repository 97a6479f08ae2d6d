//! `GET /v2/events`: the SSE stream as Marathon writes it, with filters, light plans, the
//! events of a whole app lifecycle, and a standby's redirect to the leader.

mod support;

use serde_json::{json, Value};
use std::time::{Duration, Instant};
use support::Cluster;

/// Reads SSE frames from `url` until `done` holds for the events so far, or `timeout`.
async fn collect(
    url: String,
    timeout: Duration,
    done: impl Fn(&[(String, Value)]) -> bool + Send + 'static,
) -> Vec<(String, Value)> {
    orch_pki::tls::install_crypto_provider();
    let client = reqwest::Client::new();
    let mut response = client
        .get(&url)
        .header("Accept", "text/event-stream")
        .send()
        .await
        .expect("connect to the event stream");
    assert_eq!(response.status(), 200);
    let mut buffer = String::new();
    let mut events = Vec::new();
    let deadline = Instant::now() + timeout;
    while !done(&events) {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "stream ended early; events so far: {events:#?}"
        );
        let chunk = match tokio::time::timeout(left, response.chunk()).await {
            Ok(Ok(Some(chunk))) => chunk,
            Ok(Ok(None)) => panic!("stream closed; events so far: {events:#?}"),
            Ok(Err(error)) => panic!("stream failed: {error}"),
            Err(_) => panic!("timed out; events so far: {events:#?}"),
        };
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find("\r\n\r\n") {
            let frame: String = buffer.drain(..end + 4).collect();
            let event = frame
                .lines()
                .find_map(|l| l.strip_prefix("event: "))
                .unwrap_or_default()
                .to_owned();
            let data = frame
                .lines()
                .find_map(|l| l.strip_prefix("data: "))
                .unwrap_or("null");
            events.push((
                event,
                serde_json::from_str(data).expect("data is one line of JSON"),
            ));
        }
    }
    events
}

fn has(events: &[(String, Value)], kind: &str) -> bool {
    events.iter().any(|(k, _)| k == kind)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_lifecycle_streams_marathon_events() {
    let mut cluster = Cluster::start(1, &[]);
    cluster.add_agent(&[
        "--resources",
        "cpus:2;mem:1024;disk:100;ports:[31000-31010]",
        "--containerizers",
        "mesos",
    ]);
    cluster.wait_for_agents(0, 1, Duration::from_secs(15)).await;
    let master = cluster.url(0);
    let all = tokio::spawn(collect(
        format!("{master}/v2/events"),
        Duration::from_secs(20),
        |events| {
            has(events, "deployment_success")
                && events.iter().any(|(k, e)| {
                    k == "status_update_event" && e["taskStatus"] == json!("TASK_RUNNING")
                })
        },
    ));
    let filtered = tokio::spawn(collect(
        format!("{master}/v2/events?event_type=deployment_info&plan-format=light"),
        Duration::from_secs(20),
        |events| has(events, "deployment_info"),
    ));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let app = json!({"id": "/evented", "cmd": "sleep 1000", "cpus": 0.1, "mem": 16});
    let r = cluster.http.post(&format!("{master}/v2/apps"), &app).await;
    assert_eq!(r.status, 201, "{}", r.body);

    let events = all.await.expect("collector");
    let kinds: Vec<&str> = events.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(kinds[0], "event_stream_attached", "{kinds:?}");
    for kind in [
        "api_post_event",
        "deployment_info",
        "status_update_event",
        "instance_changed_event",
        "deployment_step_success",
        "deployment_success",
    ] {
        assert!(kinds.contains(&kind), "{kind} missing: {kinds:?}");
    }
    for (kind, event) in &events {
        assert_eq!(event["eventType"], json!(kind), "{event}");
        assert!(event["timestamp"].is_string(), "{event}");
    }
    let (_, post) = events
        .iter()
        .find(|(k, _)| k == "api_post_event")
        .expect("api_post_event");
    assert_eq!(post["appDefinition"]["id"], json!("/evented"));
    assert_eq!(post["uri"], json!("/v2/apps"));
    let (_, info) = events
        .iter()
        .find(|(k, _)| k == "deployment_info")
        .expect("deployment_info");
    assert_eq!(
        info["plan"]["steps"][0]["actions"][0]["action"],
        json!("StartApplication")
    );
    assert!(
        info["plan"]["original"].is_object() && info["plan"]["target"].is_object(),
        "{info}"
    );

    let light = filtered.await.expect("collector");
    let kinds: Vec<&str> = light.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        kinds,
        vec!["deployment_info"],
        "the filter lets only deployment_info through"
    );
    assert!(
        light[0].1["plan"].get("original").is_none(),
        "light plans have no original"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_redirects_the_stream_to_the_leader() {
    let mut cluster = Cluster::start(3, &[]);
    let leader = cluster.wait_for_leader(Duration::from_secs(15)).await;
    let standby = (leader + 1) % 3;
    orch_pki::tls::install_crypto_provider();
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let r = client
        .get(format!("{}/v2/events?event_type=x", cluster.url(standby)))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 302);
    let location = r.headers()["location"]
        .to_str()
        .unwrap_or_default()
        .to_owned();
    assert_eq!(
        location,
        format!("{}/v2/events?event_type=x", cluster.url(leader))
    );
}

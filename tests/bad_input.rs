//! Bad input against a real single master: malformed and invalid app JSON, oversize bodies,
//! duplicates, unknown apps (the process keeps serving and earlier data stays intact), and
//! bad command lines / config files (the process exits non-zero with a message).

mod support;

use std::time::Duration;

use serde_json::{json, Value};
use support::{describe_output, free_addr, run_orch, Cluster};

const FORM: Duration = Duration::from_secs(20);

/// The master still answers and the app created first is intact.
async fn assert_still_serving(c: &mut Cluster, after: &str) {
    c.masters[0].assert_running();
    let p = c.http.get(&format!("{}/ping", c.url(0))).await;
    assert_eq!(
        (p.status, p.body.trim()),
        (200, "pong"),
        "/ping after {after}"
    );
    let g = c.http.get(&format!("{}/v2/apps/keep", c.url(0))).await;
    assert_eq!(g.status, 200, "GET /v2/apps/keep after {after}: {}", g.body);
    assert_eq!(
        g.json()["app"]["cmd"],
        "sleep 3600",
        "app /keep intact after {after}: {}",
        g.body
    );
    assert_eq!(
        c.app_ids(0).await,
        vec!["/keep".to_string()],
        "no other app was created by {after}"
    );
}

fn details_paths(v: &Value) -> Vec<String> {
    v["details"]
        .as_array()
        .unwrap_or_else(|| panic!("422 body has no details array: {v}"))
        .iter()
        .map(|d| {
            d["path"]
                .as_str()
                .unwrap_or_else(|| panic!("detail without path: {d}"))
                .to_string()
        })
        .collect()
}

#[tokio::test]
async fn bad_requests_get_marathon_errors_and_do_no_harm() {
    let mut c = Cluster::start(1, &[]);
    c.wait_for_leader(FORM).await;
    let apps = format!("{}/v2/apps", c.url(0));
    c.create_app(0, "/keep").await;

    // Malformed JSON -> 422, details path "/".
    for body in ["{\"id\": \"/x\", ", "not json at all", "[1,2,3"] {
        let r = c.http.post_raw(&apps, body).await;
        assert_eq!(r.status, 422, "malformed JSON {body:?}: {}", r.body);
        let v = r.json();
        assert!(v["message"].is_string(), "422 has a message: {v}");
        assert!(
            details_paths(&v).iter().any(|p| p == "/"),
            "details path \"/\" for malformed JSON: {v}"
        );
        assert_still_serving(&mut c, &format!("malformed JSON {body:?}")).await;
    }

    // Invalid ids -> 422, details path "/id".
    for id in ["/Bad_Id", "/UPPER", "/under_score", "/sp ace", "/star*"] {
        let r = c.http.post(&apps, &support::app(id)).await;
        assert_eq!(r.status, 422, "invalid id {id:?}: {}", r.body);
        let v = r.json();
        assert!(v["message"].is_string(), "422 has a message: {v}");
        assert!(
            details_paths(&v).iter().any(|p| p == "/id"),
            "details path /id for {id:?}: {v}"
        );
        let errors = v["details"].as_array().expect("details")[0]["errors"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert!(
            !errors.is_empty(),
            "details[0].errors is a non-empty list: {v}"
        );
        assert_still_serving(&mut c, &format!("invalid id {id:?}")).await;
    }

    // Invalid id through PUT too.
    let r = c
        .http
        .put(&format!("{apps}/Bad_Id"), &json!({"cmd": "sleep 1"}))
        .await;
    assert_eq!(r.status, 422, "PUT /v2/apps/Bad_Id: {}", r.body);
    assert_still_serving(&mut c, "PUT with an invalid id").await;

    // Oversize body (2 MiB) -> 413, on a client of its own: the connection it used must
    // either be announced as closing (`Connection: close`) or stay usable, so the client's
    // next request through its pool does not fail.
    let own = support::Http::new();
    for round in 0..3 {
        let big = support::app_body("/big", 2 * 1024 * 1024).to_string();
        let r = own
            .send(
                reqwest::Method::POST,
                &apps,
                Some(big),
                Some(Duration::from_secs(10)),
            )
            .await
            .unwrap_or_else(|e| panic!("2 MiB POST: transport error instead of 413: {e:#}"));
        assert_eq!(r.status, 413, "2 MiB body: {}", r.body);
        let next = own
            .send(
                reqwest::Method::GET,
                &format!("{}/ping", c.url(0)),
                None,
                None,
            )
            .await;
        if let Err(e) = next {
            panic!(
                "round {round}: the request after a 413 on the same client failed: {e:#} \
                 (the 413 had connection header {:?}; a server that does not read the rest of \
                 the body must send `Connection: close`)",
                r.header("connection")
            );
        }
    }
    assert_still_serving(&mut c, "a 2 MiB body").await;

    // Duplicate POST -> 409.
    let r = c.http.post(&apps, &support::app("/keep")).await;
    assert_eq!(r.status, 409, "duplicate POST: {}", r.body);
    assert!(
        r.json()["message"].is_string(),
        "409 has a message: {}",
        r.body
    );
    assert_still_serving(&mut c, "a duplicate POST").await;

    // Unknown app -> 404 with Marathon's message.
    let r = c.http.get(&format!("{apps}/nope")).await;
    assert_eq!(r.status, 404, "GET unknown app: {}", r.body);
    assert_eq!(r.json()["message"], "App '/nope' does not exist");
    let r = c.http.delete(&format!("{apps}/nope")).await;
    assert_eq!(r.status, 404, "DELETE unknown app: {}", r.body);
    assert_still_serving(&mut c, "requests for an unknown app").await;
}

#[tokio::test]
async fn millions_of_instances_are_refused_everywhere_and_the_master_stays_small() {
    let mut c = Cluster::start(1, &[]);
    c.wait_for_leader(FORM).await;
    c.create_app(0, "/keep").await;
    let apps = format!("{}/v2/apps", c.url(0));
    let rss_before = support::rss_kib(c.masters[0].pid());
    let hostile = json!({"id": "/hostile", "cmd": "sleep 1", "cpus": 0, "mem": 0,
                         "instances": 5_000_000, "portDefinitions": []});
    let refused = |r: support::Resp, what: &str| {
        assert_eq!(r.status, 422, "{what}: {}", r.body);
        let v = r.json();
        let limit = v["details"].as_array().into_iter().flatten().find(|d| {
            d["path"]
                .as_str()
                .is_some_and(|p| p.ends_with("/instances"))
        });
        let errors = limit.map(|d| d["errors"].to_string()).unwrap_or_default();
        assert!(
            errors.contains("at most 10000"),
            "{what} names the limit: {v}"
        );
    };
    refused(c.http.post(&apps, &hostile).await, "POST /v2/apps");
    refused(
        c.http
            .put(&format!("{apps}/keep"), &json!({"instances": 5_000_000}))
            .await,
        "PUT /v2/apps/keep",
    );
    let mut in_group = hostile.clone();
    in_group["id"] = json!("/g/hostile");
    let group = json!({"id": "/g", "apps": [in_group]});
    refused(
        c.http
            .post(&format!("{}/v2/groups", c.url(0)), &group)
            .await,
        "POST /v2/groups",
    );
    let two = c
        .http
        .put(&format!("{apps}/keep"), &json!({"instances": 2}))
        .await;
    assert!(two.ok(), "scale /keep to 2: {}", two.body);
    let scale = json!({"scaleBy": 10_000});
    let url = format!("{}/v2/groups?force=true", c.url(0));
    let r = c.http.put(&url, &scale).await;
    assert_eq!(r.status, 422, "scaleBy past the limit: {}", r.body);
    assert_still_serving(&mut c, "requests for millions of instances").await;
    let rss_after = support::rss_kib(c.masters[0].pid());
    assert!(
        rss_after < rss_before + 100 * 1024,
        "the master grew from {rss_before} KiB to {rss_after} KiB"
    );
}

/// Runs `orch master ARGS` expecting it to refuse to start; returns its stderr.
async fn expect_refusal(args: &[&str]) -> String {
    let mut full = vec!["master"];
    full.extend_from_slice(args);
    let out = run_orch(&full, Duration::from_secs(20)).await;
    assert!(
        !out.status.success(),
        "`orch {}` should fail:\n{}",
        full.join(" "),
        describe_output(&out)
    );
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        !stderr.trim().is_empty(),
        "`orch {}` failed without a message on stderr",
        full.join(" ")
    );
    stderr
}

#[tokio::test]
async fn config_file_with_unknown_key_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let addr = free_addr();
    let data = dir.path().join("data");
    let cfg = dir.path().join("master.yaml");
    std::fs::write(
        &cfg,
        format!(
            "listen: \"{addr}\"\ndata_dir: \"{}\"\nsnapshot_logz: 10\n",
            data.display()
        ),
    )
    .expect("write config");
    let stderr = expect_refusal(&["--config", cfg.to_str().expect("utf-8 path")]).await;
    assert!(
        stderr.contains("snapshot_logz"),
        "message names the unknown key:\n{stderr}"
    );
}

#[tokio::test]
async fn config_file_is_used() {
    let mut c = Cluster::empty();
    let addr = free_addr();
    let data = c.dir().join("from-config");
    let cfg = c.dir().join("master.yaml");
    std::fs::write(
        &cfg,
        format!(
            "listen: \"{addr}\"\nadvertise: \"{addr}\"\nmasters:\n  - \"{addr}\"\ndata_dir: \"{}\"\nsnapshot_logs: 100\n",
            data.display()
        ),
    )
    .expect("write config");
    c.add(&addr, vec!["--config".into(), cfg.display().to_string()]);
    c.wait_for_leader(FORM).await;
    c.create_app(0, "/from-config").await;
    assert!(
        data.exists(),
        "data dir from the config was created at {}",
        data.display()
    );
}

#[tokio::test]
async fn inconsistent_masters_flags_are_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let data = data.to_str().expect("utf-8 path");
    let (a, b, c) = (free_addr(), free_addr(), free_addr());

    // Advertise address not in --masters and no --id.
    let list = format!("{b},{c}");
    let e = expect_refusal(&["--listen", &a, "--masters", &list, "--data-dir", data]).await;
    assert!(
        e.contains(&a) || e.contains("--id") || e.to_lowercase().contains("masters"),
        "message explains that {a} is not in --masters:\n{e}"
    );

    // Duplicate addresses in --masters.
    let list = format!("{a},{a},{b}");
    let e = expect_refusal(&["--listen", &a, "--masters", &list, "--data-dir", data]).await;
    assert!(
        e.to_lowercase().contains("duplicate") || e.contains(&a),
        "message names the duplicate:\n{e}"
    );

    // --id that contradicts the position in --masters.
    let list = format!("{a},{b},{c}");
    let e = expect_refusal(&[
        "--listen",
        &a,
        "--masters",
        &list,
        "--id",
        "2",
        "--data-dir",
        data,
    ])
    .await;
    assert!(
        e.contains("--id") || e.to_lowercase().contains("id"),
        "message names --id:\n{e}"
    );
}

/// A master or agent without TLS listens on loopback only: off loopback it refuses to start
/// and names `--insecure`; with `--insecure` it serves, and warns.
#[tokio::test]
async fn plaintext_off_loopback_is_refused_without_insecure() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let data = data.to_str().expect("utf-8 path");
    let port = free_addr()
        .rsplit_once(':')
        .map(|(_, port)| port.to_owned())
        .expect("a port");
    let everywhere = format!("0.0.0.0:{port}");
    let advertise = format!("127.0.0.1:{port}");
    let e = expect_refusal(&[
        "--listen",
        &everywhere,
        "--advertise",
        &advertise,
        "--data-dir",
        data,
    ])
    .await;
    assert!(
        e.contains(&format!("--listen {everywhere} is not a loopback address"))
            && e.contains("pass --insecure"),
        "{e}"
    );
    let agent = run_orch(
        &[
            "agent",
            "--masters",
            &advertise,
            "--listen",
            &everywhere,
            "--work-dir",
            data,
        ],
        Duration::from_secs(20),
    )
    .await;
    assert!(!agent.status.success(), "{}", describe_output(&agent));
    assert!(
        String::from_utf8_lossy(&agent.stderr).contains("pass --insecure"),
        "{}",
        describe_output(&agent)
    );

    let mut c = Cluster::empty();
    c.add(
        &advertise,
        vec![
            "--listen".into(),
            everywhere.clone(),
            "--advertise".into(),
            advertise.clone(),
            "--insecure".into(),
        ],
    );
    c.wait_for_leader(FORM).await;
    assert!(
        c.masters[0]
            .logs(50)
            .contains("serves plaintext HTTP on 0.0.0.0:"),
        "{}",
        c.masters[0].logs(50)
    );
}

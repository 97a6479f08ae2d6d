//! ACL policies and tokens on a master with TLS, through the real API with `curl` and the real
//! CLI: every endpoint class without a token (401), with a read-only token (reads work,
//! writes 403), with a `/team-a/**` token (403 outside `/team-a`, what lies outside hidden);
//! capabilities (privileged, root) and `orch.*` labels; a revoked token; bad policies and
//! tokens changing nothing; and tasks of a token without `root` running as `nobody`.

mod support;

use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};
use support::tls::{curl, curl_as, send, tls_flags, tls_master, wait_for};
use support::{describe_output, run_orch_in, Cluster};

/// `curl` as the ACL token `secret`.
fn curl_with(pki: &Path, secret: &str, args: &[&str]) -> (u16, String) {
    curl_as(pki, Some(&format!("Bearer {secret}")), args)
}

/// Makes a token holding `policies` with the management token; returns its secret.
fn token(pki: &Path, url: &str, name: &str, policies: &[&str]) -> String {
    let body = json!({"name": name, "policies": policies}).to_string();
    let (status, answer) = curl(pki, &send("POST", &body, &format!("{url}/v1/acl/tokens")));
    assert_eq!(status, 201, "{answer}");
    let answer: Value = serde_json::from_str(&answer).expect("JSON");
    assert_eq!(answer["name"], name);
    answer["secret"].as_str().expect("a secret").to_owned()
}

/// One TLS master with its management token, and (with `agent`) one TLS agent running
/// process tasks. Returns the cluster, its dir, the pki dir and the master's https URL.
async fn tls_cluster(agent: bool) -> (Cluster, std::path::PathBuf, std::path::PathBuf, String) {
    let mut c = Cluster::empty();
    let dir = c.dir().to_owned();
    let (pki, addr) = tls_master(&mut c).await;
    if agent {
        let mut extra = tls_flags(&pki, "agent-1");
        extra.extend(["--containerizers".to_owned(), "mesos".to_owned()]);
        c.add_agent(&extra.iter().map(String::as_str).collect::<Vec<_>>());
        wait_for(&pki, &addr, "/v1/agents", |v| {
            v["agents"].as_array().is_some_and(|a| a.len() == 1)
        })
        .await;
    }
    (c, dir, pki, format!("https://{addr}"))
}

#[tokio::test]
async fn every_endpoint_class_answers_by_the_token_and_its_policies() {
    let (_c, dir, pki, url) = tls_cluster(false).await;
    let at = |path: &str| format!("{url}{path}");
    // The Raft log (repos' secrets, tokens' hashes) is the owner's alone.
    use std::os::unix::fs::PermissionsExt as _;
    let data = std::fs::metadata(dir.join("master-1").join("data")).expect("the data dir");
    assert_eq!(data.permissions().mode() & 0o777, 0o700);

    // Policies and tokens, made with the management token.
    for policy in [
        json!({"name": "read-all", "rules": [{"path": "/**", "access": "read"}]}),
        json!({"name": "team-a", "rules": [{"path": "/team-a/**", "access": "write"}]}),
    ] {
        let (status, body) = curl(
            &pki,
            &send("POST", &policy.to_string(), &at("/v1/acl/policies")),
        );
        assert_eq!(status, 201, "{body}");
    }
    let reader = token(&pki, &url, "reader", &["read-all"]);
    let team_a = token(&pki, &url, "team-a", &["team-a"]);
    let (status, tokens) = curl(&pki, &[&at("/v1/acl/tokens")]);
    assert_eq!(status, 200, "{tokens}");
    assert!(tokens.contains(r#""name":"reader""#), "{tokens}");
    assert!(
        !tokens.contains(&reader) && !tokens.contains(&team_a),
        "secrets listed: {tokens}"
    );
    assert!(!tokens.contains("secret"), "{tokens}");

    // The management token writes anywhere.
    for id in ["/team-b/db", "/team-a/rooted"] {
        let app = json!({"id": id, "cmd": "sleep 100", "instances": 0}).to_string();
        let (status, body) = curl(&pki, &send("POST", &app, &at("/v2/apps")));
        assert_eq!(status, 201, "{body}");
    }

    // Every endpoint class: no token → 401.
    let reads = [
        "/v2/apps",
        "/v2/apps/team-b/db",
        "/v2/groups",
        "/v2/tasks",
        "/v2/deployments",
        "/v2/queue",
        "/v2/info",
        "/v1/agents",
        "/v1/cluster",
        "/v1/gitops",
        "/v1/acl/policies",
        "/v1/acl/tokens",
        "/master/state",
        "/metrics",
    ];
    for path in reads {
        assert_eq!(curl_as(&pki, None, &[&at(path)]).0, 401, "GET {path}");
    }
    let writes = [
        ("POST", "/v2/apps", r#"{"id":"/x","cmd":"sleep 1"}"#),
        ("PUT", "/v2/apps/team-b/db", r#"{"instances":1}"#),
        ("DELETE", "/v2/apps/team-b/db", ""),
        ("POST", "/v2/groups", r#"{"id":"/g"}"#),
        ("POST", "/v2/tasks/delete", r#"{"ids":[]}"#),
        ("POST", "/v1/gitops", r#"{"url":"/tmp/none"}"#),
        (
            "POST",
            "/v1/cluster/masters",
            r#"{"address":"127.0.0.1:1"}"#,
        ),
        (
            "POST",
            "/v1/acl/tokens",
            r#"{"name":"x","policies":["read-all"]}"#,
        ),
    ];
    for (method, path, body) in writes {
        let (status, answer) = curl_as(&pki, None, &send(method, body, &at(path)));
        assert_eq!(status, 401, "{method} {path}: {answer}");
    }

    // A read-only token: every read but the ACLs works, every write is 403.
    for path in reads.iter().filter(|p| !p.starts_with("/v1/acl")) {
        let (status, body) = curl_with(&pki, &reader, &[&at(path)]);
        assert_eq!(status, 200, "GET {path} as reader: {body}");
    }
    for path in ["/v1/acl/policies", "/v1/acl/tokens"] {
        assert_eq!(curl_with(&pki, &reader, &[&at(path)]).0, 403, "GET {path}");
    }
    // (An empty kill list changes nothing, so any token may send it.)
    for (method, path, body) in writes.iter().filter(|w| w.1 != "/v2/tasks/delete") {
        let (status, answer) = curl_with(&pki, &reader, &send(method, body, &at(path)));
        assert_eq!(status, 403, "{method} {path} as reader: {answer}");
        assert!(answer.contains("token 'reader' may not"), "{answer}");
    }

    // A /team-a/** token: writes inside, 403 outside naming the path and the grant; what
    // lies outside is hidden.
    let mine = r#"{"id":"/team-a/web","cmd":"sleep 100","instances":0}"#;
    let (status, body) = curl_with(&pki, &team_a, &send("POST", mine, &at("/v2/apps")));
    assert_eq!(status, 201, "{body}");
    let theirs = r#"{"id":"/team-b/web","cmd":"sleep 100","instances":0}"#;
    let (status, body) = curl_with(&pki, &team_a, &send("POST", theirs, &at("/v2/apps")));
    assert_eq!(status, 403, "{body}");
    assert!(
        body.contains("/team-b/web") && body.contains("write access"),
        "{body}"
    );
    let (status, body) = curl_with(
        &pki,
        &team_a,
        &send(
            "PUT",
            r#"{"cmd":"sleep 1","instances":2}"#,
            &at("/v2/apps/team-b/db"),
        ),
    );
    assert_eq!(status, 403, "{body}");
    let (status, body) = curl_with(&pki, &team_a, &send("DELETE", "", &at("/v2/groups")));
    assert_eq!(status, 403, "deleting the root group: {body}");
    let (status, listed) = curl_with(&pki, &team_a, &[&at("/v2/apps")]);
    assert_eq!(status, 200, "{listed}");
    assert!(
        listed.contains("/team-a/web") && !listed.contains("/team-b/db"),
        "{listed}"
    );
    let (status, body) = curl_with(&pki, &team_a, &[&at("/v2/apps/team-b/db")]);
    assert_eq!(status, 404, "hidden: {body}");
    let (_, groups) = curl_with(&pki, &team_a, &[&at("/v2/groups")]);
    assert!(!groups.contains("team-b"), "{groups}");
    for path in ["/v1/agents", "/v2/events", "/v1/snapshots", "/master/state"] {
        let (status, body) = curl_with(&pki, &team_a, &["--max-time", "2", &at(path)]);
        assert_eq!(status, 403, "GET {path} as team-a: {body}");
        assert!(body.contains("read access on /**"), "{body}");
    }

    // Capabilities: privileged Docker needs 'privileged'; changing an app that runs as
    // root needs 'root'; nothing changes.
    let privileged = json!({"id": "/team-a/priv", "cmd": "sleep 1", "user": "nobody",
        "networks": [{"mode": "container/bridge"}],
        "container": {"type": "DOCKER", "docker": {"image": "busybox", "privileged": true}}});
    let (status, body) = curl_with(
        &pki,
        &team_a,
        &send("POST", &privileged.to_string(), &at("/v2/apps")),
    );
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("'privileged'"), "{body}");
    let (status, body) = curl_with(
        &pki,
        &team_a,
        &send("PUT", r#"{"cmd":"sleep 5"}"#, &at("/v2/apps/team-a/rooted")),
    );
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("'root'"), "{body}");
    let (_, rooted) = curl(&pki, &[&at("/v2/apps/team-a/rooted")]);
    assert!(rooted.contains(r#""cmd":"sleep 100""#), "{rooted}");

    // orch.* labels are never taken from clients, not even the management token's.
    let labelled = r#"{"id":"/team-a/l","cmd":"sleep 1","labels":{"orch.gitops/repo":"x"}}"#;
    for (status, body) in [
        curl(&pki, &send("POST", labelled, &at("/v2/apps"))),
        curl_with(&pki, &team_a, &send("POST", labelled, &at("/v2/apps"))),
    ] {
        assert_eq!(status, 422, "{body}");
        assert!(body.contains(r#""path":"/labels""#), "{body}");
    }

    // Bad policies and tokens: 422 naming the field, nothing changes.
    let bad = r#"{"name":"Bad Name","rules":[{"path":"team-c","access":"everything"}],"capabilities":["sudo"]}"#;
    let (status, body) = curl(&pki, &send("POST", bad, &at("/v1/acl/policies")));
    assert_eq!(status, 422, "{body}");
    for field in ["/name", "/rules(0)/path", "/capabilities(0)"] {
        assert!(
            body.contains(&format!(r#""path":"{field}""#)),
            "{field}: {body}"
        );
    }
    let (status, body) = curl(
        &pki,
        &send(
            "POST",
            r#"{"name":"x","policies":["nope"]}"#,
            &at("/v1/acl/tokens"),
        ),
    );
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("nope"), "{body}");
    let (_, policies) = curl(&pki, &[&at("/v1/acl/policies")]);
    let policies: Value = serde_json::from_str(&policies).expect("JSON");
    assert_eq!(
        policies["policies"].as_array().map(Vec::len),
        Some(2),
        "{policies}"
    );
    let (_, tokens) = curl(&pki, &[&at("/v1/acl/tokens")]);
    let tokens: Value = serde_json::from_str(&tokens).expect("JSON");
    assert_eq!(
        tokens["tokens"].as_array().map(Vec::len),
        Some(2),
        "{tokens}"
    );

    // A revoked token gets 401.
    let id = tokens["tokens"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|t| t["name"] == "team-a")
        .and_then(|t| t["id"].as_str())
        .expect("team-a's id")
        .to_owned();
    let (status, body) = curl(
        &pki,
        &["-X", "DELETE", &at(&format!("/v1/acl/tokens/{id}"))],
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(curl_with(&pki, &team_a, &[&at("/v2/apps")]).0, 401);
}

/// The CLI's `orch acl` commands, and tasks of a token without the `root` capability
/// running as `nobody` while the management token's run as root.
#[tokio::test]
async fn the_cli_manages_acls_and_unprivileged_apps_run_as_nobody() {
    let (c, dir, pki, url) = tls_cluster(true).await;
    let ca = pki.join("ca.pem").display().to_string();
    let management = std::fs::read_to_string(pki.join("token")).expect("the token");
    let orch = |args: Vec<String>, token: String| {
        let dir = dir.clone();
        let mut all = vec![
            "--master".to_owned(),
            url.clone(),
            "--ca".to_owned(),
            ca.clone(),
        ];
        all.extend(["--token".to_owned(), token.trim().to_owned()]);
        all.extend(args);
        async move {
            let args: Vec<&str> = all.iter().map(String::as_str).collect();
            run_orch_in(Some(&dir), &args, Duration::from_secs(30)).await
        }
    };
    let words = |text: &str| {
        text.split_whitespace()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    std::fs::write(
        dir.join("team-a.json"),
        r#"{"name": "team-a", "rules": [{"path": "/team-a/**", "access": "write"}]}"#,
    )
    .expect("write the policy");
    let out = orch(words("acl policy apply team-a.json"), management.clone()).await;
    assert!(out.status.success(), "{}", describe_output(&out));
    let out = orch(words("acl policy list"), management.clone()).await;
    let listed = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        listed.contains("team-a") && listed.contains("/team-a/**:write"),
        "{listed}"
    );
    let out = orch(
        words("acl token create --name ci --policy team-a"),
        management.clone(),
    )
    .await;
    assert!(out.status.success(), "{}", describe_output(&out));
    let printed = String::from_utf8_lossy(&out.stdout).into_owned();
    let secret = printed.lines().last().unwrap_or_default().trim().to_owned();
    assert_eq!(secret.len(), 64, "{printed}");
    let out = orch(words("acl token list"), management.clone()).await;
    let listed = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        listed.contains("ci") && !listed.contains(&secret),
        "{listed}"
    );
    let out = orch(words("acl policy delete nope"), management.clone()).await;
    assert!(
        !out.status.success(),
        "deleting an unknown policy succeeded"
    );
    assert!(
        describe_output(&out).contains("404"),
        "{}",
        describe_output(&out)
    );
    let out = orch(words("acl token list"), secret.clone()).await;
    assert!(
        !out.status.success() && describe_output(&out).contains("403"),
        "{}",
        describe_output(&out)
    );

    // Each writes an app that records who its task runs as.
    let record = "id -u > uid; sleep 100";
    for (id, token) in [
        ("/team-a/mine", secret.clone()),
        ("/ops", management.clone()),
    ] {
        let file = dir.join(format!("{}.json", id.replace('/', "_")));
        let app = json!({"id": id, "cmd": record, "cpus": 0.1, "mem": 16, "instances": 1});
        std::fs::write(&file, app.to_string()).expect("write the app");
        let out = orch(
            vec!["app".into(), "add".into(), file.display().to_string()],
            token,
        )
        .await;
        assert!(out.status.success(), "{id}: {}", describe_output(&out));
    }
    let sandboxes = dir.join("agent-1").join("work").join("sandboxes");
    let uid_of = |app: &str| {
        std::fs::read_dir(&sandboxes)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|entry| entry.file_name().to_string_lossy().starts_with(app))
            .find_map(|entry| std::fs::read_to_string(entry.path().join("uid")).ok())
            .map(|uid| uid.trim().to_owned())
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let (mine, ops) = loop {
        if let (Some(mine), Some(ops)) = (uid_of("team-a_mine."), uid_of("ops.")) {
            break (mine, ops);
        }
        assert!(
            Instant::now() < deadline,
            "no uid recorded\n{}",
            c.all_logs(30)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let nobody = nix_nobody();
    assert_eq!(mine, nobody, "a team-a task runs as nobody");
    assert_eq!(ops, "0", "a management task runs as the agent's user");
}

/// The uid of `nobody` on this machine.
fn nix_nobody() -> String {
    let out = std::process::Command::new("id")
        .args(["-u", "nobody"])
        .output()
        .expect("run id");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A gitops repo added with `--token-secret` acts with that token: it applies what the
/// token may write, the cluster refuses (and the repo's status says so) what it may not,
/// and once the token is revoked nothing is applied.
#[tokio::test]
async fn a_gitops_repo_can_never_do_more_than_its_token() {
    let (_c, dir, pki, url) = tls_cluster(false).await;
    let at = |path: &str| format!("{url}{path}");
    let policy = r#"{"name":"team-a","rules":[{"path":"/team-a/**","access":"write"}]}"#;
    assert_eq!(
        curl(&pki, &send("POST", policy, &at("/v1/acl/policies"))).0,
        201
    );
    let secret = token(&pki, &url, "deployer", &["team-a"]);
    let ca = pki.join("ca.pem").display().to_string();
    let management = std::fs::read_to_string(pki.join("token")).expect("the token");
    let repos: Vec<support::GitRepo> = (0..2).map(|_| support::GitRepo::new()).collect();
    for (repo, group) in repos.iter().zip(["/team-a", "/team-b"]) {
        repo.write(
            "apps/web.json",
            r#"{"id": "web", "cmd": "sleep 100", "instances": 0}"#,
        );
        repo.commit("web");
        let name = group.trim_start_matches('/');
        let repo_path = repo.path().display().to_string();
        let args = [
            "--master",
            &url,
            "--ca",
            &ca,
            "--token",
            management.trim(),
            "gitops",
            "add",
            "--repo",
            &repo_path,
            "--name",
            name,
            "--group",
            group,
            "--interval",
            "1s",
            "--token-secret",
            &secret,
        ];
        let out = run_orch_in(Some(&dir), &args, Duration::from_secs(30)).await;
        assert!(out.status.success(), "{}", describe_output(&out));
    }
    let status_of = |name: &str| {
        let (_, body) = curl(&pki, &[&at(&format!("/v1/gitops/{name}"))]);
        serde_json::from_str::<Value>(&body).unwrap_or_default()
    };
    let history_says = |status: &Value, text: &str| {
        status["history"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|sync| {
                sync["message"]
                    .as_str()
                    .is_some_and(|message| message.contains(text))
            })
    };
    let eventually = |what: &str, done: &dyn Fn() -> bool| {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !done() {
            assert!(Instant::now() < deadline, "{what}");
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    eventually("team-a's repo applied", &|| {
        status_of("team-a")["lastApplied"].as_str() == Some(&repos[0].head())
    });
    assert_eq!(curl(&pki, &[&at("/v2/apps/team-a/web")]).0, 200);
    eventually("team-b's repo refused", &|| {
        history_says(&status_of("team-b"), "may not change /team-b")
    });
    assert_eq!(curl(&pki, &[&at("/v2/apps/team-b/web")]).0, 404);
    let status = status_of("team-a");
    assert!(!status.to_string().contains(&secret), "{status}");

    // Revoked: the next commit applies nothing.
    let (_, tokens) = curl(&pki, &[&at("/v1/acl/tokens")]);
    let id = serde_json::from_str::<Value>(&tokens).unwrap_or_default()["tokens"][0]["id"]
        .as_str()
        .expect("the token's id")
        .to_owned();
    assert_eq!(
        curl(
            &pki,
            &["-X", "DELETE", &at(&format!("/v1/acl/tokens/{id}"))]
        )
        .0,
        200
    );
    repos[0].write(
        "apps/api.json",
        r#"{"id": "api", "cmd": "sleep 100", "instances": 0}"#,
    );
    repos[0].commit("api");
    eventually("the revoked token's repo refused", &|| {
        history_says(&status_of("team-a"), "was revoked")
    });
    assert_eq!(curl(&pki, &[&at("/v2/apps/team-a/api")]).0, 404);
}

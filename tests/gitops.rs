//! GitOps end to end with real git repos, a real master and agent running process tasks:
//! webhooks (GitHub, GitLab, generic CI; bad signatures refused), a remote (file://) repo,
//! templates, prune, drift and self-heal, manual rollback and resume, and auto-rollback of
//! a commit that never becomes healthy.

mod support;

use hmac::{KeyInit, Mac};
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use support::{Cluster, GitRepo};

const RESOURCES: &str = "cpus:8;mem:8192;disk:1000;ports:[31000-31200]";

async fn start() -> (Cluster, usize) {
    let mut cluster = Cluster::start(1, &[]);
    let leader = cluster.wait_for_leader(Duration::from_secs(15)).await;
    add_agent(&mut cluster, leader).await;
    (cluster, leader)
}

/// Adds one agent running process tasks and waits until `leader` sees it.
async fn add_agent(cluster: &mut Cluster, leader: usize) {
    cluster.add_agent(&["--resources", RESOURCES, "--containerizers", "mesos"]);
    cluster
        .wait_for_agents(leader, 1, Duration::from_secs(15))
        .await;
}

fn app(id: &str, instances: u32, cmd: &str) -> String {
    json!({"id": id, "cmd": cmd, "cpus": 0.1, "mem": 16, "instances": instances}).to_string()
}

/// The status of the only watched repo, asked of master 0.
async fn status(cluster: &Cluster) -> Value {
    status_via(cluster, &cluster.url(0)).await
}

/// The status of the only watched repo, asked of the master at `base`.
async fn status_via(cluster: &Cluster, base: &str) -> Value {
    let r = cluster.http.get(&format!("{base}/v1/gitops")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["repos"][0].clone()
}

/// Waits until the repo's status (asked of master 0) satisfies `ok`.
async fn wait_status(cluster: &Cluster, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
    wait_status_via(cluster, &cluster.url(0), what, ok).await
}

/// Waits until the repo's status, asked of the master at `base`, satisfies `ok`.
async fn wait_status_via(
    cluster: &Cluster,
    base: &str,
    what: &str,
    ok: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = status_via(cluster, base).await;
        if ok(&status) {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "gitops status never showed {what}: {status:#}\n{}",
            cluster.all_logs(30)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn synced_at(status: &Value, commit: &str) -> bool {
    status["lastApplied"] == commit && status["sync"] == "Synced" && status["health"] == "Healthy"
}

/// The app's definition, or Null when it does not exist.
async fn app_json(cluster: &Cluster, id: &str) -> Value {
    let r = cluster
        .http
        .get(&format!("{}/v2/apps{id}", cluster.url(0)))
        .await;
    if r.status == 404 {
        return Value::Null;
    }
    r.json()["app"].clone()
}

async fn running(cluster: &Cluster, id: &str) -> usize {
    let r = cluster
        .http
        .get(&format!("{}/v2/apps{id}/tasks", cluster.url(0)))
        .await;
    r.json()["tasks"].as_array().map_or(0, |tasks| {
        tasks
            .iter()
            .filter(|t| t["state"] == "TASK_RUNNING")
            .count()
    })
}

/// Ids of the app's running tasks.
async fn running_ids(cluster: &Cluster, id: &str) -> Vec<String> {
    let r = cluster
        .http
        .get(&format!("{}/v2/apps{id}/tasks", cluster.url(0)))
        .await;
    let tasks = r.json()["tasks"].as_array().cloned().unwrap_or_default();
    let running = tasks.iter().filter(|t| t["state"] == "TASK_RUNNING");
    running
        .filter_map(|t| t["id"].as_str().map(str::to_owned))
        .collect()
}

async fn watch(cluster: &Cluster, config: Value) -> Value {
    let r = cluster
        .http
        .post(&format!("{}/v1/gitops", cluster.url(0)), &config)
        .await;
    assert!(
        r.status == 201 || r.status == 200,
        "{} {}",
        r.status,
        r.body
    );
    r.json()
}

async fn hook(cluster: &Cluster, headers: &[(&str, String)], body: &str) -> support::Resp {
    let mut request = cluster
        .http
        .client
        .post(format!("{}/v1/gitops/webhook", cluster.url(0)))
        .body(body.to_owned());
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let response = request.send().await.expect("webhook call");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.text().await.expect("webhook answer");
    support::Resp {
        status,
        headers,
        body,
    }
}

/// A GitHub webhook call: event `event`, the body signed with `secret`.
async fn github_hook(cluster: &Cluster, event: &str, secret: &str, body: &str) -> support::Resp {
    let headers = [
        ("X-GitHub-Event", event.to_owned()),
        ("X-Hub-Signature-256", github_signature(secret, body)),
    ];
    hook(cluster, &headers, body).await
}

/// A GitLab push hook with `token` in `X-Gitlab-Token`.
async fn gitlab_hook(cluster: &Cluster, token: &str, body: &str) -> support::Resp {
    let headers = [
        ("X-Gitlab-Event", "Push Hook".to_owned()),
        ("X-Gitlab-Token", token.to_owned()),
    ];
    hook(cluster, &headers, body).await
}

fn github_signature(secret: &str, body: &str) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("any key");
    mac.update(body.as_bytes());
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn github_push(branch: &str, commit: &str) -> String {
    json!({"ref": format!("refs/heads/{branch}"), "after": commit, "repository": {"full_name": "acme/site"}}).to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn webhooks_trigger_syncs_and_bad_signatures_do_not() {
    let (cluster, _) = start().await;
    let repo = GitRepo::new();
    repo.write("apps/web.json", &app("/web", 1, "sleep 1000"));
    let first = repo.commit("web");
    // A URL, so there is no file watch, and a poll that never comes: only webhooks fetch.
    let url = format!("file://{}", repo.path().display());
    watch(
        &cluster,
        json!({"repo": url, "name": "site", "interval": "1h", "webhookSecret": "s3cret"}),
    )
    .await;
    wait_status(&cluster, "the first commit synced", |s| {
        synced_at(s, &first)
    })
    .await;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let before = loop {
        let ids = running_ids(&cluster, "/web").await;
        if !ids.is_empty() || std::time::Instant::now() > deadline {
            break ids;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(before.len(), 1, "the first instance runs");

    repo.write("apps/web.json", &app("/web", 2, "sleep 1000"));
    let second = repo.commit("two instances");
    let body = github_push("main", &second);
    let wrong = github_hook(&cluster, "push", "guess", &body).await;
    assert_eq!(wrong.status, 401, "{}", wrong.body);
    let unsigned = hook(&cluster, &[("X-GitHub-Event", "push".into())], &body).await;
    assert_eq!(unsigned.status, 401, "{}", unsigned.body);
    let other_branch = github_push("feature", &second);
    let ignored = github_hook(&cluster, "push", "s3cret", &other_branch).await;
    assert_eq!(ignored.status, 200, "{}", ignored.body);
    assert_eq!(ignored.json()["triggered"], json!([]));
    tokio::time::sleep(Duration::from_millis(700)).await;
    let unchanged = status(&cluster).await;
    assert_eq!(
        unchanged["lastFetched"],
        first.as_str(),
        "no fetch without a valid push"
    );
    assert_eq!(app_json(&cluster, "/web").await["instances"], 1);

    let ping = github_hook(&cluster, "ping", "s3cret", "{}").await;
    assert_eq!(ping.status, 200, "{}", ping.body);
    let pushed = github_hook(&cluster, "push", "s3cret", &body).await;
    assert_eq!(pushed.status, 202, "{}", pushed.body);
    assert_eq!(pushed.json()["triggered"], json!(["site"]));
    let synced = wait_status(&cluster, "the pushed commit synced", |s| {
        synced_at(s, &second)
    })
    .await;
    assert_eq!(running(&cluster, "/web").await, 2);
    let sync = &synced["history"][0];
    assert_eq!(sync["commit"], second.as_str());
    assert_eq!(sync["result"], "Applied");
    assert!(sync["deploymentId"].is_string(), "{sync}");
    // Only `instances` changed: a scale. The running instance was not restarted, and the
    // app's configuration, and so its commit, is the first one's.
    assert!(
        running_ids(&cluster, "/web").await.contains(&before[0]),
        "a scale-only commit restarts nothing"
    );
    let labels = &app_json(&cluster, "/web").await["labels"];
    assert_eq!(labels["orch.gitops/commit"], first.as_str());
    assert_eq!(labels["orch.gitops/repo"], "site");

    // GitLab's token and a generic CI bearer call.
    repo.write("apps/web.json", &app("/web", 1, "sleep 1000"));
    let third = repo.commit("back to one");
    let gitlab_body = json!({"ref": "refs/heads/main", "checkout_sha": third}).to_string();
    let bad_token = gitlab_hook(&cluster, "nope", &gitlab_body).await;
    assert_eq!(bad_token.status, 401, "{}", bad_token.body);
    let gitlab = gitlab_hook(&cluster, "s3cret", &gitlab_body).await;
    assert_eq!(gitlab.status, 202, "{}", gitlab.body);
    wait_status(&cluster, "the GitLab push synced", |s| synced_at(s, &third)).await;
    repo.write("apps/web.json", &app("/web", 2, "sleep 1000"));
    let fourth = repo.commit("two again");
    let ci = hook(
        &cluster,
        &[("Authorization", "Bearer s3cret".into())],
        &json!({"ref": "main", "commit": fourth}).to_string(),
    )
    .await;
    assert_eq!(ci.status, 202, "{}", ci.body);
    wait_status(&cluster, "the CI call synced", |s| synced_at(s, &fourth)).await;
    let malformed = hook(
        &cluster,
        &[("Authorization", "Bearer s3cret".into())],
        "{not json",
    )
    .await;
    assert_eq!(malformed.status, 400, "{}", malformed.body);
}

#[tokio::test(flavor = "multi_thread")]
async fn prune_drift_self_heal_and_templates() {
    let (cluster, _) = start().await;
    let repo = GitRepo::new();
    repo.write("apps/a.json", &app("/a", 1, "sleep 1000"));
    let b = json!({"id": "/b", "cmd": "sleep 1000", "cpus": 0.1, "mem": 16,
        "env": {"COMMIT": "{{ git.sha }}", "BRANCH": "{{ git.branch }}", "TIER": "{{ vars.tier }}"}});
    repo.write("apps/b.json", &b.to_string());
    let first = repo.commit("a and b");
    let path = repo.path().display().to_string();
    watch(
        &cluster,
        json!({"repo": path, "name": "apps", "vars": {"tier": "gold"}}),
    )
    .await;
    wait_status(&cluster, "the first commit synced", |s| {
        synced_at(s, &first)
    })
    .await;
    let env = &app_json(&cluster, "/b").await["env"];
    assert_eq!(
        env,
        &json!({"COMMIT": first, "BRANCH": "main", "TIER": "gold"})
    );

    // Prune off: b's file goes, b stays. A local repo is watched: no sync call is needed.
    repo.remove("apps/b.json");
    let second = repo.commit("drop b");
    wait_status(&cluster, "the second commit applied", |s| {
        s["lastApplied"] == second.as_str() && s["sync"] == "Synced"
    })
    .await;
    assert!(app_json(&cluster, "/b").await.is_object(), "prune is off");
    // Prune on: b goes; an app created through the API stays.
    let manual = cluster
        .http
        .post(
            &format!("{}/v2/apps", cluster.url(0)),
            &json!({"id": "/manual", "cmd": "sleep 1000", "cpus": 0.1, "mem": 16}),
        )
        .await;
    assert_eq!(manual.status, 201, "{}", manual.body);
    watch(
        &cluster,
        json!({"repo": path, "name": "apps", "vars": {"tier": "gold"}, "prune": true}),
    )
    .await;
    let sync = cluster
        .http
        .post(&format!("{}/v1/gitops/sync", cluster.url(0)), &json!({}))
        .await;
    assert_eq!(sync.status, 200, "{}", sync.body);
    let deadline = Instant::now() + Duration::from_secs(15);
    while app_json(&cluster, "/b").await.is_object() {
        assert!(Instant::now() < deadline, "prune did not delete /b");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        app_json(&cluster, "/manual").await.is_object(),
        "not ours to prune"
    );

    // Drift: a manual scale shows as OutOfSync and stays without self-heal.
    let scaled = cluster
        .http
        .put(
            &format!("{}/v2/apps/a?force=true", cluster.url(0)),
            &json!({"instances": 3}),
        )
        .await;
    assert_eq!(scaled.status, 200, "{}", scaled.body);
    let drifted = wait_status(&cluster, "drift", |s| s["sync"] == "OutOfSync").await;
    let a = drifted["apps"]
        .as_array()
        .and_then(|apps| apps.iter().find(|app| app["id"] == "/a"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(a["sync"], "OutOfSync", "{drifted:#}");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(app_json(&cluster, "/a").await["instances"], 3);
    // Self-heal reverts it.
    watch(
        &cluster,
        json!({"repo": path, "name": "apps", "vars": {"tier": "gold"}, "prune": true, "selfHeal": true}),
    )
    .await;
    wait_status(&cluster, "self-heal", |s| synced_at(s, &second)).await;
    assert_eq!(app_json(&cluster, "/a").await["instances"], 1);

    // Manual rollback pauses auto-sync; resume syncs the tip again.
    let rollback = support::run_orch(
        &[
            "--master",
            &cluster.url(0),
            "gitops",
            "rollback",
            "--to",
            &first[..7],
        ],
        Duration::from_secs(30),
    )
    .await;
    assert!(
        rollback.status.success(),
        "{}",
        support::describe_output(&rollback)
    );
    let rolled = status(&cluster).await;
    assert_eq!(rolled["lastApplied"], first.as_str());
    assert_eq!(rolled["paused"], true);
    assert_eq!(rolled["history"][0]["result"], "RolledBack");
    assert!(app_json(&cluster, "/b").await.is_object(), "b is back");
    repo.write("apps/c.json", &app("/c", 1, "sleep 1000"));
    let third = repo.commit("c");
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        status(&cluster).await["lastApplied"],
        first.as_str(),
        "paused"
    );
    let resume = support::run_orch(
        &["--master", &cluster.url(0), "gitops", "resume"],
        Duration::from_secs(30),
    )
    .await;
    assert!(
        resume.status.success(),
        "{}",
        support::describe_output(&resume)
    );
    wait_status(&cluster, "the tip after resume", |s| synced_at(s, &third)).await;
    let text = support::run_orch(
        &["--master", &cluster.url(0), "gitops", "status"],
        Duration::from_secs(30),
    )
    .await;
    let printed = String::from_utf8_lossy(&text.stdout);
    assert!(
        printed.contains("sync: Synced") && printed.contains(&third[..7]),
        "{printed}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_commit_that_never_gets_healthy_is_rolled_back() {
    let (cluster, _) = start().await;
    let repo = GitRepo::new();
    repo.write("apps/web.json", &app("/web", 1, "sleep 1000"));
    let good = repo.commit("good");
    let path = repo.path().display().to_string();
    watch(
        &cluster,
        json!({"repo": path, "autoRollback": true, "rollbackDeadline": "3s"}),
    )
    .await;
    // Healthy for a while (not just RUNNING once) before it counts as the last healthy one.
    wait_status(&cluster, "the good commit healthy", |s| {
        synced_at(s, &good) && s["lastHealthy"] == good.as_str()
    })
    .await;
    // A command that exits at once: the deployment never completes.
    repo.write("apps/web.json", &app("/web", 1, "exit 1"));
    let bad = repo.commit("bad");
    let rolled = wait_status(&cluster, "the rollback", |s| {
        s["lastApplied"] == good.as_str() && s["failedCommits"] == json!([bad])
    })
    .await;
    let results: Vec<&str> = rolled["history"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|sync| sync["result"].as_str())
        .collect();
    assert_eq!(
        results[..3],
        ["RolledBack", "Failed", "Applied"],
        "{rolled:#}"
    );
    assert_eq!(app_json(&cluster, "/web").await["cmd"], "sleep 1000");
    wait_status(&cluster, "healthy again", |s| s["health"] == "Healthy").await;
    // The failed commit is not synced again, though it is the branch tip.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let after = status(&cluster).await;
    assert_eq!(after["lastApplied"], good.as_str());
    assert_eq!(after["lastFetched"], bad.as_str());
    assert_eq!(after["sync"], "OutOfSync");
}

/// A real sshd (Debian's openssh-server) on a loopback port, with its own host key and one
/// authorised client key; killed on drop.
struct Sshd {
    dir: tempfile::TempDir,
    port: u16,
    child: std::process::Child,
}

impl Sshd {
    fn start() -> Option<Sshd> {
        let sshd = std::path::Path::new("/usr/sbin/sshd");
        if !sshd.exists() {
            eprintln!(
                "note: /usr/sbin/sshd missing (apt-get install openssh-server); ssh test skipped"
            );
            return None;
        }
        let dir = tempfile::tempdir().expect("temp dir");
        for key in ["host_key", "client_key"] {
            let path = dir.path().join(key);
            let out = std::process::Command::new("ssh-keygen")
                .args(["-q", "-t", "ecdsa", "-m", "PEM", "-N", "", "-f"])
                .arg(&path)
                .output()
                .expect("ssh-keygen runs");
            assert!(out.status.success(), "ssh-keygen: {out:?}");
        }
        std::fs::copy(
            dir.path().join("client_key.pub"),
            dir.path().join("authorized_keys"),
        )
        .expect("authorized_keys");
        std::fs::create_dir_all("/run/sshd").expect("privilege separation dir");
        let port = support::free_port();
        let config = format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\n\
             AuthorizedKeysFile {d}/authorized_keys\nPasswordAuthentication no\n\
             KbdInteractiveAuthentication no\nPubkeyAuthentication yes\n\
             PermitRootLogin prohibit-password\nStrictModes no\nUsePAM no\nPidFile {d}/sshd.pid\n",
            d = dir.path().display()
        );
        std::fs::write(dir.path().join("sshd_config"), config).expect("sshd_config");
        let log = std::fs::File::create(dir.path().join("sshd.log")).expect("sshd log");
        let child = std::process::Command::new(sshd)
            .args(["-D", "-e", "-f"])
            .arg(dir.path().join("sshd_config"))
            .stderr(log)
            .spawn()
            .expect("sshd starts");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "sshd did not listen on {port}");
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(Sshd { dir, port, child })
    }

    /// A home dir whose `.ssh/known_hosts` trusts this server's host key.
    fn home_trusting_it(&self) -> tempfile::TempDir {
        let home = tempfile::tempdir().expect("temp dir");
        let key = std::fs::read_to_string(self.dir.path().join("host_key.pub")).expect("host key");
        let mut fields = key.split_whitespace();
        let (kind, blob) = (fields.next().unwrap_or(""), fields.next().unwrap_or(""));
        std::fs::create_dir_all(home.path().join(".ssh")).expect(".ssh");
        std::fs::write(
            home.path().join(".ssh/known_hosts"),
            format!("[127.0.0.1]:{} {kind} {blob}\n", self.port),
        )
        .expect("known_hosts");
        home
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("{}", support::tail(&self.dir.path().join("sshd.log"), 30));
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_ssh_remote_is_fetched_with_a_key_and_a_known_host() {
    let Some(sshd) = Sshd::start() else { return };
    let home = sshd.home_trusting_it();
    let mut cluster = Cluster::empty();
    cluster.master_env = vec![("HOME".into(), home.path().display().to_string())];
    let addr = support::free_addr();
    cluster.add(&addr, vec!["--listen".into(), addr.clone()]);
    let leader = cluster.wait_for_leader(Duration::from_secs(15)).await;
    add_agent(&mut cluster, leader).await;
    let repo = GitRepo::new();
    repo.write("apps/web.json", &app("/web", 1, "sleep 1000"));
    let head = repo.commit("web");
    let url = format!(
        "ssh://root@127.0.0.1:{}{}",
        sshd.port,
        repo.path().display()
    );
    let key = sshd.dir.path().join("client_key").display().to_string();
    watch(
        &cluster,
        json!({"repo": url, "name": "over-ssh", "sshKey": key, "interval": "1h"}),
    )
    .await;
    let synced = wait_status(&cluster, "the ssh remote synced", |s| synced_at(s, &head)).await;
    assert_eq!(synced["config"]["sshKey"], key.as_str());
    assert_eq!(running(&cluster, "/web").await, 1);

    // A key the server does not know: the fetch fails, the status says so, nothing changes.
    let stranger = tempfile::tempdir().expect("temp dir");
    let stranger_key = stranger.path().join("key");
    let out = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ecdsa", "-m", "PEM", "-N", "", "-f"])
        .arg(&stranger_key)
        .output()
        .expect("ssh-keygen runs");
    assert!(out.status.success());
    let other = json!({"repo": url, "name": "over-ssh", "sshKey": stranger_key.display().to_string(), "interval": "1h"});
    watch(&cluster, other).await;
    let refused = wait_status(&cluster, "the refused key", |s| s["sync"] == "Error").await;
    assert!(
        refused["error"]
            .as_str()
            .is_some_and(|e| e.contains("fetch") || e.contains("reach")),
        "{refused:#}"
    );
    assert_eq!(refused["lastApplied"], head.as_str());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_leader_carries_on_with_the_repo_and_its_history() {
    let mut cluster = Cluster::start(3, &[]);
    let leader = cluster.wait_for_leader(Duration::from_secs(20)).await;
    add_agent(&mut cluster, leader).await;
    let repo = GitRepo::new();
    repo.write("apps/web.json", &app("/web", 1, "sleep 1000"));
    let first = repo.commit("web");
    let follower = (leader + 1) % 3;
    // Added through a follower, which forwards to the leader.
    let config = json!({"repo": repo.path().display().to_string(), "interval": "1h"});
    let r = cluster
        .http
        .post(&format!("{}/v1/gitops", cluster.url(follower)), &config)
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let base = cluster.url(follower);
    wait_status_via(&cluster, &base, "the first commit", |s| {
        synced_at(s, &first)
    })
    .await;

    cluster.masters[leader].kill9();
    let survivors: Vec<usize> = (0..3).filter(|i| *i != leader).collect();
    let new_leader = cluster
        .wait_for_leader_among(&survivors, None, Duration::from_secs(20))
        .await;
    let base = cluster.url(new_leader);
    let carried = wait_status_via(&cluster, &base, "the record on the new leader", |s| {
        s["sync"] == "Synced"
    })
    .await;
    assert_eq!(carried["lastApplied"], first.as_str());
    assert_eq!(
        carried["history"].as_array().map(Vec::len),
        Some(1),
        "{carried:#}"
    );
    // The new leader's worker watches the repo: a commit is synced without a call.
    repo.write("apps/web.json", &app("/web", 2, "sleep 1000"));
    let second = repo.commit("two");
    wait_status_via(&cluster, &base, "the commit after the failover", |s| {
        synced_at(s, &second)
    })
    .await;
}

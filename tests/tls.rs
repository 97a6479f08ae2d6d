//! Masters with TLS (`--tls-cert`, `--tls-key`, `--tls-ca` from `orch pki`), checked with
//! the real `curl --cacert` and `openssl s_client`: three masters form a cluster over mutual
//! TLS, a write sent to a follower reaches the leader over HTTPS, plaintext gets no answer,
//! `/internal/raft/*` answers only a master certificate of the cluster CA, and every other
//! request but `GET /ping` needs the management token.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use support::tls::{curl, curl_as, issue, master_flags, send, tls_flags, tls_master, wait_for};
use support::{describe_output, free_addr, run_orch_in, Cluster};

fn cert_args(pki: &Path, name: &str) -> Vec<String> {
    [
        "--cert".to_owned(),
        pki.join(format!("{name}.pem")).display().to_string(),
        "--key".to_owned(),
        pki.join(format!("{name}-key.pem")).display().to_string(),
    ]
    .to_vec()
}

#[tokio::test]
async fn masters_form_a_cluster_over_mutual_tls_and_guard_their_raft_routes() {
    let mut c = Cluster::empty();
    let dir = c.dir().to_owned();
    let pki = dir.join("pki");
    issue(&dir, &["m1", "m2", "m3"], &["a1"]).await;
    let addrs: Vec<String> = (0..3).map(|_| free_addr()).collect();

    for (i, addr) in addrs.iter().enumerate() {
        let port = addr.rsplit_once(':').map(|(_, p)| p).expect("a port");
        // The first listens on every address: with TLS that needs no --insecure.
        let listen = if i == 0 {
            format!("0.0.0.0:{port}")
        } else {
            addr.clone()
        };
        let mut args = vec![
            "--listen".to_owned(),
            listen,
            "--advertise".to_owned(),
            addr.clone(),
            "--masters".to_owned(),
            addrs.join(","),
        ];
        args.extend(master_flags(&pki, &format!("m{}", i + 1)));
        c.add(addr, args);
    }
    let url = |i: usize, path: &str| format!("https://{}{path}", addrs[i]);
    let deadline = Instant::now() + Duration::from_secs(30);
    let leader = loop {
        let (status, body) = curl(&pki, &[&url(0, "/v1/cluster")]);
        let view: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        let members = view["members"].as_array().map_or(0, Vec::len);
        if status == 200 && view["leader_address"].is_string() && members == 3 {
            break view["leader_address"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "no TLS cluster: {status} {body}\n{}",
            c.all_logs(20)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };

    // Every request but GET /ping carries the token, in any of Marathon clients' forms.
    let token = std::fs::read_to_string(pki.join("token")).expect("the token");
    let token = token.trim();
    let cluster = url(1, "/v1/cluster");
    let (status, body) = curl_as(&pki, None, &[&cluster]);
    assert_eq!(status, 401, "{body}");
    assert!(
        body.contains(r#""message":"authentication required"#),
        "{body}"
    );
    assert_eq!(curl_as(&pki, Some("Bearer wrong"), &[&cluster]).0, 401);
    assert_eq!(
        curl_as(&pki, Some(&format!("token={token}")), &[&cluster]).0,
        200
    );
    let basic = format!("anyone:{token}");
    assert_eq!(curl_as(&pki, None, &["-u", &basic, &cluster]).0, 200);
    assert_eq!(curl_as(&pki, None, &[&url(1, "/ping")]).0, 200);
    // The gitops webhook answers for itself (a forge cannot send the token).
    let (_, body) = curl_as(
        &pki,
        None,
        &["-X", "POST", "-d", "{}", &url(1, "/v1/gitops/webhook")],
    );
    assert!(!body.contains("send the cluster's token"), "{body}");

    // A write sent to a follower is forwarded to the leader over HTTPS.
    let follower = (0..3).find(|&i| addrs[i] != leader).expect("a follower");
    let (status, body) = curl(
        &pki,
        &send(
            "POST",
            r#"{"id":"/tls","cmd":"sleep 100","instances":0}"#,
            &url(follower, "/v2/apps"),
        ),
    );
    assert_eq!(status, 201, "{body}");

    // The CLI: --ca and --token, or ORCH_CA and ORCH_TOKEN; the scheme follows the CA.
    let ca = pki.join("ca.pem").display().to_string();
    let listed = run_orch_in(
        Some(&dir),
        &[
            "--master", &addrs[1], "--ca", &ca, "--token", token, "app", "list",
        ],
        Duration::from_secs(20),
    )
    .await;
    assert!(listed.status.success(), "{}", describe_output(&listed));
    assert!(
        String::from_utf8_lossy(&listed.stdout).contains("/tls"),
        "{}",
        describe_output(&listed)
    );
    let from_env = Command::new(support::BIN)
        .current_dir(&dir)
        .args(["--master", &format!("https://{}", addrs[2]), "app", "list"])
        .env("ORCH_CA", &ca)
        .env("ORCH_TOKEN", token)
        .output()
        .expect("run orch");
    assert!(from_env.status.success(), "{from_env:?}");
    let without = run_orch_in(
        Some(&dir),
        &["--master", &addrs[1], "--ca", &ca, "app", "list"],
        Duration::from_secs(20),
    )
    .await;
    assert!(!without.status.success());
    assert!(
        String::from_utf8_lossy(&without.stderr)
            .contains("401 Unauthorized: authentication required"),
        "{}",
        describe_output(&without)
    );

    // Plaintext gets no HTTP answer.
    let plain = Command::new("curl")
        .args([
            "-s",
            "--max-time",
            "5",
            &format!("http://{}/ping", addrs[1]),
        ])
        .output()
        .expect("run curl");
    assert!(
        !plain.status.success() || plain.stdout.is_empty(),
        "{plain:?}"
    );

    // The certificate chain verifies with openssl.
    let s_client = Command::new("openssl")
        .args(["s_client", "-connect", &addrs[1], "-CAfile"])
        .arg(pki.join("ca.pem"))
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run openssl");
    let shown = String::from_utf8_lossy(&s_client.stdout);
    assert!(shown.contains("Verify return code: 0 (ok)"), "{shown}");

    // Raft routes: nobody and an agent are refused; a master gets through to the checks.
    let vote = url(1, "/internal/raft/vote");
    let (status, body) = curl(&pki, &["-X", "POST", "-d", "x", &vote]);
    assert_eq!(status, 403, "{body}");
    assert!(
        body.contains("show a master certificate of the cluster CA"),
        "{body}"
    );
    let mut as_agent = cert_args(&pki, "a1");
    as_agent.extend(["-X", "POST", "-d", "x", &vote].map(str::to_owned));
    let as_agent: Vec<&str> = as_agent.iter().map(String::as_str).collect();
    assert_eq!(curl(&pki, &as_agent).0, 403);
    let mut as_master = cert_args(&pki, "m1");
    as_master.extend(
        [
            "-X",
            "POST",
            "-H",
            "x-orch-raft-target: 2",
            "-d",
            "x",
            &vote,
        ]
        .map(str::to_owned),
    );
    let as_master: Vec<&str> = as_master.iter().map(String::as_str).collect();
    let (status, body) = curl(&pki, &as_master);
    assert_eq!(
        status, 400,
        "past the certificate check, refused as undecodable: {body}"
    );

    // The flags go together.
    let partial = run_orch_in(
        Some(&dir),
        &[
            "master",
            "--listen",
            &free_addr(),
            "--tls-cert",
            "pki/m1.pem",
        ],
        Duration::from_secs(20),
    )
    .await;
    assert!(!partial.status.success());
    assert!(
        String::from_utf8_lossy(&partial.stderr).contains("--tls-key"),
        "{}",
        describe_output(&partial)
    );
}

/// An agent with TLS registers with a TLS master as itself and runs a task; its certificate
/// does not let another agent register; and it follows no server that shows no master
/// certificate.
#[tokio::test]
async fn agents_talk_to_masters_over_tls_each_only_as_itself() {
    let mut c = Cluster::empty();
    let dir = c.dir().to_owned();
    let (pki, addr) = tls_master(&mut c).await;

    let with_cert = |name: &str| {
        let mut extra = tls_flags(&pki, name);
        extra.extend(["--containerizers".to_owned(), "mesos".to_owned()]);
        extra
    };
    let extra = with_cert("agent-1");
    c.add_agent(&extra.iter().map(String::as_str).collect::<Vec<_>>());
    wait_for(&pki, &addr, "/v1/agents", |v| {
        v["agents"]
            .as_array()
            .is_some_and(|a| a.len() == 1 && a[0]["hostname"] == "agent-1")
    })
    .await;
    let register = format!("https://{addr}/internal/agent/register");
    let (status, body) = curl(&pki, &["-X", "POST", "-d", "{}", &register]);
    assert_eq!(status, 403, "no certificate, no agent: {body}");
    let (status, body) = curl(
        &pki,
        &send(
            "POST",
            r#"{"id":"/over-tls","cmd":"echo hello-tls; sleep 100","instances":1,"cpus":0.1,"mem":16}"#,
            &format!("https://{addr}/v2/apps"),
        ),
    );
    assert_eq!(status, 201, "{body}");
    wait_for(&pki, &addr, "/v2/apps/over-tls/tasks", |v| {
        v["tasks"]
            .as_array()
            .is_some_and(|t| t.iter().any(|t| t["state"] == "TASK_RUNNING"))
    })
    .await;

    // The agent's API answers masters only; clients read task files through a master.
    let agent_state = format!("https://{}/state", c.agents[0].addr);
    let (status, body) = curl(&pki, &[&agent_state]);
    assert_eq!(status, 403, "a client without a master certificate: {body}");
    let mut as_master = cert_args(&pki, "m1");
    as_master.push(agent_state.clone());
    let as_master: Vec<&str> = as_master.iter().map(String::as_str).collect();
    let (status, body) = curl(&pki, &as_master);
    assert_eq!(status, 200, "{body}");
    let (_, tasks) = curl(&pki, &[&format!("https://{addr}/v2/apps/over-tls/tasks")]);
    let tasks: serde_json::Value = serde_json::from_str(&tasks).expect("JSON");
    let task_id = tasks["tasks"][0]["id"]
        .as_str()
        .expect("a task id")
        .to_owned();
    let token = std::fs::read_to_string(pki.join("token")).expect("the token");
    let ca = pki.join("ca.pem").display().to_string();
    let out = run_orch_in(
        Some(&dir),
        &[
            "--master",
            &addr,
            "--ca",
            &ca,
            "--token",
            token.trim(),
            "task",
            "logs",
            &task_id,
        ],
        Duration::from_secs(20),
    )
    .await;
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("hello-tls"),
        "{}",
        describe_output(&out)
    );

    // agent-2 shows agent-1's certificate: refused, never registered.
    c.add_agent(&extra.iter().map(String::as_str).collect::<Vec<_>>());
    let deadline = Instant::now() + Duration::from_secs(10);
    while !c.agents[1].logs(50).contains("cannot act as agent agent-2") {
        assert!(Instant::now() < deadline, "{}", c.agents[1].logs(50));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, agents) = curl(&pki, &[&format!("https://{addr}/v1/agents")]);
    assert!(!agents.contains("agent-2"), "{agents}");

    // A "master" showing an agent certificate gets no agent to follow it.
    let mut impostor = Cluster::empty();
    let fake = free_addr();
    let mut args = vec!["--listen".to_owned(), fake.clone()];
    args.extend(master_flags(&pki, "agent-1"));
    impostor.add(&fake, args);
    wait_for(&pki, &fake, "/ping", |_| true).await;
    impostor.add_agent(&extra.iter().map(String::as_str).collect::<Vec<_>>());
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (_, registered) = curl(&pki, &[&format!("https://{fake}/v1/agents")]);
    assert!(registered.contains(r#""agents":[]"#), "{registered}");
}

/// marathon-python against a master with TLS, verifying it with the cluster CA: its
/// `auth_token=` (DC/OS' `token=` header) and `username=`/`password=` (Basic) forms get in,
/// a wrong token gets 401.
#[tokio::test]
async fn marathon_python_authenticates_with_the_token_over_tls() {
    let Some(python) = support::python() else {
        return;
    };
    let mut c = Cluster::empty();
    let (pki, addr) = tls_master(&mut c).await;
    let script = r#"
import sys
from marathon import MarathonClient
from marathon.exceptions import MarathonHttpError
url, ca, token = sys.argv[1:4]
MarathonClient(url, auth_token=token, verify=ca).list_apps()
MarathonClient(url, username="ops", password=token, verify=ca).list_apps()
try:
    MarathonClient(url, auth_token="wrong", verify=ca).list_apps()
    sys.exit("a wrong token was accepted")
except MarathonHttpError as error:
    assert error.status_code == 401, error.status_code
print("authenticated")
"#;
    let token = std::fs::read_to_string(pki.join("token")).expect("the token");
    let out = tokio::process::Command::new(python)
        .args(["-c", script, &format!("https://{addr}")])
        .arg(pki.join("ca.pem"))
        .arg(token.trim())
        .output()
        .await
        .expect("run python");
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("authenticated"),
        "{}",
        describe_output(&out)
    );
}

/// DNS follows a master with TLS: `orch dns` with `--ca` and `--token`, and an agent's
/// `--with-dns` showing its own certificate; without a token the snapshot stream answers
/// 401 and `orch dns` serves nothing of the cluster.
#[tokio::test]
async fn dns_follows_a_tls_master_with_a_token_or_a_node_certificate() {
    let mut c = Cluster::empty();
    let (pki, addr) = tls_master(&mut c).await;
    let agent_dns = std::net::SocketAddr::from(([127, 0, 0, 1], support::free_port()));
    let agent_dns_http = std::net::SocketAddr::from(([127, 0, 0, 1], support::free_port()));
    let mut extra = tls_flags(&pki, "agent-1");
    extra.extend(
        [
            "--containerizers",
            "mesos",
            "--with-dns",
            "--dns-listen",
            &agent_dns.to_string(),
            "--dns-http-listen",
            &agent_dns_http.to_string(),
        ]
        .map(str::to_owned),
    );
    c.add_agent(&extra.iter().map(String::as_str).collect::<Vec<_>>());
    let token = std::fs::read_to_string(pki.join("token")).expect("the token");
    let ca = pki.join("ca.pem").display().to_string();
    let masters = [addr.clone()];
    let with_token =
        support::DnsProcess::start(&c, &masters, &["--ca", &ca, "--token", token.trim()]);
    let without = support::DnsProcess::start(&c, &masters, &["--ca", &ca]);
    let (status, body) = curl(
        &pki,
        &send(
            "POST",
            r#"{"id":"/named","cmd":"sleep 100","instances":1,"cpus":0.1,"mem":16}"#,
            &format!("https://{addr}/v2/apps"),
        ),
    );
    assert_eq!(status, 201, "{body}");
    for server in [with_token.dns, agent_dns] {
        let answer = support::wait_dig(
            server,
            &["named.marathon.mesos"],
            Duration::from_secs(30),
            |a| a == "127.0.0.1",
        )
        .await;
        assert_eq!(answer, "127.0.0.1");
    }
    let answer = support::dig(without.dns, &["+short", "named.marathon.mesos"]).await;
    assert!(answer.trim().is_empty(), "served without a token: {answer}");
    assert!(
        without.process.logs(50).contains("401"),
        "{}",
        without.process.logs(50)
    );
}

/// Bad certificates get clear errors and change nothing: a master whose key is not its
/// certificate's does not start and says so; an agent with a certificate of another CA never
/// registers; a client trusting another CA is refused by the handshake.
#[tokio::test]
async fn bad_certificates_are_refused_with_clear_errors() {
    let mut c = Cluster::empty();
    let dir = c.dir().to_owned();
    let (pki, addr) = tls_master(&mut c).await;
    let other = dir.join("other");
    std::fs::create_dir_all(&other).expect("mkdir");
    issue(&other, &[], &["agent-1"]).await;

    // The key of another node.
    let file = |name: &str| pki.join(name).display().to_string();
    let out = run_orch_in(
        Some(&dir),
        &[
            "master",
            "--listen",
            &free_addr(),
            "--tls-cert",
            &file("m1.pem"),
            "--tls-key",
            &file("agent-1-key.pem"),
            "--tls-ca",
            &file("ca.pem"),
            "--token-file",
            &file("token"),
        ],
        Duration::from_secs(20),
    )
    .await;
    assert!(
        !out.status.success(),
        "a master started with another node's key"
    );
    let said = describe_output(&out);
    assert!(said.contains("cannot use the TLS files"), "{said}");

    // An agent of another CA.
    let foreign = tls_flags(&other.join("pki"), "agent-1");
    c.add_agent(&foreign.iter().map(String::as_str).collect::<Vec<_>>());
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (_, agents) = curl(&pki, &[&format!("https://{addr}/v1/agents")]);
    assert!(agents.contains(r#""agents":[]"#), "{agents}");
    assert!(c.agents[0].is_running(), "the agent keeps trying");
    // A client trusting another CA.
    let (status, _) = curl_as(&other.join("pki"), None, &[&format!("https://{addr}/ping")]);
    assert_eq!(
        status, 0,
        "the handshake verifies the master against the client's CA"
    );
    assert_eq!(curl(&pki, &[&format!("https://{addr}/ping")]).0, 200);
}

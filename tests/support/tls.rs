//! Clusters with TLS and tokens by hand: certificates from `orch pki`, the flags that give a
//! node them, and `curl` with the cluster CA and a token.

use super::{describe_output, run_orch_in};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// `curl` with the cluster CA and the management token; returns the HTTP status and the body.
pub fn curl(pki: &Path, args: &[&str]) -> (u16, String) {
    let token = std::fs::read_to_string(pki.join("token")).expect("the token");
    curl_as(pki, Some(&format!("Bearer {}", token.trim())), args)
}

/// `-X method -d body url` for [`curl`], with a JSON content type.
pub fn send<'a>(method: &'a str, body: &'a str, url: &'a str) -> Vec<&'a str> {
    vec![
        "-X",
        method,
        "-H",
        "content-type: application/json",
        "-d",
        body,
        url,
    ]
}

/// `curl` with the cluster CA and `authorization` as the Authorization header, if any.
pub fn curl_as(pki: &Path, authorization: Option<&str>, args: &[&str]) -> (u16, String) {
    let mut command = Command::new("curl");
    if let Some(value) = authorization {
        command.args(["-H", &format!("Authorization: {value}")]);
    }
    let out = command
        .args(["-s", "--max-time", "5", "--cacert"])
        .arg(pki.join("ca.pem"))
        .args(["-w", "\n%{http_code}"])
        .args(args)
        .output()
        .expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_owned())
}

/// Waits until `GET path` on the TLS master `addr` answers a body for which `done` holds.
pub async fn wait_for(
    pki: &Path,
    addr: &str,
    path: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = curl(pki, &[&format!("https://{addr}{path}")]);
        let json: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        if status == 200 && done(&json) {
            return;
        }
        assert!(Instant::now() < deadline, "{path}: {status} {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Makes a CA in `dir/pki` and issues `masters` and `agents` certificates (on 127.0.0.1).
pub async fn issue(dir: &Path, masters: &[&str], agents: &[&str]) {
    let run = |args: Vec<String>| async move {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = run_orch_in(Some(dir), &args, Duration::from_secs(20)).await;
        assert!(out.status.success(), "{}", describe_output(&out));
    };
    run(vec!["pki".into(), "init".into()]).await;
    for (role, names) in [("master", masters), ("agent", agents)] {
        for name in names {
            run([
                "pki",
                "issue",
                "--role",
                role,
                "--name",
                name,
                "--ip",
                "127.0.0.1",
            ]
            .map(str::to_owned)
            .to_vec())
            .await;
        }
    }
}

pub fn tls_flags(pki: &Path, name: &str) -> Vec<String> {
    let file = |suffix: &str| pki.join(format!("{name}{suffix}")).display().to_string();
    vec![
        "--tls-cert".into(),
        file(".pem"),
        "--tls-key".into(),
        file("-key.pem"),
        "--tls-ca".into(),
        pki.join("ca.pem").display().to_string(),
    ]
}

/// A master's `--tls-*` flags for the certificate `name`, and `--token-file`.
pub fn master_flags(pki: &Path, name: &str) -> Vec<String> {
    let mut flags = tls_flags(pki, name);
    flags.extend([
        "--token-file".to_owned(),
        pki.join("token").display().to_string(),
    ]);
    flags
}

/// Makes the CA and the certificates of `m1` and `agent-1` in `<c's dir>/pki`, starts master
/// `m1` with TLS and the management token, and waits until it leads. Returns the pki dir
/// and the master's address.
pub async fn tls_master(c: &mut super::Cluster) -> (std::path::PathBuf, String) {
    let dir = c.dir().to_owned();
    let pki = dir.join("pki");
    issue(&dir, &["m1"], &["agent-1"]).await;
    let addr = super::free_addr();
    let mut args = vec!["--listen".to_owned(), addr.clone()];
    args.extend(master_flags(&pki, "m1"));
    c.add(&addr, args);
    wait_for(&pki, &addr, "/v1/cluster", |v| {
        v["leader_address"].is_string()
    })
    .await;
    (pki, addr)
}

//! `orch pki` as an operator runs it, checked with the real `openssl`: a CA, then node
//! certificates that chain to it, carry the node's address and role, and keep their keys
//! private.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use support::{describe_output, run_orch_in};

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o777
}

fn openssl(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run openssl");
    assert!(out.status.success(), "openssl {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn init_and_issue_make_certificates_openssl_verifies() {
    let dir = tempfile::tempdir().expect("temp dir");
    let run = |args: &'static [&'static str]| {
        run_orch_in(Some(dir.path()), args, Duration::from_secs(20))
    };

    let out = run(&["pki", "init", "--cluster", "demo"]).await;
    assert!(out.status.success(), "{}", describe_output(&out));
    let pki = dir.path().join("pki");
    assert_eq!(mode(&pki.join("ca-key.pem")), 0o600);
    assert_eq!(mode(&pki.join("token")), 0o600);
    let again = run(&["pki", "init"]).await;
    assert!(!again.status.success(), "a second init replaces no CA");
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("exists already"),
        "{}",
        describe_output(&again)
    );

    let out = run(&[
        "pki",
        "issue",
        "--role",
        "master",
        "--name",
        "master-1",
        "--ip",
        "10.0.0.2",
        "--ip",
        "127.0.0.1",
        "--dns",
        "m1.example",
    ])
    .await;
    assert!(out.status.success(), "{}", describe_output(&out));
    assert_eq!(mode(&pki.join("master-1-key.pem")), 0o600);
    let verified = openssl(&pki, &["verify", "-CAfile", "ca.pem", "master-1.pem"]);
    assert!(verified.contains("master-1.pem: OK"), "{verified}");
    let text = openssl(&pki, &["x509", "-in", "master-1.pem", "-noout", "-text"]);
    assert!(text.contains("IP Address:10.0.0.2"), "{text}");
    assert!(text.contains("DNS:m1.example"), "{text}");
    assert!(
        text.contains("O=orch:master") || text.contains("O = orch:master"),
        "{text}"
    );
    assert!(text.contains("TLS Web Client Authentication"), "{text}");

    let out = run(&["pki", "issue", "--role", "agent", "--name", "agent-1"]).await;
    assert!(out.status.success(), "{}", describe_output(&out));
    let verified = openssl(&pki, &["verify", "-CAfile", "ca.pem", "agent-1.pem"]);
    assert!(verified.contains("agent-1.pem: OK"), "{verified}");

    let bad = run(&["pki", "issue", "--role", "king", "--name", "x"]).await;
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("'king' is not a role: master or agent"),
        "{}",
        describe_output(&bad)
    );
    let elsewhere = tempfile::tempdir().expect("temp dir");
    let none = run_orch_in(
        Some(elsewhere.path()),
        &["pki", "issue", "--role", "agent", "--name", "a"],
        Duration::from_secs(20),
    )
    .await;
    assert!(
        String::from_utf8_lossy(&none.stderr).contains("`orch pki init` makes one"),
        "{}",
        describe_output(&none)
    );
}

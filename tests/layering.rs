//! Enforces the "may depend on" lines of the module docs: pure modules stay pure, and the
//! API never reaches into Raft internals.

use std::fs;
use std::path::Path;

/// What no pure module may touch: the runtime, the network, the clock, the filesystem. (IP
/// address types such as `std::net::IpAddr` are plain data and allowed.)
const IMPURE: &[&str] = &[
    "tokio",
    "reqwest",
    "axum",
    "SystemTime::now",
    "Instant::now",
    "std::fs",
    "UdpSocket",
    "TcpStream",
    "TcpListener",
];

/// No purity rule.
const NONE: &[&str] = &[];

/// What DNS, the load balancer and their snapshot feed must not use: they see the cluster
/// only through snapshots (model and state).
const BESIDE_THE_CLUSTER: &[&str] = &[
    "crate::api",
    "crate::cli",
    "crate::agent",
    "crate::gitops",
    "crate::master",
    "crate::raft",
];

/// (module dir or file, forbidden substrings in its source, the impure things it must not use)
const RULES: &[(&str, &[&str], &[&str])] = &[
    (
        "model",
        &["crate::state", "crate::raft", "crate::master", "crate::api"],
        IMPURE,
    ),
    (
        "state",
        &["crate::raft", "crate::master", "crate::api"],
        IMPURE,
    ),
    (
        "raft",
        &["crate::master", "crate::api", "crate::cli", "axum"],
        NONE,
    ),
    (
        "master",
        &["crate::api", "crate::cli", "crate::gitops", "axum"],
        NONE,
    ),
    (
        "gitops",
        &["crate::api", "crate::cli", "crate::raft", "crate::agent"],
        NONE,
    ),
    (
        "scheduler",
        &["crate::state", "crate::raft", "crate::master", "crate::api"],
        IMPURE,
    ),
    (
        "protocol",
        &["crate::state", "crate::raft", "crate::master", "crate::api"],
        IMPURE,
    ),
    (
        "driver",
        &[
            "crate::state",
            "crate::raft",
            "crate::master",
            "crate::api",
            "crate::agent",
        ],
        NONE,
    ),
    (
        "agent",
        &[
            "crate::master",
            "crate::api",
            "crate::state",
            "crate::raft",
            "crate::cli",
        ],
        NONE,
    ),
    (
        "provision",
        &[
            "crate::master",
            "crate::api",
            "crate::state",
            "crate::raft",
            "crate::agent",
            "crate::cli",
        ],
        NONE,
    ),
    (
        "api",
        &[
            "LogStore",
            "StateMachine",
            "open_store",
            "crate::cli",
            "openraft::storage",
        ],
        NONE,
    ),
    ("dns", BESIDE_THE_CLUSTER, NONE),
    ("dns/records.rs", &[], IMPURE),
    ("dns/names.rs", &[], IMPURE),
    ("dns/answer.rs", &[], IMPURE),
    ("dns/zone.rs", &[], IMPURE),
    ("lb", BESIDE_THE_CLUSTER, NONE),
    ("lb/table.rs", &[], IMPURE),
    ("lb/routes.rs", &[], IMPURE),
    ("lb/routes", &[], IMPURE),
    ("lb/haproxy.rs", &[], IMPURE),
    ("discovery.rs", BESIDE_THE_CLUSTER, NONE),
];

fn sources(dir: &Path, out: &mut Vec<(String, String)>) {
    if dir.is_file() {
        let text = fs::read_to_string(dir).unwrap_or_default();
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        out.push((dir.display().to_string(), code.to_owned()));
        return;
    }
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") && !path.ends_with("tests.rs") {
            let text = fs::read_to_string(&path).unwrap_or_default();
            // Unit tests may use anything.
            let code = text
                .split("#[cfg(test)]")
                .next()
                .unwrap_or_default()
                .to_owned();
            out.push((path.display().to_string(), code));
        }
    }
}

#[test]
fn modules_depend_only_on_what_their_docs_allow() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut violations = Vec::new();
    for (module, own, impure) in RULES {
        let forbidden: Vec<&str> = own.iter().chain(impure.iter()).copied().collect();
        let mut files = Vec::new();
        sources(&root.join(module), &mut files);
        assert!(!files.is_empty(), "module {module} has no sources");
        for (path, code) in &files {
            for needle in &forbidden {
                for (number, line) in code.lines().enumerate() {
                    let line = line.trim_start();
                    if !line.starts_with("//") && line.contains(needle) {
                        violations.push(format!(
                            "{path}:{}: {module} must not use `{needle}`",
                            number + 1
                        ));
                    }
                }
            }
        }
    }
    assert!(
        violations.is_empty(),
        "layering violations:\n{}",
        violations.join("\n")
    );
}

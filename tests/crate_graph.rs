//! The architecture is the crate graph: a crate can only use what its `Cargo.toml` names, and
//! the compiler holds it to that. This test checks what the compiler cannot: that each
//! crate names only the crates it may depend on (read with `cargo metadata`), and that the
//! pure code uses no clock, runtime, network or filesystem.

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

/// Each workspace crate and the workspace crates it may depend on (normal dependencies).
const ALLOWED: &[(&str, &[&str])] = &[
    ("orch-core", &[]),
    ("orch-fs", &[]),
    ("orch-pki", &["orch-fs"]),
    ("orch-probe", &["orch-core"]),
    ("orch-raft", &["orch-core", "orch-fs"]),
    (
        "orch-master",
        &["orch-core", "orch-raft", "orch-probe", "orch-pki"],
    ),
    ("orch-driver", &["orch-core", "orch-fs"]),
    (
        "orch-agent",
        &[
            "orch-core",
            "orch-driver",
            "orch-fs",
            "orch-pki",
            "orch-probe",
        ],
    ),
    ("orch-discovery", &["orch-core", "orch-pki"]),
    ("orch-dns", &["orch-core"]),
    ("orch-lb", &["orch-core"]),
    (
        "orch-provision",
        &["orch-core", "orch-driver", "orch-fs", "orch-pki"],
    ),
    (
        "orch",
        &[
            "orch-core",
            "orch-master",
            "orch-agent",
            "orch-driver",
            "orch-discovery",
            "orch-dns",
            "orch-lb",
            "orch-provision",
            "orch-pki",
        ],
    ),
];

/// What the pure core may use from outside the standard library: no runtime and no I/O.
const CORE_MAY_USE: &[&str] = &[
    "humantime",
    "imbl",
    "regex",
    "serde",
    "serde_json",
    "thiserror",
];

/// What no pure source may name: the runtime, the network, the clock, the filesystem. (IP
/// address types such as `std::net::IpAddr` are plain data and allowed.)
const IMPURE: &[&str] = &[
    "tokio::",
    "reqwest::",
    "axum::",
    "SystemTime::now",
    "Instant::now",
    "std::fs",
    "UdpSocket",
    "TcpStream",
    "TcpListener",
];

/// Pure sources outside orch-core: the record and answer builders of DNS, the route table
/// and haproxy.cfg builders of the load balancer, the blue/green planner.
const PURE_FILES: &[&str] = &[
    "crates/orch-dns/src/records.rs",
    "crates/orch-dns/src/names.rs",
    "crates/orch-dns/src/answer.rs",
    "crates/orch-dns/src/zone.rs",
    "crates/orch-lb/src/table.rs",
    "crates/orch-lb/src/routes.rs",
    "crates/orch-lb/src/routes",
    "crates/orch-lb/src/haproxy.rs",
    "crates/orch-lb/src/bluegreen",
];

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Each workspace package's normal (not dev or build) dependencies, by name.
fn normal_dependencies() -> BTreeMap<String, BTreeSet<String>> {
    let output = Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(root())
        .output()
        .expect("cargo metadata runs");
    assert!(
        output.status.success(),
        "cargo metadata: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: Value = serde_json::from_slice(&output.stdout).expect("metadata is JSON");
    let mut graph = BTreeMap::new();
    for package in metadata["packages"].as_array().expect("packages") {
        let name = package["name"].as_str().expect("name").to_owned();
        let deps = package["dependencies"]
            .as_array()
            .expect("dependencies")
            .iter()
            .filter(|dep| dep["kind"].is_null())
            .map(|dep| dep["name"].as_str().expect("dependency name").to_owned())
            .collect();
        graph.insert(name, deps);
    }
    graph
}

#[test]
fn each_crate_depends_only_on_the_crates_below_it() {
    let graph = normal_dependencies();
    let allowed: BTreeMap<&str, &[&str]> = ALLOWED.iter().copied().collect();
    let workspace: BTreeSet<&str> = allowed.keys().copied().collect();
    for (name, deps) in &graph {
        let Some(may) = allowed.get(name.as_str()) else {
            panic!("{name} is a workspace crate this test does not know: add it to ALLOWED");
        };
        for dep in deps.iter().filter(|dep| workspace.contains(dep.as_str())) {
            assert!(
                may.contains(&dep.as_str()),
                "{name} depends on {dep}, which is not below it (allowed: {may:?})"
            );
        }
    }
    for name in workspace {
        assert!(
            graph.contains_key(name),
            "{name} is listed but not in the workspace"
        );
    }
}

#[test]
fn the_core_has_no_runtime_and_no_io_crate() {
    let graph = normal_dependencies();
    let core = &graph["orch-core"];
    for dep in core {
        assert!(
            CORE_MAY_USE.contains(&dep.as_str()),
            "orch-core depends on {dep}: the core has no runtime and does no I/O"
        );
    }
}

fn rust_files(path: &Path, files: &mut Vec<std::path::PathBuf>) {
    if path.is_dir() {
        for entry in std::fs::read_dir(path).expect("readable dir") {
            rust_files(&entry.expect("dir entry").path(), files);
        }
    } else if path.extension().is_some_and(|ext| ext == "rs") {
        files.push(path.to_owned());
    }
}

fn assert_pure(path: &Path) {
    let mut files = Vec::new();
    rust_files(path, &mut files);
    assert!(!files.is_empty(), "{} has no Rust files", path.display());
    for file in files {
        let text = std::fs::read_to_string(&file).expect("readable source");
        // Every line of code, tests included; comments may name what the code must not use.
        let code = text
            .lines()
            .filter(|line| !line.trim_start().starts_with("//"));
        for line in code {
            for word in IMPURE {
                assert!(
                    !line.contains(word),
                    "{}: `{}` uses {word}: the file is pure (no clock, runtime, network or \
                     filesystem)",
                    file.display(),
                    line.trim()
                );
            }
        }
    }
}

#[test]
fn pure_code_uses_no_clock_runtime_network_or_filesystem() {
    assert_pure(&root().join("crates/orch-core/src"));
    for file in PURE_FILES {
        assert_pure(&root().join(file));
    }
}

#[test]
fn the_api_never_reaches_into_raft_storage() {
    let mut files = Vec::new();
    rust_files(&root().join("crates/orch-master/src/api"), &mut files);
    for file in files {
        let text = std::fs::read_to_string(&file).expect("readable source");
        for word in [
            "LogStore",
            "StateMachine",
            "open_store",
            "openraft::storage",
        ] {
            assert!(
                !text.contains(word),
                "{} names {word}: the API sees the Master handle and Raft's wire types only",
                file.display()
            );
        }
    }
}

//! Enforces the "may depend on" lines of the module docs: pure modules stay pure, and the
//! API never reaches into Raft internals.

use std::fs;
use std::path::Path;

/// What no pure module may touch: the runtime, the network, the clock, the filesystem.
const IMPURE: &[&str] = &[
    "tokio",
    "reqwest",
    "axum",
    "SystemTime::now",
    "Instant::now",
    "std::fs",
    "std::net",
];

/// (module, forbidden substrings in its source, whether it must also be pure)
const RULES: &[(&str, &[&str], bool)] = &[
    (
        "model",
        &["crate::state", "crate::raft", "crate::master", "crate::api"],
        true,
    ),
    (
        "state",
        &["crate::raft", "crate::master", "crate::api"],
        true,
    ),
    (
        "raft",
        &["crate::master", "crate::api", "crate::cli", "axum"],
        false,
    ),
    (
        "master",
        &["crate::api", "crate::cli", "crate::gitops", "axum"],
        false,
    ),
    (
        "gitops",
        &["crate::api", "crate::cli", "crate::raft", "crate::agent"],
        false,
    ),
    (
        "scheduler",
        &["crate::state", "crate::raft", "crate::master", "crate::api"],
        true,
    ),
    (
        "protocol",
        &["crate::state", "crate::raft", "crate::master", "crate::api"],
        true,
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
        false,
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
        false,
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
        false,
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
        false,
    ),
];

fn sources(dir: &Path, out: &mut Vec<(String, String)>) {
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
    for (module, own, pure) in RULES {
        let impure: &[&str] = if *pure { IMPURE } else { &[] };
        let forbidden: Vec<&str> = own.iter().chain(impure).copied().collect();
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

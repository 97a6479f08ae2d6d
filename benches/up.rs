//! `orch up` wall time with machines of their own.
//!
//! 1. docker: 3 masters + 3 agents as containers of the local engine, from nothing (image
//!    build, network, containers, leader, agents registered, endpoints printed), then a re-run
//!    that finds everything as specified, then `orch destroy`. `ORCH_BENCH_ROUNDS` times
//!    (default 3); the image is built anew in each round since destroy removes it.
//! 2. ssh: 3 master + 3 agent hosts, each a real Debian sshd on its own loopback address with
//!    its own install root: from nothing (connect, upload the binary over SFTP, render, start
//!    the supervised nodes, leader, agents), a re-run, then `orch destroy`.
//!
//! Both use this build's orch binary (the release one under `cargo bench`, which keeps its
//! debug info); the ssh rounds are then repeated with the binary stripped (`--binary`), as one
//! would ship it. Needs a Docker engine and Debian's openssh-server and binutils.
//! Run: `cargo bench --bench up` (`ORCH_BENCH_ROUNDS`, default 3).

#[path = "../tests/support/mod.rs"]
mod support;

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use support::sshd::SshdHosts;

fn main() {
    if !common::invoked_as_bench("up") {
        return;
    }
    let rounds = common::env_count("ORCH_BENCH_ROUNDS", 3);
    let dir = tempfile::tempdir().expect("tempdir");
    println!("orch up wall time, 3 masters + 3 agents, {rounds} rounds each");
    let docker = "cluster: bench-up-docker\nprovider: docker\nmasters: 3\nagents: 3\n\
                  docker:\n  subnet: 172.31.251.0/24\n";
    std::fs::write(dir.path().join("docker.yaml"), docker).expect("write docker.yaml");
    report("docker", &measure(dir.path(), "docker.yaml", rounds, &[]));

    let ips: Vec<String> = (1..=6).map(|n| format!("127.0.251.{n}")).collect();
    let refs: Vec<&str> = ips.iter().map(String::as_str).collect();
    let hosts = SshdHosts::start(&refs);
    std::fs::write(dir.path().join("known_hosts"), hosts.known_hosts()).expect("write known_hosts");
    let mut yaml = format!(
        "cluster: bench-up-ssh\nprovider: ssh\ncontainerizers: mesos\nssh:\n  identity_file: {}\n  known_hosts: known_hosts\n  hosts:\n",
        hosts.client_key.display()
    );
    for (i, host) in hosts.hosts.iter().enumerate() {
        let role = if i < 3 { "master" } else { "agent" };
        yaml.push_str(&format!(
            "    - {{address: {}, port: {}, role: {role}, install_dir: {}, resources: \"cpus:2;mem:2048;ports:[{}-{}]\"}}\n",
            host.ip,
            host.port,
            host.install_dir.display(),
            32000 + 100 * i,
            32099 + 100 * i
        ));
    }
    std::fs::write(dir.path().join("ssh.yaml"), yaml).expect("write ssh.yaml");
    report("ssh", &measure(dir.path(), "ssh.yaml", rounds, &[]));
    // What one would ship: the same binary without its debug info (`strip`).
    let stripped = support::sshd::stripped_orch();
    let size = |path: &Path| std::fs::metadata(path).map_or(0, |m| m.len()) / (1 << 20);
    println!(
        "ssh with a stripped binary ({} MiB instead of {} MiB)",
        size(&stripped),
        size(Path::new(support::BIN))
    );
    let binary = stripped.display().to_string();
    report(
        "ssh, stripped binary",
        &measure(dir.path(), "ssh.yaml", rounds, &["--binary", &binary]),
    );
}

/// Per round: up from nothing, re-run, destroy.
fn measure(dir: &Path, file: &str, rounds: usize, extra: &[&str]) -> Vec<[Duration; 3]> {
    (0..rounds)
        .map(|round| {
            let up = orch(dir, &[&["up", "-f", file], extra].concat());
            let rerun = orch(dir, &[&["up", "-f", file], extra].concat());
            let destroy = orch(dir, &["destroy", "-f", file, "--yes"]);
            println!(
                "  {file} round {}: up {:.1}s, re-run {:.1}s, destroy {:.1}s",
                round + 1,
                up.as_secs_f64(),
                rerun.as_secs_f64(),
                destroy.as_secs_f64()
            );
            [up, rerun, destroy]
        })
        .collect()
}

fn orch(dir: &Path, args: &[&str]) -> Duration {
    let begin = Instant::now();
    let out = Command::new(support::BIN)
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run orch");
    let took = begin.elapsed();
    assert!(
        out.status.success(),
        "orch {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    took
}

fn report(provider: &str, rounds: &[[Duration; 3]]) {
    let median = |i: usize| {
        let mut column: Vec<Duration> = rounds.iter().map(|r| r[i]).collect();
        column.sort();
        column[column.len() / 2]
    };
    println!(
        "{provider}: up from nothing median {:.1}s (min {:.1}s, max {:.1}s), re-run {:.1}s, destroy {:.1}s",
        median(0).as_secs_f64(),
        rounds.iter().map(|r| r[0]).min().unwrap_or_default().as_secs_f64(),
        rounds.iter().map(|r| r[0]).max().unwrap_or_default().as_secs_f64(),
        median(1).as_secs_f64(),
        median(2).as_secs_f64()
    );
}

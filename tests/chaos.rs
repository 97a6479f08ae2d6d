//! The chaos suite for masters: real `orch master` processes under client load while the
//! leader is killed, paused and partitioned, and while a master's disk fills, its snapshot
//! rots or its data dir is wiped. Every history is checked for linearizability and for lost
//! acknowledged writes. `ORCH_CHAOS_ROUNDS` (default 5) sets how many faults each test
//! injects; the soak (RELIABILITY.md) raises it. Partitions use network namespaces
//! ([`support::Net`]) and need root, as the disk tests do (tmpfs mounts).

mod support;

#[path = "support/chaos.rs"]
mod chaos;
#[path = "support/linearizability.rs"]
mod linearizability;

use std::time::{Duration, Instant};

use chaos::{
    cluster_in, cut_leader_rounds, kill_leader_rounds, others, rounds, urls, write_latencies,
    History, Workload,
};
use support::{send_signal, Cluster, Net};

const FORM: Duration = Duration::from_secs(20);

/// Checks a finished history: linearizable, and every acknowledged write visible to the
/// final reads' linearization. Prints the figures line of the fault.
fn check(fault: &str, history: &History, recoveries: &[Duration]) {
    let (acked, p50, p99) = write_latencies(history);
    assert!(acked > 0, "{fault}: no write was acknowledged");
    let verdict = linearizability::check(history, Duration::from_secs(60));
    assert!(
        verdict.is_linearizable(),
        "{fault}: the history is not linearizable: {verdict:?}"
    );
    let worst = recoveries.iter().max().copied().unwrap_or_default();
    let mut sorted = recoveries.to_vec();
    sorted.sort();
    let median = sorted.get(sorted.len() / 2).copied().unwrap_or_default();
    eprintln!(
        "chaos figures: {fault}: {} faults, {} operations, {acked} writes acknowledged, 0 lost, \
         write latency p50 {p50:.1?} p99 {p99:.1?}, recovery median {median:?} max {worst:?}",
        recoveries.len(),
        history.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leader_kill_loops_under_write_load_lose_no_acknowledged_write() {
    let mut c = Cluster::start(3, &[]);
    c.wait_for_leader(FORM).await;
    let workload = Workload::start(&c.http, urls(&c), 6, 6);
    let recoveries = kill_leader_rounds(&mut c, rounds()).await;
    let leader = c.wait_for_leader(FORM).await;
    let history = workload.finish(&c.url(leader)).await;
    check("leader kill -9", &history, &recoveries);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_paused_leader_is_replaced_and_follows_once_resumed() {
    let mut c = Cluster::start(3, &[]);
    c.wait_for_leader(FORM).await;
    let workload = Workload::start(&c.http, urls(&c), 4, 6);
    let mut recoveries = Vec::new();
    for round in 0..rounds().min(3) {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let leader = c.wait_for_leader(FORM).await;
        let pid = c.masters[leader].pid();
        send_signal(pid, "STOP");
        let written = c
            .write_until_ok(&others(3, leader), &format!("/probe/pause-{round}"), FORM)
            .await;
        // Paused past its leadership: resumed, it must learn of the new term and follow.
        tokio::time::sleep(Duration::from_secs(1)).await;
        send_signal(pid, "CONT");
        let (took, _) = written.unwrap_or_else(|e| panic!("no write while the leader slept: {e}"));
        recoveries.push(took);
        let now_leading = c.wait_for_leader(FORM).await;
        assert_ne!(now_leading, leader, "the paused leader cannot still lead");
    }
    let leader = c.wait_for_leader(FORM).await;
    let history = workload.finish(&c.url(leader)).await;
    check("leader SIGSTOP", &history, &recoveries);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_partitioned_leader_is_replaced_and_catches_up_after_healing() {
    let net = Net::new(3);
    let mut c = cluster_in(&net);
    c.wait_for_leader(FORM).await;
    let workload = Workload::start(&c.http, urls(&c), 4, 6);
    let recoveries = cut_leader_rounds(&mut c, &net, rounds().min(3)).await;
    let leader = c.wait_for_leader(FORM).await;
    let history = workload.finish(&c.url(leader)).await;
    check("leader partitioned", &history, &recoveries);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_leader_that_cannot_reach_the_others_steps_down_on_their_new_term() {
    let net = Net::new(3);
    let mut c = cluster_in(&net);
    let leader = c.wait_for_leader(FORM).await;
    let workload = Workload::start(&c.http, urls(&c), 4, 4);
    tokio::time::sleep(Duration::from_millis(500)).await;
    // The leader's messages to the others are lost; theirs to it arrive.
    for other in others(3, leader) {
        net.cut_one_way(leader, other);
    }
    let (took, via) = c
        .write_until_ok(&others(3, leader), "/probe/one-way", FORM)
        .await
        .unwrap_or_else(|e| panic!("no write with the leader's messages lost: {e}"));
    assert_ne!(via, leader);
    let view = c.view(leader).await.expect("the old leader answers");
    let new_leader = c.view(via).await.expect("the new leader answers");
    assert_ne!(
        new_leader.leader_address().as_deref(),
        Some(c.masters[leader].addr.as_str()),
        "{} wrote, and sees the cut-off leader as leader: {}\n{}",
        c.masters[via].addr,
        new_leader.json,
        c.all_logs(40)
    );
    eprintln!(
        "one-way partition: old leader now sees leader {:?}",
        view.leader_address()
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    net.heal();
    let leader = c.wait_for_leader(FORM).await;
    let history = workload.finish(&c.url(leader)).await;
    check("leader cut one way", &history, &[took]);
}

/// A tmpfs of `size` mounted at `dir` for the test, unmounted on drop.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(dir: &std::path::Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(dir).expect("mount point");
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .expect("run mount");
        assert!(status.success(), "mount a tmpfs at {}", dir.display());
        Tmpfs(dir.to_owned())
    }

    fn resize(&self, size: &str) {
        let status = std::process::Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .status()
            .expect("run mount");
        assert!(status.success(), "resize the tmpfs at {}", self.0.display());
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_master_whose_disk_fills_exits_and_catches_up_once_there_is_room() {
    let mut c = Cluster::empty();
    let addrs: Vec<String> = (0..3).map(|_| support::free_addr()).collect();
    let small = c.dir().join("small-disk");
    let disk = Tmpfs::mount(&small, "3m");
    for (i, addr) in addrs.iter().enumerate() {
        let mut args: Vec<String> = ["--listen", addr, "--advertise", addr, "--masters"]
            .map(str::to_owned)
            .to_vec();
        args.push(addrs.join(","));
        if i == 2 {
            args.extend([
                "--data-dir".to_owned(),
                small.join("data").display().to_string(),
            ]);
        }
        c.add(addr, args);
    }
    c.wait_for_leader(FORM).await;
    // 64 KiB apps until the small disk is full: its master must stop, not limp on.
    let mut acked = Vec::new();
    let started = Instant::now();
    let mut n = 0;
    while c.masters[2].is_running() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the master on a full disk still runs after 60 s\n{}",
            c.masters[2].logs(30)
        );
        let id = format!("/fill/app-{n}");
        let body = support::app_body(&id, 64 << 10).to_string();
        let url = format!("{}/v2/apps", c.url(n % 2));
        if let Ok(r) = c
            .http
            .send(reqwest::Method::POST, &url, Some(body), None)
            .await
        {
            if r.ok() {
                acked.push(id);
            }
        }
        n += 1;
    }
    let status = c.masters[2].exited().expect("it exited");
    assert!(
        !status.success(),
        "a master whose Raft core stopped exits non-zero: {status}"
    );
    let logs = c.masters[2].logs(40);
    assert!(logs.contains("the Raft core stopped"), "{logs}");
    eprintln!("full disk: master 3 stopped after {} writes", acked.len());
    // The others go on.
    let (_, _) = c
        .write_until_ok(&[0, 1], "/after/full-disk", FORM)
        .await
        .unwrap_or_else(|e| panic!("the two other masters refuse writes: {e}"));
    acked.push("/after/full-disk".to_owned());
    disk.resize("256m");
    c.masters[2].start();
    let leader = c.wait_for_leader(FORM).await;
    c.wait_all_caught_up(leader, &[0, 1, 2], FORM).await;
    c.assert_has_apps(2, &acked).await;
}

/// Waits until the leader has recorded all `n` masters as holding data.
async fn wait_all_seen(c: &Cluster, leader: usize, n: usize) {
    let url = format!("{}/internal/raft/members", c.url(leader));
    let deadline = Instant::now() + FORM;
    loop {
        let view = c.http.get(&url).await.json();
        if view["seen"].as_array().map_or(0, Vec::len) >= n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "masters not recorded as seen: {view}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The Raft id the cluster (as master `from` sees it) gives the master at `address`.
async fn id_of(c: &Cluster, from: usize, address: &str) -> Option<u64> {
    let view = c.view(from).await.ok()?;
    let members = view.json["members"].as_array()?.clone();
    members
        .iter()
        .find(|m| m["address"] == address)
        .and_then(|m| m["id"].as_u64())
}

/// Waits up to 20 s for master `i` to exit; returns its status and log tail.
async fn wait_exit(c: &mut Cluster, i: usize) -> (std::process::ExitStatus, String) {
    let deadline = Instant::now() + FORM;
    loop {
        if let Some(status) = c.masters[i].exited() {
            return (status, c.masters[i].logs(20));
        }
        assert!(
            Instant::now() < deadline,
            "{} still runs",
            c.masters[i].name
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_wiped_master_refuses_to_start_unless_it_rejoins_as_a_replaced_member() {
    let mut c = Cluster::start(3, &[]);
    let leader = c.wait_for_leader(FORM).await;
    let mut acked = Vec::new();
    for n in 0..5 {
        let id = format!("/before-wipe-{n}");
        c.create_app(leader, &id).await;
        acked.push(id);
    }
    wait_all_seen(&c, leader, 3).await;
    let victim = others(3, leader)[0];
    let address = c.masters[victim].addr.clone();
    let old_id = id_of(&c, leader, &address).await.expect("a member");
    c.masters[victim].kill9();
    std::fs::remove_dir_all(&c.masters[victim].data_dir).expect("wipe the data dir");

    c.masters[victim].start();
    let (status, logs) = wait_exit(&mut c, victim).await;
    assert!(!status.success(), "a wiped member must not start: {logs}");
    assert!(
        logs.contains("--rejoin"),
        "the refusal says what to do: {logs}"
    );
    assert!(
        !c.masters[victim].data_dir.join("raft.redb").exists(),
        "the refusal leaves no store behind"
    );

    c.masters[victim].args.push("--rejoin".into());
    c.masters[victim].start();
    let all = [0, 1, 2];
    let leader = c.wait_for_leader_among(&all, Some(3), FORM).await;
    let new_id = id_of(&c, leader, &address).await.expect("a member again");
    assert_ne!(new_id, old_id, "it rejoined under a new id");
    c.wait_all_caught_up(leader, &all, FORM).await;
    c.assert_has_apps(victim, &acked).await;

    // Its new id is its own from now on, without --rejoin.
    c.masters[victim].kill9();
    c.masters[victim].args.retain(|arg| arg != "--rejoin");
    c.masters[victim].start();
    let leader = c.wait_for_leader_among(&all, Some(3), FORM).await;
    assert_eq!(id_of(&c, leader, &address).await, Some(new_id));
    c.wait_all_caught_up(leader, &all, FORM).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_corrupted_snapshot_is_refused_and_the_leaders_state_fetched_instead() {
    let mut c = Cluster::start(3, &["--snapshot-logs", "10"]);
    let leader = c.wait_for_leader(FORM).await;
    let mut acked = Vec::new();
    for n in 0..40 {
        let id = format!("/before-rot-{n}");
        c.create_app(leader, &id).await;
        acked.push(id);
    }
    wait_all_seen(&c, leader, 3).await;
    let victim = others(3, leader)[0];
    c.wait_all_caught_up(leader, &[victim], FORM).await;
    let address = c.masters[victim].addr.clone();
    let old_id = id_of(&c, leader, &address).await.expect("a member");
    c.masters[victim].kill9();
    let snapshot = c.masters[victim].data_dir.join("snapshot");
    let mut bytes = std::fs::read(&snapshot).expect("the follower has a snapshot");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x5a;
    std::fs::write(&snapshot, &bytes).expect("rot one byte");

    c.masters[victim].start();
    let all = [0, 1, 2];
    let leader = c.wait_for_leader_among(&all, Some(3), FORM).await;
    let new_id = id_of(&c, leader, &address).await.expect("a member again");
    assert_ne!(
        new_id, old_id,
        "the rotten data was replaced under a new id"
    );
    let logs = c.masters[victim].logs(60);
    assert!(logs.contains("checksum does not match"), "{logs}");
    c.wait_all_caught_up(leader, &all, FORM).await;
    c.assert_has_apps(victim, &acked).await;
    let parent = c.masters[victim]
        .data_dir
        .parent()
        .expect("a parent")
        .to_owned();
    let kept = std::fs::read_dir(&parent)
        .expect("list")
        .filter_map(Result::ok)
        .any(|entry| {
            entry
                .file_name()
                .to_string_lossy()
                .starts_with("data.corrupt-")
        });
    assert!(kept, "the corrupt data is kept aside for a post-mortem");
}

/// libfaketime, as Debian's `faketime` package installs it.
const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_wall_clock_jump_on_the_leader_loses_nothing() {
    let mut c = Cluster::empty();
    let addrs: Vec<String> = (0..3).map(|_| support::free_addr()).collect();
    let clocks: Vec<std::path::PathBuf> =
        (0..3).map(|i| c.dir().join(format!("clock-{i}"))).collect();
    for (addr, clock) in addrs.iter().zip(&clocks) {
        std::fs::write(clock, "+0\n").expect("clock file");
        // Only the wall clock moves: timers and timeouts run on the monotonic clock.
        c.master_env = [
            ("LD_PRELOAD", LIBFAKETIME),
            ("FAKETIME_TIMESTAMP_FILE", &clock.display().to_string()),
            ("FAKETIME_NO_CACHE", "1"),
            ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .to_vec();
        let mut args: Vec<String> = ["--listen", addr, "--advertise", addr, "--masters"]
            .map(str::to_owned)
            .to_vec();
        args.push(addrs.join(","));
        c.add(addr, args);
    }
    c.wait_for_leader(FORM).await;
    let workload = Workload::start(&c.http, urls(&c), 4, 4);
    let mut recoveries = Vec::new();
    for (round, jump) in ["+1h", "-1h", "+0"].iter().enumerate() {
        tokio::time::sleep(Duration::from_millis(700)).await;
        let leader = c.wait_for_leader(FORM).await;
        std::fs::write(&clocks[leader], format!("{jump}\n")).expect("jump the clock");
        let (took, _) = c
            .write_until_ok(&[0, 1, 2], &format!("/probe/clock-{round}"), FORM)
            .await
            .unwrap_or_else(|e| panic!("no write after the leader's clock jumped {jump}: {e}"));
        recoveries.push(took);
    }
    let leader = c.wait_for_leader(FORM).await;
    let history = workload.finish(&c.url(leader)).await;
    check("leader wall clock ±1 h", &history, &recoveries);
}

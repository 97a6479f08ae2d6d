//! Real-process tests of the replicated master: cluster formation, follower forwarding,
//! leader failover, catch-up (also from a snapshot), restarts, loss of quorum, membership
//! changes, abdication and `orch cluster status`.
//!
//! Every test starts its own masters on ports chosen at run time and kills them on drop.

mod support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::{describe_output, run_orch, Cluster};

/// Generous bound for a fresh cluster to elect a leader (2 cores, tests in parallel).
const FORM: Duration = Duration::from_secs(20);

fn others(n: usize, not: usize) -> Vec<usize> {
    (0..n).filter(|&i| i != not).collect()
}

#[tokio::test]
async fn three_masters_form_a_cluster() {
    let mut c = Cluster::start(3, &[]);
    let leader = c.wait_for_leader(FORM).await;

    for i in 0..3 {
        let v = c.view(i).await.expect("GET /v1/cluster");
        assert_eq!(
            v.member_count(),
            3,
            "members on {}: {}",
            c.masters[i].addr,
            v.json
        );
        let roles = v.roles();
        let leaders: Vec<_> = roles.iter().filter(|(_, r)| r == "leader").collect();
        assert_eq!(leaders.len(), 1, "exactly one leader in {}", v.json);
        assert_eq!(
            leaders[0].0, c.masters[leader].addr,
            "leader role on the leader address: {}",
            v.json
        );
        assert_eq!(
            roles.iter().filter(|(_, r)| r == "follower").count(),
            2,
            "two followers in {}",
            v.json
        );
        let mut addrs: Vec<String> = roles.iter().map(|(a, _)| a.clone()).collect();
        addrs.sort();
        let mut want: Vec<String> = c.masters.iter().map(|m| m.addr.clone()).collect();
        want.sort();
        assert_eq!(addrs, want, "member addresses");
        assert!(
            v.json["term"].as_u64().is_some_and(|t| t >= 1),
            "term >= 1: {}",
            v.json
        );
        assert!(
            v.json["leader"].as_u64().is_some(),
            "leader id is a number: {}",
            v.json
        );

        let l = c.http.get(&format!("{}/v2/leader", c.url(i))).await;
        assert_eq!(l.status, 200, "GET /v2/leader: {}", l.body);
        assert_eq!(
            l.json()["leader"],
            Value::String(c.masters[leader].addr.clone())
        );

        let m = c.metrics(i).await.expect("metrics");
        let want_leader = if i == leader { 1.0 } else { 0.0 };
        assert_eq!(
            m.get("orch_raft_is_leader"),
            Some(&want_leader),
            "orch_raft_is_leader on {}",
            c.masters[i].addr
        );
    }
}

#[tokio::test]
async fn write_to_follower_is_applied_everywhere() {
    let mut c = Cluster::start(3, &[]);
    let leader = c.wait_for_leader(FORM).await;
    let follower = others(3, leader)[0];

    let r = c.create_app(follower, "/via-follower").await;
    assert_eq!(
        r.header("X-Marathon-Leader").as_deref(),
        Some(format!("http://{}", c.masters[leader].addr).as_str()),
        "X-Marathon-Leader on a proxied response"
    );
    assert_eq!(r.json()["id"], "/via-follower");

    // Applied on every master (not only readable through the leader).
    c.wait_all_caught_up(leader, &[0, 1, 2], Duration::from_secs(5))
        .await;
    for i in 0..3 {
        let g = c
            .http
            .get(&format!("{}/v2/apps/via-follower", c.url(i)))
            .await;
        assert_eq!(g.status, 200, "GET via {}: {}", c.masters[i].addr, g.body);
        assert_eq!(g.json()["app"]["id"], "/via-follower");
        assert!(
            g.header("X-Marathon-Leader").is_some(),
            "X-Marathon-Leader on every /v2 response"
        );
    }
}

#[tokio::test]
async fn leader_sigkill_new_leader_within_2s_and_no_acknowledged_write_lost() {
    let mut c = Cluster::start(3, &[]);
    let leader = c.wait_for_leader(FORM).await;

    let mut acked = Vec::new();
    for n in 0..20 {
        let id = format!("/before-kill-{n}");
        c.create_app(n % 3, &id).await;
        acked.push(id);
    }

    let survivors = others(3, leader);
    let t0 = Instant::now();
    c.masters[leader].kill9();
    let (took, via) = c
        .write_until_ok(&survivors, "/after-kill", Duration::from_secs(10))
        .await
        .unwrap_or_else(|e| panic!("after SIGKILL of the leader: {e}\n{}", c.all_logs(40)));
    let since_kill = t0.elapsed();
    eprintln!(
        "failover: write accepted via {} {took:?} after SIGKILL",
        c.masters[via].addr
    );
    assert!(
        since_kill < Duration::from_secs(2),
        "write accepted only {since_kill:?} after killing the leader (want < 2 s)"
    );

    let new_leader = c
        .wait_for_leader_among(&survivors, Some(3), Duration::from_secs(5))
        .await;
    assert_ne!(new_leader, leader);
    acked.push("/after-kill".to_string());
    for &s in &survivors {
        c.assert_has_apps(s, &acked).await;
    }
}

#[tokio::test]
async fn killed_master_catches_up_from_snapshot_and_serves_as_leader() {
    let mut c = Cluster::start(3, &["--snapshot-logs", "10"]);
    let first = c.wait_for_leader(FORM).await;

    let mut ids = Vec::new();
    for n in 0..5 {
        let id = format!("/early-{n}");
        c.create_app(first, &id).await;
        ids.push(id);
    }

    // Kill the leader; the other two elect a new one and take > 50 writes (log compacted
    // every 10 entries, so the restarted master needs a snapshot).
    c.masters[first].kill9();
    let survivors = others(3, first);
    let leader = c
        .wait_for_leader_among(&survivors, Some(3), Duration::from_secs(10))
        .await;
    for n in 0..60 {
        let id = format!("/while-down-{n}");
        c.create_app(survivors[n % 2], &id).await;
        ids.push(id);
    }

    c.masters[first].restart();
    c.wait_all_caught_up(leader, &[0, 1, 2], Duration::from_secs(20))
        .await;
    let leader = c.wait_for_leader(Duration::from_secs(10)).await;

    // Make the restarted master the leader, then read everything through it. Abdication
    // alone may never pick it (openraft draws each node's election timeout once per process,
    // so the follower with the shorter one always wins), so stop the third master first: then
    // the restarted one is the only candidate when the leader abdicates.
    let mut current = leader;
    let mut stopped = None;
    for attempt in 1..=5 {
        if current == first {
            break;
        }
        let third = (0..3)
            .find(|&i| i != first && i != current)
            .expect("a third master");
        if stopped.is_none() {
            c.masters[third].terminate();
            stopped = Some(third);
        }
        let r = c
            .http
            .delete(&format!("{}/v2/leader", c.url(current)))
            .await;
        assert_eq!(r.status, 200, "DELETE /v2/leader: {}", r.body);
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let l = c
                .wait_for_leader_among(&[current, first], Some(3), Duration::from_secs(10))
                .await;
            if l != current || Instant::now() >= deadline {
                eprintln!(
                    "abdication {attempt}: {} -> {}",
                    c.masters[current].name, c.masters[l].name
                );
                current = l;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    if current != first {
        panic!(
            "restarted {} did not become leader after 5 abdications:\n{}",
            c.masters[first].name,
            c.raft_summary().await
        );
    }
    let have = c.app_ids(first).await;
    assert_eq!(
        have.len(),
        ids.len(),
        "app count served by the restarted master as leader"
    );
    c.assert_has_apps(first, &ids).await;
    // And it still takes writes as leader, also once the stopped master is back.
    c.create_app(first, "/after-catch-up").await;
    if let Some(i) = stopped {
        c.masters[i].restart();
        c.wait_for_leader(Duration::from_secs(10)).await;
        c.create_app(i, "/after-all-back").await;
    }
}

#[tokio::test]
async fn all_masters_restarted_keep_all_state() {
    let mut c = Cluster::start(3, &[]);
    let leader = c.wait_for_leader(FORM).await;

    let mut ids = Vec::new();
    for n in 0..12 {
        let id = format!("/keep-{n}");
        c.create_app(n % 3, &id).await;
        ids.push(id);
    }
    // An update and a delete must survive too.
    let u = c
        .http
        .put(
            &format!("{}/v2/apps/keep-0", c.url(leader)),
            &serde_json::json!({"labels": {"updated": "yes"}}),
        )
        .await;
    assert_eq!(u.status, 200, "PUT keep-0: {}", u.body);
    let d = c
        .http
        .delete(&format!("{}/v2/apps/keep-1", c.url(leader)))
        .await;
    assert_eq!(d.status, 200, "DELETE keep-1: {}", d.body);
    ids.retain(|i| i != "/keep-1");

    // Graceful stop of all three (exit 0), restart, check.
    for m in &mut c.masters {
        m.terminate();
    }
    for m in &mut c.masters {
        m.restart();
    }
    let leader = c.wait_for_leader(FORM).await;
    for i in 0..3 {
        assert_eq!(
            c.app_ids(i).await,
            sorted(&ids),
            "apps via {} after SIGTERM + restart",
            c.masters[i].addr
        );
    }
    let g = c
        .http
        .get(&format!("{}/v2/apps/keep-0", c.url(leader)))
        .await;
    assert_eq!(
        g.json()["app"]["labels"]["updated"],
        "yes",
        "update survived: {}",
        g.body
    );
    assert_eq!(
        g.json()["app"]["cmd"],
        "sleep 3600",
        "partial update kept cmd: {}",
        g.body
    );

    // Then SIGKILL all three right after acknowledged writes, restart, check.
    for n in 0..5 {
        let id = format!("/before-kill9-{n}");
        c.create_app(n % 3, &id).await;
        ids.push(id);
    }
    for m in &mut c.masters {
        m.kill9();
    }
    for m in &mut c.masters {
        m.restart();
    }
    c.wait_for_leader(FORM).await;
    for i in 0..3 {
        assert_eq!(
            c.app_ids(i).await,
            sorted(&ids),
            "apps via {} after SIGKILL + restart",
            c.masters[i].addr
        );
    }
}

fn sorted(ids: &[String]) -> Vec<String> {
    let mut v = ids.to_vec();
    v.sort();
    v
}

#[tokio::test]
async fn lone_master_refuses_writes_with_503_quickly() {
    let mut c = Cluster::start(3, &[]);
    let leader = c.wait_for_leader(FORM).await;
    c.create_app(leader, "/before-quorum-loss").await;

    // Leave the (former) leader alone: the hardest case, it may still believe it leads.
    for i in others(3, leader) {
        c.masters[i].terminate();
    }
    for n in 0..2 {
        let t0 = Instant::now();
        let r = c
            .http
            .send(
                reqwest::Method::POST,
                &format!("{}/v2/apps", c.url(leader)),
                Some(support::app(&format!("/no-quorum-{n}")).to_string()),
                Some(Duration::from_secs(15)),
            )
            .await
            .unwrap_or_else(|e| panic!("write to a lone master: {e:#}"));
        let took = t0.elapsed();
        eprintln!(
            "lone master: write {n} answered {} after {took:?}",
            r.status
        );
        assert_eq!(
            r.status, 503,
            "write to a lone master answered {} ({}) after {took:?}",
            r.status, r.body
        );
        assert!(
            took < Duration::from_secs(5),
            "503 took {took:?} (want < 5 s)"
        );
    }
    let p = c.http.get(&format!("{}/ping", c.url(leader))).await;
    assert_eq!(
        (p.status, p.body.trim()),
        (200, "pong"),
        "/ping still answered locally"
    );
    c.masters[leader].assert_running();
}

#[tokio::test]
async fn membership_one_to_three_to_one() {
    let mut c = Cluster::empty();
    let a1 = support::free_addr();
    let a2 = support::free_addr();
    let a3 = support::free_addr();
    let s = |x: &str| x.to_string();
    c.add(
        &a1,
        vec![s("--listen"), a1.clone(), s("--masters"), a1.clone()],
    );
    c.wait_for_leader(FORM).await;
    c.create_app(0, "/single-1").await;

    // Joiners: advertise address not in --masters, explicit --id.
    c.add(
        &a2,
        vec![
            s("--masters"),
            a1.clone(),
            s("--id"),
            s("2"),
            s("--listen"),
            a2.clone(),
        ],
    );
    c.add(
        &a3,
        vec![
            s("--masters"),
            a1.clone(),
            s("--id"),
            s("3"),
            s("--listen"),
            a3.clone(),
        ],
    );
    for i in [1, 2] {
        wait_ping(&mut c, i).await;
    }
    let master_url = format!("http://{a1}");
    for addr in [&a2, &a3] {
        let out = run_orch(
            &["cluster", "add-master", addr, "--master", &master_url],
            Duration::from_secs(60),
        )
        .await;
        assert!(
            out.status.success(),
            "orch cluster add-master {addr}:\n{}\n{}",
            describe_output(&out),
            c.all_logs(40)
        );
    }
    let leader = c
        .wait_for_leader_among(&[0, 1, 2], Some(3), Duration::from_secs(20))
        .await;
    c.create_app(1, "/three-via-2").await;
    c.create_app(2, "/three-via-3").await;
    c.wait_all_caught_up(leader, &[0, 1, 2], Duration::from_secs(10))
        .await;
    let ids = vec![s("/single-1"), s("/three-via-2"), s("/three-via-3")];
    for i in 0..3 {
        c.assert_has_apps(i, &ids).await;
    }

    for addr in [&a3, &a2] {
        let out = run_orch(
            &["cluster", "remove-master", addr, "--master", &master_url],
            Duration::from_secs(60),
        )
        .await;
        assert!(
            out.status.success(),
            "orch cluster remove-master {addr}:\n{}\n{}",
            describe_output(&out),
            c.all_logs(40)
        );
    }
    let l = c
        .wait_for_leader_among(&[0], Some(1), Duration::from_secs(20))
        .await;
    assert_eq!(l, 0);
    c.create_app(0, "/single-again").await;
    let mut all = ids.clone();
    all.push(s("/single-again"));
    assert_eq!(c.app_ids(0).await, sorted(&all));
}

async fn wait_ping(c: &mut Cluster, i: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        c.masters[i].assert_running();
        let url = format!("{}/ping", c.url(i));
        if let Ok(r) = c
            .http
            .send(
                reqwest::Method::GET,
                &url,
                None,
                Some(Duration::from_secs(1)),
            )
            .await
        {
            if r.status == 200 {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "{} did not answer /ping within 20 s\n{}",
            c.masters[i].addr,
            c.masters[i].logs(40)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn delete_leader_elects_another_within_3s() {
    let mut c = Cluster::start(3, &[]);
    let old = c.wait_for_leader(FORM).await;

    let t0 = Instant::now();
    let r = c.http.delete(&format!("{}/v2/leader", c.url(old))).await;
    assert_eq!(r.status, 200, "DELETE /v2/leader: {}", r.body);
    assert_eq!(r.json()["message"], "Leadership abdicated");

    loop {
        let mut agreed: Option<String> = None;
        let mut all_agree = true;
        for i in 0..3 {
            match c.view(i).await.ok().and_then(|v| v.leader_address()) {
                Some(a) if agreed.as_ref().is_none_or(|x| *x == a) => agreed = Some(a),
                _ => all_agree = false,
            }
        }
        if all_agree {
            if let Some(a) = agreed.filter(|a| *a != c.masters[old].addr) {
                eprintln!("new leader {a} after {:?}", t0.elapsed());
                break;
            }
        }
        assert!(
            t0.elapsed() < Duration::from_secs(3),
            "no different leader agreed within 3 s of DELETE /v2/leader\n{}",
            c.all_logs(30)
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    // The cluster still takes writes.
    let (_, _) = c
        .write_until_ok(&[0, 1, 2], "/after-abdication", Duration::from_secs(5))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

#[tokio::test]
async fn cluster_status_cli_shows_the_leader() {
    let mut c = Cluster::start(3, &[]);
    let leader = c.wait_for_leader(FORM).await;
    let follower = others(3, leader)[0];
    let url = c.url(follower);
    let leader_addr = c.masters[leader].addr.clone();

    let out = run_orch(
        &["cluster", "status", "--master", &url],
        Duration::from_secs(20),
    )
    .await;
    assert!(
        out.status.success(),
        "orch cluster status:\n{}",
        describe_output(&out)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&leader_addr),
        "table names the leader {leader_addr}:\n{text}"
    );
    for m in &c.masters {
        assert!(
            text.contains(&m.addr),
            "table lists member {}:\n{text}",
            m.addr
        );
    }

    let out = run_orch(
        &["cluster", "status", "--master", &url, "-o", "json"],
        Duration::from_secs(20),
    )
    .await;
    assert!(
        out.status.success(),
        "orch cluster status -o json:\n{}",
        describe_output(&out)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "-o json output is not JSON ({e}):\n{}",
            describe_output(&out)
        )
    });
    assert_eq!(v["leader_address"], Value::String(leader_addr));
    assert_eq!(v["members"].as_array().map(Vec::len), Some(3), "{v}");
}

/// A leader elected after a full restart must not answer reads before it has applied what
/// earlier terms committed: the first read any master answers with 200 includes every
/// acknowledged write. Reads are sent back to back from the moment the masters restart, so
/// they reach the new leader as soon as it is elected.
#[tokio::test]
async fn fresh_leader_reads_include_every_acknowledged_write() {
    let mut c = Cluster::start(3, &[]);
    c.wait_for_leader(FORM).await;
    let mut ids = Vec::new();
    for round in 0..5 {
        for n in 0..3 {
            let id = format!("/round-{round}-{n}");
            c.create_app(n, &id).await;
            ids.push(id);
        }
        for m in &mut c.masters {
            m.kill9();
        }
        for m in &mut c.masters {
            m.restart();
        }
        let deadline = std::time::Instant::now() + FORM;
        let first = loop {
            assert!(
                std::time::Instant::now() < deadline,
                "no master answered GET /v2/apps in round {round}"
            );
            let url = format!("{}/v2/apps", c.url(round % 3));
            // Connection errors are expected while the masters start.
            if let Ok(r) = c.http.send(reqwest::Method::GET, &url, None, None).await {
                if r.status == 200 {
                    break r.json();
                }
            }
        };
        let mut seen: Vec<String> = first["apps"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|app| app["id"].as_str().map(str::to_owned))
            .collect();
        seen.sort();
        assert_eq!(seen, sorted(&ids), "first successful read in round {round}");
    }
}

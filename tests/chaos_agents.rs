//! The chaos suite for agents: real `orch agent` processes running process tasks while they
//! are killed and restarted in a loop, and while one is cut off from its master for longer
//! than `--agent-timeout`. After each fault settles the counts must be exact: as many tasks
//! as instances in the master's state, and as many live task processes on the machine, none
//! twice. `ORCH_CHAOS_ROUNDS` (default 5) sets the number of faults.

mod support;

#[path = "support/chaos.rs"]
mod chaos;
#[path = "support/linearizability.rs"]
mod linearizability;

use std::time::Duration;

use chaos::{agent_partition_rounds, rounds, settle};
use serde_json::{json, Value};
use support::{Cluster, Net};

const RESOURCES: &str = "cpus:8;mem:4096;disk:4096;ports:[31000-31100]";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_kill_loops_keep_every_task_and_leave_exact_counts() {
    let mut c = Cluster::start(1, &[]);
    let flags = ["--resources", RESOURCES, "--containerizers", "mesos"];
    c.add_agent(&flags);
    c.add_agent(&flags);
    c.wait_for_agents(0, 2, Duration::from_secs(15)).await;
    let marker = format!("{}", 40_000 + std::process::id() % 10_000);
    let app = json!({"id": "/loop", "cmd": format!("exec sleep {marker}"), "instances": 6,
                     "cpus": 0.1, "mem": 8});
    let r = c.http.post(&format!("{}/v2/apps", c.url(0)), &app).await;
    assert_eq!(r.status, 201, "{}", r.body);
    settle(&c, "/loop", &marker, 6, Duration::from_secs(30)).await;
    let ids: Vec<Value> = chaos::app_tasks(&c, "/loop")
        .await
        .iter()
        .map(|t| t["id"].clone())
        .collect();
    for round in 0..rounds() {
        let agent = round % 2;
        c.agents[agent].kill9();
        tokio::time::sleep(Duration::from_millis(300)).await;
        c.agents[agent].start();
        c.wait_for_agents(0, 2, Duration::from_secs(15)).await;
    }
    let took = settle(&c, "/loop", &marker, 6, Duration::from_secs(30)).await;
    let after: Vec<Value> = chaos::app_tasks(&c, "/loop")
        .await
        .iter()
        .map(|t| t["id"].clone())
        .collect();
    for id in &ids {
        assert!(
            after.contains(id),
            "task {id} was lost or replaced by restarts of its agent"
        );
    }
    eprintln!(
        "chaos figures: agent kill -9 and restart: {} faults, 6 tasks, 0 lost, settled {took:?} after the last",
        rounds()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_cut_off_past_its_timeout_is_replaced_and_its_surplus_killed_on_healing() {
    let net = Net::new(3);
    let (mut c, marker) = chaos::partitioned_agents(&net).await;

    let healed = agent_partition_rounds(&mut c, &net, ("/cut", &marker, 4), rounds().min(3)).await;
    eprintln!("chaos figures: agent partition past --agent-timeout: exact counts {healed:?} after healing");
}

/// The pid of one live `sleep <marker>` process.
fn a_process_with(marker: &str) -> u32 {
    let wanted = format!("sleep {marker}");
    std::fs::read_dir("/proc")
        .expect("/proc")
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_string_lossy().parse::<u32>().ok())
        .find(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            String::from_utf8_lossy(&cmdline).replace('\0', " ").trim() == wanted
        })
        .expect("a task process")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_status_journal_loses_no_update() {
    let mut c = Cluster::start(1, &[]);
    let flags = ["--resources", RESOURCES, "--containerizers", "mesos"];
    c.add_agent(&flags);
    c.wait_for_agents(0, 1, Duration::from_secs(15)).await;
    let marker = format!("{}", 30_000 + std::process::id() % 10_000);
    let app = json!({"id": "/journal", "cmd": format!("exec sleep {marker}"), "instances": 2,
                     "cpus": 0.1, "mem": 8, "backoffSeconds": 0});
    let r = c.http.post(&format!("{}/v2/apps", c.url(0)), &app).await;
    assert_eq!(r.status, 201, "{}", r.body);
    settle(&c, "/journal", &marker, 2, Duration::from_secs(30)).await;
    let before: Vec<Value> = chaos::app_tasks(&c, "/journal").await;

    // The agent is down when one of its tasks ends, and its journal is damaged meanwhile: a
    // line that is no record (not even UTF-8), then a record torn in the middle.
    c.agents[0].kill9();
    support::send_signal(a_process_with(&marker), "KILL");
    let journal = c.agents[0].data_dir.join("status.journal");
    let mut damaged = std::fs::read(&journal).unwrap_or_default();
    damaged.extend_from_slice(b"\xff\xfe not a record\n{\"seq\": 99, \"task_id\": \"x");
    std::fs::write(&journal, damaged).expect("damage the journal");
    c.agents[0].start();

    // The ended task is reported (and replaced); the other one runs on untouched.
    settle(&c, "/journal", &marker, 2, Duration::from_secs(30)).await;
    let after: Vec<Value> = chaos::app_tasks(&c, "/journal").await;
    let ids = |tasks: &[Value]| -> Vec<Value> { tasks.iter().map(|t| t["id"].clone()).collect() };
    let kept = ids(&before)
        .into_iter()
        .filter(|id| ids(&after).contains(id))
        .count();
    assert_eq!(
        kept, 1,
        "one task ended and was replaced, one ran on: {before:?} {after:?}"
    );
    c.agents[0].assert_running();
}

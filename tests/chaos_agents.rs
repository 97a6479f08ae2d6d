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
    let mut c = Cluster::empty();
    let master = format!("{}:7000", net.ip(0));
    let args = [
        "--listen",
        &master,
        "--advertise",
        &master,
        "--insecure",
        "--agent-timeout",
        "2s",
    ];
    c.add_in(net.prefix(0), &master, args.map(str::to_owned).to_vec());
    c.wait_for_leader(Duration::from_secs(20)).await;
    let flags = ["--resources", RESOURCES, "--containerizers", "mesos"];
    c.add_agent_in(net.prefix(1), &net.ip(1), &flags);
    c.add_agent_in(net.prefix(2), &net.ip(2), &flags);
    c.wait_for_agents(0, 2, Duration::from_secs(15)).await;
    let marker = format!("{}", 50_000 + std::process::id() % 10_000);
    let app = json!({"id": "/cut", "cmd": format!("exec sleep {marker}"), "instances": 4,
                     "cpus": 0.1, "mem": 8, "constraints": [["hostname", "GROUP_BY"]]});
    let r = c.http.post(&format!("{}/v2/apps", c.url(0)), &app).await;
    assert_eq!(r.status, 201, "{}", r.body);
    settle(&c, "/cut", &marker, 4, Duration::from_secs(30)).await;

    let healed = agent_partition_rounds(&mut c, &net, ("/cut", &marker, 4), rounds().min(3)).await;
    eprintln!("chaos figures: agent partition past --agent-timeout: exact counts {healed:?} after healing");
}

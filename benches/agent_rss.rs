//! Agent memory benchmark: one master and one `orch agent` (mesos containerizer). Reads the
//! agent's `VmRSS` (and its anonymous / file-backed parts and thread count, from
//! `/proc/<pid>/status`) once it is registered and idle, then with 100 running process tasks
//! (`sleep 1000`, one app of 100 instances). Only the agent process is measured: each task
//! also has its own `orch executor` supervisor process, whose RSS is reported separately
//! (the sum over all of them).
//!
//! Run: `cargo bench --bench agent_rss` (`ORCH_BENCH_TASKS`, default 100). The agent inherits
//! the bench's environment, so e.g. `TOKIO_WORKER_THREADS=1` reaches it.

#[path = "../tests/support/mod.rs"]
mod support;

mod common;

use std::time::{Duration, Instant};

use serde_json::json;
use support::Cluster;

const RESOURCES: &str = "cpus:64;mem:65536;disk:10000;ports:[31000-31100]";
/// Time for start-up (or launch) allocations to settle before a reading.
const SETTLE: Duration = Duration::from_secs(3);

fn main() {
    if !common::invoked_as_bench("agent_rss") {
        return;
    }
    let tasks = common::env_or("ORCH_BENCH_TASKS", 100);
    common::runtime().block_on(async {
        let mut c = Cluster::start(1, &[]);
        c.wait_for_leader(Duration::from_secs(30)).await;
        c.add_agent(&["--resources", RESOURCES, "--containerizers", "mesos"]);
        c.wait_for_agents(0, 1, Duration::from_secs(30)).await;
        tokio::time::sleep(SETTLE).await;
        let pid = c.agents[0].pid();
        let idle = Reading::of(pid);

        let master = c.url(0);
        let app = json!({
            "id": "/rss/sleepers", "cmd": "sleep 1000", "cpus": 0.01, "mem": 8,
            "instances": tasks, "portDefinitions": []
        });
        let r = c.http.post(&format!("{master}/v2/apps"), &app).await;
        assert_eq!(r.status, 201, "{}", r.body);
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let r = c.http.get(&format!("{master}/v2/apps")).await;
            let running = r.json()["apps"][0]["tasksRunning"].as_u64().unwrap_or(0);
            if running == tasks {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{tasks} tasks not running within 120 s (have {running})\n{}",
                c.all_logs(30)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tokio::time::sleep(SETTLE).await;
        c.agents[0].assert_running();
        let loaded = Reading::of(pid);
        let executors = executors_rss_mib(c.dir());
        println!(
            "| agent rss: one `orch agent`, mesos containerizer | idle {} | with {tasks} running process tasks {} | {tasks} `orch executor` processes: {executors:.1} MiB in all |",
            idle.show(),
            loaded.show(),
        );
    });
}

/// Memory and threads of one process.
#[derive(Debug)]
struct Reading {
    rss: f64,
    anon: f64,
    file: f64,
    threads: u64,
}

impl Reading {
    fn of(pid: u32) -> Reading {
        let kib = |f: &str| common::proc_status_field(pid, f).unwrap_or(0) as f64 / 1024.0;
        Reading {
            rss: common::rss_mib(pid),
            anon: kib("RssAnon"),
            file: kib("RssFile"),
            threads: common::proc_status_field(pid, "Threads").unwrap_or(0),
        }
    }

    fn show(&self) -> String {
        format!(
            "**{:.1} MiB** (anon {:.1}, file {:.1}; {} threads)",
            self.rss, self.anon, self.file, self.threads
        )
    }
}

/// Sum of `VmRSS` over `orch executor` processes whose command line names a path under `dir`.
fn executors_rss_mib(dir: &std::path::Path) -> f64 {
    let needle = dir
        .canonicalize()
        .unwrap_or_else(|_| dir.to_path_buf())
        .display()
        .to_string();
    let mut sum = 0.0;
    for entry in std::fs::read_dir("/proc").expect("read /proc").flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(" executor") && cmdline.contains(&needle) {
            sum += common::proc_status_field(pid, "VmRSS").unwrap_or(0) as f64 / 1024.0;
        }
    }
    sum
}

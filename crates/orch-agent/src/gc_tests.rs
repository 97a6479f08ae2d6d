//! The sandbox GC on real directories (and a small tmpfs for the disk watermark), with the
//! mock driver running the tasks.

use super::tests::{instance, set, spec, LIMIT};
use super::*;
use orch_core::model::{TaskId, TaskState};
use orch_driver::mock::{MockDriver, RUN_FOR_LABEL};
use orch_driver::{Driver, Launch};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

fn ids(names: &[&str]) -> Vec<TaskId> {
    names.iter().map(|n| TaskId((*n).to_owned())).collect()
}

/// A sandbox no task of the agent knows, last changed `age` ago, holding `bytes` bytes.
fn leftover(agent: &Agent, name: &str, age: Duration, bytes: usize) {
    let dir = agent.sandboxes().join(name);
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(dir.join("stdout"), vec![b'x'; bytes]).expect("write");
    let when = SystemTime::now() - age;
    std::fs::File::open(&dir)
        .and_then(|d| d.set_modified(when))
        .expect("mtime");
}

async fn until_state(agent: &Agent, id: &str, done: impl Fn(TaskState) -> bool) {
    tokio::time::timeout(LIMIT, async {
        while !agent
            .actual()
            .get(&TaskId(id.into()))
            .is_some_and(|t| done(t.state))
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{id} never got there"));
}

fn exists(agent: &Agent, name: &str) -> bool {
    agent.sandboxes().join(name).is_dir()
}

#[tokio::test]
async fn finished_sandboxes_go_after_the_delay_and_running_ones_never() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut instance = instance(dir.path(), vec!["127.0.0.1:9".into()]);
    instance.gc = GcPolicy {
        delay: Duration::from_millis(400),
        disk_watermark: 1.0,
    };
    let driver = Arc::new(MockDriver::new());
    let agent = Agent::open(instance, vec![driver.clone() as Arc<dyn Driver>])
        .await
        .expect("open");
    let mut short = spec("short", "run");
    short
        .labels
        .insert(RUN_FOR_LABEL.to_owned(), "10ms".to_owned());
    assert!(agent.apply_desired(set(1, vec![spec("long", "run"), short])));
    until_state(&agent, "short", |s| s == TaskState::Finished).await;
    until_state(&agent, "long", |s| s == TaskState::Running).await;
    // A task the agent does not track but a driver still runs.
    std::fs::create_dir_all(agent.sandboxes().join("ghost")).expect("mkdir");
    driver
        .start(Launch {
            spec: spec("ghost", "run"),
            sandbox: agent.sandboxes().join("ghost"),
            hostname: "node-1".into(),
            agent_ip: "127.0.0.1".into(),
        })
        .await
        .expect("ghost runs");
    leftover(&agent, "forgotten", Duration::from_secs(3600), 10);
    leftover(&agent, "ghost", Duration::from_secs(3600), 10);

    assert_eq!(agent.collect_garbage().await, ids(&["forgotten"]));
    assert!(exists(&agent, "short"), "ended just now");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(agent.collect_garbage().await, ids(&["short"]));
    assert!(exists(&agent, "long") && exists(&agent, "ghost"));
    assert!(
        !dir.path()
            .join("gc-trash")
            .read_dir()
            .expect("trash")
            .any(|_| true),
        "deleted, not only moved"
    );

    // Killed: its sandbox goes once the delay has passed since the end.
    assert!(agent.apply_desired(set(2, vec![])));
    until_state(&agent, "long", |s| s == TaskState::Killed).await;
    assert!(agent.collect_garbage().await.is_empty());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(agent.collect_garbage().await, ids(&["long"]));
    assert!(exists(&agent, "ghost"), "a running task's sandbox stays");
}

/// A tmpfs of `size` at `dir`, unmounted on drop; `None` where mounting is not allowed.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Option<Self> {
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .stderr(std::process::Stdio::null())
            .status()
            .ok()?;
        status.success().then(|| Self(dir.to_owned()))
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

#[tokio::test]
async fn above_the_watermark_the_oldest_finished_sandboxes_go_first() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(_mounted) = Tmpfs::mount(dir.path(), "1m") else {
        println!("NOTE: cannot mount a tmpfs (not root?); disk watermark test skipped");
        return;
    };
    let mut instance = instance(dir.path(), vec!["127.0.0.1:9".into()]);
    instance.gc = GcPolicy {
        delay: Duration::from_secs(24 * 3600),
        disk_watermark: 0.5,
    };
    let agent = Agent::open(
        instance,
        vec![Arc::new(MockDriver::new()) as Arc<dyn Driver>],
    )
    .await
    .expect("open");
    assert!(agent.apply_desired(set(1, vec![spec("running", "run")])));
    until_state(&agent, "running", |s| s == TaskState::Running).await;
    const SIZE: usize = 200 << 10;
    std::fs::write(agent.sandboxes().join("running/big"), vec![b'x'; SIZE]).expect("write");
    for (name, hours) in [("newest", 1), ("oldest", 3), ("older", 2)] {
        leftover(&agent, name, Duration::from_secs(hours * 3600), SIZE);
    }
    let usage = runtime_usage(dir.path());
    assert!(usage > 0.75, "{usage}");

    // Still young, but the disk is too full: oldest first, only until below the mark.
    assert_eq!(agent.collect_garbage().await, ids(&["oldest", "older"]));
    let usage = runtime_usage(dir.path());
    assert!(usage <= 0.5, "{usage}");
    assert!(exists(&agent, "newest") && exists(&agent, "running"));
    assert!(agent.collect_garbage().await.is_empty());
}

fn runtime_usage(path: &Path) -> f64 {
    crate::runtime::disk_usage(path).expect("statvfs")
}

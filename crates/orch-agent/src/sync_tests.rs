//! The sync loop against a fake master on a real socket: refused desired sets back off.

use super::tests::{instance, set, spec, FakeMaster, ScriptedDriver};
use super::*;
use orch_core::model::{TaskId, TaskState};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

#[tokio::test]
async fn a_refused_desired_set_is_polled_again_with_backoff_reset_by_an_accepted_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (master, leader) = FakeMaster::start().await;
    let agent = Agent::open(
        instance(dir.path(), vec![leader]),
        vec![ScriptedDriver::new(vec![])],
    )
    .await
    .expect("open");
    // The agent accepted generation 5 (from a newer leader); this master only knows 3 and
    // answers every poll at once with it.
    assert!(agent.apply_desired(set(5, vec![])));
    master
        .desired
        .send_replace(set(3, vec![spec("stale", "sleep")]));
    let loops = tokio::spawn(run(Arc::clone(&agent)));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let polls = master.polls.load(Ordering::SeqCst);
    // In a loop: hundreds. Backing off: at 0, 0.1, 0.3, 0.7 and 1.5 s.
    assert!((2..=8).contains(&polls), "{polls} polls in 1.5 s");
    assert!(!agent.actual().contains_key(&TaskId("stale".into())));

    // A newer set is taken once the current wait ends, and resets the backoff.
    master
        .desired
        .send_replace(set(6, vec![spec("fresh", "sleep")]));
    master.wait_for_state("fresh", TaskState::Running).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let before = master.polls.load(Ordering::SeqCst);
    master.desired.send_replace(set(4, vec![]));
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let polls = master.polls.load(Ordering::SeqCst) - before;
    // From 100 ms again (at 0, 0.1, 0.3, 0.7 s), not from where it had got to (1.6 s).
    assert!((3..=8).contains(&polls), "{polls} polls in 1.2 s");
    loops.abort();
}

//! The discovery view of this master: a new [`Snapshot`] whenever the applied state, the
//! leader or the membership changes. DNS and load balancers read it (in this process, or
//! through `GET /v1/snapshots`), so they follow the cluster without polling it.
//!
//! May depend on: state, raft (metrics only).

use orch_core::state::{ClusterState, Snapshot};
use orch_raft::Raft;
use std::sync::Arc;
use tokio::sync::watch;

/// Starts the publisher; it ends when the state channel closes (the master is gone).
pub(super) fn publish(
    raft: &Raft,
    mut states: watch::Receiver<Arc<ClusterState>>,
) -> watch::Receiver<Arc<Snapshot>> {
    let mut metrics = raft.metrics();
    let (leader, masters) = masters_of(&metrics.borrow_and_update());
    let first = Snapshot::of(&states.borrow_and_update(), leader, masters);
    let (sender, receiver) = watch::channel(Arc::new(first));
    tokio::spawn(async move {
        loop {
            tokio::select! {
                changed = states.changed() => if changed.is_err() { return },
                changed = metrics.changed() => if changed.is_err() { return },
                () = sender.closed() => return,
            }
            let (leader, masters) = masters_of(&metrics.borrow_and_update());
            let state = Arc::clone(&states.borrow_and_update());
            let current = Arc::clone(&sender.borrow());
            let unchanged = current.applied_index == state.applied_index
                && current.leader == leader
                && current.masters == masters;
            if !unchanged {
                sender.send_replace(Arc::new(Snapshot::of(&state, leader, masters)));
            }
        }
    });
    receiver
}

/// The leader's address and every member's, in id order.
fn masters_of(
    metrics: &openraft::RaftMetrics<orch_core::model::MasterId, openraft::BasicNode>,
) -> (Option<String>, Vec<String>) {
    let membership = metrics.membership_config.membership();
    let leader = metrics
        .current_leader
        .and_then(|id| membership.get_node(&id))
        .map(|node| node.addr.clone());
    let masters = membership
        .nodes()
        .map(|(_, node)| node.addr.clone())
        .collect();
    (leader, masters)
}

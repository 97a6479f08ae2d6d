//! Coalesces concurrent writes into one Raft entry.
//!
//! openraft 0.9 runs a full engine pass, a log append and a replication trigger for every
//! client write. Under load that per-entry work, not the disk, limits throughput. The batcher
//! keeps at most [`IN_FLIGHT`] Raft writes outstanding; commands that arrive while they are
//! busy queue up and go out together as one [`Command::Batch`]. A lone write goes out at once
//! on its own, so batching adds no latency when there is no backlog.
//!
//! Guarantees: every submitted command gets exactly one answer; commands of one batch are
//! applied in submission order, atomically with respect to other entries.

use super::{Leader, WriteError, WRITE_TIMEOUT};
use orch_core::state::{Applied, Command};
use orch_raft::{ClientWriteError, Raft, RaftError};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot, Semaphore};

/// Raft writes outstanding at once.
const IN_FLIGHT: usize = 4;
/// Commands in one entry at most (bounds entry size with Marathon's 1 MiB bodies).
const MAX_BATCH: usize = 256;

type Reply = oneshot::Sender<Result<Applied, WriteError>>;

/// The submitting side; cheap to share.
#[derive(Debug)]
pub(super) struct WriteBatcher {
    queue: mpsc::UnboundedSender<(Command, Reply)>,
}

impl WriteBatcher {
    /// Starts the batching task for `raft`. It ends when the batcher is dropped.
    pub(super) fn start(raft: Raft) -> Self {
        let (queue, pending) = mpsc::unbounded_channel();
        tokio::spawn(run(raft, pending));
        Self { queue }
    }

    /// Commits `command` (possibly together with others) and returns its own outcome.
    pub(super) async fn write(&self, command: Command) -> Result<Applied, WriteError> {
        let (reply, answer) = oneshot::channel();
        let stopped = || WriteError::Stopped(Arc::from(Box::from("the write batcher has stopped")));
        self.queue.send((command, reply)).map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

async fn run(raft: Raft, mut pending: mpsc::UnboundedReceiver<(Command, Reply)>) {
    let in_flight = Arc::new(Semaphore::new(IN_FLIGHT));
    while let Some(first) = pending.recv().await {
        // Waiting for a slot is what lets a backlog build up into one batch.
        let Ok(slot) = Arc::clone(&in_flight).acquire_owned().await else {
            return;
        };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match pending.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let raft = raft.clone();
        tokio::spawn(async move {
            commit(&raft, batch).await;
            drop(slot);
        });
    }
}

async fn commit(raft: &Raft, batch: Vec<(Command, Reply)>) {
    let (commands, replies): (Vec<Command>, Vec<Reply>) = batch.into_iter().unzip();
    let (entry, single) = match <[Command; 1]>::try_from(commands) {
        Ok([only]) => (only, true),
        Err(commands) => (Command::Batch(commands), false),
    };
    let outcome = tokio::time::timeout(WRITE_TIMEOUT, raft.client_write(entry)).await;
    let results: Result<Vec<Applied>, WriteError> = match outcome {
        Err(_) => Err(WriteError::Timeout(WRITE_TIMEOUT)),
        Ok(Ok(response)) => match response.data {
            Applied::Batch(results) if !single => Ok(results),
            applied => Ok(vec![applied]),
        },
        Ok(Err(error)) => Err(write_error(error)),
    };
    match results {
        Ok(results) => {
            for (reply, result) in replies.into_iter().zip(results) {
                let _ = reply.send(Ok(result));
            }
        }
        Err(error) => {
            for reply in replies {
                let _ = reply.send(Err(error.clone()));
            }
        }
    }
}

fn write_error(error: RaftError<ClientWriteError>) -> WriteError {
    match error {
        RaftError::APIError(ClientWriteError::ForwardToLeader(forward)) => {
            let leader = forward
                .leader_id
                .zip(forward.leader_node)
                .map(|(id, node)| Leader {
                    id,
                    address: node.addr,
                });
            WriteError::NotLeader { leader }
        }
        RaftError::APIError(ClientWriteError::ChangeMembershipError(e)) => {
            WriteError::Stopped(Arc::new(e))
        }
        RaftError::Fatal(fatal) => WriteError::Stopped(Arc::new(fatal)),
    }
}

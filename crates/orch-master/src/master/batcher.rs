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
/// Commands in one entry at most.
const MAX_BATCH: usize = 256;
/// Commands waiting for a batch at most; a writer beyond them waits for room (within the
/// write deadline), so a flood of writes holds bounded memory.
const MAX_QUEUED: usize = 4 * MAX_BATCH * IN_FLIGHT;
/// Encoded bytes of the commands in one entry at most (a lone larger command goes alone):
/// every entry stays well below the 64 MiB a master takes in one Raft RPC.
const MAX_BATCH_BYTES: usize = 8 << 20;

type Reply = oneshot::Sender<Result<Applied, WriteError>>;

/// The submitting side; cheap to share.
#[derive(Debug)]
pub(super) struct WriteBatcher {
    queue: mpsc::Sender<(Command, Reply)>,
}

impl WriteBatcher {
    /// Starts the batching task for `raft`. It ends when the batcher is dropped.
    pub(super) fn start(raft: Raft) -> Self {
        let (queue, pending) = mpsc::channel(MAX_QUEUED);
        tokio::spawn(run(raft, pending));
        Self { queue }
    }

    /// Commits `command` (possibly together with others) and returns its own outcome.
    pub(super) async fn write(&self, command: Command) -> Result<Applied, WriteError> {
        let (reply, answer) = oneshot::channel();
        let stopped = || WriteError::Stopped(Arc::from(Box::from("the write batcher has stopped")));
        match tokio::time::timeout(WRITE_TIMEOUT, self.queue.send((command, reply))).await {
            Err(_full) => return Err(WriteError::Timeout(WRITE_TIMEOUT)),
            Ok(sent) => sent.map_err(|_| stopped())?,
        }
        answer.await.map_err(|_| stopped())?
    }
}

async fn run(raft: Raft, mut pending: mpsc::Receiver<(Command, Reply)>) {
    let in_flight = Arc::new(Semaphore::new(IN_FLIGHT));
    let mut carried = None;
    loop {
        let first = match carried.take() {
            Some(first) => first,
            None => match pending.recv().await {
                Some(first) => first,
                None => return,
            },
        };
        // Waiting for a slot is what lets a backlog build up into one batch.
        let Ok(slot) = Arc::clone(&in_flight).acquire_owned().await else {
            return;
        };
        let mut batch = vec![first];
        carried = fill(
            &mut batch,
            || pending.try_recv().ok(),
            |(command, _)| orch_raft::codec::encoded_len(command),
            MAX_BATCH,
            MAX_BATCH_BYTES,
        );
        let raft = raft.clone();
        tokio::spawn(async move {
            commit(&raft, batch).await;
            drop(slot);
        });
    }
}

/// Adds what `next` yields to `batch` while it holds fewer than `max_count` items whose
/// `size`s add up to at most `max_bytes`; returns the item taken that did not fit. Sizes are
/// asked only once a second item comes, so a lone write pays nothing.
fn fill<T>(
    batch: &mut Vec<T>,
    mut next: impl FnMut() -> Option<T>,
    size: impl Fn(&T) -> usize,
    max_count: usize,
    max_bytes: usize,
) -> Option<T> {
    let mut bytes = None;
    while batch.len() < max_count {
        let item = next()?;
        let total = *bytes.get_or_insert_with(|| batch.iter().map(&size).sum::<usize>());
        let with_item = total.saturating_add(size(&item));
        if with_item > max_bytes {
            return Some(item);
        }
        bytes = Some(with_item);
        batch.push(item);
    }
    None
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

#[cfg(test)]
mod tests {
    use super::fill;

    #[test]
    fn a_batch_is_bounded_by_count_and_by_bytes() {
        let mut queue = vec![4, 4, 4, 4, 4].into_iter();
        let mut batch = vec![4];
        let left = fill(&mut batch, || queue.next(), |n| *n, 3, 100);
        assert_eq!((batch, left), (vec![4, 4, 4], None), "count");

        let mut queue = vec![3, 5, 1].into_iter();
        let mut batch = vec![4];
        let left = fill(&mut batch, || queue.next(), |n| *n, 10, 10);
        assert_eq!((batch, left), (vec![4, 3], Some(5)), "bytes: 5 waits");

        let mut batch = vec![20];
        let left = fill(&mut batch, || Some(1), |n| *n, 10, 10);
        assert_eq!((batch, left), (vec![20], Some(1)), "a large lone command");

        let mut queue = std::iter::empty::<usize>();
        let mut batch = vec![1];
        assert_eq!(
            fill(
                &mut batch,
                || queue.next(),
                |_| panic!("no size asked"),
                10,
                10
            ),
            None
        );
    }
}

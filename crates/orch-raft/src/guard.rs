//! Checks on the Raft RPCs a master receives, made before openraft sees them, so that one
//! request cannot break a master for good, even from a peer that is allowed to send it:
//! - a term far above ours ([`check_terms`]): openraft would take it, and a term near
//!   `u64::MAX` overflows at the next election;
//! - a snapshot chunk out of order or past the size cap ([`SnapshotGuard`]): openraft seeks
//!   to any offset in the in-memory snapshot it receives, so one chunk at offset 2^40 asks
//!   for a terabyte.
//!
//! May depend on: the crate's type configuration, openraft's request types. No I/O.

use super::TypeConfig;
use openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest, VoteRequest};
use openraft::LogId;
use orch_core::model::MasterId;
use std::sync::Mutex;

/// How far above this master's term a request's terms may be. An election adds one; no
/// cluster holds 2^32 of them.
pub const MAX_TERM_LEAP: u64 = 1 << 32;

/// The largest snapshot a master receives unless told otherwise (`--max-snapshot-bytes`).
pub const DEFAULT_MAX_SNAPSHOT_BYTES: u64 = 1 << 30;

/// Why a Raft RPC is refused before openraft sees it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// A term of the request is absurdly far above this master's.
    #[error("term {theirs} is more than 2^32 above this master's term {ours}")]
    TermLeap {
        /// This master's current term.
        ours: u64,
        /// The request's term.
        theirs: u64,
    },
    /// A snapshot chunk that does not continue the snapshot being received.
    #[error("snapshot {id}: a chunk at offset {offset}, where at most {expected} was expected")]
    SnapshotOffset {
        /// The snapshot's id.
        id: String,
        /// The chunk's offset.
        offset: u64,
        /// The bytes received so far (a chunk may continue there, or repeat an earlier one).
        expected: u64,
    },
    /// A snapshot larger than this master takes.
    #[error("snapshot {id}: {size} bytes or more, above the {max} allowed (--max-snapshot-bytes)")]
    SnapshotTooLarge {
        /// The snapshot's id.
        id: String,
        /// Where the chunk ends.
        size: u64,
        /// The cap.
        max: u64,
    },
}

/// Refuses when one of `terms` is more than [`MAX_TERM_LEAP`] above `ours`.
pub fn check_terms(ours: u64, terms: impl IntoIterator<Item = u64>) -> Result<(), Refusal> {
    let limit = ours.saturating_add(MAX_TERM_LEAP);
    match terms.into_iter().find(|&theirs| theirs > limit) {
        Some(theirs) => Err(Refusal::TermLeap { ours, theirs }),
        None => Ok(()),
    }
}

fn term(log_id: Option<&LogId<MasterId>>) -> Option<u64> {
    log_id.map(|id| id.leader_id.term)
}

/// The terms a vote request carries.
pub fn vote_terms(request: &VoteRequest<MasterId>) -> Vec<u64> {
    let mut terms = vec![request.vote.leader_id().term];
    terms.extend(term(request.last_log_id.as_ref()));
    terms
}

/// The terms an append request carries: its vote's, and every log id's.
pub fn append_terms(request: &AppendEntriesRequest<TypeConfig>) -> Vec<u64> {
    let mut terms = vec![request.vote.leader_id().term];
    terms.extend(term(request.prev_log_id.as_ref()));
    terms.extend(term(request.leader_commit.as_ref()));
    terms.extend(request.entries.iter().map(|e| e.log_id.leader_id.term));
    terms
}

/// The terms a snapshot chunk carries.
pub fn snapshot_terms(request: &InstallSnapshotRequest<TypeConfig>) -> Vec<u64> {
    let mut terms = vec![request.vote.leader_id().term];
    terms.extend(term(request.meta.last_log_id.as_ref()));
    terms
}

/// The snapshot a master is receiving: its id and how many bytes came so far.
#[derive(Debug)]
pub struct SnapshotGuard {
    max_bytes: u64,
    receiving: Mutex<Option<(String, u64)>>,
}

impl SnapshotGuard {
    /// A guard taking snapshots of at most `max_bytes`.
    pub fn new(max_bytes: u64) -> Self {
        Self {
            max_bytes,
            receiving: Mutex::new(None),
        }
    }

    /// Refuses a chunk of `len` bytes at `offset` of snapshot `id` unless it starts a
    /// snapshot (offset 0), continues the one being received, or repeats a part of it (a
    /// sender's retry); and unless the snapshot stays within the cap.
    pub fn check(&self, id: &str, offset: u64, len: u64) -> Result<(), Refusal> {
        let size = offset.saturating_add(len);
        if size > self.max_bytes {
            return Err(Refusal::SnapshotTooLarge {
                id: id.to_owned(),
                size,
                max: self.max_bytes,
            });
        }
        if offset == 0 {
            return Ok(());
        }
        let expected = match self.receiving.lock() {
            Ok(receiving) => match receiving.as_ref() {
                Some((current, received)) if current == id => *received,
                _ => 0,
            },
            Err(_) => 0,
        };
        if offset > expected {
            return Err(Refusal::SnapshotOffset {
                id: id.to_owned(),
                offset,
                expected,
            });
        }
        Ok(())
    }

    /// Notes that openraft took the chunk of `len` bytes at `offset` of snapshot `id`;
    /// `done` ends the snapshot.
    pub fn received(&self, id: &str, offset: u64, len: u64, done: bool) {
        let Ok(mut receiving) = self.receiving.lock() else {
            return;
        };
        if done {
            *receiving = None;
            return;
        }
        let end = offset.saturating_add(len);
        match receiving.as_mut() {
            Some((current, received)) if current == id && offset > 0 => {
                *received = (*received).max(end);
            }
            _ => *receiving = Some((id.to_owned(), end)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_term_more_than_two_to_the_32_above_ours_is_refused() {
        assert_eq!(check_terms(5, [5, 6, 5 + MAX_TERM_LEAP]), Ok(()));
        assert_eq!(
            check_terms(5, [6, u64::MAX]),
            Err(Refusal::TermLeap {
                ours: 5,
                theirs: u64::MAX
            })
        );
        assert!(check_terms(u64::MAX - 1, [u64::MAX]).is_ok(), "no overflow");
        let vote = VoteRequest::new(openraft::Vote::new(u64::MAX, 2), None);
        assert_eq!(
            check_terms(1, vote_terms(&vote)).map_err(|e| e.to_string()),
            Err(format!(
                "term {} is more than 2^32 above this master's term 1",
                u64::MAX
            ))
        );
    }

    #[test]
    fn snapshot_chunks_continue_in_order_within_the_cap() {
        let guard = SnapshotGuard::new(10 << 20);
        let mib = 1 << 20;
        assert!(guard.check("s1", 0, mib).is_ok());
        guard.received("s1", 0, mib, false);
        assert!(guard.check("s1", mib, mib).is_ok(), "the next chunk");
        assert!(guard.check("s1", 0, mib).is_ok(), "a retry, or a new start");
        assert_eq!(
            guard.check("s1", 1 << 40, 1),
            Err(Refusal::SnapshotTooLarge {
                id: "s1".into(),
                size: (1 << 40) + 1,
                max: 10 << 20
            })
        );
        assert_eq!(
            guard.check("s1", 2 * mib, mib),
            Err(Refusal::SnapshotOffset {
                id: "s1".into(),
                offset: 2 * mib,
                expected: mib
            }),
            "a gap"
        );
        assert!(
            guard.check("s2", mib, 1).is_err(),
            "another snapshot starts at 0"
        );
        guard.received("s1", mib, mib, false);
        assert!(guard.check("s1", 2 * mib, mib).is_ok());
        guard.received("s1", 2 * mib, mib, true);
        assert!(
            guard.check("s1", 3 * mib, 1).is_err(),
            "done: nothing continues"
        );
        assert!(guard.check("s1", u64::MAX, 2).is_err(), "no overflow");
    }
}

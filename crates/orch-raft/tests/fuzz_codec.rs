//! Hostile Raft RPC bodies and stored bytes (issue 18), fuzzed on stable with proptest (see
//! `orch-core/tests/common/fuzz.rs` for why not cargo-fuzz, and the `ORCH_FUZZ_CASES` knob).
//!
//! A master decodes `POST /internal/raft/{append,vote,snapshot}` bodies with
//! [`codec::decode`] into openraft's requests and runs the term guard
//! ([`guard::append_terms`], ...) on them before openraft sees them; the sending master
//! decodes the answers; the log store and the snapshot file decode entries and the state.
//! Each case decodes bytes (valid encodings mutated, or random) as every one of these.
//!
//! Properties: nothing panics; bad bytes are an error; whatever decodes encodes again, and
//! that encoding is stable (decode ∘ encode is the identity on it).
//!
//! Found: a [`ClusterState`] whose bytes declare a collection of billions of entries (a
//! 5-byte MessagePack array32/map32 header) aborted the process, imbl's serde visitors
//! preallocating the declared length; the state now decodes its collections through std's
//! (`orch_core::state::cautious`), and `a_state_declaring_billions_of_apps_is_an_error` holds.

#[path = "../../orch-core/tests/common/fuzz.rs"]
mod fuzz;

use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{
    BasicNode, CommittedLeaderId, EntryPayload, LogId, Membership, SnapshotMeta, StoredMembership,
    Vote,
};
use orch_core::model::{App, AppId, DeploymentId, MasterId, Timestamp};
use orch_core::state::{ClusterState, Command};
use orch_raft::{codec, guard, Entry, RaftError, TypeConfig};
use proptest::prelude::*;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

fn log_id(term: u64, index: u64) -> LogId<MasterId> {
    LogId::new(CommittedLeaderId::new(term, 1), index)
}

fn membership() -> Membership<MasterId, BasicNode> {
    let nodes: BTreeMap<MasterId, BasicNode> = (1..=3)
        .map(|id| (id, BasicNode::new(format!("127.0.0.1:{}", 8080 + id))))
        .collect();
    Membership::new(vec![BTreeSet::from([1, 2, 3])], nodes)
}

fn command() -> Command {
    let definition = serde_json::json!({"cmd": "sleep 100", "cpus": 0.5, "instances": 2,
        "env": {"A": "b"}, "portDefinitions": [{"port": 0, "name": "http"}],
        "labels": {"HAPROXY_GROUP": "external"}});
    let app = App::from_json(
        AppId::parse("/g/web").expect("valid id"),
        Timestamp::from_millis(42),
        definition.as_object().expect("an object"),
    )
    .expect("a valid app");
    Command::Batch(vec![Command::CreateApp {
        app: Box::new(app),
        deployment_id: DeploymentId("d-1".into()),
        force: true,
    }])
}

fn append_request() -> AppendEntriesRequest<TypeConfig> {
    let entries = vec![
        Entry {
            log_id: log_id(2, 5),
            payload: EntryPayload::Blank,
        },
        Entry {
            log_id: log_id(2, 6),
            payload: EntryPayload::Normal(command()),
        },
        Entry {
            log_id: log_id(2, 7),
            payload: EntryPayload::Membership(membership()),
        },
    ];
    AppendEntriesRequest {
        vote: Vote::new_committed(2, 1),
        prev_log_id: Some(log_id(1, 4)),
        entries,
        leader_commit: Some(log_id(2, 5)),
    }
}

fn snapshot_request() -> InstallSnapshotRequest<TypeConfig> {
    let mut state = ClusterState::default();
    state.apply(6, command());
    InstallSnapshotRequest {
        vote: Vote::new_committed(3, 2),
        meta: SnapshotMeta {
            last_log_id: Some(log_id(3, 9)),
            last_membership: StoredMembership::new(Some(log_id(1, 1)), membership()),
            snapshot_id: "3-9-abc".into(),
        },
        offset: 0,
        data: codec::encode(&state).expect("a state encodes"),
        done: true,
    }
}

/// One valid encoding of everything the codec decodes from outside.
fn seeds() -> Vec<Vec<u8>> {
    fn bytes<T: Serialize>(value: &T) -> Vec<u8> {
        codec::encode(value).expect("encodes")
    }
    let mut state = ClusterState::default();
    state.apply(6, command());
    let vote = Vote::new_committed(2, 1);
    vec![
        bytes(&append_request()),
        bytes(&VoteRequest::new(Vote::new(4, 2), Some(log_id(3, 10)))),
        bytes(&snapshot_request()),
        bytes(&Ok::<_, RaftError>(
            AppendEntriesResponse::<MasterId>::Success,
        )),
        bytes(&Ok::<_, RaftError>(
            AppendEntriesResponse::<MasterId>::HigherVote(vote),
        )),
        bytes(&Ok::<_, RaftError>(VoteResponse::new(
            vote,
            Some(log_id(2, 3)),
            true,
        ))),
        bytes(&Ok::<_, RaftError<openraft::error::InstallSnapshotError>>(
            InstallSnapshotResponse { vote },
        )),
        bytes(&append_request().entries),
        bytes(&command()),
        bytes(&state),
    ]
}

/// `bytes` decoded as a `T`: if it decodes, its encoding must be stable.
fn decoded<T: Serialize + DeserializeOwned>(bytes: &[u8]) -> Option<T> {
    let value: T = codec::decode(bytes).ok()?;
    let once = codec::encode(&value).expect("what decodes encodes");
    assert_eq!(codec::encoded_len(&value), once.len());
    let again: T = codec::decode(&once).expect("an encoding decodes");
    let twice = codec::encode(&again).expect("what decodes encodes");
    assert_eq!(once, twice, "the encoding is not stable");
    Some(value)
}

/// What a master does with `bytes` as each RPC, answer and stored value.
fn exercise(bytes: &[u8]) {
    if let Some(request) = decoded::<AppendEntriesRequest<TypeConfig>>(bytes) {
        let _ = guard::check_terms(1, guard::append_terms(&request));
        let mut state = ClusterState::default();
        for (index, entry) in (1u64..).zip(request.entries) {
            if let EntryPayload::Normal(command) = entry.payload {
                state.apply(index, command);
            }
        }
    }
    if let Some(request) = decoded::<VoteRequest<MasterId>>(bytes) {
        let _ = guard::check_terms(1, guard::vote_terms(&request));
    }
    if let Some(request) = decoded::<InstallSnapshotRequest<TypeConfig>>(bytes) {
        let _ = guard::check_terms(1, guard::snapshot_terms(&request));
        let snapshots = guard::SnapshotGuard::new(1 << 20);
        let len = u64::try_from(request.data.len()).unwrap_or(u64::MAX);
        let id = &request.meta.snapshot_id;
        if snapshots.check(id, request.offset, len).is_ok() {
            snapshots.received(id, request.offset, len, request.done);
        }
        decoded_state(&request.data);
    }
    let _ = decoded::<Result<AppendEntriesResponse<MasterId>, RaftError>>(bytes);
    let _ = decoded::<Result<VoteResponse<MasterId>, RaftError>>(bytes);
    let _ = decoded::<
        Result<InstallSnapshotResponse<MasterId>, RaftError<openraft::error::InstallSnapshotError>>,
    >(bytes);
    let _ = decoded::<Entry>(bytes);
    if let Some(command) = decoded::<Command>(bytes) {
        ClusterState::default().apply(1, command);
    }
    decoded_state(bytes);
}

/// `bytes` decoded as a [`ClusterState`] (a snapshot).
fn decoded_state(bytes: &[u8]) {
    let _ = decoded::<ClusterState>(bytes);
}

/// True if an array32 or map32 marker anywhere in `bytes` is followed by a length over
/// 2^20 (a conservative scan: it also matches such bytes inside strings).
fn declares_a_huge_collection(bytes: &[u8]) -> bool {
    bytes.windows(5).any(|window| {
        matches!(window[0], 0xdd | 0xdf)
            && u32::from_be_bytes([window[1], window[2], window[3], window[4]]) > 1 << 20
    })
}

#[test]
fn every_seed_decodes_as_what_it_is() {
    let seeds = seeds();
    for bytes in &seeds {
        exercise(bytes);
    }
    let append: AppendEntriesRequest<TypeConfig> = codec::decode(&seeds[0]).expect("append");
    assert_eq!(append.entries.len(), 3);
    let snapshot: InstallSnapshotRequest<TypeConfig> = codec::decode(&seeds[2]).expect("snapshot");
    assert_eq!(snapshot, snapshot_request());
    let state: ClusterState = codec::decode(&snapshot.data).expect("state");
    assert_eq!(state.apps.len(), 1);
}

proptest! {
    #![proptest_config(fuzz::config(5_000))]

    #[test]
    fn fuzz_raft_codec_mutated(bytes in fuzz::mutated_bytes(seeds())) {
        exercise(&bytes);
    }

    #[test]
    fn fuzz_raft_codec_random(bytes in fuzz::random_bytes(256)) {
        exercise(&bytes);
    }
}

/// Lengths that promise far more than the body holds must fail fast, without allocating
/// what they promise: a 4 GiB string, array and map header on a few bytes.
#[test]
fn huge_declared_lengths_are_an_error() {
    for bytes in [
        &[0xdb, 0xff, 0xff, 0xff, 0xff, b'a'][..],
        &[0xdd, 0xff, 0xff, 0xff, 0xff, 0x01][..],
        &[0xdf, 0xff, 0xff, 0xff, 0xff, 0xa1, b'k', 0x01][..],
        &[0xc6, 0xff, 0xff, 0xff, 0xff, 0x00][..],
    ] {
        exercise(bytes);
        assert!(codec::decode::<ClusterState>(bytes).is_err());
        assert!(codec::decode::<AppendEntriesRequest<TypeConfig>>(bytes).is_err());
    }
    let deep = [0x91u8; 100_000];
    assert!(codec::decode::<Command>(&deep).is_err());
    assert!(codec::decode::<ClusterState>(&deep).is_err());
}

/// Found by `fuzz_raft_codec_random`: 7 bytes, `[applied_index 0, apps: map32 of
/// 4,294,967,295 entries]`, made `codec::decode::<ClusterState>` allocate ~137 GB up front
/// and abort the process (imbl's visitors preallocate the declared length). A master decodes
/// a `ClusterState` from a snapshot a peer sends and from its snapshot file on start.
#[test]
fn a_state_declaring_billions_of_apps_is_an_error() {
    let bytes = [0x92, 0x00, 0xdf, 0xff, 0xff, 0xff, 0xff];
    assert!(declares_a_huge_collection(&bytes));
    assert!(codec::decode::<ClusterState>(&bytes).is_err());
}

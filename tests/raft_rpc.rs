//! Raft RPCs sent to a running master by a process that is not one: the requests that would
//! break a master for good are refused, and the master keeps serving. (Who may send Raft
//! RPCs at all is the TLS part of the security issue; these checks hold even between peers.)

mod support;

use openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest, VoteRequest};
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, SnapshotMeta, Vote};
use orch_raft::{codec, TypeConfig, TARGET_HEADER};
use std::time::Duration;
use support::{app, Cluster};

const FORM: Duration = Duration::from_secs(20);

/// POSTs `body` (an encoded request) to `/internal/raft/<rpc>` of master 1 at `base`;
/// returns the status and body.
async fn send(base: &str, rpc: &str, body: Vec<u8>) -> (u16, String) {
    orch_pki::tls::install_crypto_provider();
    let response = reqwest::Client::new()
        .post(format!("{base}/internal/raft/{rpc}"))
        .header(TARGET_HEADER, "1")
        .header(reqwest::header::CONTENT_TYPE, codec::CONTENT_TYPE)
        .body(body)
        .send()
        .await
        .expect("the master answers");
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

fn chunk(id: &str, offset: u64) -> InstallSnapshotRequest<TypeConfig> {
    InstallSnapshotRequest {
        vote: Vote::new_committed(1, 1),
        meta: SnapshotMeta {
            last_log_id: None,
            last_membership: Default::default(),
            snapshot_id: id.to_owned(),
        },
        offset,
        data: vec![0; 16],
        done: false,
    }
}

#[tokio::test]
async fn a_forged_vote_and_a_far_snapshot_chunk_are_refused_and_the_master_keeps_serving() {
    let mut c = Cluster::start(1, &[]);
    c.wait_for_leader(FORM).await;
    let base = c.url(0);
    let term_before = c.view(0).await.expect("view").json["term"].clone();

    let far = u64::MAX;
    let vote = VoteRequest::new(
        Vote::new(far, 2),
        Some(LogId::new(CommittedLeaderId::new(far, 2), far)),
    );
    let (status, body) = send(&base, "vote", codec::encode(&vote).expect("encode")).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains(&format!("term {far} is more than 2^32 above")),
        "{body}"
    );

    let append = AppendEntriesRequest::<TypeConfig> {
        vote: Vote::new_committed(1, 2),
        prev_log_id: None,
        entries: vec![Entry {
            log_id: LogId::new(CommittedLeaderId::new(far, 2), 1),
            payload: EntryPayload::Blank,
        }],
        leader_commit: None,
    };
    let (status, body) = send(&base, "append", codec::encode(&append).expect("encode")).await;
    assert_eq!(status, 400, "{body}");

    // One chunk at offset 2^40 would make the master grow its snapshot buffer to a terabyte.
    let (status, body) = send(
        &base,
        "snapshot",
        codec::encode(&chunk("forged", 1 << 40)).expect("encode"),
    )
    .await;
    assert_eq!(status, 413, "{body}");
    assert!(
        body.contains("above the 1073741824 allowed (--max-snapshot-bytes)"),
        "{body}"
    );
    let (status, body) = send(
        &base,
        "snapshot",
        codec::encode(&chunk("forged", 4096)).expect("encode"),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("at offset 4096, where at most 0 was expected"),
        "{body}"
    );

    c.masters[0].assert_running();
    let created = c
        .http
        .post(&format!("{base}/v2/apps"), &app("/after"))
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let view = c.view(0).await.expect("view");
    assert_eq!(view.json["term"], term_before, "{}", view.json);
    assert_eq!(view.leader_address(), Some(c.masters[0].addr.clone()));
}

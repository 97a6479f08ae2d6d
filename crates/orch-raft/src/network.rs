//! Raft RPC between masters: `codec`-encoded bodies over HTTP on the master port, under
//! `/internal/raft/`.
//!
//! Each request names the node it is meant for in [`TARGET_HEADER`]; a master refuses RPCs
//! meant for another id, so masters started with inconsistent `--masters` lists fail loudly
//! instead of mixing up their logs. A follower that answers an append with 413 (the body is
//! over its limit) gets openraft's `PayloadTooLarge`, and the leader sends smaller batches.

use super::{codec, RaftError, TypeConfig};
use openraft::error::{
    InstallSnapshotError, NetworkError, PayloadTooLarge, RPCError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::BasicNode;
use orch_core::model::MasterId;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::time::Instant;

/// The header carrying the Raft id the sender believes the receiver has.
pub const TARGET_HEADER: &str = "x-orch-raft-target";

/// When this master last heard from each peer: a successful RPC answer on the leader, an
/// append request from the leader on a follower.
#[derive(Clone, Debug, Default)]
pub struct PeerContacts(Arc<Mutex<HashMap<MasterId, Instant>>>);

impl PeerContacts {
    /// Notes contact with `peer` now.
    pub fn record(&self, peer: MasterId) {
        if let Ok(mut contacts) = self.0.lock() {
            contacts.insert(peer, Instant::now());
        }
    }

    /// Milliseconds since the last contact with `peer`, if any.
    pub fn millis_since(&self, peer: MasterId) -> Option<u64> {
        let contacts = self.0.lock().ok()?;
        let elapsed = contacts.get(&peer)?.elapsed().as_millis();
        Some(u64::try_from(elapsed).unwrap_or(u64::MAX))
    }
}

/// Creates connections to other masters; one shared HTTP client (keep-alive pools).
#[derive(Clone, Debug)]
pub struct HttpNetwork {
    client: reqwest::Client,
    contacts: PeerContacts,
    scheme: &'static str,
}

impl HttpNetwork {
    /// A network using `client` for every RPC over `scheme` (`http`, or `https` when the
    /// masters have TLS), noting successful answers in `contacts`.
    pub fn new(client: reqwest::Client, contacts: PeerContacts, scheme: &'static str) -> Self {
        Self {
            client,
            contacts,
            scheme,
        }
    }
}

impl RaftNetworkFactory<TypeConfig> for HttpNetwork {
    type Network = Connection;

    async fn new_client(&mut self, target: MasterId, node: &BasicNode) -> Self::Network {
        Connection {
            client: self.client.clone(),
            contacts: self.contacts.clone(),
            target,
            base_url: format!("{}://{}/internal/raft", self.scheme, node.addr),
        }
    }
}

/// The RPC client for one peer.
#[derive(Debug)]
pub struct Connection {
    client: reqwest::Client,
    contacts: PeerContacts,
    target: MasterId,
    base_url: String,
}

#[derive(Debug, thiserror::Error)]
#[error("raft rpc to {url} answered HTTP {status}: {body}")]
struct RpcRefused {
    url: String,
    status: u16,
    body: String,
}

impl Connection {
    /// Sends `request` to `path`; a 413 answer becomes `PayloadTooLarge` with `entries_hint`
    /// when one is given (appends), a network error otherwise.
    async fn call<Req, Resp, E>(
        &self,
        path: &str,
        request: &Req,
        option: &RPCOption,
        entries_hint: Option<u64>,
    ) -> Result<Resp, RPCError<MasterId, BasicNode, RaftError<E>>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let url = format!("{}/{path}", self.base_url);
        let body = codec::encode(request).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let response = self
            .client
            .post(&url)
            .header(TARGET_HEADER, self.target)
            .header(reqwest::header::CONTENT_TYPE, codec::CONTENT_TYPE)
            .timeout(option.hard_ttl())
            .body(body)
            .send()
            .await
            .map_err(|e| {
                if e.is_connect() {
                    RPCError::Unreachable(Unreachable::new(&e))
                } else {
                    RPCError::Network(NetworkError::new(&e))
                }
            })?;
        let status = response.status();
        if let Some(hint) = entries_hint.filter(|_| status.as_u16() == 413) {
            return Err(RPCError::PayloadTooLarge(
                PayloadTooLarge::new_entries_hint(hint),
            ));
        }
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            let refused = RpcRefused {
                url,
                status: status.as_u16(),
                body,
            };
            return Err(RPCError::Network(NetworkError::new(&refused)));
        }
        let bytes = response
            .bytes()
            .await
            .map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let result: Result<Resp, RaftError<E>> =
            codec::decode(&bytes).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        self.contacts.record(self.target);
        result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

impl RaftNetwork<TypeConfig> for Connection {
    async fn append_entries(
        &mut self,
        request: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<MasterId>, RPCError<MasterId, BasicNode, RaftError>> {
        // Half as many entries next time, at least one.
        let hint = u64::try_from(request.entries.len() / 2)
            .unwrap_or(u64::MAX)
            .max(1);
        self.call("append", &request, &option, Some(hint)).await
    }

    async fn install_snapshot(
        &mut self,
        request: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<MasterId>,
        RPCError<MasterId, BasicNode, RaftError<InstallSnapshotError>>,
    > {
        self.call("snapshot", &request, &option, None).await
    }

    async fn vote(
        &mut self,
        request: VoteRequest<MasterId>,
        option: RPCOption,
    ) -> Result<VoteResponse<MasterId>, RPCError<MasterId, BasicNode, RaftError>> {
        self.call("vote", &request, &option, None).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, Vote};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A follower whose body limit an append exceeds answers 413: the leader is told to send
    /// half as many entries.
    #[tokio::test]
    async fn an_append_answered_413_asks_for_smaller_batches() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.expect("accept");
            let mut buf = vec![0; 64 * 1024];
            let _ = stream.read(&mut buf).await;
            let _ = stream
                .write_all(b"HTTP/1.1 413 Payload Too Large\r\ncontent-length: 0\r\n\r\n")
                .await;
        });
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut network = HttpNetwork::new(reqwest::Client::new(), PeerContacts::default(), "http");
        let mut connection = network
            .new_client(2, &BasicNode::new(addr.to_string()))
            .await;
        let entries = (1..=10)
            .map(|index| Entry::<TypeConfig> {
                log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
                payload: EntryPayload::Blank,
            })
            .collect();
        let request = AppendEntriesRequest {
            vote: Vote::new_committed(1, 1),
            prev_log_id: None,
            entries,
            leader_commit: None,
        };
        let option = RPCOption::new(std::time::Duration::from_secs(5));
        match connection.append_entries(request, option).await {
            Err(RPCError::PayloadTooLarge(too_large)) => assert_eq!(too_large.entries_hint(), 5),
            other => panic!("expected PayloadTooLarge, got {other:?}"),
        }
    }
}

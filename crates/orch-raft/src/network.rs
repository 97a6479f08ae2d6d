//! Raft RPC between masters: `codec`-encoded bodies over HTTP on the master port, under
//! `/internal/raft/`.
//!
//! Each request names the node it is meant for in [`TARGET_HEADER`]; a master refuses RPCs
//! meant for another id, so masters started with inconsistent `--masters` lists fail loudly
//! instead of mixing up their logs.

use super::{codec, RaftError, TypeConfig};
use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RemoteError, Unreachable};
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
}

impl HttpNetwork {
    /// A network using `client` for every RPC, noting successful answers in `contacts`.
    pub fn new(client: reqwest::Client, contacts: PeerContacts) -> Self {
        Self { client, contacts }
    }
}

impl RaftNetworkFactory<TypeConfig> for HttpNetwork {
    type Network = Connection;

    async fn new_client(&mut self, target: MasterId, node: &BasicNode) -> Self::Network {
        Connection {
            client: self.client.clone(),
            contacts: self.contacts.clone(),
            target,
            base_url: format!("http://{}/internal/raft", node.addr),
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
    async fn call<Req, Resp, E>(
        &self,
        path: &str,
        request: &Req,
        option: &RPCOption,
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
        self.call("append", &request, &option).await
    }

    async fn install_snapshot(
        &mut self,
        request: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<MasterId>,
        RPCError<MasterId, BasicNode, RaftError<InstallSnapshotError>>,
    > {
        self.call("snapshot", &request, &option).await
    }

    async fn vote(
        &mut self,
        request: VoteRequest<MasterId>,
        option: RPCOption,
    ) -> Result<VoteResponse<MasterId>, RPCError<MasterId, BasicNode, RaftError>> {
        self.call("vote", &request, &option).await
    }
}

//! Raft RPC between masters: JSON over HTTP on the master port, under `/internal/raft/`.
//!
//! Each request names the node it is meant for in [`TARGET_HEADER`]; a master refuses RPCs
//! meant for another id, so masters started with inconsistent `--masters` lists fail loudly
//! instead of mixing up their logs.

use super::{RaftError, TypeConfig};
use crate::model::MasterId;
use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RemoteError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use openraft::BasicNode;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// The header carrying the Raft id the sender believes the receiver has.
pub const TARGET_HEADER: &str = "x-orch-raft-target";

/// Creates connections to other masters; one shared HTTP client (keep-alive pools).
#[derive(Clone, Debug)]
pub struct HttpNetwork {
    client: reqwest::Client,
}

impl HttpNetwork {
    /// A network using `client` for every RPC.
    pub fn new(client: reqwest::Client) -> Self {
        Self { client }
    }
}

impl RaftNetworkFactory<TypeConfig> for HttpNetwork {
    type Network = Connection;

    async fn new_client(&mut self, target: MasterId, node: &BasicNode) -> Self::Network {
        Connection { client: self.client.clone(), target, base_url: format!("http://{}/internal/raft", node.addr) }
    }
}

/// The RPC client for one peer.
#[derive(Debug)]
pub struct Connection {
    client: reqwest::Client,
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
        let response = self
            .client
            .post(&url)
            .header(TARGET_HEADER, self.target)
            .timeout(option.hard_ttl())
            .json(request)
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
            let refused = RpcRefused { url, status: status.as_u16(), body };
            return Err(RPCError::Network(NetworkError::new(&refused)));
        }
        let result: Result<Resp, RaftError<E>> =
            response.json().await.map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
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
    ) -> Result<InstallSnapshotResponse<MasterId>, RPCError<MasterId, BasicNode, RaftError<InstallSnapshotError>>> {
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

//! Growing and shrinking the master set through Raft membership changes.
//!
//! Adding: ask the new master which id it was started with, add it as a learner and wait
//! until it has caught up, then promote it to voter. Removing: demote and forget it. Both run
//! on the leader; both are idempotent.

use super::{Leader, Master};
use openraft::error::{ChangeMembershipError, ClientWriteError};
use openraft::{BasicNode, ChangeMembers};
use orch_core::model::MasterId;
use orch_raft::{Membership, RaftError};
use std::collections::BTreeSet;
use std::time::Duration;

/// How long a new master may take to catch up before adding it fails.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(60);

/// Why a membership change failed.
#[derive(Debug, thiserror::Error)]
pub enum MembershipError {
    /// Membership changes run on the leader only.
    #[error("this master is not the leader")]
    NotLeader {
        /// The current leader, if known.
        leader: Option<Leader>,
    },
    /// The new master did not answer.
    #[error("cannot reach the master at {address}")]
    Unreachable {
        /// Its address.
        address: String,
        /// The cause.
        source: reqwest::Error,
    },
    /// Another member already has the new master's id.
    #[error("id {id} already belongs to {owner}; start the new master with another --id")]
    IdTaken {
        /// The conflicting id.
        id: MasterId,
        /// Who has it.
        owner: String,
    },
    /// No member has this address.
    #[error("no master at {address} is a member")]
    Unknown {
        /// The address asked for.
        address: String,
    },
    /// Removing this member would leave no voter.
    #[error("cannot remove the last master")]
    LastMaster,
    /// The new master did not catch up in time.
    #[error("the master at {address} did not catch up within {timeout:?}")]
    CatchUpTimeout {
        /// Its address.
        address: String,
        /// How long we waited.
        timeout: Duration,
    },
    /// Raft refused the change.
    #[error("raft refused the membership change")]
    Raft(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// What `GET /internal/raft/node` answers: who a master is.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct NodeIdentity {
    /// Raft id.
    pub id: MasterId,
    /// Advertised `host:port`.
    pub address: String,
}

impl Master {
    /// Who this master is, for a leader about to add it.
    pub fn identity(&self) -> NodeIdentity {
        NodeIdentity {
            id: self.id,
            address: self.address.clone(),
        }
    }

    /// Adds the master listening at `address` as a voter. Returns its id.
    pub async fn add_master(&self, address: &str) -> Result<MasterId, MembershipError> {
        self.ensure_leader()?;
        let identity = self.identity_at(address).await?;
        let membership = self.membership();
        if let Some(node) = membership.get_node(&identity.id) {
            if node.addr != identity.address {
                return Err(MembershipError::IdTaken {
                    id: identity.id,
                    owner: node.addr.clone(),
                });
            }
            if membership.voter_ids().any(|voter| voter == identity.id) {
                return Ok(identity.id);
            }
        }
        tracing::info!(master.id = identity.id, master.address = %identity.address, "adding master");
        self.add_caught_up_learner(&identity).await?;
        let voters = BTreeSet::from([identity.id]);
        self.raft
            .change_membership(ChangeMembers::AddVoterIds(voters), false)
            .await
            .map_err(|e| self.refused(e))?;
        Ok(identity.id)
    }

    /// Adds `identity` as a learner and waits (at most [`CATCH_UP_TIMEOUT`]) until it has
    /// caught up.
    pub(super) async fn add_caught_up_learner(
        &self,
        identity: &NodeIdentity,
    ) -> Result<(), MembershipError> {
        let learner = self
            .raft
            .add_learner(identity.id, BasicNode::new(&identity.address), true);
        match tokio::time::timeout(CATCH_UP_TIMEOUT, learner).await {
            Err(_) => Err(MembershipError::CatchUpTimeout {
                address: identity.address.clone(),
                timeout: CATCH_UP_TIMEOUT,
            }),
            Ok(result) => result.map(drop).map_err(|e| self.refused(e)),
        }
    }

    /// Who the master listening at `address` is (`GET /internal/raft/node`).
    pub(super) async fn identity_at(&self, address: &str) -> Result<NodeIdentity, MembershipError> {
        let unreachable = |source| MembershipError::Unreachable {
            address: address.to_owned(),
            source,
        };
        self.http
            .get(format!("{}://{address}/internal/raft/node", self.scheme()))
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(unreachable)?
            .json()
            .await
            .map_err(unreachable)
    }

    /// Removes the master at `address` from the membership. Returns its id.
    pub async fn remove_master(&self, address: &str) -> Result<MasterId, MembershipError> {
        self.ensure_leader()?;
        let membership = self.membership();
        let id = membership
            .nodes()
            .find(|(_, node)| node.addr == address)
            .map(|(id, _)| *id)
            .ok_or_else(|| MembershipError::Unknown {
                address: address.to_owned(),
            })?;
        if membership.voter_ids().all(|voter| voter == id) {
            return Err(MembershipError::LastMaster);
        }
        tracing::info!(master.id = id, master.address = %address, "removing master");
        let change = ChangeMembers::RemoveVoters(BTreeSet::from([id]));
        self.raft
            .change_membership(change, false)
            .await
            .map_err(|e| self.refused(e))?;
        Ok(id)
    }

    /// The membership this master last saw.
    fn membership(&self) -> Membership {
        self.raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .clone()
    }

    pub(super) fn ensure_leader(&self) -> Result<(), MembershipError> {
        if self.is_leader() {
            Ok(())
        } else {
            Err(MembershipError::NotLeader {
                leader: self.leader(),
            })
        }
    }

    pub(super) fn refused(
        &self,
        error: RaftError<ClientWriteError<MasterId, BasicNode>>,
    ) -> MembershipError {
        match error {
            RaftError::APIError(ClientWriteError::ForwardToLeader(_)) => {
                MembershipError::NotLeader {
                    leader: self.leader(),
                }
            }
            RaftError::APIError(ClientWriteError::ChangeMembershipError(
                ChangeMembershipError::EmptyMembership(e),
            )) => MembershipError::Raft(Box::new(e)),
            other => MembershipError::Raft(Box::new(other)),
        }
    }
}

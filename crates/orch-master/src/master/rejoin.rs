//! Masters that lost their data: found, refused, and replaced.
//!
//! A master that forgot its log and its vote must not take part in elections under its old
//! id: it could vote twice in one term, or help elect a leader without committed entries.
//! The leader records every master it has seen acknowledge entries
//! ([`Command::MastersSeen`]); a master starting with an empty store (or a snapshot whose
//! checksum fails) asks its peers ([`MembersView`]) whether it is one of those. If it is,
//! it refuses to start unless `--rejoin`; with it, it starts under a new id and asks the
//! leader to replace its old id with the new one ([`Master::replace_master`]), as etcd's
//! member replace does: the new id joins as a learner, catches up, and takes the old one's
//! place as a voter in one membership change.
//!
//! May depend on: the master's Raft handle and HTTP client, membership.

use super::membership::MembershipError;
use super::{Master, MasterError};
use crate::config::MasterConfig;
use openraft::ChangeMembers;
use orch_core::model::MasterId;
use orch_core::state::{ClusterState, Command, Event};
use orch_raft::RaftStoreError;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, watch};

/// How long a starting master waits for each peer's answer.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a rejoining master keeps asking for its replacement.
const REJOIN_PATIENCE: Duration = Duration::from_secs(180);

/// What `GET /internal/raft/members` answers: the membership and who holds data.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct MembersView {
    /// Every member.
    pub members: Vec<Member>,
    /// Masters the leader saw acknowledge entries.
    pub seen: BTreeSet<MasterId>,
}

/// One member of the membership.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Member {
    /// Raft id.
    pub id: MasterId,
    /// `host:port`.
    pub address: String,
    /// A voter (not a learner).
    pub voter: bool,
}

impl MembersView {
    /// The id under which `address` holds the cluster's data, if it does.
    pub fn seen_id_of(&self, address: &str) -> Option<MasterId> {
        self.members
            .iter()
            .find(|member| member.address == address && self.seen.contains(&member.id))
            .map(|member| member.id)
    }

    /// An id no member has and no seen master had.
    pub fn fresh_id(&self) -> MasterId {
        let highest = self.members.iter().map(|member| member.id);
        highest.chain(self.seen.iter().copied()).max().unwrap_or(0) + 1
    }
}

/// How a master starts: its store, its Raft id, whether it waits to be added, and whether
/// it asks the leader to replace its old self.
pub(super) struct Opened {
    pub(super) store: (
        orch_raft::LogStore,
        orch_raft::StateMachine,
        watch::Receiver<Arc<ClusterState>>,
    ),
    pub(super) id: MasterId,
    pub(super) joining: bool,
    pub(super) replacing: bool,
    pub(super) peers: Vec<String>,
}

/// Opens this master's store, after checking with its peers that a missing store does not
/// mean lost data, and replacing a store whose snapshot is corrupt.
pub(super) async fn open(
    config: &MasterConfig,
    http: &reqwest::Client,
    scheme: &str,
    events: broadcast::Sender<Arc<Event>>,
) -> Result<Opened, MasterError> {
    let peers: Vec<String> = config
        .masters
        .iter()
        .filter(|address| **address != config.advertise)
        .cloned()
        .collect();
    let data_dir = &config.data_dir;
    let data_dir_error = |source| MasterError::DataDir {
        path: data_dir.display().to_string(),
        source,
    };
    let mut replacing = false;
    if !orch_raft::has_store(data_dir) {
        if let Some((peer, view)) = probe(http, scheme, &peers).await {
            if let Some(old) = view.seen_id_of(&config.advertise) {
                if !config.rejoin {
                    return Err(MasterError::Wiped {
                        address: config.advertise.clone(),
                        id: old,
                        peer,
                    });
                }
                let id = view.fresh_id();
                orch_raft::store_id(data_dir, id).map_err(data_dir_error)?;
                tracing::warn!(old.id = old, master.id = id, "rejoining under a new id");
                replacing = true;
            }
        }
    }
    let store = match orch_raft::open_store(data_dir, events.clone()) {
        Ok(store) => store,
        Err(RaftStoreError::SnapshotCorrupt(corrupt)) => {
            tracing::error!(error = %corrupt, "refusing this master's data");
            let Some((_, view)) = probe(http, scheme, &peers).await else {
                return Err(MasterError::CorruptAlone(corrupt));
            };
            let aside = data_dir.with_extension(format!(
                "corrupt-{}",
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |since| since.as_secs())
            ));
            std::fs::rename(data_dir, &aside).map_err(data_dir_error)?;
            let id = view.fresh_id();
            orch_raft::store_id(data_dir, id).map_err(data_dir_error)?;
            tracing::warn!(moved_to = %aside.display(), master.id = id, "data moved aside: rejoining under a new id to fetch the leader's snapshot");
            replacing = true;
            orch_raft::open_store(data_dir, events)?
        }
        Err(error) => return Err(error.into()),
    };
    let id = orch_raft::stored_id(data_dir)
        .map_err(data_dir_error)?
        .unwrap_or(config.id);
    Ok(Opened {
        store,
        id,
        // A master under an id of its own was added by a leader: it never initialises.
        joining: config.joining || id != config.id,
        replacing,
        peers,
    })
}

/// The first answer (in `peers` order) to `GET /internal/raft/members` that knows a
/// membership, with who gave it. Peers are asked at once; one that does not answer within
/// [`PROBE_TIMEOUT`] (down, or starting itself) is passed over.
pub(super) async fn probe(
    http: &reqwest::Client,
    scheme: &str,
    peers: &[String],
) -> Option<(String, MembersView)> {
    async fn ask(
        http: &reqwest::Client,
        scheme: &str,
        peer: &str,
    ) -> Option<(String, MembersView)> {
        let response = http
            .get(format!("{scheme}://{peer}/internal/raft/members"))
            .timeout(PROBE_TIMEOUT)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status);
        let view = match response {
            Ok(response) => response.json::<MembersView>().await,
            Err(error) => Err(error),
        };
        match view {
            Ok(view) if !view.members.is_empty() => Some((peer.to_owned(), view)),
            Ok(_) => None,
            Err(error) => {
                tracing::debug!(%peer, %error, "no membership from this peer");
                None
            }
        }
    }
    let asked = peers.iter().map(|peer| ask(http, scheme, peer));
    let answers = futures::future::join_all(asked).await;
    answers.into_iter().flatten().next()
}

impl Master {
    /// The membership and the masters seen holding data, as this master knows them.
    pub fn members_view(&self) -> MembersView {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow();
        let membership = metrics.membership_config.membership();
        let voters: BTreeSet<MasterId> = membership.voter_ids().collect();
        MembersView {
            members: membership
                .nodes()
                .map(|(id, node)| Member {
                    id: *id,
                    address: node.addr.clone(),
                    voter: voters.contains(id),
                })
                .collect(),
            seen: self.state().masters_seen.clone(),
        }
    }

    /// On the leader: records the masters that acknowledged entries and are not recorded
    /// yet (itself included).
    pub(super) async fn note_seen_masters(&self) -> Result<(), super::WriteError> {
        let acknowledged: BTreeSet<MasterId> = {
            let metrics = self.raft.metrics();
            let metrics = metrics.borrow();
            let followers = metrics.replication.iter().flatten();
            let matched = followers.filter(|(_, matched)| matched.is_some());
            matched.map(|(id, _)| *id).chain([self.id]).collect()
        };
        let state = self.state();
        let new: Vec<MasterId> = acknowledged
            .difference(&state.masters_seen)
            .copied()
            .collect();
        if new.is_empty() {
            return Ok(());
        }
        tracing::info!(masters = ?new, "masters hold the cluster's data");
        self.write(Command::MastersSeen { ids: new })
            .await
            .map(drop)
    }

    /// On the leader: makes the master now listening at `address` (under a new id) a voter
    /// in place of the member(s) that had its address. Returns the new id.
    pub async fn replace_master(&self, address: &str) -> Result<MasterId, MembershipError> {
        self.ensure_leader()?;
        let identity = self.identity_at(address).await?;
        let view = self.members_view();
        if let Some(owner) = view
            .members
            .iter()
            .find(|member| member.id == identity.id && member.address != identity.address)
        {
            return Err(MembershipError::IdTaken {
                id: identity.id,
                owner: owner.address.clone(),
            });
        }
        let replaced: BTreeSet<MasterId> = view
            .members
            .iter()
            .filter(|member| member.address == identity.address && member.id != identity.id)
            .map(|member| member.id)
            .collect();
        let mut voters: BTreeSet<MasterId> = view
            .members
            .iter()
            .filter(|member| member.voter && !replaced.contains(&member.id))
            .map(|member| member.id)
            .collect();
        if replaced.is_empty() && voters.contains(&identity.id) {
            return Ok(identity.id);
        }
        tracing::info!(master.id = identity.id, replaces = ?replaced, master.address = %address, "replacing a master that lost its data");
        self.add_caught_up_learner(&identity).await?;
        voters.insert(identity.id);
        self.raft
            .change_membership(ChangeMembers::ReplaceAllVoters(voters), false)
            .await
            .map_err(|e| self.refused(e))?;
        Ok(identity.id)
    }

    /// Asks the masters at `peers` until the leader has replaced this master's old id with
    /// its new one; gives up (loudly) after [`REJOIN_PATIENCE`].
    pub(super) async fn ask_to_be_replaced(&self, peers: Vec<String>) {
        let deadline = tokio::time::Instant::now() + REJOIN_PATIENCE;
        let body = serde_json::json!({ "address": self.address });
        while tokio::time::Instant::now() < deadline {
            for peer in &peers {
                let url = format!("{}://{peer}/internal/raft/rejoin", self.scheme());
                let asked = self
                    .http
                    .post(url)
                    .json(&body)
                    // The leader waits up to a minute for this master to catch up.
                    .timeout(Duration::from_secs(70))
                    .send()
                    .await;
                match asked {
                    Ok(response) if response.status().is_success() => {
                        tracing::info!(master.id = self.id, %peer, "rejoined as a replaced member");
                        return;
                    }
                    Ok(response) => {
                        tracing::debug!(%peer, status = %response.status(), "rejoin not accepted here")
                    }
                    Err(error) => tracing::debug!(%peer, %error, "rejoin: peer did not answer"),
                }
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        tracing::error!(
            master.id = self.id,
            "no leader replaced this master within {REJOIN_PATIENCE:?}; it stays a non-member"
        );
    }
}

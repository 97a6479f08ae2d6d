//! A watched repo's status as `GET /v1/gitops` shows it: the replicated record (history,
//! last applied and healthy commits, pause) joined with what the leader's reconciler knows
//! (last fetched commit, error, drift, health per app). Pure.
//!
//! May depend on: model, gitops::plan (health words), gitops::worker (its `Live`).

use super::plan::Health;
use super::Live;
use orch_core::model::{RepoConfig, RepoRecord, SyncRecord, Timestamp};
use std::collections::BTreeSet;

/// Whether the cluster runs what the branch says, as Argo CD words it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum SyncState {
    /// The applied commit is the branch tip and the cluster matches it.
    Synced,
    /// The tip is not applied (paused, failed, or not yet seen), or apps drifted.
    OutOfSync,
    /// A sync is being written.
    Syncing,
    /// The last fetch or sync failed; `error` says why.
    Error,
    /// The leader's reconciler has not compared the cluster with git yet (it just started).
    Unknown,
}

/// One app from git.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct AppStatus {
    /// The app id.
    pub id: String,
    /// Its health.
    pub health: Health,
    /// Synced, or OutOfSync when its definition differs from git.
    pub sync: SyncState,
}

/// A repo's status.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RepoStatus {
    /// Its name.
    pub name: String,
    /// What is watched (secrets hidden).
    pub config: RepoConfig,
    /// The branch followed.
    pub branch: Option<String>,
    /// The newest commit fetched.
    pub last_fetched: Option<String>,
    /// When it was fetched.
    pub last_fetched_at: Option<Timestamp>,
    /// The commit whose definitions were last written.
    pub last_applied: Option<String>,
    /// The last commit whose apps all became healthy.
    pub last_healthy: Option<String>,
    /// Sync state.
    pub sync: SyncState,
    /// The worst health of its apps.
    pub health: Health,
    /// Auto-sync paused by a rollback.
    pub paused: bool,
    /// Why the last fetch or sync failed.
    pub error: Option<String>,
    /// Each app the applied commit defines.
    pub apps: Vec<AppStatus>,
    /// Commits auto-rollback gave up on.
    pub failed_commits: BTreeSet<String>,
    /// The newest syncs, newest first.
    pub history: Vec<SyncRecord>,
}

/// The status of `record`, with what the reconciler knows.
pub fn repo_status(name: &str, record: &RepoRecord, live: &Live) -> RepoStatus {
    let fetched = live.fetched.as_ref().map(|(commit, _)| commit.clone());
    let tip_pending = fetched
        .as_ref()
        .is_some_and(|tip| record.last_applied.as_ref() != Some(tip));
    let sync = if live.error.is_some() {
        SyncState::Error
    } else if live.syncing {
        SyncState::Syncing
    } else if !live.observed && record.last_applied.is_some() {
        SyncState::Unknown
    } else if tip_pending || !live.drift.is_empty() || record.last_applied.is_none() {
        SyncState::OutOfSync
    } else {
        SyncState::Synced
    };
    let apps: Vec<AppStatus> = live
        .apps
        .iter()
        .map(|(id, health)| AppStatus {
            id: id.clone(),
            health: *health,
            sync: if live.drift.contains(id) {
                SyncState::OutOfSync
            } else {
                SyncState::Synced
            },
        })
        .collect();
    let health = apps
        .iter()
        .map(|app| app.health)
        .max()
        .unwrap_or(Health::Healthy);
    RepoStatus {
        name: name.to_owned(),
        config: record.config.redacted(),
        branch: live.branch.clone(),
        last_fetched: fetched,
        last_fetched_at: live.fetched.as_ref().map(|(_, at)| *at),
        last_applied: record.last_applied.clone(),
        last_healthy: record.last_healthy.clone(),
        sync,
        health,
        paused: record.paused,
        error: live.error.clone(),
        apps,
        failed_commits: record.failed.clone(),
        history: record.history.iter().rev().cloned().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use orch_core::model::SyncResult;

    fn record(applied: Option<&str>) -> RepoRecord {
        let mut record = RepoRecord::new(RepoConfig::new("/r"));
        record.last_applied = applied.map(str::to_owned);
        for commit in ["a", "b"] {
            record.history.push(SyncRecord {
                commit: commit.into(),
                at: Timestamp::from_millis(1),
                deployment_id: None,
                result: SyncResult::Applied,
                message: String::new(),
            });
        }
        record
    }

    fn live(tip: &str) -> Live {
        Live {
            fetched: Some((tip.to_owned(), Timestamp::from_millis(2))),
            observed: true,
            ..Live::default()
        }
    }

    #[test]
    fn sync_state_follows_tip_drift_and_errors() {
        assert_eq!(
            repo_status("r", &record(Some("b")), &live("b")).sync,
            SyncState::Synced
        );
        assert_eq!(
            repo_status("r", &record(Some("a")), &live("b")).sync,
            SyncState::OutOfSync
        );
        assert_eq!(
            repo_status("r", &record(None), &Live::default()).sync,
            SyncState::OutOfSync
        );
        let mut drifted = live("b");
        drifted.drift = vec!["/web".into()];
        drifted.apps.insert("/web".into(), Health::Degraded);
        drifted.apps.insert("/db".into(), Health::Healthy);
        let status = repo_status("r", &record(Some("b")), &drifted);
        assert_eq!(status.sync, SyncState::OutOfSync);
        assert_eq!(status.health, Health::Degraded);
        assert_eq!(status.apps[1].sync, SyncState::OutOfSync);
        assert_eq!(status.history[0].commit, "b", "newest first");
        let fresh = Live::default();
        assert_eq!(
            repo_status("r", &record(Some("b")), &fresh).sync,
            SyncState::Unknown
        );
        let mut failing = live("b");
        failing.error = Some("apps/web.json:3: /cmd: bad".into());
        assert_eq!(
            repo_status("r", &record(Some("b")), &failing).sync,
            SyncState::Error
        );
    }
}

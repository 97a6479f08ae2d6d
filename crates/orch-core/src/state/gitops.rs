//! Watched git repos in the cluster state: their configs and what their reconcilers did
//! (history, last applied and healthy commits, failed commits, pause). Deterministic like
//! the rest of `apply`.

use super::{Applied, ClusterState, Rejection, RepoChange};
use crate::model::{RepoConfig, RepoRecord, SYNC_HISTORY};
use std::sync::Arc;

impl ClusterState {
    /// Adds a repo, or replaces the config of the repo with the same name (its record stays).
    pub(super) fn set_repo(&mut self, config: RepoConfig) -> Applied {
        let name = config.effective_name();
        let record = match self.repos.get(&name) {
            Some(existing) => RepoRecord {
                config,
                ..RepoRecord::clone(existing)
            },
            None => RepoRecord::new(config),
        };
        self.repos.insert(name.clone(), Arc::new(record));
        Applied::RepoChanged { name }
    }

    /// Stops watching a repo.
    pub(super) fn remove_repo(&mut self, name: &str) -> Applied {
        match self.repos.remove(name) {
            Some(_) => Applied::RepoChanged {
                name: name.to_owned(),
            },
            None => Applied::Rejected(Rejection::RepoUnknown(name.to_owned())),
        }
    }

    /// Records what a repo's reconciler did.
    pub(super) fn record_repo(&mut self, name: &str, change: RepoChange) -> Applied {
        let Some(existing) = self.repos.get(name) else {
            return Applied::Rejected(Rejection::RepoUnknown(name.to_owned()));
        };
        let mut record = RepoRecord::clone(existing);
        if let Some(sync) = change.sync {
            record.history.push(sync);
            let excess = record.history.len().saturating_sub(SYNC_HISTORY);
            record.history.drain(..excess);
        }
        if let Some(commit) = change.applied {
            record.last_applied = Some(commit);
        }
        if let Some(commit) = change.healthy {
            record.failed.remove(&commit);
            record.last_healthy = Some(commit);
        }
        if let Some(commit) = change.failed {
            record.failed.insert(commit);
        }
        if let Some(paused) = change.paused {
            record.paused = paused;
        }
        self.repos.insert(name.to_owned(), Arc::new(record));
        Applied::RepoChanged {
            name: name.to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{SyncRecord, SyncResult, Timestamp};
    use crate::state::Command;

    fn sync(commit: &str) -> RepoChange {
        RepoChange {
            sync: Some(SyncRecord {
                commit: commit.to_owned(),
                at: Timestamp::from_millis(1),
                deployment_id: None,
                result: SyncResult::Applied,
                message: String::new(),
            }),
            applied: Some(commit.to_owned()),
            ..RepoChange::default()
        }
    }

    #[test]
    fn a_repo_keeps_its_record_across_config_changes_and_at_most_twenty_syncs() {
        let mut state = ClusterState::default();
        let config = RepoConfig::new("/srv/apps.git");
        state.apply(
            1,
            Command::SetRepo {
                config: config.clone(),
            },
        );
        for n in 0..25 {
            let name = "apps".to_owned();
            let applied = state.apply(
                2 + n,
                Command::RecordRepo {
                    name,
                    change: sync(&format!("c{n}")),
                },
            );
            assert_eq!(
                applied,
                Applied::RepoChanged {
                    name: "apps".into()
                }
            );
        }
        let changed = RepoConfig {
            prune: true,
            ..config
        };
        state.apply(30, Command::SetRepo { config: changed });
        let record = &state.repos["apps"];
        assert!(record.config.prune);
        assert_eq!(record.history.len(), SYNC_HISTORY);
        assert_eq!(record.history[0].commit, "c5");
        assert_eq!(record.last_applied.as_deref(), Some("c24"));
    }

    #[test]
    fn failed_and_healthy_commits_and_unknown_repos() {
        let mut state = ClusterState::default();
        state.apply(
            1,
            Command::SetRepo {
                config: RepoConfig::new("/r"),
            },
        );
        let failed = RepoChange {
            failed: Some("bad".into()),
            paused: Some(true),
            ..RepoChange::default()
        };
        state.apply(
            2,
            Command::RecordRepo {
                name: "r".into(),
                change: failed,
            },
        );
        assert!(state.repos["r"].failed.contains("bad") && state.repos["r"].paused);
        let healthy = RepoChange {
            healthy: Some("bad".into()),
            ..RepoChange::default()
        };
        state.apply(
            3,
            Command::RecordRepo {
                name: "r".into(),
                change: healthy,
            },
        );
        assert!(state.repos["r"].failed.is_empty());
        assert_eq!(
            state.apply(4, Command::RemoveRepo { name: "x".into() }),
            Applied::Rejected(Rejection::RepoUnknown("x".into()))
        );
        state.apply(5, Command::RemoveRepo { name: "r".into() });
        assert!(state.repos.is_empty());
    }
}

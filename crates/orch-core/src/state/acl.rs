//! ACLs in the cluster state: policies and tokens, and the apply of a command on behalf of a
//! token ([`Command::Restricted`](super::Command::Restricted)).
//!
//! A restricted command is applied to a copy of the state; what it changed is then compared
//! with the token's grants, over everything it touched: apps (their ids, and the
//! capabilities their new definitions need), groups, tasks (through their apps), deployments
//! (through the apps they affect), agents and repos (cluster-wide: `admin` on `/**`) and
//! ACLs (never). The first change the grants do not cover rejects the whole command and the
//! state stays as it was. So every writer (the API, a gitops repo with a token) is held to
//! the same rules, and a check cannot race the change it checks.

use super::{Applied, ClusterState, Command, Rejection};
use crate::model::{Access, AclPolicy, AclToken, App, Grants};
use imbl::ordmap::DiffItem;
use imbl::OrdMap;
use std::sync::Arc;

impl ClusterState {
    /// Creates or replaces a policy.
    pub(super) fn set_acl_policy(&mut self, policy: AclPolicy) -> Applied {
        let created = self
            .acl_policies
            .insert(policy.name.clone(), Arc::new(policy))
            .is_none();
        Applied::AclChanged { created }
    }

    /// Deletes a policy.
    pub(super) fn remove_acl_policy(&mut self, name: &str) -> Applied {
        match self.acl_policies.remove(name) {
            Some(_) => Applied::AclChanged { created: false },
            None => Applied::Rejected(Rejection::AclPolicyUnknown(name.to_owned())),
        }
    }

    /// Creates a token, if every policy it names exists.
    pub(super) fn create_acl_token(&mut self, token: AclToken) -> Applied {
        let unknown: Vec<String> = token
            .policies
            .iter()
            .filter(|name| !self.acl_policies.contains_key(*name))
            .cloned()
            .collect();
        if !unknown.is_empty() {
            return Applied::Rejected(Rejection::AclPoliciesUnknown(unknown));
        }
        self.acl_tokens.insert(token.id.clone(), Arc::new(token));
        Applied::AclChanged { created: true }
    }

    /// Revokes a token.
    pub(super) fn revoke_acl_token(&mut self, id: &str) -> Applied {
        match self.acl_tokens.remove(id) {
            Some(_) => Applied::AclChanged { created: false },
            None => Applied::Rejected(Rejection::AclTokenUnknown(id.to_owned())),
        }
    }

    /// The token whose secret hashes to `secret_sha256`.
    pub fn acl_token_by_secret(&self, secret_sha256: &str) -> Option<&Arc<AclToken>> {
        self.acl_tokens
            .values()
            .find(|token| token.secret_sha256 == secret_sha256)
    }

    /// What `token` may do under the policies as they are now.
    pub fn grants_of(&self, token: &AclToken) -> Grants {
        Grants::of(token, |name| self.acl_policies.get(name).map(Arc::as_ref))
    }

    /// The token whose secret hashes to `secret_sha256`, and its grants as they are now.
    pub fn acl_grants(&self, secret_sha256: &str) -> Option<Grants> {
        self.acl_token_by_secret(secret_sha256)
            .map(|token| self.grants_of(token))
    }

    /// Applies `command` for a token holding `grants`: all of it, or (when it would change
    /// anything the grants do not cover) none of it.
    pub(super) fn apply_restricted(
        &mut self,
        index: u64,
        grants: Grants,
        command: Command,
    ) -> Applied {
        let before = self.clone();
        self.acting = Some(Arc::new(grants));
        let applied = self.apply(index, command);
        let grants = self.acting.take().unwrap_or_default();
        if let Err(rejection) = before.permits(self, &grants) {
            *self = before;
            self.applied_index = index;
            return Applied::Rejected(rejection);
        }
        applied
    }

    /// The state as a token holding `grants` may see it: the apps, versions, tasks, groups
    /// and deployments on paths it may read (a deployment only if it may read every app the
    /// deployment affects); agents; repos only with read on `/**`; no ACLs. What it may not
    /// read is hidden, as if it did not exist.
    pub fn visible_to(&self, grants: &Grants) -> ClusterState {
        let readable = |path: &str| grants.allows(path, Access::Read);
        let mut view = self.clone();
        view.apps = kept(&self.apps, |id, _| readable(id.as_str()));
        view.app_versions = kept(&self.app_versions, |id, _| readable(id.as_str()));
        view.last_task_failure = kept(&self.last_task_failure, |id, _| readable(id.as_str()));
        view.tasks = kept(&self.tasks, |_, task| readable(task.app_id.as_str()));
        view.groups = kept(&self.groups, |id, _| readable(id.as_str()));
        view.deployments = kept(&self.deployments, |_, deployment| {
            deployment.affected_apps().all(|id| readable(id.as_str()))
        });
        if !grants.allows_everything(Access::Read) {
            view.repos = OrdMap::new();
        }
        view.acl_policies = OrdMap::new();
        view.acl_tokens = OrdMap::new();
        view
    }

    /// Marks an app written by `grants` unprivileged when it names no user, the token lacks
    /// the `root` capability, and the app is new or was unprivileged already (a root app
    /// stays root, and the permission check then refuses the token).
    pub(super) fn mark_unprivileged(&self, grants: &Grants, app: &mut App) {
        let lacks_root = !grants
            .capabilities
            .contains(&crate::model::Capability::Root);
        let was_unprivileged = self.apps.get(&app.id).is_none_or(|old| old.unprivileged);
        if lacks_root && app.spec.user.is_none() && was_unprivileged {
            app.unprivileged = true;
        }
    }

    /// Whether `grants` cover every change from `self` to `after`.
    fn permits(&self, after: &ClusterState, grants: &Grants) -> Result<(), Rejection> {
        let forbidden = |path: &str, lacks: String| Rejection::Forbidden {
            token: grants.token.clone(),
            path: path.to_owned(),
            lacks,
        };
        let write = |path: &str| {
            if grants.allows(path, Access::Write) {
                Ok(())
            } else {
                Err(forbidden(path, "write access".to_owned()))
            }
        };
        for (id, app) in changes(&self.apps, &after.apps) {
            write(id.as_str())?;
            if let Some((capability, field)) = app.and_then(|app| grants.missing_capability(app)) {
                return Err(forbidden(
                    id.as_str(),
                    format!("the capability '{}' ({field})", capability.name()),
                ));
            }
        }
        for (id, _) in changes(&self.groups, &after.groups) {
            write(id.as_str())?;
        }
        for (id, task) in changes(&self.tasks, &after.tasks) {
            if let Some(task) = task.or_else(|| self.tasks.get(id).map(Arc::as_ref)) {
                write(task.app_id.as_str())?;
            }
        }
        for (id, deployment) in changes(&self.deployments, &after.deployments) {
            let deployment = deployment.or_else(|| self.deployments.get(id).map(Arc::as_ref));
            for app in deployment.into_iter().flat_map(|d| d.affected_apps()) {
                write(app.as_str())?;
            }
        }
        let cluster_wide = changes(&self.agents, &after.agents).next().is_some()
            || changes(&self.repos, &after.repos).next().is_some();
        if cluster_wide && !grants.allows_everything(Access::Admin) {
            return Err(forbidden("/**", "admin access".to_owned()));
        }
        let acl = changes(&self.acl_policies, &after.acl_policies)
            .next()
            .is_some()
            || changes(&self.acl_tokens, &after.acl_tokens)
                .next()
                .is_some();
        if acl {
            return Err(forbidden("/v1/acl", "the management token".to_owned()));
        }
        Ok(())
    }
}

/// The entries of `map` that `keep` keeps.
fn kept<K: Ord + Clone, V: Clone>(
    map: &OrdMap<K, V>,
    keep: impl Fn(&K, &V) -> bool,
) -> OrdMap<K, V> {
    map.iter()
        .filter(|(key, value)| keep(key, value))
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect()
}

/// The keys that differ between two maps, each with its new value (`None`: removed).
fn changes<'a, K: Ord + Clone, V: PartialEq>(
    before: &'a OrdMap<K, Arc<V>>,
    after: &'a OrdMap<K, Arc<V>>,
) -> impl Iterator<Item = (&'a K, Option<&'a V>)> {
    before.diff(after).map(|item| match item {
        DiffItem::Add(key, value) => (key, Some(value.as_ref())),
        DiffItem::Update {
            new: (key, value), ..
        } => (key, Some(value.as_ref())),
        DiffItem::Remove(key, _) => (key, None),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{AclRule, AppId, Capability, DeploymentId, Timestamp};
    use serde_json::json;

    fn team_a(capabilities: &[Capability]) -> Grants {
        Grants {
            id: "t-a".into(),
            token: "team-a".into(),
            rules: vec![AclRule {
                path: "/team-a/**".into(),
                access: Access::Write,
            }],
            capabilities: capabilities.iter().copied().collect(),
        }
    }

    fn create(id: &str, definition: serde_json::Value) -> Command {
        let id = AppId::parse(id).expect("id");
        let definition = definition.as_object().cloned().unwrap_or_default();
        Command::CreateApp {
            app: Box::new(App::from_json(id, Timestamp::from_millis(1), &definition).expect("app")),
            deployment_id: DeploymentId("d".into()),
            force: false,
        }
    }

    fn restricted(grants: Grants, command: Command) -> Command {
        Command::Restricted {
            grants,
            command: Box::new(command),
        }
    }

    #[test]
    fn a_token_writes_inside_its_paths_and_its_apps_run_unprivileged() {
        let mut state = ClusterState::default();
        let applied = state.apply(
            1,
            restricted(
                team_a(&[]),
                create("/team-a/web", json!({"cmd": "sleep 1"})),
            ),
        );
        assert!(matches!(applied, Applied::AppCreated { .. }), "{applied:?}");
        let app = &state.apps[&AppId::parse("/team-a/web").expect("id")];
        assert!(app.unprivileged);
        assert_eq!(state.applied_index, 1);
    }

    #[test]
    fn a_write_outside_the_paths_or_beyond_the_capabilities_changes_nothing() {
        let mut state = ClusterState::default();
        let applied = state.apply(
            1,
            restricted(
                team_a(&[]),
                create("/team-b/web", json!({"cmd": "sleep 1"})),
            ),
        );
        assert_eq!(
            applied,
            Applied::Rejected(Rejection::Forbidden {
                token: "team-a".into(),
                path: "/team-b/web".into(),
                lacks: "write access".into()
            })
        );
        assert!(state.apps.is_empty() && state.deployments.is_empty());
        assert_eq!(state.applied_index, 1);
        let privileged = json!({"cmd": "sleep 1", "user": "nobody",
            "networks": [{"mode": "container/bridge"}], "container": {"type": "DOCKER",
            "docker": {"image": "i", "privileged": true}}});
        let applied = state.apply(
            2,
            restricted(team_a(&[]), create("/team-a/web", privileged.clone())),
        );
        assert!(
            matches!(&applied, Applied::Rejected(Rejection::Forbidden { lacks, .. }) if lacks.contains("'privileged'")),
            "{applied:?}"
        );
        assert!(state.apps.is_empty());
        let allowed = state.apply(
            3,
            restricted(
                team_a(&[Capability::Privileged]),
                create("/team-a/web", privileged),
            ),
        );
        assert!(matches!(allowed, Applied::AppCreated { .. }), "{allowed:?}");
    }

    #[test]
    fn a_root_app_stays_root_and_a_token_without_root_may_not_change_it() {
        let mut state = ClusterState::default();
        state.apply(1, create("/team-a/web", json!({"cmd": "sleep 1"})));
        let id = AppId::parse("/team-a/web").expect("id");
        assert!(!state.apps[&id].unprivileged);
        let scale = Command::UpdateApp {
            id: id.clone(),
            version: Timestamp::from_millis(2),
            patch: json!({"instances": 2})
                .as_object()
                .cloned()
                .unwrap_or_default(),
            partial: true,
            deployment_id: DeploymentId("d2".into()),
            force: true,
        };
        let applied = state.apply(2, restricted(team_a(&[]), scale.clone()));
        assert!(
            matches!(&applied, Applied::Rejected(Rejection::Forbidden { lacks, .. }) if lacks.contains("'root'")),
            "{applied:?}"
        );
        let applied = state.apply(3, restricted(team_a(&[Capability::Root]), scale));
        assert!(matches!(applied, Applied::AppUpdated { .. }), "{applied:?}");
    }

    #[test]
    fn acls_are_kept_and_tokens_resolve_to_their_policies() {
        let mut state = ClusterState::default();
        let policy = AclPolicy {
            name: "team-a".into(),
            rules: team_a(&[]).rules,
            capabilities: [Capability::Root].into(),
        };
        assert_eq!(
            state.apply(1, Command::SetAclPolicy { policy }),
            Applied::AclChanged { created: true }
        );
        let token = |policies: &[&str]| AclToken {
            id: "t1".into(),
            name: "ci".into(),
            policies: policies.iter().map(|p| (*p).to_owned()).collect(),
            secret_sha256: "abc".into(),
            created: String::new(),
        };
        assert_eq!(
            state.apply(
                2,
                Command::CreateAclToken {
                    token: token(&["nope"])
                }
            ),
            Applied::Rejected(Rejection::AclPoliciesUnknown(vec!["nope".into()]))
        );
        state.apply(
            3,
            Command::CreateAclToken {
                token: token(&["team-a"]),
            },
        );
        let grants = state.acl_grants("abc").expect("known");
        assert!(grants.allows("/team-a/x", Access::Write));
        assert!(grants.capabilities.contains(&Capability::Root));
        assert!(state.acl_grants("abd").is_none());
        let forged = restricted(grants, Command::RevokeAclToken { id: "t1".into() });
        assert!(matches!(
            state.apply(4, forged),
            Applied::Rejected(Rejection::Forbidden { .. })
        ));
        assert!(state.acl_tokens.contains_key("t1"));
    }
}

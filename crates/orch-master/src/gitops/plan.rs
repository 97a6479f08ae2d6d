//! From a commit's desired apps and the cluster state to the one group update that makes the
//! managed group match git, and to sync and health status. Pure.
//!
//! Every app from git carries two labels: [`REPO_LABEL`] (the repo it came from: what prune
//! may delete) and [`COMMIT_LABEL`] (the commit at which its definition last changed, so a
//! commit that touches one app restarts only that app). Apps in the managed group that git
//! does not define are kept with their current definitions, except those from this repo
//! when prune is on.
//!
//! May depend on: model, state, gitops::parse.

use super::parse::Desired;
use orch_core::model::{
    App, AppId, GroupId, GroupUpdate, TaskState, Timestamp, COMMIT_LABEL, REPO_LABEL,
};
use orch_core::state::ClusterState;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};

/// The group update that makes the cluster match a commit, and what it changes.
#[derive(Clone, Debug, PartialEq)]
pub struct SyncPlan {
    /// The update of the managed group (one deployment).
    pub update: GroupUpdate,
    /// Apps whose definition differs from the cluster's (created, changed or deleted).
    pub drift: Vec<AppId>,
}

/// Plans syncing `desired` (from `commit` of repo `repo`) into group `managed`.
///
/// `drift` lists the apps whose stored definition differs from git (ignoring the commit
/// label); an empty `drift` means the cluster is in sync and the update need not be written.
pub fn plan(
    state: &ClusterState,
    desired: &Desired,
    managed: &GroupId,
    repo: &str,
    commit: &str,
    prune: bool,
    version: Timestamp,
) -> SyncPlan {
    let mut apps: BTreeMap<AppId, Map<String, Value>> = BTreeMap::new();
    for (id, wanted) in &desired.apps {
        // The commit label as stored, so an unchanged app compares equal.
        let stored_commit = state
            .apps
            .get(id)
            .and_then(|app| app.spec.labels.get(COMMIT_LABEL).cloned())
            .unwrap_or_else(|| commit.to_owned());
        apps.insert(
            id.clone(),
            labelled(&wanted.definition, repo, &stored_commit),
        );
    }
    for app in state.apps_below(managed) {
        if apps.contains_key(&app.id) || prune && from_repo(app, repo) {
            continue;
        }
        let mut kept = app.to_json();
        for field in ["id", "version", "versionInfo"] {
            kept.remove(field);
        }
        apps.insert(app.id.clone(), kept);
    }
    let mut groups: BTreeMap<GroupId, Vec<AppId>> = state
        .groups
        .iter()
        .filter(|(id, _)| managed.contains(id.as_str()))
        .map(|(id, group)| (id.clone(), group.dependencies.clone()))
        .collect();
    groups.extend(desired.groups.clone());
    let mut update = tree(managed, &apps, &groups);
    let (drift, reconfigured): (Vec<AppId>, Vec<AppId>) =
        match state.group_after_update(&update, version, false) {
            Ok(changes) => {
                let reconfigured = changes
                    .apps
                    .iter()
                    .filter(|(id, after)| config_changed(state, id, after.as_ref()))
                    .map(|(id, _)| id.clone())
                    .collect();
                (
                    changes.apps.into_iter().map(|(id, _)| id).collect(),
                    reconfigured,
                )
            }
            // The cluster will refuse it; writing it shows why.
            Err(_) => {
                let all: Vec<AppId> = desired.apps.keys().cloned().collect();
                (all.clone(), all)
            }
        };
    // Apps whose configuration changed get this commit as theirs; a scale keeps its commit,
    // so it scales instead of restarting every instance.
    for id in &reconfigured {
        if desired.apps.contains_key(id) {
            if let Some(definition) = find_app(&mut update, id) {
                set_label(definition, COMMIT_LABEL, commit);
            }
        }
    }
    SyncPlan { update, drift }
}

/// True unless the update only scales the app (Marathon's scaling change: same
/// `lastConfigChangeAt`).
fn config_changed(state: &ClusterState, id: &AppId, after: Option<&App>) -> bool {
    match (state.apps.get(id), after) {
        (Some(before), Some(after)) => {
            before.version_info.last_config_change_at != after.version_info.last_config_change_at
        }
        _ => true,
    }
}

/// The definition with the gitops labels set.
fn labelled(definition: &Map<String, Value>, repo: &str, commit: &str) -> Map<String, Value> {
    let mut definition = definition.clone();
    set_label(&mut definition, REPO_LABEL, repo);
    set_label(&mut definition, COMMIT_LABEL, commit);
    definition
}

fn set_label(definition: &mut Map<String, Value>, key: &str, value: &str) {
    let labels = definition
        .entry("labels")
        .or_insert_with(|| Value::Object(Map::new()));
    if !labels.is_object() {
        *labels = Value::Object(Map::new());
    }
    if let Value::Object(labels) = labels {
        labels.insert(key.to_owned(), Value::String(value.to_owned()));
    }
}

/// True if `app` was written by repo `repo`.
pub fn from_repo(app: &App, repo: &str) -> bool {
    app.spec
        .labels
        .get(REPO_LABEL)
        .is_some_and(|name| name == repo)
}

/// The group update for `id` holding exactly `apps` and `groups` (below `id`), nested.
fn tree(
    id: &GroupId,
    apps: &BTreeMap<AppId, Map<String, Value>>,
    groups: &BTreeMap<GroupId, Vec<AppId>>,
) -> GroupUpdate {
    let direct_apps = apps
        .iter()
        .filter(|(app, _)| GroupId::parent_of(app.as_str()) == *id)
        .map(|(app, definition)| (app.clone(), definition.clone()))
        .collect();
    // Every group directly below `id` that holds an app or an explicit group.
    let children: BTreeSet<GroupId> = apps
        .keys()
        .map(AppId::as_str)
        .chain(groups.keys().map(GroupId::as_str))
        .filter(|inner| id.contains(inner))
        .filter_map(|inner| child_of(id, inner))
        .collect();
    GroupUpdate {
        id: id.clone(),
        apps: Some(direct_apps),
        groups: Some(
            children
                .iter()
                .map(|child| tree(child, apps, groups))
                .collect(),
        ),
        dependencies: groups.get(id).cloned(),
        scale_by: None,
        enforce_role: None,
    }
}

/// The group directly below `group` on the way to `inner`, unless `inner` is directly in it.
fn child_of(group: &GroupId, inner: &str) -> Option<GroupId> {
    let rest = inner
        .strip_prefix(group.as_str().trim_end_matches('/'))?
        .trim_start_matches('/');
    let (first, _) = rest.split_once('/')?;
    GroupId::parse(&format!("{}/{first}", group.as_str().trim_end_matches('/'))).ok()
}

fn find_app<'a>(update: &'a mut GroupUpdate, id: &AppId) -> Option<&'a mut Map<String, Value>> {
    if let Some(apps) = &mut update.apps {
        if let Some((_, definition)) = apps.iter_mut().find(|(app, _)| app == id) {
            return Some(definition);
        }
    }
    update
        .groups
        .iter_mut()
        .flatten()
        .find_map(|group| find_app(group, id))
}

/// The health of an app from git, as Argo CD words it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub enum Health {
    /// Every instance runs (and passes its health checks); no deployment is under way.
    Healthy,
    /// A deployment is under way.
    Progressing,
    /// Git defines it; the cluster has no such app.
    Missing,
    /// No deployment is under way, yet instances are missing or failing their checks.
    Degraded,
}

/// The health of app `id` in `state`.
pub fn app_health(state: &ClusterState, id: &AppId) -> Health {
    let Some(app) = state.apps.get(id) else {
        return Health::Missing;
    };
    if state.deployments_of(id).next().is_some() {
        return Health::Progressing;
    }
    let checked = !app.spec.health_checks.is_empty();
    let good = state
        .app_tasks(id)
        .filter(|task| task.state == TaskState::Running)
        .filter(|task| !checked || task.healthy() == Some(true))
        .count();
    if i64::try_from(good).unwrap_or(i64::MAX) >= app.spec.instances {
        Health::Healthy
    } else {
        Health::Degraded
    }
}

/// The worst health of `apps` (Healthy when there are none).
pub fn overall_health(state: &ClusterState, apps: impl IntoIterator<Item = AppId>) -> Health {
    apps.into_iter()
        .map(|id| app_health(state, &id))
        .max()
        .unwrap_or(Health::Healthy)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gitops::parse::DesiredApp;
    use orch_core::model::DeploymentId;
    use orch_core::state::{Applied, Command};
    use serde_json::json;

    fn desired(apps: &[(&str, Value)]) -> Desired {
        let mut out = Desired::default();
        for (id, definition) in apps {
            out.apps.insert(
                AppId::parse(id).expect("id"),
                DesiredApp {
                    definition: definition.as_object().cloned().expect("object"),
                    file: format!("apps{id}.json"),
                },
            );
        }
        out
    }

    fn sync(
        state: &mut ClusterState,
        n: u64,
        desired: &Desired,
        commit: &str,
        prune: bool,
    ) -> Vec<AppId> {
        let plan = plan(
            state,
            desired,
            &GroupId::root(),
            "repo",
            commit,
            prune,
            Timestamp::from_millis(n),
        );
        if !plan.drift.is_empty() {
            let command = Command::UpdateGroup {
                update: plan.update,
                version: Timestamp::from_millis(n),
                create: false,
                deployment_id: DeploymentId(format!("d{n}")),
                force: true,
            };
            let applied = state.apply(n, command);
            assert!(
                matches!(applied, Applied::GroupChanged { .. }),
                "{applied:?}"
            );
        }
        plan.drift
    }

    fn commit_of(state: &ClusterState, id: &str) -> String {
        let app = &state.apps[&AppId::parse(id).expect("id")];
        app.spec.labels[COMMIT_LABEL].clone()
    }

    #[test]
    fn only_changed_apps_take_the_new_commit_and_a_second_sync_changes_nothing() {
        let mut state = ClusterState::default();
        let web = json!({"cmd": "sleep 100", "instances": 2, "portDefinitions": [{"port": 0}]});
        let first = desired(&[
            ("/web", web.clone()),
            ("/shop/db", json!({"cmd": "sleep 9"})),
        ]);
        assert_eq!(sync(&mut state, 1, &first, "c1", false).len(), 2);
        assert!(sync(&mut state, 2, &first, "c1", false).is_empty());
        let second = desired(&[("/web", web), ("/shop/db", json!({"cmd": "sleep 10"}))]);
        let drift = sync(&mut state, 3, &second, "c2", false);
        assert_eq!(drift, [AppId::parse("/shop/db").expect("id")]);
        assert_eq!(commit_of(&state, "/web"), "c1");
        assert_eq!(commit_of(&state, "/shop/db"), "c2");
        assert!(sync(&mut state, 4, &second, "c3", false).is_empty());
    }

    #[test]
    fn a_commit_that_only_changes_instances_scales_without_a_config_change() {
        let mut state = ClusterState::default();
        let web = |instances: u32| {
            desired(&[("/web", json!({"cmd": "sleep 100", "instances": instances}))])
        };
        sync(&mut state, 1, &web(2), "c1", false);
        let id = AppId::parse("/web").expect("id");
        let configured = state.apps[&id].version_info.last_config_change_at;
        let drift = sync(&mut state, 2, &web(5), "c2", false);
        assert_eq!(drift, std::slice::from_ref(&id), "the scale is written");
        let app = &state.apps[&id];
        assert_eq!(app.spec.instances, 5);
        assert_eq!(commit_of(&state, "/web"), "c1", "a scale keeps its commit");
        assert_eq!(
            app.version_info.last_config_change_at, configured,
            "a scaling change restarts nothing"
        );
        assert!(sync(&mut state, 3, &web(5), "c3", false).is_empty());
    }

    #[test]
    fn apps_gone_from_git_stay_unless_prune_and_others_apps_always_stay() {
        let mut state = ClusterState::default();
        let manual = json!({"cmd": "sleep 1", "instances": 3, "env": {"A": "b"},
            "healthChecks": [{"protocol": "COMMAND", "command": {"value": "true"}}]});
        let created = state.apply(
            1,
            Command::UpdateApp {
                id: AppId::parse("/manual").expect("id"),
                version: Timestamp::from_millis(1),
                patch: manual.as_object().cloned().expect("object"),
                partial: false,
                deployment_id: DeploymentId("d0".into()),
                force: false,
            },
        );
        assert!(matches!(created, Applied::AppUpdated { .. }), "{created:?}");
        let both = desired(&[
            ("/a", json!({"cmd": "sleep 1"})),
            ("/b", json!({"cmd": "sleep 1"})),
        ]);
        assert_eq!(sync(&mut state, 2, &both, "c1", false).len(), 2);
        let only_a = desired(&[("/a", json!({"cmd": "sleep 1"}))]);
        assert!(
            sync(&mut state, 3, &only_a, "c2", false).is_empty(),
            "prune off keeps /b"
        );
        assert_eq!(state.apps.len(), 3);
        let drift = sync(&mut state, 4, &only_a, "c2", true);
        assert_eq!(drift, [AppId::parse("/b").expect("id")]);
        let ids: Vec<&str> = state.apps.keys().map(AppId::as_str).collect();
        assert_eq!(ids, ["/a", "/manual"]);
    }

    #[test]
    fn a_manual_scale_is_drift_and_health_follows_the_state() {
        let mut state = ClusterState::default();
        let apps = desired(&[("/a", json!({"cmd": "sleep 1", "instances": 1}))]);
        sync(&mut state, 1, &apps, "c1", false);
        let id = AppId::parse("/a").expect("id");
        assert_eq!(app_health(&state, &id), Health::Progressing);
        assert_eq!(
            app_health(&state, &AppId::parse("/zz").expect("id")),
            Health::Missing
        );
        state.deployments = Default::default();
        assert_eq!(app_health(&state, &id), Health::Degraded);
        let scale = Command::UpdateApp {
            id: id.clone(),
            version: Timestamp::from_millis(2),
            patch: json!({"instances": 5})
                .as_object()
                .cloned()
                .expect("object"),
            partial: true,
            deployment_id: DeploymentId("d2".into()),
            force: true,
        };
        state.apply(2, scale);
        let plan = plan(
            &state,
            &apps,
            &GroupId::root(),
            "repo",
            "c1",
            false,
            Timestamp::from_millis(3),
        );
        assert_eq!(plan.drift, [id]);
    }

    #[test]
    fn nested_groups_keep_their_dependencies() {
        let mut state = ClusterState::default();
        let mut apps = desired(&[
            ("/rsvp/mongodb", json!({"cmd": "sleep 1"})),
            (
                "/rsvp/web",
                json!({"cmd": "sleep 1", "dependencies": ["/rsvp/mongodb"]}),
            ),
        ]);
        apps.groups
            .insert(GroupId::parse("/rsvp").expect("id"), Vec::new());
        assert_eq!(sync(&mut state, 1, &apps, "c1", false).len(), 2);
        assert!(state
            .groups
            .contains_key(&GroupId::parse("/rsvp").expect("id")));
        assert!(sync(&mut state, 2, &apps, "c1", false).is_empty());
    }
}

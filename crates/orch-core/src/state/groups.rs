//! Groups in the cluster state: the tree (explicit groups plus every group an app id
//! implies), group updates and deletes as one deployment over all their apps, the id rules
//! (an app id is never a group id) and the dependency graph (no cycles; group dependencies
//! are inherited by every app below). Deterministic like the rest of `apply`.

use super::{Applied, ClusterState, Rejection};
use crate::model::{App, AppError, AppId, DeploymentId, Group, GroupId, GroupUpdate, Timestamp};
use imbl::OrdMap;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// What a group update does: the apps it changes (`None` = delete) and the explicit groups
/// afterwards.
#[derive(Clone, Debug, PartialEq)]
pub struct GroupChanges {
    /// Changed apps only (an app whose definition stays the same is not listed).
    pub apps: Vec<(AppId, Option<App>)>,
    /// Every explicit group after the update.
    pub groups: OrdMap<GroupId, Arc<Group>>,
}

impl ClusterState {
    /// True if group `id` exists: the root, an explicit group, or a path with apps or
    /// explicit groups below it.
    pub fn group_exists(&self, id: &GroupId) -> bool {
        id.is_root()
            || self.groups.contains_key(id)
            || self.apps.keys().any(|app| id.contains(app.as_str()))
            || self.groups.keys().any(|group| id.contains(group.as_str()))
    }

    /// Every group: the root, the explicit groups, and every group above an app or an
    /// explicit group.
    pub fn group_ids(&self) -> BTreeSet<GroupId> {
        let mut ids = BTreeSet::from([GroupId::root()]);
        for id in self.groups.keys() {
            ids.extend(GroupId::ancestors_of(id.as_str()));
            ids.insert(id.clone());
        }
        for id in self.apps.keys() {
            ids.extend(GroupId::ancestors_of(id.as_str()));
        }
        ids
    }

    /// The apps strictly below group `id`.
    pub fn apps_below<'a>(&'a self, id: &'a GroupId) -> impl Iterator<Item = &'a Arc<App>> + 'a {
        self.apps
            .values()
            .filter(move |app| id.contains(app.id.as_str()))
    }

    /// What `update` at `version` would do (`create`: refuse an existing group). Used by
    /// `apply` and by handlers checking a request before writing it.
    pub fn group_after_update(
        &self,
        update: &GroupUpdate,
        version: Timestamp,
        create: bool,
    ) -> Result<GroupChanges, Rejection> {
        if create && self.group_exists(&update.id) {
            return Err(Rejection::GroupExists(update.id.clone()));
        }
        let mut out = Building {
            apps: BTreeMap::new(),
            groups: self.groups.clone(),
            taken: BTreeSet::new(),
        };
        self.update_one(update, version, "", &mut out)?;
        let changes = GroupChanges {
            apps: out.apps.into_iter().collect(),
            groups: out.groups,
        };
        let apps = self.apps_after(&changes.apps);
        if let Some(group) = changes
            .groups
            .keys()
            .find(|group| group.as_app_id().is_some_and(|id| apps.contains_key(&id)))
        {
            return Err(Rejection::IdConflict {
                id: group.to_string(),
            });
        }
        if has_cycle(&apps, &changes.groups) {
            return Err(Rejection::CyclicDependencies);
        }
        Ok(changes)
    }

    /// Applies a group update as one deployment.
    pub(super) fn update_group(
        &mut self,
        index: u64,
        update: &GroupUpdate,
        version: Timestamp,
        create: bool,
        deployment_id: DeploymentId,
        force: bool,
    ) -> Applied {
        match self.group_after_update(update, version, create) {
            Ok(changes) => self.change_groups(
                index,
                update.id.clone(),
                changes,
                version,
                deployment_id,
                force,
            ),
            Err(rejection) => Applied::Rejected(rejection),
        }
    }

    /// Deletes group `id`: every app and explicit group below it (and itself).
    pub(super) fn delete_group(
        &mut self,
        index: u64,
        id: &GroupId,
        version: Timestamp,
        deployment_id: DeploymentId,
        force: bool,
    ) -> Applied {
        if !self.group_exists(id) {
            return Applied::Rejected(Rejection::GroupUnknown(id.clone()));
        }
        let apps = self
            .apps_below(id)
            .map(|app| (app.id.clone(), None))
            .collect();
        let groups = self
            .groups
            .iter()
            .filter(|(group, _)| *group != id && !id.contains(group.as_str()))
            .map(|(group, record)| (group.clone(), Arc::clone(record)))
            .collect();
        let changes = GroupChanges { apps, groups };
        self.change_groups(index, id.clone(), changes, version, deployment_id, force)
    }

    /// Stores the explicit groups of `changes` and changes its apps as one deployment; on
    /// a rejection nothing changes.
    fn change_groups(
        &mut self,
        index: u64,
        id: GroupId,
        changes: GroupChanges,
        version: Timestamp,
        deployment_id: DeploymentId,
        force: bool,
    ) -> Applied {
        let before = std::mem::replace(&mut self.groups, changes.groups);
        match self.change_apps(index, changes.apps, version, deployment_id.clone(), force) {
            Ok(change) => Applied::GroupChanged {
                id,
                version,
                deployment_id,
                change,
            },
            Err(rejection) => {
                self.groups = before;
                Applied::Rejected(rejection)
            }
        }
    }

    /// The app ids after `changes`, each with its own dependencies.
    fn apps_after<'a>(
        &'a self,
        changes: &'a [(AppId, Option<App>)],
    ) -> BTreeMap<AppId, &'a [AppId]> {
        let mut apps: BTreeMap<AppId, &[AppId]> = self
            .apps
            .iter()
            .map(|(id, app)| (id.clone(), app.spec.dependencies.as_slice()))
            .collect();
        for (id, after) in changes {
            match after {
                Some(app) => apps.insert(id.clone(), app.spec.dependencies.as_slice()),
                None => apps.remove(id),
            };
        }
        apps
    }

    /// The id rules and the dependency graph for a change of apps (`None` = delete), checked
    /// before `change_apps` touches anything: a stored app may not sit where a group is (an
    /// explicit group, or apps below it) nor below another app, and an app whose
    /// dependencies (its own or its groups') are not empty may not close a cycle.
    pub(super) fn check_tree(&self, changes: &[(AppId, Option<App>)]) -> Result<(), Rejection> {
        let deleted: BTreeSet<&AppId> = changes
            .iter()
            .filter(|(_, after)| after.is_none())
            .map(|(id, _)| id)
            .collect();
        let stored: BTreeSet<&AppId> = changes
            .iter()
            .filter(|(_, after)| after.is_some())
            .map(|(id, _)| id)
            .collect();
        let exists = |id: &AppId| {
            stored.contains(id) || (self.apps.contains_key(id) && !deleted.contains(id))
        };
        let mut with_dependencies = false;
        for (id, after) in changes {
            let Some(app) = after else { continue };
            let group = GroupId::from(id.clone());
            let below = |other: &AppId| group.contains(other.as_str());
            let conflict = self.groups.contains_key(&group)
                || stored.iter().any(|other| below(other))
                || self
                    .apps
                    .range(id.clone()..)
                    .take_while(|(other, _)| other.as_str().starts_with(id.as_str()))
                    .any(|(other, _)| below(other) && !deleted.contains(other))
                || GroupId::ancestors_of(id.as_str())
                    .iter()
                    .filter_map(GroupId::as_app_id)
                    .any(|ancestor| exists(&ancestor));
            if conflict {
                return Err(Rejection::IdConflict { id: id.to_string() });
            }
            with_dependencies |= dependencies_of(id, &app.spec.dependencies, &self.groups)
                .next()
                .is_some();
        }
        if with_dependencies && has_cycle(&self.apps_after(changes), &self.groups) {
            return Err(Rejection::CyclicDependencies);
        }
        Ok(())
    }

    /// Adds what updating one group (and its nested groups) does to `out`.
    fn update_one(
        &self,
        update: &GroupUpdate,
        version: Timestamp,
        path: &str,
        out: &mut Building,
    ) -> Result<(), Rejection> {
        if let Some(factor) = update.scale_by {
            for app in self.apps_below(&update.id) {
                // Marathon's arithmetic: `as` saturates a product beyond i64, which validation
                // then refuses as too many instances.
                #[allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]
                let instances = (app.spec.instances as f64 * factor).ceil() as i64;
                if instances == app.spec.instances {
                    continue;
                }
                let mut patch = Map::new();
                patch.insert("instances".into(), json!(instances));
                let scaled = app
                    .updated(version, &patch, true, || self.service_ports_in_use(&app.id))
                    .map_err(|error| Rejection::InvalidApp(nested(error, path)))?;
                out.apps.insert(app.id.clone(), Some(scaled));
            }
            return Ok(());
        }
        let mut record = out.groups.get(&update.id).map_or_else(
            || Group {
                id: update.id.clone(),
                dependencies: Vec::new(),
                version,
                enforce_role: None,
            },
            |group| Group::clone(group),
        );
        record.version = version;
        if let Some(dependencies) = &update.dependencies {
            record.dependencies.clone_from(dependencies);
        }
        if update.enforce_role.is_some() {
            record.enforce_role = update.enforce_role;
        }
        out.groups.insert(update.id.clone(), Arc::new(record));
        if let Some(apps) = &update.apps {
            for (id, _) in self.apps.iter() {
                let direct = GroupId::parent_of(id.as_str()) == update.id;
                if direct && !apps.iter().any(|(listed, _)| listed == id) {
                    out.apps.insert(id.clone(), None);
                }
            }
            for (i, (id, definition)) in apps.iter().enumerate() {
                let at = format!("{path}/apps({i})");
                if let Some(app) = self.target_app(id, definition, version, &at, out)? {
                    out.apps.insert(id.clone(), Some(app));
                }
            }
        }
        if let Some(groups) = &update.groups {
            for child in self.group_ids() {
                let direct = !child.is_root() && child.parent() == update.id;
                if direct && !groups.iter().any(|listed| listed.id == child) {
                    for app in self.apps_below(&child) {
                        out.apps.insert(app.id.clone(), None);
                    }
                    let gone: Vec<GroupId> = out
                        .groups
                        .keys()
                        .filter(|group| **group == child || child.contains(group.as_str()))
                        .cloned()
                        .collect();
                    for group in gone {
                        out.groups.remove(&group);
                    }
                }
            }
            for (i, group) in groups.iter().enumerate() {
                self.update_one(group, version, &format!("{path}/groups({i})"), out)?;
            }
        }
        Ok(())
    }

    /// App `id` as a group update defines it (the whole definition), or `None` when that
    /// is what is stored already. Service ports are assigned around those already taken.
    fn target_app(
        &self,
        id: &AppId,
        definition: &Map<String, Value>,
        version: Timestamp,
        path: &str,
        out: &mut Building,
    ) -> Result<Option<App>, Rejection> {
        let in_use = || {
            let mut ports = self.service_ports_in_use(id);
            ports.extend(out.taken.iter().copied());
            ports
        };
        let app = match self.apps.get(id) {
            Some(existing) => {
                let app = existing
                    .updated(version, definition, false, in_use)
                    .map_err(|error| Rejection::InvalidApp(nested(error, path)))?;
                if app.spec == existing.spec {
                    return Ok(None);
                }
                app
            }
            None => App::from_json(id.clone(), version, definition)
                .and_then(|app| Ok(app.with_service_ports(None, in_use)?))
                .map_err(|error| Rejection::InvalidApp(nested(error, path)))?,
        };
        out.taken.extend(app.spec.service_ports());
        Ok(Some(app))
    }
}

/// A group update being worked out.
struct Building {
    apps: BTreeMap<AppId, Option<App>>,
    groups: OrdMap<GroupId, Arc<Group>>,
    taken: BTreeSet<u16>,
}

/// `error` with its violation paths placed below `path` (e.g. `/apps(0)` + `/cmd`).
fn nested(error: AppError, path: &str) -> AppError {
    match error {
        AppError::Invalid { violations } => AppError::Invalid {
            violations: violations
                .into_iter()
                .map(|mut violation| {
                    violation.path = if violation.path == "/" {
                        path.to_owned()
                    } else {
                        format!("{path}{}", violation.path)
                    };
                    violation
                })
                .collect(),
        },
        other => other,
    }
}

/// The dependencies of app `id`: its own, then those of every explicit group above it.
pub(super) fn dependencies_of<'a>(
    id: &AppId,
    own: &'a [AppId],
    groups: &'a OrdMap<GroupId, Arc<Group>>,
) -> impl Iterator<Item = &'a AppId> + 'a {
    let inherited: Vec<&'a AppId> = GroupId::ancestors_of(id.as_str())
        .iter()
        .filter_map(|group| groups.get(group))
        .flat_map(|group| group.dependencies.iter())
        .collect();
    own.iter().chain(inherited)
}

/// True if `dependency` names app `id` or a group that contains it.
pub(super) fn covers(dependency: &AppId, id: &AppId) -> bool {
    dependency == id
        || id
            .as_str()
            .strip_prefix(dependency.as_str())
            .is_some_and(|rest| rest.starts_with('/'))
}

/// True if the apps (each with its own dependencies) and the groups' dependencies form a
/// cycle. An app does not depend on itself through a group holding it.
fn has_cycle(apps: &BTreeMap<AppId, &[AppId]>, groups: &OrdMap<GroupId, Arc<Group>>) -> bool {
    let edges: BTreeMap<&AppId, Vec<&AppId>> = apps
        .iter()
        .map(|(id, own)| {
            let targets = dependencies_of(id, own, groups)
                .flat_map(|dependency| {
                    apps.range(dependency.clone()..)
                        .take_while(move |(other, _)| {
                            other.as_str().starts_with(dependency.as_str())
                        })
                        .map(|(other, _)| other)
                        .filter(move |other| covers(dependency, other))
                })
                .filter(|other| *other != id)
                .collect();
            (id, targets)
        })
        .collect();
    // Iterative depth-first search: 1 = on the current path, 2 = finished.
    let mut mark: BTreeMap<&AppId, u8> = BTreeMap::new();
    for start in edges.keys() {
        if mark.contains_key(start) {
            continue;
        }
        let mut stack: Vec<(&AppId, usize)> = vec![(start, 0)];
        mark.insert(start, 1);
        while let Some((node, next)) = stack.pop() {
            let targets = edges.get(node).map_or(&[][..], Vec::as_slice);
            match targets.get(next) {
                Some(target) => {
                    stack.push((node, next + 1));
                    match mark.get(target) {
                        Some(1) => return true,
                        Some(_) => {}
                        None => {
                            mark.insert(target, 1);
                            stack.push((target, 0));
                        }
                    }
                }
                None => {
                    mark.insert(node, 2);
                }
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ActionKind, DeploymentAction};
    use crate::state::Command;

    fn update(id: &str, body: Value) -> GroupUpdate {
        let id = GroupId::parse(id).expect("valid id");
        GroupUpdate::from_json(id, body.as_object().expect("object"), "").expect("valid")
    }

    fn put(state: &mut ClusterState, n: u64, body: Value, create: bool, force: bool) -> Applied {
        let id = body["id"].as_str().unwrap_or("/").to_owned();
        state.apply(
            n,
            Command::UpdateGroup {
                update: update(&id, body),
                version: Timestamp::from_millis(n),
                create,
                deployment_id: DeploymentId(format!("d{n}")),
                force,
            },
        )
    }

    fn app(id: &str, instances: i64) -> Value {
        json!({"id": id, "cmd": "sleep 100", "instances": instances, "portDefinitions": []})
    }

    fn steps(applied: &Applied) -> Vec<Vec<(ActionKind, String)>> {
        let Applied::GroupChanged { change, .. } = applied else {
            panic!("not a group change: {applied:?}");
        };
        let deployment = change.started.as_ref().expect("a deployment");
        deployment
            .steps
            .iter()
            .map(|step| {
                step.iter()
                    .map(|DeploymentAction { action, app }| (*action, app.to_string()))
                    .collect()
            })
            .collect()
    }

    fn product() -> Value {
        json!({
            "id": "/product",
            "groups": [
                {"id": "service", "dependencies": ["/product/database"],
                 "apps": [app("web", 1), app("api", 3)]},
                {"id": "database", "apps": [app("pg", 1)]},
                {"id": "empty"},
            ],
        })
    }

    #[test]
    fn a_nested_group_is_one_deployment_ordered_by_group_dependencies() {
        let mut state = ClusterState::default();
        let applied = put(&mut state, 1, product(), true, false);
        assert_eq!(
            steps(&applied),
            vec![
                vec![(ActionKind::StartApplication, "/product/database/pg".into())],
                vec![
                    (ActionKind::StartApplication, "/product/service/api".into()),
                    (ActionKind::StartApplication, "/product/service/web".into()),
                ],
            ]
        );
        assert_eq!(state.apps.len(), 3);
        assert!(state.group_exists(&GroupId::parse("/product/empty").expect("valid")));
        assert_eq!(state.deployments.len(), 1);
        let ids: Vec<String> = state.group_ids().iter().map(ToString::to_string).collect();
        assert_eq!(
            ids,
            vec![
                "/",
                "/product",
                "/product/database",
                "/product/empty",
                "/product/service"
            ]
        );
        // A second create is refused.
        assert_eq!(
            put(&mut state, 2, json!({"id": "/product"}), true, false),
            Applied::Rejected(Rejection::GroupExists(
                GroupId::parse("/product").expect("valid")
            ))
        );
    }

    #[test]
    fn locked_apps_refuse_unless_forced_and_scale_by_rounds_up() {
        let mut state = ClusterState::default();
        put(&mut state, 1, product(), true, false);
        let scale = json!({"id": "/product/service", "scaleBy": 1.5});
        assert_eq!(
            put(&mut state, 2, scale.clone(), false, false),
            Applied::Rejected(Rejection::AppLocked(vec![DeploymentId("d1".into())]))
        );
        let applied = put(&mut state, 3, scale, false, true);
        assert_eq!(
            steps(&applied),
            vec![vec![
                (ActionKind::ScaleApplication, "/product/service/api".into()),
                (ActionKind::ScaleApplication, "/product/service/web".into()),
            ]]
        );
        let instances = |id: &str| state.apps[&AppId::parse(id).expect("valid")].spec.instances;
        assert_eq!(instances("/product/service/web"), 2);
        assert_eq!(instances("/product/service/api"), 5);
        assert_eq!(instances("/product/database/pg"), 1);
        // The forced change superseded the first deployment.
        assert!(!state.deployments.contains_key(&DeploymentId("d1".into())));
    }

    #[test]
    fn listed_apps_and_groups_are_exactly_what_remains() {
        let mut state = ClusterState::default();
        put(&mut state, 1, product(), true, false);
        let body = json!({
            "id": "/product",
            "groups": [{"id": "service", "apps": [app("web", 1)]}],
        });
        let applied = put(&mut state, 2, body, false, true);
        // api and the database group go; web is unchanged so it is not in the plan.
        assert_eq!(
            steps(&applied),
            vec![vec![
                (ActionKind::StopApplication, "/product/database/pg".into()),
                (ActionKind::StopApplication, "/product/service/api".into()),
            ]]
        );
        let ids: Vec<&str> = state.apps.keys().map(AppId::as_str).collect();
        assert_eq!(ids, vec!["/product/service/web"]);
        assert!(!state.group_exists(&GroupId::parse("/product/empty").expect("valid")));
        // The group's dependencies stay as they were (not given).
        let service = &state.groups[&GroupId::parse("/product/service").expect("valid")];
        assert_eq!(service.dependencies.len(), 1);
    }

    #[test]
    fn cycles_and_id_conflicts_are_refused() {
        let mut state = ClusterState::default();
        let cyclic = json!({
            "id": "/",
            "groups": [
                {"id": "a", "dependencies": ["/b"], "apps": [app("x", 0)]},
                {"id": "b", "dependencies": ["/a"], "apps": [app("y", 0)]},
            ],
        });
        assert_eq!(
            put(&mut state, 1, cyclic, false, false),
            Applied::Rejected(Rejection::CyclicDependencies)
        );
        assert_eq!(
            state,
            ClusterState {
                applied_index: 1,
                ..ClusterState::default()
            }
        );
        put(&mut state, 2, product(), true, false);
        // An app where a group is, and a group where an app is.
        let pg = json!({"cmd": "sleep 1"})
            .as_object()
            .cloned()
            .expect("object");
        let group_as_app = Command::CreateApp {
            app: Box::new(
                App::from_json(
                    AppId::parse("/product/database").expect("valid"),
                    Timestamp::from_millis(3),
                    &pg,
                )
                .expect("valid"),
            ),
            deployment_id: DeploymentId("d3".into()),
            force: true,
        };
        assert_eq!(
            state.apply(3, group_as_app),
            Applied::Rejected(Rejection::IdConflict {
                id: "/product/database".into()
            })
        );
        let below_app = json!({"id": "/product/database/pg", "apps": []});
        assert_eq!(
            put(&mut state, 4, below_app, false, true),
            Applied::Rejected(Rejection::IdConflict {
                id: "/product/database/pg".into()
            })
        );
        // An app dependency closing a cycle through a group dependency.
        let back = json!({"id": "/product/database", "apps": [
            {"id": "pg", "cmd": "sleep 1", "dependencies": ["/product/service"]}
        ]});
        assert_eq!(
            put(&mut state, 5, back, false, true),
            Applied::Rejected(Rejection::CyclicDependencies)
        );
    }

    #[test]
    fn invalid_nested_apps_name_their_path() {
        let state = ClusterState::default();
        let body = json!({"id": "/g", "groups": [{"id": "s", "apps": [
            {"id": "ok", "cmd": "sleep 1"}, {"id": "bad", "cpus": "many", "cmd": "x"}
        ]}]});
        let result = state.group_after_update(&update("/g", body), Timestamp::from_millis(1), true);
        let Err(Rejection::InvalidApp(AppError::Invalid { violations })) = result else {
            panic!("expected invalid: {result:?}");
        };
        assert_eq!(violations[0].path, "/groups(0)/apps(1)/cpus");
    }

    #[test]
    fn deleting_a_group_stops_everything_below() {
        let mut state = ClusterState::default();
        put(&mut state, 1, product(), true, false);
        let delete = |id: &str, n: u64, force: bool| Command::DeleteGroup {
            id: GroupId::parse(id).expect("valid"),
            version: Timestamp::from_millis(n),
            deployment_id: DeploymentId(format!("d{n}")),
            force,
        };
        assert!(matches!(
            state.apply(2, delete("/product/service", 2, false)),
            Applied::Rejected(Rejection::AppLocked(_))
        ));
        let applied = state.apply(3, delete("/product/service", 3, true));
        assert_eq!(
            steps(&applied),
            vec![vec![
                (ActionKind::StopApplication, "/product/service/api".into()),
                (ActionKind::StopApplication, "/product/service/web".into()),
            ]]
        );
        assert!(!state.group_exists(&GroupId::parse("/product/service").expect("valid")));
        assert!(state.group_exists(&GroupId::parse("/product/empty").expect("valid")));
        assert_eq!(
            state.apply(4, delete("/nothing", 4, true)),
            Applied::Rejected(Rejection::GroupUnknown(
                GroupId::parse("/nothing").expect("valid")
            ))
        );
        state.apply(5, delete("/", 5, true));
        assert!(state.apps.is_empty() && state.groups.is_empty());
    }

    #[test]
    fn group_changes_emit_group_change_success() {
        let mut state = ClusterState::default();
        let applied = put(&mut state, 1, product(), true, false);
        let mut events = Vec::new();
        crate::state::events(&applied, &mut events);
        assert_eq!(events[0].event_type, "group_change_success");
        assert_eq!(events[0].json["groupId"], "/product");
        assert_eq!(events[1].event_type, "deployment_info");
    }
}

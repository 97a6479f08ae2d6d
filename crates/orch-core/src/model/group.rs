//! Marathon groups: group ids (which, unlike app ids, may be the root `/`), the records of
//! explicit groups, and the `/v2/groups` update body read into typed form with every
//! relative id resolved against its enclosing group.
//!
//! Groups form a tree below `/`. A group exists implicitly when an app lives below it, or
//! explicitly when it was created through `/v2/groups` (then it may be empty and may carry
//! `dependencies` that every app below it inherits).

use super::{AppId, AppIdError, Timestamp, Violation};
use serde_json::{Map, Value};

/// A canonical, absolute group id: `/` or a valid path such as `/prod/web`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct GroupId(String);

impl GroupId {
    /// The root group `/`.
    pub fn root() -> Self {
        Self("/".to_owned())
    }

    /// Parses an id with or without its leading `/`; `/` and the empty string are the root.
    pub fn parse(text: &str) -> Result<Self, AppIdError> {
        if text.split('/').all(str::is_empty) {
            return Ok(Self::root());
        }
        AppId::parse(text).map(Self::from)
    }

    /// True for `/`.
    pub fn is_root(&self) -> bool {
        self.0 == "/"
    }

    /// The canonical form.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The same path as an app id (`None` for the root).
    pub fn as_app_id(&self) -> Option<AppId> {
        AppId::parse(&self.0).ok()
    }

    /// The group an app or group `id` lives in.
    pub fn parent_of(id: &str) -> Self {
        match id.rsplit_once('/') {
            Some((parent, _)) if !parent.is_empty() => Self(parent.to_owned()),
            _ => Self::root(),
        }
    }

    /// The parent of this group (the root is its own parent).
    pub fn parent(&self) -> Self {
        Self::parent_of(&self.0)
    }

    /// `relative` resolved against this group: absolute ids stay, others are below it.
    pub fn resolve(&self, relative: &str) -> Result<AppId, AppIdError> {
        if relative.starts_with('/') {
            AppId::parse(relative)
        } else {
            AppId::parse(&format!("{}/{relative}", self.0.trim_end_matches('/')))
        }
    }

    /// True if `id` lies strictly below this group (at any depth).
    pub fn contains(&self, id: &str) -> bool {
        self.is_root() && id != "/"
            || id
                .strip_prefix(self.0.as_str())
                .is_some_and(|rest| rest.starts_with('/'))
    }

    /// Every group above `id` (an app or group id), nearest first, ending with the root.
    pub fn ancestors_of(id: &str) -> Vec<GroupId> {
        let mut out = Vec::new();
        let mut current = id.to_owned();
        while current != "/" {
            let parent = Self::parent_of(&current);
            current = parent.0.clone();
            out.push(parent);
        }
        out
    }
}

impl From<AppId> for GroupId {
    fn from(id: AppId) -> Self {
        Self(id.as_str().to_owned())
    }
}

impl std::fmt::Display for GroupId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for GroupId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// An explicit group: one created or updated through `/v2/groups`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Group {
    /// Its id.
    pub id: GroupId,
    /// Apps or groups every app below this group depends on (absolute ids).
    pub dependencies: Vec<AppId>,
    /// When it was last changed.
    pub version: Timestamp,
    /// Marathon 1.9's `enforceRole` (top-level groups).
    pub enforce_role: Option<bool>,
}

/// The body of `POST`/`PUT /v2/groups`, with ids resolved (Marathon's GroupUpdate).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GroupUpdate {
    /// The group it changes.
    pub id: GroupId,
    /// When present, exactly the apps the group holds directly afterwards: each id and its
    /// full definition (the definition is read and validated when the update is applied).
    pub apps: Option<Vec<(AppId, Map<String, Value>)>>,
    /// When present, exactly the direct subgroups afterwards, each updated in turn.
    pub groups: Option<Vec<GroupUpdate>>,
    /// New group dependencies (absolute).
    pub dependencies: Option<Vec<AppId>>,
    /// Multiply the instances of every app below by this factor (rounding up) instead of a
    /// structural update.
    pub scale_by: Option<f64>,
    /// New `enforceRole`.
    pub enforce_role: Option<bool>,
}

impl GroupUpdate {
    /// Reads a group update body for group `id` (whose nested ids resolve against it).
    /// `path` prefixes violation paths (`""` at the top, `/groups(1)` below).
    pub fn from_json(
        id: GroupId,
        body: &Map<String, Value>,
        path: &str,
    ) -> Result<Self, Vec<Violation>> {
        let mut violations = Vec::new();
        let mut update = Self {
            id,
            apps: None,
            groups: None,
            dependencies: None,
            scale_by: None,
            enforce_role: None,
        };
        if let Some(apps) = non_null(body, "apps") {
            update.apps = read_apps(&update.id, apps, path, &mut violations);
        }
        if let Some(groups) = non_null(body, "groups") {
            update.groups = read_groups(&update.id, groups, path, &mut violations);
        }
        if let Some(dependencies) = non_null(body, "dependencies") {
            let base = update.id.parent();
            update.dependencies = read_ids(&base, dependencies, &format!("{path}/dependencies"))
                .map_err(|mut v| violations.append(&mut v))
                .ok();
        }
        match non_null(body, "scaleBy") {
            None => {}
            Some(Value::Number(n)) => match n.as_f64() {
                Some(factor) if factor >= 0.0 && factor.is_finite() => {
                    update.scale_by = Some(factor)
                }
                _ => violations.push(Violation::new(
                    format!("{path}/scaleBy"),
                    "must be greater than or equal to 0",
                )),
            },
            Some(_) => violations.push(Violation::new(
                format!("{path}/scaleBy"),
                "error.expected.jsnumber",
            )),
        }
        match non_null(body, "enforceRole") {
            None => {}
            Some(Value::Bool(flag)) => update.enforce_role = Some(*flag),
            Some(_) => violations.push(Violation::new(
                format!("{path}/enforceRole"),
                "error.expected.jsboolean",
            )),
        }
        if violations.is_empty() {
            Ok(update)
        } else {
            Err(violations)
        }
    }

    /// The id of every group this update names (itself and its nested groups).
    pub fn group_ids(&self) -> Vec<GroupId> {
        let mut out = vec![self.id.clone()];
        for group in self.groups.iter().flatten() {
            out.extend(group.group_ids());
        }
        out
    }
}

fn non_null<'a>(body: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    body.get(key).filter(|value| !value.is_null())
}

/// The `id` of a nested app or group, resolved against `base` and required to be a direct
/// child of it.
fn child_id(base: &GroupId, item: &Map<String, Value>, path: &str) -> Result<AppId, Violation> {
    let id = match item.get("id") {
        Some(Value::String(id)) => base
            .resolve(id)
            .map_err(|error| Violation::new(format!("{path}/id"), error.to_string()))?,
        Some(_) => {
            return Err(Violation::new(
                format!("{path}/id"),
                "error.expected.jsstring",
            ))
        }
        None => return Err(Violation::new(format!("{path}/id"), "error.path.missing")),
    };
    if GroupId::parent_of(id.as_str()) != *base {
        return Err(Violation::new(
            format!("{path}/id"),
            format!("identifier {id} is not child of {base}"),
        ));
    }
    Ok(id)
}

fn read_apps(
    base: &GroupId,
    apps: &Value,
    path: &str,
    violations: &mut Vec<Violation>,
) -> Option<Vec<(AppId, Map<String, Value>)>> {
    let Value::Array(apps) = apps else {
        violations.push(Violation::new(
            format!("{path}/apps"),
            "error.expected.jsarray",
        ));
        return None;
    };
    let mut out = Vec::new();
    for (i, app) in apps.iter().enumerate() {
        let at = format!("{path}/apps({i})");
        let Value::Object(app) = app else {
            violations.push(Violation::new(at, "error.expected.jsobject"));
            continue;
        };
        match child_id(base, app, &at) {
            Ok(id) if out.iter().any(|(other, _)| *other == id) => violations.push(Violation::new(
                format!("{at}/id"),
                format!("duplicate app id {id}"),
            )),
            Ok(id) => out.push((id, app.clone())),
            Err(violation) => violations.push(violation),
        }
    }
    Some(out)
}

fn read_groups(
    base: &GroupId,
    groups: &Value,
    path: &str,
    violations: &mut Vec<Violation>,
) -> Option<Vec<GroupUpdate>> {
    let Value::Array(groups) = groups else {
        violations.push(Violation::new(
            format!("{path}/groups"),
            "error.expected.jsarray",
        ));
        return None;
    };
    let mut out: Vec<GroupUpdate> = Vec::new();
    for (i, group) in groups.iter().enumerate() {
        let at = format!("{path}/groups({i})");
        let Value::Object(group) = group else {
            violations.push(Violation::new(at, "error.expected.jsobject"));
            continue;
        };
        let id = match child_id(base, group, &at) {
            Ok(id) => GroupId::from(id),
            Err(violation) => {
                violations.push(violation);
                continue;
            }
        };
        if out.iter().any(|other| other.id == id) {
            violations.push(Violation::new(
                format!("{at}/id"),
                format!("duplicate group id {id}"),
            ));
            continue;
        }
        match GroupUpdate::from_json(id, group, &at) {
            Ok(update) => out.push(update),
            Err(mut v) => violations.append(&mut v),
        }
    }
    Some(out)
}

fn read_ids(base: &GroupId, ids: &Value, path: &str) -> Result<Vec<AppId>, Vec<Violation>> {
    let Value::Array(ids) = ids else {
        return Err(vec![Violation::new(path, "error.expected.jsarray")]);
    };
    let mut out = Vec::new();
    let mut violations = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        match id.as_str().map(|text| base.resolve(text)) {
            Some(Ok(id)) => out.push(id),
            Some(Err(error)) => {
                violations.push(Violation::new(format!("{path}({i})"), error.to_string()))
            }
            None => violations.push(Violation::new(
                format!("{path}({i})"),
                "error.expected.jsstring",
            )),
        }
    }
    if violations.is_empty() {
        Ok(out)
    } else {
        Err(violations)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn group_ids_include_the_root() {
        assert!(GroupId::parse("/").expect("root").is_root());
        assert!(GroupId::parse("").expect("root").is_root());
        let prod = GroupId::parse("prod/web/").expect("valid");
        assert_eq!(prod.as_str(), "/prod/web");
        assert_eq!(prod.parent().as_str(), "/prod");
        assert!(prod.parent().parent().is_root());
        assert!(prod.contains("/prod/web/x"));
        assert!(!prod.contains("/prod/web"));
        assert!(!prod.contains("/prod/webx"));
        assert!(GroupId::root().contains("/a"));
        assert_eq!(
            GroupId::ancestors_of("/a/b/c"),
            vec![
                GroupId::parse("/a/b").expect("valid"),
                GroupId::parse("/a").expect("valid"),
                GroupId::root()
            ]
        );
        assert_eq!(
            prod.resolve("../db").map(|id| id.to_string()),
            Ok("/prod/db".into())
        );
        assert!(GroupId::parse("/Bad").is_err());
    }

    #[test]
    fn nested_ids_resolve_against_their_group() {
        let body = object(json!({
            "apps": [{"id": "web", "cmd": "x"}],
            "dependencies": ["db"],
            "groups": [{"id": "db", "apps": [{"id": "/prod/db/pg"}]}],
        }));
        let update =
            GroupUpdate::from_json(GroupId::parse("/prod").expect("valid"), &body, "").expect("ok");
        let apps = update.apps.expect("apps");
        assert_eq!(apps[0].0.as_str(), "/prod/web");
        assert_eq!(
            update.dependencies.expect("dependencies")[0].as_str(),
            "/db"
        );
        let groups = update.groups.expect("groups");
        assert_eq!(groups[0].id.as_str(), "/prod/db");
        assert_eq!(
            groups[0].apps.as_ref().expect("apps")[0].0.as_str(),
            "/prod/db/pg"
        );
    }

    #[test]
    fn nested_items_must_be_children_with_paths_in_violations() {
        let body = object(json!({
            "apps": [{"id": "/elsewhere/web"}, {"cmd": "x"}],
            "groups": [{"id": "sub", "apps": [{"id": "a/b"}]}],
            "scaleBy": "x",
        }));
        let violations = GroupUpdate::from_json(GroupId::parse("/prod").expect("valid"), &body, "")
            .expect_err("invalid");
        let paths: Vec<&str> = violations.iter().map(|v| v.path.as_str()).collect();
        assert_eq!(
            paths,
            vec![
                "/apps(0)/id",
                "/apps(1)/id",
                "/groups(0)/apps(0)/id",
                "/scaleBy"
            ]
        );
    }
}

//! Access control: policies (paths with an access level, and capabilities), tokens that hold
//! policies, and [`Grants`], what a caller may do once its token's policies are resolved.
//!
//! A rule's path is an app or group id pattern: `/team-a/web` (that id), `/team-a/*` (ids one
//! level below `/team-a`), `/team-a/**` (`/team-a` and everything below it), `/**`
//! (everything). Access levels rise: `read` < `write` < `admin`; `write` creates, changes,
//! scales, restarts and deletes apps and groups, kills their tasks and cancels their
//! deployments; `admin` on `/**` adds the cluster's own resources (agents, masters, gitops
//! repos). ACLs themselves are the management token's alone.
//!
//! Capabilities cover what an app may ask of its agent beyond a plain task (see
//! [`Capability`]); [`needed_capabilities`] says which an app definition needs.
//!
//! May depend on: model (apps). Pure.

use super::{App, NetworkMode, Violation};
use serde_json::{Map, Value};
use std::collections::BTreeSet;

/// How much a rule allows on its paths.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    /// See the apps, groups, tasks and deployments.
    Read,
    /// Read, and change them.
    Write,
    /// Write; on `/**` also the cluster's agents, masters and gitops repos.
    Admin,
}

impl Access {
    /// The word in policies and messages.
    pub fn name(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
            Self::Admin => "admin",
        }
    }
}

/// What an app may ask of its agent beyond a plain task, held only through a policy.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Capability {
    /// `container.docker.privileged: true`.
    Privileged,
    /// Container volumes with an absolute `hostPath` (a path of the agent's file system).
    HostVolumes,
    /// A Docker container on the agent's network (`network: HOST`, `networks: [{"mode": "host"}]`).
    HostNetwork,
    /// Docker parameters that widen a container's reach: `cap-add`, `security-opt`, `device`
    /// and the like ([`WIDENING_PARAMETERS`]).
    DockerParameters,
    /// Tasks running as root: `user: root` (or uid 0), or no `user` at all. A task of an app
    /// written without this capability and without `user` runs as the agent's unprivileged
    /// user (`--unprivileged-user`, `nobody` by default).
    Root,
}

impl Capability {
    /// Every capability, in the order messages list them.
    pub const ALL: [Self; 5] = [
        Self::Privileged,
        Self::HostVolumes,
        Self::HostNetwork,
        Self::DockerParameters,
        Self::Root,
    ];

    /// The word in policies and messages.
    pub fn name(self) -> &'static str {
        match self {
            Self::Privileged => "privileged",
            Self::HostVolumes => "host-volumes",
            Self::HostNetwork => "host-network",
            Self::DockerParameters => "docker-parameters",
            Self::Root => "root",
        }
    }

    /// The capability named `word`.
    pub fn parse(word: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.name() == word)
    }
}

/// Docker `parameters` keys that need [`Capability::DockerParameters`]: each can give a
/// container the host's devices, kernel capabilities, namespaces or files.
pub const WIDENING_PARAMETERS: [&str; 14] = [
    "cap-add",
    "security-opt",
    "device",
    "device-cgroup-rule",
    "privileged",
    "volume",
    "v",
    "mount",
    "volumes-from",
    "net",
    "network",
    "pid",
    "ipc",
    "userns",
];

/// One rule of a policy.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AclRule {
    /// The id pattern (see the module doc).
    pub path: String,
    /// What it allows there.
    pub access: Access,
}

/// A named set of rules and capabilities.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AclPolicy {
    /// Its name (`[a-z0-9_-]`, 1 to 64 characters).
    pub name: String,
    /// Its rules.
    pub rules: Vec<AclRule>,
    /// Its capabilities.
    #[serde(default)]
    pub capabilities: BTreeSet<Capability>,
}

/// A token: who holds it and which policies it has. The secret itself is never stored, only
/// its SHA-256 (hex).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AclToken {
    /// Its id (a UUID chosen by the leader).
    pub id: String,
    /// Its name.
    pub name: String,
    /// The names of its policies.
    pub policies: Vec<String>,
    /// SHA-256 of its secret, hex.
    pub secret_sha256: String,
    /// When it was made (RFC 3339).
    pub created: String,
}

/// What a caller holding a token (not the management token) may do.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Grants {
    /// The token's id.
    #[serde(default)]
    pub id: String,
    /// The token's name, for messages.
    pub token: String,
    /// Every rule of its policies.
    pub rules: Vec<AclRule>,
    /// Every capability of its policies.
    pub capabilities: BTreeSet<Capability>,
}

impl Grants {
    /// The grants of `token` under `policies` (unknown policy names give nothing).
    pub fn of<'a>(token: &AclToken, policies: impl Fn(&str) -> Option<&'a AclPolicy>) -> Self {
        let mut grants = Self {
            id: token.id.clone(),
            token: token.name.clone(),
            ..Self::default()
        };
        for policy in token.policies.iter().filter_map(|name| policies(name)) {
            grants.rules.extend(policy.rules.iter().cloned());
            grants
                .capabilities
                .extend(policy.capabilities.iter().copied());
        }
        grants
    }

    /// The highest access any rule gives on `path` (an app or group id).
    pub fn access(&self, path: &str) -> Option<Access> {
        self.rules
            .iter()
            .filter(|rule| covers(&rule.path, path))
            .map(|rule| rule.access)
            .max()
    }

    /// True if the grants allow `needed` on `path`.
    pub fn allows(&self, path: &str, needed: Access) -> bool {
        self.access(path).is_some_and(|access| access >= needed)
    }

    /// True if a rule on `/**` gives at least `needed`: the cluster-wide resources (event
    /// streams, agents, gitops repos).
    pub fn allows_everything(&self, needed: Access) -> bool {
        self.rules
            .iter()
            .any(|rule| rule.path == "/**" && rule.access >= needed)
    }

    /// Why these grants may not write `app`: the first capability it needs that they lack.
    pub fn missing_capability(&self, app: &App) -> Option<(Capability, &'static str)> {
        needed_capabilities(app)
            .into_iter()
            .find(|(capability, _)| !self.capabilities.contains(capability))
    }
}

/// True if the rule path `pattern` covers the id `path`.
pub fn covers(pattern: &str, path: &str) -> bool {
    let path = path.trim_end_matches('/');
    if let Some(base) = pattern.strip_suffix("/**") {
        return base.is_empty()
            || path == base
            || path
                .strip_prefix(base)
                .is_some_and(|rest| rest.starts_with('/'));
    }
    if let Some(base) = pattern.strip_suffix("/*") {
        return path
            .strip_prefix(base)
            .and_then(|rest| rest.strip_prefix('/'))
            .is_some_and(|name| !name.is_empty() && !name.contains('/'));
    }
    pattern == path
}

/// The capabilities `app` needs, each with the field that needs it.
pub fn needed_capabilities(app: &App) -> Vec<(Capability, &'static str)> {
    let spec = &app.spec;
    let mut needed = Vec::new();
    let docker = spec.container.as_ref().and_then(|c| c.docker.as_ref());
    if docker.is_some_and(|docker| docker.privileged) {
        needed.push((Capability::Privileged, "container.docker.privileged"));
    }
    let host_volume = spec
        .container
        .iter()
        .flat_map(|c| &c.volumes)
        .any(|volume| {
            volume
                .get("hostPath")
                .and_then(Value::as_str)
                .is_some_and(|path| path.starts_with('/'))
        });
    if host_volume {
        needed.push((Capability::HostVolumes, "container.volumes.hostPath"));
    }
    if docker.is_some() && spec.networks.iter().any(|n| n.mode == NetworkMode::Host) {
        needed.push((Capability::HostNetwork, "networks.mode"));
    }
    let widening = docker
        .into_iter()
        .flat_map(|d| &d.parameters)
        .any(|p| WIDENING_PARAMETERS.contains(&p.key.trim_start_matches('-')));
    if widening {
        needed.push((Capability::DockerParameters, "container.docker.parameters"));
    }
    if runs_as_root(app) {
        needed.push((Capability::Root, "user"));
    }
    needed
}

/// True if `app`'s tasks run as root: `user` root or 0, or (docker parameter `user` aside)
/// no user and not marked unprivileged.
pub fn runs_as_root(app: &App) -> bool {
    let docker_user = app
        .spec
        .container
        .as_ref()
        .and_then(|c| c.docker.as_ref())
        .into_iter()
        .flat_map(|d| &d.parameters)
        .find(|p| matches!(p.key.trim_start_matches('-'), "user" | "u"))
        .map(|p| p.value.as_str());
    match app.spec.user.as_deref().or(docker_user) {
        Some(user) => matches!(user.split(':').next(), Some("root" | "0")),
        None => !app.unprivileged,
    }
}

/// A policy read from the API's JSON: `{"name", "rules": [{"path", "access"}],
/// "capabilities": [...]}`. Every problem is a violation naming its field.
pub fn policy_from_json(body: &Map<String, Value>) -> Result<AclPolicy, Vec<Violation>> {
    let mut violations = Vec::new();
    let name = match body.get("name") {
        Some(Value::String(name)) if valid_name(name) => name.clone(),
        Some(Value::String(_)) => {
            violations.push(Violation::new("/name", NAME_RULE));
            String::new()
        }
        _ => {
            violations.push(Violation::new("/name", "error.path.missing"));
            String::new()
        }
    };
    let mut rules = Vec::new();
    match body.get("rules") {
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                match rule_from_json(item) {
                    Ok(rule) => rules.push(rule),
                    Err((field, error)) => {
                        violations.push(Violation::new(format!("/rules({i}){field}"), error));
                    }
                }
            }
        }
        None => {}
        Some(_) => violations.push(Violation::new("/rules", "error.expected.jsarray")),
    }
    let mut capabilities = BTreeSet::new();
    match body.get("capabilities") {
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                match item.as_str().and_then(Capability::parse) {
                    Some(capability) => {
                        capabilities.insert(capability);
                    }
                    None => violations.push(Violation::new(
                        format!("/capabilities({i})"),
                        format!("not a capability: one of {}", capability_names()),
                    )),
                }
            }
        }
        None | Some(Value::Null) => {}
        Some(_) => violations.push(Violation::new("/capabilities", "error.expected.jsarray")),
    }
    if rules.is_empty() && capabilities.is_empty() && violations.is_empty() {
        violations.push(Violation::new(
            "/rules",
            "a policy needs at least one rule or capability",
        ));
    }
    if violations.is_empty() {
        Ok(AclPolicy {
            name,
            rules,
            capabilities,
        })
    } else {
        Err(violations)
    }
}

fn rule_from_json(item: &Value) -> Result<AclRule, (&'static str, String)> {
    let path = match item.get("path") {
        Some(Value::String(path)) => path.clone(),
        _ => return Err(("/path", "error.path.missing".to_owned())),
    };
    if !valid_pattern(&path) {
        return Err((
            "/path",
            "a path is an absolute id, optionally ending in /* or /**".to_owned(),
        ));
    }
    let access = match item.get("access").and_then(Value::as_str) {
        Some("read") => Access::Read,
        Some("write") => Access::Write,
        Some("admin") => Access::Admin,
        _ => return Err(("/access", "one of read, write, admin".to_owned())),
    };
    Ok(AclRule { path, access })
}

const NAME_RULE: &str = "1 to 64 characters of a-z, 0-9, - and _";

/// True for a policy or token name: 1 to 64 of `[a-z0-9_-]`.
pub fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// True for a rule path: `/**`, or an absolute id whose segments are names, the last may be
/// `*` or `**`.
fn valid_pattern(pattern: &str) -> bool {
    if pattern == "/**" {
        return true;
    }
    let Some(rest) = pattern.strip_prefix('/') else {
        return false;
    };
    let segments: Vec<&str> = rest.split('/').collect();
    let last = segments.len() - 1;
    segments.iter().enumerate().all(|(i, segment)| {
        (i == last && (*segment == "*" || *segment == "**"))
            || (!segment.is_empty()
                && segment
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_'))
    })
}

fn capability_names() -> String {
    Capability::ALL.map(Capability::name).join(", ")
}

/// A violation for the first `orch.*` label in a client's JSON (app or group definitions,
/// at any depth), in `labels` or as a Docker `label` parameter: those labels are orch's own
/// (gitops and the agent write them) and never taken from clients.
pub fn reserved_label(value: &Value) -> Option<Violation> {
    fn docker_label(parameter: &Value) -> Option<&str> {
        let key = parameter.get("key")?.as_str()?;
        let value = parameter.get("value")?.as_str()?;
        (matches!(key, "label" | "l") && value.trim_start().starts_with("orch.")).then_some(value)
    }
    fn walk(value: &Value, at: &str) -> Option<Violation> {
        match value {
            Value::Object(object) => object.iter().find_map(|(key, value)| {
                let here = format!("{at}/{key}");
                if key == "parameters" {
                    if let Some((i, label)) = value.as_array().and_then(|parameters| {
                        parameters
                            .iter()
                            .enumerate()
                            .find_map(|(i, p)| docker_label(p).map(|label| (i, label)))
                    }) {
                        return Some(Violation::new(
                            format!("{here}({i})"),
                            format!("label '{label}': orch.* labels are reserved for orch"),
                        ));
                    }
                }
                if key == "labels" {
                    if let Some(label) = value
                        .as_object()
                        .and_then(|labels| labels.keys().find(|k| k.starts_with("orch.")))
                    {
                        return Some(Violation::new(
                            here,
                            format!("label '{label}': orch.* labels are reserved for orch"),
                        ));
                    }
                }
                walk(value, &here)
            }),
            Value::Array(items) => items
                .iter()
                .enumerate()
                .find_map(|(i, item)| walk(item, &format!("{at}({i})"))),
            _ => None,
        }
    }
    walk(value, "")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{AppId, Timestamp};
    use serde_json::json;

    fn app(definition: Value) -> App {
        let id = AppId::parse("/team-a/web").expect("id");
        let definition = definition.as_object().cloned().unwrap_or_default();
        App::from_json(id, Timestamp::from_millis(1), &definition).expect("valid")
    }

    #[test]
    fn patterns_cover_their_ids() {
        assert!(covers("/**", "/anything/at/all"));
        assert!(covers("/team-a/**", "/team-a"));
        assert!(covers("/team-a/**", "/team-a/web"));
        assert!(covers("/team-a/**", "/team-a/x/y"));
        assert!(!covers("/team-a/**", "/team-ab/web"));
        assert!(!covers("/team-a/**", "/"));
        assert!(covers("/team-a/*", "/team-a/web"));
        assert!(!covers("/team-a/*", "/team-a/x/y"));
        assert!(!covers("/team-a/*", "/team-a"));
        assert!(covers("/team-a/web", "/team-a/web"));
        assert!(!covers("/team-a/web", "/team-a/web2"));
    }

    #[test]
    fn policies_are_read_with_every_problem_named() {
        let policy = policy_from_json(
            json!({"name": "team-a", "rules": [{"path": "/team-a/**", "access": "write"}],
                   "capabilities": ["privileged"]})
            .as_object()
            .expect("object"),
        )
        .expect("valid");
        assert_eq!(policy.rules[0].access, Access::Write);
        assert!(policy.capabilities.contains(&Capability::Privileged));
        let errors = policy_from_json(
            json!({"name": "Team A", "rules": [{"path": "team-a", "access": "all"},
                   {"path": "/a/**/b", "access": "read"}], "capabilities": ["sudo"]})
            .as_object()
            .expect("object"),
        )
        .expect_err("invalid");
        let paths: Vec<&str> = errors.iter().map(|v| v.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "/name",
                "/rules(0)/path",
                "/rules(1)/path",
                "/capabilities(0)"
            ]
        );
    }

    #[test]
    fn grants_take_the_highest_access_of_their_rules() {
        let grants = Grants {
            id: "t1".into(),
            token: "t".into(),
            rules: vec![
                AclRule {
                    path: "/**".into(),
                    access: Access::Read,
                },
                AclRule {
                    path: "/team-a/**".into(),
                    access: Access::Write,
                },
            ],
            capabilities: BTreeSet::new(),
        };
        assert!(grants.allows("/team-a/web", Access::Write));
        assert!(!grants.allows("/team-b/web", Access::Write));
        assert!(grants.allows("/team-b/web", Access::Read));
        assert!(grants.allows_everything(Access::Read));
        assert!(!grants.allows_everything(Access::Admin));
    }

    #[test]
    fn apps_need_capabilities_for_what_widens_their_reach() {
        let plain = app(json!({"cmd": "sleep 1", "user": "nobody"}));
        assert!(needed_capabilities(&plain).is_empty());
        let mut unmarked = app(json!({"cmd": "sleep 1"}));
        assert_eq!(needed_capabilities(&unmarked)[0].0, Capability::Root);
        unmarked.unprivileged = true;
        assert!(needed_capabilities(&unmarked).is_empty());
        let wide = app(json!({
            "user": "root",
            "container": {"type": "DOCKER",
                "docker": {"image": "x", "privileged": true, "network": "HOST",
                           "parameters": [{"key": "cap-add", "value": "SYS_ADMIN"}]},
                "volumes": [{"containerPath": "/h", "hostPath": "/", "mode": "RW"}]}
        }));
        let needed: Vec<Capability> = needed_capabilities(&wide)
            .into_iter()
            .map(|c| c.0)
            .collect();
        assert_eq!(needed, Capability::ALL);
    }

    #[test]
    fn orch_labels_are_found_at_any_depth() {
        assert!(reserved_label(&json!({"labels": {"HAPROXY_GROUP": "x"}})).is_none());
        let found = reserved_label(&json!({"labels": {"orch.gitops/repo": "x"}})).expect("found");
        assert_eq!(found.path, "/labels");
        let parameter = json!({"container": {"docker": {"parameters": [
            {"key": "memory", "value": "1g"},
            {"key": "label", "value": "orch.sandbox=/etc/cron.d"}]}}});
        let found = reserved_label(&parameter).expect("found");
        assert_eq!(found.path, "/container/docker/parameters(1)");
        let harmless = json!({"container": {"docker": {"parameters": [
            {"key": "label", "value": "team=orch.web"}]}}});
        assert!(reserved_label(&harmless).is_none());
        let nested = reserved_label(&json!({"apps": [{"id": "a"}, {"labels": {"orch.x": "1"}}]}))
            .expect("found");
        assert_eq!(nested.path, "/apps(1)/labels");
    }
}

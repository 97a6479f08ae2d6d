//! A stored Marathon app: its id, versions and typed definition.
//!
//! Client JSON becomes an [`App`] through [`App::from_json`] (normalise, read, validate; see
//! [`AppSpec::from_json`]). Service ports are assigned where the whole cluster is known
//! (`ClusterState::apply`) through [`App::with_service_ports`] and [`App::updated`].

use super::app_validation::Violation;
use super::ports::{assign_service_ports, PortsExhausted};
use super::{AppId, AppSpec, Timestamp};
use serde_json::{Map, Value};
use std::collections::BTreeSet;

/// A Marathon app as stored in the cluster state.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct App {
    /// Canonical absolute id.
    pub id: AppId,
    /// Timestamp of the latest change of any kind.
    pub version: Timestamp,
    /// When the configuration and the instance count last changed.
    pub version_info: VersionInfo,
    /// The definition, normalised and with Marathon's defaults.
    pub spec: AppSpec,
    /// Written by a token without the `root` capability and without a `user`: its tasks run
    /// as the agent's unprivileged user. Kept by updates; set only on apply (never by clients).
    #[serde(default)]
    pub unprivileged: bool,
}

/// Marathon's `versionInfo`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VersionInfo {
    /// Updated on scale-only changes and on config changes.
    pub last_scaling_at: Timestamp,
    /// Updated on config changes and restarts.
    pub last_config_change_at: Timestamp,
}

/// Why an app definition cannot be stored.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum AppError {
    /// The definition breaks Marathon's rules (422 with these details).
    #[error("Object is not valid")]
    Invalid {
        /// Each failing field.
        violations: Vec<Violation>,
    },
    /// No service port is left to assign.
    #[error(transparent)]
    PortsExhausted(#[from] PortsExhausted),
}

impl From<Vec<Violation>> for AppError {
    fn from(violations: Vec<Violation>) -> Self {
        Self::Invalid { violations }
    }
}

/// Keys whose replacement by an update makes a canonical key of the stored definition
/// obsolete (a legacy field in a partial update wins over the stored canonical one).
const REPLACES: [(&str, &str); 3] = [
    ("ports", "portDefinitions"),
    ("uris", "fetch"),
    ("ipAddress", "networks"),
];

impl App {
    /// A new app created at `version` from a typed definition.
    pub fn new(id: AppId, version: Timestamp, spec: AppSpec) -> Self {
        Self {
            id,
            version,
            version_info: VersionInfo {
                last_scaling_at: version,
                last_config_change_at: version,
            },
            spec,
            unprivileged: false,
        }
    }

    /// A new app created at `version` from a client's definition (whose `id` key is ignored).
    /// Service ports stay 0 until [`App::with_service_ports`].
    pub fn from_json(
        id: AppId,
        version: Timestamp,
        definition: &Map<String, Value>,
    ) -> Result<Self, AppError> {
        let spec = AppSpec::from_json(&id, definition)?;
        Ok(Self::new(id, version, spec))
    }

    /// This app with its 0 service ports assigned (see [`assign_service_ports`]).
    pub fn with_service_ports(
        mut self,
        previous: Option<&AppSpec>,
        in_use: impl FnOnce() -> BTreeSet<u16>,
    ) -> Result<Self, PortsExhausted> {
        assign_service_ports(&mut self.spec, previous, in_use)?;
        Ok(self)
    }

    /// This app updated at `version`. With `partial`, `patch`'s top-level keys replace ours
    /// (Marathon's AppUpdate); otherwise `patch` is the whole new definition. Either way the
    /// result is validated and its 0 service ports are assigned, reusing ours first. Version
    /// info moves as Marathon moves it: a change of `instances` alone is a scaling change;
    /// anything else is a config change.
    pub fn updated(
        &self,
        version: Timestamp,
        patch: &Map<String, Value>,
        partial: bool,
        in_use: impl FnOnce() -> BTreeSet<u16>,
    ) -> Result<Self, AppError> {
        let definition = if partial {
            self.merged(patch)
        } else {
            patch.clone()
        };
        let mut spec = AppSpec::from_json(&self.id, &definition)?;
        assign_service_ports(&mut spec, Some(&self.spec), in_use)?;
        let config_changed = AppSpec {
            instances: self.spec.instances,
            ..spec.clone()
        } != self.spec;
        Ok(Self {
            id: self.id.clone(),
            version,
            version_info: VersionInfo {
                last_scaling_at: version,
                last_config_change_at: if config_changed {
                    version
                } else {
                    self.version_info.last_config_change_at
                },
            },
            spec,
            unprivileged: self.unprivileged,
        })
    }

    /// Our definition JSON with `patch`'s keys over it. A stored canonical field that a patch
    /// field replaces (legacy `ports` over `portDefinitions`, ...) or that no longer fits the
    /// networking (port definitions under container networking and the reverse) is dropped.
    fn merged(&self, patch: &Map<String, Value>) -> Map<String, Value> {
        let mut merged = self.spec.to_json();
        for (legacy, canonical) in REPLACES {
            if patch.contains_key(legacy) && !patch.contains_key(canonical) {
                merged.remove(canonical);
            }
        }
        let docker_network = patch
            .get("container")
            .and_then(|c| c.pointer("/docker/network"))
            .is_some_and(|n| !n.is_null());
        if docker_network && !patch.contains_key("networks") {
            merged.remove("networks");
        }
        merged.extend(patch.iter().map(|(k, v)| (k.clone(), v.clone())));
        let host = match merged.get("networks").and_then(Value::as_array) {
            Some(networks) => networks
                .iter()
                .all(|n| n.get("mode").and_then(Value::as_str) == Some("host")),
            None => !docker_network,
        };
        if !host && !patch.contains_key("portDefinitions") && !patch.contains_key("ports") {
            merged.remove("portDefinitions");
        }
        if host && !patch.contains_key("container") {
            if let Some(Value::Object(container)) = merged.get_mut("container") {
                container.remove("portMappings");
            }
        }
        merged
    }

    /// The Marathon JSON of this app: the definition plus `id`, `version` and `versionInfo`.
    pub fn to_json(&self) -> Map<String, Value> {
        let mut json = self.spec.to_json();
        json.insert("id".into(), Value::String(self.id.to_string()));
        json.insert("version".into(), Value::String(self.version.to_rfc3339()));
        json.insert(
            "versionInfo".into(),
            serde_json::json!({
                "lastScalingAt": self.version_info.last_scaling_at.to_rfc3339(),
                "lastConfigChangeAt": self.version_info.last_config_change_at.to_rfc3339(),
            }),
        );
        json
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap_or_default()
    }

    fn web(definition: Value) -> App {
        let id = AppId::parse("/web").expect("valid id");
        App::from_json(id, Timestamp::from_millis(1), &object(definition))
            .expect("valid")
            .with_service_ports(None, BTreeSet::new)
            .expect("ports left")
    }

    #[test]
    fn scaling_moves_only_last_scaling_at() {
        let app = web(json!({"cmd": "sleep 9", "instances": 1}));
        let scaled = app
            .updated(
                Timestamp::from_millis(2),
                &object(json!({"instances": 3})),
                true,
                BTreeSet::new,
            )
            .expect("valid");
        assert_eq!(
            scaled.version_info.last_scaling_at,
            Timestamp::from_millis(2)
        );
        assert_eq!(
            scaled.version_info.last_config_change_at,
            Timestamp::from_millis(1)
        );
        assert_eq!(scaled.spec.cmd.as_deref(), Some("sleep 9"));
        assert_eq!(scaled.spec.instances, 3);
        let changed = scaled
            .updated(
                Timestamp::from_millis(3),
                &object(json!({"cmd": "sleep 1"})),
                true,
                BTreeSet::new,
            )
            .expect("valid");
        assert_eq!(
            changed.version_info.last_config_change_at,
            Timestamp::from_millis(3)
        );
    }

    #[test]
    fn server_owned_fields_come_from_the_server() {
        let app = web(json!({"id": "/other", "version": "x", "cmd": "sleep 1"}));
        let json = app.to_json();
        assert_eq!(json.get("id"), Some(&json!("/web")));
        assert_eq!(
            json.get("version"),
            Some(&json!("1970-01-01T00:00:00.001Z"))
        );
    }

    #[test]
    fn service_ports_survive_updates() {
        let app = web(json!({"cmd": "sleep 9", "portDefinitions": [{"port": 0}, {"port": 0}]}));
        assert_eq!(app.spec.service_ports(), vec![10000, 10001]);
        let partial = app
            .updated(
                Timestamp::from_millis(2),
                &object(json!({"cpus": 2})),
                true,
                BTreeSet::new,
            )
            .expect("valid");
        assert_eq!(partial.spec.service_ports(), vec![10000, 10001]);
        // A full replacement with zeros gets the same ports back.
        let full = partial
            .updated(
                Timestamp::from_millis(3),
                &object(json!({"cmd": "sleep 9", "ports": [0, 0]})),
                false,
                || BTreeSet::from([10000, 10001, 10002]),
            )
            .expect("valid");
        assert_eq!(full.spec.service_ports(), vec![10000, 10001]);
    }

    #[test]
    fn partial_updates_can_switch_networking() {
        let app = web(json!({"cmd": "sleep 9"}));
        let bridged = app
            .updated(
                Timestamp::from_millis(2),
                &object(json!({
                    "container": {"docker": {"image": "nginx", "network": "BRIDGE",
                        "portMappings": [{"containerPort": 80}]}}
                })),
                true,
                BTreeSet::new,
            )
            .expect("valid");
        assert!(!bridged.spec.host_networking());
        let json = bridged.to_json();
        assert!(json.get("portDefinitions").is_none(), "{json:?}");
        assert_eq!(
            json["container"]["portMappings"],
            json!([{"containerPort": 80, "hostPort": 0, "servicePort": 10000, "protocol": "tcp"}])
        );
        let invalid = app.updated(
            Timestamp::from_millis(3),
            &object(json!({"cpus": "many"})),
            true,
            BTreeSet::new,
        );
        assert_eq!(
            invalid,
            Err(AppError::Invalid {
                violations: vec![Violation::new("/cpus", "error.expected.jsnumber")]
            })
        );
    }
}

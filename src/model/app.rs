//! A stored Marathon app definition.
//!
//! For now the definition is kept as the JSON object the client sent (fields Marathon would
//! default are not filled in yet), with the server-owned fields `id`, `version` and
//! `versionInfo` set by the leader.

use super::{AppId, Timestamp};
use serde_json::{Map, Value};

/// A Marathon app as stored in the cluster state.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct App {
    /// Canonical absolute id.
    pub id: AppId,
    /// Timestamp of the latest change of any kind.
    pub version: Timestamp,
    /// When the configuration and the instance count last changed.
    pub version_info: VersionInfo,
    /// The definition as given by the client, without the server-owned fields.
    pub definition: Map<String, Value>,
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

/// Fields the server owns; they are dropped from client input.
const SERVER_OWNED: [&str; 4] = ["id", "version", "versionInfo", "deployments"];

impl App {
    /// A new app created at `version` from a client's definition.
    pub fn new(id: AppId, version: Timestamp, mut definition: Map<String, Value>) -> Self {
        strip_server_owned(&mut definition);
        let version_info = VersionInfo {
            last_scaling_at: version,
            last_config_change_at: version,
        };
        Self {
            id,
            version,
            version_info,
            definition,
        }
    }

    /// This app updated at `version`: `patch`'s keys replace ours when `partial`, otherwise
    /// `patch` replaces the whole definition. Version info moves as Marathon moves it: a change
    /// of `instances` alone is a scaling change; anything else is a config change.
    pub fn updated(
        &self,
        version: Timestamp,
        mut patch: Map<String, Value>,
        partial: bool,
    ) -> Self {
        strip_server_owned(&mut patch);
        let definition = if partial {
            let mut merged = self.definition.clone();
            merged.extend(patch);
            merged
        } else {
            patch
        };
        let config_changed = without_instances(&definition) != without_instances(&self.definition);
        let version_info = VersionInfo {
            last_scaling_at: version,
            last_config_change_at: if config_changed {
                version
            } else {
                self.version_info.last_config_change_at
            },
        };
        Self {
            id: self.id.clone(),
            version,
            version_info,
            definition,
        }
    }

    /// The Marathon JSON of this app: the definition plus `id`, `version` and `versionInfo`.
    pub fn to_json(&self) -> Map<String, Value> {
        let mut json = self.definition.clone();
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

fn strip_server_owned(definition: &mut Map<String, Value>) {
    for key in SERVER_OWNED {
        definition.remove(key);
    }
}

fn without_instances(definition: &Map<String, Value>) -> Vec<(&String, &Value)> {
    definition
        .iter()
        .filter(|(key, _)| key.as_str() != "instances")
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn scaling_moves_only_last_scaling_at() {
        let id = AppId::parse("/web").expect("valid id");
        let app = App::new(
            id,
            Timestamp::from_millis(1),
            object(json!({"cmd": "sleep 9", "instances": 1})),
        );
        let scaled = app.updated(
            Timestamp::from_millis(2),
            object(json!({"instances": 3})),
            true,
        );
        assert_eq!(
            scaled.version_info.last_scaling_at,
            Timestamp::from_millis(2)
        );
        assert_eq!(
            scaled.version_info.last_config_change_at,
            Timestamp::from_millis(1)
        );
        assert_eq!(scaled.definition.get("cmd"), Some(&json!("sleep 9")));
        let changed = scaled.updated(
            Timestamp::from_millis(3),
            object(json!({"cmd": "sleep 1"})),
            true,
        );
        assert_eq!(
            changed.version_info.last_config_change_at,
            Timestamp::from_millis(3)
        );
    }

    #[test]
    fn server_owned_fields_come_from_the_server() {
        let id = AppId::parse("/web").expect("valid id");
        let app = App::new(
            id,
            Timestamp::from_millis(5),
            object(json!({"id": "/other", "version": "x"})),
        );
        let json = app.to_json();
        assert_eq!(json.get("id"), Some(&json!("/web")));
        assert_eq!(
            json.get("version"),
            Some(&json!("1970-01-01T00:00:00.005Z"))
        );
    }
}

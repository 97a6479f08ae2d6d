//! A Marathon app definition as typed data: Marathon's fields with Marathon's defaults.
//!
//! [`AppSpec::from_json`] is the only way in from client JSON: legacy forms are normalised
//! first ([`super::app_normalize`]), then the JSON is read into these types (a wrong type gives
//! a violation naming the field, e.g. `/cpus: error.expected.jsnumber`), then the rules of
//! [`super::app_validation`] are checked. [`AppSpec::to_json`] writes Marathon's canonical
//! output (never the legacy fields; `portDefinitions` only under host networking,
//! `container.portMappings` only under container networking).
//!
//! The serde form of [`AppSpec`] is also how the cluster state stores it.

use super::app_normalize::normalize;
use super::app_validation::{type_violations, validate, Violation};
use super::health::{HealthCheck, ReadinessCheck};
use super::{AppId, Constraint};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// A Marathon app definition without the server-owned fields (`id`, `version`, `versionInfo`).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct AppSpec {
    /// Shell command (`sh -c`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cmd: Option<String>,
    /// Exec form, exclusive with `cmd`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// OS user on the agent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Environment: strings, or secret references kept as given (`{"secret": "name"}`).
    pub env: BTreeMap<String, EnvValue>,
    /// Desired number of tasks.
    pub instances: i64,
    /// CPU shares per task.
    pub cpus: f64,
    /// Memory per task, MiB.
    pub mem: f64,
    /// Disk per task, MiB.
    pub disk: f64,
    /// GPUs per task.
    pub gpus: i64,
    /// Executor (`""` = default).
    pub executor: String,
    /// Placement constraints.
    #[serde(with = "constraint_list")]
    pub constraints: Vec<Constraint>,
    /// Roles of resources the app may use (empty = any).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub accepted_resource_roles: Vec<String>,
    /// Artifacts fetched into the sandbox.
    pub fetch: Vec<Fetch>,
    /// Ports under host networking; `port` is the service port.
    pub port_definitions: Vec<PortDefinition>,
    /// Host ports must equal the port definitions' ports.
    pub require_ports: bool,
    /// The container, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<Container>,
    /// Networks the tasks join.
    pub networks: Vec<Network>,
    /// Health checks.
    pub health_checks: Vec<HealthCheck>,
    /// Readiness checks (at most one).
    pub readiness_checks: Vec<ReadinessCheck>,
    /// Apps or groups that must be deployed first.
    pub dependencies: Vec<AppId>,
    /// Rolling-upgrade capacities.
    pub upgrade_strategy: UpgradeStrategy,
    /// First launch delay after a failure.
    pub backoff_seconds: i64,
    /// Growth of the launch delay per failure.
    pub backoff_factor: f64,
    /// Cap of the launch delay.
    pub max_launch_delay_seconds: i64,
    /// SIGTERM to SIGKILL window.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_kill_grace_period_seconds: Option<i64>,
    /// Which tasks go first when scaling down.
    pub kill_selection: KillSelection,
    /// What to do with tasks on unreachable agents.
    pub unreachable_strategy: UnreachableStrategy,
    /// Free-form labels (marathon-lb reads `HAPROXY_*`).
    pub labels: BTreeMap<String, String>,
    /// Secrets by name.
    pub secrets: BTreeMap<String, Secret>,
    /// Allocate a TTY.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tty: Option<bool>,
    /// Deprecated residency settings, kept as given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub residency: Option<Value>,
}

impl Default for AppSpec {
    fn default() -> Self {
        Self {
            cmd: None,
            args: Vec::new(),
            user: None,
            env: BTreeMap::new(),
            instances: 1,
            cpus: 1.0,
            mem: 128.0,
            disk: 0.0,
            gpus: 0,
            executor: String::new(),
            constraints: Vec::new(),
            accepted_resource_roles: Vec::new(),
            fetch: Vec::new(),
            port_definitions: Vec::new(),
            require_ports: false,
            container: None,
            networks: vec![Network {
                mode: NetworkMode::Host,
                ..Network::default()
            }],
            health_checks: Vec::new(),
            readiness_checks: Vec::new(),
            dependencies: Vec::new(),
            upgrade_strategy: UpgradeStrategy::default(),
            backoff_seconds: 1,
            backoff_factor: 1.15,
            max_launch_delay_seconds: 300,
            task_kill_grace_period_seconds: None,
            kill_selection: KillSelection::YoungestFirst,
            unreachable_strategy: UnreachableStrategy::default(),
            labels: BTreeMap::new(),
            secrets: BTreeMap::new(),
            tty: None,
            residency: None,
        }
    }
}

/// An environment variable's value.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
pub enum EnvValue {
    /// A plain value.
    Text(String),
    /// A reference to a secret, kept as given (`{"secret": "name"}`).
    Secret(Map<String, Value>),
}

/// One artifact of `fetch`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Fetch {
    /// Where to fetch from.
    pub uri: String,
    /// Unpack archives.
    #[serde(default = "yes")]
    pub extract: bool,
    /// Mark executable.
    #[serde(default)]
    pub executable: bool,
    /// Use the fetcher cache.
    #[serde(default)]
    pub cache: bool,
    /// Destination path in the sandbox.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dest_path: Option<String>,
}

fn yes() -> bool {
    true
}

/// One port under host networking.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct PortDefinition {
    /// Service port (0 on input = assign one).
    pub port: u16,
    /// `tcp`, `udp` or `udp,tcp`.
    pub protocol: String,
    /// Port name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Labels for discovery.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

impl Default for PortDefinition {
    fn default() -> Self {
        Self {
            port: 0,
            protocol: "tcp".into(),
            name: None,
            labels: BTreeMap::new(),
        }
    }
}

/// One port under container networking.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct PortMapping {
    /// Port inside the container (0 = the allocated host port).
    pub container_port: u16,
    /// Host port (0 = any from the offer, absent = none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_port: Option<u16>,
    /// Service port (0 on input = assign one).
    pub service_port: u16,
    /// `tcp`, `udp` or `udp,tcp`.
    pub protocol: String,
    /// Port name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Labels for discovery.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Container networks this mapping applies to.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub network_names: Vec<String>,
}

impl Default for PortMapping {
    fn default() -> Self {
        Self {
            container_port: 0,
            host_port: None,
            service_port: 0,
            protocol: "tcp".into(),
            name: None,
            labels: BTreeMap::new(),
            network_names: Vec::new(),
        }
    }
}

/// Which containerizer runs the task.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ContainerType {
    /// The Docker containerizer.
    #[default]
    #[serde(rename = "DOCKER")]
    Docker,
    /// The Mesos (universal) containerizer.
    #[serde(rename = "MESOS")]
    Mesos,
}

/// An app's `container`.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Container {
    /// The containerizer.
    #[serde(rename = "type")]
    pub kind: ContainerType,
    /// Docker settings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub docker: Option<Docker>,
    /// Ports under container networking.
    pub port_mappings: Vec<PortMapping>,
    /// Volumes, kept as given (host, persistent, external and secret shapes).
    pub volumes: Vec<Value>,
}

/// `container.docker`.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Docker {
    /// The image (required).
    pub image: String,
    /// Run privileged.
    pub privileged: bool,
    /// Extra `docker run` parameters.
    pub parameters: Vec<DockerParameter>,
    /// Always pull the image.
    pub force_pull_image: bool,
}

/// One `--key=value` for `docker run`.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct DockerParameter {
    /// Option name without dashes.
    pub key: String,
    /// Its value.
    pub value: String,
}

/// How tasks are networked.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    serde::Serialize,
    serde::Deserialize,
)]
pub enum NetworkMode {
    /// The agent's network.
    #[serde(rename = "host")]
    Host,
    /// A named container network (the default mode of a `networks` entry).
    #[default]
    #[serde(rename = "container")]
    Container,
    /// The Docker/Mesos bridge.
    #[serde(rename = "container/bridge")]
    Bridge,
}

/// One entry of `networks`.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Network {
    /// The mode.
    pub mode: NetworkMode,
    /// The container network's name (container mode).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Labels passed to the network.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// Rolling-upgrade capacities, fractions of `instances`.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct UpgradeStrategy {
    /// Healthy tasks kept during an upgrade.
    pub minimum_health_capacity: f64,
    /// Extra tasks allowed during an upgrade.
    pub maximum_over_capacity: f64,
}

impl Default for UpgradeStrategy {
    fn default() -> Self {
        Self {
            minimum_health_capacity: 1.0,
            maximum_over_capacity: 1.0,
        }
    }
}

/// Which tasks are killed first when scaling down.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum KillSelection {
    /// The newest first.
    #[default]
    YoungestFirst,
    /// The oldest first.
    OldestFirst,
}

/// What happens to tasks on an unreachable agent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
pub enum UnreachableStrategy {
    /// Replace them after `inactive_after_seconds`, forget them after `expunge_after_seconds`.
    Enabled(UnreachableEnabled),
    /// Wait forever (`"disabled"`).
    Disabled(Disabled),
}

impl Default for UnreachableStrategy {
    fn default() -> Self {
        Self::Enabled(UnreachableEnabled::default())
    }
}

/// The object form of [`UnreachableStrategy`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct UnreachableEnabled {
    /// Seconds unreachable before a replacement starts.
    pub inactive_after_seconds: i64,
    /// Seconds unreachable before the task is forgotten.
    pub expunge_after_seconds: i64,
}

/// The string `"disabled"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Disabled {
    /// `"disabled"`.
    #[serde(rename = "disabled")]
    Disabled,
}

/// One entry of `secrets`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Secret {
    /// Where the secret store keeps it.
    pub source: String,
}

/// Constraints in Marathon's array form (`[["hostname", "UNIQUE"]]`), parsed with
/// [`Constraint::parse`].
mod constraint_list {
    use super::Constraint;
    use serde::{Deserialize, Deserializer, Serializer};
    use serde_json::Value;

    pub fn serialize<S: Serializer>(list: &[Constraint], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(list.iter().map(Constraint::to_json))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Constraint>, D::Error> {
        Vec::<Value>::deserialize(d)?
            .iter()
            .map(|entry| Constraint::parse(entry).map_err(serde::de::Error::custom))
            .collect()
    }
}

/// The path of the first list in `given` where `read` (the same definition as read) has an
/// object.
fn list_for_object(given: &Value, read: &Value, at: String) -> Option<String> {
    match (given, read) {
        (Value::Array(_), Value::Object(_)) => Some(if at.is_empty() { "/".into() } else { at }),
        (Value::Object(given), Value::Object(read)) => given.iter().find_map(|(key, value)| {
            let inner = read.get(key)?;
            list_for_object(value, inner, format!("{at}/{key}"))
        }),
        (Value::Array(given), Value::Array(read)) => given
            .iter()
            .zip(read)
            .enumerate()
            .find_map(|(i, (value, inner))| list_for_object(value, inner, format!("{at}({i})"))),
        _ => None,
    }
}

impl AppSpec {
    /// Reads a client's definition of app `id`: normalises legacy forms, reads the fields
    /// (defaults for absent ones) and validates. The `id`, `version`, `versionInfo` and other
    /// output-only keys in `definition` are ignored; unknown keys too.
    pub fn from_json(id: &AppId, definition: &Map<String, Value>) -> Result<Self, Vec<Violation>> {
        let normalized = normalize(id, definition)?;
        let spec: Self = serde_json::from_value(Value::Object(normalized.clone()))
            .map_err(|_| type_violations(&normalized))?;
        // serde reads a struct from a list too (positionally); Marathon does not.
        if let Ok(read) = serde_json::to_value(&spec) {
            let given = Value::Object(normalized.clone());
            if let Some(path) = list_for_object(&given, &read, String::new()) {
                return Err(vec![Violation::new(path, "error.expected.jsobject")]);
            }
        }
        let spec = spec.resolved();
        let mut violations = validate(&spec);
        if normalized.get("acceptedResourceRoles") == Some(&Value::Array(Vec::new())) {
            violations.push(Violation::new(
                "/acceptedResourceRoles",
                "must not be empty",
            ));
        }
        if violations.is_empty() {
            Ok(spec)
        } else {
            Err(violations)
        }
    }

    /// Fills in what depends on other fields: health checks without a port get `portIndex`
    /// 0 when the app has ports, HTTP checks get path `/`.
    fn resolved(mut self) -> Self {
        let has_ports = self.port_count() > 0;
        for check in &mut self.health_checks {
            if check.protocol.uses_port()
                && check.port.is_none()
                && check.port_index.is_none()
                && has_ports
            {
                check.port_index = Some(0);
            }
            if check.protocol.is_http() && check.path.is_none() {
                check.path = Some("/".into());
            }
        }
        self
    }

    /// Marathon's JSON of this definition (without `id`, `version` and `versionInfo`).
    pub fn to_json(&self) -> Map<String, Value> {
        let mut json = match serde_json::to_value(self) {
            Ok(Value::Object(json)) => json,
            _ => Map::new(),
        };
        if self.host_networking() {
            if let Some(Value::Object(container)) = json.get_mut("container") {
                container.remove("portMappings");
            }
        } else {
            json.remove("portDefinitions");
        }
        json
    }

    /// True when the tasks use the agent's network (`networks: [{"mode": "host"}]`).
    pub fn host_networking(&self) -> bool {
        self.networks
            .iter()
            .all(|network| network.mode == NetworkMode::Host)
    }

    /// The port mappings in effect (none under host networking).
    pub fn port_mappings(&self) -> &[PortMapping] {
        match &self.container {
            Some(container) if !self.host_networking() => &container.port_mappings,
            _ => &[],
        }
    }

    /// How many ports each task gets: port definitions under host networking, port mappings
    /// otherwise.
    pub fn port_count(&self) -> usize {
        if self.host_networking() {
            self.port_definitions.len()
        } else {
            self.port_mappings().len()
        }
    }

    /// The names of the ports in order (`None` for unnamed ones).
    pub fn port_names(&self) -> Vec<Option<&str>> {
        if self.host_networking() {
            self.port_definitions
                .iter()
                .map(|p| p.name.as_deref())
                .collect()
        } else {
            self.port_mappings()
                .iter()
                .map(|p| p.name.as_deref())
                .collect()
        }
    }

    /// The service ports in order (0 where none is assigned yet).
    pub fn service_ports(&self) -> Vec<u16> {
        if self.host_networking() {
            self.port_definitions.iter().map(|p| p.port).collect()
        } else {
            self.port_mappings()
                .iter()
                .map(|p| p.service_port)
                .collect()
        }
    }

    /// Mutable service ports in order, for assignment.
    pub(super) fn service_ports_mut(&mut self) -> Vec<&mut u16> {
        if self.host_networking() {
            self.port_definitions
                .iter_mut()
                .map(|p| &mut p.port)
                .collect()
        } else {
            match &mut self.container {
                Some(container) => container
                    .port_mappings
                    .iter_mut()
                    .map(|p| &mut p.service_port)
                    .collect(),
                None => Vec::new(),
            }
        }
    }

    /// The health checks, with `portIndex` and `path` resolved at creation.
    pub fn health_checks(&self) -> &[HealthCheck] {
        &self.health_checks
    }

    /// The Docker image, if the app runs one.
    pub fn docker_image(&self) -> Option<&str> {
        self.container
            .as_ref()
            .and_then(|c| c.docker.as_ref())
            .map(|d| d.image.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(definition: Value) -> Result<AppSpec, Vec<Violation>> {
        let id = AppId::parse("/prod/web").expect("valid id");
        AppSpec::from_json(&id, definition.as_object().expect("object"))
    }

    fn violations(definition: Value) -> Vec<(String, Vec<String>)> {
        read(definition)
            .expect_err("invalid")
            .into_iter()
            .map(|v| (v.path, v.errors))
            .collect()
    }

    fn has(definition: Value, path: &str, error: &str) {
        let found = violations(definition);
        assert!(
            found
                .iter()
                .any(|(p, errors)| p == path && errors.iter().any(|e| e.starts_with(error))),
            "expected {path}: {error} in {found:?}"
        );
    }

    #[test]
    fn absent_fields_take_marathon_defaults() {
        let json = read(json!({"cmd": "sleep 1"})).expect("valid").to_json();
        assert_eq!(
            Value::Object(json),
            json!({
                "cmd": "sleep 1", "env": {}, "instances": 1, "cpus": 1.0, "mem": 128.0,
                "disk": 0.0, "gpus": 0, "executor": "", "constraints": [], "fetch": [],
                "portDefinitions": [{"port": 0, "protocol": "tcp", "name": "default"}],
                "requirePorts": false, "networks": [{"mode": "host"}], "healthChecks": [],
                "readinessChecks": [], "dependencies": [],
                "upgradeStrategy": {"minimumHealthCapacity": 1.0, "maximumOverCapacity": 1.0},
                "backoffSeconds": 1, "backoffFactor": 1.15, "maxLaunchDelaySeconds": 300,
                "killSelection": "YOUNGEST_FIRST",
                "unreachableStrategy": {"inactiveAfterSeconds": 0, "expungeAfterSeconds": 0},
                "labels": {}, "secrets": {},
            })
        );
    }

    #[test]
    fn health_checks_get_defaults_and_port_index() {
        let spec = read(json!({
            "cmd": "serve", "ports": [0],
            "healthChecks": [{"protocol": "HTTP"}, {"protocol": "COMMAND", "command": {"value": "true"}}],
        }))
        .expect("valid");
        let json = Value::Object(spec.to_json());
        assert_eq!(
            json["healthChecks"][0],
            json!({"protocol": "HTTP", "path": "/", "portIndex": 0, "gracePeriodSeconds": 300,
                   "intervalSeconds": 60, "timeoutSeconds": 20, "maxConsecutiveFailures": 3,
                   "delaySeconds": 15, "ignoreHttp1xx": false, "ipProtocol": "IPv4"})
        );
        assert!(json["healthChecks"][1].get("portIndex").is_none());
        assert_eq!(
            spec.health_checks()[0].target(),
            crate::model::HealthTarget::PortIndex(0)
        );
        let readiness = read(json!({
            "cmd": "serve", "portDefinitions": [{"port": 0, "name": "http-api"}],
            "readinessChecks": [{}],
        }))
        .expect("valid");
        assert_eq!(
            readiness.readiness_checks[0].http_status_codes_for_ready,
            vec![200]
        );
    }

    #[test]
    fn output_rules_follow_networking_and_optional_fields() {
        let bridged = read(json!({
            "container": {"type": "DOCKER", "docker": {"image": "nginx"},
                "portMappings": [{"containerPort": 80, "name": "http"}]},
            "networks": [{"mode": "container/bridge"}],
            "acceptedResourceRoles": ["*"], "taskKillGracePeriodSeconds": 5,
        }))
        .expect("valid");
        let json = Value::Object(bridged.to_json());
        assert!(json.get("portDefinitions").is_none(), "{json}");
        assert_eq!(json["container"]["portMappings"][0]["hostPort"], 0);
        assert_eq!(json["acceptedResourceRoles"], json!(["*"]));
        assert_eq!(json["taskKillGracePeriodSeconds"], 5);
        assert_eq!(bridged.port_count(), 1);
        assert!(!bridged.host_networking());

        let host =
            read(json!({"cmd": "x y", "container": {"type": "MESOS", "docker": {"image": "a"}}}))
                .expect("valid");
        let json = Value::Object(host.to_json());
        assert!(json["container"].get("portMappings").is_none(), "{json}");
        for absent in [
            "acceptedResourceRoles",
            "taskKillGracePeriodSeconds",
            "args",
            "user",
            "tty",
            "residency",
            "ports",
            "uris",
            "ipAddress",
        ] {
            assert!(json.get(absent).is_none(), "{absent} in {json}");
        }
    }

    #[test]
    fn stored_form_round_trips() {
        let spec = read(json!({
            "cmd": "sleep 1", "constraints": [["hostname", "UNIQUE"]], "env": {"A": "b", "S": {"secret": "s"}},
            "secrets": {"s": {"source": "/v"}}, "unreachableStrategy": "disabled",
            "killSelection": "OLDEST_FIRST", "dependencies": ["db"],
        }))
        .expect("valid");
        assert_eq!(spec.dependencies[0].as_str(), "/prod/db");
        let stored = serde_json::to_value(&spec).expect("serialise");
        assert_eq!(stored["constraints"], json!([["hostname", "UNIQUE"]]));
        assert_eq!(stored["unreachableStrategy"], "disabled");
        let back: AppSpec = serde_json::from_value(stored).expect("deserialise");
        assert_eq!(back, spec);
        // The output is accepted as input again and means the same.
        let again = read(Value::Object(spec.to_json())).expect("valid");
        assert_eq!(again, spec);
    }

    #[test]
    fn type_errors_name_the_field() {
        assert_eq!(
            violations(json!({"cmd": "x y", "cpus": "lots"})),
            vec![("/cpus".into(), vec!["error.expected.jsnumber".into()])]
        );
        has(
            json!({"cmd": "x y", "labels": "a"}),
            "/labels",
            "error.expected.jsobject",
        );
        has(
            json!({"cmd": "x y", "requirePorts": 1}),
            "/requirePorts",
            "error.expected.jsboolean",
        );
        has(
            json!({"cmd": "x y", "healthChecks": [{}, {"intervalSeconds": "x"}]}),
            "/healthChecks(1)/intervalSeconds",
            "error.expected.jsnumber",
        );
        has(
            json!({"cmd": "x y", "fetch": [{"extract": true}]}),
            "/fetch(0)/uri",
            "error.path.missing",
        );
        has(
            json!({"cmd": "x y", "killSelection": "RANDOM"}),
            "/killSelection",
            "error.expected.validenumvalue",
        );
        has(
            json!({"cmd": "x y", "constraints": [["hostname", "NEAR"]]}),
            "/constraints(0)",
            "operator must be one of",
        );
        has(
            json!({"cmd": "x y", "dependencies": ["Bad_Id"]}),
            "/dependencies(0)",
            "must fully match",
        );
    }

    #[test]
    fn rules_are_checked_with_marathon_messages() {
        has(
            json!({}),
            "/",
            "AppDefinition must either contain one of 'cmd' or 'args'",
        );
        has(
            json!({"cmd": "a b", "args": ["x"]}),
            "/",
            "AppDefinition must either",
        );
        has(json!({"cmd": "a"}), "/cmd", "must not be an empty string");
        has(json!({"cmd": "a b", "cpus": -1}), "/cpus", "is less than 0");
        has(
            json!({"cmd": "a b", "instances": -1}),
            "/instances",
            "is less than 0",
        );
        has(
            json!({"cmd": "a b", "instances": 5_000_000}),
            "/instances",
            "must be at most 10000",
        );
        read(json!({"cmd": "a b", "instances": 10_000})).expect("at the cap");
        has(
            json!({"cmd": "a b", "upgradeStrategy": [1, 1]}),
            "/upgradeStrategy",
            "error.expected.jsobject",
        );
        has(
            json!({"container": {"type": "DOCKER", "docker": {"image": "m"},
                   "portMappings": [[]]}, "networks": [{"mode": "container/bridge"}]}),
            "/container/portMappings(0)",
            "error.expected.jsobject",
        );
        has(json!({"cmd": "a b", "mem": -1}), "/mem", "is less than 0");
        has(
            json!({"cmd": "a b", "acceptedResourceRoles": []}),
            "/acceptedResourceRoles",
            "must not be empty",
        );
        has(
            json!({"cmd": "a b", "acceptedResourceRoles": ["*", "*"]}),
            "/acceptedResourceRoles",
            "Elements must be unique",
        );
        has(
            json!({"cmd": "a b", "portDefinitions": [{"name": "Bad"}]}),
            "/portDefinitions(0)/name",
            "must fully match regular expression",
        );
        has(
            json!({"cmd": "a b", "portDefinitions": [{"name": "a"}, {"name": "a"}]}),
            "/portDefinitions",
            "Port names must be unique.",
        );
        has(
            json!({"cmd": "a b", "portDefinitions": [{"port": 80}, {"port": 80}]}),
            "/portDefinitions",
            "Ports must be unique.",
        );
        has(
            json!({"cmd": "a b", "portDefinitions": [{"protocol": "sctp"}]}),
            "/portDefinitions(0)/protocol",
            "must be one of",
        );
        has(
            json!({"container": {"docker": {"image": "x"}}, "networks": [{"mode": "container/bridge"}], "portDefinitions": [{}]}),
            "/portDefinitions",
            "portDefinitions are only allowed with host-networking",
        );
        has(
            json!({"container": {"docker": {"image": "x"}, "portMappings": [{}]}}),
            "/container/portMappings",
            "portMappings are not allowed with host-networking",
        );
        has(
            json!({"container": {"docker": {}}}),
            "/container/docker/image",
            "must not be empty",
        );
        has(
            json!({"cmd": "a b", "healthChecks": [{"protocol": "COMMAND"}]}),
            "/healthChecks(0)/command",
            "must not be empty",
        );
        has(
            json!({"cmd": "a b", "portDefinitions": [], "healthChecks": [{"protocol": "TCP"}]}),
            "/healthChecks(0)",
            "Health check port indices",
        );
        has(
            json!({"cmd": "a b", "healthChecks": [{"portIndex": 3}]}),
            "/healthChecks(0)",
            "Health check port indices",
        );
        has(
            json!({"cmd": "a b", "upgradeStrategy": {"minimumHealthCapacity": 1.5}}),
            "/upgradeStrategy/minimumHealthCapacity",
            "is greater than 1",
        );
        has(
            json!({"cmd": "a b", "upgradeStrategy": {"maximumOverCapacity": -0.5}}),
            "/upgradeStrategy/maximumOverCapacity",
            "is less than 0",
        );
        has(
            json!({"cmd": "a b", "backoffFactor": 0.5}),
            "/backoffFactor",
            "is less than 1",
        );
        has(
            json!({"cmd": "a b", "unreachableStrategy": {"inactiveAfterSeconds": 10, "expungeAfterSeconds": 5}}),
            "/unreachableStrategy/inactiveAfterSeconds",
            "must be less or equal",
        );
        has(
            json!({"cmd": "a b", "readinessChecks": [{"portName": "nope"}]}),
            "/readinessChecks(0)/portName",
            "must refer",
        );
        has(
            json!({"cmd": "a b", "env": {"A": {"secret": "missing"}}}),
            "/env/A/secret",
            "references an undefined secret",
        );
        // Several violations at once, grouped by path.
        let found = violations(json!({"cmd": "a b", "cpus": -1, "mem": -2}));
        assert_eq!(found.len(), 2, "{found:?}");
    }

    #[test]
    fn unknown_fields_are_ignored() {
        let spec = read(
            json!({"cmd": "a b", "someFutureField": {"x": 1}, "storeUrls": ["u"], "user": null}),
        )
        .expect("valid");
        assert_eq!(spec.user, None);
    }
}

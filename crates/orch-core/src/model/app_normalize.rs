//! Legacy app JSON to canonical app JSON, as Marathon's `AppNormalization` does on input.
//!
//! Works on the JSON object before it is read into types: `uris` → `fetch`, `ports` →
//! `portDefinitions`, `container.docker.portMappings` → `container.portMappings`,
//! `container.docker.network` / `ipAddress` → `networks`; then the defaults that depend on
//! the networking mode (`portDefinitions` under host networking, `portMappings` under
//! container networking, `hostPort: 0` under bridge networking), and relative dependency ids
//! resolved against the app's group. Output-only keys (`version`, `tasks`, counts...) and
//! top-level `null`s are dropped. Values of the wrong type are left for the typed reading to
//! report.

use super::app_validation::Violation;
use super::AppId;
use serde_json::{json, Map, Value};

/// Keys a client may send back from a GET that are not part of a definition.
const OUTPUT_ONLY: [&str; 14] = [
    "id",
    "version",
    "versionInfo",
    "deployments",
    "tasks",
    "tasksStaged",
    "tasksRunning",
    "tasksHealthy",
    "tasksUnhealthy",
    "lastTaskFailure",
    "taskStats",
    "tasksStats",
    "readinessCheckResults",
    "storeUrls",
];

/// Archive extensions the Mesos fetcher extracts (used for legacy `uris`).
const EXTRACTABLE: [&str; 7] = [
    ".tgz", ".tar.gz", ".tbz2", ".tar.bz2", ".txz", ".tar.xz", ".zip",
];

/// The canonical form of the definition of app `id`.
pub(super) fn normalize(
    id: &AppId,
    definition: &Map<String, Value>,
) -> Result<Map<String, Value>, Vec<Violation>> {
    let mut app: Map<String, Value> = definition
        .iter()
        .filter(|(key, value)| !value.is_null() && !OUTPUT_ONLY.contains(&key.as_str()))
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect();
    let mut violations = Vec::new();
    uris_to_fetch(&mut app, &mut violations);
    ports_to_port_definitions(&mut app, &mut violations);
    docker_port_mappings(&mut app, &mut violations);
    legacy_networks(&mut app, &mut violations);
    resolve_dependencies(id, &mut app);
    if violations.is_empty() {
        port_defaults(&mut app);
        Ok(app)
    } else {
        Err(violations)
    }
}

fn uris_to_fetch(app: &mut Map<String, Value>, violations: &mut Vec<Violation>) {
    let Some(uris) = app.remove("uris") else {
        return;
    };
    if app.contains_key("fetch") {
        violations.push(Violation::new(
            "/uris",
            "may not be set in conjunction with fetch",
        ));
        return;
    }
    let fetch: Option<Vec<Value>> = uris.as_array().and_then(|uris| {
        uris.iter()
            .map(|uri| {
                uri.as_str().map(|uri| {
                    let extract = EXTRACTABLE.iter().any(|ext| uri.ends_with(ext));
                    json!({"uri": uri, "extract": extract, "executable": false, "cache": false})
                })
            })
            .collect()
    });
    match fetch {
        Some(fetch) => {
            app.insert("fetch".into(), Value::Array(fetch));
        }
        None => violations.push(Violation::new("/uris", "error.expected.jsarray")),
    }
}

fn ports_to_port_definitions(app: &mut Map<String, Value>, violations: &mut Vec<Violation>) {
    let Some(ports) = app.remove("ports") else {
        return;
    };
    if app.contains_key("portDefinitions") {
        violations.push(Violation::new(
            "/ports",
            "may not be set in conjunction with portDefinitions",
        ));
        return;
    }
    match ports.as_array() {
        Some(ports) => {
            let definitions = ports
                .iter()
                .map(|port| json!({"port": port, "protocol": "tcp"}))
                .collect();
            app.insert("portDefinitions".into(), Value::Array(definitions));
        }
        None => violations.push(Violation::new("/ports", "error.expected.jsarray")),
    }
}

fn docker_port_mappings(app: &mut Map<String, Value>, violations: &mut Vec<Violation>) {
    let Some(Value::Object(container)) = app.get_mut("container") else {
        return;
    };
    let Some(Value::Object(docker)) = container.get_mut("docker") else {
        return;
    };
    let Some(mappings) = docker.remove("portMappings") else {
        return;
    };
    if mappings.is_null() {
        return;
    }
    if container.contains_key("portMappings") {
        violations.push(Violation::new(
            "/container/docker/portMappings",
            "may not be set in conjunction with container.portMappings",
        ));
        return;
    }
    container.insert("portMappings".into(), mappings);
}

/// `container.docker.network` and `ipAddress` (the pre-1.5 network API) to `networks`.
fn legacy_networks(app: &mut Map<String, Value>, violations: &mut Vec<Violation>) {
    let docker_network = match app.get_mut("container") {
        Some(Value::Object(container)) => match container.get_mut("docker") {
            Some(Value::Object(docker)) => docker.remove("network").filter(|n| !n.is_null()),
            _ => None,
        },
        _ => None,
    };
    let ip_address = app.remove("ipAddress");
    if docker_network.is_none() && ip_address.is_none() {
        if !app.contains_key("networks") {
            app.insert("networks".into(), json!([{"mode": "host"}]));
        }
        return;
    }
    if app.contains_key("networks") {
        violations.push(Violation::new(
            "/networks",
            "cannot mix deprecated and canonical network APIs",
        ));
        return;
    }
    let network_name = ip_address
        .as_ref()
        .and_then(|ip| ip.get("networkName"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let network = match docker_network.as_ref().map(|n| n.as_str()) {
        Some(Some("HOST")) => json!({"mode": "host"}),
        Some(Some("BRIDGE")) => json!({"mode": "container/bridge"}),
        Some(Some("USER")) | None => match network_name {
            Some(name) => json!({"mode": "container", "name": name}),
            None => json!({"mode": "container"}),
        },
        Some(_) => {
            violations.push(Violation::new(
                "/container/docker/network",
                "unsupported docker network type",
            ));
            return;
        }
    };
    app.insert("networks".into(), Value::Array(vec![network]));
    // ipAddress.discovery.ports become port mappings (no host port) of an implied container.
    let discovery_ports = ip_address
        .as_ref()
        .and_then(|ip| ip.pointer("/discovery/ports"))
        .and_then(Value::as_array)
        .cloned();
    if let Some(ports) = discovery_ports {
        let mappings: Vec<Value> = ports
            .iter()
            .map(|port| {
                let mut mapping = Map::new();
                for (from, to) in [
                    ("number", "containerPort"),
                    ("name", "name"),
                    ("protocol", "protocol"),
                    ("labels", "labels"),
                ] {
                    if let Some(value) = port.get(from) {
                        mapping.insert(to.into(), value.clone());
                    }
                }
                Value::Object(mapping)
            })
            .collect();
        let container = app
            .entry("container")
            .or_insert_with(|| json!({"type": "MESOS"}));
        if let Value::Object(container) = container {
            container
                .entry("portMappings")
                .or_insert(Value::Array(mappings));
        }
    } else if ip_address.is_some() && !app.contains_key("container") {
        app.insert("container".into(), json!({"type": "MESOS"}));
    }
}

/// Relative dependency ids are relative to the app's group.
fn resolve_dependencies(id: &AppId, app: &mut Map<String, Value>) {
    let group = id.as_str().rsplit_once('/').map_or("", |(group, _)| group);
    if let Some(Value::Array(dependencies)) = app.get_mut("dependencies") {
        for dependency in dependencies {
            if let Value::String(text) = dependency {
                if !text.starts_with('/') {
                    *text = format!("{group}/{text}");
                }
            }
        }
    }
}

/// Networking modes as the JSON says (a `networks` entry without `mode` is `container`).
fn modes(app: &Map<String, Value>) -> Vec<&str> {
    app.get("networks")
        .and_then(Value::as_array)
        .map(|networks| {
            networks
                .iter()
                .map(|n| n.get("mode").and_then(Value::as_str).unwrap_or("container"))
                .collect()
        })
        .unwrap_or_default()
}

fn port_defaults(app: &mut Map<String, Value>) {
    let modes = modes(app);
    let host = modes.iter().all(|mode| *mode == "host");
    let bridge = modes.contains(&"container/bridge");
    if host {
        if !app.contains_key("portDefinitions") {
            app.insert(
                "portDefinitions".into(),
                json!([{"port": 0, "protocol": "tcp", "name": "default"}]),
            );
        }
        return;
    }
    let Some(Value::Object(container)) = app.get_mut("container") else {
        return;
    };
    let mappings = container
        .entry("portMappings")
        .or_insert_with(|| json!([{"containerPort": 0, "name": "default"}]));
    if let (true, Value::Array(mappings)) = (bridge, mappings) {
        for mapping in mappings {
            if let Value::Object(mapping) = mapping {
                mapping.entry("hostPort").or_insert(json!(0));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn normalized(definition: Value) -> Result<Value, Vec<Violation>> {
        let id = AppId::parse("/prod/web").expect("valid id");
        normalize(&id, definition.as_object().expect("object")).map(Value::Object)
    }

    #[test]
    fn legacy_fields_become_canonical() {
        let app = normalized(json!({
            "cmd": "x", "ports": [0, 8080], "uris": ["http://h/a.tgz", "http://h/b.sh"],
            "dependencies": ["db", "/other", "../top"], "version": "x", "tasks": [],
        }))
        .expect("valid");
        assert_eq!(
            app["portDefinitions"],
            json!([{"port": 0, "protocol": "tcp"}, {"port": 8080, "protocol": "tcp"}])
        );
        assert_eq!(app["fetch"][0]["extract"], true);
        assert_eq!(app["fetch"][1]["extract"], false);
        assert_eq!(app["networks"], json!([{"mode": "host"}]));
        assert_eq!(
            app["dependencies"],
            json!(["/prod/db", "/other", "/prod/../top"])
        );
        assert!(app.get("ports").is_none() && app.get("uris").is_none());
        assert!(app.get("version").is_none() && app.get("tasks").is_none());
    }

    #[test]
    fn docker_network_and_port_mappings_move() {
        let app = normalized(json!({
            "container": {"type": "DOCKER", "docker": {"image": "nginx", "network": "BRIDGE",
                "portMappings": [{"containerPort": 80}]}},
        }))
        .expect("valid");
        assert_eq!(app["networks"], json!([{"mode": "container/bridge"}]));
        assert_eq!(
            app["container"]["portMappings"],
            json!([{"containerPort": 80, "hostPort": 0}])
        );
        assert!(app["container"]["docker"].get("network").is_none());
        assert!(app.get("portDefinitions").is_none());

        let user = normalized(json!({
            "container": {"docker": {"image": "x", "network": "USER"}},
            "ipAddress": {"networkName": "overlay"},
        }))
        .expect("valid");
        assert_eq!(
            user["networks"],
            json!([{"mode": "container", "name": "overlay"}])
        );
        assert_eq!(
            user["container"]["portMappings"],
            json!([{"containerPort": 0, "name": "default"}])
        );
    }

    #[test]
    fn defaults_ports_under_host_networking() {
        let app = normalized(json!({"cmd": "x"})).expect("valid");
        assert_eq!(
            app["portDefinitions"],
            json!([{"port": 0, "protocol": "tcp", "name": "default"}])
        );
        let none = normalized(json!({"cmd": "x", "portDefinitions": []})).expect("valid");
        assert_eq!(none["portDefinitions"], json!([]));
    }

    #[test]
    fn conflicting_legacy_and_canonical_forms_are_refused() {
        for (definition, path) in [
            (json!({"ports": [1], "portDefinitions": []}), "/ports"),
            (json!({"uris": [], "fetch": []}), "/uris"),
            (
                json!({"networks": [], "container": {"docker": {"image": "x", "network": "HOST"}}}),
                "/networks",
            ),
            (
                json!({"container": {"docker": {"image": "x", "network": "NONE"}}}),
                "/container/docker/network",
            ),
        ] {
            let violations = normalized(definition).expect_err("refused");
            assert_eq!(violations[0].path, path);
        }
    }
}

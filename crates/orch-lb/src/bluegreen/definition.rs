//! The app file of a blue/green deploy: the checks zdd makes on it (both deployment labels,
//! exactly one fixed service port), and the definition of the next colour built from it
//! (id `<id>-<colour>`, the service port alternating with `HAPROXY_DEPLOYMENT_ALT_PORT`, the
//! deployment labels). Pure: the clock's reading comes in as an argument.
//!
//! May depend on: serde_json, orch_core::model (ids, timestamps), the sibling error module.

use super::error::BlueGreenError;
use orch_core::model::{AppId, Timestamp};
use serde_json::{json, Map, Value};

/// Names both colours of one service; the load balancer merges the apps carrying it.
pub const GROUP: &str = "HAPROXY_DEPLOYMENT_GROUP";
/// The second service port the colours alternate to.
pub const ALT_PORT: &str = "HAPROXY_DEPLOYMENT_ALT_PORT";
/// `blue` or `green`.
pub const COLOUR: &str = "HAPROXY_DEPLOYMENT_COLOUR";
/// When the colour's deploy started (RFC 3339); the later one is the new colour.
pub const STARTED_AT: &str = "HAPROXY_DEPLOYMENT_STARTED_AT";
/// The instance count the deploy ends at.
pub const TARGET_INSTANCES: &str = "HAPROXY_DEPLOYMENT_TARGET_INSTANCES";
/// Canary deploys: how many instances of the new colour to keep.
pub const NEW_INSTANCES: &str = "HAPROXY_DEPLOYMENT_NEW_INSTANCES";
/// The app id before the colour suffix.
pub const APP_ID: &str = "HAPROXY_APP_ID";
/// The port the load balancer binds for both colours.
pub const BIND_PORT: &str = "HAPROXY_0_PORT";

/// Labels this command writes; values of them in the file are replaced.
const MANAGED: [&str; 6] = [
    COLOUR,
    STARTED_AT,
    TARGET_INSTANCES,
    NEW_INSTANCES,
    APP_ID,
    BIND_PORT,
];

/// One of the two colours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Colour {
    /// The first colour deployed.
    Blue,
    /// The other one.
    Green,
}

impl Colour {
    /// `blue` or `green`, as the label and the id suffix spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Colour::Blue => "blue",
            Colour::Green => "green",
        }
    }

    /// The colour a label names.
    pub fn parse(text: &str) -> Option<Colour> {
        match text {
            "blue" => Some(Colour::Blue),
            "green" => Some(Colour::Green),
            _ => None,
        }
    }

    /// The opposite colour.
    pub fn other(self) -> Colour {
        match self {
            Colour::Blue => Colour::Green,
            Colour::Green => Colour::Blue,
        }
    }
}

/// A checked app file.
#[derive(Debug, Clone, PartialEq)]
pub struct Deployable {
    /// The definition as read.
    pub definition: Value,
    /// The app id, canonical (`/web`).
    pub id: String,
    /// `HAPROXY_DEPLOYMENT_GROUP`.
    pub group: String,
    /// `HAPROXY_DEPLOYMENT_ALT_PORT`.
    pub alt_port: u16,
    /// The one service port of the file.
    pub service_port: u16,
    /// The port the load balancer binds: the file's `HAPROXY_0_PORT` if it has one, else the
    /// service port.
    pub bind_port: u16,
    /// `instances` (1 when absent, as Marathon defaults it).
    pub instances: u32,
}

impl Deployable {
    /// Checks an app file as zdd does: an id, both deployment labels, exactly one service
    /// port, fixed and different from the alternate one.
    pub fn from_definition(definition: &Value) -> Result<Deployable, BlueGreenError> {
        if !definition.is_object() {
            return Err(BlueGreenError::NotAnObject);
        }
        let id = match definition.get("id").and_then(Value::as_str) {
            Some(id) => AppId::parse(id)
                .map_err(|error| BlueGreenError::BadId {
                    reason: error.to_string(),
                })?
                .as_str()
                .to_owned(),
            None => {
                return Err(BlueGreenError::BadId {
                    reason: "missing".into(),
                })
            }
        };
        let group = label(definition, GROUP);
        let alt = label(definition, ALT_PORT);
        let missing: Vec<&'static str> = [(GROUP, &group), (ALT_PORT, &alt)]
            .into_iter()
            .filter(|(_, value)| value.as_deref().is_none_or(|v| v.trim().is_empty()))
            .map(|(name, _)| name)
            .collect();
        let (Some(group), Some(alt)) = (group, alt) else {
            return Err(BlueGreenError::MissingLabels { labels: missing });
        };
        if !missing.is_empty() {
            return Err(BlueGreenError::MissingLabels { labels: missing });
        }
        let alt_port = port_number(&alt).ok_or(BlueGreenError::BadLabel {
            label: ALT_PORT,
            value: alt.clone(),
            expected: "a port number from 1 to 65535",
        })?;
        let service_port = match service_ports(definition) {
            (1, Some(port)) if port != 0 => port,
            (1, _) => return Err(BlueGreenError::NoFixedServicePort),
            (found, _) => return Err(BlueGreenError::ServicePorts { found }),
        };
        if service_port == alt_port {
            return Err(BlueGreenError::AltPortIsServicePort { port: alt_port });
        }
        let bind_port = match label(definition, BIND_PORT) {
            Some(text) => port_number(&text).ok_or(BlueGreenError::BadLabel {
                label: BIND_PORT,
                value: text,
                expected: "a port number from 1 to 65535",
            })?,
            None => service_port,
        };
        let instances = match definition.get("instances") {
            None | Some(Value::Null) => 1,
            Some(value) => value
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| BlueGreenError::BadInstances {
                    value: value.to_string(),
                })?,
        };
        Ok(Deployable {
            definition: definition.clone(),
            id,
            group: group.trim().to_owned(),
            alt_port,
            service_port,
            bind_port,
            instances,
        })
    }

    /// The id of this app's `colour`: `/web-blue`.
    pub fn colour_id(&self, colour: Colour) -> String {
        format!("{}-{}", self.id, colour.as_str())
    }

    /// The service port that follows `current` (the port of the colour running now, if
    /// any): the file's port first, then the alternate one, then the file's again.
    pub fn next_service_port(&self, current: Option<u16>) -> u16 {
        match current {
            Some(port) if port != self.alt_port => self.alt_port,
            _ => self.service_port,
        }
    }
}

/// What the next colour is created with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NextColour {
    /// Its colour.
    pub colour: Colour,
    /// Its service port.
    pub service_port: u16,
    /// `HAPROXY_DEPLOYMENT_TARGET_INSTANCES`.
    pub target: u32,
    /// The instances it starts with.
    pub initial: u32,
    /// Canary deploys: `HAPROXY_DEPLOYMENT_NEW_INSTANCES`.
    pub new_instances: Option<u32>,
}

/// The definition of the next colour: the file's, with the colour's id, service port,
/// instances and deployment labels (`started_at` becomes `HAPROXY_DEPLOYMENT_STARTED_AT`).
pub fn colour_definition(
    deployable: &Deployable,
    next: &NextColour,
    started_at: Timestamp,
) -> Value {
    let mut app = deployable.definition.clone();
    app["id"] = json!(deployable.colour_id(next.colour));
    app["instances"] = json!(next.initial);
    set_service_port(&mut app, next.service_port);
    let mut labels: Map<String, Value> = app
        .get("labels")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    labels.retain(|name, _| !MANAGED.contains(&name.as_str()));
    let mut set = |name: &str, value: String| {
        labels.insert(name.to_owned(), Value::String(value));
    };
    set(GROUP, deployable.group.clone());
    set(ALT_PORT, deployable.alt_port.to_string());
    set(APP_ID, deployable.id.clone());
    set(COLOUR, next.colour.as_str().to_owned());
    set(STARTED_AT, started_at.to_rfc3339());
    set(TARGET_INSTANCES, next.target.to_string());
    set(BIND_PORT, deployable.bind_port.to_string());
    if let Some(new_instances) = next.new_instances {
        set(NEW_INSTANCES, new_instances.to_string());
    }
    app["labels"] = Value::Object(labels);
    app
}

/// A label's value as text (numbers, which YAML files produce, are written out).
pub fn label(app: &Value, name: &str) -> Option<String> {
    match app.get("labels")?.get(name)? {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        _ => None,
    }
}

fn port_number(text: &str) -> Option<u16> {
    text.trim().parse::<u16>().ok().filter(|port| *port != 0)
}

/// Whether the app's ports are container port mappings (container or bridge networking)
/// rather than host port definitions.
fn container_networking(app: &Value) -> bool {
    if let Some(mode) = app.pointer("/networks/0/mode").and_then(Value::as_str) {
        return mode.starts_with("container");
    }
    if let Some(network) = app
        .pointer("/container/docker/network")
        .and_then(Value::as_str)
    {
        return matches!(network, "BRIDGE" | "USER");
    }
    app.get("ipAddress").is_some_and(|ip| !ip.is_null())
}

/// The JSON pointer of the list holding the service ports, and the key of the port in each
/// entry (empty for the legacy `ports` list of numbers).
fn port_list(app: &Value) -> (&'static str, &'static str) {
    let candidates: [(&'static str, &'static str); 2] = if container_networking(app) {
        [
            ("/container/portMappings", "servicePort"),
            ("/container/docker/portMappings", "servicePort"),
        ]
    } else {
        [("/portDefinitions", "port"), ("/ports", "")]
    };
    candidates
        .into_iter()
        .find(|(list, _)| app.pointer(list).is_some_and(|l| !l.is_null()))
        .unwrap_or(candidates[0])
}

/// How many service ports the app has, and the first one (`None` when it is not a port
/// number; a mapping without `servicePort` has port 0).
pub fn service_ports(app: &Value) -> (usize, Option<u16>) {
    let (list, key) = port_list(app);
    let Some(entries) = app.pointer(list).and_then(Value::as_array) else {
        return (0, None);
    };
    let first = entries.first().and_then(|entry| {
        let port = if key.is_empty() {
            Some(entry)
        } else {
            entry.get(key)
        };
        match port {
            None | Some(Value::Null) => Some(0),
            Some(port) => port.as_u64().and_then(|p| u16::try_from(p).ok()),
        }
    });
    (entries.len(), first)
}

/// Sets the first service port (the definition was checked to have exactly one).
fn set_service_port(app: &mut Value, port: u16) {
    let (list, key) = port_list(app);
    if let Some(entry) = app.pointer_mut(&format!("{list}/0")) {
        if key.is_empty() {
            *entry = json!(port);
        } else if let Some(entry) = entry.as_object_mut() {
            entry.insert(key.to_owned(), json!(port));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn web(extra: Value) -> Value {
        let mut app = json!({
            "id": "web", "cmd": "serve", "instances": 3,
            "portDefinitions": [{"port": 10000, "name": "http"}],
            "labels": {GROUP: "web", ALT_PORT: "10001", "HAPROXY_GROUP": "external"}
        });
        if let (Some(app), Some(extra)) = (app.as_object_mut(), extra.as_object()) {
            for (key, value) in extra {
                app.insert(key.clone(), value.clone());
            }
        }
        app
    }

    #[test]
    fn a_complete_file_is_accepted() {
        let d = Deployable::from_definition(&web(json!({}))).expect("valid");
        assert_eq!(
            (d.id.as_str(), d.group.as_str(), d.alt_port, d.service_port),
            ("/web", "web", 10001, 10000)
        );
        assert_eq!((d.bind_port, d.instances), (10000, 3));
        assert_eq!(d.colour_id(Colour::Green), "/web-green");
    }

    #[test]
    fn missing_labels_are_all_named() {
        let error = Deployable::from_definition(&web(json!({"labels": {}}))).expect_err("no");
        assert_eq!(
            error,
            BlueGreenError::MissingLabels {
                labels: vec![GROUP, ALT_PORT]
            }
        );
        let text = error.to_string();
        assert!(text.contains("HAPROXY_DEPLOYMENT_GROUP, HAPROXY_DEPLOYMENT_ALT_PORT"));
        let error = Deployable::from_definition(&web(json!({"labels": {GROUP: "web"}})))
            .expect_err("no alt port");
        assert_eq!(
            error,
            BlueGreenError::MissingLabels {
                labels: vec![ALT_PORT]
            }
        );
        let blank = web(json!({"labels": {GROUP: " ", ALT_PORT: "10001"}}));
        assert!(matches!(
            Deployable::from_definition(&blank),
            Err(BlueGreenError::MissingLabels { labels }) if labels == vec![GROUP]
        ));
    }

    #[test]
    fn ports_must_be_one_fixed_and_distinct() {
        let two = web(json!({"portDefinitions": [{"port": 10000}, {"port": 10002}]}));
        assert_eq!(
            Deployable::from_definition(&two),
            Err(BlueGreenError::ServicePorts { found: 2 })
        );
        let none = web(json!({"portDefinitions": []}));
        assert_eq!(
            Deployable::from_definition(&none),
            Err(BlueGreenError::ServicePorts { found: 0 })
        );
        let mut absent = web(json!({}));
        absent.as_object_mut().map(|a| a.remove("portDefinitions"));
        assert_eq!(
            Deployable::from_definition(&absent),
            Err(BlueGreenError::ServicePorts { found: 0 })
        );
        let zero = web(json!({"ports": [0]}));
        let zero = {
            let mut zero = zero;
            zero.as_object_mut().map(|a| a.remove("portDefinitions"));
            zero
        };
        assert_eq!(
            Deployable::from_definition(&zero),
            Err(BlueGreenError::NoFixedServicePort)
        );
        let same = web(json!({"portDefinitions": [{"port": 10001}]}));
        assert_eq!(
            Deployable::from_definition(&same),
            Err(BlueGreenError::AltPortIsServicePort { port: 10001 })
        );
        let bad_alt = web(json!({"labels": {GROUP: "web", ALT_PORT: "http"}}));
        assert!(matches!(
            Deployable::from_definition(&bad_alt),
            Err(BlueGreenError::BadLabel {
                label: ALT_PORT,
                ..
            })
        ));
    }

    #[test]
    fn yaml_numbers_and_container_mappings_are_read() {
        let bridged = json!({
            "id": "/api", "instances": 2,
            "container": {"type": "DOCKER", "docker": {"image": "x"},
                          "portMappings": [{"containerPort": 80, "servicePort": 10010}]},
            "networks": [{"mode": "container/bridge"}],
            "labels": {GROUP: "api", ALT_PORT: 10011}
        });
        let d = Deployable::from_definition(&bridged).expect("valid");
        assert_eq!((d.service_port, d.alt_port), (10010, 10011));
        let next = NextColour {
            colour: Colour::Green,
            service_port: 10011,
            target: 2,
            initial: 1,
            new_instances: None,
        };
        let app = colour_definition(&d, &next, Timestamp::from_millis(0));
        assert_eq!(app["container"]["portMappings"][0]["servicePort"], 10011);
        assert_eq!(app["container"]["portMappings"][0]["containerPort"], 80);
        assert_eq!(app["labels"][ALT_PORT], "10011");
    }

    #[test]
    fn the_colour_definition_carries_every_deployment_label() {
        let mut file = web(json!({}));
        file["labels"][COLOUR] = json!("stale");
        file["labels"][NEW_INSTANCES] = json!("2");
        let d = Deployable::from_definition(&file).expect("valid");
        let next = NextColour {
            colour: Colour::Green,
            service_port: d.next_service_port(Some(10000)),
            target: 4,
            initial: 1,
            new_instances: None,
        };
        let app = colour_definition(&d, &next, Timestamp::from_millis(1_000));
        assert_eq!(app["id"], "/web-green");
        assert_eq!(app["instances"], 1);
        assert_eq!(
            app["portDefinitions"],
            json!([{"port": 10001, "name": "http"}])
        );
        assert_eq!(
            app["labels"],
            json!({
                GROUP: "web", ALT_PORT: "10001", "HAPROXY_GROUP": "external",
                APP_ID: "/web", COLOUR: "green", STARTED_AT: "1970-01-01T00:00:01.000Z",
                TARGET_INSTANCES: "4", BIND_PORT: "10000"
            })
        );
        assert_eq!(app["cmd"], "serve");
    }

    #[test]
    fn ports_alternate_and_a_given_bind_port_is_kept() {
        let mut file = web(json!({"ports": [10000]}));
        file.as_object_mut().map(|a| a.remove("portDefinitions"));
        file["labels"][BIND_PORT] = json!("80");
        let d = Deployable::from_definition(&file).expect("valid");
        assert_eq!(d.bind_port, 80);
        assert_eq!(d.next_service_port(None), 10000);
        assert_eq!(d.next_service_port(Some(10000)), 10001);
        assert_eq!(d.next_service_port(Some(10001)), 10000);
        let next = NextColour {
            colour: Colour::Blue,
            service_port: 10000,
            target: 3,
            initial: 3,
            new_instances: Some(1),
        };
        let app = colour_definition(&d, &next, Timestamp::from_millis(0));
        assert_eq!(app["ports"], json!([10000]));
        assert_eq!(app["labels"][BIND_PORT], "80");
        assert_eq!(app["labels"][NEW_INSTANCES], "1");
    }
}

//! Validation of app definitions with Marathon's messages and paths.
//!
//! A [`Violation`] is Marathon's `{"path": "/healthChecks(0)/command", "errors": [...]}`:
//! object fields render as `/field`, sequence indexes as `(n)`, rules about the whole app as
//! `/`. [`type_violations`] finds which fields of a JSON object fail to read (wrong types),
//! [`validate`] checks the rules of a typed [`AppSpec`].

use super::app_spec::{AppSpec, EnvValue, NetworkMode, UnreachableStrategy};
use super::health::HealthProtocol;
use serde_json::{Map, Value};
use std::collections::BTreeSet;

/// One failing field.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Violation {
    /// Marathon-style path (`/cpus`, `/constraints(0)`, `/`).
    pub path: String,
    /// What is wrong with it.
    pub errors: Vec<String>,
}

impl Violation {
    /// One error at `path`.
    pub fn new(path: impl Into<String>, error: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            errors: vec![error.into()],
        }
    }
}

/// Violations with one entry per path, in first-seen order.
fn grouped(pairs: Vec<(String, String)>) -> Vec<Violation> {
    let mut violations: Vec<Violation> = Vec::new();
    for (path, error) in pairs {
        match violations.iter_mut().find(|v| v.path == path) {
            Some(existing) if !existing.errors.contains(&error) => existing.errors.push(error),
            Some(_) => {}
            None => violations.push(Violation::new(path, error)),
        }
    }
    violations
}

/// The port-name rule as Marathon prints it.
pub const PORT_NAME_PATTERN: &str = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";

const HEALTH_PORT: &str = "Health check port indices must address an element of the ports array or container port mappings.";
const CMD_ARGS_CONTAINER: &str =
    "AppDefinition must either contain one of 'cmd' or 'args', and/or a 'container'.";

/// The fields of `app` that do not read as [`AppSpec`] fields, each narrowed to the innermost
/// failing value (e.g. `/healthChecks(0)/intervalSeconds`), with play-json style errors
/// (`error.expected.jsnumber`, `error.path.missing`, ...) or the reader's own message.
pub fn type_violations(app: &Map<String, Value>) -> Vec<Violation> {
    let mut violations = Vec::new();
    for (key, value) in app {
        let reads = |value: &Value| {
            let mut single = Map::new();
            single.insert(key.clone(), value.clone());
            serde_json::from_value::<AppSpec>(Value::Object(single)).err()
        };
        let Some(error) = reads(value) else {
            continue;
        };
        // Walk down while removing exactly one child makes the value readable.
        let mut pointer: Vec<Step> = Vec::new();
        let mut path = format!("/{key}");
        let error = error.to_string();
        while let Some(node) = at(value, &pointer) {
            let culprit = children(node).into_iter().find_map(|step| {
                let mut trial = value.clone();
                remove(&mut trial, &pointer, &step);
                reads(&trial).is_none().then_some(step)
            });
            let Some(step) = culprit else {
                break;
            };
            path.push_str(&step.render());
            pointer.push(step);
        }
        let (suffix, message) = play_error(&error);
        violations.push(Violation::new(format!("{path}{suffix}"), message));
    }
    if violations.is_empty() {
        violations.push(Violation::new("/", "error.expected.jsobject"));
    }
    violations
}

#[derive(Clone, Debug)]
enum Step {
    Key(String),
    Index(usize),
}

impl Step {
    fn render(&self) -> String {
        match self {
            Self::Key(key) => format!("/{key}"),
            Self::Index(index) => format!("({index})"),
        }
    }
}

fn at<'a>(value: &'a Value, pointer: &[Step]) -> Option<&'a Value> {
    pointer.iter().try_fold(value, |node, step| match step {
        Step::Key(key) => node.get(key),
        Step::Index(index) => node.get(index),
    })
}

fn children(node: &Value) -> Vec<Step> {
    match node {
        Value::Object(map) => map.keys().cloned().map(Step::Key).collect(),
        Value::Array(items) => (0..items.len()).map(Step::Index).collect(),
        _ => Vec::new(),
    }
}

fn remove(value: &mut Value, pointer: &[Step], step: &Step) {
    let parent = pointer.iter().try_fold(value, |node, step| match step {
        Step::Key(key) => node.get_mut(key),
        Step::Index(index) => node.get_mut(index),
    });
    match (parent, step) {
        (Some(Value::Object(map)), Step::Key(key)) => {
            map.remove(key);
        }
        (Some(Value::Array(items)), Step::Index(index)) if *index < items.len() => {
            items.remove(*index);
        }
        _ => {}
    }
}

/// serde's message as play-json's error key, and a path suffix for a missing field.
fn play_error(message: &str) -> (String, String) {
    if let Some(rest) = message.strip_prefix("missing field `") {
        let field = rest.split('`').next().unwrap_or_default();
        return (format!("/{field}"), "error.path.missing".into());
    }
    let expected = message
        .rsplit_once(", expected ")
        .map_or("", |(_, expected)| expected);
    let key = if message.starts_with("unknown variant") {
        "error.expected.validenumvalue"
    } else if ["f64", "i64", "u64", "u32", "u16", "a number", "integer"]
        .iter()
        .any(|t| expected.contains(t))
    {
        "error.expected.jsnumber"
    } else if expected.contains("a string") {
        "error.expected.jsstring"
    } else if expected.contains("a boolean") {
        "error.expected.jsboolean"
    } else if expected.contains("a sequence") {
        "error.expected.jsarray"
    } else if expected.contains("a map") || expected.starts_with("struct") {
        "error.expected.jsobject"
    } else {
        message
    };
    (String::new(), key.into())
}

/// The most instances one app may have. Marathon had no such cap, and one request for
/// millions of instances took its master down; 10,000 is what one orch master schedules in
/// seconds (`benches/simulated.rs`).
pub const MAX_INSTANCES: i64 = 10_000;

/// The rules of a read definition; empty when valid.
pub fn validate(app: &AppSpec) -> Vec<Violation> {
    let mut errors: Vec<(String, String)> = Vec::new();
    let mut fail = |path: String, error: &str| errors.push((path, error.to_owned()));

    // cmd / args / container
    let has_image = app.docker_image().is_some();
    match (&app.cmd, app.args.is_empty()) {
        (Some(_), false) => fail("/".into(), CMD_ARGS_CONTAINER),
        (None, true) if !has_image => fail("/".into(), CMD_ARGS_CONTAINER),
        _ => {}
    }
    if app.cmd.as_ref().is_some_and(|cmd| cmd.chars().count() <= 1) {
        fail("/cmd".into(), "must not be an empty string");
    }

    // resources and counts
    for (path, value) in [
        ("/instances", app.instances as f64),
        ("/cpus", app.cpus),
        ("/mem", app.mem),
        ("/disk", app.disk),
        ("/gpus", app.gpus as f64),
        ("/backoffSeconds", app.backoff_seconds as f64),
        (
            "/maxLaunchDelaySeconds",
            app.max_launch_delay_seconds as f64,
        ),
        (
            "/taskKillGracePeriodSeconds",
            app.task_kill_grace_period_seconds.unwrap_or(0) as f64,
        ),
    ] {
        if value < 0.0 {
            fail(path.into(), "is less than 0");
        }
    }
    if app.instances > MAX_INSTANCES {
        fail(
            "/instances".into(),
            &format!("must be at most {MAX_INSTANCES} (orch's limit of instances per app)"),
        );
    }
    if app.backoff_factor < 1.0 {
        fail("/backoffFactor".into(), "is less than 1");
    }
    for (path, value) in [
        (
            "/upgradeStrategy/minimumHealthCapacity",
            app.upgrade_strategy.minimum_health_capacity,
        ),
        (
            "/upgradeStrategy/maximumOverCapacity",
            app.upgrade_strategy.maximum_over_capacity,
        ),
    ] {
        if value < 0.0 {
            fail(path.into(), "is less than 0");
        } else if value > 1.0 {
            fail(path.into(), "is greater than 1");
        }
    }
    if let UnreachableStrategy::Enabled(strategy) = app.unreachable_strategy {
        if strategy.inactive_after_seconds < 0 {
            fail(
                "/unreachableStrategy/inactiveAfterSeconds".into(),
                "is less than 0",
            );
        }
        if strategy.inactive_after_seconds > strategy.expunge_after_seconds {
            fail(
                "/unreachableStrategy/inactiveAfterSeconds".into(),
                "must be less or equal to expungeAfterSeconds",
            );
        }
    }

    // roles
    let mut roles = BTreeSet::new();
    for (index, role) in app.accepted_resource_roles.iter().enumerate() {
        if role.is_empty() {
            fail(
                format!("/acceptedResourceRoles({index})"),
                "must not be empty",
            );
        }
        if !roles.insert(role) {
            fail("/acceptedResourceRoles".into(), "Elements must be unique");
        }
    }

    // networks
    let host = app.host_networking();
    let modes: BTreeSet<_> = app.networks.iter().map(|n| n.mode).collect();
    if modes.len() > 1
        || (modes.contains(&NetworkMode::Host) && app.networks.len() > 1)
        || (modes.contains(&NetworkMode::Bridge) && app.networks.len() > 1)
    {
        fail(
            "/networks".into(),
            "Must specify either a single host network, or else 1-to-n container networks",
        );
    }
    for (index, network) in app.networks.iter().enumerate() {
        if network.name.is_some() && network.mode != NetworkMode::Container {
            fail(
                format!("/networks({index})/name"),
                "must be empty unless mode is container",
            );
        }
    }

    // ports
    let definitions: Vec<_> = app
        .port_definitions
        .iter()
        .map(|p| (p.port, p.name.as_deref(), p.protocol.as_str()))
        .collect();
    check_ports(&mut fail, "/portDefinitions", &definitions);
    if !host && !app.port_definitions.is_empty() {
        fail(
            "/portDefinitions".into(),
            "portDefinitions are only allowed with host-networking",
        );
    }
    if let Some(container) = &app.container {
        let mappings: Vec<_> = container
            .port_mappings
            .iter()
            .map(|p| (p.service_port, p.name.as_deref(), p.protocol.as_str()))
            .collect();
        check_ports(&mut fail, "/container/portMappings", &mappings);
        if host && !container.port_mappings.is_empty() {
            fail(
                "/container/portMappings".into(),
                "portMappings are not allowed with host-networking",
            );
        }
        if let Some(docker) = &container.docker {
            if docker.image.trim().is_empty() {
                fail("/container/docker/image".into(), "must not be empty");
            }
        }
    }

    // health checks
    let port_count = app.port_count();
    let mut mesos_level = 0;
    let mut marathon_level = 0;
    for (index, check) in app.health_checks.iter().enumerate() {
        let path = format!("/healthChecks({index})");
        if check.protocol == HealthProtocol::Command {
            if check
                .command
                .as_ref()
                .is_none_or(|c| c.value.trim().is_empty())
            {
                fail(format!("{path}/command"), "must not be empty");
            }
        } else {
            if check.command.is_some() {
                fail(
                    format!("{path}/command"),
                    "must be empty for non-COMMAND health checks",
                );
            }
            let index_ok = check.port.is_some()
                || check
                    .port_index
                    .is_some_and(|i| usize::try_from(i).is_ok_and(|i| i < port_count));
            if !index_ok {
                fail(path.clone(), HEALTH_PORT);
            }
        }
        for (field, value, min) in [
            ("gracePeriodSeconds", check.grace_period_seconds, 0),
            ("intervalSeconds", check.interval_seconds, 1),
            ("timeoutSeconds", check.timeout_seconds, 1),
            ("maxConsecutiveFailures", check.max_consecutive_failures, 0),
            ("delaySeconds", check.delay_seconds, 0),
        ] {
            if value < min {
                fail(format!("{path}/{field}"), &format!("is less than {min}"));
            }
        }
        if check.protocol.is_mesos_level() {
            if check.protocol != HealthProtocol::Command {
                mesos_level += 1;
            }
        } else {
            marathon_level += 1;
        }
    }
    if mesos_level > 1 {
        fail(
            "/healthChecks".into(),
            "AppDefinition can only have 1 Mesos health check",
        );
    }
    if mesos_level > 0 && marathon_level > 0 {
        fail(
            "/healthChecks".into(),
            "AppDefinition cannot mix Marathon-level and Mesos-level health checks",
        );
    }

    // readiness checks
    if app.readiness_checks.len() > 1 {
        fail(
            "/readinessChecks".into(),
            "only one readinessCheck is supported",
        );
    }
    let names = app.port_names();
    for (index, check) in app.readiness_checks.iter().enumerate() {
        let path = format!("/readinessChecks({index})");
        if !names.contains(&Some(check.port_name.as_str())) {
            fail(
                format!("{path}/portName"),
                "must refer to the name of a port definition or port mapping",
            );
        }
        if check.timeout_seconds >= check.interval_seconds {
            fail(
                format!("{path}/timeoutSeconds"),
                "must be less than intervalSeconds",
            );
        }
        if check.http_status_codes_for_ready.is_empty() {
            fail(
                format!("{path}/httpStatusCodesForReady"),
                "must not be empty",
            );
        }
    }

    // env secret references
    for (name, value) in &app.env {
        if let EnvValue::Secret(reference) = value {
            match reference.get("secret").and_then(Value::as_str) {
                Some(secret) if app.secrets.contains_key(secret) => {}
                Some(_) => fail(
                    format!("/env/{name}/secret"),
                    "references an undefined secret",
                ),
                None => fail(format!("/env/{name}"), "error.expected.jsstring"),
            }
        }
    }
    grouped(errors)
}

/// Names, protocols and uniqueness of port definitions or mappings given as
/// `(service port, name, protocol)`.
fn check_ports(
    fail: &mut impl FnMut(String, &str),
    base: &str,
    ports: &[(u16, Option<&str>, &str)],
) {
    let mut names = BTreeSet::new();
    let mut numbers = BTreeSet::new();
    for (index, (port, name, protocol)) in ports.iter().enumerate() {
        if let Some(name) = name {
            if !is_port_name(name) {
                fail(
                    format!("{base}({index})/name"),
                    &format!("must fully match regular expression '{PORT_NAME_PATTERN}'"),
                );
            }
            if !names.insert(*name) {
                fail(base.into(), "Port names must be unique.");
            }
        }
        if !["tcp", "udp", "udp,tcp"].contains(protocol) {
            fail(
                format!("{base}({index})/protocol"),
                "must be one of tcp, udp, udp,tcp",
            );
        }
        if *port != 0 && !numbers.insert(*port) {
            fail(base.into(), "Ports must be unique.");
        }
    }
}

fn is_port_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    let edge = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    match (bytes.first(), bytes.last()) {
        (Some(first), Some(last)) => {
            edge(first) && edge(last) && bytes.iter().all(|b| edge(b) || *b == b'-')
        }
        _ => false,
    }
}

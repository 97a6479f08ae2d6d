//! The environment Marathon gives a task (marathon-api.md §4.12), built from its
//! [`TaskSpec`].
//!
//! Precedence, low to high: the task context (`MESOS_TASK_ID`, `MESOS_SANDBOX`,
//! `MARATHON_APP_*`), then `HOST` and the port variables, then the app's own `env` (the user
//! wins on a clash). Pure: no I/O, no clock.
//!
//! May depend on: protocol, model.

use orch_core::protocol::{PortAssignment, TaskSpec};
use std::collections::BTreeMap;

/// Where Mesos mounts the sandbox inside a Docker container.
pub const DOCKER_SANDBOX: &str = "/mnt/mesos/sandbox";

/// Marathon's cap on an environment variable (name or value) for labels.
const MAX_ENV_LENGTH: usize = 512;
/// The prefix of per-label variables.
const LABEL_PREFIX: &str = "MARATHON_APP_LABEL_";

/// The variables of a task, in precedence order already applied.
///
/// `sandbox` is the path the task sees as `MESOS_SANDBOX` (the sandbox directory for process
/// tasks, [`DOCKER_SANDBOX`] inside containers); `hostname` is the agent's (`HOST`).
pub fn task_env(spec: &TaskSpec, sandbox: &str, hostname: &str) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    env.insert("MESOS_TASK_ID".to_owned(), spec.task_id.to_string());
    env.insert("MESOS_SANDBOX".to_owned(), sandbox.to_owned());
    env.insert("MARATHON_APP_ID".to_owned(), spec.app_id.to_string());
    env.insert(
        "MARATHON_APP_VERSION".to_owned(),
        spec.app_version.to_rfc3339(),
    );
    if let Some(docker) = &spec.docker {
        env.insert("MARATHON_APP_DOCKER_IMAGE".to_owned(), docker.image.clone());
    }
    env.insert(
        "MARATHON_APP_RESOURCE_CPUS".to_owned(),
        scala_double(spec.cpus),
    );
    env.insert(
        "MARATHON_APP_RESOURCE_MEM".to_owned(),
        scala_double(spec.mem),
    );
    env.insert(
        "MARATHON_APP_RESOURCE_DISK".to_owned(),
        scala_double(spec.disk),
    );
    env.insert("MARATHON_APP_RESOURCE_GPUS".to_owned(), "0".to_owned());
    env.extend(label_env(&spec.labels));
    env.insert("HOST".to_owned(), hostname.to_owned());
    env.extend(port_env(&spec.ports));
    env.extend(spec.env.iter().map(|(k, v)| (k.clone(), v.clone())));
    env
}

/// `MARATHON_APP_LABELS` (sanitised keys, space-separated) and one
/// `MARATHON_APP_LABEL_<KEY>` per label, skipping keys of 493 chars or more and values of
/// 512 chars or more, as Marathon's `EnvironmentHelper.labelsToEnvVars` does.
pub fn label_env(labels: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    let mut names = Vec::new();
    for (key, value) in labels {
        if key.len() >= MAX_ENV_LENGTH - LABEL_PREFIX.len() || value.len() >= MAX_ENV_LENGTH {
            continue;
        }
        let name = sanitize_label_key(key);
        env.insert(format!("{LABEL_PREFIX}{name}"), value.clone());
        names.push(name);
    }
    env.insert("MARATHON_APP_LABELS".to_owned(), names.join(" "));
    env
}

/// `[^a-zA-Z0-9_]+` becomes `_`, then uppercased.
pub fn sanitize_label_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    let mut in_run = false;
    for c in key.chars() {
        if c.is_ascii_alphanumeric() || c == '_' {
            out.push(c.to_ascii_uppercase());
            in_run = false;
        } else if !in_run {
            out.push('_');
            in_run = true;
        }
    }
    out
}

/// The port of an assignment the task uses: the host port, or the container port for a
/// container-only mapping.
pub fn effective_port(port: &PortAssignment) -> u16 {
    if port.host_port != 0 {
        port.host_port
    } else {
        port.container_port.unwrap_or(0)
    }
}

/// `PORT0..n`, `PORT`, `PORTS`, `PORT_<NUMBER>` and `PORT_<NAME>`.
pub fn port_env(ports: &[PortAssignment]) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    if ports.is_empty() {
        return env;
    }
    let mut all = Vec::with_capacity(ports.len());
    for (index, port) in ports.iter().enumerate() {
        let effective = effective_port(port);
        let value = effective.to_string();
        env.insert(format!("PORT{index}"), value.clone());
        let number = if port.requested != 0 {
            port.requested
        } else {
            effective
        };
        env.insert(format!("PORT_{number}"), value.clone());
        if let Some(name) = &port.name {
            env.insert(format!("PORT_{}", name.to_uppercase()), value.clone());
        }
        all.push(value);
    }
    if let Some(first) = all.first() {
        env.insert("PORT".to_owned(), first.clone());
    }
    env.insert("PORTS".to_owned(), all.join(","));
    env
}

/// Formats like Java's `Double.toString`: `0.1`, `128.0`, `1.0E-4`, `1.5E7`.
pub fn scala_double(value: f64) -> String {
    if !value.is_finite() {
        return if value.is_nan() {
            "NaN".to_owned()
        } else if value > 0.0 {
            "Infinity".to_owned()
        } else {
            "-Infinity".to_owned()
        };
    }
    let magnitude = value.abs();
    if value == 0.0 || (1e-3..1e7).contains(&magnitude) {
        let text = format!("{value}");
        if text.contains('.') {
            text
        } else {
            format!("{text}.0")
        }
    } else {
        let text = format!("{value:e}");
        let (mantissa, exponent) = text.split_once('e').unwrap_or((&text, "0"));
        if mantissa.contains('.') {
            format!("{mantissa}E{exponent}")
        } else {
            format!("{mantissa}.0E{exponent}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use orch_core::model::{AppId, TaskId, Timestamp};
    use orch_core::protocol::{DockerNetwork, DockerSpec};

    fn spec() -> TaskSpec {
        TaskSpec {
            task_id: TaskId("prod_web.instance-1._app.1".to_owned()),
            app_id: AppId::parse("/prod/web").expect("valid app id"),
            app_version: Timestamp::from_millis(1_443_194_028_343),
            cmd: Some("sleep 1".to_owned()),
            args: vec![],
            user: None,
            unprivileged: false,
            env: BTreeMap::new(),
            labels: BTreeMap::new(),
            cpus: 0.1,
            mem: 128.0,
            disk: 0.0,
            ports: vec![],
            docker: None,
            kill_grace_ms: 3000,
            health_checks: Vec::new(),
        }
    }

    fn port(
        host: u16,
        container: Option<u16>,
        requested: u16,
        name: Option<&str>,
    ) -> PortAssignment {
        PortAssignment {
            host_port: host,
            container_port: container,
            requested,
            name: name.map(str::to_owned),
            protocol: "tcp".to_owned(),
        }
    }

    #[test]
    fn doubles_are_formatted_like_scala() {
        assert_eq!(scala_double(0.1), "0.1");
        assert_eq!(scala_double(128.0), "128.0");
        assert_eq!(scala_double(0.0), "0.0");
        assert_eq!(scala_double(1.5), "1.5");
        assert_eq!(scala_double(0.0001), "1.0E-4");
        assert_eq!(scala_double(15_000_000.0), "1.5E7");
        assert_eq!(scala_double(10_000_000.0), "1.0E7");
        assert_eq!(scala_double(0.001), "0.001");
    }

    #[test]
    fn context_variables_are_set() {
        let env = task_env(&spec(), "/sb", "node1");
        assert_eq!(env["MESOS_TASK_ID"], "prod_web.instance-1._app.1");
        assert_eq!(env["MESOS_SANDBOX"], "/sb");
        assert_eq!(env["MARATHON_APP_ID"], "/prod/web");
        assert_eq!(env["MARATHON_APP_VERSION"], "2015-09-25T15:13:48.343Z");
        assert_eq!(env["MARATHON_APP_RESOURCE_CPUS"], "0.1");
        assert_eq!(env["MARATHON_APP_RESOURCE_MEM"], "128.0");
        assert_eq!(env["MARATHON_APP_RESOURCE_DISK"], "0.0");
        assert_eq!(env["MARATHON_APP_LABELS"], "");
        assert_eq!(env["HOST"], "node1");
        assert!(!env.contains_key("MARATHON_APP_DOCKER_IMAGE"));
        assert!(!env.contains_key("PORT"));
        assert!(!env.contains_key("PORTS"));
    }

    #[test]
    fn docker_image_is_set_for_containers() {
        let mut spec = spec();
        spec.docker = Some(DockerSpec {
            image: "busybox:1".to_owned(),
            network: DockerNetwork::Bridge,
            privileged: false,
            parameters: vec![],
            force_pull_image: false,
            volumes: vec![],
        });
        let env = task_env(&spec, DOCKER_SANDBOX, "h");
        assert_eq!(env["MARATHON_APP_DOCKER_IMAGE"], "busybox:1");
        assert_eq!(env["MESOS_SANDBOX"], "/mnt/mesos/sandbox");
    }

    #[test]
    fn labels_are_sanitised_and_long_ones_skipped() {
        let mut labels = BTreeMap::new();
        labels.insert("haproxy.group".to_owned(), "external".to_owned());
        labels.insert("a--b c".to_owned(), "x".to_owned());
        labels.insert("k".repeat(493), "too long key".to_owned());
        labels.insert("k".repeat(492), "ok".to_owned());
        labels.insert("long".to_owned(), "v".repeat(512));
        labels.insert("almost".to_owned(), "v".repeat(511));
        let env = label_env(&labels);
        assert_eq!(env["MARATHON_APP_LABEL_HAPROXY_GROUP"], "external");
        assert_eq!(env["MARATHON_APP_LABEL_A_B_C"], "x");
        assert_eq!(env["MARATHON_APP_LABEL_ALMOST"].len(), 511);
        assert!(!env.contains_key("MARATHON_APP_LABEL_LONG"));
        assert_eq!(
            env[&format!("MARATHON_APP_LABEL_{}", "K".repeat(492))],
            "ok"
        );
        assert!(!env.contains_key(&format!("MARATHON_APP_LABEL_{}", "K".repeat(493))));
        let names: Vec<&str> = env["MARATHON_APP_LABELS"].split(' ').collect();
        assert_eq!(names.len(), 4);
        assert!(names.contains(&"HAPROXY_GROUP"));
        assert!(names.contains(&"A_B_C"));
    }

    #[test]
    fn ports_follow_marathon() {
        let ports = vec![
            port(31001, None, 0, Some("http")),
            port(31002, None, 8080, None),
            port(0, Some(9000), 9000, Some("admin")),
        ];
        let env = port_env(&ports);
        assert_eq!(env["PORT0"], "31001");
        assert_eq!(env["PORT1"], "31002");
        assert_eq!(env["PORT2"], "9000");
        assert_eq!(env["PORT"], "31001");
        assert_eq!(env["PORTS"], "31001,31002,9000");
        assert_eq!(env["PORT_31001"], "31001");
        assert_eq!(env["PORT_8080"], "31002");
        assert_eq!(env["PORT_9000"], "9000");
        assert_eq!(env["PORT_HTTP"], "31001");
        assert_eq!(env["PORT_ADMIN"], "9000");
    }

    #[test]
    fn user_env_wins() {
        let mut spec = spec();
        spec.ports = vec![port(31001, None, 0, None)];
        spec.env.insert("PORT0".to_owned(), "1".to_owned());
        spec.env.insert("HOST".to_owned(), "mine".to_owned());
        spec.env.insert("MESOS_TASK_ID".to_owned(), "x".to_owned());
        spec.env.insert("EXTRA".to_owned(), "y".to_owned());
        let env = task_env(&spec, "/sb", "node1");
        assert_eq!(env["PORT0"], "1");
        assert_eq!(env["PORT"], "31001");
        assert_eq!(env["HOST"], "mine");
        assert_eq!(env["MESOS_TASK_ID"], "x");
        assert_eq!(env["EXTRA"], "y");
    }
}

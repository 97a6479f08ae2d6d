//! Pure translation for the Docker driver: a [`Launch`] → the container's create body
//! (ports, volumes, limits, labels, allowed `docker.parameters`), a container's end → an
//! [`Exit`], and container names.
//!
//! May depend on: driver::env, protocol, model, bollard's model types (no engine calls).

use super::{AGENT_LABEL, SANDBOX_LABEL, TASK_LABEL};
use crate::env::{task_env, DOCKER_SANDBOX};
use crate::{Exit, Launch};
use bollard::models::{ContainerCreateBody, HostConfig, PortBinding, ResourcesUlimits};
use orch_core::model::{TaskId, TaskState};
use orch_core::protocol::DockerNetwork;
use std::collections::HashMap;

/// The container name of a task: `orch-<task id>` with characters Docker refuses replaced.
pub fn container_name(task: &TaskId) -> String {
    let safe: String = task
        .0
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_.-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("orch-{safe}")
}

/// Parses a Docker memory size: `512m`, `1g`, `1048576`, `-1`.
fn parse_bytes(text: &str) -> Option<i64> {
    let text = text.trim().to_ascii_lowercase();
    if text == "-1" {
        return Some(-1);
    }
    let text = text.trim_end_matches('b');
    let (digits, factor) = match text.chars().last()? {
        'k' => (&text[..text.len() - 1], 1i64 << 10),
        'm' => (&text[..text.len() - 1], 1 << 20),
        'g' => (&text[..text.len() - 1], 1 << 30),
        't' => (&text[..text.len() - 1], 1 << 40),
        _ => (text, 1),
    };
    digits.parse::<i64>().ok()?.checked_mul(factor)
}

/// Labels whose keys start with this are orch's own ([`TASK_LABEL`], [`AGENT_LABEL`],
/// [`SANDBOX_LABEL`] and any later one): a `label` parameter may not set them.
pub const RESERVED_LABEL_PREFIX: &str = "orch.";

/// Applies one `docker.parameters` entry to the container config. Supported keys: `label`
/// (not an `orch.` key: [`RESERVED_LABEL_PREFIX`]), `env`, `hostname`, `user`, `workdir`, `memory-swap`, `ulimit`, `cap-add`, `cap-drop`,
/// `add-host`, `dns`, `dns-search`, `shm-size`, `pids-limit`, `init`, `read-only`,
/// `security-opt`, `tmpfs`. Anything else is refused with a message naming it.
pub fn apply_parameter(
    config: &mut ContainerCreateBody,
    key: &str,
    value: &str,
) -> Result<(), String> {
    let bad = |what: &str| format!("docker parameter '{key}={value}': {what}");
    let host = config.host_config.get_or_insert_with(HostConfig::default);
    match key {
        "label" | "l" => {
            let (k, v) = value.split_once('=').unwrap_or((value, ""));
            if k.trim_start().starts_with(RESERVED_LABEL_PREFIX) {
                return Err(bad(&format!(
                    "labels starting with '{RESERVED_LABEL_PREFIX}' are reserved for orch"
                )));
            }
            config
                .labels
                .get_or_insert_with(HashMap::new)
                .insert(k.to_owned(), v.to_owned());
        }
        "env" | "e" => config
            .env
            .get_or_insert_with(Vec::new)
            .push(value.to_owned()),
        "hostname" | "h" => config.hostname = Some(value.to_owned()),
        "user" | "u" => config.user = Some(value.to_owned()),
        "workdir" | "w" => config.working_dir = Some(value.to_owned()),
        "memory-swap" => {
            host.memory_swap = Some(parse_bytes(value).ok_or_else(|| bad("not a size"))?)
        }
        "shm-size" => host.shm_size = Some(parse_bytes(value).ok_or_else(|| bad("not a size"))?),
        "pids-limit" => {
            host.pids_limit = Some(value.parse().map_err(|_| bad("not a number"))?);
        }
        "ulimit" => {
            let (name, limits) = value
                .split_once('=')
                .ok_or_else(|| bad("expected name=soft[:hard]"))?;
            let (soft, hard) = limits.split_once(':').unwrap_or((limits, limits));
            let number = |t: &str| t.parse::<i64>().map_err(|_| bad("not a number"));
            host.ulimits
                .get_or_insert_with(Vec::new)
                .push(ResourcesUlimits {
                    name: Some(name.to_owned()),
                    soft: Some(number(soft)?),
                    hard: Some(number(hard)?),
                });
        }
        "cap-add" => host
            .cap_add
            .get_or_insert_with(Vec::new)
            .push(value.to_owned()),
        "cap-drop" => host
            .cap_drop
            .get_or_insert_with(Vec::new)
            .push(value.to_owned()),
        "add-host" => host
            .extra_hosts
            .get_or_insert_with(Vec::new)
            .push(value.to_owned()),
        "dns" => host.dns.get_or_insert_with(Vec::new).push(value.to_owned()),
        "dns-search" => host
            .dns_search
            .get_or_insert_with(Vec::new)
            .push(value.to_owned()),
        "security-opt" => host
            .security_opt
            .get_or_insert_with(Vec::new)
            .push(value.to_owned()),
        "init" => host.init = Some(value.parse().map_err(|_| bad("expected true or false"))?),
        "read-only" => {
            host.readonly_rootfs = Some(value.parse().map_err(|_| bad("expected true or false"))?)
        }
        "tmpfs" => {
            let (path, options) = value.split_once(':').unwrap_or((value, ""));
            host.tmpfs
                .get_or_insert_with(HashMap::new)
                .insert(path.to_owned(), options.to_owned());
        }
        _ => return Err(format!("docker parameter '{key}' is not supported")),
    }
    Ok(())
}

/// The container a launch asks for (pure; the image must already be present).
pub fn container_config(launch: &Launch, agent: &str) -> Result<ContainerCreateBody, String> {
    let spec = &launch.spec;
    let docker = spec
        .docker
        .as_ref()
        .ok_or_else(|| "the task has no docker container".to_owned())?;
    let env = task_env(spec, DOCKER_SANDBOX, &launch.hostname);
    let labels: HashMap<String, String> = spec.labels.clone().into_iter().collect();
    let (entrypoint, cmd) = match (&spec.cmd, spec.args.is_empty()) {
        (Some(cmd), _) => (
            Some(vec!["/bin/sh".to_owned(), "-c".to_owned()]),
            Some(vec![cmd.clone()]),
        ),
        (None, false) => (None, Some(spec.args.clone())),
        (None, true) => (None, None),
    };
    let mut binds = vec![format!("{}:{DOCKER_SANDBOX}", launch.sandbox.display())];
    for volume in &docker.volumes {
        let source = volume
            .host_path
            .as_ref()
            .or(volume.name.as_ref())
            .ok_or_else(|| {
                format!(
                    "volume {} has neither a host path nor a name",
                    volume.container_path
                )
            })?;
        let mode = if volume.read_only { ":ro" } else { ":rw" };
        binds.push(format!("{source}:{}{mode}", volume.container_path));
    }
    // Float-to-int `as` saturates: absurd sizes become i64::MAX, never wrap.
    #[allow(clippy::cast_possible_truncation)]
    let memory = (spec.mem > 0.0).then_some((spec.mem * 1024.0 * 1024.0) as i64);
    #[allow(clippy::cast_possible_truncation)]
    let cpu_shares = (spec.cpus > 0.0).then(|| ((spec.cpus * 1024.0) as i64).max(2));
    let mut host = HostConfig {
        binds: Some(binds),
        privileged: Some(docker.privileged),
        cpu_shares,
        memory,
        memory_swap: memory,
        ..HostConfig::default()
    };
    let mut exposed = Vec::new();
    match docker.network {
        DockerNetwork::Host => host.network_mode = Some("host".to_owned()),
        DockerNetwork::Bridge => {
            host.network_mode = Some("bridge".to_owned());
            let mut bindings: HashMap<String, Option<Vec<PortBinding>>> = HashMap::new();
            for port in &spec.ports {
                let container_port = match port.container_port {
                    Some(0) | None => port.host_port,
                    Some(p) => p,
                };
                if container_port == 0 {
                    continue;
                }
                for protocol in port.protocol.split(',').map(str::trim) {
                    let key = format!("{container_port}/{protocol}");
                    exposed.push(key.clone());
                    if port.host_port != 0 {
                        bindings
                            .entry(key)
                            .or_insert_with(|| Some(Vec::new()))
                            .get_or_insert_with(Vec::new)
                            .push(PortBinding {
                                host_ip: None,
                                host_port: Some(port.host_port.to_string()),
                            });
                    }
                }
            }
            host.port_bindings = Some(bindings);
        }
    }
    let mut config = ContainerCreateBody {
        image: Some(docker.image.clone()),
        entrypoint,
        cmd,
        env: Some(env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
        labels: Some(labels),
        exposed_ports: (!exposed.is_empty()).then_some(exposed),
        user: spec.user.clone(),
        host_config: Some(host),
        ..ContainerCreateBody::default()
    };
    for (key, value) in &docker.parameters {
        apply_parameter(&mut config, key, value)?;
    }
    // Last, so that neither the app's labels nor its parameters can replace them.
    let labels = config.labels.get_or_insert_with(HashMap::new);
    labels.insert(TASK_LABEL.to_owned(), spec.task_id.to_string());
    labels.insert(AGENT_LABEL.to_owned(), agent.to_owned());
    labels.insert(
        SANDBOX_LABEL.to_owned(),
        launch.sandbox.to_string_lossy().into_owned(),
    );
    Ok(config)
}

/// How a container's end maps to a task status.
pub fn container_exit(
    exit_code: i64,
    oom_killed: bool,
    killed: bool,
    error: Option<&str>,
    mem_mib: f64,
) -> Exit {
    let how = format!("Container exited with status {exit_code}");
    if oom_killed {
        return Exit {
            state: TaskState::Failed,
            message: format!("Memory limit exceeded: Requested: {mem_mib}MB"),
            reason: Some("REASON_CONTAINER_LIMITATION_MEMORY".to_owned()),
        };
    }
    if killed {
        return Exit {
            state: TaskState::Killed,
            message: how,
            reason: None,
        };
    }
    match (exit_code, error.filter(|e| !e.is_empty())) {
        (0, None) => Exit {
            state: TaskState::Finished,
            message: how,
            reason: None,
        },
        (_, Some(error)) => Exit {
            state: TaskState::Failed,
            message: format!("{how}: {error}"),
            reason: Some("REASON_COMMAND_EXECUTOR_FAILED".to_owned()),
        },
        _ => Exit {
            state: TaskState::Failed,
            message: how,
            reason: Some("REASON_COMMAND_EXECUTOR_FAILED".to_owned()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use orch_core::model::{AppId, Timestamp};
    use orch_core::protocol::{DockerSpec, PortAssignment, TaskSpec, VolumeSpec};
    use std::collections::BTreeMap;
    use std::path::PathBuf;

    fn launch(network: DockerNetwork, parameters: &[(&str, &str)]) -> Launch {
        Launch {
            spec: TaskSpec {
                task_id: TaskId("web.instance-1._app.1".to_owned()),
                app_id: AppId::parse("/web").expect("valid app id"),
                app_version: Timestamp::from_millis(0),
                cmd: Some("httpd -f".to_owned()),
                args: vec![],
                user: None,
                unprivileged: false,
                env: BTreeMap::new(),
                labels: [("HAPROXY_GROUP".to_owned(), "external".to_owned())].into(),
                cpus: 0.5,
                mem: 64.0,
                disk: 0.0,
                ports: vec![
                    PortAssignment {
                        host_port: 31000,
                        container_port: Some(8080),
                        requested: 0,
                        name: None,
                        protocol: "tcp".to_owned(),
                    },
                    PortAssignment {
                        host_port: 31001,
                        container_port: Some(0),
                        requested: 0,
                        name: None,
                        protocol: "udp,tcp".to_owned(),
                    },
                ],
                docker: Some(DockerSpec {
                    image: "busybox:1".to_owned(),
                    network,
                    privileged: false,
                    parameters: parameters
                        .iter()
                        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                        .collect(),
                    force_pull_image: false,
                    volumes: vec![VolumeSpec {
                        container_path: "/data".to_owned(),
                        host_path: Some("/srv/data".to_owned()),
                        name: None,
                        read_only: true,
                    }],
                }),
                kill_grace_ms: 3000,
                health_checks: Vec::new(),
            },
            sandbox: PathBuf::from("/work/sandboxes/web.instance-1._app.1"),
            hostname: "node-1".to_owned(),
            agent_ip: "10.0.0.1".to_owned(),
        }
    }

    #[test]
    fn names_are_docker_safe() {
        assert_eq!(
            container_name(&TaskId("a_b.instance-x/y._app.1".to_owned())),
            "orch-a_b.instance-x_y._app.1"
        );
    }

    #[test]
    fn bridge_config_maps_ports_volumes_labels_and_limits() {
        let config = container_config(&launch(DockerNetwork::Bridge, &[]), "agent-1")
            .expect("a valid launch");
        assert_eq!(
            config.entrypoint,
            Some(vec!["/bin/sh".to_owned(), "-c".to_owned()])
        );
        assert_eq!(config.cmd, Some(vec!["httpd -f".to_owned()]));
        let labels = config.labels.clone().expect("set by container_config");
        assert_eq!(labels[TASK_LABEL], "web.instance-1._app.1");
        assert_eq!(labels[AGENT_LABEL], "agent-1");
        assert_eq!(labels["HAPROXY_GROUP"], "external");
        let env = config.env.clone().expect("set by container_config");
        assert!(env.contains(&"MESOS_SANDBOX=/mnt/mesos/sandbox".to_owned()));
        assert!(env.contains(&"PORT0=31000".to_owned()));
        let host = config.host_config.expect("set by container_config");
        assert_eq!(host.network_mode.as_deref(), Some("bridge"));
        let bindings = host.port_bindings.expect("set by container_config");
        let binding = |key: &str| {
            bindings[key].clone().expect("set by container_config")[0]
                .host_port
                .clone()
        };
        assert_eq!(binding("8080/tcp").as_deref(), Some("31000"));
        assert_eq!(binding("31001/udp").as_deref(), Some("31001"));
        assert_eq!(binding("31001/tcp").as_deref(), Some("31001"));
        assert_eq!(
            host.binds.expect("set by container_config"),
            vec![
                "/work/sandboxes/web.instance-1._app.1:/mnt/mesos/sandbox".to_owned(),
                "/srv/data:/data:ro".to_owned()
            ]
        );
        assert_eq!(host.cpu_shares, Some(512));
        assert_eq!(host.memory, Some(64 * 1024 * 1024));
    }

    #[test]
    fn host_network_has_no_bindings() {
        let config =
            container_config(&launch(DockerNetwork::Host, &[]), "a").expect("a valid launch");
        let host = config.host_config.expect("set by container_config");
        assert_eq!(host.network_mode.as_deref(), Some("host"));
        assert!(host.port_bindings.is_none());
        assert!(config.exposed_ports.is_none());
    }

    #[test]
    fn parameters_on_the_allow_list_are_applied() {
        let config = container_config(
            &launch(
                DockerNetwork::Bridge,
                &[
                    ("label", "team=core"),
                    ("env", "EXTRA=1"),
                    ("hostname", "box"),
                    ("user", "nobody"),
                    ("workdir", "/tmp"),
                    ("memory-swap", "1g"),
                    ("ulimit", "nofile=1024:2048"),
                    ("cap-add", "NET_ADMIN"),
                    ("cap-drop", "MKNOD"),
                    ("add-host", "db:10.0.0.2"),
                    ("dns", "10.0.0.53"),
                ],
            ),
            "a",
        )
        .expect("a valid launch");
        assert_eq!(
            config.labels.expect("set by container_config")["team"],
            "core"
        );
        assert!(config
            .env
            .expect("set by container_config")
            .contains(&"EXTRA=1".to_owned()));
        assert_eq!(config.hostname.as_deref(), Some("box"));
        assert_eq!(config.user.as_deref(), Some("nobody"));
        assert_eq!(config.working_dir.as_deref(), Some("/tmp"));
        let host = config.host_config.expect("set by container_config");
        assert_eq!(host.memory_swap, Some(1 << 30));
        let ulimit = &host.ulimits.expect("set by container_config")[0];
        assert_eq!(
            (ulimit.name.as_deref(), ulimit.soft, ulimit.hard),
            (Some("nofile"), Some(1024), Some(2048))
        );
        assert_eq!(
            host.cap_add.expect("set by container_config"),
            vec!["NET_ADMIN".to_owned()]
        );
        assert_eq!(
            host.cap_drop.expect("set by container_config"),
            vec!["MKNOD".to_owned()]
        );
        assert_eq!(
            host.extra_hosts.expect("set by container_config"),
            vec!["db:10.0.0.2".to_owned()]
        );
        assert_eq!(
            host.dns.expect("set by container_config"),
            vec!["10.0.0.53".to_owned()]
        );
    }

    #[test]
    fn unknown_parameters_are_refused_by_name() {
        let error = container_config(
            &launch(DockerNetwork::Bridge, &[("volume-driver", "x")]),
            "a",
        )
        .unwrap_err();
        assert_eq!(error, "docker parameter 'volume-driver' is not supported");
        let error = container_config(&launch(DockerNetwork::Bridge, &[("ulimit", "nofile")]), "a")
            .unwrap_err();
        assert!(error.contains("ulimit"), "{error}");
    }

    #[test]
    fn orch_labels_cannot_be_set_or_overridden_by_the_app() {
        for (key, value) in [
            ("label", "orch.sandbox=/etc/cron.d"),
            ("l", "orch.agent=someone-else"),
            ("label", "orch.anything"),
        ] {
            let error = container_config(&launch(DockerNetwork::Bridge, &[(key, value)]), "a")
                .expect_err("an orch. label parameter is refused");
            assert!(
                error.contains(value) && error.contains("reserved for orch"),
                "{error}"
            );
        }
        let mut hostile = launch(DockerNetwork::Bridge, &[("label", "orchestra=yes")]);
        hostile
            .spec
            .labels
            .insert(SANDBOX_LABEL.to_owned(), "/etc/cron.d".to_owned());
        hostile
            .spec
            .labels
            .insert(TASK_LABEL.to_owned(), "other-task".to_owned());
        let labels = container_config(&hostile, "agent-1")
            .expect("app labels are allowed")
            .labels
            .expect("set by container_config");
        assert_eq!(
            labels[SANDBOX_LABEL],
            "/work/sandboxes/web.instance-1._app.1"
        );
        assert_eq!(labels[TASK_LABEL], "web.instance-1._app.1");
        assert_eq!(labels[AGENT_LABEL], "agent-1");
        assert_eq!(labels["orchestra"], "yes");
    }

    #[test]
    fn sizes_parse_like_docker() {
        assert_eq!(parse_bytes("512m"), Some(512 << 20));
        assert_eq!(parse_bytes("1g"), Some(1 << 30));
        assert_eq!(parse_bytes("100"), Some(100));
        assert_eq!(parse_bytes("-1"), Some(-1));
        assert_eq!(parse_bytes("lots"), None);
    }

    #[test]
    fn exits_map_to_states() {
        assert_eq!(
            container_exit(0, false, false, None, 64.0).state,
            TaskState::Finished
        );
        let failed = container_exit(3, false, false, None, 64.0);
        assert_eq!(failed.state, TaskState::Failed);
        assert_eq!(failed.message, "Container exited with status 3");
        assert_eq!(
            container_exit(143, false, true, None, 64.0).state,
            TaskState::Killed
        );
        let oom = container_exit(137, true, false, None, 64.0);
        assert_eq!(oom.message, "Memory limit exceeded: Requested: 64MB");
        assert_eq!(
            oom.reason.as_deref(),
            Some("REASON_CONTAINER_LIMITATION_MEMORY")
        );
    }
}

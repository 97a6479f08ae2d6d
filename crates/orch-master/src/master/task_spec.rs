//! What an agent needs to run a task, built from the app definition (at the version the task
//! runs) and the task's placement.

use orch_core::model::{App, EnvValue, HealthCheck, HealthTarget, Task};
use orch_core::protocol::{
    DockerNetwork, DockerSpec, HealthCheckSpec, PortAssignment, TaskSpec, VolumeSpec,
};
use orch_core::state::ClusterState;
use serde_json::Value;

/// Marathon's default SIGTERM → SIGKILL window.
const DEFAULT_KILL_GRACE_MS: u64 = 3_000;

/// The spec of `task`, or `None` if its app is gone (it is then being killed anyway).
pub fn task_spec(state: &ClusterState, task: &Task) -> Option<TaskSpec> {
    let app = state
        .app_version(&task.app_id, task.version)
        .or_else(|| state.apps.get(&task.app_id))?;
    Some(build(app, task))
}

fn build(app: &App, task: &Task) -> TaskSpec {
    let spec = &app.spec;
    let ports = ports(app, task);
    let health_checks = spec
        .health_checks()
        .iter()
        .map(|check| health_check(check, &ports))
        .collect();
    TaskSpec {
        task_id: task.id.clone(),
        app_id: task.app_id.clone(),
        app_version: task.version,
        cmd: spec.cmd.clone(),
        args: spec.args.clone(),
        user: spec.user.clone(),
        unprivileged: app.unprivileged,
        env: spec
            .env
            .iter()
            .filter_map(|(key, value)| match value {
                EnvValue::Text(value) => Some((key.clone(), value.clone())),
                EnvValue::Secret(_) => None,
            })
            .collect(),
        labels: spec.labels.clone(),
        cpus: spec.cpus,
        mem: spec.mem,
        disk: spec.disk,
        ports,
        docker: docker(app),
        kill_grace_ms: spec
            .task_kill_grace_period_seconds
            .and_then(|seconds| u64::try_from(seconds).ok())
            .map_or(DEFAULT_KILL_GRACE_MS, |seconds| {
                seconds.saturating_mul(1000)
            }),
        health_checks,
    }
}

/// The task's ports in definition (host networking) or mapping order. Host ports were
/// allocated in the same order, skipping mappings without one.
fn ports(app: &App, task: &Task) -> Vec<PortAssignment> {
    let spec = &app.spec;
    let mut host_ports = task.ports.iter().copied();
    if spec.host_networking() {
        spec.port_definitions
            .iter()
            .map(|definition| PortAssignment {
                host_port: host_ports.next().unwrap_or(0),
                container_port: None,
                requested: if spec.require_ports {
                    definition.port
                } else {
                    0
                },
                name: definition.name.clone(),
                protocol: definition.protocol.clone(),
            })
            .collect()
    } else {
        spec.port_mappings()
            .iter()
            .map(|mapping| {
                let host_port = match mapping.host_port {
                    Some(_) => host_ports.next().unwrap_or(0),
                    None => 0,
                };
                let container_port = if mapping.container_port == 0 {
                    host_port
                } else {
                    mapping.container_port
                };
                PortAssignment {
                    host_port,
                    container_port: Some(container_port),
                    requested: mapping.host_port.unwrap_or(0),
                    name: mapping.name.clone(),
                    protocol: mapping.protocol.clone(),
                }
            })
            .collect()
    }
}

fn docker(app: &App) -> Option<DockerSpec> {
    let container = app.spec.container.as_ref()?;
    let docker = container.docker.as_ref()?;
    let volumes = container
        .volumes
        .iter()
        .filter_map(|volume| {
            let container_path = volume.get("containerPath")?.as_str()?.to_owned();
            let host = volume.get("hostPath")?.as_str()?;
            let read_only = volume.get("mode").and_then(Value::as_str) == Some("RO");
            let (host_path, name) = if host.starts_with('/') {
                (Some(host.to_owned()), None)
            } else {
                (None, Some(host.to_owned()))
            };
            Some(VolumeSpec {
                container_path,
                host_path,
                name,
                read_only,
            })
        })
        .collect();
    Some(DockerSpec {
        image: docker.image.clone(),
        network: if app.spec.host_networking() {
            DockerNetwork::Host
        } else {
            DockerNetwork::Bridge
        },
        privileged: docker.privileged,
        parameters: docker
            .parameters
            .iter()
            .map(|p| (p.key.clone(), p.value.clone()))
            .collect(),
        force_pull_image: docker.force_pull_image,
        volumes,
    })
}

fn health_check(check: &HealthCheck, ports: &[PortAssignment]) -> HealthCheckSpec {
    let seconds = |value: i64| u64::try_from(value).unwrap_or(0);
    let port = match check.target() {
        HealthTarget::Port(port) => Some(port),
        HealthTarget::PortIndex(index) => ports.get(index).map(|p| {
            if p.host_port != 0 {
                p.host_port
            } else {
                p.container_port.unwrap_or(0)
            }
        }),
        HealthTarget::None => None,
    };
    HealthCheckSpec {
        protocol: serde_json::to_value(check.protocol)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_else(|| "HTTP".into()),
        path: check.path.clone(),
        port,
        command: check.command.as_ref().map(|c| c.value.clone()),
        grace_period_seconds: seconds(check.grace_period_seconds),
        interval_seconds: seconds(check.interval_seconds),
        timeout_seconds: seconds(check.timeout_seconds),
        max_consecutive_failures: u32::try_from(check.max_consecutive_failures).unwrap_or(0),
        delay_seconds: seconds(check.delay_seconds),
        ignore_http1xx: check.ignore_http1xx,
    }
}

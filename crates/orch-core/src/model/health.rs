//! Health and readiness checks of an app definition, with Marathon's defaults.
//!
//! Marathon-level checks (`HTTP`, `HTTPS`, `TCP`) are probed by the leader; `COMMAND` and
//! `MESOS_*` checks by the agent running the task. Which port a check probes: `port` if set,
//! otherwise the port at `portIndex` of the app's port definitions or mappings (normalisation
//! sets `portIndex: 0` on checks that name neither, when the app has ports).

/// How a health check probes a task.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum HealthProtocol {
    /// HTTP GET from the leader; 200..399 passes.
    #[default]
    #[serde(rename = "HTTP")]
    Http,
    /// HTTPS GET from the leader (certificate not verified).
    #[serde(rename = "HTTPS")]
    Https,
    /// TCP connect from the leader.
    #[serde(rename = "TCP")]
    Tcp,
    /// A shell command on the agent; exit 0 passes.
    #[serde(rename = "COMMAND")]
    Command,
    /// HTTP GET from the agent, inside the task's network.
    #[serde(rename = "MESOS_HTTP")]
    MesosHttp,
    /// HTTPS GET from the agent.
    #[serde(rename = "MESOS_HTTPS")]
    MesosHttps,
    /// TCP connect from the agent.
    #[serde(rename = "MESOS_TCP")]
    MesosTcp,
}

impl HealthProtocol {
    /// Probed by the agent (Mesos-level) rather than the leader.
    pub fn is_mesos_level(self) -> bool {
        matches!(
            self,
            Self::Command | Self::MesosHttp | Self::MesosHttps | Self::MesosTcp
        )
    }

    /// Probes a port (everything but `COMMAND`).
    pub fn uses_port(self) -> bool {
        self != Self::Command
    }

    /// Sends an HTTP request (and so has a `path`).
    pub fn is_http(self) -> bool {
        matches!(
            self,
            Self::Http | Self::Https | Self::MesosHttp | Self::MesosHttps
        )
    }
}

/// The command of a `COMMAND` health check.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct CommandCheck {
    /// Shell command line, run with `sh -c`.
    pub value: String,
}

/// One entry of an app's `healthChecks`.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct HealthCheck {
    /// How to probe.
    pub protocol: HealthProtocol,
    /// HTTP path (HTTP protocols; normalised to `/` when absent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Index into the app's ports.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port_index: Option<u32>,
    /// A fixed port to probe instead of an indexed one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// The command of a `COMMAND` check.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<CommandCheck>,
    /// Failures are ignored this long after the task started (until the first success).
    pub grace_period_seconds: i64,
    /// Time between probes.
    pub interval_seconds: i64,
    /// A probe taking longer fails.
    pub timeout_seconds: i64,
    /// Failures in a row before the task is killed; 0 = never (Marathon-level checks).
    pub max_consecutive_failures: i64,
    /// Delay before the first probe (Mesos-level checks only).
    pub delay_seconds: i64,
    /// A 1xx answer leaves the health unchanged.
    #[serde(rename = "ignoreHttp1xx")]
    pub ignore_http1xx: bool,
    /// `IPv4` or `IPv6`.
    pub ip_protocol: String,
}

impl Default for HealthCheck {
    fn default() -> Self {
        Self {
            protocol: HealthProtocol::Http,
            path: None,
            port_index: None,
            port: None,
            command: None,
            grace_period_seconds: 300,
            interval_seconds: 60,
            timeout_seconds: 20,
            max_consecutive_failures: 3,
            delay_seconds: 15,
            ignore_http1xx: false,
            ip_protocol: "IPv4".into(),
        }
    }
}

/// Which port a health check probes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HealthTarget {
    /// This fixed port.
    Port(u16),
    /// The task's port at this index (host port, or container port for Mesos-level checks).
    PortIndex(usize),
    /// No port (COMMAND checks, or a check on an app without ports).
    None,
}

impl HealthCheck {
    /// The port this check probes: `port` wins over `portIndex`.
    pub fn target(&self) -> HealthTarget {
        match (self.port, self.port_index) {
            (Some(port), _) => HealthTarget::Port(port),
            (None, Some(index)) if self.protocol.uses_port() => {
                HealthTarget::PortIndex(usize::try_from(index).unwrap_or(usize::MAX))
            }
            _ => HealthTarget::None,
        }
    }
}

/// Protocol of a readiness check.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ReadinessProtocol {
    /// Plain HTTP.
    #[default]
    #[serde(rename = "HTTP")]
    Http,
    /// HTTPS.
    #[serde(rename = "HTTPS")]
    Https,
}

/// One entry of an app's `readinessChecks` (probed during deployments only).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ReadinessCheck {
    /// Its name.
    pub name: String,
    /// How to probe.
    pub protocol: ReadinessProtocol,
    /// HTTP path.
    pub path: String,
    /// The name of the port definition or mapping to probe.
    pub port_name: String,
    /// Time between probes.
    pub interval_seconds: i64,
    /// A probe taking longer fails; must be below `intervalSeconds`.
    pub timeout_seconds: i64,
    /// Statuses that mean ready.
    pub http_status_codes_for_ready: Vec<u16>,
    /// Keep the last response for the API.
    pub preserve_last_response: bool,
}

impl Default for ReadinessCheck {
    fn default() -> Self {
        Self {
            name: "readinessCheck".into(),
            protocol: ReadinessProtocol::Http,
            path: "/".into(),
            port_name: "http-api".into(),
            interval_seconds: 30,
            timeout_seconds: 10,
            http_status_codes_for_ready: vec![200],
            preserve_last_response: false,
        }
    }
}

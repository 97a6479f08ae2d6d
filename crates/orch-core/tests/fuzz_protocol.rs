//! Hostile agent protocol messages (issue 18), fuzzed on stable with proptest (see
//! `common/fuzz.rs` for why not cargo-fuzz, and the `ORCH_FUZZ_CASES` knob).
//!
//! The master decodes agent bodies with axum's `Json` (serde_json from bytes) into
//! [`Registration`], [`Heartbeat`] and [`StatusBatch`], and writes them as
//! `Command::RegisterAgent`, `AgentReachable` and `StatusUpdates`; the agent decodes
//! [`DesiredSet`], [`Registered`], [`StatusAck`] and [`NotLeader`], and `after=TERM.INDEX` is
//! a [`Generation`]. Each case decodes bytes as every one of these and applies what decodes
//! to a cluster state with an agent, an app and its task.
//!
//! Properties: nothing panics; undecodable bytes are an error; whatever decodes encodes and
//! decodes again to an equal value (through `serde_json::Value`, so that float printing is
//! not what is tested); a generation's text round-trips.

#[path = "common/fuzz.rs"]
mod fuzz;

use orch_core::model::{
    AgentId, AgentInfo, App, AppId, DeploymentId, Goal, PortRange, Resources, Task, TaskId,
    TaskState, Timestamp,
};
use orch_core::protocol::{
    DesiredSet, DockerNetwork, DockerSpec, Generation, HealthCheckSpec, HealthReport, Heartbeat,
    NotLeader, PortAssignment, Registered, Registration, StatusAck, StatusBatch, StatusUpdate,
    TaskSpec, VolumeSpec, PROTOCOL_VERSION,
};
use orch_core::state::{ClusterState, Command};
use proptest::prelude::*;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::Debug;

/// The one agent of [`state`].
const AGENT: &str = "0a1b2c3d-1111-2222-3333-444455556666-S0";

fn agent_info() -> AgentInfo {
    AgentInfo {
        id: AgentId(AGENT.into()),
        hostname: "agent0.example".into(),
        address: "10.0.0.10:5051".into(),
        resources: Resources {
            cpus: 4.0,
            mem: 4096.0,
            disk: 10_240.0,
            ports: vec![PortRange {
                begin: 31_000,
                end: 32_000,
            }],
        },
        attributes: BTreeMap::from([("rack".to_owned(), "r1".to_owned())]),
        role: "*".into(),
        containerizers: vec!["mesos".into(), "docker".into()],
    }
}

fn task_id() -> TaskId {
    let app = AppId::parse("/web").expect("valid id");
    TaskId::new(&app, "abc", 1)
}

fn status_update(seq: u64, state: TaskState) -> StatusUpdate {
    StatusUpdate {
        seq,
        task_id: task_id(),
        state,
        message: "exited".into(),
        reason: Some("REASON_COMMAND_EXECUTOR_FAILED".into()),
        timestamp: Timestamp::from_millis(5_000),
        ip_addresses: vec!["10.0.0.10".into()],
        health: Some(HealthReport {
            index: 0,
            alive: false,
            consecutive_failures: 2,
            cause: Some("connection refused".into()),
        }),
    }
}

fn desired_set() -> DesiredSet {
    DesiredSet {
        generation: Generation { term: 3, index: 77 },
        tasks: vec![TaskSpec {
            task_id: task_id(),
            app_id: AppId::parse("/web").expect("valid id"),
            app_version: Timestamp::from_millis(1),
            cmd: Some("sleep 100".into()),
            args: vec!["-x".into()],
            user: Some("nobody".into()),
            unprivileged: true,
            env: BTreeMap::from([("A".to_owned(), "b".to_owned())]),
            labels: BTreeMap::from([("HAPROXY_GROUP".to_owned(), "external".to_owned())]),
            cpus: 0.25,
            mem: 64.0,
            disk: 0.0,
            ports: vec![PortAssignment {
                host_port: 31_001,
                container_port: Some(80),
                requested: 0,
                name: Some("http".into()),
                protocol: "udp,tcp".into(),
            }],
            docker: Some(DockerSpec {
                image: "nginx:1".into(),
                network: DockerNetwork::Bridge,
                privileged: false,
                parameters: vec![("label".into(), "a=b".into())],
                force_pull_image: true,
                volumes: vec![VolumeSpec {
                    container_path: "/data".into(),
                    host_path: Some("/tmp".into()),
                    name: None,
                    read_only: true,
                }],
            }),
            kill_grace_ms: 3_000,
            health_checks: vec![HealthCheckSpec {
                protocol: "HTTP".into(),
                path: Some("/".into()),
                port: Some(31_001),
                command: None,
                grace_period_seconds: 5,
                interval_seconds: 10,
                timeout_seconds: 2,
                max_consecutive_failures: 3,
                delay_seconds: 0,
                ignore_http1xx: false,
            }],
        }],
    }
}

/// One valid message of every kind, as JSON.
fn seeds() -> Vec<Value> {
    fn json(value: &impl Serialize) -> Value {
        serde_json::to_value(value).expect("protocol types serialise")
    }
    vec![
        json(&Registration {
            protocol: PROTOCOL_VERSION,
            agent: agent_info(),
        }),
        json(&Heartbeat {
            agent_id: AgentId(AGENT.into()),
            running: vec![task_id()],
        }),
        json(&StatusBatch {
            agent_id: AgentId(AGENT.into()),
            updates: vec![
                status_update(1, TaskState::Running),
                status_update(2, TaskState::Failed),
            ],
        }),
        json(&desired_set()),
        json(&Registered {
            heartbeat_interval_ms: 1_000,
        }),
        json(&StatusAck { through: 2 }),
        json(&NotLeader {
            leader: Some("10.0.0.1:8080".into()),
        }),
    ]
}

/// A state with the standard agent registered, an app `/web` and its task on the agent.
fn state() -> ClusterState {
    let mut state = ClusterState::default();
    state.apply(
        1,
        Command::RegisterAgent {
            info: agent_info(),
            at: Timestamp::from_millis(1),
        },
    );
    let definition = serde_json::json!({"cmd": "sleep 100", "instances": 1,
        "healthChecks": [{"protocol": "COMMAND", "command": {"value": "true"}}]});
    let app_id = AppId::parse("/web").expect("valid id");
    let app = App::from_json(
        app_id.clone(),
        Timestamp::from_millis(1),
        definition.as_object().expect("an object"),
    )
    .expect("a valid app");
    state.apply(
        2,
        Command::CreateApp {
            app: Box::new(app),
            deployment_id: DeploymentId("d".into()),
            force: true,
        },
    );
    let task = Task {
        id: task_id(),
        app_id,
        agent_id: AgentId(AGENT.into()),
        host: "agent0.example".into(),
        ports: vec![31_001],
        version: Timestamp::from_millis(1),
        state: TaskState::Staging,
        goal: Goal::Running,
        staged_at: Timestamp::from_millis(2),
        started_at: None,
        updated_at: Timestamp::from_millis(2),
        message: String::new(),
        reason: None,
        ip_addresses: Vec::new(),
        health: Vec::new(),
    };
    state.apply(3, Command::LaunchTasks { tasks: vec![task] });
    state
}

/// `bytes` decoded as a `T`: if it decodes, it must survive a round trip.
fn decoded<T>(bytes: &[u8]) -> Option<T>
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    let value: T = serde_json::from_slice(bytes).ok()?;
    let json = serde_json::to_value(&value)
        .unwrap_or_else(|e| panic!("{value:?} decoded but does not encode: {e}"));
    let again: T = serde_json::from_value(json.clone())
        .unwrap_or_else(|e| panic!("{json} does not decode again: {e}"));
    assert_eq!(again, value, "round trip of {json}");
    Some(value)
}

/// What master and agent do with `bytes`.
fn exercise(bytes: &[u8], state: &ClusterState) {
    let mut state = state.clone();
    if let Some(registration) = decoded::<Registration>(bytes) {
        state.apply(
            10,
            Command::RegisterAgent {
                info: registration.agent,
                at: Timestamp::from_millis(10),
            },
        );
    }
    if let Some(heartbeat) = decoded::<Heartbeat>(bytes) {
        state.apply(
            11,
            Command::AgentsUnreachable {
                agents: vec![heartbeat.agent_id.clone()],
                at: Timestamp::from_millis(11),
            },
        );
        state.apply(
            12,
            Command::AgentReachable {
                agent_id: heartbeat.agent_id,
                running: heartbeat.running,
                at: Timestamp::from_millis(12),
            },
        );
    }
    if let Some(batch) = decoded::<StatusBatch>(bytes) {
        state.apply(
            13,
            Command::StatusUpdates {
                agent_id: batch.agent_id,
                updates: batch.updates,
            },
        );
    }
    let _ = decoded::<DesiredSet>(bytes);
    let _ = decoded::<Registered>(bytes);
    let _ = decoded::<StatusAck>(bytes);
    let _ = decoded::<NotLeader>(bytes);
}

fn byte_seeds() -> Vec<Vec<u8>> {
    seeds()
        .iter()
        .map(|value| serde_json::to_vec(value).expect("JSON"))
        .collect()
}

#[test]
fn every_seed_decodes_and_applies() {
    let state = state();
    assert!(
        state.agents.len() == 1 && state.tasks.len() == 1,
        "{state:?}"
    );
    for bytes in byte_seeds() {
        exercise(&bytes, &state);
    }
    let batch: StatusBatch = serde_json::from_slice(&byte_seeds()[2]).expect("a batch");
    assert_eq!(batch.updates.len(), 2);
}

proptest! {
    #![proptest_config(fuzz::config(1_000))]

    #[test]
    fn fuzz_protocol_messages_mutated(value in fuzz::mutated_json(seeds())) {
        thread_local!(static STATE: ClusterState = state());
        let bytes = serde_json::to_vec(&value).expect("JSON");
        STATE.with(|state| exercise(&bytes, state));
    }

    #[test]
    fn fuzz_protocol_bytes(bytes in prop_oneof![
        fuzz::mutated_bytes(byte_seeds()),
        fuzz::random_bytes(128),
    ]) {
        thread_local!(static STATE: ClusterState = state());
        STATE.with(|state| exercise(&bytes, state));
    }

    #[test]
    fn fuzz_generation_text(text in prop_oneof![
        "[0-9]{0,21}\\.[0-9]{0,21}",
        "[0-9.+-]{0,12}",
        any::<String>(),
    ]) {
        if let Ok(generation) = text.parse::<Generation>() {
            prop_assert_eq!(generation.to_string().parse::<Generation>(), Ok(generation));
        }
    }
}

//! Determinism: the same commands give the same state, also through a snapshot round trip.

use super::*;
use crate::model::{DeploymentId, Timestamp};
use proptest::prelude::*;
use serde_json::{json, Map, Value};

fn app_id() -> impl Strategy<Value = AppId> {
    prop::sample::select(vec!["/a", "/b", "/g/c", "/g/d"])
        .prop_map(|id| AppId::parse(id).expect("valid id"))
}

fn definition() -> impl Strategy<Value = Map<String, Value>> {
    (
        0u32..5,
        prop::sample::select(vec!["sleep 1", "sleep 2"]),
        prop::sample::select(vec![json!([0]), json!([0, 0]), json!([]), json!([10001])]),
    )
        .prop_map(|(instances, cmd, ports)| {
            json!({"instances": instances, "cmd": cmd, "ports": ports})
                .as_object()
                .cloned()
                .unwrap_or_default()
        })
}

fn command() -> impl Strategy<Value = Command> {
    prop_oneof![
        4 => single_command(),
        1 => prop::collection::vec(single_command(), 0..5).prop_map(Command::Batch),
    ]
}

fn single_command() -> impl Strategy<Value = Command> {
    let deployment = any::<u16>().prop_map(|n| DeploymentId(format!("d-{n}")));
    let version = (0u64..1_000_000).prop_map(Timestamp::from_millis);
    prop_oneof![
        (app_id(), version.clone(), definition(), deployment.clone()).prop_map(
            |(id, version, def, deployment_id)| {
                Command::CreateApp {
                    app: Box::new(App::from_json(id, version, &def).expect("valid definition")),
                    deployment_id,
                    force: true,
                }
            }
        ),
        (
            app_id(),
            version.clone(),
            definition(),
            any::<bool>(),
            deployment.clone()
        )
            .prop_map(
                |(id, version, patch, partial, deployment_id)| Command::UpdateApp {
                    id,
                    version,
                    patch,
                    partial,
                    deployment_id,
                    force: true,
                }
            ),
        (app_id(), version, deployment).prop_map(|(id, version, deployment_id)| {
            Command::DeleteApp {
                id,
                version,
                deployment_id,
                force: true,
            }
        }),
    ]
}

fn replay(state: &mut ClusterState, commands: &[Command], first_index: u64) -> Vec<Applied> {
    (first_index..)
        .zip(commands)
        .map(|(index, command)| state.apply(index, command.clone()))
        .collect()
}

proptest! {
    #[test]
    fn same_commands_give_equal_states_and_snapshots(commands in prop::collection::vec(command(), 0..60)) {
        let (mut left, mut right) = (ClusterState::default(), ClusterState::default());
        let left_results = replay(&mut left, &commands, 1);
        let right_results = replay(&mut right, &commands, 1);
        prop_assert_eq!(left_results, right_results);
        prop_assert_eq!(&left, &right);
        let left_snapshot = serde_json::to_vec(&left).expect("serialise");
        prop_assert_eq!(&left_snapshot, &serde_json::to_vec(&right).expect("serialise"));
    }

    #[test]
    fn restoring_a_snapshot_midway_changes_nothing(commands in prop::collection::vec(command(), 0..60), cut in 0usize..60) {
        let cut = cut.min(commands.len());
        let mut straight = ClusterState::default();
        replay(&mut straight, &commands, 1);

        let mut before = ClusterState::default();
        replay(&mut before, &commands[..cut], 1);
        let bytes = serde_json::to_vec(&before).expect("serialise");
        let mut restored: ClusterState = serde_json::from_slice(&bytes).expect("deserialise");
        replay(&mut restored, &commands[cut..], cut as u64 + 1);
        prop_assert_eq!(&restored, &straight);
        prop_assert_eq!(serde_json::to_vec(&restored).expect("serialise"), serde_json::to_vec(&straight).expect("serialise"));
    }
}

#[test]
fn create_twice_is_rejected_and_changes_nothing() {
    let id = AppId::parse("/web").expect("valid id");
    let app = App::from_json(
        id.clone(),
        Timestamp::from_millis(1),
        &object(json!({"cmd": "sleep 1"})),
    )
    .expect("valid");
    let create = Command::CreateApp {
        app: Box::new(app),
        deployment_id: DeploymentId("d1".into()),
        force: true,
    };
    let mut state = ClusterState::default();
    assert!(matches!(
        state.apply(1, create.clone()),
        Applied::AppCreated { .. }
    ));
    let before = state.apps.clone();
    assert_eq!(
        state.apply(2, create),
        Applied::Rejected(Rejection::AppExists(id))
    );
    assert_eq!(state.apps, before);
    assert_eq!(state.applied_index, 2);
}

fn object(value: Value) -> Map<String, Value> {
    value.as_object().cloned().unwrap_or_default()
}

fn update(id: &AppId, millis: u64, patch: Value, partial: bool) -> Command {
    Command::UpdateApp {
        id: id.clone(),
        version: Timestamp::from_millis(millis),
        patch: object(patch),
        partial,
        deployment_id: DeploymentId(format!("d{millis}")),
        force: true,
    }
}

#[test]
fn service_ports_are_unique_across_apps_and_kept_per_app() {
    let (a, b) = (
        AppId::parse("/a").expect("valid id"),
        AppId::parse("/b").expect("valid id"),
    );
    let mut state = ClusterState::default();
    state.apply(
        1,
        update(&a, 1, json!({"cmd": "sleep 1", "ports": [0, 0]}), true),
    );
    state.apply(2, update(&b, 2, json!({"cmd": "sleep 1"}), true));
    let ports = |state: &ClusterState, id: &AppId| state.apps[id].spec.service_ports();
    assert_eq!(ports(&state, &a), vec![10000, 10001]);
    assert_eq!(ports(&state, &b), vec![10002]);
    // A full replacement of /a with zeros keeps its ports; /b's stay taken.
    state.apply(
        3,
        update(&a, 3, json!({"cmd": "sleep 2", "ports": [0, 0, 0]}), false),
    );
    assert_eq!(ports(&state, &a), vec![10000, 10001, 10003]);
}

#[test]
fn versions_are_kept_newest_first_and_dropped_with_the_app() {
    let id = AppId::parse("/web").expect("valid id");
    let mut state = ClusterState::default();
    for millis in 1..=(MAX_APP_VERSIONS as u64 + 5) {
        state.apply(
            millis,
            update(
                &id,
                millis,
                json!({"cmd": "sleep 1", "instances": millis}),
                true,
            ),
        );
    }
    let versions: Vec<u64> = state.app_versions[&id]
        .iter()
        .map(|app| app.version.as_millis())
        .collect();
    assert_eq!(versions.len(), MAX_APP_VERSIONS);
    assert_eq!(versions[0], MAX_APP_VERSIONS as u64 + 5);
    assert!(versions.windows(2).all(|w| w[0] > w[1]));
    let old = state
        .app_version(&id, Timestamp::from_millis(10))
        .expect("version 10 is kept");
    assert_eq!(old.spec.instances, 10);
    assert!(state.app_version(&id, Timestamp::from_millis(1)).is_none());
    state.apply(
        100,
        Command::DeleteApp {
            id: id.clone(),
            version: Timestamp::from_millis(100),
            deployment_id: DeploymentId("d".into()),
            force: true,
        },
    );
    assert!(state.app_versions.get(&id).is_none());
}

#[test]
fn an_invalid_update_is_rejected_and_changes_nothing() {
    let id = AppId::parse("/web").expect("valid id");
    let mut state = ClusterState::default();
    state.apply(1, update(&id, 1, json!({"cmd": "sleep 1"}), true));
    let before = state.clone();
    let applied = state.apply(2, update(&id, 2, json!({"cpus": -1}), true));
    assert!(
        matches!(applied, Applied::Rejected(Rejection::InvalidApp(_))),
        "{applied:?}"
    );
    assert_eq!(state.apps, before.apps);
    assert_eq!(state.app_versions, before.app_versions);
}

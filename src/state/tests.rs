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
    (0u32..5, prop::sample::select(vec!["sleep 1", "sleep 2"])).prop_map(|(instances, cmd)| {
        json!({"instances": instances, "cmd": cmd})
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
                    app: App::new(id, version, def),
                    deployment_id,
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
                    deployment_id
                }
            ),
        (app_id(), version, deployment).prop_map(|(id, version, deployment_id)| {
            Command::DeleteApp {
                id,
                version,
                deployment_id,
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
    let app = App::new(id.clone(), Timestamp::from_millis(1), Map::new());
    let create = Command::CreateApp {
        app,
        deployment_id: DeploymentId("d1".into()),
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

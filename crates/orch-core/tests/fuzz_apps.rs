//! Hostile app and group definitions (issue 18), fuzzed on stable with proptest (see
//! `common/fuzz.rs` for why not cargo-fuzz, and the `ORCH_FUZZ_CASES` knob).
//!
//! Each case takes the path `POST/PUT/PATCH /v2/apps` and `PUT /v2/groups` take in the
//! master: the body as JSON (or YAML, as `orch app create -f` reads it) into a map, the `id`
//! read with [`AppId::parse`], then [`App::from_json`] / [`App::updated`] /
//! [`GroupUpdate::from_json`], then what the leader does with it:
//! [`ClusterState::group_after_update`] and [`ClusterState::apply`].
//!
//! Properties: nothing panics; bad input is an error value; a definition that is accepted
//! reads back to the same app from its own JSON (`to_json` then `from_json`); ids round-trip
//! through their text.
//!
//! Seeds: the example apps in `apps/` (the rsvp group among them), mutated structurally
//! (subtrees replaced, keys added and removed, types changed) and as bytes.

#[path = "common/fuzz.rs"]
mod fuzz;

use orch_core::model::{App, AppId, DeploymentId, GroupId, GroupUpdate, Timestamp};
use orch_core::state::{ClusterState, Command};
use proptest::prelude::*;
use serde_json::{Map, Value};
use std::collections::BTreeSet;

/// The example apps of `apps/` as text.
const APP_FILES: [&str; 4] = [
    include_str!("../../../apps/hello.json"),
    include_str!("../../../apps/nginx.json"),
    include_str!("../../../apps/python-app.json"),
    include_str!("../../../apps/bridged-webapp.json"),
];

/// The example group of `apps/`.
const GROUP_FILE: &str = include_str!("../../../apps/rsvp.json");

/// Definitions that reach the corners `apps/` does not: constraints, strategies, fetch,
/// secrets, readiness and command checks, legacy `ports`/`uris`, IP-per-task networks.
fn extra_apps() -> Vec<Value> {
    vec![
        serde_json::json!({
            "id": "/prod/api", "cmd": "sleep 100", "cpus": 0.1, "mem": 32, "disk": 10,
            "instances": 3, "portDefinitions": [{"port": 0, "name": "http"}, {"port": 0}],
            "constraints": [["hostname", "UNIQUE"], ["rack", "GROUP_BY", "2"],
                ["zone", "LIKE", "a.*"], ["x", "MAX_PER", "1"]],
            "upgradeStrategy": {"minimumHealthCapacity": 0.5, "maximumOverCapacity": 0.2},
            "unreachableStrategy": {"inactiveAfterSeconds": 10, "expungeAfterSeconds": 20},
            "killSelection": "OLDEST_FIRST", "backoffSeconds": 2, "backoffFactor": 1.5,
            "maxLaunchDelaySeconds": 60, "taskKillGracePeriodSeconds": 4,
            "labels": {"HAPROXY_GROUP": "external", "HAPROXY_0_VHOST": "api.example.com"},
            "env": {"A": "b", "S": {"secret": "db"}}, "secrets": {"db": {"source": "/db"}},
            "healthChecks": [{"protocol": "COMMAND", "command": {"value": "true"}},
                {"protocol": "TCP", "portIndex": 1}],
            "readinessChecks": [{"name": "r", "protocol": "HTTP", "path": "/ready",
                "portName": "http", "intervalSeconds": 2, "timeoutSeconds": 1,
                "httpStatusCodesForReady": [200]}],
            "dependencies": ["/prod/db"], "acceptedResourceRoles": ["*", "slave_public"],
            "user": "nobody", "args": null
        }),
        serde_json::json!({
            "id": "/vip/web", "args": ["-p", "80"], "cpus": 1, "mem": 128, "instances": 0,
            "container": {"type": "MESOS", "docker": {"image": "nginx", "forcePullImage": true,
                "parameters": [{"key": "label", "value": "a=b"}]},
                "volumes": [{"containerPath": "/data", "hostPath": "/tmp", "mode": "RO"}],
                "portMappings": [{"containerPort": 80, "hostPort": 31005, "protocol": "udp,tcp",
                    "labels": {"VIP_0": "/web:80"}}]},
            "networks": [{"mode": "container", "name": "dcos"}],
            "fetch": [{"uri": "file:///x", "extract": false, "executable": true}]
        }),
        serde_json::json!({
            "id": "/p/host", "cmd": "sleep 1", "requirePorts": true,
            "portDefinitions": [{"port": 10001, "name": "a", "protocol": "tcp"},
                {"port": 0, "labels": {"k": "v"}}],
            "networks": [{"mode": "host"}], "version": "2020-01-01T00:00:00.000Z"
        }),
        serde_json::json!({
            "id": "legacy", "cmd": "sleep 1", "ports": [0, 10002], "uris": ["https://example.com/a.tgz"],
            "ipAddress": null, "container": null
        }),
    ]
}

fn app_seeds() -> Vec<Value> {
    let mut seeds: Vec<Value> = APP_FILES
        .iter()
        .map(|text| serde_json::from_str(text).expect("apps/ holds JSON"))
        .collect();
    seeds.extend(extra_apps());
    let group: Value = serde_json::from_str(GROUP_FILE).expect("apps/rsvp.json is JSON");
    if let Some(Value::Array(apps)) = group.get("apps") {
        seeds.extend(apps.iter().cloned());
    }
    seeds
}

fn group_seeds() -> Vec<Value> {
    let group: Value = serde_json::from_str(GROUP_FILE).expect("apps/rsvp.json is JSON");
    let mut nested = group.clone();
    if let Some(map) = nested.as_object_mut() {
        map.insert("id".into(), "/outer".into());
        map.insert(
            "groups".into(),
            serde_json::json!([{"id": "/outer/rsvp", "apps": group.get("apps").cloned(),
                "dependencies": ["/other"]}]),
        );
        map.insert("apps".into(), Value::Array(Vec::new()));
        map.insert("enforceRole".into(), Value::Bool(true));
    }
    vec![
        group,
        nested,
        serde_json::json!({"id": "/rsvp", "scaleBy": 2}),
        serde_json::json!({"id": "/", "apps": [{"id": "/top", "cmd": "sleep 1"}], "groups": []}),
    ]
}

fn text_seeds() -> Vec<Vec<u8>> {
    let mut seeds: Vec<Vec<u8>> = APP_FILES.iter().map(|t| t.as_bytes().to_vec()).collect();
    seeds.push(GROUP_FILE.as_bytes().to_vec());
    seeds
}

/// A state holding every valid seed app (so updates and groups meet existing apps).
fn populated_state() -> ClusterState {
    let mut state = ClusterState::default();
    for (index, seed) in (1u64..).zip(app_seeds()) {
        if let Some(app) = seed.as_object().and_then(|map| app_of(map).ok()) {
            state.apply(
                index,
                Command::CreateApp {
                    app: Box::new(app),
                    deployment_id: DeploymentId(format!("d{index}")),
                    force: true,
                },
            );
        }
    }
    state
}

/// The app a `POST /v2/apps` body names, read as the master reads it.
fn app_of(definition: &Map<String, Value>) -> Result<App, String> {
    let id = match definition.get("id") {
        Some(Value::String(id)) => AppId::parse(id).map_err(|e| e.to_string())?,
        Some(_) => return Err("error.expected.jsstring".into()),
        None => return Err("error.path.missing".into()),
    };
    App::from_json(id, Timestamp::from_millis(1_000), definition).map_err(|e| format!("{e:?}"))
}

/// An accepted definition reads back to the same app from its own JSON.
fn assert_reads_back(app: &App) {
    let again = App::from_json(app.id.clone(), app.version, &app.to_json())
        .unwrap_or_else(|e| panic!("{} does not read back: {e:?}", app.id));
    assert_eq!(again.spec, app.spec, "{} reads back differently", app.id);
}

/// Everything the master does with an app body: read it, create it, and apply it as a
/// partial and as a full update of an existing app. With `read_back`, an accepted
/// definition must also read back the same ([`assert_reads_back`]).
fn exercise_app_body(value: &Value, state: &ClusterState, read_back: bool) {
    let Value::Object(definition) = value else {
        return;
    };
    if let Ok(app) = app_of(definition) {
        if read_back {
            assert_reads_back(&app);
        }
        let mut state = state.clone();
        state.apply(
            100,
            Command::CreateApp {
                app: Box::new(app),
                deployment_id: DeploymentId("create".into()),
                force: false,
            },
        );
    }
    let mut state = state.clone();
    for (existing, partial) in [("/hello", true), ("/nginx", false), ("/prod/api", true)] {
        let Ok(id) = AppId::parse(existing) else {
            continue;
        };
        if let Some(app) = state.apps.get(&id) {
            let _ = app.updated(Timestamp::from_millis(2_000), definition, partial, || {
                BTreeSet::new()
            });
        }
        state.apply(
            101,
            Command::UpdateApp {
                id,
                version: Timestamp::from_millis(2_000),
                patch: definition.clone(),
                partial,
                deployment_id: DeploymentId("update".into()),
                force: true,
            },
        );
    }
}

/// Everything the master does with a group body: the id, the update, the check, the apply.
fn exercise_group_body(value: &Value, state: &ClusterState) {
    let Value::Object(body) = value else {
        return;
    };
    let id = match body.get("id") {
        Some(Value::String(text)) => match GroupId::parse(text) {
            Ok(id) => id,
            Err(_) => return,
        },
        _ => GroupId::root(),
    };
    let Ok(update) = GroupUpdate::from_json(id, body, "") else {
        return;
    };
    let mut state = state.clone();
    for create in [true, false] {
        let _ = state.group_after_update(&update, Timestamp::from_millis(3_000), create);
        state.apply(
            200,
            Command::UpdateGroup {
                update: update.clone(),
                version: Timestamp::from_millis(3_000),
                create,
                deployment_id: DeploymentId("group".into()),
                force: true,
            },
        );
    }
}

#[test]
fn every_seed_is_a_valid_definition() {
    let state = populated_state();
    for seed in app_seeds() {
        let map = seed.as_object().expect("an object");
        let app = app_of(map).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        assert!(state.apps.contains_key(&app.id), "{}", app.id);
    }
    for seed in group_seeds() {
        exercise_group_body(&seed, &state);
    }
}

proptest! {
    #![proptest_config(fuzz::config(512))]

    #[test]
    fn fuzz_app_definitions_mutated(value in fuzz::mutated_json(app_seeds())) {
        thread_local!(static STATE: ClusterState = populated_state());
        STATE.with(|state| exercise_app_body(&value, state, false));
    }

    #[test]
    fn fuzz_app_definitions_read_back_the_same(value in fuzz::mutated_json(app_seeds())) {
        thread_local!(static STATE: ClusterState = populated_state());
        STATE.with(|state| exercise_app_body(&value, state, true));
    }

    #[test]
    fn fuzz_group_updates_mutated(value in fuzz::mutated_json(group_seeds())) {
        thread_local!(static STATE: ClusterState = populated_state());
        STATE.with(|state| exercise_group_body(&value, state));
    }
}

proptest! {
    #![proptest_config(fuzz::config(1_000))]

    #[test]
    fn fuzz_app_json_bytes(bytes in prop_oneof![
        fuzz::mutated_bytes(text_seeds()),
        fuzz::random_bytes(256),
    ]) {
        if let Ok(value) = serde_json::from_slice::<Value>(&bytes) {
            thread_local!(static STATE: ClusterState = populated_state());
            STATE.with(|state| {
                exercise_app_body(&value, state, false);
                exercise_group_body(&value, state);
            });
        }
    }

    #[test]
    fn fuzz_app_yaml_text(bytes in fuzz::mutated_bytes(yaml_seeds())) {
        let text = String::from_utf8_lossy(&bytes);
        if let Ok(value) = serde_yaml_ng::from_str::<Value>(&text) {
            thread_local!(static STATE: ClusterState = populated_state());
            STATE.with(|state| exercise_app_body(&value, state, false));
        }
    }

    #[test]
    fn fuzz_ids_round_trip(text in prop_oneof![
        "[a-z0-9./-]{0,24}",
        any::<String>(),
    ]) {
        if let Ok(id) = AppId::parse(&text) {
            let again = AppId::parse(id.as_str());
            prop_assert_eq!(again.as_ref().ok(), Some(&id), "app id {:?}", text);
            let group = GroupId::parent_of(id.as_str());
            prop_assert!(group.contains(id.as_str()), "{} not in {}", id, group);
        }
        if let Ok(group) = GroupId::parse(&text) {
            prop_assert_eq!(GroupId::parse(group.as_str()).ok(), Some(group.clone()));
            let _ = group.resolve(&text);
            let _ = group.parent();
        }
    }
}

/// The example apps as YAML (what `orch app create -f app.yaml` and GitOps read).
fn yaml_seeds() -> Vec<Vec<u8>> {
    app_seeds()
        .iter()
        .filter_map(|value| serde_yaml_ng::to_string(value).ok())
        .map(String::into_bytes)
        .collect()
}

/// Found by `fuzz_app_definitions_read_back_the_same`: `"portMappings": [[]]` is accepted
/// (serde reads a struct from a sequence, positionally), the bridge default `hostPort: 0` is
/// not added to it (normalisation only touches objects), and the stored app's own JSON
/// then read back with `hostPort: 0`: a different app. Marathon answers 422
/// (`error.expected.jsobject`), and so does orch now.
#[test]
fn an_array_port_mapping_reads_back_the_same() {
    let definition = serde_json::json!({
        "id": "/rsvp/mongodb", "cpus": 0.5, "mem": 256, "instances": 1,
        "container": {"type": "DOCKER", "docker": {"image": "mongo:3.3"}, "portMappings": [[]]},
        "networks": [{"mode": "container/bridge"}]
    });
    let map = definition.as_object().cloned().unwrap_or_default();
    // Refusing it, as Marathon does, is right too.
    if let Ok(app) = app_of(&map) {
        assert_reads_back(&app);
    }
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    for depth in [129, 1_000, 10_000] {
        let json = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        assert!(
            serde_json::from_str::<Value>(&json).is_err(),
            "json {depth}"
        );
        let yaml = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        assert!(
            serde_yaml_ng::from_str::<Value>(&yaml).is_err(),
            "yaml {depth}"
        );
        let body = format!(
            "{{\"id\": \"/x\", \"env\": {}1{}}}",
            "[".repeat(100),
            "]".repeat(100)
        );
        if let Ok(Value::Object(map)) = serde_json::from_str::<Value>(&body) {
            assert!(app_of(&map).is_err());
        }
    }
}

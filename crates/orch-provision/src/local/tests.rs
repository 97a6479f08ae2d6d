//! Tests of the local provider: preparing a layout, restarts, stopping processes.

use super::*;

fn request(workdir: &Path, api: SocketAddr) -> Settings {
    let infra = Infra {
        api,
        ..Infra::default()
    };
    Settings {
        infra,
        infra_file: Some(workdir.join("infra.yaml")),
        infra_shown: "infra.yaml".to_owned(),
        workdir: workdir.to_owned(),
        containerizers: vec!["mesos".to_owned()],
    }
}

#[test]
fn a_taken_api_port_is_named_with_the_file_to_change() {
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let api = taken.local_addr().expect("addr");
    let dir = tempfile::tempdir().expect("temp dir");
    let error = prepare(&request(dir.path(), api), None).expect_err("taken");
    assert_eq!(
        error.to_string(),
        format!(
            "port {} on 127.0.0.1 is already in use; set api: in infra.yaml",
            api.port()
        )
    );
}

#[test]
fn a_restart_keeps_the_layout_and_refuses_another_shape() {
    let dir = tempfile::tempdir().expect("temp dir");
    let api: SocketAddr = {
        let probe = TcpListener::bind("127.0.0.1:0").expect("bind");
        probe.local_addr().expect("addr")
    };
    let request = request(dir.path(), api);
    let Prepared::ToStart {
        record,
        missing,
        fresh,
    } = prepare(&request, None).expect("plan")
    else {
        panic!("nothing runs yet");
    };
    assert!(fresh);
    assert_eq!(missing, ["master-1", "agent-1"]);
    assert_eq!(record.layout.api(), Some(api));
    assert_eq!(record.layout.dir, dir.path().join(".orch/local"));
    let Prepared::ToStart {
        record: again,
        fresh,
        ..
    } = prepare(&request, Some(&record)).expect("plan")
    else {
        panic!("nothing runs yet");
    };
    assert!(!fresh);
    assert_eq!(again.layout, record.layout);
    let mut bigger = request.clone();
    bigger.infra.masters = 3;
    let error = prepare(&bigger, Some(&record)).expect_err("shape changed");
    assert!(
        error
            .to_string()
            .starts_with("cluster 'local' was created with 1 master and 1 agent"),
        "{error}"
    );
}

/// The plan of a new cluster lays it out and starts every process; once the state records
/// the layout, the processes that do not run are started again, on the same ports.
#[tokio::test]
async fn the_plan_lays_out_a_new_cluster_and_restarts_what_does_not_run() {
    use crate::plan::Action;
    use crate::provider::Provider;
    use crate::state_file::State;
    let dir = tempfile::tempdir().expect("temp dir");
    let api: SocketAddr = {
        let probe = TcpListener::bind("127.0.0.1:0").expect("bind");
        probe.local_addr().expect("addr")
    };
    let settings = request(dir.path(), api);
    let mut provider = LocalProvider::new(settings.clone(), PathBuf::from("/bin/false"));
    let plan = provider.plan(&[], &State::default()).await.expect("plan");
    let lines: Vec<String> = plan.actions.iter().map(ToString::to_string).collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(
        lines[0].starts_with("lay out 1 master and 1 agent")
            && lines[0].ends_with("data and logs in .orch/local"),
        "{lines:?}"
    );
    assert_eq!(lines[1], format!("start master-1 on {api} (new)"));
    assert!(
        lines[2].starts_with("start agent-1 on 127.0.0.1:") && lines[2].ends_with("(new)"),
        "{lines:?}"
    );

    let Prepared::ToStart { record, .. } = prepare(&settings, None).expect("layout") else {
        panic!("nothing runs yet");
    };
    let state = State {
        provider: "local".into(),
        local: Some(record),
        ..State::default()
    };
    let again = provider.plan(&[], &state).await.expect("plan");
    assert!(
        !again.any(|a| matches!(a, Action::LayOut { .. })),
        "{again}"
    );
    assert_eq!(
        again.find("master-1", |_| true).map(ToString::to_string),
        Some(format!("start master-1 on {api} (not running)"))
    );
}

#[tokio::test]
async fn terminate_stops_a_process_and_stop_tasks_finds_nothing_in_an_empty_dir() {
    let mut child = tokio::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .expect("spawn sleep");
    let id = procs::identity(child.id().expect("pid")).expect("identity");
    let reaper = tokio::spawn(async move { child.wait().await });
    terminate(&[id], Duration::from_secs(5)).await;
    assert!(!id.alive());
    let status = reaper.await.expect("join").expect("wait");
    assert!(!status.success());
    let dir = tempfile::tempdir().expect("temp dir");
    assert_eq!(
        stop_tasks(dir.path(), &BTreeSet::new(), Duration::from_secs(1)).await,
        0
    );
}

//! Tests of the local provider: preparing a layout, restarts, stopping processes.

use super::*;

fn request(workdir: &Path, api: SocketAddr) -> UpRequest {
    let infra = Infra {
        api,
        ..Infra::default()
    };
    UpRequest {
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
    let error = prepare(&request(dir.path(), api)).expect_err("taken");
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
    } = prepare(&request).expect("plan")
    else {
        panic!("nothing runs yet");
    };
    assert!(fresh);
    assert_eq!(missing, ["master-1", "agent-1"]);
    assert_eq!(record.layout.api(), Some(api));
    assert_eq!(record.layout.dir, dir.path().join(".orch/local"));
    record.save().expect("save");
    let Prepared::ToStart {
        record: again,
        fresh,
        ..
    } = prepare(&request).expect("plan")
    else {
        panic!("nothing runs yet");
    };
    assert!(!fresh);
    assert_eq!(again.layout, record.layout);
    let mut bigger = request.clone();
    bigger.infra.masters = 3;
    let error = prepare(&bigger).expect_err("shape changed");
    assert!(
        error
            .to_string()
            .starts_with("cluster 'local' was created with 1 master and 1 agent"),
        "{error}"
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

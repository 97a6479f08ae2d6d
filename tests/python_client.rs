//! The PyPI `marathon` client (marathon-python 0.13) driving a real cluster: 1 master and 2
//! agents (mesos containerizer, `sleep` apps). The client calls live in
//! `tests/marathon_client.py`; this test starts the cluster and runs that script with the
//! interpreter from `$ORCH_PYTHON` (a virtualenv with `marathon==0.13.0`). Without
//! `ORCH_PYTHON`, `python3` is used if it can `import marathon`; otherwise the test prints a
//! note and is skipped (CI sets `ORCH_PYTHON`, see `.ci/run`).

mod support;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use support::{python, Cluster};

const RESOURCES: &str = "cpus:2;mem:1024;disk:100;ports:[31300-31349]";
/// Bound on the whole script run.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(240);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn marathon_python_client_drives_orch() {
    let Some(python) = python() else {
        return;
    };
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/marathon_client.py");
    let mut cluster = Cluster::start(1, &[]);
    for _ in 0..2 {
        cluster.add_agent(&["--resources", RESOURCES, "--containerizers", "mesos"]);
    }
    cluster.wait_for_agents(0, 2, Duration::from_secs(20)).await;

    let child = tokio::process::Command::new(&python)
        .arg(&script)
        .arg(cluster.url(0))
        .env("PYTHONUNBUFFERED", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {python} {}: {e}", script.display()));
    let output = match tokio::time::timeout(SCRIPT_TIMEOUT, child.wait_with_output()).await {
        Ok(output) => output.unwrap_or_else(|e| panic!("wait for {python}: {e}")),
        Err(_) => panic!(
            "{} did not finish within {SCRIPT_TIMEOUT:?}",
            script.display()
        ),
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    assert!(
        output.status.success() && stdout.contains("ALL PASSED"),
        "marathon_client.py failed ({}):\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}",
        output.status
    );
    for agent in &mut cluster.agents {
        agent.assert_running();
    }
    cluster.masters[0].assert_running();
}

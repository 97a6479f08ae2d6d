//! The Python interpreter that has the PyPI `marathon` client (marathon-python 0.13).

use std::process::Stdio;

/// The interpreter to use, or `None` (after a note) when none has the client.
pub fn python() -> Option<String> {
    if let Some(python) = std::env::var_os("ORCH_PYTHON") {
        let python = python.to_string_lossy().into_owned();
        // Set explicitly: it must work (a broken CI venv is a failure, not a skip).
        let ok = std::process::Command::new(&python)
            .args(["-c", "import marathon"])
            .status()
            .unwrap_or_else(|e| panic!("ORCH_PYTHON={python} cannot be run: {e}"));
        assert!(
            ok.success(),
            "ORCH_PYTHON={python} cannot `import marathon` (pip install marathon==0.13.0)"
        );
        return Some(python);
    }
    let has_client = std::process::Command::new("python3")
        .args(["-c", "import marathon"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if has_client {
        Some("python3".to_owned())
    } else {
        println!(
            "NOTE: no Python with the marathon client (set ORCH_PYTHON to a venv with \
             marathon==0.13.0); marathon-python test skipped"
        );
        None
    }
}

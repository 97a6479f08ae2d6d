//! Starting one process of a local cluster: spawned in its own process group, output to
//! `<name>.log`, pid to `<name>.pid`; a task reports when it ends.
//!
//! May depend on: provision::{layout, procs, local}.

use super::*;

/// A process of the cluster ended while `orch up` watched it.
#[derive(Debug)]
pub struct NodeExit {
    /// The node.
    pub name: String,
    /// How it ended (None when waiting failed).
    pub status: Option<ExitStatus>,
}

impl NodeExit {
    /// "exit status: 1", or "unknown status".
    pub fn status_text(&self) -> String {
        self.status
            .map_or_else(|| "unknown status".to_owned(), |s| s.to_string())
    }
}

/// Spawns `node` of `record` with the binary `program`; the returned identity is its
/// process. When it ends, a [`NodeExit`] goes to `exits` unless `stopping` is set by then.
pub fn spawn(
    record: &LocalState,
    node: &Node,
    program: &Path,
    agent_resources: Option<&str>,
    exits: mpsc::UnboundedSender<NodeExit>,
    stopping: Arc<AtomicBool>,
) -> Result<Option<ProcId>, LocalError> {
    let layout = &record.layout;
    std::fs::create_dir_all(&node.dir)
        .map_err(io_error(format!("create {}", node.dir.display())))?;
    let args = layout.args(node, agent_resources, &record.containerizers);
    let log_path = layout.log_file(node);
    let mut log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(io_error(format!("open {}", log_path.display())))?;
    let _ = writeln!(
        log,
        "===== orch up: {} {} =====",
        program.display(),
        args.join(" ")
    );
    let log_err = log
        .try_clone()
        .map_err(io_error(format!("open {}", log_path.display())))?;
    let mut child = tokio::process::Command::new(program)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .process_group(0)
        .spawn()
        .map_err(|source| LocalError::Spawn {
            name: node.name.clone(),
            program: program.display().to_string(),
            source,
        })?;
    let pid = child.id().unwrap_or_default();
    let pid_file = layout.pid_file(node);
    std::fs::write(&pid_file, format!("{pid}\n"))
        .map_err(io_error(format!("write {}", pid_file.display())))?;
    tracing::debug!(node = %node.name, pid, listen = %node.listen, "started");
    let name = node.name.clone();
    tokio::spawn(async move {
        let status = child.wait().await.ok();
        if !stopping.load(Ordering::SeqCst) {
            let _ = exits.send(NodeExit { name, status });
        }
    });
    Ok(procs::identity(pid))
}

/// The last `n` lines of a file (or why it cannot be read).
pub fn tail(path: &Path, n: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(n)..].join("\n")
        }
        Err(e) => format!("<cannot read {}: {e}>", path.display()),
    }
}

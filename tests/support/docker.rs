//! The busybox image the Docker tests build locally (no registry).

use std::path::Path;
use std::process::Command;

/// Builds the busybox test image `tag` (`FROM scratch` + Debian's busybox-static, no
/// registry needed); `Err` explains why it cannot be built.
pub fn build_busybox_image(tag: &str) -> Result<(), String> {
    let busybox = Path::new("/bin/busybox");
    if !busybox.exists() {
        return Err("/bin/busybox missing (apt-get install busybox-static)".to_owned());
    }
    let context = tempfile::tempdir().map_err(|e| e.to_string())?;
    std::fs::copy(busybox, context.path().join("busybox")).map_err(|e| e.to_string())?;
    std::fs::write(
        context.path().join("Dockerfile"),
        "FROM scratch\nCOPY busybox /bin/busybox\n\
         RUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\nCMD [\"/bin/sh\"]\n",
    )
    .map_err(|e| e.to_string())?;
    let out = Command::new("docker")
        .args(["build", "-q", "-t", tag])
        .arg(context.path())
        .output()
        .map_err(|e| format!("running docker build: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "docker build failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

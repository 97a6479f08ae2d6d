//! # orch-fs
//!
//! The one way orch replaces a file: write a temporary file beside it, fsync it, rename it
//! over the old one, fsync the directory. A crash leaves the old file or the new one, never
//! a torn one, and a finished write survives power loss. Masters (Raft snapshots), agents
//! (task records, the journal, identity), executors (their state files) and `orch up`
//! (state and key files) all write through here.
//!
//! May depend on: the standard library only.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Replaces `path` with `bytes`, atomically and durably.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_atomic_with(path, 0o644, |file| file.write_all(bytes))
}

/// Replaces `path` with `bytes` readable by its owner only (mode 0600): keys and secrets.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_atomic_with(path, 0o600, |file| file.write_all(bytes))
}

/// Replaces `path` with what `write` writes into the new file (created with `mode`), atomically
/// and durably. The temporary name is unique per process and call, so concurrent writers of
/// one path (an executor and its driver) never share a temporary file; the last rename wins.
pub fn write_atomic_with(
    path: &Path,
    mode: u32,
    write: impl FnOnce(&mut File) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let temporary = temporary_path(path);
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&temporary)?;
        write(&mut file)?;
        file.sync_all()?;
        std::fs::rename(&temporary, path)
    })();
    if result.is_err() {
        // Best effort: the write already failed; a leftover temporary file only wastes space.
        let _ = std::fs::remove_file(&temporary);
    }
    result?;
    sync_dir(path.parent().unwrap_or_else(|| Path::new(".")))
}

/// Fsyncs a directory, making renames and creations in it durable.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    File::open(dir)?.sync_all()
}

/// `<name>.<pid>.<n>.tmp` beside `path`.
fn temporary_path(path: &Path) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let unique = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut name = path.file_name().unwrap_or_default().to_owned();
    name.push(format!(".{}.{unique}.tmp", std::process::id()));
    path.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .expect("readable")
            .map(|entry| {
                entry
                    .expect("entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        names.sort();
        names
    }

    #[test]
    fn replaces_the_file_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("x");
        write_atomic(&path, b"one").expect("write");
        write_atomic(&path, b"two").expect("write");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "two");
        assert_eq!(entries(dir.path()), ["x"]);
    }

    #[test]
    fn private_files_are_the_owners_alone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("key");
        write_private(&path, b"secret").expect("write");
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn a_failed_write_keeps_the_old_file_and_cleans_up() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("x");
        write_atomic(&path, b"old").expect("write");
        let error = write_atomic_with(&path, 0o644, |file| {
            file.write_all(b"half")?;
            Err(std::io::Error::other("disk full"))
        })
        .expect_err("the writer failed");
        assert_eq!(error.to_string(), "disk full");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "old");
        assert_eq!(entries(dir.path()), ["x"]);
    }

    #[test]
    fn a_missing_directory_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("missing").join("x");
        assert!(write_atomic(&path, b"x").is_err());
    }
}

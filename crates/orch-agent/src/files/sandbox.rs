//! Reaching a file below a sandboxes root without following any symlink: the root is opened,
//! then every component below it with `openat(…, O_NOFOLLOW)` (directories with
//! `O_DIRECTORY`), so a link anywhere in the path, or one swapped in between a check and the
//! open, answers 403 instead of leading out. Only regular files and directories are opened
//! (a FIFO or device never blocks or pokes the agent); the final open is checked to be the
//! very inode that was looked at. Reads are bounded: `read` returns at most [`MAX_READ`]
//! bytes from an offset, and downloads stream from the open file.
//!
//! May depend on: nix (openat, fstat, fstatat, directory reading), the standard library.

use super::FilesError;
use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{FileStat, Mode, SFlag};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::{Component, Path, PathBuf};

/// Most bytes one `/files/read` returns (Mesos: 16 pages).
pub const MAX_READ: u64 = 64 * 1024;

/// A file or directory reached below a root.
#[derive(Debug)]
pub(crate) struct Opened {
    /// Its path as shown to clients (the root joined with the components).
    pub(crate) path: PathBuf,
    /// Open for reading.
    pub(crate) fd: OwnedFd,
    /// What it is.
    pub(crate) stat: FileStat,
}

impl Opened {
    pub(crate) fn is_dir(&self) -> bool {
        kind(&self.stat) == SFlag::S_IFDIR
    }

    /// Its size in bytes.
    pub(crate) fn size(&self) -> u64 {
        u64::try_from(self.stat.st_size).unwrap_or(0)
    }
}

fn kind(stat: &FileStat) -> SFlag {
    SFlag::from_bits_truncate(stat.st_mode & SFlag::S_IFMT.bits())
}

/// Why one candidate path could not be opened.
enum Miss {
    /// A symlink (or something other than a file or directory) on the way.
    Refused,
    /// Nothing there.
    Absent,
    /// Another error.
    Failed(Errno),
}

const DIR_FLAGS: OFlag = OFlag::O_RDONLY
    .union(OFlag::O_DIRECTORY)
    .union(OFlag::O_NOFOLLOW)
    .union(OFlag::O_CLOEXEC);

/// Opens `name` in `dir` without following it: a directory, or (when `last`) a regular file.
fn open_component(dir: &OwnedFd, name: &Path, last: bool) -> Result<(OwnedFd, FileStat), Miss> {
    let looked = match nix::sys::stat::fstatat(dir.as_fd(), name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(stat) => stat,
        Err(Errno::ENOENT | Errno::ENOTDIR) => return Err(Miss::Absent),
        Err(errno) => return Err(Miss::Failed(errno)),
    };
    let flags = match kind(&looked) {
        SFlag::S_IFDIR => DIR_FLAGS,
        SFlag::S_IFREG if last => {
            OFlag::O_RDONLY
                | OFlag::O_NOFOLLOW
                | OFlag::O_NONBLOCK
                | OFlag::O_NOCTTY
                | OFlag::O_CLOEXEC
        }
        SFlag::S_IFREG => return Err(Miss::Absent),
        _ => return Err(Miss::Refused),
    };
    let fd = match nix::fcntl::openat(dir.as_fd(), name, flags, Mode::empty()) {
        Ok(fd) => fd,
        // Swapped for a symlink (ELOOP) or something else since it was looked at.
        Err(Errno::ELOOP | Errno::ENOTDIR | Errno::ENXIO) => return Err(Miss::Refused),
        Err(Errno::ENOENT) => return Err(Miss::Absent),
        Err(errno) => return Err(Miss::Failed(errno)),
    };
    let stat = nix::sys::stat::fstat(fd.as_fd()).map_err(Miss::Failed)?;
    if (stat.st_dev, stat.st_ino) != (looked.st_dev, looked.st_ino) {
        return Err(Miss::Refused);
    }
    Ok((fd, stat))
}

/// Opens `rel` (plain components only) below `root`.
fn open_below(root: &Path, rel: &Path) -> Result<Opened, Miss> {
    let root_fd = nix::fcntl::open(root, DIR_FLAGS.difference(OFlag::O_NOFOLLOW), Mode::empty())
        .map_err(|errno| match errno {
            Errno::ENOENT => Miss::Absent,
            other => Miss::Failed(other),
        })?;
    let mut stat = nix::sys::stat::fstat(root_fd.as_fd()).map_err(Miss::Failed)?;
    let mut fd = root_fd;
    let names: Vec<&std::ffi::OsStr> = rel
        .components()
        .filter_map(|c| match c {
            Component::Normal(name) => Some(name),
            _ => None,
        })
        .collect();
    for (at, name) in names.iter().enumerate() {
        let (next, next_stat) = open_component(&fd, Path::new(name), at + 1 == names.len())?;
        fd = next;
        stat = next_stat;
    }
    Ok(Opened {
        path: root.join(rel),
        fd,
        stat,
    })
}

/// Opens a requested path (absolute under one of `roots`, or relative to them) without
/// following any symlink on the way.
pub(crate) fn open(roots: &[PathBuf], requested: &str) -> Result<Opened, FilesError> {
    if requested.is_empty() {
        return Err(FilesError::BadRequest("missing 'path'".into()));
    }
    let path = Path::new(requested);
    if path
        .components()
        .any(|c| matches!(c, Component::ParentDir | Component::Prefix(_)))
    {
        return Err(FilesError::Forbidden(requested.into()));
    }
    let candidates: Vec<(&PathBuf, &Path)> = if path.is_absolute() {
        let (root, rel) = roots
            .iter()
            .find_map(|root| path.strip_prefix(root).ok().map(|rel| (root, rel)))
            .ok_or_else(|| FilesError::Forbidden(requested.into()))?;
        vec![(root, rel)]
    } else {
        roots.iter().map(|root| (root, path)).collect()
    };
    let mut refused = false;
    for (root, rel) in candidates {
        match open_below(root, rel) {
            Ok(opened) => return Ok(opened),
            Err(Miss::Refused) => refused = true,
            Err(Miss::Absent) => {}
            Err(Miss::Failed(errno)) => {
                return Err(FilesError::Io {
                    path: requested.to_owned(),
                    source: errno.into(),
                })
            }
        }
    }
    if refused {
        Err(FilesError::Forbidden(requested.into()))
    } else {
        Err(FilesError::NotFound(requested.into()))
    }
}

/// The entries of an opened directory (not following symlinks), with their status.
pub(crate) fn entries(dir: &Opened) -> Result<Vec<(PathBuf, FileStat)>, FilesError> {
    let failed = |errno: Errno| FilesError::Io {
        path: dir.path.display().to_string(),
        source: errno.into(),
    };
    let fd = dir.fd.try_clone().map_err(|source| FilesError::Io {
        path: dir.path.display().to_string(),
        source,
    })?;
    let mut listing = nix::dir::Dir::from_fd(fd).map_err(failed)?;
    let mut found = Vec::new();
    for entry in listing.iter() {
        let entry = entry.map_err(failed)?;
        let name = entry.file_name();
        if name == c"." || name == c".." {
            continue;
        }
        // An entry removed meanwhile is left out.
        if let Ok(stat) =
            nix::sys::stat::fstatat(dir.fd.as_fd(), name, AtFlags::AT_SYMLINK_NOFOLLOW)
        {
            let name = std::ffi::OsStr::from_bytes(name.to_bytes());
            found.push((dir.path.join(name), stat));
        }
    }
    Ok(found)
}

/// Reads up to `length` bytes at `offset` of an opened regular file (bounded by the caller).
pub(crate) fn read_at(file: &Opened, offset: u64, length: u64) -> std::io::Result<Vec<u8>> {
    let size = file.size();
    let wanted = length.min(size.saturating_sub(offset));
    let mut data = vec![0; usize::try_from(wanted).unwrap_or(0)];
    let file = std::fs::File::from(file.fd.try_clone()?);
    let mut filled = 0;
    while filled < data.len() {
        let at = offset + u64::try_from(filled).unwrap_or(u64::MAX);
        match file.read_at(&mut data[filled..], at) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    data.truncate(filled);
    Ok(data)
}

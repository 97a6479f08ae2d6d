//! The agent's HTTP surface: Mesos' sandbox file API (`/files/browse`, `/files/read`,
//! `/files/download`), `/state` and `/health`.
//!
//! Paths may be absolute (under a `<work-dir>/sandboxes`) or relative to the sandboxes root.
//! Every path is canonicalized and must stay under a sandboxes root: `..` components are
//! refused outright, and symlinks that lead outside answer 403. Errors are JSON
//! `{"message": ...}`.

use super::runtime::Agent;
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

/// Most bytes one `/files/read` returns (Mesos: 16 pages).
pub const MAX_READ: u64 = 64 * 1024;

/// Why a files request failed.
#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    /// The request is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// The path leads outside the sandboxes.
    #[error("{0} is outside the sandboxes")]
    Forbidden(String),
    /// Nothing at that path.
    #[error("{0} does not exist")]
    NotFound(String),
    /// The file exists but could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
}

impl IntoResponse for FilesError {
    fn into_response(self) -> Response {
        let status = match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Io { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let body = serde_json::json!({ "message": self.to_string() });
        (status, Json(body)).into_response()
    }
}

/// Resolves a requested path to a canonical path under one of `roots` (themselves
/// canonical).
pub fn resolve(roots: &[PathBuf], requested: &str) -> Result<PathBuf, FilesError> {
    if requested.is_empty() {
        return Err(FilesError::BadRequest("missing 'path'".into()));
    }
    let path = Path::new(requested);
    if path.components().any(|c| c == Component::ParentDir) {
        return Err(FilesError::Forbidden(requested.into()));
    }
    let candidates: Vec<PathBuf> = if path.is_absolute() {
        if !roots.iter().any(|root| path.starts_with(root)) {
            return Err(FilesError::Forbidden(requested.into()));
        }
        vec![path.to_owned()]
    } else {
        roots.iter().map(|root| root.join(path)).collect()
    };
    let mut escaped = false;
    for candidate in candidates {
        match std::fs::canonicalize(&candidate) {
            Ok(real) if roots.iter().any(|root| real.starts_with(root)) => return Ok(real),
            Ok(_) => escaped = true,
            Err(_) => {}
        }
    }
    if escaped {
        Err(FilesError::Forbidden(requested.into()))
    } else {
        Err(FilesError::NotFound(requested.into()))
    }
}

/// One entry of `/files/browse`, as Mesos lists it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct FileInfo {
    /// Absolute path.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// `ls -l` style, e.g. `-rw-r--r--`.
    pub mode: String,
    /// Modification time, seconds since the epoch.
    pub mtime: f64,
    /// Hard links.
    pub nlink: u64,
    /// Owner name (or number).
    pub uid: String,
    /// Group name (or number).
    pub gid: String,
}

fn file_info(path: &Path, meta: &std::fs::Metadata) -> FileInfo {
    let kind = if meta.is_dir() {
        'd'
    } else if meta.file_type().is_symlink() {
        'l'
    } else {
        '-'
    };
    let bits = meta.permissions().mode();
    let mut mode = String::from(kind);
    for shift in [6, 3, 0] {
        let triple = (bits >> shift) & 7;
        mode.push(if triple & 4 != 0 { 'r' } else { '-' });
        mode.push(if triple & 2 != 0 { 'w' } else { '-' });
        mode.push(if triple & 1 != 0 { 'x' } else { '-' });
    }
    let uid = nix::unistd::User::from_uid(meta.uid().into())
        .ok()
        .flatten()
        .map_or_else(|| meta.uid().to_string(), |u| u.name);
    let gid = nix::unistd::Group::from_gid(meta.gid().into())
        .ok()
        .flatten()
        .map_or_else(|| meta.gid().to_string(), |g| g.name);
    FileInfo {
        path: path.display().to_string(),
        size: meta.len(),
        mode,
        mtime: meta.mtime() as f64 + meta.mtime_nsec() as f64 / 1e9,
        nlink: meta.nlink(),
        uid,
        gid,
    }
}

/// Lists a directory (or describes a single file) under the sandboxes.
pub fn browse(roots: &[PathBuf], requested: &str) -> Result<Vec<FileInfo>, FilesError> {
    let path = resolve(roots, requested)?;
    let io = |source| FilesError::Io {
        path: requested.to_owned(),
        source,
    };
    let meta = std::fs::metadata(&path).map_err(io)?;
    if !meta.is_dir() {
        return Ok(vec![file_info(&path, &meta)]);
    }
    let mut entries: Vec<FileInfo> = std::fs::read_dir(&path)
        .map_err(io)?
        .flatten()
        .filter_map(|entry| {
            let meta = entry.metadata().ok()?;
            Some(file_info(&entry.path(), &meta))
        })
        .collect();
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(entries)
}

/// The answer of `/files/read`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ReadChunk {
    /// The text read (invalid UTF-8 replaced).
    pub data: String,
    /// Where it starts (for `offset=-1`: the file's size).
    pub offset: u64,
}

/// Reads up to `length` (at most [`MAX_READ`]; `None` or -1 means that much) bytes from
/// `offset`; `offset = -1` returns no data and the file's size.
pub fn read(
    roots: &[PathBuf],
    requested: &str,
    offset: i64,
    length: Option<i64>,
) -> Result<ReadChunk, FilesError> {
    let path = resolve(roots, requested)?;
    let io = |source| FilesError::Io {
        path: requested.to_owned(),
        source,
    };
    let mut file = std::fs::File::open(&path).map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    if meta.is_dir() {
        return Err(FilesError::BadRequest(format!(
            "{requested} is a directory"
        )));
    }
    let size = meta.len();
    let offset = match offset {
        -1 => {
            return Ok(ReadChunk {
                data: String::new(),
                offset: size,
            })
        }
        o if o < 0 => return Err(FilesError::BadRequest("negative offset".into())),
        o => o.unsigned_abs(),
    };
    let length = match length {
        None | Some(-1) => MAX_READ,
        Some(l) if l < 0 => return Err(FilesError::BadRequest("negative length".into())),
        Some(l) => l.unsigned_abs().min(MAX_READ),
    };
    let mut data = Vec::new();
    if offset < size {
        file.seek(SeekFrom::Start(offset)).map_err(io)?;
        file.take(length).read_to_end(&mut data).map_err(io)?;
    }
    Ok(ReadChunk {
        data: String::from_utf8_lossy(&data).into_owned(),
        offset,
    })
}

/// The agents served on one listener (one, or many with `--simulate`).
#[derive(Debug, Clone)]
struct Served {
    agents: Arc<Vec<Arc<Agent>>>,
    roots: Arc<Vec<PathBuf>>,
}

#[derive(Debug, serde::Deserialize)]
struct PathQuery {
    #[serde(default)]
    path: String,
}

#[derive(Debug, serde::Deserialize)]
struct ReadQuery {
    #[serde(default)]
    path: String,
    #[serde(default)]
    offset: Option<i64>,
    #[serde(default)]
    length: Option<i64>,
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, FilesError> + Send + 'static,
) -> Result<T, FilesError> {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|error| {
            Err(FilesError::Io {
                path: String::new(),
                source: std::io::Error::other(error.to_string()),
            })
        })
}

async fn browse_handler(
    State(served): State<Served>,
    Query(query): Query<PathQuery>,
) -> Result<Json<Vec<FileInfo>>, FilesError> {
    let roots = Arc::clone(&served.roots);
    blocking(move || browse(&roots, &query.path))
        .await
        .map(Json)
}

async fn read_handler(
    State(served): State<Served>,
    Query(query): Query<ReadQuery>,
) -> Result<Json<ReadChunk>, FilesError> {
    let roots = Arc::clone(&served.roots);
    blocking(move || read(&roots, &query.path, query.offset.unwrap_or(0), query.length))
        .await
        .map(Json)
}

async fn download_handler(
    State(served): State<Served>,
    Query(query): Query<PathQuery>,
) -> Result<Response, FilesError> {
    let roots = Arc::clone(&served.roots);
    let bytes = blocking(move || {
        let path = resolve(&roots, &query.path)?;
        std::fs::read(&path).map_err(|source| FilesError::Io {
            path: query.path.clone(),
            source,
        })
    })
    .await?;
    Ok(([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response())
}

async fn state_handler(State(served): State<Served>) -> Response {
    let views: Vec<_> = served.agents.iter().map(|agent| agent.view()).collect();
    match views.as_slice() {
        [one] => Json(one).into_response(),
        _ => Json(serde_json::json!({ "agents": views })).into_response(),
    }
}

/// Lets through requests on connections whose client showed a master certificate of the
/// cluster CA (with TLS, masters fetch task files for their clients), and `/health`;
/// answers 403 to the others.
async fn masters_only(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let master = matches!(
        request.extensions().get::<orch_pki::serve::Peer>(),
        Some(orch_pki::serve::Peer(Some((orch_pki::Role::Master, _))))
    );
    if master || request.uri().path() == "/health" {
        return next.run(request).await;
    }
    (
        StatusCode::FORBIDDEN,
        Json(serde_json::json!({
            "message": "this agent answers the masters of its cluster only: read task files \
                        through a master (GET /v1/tasks/{id}/files/read)"
        })),
    )
        .into_response()
}

/// [`router`] for an agent with TLS: every route but `/health` answers only masters.
pub fn router_for_masters(agents: Vec<Arc<Agent>>) -> Router {
    router(agents).route_layer(axum::middleware::from_fn(masters_only))
}

/// The router of an agent process: `/files/*` confined to the agents' sandboxes, `/state`
/// (one agent's [`AgentView`](super::AgentView), or `{"agents": [...]}` when simulating
/// several) and `/health`.
pub fn router(agents: Vec<Arc<Agent>>) -> Router {
    let roots = agents.iter().map(|agent| agent.sandboxes()).collect();
    let served = Served {
        agents: Arc::new(agents),
        roots: Arc::new(roots),
    };
    Router::new()
        .route("/files/browse", get(browse_handler))
        .route("/files/read", get(read_handler))
        .route("/files/download", get(download_handler))
        .route("/state", get(state_handler))
        .route("/health", get(|| async { "ok" }))
        .fallback(|| async {
            (
                StatusCode::NOT_FOUND,
                Json(serde_json::json!({ "message": "unknown route" })),
            )
        })
        .with_state(served)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Sandboxes {
        _dir: tempfile::TempDir,
        root: PathBuf,
        outside: PathBuf,
    }

    fn sandboxes() -> Sandboxes {
        let dir = tempfile::tempdir().expect("tempdir");
        let base = std::fs::canonicalize(dir.path()).expect("canonical");
        let root = base.join("sandboxes");
        let task = root.join("task-1");
        std::fs::create_dir_all(&task).expect("mkdir");
        std::fs::write(task.join("stdout"), "hello\nworld\n").expect("write");
        let outside = base.join("secret");
        std::fs::write(&outside, "do not read").expect("write");
        std::os::unix::fs::symlink(&outside, task.join("escape")).expect("symlink");
        std::os::unix::fs::symlink(task.join("stdout"), task.join("inside")).expect("symlink");
        Sandboxes {
            _dir: dir,
            root,
            outside,
        }
    }

    #[test]
    fn paths_are_confined_to_the_sandboxes() {
        let s = sandboxes();
        let roots = [s.root.clone()];
        let stdout = s.root.join("task-1/stdout");
        assert_eq!(resolve(&roots, "task-1/stdout").expect("relative"), stdout);
        assert_eq!(
            resolve(&roots, &stdout.display().to_string()).expect("absolute"),
            stdout
        );
        assert_eq!(
            resolve(&roots, "task-1/inside").expect("inner link"),
            stdout
        );
        for forbidden in [
            "task-1/escape".to_owned(),
            "task-1/../../secret".to_owned(),
            "../secret".to_owned(),
            s.outside.display().to_string(),
            "/etc/passwd".to_owned(),
        ] {
            assert!(
                matches!(resolve(&roots, &forbidden), Err(FilesError::Forbidden(_))),
                "{forbidden}"
            );
        }
        assert!(matches!(
            resolve(&roots, "task-1/missing"),
            Err(FilesError::NotFound(_))
        ));
        assert!(matches!(
            resolve(&roots, ""),
            Err(FilesError::BadRequest(_))
        ));
    }

    #[test]
    fn reads_follow_mesos_semantics() {
        let s = sandboxes();
        let roots = [s.root.clone()];
        let end = read(&roots, "task-1/stdout", -1, None).expect("end");
        assert_eq!(
            end,
            ReadChunk {
                data: String::new(),
                offset: 12
            }
        );
        let all = read(&roots, "task-1/stdout", 0, None).expect("all");
        assert_eq!(all.data, "hello\nworld\n");
        let part = read(&roots, "task-1/stdout", 6, Some(3)).expect("part");
        assert_eq!(
            part,
            ReadChunk {
                data: "wor".into(),
                offset: 6
            }
        );
        let past = read(&roots, "task-1/stdout", 100, None).expect("past");
        assert_eq!(
            past,
            ReadChunk {
                data: String::new(),
                offset: 100
            }
        );
        assert!(matches!(
            read(&roots, "task-1/stdout", -5, None),
            Err(FilesError::BadRequest(_))
        ));
        assert!(matches!(
            read(&roots, "task-1", 0, None),
            Err(FilesError::BadRequest(_))
        ));
        assert!(matches!(
            read(&roots, "task-1/escape", 0, None),
            Err(FilesError::Forbidden(_))
        ));
        let big = s.root.join("task-1/big");
        std::fs::write(
            &big,
            vec![b'x'; usize::try_from(MAX_READ).expect("fits") * 2],
        )
        .expect("write");
        let capped = read(&roots, "task-1/big", 0, Some(i64::MAX)).expect("capped");
        assert_eq!(capped.data.len() as u64, MAX_READ);
    }

    #[test]
    fn browse_lists_like_mesos() {
        let s = sandboxes();
        let roots = [s.root.clone()];
        let listing = browse(&roots, "task-1").expect("browse");
        let names: Vec<&str> = listing
            .iter()
            .filter_map(|f| f.path.rsplit('/').next())
            .collect();
        assert_eq!(names, vec!["escape", "inside", "stdout"]);
        let stdout = listing
            .iter()
            .find(|f| f.path.ends_with("/stdout"))
            .expect("stdout listed");
        assert_eq!(stdout.size, 12);
        assert!(stdout.mode.starts_with("-rw"), "{}", stdout.mode);
        assert!(stdout.mtime > 0.0);
        assert_eq!(stdout.nlink, 1);
        let root = browse(&roots, &s.root.display().to_string()).expect("root");
        assert_eq!(root.len(), 1);
        assert!(root[0].mode.starts_with('d'));
    }
}

//! The agent's HTTP surface: Mesos' sandbox file API (`/files/browse`, `/files/read`,
//! `/files/download`), `/state` and `/health`.
//!
//! Paths may be absolute (under a `<work-dir>/sandboxes`) or relative to the sandboxes root.
//! `..` components are refused outright, and no symlink anywhere in a path is followed
//! ([`sandbox`]: `openat` with `O_NOFOLLOW`, component by component): such paths answer 403.
//! `/files/read` returns at most [`MAX_READ`] bytes; `/files/download` streams the file in
//! chunks of that size. Errors are JSON `{"message": ...}`.

mod sandbox;

pub use sandbox::MAX_READ;

use super::runtime::Agent;
use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::io::AsyncReadExt;

/// Why a files request failed.
#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    /// The request is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// The path leads outside the sandboxes, through a symlink, or to neither a file nor a
    /// directory.
    #[error(
        "{0} is outside the sandboxes or not a plain file or directory (symlinks are not followed)"
    )]
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

fn file_info(path: &Path, stat: &nix::sys::stat::FileStat) -> FileInfo {
    let kind = match stat.st_mode & libc_mode::S_IFMT {
        libc_mode::S_IFDIR => 'd',
        libc_mode::S_IFLNK => 'l',
        _ => '-',
    };
    let bits = stat.st_mode;
    let mut mode = String::from(kind);
    for shift in [6, 3, 0] {
        let triple = (bits >> shift) & 7;
        mode.push(if triple & 4 != 0 { 'r' } else { '-' });
        mode.push(if triple & 2 != 0 { 'w' } else { '-' });
        mode.push(if triple & 1 != 0 { 'x' } else { '-' });
    }
    let uid = nix::unistd::User::from_uid(stat.st_uid.into())
        .ok()
        .flatten()
        .map_or_else(|| stat.st_uid.to_string(), |u| u.name);
    let gid = nix::unistd::Group::from_gid(stat.st_gid.into())
        .ok()
        .flatten()
        .map_or_else(|| stat.st_gid.to_string(), |g| g.name);
    FileInfo {
        path: path.display().to_string(),
        size: u64::try_from(stat.st_size).unwrap_or(0),
        mode,
        mtime: stat.st_mtime as f64 + stat.st_mtime_nsec as f64 / 1e9,
        nlink: stat.st_nlink,
        uid,
        gid,
    }
}

/// File type bits of `st_mode`.
mod libc_mode {
    use nix::sys::stat::SFlag;
    pub(super) const S_IFMT: u32 = SFlag::S_IFMT.bits();
    pub(super) const S_IFDIR: u32 = SFlag::S_IFDIR.bits();
    pub(super) const S_IFLNK: u32 = SFlag::S_IFLNK.bits();
}

/// Lists a directory (or describes a single file) under the sandboxes; symlinks are listed,
/// not followed.
pub fn browse(roots: &[PathBuf], requested: &str) -> Result<Vec<FileInfo>, FilesError> {
    let opened = sandbox::open(roots, requested)?;
    if !opened.is_dir() {
        return Ok(vec![file_info(&opened.path, &opened.stat)]);
    }
    let mut entries: Vec<FileInfo> = sandbox::entries(&opened)?
        .iter()
        .map(|(path, stat)| file_info(path, stat))
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
    let file = sandbox::open(roots, requested)?;
    if file.is_dir() {
        return Err(FilesError::BadRequest(format!(
            "{requested} is a directory"
        )));
    }
    let size = file.size();
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
    let data = sandbox::read_at(&file, offset, length).map_err(|source| FilesError::Io {
        path: requested.to_owned(),
        source,
    })?;
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

/// Streams a file in [`MAX_READ`] chunks, up to the size it had when opened: the agent
/// never holds more than a chunk of it.
async fn download_handler(
    State(served): State<Served>,
    Query(query): Query<PathQuery>,
) -> Result<Response, FilesError> {
    let roots = Arc::clone(&served.roots);
    let requested = query.path.clone();
    let file = blocking(move || {
        let file = sandbox::open(&roots, &query.path)?;
        if file.is_dir() {
            return Err(FilesError::BadRequest(format!(
                "{} is a directory",
                query.path
            )));
        }
        Ok(file)
    })
    .await?;
    let size = file.size();
    let reader = tokio::fs::File::from_std(std::fs::File::from(file.fd)).take(size);
    let chunks = futures::stream::unfold(Some((reader, requested)), |state| async move {
        let (mut reader, requested) = state?;
        let mut chunk = vec![0; usize::try_from(MAX_READ).unwrap_or(65_536)];
        match reader.read(&mut chunk).await {
            Ok(0) => None,
            Ok(n) => {
                chunk.truncate(n);
                Some((Ok(Bytes::from(chunk)), Some((reader, requested))))
            }
            Err(error) => {
                tracing::warn!(path = %requested, %error, "a download stopped");
                Some((Err(error), None))
            }
        }
    });
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
            (header::CONTENT_LENGTH, size.to_string()),
        ],
        Body::from_stream(chunks),
    )
        .into_response())
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
mod tests;

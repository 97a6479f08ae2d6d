//! The node image: `FROM scratch` with the orch binary, the shared libraries it links (found
//! with `ldd`, copied to the same paths) and Debian's static busybox for the shell of process
//! tasks. Built with the engine's build API from a tar context assembled in memory, never
//! pulled; labelled with the cluster and the binary's sha256, and rebuilt only when the
//! binary changed.
//!
//! May depend on: provision::{templates, steps}, the parent module (errors, labels, engine
//! calls). Runs `ldd`, reads the binary and talks to the engine.

use super::{engine_error, DockerError, BINARY_LABEL, STAMP_LABEL};
use crate::steps::Progress;
use crate::templates::{self, Template};
use bollard::query_parameters::BuildImageOptionsBuilder;
use bollard::Docker;
use futures::StreamExt as _;
use orch_driver::engine::EngineError;
use sha2::Digest as _;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Where the orch binary lives in the image (its entrypoint).
pub const BINARY_IN_IMAGE: &str = "/usr/local/bin/orch";
/// The static busybox put in the image (installed by `.ci/run` from `busybox-static`).
pub const BUSYBOX: &str = "/bin/busybox";
/// Bound for a whole image build (a debug binary is several hundred MB).
const BUILD_TIMEOUT: Duration = Duration::from_secs(600);

const DOCKERFILE: Template = Template {
    name: "Dockerfile.node",
    text: include_str!("../../templates/Dockerfile.node"),
};

/// The Dockerfile of the node image.
pub fn dockerfile(
    cluster: &str,
    binary_sha256: &str,
    binary_stamp: &str,
    install_dir: &str,
) -> Result<String, templates::TemplateError> {
    templates::render(
        DOCKERFILE,
        &[
            ("cluster", cluster),
            ("binary_sha256", binary_sha256),
            ("binary_stamp", binary_stamp),
            ("install_dir", install_dir),
            ("binary", BINARY_IN_IMAGE),
        ],
    )
}

/// The absolute paths of the libraries in `ldd`'s output (the loader included).
pub fn parse_ldd(output: &str) -> Vec<PathBuf> {
    output
        .lines()
        .filter_map(|line| {
            let line = line.trim();
            let path = match line.split_once("=>") {
                Some((_, target)) => target.split_whitespace().next()?,
                None => line.split_whitespace().next()?,
            };
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect()
}

/// The shared libraries `binary` links, as `ldd` lists them; none for a static binary.
pub fn linked_libraries(binary: &Path) -> Result<Vec<PathBuf>, DockerError> {
    let output = std::process::Command::new("ldd")
        .arg(binary)
        .output()
        .map_err(|source| DockerError::Io {
            what: format!("running ldd {}", binary.display()),
            source,
        })?;
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        if text.contains("not a dynamic executable") || stderr.contains("not a dynamic") {
            return Ok(Vec::new());
        }
        return Err(DockerError::Image {
            image: binary.display().to_string(),
            problem: format!("ldd failed: {}", stderr.trim()),
        });
    }
    Ok(parse_ldd(&text))
}

/// The sha256 of a file, in hex.
pub fn sha256_file(path: &Path) -> Result<String, DockerError> {
    let io = |source| DockerError::Io {
        what: format!("reading {}", path.display()),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(io)?;
    let mut hasher = sha2::Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let read = file.read(&mut buffer).map_err(io)?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// A tar archive (ustar) built in memory.
#[derive(Debug, Default)]
pub struct Tar {
    bytes: Vec<u8>,
}

impl Tar {
    /// A regular file at `path` (relative, `/`-separated).
    pub fn file(&mut self, path: &str, mode: u32, data: &[u8]) -> Result<(), DockerError> {
        self.bytes
            .extend_from_slice(&header(path, mode, data.len() as u64, b'0')?);
        self.bytes.extend_from_slice(data);
        let padding = (512 - data.len() % 512) % 512;
        self.bytes.extend(std::iter::repeat_n(0u8, padding));
        Ok(())
    }

    /// A directory at `path`.
    pub fn dir(&mut self, path: &str) -> Result<(), DockerError> {
        let path = format!("{}/", path.trim_end_matches('/'));
        self.bytes
            .extend_from_slice(&header(&path, 0o755, 0, b'5')?);
        Ok(())
    }

    /// The archive, closed with its two zero blocks.
    pub fn finish(mut self) -> Vec<u8> {
        self.bytes.extend(std::iter::repeat_n(0u8, 1024));
        self.bytes
    }
}

/// A ustar header; names longer than 100 bytes are split into prefix and name.
fn header(path: &str, mode: u32, size: u64, kind: u8) -> Result<[u8; 512], DockerError> {
    let too_long = || DockerError::Image {
        image: path.to_owned(),
        problem: "path too long for a tar header".to_owned(),
    };
    let (prefix, name) = if path.len() <= 100 {
        ("", path)
    } else {
        let split = path
            .char_indices()
            .filter(|(i, c)| *c == '/' && *i <= 155 && path.len() - i - 1 <= 100)
            .map(|(i, _)| i)
            .next()
            .ok_or_else(too_long)?;
        (&path[..split], &path[split + 1..])
    };
    let mut block = [0u8; 512];
    let mut put = |offset: usize, field: &[u8]| {
        block[offset..offset + field.len()].copy_from_slice(field);
    };
    put(0, name.as_bytes());
    put(100, format!("{mode:07o}\0").as_bytes());
    put(108, b"0000000\0");
    put(116, b"0000000\0");
    put(124, format!("{size:011o}\0").as_bytes());
    put(136, b"00000000000\0");
    put(148, b"        ");
    put(156, &[kind]);
    put(257, b"ustar\0");
    put(263, b"00");
    put(345, prefix.as_bytes());
    let sum: u32 = block.iter().map(|b| u32::from(*b)).sum();
    block[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    Ok(block)
}

/// The build context: the Dockerfile and `rootfs/` with the binary, its libraries and
/// busybox.
pub fn context(
    dockerfile: &str,
    binary: &Path,
    libraries: &[PathBuf],
) -> Result<Vec<u8>, DockerError> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|source| DockerError::Io {
            what: format!("reading {}", path.display()),
            source,
        })
    };
    let mut tar = Tar::default();
    tar.file("Dockerfile", 0o644, dockerfile.as_bytes())?;
    let mut files: Vec<(String, Vec<u8>)> = vec![
        (BINARY_IN_IMAGE.to_owned(), read(binary)?),
        (BUSYBOX.to_owned(), read(Path::new(BUSYBOX))?),
    ];
    for library in libraries {
        files.push((library.display().to_string(), read(library)?));
    }
    let mut dirs = std::collections::BTreeSet::new();
    for (path, _) in &files {
        let mut parent = Path::new(path).parent();
        while let Some(dir) = parent.filter(|d| *d != Path::new("/")) {
            dirs.insert(dir.display().to_string());
            parent = dir.parent();
        }
    }
    tar.dir("rootfs")?;
    for dir in &dirs {
        tar.dir(&format!("rootfs{dir}"))?;
    }
    for (path, data) in &files {
        tar.file(&format!("rootfs{path}"), 0o755, data)?;
    }
    Ok(tar.finish())
}

/// What the engine has under the image's tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageState {
    /// No image has the tag.
    Missing,
    /// The image was built from another binary.
    Stale,
    /// The image carries this binary; its id.
    Current(String),
}

impl ImageState {
    /// Why it would be built, for `orch up --plan`.
    pub fn reason(&self) -> Option<&'static str> {
        match self {
            Self::Missing => Some("missing"),
            Self::Stale => Some("binary changed"),
            Self::Current(_) => None,
        }
    }
}

/// The binary's stamp: size, inode and modification time. An image whose [`STAMP_LABEL`]
/// equals it carries this binary without hashing it again (a debug binary takes seconds).
pub fn stamp(binary: &Path) -> Result<String, DockerError> {
    use std::os::unix::fs::MetadataExt as _;
    let metadata = std::fs::metadata(binary).map_err(|source| DockerError::Io {
        what: format!("reading {}", binary.display()),
        source,
    })?;
    Ok(format!(
        "{}-{}-{}.{}",
        metadata.len(),
        metadata.ino(),
        metadata.mtime(),
        metadata.mtime_nsec()
    ))
}

/// The sha256 of `binary`, computed off the async threads.
pub async fn binary_sha256(binary: &Path) -> Result<String, DockerError> {
    let path = binary.to_owned();
    tokio::task::spawn_blocking(move || sha256_file(&path))
        .await
        .map_err(|e| DockerError::Image {
            image: binary.display().to_string(),
            problem: format!("hashing failed: {e}"),
        })?
}

/// Looks the tag up: current when its stamp label matches the binary's stamp, or its
/// binary label matches the binary's sha256.
pub async fn state(docker: &Docker, tag: &str, binary: &Path) -> Result<ImageState, DockerError> {
    let image = match super::bounded(
        &format!("inspecting image {tag}"),
        docker.inspect_image(tag),
    )
    .await
    {
        Ok(image) => image,
        Err(error) if error.is_not_found() => return Ok(ImageState::Missing),
        Err(error) => return Err(error),
    };
    let labels = image.config.and_then(|c| c.labels).unwrap_or_default();
    let Some(id) = image.id else {
        return Ok(ImageState::Stale);
    };
    if labels.get(STAMP_LABEL) == Some(&stamp(binary)?) {
        return Ok(ImageState::Current(id));
    }
    match labels.get(BINARY_LABEL) {
        Some(sha) if *sha == binary_sha256(binary).await? => Ok(ImageState::Current(id)),
        _ => Ok(ImageState::Stale),
    }
}

/// The image `tag` carrying `binary`, built when missing or stale. Returns its id.
pub async fn ensure(
    docker: &Docker,
    tag: &str,
    cluster: &str,
    binary: &Path,
    install_dir: &str,
    progress: &Progress,
) -> Result<String, DockerError> {
    let state = state(docker, tag, binary).await?;
    let reason = match state {
        ImageState::Current(id) => {
            progress.note(format!("image {tag}: current (binary unchanged)"));
            return Ok(id);
        }
        other => other.reason().unwrap_or("missing"),
    };
    let begin = Instant::now();
    let sha256 = binary_sha256(binary).await?;
    let stamp = stamp(binary)?;
    let dockerfile =
        dockerfile(cluster, &sha256, &stamp, install_dir).map_err(|e| DockerError::Image {
            image: tag.to_owned(),
            problem: e.to_string(),
        })?;
    let libraries = linked_libraries(binary)?;
    let context = context(&dockerfile, binary, &libraries)?;
    let size = context.len();
    let options = BuildImageOptionsBuilder::default()
        .dockerfile("Dockerfile")
        .t(tag)
        .rm(true)
        .forcerm(true)
        .build();
    let build = async {
        let mut stream =
            docker.build_image(options, None, Some(bollard::body_full(context.into())));
        let mut log = Vec::new();
        while let Some(item) = stream.next().await {
            let info = item.map_err(|source| engine_error(format!("building {tag}"), source))?;
            if let Some(detail) = info.error_detail {
                return Err(DockerError::Image {
                    image: tag.to_owned(),
                    problem: format!(
                        "{} (build output: {})",
                        detail.message.unwrap_or_default(),
                        log.join("")
                    ),
                });
            }
            if let Some(line) = info.stream {
                log.push(line);
            }
        }
        Ok(())
    };
    match tokio::time::timeout(BUILD_TIMEOUT, build).await {
        Ok(result) => result?,
        Err(_) => {
            return Err(DockerError::Engine(EngineError::Timeout {
                what: format!("building {tag}"),
                limit: BUILD_TIMEOUT,
            }))
        }
    }
    match self::state(docker, tag, binary).await? {
        ImageState::Current(id) => {
            progress.note(format!(
                "image {tag}: built ({reason}; {} MB context, {} libraries) in {:.1}s",
                size / 1_000_000,
                libraries.len(),
                begin.elapsed().as_secs_f64()
            ));
            Ok(id)
        }
        _ => Err(DockerError::Image {
            image: tag.to_owned(),
            problem: "the build finished but the tag does not carry the binary's label".to_owned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldd_output_gives_absolute_library_paths() {
        let output = "\tlinux-vdso.so.1 (0x00007ffd)\n\
            \tlibssl.so.3 => /lib/x86_64-linux-gnu/libssl.so.3 (0x00007f9f)\n\
            \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f9e)\n\
            \t/lib64/ld-linux-x86-64.so.2 (0x00007f9f8)\n";
        assert_eq!(
            parse_ldd(output),
            [
                PathBuf::from("/lib/x86_64-linux-gnu/libssl.so.3"),
                PathBuf::from("/lib/x86_64-linux-gnu/libc.so.6"),
                PathBuf::from("/lib64/ld-linux-x86-64.so.2"),
            ]
        );
        assert!(parse_ldd("\tnot a dynamic executable\n").is_empty());
    }

    #[test]
    fn the_dockerfile_names_the_binary_and_its_hash() {
        let text = dockerfile("demo", "abc123", "5-6-7.8", "/var/lib/orch").expect("render");
        assert!(text.contains("orch.binary-stamp=\"5-6-7.8\""));
        assert!(text.contains("FROM scratch"));
        assert!(text.contains("orch.binary-sha256=\"abc123\""));
        assert!(text.contains("orch.image-of=\"demo\""));
        assert!(text.contains("ENTRYPOINT [\"/usr/local/bin/orch\"]"));
        assert!(text.contains("mkdir -p /tmp /var/lib/orch"));
        assert!(!text.contains("{{"));
    }

    #[test]
    fn the_tar_has_valid_headers_and_padding() {
        let mut tar = Tar::default();
        tar.dir("rootfs").expect("dir");
        tar.file("rootfs/a", 0o755, b"hello").expect("file");
        let long = format!("rootfs/{}/{}", "d".repeat(120), "f".repeat(50));
        tar.file(&long, 0o644, b"").expect("long name");
        let bytes = tar.finish();
        assert_eq!(
            bytes.len(),
            512 * 4 + 1024,
            "3 headers, 1 data block, 2 end blocks"
        );
        let file = &bytes[512..1024];
        assert_eq!(&file[..8], b"rootfs/a");
        assert_eq!(&file[124..136], b"00000000005\0");
        assert_eq!(file[156], b'0');
        assert_eq!(&file[257..263], b"ustar\0");
        let stored: u32 =
            u32::from_str_radix(std::str::from_utf8(&file[148..154]).expect("octal"), 8)
                .expect("checksum");
        let mut copy = file.to_vec();
        copy[148..156].copy_from_slice(b"        ");
        assert_eq!(stored, copy.iter().map(|b| u32::from(*b)).sum::<u32>());
        assert_eq!(&bytes[1024..1029], b"hello");
        let long_header = &bytes[1536..2048];
        assert_eq!(&long_header[..50], "f".repeat(50).as_bytes());
        assert!(long_header[345..].starts_with(b"rootfs/ddd"));
        assert!(Tar::default().file(&"x".repeat(300), 0o644, b"").is_err());
    }
}

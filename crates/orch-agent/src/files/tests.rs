//! The sandbox file API: confinement (no symlink followed, even one swapped in), Mesos read
//! semantics, listings, and streamed downloads on a real socket.

use super::*;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

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
    std::fs::create_dir_all(root.join("task-2")).expect("mkdir");
    std::fs::write(task.join("stdout"), "hello\nworld\n").expect("write");
    std::fs::write(root.join("task-2/stdout"), "other task\n").expect("write");
    let outside = base.join("secret");
    std::fs::write(&outside, "do not read").expect("write");
    std::os::unix::fs::symlink(&outside, task.join("escape")).expect("symlink");
    std::os::unix::fs::symlink("/etc", task.join("etc")).expect("symlink");
    std::os::unix::fs::symlink(task.join("stdout"), task.join("inside")).expect("symlink");
    std::os::unix::fs::symlink("../task-2", task.join("next-door")).expect("symlink");
    nix::unistd::mkfifo(&task.join("fifo"), nix::sys::stat::Mode::S_IRWXU).expect("mkfifo");
    Sandboxes {
        _dir: dir,
        root,
        outside,
    }
}

fn forbidden(result: Result<ReadChunk, FilesError>) -> bool {
    matches!(result, Err(FilesError::Forbidden(_)))
}

#[test]
fn paths_are_confined_and_no_symlink_is_followed() {
    let s = sandboxes();
    let roots = [s.root.clone()];
    let stdout = s.root.join("task-1/stdout");
    assert_eq!(
        read(&roots, "task-1/stdout", 0, None)
            .expect("relative")
            .data,
        "hello\nworld\n"
    );
    assert_eq!(
        read(&roots, &stdout.display().to_string(), 6, None)
            .expect("absolute")
            .data,
        "world\n"
    );
    assert_eq!(
        read(&roots, "./task-2//stdout", 0, None)
            .expect("plain components")
            .data,
        "other task\n"
    );
    for refused in [
        // Symlinks, wherever they point and wherever they sit in the path.
        "task-1/escape".to_owned(),
        "task-1/inside".to_owned(),
        "task-1/etc/passwd".to_owned(),
        "task-1/next-door/stdout".to_owned(),
        // Not a plain file: opening it must not block the agent.
        "task-1/fifo".to_owned(),
        // Out of the sandboxes.
        "task-1/../../secret".to_owned(),
        "../secret".to_owned(),
        s.outside.display().to_string(),
        "/etc/passwd".to_owned(),
    ] {
        assert!(
            forbidden(read(&roots, &refused, 0, None)),
            "{refused}: {:?}",
            read(&roots, &refused, 0, None)
        );
    }
    assert!(matches!(
        read(&roots, "task-1/missing", 0, None),
        Err(FilesError::NotFound(_))
    ));
    assert!(matches!(
        read(&roots, "task-1/stdout/below-a-file", 0, None),
        Err(FilesError::NotFound(_))
    ));
    assert!(matches!(
        read(&roots, "", 0, None),
        Err(FilesError::BadRequest(_))
    ));
    assert!(matches!(
        browse(&roots, "task-1/next-door"),
        Err(FilesError::Forbidden(_))
    ));
}

#[test]
fn a_symlink_swapped_in_after_a_check_is_never_followed() {
    let s = sandboxes();
    let roots = [s.root.clone()];
    let task = s.root.join("task-1");
    let swapped = task.join("swapped");
    std::fs::write(&swapped, "harmless").expect("write");
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let swapper = {
        let (stop, task, outside) = (Arc::clone(&stop), task.clone(), s.outside.clone());
        std::thread::spawn(move || {
            let (file, link) = (task.join(".file"), task.join(".link"));
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = std::fs::write(&file, "harmless");
                let _ = std::fs::rename(&file, task.join("swapped"));
                let _ = std::os::unix::fs::symlink(&outside, &link);
                let _ = std::fs::rename(&link, task.join("swapped"));
            }
        })
    };
    let (mut read_it, mut refused) = (0, 0);
    let deadline = Instant::now() + Duration::from_secs(2);
    for _ in 0..20_000 {
        if Instant::now() > deadline {
            break;
        }
        match read(&roots, "task-1/swapped", 0, None) {
            Ok(chunk) => {
                assert_eq!(chunk.data, "harmless", "followed a swapped-in symlink");
                read_it += 1;
            }
            Err(FilesError::Forbidden(_) | FilesError::NotFound(_)) => refused += 1,
            Err(other) => panic!("{other}"),
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    swapper.join().expect("swapper");
    assert!(read_it + refused > 0);
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
    let big = s.root.join("task-1/big");
    std::fs::write(
        &big,
        vec![b'x'; usize::try_from(MAX_READ).expect("fits") * 2],
    )
    .expect("write");
    let capped = read(&roots, "task-1/big", 0, Some(i64::MAX)).expect("capped");
    assert_eq!(capped.data.len() as u64, MAX_READ);
    let tail = read(
        &roots,
        "task-1/big",
        2 * i64::try_from(MAX_READ).expect("fits") - 10,
        Some(100),
    )
    .expect("tail");
    assert_eq!(tail.data.len(), 10);
}

#[test]
fn browse_lists_like_mesos_without_following_links() {
    let s = sandboxes();
    let roots = [s.root.clone()];
    let listing = browse(&roots, "task-1").expect("browse");
    let names: Vec<&str> = listing
        .iter()
        .filter_map(|f| f.path.rsplit('/').next())
        .collect();
    assert_eq!(
        names,
        vec!["escape", "etc", "fifo", "inside", "next-door", "stdout"]
    );
    let stdout = listing
        .iter()
        .find(|f| f.path.ends_with("/stdout"))
        .expect("stdout listed");
    assert_eq!(
        stdout.path,
        s.root.join("task-1/stdout").display().to_string()
    );
    assert_eq!(stdout.size, 12);
    assert!(stdout.mode.starts_with("-rw"), "{}", stdout.mode);
    assert!(stdout.mtime > 0.0);
    assert_eq!(stdout.nlink, 1);
    let etc = listing
        .iter()
        .find(|f| f.path.ends_with("/etc"))
        .expect("etc listed");
    assert!(etc.mode.starts_with('l'), "{}", etc.mode);
    let root = browse(&roots, &s.root.display().to_string()).expect("root");
    assert_eq!(root.len(), 2);
    assert!(root[0].mode.starts_with('d'));
    let one = browse(&roots, "task-1/stdout").expect("a file");
    assert_eq!(one.len(), 1);
}

/// The process's peak resident memory (`VmHWM`), in KiB.
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .expect("status")
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}

#[tokio::test]
async fn downloads_stream_without_holding_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let agent = crate::Agent::open(
        crate::tests::instance(dir.path(), vec!["127.0.0.1:9".into()]),
        vec![],
    )
    .await
    .expect("open");
    let sandbox = agent.sandboxes().join("t1");
    std::fs::create_dir_all(&sandbox).expect("mkdir");
    const SIZE: u64 = 64 << 20;
    let big = std::fs::File::create(sandbox.join("big")).expect("create");
    big.set_len(SIZE).expect("sparse");
    big.write_at(b"the end", SIZE - 7).expect("write");
    drop(big);
    let mut small = std::fs::File::create(sandbox.join("small")).expect("create");
    small.write_all(b"tiny").expect("write");
    std::os::unix::fs::symlink("/etc/passwd", sandbox.join("passwd")).expect("symlink");

    let address = crate::tests::serve_on_port_zero(router(vec![agent])).await;
    orch_pki::tls::install_crypto_provider();
    let http = reqwest::Client::new();
    let url = |path: &str| format!("http://{address}/files/download?path={path}");
    let before = peak_rss_kib();
    let mut response = http.get(url("t1/big")).send().await.expect("answered");
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.content_length(), Some(SIZE));
    let (mut total, mut tail) = (0u64, Vec::new());
    while let Some(chunk) = response.chunk().await.expect("a chunk") {
        total += chunk.len() as u64;
        tail.extend_from_slice(&chunk);
        let keep = tail.len().saturating_sub(7);
        tail.drain(..keep);
    }
    let grown = peak_rss_kib().saturating_sub(before);
    assert_eq!(total, SIZE);
    assert_eq!(tail, b"the end");
    assert!(grown < 32 * 1024, "peak memory grew by {grown} KiB");

    let small = http.get(url("t1/small")).send().await.expect("answered");
    assert_eq!(small.bytes().await.expect("body").as_ref(), b"tiny");
    let denied = http.get(url("t1/passwd")).send().await.expect("answered");
    assert_eq!(denied.status().as_u16(), 403);
    let body = denied.text().await.expect("body");
    assert!(!body.contains("root:"), "{body}");
    let directory = http.get(url("t1")).send().await.expect("answered");
    assert_eq!(directory.status().as_u16(), 400);
}

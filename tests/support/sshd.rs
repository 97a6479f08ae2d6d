//! Real Debian sshd "hosts" for the ssh provider's tests: each [`SshdHost`] is one
//! `/usr/sbin/sshd -D -e -f <config>` listening on its own loopback address (`127.x.y.z`, the
//! whole 127/8 is local) and port, with its own generated ed25519 host key, root login with
//! the group's client key, and its own install root under the group's temp dir.
//!
//! Invariants:
//! - every sshd is killed when its [`SshdHosts`] is dropped, and so is every process left
//!   under a host's install root (nodes, supervisors, tasks started through sshd outlive the
//!   session by design; a test destroys its cluster, this catches what a failed test left);
//! - every wait is bounded and panics naming what it waited for;
//! - `ORCH_TEST_KEEP=1` keeps the temp dir.
//!
//! The tests run as root (sshd needs it); `/run/sshd` is created when missing.
#![allow(dead_code)]

use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The sshd binary.
pub const SSHD: &str = "/usr/sbin/sshd";
/// How long a host may take to accept SSH connections.
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// One sshd.
#[derive(Debug)]
pub struct SshdHost {
    /// Its loopback address, e.g. `127.0.11.1`.
    pub ip: IpAddr,
    /// Its SSH port.
    pub port: u16,
    /// Its public host key, `ssh-ed25519 AAAA...` (no comment): what a pin in the infra file
    /// looks like.
    pub host_key: String,
    /// Its own dir (config, host key, log).
    pub dir: PathBuf,
    /// Its install root, `<dir>/opt/orch` (does not exist until `orch up` makes it).
    pub install_dir: PathBuf,
    child: Child,
}

impl SshdHost {
    /// `ip:port`.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::new(self.ip, self.port)
    }

    /// Its line for a known_hosts file: `[ip]:port ssh-ed25519 AAAA...`.
    pub fn known_hosts_line(&self) -> String {
        format!("[{}]:{} {}", self.ip, self.port, self.host_key)
    }

    /// The sshd's log (it runs with `-e`).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("sshd.log")).unwrap_or_default()
    }

    /// True while the sshd runs.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

/// A group of sshd hosts sharing one temp dir and one client key.
#[derive(Debug)]
pub struct SshdHosts {
    dir: Option<tempfile::TempDir>,
    /// The client's private key (OpenSSH format, no passphrase), authorized on every host.
    pub client_key: PathBuf,
    /// The hosts, in the order of the addresses given to [`SshdHosts::start`].
    pub hosts: Vec<SshdHost>,
}

impl SshdHosts {
    /// Starts one sshd per address (e.g. `["127.0.11.1", "127.0.11.2"]`) and waits until each
    /// answers with an SSH banner. Give each test its own addresses.
    pub fn start(ips: &[&str]) -> SshdHosts {
        std::fs::create_dir_all("/run/sshd").expect("create /run/sshd");
        let dir = tempfile::Builder::new()
            .prefix("orch-sshd-")
            .tempdir()
            .expect("create temp dir");
        let client_key = dir.path().join("client_key");
        keygen(&client_key);
        let authorized = dir.path().join("authorized_keys");
        std::fs::copy(client_key.with_extension("pub"), &authorized)
            .expect("write authorized_keys");
        let mut group = SshdHosts {
            dir: Some(dir),
            client_key,
            hosts: Vec::new(),
        };
        for (i, ip) in ips.iter().enumerate() {
            let ip: IpAddr = ip.parse().expect("an IP address");
            let host_dir = group.path().join(format!("host-{}", i + 1));
            std::fs::create_dir_all(&host_dir).expect("create host dir");
            let host = start_host(ip, &host_dir, &authorized);
            group.hosts.push(host);
        }
        for host in &mut group.hosts {
            wait_banner(host);
        }
        group
    }

    /// The group's temp dir.
    pub fn path(&self) -> &Path {
        self.dir.as_ref().expect("temp dir").path()
    }

    /// A known_hosts file text naming every host.
    pub fn known_hosts(&self) -> String {
        self.hosts
            .iter()
            .map(|h| h.known_hosts_line() + "\n")
            .collect()
    }

    /// The processes whose command line or working directory lies under a host's install
    /// root, as `(pid, command line)`.
    pub fn processes_under_roots(&self) -> Vec<(u32, String)> {
        let roots: Vec<String> = self
            .hosts
            .iter()
            .map(|h| h.install_dir.display().to_string())
            .collect();
        processes(|cwd, cmdline| {
            roots
                .iter()
                .any(|r| cwd.starts_with(r.as_str()) || cmdline.contains(r.as_str()))
        })
    }

    /// Stops the sshd of host `i` (the host becomes unreachable; what runs under its install
    /// root keeps running).
    pub fn stop(&mut self, i: usize) {
        let host = &mut self.hosts[i];
        let _ = host.child.kill();
        let _ = host.child.wait();
    }

    /// Starts the sshd of host `i` again, with the same address, port and host key.
    pub fn restart(&mut self, i: usize) {
        self.stop(i);
        let host = &mut self.hosts[i];
        host.child = spawn_sshd(&host.dir);
        wait_banner(host);
    }

    /// Every sshd's log, for failure messages.
    pub fn logs(&self) -> String {
        self.hosts
            .iter()
            .map(|h| format!("--- sshd {} ---\n{}", h.addr(), h.log()))
            .collect()
    }
}

impl Drop for SshdHosts {
    fn drop(&mut self) {
        for host in &mut self.hosts {
            let _ = host.child.kill();
            let _ = host.child.wait();
        }
        for host in &self.hosts {
            if host.install_dir.exists() {
                super::kill_processes_under(&host.install_dir);
            }
        }
        if std::env::var_os("ORCH_TEST_KEEP").is_some() {
            if let Some(dir) = self.dir.take() {
                eprintln!("keeping {}", dir.keep().display());
            }
        }
    }
}

/// `(pid, cmdline)` of every process for which `select(cwd, cmdline)` holds.
pub fn processes(select: impl Fn(&str, &str) -> bool) -> Vec<(u32, String)> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return found;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == std::process::id() {
            continue;
        }
        let cwd = std::fs::read_link(entry.path().join("cwd"))
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if !cmdline.is_empty() && select(&cwd, &cmdline) {
            found.push((pid, cmdline));
        }
    }
    found
}

/// A copy of the orch binary without debug info and symbols (the debug build is ~300 MB;
/// this one is a fraction of it): pass it to `orch up --binary`. One copy per build of the
/// binary (named by its size and mtime) in the temp dir, shared by test processes and reused
/// across runs; made under a temporary name and renamed, so a reader never sees half a file.
pub fn stripped_orch() -> PathBuf {
    static STRIPPED: OnceLock<PathBuf> = OnceLock::new();
    STRIPPED
        .get_or_init(|| {
            let meta = std::fs::metadata(super::BIN).expect("stat the orch binary");
            let mtime = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos());
            let path = std::env::temp_dir().join(format!("orch-stripped-{}-{mtime}", meta.len()));
            if path.exists() {
                return path;
            }
            let temp = path.with_extension(format!("part{}", std::process::id()));
            let status = Command::new("strip")
                .arg("-o")
                .arg(&temp)
                .arg(super::BIN)
                .status()
                .expect("run strip");
            assert!(status.success(), "strip {} failed", super::BIN);
            std::fs::rename(&temp, &path).expect("rename the stripped binary");
            path
        })
        .clone()
}

fn keygen(path: &Path) {
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "orch-test", "-f"])
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .expect("run ssh-keygen");
    assert!(
        out.status.success(),
        "ssh-keygen failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn free_port_on(ip: IpAddr) -> u16 {
    let listener = TcpListener::bind((ip, 0)).unwrap_or_else(|e| panic!("bind {ip}:0: {e}"));
    listener.local_addr().expect("local_addr").port()
}

fn start_host(ip: IpAddr, dir: &Path, authorized: &Path) -> SshdHost {
    let host_key_file = dir.join("host_key");
    keygen(&host_key_file);
    let public = std::fs::read_to_string(host_key_file.with_extension("pub")).expect("read key");
    let host_key = public
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ");
    let port = free_port_on(ip);
    let config = dir.join("sshd_config");
    let text = format!(
        "ListenAddress {ip}:{port}\n\
         HostKey {}\n\
         PidFile none\n\
         AuthorizedKeysFile {}\n\
         PermitRootLogin prohibit-password\n\
         PasswordAuthentication no\n\
         KbdInteractiveAuthentication no\n\
         UsePAM no\n\
         StrictModes no\n\
         MaxStartups 100:30:200\n\
         MaxSessions 50\n\
         Subsystem sftp internal-sftp\n\
         LogLevel ERROR\n",
        host_key_file.display(),
        authorized.display()
    );
    std::fs::write(&config, text).expect("write sshd_config");
    let child = spawn_sshd(dir);
    SshdHost {
        ip,
        port,
        host_key,
        dir: dir.to_path_buf(),
        install_dir: dir.join("opt/orch"),
        child,
    }
}

/// Runs sshd with `<dir>/sshd_config`, appending to `<dir>/sshd.log`.
fn spawn_sshd(dir: &Path) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("sshd.log"))
        .expect("open sshd.log");
    Command::new(SSHD)
        .arg("-D")
        .arg("-e")
        .arg("-f")
        .arg(dir.join("sshd_config"))
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("clone log"))
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("start {SSHD}: {e}"))
}

fn wait_banner(host: &mut SshdHost) {
    use std::io::Read as _;
    let begin = Instant::now();
    loop {
        if let Ok(mut stream) = TcpStream::connect_timeout(&host.addr(), Duration::from_secs(1)) {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
            let mut banner = [0u8; 4];
            if stream.read_exact(&mut banner).is_ok() && &banner == b"SSH-" {
                return;
            }
        }
        assert!(
            host.is_running(),
            "sshd on {} exited:\n{}",
            host.addr(),
            host.log()
        );
        assert!(
            begin.elapsed() < START_TIMEOUT,
            "sshd on {} did not answer within {START_TIMEOUT:?}:\n{}",
            host.addr(),
            host.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

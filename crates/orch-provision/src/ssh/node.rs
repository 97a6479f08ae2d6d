//! A node on a host reached over SSH, as files and shell scripts: where everything lives under
//! the host's install root, the service rendered from `templates/` (a systemd unit, or a
//! supervisor script on hosts without systemd), the `sh` scripts run on the host, and the
//! decision whether a node runs as specified.
//!
//! Layout of `<install_dir>`: `bin/orch`, `data/` (master data dir or agent work dir, where
//! process tasks run), `logs/node.log`, `.orch-cluster` (the marker naming the cluster),
//! `orch-supervise.sh` with `supervisor.pid` and `node.pid` (without systemd), `tls/` (the
//! node's certificate and key, the CA certificate, a master's token), and `started` (the
//! stamp the running node was started with: sha256 of the binary and of the service file,
//! which names the sha256 of the TLS files, so new certificates restart the node). A node runs as specified when it is alive and its stamp equals the current one
//! (decided in [`super::decide`]).
//!
//! May depend on: provision::{cluster_spec, templates}. Pure.

use crate::cluster_spec::NodeSpec;
use crate::templates::{self, Template, TemplateError};
use sha2::{Digest as _, Sha256};

/// The systemd unit template.
pub const UNIT_TEMPLATE: Template = Template {
    name: "orch-node.service",
    text: include_str!("../../templates/orch-node.service"),
};

/// The supervisor script template (hosts without systemd).
pub const SUPERVISE_TEMPLATE: Template = Template {
    name: "orch-supervise.sh",
    text: include_str!("../../templates/orch-supervise.sh"),
};

/// The marker file's name: it holds the cluster's name.
pub const MARKER: &str = ".orch-cluster";

/// How the node is kept running on a host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServiceKind {
    /// A systemd unit (`/run/systemd/system` exists).
    Systemd,
    /// `orch-supervise.sh`, started detached with setsid.
    Supervised,
}

/// Where a node's files are on its host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    /// The install root, without a trailing slash.
    pub dir: String,
    /// The cluster's name.
    pub cluster: String,
    /// The machine's name.
    pub name: String,
}

impl Layout {
    /// The layout of machine `name` of `cluster` under `install_dir`.
    pub fn new(install_dir: &str, cluster: &str, name: &str) -> Self {
        let dir = install_dir.trim_end_matches('/');
        Self {
            dir: if dir.is_empty() { "/" } else { dir }.to_owned(),
            cluster: cluster.to_owned(),
            name: name.to_owned(),
        }
    }

    fn path(&self, rest: &str) -> String {
        format!("{}/{rest}", self.dir)
    }

    /// `<dir>/bin/orch`.
    pub fn binary(&self) -> String {
        self.path("bin/orch")
    }

    /// Where an upload goes before it is renamed to [`Layout::binary`].
    pub fn upload_temp(&self) -> String {
        self.path("bin/.orch.upload")
    }

    /// `<dir>/logs/node.log`.
    pub fn log(&self) -> String {
        self.path("logs/node.log")
    }

    /// `<dir>/orch-supervise.sh`.
    pub fn supervise_script(&self) -> String {
        self.path("orch-supervise.sh")
    }

    /// `orch-<cluster>-<name>.service`.
    pub fn unit_name(&self) -> String {
        format!("orch-{}-{}.service", self.cluster, self.name)
    }

    /// `/etc/systemd/system/<unit>`.
    pub fn unit_path(&self) -> String {
        format!("/etc/systemd/system/{}", self.unit_name())
    }

    /// The service file of `kind`.
    pub fn service_path(&self, kind: ServiceKind) -> String {
        match kind {
            ServiceKind::Systemd => self.unit_path(),
            ServiceKind::Supervised => self.supervise_script(),
        }
    }
}

/// `s` quoted for `sh`.
pub fn quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-:,=@+".contains(c))
    {
        return s.to_owned();
    }
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The node's command line, quoted for `sh` (and for systemd: `%` doubled).
pub fn command_line(layout: &Layout, spec: &NodeSpec, kind: ServiceKind) -> String {
    let words = std::iter::once(layout.binary())
        .chain(spec.args.iter().cloned())
        .map(|w| match kind {
            ServiceKind::Systemd => quote(&w).replace('%', "%%"),
            ServiceKind::Supervised => quote(&w),
        })
        .collect::<Vec<_>>();
    words.join(" ")
}

/// The service file of `kind` for `spec`, as it is written on the host (ending in a
/// newline): what the plan compares with the host's file, and what the node's stamp covers.
pub fn render_service(
    layout: &Layout,
    spec: &NodeSpec,
    kind: ServiceKind,
) -> Result<String, TemplateError> {
    let command = command_line(layout, spec, kind);
    let install_dir = quote(&layout.dir);
    let log = quote(&layout.log());
    let supervisor_pid = quote(&format!("{}/supervisor.pid", layout.dir));
    let node_pid = quote(&format!("{}/node.pid", layout.dir));
    let values = [
        ("name", spec.name.as_str()),
        ("role", spec.role.name()),
        ("cluster", layout.cluster.as_str()),
        ("install_dir", install_dir.as_str()),
        ("command", command.as_str()),
        ("log", log.as_str()),
        ("supervisor_pid", supervisor_pid.as_str()),
        ("node_pid", node_pid.as_str()),
        ("tls", spec.tls_digest.as_str()),
    ];
    let log_unquoted = layout.log();
    let mut content = match kind {
        // systemd takes paths unquoted.
        ServiceKind::Systemd => {
            let mut values = values;
            values[3].1 = layout.dir.as_str();
            values[5].1 = log_unquoted.as_str();
            templates::render(UNIT_TEMPLATE, &values)?
        }
        ServiceKind::Supervised => templates::render(SUPERVISE_TEMPLATE, &values)?,
    };
    if !content.ends_with('\n') {
        content.push('\n');
    }
    Ok(content)
}

/// Hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The stamp of a node: what it is (or would be) started with.
pub fn stamp(binary_sha: &str, service: &str) -> String {
    format!("{binary_sha} {}", sha256_hex(service.as_bytes()))
}

/// The shell functions every script uses: `alive PIDFILE NEEDLE` (the process of the pid
/// file runs and its command line contains NEEDLE; zombies are not alive), `stop_pid
/// PIDFILE NEEDLE` (TERM, up to 10 s, then KILL), `binary_sha` (sha256 of `bin/orch`, cached
/// in `bin/orch.sha256` while that is newer than the binary; nothing when it is absent),
/// `kill_under DIR` (KILL every process whose working directory or command line is under DIR).
const FUNCTIONS: &str = r#"
alive() {
    [ -f "$1" ] || return 1
    pid=$(cat "$1" 2>/dev/null)
    case "$pid" in ''|*[!0-9]*) return 1 ;; esac
    [ -r "/proc/$pid/cmdline" ] || return 1
    cmd=$(tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null)
    case "$cmd" in *"$2"*) return 0 ;; esac
    return 1
}
stop_pid() {
    if alive "$1" "$2"; then
        victim=$(cat "$1")
        kill -TERM "$victim" 2>/dev/null
        i=0
        while [ $i -lt 100 ] && alive "$1" "$2"; do sleep 0.1; i=$((i + 1)); done
        kill -KILL "$victim" 2>/dev/null
    fi
    rm -f "$1"
}
binary_sha() {
    if [ -f "$BIN.sha256" ] && [ "$BIN.sha256" -nt "$BIN" ]; then cat "$BIN.sha256"; return 0; fi
    [ -f "$BIN" ] || return 0
    s=$(sha256sum < "$BIN" | cut -c1-64)
    [ -n "${NO_CACHE:-}" ] || printf '%s\n' "$s" > "$BIN.sha256" 2>/dev/null
    echo "$s"
}
kill_under() {
    for p in /proc/[0-9]*; do
        pid=${p#/proc/}
        [ "$pid" = "$$" ] && continue
        cwd=$(readlink "$p/cwd" 2>/dev/null)
        case "$cwd" in "$1"|"$1"/*) kill -KILL "$pid" 2>/dev/null; continue ;; esac
        cmd=$(tr '\0' ' ' < "$p/cmdline" 2>/dev/null)
        case "$cmd" in *"$1"/*|*"$1 "*|*"$1") kill -KILL "$pid" 2>/dev/null ;; esac
    done
}
"#;

fn header(layout: &Layout) -> String {
    format!(
        "set -u\nD={}\nC={}\nUNIT={}\nSCRIPT={}\nBIN={}\n{FUNCTIONS}",
        quote(&layout.dir),
        quote(&layout.cluster),
        quote(&layout.unit_name()),
        quote(&layout.supervise_script()),
        quote(&layout.binary()),
    )
}

/// Prints `systemd=1` when systemd runs the host, else `systemd=0`.
pub fn probe_script() -> &'static str {
    "if [ -d /run/systemd/system ]; then echo systemd=1; else echo systemd=0; fi\n"
}

/// Exit status of [`prepare_script`] when the install dir belongs to something else.
pub const FOREIGN_EXIT: u32 = 3;

/// Makes the install root (refusing, with exit [`FOREIGN_EXIT`] and `foreign=<owner>`, one
/// that another cluster's marker names or that is not empty and has no marker), writes the
/// marker, and prints `sha=<sha256 of bin/orch>` (empty when absent).
pub fn prepare_script(layout: &Layout) -> String {
    format!(
        r#"{}
if [ -e "$D" ]; then
    owner=$(cat "$D/{MARKER}" 2>/dev/null || true)
    if [ -z "$owner" ] && [ -n "$(ls -A "$D" 2>/dev/null)" ]; then
        echo "foreign=no marker file, not empty"; exit {FOREIGN_EXIT}
    fi
    if [ -n "$owner" ] && [ "$owner" != "$C" ]; then
        echo "foreign=cluster $owner"; exit {FOREIGN_EXIT}
    fi
fi
mkdir -p "$D" && printf '%s\n' "$C" > "$D/{MARKER}" || exit 1
mkdir -p "$D/bin" "$D/data" "$D/logs" || exit 1
echo "sha=$(binary_sha)"
"#,
        header(layout)
    )
}

/// Prints `sha=<sha256 of the binary>` (empty when absent) and `marker=<cluster>`, without
/// changing anything (for the plan).
pub fn inspect_script(layout: &Layout, kind: ServiceKind) -> String {
    format!(
        r#"{}
NO_CACHE=1
echo "sha=$(binary_sha)"
echo "marker=$(cat "$D/{MARKER}" 2>/dev/null)"
F={}
if [ -f "$F" ]; then echo "service=$(sha256sum < "$F" | cut -c1-64)"; else echo "service="; fi
{}"#,
        header(layout),
        quote(&layout.service_path(kind)),
        state_lines(kind)
    )
}

/// Moves an uploaded binary at `temp` into place (mode 755) and prints its sha256.
pub fn install_binary_script(layout: &Layout, temp: &str) -> String {
    format!(
        "{}\nT={}\nrm -f \"$BIN.sha256\"\nchmod 755 \"$T\" && mv -f \"$T\" \"$BIN\" || exit 1\necho \"sha=$(binary_sha)\"\n",
        header(layout),
        quote(temp)
    )
}

/// Writes `content` to `path` unless it already holds it; prints `written` or `unchanged`.
/// After writing a systemd unit, reloads systemd.
pub fn write_file_script(path: &str, content: &str, mode: &str, systemd_unit: bool) -> String {
    let sha = sha256_hex(content.as_bytes());
    let mut delimiter = "ORCH_END_OF_FILE".to_owned();
    while content.contains(&delimiter) {
        delimiter.push('_');
    }
    let reload = if systemd_unit {
        "systemctl daemon-reload || exit 1\n"
    } else {
        ""
    };
    format!(
        "set -u\nF={path}\nif [ -f \"$F\" ] && [ \"$(sha256sum < \"$F\" | cut -c1-64)\" = {sha} ]; then echo unchanged; exit 0; fi\n\
         cat > \"$F.tmp\" <<'{delimiter}'\n{content}{newline}{delimiter}\n\
         chmod {mode} \"$F.tmp\" && mv -f \"$F.tmp\" \"$F\" || exit 1\n{reload}echo written\n",
        path = quote(path),
        newline = if content.ends_with('\n') { "" } else { "\n" },
    )
}

/// Writes each of `files` (path on the host, content, private) unless it already holds that
/// content, with umask 077 so a key is never readable by others, not even for a moment:
/// private files end up 0600, the others 0644, their directories 0700. Prints `written=<path>`
/// or `unchanged=<path>` per file.
pub fn install_files_script(files: &[(String, String, bool)]) -> String {
    let mut script = String::from("set -u\numask 077\n");
    for (path, content, private) in files {
        let sha = sha256_hex(content.as_bytes());
        let mut delimiter = "ORCH_END_OF_FILE".to_owned();
        while content.contains(&delimiter) {
            delimiter.push('_');
        }
        let dir = path.rsplit_once('/').map_or(".", |(dir, _)| dir);
        let dir = if dir.is_empty() { "/" } else { dir };
        script.push_str(&format!(
            "F={path}\nmkdir -p {dir} && chmod 700 {dir} || exit 1\n\
             if [ -f \"$F\" ] && [ \"$(sha256sum < \"$F\" | cut -c1-64)\" = {sha} ]; then\n\
             chmod {mode} \"$F\" || exit 1\necho \"unchanged=$F\"\nelse\n\
             rm -f \"$F.tmp\"\ncat > \"$F.tmp\" <<'{delimiter}'\n{content}{newline}{delimiter}\n\
             chmod {mode} \"$F.tmp\" && mv -f \"$F.tmp\" \"$F\" || exit 1\necho \"written=$F\"\nfi\n",
            path = quote(path),
            dir = quote(dir),
            mode = if *private { "600" } else { "644" },
            newline = if content.ends_with('\n') { "" } else { "\n" },
        ));
    }
    script
}

/// Lines printing `alive=0|1`, `started=<stamp>` and `current=<stamp>` (needs [`header`]).
fn state_lines(kind: ServiceKind) -> String {
    let alive = match kind {
        ServiceKind::Systemd => "systemctl is-active --quiet \"$UNIT\"",
        ServiceKind::Supervised => {
            "alive \"$D/supervisor.pid\" \"$SCRIPT\" && alive \"$D/node.pid\" \"$BIN\""
        }
    };
    let service = match kind {
        ServiceKind::Systemd => "/etc/systemd/system/$UNIT",
        ServiceKind::Supervised => "$SCRIPT",
    };
    format!(
        r#"if {alive}; then echo alive=1; else echo alive=0; fi
echo "started=$(cat "$D/started" 2>/dev/null)"
if [ -f "$BIN" ] && [ -f "{service}" ]; then
    echo "current=$(binary_sha) $(sha256sum < "{service}" | cut -c1-64)"
else
    echo "current="
fi
"#
    )
}

/// Prints `alive=`, `started=`, `current=` and `installed=0|1`.
pub fn state_script(layout: &Layout, kind: ServiceKind) -> String {
    format!(
        "{}\nif [ -f \"$D/{MARKER}\" ]; then echo installed=1; else echo installed=0; fi\n{}",
        header(layout),
        state_lines(kind)
    )
}

/// Stops the node if it runs, starts it with the current files, records the stamp, and
/// checks that it runs a moment later.
pub fn start_script(layout: &Layout, kind: ServiceKind) -> String {
    let start = match kind {
        ServiceKind::Systemd => r#"systemctl enable "$UNIT" >/dev/null 2>&1
systemctl restart "$UNIT" || exit 1
sleep 0.3
systemctl is-active --quiet "$UNIT" || { echo "the unit is not active:"; tail -n 20 "$D/logs/node.log" 2>/dev/null; exit 1; }
"#
        .to_owned(),
        ServiceKind::Supervised => r#"stop_pid "$D/supervisor.pid" "$SCRIPT"
stop_pid "$D/node.pid" "$BIN"
cd "$D" || exit 1
setsid nohup sh "$SCRIPT" > /dev/null 2>&1 < /dev/null &
i=0
while [ $i -lt 50 ] && ! alive "$D/node.pid" "$BIN"; do sleep 0.1; i=$((i + 1)); done
alive "$D/supervisor.pid" "$SCRIPT" || { echo "the supervisor does not run:"; tail -n 20 "$D/logs/node.log" 2>/dev/null; exit 1; }
"#
        .to_owned(),
    };
    let service = match kind {
        ServiceKind::Systemd => "/etc/systemd/system/$UNIT",
        ServiceKind::Supervised => "$SCRIPT",
    };
    format!(
        r#"{}
mkdir -p "$D/logs" "$D/data" || exit 1
current="$(binary_sha) $(sha256sum < "{service}" | cut -c1-64)"
rm -f "$D/started"
{start}printf '%s\n' "$current" > "$D/started"
echo started
"#,
        header(layout)
    )
}

/// Stops the node and every process under the install root, removes the unit and the install
/// root — only when its marker names the cluster. Prints `removed`, `absent`, or
/// `foreign=<what>`, after `unit` when a unit was removed.
pub fn destroy_script(layout: &Layout) -> String {
    format!(
        r#"{}
if [ -f "/etc/systemd/system/$UNIT" ]; then
    systemctl disable --now "$UNIT" >/dev/null 2>&1
    rm -f "/etc/systemd/system/$UNIT"
    systemctl daemon-reload >/dev/null 2>&1
    echo unit
fi
if [ ! -e "$D" ]; then echo absent; exit 0; fi
owner=$(cat "$D/{MARKER}" 2>/dev/null || true)
if [ -z "$owner" ] && [ -z "$(ls -A "$D" 2>/dev/null)" ]; then rmdir "$D" && echo removed; exit 0; fi
if [ "$owner" != "$C" ]; then echo "foreign=${{owner:-no marker file}}"; exit 0; fi
stop_pid "$D/supervisor.pid" "$SCRIPT"
stop_pid "$D/node.pid" "$BIN"
kill_under "$D"
sleep 0.2
kill_under "$D"
rm -rf "$D" || exit 1
echo removed
"#,
        header(layout)
    )
}

/// `key=value` lines of a script's output, as pairs.
pub fn fields(output: &str) -> Vec<(&str, &str)> {
    output
        .lines()
        .filter_map(|line| line.split_once('='))
        .collect()
}

/// The value of `key` in `key=value` output.
pub fn field<'a>(output: &'a str, key: &str) -> Option<&'a str> {
    fields(output)
        .into_iter()
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v.trim())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster_spec::MachineRole;

    fn spec() -> NodeSpec {
        NodeSpec {
            name: "agent-1".to_owned(),
            role: MachineRole::Agent,
            listen: "127.0.0.2:5051".parse().expect("addr"),
            data_dir: "/opt/orch/data".to_owned(),
            args: vec![
                "agent".to_owned(),
                "--resources".to_owned(),
                "cpus:1;ports:[32000-32099]".to_owned(),
                "--attributes".to_owned(),
                "rack:it's".to_owned(),
            ],
            tls: Vec::new(),
            tls_digest: "t1".to_owned(),
        }
    }

    #[test]
    fn quoting_keeps_plain_words_and_protects_the_rest() {
        assert_eq!(quote("/opt/orch/bin/orch"), "/opt/orch/bin/orch");
        assert_eq!(quote("cpus:1;x"), "'cpus:1;x'");
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote(""), "''");
    }

    #[test]
    fn both_services_run_the_node_with_its_arguments() {
        let layout = Layout::new("/opt/orch/", "demo", "agent-1");
        assert_eq!(layout.binary(), "/opt/orch/bin/orch");
        assert_eq!(
            layout.unit_path(),
            "/etc/systemd/system/orch-demo-agent-1.service"
        );
        let command = "/opt/orch/bin/orch agent --resources 'cpus:1;ports:[32000-32099]' --attributes 'rack:it'\\''s'";
        let script = render_service(&layout, &spec(), ServiceKind::Supervised).expect("supervise");
        assert!(script.starts_with("#!/bin/sh\n"), "{script}");
        assert!(script.contains(&format!("    {command} >> /opt/orch/logs/node.log 2>&1 &")));
        assert!(script.contains("echo $$ > /opt/orch/supervisor.pid"));
        let unit = render_service(&layout, &spec(), ServiceKind::Systemd).expect("unit");
        assert!(unit.contains(&format!("ExecStart={command}\n")), "{unit}");
        assert!(unit.contains("StandardOutput=append:/opt/orch/logs/node.log"));
        assert!(unit.contains("KillMode=process"));
        assert!(unit.contains("# TLS files (sha256): t1\n"), "{unit}");
        let renewed = NodeSpec {
            tls_digest: "t2".to_owned(),
            ..spec()
        };
        assert_ne!(
            render_service(&layout, &renewed, ServiceKind::Systemd).expect("unit"),
            unit,
            "new certificates, another service file: the node restarts"
        );
        assert_eq!(
            render_service(&layout, &spec(), ServiceKind::Systemd).expect("unit"),
            unit,
            "rendering is pure"
        );
    }

    #[test]
    fn scripts_run_in_sh_and_files_are_written_once() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("x.conf");
        let path = file.display().to_string();
        let run = |script: String| {
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(script)
                .output()
                .expect("run sh");
            assert!(out.status.success(), "{out:?}");
            String::from_utf8_lossy(&out.stdout).trim().to_owned()
        };
        let content = "a 'quoted' $HOME line\nORCH_END_OF_FILE\n";
        assert_eq!(
            run(write_file_script(&path, content, "644", false)),
            "written"
        );
        assert_eq!(std::fs::read_to_string(&file).expect("read"), content);
        assert_eq!(
            run(write_file_script(&path, content, "644", false)),
            "unchanged"
        );
        let key = dir.path().join("tls").join("node-key.pem");
        let files = vec![(
            key.display().to_string(),
            "-----BEGIN PRIVATE KEY-----\nx\n".to_owned(),
            true,
        )];
        assert!(run(install_files_script(&files)).starts_with("written="));
        assert!(run(install_files_script(&files)).starts_with("unchanged="));
        let mode = |p: &std::path::Path| {
            std::os::unix::fs::PermissionsExt::mode(
                &std::fs::metadata(p).expect("meta").permissions(),
            ) & 0o777
        };
        assert_eq!(mode(&key), 0o600);
        assert_eq!(mode(&dir.path().join("tls")), 0o700);
        assert_eq!(std::fs::read_to_string(&key).expect("key"), files[0].1);
        let layout = Layout::new(&dir.path().join("root").display().to_string(), "demo", "m");
        let out = run(prepare_script(&layout));
        assert_eq!(field(&out, "sha"), Some(""));
        let out = run(state_script(&layout, ServiceKind::Supervised));
        assert_eq!(field(&out, "alive"), Some("0"));
        assert_eq!(field(&out, "installed"), Some("1"));
        let other = Layout::new(&layout.dir, "other", "m");
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(prepare_script(&other))
            .output()
            .expect("run sh");
        assert_eq!(out.status.code(), i32::try_from(FOREIGN_EXIT).ok());
        assert_eq!(run(destroy_script(&other)), "foreign=demo");
        assert_eq!(run(destroy_script(&layout)), "removed");
        assert!(!std::path::Path::new(&layout.dir).exists());
        assert_eq!(run(destroy_script(&layout)), "absent");
    }
}

//! Host key checking: a host's pinned key (infra file) or the known_hosts file decides whether
//! the key a host offers is accepted. Parses OpenSSH known_hosts text: plain names, comma
//! lists, `[host]:port` entries, hashed entries (`|1|salt|hmac`), `@revoked` markers and
//! negated patterns; wildcard patterns are not matched (they never name our hosts).
//!
//! May depend on: nothing of the crate. Pure except [`append`], which writes one line.

use hmac::{Hmac, KeyInit, Mac};
use russh::keys::ssh_encoding::base64::{Base64, Encoding};
use russh::keys::{HashAlg, PublicKey};
use sha1::Sha1;
use std::io::Write as _;
use std::path::Path;

/// What the check concluded about an offered key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The key is the pinned one, or a known_hosts entry names it for this host.
    Known,
    /// Neither a pin nor known_hosts names any key of this host's key type.
    Unknown,
    /// The pin, or known_hosts, names another key for this host (or revokes this one).
    Changed {
        /// The expected key's fingerprint (`SHA256:...`) and where it comes from.
        expected: String,
    },
}

/// One usable line of a known_hosts file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The host patterns (first field), as written.
    pub hosts: String,
    /// The key.
    pub key: PublicKey,
    /// `@revoked`.
    pub revoked: bool,
    /// The line number (1-based), for messages.
    pub line: usize,
}

/// The entries of known_hosts `text`; lines that are not entries (comments, blanks,
/// `@cert-authority`, unparsable keys) are skipped.
pub fn parse(text: &str) -> Vec<Entry> {
    let mut entries = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut fields = line.split_whitespace();
        let mut revoked = false;
        let mut first = fields.next();
        if let Some(marker) = first.filter(|f| f.starts_with('@')) {
            if marker != "@revoked" {
                continue;
            }
            revoked = true;
            first = fields.next();
        }
        let (Some(hosts), Some(kind), Some(data)) = (first, fields.next(), fields.next()) else {
            continue;
        };
        let Ok(key) = PublicKey::from_openssh(&format!("{kind} {data}")) else {
            continue;
        };
        entries.push(Entry {
            hosts: hosts.to_owned(),
            key,
            revoked,
            line: i + 1,
        });
    }
    entries
}

/// How known_hosts names `host` reached on `port`: `host` for port 22, else `[host]:port`.
pub fn host_label(host: &str, port: u16) -> String {
    if port == 22 {
        host.to_owned()
    } else {
        format!("[{host}]:{port}")
    }
}

/// True when the patterns field `hosts` names `label` (and does not negate it).
pub fn names(hosts: &str, label: &str) -> bool {
    if let Some(hashed) = hosts.strip_prefix("|1|") {
        return hashed_matches(hashed, label);
    }
    let mut matched = false;
    for pattern in hosts.split(',') {
        if let Some(negated) = pattern.strip_prefix('!') {
            if negated == label {
                return false;
            }
        } else if pattern == label {
            matched = true;
        }
    }
    matched
}

fn hashed_matches(salt_and_hash: &str, label: &str) -> bool {
    let Some((salt, hash)) = salt_and_hash.split_once('|') else {
        return false;
    };
    let (Ok(salt), Ok(hash)) = (Base64::decode_vec(salt), Base64::decode_vec(hash)) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(&salt) else {
        return false;
    };
    mac.update(label.as_bytes());
    mac.verify_slice(&hash).is_ok()
}

/// The `SHA256:...` fingerprint of `key`.
pub fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

/// Decides on `offered` for `label` from a pin (which alone decides when given) or from the
/// entries of a known_hosts file.
pub fn check(
    offered: &PublicKey,
    label: &str,
    pinned: Option<&PublicKey>,
    entries: &[Entry],
) -> Verdict {
    if let Some(pin) = pinned {
        return if pin.key_data() == offered.key_data() {
            Verdict::Known
        } else {
            Verdict::Changed {
                expected: format!("{} (pinned in the infra file)", fingerprint(pin)),
            }
        };
    }
    let for_host: Vec<&Entry> = entries.iter().filter(|e| names(&e.hosts, label)).collect();
    if let Some(revoked) = for_host
        .iter()
        .find(|e| e.revoked && e.key.key_data() == offered.key_data())
    {
        return Verdict::Changed {
            expected: format!("not this key: it is @revoked (line {})", revoked.line),
        };
    }
    let valid = || for_host.iter().filter(|e| !e.revoked);
    if valid().any(|e| e.key.key_data() == offered.key_data()) {
        return Verdict::Known;
    }
    match valid().find(|e| e.key.algorithm() == offered.algorithm()) {
        Some(other) => Verdict::Changed {
            expected: format!(
                "{} (known_hosts line {})",
                fingerprint(&other.key),
                other.line
            ),
        },
        None => Verdict::Unknown,
    }
}

/// The line that records `key` for `label`: `label type base64`.
pub fn line(label: &str, key: &PublicKey) -> Option<String> {
    let text = key.to_openssh().ok()?;
    let mut fields = text.split_whitespace();
    Some(format!("{label} {} {}", fields.next()?, fields.next()?))
}

/// Appends `line` to the known_hosts file `path` (made with its directory when missing),
/// starting a new line when the file does not end with one.
pub fn append(path: &Path, line: &str) -> std::io::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    let needs_newline = std::fs::read(path)
        .map(|bytes| bytes.last().is_some_and(|b| *b != b'\n'))
        .unwrap_or(false);
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    if needs_newline {
        file.write_all(b"\n")?;
    }
    file.write_all(format!("{line}\n").as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEkhKHAn9++/tCLksL1sn0xzkf/DMhFY7gN+y6nYP+uR";
    const B: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIO4+axAhfP40H2YJ0h2nMVpK/c6DJoceSqetyJJYAHbK";

    fn key(text: &str) -> PublicKey {
        PublicKey::from_openssh(text).expect("test key")
    }

    fn hashed(label: &str) -> String {
        let salt = [7u8; 20];
        let mut mac = Hmac::<Sha1>::new_from_slice(&salt).expect("hmac");
        mac.update(label.as_bytes());
        format!(
            "|1|{}|{}",
            Base64::encode_string(&salt),
            Base64::encode_string(&mac.finalize().into_bytes())
        )
    }

    #[test]
    fn labels_and_patterns_match_like_openssh() {
        assert_eq!(host_label("10.0.0.1", 22), "10.0.0.1");
        assert_eq!(host_label("127.0.0.5", 2222), "[127.0.0.5]:2222");
        assert!(names("a,10.0.0.1,b", "10.0.0.1"));
        assert!(!names("10.0.0.1", "[10.0.0.1]:2222"));
        assert!(names("[10.0.0.1]:2222", "[10.0.0.1]:2222"));
        assert!(!names("10.0.0.1,!10.0.0.1", "10.0.0.1"));
        assert!(names(&hashed("[127.0.0.5]:2222"), "[127.0.0.5]:2222"));
        assert!(!names(&hashed("[127.0.0.5]:2222"), "[127.0.0.6]:2222"));
        assert!(!names("|1|garbage", "x"));
    }

    #[test]
    fn the_pin_decides_alone_and_a_different_key_is_changed() {
        let (a, b) = (key(A), key(B));
        assert_eq!(check(&a, "h", Some(&a), &[]), Verdict::Known);
        let Verdict::Changed { expected } = check(&a, "h", Some(&b), &parse(&format!("h {A}")))
        else {
            panic!("a pin of another key must refuse");
        };
        assert!(expected.contains(&fingerprint(&b)) && expected.contains("pinned"));
    }

    #[test]
    fn known_hosts_entries_decide_known_unknown_changed_and_revoked() {
        let (a, b) = (key(A), key(B));
        let text = format!(
            "# comment\n\n[127.0.0.5]:2222 {A}\n{} {B}\n@cert-authority * {A}\nbad line\n",
            hashed("10.0.0.9")
        );
        let entries = parse(&text);
        assert_eq!(entries.len(), 2);
        assert_eq!(
            check(&a, "[127.0.0.5]:2222", None, &entries),
            Verdict::Known
        );
        assert_eq!(check(&b, "10.0.0.9", None, &entries), Verdict::Known);
        assert_eq!(check(&a, "10.0.0.1", None, &entries), Verdict::Unknown);
        let changed = check(&b, "[127.0.0.5]:2222", None, &entries);
        assert!(
            matches!(&changed, Verdict::Changed { expected } if expected.contains(&fingerprint(&a)) && expected.contains("line 3")),
            "{changed:?}"
        );
        let revoked = parse(&format!("@revoked h {A}\n"));
        assert!(matches!(
            check(&a, "h", None, &revoked),
            Verdict::Changed { .. }
        ));
        assert_eq!(check(&b, "h", None, &revoked), Verdict::Unknown);
    }

    #[test]
    fn an_appended_line_is_found_again() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("sub/known_hosts");
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, format!("other {B}")).expect("write");
        let a = key(A);
        let entry = line("[127.0.0.5]:2222", &a).expect("line");
        append(&path, &entry).expect("append");
        let text = std::fs::read_to_string(&path).expect("read");
        assert_eq!(text.lines().count(), 2);
        assert_eq!(
            check(&a, "[127.0.0.5]:2222", None, &parse(&text)),
            Verdict::Known
        );
    }
}

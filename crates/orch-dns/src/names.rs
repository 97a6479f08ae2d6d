//! The pieces Mesos-DNS and dcos-net build names from: label mangling, the 5-character task
//! hash, the agent-id tail, Marathon's task name of an app, and the normal form of a queried
//! name.
//!
//! May depend on: model; std and sha1.

use orch_core::model::AppId;
use sha1::{Digest, Sha1};

/// The longest DNS label.
const MAX_LABEL: usize = 63;

/// The alphabet of Mesos-DNS's task hash (zbase32's, used with RFC 4648 bit order).
const HASH_ALPHABET: &[u8; 32] = b"ybndrfg8ejkmcpqxot1uwisza345h769";

/// Length of the task hash in names (`web-prod-<hash>-s1`).
const HASH_LEN: usize = 5;

/// Mesos-DNS's RFC 1123 label of a task or port name: lowercase, `[a-z0-9-]` kept, `.` and
/// `_` become `-`, anything else is dropped, no `-` at either end, at most 63 characters.
/// When the cut at 63 leaves a trailing `-`, the label is filled up again from what follows
/// the cut (as Mesos-DNS does), then trimmed.
pub(crate) fn task_label(name: &str) -> String {
    let mapped: String = name
        .chars()
        .filter_map(|c| match c {
            'A'..='Z' => Some(c.to_ascii_lowercase()),
            'a'..='z' | '0'..='9' => Some(c),
            '-' | '.' | '_' => Some('-'),
            _ => None,
        })
        .collect();
    let trimmed = mapped.trim_start_matches('-');
    let size = trimmed.len().min(MAX_LABEL);
    let (cut, rest) = trimmed.split_at(size);
    let mut label = cut.trim_end_matches('-').to_owned();
    if label.len() < size {
        let rest = rest.trim_start_matches('-');
        let fill = (size - label.len()).min(rest.len());
        label.push_str(&rest[..fill]);
    }
    label.trim_end_matches('-').to_owned()
}

/// dcos-net's label of one `.`-separated part of a VIP name: lowercase, leading characters
/// other than `[a-z0-9]` dropped, `_` becomes `-`, other characters (such as `/`) dropped,
/// at most 63 characters (once 63 are reached after trailing `-` are removed, only `[a-z0-9]`
/// are added), no `-` at the end.
pub(crate) fn vip_label(part: &str) -> String {
    let mut label = String::new();
    let mut started = false;
    let mut full = false;
    for c in part.chars().map(|c| c.to_ascii_lowercase()) {
        let alphanumeric = c.is_ascii_lowercase() || c.is_ascii_digit();
        if !started {
            if !alphanumeric {
                continue;
            }
            started = true;
        }
        if !full && label.len() >= MAX_LABEL {
            label.truncate(label.trim_end_matches('-').len());
            full = true;
        }
        if full {
            if label.len() == MAX_LABEL {
                break;
            }
            if alphanumeric {
                label.push(c);
            }
        } else if alphanumeric {
            label.push(c);
        } else if matches!(c, '-' | '_' | '.') {
            label.push('-');
        }
    }
    label.trim_end_matches('-').to_owned()
}

/// dcos-net's `domain_frag` of a VIP name: split on `.`, each part through [`vip_label`],
/// empty labels left out. `/my-service` gives `my-service`; `/foo/bar` gives `foobar`.
pub(crate) fn vip_name(name: &str) -> String {
    name.split('.')
        .map(vip_label)
        .filter(|label| !label.is_empty())
        .collect::<Vec<_>>()
        .join(".")
}

/// Marathon's Mesos task name (and DiscoveryInfo name) of an app: the path segments
/// reversed and joined with `.` (`/prod/web` gives `web.prod`).
pub(crate) fn app_task_name(app: &AppId) -> String {
    app.as_str()
        .split('/')
        .filter(|segment| !segment.is_empty())
        .rev()
        .collect::<Vec<_>>()
        .join(".")
}

/// The 5-character hash of a task id in canonical task names: SHA-1 of the id, base32 in
/// RFC 4648 bit order with the zbase32 alphabet, first 5 characters.
pub(crate) fn task_hash(task_id: &str) -> String {
    let digest = Sha1::digest(task_id.as_bytes());
    let mut out = String::with_capacity(HASH_LEN);
    let mut bits: u32 = 0;
    let mut held = 0;
    for byte in digest.iter() {
        bits = (bits << 8) | u32::from(*byte);
        held += 8;
        while held >= 5 {
            held -= 5;
            let index = (bits >> held) & 0x1f;
            out.push(char::from(HASH_ALPHABET[index as usize]));
            if out.len() == HASH_LEN {
                return out;
            }
        }
        bits &= (1 << held) - 1;
    }
    out
}

/// The last `-`-separated field of an agent id, lowercased (`…-S1` gives `s1`).
pub(crate) fn agent_tail(agent_id: &str) -> String {
    agent_id
        .rsplit('-')
        .next()
        .unwrap_or(agent_id)
        .to_ascii_lowercase()
}

/// A queried name in the form zone names have: lowercase, without Mesos-DNS's `.*`
/// wildcards, with the trailing dot.
pub(crate) fn normalize_query(name: &str) -> String {
    let mut name = name.trim().to_ascii_lowercase().replace(".*", "");
    if !name.ends_with('.') {
        name.push('.');
    }
    name
}

/// True when `name` (with trailing dot) can be a DNS name: labels of 1 to 63 bytes, at most
/// 253 bytes without the dot.
pub(crate) fn is_valid_name(name: &str) -> bool {
    let Some(body) = name.strip_suffix('.') else {
        return false;
    };
    !body.is_empty()
        && body.len() <= 253
        && body
            .split('.')
            .all(|label| !label.is_empty() && label.len() <= MAX_LABEL)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_labels_follow_rfc_1123() {
        assert_eq!(task_label("web.prod"), "web-prod");
        assert_eq!(task_label("app.bar.foo"), "app-bar-foo");
        assert_eq!(task_label("My_App"), "my-app");
        assert_eq!(task_label("--web--"), "web");
        assert_eq!(task_label("._x_."), "x");
        assert_eq!(task_label("9lives"), "9lives", "leading digits stay");
        assert_eq!(task_label("a/b$c d"), "abcd");
        assert_eq!(task_label("ünï"), "n");
        assert_eq!(task_label("---"), "");
        assert_eq!(task_label(&"a".repeat(70)), "a".repeat(63));
        // A cut that ends in `-` is filled up from after the cut, skipping dashes.
        let long = format!("{}-{}", "a".repeat(62), "bcd");
        assert_eq!(task_label(&long), format!("{}b", "a".repeat(62)));
        let dashes = format!("{}---x", "a".repeat(61));
        assert_eq!(task_label(&dashes), format!("{}x", "a".repeat(61)));
        assert_eq!(
            task_label(&format!("{}----", "a".repeat(62))),
            "a".repeat(62)
        );
    }

    #[test]
    fn vip_labels_follow_dcos_net() {
        // dcos-net's own examples (mesos_state:label/1).
        assert_eq!(
            vip_label("fd%gsf---gs7-f$gs--d7fddg-123"),
            "fdgsf---gs7-fgs--d7fddg-123"
        );
        assert_eq!(vip_label("-4abc123"), "4abc123");
        assert_eq!(
            vip_label("89fdgsf---gs7-fgs--d7fddg-"),
            "89fdgsf---gs7-fgs--d7fddg"
        );
        assert_eq!(
            vip_label("fd%gsf---gs7-f$gs--d7fddg123456789012345678901234567890123456789-123"),
            "fdgsf---gs7-fgs--d7fddg1234567890123456789012345678901234567891"
        );
        assert_eq!(
            vip_label("%%fdgsf---gs7-fgs--d7fddg123456789012345678901234567890123456789---123"),
            "fdgsf---gs7-fgs--d7fddg1234567890123456789012345678901234567891"
        );
        assert_eq!(vip_label("My_Service"), "my-service");
        assert_eq!(vip_name("/my-service"), "my-service");
        assert_eq!(vip_name("/foo/bar"), "foobar");
        assert_eq!(vip_name("/Foo.Bar_1"), "foo.bar-1");
        assert_eq!(vip_name("/./"), "");
    }

    #[test]
    fn task_names_are_reversed_paths() {
        let name = |id: &str| app_task_name(&AppId::parse(id).expect("valid id"));
        assert_eq!(name("/hello"), "hello");
        assert_eq!(name("/prod/web"), "web.prod");
        assert_eq!(name("/foo/bar/app"), "app.bar.foo");
    }

    #[test]
    fn task_hash_matches_an_independent_encoder() {
        // python3: base64.b32encode(hashlib.sha1(id).digest()) translated to
        // "ybndrfg8ejkmcpqxot1uwisza345h769", first 5 characters.
        assert_eq!(task_hash("nginx.instance-1._app.1"), "xxmjj");
        assert_eq!(task_hash("prod_web.instance-3b5e6f._app.1"), "u8qik");
        assert_eq!(task_hash("abc"), "igcuh");
        assert_eq!(task_hash(""), "5eh48");
    }

    #[test]
    fn agent_tails_and_queries() {
        assert_eq!(
            agent_tail("2f4e6a1c-8b9d-4e3f-a1b2-c3d4e5f6a7b8-S12"),
            "s12"
        );
        assert_eq!(agent_tail("nodash"), "nodash");
        assert_eq!(normalize_query("Web.Marathon.MESOS"), "web.marathon.mesos.");
        assert_eq!(normalize_query("leader.mesos."), "leader.mesos.");
        assert_eq!(
            normalize_query("web.*.marathon.mesos"),
            "web.marathon.mesos."
        );
    }

    #[test]
    fn names_are_checked_against_dns_limits() {
        assert!(is_valid_name("web.marathon.mesos."));
        assert!(!is_valid_name("web.marathon.mesos"));
        assert!(!is_valid_name("a..b."));
        assert!(!is_valid_name(&format!("{}.mesos.", "a".repeat(64))));
        assert!(!is_valid_name("."));
    }
}

//! What the fuzz property tests of every crate share (included with `#[path]` by
//! `crates/*/tests/fuzz_*.rs` and orch-dns's `server_fuzz.rs`): the case count knob, byte
//! mutations of valid seeds, and structural mutations of JSON documents.
//!
//! Why proptest and not cargo-fuzz: cargo-fuzz (libFuzzer) needs a nightly toolchain, which
//! neither CI nor the developers' machines can be assumed to have; proptest runs on stable
//! under plain `cargo test`. It is not coverage-guided; mutating real valid inputs (the apps
//! in `apps/`, encoded Raft RPCs, DNS queries) makes up for part of that, since most cases
//! then get past the first syntax check into the code behind it.
//!
//! The knob: `ORCH_FUZZ_CASES=N` sets every fuzz property's case count. The defaults keep each
//! test well under 10 s in a debug build on CI's 2 cores; for a soak, e.g.
//! `ORCH_FUZZ_CASES=200000 cargo test --release -p orch-core --test fuzz_apps`.
//!
//! Failures are not persisted to `proptest-regressions/` files (CI runs in a fresh clone);
//! proptest prints the minimal failing input, which goes into a plain regression test.

#![allow(dead_code)]

use proptest::prelude::*;
use proptest::test_runner::Config;
use serde_json::{Map, Value};

/// The case count: `ORCH_FUZZ_CASES` if set to a number, else `default`.
pub fn cases(default: u32) -> u32 {
    std::env::var("ORCH_FUZZ_CASES")
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(default)
}

/// A proptest configuration running [`cases`]`(default)` cases, without failure files.
pub fn config(default: u32) -> Config {
    Config {
        cases: cases(default),
        failure_persistence: None,
        ..Config::default()
    }
}

/// One edit of a byte string: what, where (taken modulo the length), and a byte.
#[derive(Clone, Debug)]
pub struct Edit {
    kind: u8,
    at: usize,
    byte: u8,
}

/// Bytes that parsers treat specially: zero, all ones, sign and length boundaries, DNS
/// compression pointers and label lengths, MessagePack markers, JSON punctuation.
const INTERESTING: [u8; 16] = [
    0x00, 0xff, 0x7f, 0x80, 0xc0, 0x3f, 0x40, 0xc1, 0xdc, 0xdd, 0xde, 0xdf, b'"', b'{', b'[', b'\\',
];

/// Up to 8 random edits.
pub fn edits() -> impl Strategy<Value = Vec<Edit>> {
    proptest::collection::vec(
        (0u8..8, any::<usize>(), any::<u8>()).prop_map(|(kind, at, byte)| Edit { kind, at, byte }),
        1..8,
    )
}

/// `seed` with `edits` applied: flip a bit, set a byte, set an interesting byte, insert,
/// remove, truncate, duplicate a run, or swap two bytes.
pub fn mutate(seed: &[u8], edits: &[Edit]) -> Vec<u8> {
    let mut bytes = seed.to_vec();
    for edit in edits {
        let len = bytes.len();
        if len == 0 {
            bytes.push(edit.byte);
            continue;
        }
        let at = edit.at % len;
        match edit.kind {
            0 => bytes[at] ^= 1 << (edit.byte % 8),
            1 => bytes[at] = edit.byte,
            2 => bytes[at] = INTERESTING[usize::from(edit.byte) % INTERESTING.len()],
            3 => bytes.insert(at, edit.byte),
            4 => {
                bytes.remove(at);
            }
            5 => bytes.truncate(at),
            6 => {
                let run_len = usize::from(edit.byte % 16) + 1;
                let end = (at + run_len).min(len);
                let run: Vec<u8> = bytes[at..end].to_vec();
                bytes.splice(at..at, run);
            }
            _ => {
                let other = usize::from(edit.byte) % len;
                bytes.swap(at, other);
            }
        }
    }
    bytes
}

/// One of `seeds` with random edits.
pub fn mutated_bytes(seeds: Vec<Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    (proptest::sample::select(seeds), edits()).prop_map(|(seed, edits)| mutate(&seed, &edits))
}

/// Random bytes, mostly short.
pub fn random_bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..max)
}

/// Strings parsers trip over: empty, separators, dots, huge, unicode, control bytes, and
/// values that look like numbers, ids or durations.
const STRINGS: [&str; 24] = [
    "",
    "/",
    "//",
    "..",
    "/../x",
    ".",
    "a",
    "/a/b",
    "A_B",
    "-x",
    "0",
    "-1",
    "1e999",
    "NaN",
    "\u{0}",
    "\u{202e}évil",
    "x\ny",
    "💣",
    "$PORT0",
    "1970-01-01T00:00:00.000Z",
    "9999-99-99",
    "udp,tcp",
    "HOST",
    "BRIDGE",
];

/// A short random string, or one of [`STRINGS`].
fn string() -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::sample::select(&STRINGS[..]).prop_map(str::to_owned),
        "[a-zA-Z0-9/._:,-]{0,12}",
        any::<String>().prop_map(|s| s.chars().take(24).collect()),
    ]
}

/// Numbers at the edges: zero, negative, fractional, huge, integer limits.
fn number() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-4i64..70_000).prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        proptest::sample::select(vec![0.0, -0.0, 0.5, 1e-300, 1e300, -1e300, 0.001])
            .prop_map(Value::from),
    ]
}

/// Any JSON value (keys from `keys` half of the time), at most 3 levels deep.
pub fn json_value(keys: Vec<String>) -> BoxedStrategy<Value> {
    let key = prop_oneof![proptest::sample::select(keys), string()];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        number(),
        string().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 6, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::vec((key.clone(), inner), 0..6)
                .prop_map(|pairs| Value::Object(pairs.into_iter().collect::<Map<_, _>>())),
        ]
    })
    .boxed()
}

/// Every object key in `values`, recursively, sorted and deduplicated.
pub fn keys_of(values: &[Value]) -> Vec<String> {
    fn walk(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                for (key, child) in map {
                    out.push(key.clone());
                    walk(child, out);
                }
            }
            Value::Array(items) => items.iter().for_each(|item| walk(item, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    values.iter().for_each(|value| walk(value, &mut out));
    out.sort();
    out.dedup();
    out
}

/// One structural edit of a JSON document: walk down `path` (each step picks a child modulo
/// the count), then replace that node, remove it, give it a new key, or wrap it in an array.
#[derive(Clone, Debug)]
pub struct JsonEdit {
    path: Vec<usize>,
    kind: u8,
    key: String,
    value: Value,
}

/// Up to 4 structural edits whose new values and keys draw on `keys`.
pub fn json_edits(keys: Vec<String>) -> impl Strategy<Value = Vec<JsonEdit>> {
    let key = prop_oneof![proptest::sample::select(keys.clone()), string()];
    proptest::collection::vec(
        (
            proptest::collection::vec(any::<usize>(), 0..5),
            0u8..5,
            key,
            json_value(keys),
        )
            .prop_map(|(path, kind, key, value)| JsonEdit {
                path,
                kind,
                key,
                value,
            }),
        1..4,
    )
}

/// `seed` with `edits` applied.
pub fn mutate_json(seed: &Value, edits: &[JsonEdit]) -> Value {
    let mut value = seed.clone();
    for edit in edits {
        apply_json_edit(&mut value, &edit.path, edit);
    }
    value
}

fn apply_json_edit(node: &mut Value, path: &[usize], edit: &JsonEdit) {
    if let Some((&step, rest)) = path.split_first() {
        let child = match node {
            Value::Object(map) if !map.is_empty() => {
                let index = step % map.len();
                map.values_mut().nth(index)
            }
            Value::Array(items) if !items.is_empty() => {
                let index = step % items.len();
                items.get_mut(index)
            }
            _ => None,
        };
        if let Some(child) = child {
            // Stop early now and then, so that inner nodes get edited too.
            if !(rest.is_empty() && step % 3 == 0) {
                return apply_json_edit(child, rest, edit);
            }
        }
    }
    match edit.kind {
        0 => *node = edit.value.clone(),
        1 => match node {
            Value::Object(map) => {
                map.insert(edit.key.clone(), edit.value.clone());
            }
            Value::Array(items) => items.push(edit.value.clone()),
            other => *other = edit.value.clone(),
        },
        2 => match node {
            Value::Object(map) if !map.is_empty() => {
                let index = edit.key.len() % map.len();
                if let Some(key) = map.keys().nth(index).cloned() {
                    map.remove(&key);
                }
            }
            Value::Array(items) if !items.is_empty() => {
                let index = edit.key.len() % items.len();
                items.remove(index);
            }
            other => *other = Value::Null,
        },
        3 => *node = Value::Array(vec![node.clone()]),
        _ => {
            // Same kind, other content: the type stays right, the value is off.
            *node = match node {
                Value::String(_) => Value::String(edit.key.clone()),
                Value::Number(_) => match &edit.value {
                    Value::Number(n) => Value::Number(n.clone()),
                    _ => Value::from(-1),
                },
                Value::Bool(flag) => Value::Bool(!*flag),
                _ => edit.value.clone(),
            }
        }
    }
}

/// One of `seeds` with random structural edits.
pub fn mutated_json(seeds: Vec<Value>) -> impl Strategy<Value = Value> {
    let keys = keys_of(&seeds);
    (proptest::sample::select(seeds), json_edits(keys))
        .prop_map(|(seed, edits)| mutate_json(&seed, &edits))
}

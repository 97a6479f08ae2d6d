//! A linearizability checker for histories of a key-value register (issue 18's chaos suite),
//! in the style of Porcupine: Wing & Gong's search as Lowe improved it (DFS over the calls
//! that may go next, undoing on a return that was not reached, memoizing every (set of
//! linearized operations, state) seen), run per key (P-compositionality: a key-value store
//! is linearizable iff each key's register is).
//!
//! No maintained crate fits: `lincheck` model-checks in-process data structures under loom,
//! `stateright` checks its own models; neither checks a recorded history of a distributed
//! system. So this is the small checker.
//!
//! Operations: `write(key, value)`, `read(key) -> Option<value>`, `create(key, value)` (fails
//! if the key exists). Each has a call time, a return time and an outcome; times are
//! nanoseconds from any common origin ([`Recorder`] takes them from one `Instant`).
//! - An operation whose outcome is unknown (timed out, connection lost: it may or may not
//!   have taken effect) has no return time ([`Outcome::Unknown`]): it may be linearized
//!   anywhere after its call, or never. An unknown read constrains nothing and is dropped.
//! - An operation known to have failed without effect ([`Outcome::Failed`]) is dropped.
//! - Calls at the same instant as a return are taken as concurrent with it.
//!
//! Verdict: [`Verdict::Linearizable`], [`Verdict::NotLinearizable`] with the key, the longest
//! linearization the search found and the operations none of which could go next, or
//! [`Verdict::Timeout`] when the budget ran out first (not a proof either way).
//!
//! May depend on: std only. Its own tests are in `tests/linearizability_check.rs`.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashSet};
use std::fmt::Debug;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What a client asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op<K, V> {
    /// Set `key` to `value`.
    Write {
        /// The key.
        key: K,
        /// The value.
        value: V,
    },
    /// Read `key`.
    Read {
        /// The key.
        key: K,
    },
    /// Set `key` to `value` if it has no value.
    Create {
        /// The key.
        key: K,
        /// The value.
        value: V,
    },
}

impl<K, V> Op<K, V> {
    /// The key it touches.
    pub fn key(&self) -> &K {
        match self {
            Op::Write { key, .. } | Op::Read { key } | Op::Create { key, .. } => key,
        }
    }
}

/// What the client saw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome<V> {
    /// A write was acknowledged.
    Written,
    /// A read returned this.
    Read(Option<V>),
    /// A create succeeded (`true`) or found the key taken (`false`).
    Created(bool),
    /// Known to have had no effect (refused before anything was written): dropped.
    Failed,
    /// No answer (timeout, lost connection): may or may not have taken effect.
    Unknown,
}

/// One operation of a history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operation<K, V> {
    /// Who ran it (for the counterexample only).
    pub client: usize,
    /// What was asked.
    pub op: Op<K, V>,
    /// When it was called, ns.
    pub call: u64,
    /// When it returned, ns; `None` with [`Outcome::Unknown`].
    pub ret: Option<u64>,
    /// What was seen.
    pub outcome: Outcome<V>,
}

/// The checker's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Every key's history is linearizable.
    Linearizable,
    /// This key's history is not.
    NotLinearizable {
        /// The key, as `{:?}`.
        key: String,
        /// The longest linearization found, then the operations none of which fit next.
        counterexample: String,
    },
    /// The budget ran out while checking this key.
    Timeout {
        /// The key, as `{:?}`.
        key: String,
    },
}

impl Verdict {
    /// True for [`Verdict::Linearizable`].
    pub fn is_linearizable(&self) -> bool {
        matches!(self, Verdict::Linearizable)
    }
}

/// Checks `history` within `budget` (for all keys together).
pub fn check<K, V>(history: &[Operation<K, V>], budget: Duration) -> Verdict
where
    K: Clone + Ord + Debug,
    V: Clone + Eq + Hash + Debug,
{
    let deadline = Instant::now() + budget;
    let mut by_key: BTreeMap<&K, Vec<&Operation<K, V>>> = BTreeMap::new();
    for operation in history {
        let dropped = matches!(operation.outcome, Outcome::Failed)
            || matches!(
                (&operation.op, &operation.outcome),
                (Op::Read { .. }, Outcome::Unknown)
            );
        if !dropped {
            by_key
                .entry(operation.op.key())
                .or_default()
                .push(operation);
        }
    }
    for (key, mut operations) in by_key {
        prune_unseen_unknown_writes(&mut operations);
        match check_register(&operations, deadline) {
            Search::Linearizable => {}
            Search::Timeout => {
                return Verdict::Timeout {
                    key: format!("{key:?}"),
                }
            }
            Search::Not(counterexample) => {
                return Verdict::NotLinearizable {
                    key: format!("{key:?}"),
                    counterexample,
                }
            }
        }
    }
    Verdict::Linearizable
}

/// Drops the writes of unknown outcome whose value no read saw, unless the key has creates.
/// Such a write may be taken as never done: with no read of its value, leaving it out
/// changes no read's result, so the history is linearizable with it iff without it. Each
/// one doubles the search (it may fall anywhere after its call, or nowhere), and a leader
/// killed under load leaves many.
fn prune_unseen_unknown_writes<K, V: Eq + Hash>(operations: &mut Vec<&Operation<K, V>>) {
    if operations
        .iter()
        .any(|operation| matches!(operation.op, Op::Create { .. }))
    {
        return;
    }
    let seen: HashSet<&V> = operations
        .iter()
        .filter_map(|operation| match &operation.outcome {
            Outcome::Read(Some(value)) => Some(value),
            _ => None,
        })
        .collect();
    operations.retain(|operation| match (&operation.op, &operation.outcome) {
        (Op::Write { value, .. }, Outcome::Unknown) => seen.contains(value),
        _ => true,
    });
}

/// The register's next state after `operation` from `state`, if the outcome fits.
pub fn step<K, V: Clone + Eq>(state: &Option<V>, operation: &Operation<K, V>) -> Option<Option<V>> {
    match (&operation.op, &operation.outcome) {
        (Op::Write { value, .. }, Outcome::Written | Outcome::Unknown) => Some(Some(value.clone())),
        (Op::Read { .. }, Outcome::Read(seen)) => (seen == state).then(|| state.clone()),
        (Op::Create { value, .. }, Outcome::Created(true)) => {
            state.is_none().then(|| Some(value.clone()))
        }
        (Op::Create { .. }, Outcome::Created(false)) => state.is_some().then(|| state.clone()),
        (Op::Create { value, .. }, Outcome::Unknown) => {
            Some(state.clone().or_else(|| Some(value.clone())))
        }
        _ => None,
    }
}

enum Search {
    Linearizable,
    Not(String),
    Timeout,
}

/// One call or return in time order, in a doubly linked list (index 0 is the head sentinel).
#[derive(Clone, Copy)]
struct Entry {
    /// The operation (index into the key's operations).
    op: usize,
    /// A call (else a return).
    call: bool,
    /// For a call: its return's entry (`None` for an operation of unknown outcome).
    ret: Option<usize>,
    prev: usize,
    next: Option<usize>,
}

/// Lowe's search on one register's operations.
fn check_register<K, V>(operations: &[&Operation<K, V>], deadline: Instant) -> Search
where
    K: Debug,
    V: Clone + Eq + Hash + Debug,
{
    // Events: (time, returns after calls at the same time, op, call).
    let mut events: Vec<(u64, bool, usize)> = Vec::new();
    for (i, operation) in operations.iter().enumerate() {
        events.push((operation.call, false, i));
        if let (Some(ret), false) = (operation.ret, matches!(operation.outcome, Outcome::Unknown)) {
            events.push((ret.max(operation.call), true, i));
        }
    }
    events.sort_by_key(|&(time, is_return, op)| (time, is_return, op));
    let mut entries = vec![Entry {
        op: usize::MAX,
        call: false,
        ret: None,
        prev: 0,
        next: None,
    }];
    let mut call_of = vec![0usize; operations.len()];
    for &(_, is_return, op) in &events {
        let index = entries.len();
        let last = index - 1;
        entries[last].next = Some(index);
        entries.push(Entry {
            op,
            call: !is_return,
            ret: None,
            prev: last,
            next: None,
        });
        if is_return {
            let call = call_of[op];
            entries[call].ret = Some(index);
        } else {
            call_of[op] = index;
        }
    }
    let known = operations
        .iter()
        .filter(|operation| !matches!(operation.outcome, Outcome::Unknown))
        .count();

    let words = operations.len().div_ceil(64);
    let mut linearized = vec![0u64; words];
    let mut linearized_known = 0usize;
    let mut state: Option<V> = None;
    let mut seen: HashSet<(Vec<u64>, Option<V>)> = HashSet::new();
    // (call entry, state before it)
    let mut stack: Vec<(usize, Option<V>)> = Vec::new();
    let mut best: Vec<usize> = Vec::new();
    let mut best_stuck = String::new();
    let mut cursor = entries[0].next;
    let mut steps = 0u64;

    loop {
        if linearized_known == known {
            return Search::Linearizable;
        }
        steps += 1;
        if steps % 4096 == 0 && Instant::now() > deadline {
            return Search::Timeout;
        }
        match cursor {
            Some(index) if entries[index].call => {
                let entry = entries[index];
                let operation = operations[entry.op];
                let next_state = step(&state, operation);
                let fresh = next_state.as_ref().is_some_and(|next| {
                    let mut bits = linearized.clone();
                    bits[entry.op / 64] |= 1 << (entry.op % 64);
                    seen.insert((bits, next.clone()))
                });
                if let (true, Some(next)) = (fresh, next_state) {
                    stack.push((index, std::mem::replace(&mut state, next)));
                    linearized[entry.op / 64] |= 1 << (entry.op % 64);
                    if !matches!(operation.outcome, Outcome::Unknown) {
                        linearized_known += 1;
                    }
                    lift(&mut entries, index);
                    cursor = entries[0].next;
                } else {
                    cursor = entry.next;
                }
            }
            _ => {
                // A return not preceded by its call's linearization (or the end): undo.
                if stack.len() > best.len() || best_stuck.is_empty() {
                    best = stack.iter().map(|&(call, _)| entries[call].op).collect();
                    best_stuck = stuck(&entries, operations);
                }
                let Some((index, previous)) = stack.pop() else {
                    return Search::Not(counterexample(operations, &best, &best_stuck));
                };
                let op = entries[index].op;
                state = previous;
                linearized[op / 64] &= !(1 << (op % 64));
                if !matches!(operations[op].outcome, Outcome::Unknown) {
                    linearized_known -= 1;
                }
                unlift(&mut entries, index);
                cursor = entries[index].next;
            }
        }
    }
}

/// Takes a call and its return out of the list.
fn lift(entries: &mut [Entry], call: usize) {
    unlink(entries, call);
    if let Some(ret) = entries[call].ret {
        unlink(entries, ret);
    }
}

fn unlink(entries: &mut [Entry], index: usize) {
    let Entry { prev, next, .. } = entries[index];
    entries[prev].next = next;
    if let Some(next) = next {
        entries[next].prev = prev;
    }
}

/// Puts a lifted call and its return back (in the reverse order of [`lift`]).
fn unlift(entries: &mut [Entry], call: usize) {
    if let Some(ret) = entries[call].ret {
        relink(entries, ret);
    }
    relink(entries, call);
}

fn relink(entries: &mut [Entry], index: usize) {
    let Entry { prev, next, .. } = entries[index];
    entries[prev].next = Some(index);
    if let Some(next) = next {
        entries[next].prev = index;
    }
}

/// The calls before the first return still in the list: the candidates that all failed.
fn stuck<K: Debug, V: Debug>(entries: &[Entry], operations: &[&Operation<K, V>]) -> String {
    let mut out = Vec::new();
    let mut cursor = entries[0].next;
    while let Some(index) = cursor {
        let entry = entries[index];
        if !entry.call {
            out.push(format!(
                "(then {} must have happened)",
                describe(operations[entry.op])
            ));
            break;
        }
        out.push(describe(operations[entry.op]));
        cursor = entry.next;
    }
    out.join("; ")
}

fn describe<K: Debug, V: Debug>(operation: &Operation<K, V>) -> String {
    let ret = operation
        .ret
        .filter(|_| !matches!(operation.outcome, Outcome::Unknown))
        .map_or("∞".to_owned(), |ret| ret.to_string());
    format!(
        "client {} {:?} -> {:?} [{}..{}]",
        operation.client, operation.op, operation.outcome, operation.call, ret
    )
}

fn counterexample<K: Debug, V: Debug>(
    operations: &[&Operation<K, V>],
    best: &[usize],
    stuck: &str,
) -> String {
    let prefix: Vec<String> = best.iter().map(|&op| describe(operations[op])).collect();
    format!(
        "longest linearization: [{}]; none of these fits next: {stuck}",
        prefix.join(", ")
    )
}

/// Records a history from concurrent clients: times from one `Instant`, each operation
/// completed at most once; one never completed stays [`Outcome::Unknown`].
#[derive(Clone, Debug)]
pub struct Recorder<K, V> {
    origin: Instant,
    operations: Arc<Mutex<Vec<Operation<K, V>>>>,
}

impl<K: Clone, V: Clone> Default for Recorder<K, V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: Clone, V: Clone> Recorder<K, V> {
    /// An empty history starting now.
    pub fn new() -> Self {
        Self {
            origin: Instant::now(),
            operations: Arc::new(Mutex::new(Vec::new())),
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Operation<K, V>>> {
        self.operations
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Notes that `client` calls `op` now; the id completes it.
    pub fn call(&self, client: usize, op: Op<K, V>) -> usize {
        let call = self.now();
        let mut operations = self.lock();
        operations.push(Operation {
            client,
            op,
            call,
            ret: None,
            outcome: Outcome::Unknown,
        });
        operations.len() - 1
    }

    /// Notes that operation `id` returned now with `outcome` ([`Outcome::Unknown`] keeps it
    /// open-ended).
    pub fn complete(&self, id: usize, outcome: Outcome<V>) {
        let ret = self.now();
        if let Some(operation) = self.lock().get_mut(id) {
            if !matches!(outcome, Outcome::Unknown) {
                operation.ret = Some(ret);
            }
            operation.outcome = outcome;
        }
    }

    /// The history so far.
    pub fn history(&self) -> Vec<Operation<K, V>> {
        self.lock().clone()
    }
}

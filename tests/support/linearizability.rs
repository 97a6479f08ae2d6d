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
//! May depend on: std only.

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
    for (key, operations) in by_key {
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

/// The register's next state after `operation` from `state`, if the outcome fits.
fn step<K, V: Clone + Eq>(state: &Option<V>, operation: &Operation<K, V>) -> Option<Option<V>> {
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

#[cfg(test)]
mod tests {
    use super::*;

    type History = Vec<Operation<&'static str, u32>>;

    const BUDGET: Duration = Duration::from_secs(10);

    fn write(
        client: usize,
        key: &'static str,
        value: u32,
        call: u64,
        ret: u64,
    ) -> Operation<&'static str, u32> {
        Operation {
            client,
            op: Op::Write { key, value },
            call,
            ret: Some(ret),
            outcome: Outcome::Written,
        }
    }

    fn read(
        client: usize,
        key: &'static str,
        seen: Option<u32>,
        call: u64,
        ret: u64,
    ) -> Operation<&'static str, u32> {
        Operation {
            client,
            op: Op::Read { key },
            call,
            ret: Some(ret),
            outcome: Outcome::Read(seen),
        }
    }

    fn create(
        client: usize,
        key: &'static str,
        value: u32,
        created: bool,
        call: u64,
        ret: u64,
    ) -> Operation<&'static str, u32> {
        Operation {
            client,
            op: Op::Create { key, value },
            call,
            ret: Some(ret),
            outcome: Outcome::Created(created),
        }
    }

    fn unknown(mut operation: Operation<&'static str, u32>) -> Operation<&'static str, u32> {
        operation.ret = None;
        operation.outcome = Outcome::Unknown;
        operation
    }

    fn verdict(history: &History) -> Verdict {
        check(history, BUDGET)
    }

    #[test]
    fn sequential_and_overlapping_histories_pass() {
        let sequential = vec![
            read(0, "k", None, 0, 1),
            write(0, "k", 1, 2, 3),
            read(1, "k", Some(1), 4, 5),
            write(1, "k", 2, 6, 7),
            read(0, "k", Some(2), 8, 9),
        ];
        assert_eq!(verdict(&sequential), Verdict::Linearizable);
        // A read overlapping a write may see either value.
        for seen in [None, Some(1)] {
            let history = vec![write(0, "k", 1, 0, 10), read(1, "k", seen, 5, 15)];
            assert_eq!(verdict(&history), Verdict::Linearizable, "{seen:?}");
        }
        // Returns in a different order than calls; a call at a return's instant overlaps it.
        let history = vec![
            write(0, "k", 1, 0, 100),
            write(1, "k", 2, 10, 20),
            read(2, "k", Some(1), 30, 40),
            read(3, "k", Some(1), 100, 110),
        ];
        assert_eq!(verdict(&history), Verdict::Linearizable);
        assert_eq!(verdict(&Vec::new()), Verdict::Linearizable);
    }

    #[test]
    fn a_stale_read_after_an_acknowledged_write_fails() {
        let history = vec![
            write(0, "k", 1, 0, 10),
            write(0, "k", 2, 20, 30),
            read(1, "k", Some(1), 40, 50),
        ];
        let verdict = verdict(&history);
        let Verdict::NotLinearizable {
            key,
            counterexample,
        } = &verdict
        else {
            panic!("{verdict:?}");
        };
        assert_eq!(key, "\"k\"");
        assert!(counterexample.contains("Read(Some(1))"), "{counterexample}");
        // Reading nothing after a write: stale too.
        let history = vec![write(0, "k", 1, 0, 10), read(1, "k", None, 11, 12)];
        assert!(!check(&history, BUDGET).is_linearizable());
    }

    #[test]
    fn two_readers_seeing_concurrent_writes_in_both_orders_fail() {
        // The writes overlap each other and every read, so either order is fine alone; but
        // client 2 sees 1 then 2 and client 3 sees 2 then 1.
        let history = vec![
            write(0, "k", 1, 0, 100),
            write(1, "k", 2, 0, 100),
            read(2, "k", Some(1), 10, 20),
            read(2, "k", Some(2), 30, 40),
            read(3, "k", Some(2), 10, 20),
            read(3, "k", Some(1), 30, 40),
        ];
        assert!(!verdict(&history).is_linearizable());
        // One order for everyone is fine.
        let history = vec![
            write(0, "k", 1, 0, 100),
            write(1, "k", 2, 0, 100),
            read(2, "k", Some(1), 10, 20),
            read(2, "k", Some(2), 30, 40),
            read(3, "k", Some(1), 10, 20),
            read(3, "k", Some(2), 30, 40),
        ];
        assert_eq!(verdict(&history), Verdict::Linearizable);
    }

    #[test]
    fn an_ambiguous_write_may_or_may_not_have_taken_effect() {
        let lost = unknown(write(0, "k", 1, 0, 0));
        // It took effect...
        let history = vec![lost.clone(), read(1, "k", Some(1), 50, 60)];
        assert_eq!(verdict(&history), Verdict::Linearizable);
        // ...or it did not...
        let history = vec![lost.clone(), read(1, "k", None, 50, 60)];
        assert_eq!(verdict(&history), Verdict::Linearizable);
        // ...even long after (no return time bounds it)...
        let history = vec![
            lost.clone(),
            read(1, "k", None, 50, 60),
            read(1, "k", Some(1), 5_000, 6_000),
        ];
        assert_eq!(verdict(&history), Verdict::Linearizable);
        // ...but not both ways, and not before it was called.
        let history = vec![
            lost.clone(),
            read(1, "k", Some(1), 50, 60),
            read(1, "k", None, 70, 80),
        ];
        assert!(!verdict(&history).is_linearizable());
        let late = unknown(write(0, "k", 1, 100, 0));
        let history = vec![late, read(1, "k", Some(1), 10, 20)];
        assert!(!verdict(&history).is_linearizable());
        // A failed write had no effect; a read of unknown outcome says nothing.
        let mut failed = write(0, "k", 1, 0, 10);
        failed.outcome = Outcome::Failed;
        let history = vec![failed.clone(), read(1, "k", None, 20, 30)];
        assert_eq!(verdict(&history), Verdict::Linearizable);
        let history = vec![failed, read(1, "k", Some(1), 20, 30)];
        assert!(!verdict(&history).is_linearizable());
        let history = vec![write(0, "k", 1, 0, 10), unknown(read(1, "k", None, 20, 0))];
        assert_eq!(verdict(&history), Verdict::Linearizable);
    }

    #[test]
    fn create_fails_if_the_key_exists() {
        let history = vec![
            create(0, "k", 1, true, 0, 10),
            create(1, "k", 2, false, 5, 15),
            read(2, "k", Some(1), 20, 30),
        ];
        assert_eq!(verdict(&history), Verdict::Linearizable);
        // Two concurrent creates cannot both win.
        let history = vec![
            create(0, "k", 1, true, 0, 10),
            create(1, "k", 2, true, 0, 10),
        ];
        assert!(!verdict(&history).is_linearizable());
        // A create cannot fail on an absent key.
        let history = vec![create(0, "k", 1, false, 0, 10)];
        assert!(!verdict(&history).is_linearizable());
        // An ambiguous create that lost to a known one leaves the winner's value.
        let history = vec![
            unknown(create(0, "k", 1, true, 0, 0)),
            create(1, "k", 2, true, 5, 15),
            read(2, "k", Some(2), 20, 30),
        ];
        assert_eq!(verdict(&history), Verdict::Linearizable);
    }

    #[test]
    fn keys_are_checked_apart_and_the_bad_key_is_named() {
        let history = vec![
            write(0, "a", 1, 0, 10),
            write(1, "b", 1, 0, 10),
            read(2, "a", Some(1), 20, 30),
            read(2, "b", None, 20, 30),
        ];
        let verdict = verdict(&history);
        assert!(
            matches!(&verdict, Verdict::NotLinearizable { key, .. } if key == "\"b\""),
            "{verdict:?}"
        );
    }

    /// A history of `ops` operations over `keys` keys by `clients` clients with overlapping
    /// intervals, from a real register (each operation takes effect at a random point of
    /// its interval); one write in 20 loses its answer. Deterministic (xorshift).
    fn generated(
        ops: usize,
        keys: usize,
        clients: usize,
        seed: u64,
    ) -> Vec<Operation<String, u32>> {
        let mut rng = seed.max(1);
        let mut next = move |bound: u64| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng % bound.max(1)
        };
        let mut client_free = vec![0u64; clients];
        // (effect time, operation index) applied in effect order against the register.
        let mut planned = Vec::new();
        let mut operations = Vec::new();
        for i in 0..ops {
            let client = usize::try_from(next(clients as u64)).unwrap_or(0);
            let call = client_free[client] + next(50);
            let ret = call + 1 + next(200);
            client_free[client] = ret + 1;
            let key = format!("k{}", next(keys as u64));
            let op = match next(3) {
                0 => Op::Read { key },
                1 => Op::Write {
                    key,
                    value: u32::try_from(i).unwrap_or(0),
                },
                _ => Op::Create {
                    key,
                    value: u32::try_from(i).unwrap_or(0),
                },
            };
            planned.push((call + next(ret - call), i));
            operations.push(Operation {
                client,
                op,
                call,
                ret: Some(ret),
                outcome: Outcome::Unknown,
            });
        }
        planned.sort();
        let mut store: BTreeMap<String, u32> = BTreeMap::new();
        for (_, i) in planned {
            let operation = &mut operations[i];
            operation.outcome = match &operation.op {
                Op::Read { key } => Outcome::Read(store.get(key).copied()),
                Op::Write { key, value } => {
                    store.insert(key.clone(), *value);
                    if next(20) == 0 {
                        operation.ret = None;
                        Outcome::Unknown
                    } else {
                        Outcome::Written
                    }
                }
                Op::Create { key, value } => {
                    let created = !store.contains_key(key);
                    if created {
                        store.insert(key.clone(), *value);
                    }
                    Outcome::Created(created)
                }
            };
        }
        operations
    }

    #[test]
    fn a_thousand_operations_over_ten_keys_check_fast() {
        for seed in 1..=3 {
            let history = generated(1_000, 10, 8, seed);
            let started = Instant::now();
            assert_eq!(
                check(&history, BUDGET),
                Verdict::Linearizable,
                "seed {seed}"
            );
            let took = started.elapsed();
            assert!(took < Duration::from_secs(2), "seed {seed}: {took:?}");

            // One read made to see a value never written: caught.
            let mut broken = history.clone();
            let Some(read) = broken
                .iter_mut()
                .find(|operation| matches!(operation.outcome, Outcome::Read(_)))
            else {
                panic!("no read in the history");
            };
            read.outcome = Outcome::Read(Some(u32::MAX));
            assert!(
                matches!(check(&broken, BUDGET), Verdict::NotLinearizable { .. }),
                "seed {seed}"
            );
        }
    }

    /// Linearizable by brute force: some order of the known operations, with any of the
    /// unknown ones, respects real time (a precedes b when a returned before b was called)
    /// and the register.
    fn brute_force(history: &[Operation<&'static str, u32>]) -> bool {
        let operations: Vec<&Operation<&'static str, u32>> = history
            .iter()
            .filter(|o| !matches!(o.outcome, Outcome::Failed))
            .filter(|o| !matches!((&o.op, &o.outcome), (Op::Read { .. }, Outcome::Unknown)))
            .collect();
        fn ret(o: &Operation<&'static str, u32>) -> u64 {
            if matches!(o.outcome, Outcome::Unknown) {
                u64::MAX
            } else {
                o.ret.unwrap_or(u64::MAX)
            }
        }
        fn go(
            ops: &[&Operation<&'static str, u32>],
            placed: &mut Vec<bool>,
            state: Option<u32>,
        ) -> bool {
            let known_left = ops
                .iter()
                .zip(placed.iter())
                .any(|(o, p)| !p && !matches!(o.outcome, Outcome::Unknown));
            if !known_left {
                return true;
            }
            for i in 0..ops.len() {
                if placed[i] {
                    continue;
                }
                // Every unplaced operation that returned before this one's call must go first.
                let blocked =
                    (0..ops.len()).any(|j| j != i && !placed[j] && ret(ops[j]) < ops[i].call);
                if blocked {
                    continue;
                }
                if let Some(next) = step(&state, ops[i]) {
                    placed[i] = true;
                    if go(ops, placed, next) {
                        return true;
                    }
                    placed[i] = false;
                }
            }
            false
        }
        let mut placed = vec![false; operations.len()];
        go(&operations, &mut placed, None)
    }

    #[test]
    fn small_random_histories_agree_with_brute_force() {
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move |bound: u64| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng % bound
        };
        let (mut yes, mut no) = (0, 0);
        for _ in 0..3_000 {
            let count = 1 + next(7);
            let history: History = (0..count)
                .map(|i| {
                    let client = usize::try_from(i).unwrap_or(0);
                    let call = next(20);
                    let ret = call + next(10);
                    let value = u32::try_from(next(3)).unwrap_or(0);
                    let seen = if next(4) == 0 { None } else { Some(value) };
                    let operation = match next(4) {
                        0 => write(client, "k", value, call, ret),
                        1 => create(client, "k", value, next(2) == 0, call, ret),
                        _ => read(client, "k", seen, call, ret),
                    };
                    match next(8) {
                        0 => unknown(operation),
                        1 => Operation {
                            outcome: Outcome::Failed,
                            ..operation
                        },
                        _ => operation,
                    }
                })
                .collect();
            let expected = brute_force(&history);
            assert_eq!(
                check(&history, BUDGET).is_linearizable(),
                expected,
                "{history:#?}"
            );
            if expected {
                yes += 1;
            } else {
                no += 1;
            }
        }
        assert!(
            yes > 300 && no > 300,
            "{yes} linearizable, {no} not: too one-sided"
        );
    }

    #[test]
    fn the_budget_bounds_the_search() {
        // Many concurrent writes of one key, all ambiguous or not, and a read no order
        // explains: with no budget the answer is Timeout, not a verdict.
        let mut history: Vec<Operation<&'static str, u32>> = (0..60)
            .map(|i| write(i, "k", u32::try_from(i).unwrap_or(0), 0, 1_000))
            .collect();
        history.push(read(99, "k", Some(999), 2_000, 2_001));
        assert_eq!(
            check(&history, Duration::ZERO),
            Verdict::Timeout {
                key: "\"k\"".into()
            }
        );
    }

    #[test]
    fn the_recorder_times_calls_and_leaves_lost_ones_open() {
        let recorder: Recorder<&'static str, u32> = Recorder::new();
        let first = recorder.call(0, Op::Write { key: "k", value: 1 });
        let lost = recorder.call(1, Op::Write { key: "k", value: 2 });
        recorder.complete(first, Outcome::Written);
        let read = recorder.call(2, Op::Read { key: "k" });
        recorder.complete(read, Outcome::Read(Some(2)));
        let history = recorder.history();
        assert_eq!(history[lost].ret, None);
        assert_eq!(history[lost].outcome, Outcome::Unknown);
        assert!(history[first]
            .ret
            .is_some_and(|ret| ret >= history[first].call));
        assert_eq!(check(&history, BUDGET), Verdict::Linearizable);
    }
}

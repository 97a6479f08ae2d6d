//! Runs the unit tests of the chaos suite's linearizability checker,
//! `tests/support/linearizability.rs`, on its own: `cargo test --test linearizability_check`.
//! (The harness in `tests/support/` is shared through `mod support;`, and a test crate that
//! does not use the checker should not have to compile its tests.)

#[path = "support/linearizability.rs"]
mod linearizability;

mod tests {
    use super::linearizability::*;
    use std::collections::BTreeMap;
    use std::time::{Duration, Instant};

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

    #[test]
    fn many_unseen_writes_of_unknown_outcome_are_checked_at_once() {
        // A killed leader leaves dozens of writes without an answer; none was ever read.
        let mut history: History = (0u32..60)
            .map(|n| unknown(write(7, "k", 1_000 + n, 10 + u64::from(n), 0)))
            .collect();
        history.push(write(99, "k", 1, 0, 5));
        history.push(read(98, "k", Some(1), 6, 7));
        history.push(read(98, "k", Some(1), 200, 210));
        let started = Instant::now();
        assert!(check(&history, BUDGET).is_linearizable());
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
        // One of them read, and then one older value read again: not linearizable.
        history.push(read(97, "k", Some(1_007), 300, 310));
        history.push(read(97, "k", Some(1), 320, 330));
        assert!(!check(&history, BUDGET).is_linearizable());
    }
}

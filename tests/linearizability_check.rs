//! Runs the unit tests of the chaos suite's linearizability checker,
//! `tests/support/linearizability.rs`, on its own: `cargo test --test linearizability_check`.
//! (The harness in `tests/support/` is shared through `mod support;`, and a test crate that
//! does not use the checker should not have to compile its tests.)

#[path = "support/linearizability.rs"]
mod linearizability;

//! Harness for real-process tests and benchmarks: spawns `orch master` processes on ports
//! chosen at run time, each with its own data dir inside one temp dir, and talks to them over
//! HTTP with short timeouts.
//!
//! Invariants:
//! - every child process is killed when its [`Master`] (or the [`Cluster`] holding it) is
//!   dropped, including during a panic; on a panic the tail of every master's log is printed;
//! - every wait is bounded and panics with a message naming what it waited for;
//! - set `ORCH_TEST_KEEP=1` to keep the temp dir (data dirs and logs) after the run.
//!
//! Shared by `tests/*.rs` and `benches/*.rs` (through `#[path]`), so not every helper is used
//! by every crate.
#![allow(dead_code)]

pub mod sshd;

mod cluster;
mod dns;
mod docker;
mod events;
mod git;
mod http;
mod lb;
mod master;
mod netns;
mod process;
mod python;
pub mod tls;

// Each test crate uses a part of the harness: the rest of these re-exports is unused there.
#[allow(unused_imports)]
pub use {
    cluster::*, dns::*, docker::*, events::*, git::*, http::*, lb::*, master::*, netns::*,
    process::*, python::*,
};

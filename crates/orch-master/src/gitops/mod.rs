//! GitOps: a reconciler per watched repo runs on the leader. It fetches the repo (poll,
//! webhook, or a file watch on a local repo), renders and parses every app file at the
//! fetched commit (all or nothing), and writes the managed group's desired state as one
//! group update tagged with the commit; it reports sync and health status and history.
//!
//! May depend on: model, state, master (its `Master` handle, to read state and write
//! commands). The parsing, rendering, planning and webhook checks are pure.

mod locate;
pub mod parse;
pub mod plan;
mod reconciler;
pub mod render;
pub mod source;
pub mod status;
pub mod webhook;
mod worker;

pub use reconciler::{Gitops, GitopsError};
pub use worker::Live;

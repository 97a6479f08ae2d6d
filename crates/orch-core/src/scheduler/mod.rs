//! The pure scheduling core: where new tasks go, which tasks die on scale-down, when a crashing
//! app may launch again, and how far a rolling restart may go right now.
//!
//! - [`fit`]: can one agent take one instance of a request, given where the app's instances
//!   already are? Returns the host ports to use or the [`Rejection`]. Placement and the plan
//!   applier's re-verification share it, so they cannot disagree.
//! - [`place`]: places many requests' instances on many agents ([`Plan`]), never
//!   over-committing cpus, mem, disk or ports and never breaking a constraint (Marathon's
//!   semantics), spreading each app over agents, and explaining what it could not place.
//! - [`select_kills`] / [`scale_step`]: scale-down victims in Marathon's order.
//! - [`Backoff`]: launch backoff after failures, times given in milliseconds.
//! - [`restart_step`]: rolling-restart arithmetic (`minimumHealthCapacity`,
//!   `maximumOverCapacity`).
//! - [`decide_app`]: the leader's decision for one app on one pass (launch, kill, expunge,
//!   and why), built from the pieces above.
//!
//! Everything here is a function of its inputs: the master maps cluster state into
//! [`AgentSlot`]s and [`PlacementRequest`]s. Randomness (dynamic host ports, the starting
//! agent) comes in as a `seed`; time comes in as milliseconds.
//!
//! May depend on: model.

mod backoff;
mod decide;
#[cfg(test)]
mod decide_tests;
mod fit;
mod kill;
mod place;
mod restart;
#[cfg(test)]
mod tests;

pub use backoff::{Backoff, BackoffConfig};
pub use decide::{decide_app, AppDecision, AppInput, Reason};
pub use fit::{fit, AgentSlot, CompiledRequest, PlacementRequest, PortChoice, Rejection, Spread};
pub use kill::{scale_step, select_kills, KillCandidate, ScaleStep};
pub use place::{place, Placement, Plan, Unplaced};
pub use restart::{restart_step, RestartCounts, RestartStep};

/// A placement request the scheduler cannot even evaluate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchedulerError {
    /// A LIKE/UNLIKE pattern that does not compile.
    #[error("constraint {constraint}: invalid regex: {reason}")]
    InvalidRegex {
        /// The constraint, `field:OPERATOR:value`.
        constraint: String,
        /// What the regex compiler said.
        reason: String,
    },
    /// An operator value that is missing or not a number where one is needed.
    #[error("constraint {constraint}: {problem}")]
    InvalidConstraint {
        /// The constraint, `field:OPERATOR[:value]`.
        constraint: String,
        /// What is wrong with it.
        problem: &'static str,
    },
}

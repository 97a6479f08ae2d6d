//! Who a request acts for, as the API's authentication found it: the management token (or a
//! master without tokens), or an ACL token and its grants.
//!
//! The API runs each request inside [`Caller::scope`]; [`Master::write`](super::Master::write)
//! and [`Master::read_state`](super::Master::read_state) then hold the request to its
//! caller's grants without each handler having to: writes become
//! [`Command::Restricted`], reads see [`ClusterState::visible_to`]. Work outside a request
//! (the scheduler, deployments, agents' RPCs) has no caller and acts for the cluster; a
//! gitops repo with a token runs its writes in a scope of its own.
//!
//! May depend on: state, model. Pure but for the task-local.

use orch_core::model::Grants;
use orch_core::state::{ClusterState, Command};
use std::future::Future;
use std::sync::Arc;

/// Who a request acts for.
#[derive(Clone, Debug)]
pub enum Caller {
    /// The management token: everything.
    Management,
    /// An ACL token: what its policies grant.
    Token(Arc<Grants>),
}

tokio::task_local! {
    static CALLER: Caller;
}

impl Caller {
    /// Runs `work` acting for this caller.
    pub async fn scope<F: Future>(self, work: F) -> F::Output {
        CALLER.scope(self, work).await
    }

    /// The grants of the running request's token (none for the management token or outside
    /// a request).
    pub fn grants() -> Option<Arc<Grants>> {
        CALLER
            .try_with(|caller| match caller {
                Self::Management => None,
                Self::Token(grants) => Some(Arc::clone(grants)),
            })
            .ok()
            .flatten()
    }
}

/// `command` as the running request may write it.
pub(super) fn restrict(command: Command) -> Command {
    match Caller::grants() {
        Some(grants) => Command::Restricted {
            grants: Grants::clone(&grants),
            command: Box::new(command),
        },
        None => command,
    }
}

/// `state` as the running request may see it.
pub(super) fn view(state: Arc<ClusterState>) -> Arc<ClusterState> {
    match Caller::grants() {
        Some(grants) => Arc::new(state.visible_to(&grants)),
        None => state,
    }
}

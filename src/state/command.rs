//! The Raft payload and what applying it produced.

use crate::model::{App, AppError, AppId, DeploymentId, Timestamp};
use serde_json::{Map, Value};
use std::sync::Arc;

/// A change to the cluster state, as written to the Raft log.
///
/// Append-only: add variants at the end; never change the meaning of an existing one.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Command {
    /// Create an app; rejected if the id exists. Its 0 service ports are assigned on apply.
    CreateApp {
        /// The app, with its version already chosen by the leader (boxed: the payload is
        /// large next to the other variants; the wire form is the same).
        app: Box<App>,
        /// The deployment that brings it up.
        deployment_id: DeploymentId,
    },
    /// Create or update an app (Marathon's PUT and PATCH; a rollback is a full update with
    /// the stored version's definition). Validated on apply; rejected if invalid.
    UpdateApp {
        /// Which app.
        id: AppId,
        /// The new version timestamp.
        version: Timestamp,
        /// The client's fields.
        patch: Map<String, Value>,
        /// Merge `patch` over the existing definition (true) or replace it (false).
        partial: bool,
        /// The deployment that rolls the change out.
        deployment_id: DeploymentId,
    },
    /// Delete an app; rejected if unknown.
    DeleteApp {
        /// Which app.
        id: AppId,
        /// The version of the change.
        version: Timestamp,
        /// The deployment that stops it.
        deployment_id: DeploymentId,
    },
    /// Several commands written as one entry, applied in order; each has its own outcome.
    Batch(Vec<Command>),
}

/// The outcome of applying one log entry, returned to the client that wrote it.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Applied {
    /// The entry was not a command (a blank or membership entry).
    Nothing,
    /// A new app exists.
    AppCreated {
        /// The app as stored.
        app: Arc<App>,
        /// Its deployment.
        deployment_id: DeploymentId,
    },
    /// An app was created or updated by an update.
    AppUpdated {
        /// True if the app did not exist before.
        created: bool,
        /// The new version.
        version: Timestamp,
        /// Its deployment.
        deployment_id: DeploymentId,
    },
    /// An app was deleted.
    AppDeleted {
        /// The version of the change.
        version: Timestamp,
        /// Its deployment.
        deployment_id: DeploymentId,
    },
    /// The command did not apply to the state it met.
    Rejected(Rejection),
    /// The outcomes of a [`Command::Batch`], in order.
    Batch(Vec<Applied>),
}

/// Why a command changed nothing.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Rejection {
    /// An app with this id exists already.
    AppExists(AppId),
    /// No app has this id.
    AppUnknown(AppId),
    /// The resulting app definition is not valid, or no service port is left.
    InvalidApp(AppError),
}

//! Blue/green deploys as marathon-lb's zdd.py plans them, as pure functions over the
//! Marathon API's JSON (the `orch app deploy-bluegreen` command runs the HTTP loop):
//!
//! - [`definition`]: the app file's checks and the next colour's definition
//!   (`<id>-blue` / `<id>-green`, the service port alternating with
//!   `HAPROXY_DEPLOYMENT_ALT_PORT`, `HAPROXY_0_PORT` pinned);
//! - [`live`]: the deployment group's apps as the API shows them;
//! - [`start`]: what to create or continue (`--resume`, `--complete-cur`,
//!   `--complete-prev`, canaries);
//! - [`step`]: the next step of the swap, from the tasks in rotation.
//!
//! May depend on: orch-core's model, serde_json. No clock and no I/O: the time comes in.

pub mod definition;
mod error;
pub mod live;
pub mod start;
pub mod step;

pub use error::BlueGreenError;

//! Provisioning: `orch up`, `orch status` and `orch destroy` create, inspect and remove a
//! whole cluster from an infra file (`infra/*.yaml`).
//!
//! The local provider runs every master and agent as a process of this machine, with data,
//! logs, pid files and a state file in `.orch/<cluster>/`. The ssh provider ([`ssh`]) installs
//! and runs the nodes on existing hosts over SSH. Providers not built yet are named in the
//! infra file's `provider:` key and refused with "not built yet".
//!
//! - [`infra`]: the typed, validated infra file and its gitops entries as
//!   [`RepoConfig`](crate::model::RepoConfig)s;
//! - [`layout`]: pure port planning and each process's dirs, files and command line;
//! - [`record`]: the state file;
//! - [`procs`]: `/proc`: is a recorded process still ours, which processes are a cluster's
//!   tasks, signals;
//! - [`containers`]: the Docker engine: is one there, remove a cluster's containers;
//! - [`cluster_api`]: the API calls made to the cluster (leader, agents, gitops);
//! - [`local`]: the local provider's steps: prepare, start, wait until ready, stop;
//! - [`ssh`]: the ssh provider: a cluster on existing hosts reached over SSH.
//!
//! May depend on: model, driver (executor pid files, Docker labels). Never master, api,
//! state, raft, agent or cli: provisioning talks to a cluster only through its HTTP API.

pub mod cluster_api;
pub mod cluster_spec;
pub mod containers;
pub mod infra;
pub mod layout;
pub mod local;
pub mod procs;
pub mod provider;
pub mod provider_config;
pub mod record;
pub mod remote;
pub mod ssh;
pub mod state_file;
pub mod steps;
pub mod templates;

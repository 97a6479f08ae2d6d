//! Provisioning: `orch up`, `orch status` and `orch destroy` create, inspect and remove a
//! whole cluster from an infra file (`infra/*.yaml`).
//!
//! The local provider runs every master and agent as a process of this machine, with data,
//! logs, pid files and a state file in `.orch/<cluster>/`. The other providers give each node
//! a machine of its own and share one step list ([`remote`], [`steps`]): the [`docker`]
//! provider as containers of the local Docker engine, the [`ssh`] provider on existing hosts,
//! the [`digital_ocean`] provider on droplets it creates (then driven over SSH).
//!
//! - [`infra`], [`provider_config`]: the typed, validated infra file, its per-provider
//!   sections, and its gitops entries as [`RepoConfig`](orch_core::model::RepoConfig)s;
//! - local provider: [`layout`] (pure port planning, each process's dirs and command line),
//!   [`record`] (its state file), [`procs`] (`/proc`: is a recorded process still ours),
//!   [`containers`] (remove a local cluster's task containers), [`local`] (prepare, start,
//!   wait until ready, stop);
//! - other providers: [`cluster_spec`] (pure: machines wanted, each node's command line),
//!   [`state_file`] (`state.json`), [`steps`] (the step list, progress, failure injection),
//!   [`provider`] (the trait each provider implements), [`remote`] (the shared flow),
//!   [`templates`] (rendering `templates/`);
//! - [`cluster_api`]: the API calls made to the cluster (leader, agents, gitops).
//!
//! May depend on: model, driver (executor pid files, Docker labels). Never master, api,
//! state, raft, agent or cli: provisioning talks to a cluster only through its HTTP API.

pub mod cluster_api;
pub mod cluster_spec;
pub mod containers;
pub mod digital_ocean;
pub mod docker;
pub mod infra;
pub mod layout;
pub mod local;
pub mod node_command;
pub mod procs;
pub mod provider;
pub mod remote;
pub mod ssh;
pub mod state_file;
pub mod steps;
pub mod templates;

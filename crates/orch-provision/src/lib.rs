//! Provisioning: `orch up`, `orch status` and `orch destroy` create, inspect and remove a
//! whole cluster from an infra file (`infra/*.yaml`). The binary's CLI parses flags and the
//! environment (`ORCH_FAIL_AT` included) and hands this crate plain values.
//!
//! Four providers behind one [`provider::Provider`] trait and one flow ([`flow`], with the
//! step list of [`steps`]): the [`local`] provider runs every master and agent as a process
//! of this machine, with data, logs, pid files and the state file in `.orch/<cluster>/`; the
//! others give each node a machine of its own: the [`docker`] provider as containers of the
//! local Docker engine, the [`ssh`] provider on existing hosts, the [`digital_ocean`]
//! provider on droplets it creates (then driven over SSH).
//!
//! Modules, by job:
//! - the infra file: [`infra`] (typed and validated, split by section: its error type, the
//!   `dns:`/`lb:`, `gitops:` and per-provider sections; the gitops entries become
//!   [`RepoConfig`](orch_core::model::RepoConfig)s);
//! - shared by every provider: [`provider`] (the trait), [`flow`] (`orch up`, `--plan`,
//!   `status` and `destroy`: the provider's steps and the shared ones between them),
//!   [`steps`] (the step list, progress lines, failure injection with a [`steps::FailAt`]),
//!   [`node_command`] (the one builder of `orch master`/`orch agent` command lines),
//!   [`state_file`] (the one reader and writer of
//!   `.orch/<cluster>/state.json`, one error type), [`cluster_pki`] (the cluster's CA, node
//!   certificates and management token in `.orch/<cluster>/`), [`cluster_api`] (the calls
//!   made to a cluster's HTTP API over HTTPS with that CA and token: leader, agents,
//!   gitops), [`plan`] (what `orch up` would change, as
//!   typed actions whose lines `orch up --plan` prints and whose decisions the steps carry
//!   out);
//! - the local provider: [`layout`] (pure port planning, each process's dirs, log and pid
//!   files), [`procs`] (`/proc`: is a recorded process still ours, which processes are the
//!   cluster's tasks), [`containers`] (remove a local cluster's task containers), [`local`]
//!   (the provider: prepare, start, stop, endpoints);
//! - machines of their own: [`cluster_spec`] (pure: the machines wanted, each node's spec),
//!   [`templates`] (rendering `templates/`), and one module per provider.
//!
//! May depend on: orch-core (model, errors), orch-driver (executor pid files, Docker labels
//! and engine calls), orch-fs (atomic writes), orch-pki (the cluster's CA and certificates,
//! the TLS client configuration);
//! nothing else of the workspace. Never master,
//! api, state, raft, agent or the CLI: provisioning talks to a cluster only through its HTTP
//! API.

pub mod cluster_api;
pub mod cluster_pki;
pub mod cluster_spec;
pub mod containers;
pub mod digital_ocean;
pub mod docker;
pub mod flow;
pub mod infra;
pub mod layout;
pub mod local;
pub mod node_command;
pub mod plan;
pub mod procs;
pub mod provider;
pub mod ssh;
pub mod state_file;
pub mod steps;
pub mod templates;

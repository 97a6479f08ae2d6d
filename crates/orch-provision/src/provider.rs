//! What a provider of machines (local, docker, ssh, digital_ocean) does for `orch up`,
//! `orch status` and `orch destroy`; the steps between (wait for a leader, for the agents,
//! gitops, endpoints) are the same for all and live in [`super::flow`].
//!
//! Every method is idempotent: it looks at what exists (state file, tags, labels, the
//! machine itself) before it changes anything, so a re-run after a crash or a failure
//! converges instead of duplicating.
//!
//! May depend on: provision::{cluster_spec, infra, plan, state_file, steps}. The
//! implementations live in provision::{local, docker, ssh, digital_ocean}.

use super::cluster_spec::{self, Machine, MachineRole, NodeSpec, WantedMachine};
use super::infra::Infra;
use super::plan::Plan;
use super::state_file::{State, StateError, StateFile};
use super::steps::{FailAt, Injected, Progress};

/// What every provider gets besides the infra file.
#[derive(Debug, Clone)]
pub struct ProviderOptions {
    /// The orch binary to install (`--binary`, else the running one).
    pub binary: std::path::PathBuf,
    /// Accept and record host keys that no known_hosts file or pin knows
    /// (`--trust-on-first-use`).
    pub trust_on_first_use: bool,
    /// The infra file's directory: relative paths in it (keys, known_hosts) are relative to it.
    pub base_dir: std::path::PathBuf,
    /// `.orch/<cluster>` (absolute): the state file and what a provider keeps beside it.
    pub cluster_dir: std::path::PathBuf,
    /// Where to inject a failure (the CLI reads it from `ORCH_FAIL_AT`), if anywhere.
    pub fail_at: Option<FailAt>,
}

/// A boxed error of a provider's own module.
pub type Source = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a provider could not do its part.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// A step failed on one machine.
    #[error("{step} on {machine}")]
    OnMachine {
        /// The step's name.
        step: &'static str,
        /// The machine's name.
        machine: String,
        /// The cause.
        source: Source,
    },
    /// Something failed that concerns the whole cluster (network, image, API listing).
    #[error("{what}")]
    Failed {
        /// What was being done.
        what: String,
        /// The cause.
        source: Source,
    },
    /// The provider refuses before doing anything (a missing token, a bad setting).
    #[error("{0}")]
    Refused(String),
    /// A failure injected with a [`FailAt`].
    #[error(transparent)]
    Injected(#[from] Injected),
    /// The state file cannot be written.
    #[error(transparent)]
    State(#[from] StateError),
}

impl ProviderError {
    /// A step's failure on a machine.
    pub fn on_machine(step: super::steps::Step, machine: &str, source: impl Into<Source>) -> Self {
        Self::OnMachine {
            step: step.name(),
            machine: machine.to_owned(),
            source: source.into(),
        }
    }

    /// A cluster-wide failure.
    pub fn failed(what: impl Into<String>, source: impl Into<Source>) -> Self {
        Self::Failed {
            what: what.into(),
            source: source.into(),
        }
    }
}

/// What starting a node did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// It was not running and now runs.
    Started,
    /// It ran with another spec or binary, and was restarted with this one.
    Restarted,
    /// It already ran as specified; nothing was done.
    Unchanged,
}

/// A machine as the provider sees it, for `orch status`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MachineStatus {
    /// The machine's name.
    pub name: String,
    /// What it runs.
    pub role: MachineRole,
    /// Its cluster address, when known.
    pub ip: Option<std::net::IpAddr>,
    /// The provider's id.
    pub id: String,
    /// `running`, `stopped`, `missing`, or the provider's word (`active`, `exited`, ...).
    pub state: String,
}

/// A source of machines and the means to run a node on each.
#[async_trait::async_trait]
pub trait Provider: Send {
    /// The provider's name (`local`, `docker`, `ssh`, `digital_ocean`).
    fn name(&self) -> &'static str;

    /// What `orch up` would change, found without changing anything (`orch up --plan`):
    /// one [`Action`](super::plan::Action) per decision, e.g. create droplet
    /// `demo-master-2`, upload orch to `agent-1` (binary differs), start `master-3` (not
    /// running); and those saying what is already as wanted. The executing steps take
    /// their decisions from the same functions that make these actions.
    async fn plan(
        &mut self,
        wanted: &[WantedMachine],
        state: &State,
    ) -> Result<Plan, ProviderError>;

    /// Step machines: finds the machines of `wanted` (in the state, by tag or label) and
    /// creates the missing ones, recording each in `state` (saved) as soon as it exists.
    /// Returns them in the order of `wanted`.
    async fn machines(
        &mut self,
        wanted: &[WantedMachine],
        state: &mut StateFile,
        progress: &Progress,
    ) -> Result<Vec<Machine>, ProviderError>;

    /// Steps wait-ssh, upload and render for every node: makes each machine ready to run its
    /// node (binary in place, config and service units rendered from `templates/`). A
    /// provider with nothing to do in a step prints why (the docker image carries the binary).
    /// Uploads where `plan` (made by [`Provider::plan`] at the start of this `orch up`) says
    /// so; decides on the machine only where the plan could not (a machine it could not
    /// reach, or that did not exist yet).
    async fn install(
        &mut self,
        machines: &[Machine],
        nodes: &[NodeSpec],
        plan: &Plan,
        progress: &Progress,
    ) -> Result<(), ProviderError>;

    /// Steps start-masters and start-agents: makes each of `nodes` run as specified; starts it
    /// when stopped or missing, restarts it when its spec or binary changed, leaves it alone
    /// when it runs as specified. Carries out `plan`'s decision for each node; decides on
    /// the machine only where an earlier step of this run changed what the plan decided from
    /// (docker: an image built) or the plan could not decide (a host it could not reach, a
    /// droplet that did not exist yet).
    /// A provider that records what it started (local: the pids) does so in `state`.
    async fn start(
        &mut self,
        machines: &[Machine],
        nodes: &[NodeSpec],
        plan: &Plan,
        state: &mut StateFile,
        progress: &Progress,
    ) -> Result<Vec<Change>, ProviderError>;

    /// Fails when a node this run started has ended since (asked while waiting for the
    /// cluster, so a node that dies at once fails `orch up` at once, with its reason).
    /// Nothing to check by default: a machine's supervisor restarts its node.
    fn check_started(&mut self) -> Result<(), ProviderError> {
        Ok(())
    }

    /// Where `machine`'s TLS files go on it (see [`cluster_spec::tls_files`]): by default
    /// `<install_dir>/tls`.
    fn tls_dir(&self, machine: &Machine) -> String {
        cluster_spec::default_tls_dir(machine)
    }

    /// The masters' API addresses, in `--masters` order: by default each master machine's
    /// IP with the `api` port.
    fn api_addresses(&self, infra: &Infra, state: &State) -> Vec<std::net::SocketAddr> {
        cluster_spec::master_addresses(infra, &state.machines)
    }

    /// The lines `orch up` and `orch status` print of where the cluster serves (API, DNS,
    /// load balancer).
    fn endpoints(&self, infra: &Infra, state: &State) -> Vec<String> {
        cluster_spec::endpoint_lines(infra, &state.machines)
    }

    /// Each machine of the state as the provider sees it now.
    async fn status(&mut self, state: &State) -> Result<Vec<MachineStatus>, ProviderError>;

    /// Removes everything the state and the provider's own marks (tags, labels, install
    /// dirs) say is this cluster's; returns a line per thing removed. Nothing of the
    /// cluster's is left when it returns Ok, whatever a failed `orch up` left.
    async fn destroy(
        &mut self,
        state: Option<&State>,
        progress: &Progress,
    ) -> Result<Vec<String>, ProviderError>;
}

//! `orch up`, `orch up --plan`, `orch status` and `orch destroy` for every provider: the
//! fixed step list of [`super::steps`], with the provider doing the machine-specific steps
//! and this module the rest (wait for a leader, for the agents, gitops, endpoints). The
//! caller makes the provider's [`Plan`] with [`plan`] (what `orch up --plan` prints) and
//! hands that very plan to [`up`], whose steps carry out its decisions. Every step is
//! idempotent and the state file is written as things come to exist, so a re-run converges
//! and a destroy finds everything.
//!
//! Every cluster gets its identity here, once its machines (and so their addresses) are
//! known: the CA, each node's certificate and the management token of
//! [`super::cluster_pki`]; the cluster's API is then reached over HTTPS with them
//! ([`Access`]).
//!
//! May depend on: provision::{cluster_api, cluster_pki, cluster_spec, infra, plan, provider,
//! state_file, steps}, model (RepoConfig), orch-pki (its error type).

use super::cluster_api::{Access, ClusterApi, ClusterApiError, RepoSummary};
use super::cluster_spec::{self, Machine};
use super::infra::Infra;
use super::plan::{Action, Plan};
use super::provider::{Change, MachineStatus, Provider, ProviderError};
use super::state_file::{State, StateError, StateFile};
use super::steps::{Progress, Step};
use orch_core::model::RepoConfig;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long `orch up` waits for a leader, and then for every agent.
pub const READY_TIMEOUT: Duration = Duration::from_secs(120);
/// How often a wait prints that it still waits.
const WAIT_REPORT: Duration = Duration::from_secs(5);

/// Why `orch up`, `orch status` or `orch destroy` failed.
#[derive(Debug, thiserror::Error)]
pub enum FlowError {
    /// The provider failed.
    #[error(transparent)]
    Provider(#[from] ProviderError),
    /// The state file cannot be used.
    #[error(transparent)]
    State(#[from] StateError),
    /// A failure injected with `ORCH_FAIL_AT`.
    #[error(transparent)]
    Injected(#[from] super::steps::Injected),
    /// The state file belongs to a cluster made by another provider.
    #[error(
        "{path} records a cluster made by the {recorded} provider, not {wanted}; \
         `orch destroy` it with its own infra file first"
    )]
    OtherProvider {
        /// The state file.
        path: PathBuf,
        /// Its provider.
        recorded: String,
        /// The provider asked for.
        wanted: String,
    },
    /// No master reported a leader with every master a member in time.
    #[error("no leader after {waited:?}: {answering} of {masters} masters answer ({last})")]
    NoLeader {
        /// How long it waited.
        waited: Duration,
        /// Masters whose API answered.
        answering: usize,
        /// Masters in all.
        masters: usize,
        /// The last error or answer seen.
        last: String,
    },
    /// Not every agent registered in time.
    #[error("only {reachable} of {wanted} agents registered after {waited:?}")]
    AgentsMissing {
        /// How long it waited.
        waited: Duration,
        /// Agents registered and reachable.
        reachable: usize,
        /// Agents wanted.
        wanted: usize,
    },
    /// The cluster's CA, certificates or token cannot be made.
    #[error("cannot make the cluster's identity in {dir}")]
    Pki {
        /// `.orch/<cluster>/pki`.
        dir: PathBuf,
        /// The cause.
        source: orch_pki::PkiError,
    },
    /// A gitops repo could not be registered.
    #[error("cannot register gitops repo {repo}")]
    Gitops {
        /// The repo's name.
        repo: String,
        /// The cause.
        source: ClusterApiError,
    },
}

/// What `orch up` asked for.
#[derive(Debug, Clone)]
pub struct UpRequest {
    /// The cluster definition.
    pub infra: Infra,
    /// The infra file (absolute).
    pub infra_file: Option<PathBuf>,
    /// `.orch/<cluster>` (absolute).
    pub dir: PathBuf,
    /// The gitops repos to register.
    pub repos: Vec<RepoConfig>,
}

/// What a finished `orch up` found and did.
#[derive(Debug, Clone)]
pub struct UpSummary {
    /// The machines, in order.
    pub machines: Vec<Machine>,
    /// What starting each node did, in order of the machines.
    pub changes: Vec<(String, Change)>,
    /// The endpoint lines printed.
    pub endpoints: Vec<String>,
    /// The masters' API addresses.
    pub apis: Vec<SocketAddr>,
}

fn open_state(
    provider: &dyn Provider,
    infra: &Infra,
    infra_file: Option<PathBuf>,
    dir: &Path,
) -> Result<StateFile, FlowError> {
    let file = StateFile::open(
        dir,
        State {
            provider: provider.name().to_owned(),
            cluster: infra.cluster.clone(),
            infra_file,
            ..State::default()
        },
    )?;
    if file.state.provider != provider.name() {
        return Err(FlowError::OtherProvider {
            path: file.path().to_owned(),
            recorded: file.state.provider.clone(),
            wanted: provider.name().to_owned(),
        });
    }
    Ok(file)
}

/// `orch up --plan`: the provider's actions, then the gitops registration; nothing changed.
pub async fn plan(provider: &mut dyn Provider, request: &UpRequest) -> Result<Plan, FlowError> {
    let wanted = cluster_spec::wanted_machines(&request.infra);
    let state = match super::state_file::load(&request.dir)? {
        Some(state) if state.provider != provider.name() => {
            return Err(FlowError::OtherProvider {
                path: request.dir.join(super::state_file::FILE),
                recorded: state.provider,
                wanted: provider.name().to_owned(),
            })
        }
        Some(state) => state,
        None => State {
            provider: provider.name().to_owned(),
            cluster: request.infra.cluster.clone(),
            ..State::default()
        },
    };
    let mut plan = provider.plan(&wanted, &state).await?;
    plan.push(Action::Identity {
        dir: format!(".orch/{}", request.infra.cluster),
        exists: super::cluster_pki::ca_path(&request.dir).exists(),
    });
    if !request.repos.is_empty() {
        plan.push(Action::RegisterRepos {
            repos: request
                .repos
                .iter()
                .map(RepoConfig::effective_name)
                .collect(),
        });
    }
    Ok(plan)
}

/// `orch up`: every step in order, converging on what exists and carrying out `plan` (made
/// by [`plan`] for this run).
pub async fn up(
    provider: &mut dyn Provider,
    request: &UpRequest,
    plan: &Plan,
    progress: &Progress,
) -> Result<UpSummary, FlowError> {
    let infra = &request.infra;
    let mut state = open_state(provider, infra, request.infra_file.clone(), &request.dir)?;
    let finished = |state: &mut StateFile, step: Step| {
        state.update(|s| s.last_step = Some(step.name().to_owned()))
    };
    let wanted = cluster_spec::wanted_machines(infra);

    progress.step(Step::Machines)?;
    let machines = provider.machines(&wanted, &mut state, progress).await?;
    for extra in state
        .state
        .machines
        .iter()
        .filter(|m| !wanted.iter().any(|w| w.name == m.name))
    {
        progress.machine(
            &extra.name,
            "in the state but no longer in the infra file; left as it is (`orch destroy` removes it)",
        );
    }
    finished(&mut state, Step::Machines)?;

    let ensured =
        super::cluster_pki::ensure(&request.dir, &infra.cluster, &machines).map_err(|source| {
            FlowError::Pki {
                dir: super::cluster_pki::pki_dir(&request.dir),
                source,
            }
        })?;
    progress.note(pki_line(&ensured, machines.len()));
    let access = Access::of_cluster(&request.dir);
    let mut nodes = cluster_spec::node_specs(infra, &machines, &request.dir, &|machine| {
        provider.tls_dir(machine)
    });
    super::cluster_pki::stamp_tls(&mut nodes);
    provider.install(&machines, &nodes, plan, progress).await?;
    finished(&mut state, Step::Render)?;

    let (masters, agents): (Vec<_>, Vec<_>) = nodes.iter().cloned().partition(|n| n.is_master());
    let mut changes = Vec::new();

    progress.step(Step::StartMasters)?;
    let started = provider
        .start(&machines, &masters, plan, &mut state, progress)
        .await?;
    changes.extend(masters.iter().map(|n| n.name.clone()).zip(started));
    finished(&mut state, Step::StartMasters)?;

    progress.step(Step::WaitLeader)?;
    let apis = provider.api_addresses(infra, &state.state);
    state.update(|s| s.apis.clone_from(&apis))?;
    let leader = wait_leader(provider, &apis, access.as_ref(), READY_TIMEOUT, progress).await?;
    progress.note(format!("leader: {leader}"));
    finished(&mut state, Step::WaitLeader)?;

    progress.step(Step::StartAgents)?;
    let started = provider
        .start(&machines, &agents, plan, &mut state, progress)
        .await?;
    changes.extend(agents.iter().map(|n| n.name.clone()).zip(started));
    finished(&mut state, Step::StartAgents)?;

    progress.step(Step::WaitAgents)?;
    wait_agents(
        provider,
        &apis,
        access.as_ref(),
        agents.len(),
        READY_TIMEOUT,
        progress,
    )
    .await?;
    finished(&mut state, Step::WaitAgents)?;

    progress.step(Step::Gitops)?;
    register_repos(&apis, access.as_ref(), &request.repos, progress).await?;
    finished(&mut state, Step::Gitops)?;

    progress.step(Step::Endpoints)?;
    let endpoints = provider.endpoints(infra, &state.state);
    for line in &endpoints {
        progress.note(line);
    }
    finished(&mut state, Step::Endpoints)?;
    Ok(UpSummary {
        machines,
        changes,
        endpoints,
        apis,
    })
}

/// What the identity step did, for the progress.
fn pki_line(ensured: &super::cluster_pki::Ensured, nodes: usize) -> String {
    let ca = if ensured.new_ca {
        "CA and management token made"
    } else {
        "CA and management token kept"
    };
    match ensured.issued.len() {
        0 => format!("pki: {ca}; the {nodes} node certificates fit"),
        _ => format!(
            "pki: {ca}; certificate issued for {}",
            ensured.issued.join(", ")
        ),
    }
}

/// The leader, once a master of `apis` names one with every master of `apis` a member;
/// waits up to `timeout`, and fails at once when the provider says a node it started ended.
pub async fn wait_leader(
    provider: &mut dyn Provider,
    apis: &[SocketAddr],
    access: Option<&Access>,
    timeout: Duration,
    progress: &Progress,
) -> Result<String, FlowError> {
    let clients = clients(apis, access);
    let begin = Instant::now();
    let mut reported = Instant::now();
    loop {
        provider.check_started()?;
        let mut answering = 0;
        let mut last = "no answer yet".to_owned();
        for client in &clients {
            match client.leader().await {
                Ok(view) => {
                    answering += 1;
                    match view.leader {
                        Some(leader) if view.members >= apis.len() => return Ok(leader),
                        Some(leader) => {
                            last = format!(
                                "leader {leader}, {} of {} masters are members",
                                view.members,
                                apis.len()
                            );
                        }
                        None => last = format!("{} answers, no leader yet", client.base()),
                    }
                }
                Err(error) => last = error.to_string(),
            }
        }
        if begin.elapsed() > timeout {
            return Err(FlowError::NoLeader {
                waited: timeout,
                answering,
                masters: apis.len(),
                last,
            });
        }
        if reported.elapsed() > WAIT_REPORT {
            progress.note(format!(
                "still waiting ({:.0?}): {answering} of {} masters answer; {last}",
                begin.elapsed(),
                apis.len()
            ));
            reported = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until `wanted` agents are registered and reachable, as any master reports; fails at
/// once when the provider says a node it started ended.
pub async fn wait_agents(
    provider: &mut dyn Provider,
    apis: &[SocketAddr],
    access: Option<&Access>,
    wanted: usize,
    timeout: Duration,
    progress: &Progress,
) -> Result<(), FlowError> {
    let clients = clients(apis, access);
    let begin = Instant::now();
    let mut reported = Instant::now();
    let mut best = 0;
    loop {
        provider.check_started()?;
        for client in &clients {
            if let Ok(count) = client.agents().await {
                if count.reachable > best {
                    best = count.reachable;
                    progress.note(format!("{best} of {wanted} agents registered"));
                }
                if count.reachable >= wanted {
                    return Ok(());
                }
            }
        }
        if begin.elapsed() > timeout {
            return Err(FlowError::AgentsMissing {
                waited: timeout,
                reachable: best,
                wanted,
            });
        }
        if reported.elapsed() > WAIT_REPORT {
            progress.note(format!(
                "still waiting ({:.0?}): {best} of {wanted} agents registered",
                begin.elapsed()
            ));
            reported = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Registers every repo with the first master that takes it (followers forward to the
/// leader).
async fn register_repos(
    apis: &[SocketAddr],
    access: Option<&Access>,
    repos: &[RepoConfig],
    progress: &Progress,
) -> Result<(), FlowError> {
    if repos.is_empty() {
        progress.note("no gitops repos in the infra file");
    }
    let clients = clients(apis, access);
    for repo in repos {
        let name = repo.effective_name();
        let mut last = None;
        for client in &clients {
            match client.register_repo(repo).await {
                Ok(_) => {
                    progress.note(format!("repo {name}: registered ({})", repo.repo));
                    last = None;
                    break;
                }
                Err(error) => last = Some(error),
            }
        }
        if let Some(source) = last {
            return Err(FlowError::Gitops { repo: name, source });
        }
    }
    Ok(())
}

fn clients(apis: &[SocketAddr], access: Option<&Access>) -> Vec<ClusterApi> {
    apis.iter()
        .filter_map(|api| ClusterApi::new(*api, access).ok())
        .collect()
}

/// What `orch status` shows of a cluster.
#[derive(Debug, Clone)]
pub struct StatusReport {
    /// The state file's content.
    pub state: State,
    /// Each machine as the provider sees it.
    pub machines: Vec<MachineStatus>,
    /// The masters' API addresses.
    pub apis: Vec<SocketAddr>,
    /// The leader with its term and how many masters are members, as the first master
    /// naming one reports it.
    pub leader: Option<(String, u64, usize)>,
    /// Agents registered and reachable, when a master answered.
    pub agents: Option<(usize, usize)>,
    /// The gitops repos, when a master answered: None when it does not serve `/v1/gitops`,
    /// an error text when asking failed.
    pub gitops: Option<Result<Option<Vec<RepoSummary>>, String>>,
    /// Where the cluster serves (the provider's endpoint lines).
    pub endpoints: Vec<String>,
}

/// `orch status`: the state, the provider's view of each machine, the leader, agents and
/// gitops repos.
pub async fn status(
    provider: &mut dyn Provider,
    infra: &Infra,
    dir: &Path,
) -> Result<Option<StatusReport>, FlowError> {
    let Some(state) = super::state_file::load(dir)? else {
        return Ok(None);
    };
    if state.provider != provider.name() {
        return Err(FlowError::OtherProvider {
            path: dir.join(super::state_file::FILE),
            recorded: state.provider,
            wanted: provider.name().to_owned(),
        });
    }
    let machines = provider.status(&state).await?;
    let apis = provider.api_addresses(infra, &state);
    let mut leader = None;
    let mut agents = None;
    let mut gitops = None;
    // A master that just came back may not know the leader or the agents yet: ask on.
    for client in clients(&apis, Access::of_cluster(dir).as_ref()) {
        let Ok(view) = client.leader().await else {
            continue;
        };
        if leader.is_none() {
            leader = view.leader.map(|l| (l, view.term, view.members));
        }
        if agents.is_none() {
            agents = client
                .agents()
                .await
                .ok()
                .map(|a| (a.registered, a.reachable));
        }
        if gitops.is_none() {
            gitops = Some(client.gitops().await.map_err(|e| e.to_string()));
        }
        if leader.is_some() && agents.is_some() {
            break;
        }
    }
    let endpoints = provider.endpoints(infra, &state);
    Ok(Some(StatusReport {
        state,
        machines,
        apis,
        leader,
        agents,
        gitops,
        endpoints,
    }))
}

/// `orch destroy`: the provider removes what the state and its marks say is ours, then the
/// state file goes. Returns a line per thing removed.
pub async fn destroy(
    provider: &mut dyn Provider,
    dir: &Path,
    progress: &Progress,
) -> Result<Vec<String>, FlowError> {
    let state = match super::state_file::load(dir) {
        Ok(state) => state,
        Err(error) => {
            progress.note(format!(
                "warning: {error}; removing what the {} provider marks as the cluster's",
                provider.name()
            ));
            None
        }
    };
    if let Some(state) = state.as_ref().filter(|s| s.provider != provider.name()) {
        return Err(FlowError::OtherProvider {
            path: dir.join(super::state_file::FILE),
            recorded: state.provider.clone(),
            wanted: provider.name().to_owned(),
        });
    }
    let removed = provider.destroy(state.as_ref(), progress).await?;
    match std::fs::remove_file(dir.join(super::state_file::FILE)) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(FlowError::State(StateError::Io {
                path: dir.join(super::state_file::FILE),
                source,
            }))
        }
    }
    Ok(removed)
}

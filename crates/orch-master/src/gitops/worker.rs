//! One watched repo's worker, on the leader. It fetches on its poll interval, on a file
//! watch (local repos), on webhooks and on request; syncs a new commit as one group update;
//! checks drift and health twice a second (self-heal, auto-rollback); and serves rollback
//! and resume. It is the only writer of its repo's syncs, so requests reach it through its
//! channel.
//!
//! May depend on: model, state, master, gitops (source, parse, render, plan).

use super::parse::{self, Desired};
use super::plan::{self, Health};
use super::render::TemplateContext;
use super::source::Source;
use crate::master::{Caller, Master};
use orch_core::errors::chain;
use orch_core::model::{
    AppId, DeploymentId, GroupId, RepoConfig, RepoRecord, SyncRecord, SyncResult, Timestamp,
};
use orch_core::state::{Applied, ClusterState, Command, Rejection, RepoChange};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::{mpsc, oneshot};

/// How often a worker checks drift, health and the rollback deadline.
const CHECK: Duration = Duration::from_millis(500);

/// How long health must hold before a commit counts as healthy.
const HEALTHY_FOR: Duration = Duration::from_secs(2);

/// What the leader's reconciler knows beyond the replicated record.
#[derive(Clone, Debug, Default)]
pub struct Live {
    /// The branch followed.
    pub branch: Option<String>,
    /// The newest commit fetched, and when.
    pub fetched: Option<(String, Timestamp)>,
    /// Why the last fetch or sync failed (file and line for invalid files).
    pub error: Option<String>,
    /// A sync is being written.
    pub syncing: bool,
    /// Apps whose definition in the cluster differs from the applied commit.
    pub drift: Vec<String>,
    /// Health of each app the applied commit defines.
    pub apps: BTreeMap<String, Health>,
    /// Drift and health have been computed since the worker started.
    pub observed: bool,
}

/// What the API asks of a worker; each request is answered on its channel.
pub(super) enum Request {
    Sync(oneshot::Sender<()>),
    Rollback(Option<String>, oneshot::Sender<Result<(), String>>),
    Resume(oneshot::Sender<()>),
}

/// One repo's worker.
pub(super) struct Run {
    pub(super) master: Arc<Master>,
    pub(super) name: String,
    pub(super) config: RepoConfig,
    pub(super) group: GroupId,
    pub(super) source: Arc<Source>,
    pub(super) live: Arc<Mutex<Live>>,
    /// The parsed definitions of the last commit loaded.
    pub(super) cached: Option<(String, Arc<Desired>)>,
    /// A commit synced but not yet healthy, since when.
    pub(super) pending: Option<(String, Instant)>,
    /// When self-heal last re-applied.
    pub(super) last_heal: Option<Instant>,
    /// Since when the applied commit has been healthy without a break.
    pub(super) healthy_since: Option<(String, Instant)>,
    /// The last drift and health seen, and the state index they were computed at.
    pub(super) seen: Option<(u64, Vec<AppId>, Health)>,
}

/// What `observe` saw.
struct Observed {
    record: Arc<RepoRecord>,
    applied: String,
    drift: Vec<AppId>,
    overall: Health,
}

impl Run {
    pub(super) async fn run(
        mut self,
        mut inbox: mpsc::Receiver<Request>,
        mut woken: mpsc::Receiver<()>,
        wake: mpsc::Sender<()>,
    ) {
        let interval = humantime::parse_duration(&self.config.interval)
            .unwrap_or(Duration::from_secs(30))
            .max(Duration::from_millis(100));
        let mut poll = tokio::time::interval(interval);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut check = tokio::time::interval(CHECK);
        check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // A file watch on a local repo: a commit is seen without waiting for the poll.
        let _watcher = self.watch(wake);
        tracing::info!(
            gitops.repo = %self.name,
            repo = %orch_core::model::redact_url(&self.config.repo),
            "reconciling"
        );
        loop {
            tokio::select! {
                request = inbox.recv() => match request {
                    Some(request) => self.serve(request).await,
                    None => return,
                },
                Some(()) = woken.recv() => self.fetch_and_sync(false).await,
                _ = poll.tick() => self.fetch_and_sync(false).await,
                _ = check.tick() => self.check().await,
            }
        }
    }

    fn watch(&self, wake: mpsc::Sender<()>) -> Option<notify::RecommendedWatcher> {
        use notify::Watcher;
        let paths = self.source.watch_paths()?;
        let handler = move |event: notify::Result<notify::Event>| {
            if event.is_ok_and(|event| !event.kind.is_access()) {
                let _ = wake.try_send(());
            }
        };
        let mut watcher = match notify::recommended_watcher(handler) {
            Ok(watcher) => watcher,
            Err(error) => {
                tracing::warn!(
                    gitops.repo = %self.name,
                    error = &error as &dyn std::error::Error,
                    "no file watch; polling only"
                );
                return None;
            }
        };
        for (path, recursive) in paths {
            let mode = if recursive {
                notify::RecursiveMode::Recursive
            } else {
                notify::RecursiveMode::NonRecursive
            };
            if let Err(error) = watcher.watch(&path, mode) {
                tracing::warn!(
                    gitops.repo = %self.name,
                    path = %path.display(),
                    error = &error as &dyn std::error::Error,
                    "cannot watch"
                );
            }
        }
        Some(watcher)
    }

    fn live(&self) -> std::sync::MutexGuard<'_, Live> {
        self.live
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn record(&self) -> Option<Arc<RepoRecord>> {
        self.master.state().repos.get(&self.name).cloned()
    }

    async fn serve(&mut self, request: Request) {
        match request {
            Request::Sync(reply) => {
                self.fetch_and_sync(true).await;
                let _ = reply.send(());
            }
            Request::Rollback(to, reply) => {
                let result = self.rollback(to).await;
                let _ = reply.send(result);
            }
            Request::Resume(reply) => {
                let resume = RepoChange {
                    paused: Some(false),
                    ..RepoChange::default()
                };
                self.record_change(resume).await;
                self.fetch_and_sync(false).await;
                let _ = reply.send(());
            }
        }
    }

    /// Fetches the branch tip and syncs it when it is new. `manual` syncs it even while
    /// paused or after it failed.
    async fn fetch_and_sync(&mut self, manual: bool) {
        let source = Arc::clone(&self.source);
        let fetched = match tokio::task::spawn_blocking(move || source.fetch()).await {
            Ok(Ok(fetched)) => fetched,
            Ok(Err(error)) => {
                self.live().error = Some(chain(&error));
                return;
            }
            Err(error) => {
                self.live().error = Some(error.to_string());
                return;
            }
        };
        {
            let mut live = self.live();
            live.branch = Some(fetched.branch.clone());
            live.fetched = Some((fetched.commit.clone(), now()));
        }
        let Some(record) = self.record() else { return };
        let commit = fetched.commit;
        let new = record.last_applied.as_ref() != Some(&commit);
        if manual || new && !record.paused && !record.failed.contains(&commit) {
            let _ = self.sync(&commit, SyncResult::Applied, String::new()).await;
        }
    }

    /// Writes `commit`'s definitions (when they differ from the cluster) and records it.
    async fn sync(
        &mut self,
        commit: &str,
        result: SyncResult,
        message: String,
    ) -> Result<(), String> {
        let desired = match self.load(commit).await {
            Ok(desired) => desired,
            Err(error) => {
                // Recorded in the history before the status shows the error.
                if self.live().error.as_ref() != Some(&error) {
                    tracing::warn!(gitops.repo = %self.name, commit, %error, "commit not applied");
                    self.record_change(RepoChange {
                        sync: Some(sync_record(commit, None, SyncResult::Error, error.clone())),
                        ..RepoChange::default()
                    })
                    .await;
                }
                self.live().error = Some(error.clone());
                return Err(error);
            }
        };
        self.live().syncing = true;
        let outcome = self.write(commit, &desired, result, message).await;
        let mut live = self.live();
        live.syncing = false;
        live.error = outcome.as_ref().err().cloned();
        outcome
    }

    async fn write(
        &mut self,
        commit: &str,
        desired: &Desired,
        result: SyncResult,
        message: String,
    ) -> Result<(), String> {
        // Planned from one state, written only if no app or group changed since: an app
        // POSTed meanwhile is planned with, never overwritten.
        for _ in 0..MAX_PLANS {
            match self.plan_and_write(commit, desired, result, &message).await {
                Err(Conflict) => {
                    tracing::debug!(gitops.repo = %self.name, commit, "apps changed while planning: planning again");
                }
                Ok(outcome) => return outcome,
            }
        }
        Err(format!(
            "commit {} not applied: apps kept changing while it was planned ({MAX_PLANS} tries); it is tried again",
            short(commit)
        ))
    }

    /// One plan from the newest state and its compare-and-set write.
    async fn plan_and_write(
        &mut self,
        commit: &str,
        desired: &Desired,
        result: SyncResult,
        message: &str,
    ) -> Result<Result<(), String>, Conflict> {
        let message = message.to_owned();
        let state = self.master.state();
        let version = now();
        let planned = plan::plan(
            &state,
            desired,
            &self.group,
            &self.name,
            commit,
            self.config.prune,
            version,
        );
        let already = state
            .repos
            .get(&self.name)
            .and_then(|record| record.last_applied.clone());
        if planned.drift.is_empty() {
            if already.as_deref() != Some(commit) {
                self.record_change(RepoChange {
                    sync: Some(sync_record(commit, None, result, message)),
                    applied: Some(commit.to_owned()),
                    ..RepoChange::default()
                })
                .await;
            }
            return Ok(Ok(()));
        }
        let command = Command::IfDefinitionsAt {
            index: state.definitions_index,
            command: Box::new(Command::UpdateGroup {
                update: planned.update,
                version,
                create: false,
                deployment_id: DeploymentId(uuid::Uuid::new_v4().to_string()),
                force: true,
            }),
        };
        let written = match self.acting(&state) {
            Ok(None) => self.master.write(command).await,
            Ok(Some(caller)) => caller.scope(self.master.write(command)).await,
            Err(revoked) => {
                self.record_change(RepoChange {
                    sync: Some(sync_record(
                        commit,
                        None,
                        SyncResult::Error,
                        revoked.clone(),
                    )),
                    ..RepoChange::default()
                })
                .await;
                return Ok(Err(revoked));
            }
        };
        Ok(match written {
            Ok(Applied::Rejected(Rejection::DefinitionsChanged { .. })) => return Err(Conflict),
            Ok(Applied::GroupChanged { deployment_id, .. }) => {
                tracing::info!(
                    gitops.repo = %self.name,
                    commit,
                    deployment.id = %deployment_id,
                    apps = planned.drift.len(),
                    "synced"
                );
                self.pending = Some((commit.to_owned(), Instant::now()));
                self.record_change(RepoChange {
                    sync: Some(sync_record(commit, Some(deployment_id), result, message)),
                    applied: Some(commit.to_owned()),
                    ..RepoChange::default()
                })
                .await;
                self.observe().await;
                Ok(())
            }
            Ok(other) => {
                let error = format!(
                    "the cluster refused commit {}: {}",
                    short(commit),
                    describe(&other)
                );
                self.record_change(RepoChange {
                    sync: Some(sync_record(commit, None, SyncResult::Error, error.clone())),
                    ..RepoChange::default()
                })
                .await;
                Err(error)
            }
            Err(error) => Err(chain(&error)),
        })
    }

    /// The desired state at `commit`: files read, rendered and parsed (cached per commit).
    async fn load(&mut self, commit: &str) -> Result<Arc<Desired>, String> {
        if let Some((cached, desired)) = &self.cached {
            if cached == commit {
                return Ok(Arc::clone(desired));
            }
        }
        let source = Arc::clone(&self.source);
        let at = commit.to_owned();
        let files = tokio::task::spawn_blocking(move || source.files_at(&at))
            .await
            .map_err(|error| error.to_string())?
            .map_err(|error| chain(&error))?;
        let branch = self.live().branch.clone().unwrap_or_default();
        let context = TemplateContext {
            sha: commit,
            branch: &branch,
            vars: &self.config.vars,
        };
        let desired = parse::parse(&files, &self.group, &context)
            .map_err(|error| format!("commit {}: {error}", short(commit)))?;
        let desired = Arc::new(desired);
        self.cached = Some((commit.to_owned(), Arc::clone(&desired)));
        Ok(desired)
    }

    /// Compares the cluster with the applied commit: drift and health into `live`.
    async fn observe(&mut self) -> Option<Observed> {
        let record = self.record()?;
        let applied = record.last_applied.clone()?;
        let desired = self.load(&applied).await.ok()?;
        let state = self.master.state();
        // Drift and health are functions of the state: unchanged state, unchanged answer.
        if let Some((index, drift, overall)) = &self.seen {
            if *index == state.applied_index {
                return Some(Observed {
                    record,
                    applied,
                    drift: drift.clone(),
                    overall: *overall,
                });
            }
        }
        let planned = plan::plan(
            &state,
            &desired,
            &self.group,
            &self.name,
            &applied,
            self.config.prune,
            now(),
        );
        let health: BTreeMap<String, Health> = desired
            .apps
            .keys()
            .map(|id| (id.to_string(), plan::app_health(&state, id)))
            .collect();
        let overall = health.values().copied().max().unwrap_or(Health::Healthy);
        {
            let mut live = self.live();
            live.drift = planned.drift.iter().map(ToString::to_string).collect();
            live.apps = health;
            live.observed = true;
        }
        self.seen = Some((state.applied_index, planned.drift.clone(), overall));
        Some(Observed {
            record,
            applied,
            drift: planned.drift,
            overall,
        })
    }

    /// Drift, health, self-heal and the rollback deadline.
    async fn check(&mut self) {
        let Some(Observed {
            record,
            applied,
            drift,
            overall,
        }) = self.observe().await
        else {
            return;
        };
        if !drift.is_empty() && self.config.self_heal && !record.paused {
            let recently = self
                .last_heal
                .is_some_and(|at| at.elapsed() < Duration::from_secs(1));
            if !recently {
                self.last_heal = Some(Instant::now());
                tracing::info!(gitops.repo = %self.name, drift = ?drift, "self-heal: reverting manual changes");
                let _ = self
                    .sync(&applied, SyncResult::Applied, "self-heal".into())
                    .await;
            }
            return;
        }
        let healthy = overall == Health::Healthy && drift.is_empty();
        let since = match (&self.healthy_since, healthy) {
            (Some((commit, since)), true) if *commit == applied => Some(*since),
            (_, true) => Some(Instant::now()),
            (_, false) => None,
        };
        self.healthy_since = since.map(|since| (applied.clone(), since));
        // A crash-looping task is RUNNING now and then: health must hold for a while.
        if since.is_some_and(|since| since.elapsed() >= HEALTHY_FOR) {
            self.pending = None;
            if record.last_healthy.as_ref() != Some(&applied) {
                self.record_change(RepoChange {
                    healthy: Some(applied),
                    ..RepoChange::default()
                })
                .await;
            }
            return;
        }
        let deadline = humantime::parse_duration(&self.config.rollback_deadline)
            .unwrap_or(Duration::from_secs(600));
        let overdue = self
            .pending
            .as_ref()
            .is_some_and(|(commit, since)| *commit == applied && since.elapsed() > deadline);
        if self.config.auto_rollback && overdue {
            self.pending = None;
            self.auto_rollback(&record, &applied, deadline).await;
        }
    }

    async fn auto_rollback(&mut self, record: &RepoRecord, failed: &str, deadline: Duration) {
        let message = format!(
            "not healthy within {}",
            humantime::format_duration(deadline)
        );
        tracing::warn!(gitops.repo = %self.name, commit = failed, %message, "auto-rollback");
        self.record_change(RepoChange {
            sync: Some(sync_record(failed, None, SyncResult::Failed, message)),
            failed: Some(failed.to_owned()),
            ..RepoChange::default()
        })
        .await;
        if let Some(good) = record.last_healthy.clone().filter(|good| good != failed) {
            let remark = format!("auto-rollback from {}", short(failed));
            let _ = self.sync(&good, SyncResult::RolledBack, remark).await;
        }
    }

    /// Deploys `to` (default: the commit applied before the current one) and pauses.
    async fn rollback(&mut self, to: Option<String>) -> Result<(), String> {
        let record = self.record().ok_or("the repo is no longer watched")?;
        let target = match to {
            Some(spec) => {
                let source = Arc::clone(&self.source);
                tokio::task::spawn_blocking(move || source.resolve(&spec))
                    .await
                    .map_err(|error| error.to_string())?
                    .map_err(|error| chain(&error))?
            }
            None => record
                .history
                .iter()
                .rev()
                .filter(|sync| matches!(sync.result, SyncResult::Applied | SyncResult::RolledBack))
                .map(|sync| sync.commit.clone())
                .find(|commit| record.last_applied.as_ref() != Some(commit))
                .ok_or("no earlier applied commit to roll back to")?,
        };
        let remark = match &record.last_applied {
            Some(from) => format!("rollback from {}", short(from)),
            None => "rollback".to_owned(),
        };
        self.sync(&target, SyncResult::RolledBack, remark).await?;
        self.record_change(RepoChange {
            paused: Some(true),
            ..RepoChange::default()
        })
        .await;
        Ok(())
    }

    /// Who the repo's writes act for: its ACL token's grants as they are now (`None`: the
    /// cluster's own rights); an error when its token was revoked.
    fn acting(&self, state: &ClusterState) -> Result<Option<Caller>, String> {
        let Some(id) = &self.config.acl_token else {
            return Ok(None);
        };
        let token = state
            .acl_tokens
            .get(id)
            .ok_or_else(|| format!("the repo's ACL token {id} was revoked: nothing is applied"))?;
        Ok(Some(Caller::Token(Arc::new(state.grants_of(token)))))
    }

    async fn record_change(&self, change: RepoChange) {
        let command = Command::RecordRepo {
            name: self.name.clone(),
            change,
        };
        if let Err(error) = self.master.write(command).await {
            tracing::warn!(
                gitops.repo = %self.name,
                error = &error as &dyn std::error::Error,
                "cannot record the repo's status"
            );
        }
    }
}

fn sync_record(
    commit: &str,
    deployment_id: Option<DeploymentId>,
    result: SyncResult,
    message: String,
) -> SyncRecord {
    SyncRecord {
        commit: commit.to_owned(),
        at: now(),
        deployment_id,
        result,
        message,
    }
}

fn now() -> Timestamp {
    Timestamp::from_system_time(SystemTime::now())
}

/// The first seven digits of a commit id.
fn short(commit: &str) -> &str {
    commit.get(..7).unwrap_or(commit)
}

/// How often one sync plans again when apps changed under it before it gives up (until the
/// next poll, webhook or retry).
const MAX_PLANS: usize = 8;

/// Apps or groups changed between a plan and its write.
struct Conflict;

/// A refused write, in words.
fn describe(applied: &Applied) -> String {
    use orch_core::model::AppError;
    match applied {
        Applied::Rejected(Rejection::InvalidApp(AppError::Invalid { violations })) => violations
            .iter()
            .map(|v| format!("{}: {}", v.path, v.errors.join(", ")))
            .collect::<Vec<_>>()
            .join("; "),
        Applied::Rejected(Rejection::IdConflict { id }) => {
            format!("{id} is both an app and a group")
        }
        Applied::Rejected(Rejection::CyclicDependencies) => {
            "the dependencies form a cycle".to_owned()
        }
        Applied::Rejected(Rejection::Forbidden { token, path, lacks }) => {
            format!("the repo's token '{token}' may not change {path}: it lacks {lacks}")
        }
        Applied::Rejected(rejection) => format!("{rejection:?}"),
        other => format!("{other:?}"),
    }
}

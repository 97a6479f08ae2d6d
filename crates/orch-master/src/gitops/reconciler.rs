//! The reconcilers' supervisor: while this master leads, one worker per watched repo
//! (started when a repo is added, restarted when its config changes, stopped when it is
//! removed or leadership is lost), and the [`Gitops`] handle the API uses to reach them.
//!
//! May depend on: model, state, master, gitops (worker, source).

use super::source::Source;
use super::worker::{Live, Request, Run};
use crate::master::Master;
use orch_core::model::{GroupId, RepoConfig, RepoRecord};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// How often the supervisor looks for added, changed or removed repos without a state change.
const SUPERVISE: Duration = Duration::from_secs(1);

/// Why a gitops request failed.
#[derive(Debug, thiserror::Error)]
pub enum GitopsError {
    /// No watched repo has this name (or none is watched and none was named).
    #[error("no watched repo {0}")]
    UnknownRepo(String),
    /// Several repos are watched; the request must name one.
    #[error("several repos are watched; name one of {0}")]
    Ambiguous(String),
    /// This master does not lead (its reconcilers do not run).
    #[error("this master does not lead")]
    NotLeader,
    /// The worker did not answer in time.
    #[error("the repo's reconciler did not answer in time")]
    Timeout,
    /// The request could not be carried out.
    #[error("{0}")]
    Failed(String),
}

struct Worker {
    config: RepoConfig,
    requests: mpsc::Sender<Request>,
    wake: mpsc::Sender<()>,
    live: Arc<Mutex<Live>>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("config", &self.config)
            .finish()
    }
}

/// The reconcilers of one master (running only while it leads).
#[derive(Debug)]
pub struct Gitops {
    master: Arc<Master>,
    cache_dir: PathBuf,
    default_secret: Option<String>,
    workers: Mutex<BTreeMap<String, Worker>>,
}

impl Gitops {
    /// Starts the supervisor: it runs a worker per watched repo while `master` leads.
    /// Remote repos are cached under `cache_dir`; `default_secret` authenticates webhooks
    /// for repos without their own secret.
    pub fn start(
        master: Arc<Master>,
        cache_dir: PathBuf,
        default_secret: Option<String>,
    ) -> Arc<Self> {
        let gitops = Arc::new(Self {
            master,
            cache_dir,
            default_secret,
            workers: Mutex::new(BTreeMap::new()),
        });
        tokio::spawn(supervise(Arc::clone(&gitops)));
        gitops
    }

    /// The master it runs on.
    pub fn master(&self) -> &Arc<Master> {
        &self.master
    }

    /// The webhook secret of a repo: its own, else the master's.
    pub fn secret_of(&self, config: &RepoConfig) -> Option<String> {
        config
            .webhook_secret
            .clone()
            .or_else(|| self.default_secret.clone())
    }

    fn workers(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Worker>> {
        self.workers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// What the leader's worker knows of repo `name` (empty before its first fetch).
    pub fn live(&self, name: &str) -> Live {
        self.workers()
            .get(name)
            .map(|worker| {
                worker
                    .live
                    .lock()
                    .map(|live| live.clone())
                    .unwrap_or_default()
            })
            .unwrap_or_default()
    }

    /// Asks repo `name`'s worker to fetch now (a webhook); false if it has none.
    pub fn wake(&self, name: &str) -> bool {
        self.workers().get(name).is_some_and(|worker| {
            !matches!(
                worker.wake.try_send(()),
                Err(mpsc::error::TrySendError::Closed(_))
            )
        })
    }

    /// The repo a request names, or the only one.
    pub fn resolve(&self, name: Option<&str>) -> Result<String, GitopsError> {
        let state = self.master.state();
        match name {
            Some(name) if state.repos.contains_key(name) => Ok(name.to_owned()),
            Some(name) => Err(GitopsError::UnknownRepo(name.to_owned())),
            None => {
                let names: Vec<String> = state.repos.keys().cloned().collect();
                match names.as_slice() {
                    [only] => Ok(only.clone()),
                    [] => Err(GitopsError::UnknownRepo(String::new())),
                    _ => Err(GitopsError::Ambiguous(names.join(", "))),
                }
            }
        }
    }

    async fn ask<T>(
        &self,
        name: &str,
        request: impl FnOnce(oneshot::Sender<T>) -> Request,
    ) -> Result<T, GitopsError> {
        let sender = self.sender(name).await?;
        let (reply, answer) = oneshot::channel();
        sender
            .send(request(reply))
            .await
            .map_err(|_| GitopsError::NotLeader)?;
        tokio::time::timeout(Duration::from_secs(60), answer)
            .await
            .map_err(|_| GitopsError::Timeout)?
            .map_err(|_| GitopsError::NotLeader)
    }

    /// The worker's channel, waiting briefly for a just-added repo's worker to start.
    async fn sender(&self, name: &str) -> Result<mpsc::Sender<Request>, GitopsError> {
        for _ in 0..60 {
            if let Some(worker) = self.workers().get(name) {
                return Ok(worker.requests.clone());
            }
            if !self.master.is_leader() {
                return Err(GitopsError::NotLeader);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(GitopsError::NotLeader)
    }

    /// Fetches repo `name` now and syncs its tip (also while paused); returns when done.
    pub async fn sync(&self, name: &str) -> Result<(), GitopsError> {
        self.ask(name, Request::Sync).await
    }

    /// Deploys commit `to` (default: the one applied before the current one) and pauses
    /// auto-sync.
    pub async fn rollback(&self, name: &str, to: Option<String>) -> Result<(), GitopsError> {
        self.ask(name, |reply| Request::Rollback(to, reply))
            .await?
            .map_err(GitopsError::Failed)
    }

    /// Resumes auto-sync after a rollback, and syncs the branch tip.
    pub async fn resume(&self, name: &str) -> Result<(), GitopsError> {
        self.ask(name, Request::Resume).await
    }
}

/// Keeps one worker per watched repo while this master leads; none otherwise.
async fn supervise(gitops: Arc<Gitops>) {
    let mut states = gitops.master.watch_state();
    let mut tick = tokio::time::interval(SUPERVISE);
    loop {
        tokio::select! {
            changed = states.changed() => if changed.is_err() { return },
            _ = tick.tick() => {}
        }
        let leading = gitops.master.is_leader();
        let state = gitops.master.state();
        let mut workers = gitops.workers();
        workers.retain(|name, worker| {
            let keep = leading
                && !worker.task.is_finished()
                && state
                    .repos
                    .get(name)
                    .is_some_and(|record| record.config == worker.config);
            if !keep {
                worker.task.abort();
            }
            keep
        });
        if !leading {
            continue;
        }
        for (name, record) in state.repos.iter() {
            if !workers.contains_key(name) {
                let worker = spawn_worker(&gitops, name, record);
                workers.insert(name.clone(), worker);
            }
        }
    }
}

fn spawn_worker(gitops: &Arc<Gitops>, name: &str, record: &RepoRecord) -> Worker {
    let (requests, inbox) = mpsc::channel(8);
    let (wake, woken) = mpsc::channel(1);
    let live = Arc::new(Mutex::new(Live::default()));
    let run = Run {
        master: Arc::clone(&gitops.master),
        name: name.to_owned(),
        config: record.config.clone(),
        group: GroupId::parse(&record.config.group).unwrap_or_else(|_| GroupId::root()),
        source: Arc::new(Source::new(record.config.clone(), &gitops.cache_dir)),
        live: Arc::clone(&live),
        cached: None,
        pending: record
            .last_applied
            .clone()
            .filter(|applied| record.last_healthy.as_ref() != Some(applied))
            .map(|applied| (applied, Instant::now())),
        last_heal: None,
        healthy_since: None,
        seen: None,
    };
    let task = tokio::spawn(run.run(inbox, woken, wake.clone()));
    Worker {
        config: record.config.clone(),
        requests,
        wake,
        live,
        task,
    }
}

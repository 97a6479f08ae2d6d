//! The leader's control loop: agent liveness, then reconciling every app's tasks with its
//! definition. Level-triggered: it runs on every state change and on a short tick, reads the
//! newest snapshot, and writes what is missing; running it twice changes nothing.

use super::agents::now;
use super::{reconcile, Master};
use orch_core::state::Command;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// The loop's tick: liveness checks and launch-delay expiries are noticed this often.
const TICK: Duration = Duration::from_millis(200);

/// The least pause between two passes. Under a stream of changes (thousands of status
/// updates) passes are spaced by at least twice the last pass's duration, so the loop takes
/// at most a third of a core and heartbeats, long polls and writes keep being served.
const MIN_GAP: Duration = Duration::from_millis(2);

/// Runs until the process ends; does work only while this master leads.
pub(super) async fn run(master: Arc<Master>) {
    let mut states = master.states.clone();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut led_since: Option<(u64, Instant)> = None;
    loop {
        tokio::select! {
            changed = states.changed() => if changed.is_err() { return },
            _ = tick.tick() => {}
        }
        if !master.is_leader() {
            led_since = None;
            continue;
        }
        let term = master.current_term();
        let since = match led_since {
            Some((led_term, since)) if led_term == term => since,
            _ => {
                tracing::info!(raft.term = term, "leading: taking over agents and tasks");
                *master.scheduler() = reconcile::Scheduler::default();
                let since = Instant::now();
                led_since = Some((term, since));
                since
            }
        };
        let started = Instant::now();
        if let Err(error) = pass(&master, since).await {
            tracing::warn!(
                error = &error as &dyn std::error::Error,
                "control pass failed; retrying"
            );
            tokio::time::sleep(TICK).await;
        }
        tokio::time::sleep((started.elapsed() * 2).max(MIN_GAP)).await;
    }
}

async fn pass(master: &Master, led_since: Instant) -> Result<(), super::WriteError> {
    master.note_seen_masters().await?;
    let state = master.state();
    let reachable = state
        .agents
        .values()
        .filter(|agent| agent.is_reachable())
        .map(|agent| &agent.info.id);
    let silent = master
        .agent_contacts
        .silent(reachable, led_since, master.agent_timeout);
    if !silent.is_empty() {
        tracing::warn!(agents = ?silent, "agents stopped sending heartbeats: unreachable");
        master
            .write(Command::AgentsUnreachable {
                agents: silent,
                at: now(),
            })
            .await?;
    }
    let state = master.state();
    master.readiness.probe(&state, &master.states);
    let ready = |app: &orch_core::model::App, task: &orch_core::model::Task| {
        master.readiness.ready(app, task)
    };
    let commands = master.scheduler().decide(&state, now(), &ready);
    for command in commands {
        master.write(command).await?;
    }
    let state = master.state();
    for deployment in state.deployments.values() {
        let done = deployment.current_actions().iter().all(|action| {
            state.action_done(action)
                && state.apps.get(&action.app).is_none_or(|app| {
                    state
                        .app_tasks(&app.id)
                        .all(|task| master.readiness.ready(app, task))
                })
        });
        if done {
            tracing::info!(deployment.id = %deployment.id, step = deployment.current_step + 1, "deployment step done");
            master
                .write(Command::DeploymentStepDone {
                    id: deployment.id.clone(),
                    step: deployment.current_step,
                    at: now(),
                })
                .await?;
        }
    }
    Ok(())
}

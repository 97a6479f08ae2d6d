//! The loops that keep an agent in step with the leader: heartbeats, the desired-set long
//! poll and the status sender. Each waits for a registration, and reports failures to the
//! [`LeaderClient`](super::leader::LeaderClient) so the agent registers again.
//!
//! Repeated failures back off ([`Backoff`]): failed requests from 100 ms to 5 s; refused
//! desired sets (older than the agent's generation, e.g. from a deposed leader) and failed
//! status journal writes from 100 ms to 10 s, logged at most every 10 s. A refusal backoff
//! ends early when the session does (a new leader is polled at once).

use super::backoff::{Backoff, LogLimit};
use super::leader::REQUEST_TIMEOUT;
use super::runtime::Agent;
use orch_core::protocol::{DesiredSet, Heartbeat, StatusAck, StatusBatch};
use std::sync::Arc;
use std::time::Duration;

/// How long the master may hold a desired-set poll.
pub const POLL_WAIT_MS: u64 = 20_000;
/// Most updates sent in one batch.
const MAX_BATCH: usize = 256;
/// Backoff after a failed request.
const REQUEST_BACKOFF: Backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
/// Backoff after a refused desired set or a failed journal write.
const REFUSAL_BACKOFF: Backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(10));
/// How often a repeated warning is logged.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// Runs registration, heartbeats, desired-set sync, status sending and the sandbox GC until
/// dropped.
pub async fn run(agent: Arc<Agent>) {
    tokio::join!(
        agent.leader().run(),
        heartbeats(&agent),
        desired_sets(&agent),
        statuses(&agent),
        agent.collect_garbage_forever(),
    );
}

async fn heartbeats(agent: &Arc<Agent>) {
    loop {
        let session = agent.leader().session().await;
        let heartbeat = Heartbeat {
            agent_id: agent.id().clone(),
            running: agent.live_tasks(),
        };
        let request = agent
            .leader()
            .http()
            .post(session.url("/internal/agent/heartbeat"))
            .timeout(REQUEST_TIMEOUT)
            .json(&heartbeat);
        if let Err(error) = agent.leader().send(&session, request).await {
            tracing::debug!(error = &error as &dyn std::error::Error, "heartbeat failed");
        }
        tokio::time::sleep(session.heartbeat_interval).await;
    }
}

async fn desired_sets(agent: &Arc<Agent>) {
    let mut backoff = REQUEST_BACKOFF;
    let mut refusals = REFUSAL_BACKOFF;
    let mut refused_log = LogLimit::new(WARN_EVERY);
    loop {
        let session = agent.leader().session().await;
        let url = session.url(&format!(
            "/internal/agent/{}/desired?after={}&wait_ms={POLL_WAIT_MS}",
            agent.id(),
            agent.generation()
        ));
        let request = agent
            .leader()
            .http()
            .get(url)
            .timeout(Duration::from_millis(POLL_WAIT_MS) + REQUEST_TIMEOUT);
        let outcome = match agent.leader().send(&session, request).await {
            Ok(response) if response.status() == reqwest::StatusCode::NO_CONTENT => Ok(None),
            Ok(response) => match response.json::<DesiredSet>().await {
                Ok(set) => {
                    let generation = set.generation;
                    Ok(Some((generation, agent.apply_desired(set))))
                }
                Err(error) => Err(error.to_string()),
            },
            Err(error) => Err(error.to_string()),
        };
        match outcome {
            Ok(None) => backoff.succeeded(),
            Ok(Some((_, true))) => {
                backoff.succeeded();
                refusals.succeeded();
                refused_log.reset();
            }
            Ok(Some((generation, false))) => {
                backoff.succeeded();
                let wait = refusals.failed();
                if let Some(held_back) = refused_log.allow() {
                    tracing::warn!(
                        agent.id = %agent.id(),
                        master = %session.master,
                        generation = %generation,
                        highest = %agent.generation(),
                        more_refusals = held_back,
                        ?wait,
                        "refusing the leader's desired set (older than this agent's); \
                         polling again after a backoff"
                    );
                }
                // A new leader (a new session) is polled at once.
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    () = agent.leader().ended(&session) => {}
                }
            }
            Err(error) => {
                tracing::debug!(error, "desired-set poll failed");
                tokio::time::sleep(backoff.failed()).await;
            }
        }
    }
}

async fn statuses(agent: &Arc<Agent>) {
    let mut backoff = REQUEST_BACKOFF;
    let mut journal = REFUSAL_BACKOFF;
    let mut journal_log = LogLimit::new(WARN_EVERY);
    loop {
        // Updates a full disk kept in memory are written, then sent; never the other way.
        if let Err(error) = agent.write_unwritten() {
            let wait = journal.failed();
            if let Some(held_back) = journal_log.allow() {
                tracing::error!(
                    agent.id = %agent.id(),
                    error = &error as &dyn std::error::Error,
                    more_failures = held_back,
                    ?wait,
                    "cannot write the status journal; its updates wait in memory"
                );
            }
            tokio::time::sleep(wait).await;
            continue;
        }
        journal.succeeded();
        journal_log.reset();
        let updates = agent.pending_updates(MAX_BATCH);
        if updates.is_empty() {
            agent.status_appended().await;
            continue;
        }
        let session = agent.leader().session().await;
        let first = updates.first().map_or(0, |u| u.seq);
        let batch = StatusBatch {
            agent_id: agent.id().clone(),
            updates,
        };
        let request = agent
            .leader()
            .http()
            .post(session.url(&format!("/internal/agent/{}/status", agent.id())))
            .timeout(REQUEST_TIMEOUT * 2)
            .json(&batch);
        let outcome = match agent.leader().send(&session, request).await {
            Ok(response) => response
                .json::<StatusAck>()
                .await
                .map_err(|e| e.to_string()),
            Err(error) => Err(error.to_string()),
        };
        match outcome {
            Ok(ack) if ack.through >= first => {
                agent.acknowledge(ack.through);
                backoff.succeeded();
            }
            Ok(ack) => {
                tracing::warn!(
                    through = ack.through,
                    first,
                    "the master acknowledged none of the status updates; retrying"
                );
                tokio::time::sleep(backoff.failed()).await;
            }
            Err(error) => {
                tracing::debug!(error, "sending status updates failed");
                tokio::time::sleep(backoff.failed()).await;
            }
        }
    }
}

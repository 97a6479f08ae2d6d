//! The loops that keep an agent in step with the leader: heartbeats, the desired-set long
//! poll and the status sender. Each waits for a registration, and reports failures to the
//! [`LeaderClient`](super::leader::LeaderClient) so the agent registers again.

use super::leader::REQUEST_TIMEOUT;
use super::runtime::Agent;
use orch_core::protocol::{DesiredSet, Heartbeat, StatusAck, StatusBatch};
use std::sync::Arc;
use std::time::Duration;

/// How long the master may hold a desired-set poll.
pub const POLL_WAIT_MS: u64 = 20_000;
/// Most updates sent in one batch.
const MAX_BATCH: usize = 256;
/// Longest pause after a failed request.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

fn next_backoff(backoff: Duration) -> Duration {
    (backoff * 2).clamp(Duration::from_millis(100), MAX_BACKOFF)
}

/// Runs registration, heartbeats, desired-set sync and status sending until dropped.
pub async fn run(agent: Arc<Agent>) {
    tokio::join!(
        agent.leader().run(),
        heartbeats(&agent),
        desired_sets(&agent),
        statuses(&agent),
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
    let mut backoff = Duration::ZERO;
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
            Ok(response) if response.status() == reqwest::StatusCode::NO_CONTENT => Ok(()),
            Ok(response) => match response.json::<DesiredSet>().await {
                Ok(set) => {
                    agent.apply_desired(set);
                    Ok(())
                }
                Err(error) => Err(error.to_string()),
            },
            Err(error) => Err(error.to_string()),
        };
        match outcome {
            Ok(()) => backoff = Duration::ZERO,
            Err(error) => {
                backoff = next_backoff(backoff);
                tracing::debug!(error, "desired-set poll failed");
                tokio::time::sleep(backoff).await;
            }
        }
    }
}

async fn statuses(agent: &Arc<Agent>) {
    let mut backoff = Duration::ZERO;
    loop {
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
                backoff = Duration::ZERO;
            }
            Ok(ack) => {
                backoff = next_backoff(backoff);
                tracing::warn!(
                    through = ack.through,
                    first,
                    "the master acknowledged none of the status updates; retrying"
                );
                tokio::time::sleep(backoff).await;
            }
            Err(error) => {
                backoff = next_backoff(backoff);
                tracing::debug!(error, "sending status updates failed");
                tokio::time::sleep(backoff).await;
            }
        }
    }
}

//! Timeouts that cost nothing until something waits: [`IdleTimer`] for streams (armed only
//! when a read has to wait, restarted by activity), and [`within`] for one operation, where a
//! zero limit means none (as HAProxy treats an unset timeout).
//!
//! May depend on: std, tokio (time).

use std::future::Future;
use std::pin::Pin;
use std::task::Context;
use std::time::Duration;
use tokio::time::{Instant, Sleep};

/// `future`'s output, or `None` if it took longer than `limit` (zero: no limit).
pub(crate) async fn within<F: Future>(limit: Duration, future: F) -> Option<F::Output> {
    if limit.is_zero() {
        Some(future.await)
    } else {
        tokio::time::timeout(limit, future).await.ok()
    }
}

/// A timer that fires after `timeout` of waiting, restarted by activity.
#[derive(Debug)]
pub(crate) struct IdleTimer {
    /// The allowed silence; zero means none is enforced.
    timeout: Duration,
    /// The timer, created on the first wait and reused.
    sleep: Option<Pin<Box<Sleep>>>,
    /// Whether `sleep` runs for the current wait.
    armed: bool,
}

impl IdleTimer {
    /// A timer allowing `timeout` of silence.
    pub fn new(timeout: Duration) -> Self {
        Self {
            timeout,
            sleep: None,
            armed: false,
        }
    }

    /// Something arrived: the next wait starts a fresh timeout.
    pub fn touch(&mut self) {
        self.armed = false;
    }

    /// Called while waiting: whether the silence has lasted `timeout`.
    pub fn poll_expired(&mut self, cx: &mut Context<'_>) -> bool {
        if self.timeout.is_zero() {
            return false;
        }
        if !self.armed {
            let deadline = Instant::now() + self.timeout;
            match &mut self.sleep {
                Some(sleep) => sleep.as_mut().reset(deadline),
                None => self.sleep = Some(Box::pin(tokio::time::sleep_until(deadline))),
            }
            self.armed = true;
        }
        match &mut self.sleep {
            Some(sleep) => sleep.as_mut().poll(cx).is_ready(),
            None => false,
        }
    }

    /// The timeout in seconds, for errors.
    pub fn seconds(&self) -> f64 {
        self.timeout.as_secs_f64()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn idle_timer_fires_after_silence_and_restarts_on_activity() {
        let mut timer = IdleTimer::new(Duration::from_secs(5));
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        assert!(!timer.poll_expired(&mut cx));
        tokio::time::advance(Duration::from_secs(4)).await;
        assert!(!timer.poll_expired(&mut cx));
        timer.touch();
        tokio::time::advance(Duration::from_secs(4)).await;
        assert!(!timer.poll_expired(&mut cx), "restarted by the activity");
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(!timer.poll_expired(&mut cx), "armed at 8s, fires at 13s");
        tokio::time::advance(Duration::from_secs(4)).await;
        assert!(timer.poll_expired(&mut cx));
    }

    #[tokio::test(start_paused = true)]
    async fn within_zero_means_no_limit() {
        let slow = tokio::time::sleep(Duration::from_secs(100));
        assert_eq!(within(Duration::ZERO, slow).await, Some(()));
        let slow = tokio::time::sleep(Duration::from_secs(100));
        assert_eq!(within(Duration::from_secs(1), slow).await, None);
    }
}

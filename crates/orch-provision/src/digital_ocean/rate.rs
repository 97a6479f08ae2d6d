//! The request budget of one run: at most [`PER_MINUTE`] requests in any 60 seconds,
//! shared by every request the run makes (DigitalOcean's burst limit is 250 per minute per
//! token), and how long to wait after a 429.
//!
//! The window is pure ([`Window::admit`] takes the time); [`Budget`] is its shared, async
//! shell that sleeps until a request may go.
//!
//! May depend on: nothing of the crate.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Requests a run may make in any minute.
pub const PER_MINUTE: usize = 250;

/// A sliding window: the times of the requests made in the last `period`.
#[derive(Debug, Clone)]
pub struct Window {
    limit: usize,
    period: Duration,
    sent: VecDeque<Instant>,
}

impl Window {
    /// At most `limit` requests in any `period`.
    pub fn new(limit: usize, period: Duration) -> Self {
        Self {
            limit: limit.max(1),
            period,
            sent: VecDeque::new(),
        }
    }

    /// Takes a slot at `now` and returns None, or returns how long to wait before asking
    /// again (nothing is taken then).
    pub fn admit(&mut self, now: Instant) -> Option<Duration> {
        while let Some(first) = self.sent.front() {
            if now.saturating_duration_since(*first) >= self.period {
                self.sent.pop_front();
            } else {
                break;
            }
        }
        if self.sent.len() < self.limit {
            self.sent.push_back(now);
            return None;
        }
        let oldest = self.sent.front().copied().unwrap_or(now);
        Some((oldest + self.period).saturating_duration_since(now))
    }
}

/// The run's budget, shared by all its requests.
#[derive(Debug)]
pub struct Budget {
    window: std::sync::Mutex<Window>,
}

impl Budget {
    /// [`PER_MINUTE`] requests per minute.
    pub fn per_minute() -> Self {
        Self::new(Window::new(PER_MINUTE, Duration::from_secs(60)))
    }

    /// A budget with its own window.
    pub fn new(window: Window) -> Self {
        Self {
            window: std::sync::Mutex::new(window),
        }
    }

    /// Waits until a request may go, and takes its slot; returns how long it waited.
    pub async fn take(&self) -> Duration {
        // tokio's clock, so that a paused test clock moves it.
        let now = || tokio::time::Instant::now().into_std();
        let begin = tokio::time::Instant::now();
        loop {
            let wait = match self.window.lock() {
                Ok(mut window) => window.admit(now()),
                Err(poisoned) => poisoned.into_inner().admit(now()),
            };
            match wait {
                None => return begin.elapsed(),
                Some(wait) => tokio::time::sleep(wait.max(Duration::from_millis(1))).await,
            }
        }
    }
}

/// How long to wait after a 429: `retry-after` seconds when given, else until
/// `ratelimit-reset` (epoch seconds), else `fallback`; never more than `cap`.
pub fn after_429(
    retry_after: Option<&str>,
    reset: Option<&str>,
    now_epoch: u64,
    fallback: Duration,
    cap: Duration,
) -> Duration {
    let seconds = |s: &str| s.trim().parse::<u64>().ok();
    let wait = match (retry_after.and_then(seconds), reset.and_then(seconds)) {
        (Some(after), _) => Duration::from_secs(after),
        (None, Some(reset)) => Duration::from_secs(reset.saturating_sub(now_epoch).max(1)),
        (None, None) => fallback,
    };
    wait.min(cap)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_admits_its_limit_then_says_how_long_to_wait() {
        let mut window = Window::new(3, Duration::from_secs(60));
        let t0 = Instant::now();
        for i in 0..3 {
            assert_eq!(window.admit(t0 + Duration::from_secs(i)), None);
        }
        assert_eq!(
            window.admit(t0 + Duration::from_secs(10)),
            Some(Duration::from_secs(50)),
            "the oldest leaves the window at 60s"
        );
        assert_eq!(window.admit(t0 + Duration::from_secs(60)), None);
        assert_eq!(
            window.admit(t0 + Duration::from_secs(60)),
            Some(Duration::from_secs(1))
        );
    }

    #[test]
    fn the_window_never_lets_more_than_the_limit_into_any_minute() {
        let mut window = Window::new(PER_MINUTE, Duration::from_secs(60));
        let t0 = Instant::now();
        let mut admitted = Vec::new();
        // Someone asking every 100 ms for 3 minutes.
        for tick in 0..1800u64 {
            let now = t0 + Duration::from_millis(tick * 100);
            if window.admit(now).is_none() {
                admitted.push(now);
            }
        }
        for (i, start) in admitted.iter().enumerate() {
            let within = admitted[i..]
                .iter()
                .take_while(|t| t.duration_since(*start) < Duration::from_secs(60))
                .count();
            assert!(within <= PER_MINUTE, "{within} requests in a minute");
        }
        assert_eq!(admitted.len(), 3 * PER_MINUTE);
    }

    #[tokio::test(start_paused = true)]
    async fn the_budget_sleeps_until_a_slot_frees() {
        let budget = Budget::new(Window::new(2, Duration::from_secs(10)));
        assert!(budget.take().await < Duration::from_millis(1));
        assert!(budget.take().await < Duration::from_millis(1));
        let waited = budget.take().await;
        assert!(waited >= Duration::from_secs(10), "{waited:?}");
    }

    #[test]
    fn a_429_waits_retry_after_else_until_the_reset() {
        let cap = Duration::from_secs(120);
        let fallback = Duration::from_secs(5);
        assert_eq!(
            after_429(Some("3"), Some("1000"), 990, fallback, cap),
            Duration::from_secs(3)
        );
        assert_eq!(
            after_429(None, Some("1000"), 990, fallback, cap),
            Duration::from_secs(10)
        );
        assert_eq!(
            after_429(None, Some("900"), 990, fallback, cap),
            Duration::from_secs(1)
        );
        assert_eq!(after_429(Some("x"), None, 0, fallback, cap), fallback);
        assert_eq!(after_429(Some("3600"), None, 0, fallback, cap), cap);
    }
}

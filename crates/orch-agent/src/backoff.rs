//! Waiting after repeated failures: [`Backoff`] (exponential, capped, reset on success) and
//! [`LogLimit`] (a repeated warning at most once per period, counting the ones held back).
//!
//! May depend on: the standard library only.

use std::time::{Duration, Instant};

/// Exponential backoff: `min` after the first failure, doubling, at most `max`.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    min: Duration,
    max: Duration,
    current: Duration,
}

impl Backoff {
    pub(crate) const fn new(min: Duration, max: Duration) -> Self {
        Self {
            min,
            max,
            current: Duration::ZERO,
        }
    }

    /// Counts a failure; returns how long to wait before trying again.
    pub(crate) fn failed(&mut self) -> Duration {
        self.current = (self.current * 2).clamp(self.min, self.max);
        self.current
    }

    /// Forgets the failures.
    pub(crate) fn succeeded(&mut self) {
        self.current = Duration::ZERO;
    }
}

/// Lets a repeated log line through at most once per `every`.
#[derive(Debug, Clone)]
pub(crate) struct LogLimit {
    every: Duration,
    last: Option<Instant>,
    held_back: u64,
}

impl LogLimit {
    pub(crate) const fn new(every: Duration) -> Self {
        Self {
            every,
            last: None,
            held_back: 0,
        }
    }

    /// `Some(n)` when the line may be logged now (`n`: how many were held back since the
    /// last one), `None` when it is held back.
    pub(crate) fn allow(&mut self) -> Option<u64> {
        let now = Instant::now();
        if self
            .last
            .is_some_and(|last| now.duration_since(last) < self.every)
        {
            self.held_back += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.held_back))
    }

    /// Starts over: the next line is logged.
    pub(crate) fn reset(&mut self) {
        self.last = None;
        self.held_back = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap_and_resets() {
        let ms = Duration::from_millis;
        let mut backoff = Backoff::new(ms(100), ms(1000));
        let waits: Vec<Duration> = (0..6).map(|_| backoff.failed()).collect();
        assert_eq!(
            waits,
            vec![ms(100), ms(200), ms(400), ms(800), ms(1000), ms(1000)]
        );
        backoff.succeeded();
        assert_eq!(backoff.failed(), ms(100));
    }

    #[test]
    fn a_limited_line_is_logged_once_per_period_with_the_count_held_back() {
        let mut limit = LogLimit::new(Duration::from_secs(3600));
        assert_eq!(limit.allow(), Some(0));
        assert_eq!(limit.allow(), None);
        assert_eq!(limit.allow(), None);
        limit.reset();
        assert_eq!(limit.allow(), Some(0));
        let mut often = LogLimit::new(Duration::ZERO);
        assert_eq!(often.allow(), Some(0));
        assert_eq!(often.allow(), Some(0));
    }
}

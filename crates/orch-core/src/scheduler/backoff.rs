//! Launch backoff after failed tasks (Marathon's `RateLimiter`): a delay per app config
//! version that grows by a factor with each failure, capped, and a deadline before which no
//! new instance launches. All times are milliseconds given by the caller.

use crate::model::Timestamp;

/// An app's `backoffSeconds`, `backoffFactor` and `maxLaunchDelaySeconds`, in milliseconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BackoffConfig {
    /// The first delay.
    pub backoff_ms: u64,
    /// The growth factor per further failure.
    pub factor: f64,
    /// The cap.
    pub max_ms: u64,
}

impl Default for BackoffConfig {
    /// Marathon's defaults: 1 s, x1.15, at most 300 s.
    fn default() -> Self {
        Self {
            backoff_ms: 1_000,
            factor: 1.15,
            max_ms: 300_000,
        }
    }
}

/// The backoff state of one app, keyed by its config version (`lastConfigChangeAt`).
#[derive(Clone, Debug, PartialEq)]
pub struct Backoff {
    config: BackoffConfig,
    version: Timestamp,
    /// `None` = no delay; otherwise (reference time, current delay).
    delay: Option<(u64, u64)>,
}

impl Backoff {
    /// No delay for config `version`.
    pub fn new(version: Timestamp, config: BackoffConfig) -> Self {
        Self {
            config,
            version,
            delay: None,
        }
    }

    /// A task of the app failed at `now_ms` (Failed, Finished, Error, Gone, Dropped; not
    /// Killed). First failure: delay = min(backoff, max); further: min(max, delay * factor).
    /// The reference time becomes `now_ms`.
    pub fn failure(&mut self, now_ms: u64) {
        let delay = match self.delay {
            None => self.config.backoff_ms.min(self.config.max_ms),
            Some((_, delay)) => {
                let grown = delay as f64 * self.config.factor;
                let grown = if grown.is_finite() && grown >= 0.0 {
                    // Finite and not negative: `as` saturates at u64::MAX, the delay's cap.
                    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                    let grown = grown as u64;
                    grown
                } else {
                    self.config.max_ms
                };
                grown.min(self.config.max_ms)
            }
        };
        self.delay = Some((now_ms, delay));
    }

    /// A task of the app is staging, starting or running at `now_ms`: the reference time
    /// moves there and the delay is kept.
    pub fn advance(&mut self, now_ms: u64) {
        if let Some((reference, _)) = &mut self.delay {
            *reference = now_ms;
        }
    }

    /// Forgets the delay (restart deployment, stop, `DELETE /v2/queue/{id}/delay`, a kill
    /// for agent draining).
    pub fn reset(&mut self) {
        self.delay = None;
    }

    /// The app is now at config `version` with `config`: a different version starts over
    /// without delay. Returns true if it reset.
    pub fn observe_config(&mut self, version: Timestamp, config: BackoffConfig) -> bool {
        if version == self.version {
            self.config = config;
            return false;
        }
        *self = Self::new(version, config);
        true
    }

    /// The current delay in milliseconds, if any.
    pub fn delay_ms(&self) -> Option<u64> {
        self.delay.map(|(_, delay)| delay)
    }

    /// No launch before this time (`None`: no delay).
    pub fn deadline_ms(&self) -> Option<u64> {
        self.delay
            .map(|(reference, delay)| reference.saturating_add(delay))
    }

    /// Milliseconds left until launches may resume (`delay.timeLeftSeconds`).
    pub fn time_left_ms(&self, now_ms: u64) -> u64 {
        self.deadline_ms()
            .map_or(0, |deadline| deadline.saturating_sub(now_ms))
    }

    /// True if a new instance may launch at `now_ms` (`overdue` in `/v2/queue`).
    pub fn may_launch(&self, now_ms: u64) -> bool {
        self.time_left_ms(now_ms) == 0
    }

    /// True if periodic clean-up would drop the delay: `now > reference + max`.
    pub fn is_stale(&self, now_ms: u64) -> bool {
        self.delay
            .is_some_and(|(reference, _)| now_ms > reference.saturating_add(self.config.max_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_by_factor_up_to_the_cap() {
        let config = BackoffConfig {
            backoff_ms: 10_000,
            factor: 2.0,
            max_ms: 3_600_000,
        };
        let mut backoff = Backoff::new(Timestamp::from_millis(1), config);
        assert!(backoff.may_launch(0));
        let mut delays = Vec::new();
        for i in 0..11 {
            backoff.failure(i * 1000);
            delays.push(backoff.delay_ms().unwrap_or(0) / 1000);
        }
        assert_eq!(
            delays,
            [10, 20, 40, 80, 160, 320, 640, 1280, 2560, 3600, 3600]
        );
        assert_eq!(backoff.deadline_ms(), Some(10_000 + 3_600_000));
        assert_eq!(backoff.time_left_ms(3_610_000), 0);
        assert!(!backoff.may_launch(3_609_999));
    }

    #[test]
    fn defaults_and_first_delay_capped() {
        let mut backoff = Backoff::new(Timestamp::from_millis(1), BackoffConfig::default());
        backoff.failure(0);
        backoff.failure(0);
        assert_eq!(backoff.delay_ms(), Some(1150));
        let mut capped = Backoff::new(
            Timestamp::from_millis(1),
            BackoffConfig {
                backoff_ms: 5000,
                factor: 2.0,
                max_ms: 2000,
            },
        );
        capped.failure(100);
        assert_eq!(capped.deadline_ms(), Some(2100));
    }

    #[test]
    fn running_advances_and_config_change_resets() {
        let mut backoff = Backoff::new(Timestamp::from_millis(1), BackoffConfig::default());
        backoff.advance(50);
        assert_eq!(backoff.deadline_ms(), None, "nothing to advance");
        backoff.failure(1000);
        backoff.advance(5000);
        assert_eq!(backoff.deadline_ms(), Some(6000));
        assert!(!backoff.is_stale(305_000));
        assert!(backoff.is_stale(305_001));
        assert!(!backoff.observe_config(Timestamp::from_millis(1), BackoffConfig::default()));
        assert_eq!(backoff.delay_ms(), Some(1000));
        assert!(backoff.observe_config(Timestamp::from_millis(2), BackoffConfig::default()));
        assert_eq!(backoff.delay_ms(), None);
        backoff.failure(0);
        backoff.reset();
        assert!(backoff.may_launch(0));
    }
}

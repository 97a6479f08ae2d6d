//! Rolling-restart arithmetic (Marathon's `TaskReplaceActor`), as a level-triggered step:
//! given the counts now, how many new instances to launch and how many old ones to kill.

use crate::model::UpgradeStrategy;

impl UpgradeStrategy {
    /// `(minHealthy, maxCapacity)` for `instances`: `ceil(N * minimumHealthCapacity)` and
    /// `floor(N * (1 + maximumOverCapacity))`, in Marathon's floating-point arithmetic.
    pub fn bounds(&self, instances: u32) -> (u32, u32) {
        let n = f64::from(instances);
        let min_healthy = (n * self.minimum_health_capacity).ceil();
        let max_capacity = (n * (1.0 + self.maximum_over_capacity)).floor();
        (to_count(min_healthy), to_count(max_capacity))
    }
}

fn to_count(x: f64) -> u32 {
    if x.is_nan() || x <= 0.0 {
        0
    } else if x >= f64::from(u32::MAX) {
        u32::MAX
    } else {
        // In 0..u32::MAX and integral (ceil or floor before): exact.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let count = x as u32;
        count
    }
}

/// The instances of an app during a restart.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RestartCounts {
    /// Old-version instances not yet terminal, including those already told to die (their
    /// capacity only frees up once the kill is confirmed).
    pub old_active: u32,
    /// Of those, the ones already told to die.
    pub old_killing: u32,
    /// Old instances not told to die that count as healthy (running; healthy if the app has
    /// health checks).
    pub old_healthy: u32,
    /// New-version instances launched and still wanted (goal Running, even while a failed
    /// one waits for its relaunch).
    pub new_active: u32,
    /// New instances that are healthy and ready.
    pub new_healthy_ready: u32,
}

/// What to do now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RestartStep {
    /// Launch this many new instances.
    pub start: u32,
    /// Tell this many more old instances (not yet told) to die; pick unhealthy ones first
    /// ([`super::select_kills`] orders them so).
    pub kill: u32,
    /// The restart is complete: `instances` new ones healthy and ready, no old one active.
    pub done: bool,
}

/// One level-triggered step of a rolling restart to `instances` new instances.
///
/// With `minHealthy` and `maxCapacity` from [`UpgradeStrategy::bounds`] and
/// `H` = healthy old (not dying) + healthy-and-ready new:
/// - kill = (old not dying + healthy-and-ready new) - minHealthy, at least the old ones
///   beyond `instances`; so each new instance that becomes healthy and ready frees one old
///   one, and at the start `H - minHealthy` go when all old ones are healthy;
/// - if `minHealthy == maxCapacity <= H`: a non-resident app may exceed `maxCapacity` by
///   one (so the restart can progress); a resident app kills one more instead;
/// - start = min(instances - new_active, maxCapacity - old_active - new_active).
///
/// Differences from Marathon, which computes the kill budget and the +1 once at the start
/// and then reacts to events: old instances that are not healthy count against the kill
/// budget like healthy ones (Marathon kills them first within the budget too), and the +1
/// follows the current `H`, so a restart that Marathon would leave stuck because an old
/// instance was unhealthy at the start resumes once it is healthy.
pub fn restart_step(
    instances: u32,
    strategy: UpgradeStrategy,
    resident: bool,
    counts: RestartCounts,
) -> RestartStep {
    let (min_healthy, mut max_capacity) = strategy.bounds(instances);
    let old_not_dying = counts.old_active.saturating_sub(counts.old_killing);
    let healthy = counts.old_healthy.saturating_add(counts.new_healthy_ready);
    let capacity = old_not_dying.saturating_add(counts.new_healthy_ready);
    let mut kill = capacity.saturating_sub(min_healthy);
    if min_healthy == max_capacity && max_capacity <= healthy {
        if resident {
            kill = capacity.saturating_sub(min_healthy).saturating_add(1);
        } else {
            max_capacity = max_capacity.saturating_add(1);
        }
    }
    kill = kill
        .max(old_not_dying.saturating_sub(instances))
        .min(old_not_dying);
    let room = max_capacity
        .saturating_sub(counts.old_active)
        .saturating_sub(counts.new_active);
    let start = instances.saturating_sub(counts.new_active).min(room);
    RestartStep {
        start,
        kill,
        done: counts.old_active == 0 && counts.new_healthy_ready >= instances,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strategy(min: f64, over: f64) -> UpgradeStrategy {
        UpgradeStrategy {
            minimum_health_capacity: min,
            maximum_over_capacity: over,
        }
    }

    fn all_old_healthy(old: u32) -> RestartCounts {
        RestartCounts {
            old_active: old,
            old_healthy: old,
            ..RestartCounts::default()
        }
    }

    /// The worked examples of the reference (§4.2): (N, minHC, maxOC) -> bounds and the
    /// kills and launches at the start, all old instances healthy.
    #[test]
    fn marathon_worked_examples() {
        for (n, min, over, bounds, kill, start) in [
            (10, 1.0, 1.0, (10, 20), 0, 10),
            (10, 1.0, 0.0, (10, 10), 0, 1),
            (10, 0.5, 0.0, (5, 10), 5, 0),
            (10, 0.0, 0.0, (0, 10), 10, 0),
            (10, 0.6, 0.2, (6, 12), 4, 2),
            (3, 0.7, 1.0, (3, 6), 0, 3),
        ] {
            let s = strategy(min, over);
            assert_eq!(s.bounds(n), bounds, "{n} {min} {over}");
            let step = restart_step(n, s, false, all_old_healthy(n));
            assert_eq!((step.kill, step.start), (kill, start), "{n} {min} {over}");
            assert!(!step.done);
        }
    }

    #[test]
    fn one_for_one_after_start() {
        // 1.0/0.0 at N=10: one new healthy instance lets one old one go.
        let s = strategy(1.0, 0.0);
        let counts = RestartCounts {
            old_active: 10,
            old_healthy: 10,
            new_active: 1,
            new_healthy_ready: 1,
            ..RestartCounts::default()
        };
        assert_eq!(restart_step(10, s, false, counts).kill, 1);
        let dying = RestartCounts {
            old_killing: 1,
            old_healthy: 9,
            ..counts
        };
        let step = restart_step(10, s, false, dying);
        assert_eq!((step.kill, step.start), (0, 0), "wait for the kill");
        let gone = RestartCounts {
            old_active: 9,
            old_killing: 0,
            ..dying
        };
        assert_eq!(restart_step(10, s, false, gone).start, 1);
    }

    #[test]
    fn resident_apps_kill_instead_of_over_capacity() {
        let step = restart_step(10, strategy(1.0, 0.0), true, all_old_healthy(10));
        assert_eq!((step.kill, step.start), (1, 0));
    }

    #[test]
    fn excess_old_instances_go_and_done_is_reported() {
        let step = restart_step(3, strategy(1.0, 1.0), false, all_old_healthy(5));
        assert_eq!(step.kill, 2);
        let done = RestartCounts {
            new_active: 3,
            new_healthy_ready: 3,
            ..RestartCounts::default()
        };
        assert!(restart_step(3, strategy(1.0, 1.0), false, done).done);
    }
}

//! One step of a blue/green swap, as zdd takes them: wait while a deployment holds the new
//! colour (its tasks are starting, turning healthy or ready); kill the old tasks that the new colour's tasks in rotation make surplus (old and
//! new in rotation never drop below the target); grow the new colour by about half
//! (straight to the target once it reaches the old colour's size); delete the old colour
//! when the new one serves the target alone, or stop at a canary's split. Pure.
//!
//! May depend on: the sibling modules.

use super::live::LiveApp;
use super::start::Goal;

/// Why a step does nothing yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Waiting {
    /// A deployment holds the new colour (its tasks are starting or turning healthy).
    NewDeploying,
    /// Not enough new tasks are in rotation to take anything away from the old colour.
    Rotation,
}

/// What to do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Nothing until the state changes.
    Wait(Waiting),
    /// Move instances.
    Shift {
        /// Old tasks to kill, lowering the old colour's instance count.
        kill: Vec<String>,
        /// The old colour's instance count after this step (lower than its count minus the
        /// killed tasks when it has fewer tasks than instances).
        old_instances: u32,
        /// The new colour's next instance count, if it grows.
        new_instances: Option<u32>,
    },
    /// The new colour serves the target alone: delete the old one.
    DeleteOld,
    /// There is no old colour and the new one serves the target.
    Done,
    /// A canary reached its split.
    Split,
}

/// The next step of the swap from `old` to `new` towards `goal`. A deployment of the old
/// colour never holds the swap (its scale-downs are this swap's own, and what it kills
/// follows from the new tasks in rotation alone); one of the new colour does unless
/// `force`.
pub fn next_step(new: &LiveApp, old: Option<&LiveApp>, goal: &Goal, force: bool) -> Step {
    if new.deploying && !force {
        return Step::Wait(Waiting::NewDeploying);
    }
    let serving = new.serving();
    let Some(old) = old else {
        return if new.instances != goal.target {
            Step::Shift {
                kill: Vec::new(),
                old_instances: 0,
                new_instances: Some(goal.target),
            }
        } else if serving >= goal.target {
            Step::Done
        } else {
            Step::Wait(Waiting::Rotation)
        };
    };
    if !goal.canary() && new.instances >= goal.target && serving >= goal.target {
        return Step::DeleteOld;
    }
    if goal.canary()
        && new.instances >= goal.new_instances
        && serving >= goal.new_instances
        && old.instances <= goal.old_instances()
    {
        return Step::Split;
    }
    let surplus = (serving + old.instances).saturating_sub(goal.target);
    let removable = old.instances.saturating_sub(goal.old_instances());
    let count = surplus.min(removable).min(serving);
    let new_instances = (new.instances < goal.new_instances).then(|| {
        let n = new.instances;
        // zdd's floor(n + (n + 1) / 2), at least one more.
        let mut next = (n + n.div_ceil(2)).max(n + 1);
        if !goal.canary() && next >= old.instances {
            next = goal.target;
        }
        next.min(goal.new_instances)
    });
    if count == 0 && new_instances.is_none() {
        return Step::Wait(Waiting::Rotation);
    }
    Step::Shift {
        kill: old.victims(count),
        old_instances: old.instances - count,
        new_instances,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// An app with `instances`, of which `serving` tasks are healthy and the rest unhealthy.
    fn app(id: &str, instances: u32, serving: u32, deploying: bool) -> LiveApp {
        let tasks: Vec<_> = (0..instances)
            .map(|i| {
                json!({"id": format!("{id}.{i}"), "state": "TASK_RUNNING",
                       "healthCheckResults": [{"alive": i < serving}]})
            })
            .collect();
        let deployments = if deploying {
            json!([{"id": "d"}])
        } else {
            json!([])
        };
        LiveApp::from_json(&json!({
            "id": id, "instances": instances, "healthChecks": [{"protocol": "HTTP"}],
            "deployments": deployments, "tasks": tasks
        }))
        .expect("valid")
    }

    /// Runs a swap to its end, applying each step as the cluster would (new tasks turn
    /// healthy one step after they are asked for), checking that old and new in rotation
    /// never fall below the target. Returns the (new, old) instance counts per step.
    fn simulate(old: u32, initial: u32, goal: Goal) -> (Vec<(u32, u32)>, Step) {
        let (mut new_count, mut old_count, mut new_serving) = (initial, old, 0);
        let mut trace = Vec::new();
        for _ in 0..50 {
            let new_app = app("new", new_count, new_serving, new_serving < new_count);
            let old_app = app("old", old_count, old_count, false);
            let step = next_step(&new_app, Some(&old_app), &goal, false);
            match step {
                Step::Wait(Waiting::NewDeploying) => new_serving = new_count,
                Step::Shift {
                    kill,
                    old_instances,
                    new_instances,
                } => {
                    assert_eq!(
                        old_count - old_instances,
                        u32::try_from(kill.len()).expect("small")
                    );
                    old_count = old_instances;
                    assert!(
                        new_serving + old_count >= goal.target,
                        "rotation fell to {new_serving}+{old_count}"
                    );
                    new_count = new_instances.unwrap_or(new_count);
                    trace.push((new_count, old_count));
                }
                other => return (trace, other),
            }
        }
        panic!("no end: {trace:?}");
    }

    #[test]
    fn a_full_swap_grows_by_half_and_keeps_the_target_in_rotation() {
        let full = Goal {
            target: 3,
            new_instances: 3,
        };
        let (trace, end) = simulate(3, 1, full);
        assert_eq!(trace, [(2, 2), (3, 1)]);
        assert_eq!(end, Step::DeleteOld);
        let (trace, end) = simulate(
            10,
            1,
            Goal {
                target: 10,
                new_instances: 10,
            },
        );
        assert_eq!(trace, [(2, 9), (3, 8), (5, 7), (10, 5)]);
        assert_eq!(end, Step::DeleteOld);
    }

    #[test]
    fn a_canary_stops_at_its_split() {
        let canary = Goal {
            target: 10,
            new_instances: 2,
        };
        let (trace, end) = simulate(10, 1, canary);
        assert_eq!(trace, [(2, 9), (2, 8)]);
        assert_eq!(end, Step::Split);
    }

    #[test]
    fn only_the_new_colours_deployments_hold_the_swap() {
        let goal = Goal {
            target: 3,
            new_instances: 3,
        };
        let new = app("new", 1, 1, true);
        let old = app("old", 3, 3, false);
        assert_eq!(
            next_step(&new, Some(&old), &goal, false),
            Step::Wait(Waiting::NewDeploying)
        );
        assert!(matches!(
            next_step(&new, Some(&old), &goal, true),
            Step::Shift { .. }
        ));
        // The old colour's deployments (a scale-down of ours, or the stuck rollout of a
        // broken colour being rolled back) do not hold the swap.
        let busy = app("old", 3, 3, true);
        assert!(matches!(
            next_step(&app("new", 1, 1, false), Some(&busy), &goal, false),
            Step::Shift { .. }
        ));
        let stuck = app("old", 1, 0, true);
        assert_eq!(
            next_step(&app("new", 3, 3, false), Some(&stuck), &goal, false),
            Step::DeleteOld
        );
    }

    #[test]
    fn unhealthy_new_tasks_take_nothing_away() {
        let goal = Goal {
            target: 3,
            new_instances: 3,
        };
        let old = app("old", 3, 3, false);
        let grown = app("new", 3, 1, false);
        assert_eq!(
            next_step(&grown, Some(&old), &goal, false),
            Step::Shift {
                kill: vec!["old.0".into()],
                old_instances: 2,
                new_instances: None
            }
        );
        let sick = app("new", 3, 0, false);
        assert_eq!(
            next_step(&sick, Some(&old), &goal, false),
            Step::Wait(Waiting::Rotation)
        );
    }

    #[test]
    fn unhealthy_old_tasks_go_first() {
        let goal = Goal {
            target: 3,
            new_instances: 3,
        };
        let old = app("old", 3, 1, false);
        let new = app("new", 1, 1, false);
        match next_step(&new, Some(&old), &goal, false) {
            Step::Shift { kill, .. } => assert_eq!(kill, ["old.1"]),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn without_an_old_colour_the_new_one_just_reaches_the_target() {
        let goal = Goal {
            target: 3,
            new_instances: 3,
        };
        assert_eq!(
            next_step(&app("new", 3, 3, false), None, &goal, false),
            Step::Done
        );
        assert_eq!(
            next_step(&app("new", 3, 2, false), None, &goal, false),
            Step::Wait(Waiting::Rotation)
        );
        assert_eq!(
            next_step(&app("new", 1, 1, false), None, &goal, false),
            Step::Shift {
                kill: Vec::new(),
                old_instances: 0,
                new_instances: Some(3)
            }
        );
    }
}

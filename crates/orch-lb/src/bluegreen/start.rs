//! How a blue/green deploy starts, from the app file, the apps already in its deployment
//! group and the flags: create the next colour (and from what), or continue with the two
//! colours that exist (`--resume`, `--complete-cur`, `--complete-prev`). Pure.
//!
//! May depend on: serde_json, orch_core::model (timestamps), the sibling modules.

use super::definition::{
    colour_definition, Colour, Deployable, NextColour, NEW_INSTANCES, TARGET_INSTANCES,
};
use super::error::BlueGreenError;
use super::live::LiveApp;
use orch_core::model::Timestamp;
use serde_json::Value;

/// What to do with an unfinished or canary deploy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    /// Continue it to where it was going (a canary stops at its split again).
    Resume,
    /// Move every instance to the colour started last and delete the other.
    CompleteCurrent,
    /// Move every instance back to the colour started first and delete the other.
    CompletePrevious,
}

impl Finish {
    /// The command-line flag.
    pub fn flag(self) -> &'static str {
        match self {
            Finish::Resume => "--resume",
            Finish::CompleteCurrent => "--complete-cur",
            Finish::CompletePrevious => "--complete-prev",
        }
    }
}

/// The flags that shape the plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// `--initial-instances`: what the new colour starts with (capped at its goal).
    pub initial_instances: u32,
    /// `--new-instances`: a canary that stops at this many new instances.
    pub new_instances: Option<u32>,
    /// `--resume` / `--complete-cur` / `--complete-prev`.
    pub finish: Option<Finish>,
}

/// The instance counts a swap ends at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Goal {
    /// Old and new together (`HAPROXY_DEPLOYMENT_TARGET_INSTANCES`).
    pub target: u32,
    /// The new colour's share: `target`, or fewer for a canary.
    pub new_instances: u32,
}

impl Goal {
    /// Whether the swap stops at a split rather than at the new colour alone.
    pub fn canary(&self) -> bool {
        self.new_instances < self.target
    }

    /// What the old colour keeps at the end.
    pub fn old_instances(&self) -> u32 {
        self.target.saturating_sub(self.new_instances)
    }
}

/// A move of instances from one colour to the other.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Swap {
    /// The colour that grows.
    pub new: String,
    /// The colour that shrinks and goes, if there is one.
    pub old: Option<String>,
    /// Where it ends.
    pub goal: Goal,
}

/// How the deploy starts.
#[derive(Debug, Clone, PartialEq)]
pub enum Start {
    /// Create the next colour from the file, then swap.
    Create {
        /// Its definition, to POST.
        app: Box<Value>,
        /// What it is created with.
        next: NextColour,
        /// The swap that follows.
        swap: Swap,
    },
    /// Continue with the two colours that exist.
    Continue(Swap),
}

/// Plans the start. `members` are the group's apps oldest first (see
/// [`super::live::group_members`]); `now` becomes the new colour's start time.
pub fn plan_start(
    deployable: &Deployable,
    members: &[LiveApp],
    options: &Options,
    now: Timestamp,
) -> Result<Start, BlueGreenError> {
    let group = deployable.group.clone();
    let current = match members {
        [] => None,
        [current] => Some(current),
        [earlier, later] => {
            return match options.finish {
                Some(finish) => Ok(Start::Continue(continued(finish, earlier, later))),
                None => Err(BlueGreenError::Unfinished {
                    group,
                    apps: list(members),
                    newest: later.id.clone(),
                    oldest: earlier.id.clone(),
                }),
            }
        }
        _ => {
            return Err(BlueGreenError::TooManyApps {
                group,
                count: members.len(),
                apps: list(members),
            })
        }
    };
    if let Some(finish) = options.finish {
        return Err(BlueGreenError::NothingToResume {
            flag: finish.flag(),
            group,
            found: match current {
                Some(current) => format!("it has only {}", current.describe()),
                None => "it has no app".into(),
            },
        });
    }
    let Some(current) = current else {
        if options.new_instances.is_some() {
            return Err(BlueGreenError::CanaryWithoutOld { group });
        }
        let target = deployable.instances;
        let next = NextColour {
            colour: Colour::Blue,
            service_port: deployable.next_service_port(None),
            target,
            initial: target,
            new_instances: None,
        };
        return Ok(created(deployable, next, None, now));
    };
    let target = if current.instances > 0 {
        current.instances
    } else {
        deployable.instances
    };
    if let Some(new) = options.new_instances {
        if new >= target {
            return Err(BlueGreenError::CanaryTooLarge { new, target });
        }
    }
    let mut colour = current.colour().map_or(Colour::Blue, Colour::other);
    if deployable.colour_id(colour) == current.id {
        colour = colour.other();
    }
    let goal = options.new_instances.unwrap_or(target);
    let next = NextColour {
        colour,
        service_port: deployable.next_service_port(current.service_port),
        target,
        initial: options.initial_instances.max(1).min(goal),
        new_instances: options.new_instances,
    };
    Ok(created(deployable, next, Some(current), now))
}

/// The swap that continues an unfinished deploy of `earlier` and `later`.
fn continued(finish: Finish, earlier: &LiveApp, later: &LiveApp) -> Swap {
    let target = later
        .count_label(TARGET_INSTANCES)
        .filter(|target| *target > 0)
        .unwrap_or(earlier.instances + later.instances);
    let (new, old, new_instances) = match finish {
        Finish::Resume => (
            later,
            earlier,
            later
                .count_label(NEW_INSTANCES)
                .filter(|n| *n > 0 && *n < target)
                .unwrap_or(target),
        ),
        Finish::CompleteCurrent => (later, earlier, target),
        Finish::CompletePrevious => (earlier, later, target),
    };
    Swap {
        new: new.id.clone(),
        old: Some(old.id.clone()),
        goal: Goal {
            target,
            new_instances,
        },
    }
}

fn created(
    deployable: &Deployable,
    next: NextColour,
    current: Option<&LiveApp>,
    now: Timestamp,
) -> Start {
    let swap = Swap {
        new: deployable.colour_id(next.colour),
        old: current.map(|app| app.id.clone()),
        goal: Goal {
            target: next.target,
            new_instances: next.new_instances.unwrap_or(next.target),
        },
    };
    Start::Create {
        app: Box::new(colour_definition(deployable, &next, now)),
        next,
        swap,
    }
}

fn list(members: &[LiveApp]) -> String {
    members
        .iter()
        .map(LiveApp::describe)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::super::definition::{ALT_PORT, COLOUR, GROUP, STARTED_AT};
    use super::*;
    use serde_json::json;

    fn file(instances: u32) -> Deployable {
        Deployable::from_definition(&json!({
            "id": "/web", "instances": instances, "portDefinitions": [{"port": 10000}],
            "labels": {GROUP: "web", ALT_PORT: "10001"}
        }))
        .expect("valid")
    }

    fn member(id: &str, colour: &str, instances: u32, port: u16, labels: Value) -> LiveApp {
        let mut app = json!({
            "id": id, "instances": instances, "portDefinitions": [{"port": port}],
            "labels": {GROUP: "web", COLOUR: colour, STARTED_AT: "2024-01-01T00:00:00.000Z"}
        });
        for (name, value) in labels.as_object().into_iter().flatten() {
            app["labels"][name] = value.clone();
        }
        LiveApp::from_json(&app).expect("valid")
    }

    fn options() -> Options {
        Options {
            initial_instances: 1,
            new_instances: None,
            finish: None,
        }
    }

    fn create(start: Start) -> (Value, NextColour, Swap) {
        match start {
            Start::Create { app, next, swap } => (*app, next, swap),
            other => panic!("expected a new colour, got {other:?}"),
        }
    }

    #[test]
    fn the_first_deploy_is_blue_at_full_size_on_the_file_port() {
        let (app, next, swap) =
            create(plan_start(&file(3), &[], &options(), Timestamp::from_millis(0)).expect("ok"));
        assert_eq!(
            (next.colour, next.service_port, next.initial),
            (Colour::Blue, 10000, 3)
        );
        assert_eq!(app["id"], "/web-blue");
        assert_eq!(app["labels"][TARGET_INSTANCES], "3");
        assert_eq!(swap.old, None);
        assert_eq!(
            swap.goal,
            Goal {
                target: 3,
                new_instances: 3
            }
        );
    }

    #[test]
    fn the_next_colour_is_the_other_one_sized_from_the_running_one() {
        let blue = member("/web-blue", "blue", 4, 10000, json!({}));
        let (app, next, swap) = create(
            plan_start(&file(2), &[blue], &options(), Timestamp::from_millis(0)).expect("ok"),
        );
        assert_eq!((next.colour, next.service_port), (Colour::Green, 10001));
        assert_eq!((next.target, next.initial), (4, 1));
        assert_eq!(app["instances"], 1);
        assert_eq!(swap.old.as_deref(), Some("/web-blue"));
        // Green is followed by blue on the file's port again.
        let green = member("/web-green", "green", 4, 10001, json!({}));
        let many = Options {
            initial_instances: 9,
            ..options()
        };
        let (_, next, _) =
            create(plan_start(&file(2), &[green], &many, Timestamp::from_millis(0)).expect("ok"));
        assert_eq!(
            (next.colour, next.service_port, next.initial),
            (Colour::Blue, 10000, 4)
        );
        // An app of the group without a colour is followed by blue; a scaled-to-zero one
        // takes the file's instance count as the target.
        let plain = member("/web", "", 0, 10000, json!({}));
        let (_, next, _) = create(
            plan_start(&file(2), &[plain], &options(), Timestamp::from_millis(0)).expect("ok"),
        );
        assert_eq!((next.colour, next.target), (Colour::Blue, 2));
        // An uncoloured /web-blue is followed by green, not by itself.
        let odd = member("/web-blue", "", 2, 10000, json!({}));
        let (app, ..) = create(
            plan_start(&file(2), &[odd], &options(), Timestamp::from_millis(0)).expect("ok"),
        );
        assert_eq!(app["id"], "/web-green");
    }

    #[test]
    fn a_canary_keeps_its_share_and_needs_a_running_colour() {
        let blue = member("/web-blue", "blue", 3, 10000, json!({}));
        let canary = Options {
            new_instances: Some(1),
            initial_instances: 2,
            ..options()
        };
        let (app, next, swap) = create(
            plan_start(
                &file(3),
                std::slice::from_ref(&blue),
                &canary,
                Timestamp::from_millis(0),
            )
            .expect("ok"),
        );
        assert_eq!((next.initial, next.new_instances), (1, Some(1)));
        assert_eq!(app["labels"][NEW_INSTANCES], "1");
        assert_eq!(
            swap.goal,
            Goal {
                target: 3,
                new_instances: 1
            }
        );
        assert!(swap.goal.canary() && swap.goal.old_instances() == 2);
        let too_many = Options {
            new_instances: Some(3),
            ..options()
        };
        assert_eq!(
            plan_start(&file(3), &[blue], &too_many, Timestamp::from_millis(0)),
            Err(BlueGreenError::CanaryTooLarge { new: 3, target: 3 })
        );
        assert!(matches!(
            plan_start(&file(3), &[], &canary, Timestamp::from_millis(0)),
            Err(BlueGreenError::CanaryWithoutOld { .. })
        ));
    }

    #[test]
    fn two_colours_need_a_flag_and_each_flag_picks_its_direction() {
        let blue = member("/web-blue", "blue", 2, 10000, json!({}));
        let green = member(
            "/web-green",
            "green",
            1,
            10001,
            json!({STARTED_AT: "2024-02-01T00:00:00.000Z", TARGET_INSTANCES: "3", NEW_INSTANCES: "1"}),
        );
        let both = [blue, green];
        let error = plan_start(&file(3), &both, &options(), Timestamp::from_millis(0))
            .expect_err("needs a flag");
        let text = error.to_string();
        assert!(
            text.contains("--resume")
                && text.contains("--complete-cur to move every instance to /web-green")
                && text.contains("--complete-prev to roll back to /web-blue"),
            "{text}"
        );
        let with = |finish| Options {
            finish: Some(finish),
            ..options()
        };
        let swap =
            |finish| match plan_start(&file(9), &both, &with(finish), Timestamp::from_millis(0)) {
                Ok(Start::Continue(swap)) => swap,
                other => panic!("{other:?}"),
            };
        let resume = swap(Finish::Resume);
        assert_eq!(
            (resume.new.as_str(), resume.goal),
            (
                "/web-green",
                Goal {
                    target: 3,
                    new_instances: 1
                }
            )
        );
        let current = swap(Finish::CompleteCurrent);
        assert_eq!(
            (current.new.as_str(), current.old.as_deref()),
            ("/web-green", Some("/web-blue"))
        );
        assert_eq!(
            current.goal,
            Goal {
                target: 3,
                new_instances: 3
            }
        );
        let previous = swap(Finish::CompletePrevious);
        assert_eq!(
            (previous.new.as_str(), previous.old.as_deref()),
            ("/web-blue", Some("/web-green"))
        );
        assert_eq!(
            previous.goal,
            Goal {
                target: 3,
                new_instances: 3
            }
        );
    }

    #[test]
    fn flags_without_an_unfinished_deploy_and_crowded_groups_are_refused() {
        let blue = member("/web-blue", "blue", 2, 10000, json!({}));
        let resume = Options {
            finish: Some(Finish::CompletePrevious),
            ..options()
        };
        let error = plan_start(
            &file(3),
            std::slice::from_ref(&blue),
            &resume,
            Timestamp::from_millis(0),
        )
        .expect_err("nothing to complete");
        assert!(error.to_string().contains("--complete-prev"), "{error}");
        let three = [blue.clone(), blue.clone(), blue];
        assert!(matches!(
            plan_start(&file(3), &three, &options(), Timestamp::from_millis(0)),
            Err(BlueGreenError::TooManyApps { count: 3, .. })
        ));
    }
}

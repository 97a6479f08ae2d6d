//! Scale-down: which instances to kill, in Marathon's order (`ScalingProposition`,
//! `Constraints.selectInstancesToKill`).

use std::cmp::Ordering;
use std::collections::HashMap;

use crate::model::{Attributes, Constraint, Operator, TaskId, TaskState, Timestamp};

/// `killSelection` of an app.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum KillSelection {
    /// Kill the newest instances first (Marathon's default).
    #[default]
    YoungestFirst,
    /// Kill the oldest instances first.
    OldestFirst,
}

/// An active instance that scale-down may kill.
#[derive(Clone, Debug, PartialEq)]
pub struct KillCandidate {
    /// Its task.
    pub id: TaskId,
    /// Its latest state.
    pub state: TaskState,
    /// Health per its checks (`None` without checks or results).
    pub healthy: Option<bool>,
    /// When it was placed.
    pub staged_at: Timestamp,
    /// When it first ran.
    pub started_at: Option<Timestamp>,
    /// Its agent's hostname (GROUP_BY on `hostname`).
    pub host: String,
    /// Its agent's attributes (GROUP_BY on an attribute).
    pub attributes: Attributes,
}

impl KillCandidate {
    /// Marathon's condition weight, lowest killed first: unreachable, staging, starting,
    /// then (our refinement) running but unhealthy, running, anything else.
    fn weight(&self) -> u8 {
        match self.state {
            TaskState::Unreachable => 1,
            TaskState::Staging => 2,
            TaskState::Starting => 3,
            TaskState::Running if self.healthy == Some(false) => 4,
            TaskState::Running => 5,
            _ => 6,
        }
    }

    /// The time compared between two candidates of the same weight.
    fn since(&self) -> Timestamp {
        match self.state {
            TaskState::Staging => self.staged_at,
            _ => self.started_at.unwrap_or(self.staged_at),
        }
    }

    fn group(&self, field: &str) -> Option<&str> {
        match field {
            "hostname" | "@hostname" => Some(&self.host),
            "@region" => self.attributes.get("region").map(String::as_str),
            "@zone" => self.attributes.get("zone").map(String::as_str),
            other => self.attributes.get(other).map(String::as_str),
        }
    }
}

/// Instances per value of a GROUP_BY field (`None`: the agent lacks the attribute).
type Groups<'a> = HashMap<Option<&'a str>, u32>;

/// The order in which candidates die: lower weight first, then by `selection`
/// (youngest = latest time first), then by task id so the result is deterministic.
fn kill_order(a: &KillCandidate, b: &KillCandidate, selection: KillSelection) -> Ordering {
    a.weight()
        .cmp(&b.weight())
        .then_with(|| match selection {
            KillSelection::YoungestFirst => b.since().cmp(&a.since()),
            KillSelection::OldestFirst => a.since().cmp(&b.since()),
        })
        .then_with(|| a.id.cmp(&b.id))
}

/// Picks `count` of `tasks` to kill; returns their indices in kill order.
///
/// With GROUP_BY constraints each victim comes from a largest group of the most unbalanced
/// GROUP_BY field (so the spread evens out, as Marathon's scale-down does); otherwise, and
/// within a group, the order is: unreachable, staging, starting, unhealthy, running, then
/// by `selection`.
pub fn select_kills(
    tasks: &[KillCandidate],
    count: usize,
    selection: KillSelection,
    constraints: &[Constraint],
) -> Vec<usize> {
    let mut order: Vec<usize> = (0..tasks.len()).collect();
    order.sort_by(|&a, &b| kill_order(&tasks[a], &tasks[b], selection));
    let count = count.min(tasks.len());
    let fields: Vec<&str> = constraints
        .iter()
        .filter(|c| c.operator == Operator::GroupBy)
        .map(|c| c.field.as_str())
        .collect();
    if fields.is_empty() || count == tasks.len() {
        order.truncate(count);
        return order;
    }
    let mut alive = vec![true; tasks.len()];
    let mut chosen = Vec::with_capacity(count);
    while chosen.len() < count {
        // The field whose largest and smallest groups differ most.
        let mut best: Option<(u32, Groups<'_>, &str)> = None;
        for field in &fields {
            let mut groups: Groups<'_> = HashMap::new();
            for (i, task) in tasks.iter().enumerate() {
                if alive[i] {
                    *groups.entry(task.group(field)).or_insert(0) += 1;
                }
            }
            let max = groups.values().copied().max().unwrap_or(0);
            let min = groups.values().copied().min().unwrap_or(0);
            if best
                .as_ref()
                .is_none_or(|(spread, _, _)| max - min > *spread)
            {
                best = Some((max - min, groups, field));
            }
        }
        let victim = match &best {
            Some((_, groups, field)) if groups.len() > 1 => {
                let max = groups.values().copied().max().unwrap_or(0);
                order
                    .iter()
                    .copied()
                    .find(|&i| alive[i] && groups.get(&tasks[i].group(field)).copied() == Some(max))
            }
            _ => order.iter().copied().find(|&i| alive[i]),
        };
        let Some(victim) = victim else { break };
        alive[victim] = false;
        chosen.push(victim);
    }
    chosen
}

/// What scaling an app to its target needs now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScaleStep {
    /// The count is right.
    Nothing,
    /// Launch this many new instances.
    Start(u32),
    /// Kill these (indices into the given tasks, in kill order).
    Kill(Vec<usize>),
}

/// Scale `active` (instances with goal Running, not unreachable-inactive) to `target`.
pub fn scale_step(
    target: u32,
    active: &[KillCandidate],
    selection: KillSelection,
    constraints: &[Constraint],
) -> ScaleStep {
    let current = active.len();
    let target = target as usize;
    match current.cmp(&target) {
        Ordering::Equal => ScaleStep::Nothing,
        Ordering::Less => ScaleStep::Start(u32::try_from(target - current).unwrap_or(u32::MAX)),
        Ordering::Greater => ScaleStep::Kill(select_kills(
            active,
            current - target,
            selection,
            constraints,
        )),
    }
}

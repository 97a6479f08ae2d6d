//! Scale-down: which instances to kill, in Marathon's order (`ScalingProposition`,
//! `Constraints.selectInstancesToKill`).

use std::cmp::Ordering;
use std::collections::HashMap;

use crate::model::{Attributes, Constraint, KillSelection, Operator, TaskId, TaskState, Timestamp};

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

#[cfg(test)]
mod tests {
    use super::*;

    fn task(id: &str, state: TaskState, staged: u64, rack: &str) -> KillCandidate {
        KillCandidate {
            id: TaskId(id.into()),
            state,
            healthy: None,
            staged_at: Timestamp::from_millis(staged),
            started_at: (state == TaskState::Running).then(|| Timestamp::from_millis(staged + 1)),
            host: format!("host-{id}"),
            attributes: [("rack".to_owned(), rack.to_owned())].into(),
        }
    }

    fn ids(tasks: &[KillCandidate], picked: &[usize]) -> Vec<String> {
        picked.iter().map(|&i| tasks[i].id.0.clone()).collect()
    }

    #[test]
    fn not_running_first_then_youngest_or_oldest() {
        let mut unhealthy = task("unhealthy", TaskState::Running, 5, "r1");
        unhealthy.healthy = Some(false);
        let tasks = vec![
            task("old", TaskState::Running, 1, "r1"),
            task("young", TaskState::Running, 9, "r1"),
            task("staging", TaskState::Staging, 2, "r1"),
            unhealthy,
            task("unreachable", TaskState::Unreachable, 3, "r1"),
        ];
        let youngest = select_kills(&tasks, 5, KillSelection::YoungestFirst, &[]);
        assert_eq!(
            ids(&tasks, &youngest),
            ["unreachable", "staging", "unhealthy", "young", "old"]
        );
        let oldest = select_kills(&tasks, 5, KillSelection::OldestFirst, &[]);
        assert_eq!(ids(&tasks, &oldest)[3..], ["old", "young"]);
        assert_eq!(
            ids(
                &tasks,
                &select_kills(&tasks, 1, KillSelection::default(), &[])
            ),
            ["unreachable"]
        );
    }

    #[test]
    fn group_by_rebalances() {
        let tasks = vec![
            task("a1", TaskState::Running, 1, "a"),
            task("a2", TaskState::Running, 2, "a"),
            task("a3", TaskState::Running, 3, "a"),
            task("b1", TaskState::Running, 4, "b"),
            task("b2", TaskState::Running, 5, "b"),
        ];
        let group_by = [Constraint {
            field: "rack".into(),
            operator: Operator::GroupBy,
            value: None,
        }];
        // Plain order would take b2 (the youngest); rebalancing takes from rack a first.
        let picked = select_kills(&tasks, 2, KillSelection::YoungestFirst, &group_by);
        assert_eq!(ids(&tasks, &picked), ["a3", "b2"]);
    }

    #[test]
    fn scale_step_starts_or_kills() {
        let tasks = vec![
            task("x", TaskState::Running, 1, "r"),
            task("y", TaskState::Running, 2, "r"),
        ];
        assert_eq!(
            scale_step(5, &tasks, KillSelection::default(), &[]),
            ScaleStep::Start(3)
        );
        assert_eq!(
            scale_step(2, &tasks, KillSelection::default(), &[]),
            ScaleStep::Nothing
        );
        assert_eq!(
            scale_step(1, &tasks, KillSelection::default(), &[]),
            ScaleStep::Kill(vec![1])
        );
    }
}

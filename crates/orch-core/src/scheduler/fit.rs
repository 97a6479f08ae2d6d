//! Whether one agent can take one more instance of a request: roles, reachability,
//! constraints (Marathon's `Constraints.scala` semantics), cpus/mem/disk and host ports.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::sync::Arc;

use regex::Regex;

use super::SchedulerError;
use crate::model::{AgentId, AppId, Attributes, Constraint, Operator, Resources, DEFAULT_ROLE};

/// Slack for float comparisons of cpus/mem/disk, so that sums of decimal fractions
/// (0.1 + 0.2) do not reject an exact fit.
pub(crate) const EPSILON: f64 = 1e-9;

/// An agent as the scheduler sees it: what it has, what is used, what it is.
#[derive(Clone, Debug, PartialEq)]
pub struct AgentSlot {
    /// Its id.
    pub id: AgentId,
    /// Its hostname (the `hostname` constraint field).
    pub hostname: String,
    /// Its attributes (every other constraint field).
    pub attributes: Attributes,
    /// `*` or `slave_public`.
    pub role: String,
    /// False once the leader declared it unreachable: nothing is placed there.
    pub reachable: bool,
    /// Everything it offers.
    pub total: Resources,
    /// CPUs used by tasks already there.
    pub used_cpus: f64,
    /// Memory (MiB) used by tasks already there.
    pub used_mem: f64,
    /// Disk (MiB) used by tasks already there.
    pub used_disk: f64,
    /// Host ports used by tasks already there.
    pub used_ports: BTreeSet<u16>,
}

impl AgentSlot {
    /// An idle, reachable agent with role `*`.
    pub fn new(id: AgentId, hostname: impl Into<String>, total: Resources) -> Self {
        Self {
            id,
            hostname: hostname.into(),
            attributes: Attributes::new(),
            role: DEFAULT_ROLE.to_owned(),
            reachable: true,
            total,
            used_cpus: 0.0,
            used_mem: 0.0,
            used_disk: 0.0,
            used_ports: BTreeSet::new(),
        }
    }

    /// Records one instance of `request` using `ports` here (after [`fit`] accepted it).
    pub fn claim(&mut self, request: &PlacementRequest, ports: &[u16]) {
        self.used_cpus += request.cpus;
        self.used_mem += request.mem;
        self.used_disk += request.disk;
        self.used_ports.extend(ports.iter().copied());
    }

    /// The value of a constraint field here: the hostname, or an attribute (`@region` and
    /// `@zone` read the `region` and `zone` attributes, as there are no fault domains).
    pub fn field(&self, field: &str) -> Option<&str> {
        match field {
            "hostname" | "@hostname" => Some(&self.hostname),
            "@region" => self.attributes.get("region").map(String::as_str),
            "@zone" => self.attributes.get("zone").map(String::as_str),
            other => self.attributes.get(other).map(String::as_str),
        }
    }
}

/// What one app needs placed: per-instance resources, roles, constraints and how many.
#[derive(Clone, Debug, PartialEq)]
pub struct PlacementRequest {
    /// The app (for the caller's bookkeeping; placement does not read it).
    pub app_id: AppId,
    /// CPUs per instance.
    pub cpus: f64,
    /// Memory (MiB) per instance.
    pub mem: f64,
    /// Disk (MiB) per instance.
    pub disk: f64,
    /// Host ports per instance, in port-definition order: `0` = any port from the agent's
    /// ranges, non-zero = exactly that port (`requirePorts`, or a fixed `hostPort`).
    pub ports: Vec<u16>,
    /// `acceptedResourceRoles`: `None` = `*` only; otherwise the agent's role must be listed.
    pub accepted_roles: Option<Vec<String>>,
    /// Placement constraints.
    pub constraints: Vec<Constraint>,
    /// How many new instances to place.
    pub count: u32,
    /// The agents of the app's active instances (one entry per instance).
    pub existing: Vec<AgentId>,
}

/// Why an agent cannot take an instance. The display form is the reason key of
/// `/v2/queue`-like summaries (`insufficient mem`, `constraint hostname:UNIQUE`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Rejection {
    /// The agent is unreachable.
    Unreachable,
    /// The agent's role is not among the accepted roles.
    Role,
    /// Not enough free cpus.
    InsufficientCpus,
    /// Not enough free memory.
    InsufficientMem,
    /// Not enough free disk.
    InsufficientDisk,
    /// A fixed port is taken or not offered, or too few free ports for dynamic ones.
    InsufficientPorts,
    /// A constraint refuses the agent.
    Constraint {
        /// `field:OPERATOR[:value]`.
        label: Arc<str>,
        /// Its operator.
        operator: Operator,
    },
}

impl Rejection {
    /// True if the agent stays unfit for this request for the rest of a plan, whatever else
    /// is placed: resources only get used up, UNIQUE/MAX_PER/CLUSTER values only fill up,
    /// and static checks never change. Only GROUP_BY may accept the agent again later.
    pub fn is_permanent(&self) -> bool {
        !matches!(
            self,
            Rejection::Constraint {
                operator: Operator::GroupBy,
                ..
            }
        )
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rejection::Unreachable => f.write_str("unreachable"),
            Rejection::Role => f.write_str("role"),
            Rejection::InsufficientCpus => f.write_str("insufficient cpus"),
            Rejection::InsufficientMem => f.write_str("insufficient mem"),
            Rejection::InsufficientDisk => f.write_str("insufficient disk"),
            Rejection::InsufficientPorts => f.write_str("insufficient ports"),
            Rejection::Constraint { label, .. } => write!(f, "constraint {label}"),
        }
    }
}

/// How [`fit`] gets host ports for dynamic (`0`) entries.
#[derive(Clone, Copy, Debug)]
pub enum PortChoice<'a> {
    /// Choose free ports pseudo-randomly from this seed (placing).
    Random(u64),
    /// Check exactly these ports (verifying a planned placement against newer state).
    Given(&'a [u16]),
}

#[derive(Clone, Debug)]
enum Check {
    Unique,
    Cluster(Option<String>),
    GroupBy(u32),
    Like(Regex),
    Unlike(Regex),
    MaxPer(u32),
    Is(String),
}

#[derive(Clone, Debug)]
struct CompiledConstraint {
    field: String,
    check: Check,
    label: Arc<str>,
    operator: Operator,
}

impl CompiledConstraint {
    fn compile(constraint: &Constraint) -> Result<Self, SchedulerError> {
        let mut label = format!("{}:{}", constraint.field, constraint.operator.as_str());
        if let Some(value) = &constraint.value {
            label.push(':');
            label.push_str(value);
        }
        let invalid = |problem| SchedulerError::InvalidConstraint {
            constraint: label.clone(),
            problem,
        };
        let value = constraint.value.as_deref();
        let regex = |pattern: Option<&str>| match pattern {
            None | Some("") => Err(invalid("a regex is required")),
            Some(pattern) => {
                Regex::new(&format!("^(?:{pattern})$")).map_err(|e| SchedulerError::InvalidRegex {
                    constraint: label.clone(),
                    reason: e.to_string(),
                })
            }
        };
        let check = match constraint.operator {
            Operator::Unique => Check::Unique,
            Operator::Cluster => Check::Cluster(value.filter(|v| !v.is_empty()).map(Into::into)),
            Operator::GroupBy => Check::GroupBy(match value {
                None | Some("") => 0,
                Some("inf") => u32::MAX,
                Some(v) => v
                    .parse()
                    .map_err(|_| invalid("GROUP_BY value must be empty or an integer"))?,
            }),
            Operator::Like => Check::Like(regex(value)?),
            Operator::Unlike => Check::Unlike(regex(value)?),
            Operator::MaxPer => Check::MaxPer(
                value
                    .and_then(|v| v.parse().ok())
                    .ok_or_else(|| invalid("MAX_PER requires an integer value"))?,
            ),
            Operator::Is => Check::Is(
                value
                    .map(Into::into)
                    .ok_or_else(|| invalid("IS requires a value"))?,
            ),
        };
        Ok(Self {
            field: constraint.field.clone(),
            check,
            label: label.into(),
            operator: constraint.operator,
        })
    }

    fn accepts(&self, value: Option<&str>, counts: &FieldCounts, total: u32) -> bool {
        let Some(value) = value else {
            // Marathon: an agent without the attribute satisfies only UNLIKE.
            return matches!(self.check, Check::Unlike(_));
        };
        let here = counts.get(value);
        match &self.check {
            Check::Unique => here == 0,
            Check::Cluster(wanted) => wanted.as_deref().is_none_or(|w| w == value) && here == total,
            Check::GroupBy(minimum) => {
                here == 0 || (counts.groups() >= *minimum && Some(here) == counts.min_count())
            }
            Check::Like(regex) => regex.is_match(value),
            Check::Unlike(regex) => !regex.is_match(value),
            Check::MaxPer(max) => here < *max,
            Check::Is(wanted) => value == wanted || same_scalar(value, wanted),
        }
    }
}

/// Marathon compares scalar attributes after `0.###` formatting.
fn same_scalar(a: &str, b: &str) -> bool {
    match (a.parse::<f64>(), b.parse::<f64>()) {
        (Ok(a), Ok(b)) if a.is_finite() && b.is_finite() => {
            (a * 1000.0).round() == (b * 1000.0).round()
        }
        _ => false,
    }
}

/// Instances per value of one constraint field.
#[derive(Clone, Debug, Default, PartialEq)]
struct FieldCounts {
    by_value: HashMap<String, u32>,
    /// Instances on agents without the field (Marathon groups them under "no value").
    missing: u32,
    /// How many groups (values, plus "missing" if any) hold exactly n instances, n > 0.
    histogram: BTreeMap<u32, u32>,
}

impl FieldCounts {
    fn get(&self, value: &str) -> u32 {
        self.by_value.get(value).copied().unwrap_or(0)
    }

    fn groups(&self) -> u32 {
        let groups = self.by_value.len() + usize::from(self.missing > 0);
        u32::try_from(groups).unwrap_or(u32::MAX)
    }

    fn min_count(&self) -> Option<u32> {
        self.histogram.keys().next().copied()
    }

    fn add(&mut self, value: Option<&str>) {
        let count = match value {
            None => &mut self.missing,
            Some(value) => match self.by_value.get_mut(value) {
                Some(count) => count,
                None => self.by_value.entry(value.to_owned()).or_insert(0),
            },
        };
        let old = *count;
        *count += 1;
        if old > 0 {
            if let Some(groups) = self.histogram.get_mut(&old) {
                *groups -= 1;
                if *groups == 0 {
                    self.histogram.remove(&old);
                }
            }
        }
        *self.histogram.entry(old + 1).or_insert(0) += 1;
    }
}

/// Where an app's instances are, as its constraints see it: per constraint, instances per
/// field value. Build it from the agents of the existing instances, then [`Spread::add`]
/// each placement.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Spread {
    per_constraint: Vec<FieldCounts>,
    total: u32,
}

impl Spread {
    /// The spread of instances on `agents` (one entry per instance).
    pub fn of<'a>(
        request: &CompiledRequest,
        agents: impl IntoIterator<Item = &'a AgentSlot>,
    ) -> Self {
        let mut spread = Self {
            per_constraint: vec![FieldCounts::default(); request.constraints.len()],
            total: 0,
        };
        for agent in agents {
            spread.add(request, agent);
        }
        spread
    }

    /// Records one more instance on `agent`.
    pub fn add(&mut self, request: &CompiledRequest, agent: &AgentSlot) {
        for (constraint, counts) in request.constraints.iter().zip(&mut self.per_constraint) {
            counts.add(agent.field(&constraint.field));
        }
        self.total += 1;
    }

    /// Number of instances recorded.
    pub fn total(&self) -> u32 {
        self.total
    }
}

/// A [`PlacementRequest`] prepared for many [`fit`] calls: regexes compiled once.
#[derive(Clone, Debug)]
pub struct CompiledRequest {
    request: PlacementRequest,
    constraints: Vec<CompiledConstraint>,
    fixed_ports: Vec<u16>,
    dynamic_ports: usize,
}

impl CompiledRequest {
    /// Compiles the constraints; fails on a bad regex or operator value.
    pub fn new(request: &PlacementRequest) -> Result<Self, SchedulerError> {
        let constraints = request
            .constraints
            .iter()
            .map(CompiledConstraint::compile)
            .collect::<Result<_, _>>()?;
        let fixed_ports = request.ports.iter().copied().filter(|p| *p != 0).collect();
        let dynamic_ports = request.ports.iter().filter(|p| **p == 0).count();
        Ok(Self {
            request: request.clone(),
            constraints,
            fixed_ports,
            dynamic_ports,
        })
    }

    /// The request it was compiled from.
    pub fn request(&self) -> &PlacementRequest {
        &self.request
    }

    /// True if any constraint depends on where other instances are.
    pub(crate) fn has_constraints(&self) -> bool {
        !self.constraints.is_empty()
    }
}

/// Can `agent` take one more instance of `request`, with the app's instances spread as
/// `placed_so_far`? On success, the host ports to use (in request order).
///
/// Checks, in order (the first failure is the reason): reachability, role, constraints,
/// cpus, mem, disk, ports.
pub fn fit(
    agent: &AgentSlot,
    request: &CompiledRequest,
    placed_so_far: &Spread,
    ports: PortChoice<'_>,
) -> Result<Vec<u16>, Rejection> {
    let req = &request.request;
    if !agent.reachable {
        return Err(Rejection::Unreachable);
    }
    let role_ok = match &req.accepted_roles {
        None => agent.role == DEFAULT_ROLE,
        Some(roles) => roles.contains(&agent.role),
    };
    if !role_ok {
        return Err(Rejection::Role);
    }
    let empty = FieldCounts::default();
    for (i, constraint) in request.constraints.iter().enumerate() {
        let counts = placed_so_far.per_constraint.get(i).unwrap_or(&empty);
        if !constraint.accepts(agent.field(&constraint.field), counts, placed_so_far.total) {
            return Err(Rejection::Constraint {
                label: Arc::clone(&constraint.label),
                operator: constraint.operator,
            });
        }
    }
    if agent.used_cpus + req.cpus > agent.total.cpus + EPSILON {
        return Err(Rejection::InsufficientCpus);
    }
    if agent.used_mem + req.mem > agent.total.mem + EPSILON {
        return Err(Rejection::InsufficientMem);
    }
    if agent.used_disk + req.disk > agent.total.disk + EPSILON {
        return Err(Rejection::InsufficientDisk);
    }
    match ports {
        PortChoice::Random(seed) => choose_ports(agent, request, seed),
        PortChoice::Given(given) => verify_ports(agent, request, given),
    }
    .ok_or(Rejection::InsufficientPorts)
}

fn port_free(agent: &AgentSlot, port: u16) -> bool {
    agent.total.has_port(port) && !agent.used_ports.contains(&port)
}

fn verify_ports(agent: &AgentSlot, request: &CompiledRequest, given: &[u16]) -> Option<Vec<u16>> {
    if given.len() != request.request.ports.len() {
        return None;
    }
    for (i, (&want, &port)) in request.request.ports.iter().zip(given).enumerate() {
        let shape_ok = want == 0 || want == port;
        if !shape_ok || !port_free(agent, port) || given[..i].contains(&port) {
            return None;
        }
    }
    Some(given.to_vec())
}

fn choose_ports(agent: &AgentSlot, request: &CompiledRequest, seed: u64) -> Option<Vec<u16>> {
    let fixed = &request.fixed_ports;
    for (i, &port) in fixed.iter().enumerate() {
        if !port_free(agent, port) || fixed[..i].contains(&port) {
            return None;
        }
    }
    if request.dynamic_ports == 0 {
        return Some(request.request.ports.clone());
    }
    let offered = agent.total.port_count();
    if offered < request.dynamic_ports + fixed.len() {
        return None;
    }
    // Marathon picks a random start in the offered ranges and walks on from there.
    let start = pick(seed, offered);
    let mut dynamic = Vec::with_capacity(request.dynamic_ports);
    for step in 0..offered {
        let port = nth_port(&agent.total, (start + step) % offered)?;
        if !agent.used_ports.contains(&port) && !fixed.contains(&port) && !dynamic.contains(&port) {
            dynamic.push(port);
            if dynamic.len() == request.dynamic_ports {
                break;
            }
        }
    }
    if dynamic.len() < request.dynamic_ports {
        return None;
    }
    let mut dynamic = dynamic.into_iter();
    request
        .request
        .ports
        .iter()
        .map(|&p| if p == 0 { dynamic.next() } else { Some(p) })
        .collect()
}

fn nth_port(resources: &Resources, mut n: usize) -> Option<u16> {
    for range in &resources.ports {
        if n < range.len() {
            return u16::try_from(usize::from(range.begin) + n).ok();
        }
        n -= range.len();
    }
    None
}

/// A well-mixed 64-bit hash (SplitMix64's finaliser), for seed-derived choices.
/// A number in `0..n` drawn from `seed` (0 when `n` is 0).
pub(crate) fn pick(seed: u64, n: usize) -> usize {
    let n64 = u64::try_from(n).unwrap_or(u64::MAX);
    splitmix64(seed)
        .checked_rem(n64)
        .and_then(|i| usize::try_from(i).ok())
        .unwrap_or(0)
}

pub(crate) fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{PortRange, PUBLIC_ROLE};
    use serde_json::json;

    fn agent(name: &str, attributes: &[(&str, &str)]) -> AgentSlot {
        let mut slot = AgentSlot::new(
            AgentId(format!("{name}-S0")),
            name,
            Resources {
                cpus: 4.0,
                mem: 4096.0,
                disk: 10_000.0,
                ports: vec![PortRange {
                    begin: 31000,
                    end: 31009,
                }],
            },
        );
        slot.attributes = attributes
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        slot
    }

    fn request(constraints: &[serde_json::Value]) -> PlacementRequest {
        PlacementRequest {
            app_id: AppId::parse("/app").expect("valid"),
            cpus: 1.0,
            mem: 128.0,
            disk: 0.0,
            ports: vec![],
            accepted_roles: None,
            constraints: constraints
                .iter()
                .map(|c| Constraint::parse(c).expect("valid constraint"))
                .collect(),
            count: 1,
            existing: vec![],
        }
    }

    fn compiled(constraints: &[serde_json::Value]) -> CompiledRequest {
        CompiledRequest::new(&request(constraints)).expect("compiles")
    }

    /// `fit` with the spread of instances on `placed`; the reason's text on rejection.
    fn check(c: &CompiledRequest, agent: &AgentSlot, placed: &[&AgentSlot]) -> Result<(), String> {
        let spread = Spread::of(c, placed.iter().copied());
        fit(agent, c, &spread, PortChoice::Random(7))
            .map(|_| ())
            .map_err(|r| r.to_string())
    }

    #[test]
    fn unique_on_hostname_and_attribute() {
        let a = agent("a", &[("rack", "r1")]);
        let b = agent("b", &[("rack", "r1")]);
        let c = agent("c", &[("rack", "r2")]);
        let host = compiled(&[json!(["hostname", "UNIQUE"])]);
        assert_eq!(check(&host, &a, &[]), Ok(()));
        assert_eq!(
            check(&host, &a, &[&a]),
            Err("constraint hostname:UNIQUE".into())
        );
        assert_eq!(check(&host, &b, &[&a]), Ok(()));
        let rack = compiled(&[json!(["rack", "UNIQUE"])]);
        assert_eq!(
            check(&rack, &b, &[&a]),
            Err("constraint rack:UNIQUE".into())
        );
        assert_eq!(check(&rack, &c, &[&a]), Ok(()));
    }

    #[test]
    fn cluster_with_and_without_value() {
        let a = agent("a", &[("rack", "r1")]);
        let b = agent("b", &[("rack", "r2")]);
        let fixed = compiled(&[json!(["rack", "CLUSTER", "r2"])]);
        assert!(check(&fixed, &a, &[]).is_err());
        assert_eq!(check(&fixed, &b, &[]), Ok(()));
        let free = compiled(&[json!(["rack", "CLUSTER"])]);
        assert_eq!(check(&free, &a, &[]), Ok(()));
        assert_eq!(check(&free, &b, &[]), Ok(()));
        assert_eq!(check(&free, &a, &[&a]), Ok(()));
        assert_eq!(
            check(&free, &b, &[&a]),
            Err("constraint rack:CLUSTER".into())
        );
        let host = compiled(&[json!(["hostname", "CLUSTER", "a"])]);
        assert_eq!(check(&host, &a, &[]), Ok(()));
        assert!(check(&host, &b, &[]).is_err());
    }

    #[test]
    fn group_by_spreads_evenly_and_waits_for_the_expected_groups() {
        let r1 = agent("a", &[("rack", "r1")]);
        let r2 = agent("b", &[("rack", "r2")]);
        let r3 = agent("c", &[("rack", "r3")]);
        let plain = compiled(&[json!(["rack", "GROUP_BY"])]);
        // A new value is always welcome; an existing one only if it is among the smallest.
        assert_eq!(check(&plain, &r2, &[&r1]), Ok(()));
        assert_eq!(check(&plain, &r1, &[&r1]), Ok(()));
        assert!(check(&plain, &r1, &[&r1, &r1, &r2]).is_err());
        assert_eq!(check(&plain, &r2, &[&r1, &r1, &r2]), Ok(()));
        // With 3 groups expected, existing groups wait until three are in use.
        let three = compiled(&[json!(["rack", "GROUP_BY", "3"])]);
        assert_eq!(
            check(&three, &r1, &[&r1, &r2]),
            Err("constraint rack:GROUP_BY:3".into())
        );
        assert_eq!(check(&three, &r3, &[&r1, &r2]), Ok(()));
        assert_eq!(check(&three, &r1, &[&r1, &r2, &r3]), Ok(()));
        let rejection = fit(
            &r1,
            &three,
            &Spread::of(&three, [&r1, &r2]),
            PortChoice::Random(1),
        )
        .expect_err("rejected");
        assert!(!rejection.is_permanent(), "GROUP_BY may accept later");
    }

    #[test]
    fn like_unlike_match_the_whole_value() {
        let a = agent("a", &[("rack", "rack-1")]);
        let like = compiled(&[json!(["rack", "LIKE", "rack-[12]"])]);
        assert_eq!(check(&like, &a, &[]), Ok(()));
        let partial = compiled(&[json!(["rack", "LIKE", "rack"])]);
        assert!(check(&partial, &a, &[]).is_err(), "full match only");
        let unlike = compiled(&[json!(["rack", "UNLIKE", "rack-1"])]);
        assert_eq!(
            check(&unlike, &a, &[]),
            Err("constraint rack:UNLIKE:rack-1".into())
        );
        let unlike_other = compiled(&[json!(["rack", "UNLIKE", "rack-2|x"])]);
        assert_eq!(check(&unlike_other, &a, &[]), Ok(()));
        let host = compiled(&[json!(["hostname", "LIKE", "[a-c]"])]);
        assert_eq!(check(&host, &a, &[]), Ok(()));
    }

    #[test]
    fn missing_attribute_only_satisfies_unlike() {
        let bare = agent("a", &[]);
        for (op, value) in [
            ("UNIQUE", None),
            ("CLUSTER", None),
            ("GROUP_BY", None),
            ("LIKE", Some(".*")),
            ("MAX_PER", Some("5")),
            ("IS", Some("x")),
        ] {
            let mut parts = vec![json!("zone"), json!(op)];
            parts.extend(value.map(|v| json!(v)));
            let c = compiled(&[serde_json::Value::Array(parts)]);
            assert!(check(&c, &bare, &[]).is_err(), "{op}");
        }
        let unlike = compiled(&[json!(["zone", "UNLIKE", "a"])]);
        assert_eq!(check(&unlike, &bare, &[]), Ok(()));
    }

    #[test]
    fn max_per_and_is() {
        let a = agent("a", &[("rack", "r1"), ("cores", "4")]);
        let max = compiled(&[json!(["rack", "MAX_PER", "2"])]);
        assert_eq!(check(&max, &a, &[&a]), Ok(()));
        assert_eq!(
            check(&max, &a, &[&a, &a]),
            Err("constraint rack:MAX_PER:2".into())
        );
        let is = compiled(&[json!(["rack", "IS", "r1"])]);
        assert_eq!(check(&is, &a, &[]), Ok(()));
        let is_not = compiled(&[json!(["rack", "IS", "r2"])]);
        assert!(check(&is_not, &a, &[]).is_err());
        let scalar = compiled(&[json!(["cores", "IS", "4.0"])]);
        assert_eq!(
            check(&scalar, &a, &[]),
            Ok(()),
            "scalars compare as numbers"
        );
    }

    #[test]
    fn bad_regex_is_an_error() {
        let error = CompiledRequest::new(&request(&[json!(["rack", "LIKE", "("])]))
            .expect_err("invalid regex");
        assert!(
            matches!(error, SchedulerError::InvalidRegex { .. }),
            "{error}"
        );
    }

    #[test]
    fn resources_are_checked_in_order() {
        let mut a = agent("a", &[]);
        let c = compiled(&[]);
        a.used_cpus = 3.5;
        assert_eq!(check(&c, &a, &[]), Err("insufficient cpus".into()));
        a.used_cpus = 3.0;
        assert_eq!(check(&c, &a, &[]), Ok(()), "an exact fit fits");
        a.used_mem = 4000.0;
        assert_eq!(check(&c, &a, &[]), Err("insufficient mem".into()));
        a.used_mem = 0.0;
        let mut disk = request(&[]);
        disk.disk = 10_001.0;
        let disk = CompiledRequest::new(&disk).expect("compiles");
        assert_eq!(check(&disk, &a, &[]), Err("insufficient disk".into()));
        a.reachable = false;
        assert_eq!(check(&c, &a, &[]), Err("unreachable".into()));
    }

    #[test]
    fn roles() {
        let private = agent("a", &[]);
        let mut public = agent("b", &[]);
        public.role = PUBLIC_ROLE.to_owned();
        let default = compiled(&[]);
        assert_eq!(check(&default, &private, &[]), Ok(()));
        assert_eq!(check(&default, &public, &[]), Err("role".into()));
        let mut only_public = request(&[]);
        only_public.accepted_roles = Some(vec![PUBLIC_ROLE.into()]);
        let only_public = CompiledRequest::new(&only_public).expect("compiles");
        assert_eq!(check(&only_public, &private, &[]), Err("role".into()));
        assert_eq!(check(&only_public, &public, &[]), Ok(()));
        let mut both = request(&[]);
        both.accepted_roles = Some(vec!["*".into(), PUBLIC_ROLE.into()]);
        let both = CompiledRequest::new(&both).expect("compiles");
        assert_eq!(check(&both, &private, &[]), Ok(()));
        assert_eq!(check(&both, &public, &[]), Ok(()));
    }

    #[test]
    fn fixed_and_dynamic_ports() {
        let mut a = agent("a", &[]);
        a.total.ports = vec![
            PortRange {
                begin: 31000,
                end: 31001,
            },
            PortRange {
                begin: 32000,
                end: 32001,
            },
        ];
        let mut req = request(&[]);
        req.ports = vec![0, 32001, 0];
        let c = CompiledRequest::new(&req).expect("compiles");
        for seed in 0..20 {
            let ports = fit(&a, &c, &Spread::default(), PortChoice::Random(seed)).expect("fits");
            assert_eq!(ports.len(), 3);
            assert_eq!(ports[1], 32001);
            assert!(ports.iter().all(|p| a.total.has_port(*p)));
            assert_ne!(ports[0], ports[2]);
            assert!(!ports[..1].contains(&32001) && ports[2] != 32001);
        }
        a.used_ports.insert(31000);
        let mut ports = fit(&a, &c, &Spread::default(), PortChoice::Random(3)).expect("fits");
        assert_eq!(ports[1], 32001);
        ports.sort_unstable();
        assert_eq!(ports, vec![31001, 32000, 32001], "the only free ports");
        a.used_ports.insert(32000);
        assert_eq!(
            fit(&a, &c, &Spread::default(), PortChoice::Random(3)),
            Err(Rejection::InsufficientPorts)
        );
        // A fixed port outside the ranges or taken is refused.
        let mut fixed = request(&[]);
        fixed.ports = vec![80];
        let fixed = CompiledRequest::new(&fixed).expect("compiles");
        assert_eq!(
            check(&fixed, &agent("b", &[]), &[]),
            Err("insufficient ports".into())
        );
    }

    #[test]
    fn verifying_given_ports() {
        let mut a = agent("a", &[]);
        let mut req = request(&[]);
        req.ports = vec![0, 31005];
        let c = CompiledRequest::new(&req).expect("compiles");
        let spread = Spread::default();
        assert_eq!(
            fit(&a, &c, &spread, PortChoice::Given(&[31001, 31005])),
            Ok(vec![31001, 31005])
        );
        for bad in [
            &[31001, 31006][..],
            &[31005, 31005],
            &[31001],
            &[30000, 31005],
        ] {
            assert_eq!(
                fit(&a, &c, &spread, PortChoice::Given(bad)),
                Err(Rejection::InsufficientPorts),
                "{bad:?}"
            );
        }
        a.used_ports.insert(31001);
        assert_eq!(
            fit(&a, &c, &spread, PortChoice::Given(&[31001, 31005])),
            Err(Rejection::InsufficientPorts)
        );
    }
}

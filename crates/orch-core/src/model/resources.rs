//! Agent resources and attributes in Mesos' text syntax
//! (`cpus:4;mem:8192;disk:20000;ports:[31000-32000]`, `rack:r1;zone:a`).

use std::collections::BTreeMap;
use std::fmt;

/// An inclusive range of TCP/UDP port numbers, as Mesos offers them.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct PortRange {
    /// First port of the range.
    pub begin: u16,
    /// Last port of the range (inclusive).
    pub end: u16,
}

impl PortRange {
    /// Number of ports in the range.
    pub fn len(&self) -> usize {
        usize::from(self.end.saturating_sub(self.begin)) + 1
    }

    /// Always false: a range holds at least one port.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// True if `port` lies in the range.
    pub fn contains(&self, port: u16) -> bool {
        (self.begin..=self.end).contains(&port)
    }
}

/// Scalar resources plus port ranges: what an agent offers or a task needs.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Resources {
    /// CPU shares (1.0 = one core).
    pub cpus: f64,
    /// Memory in MiB.
    pub mem: f64,
    /// Disk in MiB.
    pub disk: f64,
    /// Port ranges, sorted and not overlapping.
    pub ports: Vec<PortRange>,
}

/// Agent attributes (`rack:r1;zone:a`), matched by constraints as strings.
pub type Attributes = BTreeMap<String, String>;

/// Text that is not a Mesos resource or attribute list.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} '{item}': {problem}")]
pub struct ResourcesError {
    /// `resource` or `attribute`.
    pub what: &'static str,
    /// The offending `name:value` item.
    pub item: String,
    /// What is wrong with it.
    pub problem: &'static str,
}

impl Resources {
    /// Parses Mesos' `name:value;...` syntax. Scalars are `cpus`, `mem`, `disk`; `ports` is
    /// `[b-e,b-e]`. A role suffix (`cpus(*):4`) is accepted and ignored. Names not given
    /// keep the values of `defaults`.
    pub fn parse_mesos(text: &str, defaults: Resources) -> Result<Self, ResourcesError> {
        let mut resources = defaults;
        for item in text.split(';').map(str::trim).filter(|s| !s.is_empty()) {
            let error = |problem| ResourcesError {
                what: "resource",
                item: item.to_owned(),
                problem,
            };
            let (name, value) = item
                .split_once(':')
                .ok_or_else(|| error("expected name:value"))?;
            let name = name.split('(').next().unwrap_or(name).trim();
            let value = value.trim();
            match name {
                "cpus" | "mem" | "disk" => {
                    let number: f64 = value.parse().map_err(|_| error("not a number"))?;
                    if !number.is_finite() || number < 0.0 {
                        return Err(error("must be a non-negative number"));
                    }
                    match name {
                        "cpus" => resources.cpus = number,
                        "mem" => resources.mem = number,
                        _ => resources.disk = number,
                    }
                }
                "ports" => {
                    resources.ports =
                        parse_ranges(value).ok_or_else(|| error("expected [begin-end,...]"))?
                }
                _ => return Err(error("unknown resource (cpus, mem, disk, ports)")),
            }
        }
        Ok(resources)
    }

    /// Number of ports in all ranges.
    pub fn port_count(&self) -> usize {
        self.ports.iter().map(PortRange::len).sum()
    }

    /// True if `port` is in one of the ranges.
    pub fn has_port(&self, port: u16) -> bool {
        self.ports.iter().any(|range| range.contains(port))
    }
}

impl fmt::Display for Resources {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cpus:{};mem:{};disk:{};ports:{}",
            self.cpus,
            self.mem,
            self.disk,
            format_ranges(&self.ports)
        )
    }
}

/// `[31000-32000,33000-33000]`, as Mesos prints ranges.
pub fn format_ranges(ranges: &[PortRange]) -> String {
    let inner: Vec<String> = ranges
        .iter()
        .map(|r| format!("{}-{}", r.begin, r.end))
        .collect();
    format!("[{}]", inner.join(","))
}

fn parse_ranges(text: &str) -> Option<Vec<PortRange>> {
    let inner = text.strip_prefix('[')?.strip_suffix(']')?;
    let mut ranges = Vec::new();
    for part in inner.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (begin, end) = part.split_once('-').unwrap_or((part, part));
        let begin: u16 = begin.trim().parse().ok()?;
        let end: u16 = end.trim().parse().ok()?;
        if begin > end || begin == 0 {
            return None;
        }
        ranges.push(PortRange { begin, end });
    }
    ranges.sort();
    if ranges.windows(2).any(|pair| pair[0].end >= pair[1].begin) {
        return None;
    }
    Some(ranges)
}

/// Parses Mesos' attribute syntax `name:value;name:value`.
pub fn parse_attributes(text: &str) -> Result<Attributes, ResourcesError> {
    let mut attributes = Attributes::new();
    for item in text.split(';').map(str::trim).filter(|s| !s.is_empty()) {
        let (name, value) = item.split_once(':').ok_or_else(|| ResourcesError {
            what: "attribute",
            item: item.to_owned(),
            problem: "expected name:value",
        })?;
        attributes.insert(name.trim().to_owned(), value.trim().to_owned());
    }
    Ok(attributes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_mesos_resources() {
        let parsed = Resources::parse_mesos(
            "cpus:4;mem:8192;disk:20000;ports:[31000-32000]",
            Resources::default(),
        )
        .expect("valid");
        assert_eq!(parsed.cpus, 4.0);
        assert_eq!(parsed.mem, 8192.0);
        assert_eq!(parsed.disk, 20000.0);
        assert_eq!(
            parsed.ports,
            vec![PortRange {
                begin: 31000,
                end: 32000
            }]
        );
        assert_eq!(parsed.port_count(), 1001);
    }

    #[test]
    fn keeps_defaults_for_missing_names_and_ignores_roles() {
        let defaults = Resources {
            cpus: 2.0,
            mem: 1.0,
            disk: 3.0,
            ports: vec![],
        };
        let parsed = Resources::parse_mesos("cpus(*):1.5", defaults).expect("valid");
        assert_eq!((parsed.cpus, parsed.mem, parsed.disk), (1.5, 1.0, 3.0));
    }

    #[test]
    fn rejects_bad_resources() {
        for bad in [
            "cpus",
            "cpus:x",
            "gpus:1",
            "ports:31000-32000",
            "ports:[2-1]",
            "mem:-1",
            "ports:[1-10,5-20]",
        ] {
            assert!(
                Resources::parse_mesos(bad, Resources::default()).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn parses_attributes() {
        let attributes = parse_attributes("rack:r1; zone:a").expect("valid");
        assert_eq!(attributes.get("rack").map(String::as_str), Some("r1"));
        assert_eq!(attributes.get("zone").map(String::as_str), Some("a"));
        assert!(parse_attributes("rack").is_err());
    }
}

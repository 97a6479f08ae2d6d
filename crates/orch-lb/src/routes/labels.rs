//! marathon-lb's labels of one app port, read leniently: a value that does not parse counts
//! as absent (or as the documented default), never as an error, because labels are free text
//! that nobody validated.
//!
//! A port's label `HAPROXY_{n}_X` is looked up in the port's own labels
//! (`portDefinitions[n].labels` or `portMappings[n].labels`) first, then in the app's labels,
//! so a port can override what the app says. `HAPROXY_GROUP` is looked up the same way.
//!
//! May depend on: std, model.

use orch_core::model::AppSpec;
use std::collections::BTreeMap;
use std::net::IpAddr;

/// The labels that apply to port index `n` of one app.
#[derive(Clone, Copy, Debug)]
pub(super) struct PortLabels<'a> {
    index: usize,
    port: Option<&'a BTreeMap<String, String>>,
    app: &'a BTreeMap<String, String>,
}

/// The explicit `HAPROXY_{n}_MODE`, when it names a mode we know.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ModeLabel {
    Tcp,
    Http,
}

impl<'a> PortLabels<'a> {
    /// The labels of port `index` of `spec`.
    pub(super) fn new(spec: &'a AppSpec, index: usize) -> Self {
        Self {
            index,
            port: port_labels(spec, index),
            app: &spec.labels,
        }
    }

    /// `HAPROXY_{n}_<name>`, the port's value first, trimmed; empty counts as absent.
    pub(super) fn get(&self, name: &str) -> Option<&'a str> {
        let key = format!("HAPROXY_{}_{name}", self.index);
        self.lookup(&key)
    }

    fn lookup(&self, key: &str) -> Option<&'a str> {
        self.port
            .and_then(|labels| labels.get(key))
            .or_else(|| self.app.get(key))
            .map(|value| value.trim())
            .filter(|value| !value.is_empty())
    }

    /// The groups this port belongs to: `HAPROXY_{n}_GROUP`, else `HAPROXY_GROUP`
    /// (comma lists; empty entries dropped).
    pub(super) fn groups(&self) -> Vec<&'a str> {
        let value = self
            .get("GROUP")
            .or_else(|| self.lookup("HAPROXY_GROUP"))
            .unwrap_or("");
        value
            .split(',')
            .map(str::trim)
            .filter(|group| !group.is_empty())
            .collect()
    }

    /// A boolean label as marathon-lb reads it: `true`, `t`, `yes`, `y` (any case) are true,
    /// anything else false; `None` when absent.
    pub(super) fn flag(&self, name: &str) -> Option<bool> {
        self.get(name).map(|value| {
            matches!(
                value.to_ascii_lowercase().as_str(),
                "true" | "t" | "yes" | "y"
            )
        })
    }

    /// `HAPROXY_{n}_MODE` when it is `tcp` or `http` (any case).
    pub(super) fn mode(&self) -> Option<ModeLabel> {
        match self.get("MODE")?.to_ascii_lowercase().as_str() {
            "tcp" => Some(ModeLabel::Tcp),
            "http" => Some(ModeLabel::Http),
            _ => None,
        }
    }

    /// `HAPROXY_{n}_VHOST`: lowercase host names, in label order, without duplicates. Names
    /// with whitespace, control characters or `#` cannot be matched or written into a
    /// config and are left out.
    pub(super) fn vhosts(&self) -> Vec<String> {
        let mut hosts: Vec<String> = Vec::new();
        for host in self.get("VHOST").unwrap_or("").split(',') {
            let host = host.trim().to_lowercase();
            let usable = !host.is_empty()
                && !host
                    .chars()
                    .any(|c| c.is_whitespace() || c.is_control() || c == '#');
            if usable && !hosts.contains(&host) {
                hosts.push(host);
            }
        }
        hosts
    }

    /// `HAPROXY_{n}_PATH`: the prefixes and whether a leading `-i` asked to ignore case.
    pub(super) fn paths(&self) -> (Vec<String>, bool) {
        let mut words = self.get("PATH").unwrap_or("").split_whitespace().peekable();
        let ignore_case = words.peek() == Some(&"-i");
        if ignore_case {
            words.next();
        }
        (words.map(str::to_owned).collect(), ignore_case)
    }

    /// `HAPROXY_{n}_BACKEND_WEIGHT`, 0 when absent or not an integer.
    pub(super) fn weight(&self) -> i64 {
        self.get("BACKEND_WEIGHT")
            .and_then(|value| value.parse().ok())
            .unwrap_or(0)
    }

    /// `HAPROXY_{n}_PORT` when it is a port number other than 0.
    pub(super) fn port(&self) -> Option<u16> {
        self.get("PORT")
            .and_then(|value| value.parse().ok())
            .filter(|port| *port != 0)
    }

    /// `HAPROXY_{n}_BIND_ADDR` when it is an IP (with or without IPv6 brackets); `*` and
    /// anything else bind the load balancer's own address.
    pub(super) fn bind_addr(&self) -> Option<IpAddr> {
        let value = self.get("BIND_ADDR")?;
        let bare = value
            .strip_prefix('[')
            .and_then(|v| v.strip_suffix(']'))
            .unwrap_or(value);
        bare.parse().ok()
    }

    /// The port's `VIP*` labels (dcos-net counts every key starting with `VIP` or `vip`), in
    /// key order. Only the port's own labels: VIPs are per port.
    pub(super) fn vips(&self) -> Vec<&'a str> {
        self.port
            .into_iter()
            .flatten()
            .filter(|(key, _)| key.starts_with("VIP") || key.starts_with("vip"))
            .map(|(_, value)| value.trim())
            .collect()
    }
}

/// The labels of port `index` of `spec`: its port definition under host networking, its
/// port mapping otherwise.
fn port_labels(spec: &AppSpec, index: usize) -> Option<&BTreeMap<String, String>> {
    if spec.host_networking() {
        spec.port_definitions.get(index).map(|port| &port.labels)
    } else {
        spec.port_mappings().get(index).map(|port| &port.labels)
    }
}

/// A named VIP label value, `/name:port` (split at the last `:`; the port a positive
/// integer): the name without its leading `/`, and the port. IP VIPs (`1.2.3.4:5000`) and
/// anything else give `None`.
pub(super) fn named_vip(value: &str) -> Option<(String, u16)> {
    let (name, port) = value.trim().rsplit_once(':')?;
    let port: u16 = port.parse().ok().filter(|port| *port != 0)?;
    let bare = name.trim_start_matches('[').trim_end_matches(']');
    if bare.parse::<IpAddr>().is_ok() {
        return None;
    }
    let name = name.trim_start_matches('/');
    if name.is_empty() {
        return None;
    }
    Some((name.to_owned(), port))
}

//! A [`Snapshot`] becomes a [`Zone`]: Mesos-DNS's record grammar for Marathon tasks, masters
//! and agents, plus dcos-net's VIP names. Pure: same snapshot and config, same zone.
//!
//! With `D` the domain, `F` = `marathon`, `T` a task name, `H` its 5-character hash and `S`
//! its agent's id tail (see [`super::names`]):
//!
//! | name | values |
//! | --- | --- |
//! | `T.F.D.`, `T-H-S.F.D.` | A/AAAA: the task's IPs (its own, else its agent's) |
//! | `T.F.slave.D.`, `T-H-S.F.slave.D.` | A/AAAA: its agent's IP |
//! | `_T._tcp.F.slave.D.`, `_T._udp.F.slave.D.` | SRV `T-H-S.F.slave.D.`: each host port |
//! | `_T._<proto>.F.D.`, `_<port name>._T._<proto>.F.D.` | SRV `T-H-S.F.D.`: each discovery port |
//! | `leader.D.`, `F.D.` | A/AAAA: the leading master |
//! | `_leader._tcp.D.`, `_leader._udp.D.`, `_framework._tcp.F.D.` | SRV to those, its port |
//! | `master.D.`, `masterN.D.` | A/AAAA: every master, one master each |
//! | `slave.D.`, `agent.D.`; `_slave._tcp.D.` | A/AAAA: every reachable agent; SRV: its port |
//! | the SOA mname | A/AAAA: [`ZoneConfig::ns_addresses`] |
//! | `<vip>.F.l4lb.thisdcos.directory.` | A/AAAA: [`ZoneConfig::vip_addresses`] |
//!
//! `T` is Marathon's task name of the app (`/prod/web` gives `web.prod`) made one RFC 1123
//! label (`web-prod`). As in Mesos-DNS, every task name record also exists under the
//! unmangled name (`web.prod.marathon.mesos.`) when that differs and is a valid name.
//! Discovery ports are the ones Marathon puts in a task's DiscoveryInfo: each port
//! definition with the task's host port, or each port mapping with its host port (or its
//! container port when it has none). Names or SRV targets that break DNS length limits are
//! left out.
//!
//! May depend on: model, state, [`super::names`], [`super::zone`].

use super::names::{
    agent_tail, app_task_name, is_valid_name, normalize_query, task_hash, task_label, vip_name,
};
use super::zone::{
    EnumeratedFramework, EnumeratedRecord, EnumeratedTask, RecordSet, Soa, Srv, Zone, ZoneConfig,
    VIP_APEX,
};
use orch_core::model::{parse_ip, split_host_port, Agent, App, Task};
use orch_core::state::{serves, Snapshot};
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The framework name in task names: orch's scheduler is Marathon.
const FRAMEWORK: &str = "marathon";

/// The zone of `snapshot`: see the module docs for the names. Tasks count while they are
/// `TASK_RUNNING`, still wanted (not decommissioned) and on a known, reachable agent; with
/// [`ZoneConfig::healthy_only`], tasks of apps with health checks also need all checks
/// passing. Values are deduplicated and sorted; `frameworks` lists tasks by id.
pub fn records(snapshot: &Snapshot, config: &ZoneConfig) -> Zone {
    let mut zone = Builder::new(config);
    zone.name_server();
    zone.masters(snapshot.leader.as_deref(), &snapshot.masters);
    zone.agents(snapshot.agents.values().map(AsRef::as_ref));
    let mut tasks = Vec::new();
    let mut apps_with_tasks = BTreeSet::new();
    for task in snapshot.tasks.values() {
        let Some(agent) = snapshot.agents.get(&task.agent_id) else {
            continue;
        };
        let app = snapshot.apps.get(&task.app_id).map(AsRef::as_ref);
        if !serves(task, agent, app, config.healthy_only) {
            continue;
        }
        apps_with_tasks.insert(&task.app_id);
        tasks.push(zone.task(task, agent, app));
    }
    for app_id in apps_with_tasks {
        if let Some(app) = snapshot.apps.get(app_id) {
            zone.vips(app);
        }
    }
    zone.finish(snapshot.applied_index, tasks)
}

/// One record value.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Value {
    Ip(IpAddr),
    Srv(Srv),
}

/// The values of one name while the zone is built (sorted, without duplicates).
#[derive(Default)]
struct Values {
    a: BTreeSet<Ipv4Addr>,
    aaaa: BTreeSet<Ipv6Addr>,
    srv: BTreeSet<Srv>,
}

/// The zone under construction.
struct Builder<'a> {
    config: &'a ZoneConfig,
    /// `D.` (`mesos.`).
    apex: String,
    names: BTreeMap<String, Values>,
}

/// One port of a task's DiscoveryInfo.
struct DiscoveryPort {
    number: u16,
    protocols: Vec<String>,
    name: Option<String>,
}

impl<'a> Builder<'a> {
    fn new(config: &'a ZoneConfig) -> Self {
        Self {
            config,
            apex: format!("{}.", config.domain),
            names: BTreeMap::new(),
        }
    }

    /// Adds `value` to `name`; false (and nothing added) when the name or SRV target is not
    /// a valid DNS name.
    fn insert(&mut self, name: &str, value: &Value) -> bool {
        if !is_valid_name(name) {
            return false;
        }
        if let Value::Srv(srv) = value {
            if !is_valid_name(&srv.target) {
                return false;
            }
        }
        let values = self.names.entry(name.to_owned()).or_default();
        match value {
            Value::Ip(IpAddr::V4(ip)) => values.a.insert(*ip),
            Value::Ip(IpAddr::V6(ip)) => values.aaaa.insert(*ip),
            Value::Srv(srv) => values.srv.insert(srv.clone()),
        };
        true
    }

    fn ip(&mut self, name: &str, ip: IpAddr) {
        self.insert(name, &Value::Ip(ip));
    }

    fn srv(&mut self, name: &str, target: &str, port: u16) {
        let srv = self.srv_value(target, port);
        self.insert(name, &Value::Srv(srv));
    }

    fn srv_value(&self, target: &str, port: u16) -> Srv {
        Srv {
            target: target.to_owned(),
            port,
            priority: 0,
            weight: self.config.srv_weight,
        }
    }

    /// The SOA mname's addresses.
    fn name_server(&mut self) {
        let name = normalize_query(&self.config.soa_mname);
        for ip in &self.config.ns_addresses {
            self.ip(&name, *ip);
        }
    }

    /// `leader`, `master`, `masterN` and the framework's records. Every master whose host is
    /// an IP gets the next `masterN` (a repeated address only once); the leader gets one more
    /// when it is not in the list.
    fn masters(&mut self, leader: Option<&str>, masters: &[String]) {
        let apex = self.apex.clone();
        let leader = leader.and_then(address);
        if let Some((ip, port)) = leader {
            let framework = format!("{FRAMEWORK}.{apex}");
            self.ip(&format!("leader.{apex}"), ip);
            self.ip(&format!("master.{apex}"), ip);
            self.ip(&framework, ip);
            if let Some(port) = port {
                let target = format!("leader.{apex}");
                self.srv(&format!("_leader._tcp.{apex}"), &target, port);
                self.srv(&format!("_leader._udp.{apex}"), &target, port);
                self.srv(&format!("_framework._tcp.{framework}"), &framework, port);
            }
        }
        let mut indexed = Vec::new();
        for master in masters.iter().filter_map(|master| address(master)) {
            if indexed.contains(&master) {
                continue;
            }
            self.ip(&format!("master.{apex}"), master.0);
            self.ip(&format!("master{}.{apex}", indexed.len()), master.0);
            indexed.push(master);
        }
        if let Some(leader) = leader.filter(|leader| !indexed.contains(leader)) {
            self.ip(&format!("master{}.{apex}", indexed.len()), leader.0);
        }
    }

    /// `slave`, `agent` and `_slave._tcp` of every reachable agent.
    fn agents<'b>(&mut self, agents: impl Iterator<Item = &'b Agent>) {
        let apex = self.apex.clone();
        for agent in agents.filter(|agent| agent.is_reachable()) {
            let port = split_host_port(&agent.info.address).1;
            if let Some(ip) = agent.ip() {
                self.ip(&format!("slave.{apex}"), ip);
                self.ip(&format!("agent.{apex}"), ip);
                if let Some(port) = port {
                    self.srv(
                        &format!("_slave._tcp.{apex}"),
                        &format!("slave.{apex}"),
                        port,
                    );
                }
            }
        }
    }

    /// The records of one eligible task, added to the zone and listed for `/v1/enumerate`.
    fn task(&mut self, task: &Task, agent: &Agent, app: Option<&App>) -> EnumeratedTask {
        let raw = app_task_name(&task.app_id);
        let label = task_label(&raw);
        let agent_ip = agent.ip();
        let mut task_ips: Vec<IpAddr> = task
            .ip_addresses
            .iter()
            .filter_map(|ip| ip.trim().parse().ok())
            .collect();
        if task_ips.is_empty() {
            task_ips.extend(agent_ip);
        }
        let ports = app
            .map(|app| discovery_ports(app, task))
            .unwrap_or_default();
        let hash = task_hash(&task.id.0);
        let tail = agent_tail(&task.agent_id.0);
        let mut records: Vec<(String, Value)> = Vec::new();
        let names = [label.as_str(), raw.as_str()];
        for (i, name) in names.iter().enumerate() {
            if name.is_empty() || names[..i].contains(name) {
                continue;
            }
            let context = TaskNames::new(name, &hash, &tail, &self.apex, self.config.srv_weight);
            context.records(&task_ips, agent_ip, &task.ports, &ports, &mut |n, v| {
                records.push((n, v));
            });
        }
        let mut listed = Vec::new();
        for (name, value) in records {
            if self.insert(&name, &value) {
                let record = enumerated(name, &value);
                if !listed.contains(&record) {
                    listed.push(record);
                }
            }
        }
        EnumeratedTask {
            name: label,
            id: task.id.0.clone(),
            records: listed,
        }
    }

    /// The VIP names of `app` (which has eligible tasks).
    fn vips(&mut self, app: &App) {
        if self.config.vip_addresses.is_empty() {
            return;
        }
        let spec = &app.spec;
        let labels: Vec<_> = if spec.host_networking() {
            spec.port_definitions.iter().map(|p| &p.labels).collect()
        } else {
            spec.port_mappings().iter().map(|p| &p.labels).collect()
        };
        let names: BTreeSet<String> = labels
            .into_iter()
            .flatten()
            .filter(|(key, _)| key.starts_with("VIP") || key.starts_with("vip"))
            .filter_map(|(_, value)| named_vip(value))
            .collect();
        for name in names {
            let fqdn = format!("{name}.{}.{VIP_APEX}", vip_name(FRAMEWORK));
            let config = self.config;
            for ip in &config.vip_addresses {
                self.ip(&fqdn, *ip);
            }
        }
    }

    fn finish(self, serial: u64, tasks: Vec<EnumeratedTask>) -> Zone {
        let config = self.config;
        let names = self
            .names
            .into_iter()
            .map(|(name, values)| {
                let set = RecordSet {
                    a: values.a.into_iter().collect(),
                    aaaa: values.aaaa.into_iter().collect(),
                    srv: values.srv.into_iter().collect(),
                };
                (name, set)
            })
            .collect();
        Zone {
            apex: self.apex,
            ttl: config.ttl,
            soa: Soa {
                mname: normalize_query(&config.soa_mname),
                rname: normalize_query(&config.soa_rname),
                // The low 32 bits of the Raft index: it only grows until it wraps.
                serial: u32::try_from(serial & u64::from(u32::MAX)).unwrap_or(u32::MAX),
                refresh: config.soa_refresh,
                retry: config.soa_retry,
                expire: config.soa_expire,
                minimum: config.ttl,
            },
            names,
            frameworks: vec![EnumeratedFramework {
                name: FRAMEWORK.to_owned(),
                tasks,
            }],
        }
    }
}

/// The names of one task under one task name `T`.
struct TaskNames<'a> {
    name: &'a str,
    /// SRV weight.
    weight: u16,
    /// `T.F.D.`
    plain: String,
    /// `T-H-S.F.D.`
    canonical: String,
    /// `T.F.slave.D.`
    slave_plain: String,
    /// `T-H-S.F.slave.D.`
    slave_canonical: String,
    /// `F.D.`
    framework: String,
    /// `F.slave.D.`
    slave_framework: String,
}

impl<'a> TaskNames<'a> {
    fn new(name: &'a str, hash: &str, tail: &str, apex: &str, weight: u16) -> Self {
        let framework = format!("{FRAMEWORK}.{apex}");
        let slave_framework = format!("{FRAMEWORK}.slave.{apex}");
        Self {
            name,
            weight,
            plain: format!("{name}.{framework}"),
            canonical: format!("{name}-{hash}-{tail}.{framework}"),
            slave_plain: format!("{name}.{slave_framework}"),
            slave_canonical: format!("{name}-{hash}-{tail}.{slave_framework}"),
            framework,
            slave_framework,
        }
    }

    /// Calls `emit` with every record, in Mesos-DNS's order.
    fn records(
        &self,
        task_ips: &[IpAddr],
        agent_ip: Option<IpAddr>,
        host_ports: &[u16],
        discovery: &[DiscoveryPort],
        emit: &mut dyn FnMut(String, Value),
    ) {
        for ip in task_ips {
            emit(self.plain.clone(), Value::Ip(*ip));
            emit(self.canonical.clone(), Value::Ip(*ip));
        }
        if let Some(ip) = agent_ip {
            emit(self.slave_plain.clone(), Value::Ip(ip));
            emit(self.slave_canonical.clone(), Value::Ip(ip));
        }
        let srv = |target: &str, port: u16| {
            Value::Srv(Srv {
                target: target.to_owned(),
                port,
                priority: 0,
                weight: self.weight,
            })
        };
        let name = self.name;
        for port in host_ports.iter().copied().filter(|port| *port != 0) {
            for proto in ["tcp", "udp"] {
                emit(
                    format!("_{name}._{proto}.{}", self.slave_framework),
                    srv(&self.slave_canonical, port),
                );
            }
        }
        for port in discovery {
            for proto in &port.protocols {
                let service = format!("_{name}._{proto}.{}", self.framework);
                emit(service.clone(), srv(&self.canonical, port.number));
                if let Some(port_name) = &port.name {
                    emit(
                        format!("_{port_name}.{service}"),
                        srv(&self.canonical, port.number),
                    );
                }
            }
        }
    }
}

/// The `/v1/enumerate` form of a record.
fn enumerated(name: String, value: &Value) -> EnumeratedRecord {
    let (host, rtype) = match value {
        Value::Ip(IpAddr::V4(ip)) => (ip.to_string(), "A"),
        Value::Ip(IpAddr::V6(ip)) => (ip.to_string(), "AAAA"),
        Value::Srv(srv) => (format!("{}:{}", srv.target, srv.port), "SRV"),
    };
    EnumeratedRecord { name, host, rtype }
}

/// The DiscoveryInfo ports Marathon gives `task` of `app`: under host networking each port
/// definition with the task's host port at the same index; otherwise each port mapping with
/// its allocated host port (host ports are allocated in mapping order, only for mappings
/// with a `hostPort`), or its container port when it has none. Ports without a number (0)
/// are left out.
fn discovery_ports(app: &App, task: &Task) -> Vec<DiscoveryPort> {
    let spec = &app.spec;
    let mut host_ports = task.ports.iter().copied();
    let ports: Vec<(u16, &str, Option<&str>)> = if spec.host_networking() {
        spec.port_definitions
            .iter()
            .map(|definition| {
                let number = host_ports.next().unwrap_or(0);
                (
                    number,
                    definition.protocol.as_str(),
                    definition.name.as_deref(),
                )
            })
            .collect()
    } else {
        spec.port_mappings()
            .iter()
            .map(|mapping| {
                let number = match mapping.host_port {
                    Some(_) => host_ports.next().unwrap_or(0),
                    None => mapping.container_port,
                };
                (number, mapping.protocol.as_str(), mapping.name.as_deref())
            })
            .collect()
    };
    ports
        .into_iter()
        .filter(|(number, _, _)| *number != 0)
        .map(|(number, protocol, name)| DiscoveryPort {
            number,
            protocols: protocols(protocol),
            name: name.map(task_label).filter(|name| !name.is_empty()),
        })
        .collect()
}

/// The protocols of a port (`udp,tcp` gives both, as Marathon makes one DiscoveryInfo port
/// per protocol); none given means both `tcp` and `udp`, as in Mesos-DNS.
fn protocols(protocol: &str) -> Vec<String> {
    let mut list: Vec<String> = Vec::new();
    for proto in protocol.split(',').map(task_label) {
        if !proto.is_empty() && !list.contains(&proto) {
            list.push(proto);
        }
    }
    if list.is_empty() {
        list = vec!["tcp".to_owned(), "udp".to_owned()];
    }
    list
}

/// The name part of a VIP label value (`/my-service:5555` gives `my-service`): split at the
/// last `:`, the port must be a positive integer; IP VIPs (`1.2.3.4:5000`) have no name.
fn named_vip(value: &str) -> Option<String> {
    let (vip, port) = value.rsplit_once(':')?;
    if port.parse::<u16>().ok()? == 0 {
        return None;
    }
    let bare = vip.trim_start_matches('[').trim_end_matches(']');
    if bare.parse::<IpAddr>().is_ok() {
        return None;
    }
    Some(vip_name(vip)).filter(|name| !name.is_empty())
}

/// `host:port` as an IP and an optional port; `None` when the host is not an IP.
fn address(text: &str) -> Option<(IpAddr, Option<u16>)> {
    let (host, port) = split_host_port(text);
    Some((parse_ip(host)?, port))
}

#[cfg(test)]
mod tests;

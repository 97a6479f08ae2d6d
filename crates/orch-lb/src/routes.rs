//! A [`Snapshot`] becomes a [`RoutingTable`] under marathon-lb's labels. Pure: the same
//! snapshot and [`RouteConfig`] give the same table; no I/O, no clock, and no label value
//! can make it fail (a value that does not parse counts as absent, see `labels`).
//!
//! **Which apps and ports.** Every port index `n` of an app with a service port (or a
//! `HAPROXY_{n}_PORT`) other than 0 is a candidate. It is taken when its groups
//! (`HAPROXY_{n}_GROUP`, else `HAPROXY_GROUP`; comma lists) meet [`RouteConfig::groups`] (a
//! `*` there takes every port, grouped or not; a port without a group is taken only by `*`)
//! and it is enabled (`HAPROXY_{n}_ENABLED`; a port is enabled by default unless
//! [`RouteConfig::strict_mode`]). Labels are looked up in the port's own labels first, then
//! in the app's. As in marathon-lb, a port with no server in rotation is left out entirely
//! (no backend, no listener, no vhost rule).
//!
//! **Which tasks.** A task serves while it is `TASK_RUNNING`, its goal is still Running (a
//! decommissioned task leaves the rotation at once, before it is killed) and its agent is
//! known and reachable; with [`RouteConfig::health_check`], tasks of apps with health checks
//! also need every check passing: [`orch_core::state::serves`], the rule DNS follows too.
//!
//! **Where traffic goes** (marathon-lb's `get_task_ip_and_ports`): a host-networking port,
//! or a port mapping with a host port, is reached at the agent's IP (the host of its address,
//! else its hostname when that is an IP; the task's first IP when the agent has none) and
//! the task's host port; a port mapping without a host port (a container network) at the
//! task's own first IP and the container port. No name lookups happen here: a task with no
//! usable IP is not served.
//!
//! **Modes and rules.** `HAPROXY_{n}_MODE` (`tcp`/`http`, any case; other values count as
//! unset) wins; unset, a port whose health check (chosen as below) uses Marathon's `HTTP`
//! protocol is http (marathon-lb's code, not its docs, which list four protocols), then a
//! port with a `HAPROXY_{n}_VHOST` is http, else tcp. Host rules, the app-id map,
//! stickiness, redirects and HSTS exist only for http-mode ports: a VHOST on a port forced to
//! tcp is ignored. Each VHOST name (comma list, lowercased) gives one [`VhostRoute`] with the
//! port's `HAPROXY_{n}_PATH` prefixes (space-separated, an optional leading `-i`). Rules are
//! ordered by `HAPROXY_{n}_BACKEND_WEIGHT`, larger first (a port with PATH and weight 0
//! weighs 1, as in marathon-lb), then rules with paths before rules without, then app id and
//! port index. The app-id map sends each app id to its first http-mode port (by port index).
//!
//! **Health checks** ([`BackendCheck`], marathon-lb's translation): the first Marathon
//! check that has a fixed `port`, or else whose `portIndex` is `n`. tcp-mode ports and
//! `TCP`/`MESOS_TCP` checks get a plain connect check; other checks on http-mode ports an
//! `httpchk GET <path>` (`/` without one). `fall` is maxConsecutiveFailures + 1.
//!
//! **Names.** A backend and its own listener are `<id without the leading '/', '/' as
//! '_'>_<port>` (characters outside `[A-Za-z0-9_.-]` become `_`), where port is
//! `HAPROXY_{n}_PORT` or the service port; a server is `<agent hostname>_<ip>_<port>` (or
//! `<ip>_<port>` when the hostname is the IP) with characters outside `[A-Za-z0-9-]` made
//! `_` (marathon-lb's rule).
//!
//! **Blue/green** (marathon-lb's zdd): apps sharing `HAPROXY_DEPLOYMENT_GROUP` are served as
//! one app whose id is the group (with a leading `/`): one backend per port, named after the
//! group and `HAPROXY_{n}_PORT` (zdd pins `HAPROXY_0_PORT` to the original service port),
//! holding the servers of every colour at that port index, so traffic shifts with the
//! instance ratio. Labels and ports come from the app with the latest
//! `HAPROXY_DEPLOYMENT_STARTED_AT` (unparseable or missing counts as oldest; ties go to the
//! larger app id). marathon-lb itself keeps the older app's labels; we take the newer
//! colour's, so a label change ships with the new colour. A single app with the label is
//! also renamed to its group, as marathon-lb does.
//!
//! **VIPs** (dcos-net's layer-4 VIPs): a port label whose key starts with `VIP`/`vip` and
//! whose value is a named VIP `/name:port` gives a tcp listener on that port, named
//! `vip_<name>_<port>` with `/` in the name as `_`, sending to its own backend of the same
//! name (least connections, like dcos-net's IPVS `wlc`) that holds the servers of every app
//! port carrying that VIP: several apps sharing a VIP share one listener. IP VIPs
//! (`1.2.3.4:5000`) are left to the network. VIPs ignore `HAPROXY_*` groups and strict mode:
//! they are a cluster-wide name, so every load balancer serves them.
//!
//! **Conflicts**, resolved deterministically: apps and deployment groups are visited in id
//! order (an app before a deployment group of the same id), ports in index order, VIPs after
//! all of them in (name, port) order. A backend name already taken leaves the later port out;
//! a (bind address, port) already taken leaves the later port without a listener of its own
//! (its backend, vhost rules and app-id entry stay).
//!
//! May depend on: model, state, [`super::table`].

mod labels;

use self::labels::{named_vip, ModeLabel, PortLabels};
use super::table::{
    Backend, BackendCheck, Balance, Frontend, FrontendKind, Mode, RouteConfig, RoutingTable,
    Server, VhostRoute,
};
use orch_core::model::{parse_ip, Agent, App, AppId, HealthCheck, HealthProtocol, Task};
use orch_core::model::{AppSpec, Timestamp};
use orch_core::state::{serves, Snapshot};
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;

/// The app label naming a blue/green deployment group.
const DEPLOYMENT_GROUP: &str = "HAPROXY_DEPLOYMENT_GROUP";
/// The app label zdd sets to when a colour's deployment started.
const DEPLOYMENT_STARTED_AT: &str = "HAPROXY_DEPLOYMENT_STARTED_AT";

/// The routing table of `snapshot`: see the module docs.
pub fn routes(snapshot: &Snapshot, config: &RouteConfig) -> RoutingTable {
    let tasks = eligible_tasks(snapshot, config);
    let mut table = Builder::default();
    for service in services(snapshot) {
        table.service(&service, &tasks, config);
    }
    for app in snapshot.apps.values() {
        table.vips(app, &tasks);
    }
    table.finish(snapshot.applied_index)
}

/// The tasks in rotation, with their agents, by app (each list in task id order).
type Eligible<'a> = BTreeMap<&'a AppId, Vec<(&'a Task, &'a Agent)>>;

fn eligible_tasks<'a>(snapshot: &'a Snapshot, config: &RouteConfig) -> Eligible<'a> {
    let mut tasks: Eligible<'a> = BTreeMap::new();
    for task in snapshot.tasks.values() {
        let Some(agent) = snapshot.agents.get(&task.agent_id) else {
            continue;
        };
        let Some(app) = snapshot.apps.get(&task.app_id) else {
            continue;
        };
        if serves(task, agent, Some(app), config.health_check) {
            tasks
                .entry(&task.app_id)
                .or_default()
                .push((task.as_ref(), agent.as_ref()));
        }
    }
    tasks
}

/// One app as the load balancer sees it: a plain app, or a blue/green deployment group.
#[derive(Debug)]
struct Service<'a> {
    /// `/prod/web`, or the deployment group (`/web`).
    id: String,
    /// The id for [`Backend::app_id`]: the group's when it is a valid app id, else the
    /// labelling app's.
    app_id: AppId,
    /// The app whose ports and labels count.
    labels_from: &'a App,
    /// Every app whose tasks serve (both colours of a deployment group).
    members: Vec<&'a App>,
    /// A deployment group (sorts after an app of the same id).
    grouped: bool,
}

/// Every app and deployment group, in the order conflicts are resolved (see module docs).
fn services(snapshot: &Snapshot) -> Vec<Service<'_>> {
    let mut services = Vec::new();
    let mut groups: BTreeMap<String, Vec<&App>> = BTreeMap::new();
    for app in snapshot.apps.values() {
        match app.spec.labels.get(DEPLOYMENT_GROUP).map(|g| g.trim()) {
            Some(group) if !group.is_empty() => {
                let id = if group.starts_with('/') {
                    group.to_owned()
                } else {
                    format!("/{group}")
                };
                groups.entry(id).or_default().push(app);
            }
            _ => services.push(Service {
                id: app.id.as_str().to_owned(),
                app_id: app.id.clone(),
                labels_from: app,
                members: vec![app],
                grouped: false,
            }),
        }
    }
    for (id, members) in groups {
        let newest = members
            .iter()
            .copied()
            .max_by(|a, b| (started_at(a), &a.id).cmp(&(started_at(b), &b.id)));
        let Some(labels_from) = newest else {
            continue;
        };
        services.push(Service {
            app_id: AppId::parse(&id).unwrap_or_else(|_| labels_from.id.clone()),
            id,
            labels_from,
            members,
            grouped: true,
        });
    }
    services.sort_by(|a, b| (&a.id, a.grouped).cmp(&(&b.id, b.grouped)));
    services
}

/// `HAPROXY_DEPLOYMENT_STARTED_AT` of `app`; `None` (older than any time) when absent or
/// not a timestamp.
fn started_at(app: &App) -> Option<Timestamp> {
    let text = app.spec.labels.get(DEPLOYMENT_STARTED_AT)?;
    Timestamp::parse(text.trim()).ok()
}

/// The table under construction.
#[derive(Default)]
struct Builder {
    backends: BTreeMap<String, Arc<Backend>>,
    /// Listener candidates in priority order.
    frontends: Vec<Frontend>,
    /// Host rules with their weights, in visiting order.
    vhosts: Vec<(i64, VhostRoute)>,
    app_ids: BTreeMap<String, String>,
    /// Named VIPs by (name, port): the first app carrying it and the servers.
    vips: BTreeMap<(String, u16), (AppId, BTreeMap<String, Server>)>,
}

impl Builder {
    /// The ports of one app or deployment group.
    fn service(&mut self, service: &Service<'_>, tasks: &Eligible<'_>, config: &RouteConfig) {
        let spec = &service.labels_from.spec;
        for (index, service_port) in spec.service_ports().into_iter().enumerate() {
            let labels = PortLabels::new(spec, index);
            if !in_groups(&labels.groups(), &config.groups)
                || !labels.flag("ENABLED").unwrap_or(!config.strict_mode)
            {
                continue;
            }
            let port = labels.port().unwrap_or(service_port);
            if port == 0 {
                continue;
            }
            let name = backend_name(&service.id, port);
            if self.backends.contains_key(&name) {
                continue;
            }
            let servers = servers(&service.members, tasks, index);
            if servers.is_empty() {
                continue;
            }
            let check = select_check(spec.health_checks(), index);
            let vhosts = labels.vhosts();
            let mode = match labels.mode() {
                Some(ModeLabel::Http) => Mode::Http,
                Some(ModeLabel::Tcp) => Mode::Tcp,
                None if check.is_some_and(|c| c.protocol == HealthProtocol::Http) => Mode::Http,
                None if !vhosts.is_empty() => Mode::Http,
                None => Mode::Tcp,
            };
            let http = mode == Mode::Http;
            let ssl_cert = labels.get("SSL_CERT").map(str::to_owned);
            let backend = Backend {
                name: name.clone(),
                app_id: service.app_id.clone(),
                service_port: port,
                mode,
                balance: balance(labels.get("BALANCE")),
                sticky: http && labels.flag("STICKY").unwrap_or(false),
                redirect_to_https: http && labels.flag("REDIRECT_TO_HTTPS").unwrap_or(false),
                hsts: http && labels.flag("USE_HSTS").unwrap_or(false),
                health_check: check.map(|check| backend_check(check, mode)),
                servers,
            };
            self.backends.insert(name.clone(), Arc::new(backend));
            self.frontends.push(Frontend {
                name: name.clone(),
                bind_addr: labels.bind_addr(),
                port,
                mode,
                ssl_cert: ssl_cert.clone(),
                backend: name.clone(),
                kind: FrontendKind::Service,
            });
            if http {
                let (paths, paths_ignore_case) = labels.paths();
                let weight = match labels.weight() {
                    0 if !paths.is_empty() => 1,
                    weight => weight,
                };
                for host in vhosts {
                    let route = VhostRoute {
                        host,
                        paths: paths.clone(),
                        paths_ignore_case,
                        backend: name.clone(),
                        ssl_cert: ssl_cert.clone(),
                    };
                    self.vhosts.push((weight, route));
                }
                self.app_ids.entry(service.id.clone()).or_insert(name);
            }
        }
    }

    /// The named VIPs on the ports of `app`.
    fn vips(&mut self, app: &App, tasks: &Eligible<'_>) {
        for index in 0..app.spec.port_count() {
            let labels = PortLabels::new(&app.spec, index);
            for value in labels.vips() {
                let Some(key) = named_vip(value) else {
                    continue;
                };
                let servers = servers(&[app], tasks, index);
                let (_, all) = self
                    .vips
                    .entry(key)
                    .or_insert_with(|| (app.id.clone(), BTreeMap::new()));
                for server in servers {
                    all.entry(server.name.clone()).or_insert(server);
                }
            }
        }
    }

    fn finish(mut self, applied_index: u64) -> RoutingTable {
        for ((vip, port), (app_id, servers)) in std::mem::take(&mut self.vips) {
            let name = format!("vip_{}_{port}", clean_name(&vip.replace('/', "_")));
            if servers.is_empty() || self.backends.contains_key(&name) {
                continue;
            }
            let backend = Backend {
                name: name.clone(),
                app_id,
                service_port: port,
                mode: Mode::Tcp,
                balance: Balance::LeastConn,
                sticky: false,
                redirect_to_https: false,
                hsts: false,
                health_check: None,
                servers: servers.into_values().collect(),
            };
            self.backends.insert(name.clone(), Arc::new(backend));
            self.frontends.push(Frontend {
                name: name.clone(),
                bind_addr: None,
                port,
                mode: Mode::Tcp,
                ssl_cert: None,
                backend: name,
                kind: FrontendKind::Vip,
            });
        }
        let mut bound = BTreeSet::new();
        let mut frontends: Vec<Frontend> = self
            .frontends
            .into_iter()
            .filter(|frontend| bound.insert((frontend.bind_addr, frontend.port)))
            .collect();
        frontends
            .sort_by(|a, b| (a.port, a.bind_addr, &a.name).cmp(&(b.port, b.bind_addr, &b.name)));
        // Stable: equal keys keep the visiting order.
        self.vhosts
            .sort_by_key(|(weight, route)| (std::cmp::Reverse(*weight), route.paths.is_empty()));
        RoutingTable {
            applied_index,
            backends: self.backends,
            frontends,
            vhosts: self.vhosts.into_iter().map(|(_, route)| route).collect(),
            app_ids: self.app_ids,
        }
    }
}

/// Whether a port with `groups` is served by a load balancer of `wanted` groups.
fn in_groups(groups: &[&str], wanted: &[String]) -> bool {
    wanted
        .iter()
        .any(|want| want == "*" || groups.contains(&want.as_str()))
}

/// `HAPROXY_{n}_BALANCE`; anything but `leastconn` or `source` (any case) is round robin.
fn balance(label: Option<&str>) -> Balance {
    match label.map(str::to_ascii_lowercase).as_deref() {
        Some("leastconn") => Balance::LeastConn,
        Some("source") => Balance::Source,
        _ => Balance::RoundRobin,
    }
}

/// The servers of port index `index` over the tasks in rotation of `members`, sorted by name
/// (a name seen twice is kept once).
fn servers(members: &[&App], tasks: &Eligible<'_>, index: usize) -> Vec<Server> {
    let mut servers = BTreeMap::new();
    for app in members {
        for (task, agent) in tasks.get(&app.id).into_iter().flatten() {
            let Some((ip, port)) = endpoint(&app.spec, task, agent, index) else {
                continue;
            };
            let host = agent.info.hostname.clone();
            let name = server_name(&host, ip, port);
            servers.entry(name.clone()).or_insert_with(|| Server {
                name,
                task_id: task.id.clone(),
                host,
                ip,
                port,
            });
        }
    }
    servers.into_values().collect()
}

/// Where port index `index` of `task` is reached (see the module docs).
fn endpoint(spec: &AppSpec, task: &Task, agent: &Agent, index: usize) -> Option<(IpAddr, u16)> {
    let agent_side = || agent.ip().or_else(|| task_ip(task));
    let (ip, port) = if spec.host_networking() {
        (agent_side(), task.ports.get(index).copied())
    } else {
        let mappings = spec.port_mappings();
        let mapping = mappings.get(index)?;
        if mapping.host_port.is_some() {
            let host_index = mappings[..index]
                .iter()
                .filter(|m| m.host_port.is_some())
                .count();
            (agent_side(), task.ports.get(host_index).copied())
        } else {
            (
                task_ip(task).or_else(|| agent.ip()),
                Some(mapping.container_port),
            )
        }
    };
    Some((ip?, port.filter(|port| *port != 0)?))
}

/// The task's first IP address that parses.
fn task_ip(task: &Task) -> Option<IpAddr> {
    task.ip_addresses.iter().find_map(|ip| parse_ip(ip))
}

/// marathon-lb's server name: `<host>_<ip>_<port>`, or `<ip>_<port>` when the host is the IP,
/// with every character outside `[A-Za-z0-9-]` made `_`.
fn server_name(host: &str, ip: IpAddr, port: u16) -> String {
    let ip = ip.to_string();
    let raw = if host == ip {
        format!("{ip}_{port}")
    } else {
        format!("{host}_{ip}_{port}")
    };
    raw.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// marathon-lb's backend name: the id without its leading `/`, `/` as `_`, then `_<port>`.
fn backend_name(id: &str, port: u16) -> String {
    let base = id.trim_start_matches('/').replace('/', "_");
    format!("{}_{port}", clean_name(&base))
}

/// Characters HAProxy does not take in a proxy name (outside `[A-Za-z0-9_.-]`) made `_`.
fn clean_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// marathon-lb's choice of health check for port index `index`: the first check with a fixed
/// port, or else whose port index is `index`.
fn select_check(checks: &[HealthCheck], index: usize) -> Option<&HealthCheck> {
    checks.iter().find(|check| {
        check.port.is_some_and(|port| port != 0)
            || check
                .port_index
                .is_some_and(|i| usize::try_from(i).is_ok_and(|i| i == index))
    })
}

/// `check` as HAProxy's active check of a `mode` backend.
fn backend_check(check: &HealthCheck, mode: Mode) -> BackendCheck {
    let connect_only = mode == Mode::Tcp
        || matches!(
            check.protocol,
            HealthProtocol::Tcp | HealthProtocol::MesosTcp
        );
    BackendCheck {
        http_path: (!connect_only).then(|| check.path.clone().unwrap_or_else(|| "/".to_owned())),
        port: check.port.filter(|port| *port != 0),
        interval_seconds: check.interval_seconds,
        timeout_seconds: check.timeout_seconds,
        falls: check.max_consecutive_failures.saturating_add(1),
    }
}

#[cfg(test)]
pub(super) mod tests;

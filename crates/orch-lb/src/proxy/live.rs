//! A routing table made servable: [`Live`] resolves names into indexes and hash maps once per
//! table (so a request does a hash lookup, not a scan), and attaches the runtime state of
//! every frontend, backend and server from the [`Registry`], which outlives tables.
//! [`TableCell`] holds the newest `Live`; connections cache it and re-read it only when its
//! generation moved, so the hot path costs one atomic load.
//!
//! Guarantees: building a `Live` keeps the state (counters, pools, up/down) of every
//! backend, server and frontend the new table still has, and retires the servers it no
//! longer has; a request holds the `Live` it started with until it ends.
//!
//! May depend on: std, hyper (header values), sha1, hex, [`super::route`],
//! [`super::server`], [`super::stats`], [`crate`] (the table).

use super::route::{normalize_host, path_matches};
use super::server::{BackendState, ServerState};
use super::stats::Counters;
use crate::{Backend, Frontend, RoutingTable};
use hyper::header::HeaderValue;
use sha1::{Digest, Sha1};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

/// The sticky-session cookie marathon-lb configures (`cookie mesosphere_server_id insert`).
pub(crate) const STICKY_COOKIE: &str = "mesosphere_server_id";

/// A routing table with its runtime state.
#[derive(Debug)]
pub(crate) struct Live {
    /// The table.
    pub table: Arc<RoutingTable>,
    /// Every backend, in the table's (name) order.
    pub backends: Vec<LiveBackend>,
    /// Backend name → index.
    by_name: HashMap<String, usize>,
    /// Host → its rules, in match order.
    vhosts: HashMap<String, Vec<VhostRule>>,
    /// Lowercase app id → backend index.
    app_ids: HashMap<String, usize>,
    /// Listener address (bind address or the LB's, and port) → frontend.
    pub frontends: HashMap<SocketAddr, LiveFrontend>,
}

/// One host rule of the HTTP and HTTPS ports.
#[derive(Debug)]
pub(crate) struct VhostRule {
    /// Path prefixes (lowercase when `ignore_case`); empty matches every path.
    paths: Vec<String>,
    /// Prefixes match ignoring ASCII case.
    ignore_case: bool,
    /// The backend, if the table has it.
    backend: Option<usize>,
    /// The certificate offered for this host on the HTTPS port.
    pub ssl_cert: Option<String>,
}

/// A backend with its state.
#[derive(Debug)]
pub(crate) struct LiveBackend {
    /// The backend.
    pub backend: Arc<Backend>,
    /// Its state.
    pub state: Arc<BackendState>,
    /// Its servers, in the table's order.
    pub servers: Vec<LiveServer>,
}

/// A server with its state.
#[derive(Debug)]
pub(crate) struct LiveServer {
    /// Its name (`<host>_<ip>_<port>`).
    pub name: String,
    /// Its sticky cookie value: the first 10 hex digits of SHA-1 of its name.
    pub cookie: String,
    /// `mesosphere_server_id=<cookie>; path=/`.
    pub set_cookie: HeaderValue,
    /// Its state.
    pub state: Arc<ServerState>,
}

/// A frontend with its state.
#[derive(Debug)]
pub(crate) struct LiveFrontend {
    /// The frontend.
    pub frontend: Frontend,
    /// Its backend, if the table has it.
    pub backend: Option<usize>,
    /// Its counters.
    pub counters: Arc<Counters>,
}

impl Live {
    /// The backend for `host` (any case, with or without a port) and `path` on the HTTP
    /// and HTTPS ports: the first rule of that host whose paths (if any) prefix `path`.
    pub fn vhost_backend(&self, host: &str, path: &str) -> Option<usize> {
        self.vhost_rule(host, path).and_then(|rule| rule.backend)
    }

    /// The first rule of `host` matching `path`.
    pub fn vhost_rule(&self, host: &str, path: &str) -> Option<&VhostRule> {
        let host = normalize_host(host);
        self.vhosts.get(host.as_ref())?.iter().find(|rule| {
            rule.paths.is_empty()
                || rule
                    .paths
                    .iter()
                    .any(|prefix| path_matches(path, prefix, rule.ignore_case))
        })
    }

    /// The first rule of `host` that names a certificate (for SNI).
    pub fn vhost_cert(&self, host: &str) -> Option<&str> {
        let host = normalize_host(host);
        self.vhosts
            .get(host.as_ref())?
            .iter()
            .find_map(|rule| rule.ssl_cert.as_deref())
    }

    /// The backend for an `X-Marathon-App-Id` value (case ignored).
    pub fn app_id_backend(&self, app_id: &str) -> Option<usize> {
        if app_id.bytes().any(|b| b.is_ascii_uppercase()) {
            self.app_ids.get(&app_id.to_ascii_lowercase()).copied()
        } else {
            self.app_ids.get(app_id).copied()
        }
    }

    /// The backend named `name`.
    pub fn backend_named(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).copied()
    }
}

/// The runtime state of everything the current table has, by name.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    /// Frontend counters by frontend name.
    frontends: HashMap<String, Arc<Counters>>,
    /// Backend state by backend name.
    backends: HashMap<String, Arc<BackendState>>,
    /// Server state by (backend, server, address).
    servers: HashMap<(String, String, SocketAddr), Arc<ServerState>>,
}

impl Registry {
    /// Makes `table` servable, reusing the state of what it still has and retiring the
    /// servers it no longer has. Frontends without a bind address listen on `bind_addr`.
    pub fn build(&mut self, table: Arc<RoutingTable>, bind_addr: IpAddr) -> Live {
        let mut frontends = HashMap::new();
        let mut backends_state = HashMap::new();
        let mut servers_state = HashMap::new();

        let mut backends = Vec::with_capacity(table.backends.len());
        let mut by_name = HashMap::with_capacity(table.backends.len());
        for (name, backend) in &table.backends {
            let state = self
                .backends
                .get(name)
                .cloned()
                .unwrap_or_else(|| Arc::new(BackendState::default()));
            backends_state.insert(name.clone(), Arc::clone(&state));
            let mut servers = Vec::with_capacity(backend.servers.len());
            for server in &backend.servers {
                let address = SocketAddr::new(server.ip, server.port);
                let key = (name.clone(), server.name.clone(), address);
                let server_state = match self.servers.get(&key) {
                    Some(existing) => Arc::clone(existing),
                    None => Arc::new(ServerState::new(address, Arc::clone(&state))),
                };
                servers_state.insert(key, Arc::clone(&server_state));
                let cookie = sticky_cookie(&server.name);
                let set_cookie =
                    HeaderValue::from_str(&format!("{STICKY_COOKIE}={cookie}; path=/"))
                        .unwrap_or_else(|_| HeaderValue::from_static(""));
                servers.push(LiveServer {
                    name: server.name.clone(),
                    cookie,
                    set_cookie,
                    state: server_state,
                });
            }
            by_name.insert(name.clone(), backends.len());
            backends.push(LiveBackend {
                backend: Arc::clone(backend),
                state,
                servers,
            });
        }

        let mut vhosts: HashMap<String, Vec<VhostRule>> = HashMap::new();
        for route in &table.vhosts {
            let ignore_case = route.paths_ignore_case;
            vhosts
                .entry(normalize_host(&route.host).into_owned())
                .or_default()
                .push(VhostRule {
                    paths: route
                        .paths
                        .iter()
                        .map(|p| {
                            if ignore_case {
                                p.to_ascii_lowercase()
                            } else {
                                p.clone()
                            }
                        })
                        .collect(),
                    ignore_case,
                    backend: by_name.get(&route.backend).copied(),
                    ssl_cert: route.ssl_cert.clone(),
                });
        }

        let app_ids = table
            .app_ids
            .iter()
            .filter_map(|(app, backend)| Some((app.to_ascii_lowercase(), *by_name.get(backend)?)))
            .collect();

        let mut live_frontends = HashMap::with_capacity(table.frontends.len());
        for frontend in &table.frontends {
            let address = SocketAddr::new(frontend.bind_addr.unwrap_or(bind_addr), frontend.port);
            let counters = self
                .frontends
                .get(&frontend.name)
                .cloned()
                .unwrap_or_default();
            frontends.insert(frontend.name.clone(), Arc::clone(&counters));
            live_frontends.entry(address).or_insert(LiveFrontend {
                frontend: frontend.clone(),
                backend: by_name.get(&frontend.backend).copied(),
                counters,
            });
        }

        for (key, state) in &self.servers {
            if !servers_state.contains_key(key) {
                state.retire();
            }
        }
        self.frontends = frontends;
        self.backends = backends_state;
        self.servers = servers_state;

        Live {
            table,
            backends,
            by_name,
            vhosts,
            app_ids,
            frontends: live_frontends,
        }
    }
}

/// The first 10 hex digits of SHA-1 of `server_name` (marathon-lb's per-server cookie).
pub(crate) fn sticky_cookie(server_name: &str) -> String {
    let digest = Sha1::digest(server_name.as_bytes());
    let mut text = hex::encode(digest);
    text.truncate(10);
    text
}

/// The newest [`Live`], swapped atomically.
#[derive(Debug)]
pub(crate) struct TableCell {
    /// Bumped after every swap.
    generation: AtomicU64,
    /// The newest table.
    current: RwLock<Arc<Live>>,
}

/// A connection's copy of the newest [`Live`].
#[derive(Debug)]
pub(crate) struct Cached {
    /// The generation it was read at.
    generation: u64,
    /// The table.
    pub live: Arc<Live>,
}

impl TableCell {
    /// A cell holding `live`.
    pub fn new(live: Live) -> Self {
        Self {
            generation: AtomicU64::new(0),
            current: RwLock::new(Arc::new(live)),
        }
    }

    /// The newest table.
    pub fn load(&self) -> Arc<Live> {
        Arc::clone(&self.current.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// Makes `live` the newest table.
    pub fn store(&self, live: Arc<Live>) {
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = live;
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// A copy to cache.
    pub fn cached(&self) -> Cached {
        let generation = self.generation.load(Ordering::Acquire);
        Cached {
            generation,
            live: self.load(),
        }
    }
}

impl Cached {
    /// The newest table, re-read only if the cell changed since.
    pub fn refresh(&mut self, cell: &TableCell) -> &Arc<Live> {
        let generation = cell.generation.load(Ordering::Acquire);
        if generation != self.generation {
            self.generation = generation;
            self.live = cell.load();
        }
        &self.live
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Balance, FrontendKind, Mode, Server, VhostRoute};
    use orch_core::model::{AppId, TaskId};
    use std::collections::BTreeMap;
    use std::net::Ipv4Addr;

    fn backend(name: &str, ports: &[u16]) -> Arc<Backend> {
        Arc::new(Backend {
            name: name.to_owned(),
            app_id: AppId::parse("/web").expect("app id"),
            service_port: 10000,
            mode: Mode::Http,
            balance: Balance::RoundRobin,
            sticky: false,
            redirect_to_https: false,
            hsts: false,
            health_check: None,
            servers: ports
                .iter()
                .map(|port| Server {
                    name: format!("127_0_0_1_{port}"),
                    task_id: TaskId(format!("t{port}")),
                    host: "127.0.0.1".to_owned(),
                    ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
                    port: *port,
                })
                .collect(),
        })
    }

    fn table(ports: &[u16]) -> Arc<RoutingTable> {
        let mut backends = BTreeMap::new();
        backends.insert("web_10000".to_owned(), backend("web_10000", ports));
        Arc::new(RoutingTable {
            applied_index: 1,
            backends,
            frontends: vec![Frontend {
                name: "web_10000".to_owned(),
                bind_addr: None,
                port: 10000,
                mode: Mode::Http,
                ssl_cert: None,
                backend: "web_10000".to_owned(),
                kind: FrontendKind::Service,
            }],
            vhosts: vec![
                VhostRoute {
                    host: "web.example.com".to_owned(),
                    paths: vec!["/API".to_owned()],
                    paths_ignore_case: true,
                    backend: "web_10000".to_owned(),
                    ssl_cert: Some("/certs/web.pem".to_owned()),
                },
                VhostRoute {
                    host: "web.example.com".to_owned(),
                    paths: vec![],
                    paths_ignore_case: false,
                    backend: "missing".to_owned(),
                    ssl_cert: None,
                },
            ],
            app_ids: [("/Web".to_owned(), "web_10000".to_owned())].into(),
        })
    }

    #[test]
    fn cookie_is_ten_hex_digits_of_sha1() {
        // SHA-1("abc") = a9993e364706816aba3e25717850c26c9cd0d89d
        assert_eq!(sticky_cookie("abc"), "a9993e3647");
    }

    #[test]
    fn lookups_resolve_names() {
        let mut registry = Registry::default();
        let live = registry.build(table(&[1, 2]), IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        assert_eq!(live.vhost_backend("WEB.example.com:80", "/api/x"), Some(0));
        assert_eq!(live.vhost_backend("web.example.com", "/Api"), Some(0));
        assert_eq!(
            live.vhost_backend("web.example.com", "/other"),
            None,
            "the catch-all rule names a backend the table lacks"
        );
        assert!(live.vhost_rule("web.example.com", "/other").is_some());
        assert_eq!(live.vhost_cert("web.example.com"), Some("/certs/web.pem"));
        assert_eq!(live.app_id_backend("/WEB"), Some(0));
        assert_eq!(live.app_id_backend("/other"), None);
        let address = SocketAddr::from(([0, 0, 0, 0], 10000));
        assert_eq!(live.frontends[&address].backend, Some(0));
    }

    #[test]
    fn state_survives_a_new_table_and_leaving_servers_are_retired() {
        let mut registry = Registry::default();
        let any = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
        let first = registry.build(table(&[1, 2]), any);
        first.backends[0].servers[0]
            .state
            .counters
            .total
            .fetch_add(5, Ordering::Relaxed);
        let second = registry.build(table(&[1, 3]), any);
        assert!(Arc::ptr_eq(
            &first.backends[0].servers[0].state,
            &second.backends[0].servers[0].state
        ));
        assert!(Arc::ptr_eq(
            &first.backends[0].state,
            &second.backends[0].state
        ));
        assert_eq!(
            second.backends[0].servers[0]
                .state
                .counters
                .total
                .load(Ordering::Relaxed),
            5
        );
        assert!(!Arc::ptr_eq(
            &first.backends[0].servers[1].state,
            &second.backends[0].servers[1].state
        ));
    }

    #[test]
    fn cached_copies_follow_the_cell() {
        let mut registry = Registry::default();
        let any = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
        let cell = TableCell::new(registry.build(table(&[1]), any));
        let mut cached = cell.cached();
        assert_eq!(cached.refresh(&cell).backends[0].servers.len(), 1);
        cell.store(Arc::new(registry.build(table(&[1, 2]), any)));
        assert_eq!(cached.refresh(&cell).backends[0].servers.len(), 2);
    }
}

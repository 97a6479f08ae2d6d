//! What the stats port reports: a [`Report`] of every frontend, backend and server of the
//! table in use, with a copy of its counters (a backend's dispatches and bytes are the
//! sums over its servers plus what servers that left had counted). Served as JSON, and
//! rendered by [`super::stats_csv`] and [`super::stats_prometheus`].
//!
//! Pure functions of the counters; no I/O.
//!
//! May depend on: std, serde, [`super::live`], [`super::stats`], [`crate`] (modes).

use super::live::Live;
use super::stats::{CounterSnapshot, Counters};
use crate::{Balance, Mode};

/// Everything the stats port reports.
#[derive(Clone, Debug, serde::Serialize)]
pub(crate) struct Report {
    /// The Raft index of the snapshot the table came from.
    pub applied_index: u64,
    /// Frontends: the fixed ports, then service ports and VIPs.
    pub frontends: Vec<FrontendReport>,
    /// Backends by name.
    pub backends: Vec<BackendReport>,
}

/// One frontend.
#[derive(Clone, Debug, serde::Serialize)]
pub(crate) struct FrontendReport {
    /// `pxname`.
    pub name: String,
    /// Its port, for service ports and VIPs.
    pub port: Option<u16>,
    /// `http` or `tcp`.
    pub mode: Mode,
    /// Always `OPEN`.
    pub status: &'static str,
    /// The counters.
    #[serde(flatten)]
    pub counters: CounterSnapshot,
}

/// One backend.
#[derive(Clone, Debug, serde::Serialize)]
pub(crate) struct BackendReport {
    /// `pxname`.
    pub name: String,
    /// `http` or `tcp`.
    pub mode: Mode,
    /// Its balance algorithm.
    pub balance: Balance,
    /// `UP` while any server is up, else `DOWN`.
    pub status: &'static str,
    /// Servers up.
    pub servers_up: usize,
    /// The counters.
    #[serde(flatten)]
    pub counters: CounterSnapshot,
    /// Its servers.
    pub servers: Vec<ServerReport>,
}

/// One server.
#[derive(Clone, Debug, serde::Serialize)]
pub(crate) struct ServerReport {
    /// `svname`.
    pub name: String,
    /// `ip:port`.
    pub address: String,
    /// `UP` or `DOWN` (the last connect failed).
    pub status: &'static str,
    /// Idle keep-alive connections pooled to it.
    pub idle_connections: usize,
    /// The counters.
    #[serde(flatten)]
    pub counters: CounterSnapshot,
}

/// The report of `live`, with the bound fixed frontends first.
pub(crate) fn report(live: &Live, fixed: &[(&'static str, &Counters)]) -> Report {
    let mut frontends: Vec<FrontendReport> = fixed
        .iter()
        .map(|(name, counters)| FrontendReport {
            name: (*name).to_owned(),
            port: None,
            mode: Mode::Http,
            status: "OPEN",
            counters: counters.snapshot(),
        })
        .collect();
    let mut service: Vec<FrontendReport> = live
        .frontends
        .values()
        .map(|frontend| FrontendReport {
            name: frontend.frontend.name.clone(),
            port: Some(frontend.frontend.port),
            mode: frontend.frontend.mode,
            status: "OPEN",
            counters: frontend.counters.snapshot(),
        })
        .collect();
    service.sort_by(|a, b| a.port.cmp(&b.port).then_with(|| a.name.cmp(&b.name)));
    frontends.extend(service);
    let backends = live
        .backends
        .iter()
        .map(|backend| {
            let servers: Vec<ServerReport> = backend
                .servers
                .iter()
                .map(|server| ServerReport {
                    name: server.name.clone(),
                    address: server.state.address.to_string(),
                    status: if server.state.is_up() { "UP" } else { "DOWN" },
                    idle_connections: server.state.pool.len(),
                    counters: server.state.counters.snapshot(),
                })
                .collect();
            let servers_up = servers.iter().filter(|s| s.status == "UP").count();
            let mut counters = backend.state.counters.snapshot();
            counters.rate = 0.0;
            for server in &servers {
                let c = &server.counters;
                counters.current += c.current;
                counters.total += c.total;
                counters.bytes_in += c.bytes_in;
                counters.bytes_out += c.bytes_out;
                counters.rate += c.rate;
            }
            BackendReport {
                name: backend.backend.name.clone(),
                mode: backend.backend.mode,
                balance: backend.backend.balance,
                status: if servers_up > 0 { "UP" } else { "DOWN" },
                servers_up,
                counters,
                servers,
            }
        })
        .collect();
    Report {
        applied_index: live.table.applied_index,
        frontends,
        backends,
    }
}

//! The stats port's three views of the same counters: a JSON [`Report`], HAProxy's CSV
//! (`/haproxy?stats;csv`, the columns zdd and marathon-lb-autoscale read: `pxname`,
//! `svname`, `scur`, `stot`, `bin`, `bout`, `status`, `hrsp_*`, `req_rate`, ... in
//! HAProxy's order) and Prometheus text (`/metrics`, names after haproxy-exporter's with an
//! `orch_lb_` prefix).
//!
//! CSV rows: per frontend a `FRONTEND` row (status `OPEN`); per backend one row per server
//! (status `UP` or `DOWN`) then a `BACKEND` row (`UP` while any server is up).
//!
//! Pure functions of the counters; no I/O.
//!
//! May depend on: std, serde, [`super::live`], [`super::stats`], [`crate::lb`] (modes).

use super::live::Live;
use super::stats::{CounterSnapshot, Counters};
use crate::lb::{Balance, Mode};
use std::fmt::Write as _;

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

/// HAProxy's CSV header (its first 49 columns).
const CSV_HEADER: &str = "# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,weight,act,bck,chkfail,chkdown,lastchg,downtime,qlimit,pid,iid,sid,throttle,lbtot,tracked,type,rate,rate_lim,rate_max,check_status,check_code,check_duration,hrsp_1xx,hrsp_2xx,hrsp_3xx,hrsp_4xx,hrsp_5xx,hrsp_other,hanafail,req_rate,req_rate_max,req_tot,";

/// One CSV row.
struct Row<'a> {
    pxname: &'a str,
    svname: &'a str,
    queue: &'a str,
    status: &'a str,
    weight: String,
    iid: usize,
    sid: usize,
    kind: u8,
    counters: &'a CounterSnapshot,
}

impl Row<'_> {
    fn write(&self, out: &mut String) {
        let c = self.counters;
        let (weight, act, bck, lbtot) = if self.kind == 0 {
            (String::new(), String::new(), String::new(), String::new())
        } else {
            (
                self.weight.clone(),
                self.weight.clone(),
                "0".to_owned(),
                c.total.to_string(),
            )
        };
        let _ = writeln!(
            out,
            "{},{},{q},{q},{},,{},{},{},{},,,,{},,{},,{},{},{},{},,,,,,1,{},{},,{},,{},{:.0},,,,,,{},{},{},{},{},{},,{:.0},,{},",
            self.pxname,
            self.svname,
            c.current,
            c.current,
            c.total,
            c.bytes_in,
            c.bytes_out,
            c.connect_errors,
            c.retries,
            self.status,
            weight,
            act,
            bck,
            self.iid,
            self.sid,
            lbtot,
            self.kind,
            c.rate,
            c.hrsp_1xx,
            c.hrsp_2xx,
            c.hrsp_3xx,
            c.hrsp_4xx,
            c.hrsp_5xx,
            c.hrsp_other,
            c.request_rate,
            c.requests,
            q = self.queue,
        );
    }
}

/// The report as HAProxy's CSV (see the module docs).
pub(crate) fn csv(report: &Report) -> String {
    let mut out = String::with_capacity(4096);
    out.push_str(CSV_HEADER);
    out.push('\n');
    let mut iid = 0;
    for frontend in &report.frontends {
        iid += 1;
        Row {
            pxname: &frontend.name,
            svname: "FRONTEND",
            queue: "",
            status: frontend.status,
            weight: String::new(),
            iid,
            sid: 0,
            kind: 0,
            counters: &frontend.counters,
        }
        .write(&mut out);
    }
    for backend in &report.backends {
        iid += 1;
        for (i, server) in backend.servers.iter().enumerate() {
            Row {
                pxname: &backend.name,
                svname: &server.name,
                queue: "0",
                status: server.status,
                weight: "1".to_owned(),
                iid,
                sid: i + 1,
                kind: 2,
                counters: &server.counters,
            }
            .write(&mut out);
        }
        Row {
            pxname: &backend.name,
            svname: "BACKEND",
            queue: "0",
            status: backend.status,
            weight: backend.servers_up.to_string(),
            iid,
            sid: 0,
            kind: 1,
            counters: &backend.counters,
        }
        .write(&mut out);
    }
    out
}

/// A Prometheus label value with `\`, `"` and newlines escaped.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Writes one metric family: `# HELP`, `# TYPE`, then one sample per item.
fn family<T>(
    out: &mut String,
    name: &str,
    kind: &str,
    help: &str,
    items: &[T],
    sample: impl Fn(&T) -> Vec<(String, f64)>,
) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    for item in items {
        for (labels, value) in sample(item) {
            let _ = writeln!(out, "{name}{{{labels}}} {value}");
        }
    }
}

/// The response classes and their counters.
fn classes(c: &CounterSnapshot) -> [(&'static str, u64); 6] {
    [
        ("1xx", c.hrsp_1xx),
        ("2xx", c.hrsp_2xx),
        ("3xx", c.hrsp_3xx),
        ("4xx", c.hrsp_4xx),
        ("5xx", c.hrsp_5xx),
        ("other", c.hrsp_other),
    ]
}

/// The report as Prometheus text.
pub(crate) fn prometheus(report: &Report) -> String {
    let mut out = String::with_capacity(8192);
    let frontends = &report.frontends;
    let f = |fr: &FrontendReport| format!("frontend=\"{}\"", label(&fr.name));
    type Pick = fn(&CounterSnapshot) -> f64;
    let frontend_metrics: [(&str, &str, &str, Pick); 7] = [
        (
            "current_connections",
            "gauge",
            "Client connections open.",
            |c| c.current as f64,
        ),
        (
            "connections_total",
            "counter",
            "Client connections accepted.",
            |c| c.total as f64,
        ),
        (
            "requests_total",
            "counter",
            "HTTP requests received.",
            |c| c.requests as f64,
        ),
        (
            "request_rate",
            "gauge",
            "HTTP requests per second over the last seconds.",
            |c| c.request_rate,
        ),
        (
            "connection_rate",
            "gauge",
            "Connections per second over the last seconds.",
            |c| c.rate,
        ),
        (
            "bytes_in_total",
            "counter",
            "Bytes received from clients.",
            |c| c.bytes_in as f64,
        ),
        (
            "bytes_out_total",
            "counter",
            "Bytes sent to clients.",
            |c| c.bytes_out as f64,
        ),
    ];
    for (suffix, kind, help, pick) in frontend_metrics {
        family(
            &mut out,
            &format!("orch_lb_frontend_{suffix}"),
            kind,
            help,
            frontends,
            |fr| vec![(f(fr), pick(&fr.counters))],
        );
    }
    family(
        &mut out,
        "orch_lb_frontend_responses_total",
        "counter",
        "HTTP responses sent, by class.",
        frontends,
        |fr| {
            classes(&fr.counters)
                .iter()
                .map(|(code, n)| (format!("{},code=\"{code}\"", f(fr)), *n as f64))
                .collect()
        },
    );

    let backends = &report.backends;
    let b = |br: &BackendReport| format!("backend=\"{}\"", label(&br.name));
    let backend_metrics: [(&str, &str, &str, Pick); 8] = [
        (
            "current_connections",
            "gauge",
            "Requests (http) or connections (tcp) in progress.",
            |c| c.current as f64,
        ),
        (
            "connections_total",
            "counter",
            "Requests (http) or connections (tcp) sent to servers.",
            |c| c.total as f64,
        ),
        (
            "requests_total",
            "counter",
            "HTTP requests routed to the backend.",
            |c| c.requests as f64,
        ),
        (
            "request_rate",
            "gauge",
            "HTTP requests per second over the last seconds.",
            |c| c.request_rate,
        ),
        ("bytes_in_total", "counter", "Bytes sent to servers.", |c| {
            c.bytes_in as f64
        }),
        (
            "bytes_out_total",
            "counter",
            "Bytes received from servers.",
            |c| c.bytes_out as f64,
        ),
        (
            "connection_errors_total",
            "counter",
            "Failed connects to servers.",
            |c| c.connect_errors as f64,
        ),
        (
            "retries_total",
            "counter",
            "Connects retried on another server.",
            |c| c.retries as f64,
        ),
    ];
    for (suffix, kind, help, pick) in backend_metrics {
        family(
            &mut out,
            &format!("orch_lb_backend_{suffix}"),
            kind,
            help,
            backends,
            |br| vec![(b(br), pick(&br.counters))],
        );
    }
    family(
        &mut out,
        "orch_lb_backend_responses_total",
        "counter",
        "HTTP responses, by class.",
        backends,
        |br| {
            classes(&br.counters)
                .iter()
                .map(|(code, n)| (format!("{},code=\"{code}\"", b(br)), *n as f64))
                .collect()
        },
    );
    family(
        &mut out,
        "orch_lb_backend_servers_up",
        "gauge",
        "Servers up.",
        backends,
        |br| vec![(b(br), br.servers_up as f64)],
    );
    let per_server = |pick: fn(&ServerReport) -> f64| {
        move |br: &BackendReport| {
            br.servers
                .iter()
                .map(|s| (format!("{},server=\"{}\"", b(br), label(&s.name)), pick(s)))
                .collect::<Vec<_>>()
        }
    };
    family(
        &mut out,
        "orch_lb_backend_up",
        "gauge",
        "Whether a server is up (1) or down (0: its last connect failed).",
        backends,
        per_server(|s| f64::from(u8::from(s.status == "UP"))),
    );
    family(
        &mut out,
        "orch_lb_server_current_connections",
        "gauge",
        "Requests or connections in progress at a server.",
        backends,
        per_server(|s| s.counters.current as f64),
    );
    family(
        &mut out,
        "orch_lb_server_connections_total",
        "counter",
        "Requests or connections sent to a server.",
        backends,
        per_server(|s| s.counters.total as f64),
    );
    family(
        &mut out,
        "orch_lb_server_bytes_in_total",
        "counter",
        "Bytes sent to a server.",
        backends,
        per_server(|s| s.counters.bytes_in as f64),
    );
    family(
        &mut out,
        "orch_lb_server_bytes_out_total",
        "counter",
        "Bytes received from a server.",
        backends,
        per_server(|s| s.counters.bytes_out as f64),
    );
    family(
        &mut out,
        "orch_lb_server_idle_connections",
        "gauge",
        "Idle keep-alive connections pooled to a server.",
        backends,
        per_server(|s| s.idle_connections as f64),
    );
    out
}

//! Prometheus text (`/metrics`) of a [`Report`]: names after haproxy-exporter's with an
//! `orch_lb_` prefix: `orch_lb_frontend_*{frontend}`, `orch_lb_backend_*{backend}`,
//! `orch_lb_backend_up{backend,server}`, `orch_lb_server_*{backend,server}`.
//!
//! May depend on: std, [`super::stats`], [`super::stats_report`].

use super::stats::CounterSnapshot;
use super::stats_report::{BackendReport, FrontendReport, Report, ServerReport};
use std::fmt::Write as _;

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

//! Where a local cluster serves, as `orch up` and `orch status` print it: the API, each
//! process (address, pid, an agent's task ports and containerizers), DNS and the load
//! balancer.
//!
//! May depend on: provision::{layout, state_file, local::stop}.

use super::*;

/// The endpoint lines of the cluster `record` describes.
pub fn endpoint_lines(record: &LocalState) -> Vec<String> {
    let layout = &record.layout;
    let api = layout
        .api()
        .map_or_else(|| "(none)".to_owned(), |a| format!("https://{a}"));
    let mut lines = vec![format!(
        "API     {api} (Marathon /v2, orch /v1; TLS, token)"
    )];
    for status in node_status(record) {
        let node = &status.node;
        let pid = status
            .pid
            .map_or_else(|| "-".to_owned(), |p| p.pid.to_string());
        // Masters serve HTTPS; an agent's own API is plaintext, on loopback.
        let scheme = if node.role == MachineRole::Master {
            "https"
        } else {
            "http"
        };
        let url = format!("{scheme}://{}", node.listen);
        let mut line = format!("{:<9} {url:<29} pid {pid:<8}", node.name);
        if let Some(ports) = node.task_ports {
            line.push_str(&format!(
                " task ports {}-{}, {}",
                ports.begin,
                ports.end,
                record.containerizers.join(",")
            ));
        }
        lines.push(line.trim_end().to_owned());
    }
    let first_master = layout.masters.first().map_or("-", |m| m.name.as_str());
    lines.push(match &layout.dns {
        Some(dns) => format!(
            "DNS     {} (udp+tcp, *.{}), HTTP API http://{} (in {first_master})",
            dns.listen, dns.domain, dns.http_listen,
        ),
        None => "DNS     off (dns: enabled: false)".to_owned(),
    });
    lines.push(match &layout.lb {
        Some(lb) => {
            let port = |port: u16| match port {
                0 => "off".to_owned(),
                port => format!("{}:{port}", lb.bind_addr),
            };
            format!(
                "LB      http {}, https {}, app-id {}, stats {}, group {} (in {first_master})",
                port(lb.http_port),
                port(lb.https_port),
                port(lb.app_id_port),
                match lb.stats_port {
                    0 => "off".to_owned(),
                    stats => format!("http://{}:{stats}/haproxy?stats", lb.bind_addr),
                },
                lb.group.join(","),
            )
        }
        None => "LB      off (lb: enabled: false)".to_owned(),
    });
    lines
}

//! A [`RoutingTable`] as a `haproxy.cfg` equivalent to the one marathon-lb writes for the
//! same apps and labels, for users who keep HAProxy (`--haproxy-config`). Pure: text in,
//! text out; `haproxy_mode` writes, checks and reloads it.
//!
//! Layout, in marathon-lb's order: `global` and `defaults` (marathon-lb's `HAPROXY_HEAD`
//! values, with [`Limits`] as `maxconn`, `retries` and the `timeout`s), `listen stats`,
//! `frontend marathon_http_in` (host rules: `acl host_<host>_<backend> hdr(host) -i <host>`,
//! path rules `acl path_<backend> path_beg [-i] <prefixes>`, then `use_backend`, or a 301 to
//! https for `HAPROXY_{n}_REDIRECT_TO_HTTPS`), `frontend marathon_http_appid_in`
//! (`hdr(x-marathon-app-id)`), `frontend marathon_https_in` (SNI: `ssl_fc_sni`), one frontend
//! per listener of the table, then the backends. A fixed port set to 0 leaves its frontend
//! out; the HTTPS frontend also needs at least one certificate (`--ssl-cert` or an
//! `HAPROXY_{n}_SSL_CERT`), where marathon-lb would point at `/etc/ssl/cert.pem` regardless.
//!
//! Differences from marathon-lb's text, each so that the file passes `haproxy -c` (HAProxy
//! 2.6) on any machine and means what the table means:
//! - no `stats socket /var/run/haproxy/socket expose-fd listeners`, `server-state-file`,
//!   `server-state-base` or `load-server-state-from-file` (they need directories marathon-lb's
//!   container creates), and no `lua-load` of marathon-lb's scripts (so the stats port has no
//!   `/_haproxy_getconfig`, `/_haproxy_getpids`, map or `/_mlb_signal` endpoints; it keeps
//!   `/haproxy?stats`, `/_haproxy_health_check` and the Prometheus `/metrics`);
//! - HSTS is `http-response set-header` (`rspadd` is gone from HAProxy 2.x);
//! - a host rule also matches a `Host` header carrying a port (`hdr_beg(host) -i <host>:`),
//!   as the table's rules ignore the port;
//! - SNI rules match case-insensitively (`ssl_fc_sni -i`), and the HTTPS frontend offers the
//!   `HAPROXY_{n}_SSL_CERT` certificates after `--ssl-cert`'s;
//! - redirects to https come before the `use_backend` lines (HAProxy runs them first
//!   wherever they are, and warns when they come after);
//! - sticky cookies only in http mode (HAProxy ignores them in tcp mode);
//! - a listener whose port is one of the fixed ports (http, https, app-id, stats) on an
//!   overlapping address is left out with a comment, since both cannot bind.
//!
//! Server ids are marathon-lb's: SHA-256 of the server name as a big number mod 32767; on a
//! collision (or 0) within the backend, the name followed by a space and that digest in hex
//! is hashed again. Servers are taken in the table's (name) order, so ids are stable across
//! reloads. A sticky backend's server gets `cookie <first 10 hex digits of SHA-1(name)>`.
//! Text taken from labels (hosts, paths, certificate paths) is escaped for HAProxy's parser.
//!
//! May depend on: std, sha1, sha2, hex, [`super::table`], [`super::config`].

use super::config::{LbConfig, Limits};
use super::table::{Backend, Balance, Frontend, Mode, RoutingTable, VhostRoute};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

/// marathon-lb's cipher list (Mozilla's "intermediate" of its time).
const CIPHERS: &str = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:\
ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:DHE-RSA-AES128-GCM-SHA256:\
DHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-AES128-SHA256:ECDHE-RSA-AES128-SHA256:\
ECDHE-ECDSA-AES256-SHA384:ECDHE-RSA-AES256-SHA384:DHE-RSA-AES128-SHA256:\
DHE-RSA-AES256-SHA256:AES128-GCM-SHA256:AES256-GCM-SHA384:AES128-SHA256:\
AES256-SHA256:!aNULL:!MD5:!DSS";

/// Server ids are below this (HAProxy keeps them in a signed 16-bit-safe range).
const SERVER_ID_MODULUS: u32 = 32767;

/// The `haproxy.cfg` of `table` under `config` (see the module docs).
pub fn haproxy_config(table: &RoutingTable, config: &LbConfig) -> String {
    let mut out = String::new();
    head(&mut out, &config.limits);
    if config.stats_port != 0 {
        stats(&mut out, config);
    }
    if config.http_port != 0 {
        http_frontend(&mut out, table, config);
    }
    if config.app_id_port != 0 {
        app_id_frontend(&mut out, table, config);
    }
    let certificates = certificates(table, config);
    if config.https_port != 0 && !certificates.is_empty() {
        https_frontend(&mut out, table, config, &certificates);
    }
    for frontend in &table.frontends {
        service_frontend(&mut out, frontend, config);
    }
    for backend in table.backends.values() {
        backend_section(&mut out, backend);
    }
    out
}

/// `global` and `defaults`.
fn head(out: &mut String, limits: &Limits) {
    let _ = write!(
        out,
        "global\n\
         \x20 log /dev/log local0\n\
         \x20 log /dev/log local1 notice\n\
         \x20 spread-checks 5\n\
         \x20 max-spread-checks 15000\n\
         \x20 maxconn {maxconn}\n\
         \x20 tune.ssl.default-dh-param 2048\n\
         \x20 ssl-default-bind-ciphers {CIPHERS}\n\
         \x20 ssl-default-bind-options no-sslv3 no-tlsv10 no-tls-tickets\n\
         \x20 ssl-default-server-ciphers {CIPHERS}\n\
         \x20 ssl-default-server-options no-sslv3 no-tlsv10 no-tls-tickets\n\
         defaults\n\
         \x20 log global\n\
         \x20 retries {retries}\n\
         \x20 backlog 10000\n\
         \x20 maxconn {defaults_maxconn}\n\
         \x20 timeout connect {connect}\n\
         \x20 timeout client {client}\n\
         \x20 timeout server {server}\n\
         \x20 timeout tunnel 3600s\n\
         \x20 timeout http-keep-alive {keep_alive}\n\
         \x20 timeout http-request {http_request}\n\
         \x20 timeout queue 30s\n\
         \x20 timeout tarpit 60s\n\
         \x20 option dontlognull\n\
         \x20 option http-server-close\n\
         \x20 option redispatch\n",
        maxconn = limits.max_connections,
        retries = limits.retries,
        defaults_maxconn = limits.max_connections.min(10_000),
        connect = duration(limits.connect_timeout),
        client = duration(limits.client_timeout),
        server = duration(limits.server_timeout),
        keep_alive = duration(limits.keep_alive_timeout),
        http_request = duration(limits.http_request_timeout),
    );
}

/// `listen stats`.
fn stats(out: &mut String, config: &LbConfig) {
    let _ = write!(
        out,
        "listen stats\n\
         \x20 bind {bind}\n\
         \x20 mode http\n\
         \x20 stats enable\n\
         \x20 stats uri /haproxy?stats\n\
         \x20 http-request use-service prometheus-exporter if {{ path /metrics }}\n\
         \x20 monitor-uri /_haproxy_health_check\n",
        bind = address(config.bind_addr, config.stats_port),
    );
}

/// `frontend marathon_http_in`: the ACLs of the host and path rules, then the redirects to
/// https (HAProxy runs them before any `use_backend` anyway), then `use_backend` in table
/// order.
fn http_frontend(out: &mut String, table: &RoutingTable, config: &LbConfig) {
    let _ = write!(
        out,
        "\nfrontend marathon_http_in\n  bind {}\n  mode http\n",
        address(config.bind_addr, config.http_port)
    );
    let mut defined = BTreeSet::new();
    let mut redirects = String::new();
    let mut uses = String::new();
    for route in &table.vhosts {
        let host_acl = format!("host_{}_{}", clean(&route.host), route.backend);
        if defined.insert(host_acl.clone()) {
            let host = escape(&route.host);
            let _ = writeln!(out, "  acl {host_acl} hdr(host) -i {host}");
            let _ = writeln!(out, "  acl {host_acl} hdr_beg(host) -i {host}:");
        }
        let mut condition = host_acl;
        if let Some(path_acl) = path_acl(out, &mut defined, route) {
            condition = format!("{condition} {path_acl}");
        }
        let redirect = table
            .backends
            .get(&route.backend)
            .is_some_and(|backend| backend.redirect_to_https);
        if redirect {
            let _ = writeln!(
                redirects,
                "  redirect scheme https code 301 if !{{ ssl_fc }} {condition}"
            );
        } else {
            let _ = writeln!(uses, "  use_backend {} if {condition}", route.backend);
        }
    }
    out.push_str(&redirects);
    out.push_str(&uses);
}

/// Defines (once) the path ACL of `route`, if it has paths, and returns its name.
fn path_acl(
    out: &mut String,
    defined: &mut BTreeSet<String>,
    route: &VhostRoute,
) -> Option<String> {
    if route.paths.is_empty() {
        return None;
    }
    let name = format!("path_{}", route.backend);
    if defined.insert(name.clone()) {
        let flag = if route.paths_ignore_case { " -i" } else { "" };
        let paths: Vec<String> = route.paths.iter().map(|p| escape(p)).collect();
        let _ = writeln!(out, "  acl {name} path_beg{flag} {}", paths.join(" "));
    }
    Some(name)
}

/// `frontend marathon_http_appid_in`.
fn app_id_frontend(out: &mut String, table: &RoutingTable, config: &LbConfig) {
    let _ = write!(
        out,
        "\nfrontend marathon_http_appid_in\n  bind {}\n  mode http\n",
        address(config.bind_addr, config.app_id_port)
    );
    for (app_id, backend) in &table.app_ids {
        let acl = format!("app_{}", clean(app_id));
        let _ = writeln!(
            out,
            "  acl {acl} hdr(x-marathon-app-id) -i {}\n  use_backend {backend} if {acl}",
            escape(app_id)
        );
    }
}

/// Every certificate the HTTPS port offers: `--ssl-cert`'s in order (the first is the
/// default), then the labels' in name order, each once.
fn certificates(table: &RoutingTable, config: &LbConfig) -> Vec<String> {
    let mut list: Vec<String> = Vec::new();
    let given = config
        .ssl_certs
        .iter()
        .map(|path| path.to_string_lossy().into_owned());
    let labelled: BTreeSet<String> = table
        .vhosts
        .iter()
        .filter_map(|route| route.ssl_cert.clone())
        .chain(table.frontends.iter().filter_map(|f| f.ssl_cert.clone()))
        .collect();
    for cert in given.chain(labelled) {
        if !list.contains(&cert) {
            list.push(cert);
        }
    }
    list
}

/// `frontend marathon_https_in`: the same rules, matched on SNI.
fn https_frontend(out: &mut String, table: &RoutingTable, config: &LbConfig, certs: &[String]) {
    let certs: Vec<String> = certs.iter().map(|c| format!("crt {}", escape(c))).collect();
    let _ = write!(
        out,
        "\nfrontend marathon_https_in\n  bind {} ssl {}\n  mode http\n",
        address(config.bind_addr, config.https_port),
        certs.join(" ")
    );
    let mut defined = BTreeSet::new();
    for route in &table.vhosts {
        let mut condition = format!("{{ ssl_fc_sni -i {} }}", escape(&route.host));
        if let Some(path_acl) = path_acl(out, &mut defined, route) {
            condition = format!("{condition} {path_acl}");
        }
        let _ = writeln!(out, "  use_backend {} if {condition}", route.backend);
    }
}

/// One listener of the table.
fn service_frontend(out: &mut String, frontend: &Frontend, config: &LbConfig) {
    let bind_ip = frontend.bind_addr.unwrap_or(config.bind_addr);
    let fixed = [
        ("http", config.http_port),
        ("https", config.https_port),
        ("app-id", config.app_id_port),
        ("stats", config.stats_port),
    ];
    let overlaps = bind_ip == config.bind_addr || bind_ip.is_unspecified();
    let overlaps = overlaps || config.bind_addr.is_unspecified();
    if let Some((port_name, _)) = fixed
        .iter()
        .find(|(_, port)| *port != 0 && *port == frontend.port && overlaps)
    {
        let _ = write!(
            out,
            "\n# {}: port {} is the {port_name} port\n",
            frontend.name, frontend.port
        );
        return;
    }
    let ssl = frontend
        .ssl_cert
        .as_deref()
        .map(|cert| format!(" ssl crt {}", escape(cert)))
        .unwrap_or_default();
    let _ = write!(
        out,
        "\nfrontend {name}\n  bind {bind}{ssl}\n  mode {mode}\n  use_backend {backend}\n",
        name = frontend.name,
        bind = address(bind_ip, frontend.port),
        mode = mode(frontend.mode),
        backend = frontend.backend,
    );
}

/// One backend and its servers.
fn backend_section(out: &mut String, backend: &Backend) {
    let http = backend.mode == Mode::Http;
    let balance = match backend.balance {
        Balance::RoundRobin => "roundrobin",
        Balance::LeastConn => "leastconn",
        Balance::Source => "source",
    };
    let _ = write!(
        out,
        "\nbackend {}\n  balance {balance}\n  mode {}\n",
        backend.name,
        mode(backend.mode)
    );
    if http {
        if backend.hsts {
            out.push_str("  http-response set-header Strict-Transport-Security max-age=15768000\n");
        }
        out.push_str(
            "  option forwardfor\n\
             \x20 http-request set-header X-Forwarded-Port %[dst_port]\n\
             \x20 http-request add-header X-Forwarded-Proto https if { ssl_fc }\n",
        );
    }
    let sticky = http && backend.sticky;
    if sticky {
        out.push_str("  cookie mesosphere_server_id insert indirect nocache\n");
    }
    let check = backend.health_check.as_ref();
    if let Some(path) = check.and_then(|check| check.http_path.as_deref()) {
        let timeout = check.map_or(1, |check| check.timeout_seconds.max(1));
        let _ = write!(
            out,
            "  option httpchk GET {}\n  timeout check {timeout}s\n",
            escape(path)
        );
    }
    let mut taken = BTreeSet::new();
    for server in &backend.servers {
        let id = server_id(&server.name, &mut taken);
        let _ = write!(
            out,
            "  server {} {} id {id}",
            server.name,
            address(server.ip, server.port)
        );
        if check.is_some() || sticky {
            out.push_str(" check");
        }
        if let Some(check) = check {
            let _ = write!(
                out,
                " inter {}s fall {}",
                check.interval_seconds.max(1),
                check.falls.max(1)
            );
            if let Some(port) = check.port {
                let _ = write!(out, " port {port}");
            }
        }
        if sticky {
            let _ = write!(out, " cookie {}", cookie(&server.name));
        }
        out.push('\n');
    }
}

fn mode(mode: Mode) -> &'static str {
    match mode {
        Mode::Tcp => "tcp",
        Mode::Http => "http",
    }
}

/// `*:port` for all IPv4 addresses (marathon-lb's form), `ip:port`, or `[ipv6]:port`.
fn address(ip: IpAddr, port: u16) -> String {
    match ip {
        IpAddr::V4(v4) if v4 == Ipv4Addr::UNSPECIFIED => format!("*:{port}"),
        IpAddr::V4(v4) => format!("{v4}:{port}"),
        IpAddr::V6(v6) => format!("[{v6}]:{port}"),
    }
}

/// A duration as HAProxy reads it: whole seconds as `Ns`, anything else in milliseconds.
fn duration(duration: Duration) -> String {
    let millis = duration.as_millis();
    if millis % 1000 == 0 {
        format!("{}s", millis / 1000)
    } else {
        format!("{millis}ms")
    }
}

/// marathon-lb's `cleanedUp*` names: characters outside `[A-Za-z0-9-]` made `_`.
fn clean(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// One word for HAProxy's config parser: backslash before a space, quotes, `#` and
/// backslash; a tab as `\t` and other control characters as `\xHH`.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            ' ' | '#' | '\\' | '\'' | '"' => {
                out.push('\\');
                out.push(c);
            }
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let mut buf = [0u8; 4];
                for byte in c.encode_utf8(&mut buf).bytes() {
                    let _ = write!(out, "\\x{byte:02x}");
                }
            }
            c => out.push(c),
        }
    }
    out
}

/// marathon-lb's stable server id of `name` within one backend (see the module docs).
fn server_id(name: &str, taken: &mut BTreeSet<u32>) -> u32 {
    let mut candidate = name.to_owned();
    for _ in 0..64 {
        let digest = Sha256::digest(candidate.as_bytes());
        let id = digest.iter().fold(0u32, |id, byte| {
            (id * 256 + u32::from(*byte)) % SERVER_ID_MODULUS
        });
        if id != 0 && taken.insert(id) {
            return id;
        }
        candidate = format!("{candidate} {}", hex::encode(digest));
    }
    // Only a backend with thousands of servers gets here: the lowest free id.
    let free = (1..SERVER_ID_MODULUS).find(|id| !taken.contains(id));
    let id = free.unwrap_or(SERVER_ID_MODULUS);
    taken.insert(id);
    id
}

/// marathon-lb's sticky cookie value: the first 10 hex digits of SHA-1 of the server name.
fn cookie(name: &str) -> String {
    let mut hex = hex::encode(Sha1::digest(name.as_bytes()));
    hex.truncate(10);
    hex
}

#[cfg(test)]
mod tests;

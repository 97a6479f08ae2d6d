//! The text of generated configs: sections, rules and server lines for tables built from
//! snapshots by [`crate::routes`], and marathon-lb's server ids and cookies.

use super::*;
use crate::routes;
use crate::routes::tests::{app, config as route_config, snapshot, task, web, AGENT0, AGENT1};
use crate::table::{BackendCheck, FrontendKind, Server};
use orch_core::model::{AppId, TaskId};
use serde_json::json;
use std::path::PathBuf;
use std::sync::Arc;

fn lb_config() -> LbConfig {
    LbConfig {
        http_port: 8000,
        https_port: 8443,
        app_id_port: 8091,
        stats_port: 8090,
        ..LbConfig::default()
    }
}

/// The lines of `section` (`frontend x`, `backend y`, `listen stats`, `global`), without
/// the header, trimmed; empty when absent.
fn section(text: &str, header: &str) -> Vec<String> {
    let mut lines = text.lines();
    if !lines.any(|line| line == header) {
        return Vec::new();
    }
    lines
        .take_while(|line| line.starts_with("  "))
        .map(|line| line.trim().to_owned())
        .collect()
}

fn vhost_snapshot() -> orch_core::state::Snapshot {
    snapshot(
        vec![
            web(
                "/prod/web",
                &[10000],
                json!({"HAPROXY_GROUP": "external", "HAPROXY_0_VHOST": "web.example.com,WWW.example.com"}),
            ),
            web(
                "/api",
                &[10001],
                json!({"HAPROXY_GROUP": "external", "HAPROXY_0_VHOST": "web.example.com",
                       "HAPROXY_0_PATH": "-i /api /v2", "HAPROXY_0_STICKY": "true",
                       "HAPROXY_0_USE_HSTS": "true"}),
            ),
            web(
                "/secure",
                &[10002],
                json!({"HAPROXY_GROUP": "external", "HAPROXY_0_VHOST": "secure.example.com",
                       "HAPROXY_0_REDIRECT_TO_HTTPS": "true",
                       "HAPROXY_0_SSL_CERT": "/certs/secure.pem"}),
            ),
            web("/db", &[10003], json!({"HAPROXY_GROUP": "external"})),
        ],
        vec![
            task("/prod/web", "a", AGENT0, &[31000]),
            task("/prod/web", "b", AGENT1, &[31001]),
            task("/api", "a", AGENT0, &[31002]),
            task("/secure", "a", AGENT0, &[31003]),
            task("/db", "a", AGENT0, &[31004]),
        ],
    )
}

#[test]
fn vhost_apps_give_acls_and_use_backend_lines() {
    let table = routes(&vhost_snapshot(), &route_config(&["external"]));
    let text = haproxy_config(&table, &lb_config());
    assert_eq!(
        section(&text, "frontend marathon_http_in"),
        [
            "bind *:8000",
            "mode http",
            "acl host_web_example_com_api_10001 hdr(host) -i web.example.com",
            "acl host_web_example_com_api_10001 hdr_beg(host) -i web.example.com:",
            "acl path_api_10001 path_beg -i /api /v2",
            "acl host_web_example_com_prod_web_10000 hdr(host) -i web.example.com",
            "acl host_web_example_com_prod_web_10000 hdr_beg(host) -i web.example.com:",
            "acl host_www_example_com_prod_web_10000 hdr(host) -i www.example.com",
            "acl host_www_example_com_prod_web_10000 hdr_beg(host) -i www.example.com:",
            "acl host_secure_example_com_secure_10002 hdr(host) -i secure.example.com",
            "acl host_secure_example_com_secure_10002 hdr_beg(host) -i secure.example.com:",
            "redirect scheme https code 301 if !{ ssl_fc } host_secure_example_com_secure_10002",
            "use_backend api_10001 if host_web_example_com_api_10001 path_api_10001",
            "use_backend prod_web_10000 if host_web_example_com_prod_web_10000",
            "use_backend prod_web_10000 if host_www_example_com_prod_web_10000",
        ]
    );
    assert_eq!(
        section(&text, "frontend marathon_http_appid_in"),
        [
            "bind *:8091",
            "mode http",
            "acl app__api hdr(x-marathon-app-id) -i /api",
            "use_backend api_10001 if app__api",
            "acl app__prod_web hdr(x-marathon-app-id) -i /prod/web",
            "use_backend prod_web_10000 if app__prod_web",
            "acl app__secure hdr(x-marathon-app-id) -i /secure",
            "use_backend secure_10002 if app__secure",
        ]
    );
    assert_eq!(
        section(&text, "frontend marathon_https_in"),
        [
            "bind *:8443 ssl crt /certs/secure.pem",
            "mode http",
            "acl path_api_10001 path_beg -i /api /v2",
            "use_backend api_10001 if { ssl_fc_sni -i web.example.com } path_api_10001",
            "use_backend prod_web_10000 if { ssl_fc_sni -i web.example.com }",
            "use_backend prod_web_10000 if { ssl_fc_sni -i www.example.com }",
            "use_backend secure_10002 if { ssl_fc_sni -i secure.example.com }",
        ]
    );
    assert_eq!(
        section(&text, "frontend secure_10002"),
        [
            "bind *:10002 ssl crt /certs/secure.pem",
            "mode http",
            "use_backend secure_10002"
        ]
    );
    assert_eq!(
        section(&text, "frontend db_10003"),
        ["bind *:10003", "mode tcp", "use_backend db_10003"]
    );
    assert_eq!(
        section(&text, "backend db_10003"),
        [
            "balance roundrobin",
            "mode tcp",
            "server agent0_example_10_0_0_10_31004 10.0.0.10:31004 id 10165"
        ]
    );
    let api = section(&text, "backend api_10001");
    assert_eq!(
        api[..7],
        [
            "balance roundrobin",
            "mode http",
            "http-response set-header Strict-Transport-Security max-age=15768000",
            "option forwardfor",
            "http-request set-header X-Forwarded-Port %[dst_port]",
            "http-request add-header X-Forwarded-Proto https if { ssl_fc }",
            "cookie mesosphere_server_id insert indirect nocache",
        ]
    );
    let server = &api[7];
    assert!(
        server.starts_with("server agent0_example_10_0_0_10_31002 10.0.0.10:31002 id ")
            && server.ends_with(&format!(
                " check cookie {}",
                cookie("agent0_example_10_0_0_10_31002")
            )),
        "{server}"
    );
    assert_eq!(section(&text, "backend prod_web_10000").len(), 7);

    // The order of sections is marathon-lb's.
    let headers: Vec<&str> = text
        .lines()
        .filter(|line| !line.starts_with(' ') && !line.is_empty())
        .collect();
    assert_eq!(
        headers,
        [
            "global",
            "defaults",
            "listen stats",
            "frontend marathon_http_in",
            "frontend marathon_http_appid_in",
            "frontend marathon_https_in",
            "frontend prod_web_10000",
            "frontend api_10001",
            "frontend secure_10002",
            "frontend db_10003",
            "backend api_10001",
            "backend db_10003",
            "backend prod_web_10000",
            "backend secure_10002",
        ]
    );
}

#[test]
fn head_and_stats_carry_the_limits_and_ports() {
    let mut config = lb_config();
    config.limits.connect_timeout = Duration::from_millis(1500);
    config.limits.client_timeout = Duration::from_secs(50);
    config.limits.max_connections = 2000;
    config.limits.retries = 5;
    config.bind_addr = "127.0.0.1".parse().expect("ip");
    let text = haproxy_config(&RoutingTable::default(), &config);
    let global = section(&text, "global");
    assert!(global.contains(&"maxconn 2000".to_owned()), "{global:?}");
    assert!(!text.contains("stats socket"));
    assert!(!text.contains("server-state"));
    let defaults = section(&text, "defaults");
    for line in [
        "retries 5",
        "maxconn 2000",
        "timeout connect 1500ms",
        "timeout client 50s",
        "timeout server 30s",
        "timeout http-request 15s",
        "timeout http-keep-alive 1s",
    ] {
        assert!(
            defaults.contains(&line.to_owned()),
            "{line} in {defaults:?}"
        );
    }
    assert_eq!(
        section(&text, "listen stats"),
        [
            "bind 127.0.0.1:8090",
            "mode http",
            "stats enable",
            "stats uri /haproxy?stats",
            "http-request use-service prometheus-exporter if { path /metrics }",
            "monitor-uri /_haproxy_health_check",
        ]
    );
    assert_eq!(
        section(&text, "frontend marathon_http_in"),
        ["bind 127.0.0.1:8000", "mode http"]
    );
    // No certificate at all: no HTTPS frontend.
    assert!(section(&text, "frontend marathon_https_in").is_empty());
    assert!(!text.contains("marathon_https_in"));
    // Defaults: marathon-lb's values.
    let text = haproxy_config(&RoutingTable::default(), &LbConfig::default());
    let defaults = section(&text, "defaults");
    assert!(defaults.contains(&"maxconn 10000".to_owned()));
    assert!(defaults.contains(&"timeout connect 3s".to_owned()));
    assert!(section(&text, "global").contains(&"maxconn 50000".to_owned()));
}

#[test]
fn port_zero_leaves_fixed_frontends_out_and_given_certs_come_first() {
    let table = routes(&vhost_snapshot(), &route_config(&["external"]));
    let mut config = LbConfig {
        http_port: 0,
        app_id_port: 0,
        stats_port: 0,
        ssl_certs: vec![
            PathBuf::from("/etc/ssl/default.pem"),
            PathBuf::from("/certs/secure.pem"),
        ],
        ..lb_config()
    };
    let text = haproxy_config(&table, &config);
    assert!(!text.contains("marathon_http_in"));
    assert!(!text.contains("marathon_http_appid_in"));
    assert!(!text.contains("listen stats"));
    assert_eq!(
        section(&text, "frontend marathon_https_in")[0],
        "bind *:8443 ssl crt /etc/ssl/default.pem crt /certs/secure.pem"
    );
    config.https_port = 0;
    let text = haproxy_config(&table, &config);
    assert!(!text.contains("marathon_https_in"));
    assert!(text.contains("frontend db_10003"));
}

#[test]
fn a_listener_on_a_fixed_port_is_left_out() {
    let snap = snapshot(
        vec![
            web("/clash", &[8000], json!({})),
            web(
                "/elsewhere",
                &[8091],
                json!({"HAPROXY_0_BIND_ADDR": "10.0.0.5"}),
            ),
        ],
        vec![
            task("/clash", "a", AGENT0, &[31000]),
            task("/elsewhere", "a", AGENT0, &[31001]),
        ],
    );
    let table = routes(&snap, &route_config(&["*"]));
    let text = haproxy_config(&table, &lb_config());
    assert!(text.contains("# clash_8000: port 8000 is the http port"));
    assert!(!text.contains("frontend clash_8000"));
    assert!(text.contains("backend clash_8000"));
    // Another address than the wildcard the fixed ports use still clashes.
    assert!(!text.contains("frontend elsewhere_8091"));
    let config = LbConfig {
        bind_addr: "127.0.0.1".parse().expect("ip"),
        ..lb_config()
    };
    let text = haproxy_config(&table, &config);
    assert_eq!(
        section(&text, "frontend elsewhere_8091"),
        [
            "bind 10.0.0.5:8091",
            "mode tcp",
            "use_backend elsewhere_8091"
        ]
    );
}

#[test]
fn health_checks_become_httpchk_and_server_options() {
    let snap = snapshot(
        vec![
            app(
                "/checked",
                json!({"cmd": "sleep 100", "portDefinitions": [{"port": 10000}, {"port": 10001}],
                "healthChecks": [
                  {"protocol": "HTTP", "path": "/health", "portIndex": 0,
                   "intervalSeconds": 2, "timeoutSeconds": 10, "maxConsecutiveFailures": 10},
                  {"protocol": "TCP", "portIndex": 1, "intervalSeconds": 3}
                ]}),
            ),
            app(
                "/port",
                json!({"cmd": "sleep 100", "portDefinitions": [{"port": 10002}],
                       "labels": {"HAPROXY_0_MODE": "http"},
                       "healthChecks": [{"protocol": "MESOS_HTTP", "port": 9999, "path": "/a b"}]}),
            ),
        ],
        vec![
            task("/checked", "a", AGENT0, &[31000, 31001]),
            task("/port", "a", AGENT1, &[31002]),
        ],
    );
    let table = routes(&snap, &route_config(&["*"]));
    let text = haproxy_config(&table, &lb_config());
    let http = section(&text, "backend checked_10000");
    assert_eq!(
        http[5..7],
        ["option httpchk GET /health", "timeout check 10s"]
    );
    assert!(http[7].ends_with(" check inter 2s fall 11"), "{}", http[7]);
    let tcp = section(&text, "backend checked_10001");
    assert_eq!(tcp.len(), 3, "{tcp:?}");
    assert!(tcp[2].ends_with(" check inter 3s fall 4"), "{}", tcp[2]);
    let port = section(&text, "backend port_10002");
    assert_eq!(port[5], "option httpchk GET /a\\ b");
    assert!(
        port[7].ends_with(" check inter 60s fall 4 port 9999"),
        "{}",
        port[7]
    );
}

#[test]
fn hand_built_tables_render_ipv6_vips_and_escapes() {
    let server = |name: &str, ip: &str, port: u16| Server {
        name: name.into(),
        task_id: TaskId(format!("{name}.instance-1._app.1")),
        host: "h".into(),
        ip: ip.parse().expect("ip"),
        port,
    };
    let backend = Backend {
        name: "vip_db_5432".into(),
        app_id: AppId::parse("/db").expect("id"),
        service_port: 5432,
        mode: Mode::Tcp,
        balance: Balance::LeastConn,
        sticky: true,
        redirect_to_https: false,
        hsts: false,
        health_check: None,
        servers: vec![
            server("a", "fd00::1", 31000),
            server("b", "10.0.0.1", 31001),
        ],
    };
    let weird = Backend {
        name: "weird_80".into(),
        mode: Mode::Http,
        balance: Balance::Source,
        sticky: false,
        health_check: Some(BackendCheck {
            http_path: Some("/".into()),
            port: None,
            interval_seconds: 0,
            timeout_seconds: -1,
            falls: 0,
        }),
        servers: vec![server("c", "10.0.0.2", 80)],
        ..backend.clone()
    };
    let mut table = RoutingTable::default();
    table
        .backends
        .insert(backend.name.clone(), Arc::new(backend));
    table.backends.insert(weird.name.clone(), Arc::new(weird));
    table.frontends.push(Frontend {
        name: "vip_db_5432".into(),
        bind_addr: Some("fd00::9".parse().expect("ip")),
        port: 5432,
        mode: Mode::Tcp,
        ssl_cert: Some("/my certs/#1.pem".into()),
        backend: "vip_db_5432".into(),
        kind: FrontendKind::Vip,
    });
    table.vhosts.push(VhostRoute {
        host: "w.example".into(),
        paths: vec!["/a#b".into(), "/c\"d".into()],
        paths_ignore_case: false,
        backend: "weird_80".into(),
        ssl_cert: None,
    });
    let text = haproxy_config(&table, &lb_config());
    assert_eq!(
        section(&text, "frontend vip_db_5432"),
        [
            "bind [fd00::9]:5432 ssl crt /my\\ certs/\\#1.pem",
            "mode tcp",
            "use_backend vip_db_5432"
        ]
    );
    let vip = section(&text, "backend vip_db_5432");
    assert_eq!(vip[..2], ["balance leastconn", "mode tcp"]);
    // tcp mode: no cookie, no check.
    assert_eq!(
        vip[2],
        format!("server a [fd00::1]:31000 id {}", {
            let mut taken = BTreeSet::new();
            server_id("a", &mut taken)
        })
    );
    let weird = section(&text, "backend weird_80");
    assert_eq!(weird[0], "balance source");
    assert!(weird.contains(&"timeout check 1s".to_owned()), "{weird:?}");
    assert!(weird[7].ends_with(" check inter 1s fall 1"), "{weird:?}");
    assert!(section(&text, "frontend marathon_http_in")
        .contains(&"acl path_weird_80 path_beg /a\\#b /c\\\"d".to_owned()));
}

#[test]
fn server_ids_and_cookies_are_marathon_lbs() {
    let mut taken = BTreeSet::new();
    assert_eq!(server_id("agent1_1_1_1_1_1024", &mut taken), 28363);
    assert_eq!(server_id("agent1_192_0_2_1_1234", &mut taken), 15582);
    assert_eq!(cookie("agent1_1_1_1_1_1024"), "d6ad48c81f");
    // A collision hashes the name with its digest appended, the same way every time.
    let again = server_id("agent1_1_1_1_1_1024", &mut taken);
    assert!(again != 28363 && again != 15582 && again > 0 && again < 32767);
    let mut other = BTreeSet::from([28363, 15582]);
    assert_eq!(server_id("agent1_1_1_1_1_1024", &mut other), again);
    // Full: the lowest free id.
    let mut full: BTreeSet<u32> = (1..32767).filter(|id| *id != 7).collect();
    assert_eq!(server_id("x", &mut full), 7);
}

#[test]
fn durations_and_escapes() {
    assert_eq!(duration(Duration::from_secs(3)), "3s");
    assert_eq!(duration(Duration::from_millis(250)), "250ms");
    assert_eq!(duration(Duration::ZERO), "0s");
    assert_eq!(escape("a b\\c'd\"e#f\tg"), "a\\ b\\\\c\\'d\\\"e\\#f\\tg");
    assert_eq!(escape("x\ny"), "x\\x0ay");
    assert_eq!(address("0.0.0.0".parse().expect("ip"), 80), "*:80");
    assert_eq!(address("::".parse().expect("ip"), 80), "[::]:80");
}

//! The route builder on hand-built snapshots: two reachable agents and an unreachable one,
//! apps with marathon-lb labels, and tasks in every state that matters.

use super::*;
use orch_core::model::{AgentId, Goal, TaskId, TaskState};
use proptest::prelude::*;
use serde_json::{json, Value as Json};

pub(crate) use orch_core::testing::{agent, app, health, snapshot, task, AGENT0, AGENT1, AGENT2};

/// A host-networking app with the given service ports, app labels and port labels.
pub(crate) fn web(id: &str, ports: &[u16], labels: Json) -> App {
    let ports: Vec<Json> = ports.iter().map(|port| json!({"port": port})).collect();
    app(
        id,
        json!({"cmd": "sleep 100", "portDefinitions": ports, "labels": labels}),
    )
}

pub(crate) fn config(groups: &[&str]) -> RouteConfig {
    RouteConfig {
        groups: groups.iter().map(|g| (*g).to_owned()).collect(),
        ..RouteConfig::default()
    }
}

fn backend_names(table: &RoutingTable) -> Vec<&str> {
    table.backends.keys().map(String::as_str).collect()
}

fn server_addresses(table: &RoutingTable, backend: &str) -> Vec<String> {
    table.backends[backend]
        .servers
        .iter()
        .map(|s| format!("{}:{}", s.ip, s.port))
        .collect()
}

fn routes_of(table: &RoutingTable) -> Vec<(String, Vec<String>, String)> {
    table
        .vhosts
        .iter()
        .map(|r| (r.host.clone(), r.paths.clone(), r.backend.clone()))
        .collect()
}

#[test]
fn groups_select_ports_and_star_takes_everything() {
    let apps = vec![
        web("/ext", &[10000], json!({"HAPROXY_GROUP": "external"})),
        web("/int", &[10001], json!({"HAPROXY_GROUP": "internal,other"})),
        web("/none", &[10002], json!({})),
        // Per-port group beats the app's group.
        web(
            "/split",
            &[10003, 10004],
            json!({"HAPROXY_GROUP": "internal", "HAPROXY_0_GROUP": "external"}),
        ),
    ];
    let mut split_port = app(
        "/portlabel",
        json!({"cmd": "sleep 100", "portDefinitions": [
            {"port": 10005, "labels": {"HAPROXY_GROUP": "external"}},
            {"port": 10006}
        ], "labels": {"HAPROXY_GROUP": "internal"}}),
    );
    split_port
        .spec
        .labels
        .insert("unrelated".into(), "x".into());
    let mut all = apps;
    all.push(split_port);
    let tasks = vec![
        task("/ext", "a", AGENT0, &[31000]),
        task("/int", "a", AGENT0, &[31001]),
        task("/none", "a", AGENT0, &[31002]),
        task("/split", "a", AGENT0, &[31003, 31004]),
        task("/portlabel", "a", AGENT0, &[31005, 31006]),
    ];
    let snap = snapshot(all, tasks);
    let table = routes(&snap, &config(&["external"]));
    assert_eq!(
        backend_names(&table),
        ["ext_10000", "portlabel_10005", "split_10003"]
    );
    let table = routes(&snap, &config(&["internal"]));
    assert_eq!(
        backend_names(&table),
        ["int_10001", "portlabel_10006", "split_10004"]
    );
    let table = routes(&snap, &config(&["other", "external"]));
    assert_eq!(table.backends.len(), 4);
    let table = routes(&snap, &config(&["*"]));
    assert_eq!(
        backend_names(&table),
        [
            "ext_10000",
            "int_10001",
            "none_10002",
            "portlabel_10005",
            "portlabel_10006",
            "split_10003",
            "split_10004"
        ]
    );
    assert!(routes(&snap, &config(&[])).backends.is_empty());
    assert_eq!(table.applied_index, 42);
}

#[test]
fn strict_mode_needs_enabled_and_enabled_false_always_disables() {
    let snap = snapshot(
        vec![
            web("/on", &[10000], json!({"HAPROXY_0_ENABLED": "True"})),
            web("/off", &[10001], json!({"HAPROXY_0_ENABLED": "false"})),
            web("/plain", &[10002], json!({})),
        ],
        vec![
            task("/on", "a", AGENT0, &[31000]),
            task("/off", "a", AGENT0, &[31001]),
            task("/plain", "a", AGENT0, &[31002]),
        ],
    );
    let loose = config(&["*"]);
    assert_eq!(
        backend_names(&routes(&snap, &loose)),
        ["on_10000", "plain_10002"]
    );
    let strict = RouteConfig {
        strict_mode: true,
        ..loose
    };
    assert_eq!(backend_names(&routes(&snap, &strict)), ["on_10000"]);
}

#[test]
fn only_running_wanted_tasks_on_reachable_agents_serve() {
    let mut staging = task("/web", "staging", AGENT0, &[31001]);
    staging.state = TaskState::Staging;
    let mut killing = task("/web", "killing", AGENT0, &[31002]);
    killing.state = TaskState::Killing;
    let mut leaving = task("/web", "leaving", AGENT0, &[31003]);
    leaving.goal = Goal::Decommissioned;
    let snap = snapshot(
        vec![web("/web", &[10000], json!({}))],
        vec![
            task("/web", "a", AGENT0, &[31000]),
            staging,
            killing,
            leaving,
            task("/web", "far", AGENT2, &[31004]),
            task("/web", "lost", "no-such-agent", &[31005]),
            task("/web", "b", AGENT1, &[31006]),
        ],
    );
    let table = routes(&snap, &config(&["*"]));
    assert_eq!(
        server_addresses(&table, "web_10000"),
        ["10.0.0.11:31006", "10.0.0.10:31000"]
    );
    let names: Vec<&str> = table.backends["web_10000"]
        .servers
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(names, ["10_0_0_11_31006", "agent0_example_10_0_0_10_31000"]);
    let server = &table.backends["web_10000"].servers[1];
    assert_eq!(server.host, "agent0.example");
    assert_eq!(server.task_id, TaskId("web.instance-a._app.1".into()));

    // No task left: no backend, no listener.
    let mut snap = snap;
    snap.tasks = snap
        .tasks
        .iter()
        .filter(|(_, t)| t.agent_id.0 == AGENT2)
        .map(|(k, v)| (k.clone(), Arc::clone(v)))
        .collect();
    let table = routes(&snap, &config(&["*"]));
    assert!(table.backends.is_empty() && table.frontends.is_empty());
}

#[test]
fn health_check_mode_keeps_only_healthy_tasks_of_checked_apps() {
    let checked = app(
        "/checked",
        json!({"cmd": "sleep 100", "portDefinitions": [{"port": 10000}],
               "healthChecks": [{"protocol": "TCP"}]}),
    );
    let mut good = task("/checked", "good", AGENT0, &[31000]);
    good.health = health(true);
    let mut bad = task("/checked", "bad", AGENT0, &[31001]);
    bad.health = health(false);
    let unknown = task("/checked", "new", AGENT0, &[31002]);
    let snap = snapshot(
        vec![checked, web("/plain", &[10001], json!({}))],
        vec![good, bad, unknown, task("/plain", "p", AGENT0, &[31003])],
    );
    let all = routes(&snap, &config(&["*"]));
    assert_eq!(all.backends["checked_10000"].servers.len(), 3);
    let healthy = RouteConfig {
        health_check: true,
        ..config(&["*"])
    };
    let table = routes(&snap, &healthy);
    assert_eq!(
        server_addresses(&table, "checked_10000"),
        ["10.0.0.10:31000"]
    );
    assert_eq!(table.backends["plain_10001"].servers.len(), 1);
}

#[test]
fn vhosts_imply_http_and_give_one_rule_per_host() {
    let snap = snapshot(
        vec![
            web(
                "/prod/web",
                &[10000, 10001],
                json!({"HAPROXY_0_VHOST": " Web.Example.com,www.example.com ,, web.example.com",
                       "HAPROXY_1_VHOST": "other.example.com"}),
            ),
            web(
                "/forced",
                &[10002],
                json!({"HAPROXY_0_VHOST": "forced.example.com", "HAPROXY_0_MODE": "TCP"}),
            ),
            web("/tcp", &[10003], json!({})),
            web("/modehttp", &[10004], json!({"HAPROXY_0_MODE": "Http"})),
            web(
                "/weird",
                &[10005],
                json!({"HAPROXY_0_MODE": "udp", "HAPROXY_0_VHOST": "bad host,ok.example"}),
            ),
        ],
        vec![
            task("/prod/web", "a", AGENT0, &[31000, 31001]),
            task("/forced", "a", AGENT0, &[31002]),
            task("/tcp", "a", AGENT0, &[31003]),
            task("/modehttp", "a", AGENT0, &[31004]),
            task("/weird", "a", AGENT0, &[31005]),
        ],
    );
    let table = routes(&snap, &config(&["*"]));
    let mode = |name: &str| table.backends[name].mode;
    assert_eq!(mode("prod_web_10000"), Mode::Http);
    assert_eq!(mode("prod_web_10001"), Mode::Http);
    assert_eq!(mode("forced_10002"), Mode::Tcp);
    assert_eq!(mode("tcp_10003"), Mode::Tcp);
    assert_eq!(mode("modehttp_10004"), Mode::Http);
    assert_eq!(
        mode("weird_10005"),
        Mode::Http,
        "unknown MODE counts as unset"
    );
    assert_eq!(
        routes_of(&table),
        [
            ("web.example.com".into(), vec![], "prod_web_10000".into()),
            ("www.example.com".into(), vec![], "prod_web_10000".into()),
            ("other.example.com".into(), vec![], "prod_web_10001".into()),
            ("ok.example".into(), vec![], "weird_10005".into()),
        ]
    );
    // The app-id port: the first http port of each app.
    let app_ids: Vec<(&str, &str)> = table
        .app_ids
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        app_ids,
        [
            ("/modehttp", "modehttp_10004"),
            ("/prod/web", "prod_web_10000"),
            ("/weird", "weird_10005"),
        ]
    );
    // Every port has its own listener, sorted by port.
    let listeners: Vec<(u16, &str, Mode)> = table
        .frontends
        .iter()
        .map(|f| (f.port, f.backend.as_str(), f.mode))
        .collect();
    assert_eq!(listeners.len(), 6);
    assert_eq!(listeners[0], (10000, "prod_web_10000", Mode::Http));
    assert_eq!(listeners[3], (10003, "tcp_10003", Mode::Tcp));
    assert!(table
        .frontends
        .iter()
        .all(|f| f.kind == FrontendKind::Service && f.name == f.backend));
}

#[test]
fn paths_order_rules_and_weights_override() {
    let snap = snapshot(
        vec![
            web(
                "/a-root",
                &[10000],
                json!({"HAPROXY_0_VHOST": "shop.example"}),
            ),
            web(
                "/b-api",
                &[10001],
                json!({"HAPROXY_0_VHOST": "shop.example", "HAPROXY_0_PATH": "-i /API /v2"}),
            ),
            web(
                "/c-heavy",
                &[10002],
                json!({"HAPROXY_0_VHOST": "shop.example", "HAPROXY_0_BACKEND_WEIGHT": "5"}),
            ),
            web(
                "/d-static",
                &[10003],
                json!({"HAPROXY_0_VHOST": "shop.example", "HAPROXY_0_PATH": "/static",
                       "HAPROXY_0_BACKEND_WEIGHT": "not a number"}),
            ),
            web(
                "/e-light",
                &[10004],
                json!({"HAPROXY_0_VHOST": "shop.example", "HAPROXY_0_PATH": "/x",
                       "HAPROXY_0_BACKEND_WEIGHT": "-3"}),
            ),
            web(
                "/f-onlyflag",
                &[10005],
                json!({"HAPROXY_0_VHOST": "other.example", "HAPROXY_0_PATH": "-i"}),
            ),
        ],
        [
            "/a-root",
            "/b-api",
            "/c-heavy",
            "/d-static",
            "/e-light",
            "/f-onlyflag",
        ]
        .iter()
        .enumerate()
        .map(|(i, id)| task(id, "a", AGENT0, &[31000 + u16::try_from(i).expect("small")]))
        .collect(),
    );
    let table = routes(&snap, &config(&["*"]));
    let s = |v: &[&str]| v.iter().map(|p| (*p).to_owned()).collect::<Vec<_>>();
    assert_eq!(
        routes_of(&table),
        [
            ("shop.example".into(), s(&[]), "c-heavy_10002".into()),
            (
                "shop.example".into(),
                s(&["/API", "/v2"]),
                "b-api_10001".into()
            ),
            (
                "shop.example".into(),
                s(&["/static"]),
                "d-static_10003".into()
            ),
            ("shop.example".into(), s(&[]), "a-root_10000".into()),
            ("other.example".into(), s(&[]), "f-onlyflag_10005".into()),
            ("shop.example".into(), s(&["/x"]), "e-light_10004".into()),
        ]
    );
    assert!(table.vhosts[1].paths_ignore_case);
    assert!(!table.vhosts[2].paths_ignore_case);
    assert!(table.vhosts[4].paths_ignore_case);
}

#[test]
fn per_port_settings() {
    let snap = snapshot(
        vec![web(
            "/opts",
            &[10000, 10001, 10002, 10003],
            json!({
                "HAPROXY_0_VHOST": "a.example", "HAPROXY_0_BALANCE": "LeastConn",
                "HAPROXY_0_STICKY": "yes", "HAPROXY_0_REDIRECT_TO_HTTPS": "t",
                "HAPROXY_0_USE_HSTS": "true", "HAPROXY_0_SSL_CERT": " /certs/a.pem ",
                "HAPROXY_0_BIND_ADDR": "10.1.2.3",
                "HAPROXY_1_BALANCE": "source", "HAPROXY_1_STICKY": "true",
                "HAPROXY_1_BIND_ADDR": "*", "HAPROXY_1_PORT": "8080",
                "HAPROXY_2_BALANCE": "first", "HAPROXY_2_BIND_ADDR": "[fd00::1]",
                "HAPROXY_2_PORT": "0",
                "HAPROXY_3_BALANCE": "static-rr", "HAPROXY_3_BIND_ADDR": "somewhere",
                "HAPROXY_3_PORT": "99999", "HAPROXY_3_REDIRECT_TO_HTTPS": "true"
            }),
        )],
        vec![task("/opts", "a", AGENT0, &[31000, 31001, 31002, 31003])],
    );
    let table = routes(&snap, &config(&["*"]));
    assert_eq!(
        backend_names(&table),
        ["opts_10000", "opts_10002", "opts_10003", "opts_8080"]
    );
    let zero = &table.backends["opts_10000"];
    assert_eq!(zero.balance, Balance::LeastConn);
    assert!(zero.sticky && zero.redirect_to_https && zero.hsts);
    assert_eq!(zero.service_port, 10000);
    let one = &table.backends["opts_8080"];
    assert_eq!(one.balance, Balance::Source);
    assert_eq!(one.service_port, 8080);
    assert!(
        !one.sticky,
        "stickiness is an http feature; this port is tcp"
    );
    assert_eq!(table.backends["opts_10002"].balance, Balance::RoundRobin);
    assert_eq!(table.backends["opts_10003"].balance, Balance::RoundRobin);
    assert!(!table.backends["opts_10003"].redirect_to_https);

    let frontend = |name: &str| {
        table
            .frontends
            .iter()
            .find(|f| f.name == name)
            .expect("a listener")
    };
    assert_eq!(frontend("opts_10000").bind_addr, "10.1.2.3".parse().ok());
    assert_eq!(
        frontend("opts_10000").ssl_cert.as_deref(),
        Some("/certs/a.pem")
    );
    assert_eq!(frontend("opts_8080").bind_addr, None);
    assert_eq!(frontend("opts_8080").port, 8080);
    assert_eq!(frontend("opts_10002").bind_addr, "fd00::1".parse().ok());
    assert_eq!(frontend("opts_10003").bind_addr, None);
    assert_eq!(table.vhosts[0].ssl_cert.as_deref(), Some("/certs/a.pem"));
    let ports: Vec<u16> = table.frontends.iter().map(|f| f.port).collect();
    assert_eq!(ports, [8080, 10000, 10002, 10003]);
}

#[test]
fn health_checks_translate_as_marathon_lb() {
    let snap = snapshot(
        vec![
            app(
                "/http",
                json!({"cmd": "sleep 100", "portDefinitions": [{"port": 10000}, {"port": 10001}],
                "healthChecks": [
                  {"protocol": "HTTP", "path": "/health", "portIndex": 1,
                   "intervalSeconds": 5, "timeoutSeconds": 2, "maxConsecutiveFailures": 2},
                  {"protocol": "TCP", "portIndex": 0}
                ]}),
            ),
            app(
                "/fixed",
                json!({"cmd": "sleep 100", "portDefinitions": [{"port": 10002}, {"port": 10003}],
                       "labels": {"HAPROXY_1_MODE": "http"},
                       "healthChecks": [{"protocol": "MESOS_HTTP", "port": 9999}]}),
            ),
            app(
                "/forcedtcp",
                json!({"cmd": "sleep 100", "portDefinitions": [{"port": 10004}],
                       "labels": {"HAPROXY_0_MODE": "tcp"},
                       "healthChecks": [{"protocol": "HTTP"}]}),
            ),
            app(
                "/command",
                json!({"cmd": "sleep 100", "portDefinitions": [{"port": 10005}],
                       "labels": {"HAPROXY_0_VHOST": "c.example"},
                       "healthChecks": [{"protocol": "COMMAND", "command": {"value": "true"},
                                         "portIndex": 0}]}),
            ),
        ],
        vec![
            task("/http", "a", AGENT0, &[31000, 31001]),
            task("/fixed", "a", AGENT0, &[31002, 31003]),
            task("/forcedtcp", "a", AGENT0, &[31004]),
            task("/command", "a", AGENT0, &[31005]),
        ],
    );
    let table = routes(&snap, &config(&["*"]));
    let check = |name: &str| table.backends[name].health_check.clone();
    // Port 0: the TCP check; port 1: the HTTP check, which also makes it http.
    assert_eq!(table.backends["http_10000"].mode, Mode::Tcp);
    assert_eq!(
        check("http_10000"),
        Some(BackendCheck {
            http_path: None,
            port: None,
            interval_seconds: 60,
            timeout_seconds: 20,
            falls: 4
        })
    );
    assert_eq!(table.backends["http_10001"].mode, Mode::Http);
    assert_eq!(
        check("http_10001"),
        Some(BackendCheck {
            http_path: Some("/health".into()),
            port: None,
            interval_seconds: 5,
            timeout_seconds: 2,
            falls: 3
        })
    );
    assert_eq!(table.app_ids["/http"], "http_10001");
    // A check with a fixed port is every port's check; MESOS_HTTP does not force http.
    assert_eq!(table.backends["fixed_10002"].mode, Mode::Tcp);
    assert_eq!(check("fixed_10002").and_then(|c| c.port), Some(9999));
    assert_eq!(check("fixed_10002").and_then(|c| c.http_path), None);
    assert_eq!(
        check("fixed_10003").and_then(|c| c.http_path).as_deref(),
        Some("/")
    );
    // MODE tcp wins over an HTTP check, which becomes a connect check.
    assert_eq!(table.backends["forcedtcp_10004"].mode, Mode::Tcp);
    assert_eq!(check("forcedtcp_10004").and_then(|c| c.http_path), None);
    // A COMMAND check on an http port becomes GET /.
    assert_eq!(
        check("command_10005").and_then(|c| c.http_path).as_deref(),
        Some("/")
    );
}

#[test]
fn container_ports_reach_the_right_address() {
    // Bridge mappings get host ports (Marathon defaults hostPort to 0 there).
    let bridge = app(
        "/bridge",
        json!({"container": {"docker": {"image": "x"}, "portMappings": [
            {"containerPort": 80, "servicePort": 10000},
            {"containerPort": 81, "hostPort": 0, "servicePort": 10001}
        ]}, "networks": [{"mode": "container/bridge"}]}),
    );
    let overlay = app(
        "/overlay",
        json!({"container": {"docker": {"image": "x"}, "portMappings": [
            {"containerPort": 8080, "servicePort": 10003},
            {"containerPort": 0, "servicePort": 10004},
            {"containerPort": 9090, "hostPort": 0, "servicePort": 10005}
        ]}, "networks": [{"mode": "container", "name": "dcos"}]}),
    );
    let mut bridged = task("/bridge", "a", AGENT0, &[31000, 31001]);
    bridged.ip_addresses = vec!["172.17.0.2".into()];
    let mut on_overlay = task("/overlay", "a", AGENT1, &[31500]);
    on_overlay.ip_addresses = vec!["not-an-ip".into(), "9.0.0.5".into()];
    let snap = snapshot(vec![bridge, overlay], vec![bridged, on_overlay]);
    let table = routes(&snap, &config(&["*"]));
    // Host ports at the agent's address, not the bridge IP.
    assert_eq!(
        server_addresses(&table, "bridge_10000"),
        ["10.0.0.10:31000"]
    );
    assert_eq!(
        server_addresses(&table, "bridge_10001"),
        ["10.0.0.10:31001"]
    );
    // A container network: the task's own IP and the container port...
    assert_eq!(server_addresses(&table, "overlay_10003"), ["9.0.0.5:8080"]);
    assert_eq!(
        table.backends["overlay_10003"].servers[0].name,
        "10_0_0_11_9_0_0_5_8080"
    );
    // ...but a container port 0 without a host port has no address...
    assert!(!table.backends.contains_key("overlay_10004"));
    // ...and a mapping with a host port takes the first host port (the only mapping with one).
    assert_eq!(
        server_addresses(&table, "overlay_10005"),
        ["10.0.0.11:31500"]
    );
}

#[test]
fn agents_known_by_name_use_the_tasks_ip() {
    let mut snap = snapshot(vec![web("/web", &[10000], json!({}))], Vec::new());
    let named = agent(AGENT0, "agent0.example", "agent0.example:5051", true);
    snap.agents.insert(AgentId(AGENT0.into()), Arc::new(named));
    let mut with_ip = task("/web", "a", AGENT0, &[31000]);
    with_ip.ip_addresses = vec!["10.9.9.9".into()];
    let without = task("/web", "b", AGENT0, &[31001]);
    for t in [with_ip, without] {
        snap.tasks.insert(t.id.clone(), Arc::new(t));
    }
    let table = routes(&snap, &config(&["*"]));
    assert_eq!(server_addresses(&table, "web_10000"), ["10.9.9.9:31000"]);
}

#[test]
fn ports_without_a_service_port_or_host_port_are_skipped() {
    let mut zero = web("/zero", &[0, 10001], json!({}));
    zero.spec.port_definitions[0].port = 0;
    let snap = snapshot(
        vec![zero, web("/short", &[10002, 10003], json!({}))],
        vec![
            task("/zero", "a", AGENT0, &[31000, 31001]),
            // Fewer host ports than port definitions.
            task("/short", "a", AGENT0, &[31002]),
        ],
    );
    let table = routes(&snap, &config(&["*"]));
    assert_eq!(backend_names(&table), ["short_10002", "zero_10001"]);
}

#[test]
fn vips_give_one_tcp_listener_per_name_and_port() {
    let with_vip = |id: &str, port: u16, vip: &str| {
        app(
            id,
            json!({"cmd": "sleep 100", "portDefinitions": [
                {"port": port, "labels": {"VIP_0": vip, "vip1": "10.9.9.9:53"}}
            ], "labels": {"HAPROXY_GROUP": "internal"}}),
        )
    };
    let snap = snapshot(
        vec![
            with_vip("/db/one", 10000, "/db/main:5432"),
            with_vip("/db/two", 10001, " /db/main:5432 "),
            with_vip("/cache", 10002, "/cache:6379"),
            with_vip("/idle", 10003, "/idle:1"),
            with_vip("/bad", 10004, "/bad:http"),
        ],
        vec![
            task("/db/one", "a", AGENT0, &[31000]),
            task("/db/two", "a", AGENT1, &[31001]),
            task("/cache", "a", AGENT0, &[31002]),
            task("/bad", "a", AGENT0, &[31004]),
        ],
    );
    // The LB serves group "external" only: VIPs are served anyway.
    let table = routes(&snap, &config(&["external"]));
    assert_eq!(
        backend_names(&table),
        ["vip_cache_6379", "vip_db_main_5432"]
    );
    let main = &table.backends["vip_db_main_5432"];
    assert_eq!(main.mode, Mode::Tcp);
    assert_eq!(main.balance, Balance::LeastConn);
    assert_eq!(main.app_id.as_str(), "/db/one");
    assert_eq!(main.service_port, 5432);
    assert_eq!(
        server_addresses(&table, "vip_db_main_5432"),
        ["10.0.0.11:31001", "10.0.0.10:31000"]
    );
    let listeners: Vec<(&str, u16, FrontendKind, Mode)> = table
        .frontends
        .iter()
        .map(|f| (f.name.as_str(), f.port, f.kind, f.mode))
        .collect();
    assert_eq!(
        listeners,
        [
            ("vip_db_main_5432", 5432, FrontendKind::Vip, Mode::Tcp),
            ("vip_cache_6379", 6379, FrontendKind::Vip, Mode::Tcp),
        ]
    );
    assert!(table.vhosts.is_empty() && table.app_ids.is_empty());
}

#[test]
fn vip_label_values() {
    assert_eq!(
        named_vip("/my-service:5555"),
        Some(("my-service".into(), 5555))
    );
    assert_eq!(named_vip("/foo/bar:80"), Some(("foo/bar".into(), 80)));
    assert_eq!(named_vip("plain:80"), Some(("plain".into(), 80)));
    assert_eq!(named_vip("1.2.3.4:5000"), None);
    assert_eq!(named_vip("[fd00::1]:5000"), None);
    assert_eq!(named_vip("/svc:0"), None);
    assert_eq!(named_vip("/svc:http"), None);
    assert_eq!(named_vip("/svc"), None);
    assert_eq!(named_vip("/:80"), None);
}

#[test]
fn blue_green_apps_merge_into_one_backend() {
    let colour = |id: &str, port: u16, started: &str, extra: Json| {
        let mut labels = json!({
            "HAPROXY_GROUP": "external",
            "HAPROXY_DEPLOYMENT_GROUP": "shop",
            "HAPROXY_DEPLOYMENT_ALT_PORT": "10101",
            "HAPROXY_DEPLOYMENT_STARTED_AT": started,
            "HAPROXY_0_PORT": "10100",
            "HAPROXY_0_VHOST": "shop.example",
        });
        if let (Some(labels), Some(extra)) = (labels.as_object_mut(), extra.as_object()) {
            labels.extend(extra.clone());
        }
        app(
            id,
            json!({"cmd": "sleep 100", "portDefinitions": [{"port": port}], "labels": labels}),
        )
    };
    let blue = colour(
        "/shop-blue",
        10100,
        "2024-01-01T10:00:00.000Z",
        json!({"HAPROXY_0_BALANCE": "leastconn"}),
    );
    let green = colour(
        "/shop-green",
        10101,
        "2024-01-01T11:00:00.123456",
        json!({"HAPROXY_0_BALANCE": "source"}),
    );
    let snap = snapshot(
        vec![blue, green],
        vec![
            task("/shop-blue", "b1", AGENT0, &[31000]),
            task("/shop-blue", "b2", AGENT0, &[31001]),
            task("/shop-blue", "b3", AGENT1, &[31002]),
            task("/shop-green", "g1", AGENT1, &[31003]),
        ],
    );
    let table = routes(&snap, &config(&["external"]));
    assert_eq!(backend_names(&table), ["shop_10100"]);
    let backend = &table.backends["shop_10100"];
    assert_eq!(backend.app_id.as_str(), "/shop");
    assert_eq!(backend.service_port, 10100);
    assert_eq!(backend.servers.len(), 4, "both colours serve");
    assert_eq!(
        backend.balance,
        Balance::Source,
        "the newer colour's labels"
    );
    assert_eq!(table.frontends.len(), 1);
    assert_eq!(table.frontends[0].port, 10100);
    assert_eq!(table.app_ids["/shop"], "shop_10100");
    assert_eq!(routes_of(&table)[0].2, "shop_10100");

    // An unparseable start time is the oldest: blue's labels now.
    let mut snap = snap;
    let green_id = AppId::parse("/shop-green").expect("id");
    let mut green = (*snap.apps[&green_id]).clone();
    green
        .spec
        .labels
        .insert(DEPLOYMENT_STARTED_AT.into(), "yesterday".into());
    snap.apps.insert(green_id, Arc::new(green));
    let table = routes(&snap, &config(&["external"]));
    assert_eq!(table.backends["shop_10100"].balance, Balance::LeastConn);
    assert_eq!(table.backends["shop_10100"].servers.len(), 4);
}

#[test]
fn conflicts_resolve_by_app_id() {
    let snap = snapshot(
        vec![
            web(
                "/a",
                &[10000],
                json!({"HAPROXY_0_PORT": "80", "HAPROXY_0_VHOST": "a.example"}),
            ),
            web(
                "/b",
                &[10001],
                json!({"HAPROXY_0_PORT": "80", "HAPROXY_0_VHOST": "b.example"}),
            ),
            // Same port on another address: no conflict.
            web(
                "/c",
                &[10002],
                json!({"HAPROXY_0_PORT": "80", "HAPROXY_0_BIND_ADDR": "10.0.0.99"}),
            ),
            // A VIP on a port a service already listens on.
            app(
                "/d",
                json!({"cmd": "sleep 100", "portDefinitions": [
                    {"port": 10003, "labels": {"VIP_0": "/d:80"}}]}),
            ),
            // `/e/x` and the deployment group `e_x` have the same backend name.
            web("/e/x", &[10004], json!({"HAPROXY_0_PORT": "9000"})),
            web(
                "/f",
                &[10005],
                json!({"HAPROXY_0_PORT": "9000", "HAPROXY_DEPLOYMENT_GROUP": "e_x"}),
            ),
        ],
        ["/a", "/b", "/c", "/d", "/e/x", "/f"]
            .iter()
            .enumerate()
            .map(|(i, id)| task(id, "t", AGENT0, &[31000 + u16::try_from(i).expect("small")]))
            .collect(),
    );
    let table = routes(&snap, &config(&["*"]));
    assert_eq!(
        backend_names(&table),
        ["a_80", "b_80", "c_80", "d_10003", "e_x_9000", "vip_d_80"]
    );
    assert_eq!(server_addresses(&table, "e_x_9000"), ["10.0.0.10:31004"]);
    let listeners: Vec<(&str, u16)> = table
        .frontends
        .iter()
        .map(|f| (f.name.as_str(), f.port))
        .collect();
    assert_eq!(
        listeners,
        [
            ("a_80", 80),
            ("c_80", 80),
            ("e_x_9000", 9000),
            ("d_10003", 10003)
        ]
    );
    // The loser keeps its vhost rule.
    assert_eq!(routes_of(&table)[1].2, "b_80");
}

#[test]
fn the_same_snapshot_gives_the_same_table() {
    let snap = snapshot(
        vec![web(
            "/web",
            &[10000],
            json!({"HAPROXY_0_VHOST": "a.example,b.example"}),
        )],
        vec![
            task("/web", "a", AGENT0, &[31000]),
            task("/web", "b", AGENT1, &[31001]),
        ],
    );
    assert_eq!(
        routes(&snap, &config(&["*"])),
        routes(&snap, &config(&["*"]))
    );
}

/// Label keys that the builder reads, for the random-label property.
const KEYS: &[&str] = &[
    "HAPROXY_GROUP",
    "HAPROXY_0_GROUP",
    "HAPROXY_0_ENABLED",
    "HAPROXY_0_MODE",
    "HAPROXY_0_VHOST",
    "HAPROXY_0_PATH",
    "HAPROXY_0_BACKEND_WEIGHT",
    "HAPROXY_0_PORT",
    "HAPROXY_0_BIND_ADDR",
    "HAPROXY_0_BALANCE",
    "HAPROXY_0_STICKY",
    "HAPROXY_0_REDIRECT_TO_HTTPS",
    "HAPROXY_0_USE_HSTS",
    "HAPROXY_0_SSL_CERT",
    "HAPROXY_1_VHOST",
    "HAPROXY_1_PORT",
    "HAPROXY_DEPLOYMENT_GROUP",
    "HAPROXY_DEPLOYMENT_STARTED_AT",
    "VIP_0",
];

fn label_map() -> impl Strategy<Value = BTreeMap<String, String>> {
    let value = prop_oneof![
        any::<String>(),
        "[ -~]{0,20}",
        "(true|false|http|tcp|\\*|-i /a /b|/x:[0-9]{1,6}|[0-9]{1,6}|-?[0-9]{1,20})",
    ];
    proptest::collection::btree_map(
        proptest::sample::select(KEYS).prop_map(str::to_owned),
        value,
        0..8,
    )
}

proptest! {
    #[test]
    fn random_labels_never_panic(
        app_labels in proptest::collection::vec(label_map(), 1..4),
        port_labels in proptest::collection::vec(label_map(), 1..4),
        strict in any::<bool>(),
    ) {
        let mut apps = Vec::new();
        let mut tasks = Vec::new();
        for (i, labels) in app_labels.into_iter().enumerate() {
            let id = format!("/app{i}");
            let mut app = web(&id, &[10000 + u16::try_from(i).expect("small"), 11000 + u16::try_from(i).expect("small")], json!({}));
            app.spec.labels = labels;
            if let Some(port) = app.spec.port_definitions.get_mut(0) {
                port.labels = port_labels.get(i).cloned().unwrap_or_default();
            }
            tasks.push(task(&id, "a", AGENT0, &[31000, 31001]));
            tasks.push(task(&id, "b", AGENT1, &[31002]));
            apps.push(app);
        }
        let snap = snapshot(apps, tasks);
        let config = RouteConfig { strict_mode: strict, ..config(&["*"]) };
        let table = routes(&snap, &config);
        // Every reference in the table points at a backend it holds.
        for frontend in &table.frontends {
            prop_assert!(table.backends.contains_key(&frontend.backend));
        }
        for route in &table.vhosts {
            prop_assert!(table.backends.contains_key(&route.backend));
            prop_assert_eq!(table.backends[&route.backend].mode, Mode::Http);
        }
        for backend in table.app_ids.values() {
            prop_assert!(table.backends.contains_key(backend));
        }
        let mut bound = BTreeSet::new();
        for frontend in &table.frontends {
            prop_assert!(bound.insert((frontend.bind_addr, frontend.port)));
        }
        prop_assert_eq!(routes(&snap, &config), table);
    }
}

//! The record builder on one hand-built cluster: two agents (and an unreachable third),
//! three masters, a plain app, a group app with a named port and a VIP, a bridged app, an
//! app on a container network and an app with health checks.

use super::*;
use orch_core::model::{AgentId, Goal, TaskId, TaskState};
use orch_core::testing::{agent, health, AGENT0, AGENT1, AGENT2};
use serde_json::{json, Value as Json};
use std::sync::Arc;

fn app(id: &str, definition: Json) -> App {
    orch_core::testing::app(id, definition)
        .with_service_ports(None, BTreeSet::new)
        .expect("service ports left")
}

struct TaskSpec<'a> {
    app: &'a str,
    instance: &'a str,
    agent: &'a str,
    state: TaskState,
    goal: Goal,
    ports: &'a [u16],
    ips: &'a [&'a str],
}

fn running<'a>(app: &'a str, instance: &'a str, agent: &'a str) -> TaskSpec<'a> {
    TaskSpec {
        app,
        instance,
        agent,
        state: TaskState::Running,
        goal: Goal::Running,
        ports: &[],
        ips: &[],
    }
}

fn task(spec: TaskSpec<'_>) -> Task {
    Task {
        state: spec.state,
        goal: spec.goal,
        ip_addresses: spec.ips.iter().map(|ip| (*ip).to_owned()).collect(),
        ..orch_core::testing::task(spec.app, spec.instance, spec.agent, spec.ports)
    }
}

fn snapshot() -> Snapshot {
    let agents = [
        agent(AGENT0, "agent0.example", "10.0.0.10:5051", true),
        // Known by name in its address: the hostname gives the IP.
        agent(AGENT1, "10.0.0.11", "agent1.example:5052", true),
        agent(AGENT2, "10.0.0.12", "10.0.0.12:5051", false),
    ];
    let apps = [
        app(
            "/hello",
            json!({"cmd": "sleep 100", "portDefinitions": [{"port": 0}]}),
        ),
        app(
            "/prod/web",
            json!({"cmd": "sleep 100", "portDefinitions": [
                {"port": 0, "name": "http", "labels": {"VIP_0": "/prod/web:80"}},
                {"port": 0, "protocol": "udp,tcp", "labels": {"vip1": "10.9.9.9:53"}}
            ]}),
        ),
        app(
            "/db",
            json!({"container": {"docker": {"image": "postgres"}, "portMappings": [
                {"containerPort": 5432, "hostPort": 0, "name": "pg",
                 "labels": {"VIP_0": "/Data_Base:5432"}},
                {"containerPort": 9000, "hostPort": 0, "protocol": "udp"}
            ]}, "networks": [{"mode": "container/bridge"}]}),
        ),
        app(
            "/overlay/api",
            json!({"container": {"docker": {"image": "api"}, "portMappings": [
                {"containerPort": 8080, "name": "api"},
                {"containerPort": 8443, "hostPort": 0}
            ]}, "networks": [{"mode": "container", "name": "dcos"}]}),
        ),
        app(
            "/checked",
            json!({"cmd": "sleep 100", "portDefinitions": [{"port": 0, "labels": {"VIP_0": "/checked:1"}}],
                "healthChecks": [{"protocol": "TCP"}]}),
        ),
        app(
            "/idle",
            json!({"cmd": "sleep 100", "portDefinitions": [{"port": 0, "labels": {"VIP_0": "/idle:1"}}]}),
        ),
    ];
    let mut healthy = task(TaskSpec {
        ports: &[31400],
        ..running("/checked", "c1", AGENT0)
    });
    healthy.health = health(true);
    let mut unhealthy = task(TaskSpec {
        ports: &[31401],
        ..running("/checked", "c2", AGENT0)
    });
    unhealthy.health = health(false);
    let tasks = [
        task(TaskSpec {
            ports: &[31000],
            ips: &["10.0.0.10"],
            ..running("/hello", "a1", AGENT0)
        }),
        // No IP of its own: the agent's (found through its hostname).
        task(TaskSpec {
            ports: &[31001],
            ..running("/hello", "a2", AGENT1)
        }),
        task(TaskSpec {
            state: TaskState::Staging,
            ports: &[31002],
            ..running("/hello", "a3", AGENT0)
        }),
        // Decommissioned: gone from DNS before the agent kills it.
        task(TaskSpec {
            goal: Goal::Decommissioned,
            ports: &[31003],
            ..running("/hello", "a4", AGENT1)
        }),
        task(TaskSpec {
            ports: &[31100, 31101],
            ips: &["10.0.0.11"],
            ..running("/prod/web", "w1", AGENT1)
        }),
        task(TaskSpec {
            ports: &[31200, 31201],
            ips: &["172.17.0.2"],
            ..running("/db", "d1", AGENT0)
        }),
        task(TaskSpec {
            ports: &[31300],
            ips: &["9.0.0.5", "fd00::5", "not-an-ip"],
            ..running("/overlay/api", "o1", AGENT1)
        }),
        healthy,
        unhealthy,
        // On the unreachable agent (its state would say so too): no records.
        task(TaskSpec {
            ports: &[31500],
            ..running("/idle", "i1", AGENT2)
        }),
    ];
    Snapshot {
        applied_index: (7 << 32) + 42,
        leader: Some("10.0.0.2:5050".into()),
        masters: vec![
            "10.0.0.1:5050".into(),
            "10.0.0.2:5050".into(),
            "10.0.0.3:5050".into(),
        ],
        ..orch_core::testing::snapshot_of(agents, apps, tasks)
    }
}

fn config() -> ZoneConfig {
    ZoneConfig {
        ns_addresses: vec!["10.0.0.53".parse().expect("ip")],
        vip_addresses: vec![
            "10.0.0.99".parse().expect("ip"),
            "fd00::99".parse().expect("ip"),
        ],
        ..ZoneConfig::new("mesos", 5)
    }
}

/// The A and AAAA values of `name`, as text.
fn ips(zone: &Zone, name: &str) -> Vec<String> {
    zone.lookup(name).map_or_else(Vec::new, |set| {
        let v4 = set.a.iter().map(ToString::to_string);
        v4.chain(set.aaaa.iter().map(ToString::to_string)).collect()
    })
}

/// The SRV values of `name` as `target:port`.
fn srvs(zone: &Zone, name: &str) -> Vec<String> {
    zone.lookup(name).map_or_else(Vec::new, |set| {
        set.srv
            .iter()
            .map(|srv| format!("{}:{}", srv.target, srv.port))
            .collect()
    })
}

fn names_with(zone: &Zone, part: &str) -> Vec<String> {
    let mut names: Vec<String> = zone
        .names
        .keys()
        .filter(|name| name.contains(part))
        .cloned()
        .collect();
    names.sort();
    names
}

#[test]
fn plain_app_tasks_resolve_by_name_and_canonical_name() {
    let zone = records(&snapshot(), &config());
    assert_eq!(
        ips(&zone, "hello.marathon.mesos."),
        ["10.0.0.10", "10.0.0.11"]
    );
    assert_eq!(ips(&zone, "hello-s3zjr-s0.marathon.mesos."), ["10.0.0.10"]);
    assert_eq!(ips(&zone, "hello-mdb1x-s1.marathon.mesos."), ["10.0.0.11"]);
    assert_eq!(
        ips(&zone, "hello.marathon.slave.mesos."),
        ["10.0.0.10", "10.0.0.11"]
    );
    assert_eq!(
        ips(&zone, "hello-s3zjr-s0.marathon.slave.mesos."),
        ["10.0.0.10"]
    );
    for proto in ["tcp", "udp"] {
        assert_eq!(
            srvs(&zone, &format!("_hello._{proto}.marathon.slave.mesos.")),
            [
                "hello-mdb1x-s1.marathon.slave.mesos.:31001",
                "hello-s3zjr-s0.marathon.slave.mesos.:31000",
            ]
        );
    }
    // Discovery ports: the port definition (tcp) with the task's host port.
    assert_eq!(
        srvs(&zone, "_hello._tcp.marathon.mesos."),
        [
            "hello-mdb1x-s1.marathon.mesos.:31001",
            "hello-s3zjr-s0.marathon.mesos.:31000",
        ]
    );
    assert!(zone.lookup("_hello._udp.marathon.mesos.").is_none());
    // Staging and decommissioned tasks have nothing.
    assert_eq!(
        names_with(&zone, "hello-"),
        [
            "hello-mdb1x-s1.marathon.mesos.",
            "hello-mdb1x-s1.marathon.slave.mesos.",
            "hello-s3zjr-s0.marathon.mesos.",
            "hello-s3zjr-s0.marathon.slave.mesos.",
        ]
    );
    let srv = &zone
        .lookup("_hello._tcp.marathon.mesos.")
        .expect("srv record")
        .srv[0];
    assert_eq!((srv.priority, srv.weight), (0, 1));
}

#[test]
fn group_apps_get_mangled_and_legacy_names_and_named_ports() {
    let zone = records(&snapshot(), &config());
    let canonical = "web-prod-r5xia-s1.marathon.mesos.";
    assert_eq!(ips(&zone, "web-prod.marathon.mesos."), ["10.0.0.11"]);
    assert_eq!(ips(&zone, canonical), ["10.0.0.11"]);
    assert_eq!(
        srvs(&zone, "_web-prod._tcp.marathon.mesos."),
        [format!("{canonical}:31100"), format!("{canonical}:31101")]
    );
    assert_eq!(
        srvs(&zone, "_web-prod._udp.marathon.mesos."),
        [format!("{canonical}:31101")]
    );
    assert_eq!(
        srvs(&zone, "_http._web-prod._tcp.marathon.mesos."),
        [format!("{canonical}:31100")]
    );
    assert!(zone
        .lookup("_http._web-prod._udp.marathon.mesos.")
        .is_none());
    // Mesos-DNS also keeps the unmangled DiscoveryInfo name.
    assert_eq!(ips(&zone, "web.prod.marathon.mesos."), ["10.0.0.11"]);
    assert_eq!(
        ips(&zone, "web.prod-r5xia-s1.marathon.slave.mesos."),
        ["10.0.0.11"]
    );
    assert_eq!(
        srvs(&zone, "_http._web.prod._tcp.marathon.mesos."),
        ["web.prod-r5xia-s1.marathon.mesos.:31100"]
    );
}

#[test]
fn bridged_and_container_network_ports() {
    let zone = records(&snapshot(), &config());
    // Bridge: the container's IP for the task names, host ports for discovery.
    let canonical = "db-pqyd8-s0.marathon.mesos.";
    assert_eq!(ips(&zone, "db.marathon.mesos."), ["172.17.0.2"]);
    assert_eq!(ips(&zone, "db.marathon.slave.mesos."), ["10.0.0.10"]);
    assert_eq!(
        srvs(&zone, "_db._tcp.marathon.mesos."),
        [format!("{canonical}:31200")]
    );
    assert_eq!(
        srvs(&zone, "_pg._db._tcp.marathon.mesos."),
        [format!("{canonical}:31200")]
    );
    assert_eq!(
        srvs(&zone, "_db._udp.marathon.mesos."),
        [format!("{canonical}:31201")]
    );
    assert_eq!(
        srvs(&zone, "_db._udp.marathon.slave.mesos."),
        [
            "db-pqyd8-s0.marathon.slave.mesos.:31200",
            "db-pqyd8-s0.marathon.slave.mesos.:31201",
        ]
    );
    // Container network: a mapping without a host port is discovered by its container port.
    let canonical = "api-overlay-bg9rn-s1.marathon.mesos.";
    assert_eq!(
        ips(&zone, "api-overlay.marathon.mesos."),
        ["9.0.0.5", "fd00::5"]
    );
    assert_eq!(
        srvs(&zone, "_api-overlay._tcp.marathon.mesos."),
        [format!("{canonical}:8080"), format!("{canonical}:31300")]
    );
    assert_eq!(
        srvs(&zone, "_api._api-overlay._tcp.marathon.mesos."),
        [format!("{canonical}:8080")]
    );
    assert_eq!(
        srvs(&zone, "_api-overlay._tcp.marathon.slave.mesos."),
        ["api-overlay-bg9rn-s1.marathon.slave.mesos.:31300"]
    );
}

#[test]
fn masters_leader_framework_agents_and_name_server() {
    let zone = records(&snapshot(), &config());
    assert_eq!(ips(&zone, "leader.mesos."), ["10.0.0.2"]);
    assert_eq!(
        ips(&zone, "master.mesos."),
        ["10.0.0.1", "10.0.0.2", "10.0.0.3"]
    );
    assert_eq!(ips(&zone, "master0.mesos."), ["10.0.0.1"]);
    assert_eq!(ips(&zone, "master1.mesos."), ["10.0.0.2"]);
    assert_eq!(ips(&zone, "master2.mesos."), ["10.0.0.3"]);
    assert!(zone.lookup("master3.mesos.").is_none());
    assert_eq!(srvs(&zone, "_leader._tcp.mesos."), ["leader.mesos.:5050"]);
    assert_eq!(srvs(&zone, "_leader._udp.mesos."), ["leader.mesos.:5050"]);
    assert_eq!(ips(&zone, "marathon.mesos."), ["10.0.0.2"]);
    assert_eq!(
        srvs(&zone, "_framework._tcp.marathon.mesos."),
        ["marathon.mesos.:5050"]
    );
    // The unreachable agent is left out.
    assert_eq!(ips(&zone, "slave.mesos."), ["10.0.0.10", "10.0.0.11"]);
    assert_eq!(ips(&zone, "agent.mesos."), ["10.0.0.10", "10.0.0.11"]);
    assert_eq!(
        srvs(&zone, "_slave._tcp.mesos."),
        ["slave.mesos.:5051", "slave.mesos.:5052"]
    );
    assert_eq!(ips(&zone, "ns1.mesos."), ["10.0.0.53"]);
    assert!(names_with(&zone, "idle").is_empty());
}

#[test]
fn a_leader_missing_from_the_list_gets_the_next_index() {
    let mut snapshot = snapshot();
    snapshot.leader = Some("10.0.0.4:5050".into());
    let zone = records(&snapshot, &config());
    assert_eq!(ips(&zone, "master3.mesos."), ["10.0.0.4"]);
    assert_eq!(
        ips(&zone, "master.mesos."),
        ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"]
    );
    snapshot.leader = None;
    let zone = records(&snapshot, &config());
    assert!(zone.lookup("leader.mesos.").is_none());
    assert!(zone.lookup("marathon.mesos.").is_none());
    assert!(zone.lookup("master3.mesos.").is_none());
    assert_eq!(ips(&zone, "master2.mesos."), ["10.0.0.3"]);
}

#[test]
fn vips_name_apps_with_running_tasks() {
    let zone = records(&snapshot(), &config());
    let vip = |name: &str| format!("{name}.marathon.{VIP_APEX}");
    assert_eq!(ips(&zone, &vip("prodweb")), ["10.0.0.99", "fd00::99"]);
    assert_eq!(ips(&zone, &vip("data-base")), ["10.0.0.99", "fd00::99"]);
    assert_eq!(ips(&zone, &vip("checked")), ["10.0.0.99", "fd00::99"]);
    // No backend (its only task is on an unreachable agent): no name. IP VIPs: no name.
    assert_eq!(
        names_with(&zone, VIP_APEX),
        [vip("checked"), vip("data-base"), vip("prodweb")]
    );
    assert_eq!(zone.apex_of(&vip("prodweb")), Some(VIP_APEX));

    let no_vips = ZoneConfig {
        vip_addresses: Vec::new(),
        ..config()
    };
    assert!(names_with(&records(&snapshot(), &no_vips), VIP_APEX).is_empty());
}

#[test]
fn healthy_only_drops_failing_tasks_of_checked_apps() {
    let all = records(&snapshot(), &config());
    assert_eq!(
        srvs(&all, "_checked._tcp.marathon.mesos."),
        [
            "checked-gofth-s0.marathon.mesos.:31401",
            "checked-r6es9-s0.marathon.mesos.:31400",
        ]
    );
    let healthy_only = ZoneConfig {
        healthy_only: true,
        ..config()
    };
    let zone = records(&snapshot(), &healthy_only);
    assert_eq!(
        srvs(&zone, "_checked._tcp.marathon.mesos."),
        ["checked-r6es9-s0.marathon.mesos.:31400"]
    );
    // Apps without checks keep every running task.
    assert_eq!(
        ips(&zone, "hello.marathon.mesos."),
        ["10.0.0.10", "10.0.0.11"]
    );

    // No healthy task left: the VIP goes too.
    let mut snapshot = snapshot();
    let healthy_id = TaskId("checked.instance-c1._app.1".into());
    let mut task = (*snapshot.tasks[&healthy_id]).clone();
    task.health = health(false);
    snapshot.tasks.insert(healthy_id, Arc::new(task));
    let zone = records(&snapshot, &healthy_only);
    assert!(names_with(&zone, "checked").is_empty());
}

#[test]
fn zone_header_and_enumeration() {
    let zone = records(&snapshot(), &config());
    assert_eq!(zone.apex, "mesos.");
    assert_eq!(zone.ttl, 5);
    assert_eq!(
        zone.soa,
        Soa {
            mname: "ns1.mesos.".into(),
            rname: "root.ns1.mesos.".into(),
            serial: 42,
            refresh: 60,
            retry: 600,
            expire: 86_400,
            minimum: 5,
        }
    );
    assert_eq!(zone.frameworks.len(), 1);
    let framework = &zone.frameworks[0];
    assert_eq!(framework.name, "marathon");
    let listed: Vec<(&str, &str)> = framework
        .tasks
        .iter()
        .map(|task| (task.name.as_str(), task.id.as_str()))
        .collect();
    assert_eq!(
        listed,
        [
            ("checked", "checked.instance-c1._app.1"),
            ("checked", "checked.instance-c2._app.1"),
            ("db", "db.instance-d1._app.1"),
            ("hello", "hello.instance-a1._app.1"),
            ("hello", "hello.instance-a2._app.1"),
            ("api-overlay", "overlay_api.instance-o1._app.1"),
            ("web-prod", "prod_web.instance-w1._app.1"),
        ]
    );
    let hello = &framework.tasks[3];
    let records: Vec<(&str, &str, &str)> = hello
        .records
        .iter()
        .map(|r| (r.name.as_str(), r.host.as_str(), r.rtype))
        .collect();
    assert_eq!(
        records,
        [
            ("hello.marathon.mesos.", "10.0.0.10", "A"),
            ("hello-s3zjr-s0.marathon.mesos.", "10.0.0.10", "A"),
            ("hello.marathon.slave.mesos.", "10.0.0.10", "A"),
            ("hello-s3zjr-s0.marathon.slave.mesos.", "10.0.0.10", "A"),
            (
                "_hello._tcp.marathon.slave.mesos.",
                "hello-s3zjr-s0.marathon.slave.mesos.:31000",
                "SRV"
            ),
            (
                "_hello._udp.marathon.slave.mesos.",
                "hello-s3zjr-s0.marathon.slave.mesos.:31000",
                "SRV"
            ),
            (
                "_hello._tcp.marathon.mesos.",
                "hello-s3zjr-s0.marathon.mesos.:31000",
                "SRV"
            ),
        ]
    );
    let api = &framework.tasks[5];
    assert!(api
        .records
        .iter()
        .any(|r| r.rtype == "AAAA" && r.host == "fd00::5"));
    // Every enumerated record is in the zone.
    for task in &framework.tasks {
        for record in &task.records {
            assert!(zone.lookup(&record.name).is_some(), "{}", record.name);
        }
    }
}

#[test]
fn the_same_snapshot_gives_the_same_zone() {
    assert_eq!(
        records(&snapshot(), &config()),
        records(&snapshot(), &config())
    );
}

#[test]
fn agents_without_an_ip_still_give_task_names() {
    let mut snapshot = snapshot();
    let id = AgentId(AGENT0.into());
    let named = agent(AGENT0, "agent0.example", "agent0.example:5051", true);
    snapshot.agents.insert(id, Arc::new(named));
    let zone = records(&snapshot, &config());
    assert_eq!(ips(&zone, "slave.mesos."), ["10.0.0.11"]);
    assert_eq!(
        ips(&zone, "hello-s3zjr-s0.marathon.mesos."),
        ["10.0.0.10"],
        "the task's own IP"
    );
    assert!(zone
        .lookup("hello-s3zjr-s0.marathon.slave.mesos.")
        .is_none());
    assert_eq!(
        srvs(&zone, "_hello._tcp.marathon.slave.mesos."),
        [
            "hello-mdb1x-s1.marathon.slave.mesos.:31001",
            "hello-s3zjr-s0.marathon.slave.mesos.:31000",
        ]
    );
}

#[test]
fn long_names_stay_within_dns_limits() {
    let long = "a".repeat(60);
    let mut snapshot = Snapshot::default();
    let agent = agent(AGENT0, "10.0.0.10", "10.0.0.10:5051", true);
    snapshot
        .agents
        .insert(agent.info.id.clone(), Arc::new(agent));
    let app = app(
        &format!("/{long}"),
        json!({"cmd": "sleep 100", "portDefinitions": [{"port": 0}]}),
    );
    snapshot.apps.insert(app.id.clone(), Arc::new(app));
    let task = task(TaskSpec {
        ports: &[31000],
        ..running(&format!("/{long}"), "x", AGENT0)
    });
    snapshot.tasks.insert(task.id.clone(), Arc::new(task));
    let zone = records(&snapshot, &config());
    assert_eq!(
        ips(&zone, &format!("{long}.marathon.mesos.")),
        ["10.0.0.10"]
    );
    // `_<60 chars>` fits; `<60 chars>-hhhhh-s0` (69) does not, nor SRVs pointing at it.
    assert!(zone.names.keys().all(|name| is_valid_name(name)));
    assert!(zone
        .lookup(&format!("_{long}._tcp.marathon.mesos."))
        .is_none());
    assert_eq!(names_with(&zone, &long).len(), 2, "{:?}", zone.names.keys());
}

#[test]
fn vip_label_values() {
    assert_eq!(named_vip("/my-service:5555").as_deref(), Some("my-service"));
    assert_eq!(named_vip("/foo/bar:80").as_deref(), Some("foobar"));
    assert_eq!(named_vip("plain:80").as_deref(), Some("plain"));
    assert_eq!(named_vip("/a.b:1:2").as_deref(), Some("a.b1"));
    assert_eq!(named_vip("1.2.3.4:5000"), None);
    assert_eq!(named_vip("[fd00::1]:5000"), None);
    assert_eq!(named_vip("/svc:0"), None);
    assert_eq!(named_vip("/svc:http"), None);
    assert_eq!(named_vip("/svc"), None);
    assert_eq!(named_vip("/:80"), None);
}

#[test]
fn host_port_splitting() {
    assert_eq!(
        address("10.0.0.1:5050"),
        Some(("10.0.0.1".parse().expect("ip"), Some(5050)))
    );
    assert_eq!(
        address("[fd00::1]:5050"),
        Some(("fd00::1".parse().expect("ip"), Some(5050)))
    );
    assert_eq!(
        address("fd00::1"),
        Some(("fd00::1".parse().expect("ip"), None))
    );
    assert_eq!(address("master.example:5050"), None);
    assert_eq!(protocols("udp,tcp"), ["udp", "tcp"]);
    assert_eq!(protocols(""), ["tcp", "udp"]);
    assert_eq!(protocols("TCP"), ["tcp"]);
}

//! The cluster's cloud firewall `orch-<cluster>`, applied to the droplets by the cluster tag:
//! inbound only the cluster's ports (SSH, the masters' API, the agents' 5051, DNS and LB
//! when enabled, the agents' task ports 31000-32000) from `allow_from` (default everywhere),
//! everything between the cluster's droplets, and everything outbound. Found by name before
//! it is created, so there is never a second one.
//!
//! May depend on: provision::{cluster_spec, infra, digital_ocean::{api,
//! droplets}}.

use super::api::{Api, ApiError};
use super::droplets::cluster_tag;
use crate::cluster_spec::AGENT_PORT;
use crate::infra::Infra;
use serde_json::{json, Value};

/// The task ports agents offer.
pub const TASK_PORTS: &str = "31000-32000";

/// `orch-<cluster>`.
pub fn firewall_name(cluster: &str) -> String {
    format!("orch-{cluster}")
}

/// The sources allowed in: `allow_from`, else everywhere.
fn sources(infra: &Infra) -> Vec<String> {
    if infra.digital_ocean.allow_from.is_empty() {
        vec!["0.0.0.0/0".to_owned(), "::/0".to_owned()]
    } else {
        infra.digital_ocean.allow_from.clone()
    }
}

/// The ports open from outside, as (protocol, ports, why).
pub fn open_ports(infra: &Infra) -> Vec<(&'static str, String, &'static str)> {
    let mut ports = vec![
        ("tcp", infra.digital_ocean.ssh_port.to_string(), "ssh"),
        ("tcp", infra.api.port().to_string(), "api"),
        ("tcp", AGENT_PORT.to_string(), "agents"),
        ("tcp", TASK_PORTS.to_owned(), "tasks"),
        ("udp", TASK_PORTS.to_owned(), "tasks"),
    ];
    if infra.dns.enabled {
        let dns = infra.dns.listen.port().to_string();
        ports.push(("udp", dns.clone(), "dns"));
        ports.push(("tcp", dns, "dns"));
        ports.push(("tcp", infra.dns.http_listen.port().to_string(), "dns http"));
    }
    if infra.lb.enabled {
        for (_, port) in infra.lb.fixed_ports() {
            ports.push(("tcp", port.to_string(), "lb"));
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    ports.retain(|(protocol, port, _)| seen.insert((*protocol, port.clone())));
    ports
}

/// The body of `POST /v2/firewalls`.
pub fn create_body(infra: &Infra) -> Value {
    let cluster = cluster_tag(&infra.cluster);
    let from = sources(infra);
    let mut inbound: Vec<Value> = open_ports(infra)
        .into_iter()
        .map(|(protocol, ports, _)| {
            json!({"protocol": protocol, "ports": ports, "sources": {"addresses": from}})
        })
        .collect();
    for protocol in ["tcp", "udp"] {
        inbound.push(json!({"protocol": protocol, "ports": "all", "sources": {"tags": [cluster]}}));
    }
    inbound.push(json!({"protocol": "icmp", "sources": {"tags": [cluster]}}));
    let everywhere = json!({"addresses": ["0.0.0.0/0", "::/0"]});
    let outbound = json!([
        {"protocol": "tcp", "ports": "all", "destinations": everywhere},
        {"protocol": "udp", "ports": "all", "destinations": everywhere},
        {"protocol": "icmp", "destinations": everywhere},
    ]);
    json!({
        "name": firewall_name(&infra.cluster),
        "inbound_rules": inbound,
        "outbound_rules": outbound,
        "tags": [cluster],
    })
}

/// The id of the cluster's firewall: the one named `orch-<cluster>`, else one applied to
/// the cluster tag and named `orch-...`.
pub async fn find(api: &Api, cluster: &str) -> Result<Option<String>, ApiError> {
    let name = firewall_name(cluster);
    let tag = cluster_tag(cluster);
    let all = api.list("/v2/firewalls", &[], "firewalls").await?;
    let by_name = all
        .iter()
        .find(|f| f.get("name").and_then(Value::as_str) == Some(name.as_str()));
    let by_tag = || {
        all.iter().find(|f| {
            f.get("name")
                .and_then(Value::as_str)
                .is_some_and(|n| n.starts_with("orch-"))
                && f.get("tags")
                    .and_then(Value::as_array)
                    .is_some_and(|tags| tags.iter().any(|t| t.as_str() == Some(tag.as_str())))
        })
    };
    Ok(by_name
        .or_else(by_tag)
        .and_then(|f| f.get("id")?.as_str().map(str::to_owned)))
}

/// The firewall's id, creating it when there is none; true when it was created now.
pub async fn ensure(api: &Api, infra: &Infra) -> Result<(String, bool), ApiError> {
    if let Some(id) = find(api, &infra.cluster).await? {
        return Ok((id, false));
    }
    let answer = api.post("/v2/firewalls", &create_body(infra)).await?;
    match answer.pointer("/firewall/id").and_then(Value::as_str) {
        Some(id) => Ok((id.to_owned(), true)),
        None => Err(ApiError::Shape {
            method: reqwest::Method::POST,
            path: "/v2/firewalls".to_owned(),
            problem: "no firewall.id in the answer".to_owned(),
        }),
    }
}

/// Deletes the firewall `id`; one that is gone already is fine.
pub async fn delete(api: &Api, id: &str) -> Result<bool, ApiError> {
    match api.delete(&format!("/v2/firewalls/{id}"), &[]).await {
        Ok(()) => Ok(true),
        Err(e) if e.status() == Some(404) => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::infra::ProviderKind;

    #[test]
    fn only_the_clusters_ports_are_open_from_allow_from() {
        let mut infra = Infra {
            cluster: "demo".to_owned(),
            provider: ProviderKind::DigitalOcean,
            api: "127.0.0.1:8090".parse().expect("addr"),
            ..Infra::default()
        };
        infra.digital_ocean.allow_from = vec!["198.51.100.0/24".to_owned()];
        infra.digital_ocean.ssh_port = 2222;
        infra.dns.enabled = true;
        infra.lb.enabled = false;
        let body = create_body(&infra);
        assert_eq!(body["name"], "orch-demo");
        assert_eq!(body["tags"], json!(["orch-cluster-demo"]));
        let inbound = body["inbound_rules"].as_array().expect("rules");
        let open: Vec<(String, String)> = inbound
            .iter()
            .filter(|r| r["sources"]["addresses"].is_array())
            .map(|r| {
                assert_eq!(r["sources"]["addresses"], json!(["198.51.100.0/24"]));
                (
                    r["protocol"].as_str().unwrap_or("").to_owned(),
                    r["ports"].as_str().unwrap_or("").to_owned(),
                )
            })
            .collect();
        let expect = |p: &str, ports: &str| (p.to_owned(), ports.to_owned());
        for wanted in [
            expect("tcp", "2222"),
            expect("tcp", "8090"),
            expect("tcp", "5051"),
            expect("tcp", "31000-32000"),
            expect("udp", &infra.dns.listen.port().to_string()),
        ] {
            assert!(open.contains(&wanted), "{wanted:?} in {open:?}");
        }
        assert!(!open.iter().any(|(_, p)| p == "all"), "nothing else open");
        assert!(!open.contains(&expect("tcp", &infra.lb.http_port.to_string())));
        let internal = inbound
            .iter()
            .filter(|r| r["sources"]["tags"] == json!(["orch-cluster-demo"]))
            .count();
        assert_eq!(internal, 3, "tcp, udp and icmp between the droplets");
        infra.digital_ocean.allow_from.clear();
        infra.lb.enabled = true;
        let body = create_body(&infra);
        assert_eq!(
            body["inbound_rules"][0]["sources"]["addresses"],
            json!(["0.0.0.0/0", "::/0"])
        );
        let ports: Vec<&str> = body["inbound_rules"]
            .as_array()
            .expect("rules")
            .iter()
            .filter_map(|r| r["ports"].as_str())
            .collect();
        assert!(ports.contains(&infra.lb.http_port.to_string().as_str()));
    }
}

//! The cluster's cloud firewall `orch-<cluster>`, applied to the droplets by the cluster tag:
//! everything between the cluster's droplets, everything outbound, and from outside only:
//! - SSH (`ssh_port`), from `allow_from`, else from everywhere (`orch up` needs it);
//! - the masters' API, the load balancer's ports (when enabled) and the agents' task ports
//!   31000-32000, only from `allow_from`: without it they stay closed to the outside and
//!   `orch up` says so ([`closed_note`]);
//! - never DNS: the DNS server would be an open resolver, so its ports are reachable from the
//!   cluster's droplets only, whatever `allow_from` says. Nor the agents' own API (5051),
//!   which listens on loopback.
//!
//! Found by name before it is created, so there is never a second one; one whose rules are
//! not the wanted ones (an older `orch up` opened more, `allow_from` changed) is updated.
//!
//! May depend on: provision::{infra, digital_ocean::{api,
//! droplets}}.

use super::api::{Api, ApiError};
use super::droplets::cluster_tag;
use crate::infra::Infra;
use serde_json::{json, Value};

/// The task ports agents offer.
pub const TASK_PORTS: &str = "31000-32000";

/// `orch-<cluster>`.
pub fn firewall_name(cluster: &str) -> String {
    format!("orch-{cluster}")
}

/// Everywhere, as DigitalOcean's sources.
const EVERYWHERE: [&str; 2] = ["0.0.0.0/0", "::/0"];

/// The ports open from outside, as (protocol, ports, why, sources).
pub fn open_ports(infra: &Infra) -> Vec<(&'static str, String, &'static str, Vec<String>)> {
    let allow_from = &infra.digital_ocean.allow_from;
    let ssh_from = if allow_from.is_empty() {
        EVERYWHERE.map(str::to_owned).to_vec()
    } else {
        allow_from.clone()
    };
    let mut ports = vec![(
        "tcp",
        infra.digital_ocean.ssh_port.to_string(),
        "ssh",
        ssh_from,
    )];
    if !allow_from.is_empty() {
        let from = || allow_from.clone();
        ports.push(("tcp", infra.api.port().to_string(), "api", from()));
        ports.push(("tcp", TASK_PORTS.to_owned(), "tasks", from()));
        ports.push(("udp", TASK_PORTS.to_owned(), "tasks", from()));
        if infra.lb.enabled {
            for (_, port) in infra.lb.fixed_ports() {
                ports.push(("tcp", port.to_string(), "lb", from()));
            }
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    ports.retain(|(protocol, port, _, _)| seen.insert((*protocol, port.clone())));
    ports
}

/// What `orch up` says when `allow_from` is empty: what stays closed, and how to open it.
pub fn closed_note(infra: &Infra) -> Option<String> {
    infra.digital_ocean.allow_from.is_empty().then(|| {
        format!(
            "note: digital_ocean.allow_from is empty, so the firewall opens only SSH (port {}) \
             to the internet; the API (port {}), the load balancer and the task ports are \
             reachable only between the cluster's droplets. Set allow_from to your addresses \
             (CIDRs) to reach them from outside. DNS is never opened to the internet.",
            infra.digital_ocean.ssh_port,
            infra.api.port()
        )
    })
}

/// The body of `POST /v2/firewalls`.
pub fn create_body(infra: &Infra) -> Value {
    let cluster = cluster_tag(&infra.cluster);
    let mut inbound: Vec<Value> = open_ports(infra)
        .into_iter()
        .map(|(protocol, ports, _, from)| {
            json!({"protocol": protocol, "ports": ports, "sources": {"addresses": from}})
        })
        .collect();
    for protocol in ["tcp", "udp"] {
        inbound.push(json!({"protocol": protocol, "ports": "all", "sources": {"tags": [cluster]}}));
    }
    inbound.push(json!({"protocol": "icmp", "sources": {"tags": [cluster]}}));
    let everywhere = json!({"addresses": EVERYWHERE});
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

/// The cluster's firewall: the one named `orch-<cluster>`, else one applied to the cluster
/// tag and named `orch-...`.
async fn find_firewall(api: &Api, cluster: &str) -> Result<Option<Value>, ApiError> {
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
    Ok(by_name.or_else(by_tag).cloned())
}

/// The id of the cluster's firewall (see [`find_firewall`]).
pub async fn find(api: &Api, cluster: &str) -> Result<Option<String>, ApiError> {
    Ok(find_firewall(api, cluster)
        .await?
        .and_then(|f| f.get("id")?.as_str().map(str::to_owned)))
}

/// What [`ensure`] did to the firewall.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ensured {
    /// It was made now.
    Created,
    /// It existed with other rules, which it has now.
    Updated,
    /// It existed as wanted.
    Unchanged,
}

/// True when `existing` has exactly the rules of `wanted` (in any order).
fn same_rules(existing: &Value, wanted: &Value) -> bool {
    let rules = |firewall: &Value, key: &str| {
        let mut rules: Vec<String> = firewall
            .get(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|r| {
                let mut r = r.clone();
                // DigitalOcean answers empty source kinds the request left out.
                if let Some(sources) = r.get_mut("sources").and_then(Value::as_object_mut) {
                    sources.retain(|_, v| v.as_array().is_none_or(|a| !a.is_empty()));
                }
                r.to_string()
            })
            .collect();
        rules.sort();
        rules
    };
    ["inbound_rules", "outbound_rules"]
        .iter()
        .all(|key| rules(existing, key) == rules(wanted, key))
}

/// The firewall's id, creating it when there is none and setting its rules when they are
/// not the wanted ones.
pub async fn ensure(api: &Api, infra: &Infra) -> Result<(String, Ensured), ApiError> {
    let wanted = create_body(infra);
    if let Some(existing) = find_firewall(api, &infra.cluster).await? {
        let Some(id) = existing
            .get("id")
            .and_then(Value::as_str)
            .map(str::to_owned)
        else {
            return Err(ApiError::Shape {
                method: reqwest::Method::GET,
                path: "/v2/firewalls".to_owned(),
                problem: "a firewall without an id".to_owned(),
            });
        };
        if same_rules(&existing, &wanted) {
            return Ok((id, Ensured::Unchanged));
        }
        let mut body = wanted;
        body["name"] = existing["name"].clone();
        body["droplet_ids"] = existing
            .get("droplet_ids")
            .cloned()
            .unwrap_or_else(|| json!([]));
        api.put(&format!("/v2/firewalls/{id}"), &body).await?;
        return Ok((id, Ensured::Updated));
    }
    let answer = api.post("/v2/firewalls", &wanted).await?;
    match answer.pointer("/firewall/id").and_then(Value::as_str) {
        Some(id) => Ok((id.to_owned(), Ensured::Created)),
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

    fn infra() -> Infra {
        let mut infra = Infra {
            cluster: "demo".to_owned(),
            provider: ProviderKind::DigitalOcean,
            api: "127.0.0.1:8090".parse().expect("addr"),
            ..Infra::default()
        };
        infra.digital_ocean.ssh_port = 2222;
        infra.dns.enabled = true;
        infra.lb.enabled = true;
        infra
    }

    /// (protocol, ports, sources) of the rules open from addresses.
    fn open(body: &Value) -> Vec<(String, String, Value)> {
        body["inbound_rules"]
            .as_array()
            .expect("rules")
            .iter()
            .filter(|r| r["sources"]["addresses"].is_array())
            .map(|r| {
                (
                    r["protocol"].as_str().unwrap_or("").to_owned(),
                    r["ports"].as_str().unwrap_or("").to_owned(),
                    r["sources"]["addresses"].clone(),
                )
            })
            .collect()
    }

    #[test]
    fn without_allow_from_only_ssh_is_open_and_dns_never_is() {
        let infra = infra();
        let body = create_body(&infra);
        assert_eq!(body["name"], "orch-demo");
        assert_eq!(body["tags"], json!(["orch-cluster-demo"]));
        assert_eq!(
            open(&body),
            [(
                "tcp".to_owned(),
                "2222".to_owned(),
                json!(["0.0.0.0/0", "::/0"])
            )]
        );
        let internal = body["inbound_rules"]
            .as_array()
            .expect("rules")
            .iter()
            .filter(|r| r["sources"]["tags"] == json!(["orch-cluster-demo"]))
            .count();
        assert_eq!(internal, 3, "tcp, udp and icmp between the droplets");
        assert!(closed_note(&infra).is_some_and(|n| n.contains("allow_from")));
    }

    #[test]
    fn allow_from_opens_the_api_lb_and_tasks_to_those_sources_only() {
        let mut infra = infra();
        infra.digital_ocean.allow_from = vec!["198.51.100.0/24".to_owned()];
        let body = create_body(&infra);
        let open = open(&body);
        let sources = json!(["198.51.100.0/24"]);
        assert!(open.iter().all(|(_, _, from)| *from == sources), "{open:?}");
        let ports: Vec<(&str, &str)> = open
            .iter()
            .map(|(p, ports, _)| (p.as_str(), ports.as_str()))
            .collect();
        let lb = infra.lb.http_port.to_string();
        for wanted in [
            ("tcp", "2222"),
            ("tcp", "8090"),
            ("tcp", "31000-32000"),
            ("tcp", lb.as_str()),
        ] {
            assert!(ports.contains(&wanted), "{wanted:?} in {ports:?}");
        }
        let dns = infra.dns.listen.port().to_string();
        assert!(!ports
            .iter()
            .any(|(_, p)| *p == dns || *p == "5051" || *p == "all"));
        assert_eq!(closed_note(&infra), None);
        assert!(same_rules(&body, &body));
        assert!(!same_rules(&body, &create_body(&self::infra())));
    }
}

//! Droplets: names (`<cluster>-<machine>`), tags (`orch`, `orch-cluster-<cluster>`,
//! `orch-role-*`), the create bodies (at most [`BATCH`] names per request, one role per
//! request since tags are per request), and the calls: list by tag, create, delete by tag.
//!
//! May depend on: provision::{cluster_spec, infra, digital_ocean::api}.

use super::api::{Api, ApiError};
use crate::cluster_spec::{MachineRole, WantedMachine};
use crate::infra::DigitalOceanEntry;
use serde_json::{json, Value};
use std::net::Ipv4Addr;

/// The most droplets one create request makes (DigitalOcean's limit for `names`).
pub const BATCH: usize = 10;

/// The tag every droplet orch makes carries.
pub const ORCH_TAG: &str = "orch";

/// A droplet as the API describes it, reduced to what orch uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Droplet {
    /// Its id.
    pub id: u64,
    /// Its name.
    pub name: String,
    /// `new`, `active`, `off` or `archive`.
    pub status: String,
    /// Its tags.
    pub tags: Vec<String>,
    /// Its public IPv4 address, once it has one.
    pub public_ipv4: Option<Ipv4Addr>,
    /// Its IPv4 address in its VPC, once it has one.
    pub private_ipv4: Option<Ipv4Addr>,
}

impl Droplet {
    /// The droplet of an API object; None when it lacks an id or name.
    pub fn from_json(value: &Value) -> Option<Self> {
        let address = |kind: &str| -> Option<Ipv4Addr> {
            value
                .pointer("/networks/v4")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter(|n| n.get("type").and_then(Value::as_str) == Some(kind))
                .find_map(|n| n.get("ip_address")?.as_str()?.parse().ok())
        };
        let public_ipv4 = address("public");
        let private_ipv4 = address("private");
        Some(Self {
            id: value.get("id")?.as_u64()?,
            name: value.get("name")?.as_str()?.to_owned(),
            status: value
                .get("status")
                .and_then(Value::as_str)
                .unwrap_or("unknown")
                .to_owned(),
            tags: value
                .get("tags")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|t| t.as_str().map(str::to_owned))
                .collect(),
            public_ipv4,
            private_ipv4,
        })
    }

    /// Active with a public IPv4: ready for SSH.
    pub fn ready(&self) -> Option<Ipv4Addr> {
        self.public_ipv4.filter(|_| self.status == "active")
    }
}

/// `orch-cluster-<cluster>`: the tag that finds a cluster's droplets.
pub fn cluster_tag(cluster: &str) -> String {
    format!("orch-cluster-{cluster}")
}

/// The tags of a droplet of `cluster` running `role`.
pub fn tags(cluster: &str, role: MachineRole) -> Vec<String> {
    let mut tags = vec![ORCH_TAG.to_owned(), cluster_tag(cluster)];
    match role {
        MachineRole::Master => tags.push("orch-role-master".to_owned()),
        MachineRole::Agent => tags.push("orch-role-agent".to_owned()),
        MachineRole::PublicAgent => {
            tags.push("orch-role-agent".to_owned());
            tags.push("orch-role-public-agent".to_owned());
        }
    }
    tags
}

/// `<cluster>-<machine>`.
pub fn droplet_name(cluster: &str, machine: &str) -> String {
    format!("{cluster}-{machine}")
}

/// The machines to create, in create requests: one role per request (the tags are per
/// request), at most [`BATCH`] each, in the order of `missing`.
pub fn batches(missing: &[WantedMachine]) -> Vec<Vec<WantedMachine>> {
    let mut out: Vec<Vec<WantedMachine>> = Vec::new();
    for machine in missing {
        match out.last_mut() {
            Some(batch) if batch.len() < BATCH && batch[0].role == machine.role => {
                batch.push(machine.clone());
            }
            _ => out.push(vec![machine.clone()]),
        }
    }
    out
}

/// The body of `POST /v2/droplets` for `batch` (all of one role).
pub fn create_body(
    entry: &DigitalOceanEntry,
    cluster: &str,
    batch: &[WantedMachine],
    user_data: &str,
) -> Value {
    let names: Vec<String> = batch
        .iter()
        .map(|m| droplet_name(cluster, &m.name))
        .collect();
    let role = batch.first().map_or(MachineRole::Agent, |m| m.role);
    let ssh_keys: Vec<Value> = entry
        .ssh_keys
        .iter()
        .map(|k| match k.parse::<u64>() {
            Ok(id) => json!(id),
            Err(_) => json!(k),
        })
        .collect();
    let mut body = json!({
        "names": names,
        "region": entry.region,
        "size": entry.size,
        "image": entry.image,
        "ssh_keys": ssh_keys,
        "tags": tags(cluster, role),
        "user_data": user_data,
        "ipv6": false,
        "monitoring": false,
    });
    if let Some(vpc) = &entry.vpc_uuid {
        body["vpc_uuid"] = json!(vpc);
    }
    body
}

/// Every droplet tagged `tag`, all pages.
pub async fn list_by_tag(api: &Api, tag: &str) -> Result<Vec<Droplet>, ApiError> {
    let items = api
        .list("/v2/droplets", &[("tag_name", tag)], "droplets")
        .await?;
    Ok(items.iter().filter_map(Droplet::from_json).collect())
}

/// Creates the droplets of `body`; the droplets DigitalOcean accepted.
pub async fn create(api: &Api, body: &Value) -> Result<Vec<Droplet>, ApiError> {
    let answer = api.post("/v2/droplets", body).await?;
    let many = answer.get("droplets").and_then(Value::as_array);
    let one = answer.get("droplet").map(std::slice::from_ref);
    Ok(many
        .map(Vec::as_slice)
        .or(one)
        .unwrap_or_default()
        .iter()
        .filter_map(Droplet::from_json)
        .collect())
}

/// Deletes every droplet tagged `tag`.
pub async fn delete_by_tag(api: &Api, tag: &str) -> Result<(), ApiError> {
    api.delete("/v2/droplets", &[("tag_name", tag)]).await
}

/// Deletes the droplet `id`; a droplet that is gone already is fine.
pub async fn delete(api: &Api, id: u64) -> Result<bool, ApiError> {
    match api.delete(&format!("/v2/droplets/{id}"), &[]).await {
        Ok(()) => Ok(true),
        Err(e) if e.status() == Some(404) => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wanted(names: &[(&str, MachineRole)]) -> Vec<WantedMachine> {
        names
            .iter()
            .map(|(n, r)| WantedMachine {
                name: (*n).to_owned(),
                role: *r,
            })
            .collect()
    }

    #[test]
    fn batches_hold_at_most_ten_of_one_role() {
        let mut machines = wanted(&[("master-1", MachineRole::Master)]);
        for n in 1..=23 {
            machines.push(WantedMachine {
                name: format!("agent-{n}"),
                role: MachineRole::Agent,
            });
        }
        machines.extend(wanted(&[("public-agent-1", MachineRole::PublicAgent)]));
        let batches = batches(&machines);
        let sizes: Vec<usize> = batches.iter().map(Vec::len).collect();
        assert_eq!(sizes, [1, 10, 10, 3, 1]);
        for batch in &batches {
            assert!(batch.iter().all(|m| m.role == batch[0].role));
        }
        let flat: Vec<WantedMachine> = batches.concat();
        assert_eq!(flat, machines, "every machine once, in order");
        assert!(super::batches(&[]).is_empty());
    }

    #[test]
    fn a_create_body_names_tags_and_places_the_batch() {
        let entry = DigitalOceanEntry {
            region: "nyc3".to_owned(),
            ssh_keys: vec!["123".to_owned(), "aa:bb".to_owned()],
            vpc_uuid: Some("vpc-1".to_owned()),
            ..DigitalOceanEntry::default()
        };
        let batch = wanted(&[
            ("public-agent-1", MachineRole::PublicAgent),
            ("public-agent-2", MachineRole::PublicAgent),
        ]);
        let body = create_body(&entry, "demo", &batch, "#cloud-config\n");
        assert_eq!(
            body["names"],
            json!(["demo-public-agent-1", "demo-public-agent-2"])
        );
        assert_eq!(
            body["tags"],
            json!([
                "orch",
                "orch-cluster-demo",
                "orch-role-agent",
                "orch-role-public-agent"
            ])
        );
        assert_eq!(body["ssh_keys"], json!([123, "aa:bb"]));
        assert_eq!(body["region"], "nyc3");
        assert_eq!(body["size"], "s-2vcpu-4gb");
        assert_eq!(body["image"], "debian-12-x64");
        assert_eq!(body["vpc_uuid"], "vpc-1");
        assert_eq!(body["user_data"], "#cloud-config\n");
    }

    #[test]
    fn a_droplet_is_ready_when_active_with_a_public_ipv4() {
        let mut value = json!({"id": 7, "name": "demo-master-1", "status": "new",
            "tags": ["orch"], "networks": {"v4": [], "v6": []}});
        let droplet = Droplet::from_json(&value).expect("droplet");
        assert_eq!(droplet.ready(), None);
        value["status"] = json!("active");
        value["networks"]["v4"] = json!([
            {"ip_address": "10.10.0.5", "type": "private"},
            {"ip_address": "203.0.113.9", "type": "public"}]);
        let droplet = Droplet::from_json(&value).expect("droplet");
        assert_eq!(droplet.ready(), Some(Ipv4Addr::new(203, 0, 113, 9)));
        assert_eq!(droplet.private_ipv4, Some(Ipv4Addr::new(10, 10, 0, 5)));
        assert_eq!(droplet.id, 7);
        assert!(Droplet::from_json(&json!({"name": "x"})).is_none());
    }
}

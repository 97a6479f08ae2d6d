//! The cluster's bridge network: an IPv4 subnet (given, or the first free `172.30.X.0/24`
//! that overlaps no Docker network), fixed addresses for the machines inside it, and the
//! network itself, labelled with the cluster.
//!
//! May depend on: provision::cluster_spec (MachineRole), the parent module (errors, labels,
//! engine calls). Talks to the engine.

use super::{bounded, DockerError, CLUSTER_LABEL};
use crate::cluster_spec::MachineRole;
use bollard::models::{Ipam, IpamConfig, NetworkCreateRequest};
use bollard::Docker;
use std::collections::HashMap;
use std::net::Ipv4Addr;

/// An IPv4 subnet in CIDR form.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Subnet {
    /// The first address (host bits zero).
    pub base: Ipv4Addr,
    /// The prefix length.
    pub prefix: u8,
}

impl std::fmt::Display for Subnet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.base, self.prefix)
    }
}

impl std::str::FromStr for Subnet {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || format!("'{text}' is not an IPv4 subnet like 172.30.0.0/24");
        let (ip, bits) = text.trim().split_once('/').ok_or_else(bad)?;
        let ip: Ipv4Addr = ip.parse().map_err(|_| bad())?;
        let prefix: u8 = bits.parse().map_err(|_| bad())?;
        if prefix > 30 {
            return Err(format!("{text}: a /{prefix} has no room for a cluster"));
        }
        Ok(Self {
            base: Ipv4Addr::from(u32::from(ip) & mask(prefix)),
            prefix,
        })
    }
}

fn mask(prefix: u8) -> u32 {
    match prefix {
        0 => 0,
        p => u32::MAX << (32 - u32::from(p.min(32))),
    }
}

impl Subnet {
    /// True when the two share an address.
    pub fn overlaps(&self, other: &Subnet) -> bool {
        let prefix = self.prefix.min(other.prefix);
        u32::from(self.base) & mask(prefix) == u32::from(other.base) & mask(prefix)
    }

    /// The address `offset` after the base, when it is a host address of the subnet.
    pub fn host(&self, offset: u32) -> Option<Ipv4Addr> {
        let size = 1u64 << (32 - u32::from(self.prefix));
        (offset > 0 && u64::from(offset) < size - 1)
            .then(|| Ipv4Addr::from(u32::from(self.base) + offset))
    }

    /// The gateway: the first host address.
    pub fn gateway(&self) -> Option<Ipv4Addr> {
        self.host(1)
    }
}

/// The first `172.30.X.0/24` overlapping none of `taken`.
pub fn pick_subnet(taken: &[Subnet]) -> Option<Subnet> {
    (0..=255u8)
        .map(|x| Subnet {
            base: Ipv4Addr::new(172, 30, x, 0),
            prefix: 24,
        })
        .find(|candidate| !taken.iter().any(|t| t.overlaps(candidate)))
}

/// The fixed address of the `number`th (1-based) machine of `role`, the `position`th
/// (0-based) of all: in a /24 or larger, masters from .11, agents from .101, public agents
/// from .201, so adding agents never moves a master; in a smaller subnet, in order from .2.
pub fn machine_ip(
    subnet: &Subnet,
    role: MachineRole,
    number: u32,
    position: u32,
) -> Option<Ipv4Addr> {
    if subnet.prefix <= 24 {
        let (first, room) = match role {
            MachineRole::Master => (10, 89),
            MachineRole::Agent => (100, 99),
            MachineRole::PublicAgent => (200, 54),
        };
        if number == 0 || number > room {
            return None;
        }
        subnet.host(first + number)
    } else {
        subnet.host(2 + position)
    }
}

/// The subnets of every Docker network.
async fn taken_subnets(docker: &Docker) -> Result<Vec<Subnet>, DockerError> {
    let networks = bounded("listing networks", docker.list_networks(None)).await?;
    Ok(networks
        .into_iter()
        .flat_map(|n| n.ipam.and_then(|i| i.config).unwrap_or_default())
        .filter_map(|c| c.subnet.and_then(|s| s.parse().ok()))
        .collect())
}

/// The network `name` as it exists: id and IPv4 subnet; None when there is none.
pub async fn find(
    docker: &Docker,
    name: &str,
) -> Result<Option<(String, Option<Subnet>)>, DockerError> {
    match bounded(
        &format!("inspecting network {name}"),
        docker.inspect_network(name, None),
    )
    .await
    {
        Ok(network) => {
            let subnet = network
                .ipam
                .and_then(|i| i.config)
                .unwrap_or_default()
                .into_iter()
                .filter_map(|c| c.subnet.and_then(|s| s.parse::<Subnet>().ok()))
                .next();
            Ok(Some((
                network.id.unwrap_or_else(|| name.to_owned()),
                subnet,
            )))
        }
        Err(error) if error.is_not_found() => Ok(None),
        Err(error) => Err(error),
    }
}

/// The subnet the network would get: `wanted`, else the first free one.
pub async fn plan_subnet(docker: &Docker, wanted: Option<Subnet>) -> Result<Subnet, DockerError> {
    match wanted {
        Some(subnet) => Ok(subnet),
        None => pick_subnet(&taken_subnets(docker).await?).ok_or(DockerError::NoSubnet),
    }
}

/// The network `name` with `wanted` subnet (or a free one), created when missing.
/// Returns its id, its subnet and whether it was created.
pub async fn ensure(
    docker: &Docker,
    name: &str,
    cluster: &str,
    wanted: Option<Subnet>,
) -> Result<(String, Subnet, bool), DockerError> {
    if let Some((id, subnet)) = find(docker, name).await? {
        let subnet = subnet.ok_or_else(|| DockerError::Network {
            network: name.to_owned(),
            problem: "has no IPv4 subnet; remove it or name another in docker.network".to_owned(),
        })?;
        if let Some(wanted) = wanted.filter(|w| *w != subnet) {
            return Err(DockerError::Network {
                network: name.to_owned(),
                problem: format!(
                    "exists with subnet {subnet}, not {wanted} (docker.subnet); `orch destroy` first"
                ),
            });
        }
        return Ok((id, subnet, false));
    }
    // A subnet picked here may be taken by another network meanwhile: pick again.
    let mut attempt = 0;
    loop {
        attempt += 1;
        let subnet = plan_subnet(docker, wanted).await?;
        match create(docker, name, cluster, subnet).await {
            Ok(id) => return Ok((id, subnet, true)),
            Err(error) if wanted.is_none() && attempt < 3 && !error.is_not_found() => {
                tracing::warn!(network = name, %subnet, error = %error, "subnet taken meanwhile; picking another");
            }
            Err(error) => return Err(error),
        }
    }
}

async fn create(
    docker: &Docker,
    name: &str,
    cluster: &str,
    subnet: Subnet,
) -> Result<String, DockerError> {
    let gateway = subnet.gateway().ok_or(DockerError::NoSubnet)?;
    let request = NetworkCreateRequest {
        name: name.to_owned(),
        driver: Some("bridge".to_owned()),
        ipam: Some(Ipam {
            driver: Some("default".to_owned()),
            config: Some(vec![IpamConfig {
                subnet: Some(subnet.to_string()),
                gateway: Some(gateway.to_string()),
                ..IpamConfig::default()
            }]),
            options: None,
        }),
        labels: Some(HashMap::from([(
            CLUSTER_LABEL.to_owned(),
            cluster.to_owned(),
        )])),
        ..NetworkCreateRequest::default()
    };
    let created = bounded(
        &format!("creating network {name} ({subnet})"),
        docker.create_network(request),
    )
    .await?;
    Ok(created.id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subnet(text: &str) -> Subnet {
        text.parse().expect("subnet")
    }

    #[test]
    fn subnets_parse_and_overlap() {
        assert_eq!(subnet("172.30.5.9/24").to_string(), "172.30.5.0/24");
        assert!(subnet("172.16.0.0/12").overlaps(&subnet("172.30.1.0/24")));
        assert!(subnet("172.30.1.0/24").overlaps(&subnet("172.16.0.0/12")));
        assert!(!subnet("172.30.1.0/24").overlaps(&subnet("172.30.2.0/24")));
        assert!("172.30.0.0".parse::<Subnet>().is_err());
        assert!("10.0.0.0/31".parse::<Subnet>().is_err());
    }

    #[test]
    fn the_first_free_24_is_picked() {
        assert_eq!(pick_subnet(&[]), Some(subnet("172.30.0.0/24")));
        let taken = [
            subnet("172.17.0.0/16"),
            subnet("172.30.0.0/23"),
            subnet("172.30.3.0/24"),
        ];
        assert_eq!(pick_subnet(&taken), Some(subnet("172.30.2.0/24")));
        assert_eq!(pick_subnet(&[subnet("172.16.0.0/12")]), None);
    }

    #[test]
    fn machines_get_fixed_addresses_by_role() {
        let net = subnet("172.30.7.0/24");
        let ip = |role, n, p| machine_ip(&net, role, n, p).map(|i| i.to_string());
        assert_eq!(
            ip(MachineRole::Master, 1, 0).as_deref(),
            Some("172.30.7.11")
        );
        assert_eq!(
            ip(MachineRole::Master, 3, 2).as_deref(),
            Some("172.30.7.13")
        );
        assert_eq!(
            ip(MachineRole::Agent, 2, 4).as_deref(),
            Some("172.30.7.102")
        );
        assert_eq!(
            ip(MachineRole::PublicAgent, 1, 5).as_deref(),
            Some("172.30.7.201")
        );
        assert_eq!(ip(MachineRole::PublicAgent, 55, 5), None);
        let small = subnet("10.1.0.0/28");
        assert_eq!(
            machine_ip(&small, MachineRole::Agent, 1, 3)
                .map(|i| i.to_string())
                .as_deref(),
            Some("10.1.0.5")
        );
        assert_eq!(machine_ip(&small, MachineRole::Agent, 1, 13), None);
        assert_eq!(
            net.gateway().map(|g| g.to_string()).as_deref(),
            Some("172.30.7.1")
        );
    }
}

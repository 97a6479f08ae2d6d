//! Service port assignment (Marathon's `AssignDynamicServiceLogic`).
//!
//! Service ports are metadata for load balancers: `portDefinitions[].port` under host
//! networking, `container.portMappings[].servicePort` otherwise. Each 0 is replaced, in order,
//! by a port the previous version of the same app used that the new version does not use
//! explicitly, then by the lowest port in [`SERVICE_PORTS`] used by no other app and not by
//! this one. Ports chosen by the user are kept as they are (uniqueness is the user's job, as
//! in Marathon).

use super::AppSpec;
use std::collections::BTreeSet;
use std::ops::RangeInclusive;

/// Where dynamic service ports come from (Marathon's `--local_port_min/max`).
pub const SERVICE_PORTS: RangeInclusive<u16> = 10000..=20000;

/// The range holds no free port.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
#[error("All ports in the range [{min}-{max}) are already in use")]
pub struct PortsExhausted {
    /// Lowest port of the range.
    pub min: u16,
    /// Highest port of the range.
    pub max: u16,
}

/// Replaces each 0 service port of `spec`. `previous` is the app's stored version (if any);
/// `in_use` gives the service ports of every other app (asked only if a fresh port is needed).
pub fn assign_service_ports(
    spec: &mut AppSpec,
    previous: Option<&AppSpec>,
    in_use: impl FnOnce() -> BTreeSet<u16>,
) -> Result<(), PortsExhausted> {
    if !spec.service_ports().contains(&0) {
        return Ok(());
    }
    let explicit: BTreeSet<u16> = spec
        .service_ports()
        .into_iter()
        .filter(|p| *p != 0)
        .collect();
    let reusable: Vec<u16> = previous
        .map(AppSpec::service_ports)
        .unwrap_or_default()
        .into_iter()
        .filter(|p| *p != 0 && !explicit.contains(p))
        .collect();
    let mut reusable = reusable.into_iter();
    let mut taken = explicit;
    let mut in_use = Some(in_use);
    let mut others = BTreeSet::new();
    let mut next = *SERVICE_PORTS.start();
    for port in spec.service_ports_mut() {
        if *port != 0 {
            continue;
        }
        let chosen = match reusable.find(|p| !taken.contains(p)) {
            Some(reused) => reused,
            None => {
                if let Some(in_use) = in_use.take() {
                    others = in_use();
                }
                let free = (next..=*SERVICE_PORTS.end())
                    .find(|p| !taken.contains(p) && !others.contains(p))
                    .ok_or(PortsExhausted {
                        min: *SERVICE_PORTS.start(),
                        max: *SERVICE_PORTS.end(),
                    })?;
                next = free;
                free
            }
        };
        taken.insert(chosen);
        *port = chosen;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::app_spec::PortDefinition;

    fn spec(ports: &[u16]) -> AppSpec {
        AppSpec {
            port_definitions: ports
                .iter()
                .map(|&port| PortDefinition {
                    port,
                    ..PortDefinition::default()
                })
                .collect(),
            ..AppSpec::default()
        }
    }

    #[test]
    fn zeros_take_the_lowest_free_ports() {
        let mut app = spec(&[0, 10001, 0]);
        let in_use = BTreeSet::from([10000, 10002]);
        assign_service_ports(&mut app, None, || in_use).expect("ports left");
        assert_eq!(app.service_ports(), vec![10003, 10001, 10004]);
    }

    #[test]
    fn previous_ports_come_back_first() {
        let previous = spec(&[10007, 10009]);
        let mut app = spec(&[0, 0, 0]);
        assign_service_ports(&mut app, Some(&previous), BTreeSet::new).expect("ports left");
        assert_eq!(app.service_ports(), vec![10007, 10009, 10000]);

        // A previous port now chosen explicitly is not handed out twice.
        let mut app = spec(&[0, 10007]);
        assign_service_ports(&mut app, Some(&previous), BTreeSet::new).expect("ports left");
        assert_eq!(app.service_ports(), vec![10009, 10007]);
    }

    #[test]
    fn an_exhausted_range_is_an_error() {
        let in_use: BTreeSet<u16> = SERVICE_PORTS.collect();
        let error =
            assign_service_ports(&mut spec(&[0]), None, || in_use.clone()).expect_err("exhausted");
        assert_eq!(
            error.to_string(),
            "All ports in the range [10000-20000) are already in use"
        );
        let mut fixed = spec(&[80]);
        assign_service_ports(&mut fixed, None, || in_use).expect("no zero, nothing to assign");
    }
}

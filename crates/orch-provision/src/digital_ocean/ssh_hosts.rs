//! The droplets as hosts of the ssh provider, which runs the SSH steps on them: each
//! droplet's public IPv4 (and VPC address), root, `ssh_port`, `identity_file`, the cluster's
//! own known_hosts file, and whether its host key is recorded at the first connection (a
//! droplet of this cluster's, see [`super::cloud_init`]).
//!
//! May depend on: provision::{cluster_spec, ssh, steps}, the parent module.

use super::*;

impl DigitalOceanProvider {
    /// The droplets as SSH hosts: public IPv4, root, `ssh_port`; the host key of a droplet
    /// of ours is recorded at its first connection.
    pub(super) fn hosts(&self, machines: &[Machine]) -> Result<Vec<SshHost>, ProviderError> {
        let entry = self.entry();
        let identity = match &entry.identity_file {
            Some(file) => Identity::File(resolve_path(&self.options.base_dir, file)),
            None => Identity::Agent,
        };
        let mut hosts = Vec::new();
        for machine in machines {
            hosts.push(SshHost {
                name: machine.name.clone(),
                role: machine.role,
                address: machine.ip.to_string(),
                port: entry.ssh_port,
                user: "root".to_owned(),
                ip: machine.ip,
                private_ip: machine.private_ip,
                install_dir: machine.install_dir.clone(),
                host_key: None,
                accept_first_key: self.ours.contains(&machine.name),
                identity: identity.clone(),
                sudo: false,
                resources: None,
                attributes: None,
            });
        }
        Ok(hosts)
    }

    /// The ssh provider for `machines` (made once per run; its connections are kept).
    pub(super) fn ssh(&mut self, machines: &[Machine]) -> Result<&mut SshProvider, ProviderError> {
        let same = self.ssh.as_ref().is_some_and(|ssh| {
            machines
                .iter()
                .all(|m| ssh.host(&m.name).is_some_and(|h| h.ip == m.ip))
        });
        if !same {
            let hosts = self.hosts(machines)?;
            // The cluster's own known_hosts, not ~/.ssh/known_hosts.
            let provider = SshProvider::for_hosts(hosts, &self.options, &self.infra.cluster)
                .with_known_hosts(self.options.cluster_dir.join("known_hosts"));
            self.ssh = Some(provider);
        }
        self.ssh
            .as_mut()
            .ok_or_else(|| ProviderError::Refused("no droplets to reach over SSH".to_owned()))
    }
}

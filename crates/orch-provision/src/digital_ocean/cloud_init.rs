//! The droplets' cloud-init user data (`templates/cloud-init.yaml`): root login with the
//! account's keys only, on the infra file's SSH port. It carries no private key and no secret
//! of any kind, since every task on a droplet can read it from the metadata service
//! (169.254.169.254): each droplet makes its own SSH host key at first boot.
//!
//! How `orch up` then knows it talks to its droplet: DigitalOcean's API does not show a
//! droplet's host key, so the key is accepted on the first SSH connection to a droplet this
//! cluster created (one recorded in the state file, if only as requested by a run killed
//! before DigitalOcean answered, or created by this run), recorded in
//! `.orch/<cluster>/known_hosts`, and checked on every later connection; a changed key is
//! refused. That first connection is plain trust on first use: whoever answers SSH at the
//! droplet's address at that moment is believed, so an attacker on the network path between
//! this machine and the new droplet at that very moment could pose as it and would receive
//! what `orch up` installs (the node's key, a master's token). A droplet the state file does
//! not know (found by tag only, e.g. after `.orch/` was lost) is refused unless
//! `--trust-on-first-use`.
//!
//! May depend on: provision::templates. Pure.

use crate::templates::{self, Template, TemplateError};

/// The user data template.
pub const TEMPLATE: Template = Template {
    name: "cloud-init.yaml",
    text: include_str!("../../templates/cloud-init.yaml"),
};

/// DigitalOcean's limit on user data.
pub const MAX_USER_DATA: usize = 64 * 1024;

/// The user data cannot be rendered.
#[derive(Debug, thiserror::Error)]
pub enum CloudInitError {
    /// The template did not render.
    #[error(transparent)]
    Template(#[from] TemplateError),
    /// The user data is larger than DigitalOcean takes.
    #[error("the user data is {size} bytes; DigitalOcean takes at most {MAX_USER_DATA}")]
    TooLarge {
        /// Its size.
        size: usize,
    },
}

/// The user data of the droplets of `cluster`, whose sshd listens on `ssh_port`.
pub fn render(cluster: &str, ssh_port: u16) -> Result<String, CloudInitError> {
    let port = ssh_port.to_string();
    let text = templates::render(TEMPLATE, &[("cluster", cluster), ("ssh_port", &port)])?;
    if text.len() > MAX_USER_DATA {
        return Err(CloudInitError::TooLarge { size: text.len() });
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_user_data_sets_up_ssh_and_carries_no_key() {
        let text = render("demo", 2222).expect("render");
        assert!(text.starts_with("#cloud-config\n"), "{text}");
        assert!(!text.contains("PRIVATE KEY"), "{text}");
        assert!(!text.contains("ssh_keys:"), "{text}");
        let yaml: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).expect("yaml");
        assert_eq!(yaml["disable_root"].as_bool(), Some(false));
        assert_eq!(yaml["ssh_deletekeys"].as_bool(), Some(true));
        assert!(yaml["write_files"][0]["content"]
            .as_str()
            .expect("content")
            .contains("Port 2222"));
    }
}

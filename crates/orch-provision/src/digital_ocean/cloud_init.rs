//! The droplets' cloud-init user data (`templates/cloud-init.yaml`) and their SSH host
//! keys: an ed25519 key per droplet, generated here and kept in
//! `.orch/<cluster>/host-keys/<machine>` (private, 0600) so that the SSH steps pin its
//! public key instead of trusting on first use. One create request makes up to 10 droplets
//! with one user data, so the `ssh_keys:` section holds every key of the request, each
//! under a Jinja condition on the droplet's hostname (cloud-init renders `## template:
//! jinja` user data with the instance's metadata before it reads it).
//!
//! May depend on: provision::templates. Reads and writes the host key files.

use crate::templates::{self, Template, TemplateError};
use russh::keys::ssh_key::private::Ed25519Keypair;
use russh::keys::ssh_key::LineEnding;
use russh::keys::PrivateKey;
use std::path::{Path, PathBuf};

/// The user data template.
pub const TEMPLATE: Template = Template {
    name: "cloud-init.yaml",
    text: include_str!("../../templates/cloud-init.yaml"),
};

/// DigitalOcean's limit on user data.
pub const MAX_USER_DATA: usize = 64 * 1024;

/// A host key cannot be made, read or written, or the user data not rendered.
#[derive(Debug, thiserror::Error)]
pub enum CloudInitError {
    /// Reading or writing a key file failed.
    #[error("cannot access the host key file {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A key file is not an OpenSSH private key, or a key cannot be encoded.
    #[error("host key {path}: {problem}")]
    Key {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
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

/// A droplet's SSH host key.
#[derive(Clone, Debug)]
pub struct HostKey {
    /// The private key, OpenSSH format.
    pub private_openssh: String,
    /// The public key, `ssh-ed25519 AAAA...` (no comment).
    pub public_openssh: String,
}

/// `<cluster_dir>/host-keys/<machine>`.
pub fn key_path(cluster_dir: &Path, machine: &str) -> PathBuf {
    cluster_dir.join("host-keys").join(machine)
}

/// The host key of `machine` kept in `cluster_dir`, None when there is none.
pub fn load(cluster_dir: &Path, machine: &str) -> Result<Option<HostKey>, CloudInitError> {
    let path = key_path(cluster_dir, machine);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(CloudInitError::Io { path, source }),
    };
    let key = PrivateKey::from_openssh(&text).map_err(|e| CloudInitError::Key {
        path: path.clone(),
        problem: e.to_string(),
    })?;
    encode(&key, &path).map(Some)
}

/// The host key of `machine`: the one kept in `cluster_dir`, else a new ed25519 key, saved
/// there (0600) before it is returned.
pub fn load_or_create(cluster_dir: &Path, machine: &str) -> Result<HostKey, CloudInitError> {
    if let Some(key) = load(cluster_dir, machine)? {
        return Ok(key);
    }
    let path = key_path(cluster_dir, machine);
    let seed: [u8; 32] = rand::random();
    let key = PrivateKey::from(Ed25519Keypair::from_seed(&seed));
    let encoded = encode(&key, &path)?;
    let io = |source| CloudInitError::Io {
        path: path.clone(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    orch_fs::write_private(&path, encoded.private_openssh.as_bytes()).map_err(io)?;
    std::fs::write(
        path.with_extension("pub"),
        format!("{}\n", encoded.public_openssh),
    )
    .map_err(io)?;
    Ok(encoded)
}

fn encode(key: &PrivateKey, path: &Path) -> Result<HostKey, CloudInitError> {
    let problem = |e: russh::keys::ssh_key::Error| CloudInitError::Key {
        path: path.to_owned(),
        problem: e.to_string(),
    };
    let private_openssh = key.to_openssh(LineEnding::LF).map_err(problem)?.to_string();
    let mut public = key.public_key().clone();
    public.set_comment("");
    let public_openssh = public.to_openssh().map_err(problem)?;
    Ok(HostKey {
        private_openssh,
        public_openssh: public_openssh.trim().to_owned(),
    })
}

/// The user data of one create request: `keys` are (droplet name, its host key).
pub fn render(
    cluster: &str,
    ssh_port: u16,
    keys: &[(String, HostKey)],
) -> Result<String, CloudInitError> {
    let mut block = String::new();
    for (i, (droplet, key)) in keys.iter().enumerate() {
        let keyword = if i == 0 { "if" } else { "elif" };
        block.push_str(&format!(
            "{{% {keyword} v1.local_hostname == \"{droplet}\" %}}\n"
        ));
        block.push_str("  ed25519_private: |\n");
        for line in key.private_openssh.lines() {
            block.push_str(&format!("    {line}\n"));
        }
        block.push_str(&format!("  ed25519_public: {}\n", key.public_openssh));
    }
    if !keys.is_empty() {
        block.push_str("{% endif %}");
    }
    let port = ssh_port.to_string();
    let text = templates::render(
        TEMPLATE,
        &[
            ("cluster", cluster),
            ("host_keys", &block),
            ("ssh_port", &port),
        ],
    )?;
    if text.len() > MAX_USER_DATA {
        return Err(CloudInitError::TooLarge { size: text.len() });
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What cloud-init does for one droplet: keep the lines of its branch, parse the YAML.
    fn for_host(text: &str, host: &str) -> serde_yaml_ng::Value {
        let mut keep = None;
        let mut out = String::new();
        for line in text.lines() {
            let trimmed = line.trim();
            if let Some(rest) = trimmed
                .strip_prefix("{% if v1.local_hostname == \"")
                .or_else(|| trimmed.strip_prefix("{% elif v1.local_hostname == \""))
            {
                keep = Some(rest.starts_with(&format!("{host}\"")));
            } else if trimmed == "{% endif %}" {
                keep = None;
            } else if keep != Some(false) {
                out.push_str(line);
                out.push('\n');
            }
        }
        serde_yaml_ng::from_str(&out).expect("yaml")
    }

    #[test]
    fn each_droplet_finds_its_own_pinned_key_in_the_shared_user_data() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = load_or_create(dir.path(), "master-1").expect("key");
        let again = load_or_create(dir.path(), "master-1").expect("key");
        assert_eq!(
            a.public_openssh, again.public_openssh,
            "kept, not regenerated"
        );
        assert!(a.public_openssh.starts_with("ssh-ed25519 AAAA"));
        let b = load_or_create(dir.path(), "agent-1").expect("key");
        assert_ne!(a.public_openssh, b.public_openssh);
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(key_path(dir.path(), "agent-1"))
                .expect("meta")
                .permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);

        let keys = vec![
            ("demo-master-1".to_owned(), a.clone()),
            ("demo-agent-1".to_owned(), b.clone()),
        ];
        let text = render("demo", 2222, &keys).expect("render");
        assert!(text.starts_with("## template: jinja\n#cloud-config\n"));
        for (host, key) in [("demo-master-1", &a), ("demo-agent-1", &b)] {
            let yaml = for_host(&text, host);
            let keys = &yaml["ssh_keys"];
            assert_eq!(
                keys["ed25519_public"].as_str(),
                Some(key.public_openssh.as_str())
            );
            let private = keys["ed25519_private"].as_str().expect("private");
            let parsed = PrivateKey::from_openssh(private).expect("an OpenSSH key");
            let mut public = parsed.public_key().clone();
            public.set_comment("");
            assert_eq!(public.to_openssh().expect("encode"), key.public_openssh);
            assert_eq!(yaml["disable_root"].as_bool(), Some(false));
            assert!(yaml["write_files"][0]["content"]
                .as_str()
                .expect("content")
                .contains("Port 2222"));
        }
        assert!(for_host(&text, "demo-agent-2")["ssh_keys"].is_null());
    }
}

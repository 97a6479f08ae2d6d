//! The identity `orch up` gives every cluster, whatever the provider, kept next to its state
//! file: the CA in `.orch/<cluster>/pki/` (`ca.pem`, `ca-key.pem`), a certificate and key
//! per node there (`<machine>.pem`, `<machine>-key.pem`), and the management token
//! `.orch/<cluster>/token`. Keys and the token are 0600, the directory 0700.
//!
//! [`ensure`] is idempotent: a re-run keeps the CA and the token, and issues a node's
//! certificate again only when it is missing, or names other addresses or names than the
//! node needs now (its machine moved), or the CA was made afresh. What a node's certificate
//! must name is [`identity`]'s: a master its name, `localhost`, its cluster IP and private IP
//! and 127.0.0.1 (so the CLI verifies whichever address it dials); an agent its name, which is
//! its `--hostname` (masters let an agent register only as the name in its certificate).
//!
//! Where the files are, for the providers that install them and the clients that use them:
//! [`ca_path`], [`cert_path`], [`key_path`], [`token_path`]. The CA key never leaves this
//! machine.
//!
//! May depend on: provision::cluster_spec (Machine, MachineRole), orch-pki. Reads and writes
//! files under the cluster dir.

use super::cluster_spec::{Machine, MachineRole, NodeSpec};
use orch_pki::{Authority, PkiError, Role};
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

/// The directory under the cluster dir.
pub const PKI_DIR: &str = "pki";

/// `<cluster_dir>/pki`.
pub fn pki_dir(cluster_dir: &Path) -> PathBuf {
    cluster_dir.join(PKI_DIR)
}

/// `<cluster_dir>/pki/ca.pem`.
pub fn ca_path(cluster_dir: &Path) -> PathBuf {
    pki_dir(cluster_dir).join(orch_pki::CA_CERT)
}

/// `<cluster_dir>/pki/<name>.pem`.
pub fn cert_path(cluster_dir: &Path, name: &str) -> PathBuf {
    pki_dir(cluster_dir).join(format!("{name}.pem"))
}

/// `<cluster_dir>/pki/<name>-key.pem`.
pub fn key_path(cluster_dir: &Path, name: &str) -> PathBuf {
    pki_dir(cluster_dir).join(format!("{name}-key.pem"))
}

/// `<cluster_dir>/token`.
pub fn token_path(cluster_dir: &Path) -> PathBuf {
    cluster_dir.join(orch_pki::TOKEN)
}

/// What one node's certificate must say.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeIdentity {
    /// The machine's name: the certificate's common name (an agent's `--hostname`).
    pub name: String,
    /// Master or agent.
    pub role: Role,
    /// The addresses it is reached at.
    pub ips: Vec<IpAddr>,
    /// The DNS names it is reached at.
    pub dns_names: Vec<String>,
}

/// What `machine`'s certificate must name.
pub fn identity(machine: &Machine) -> NodeIdentity {
    let mut ips = vec![machine.ip];
    ips.extend(machine.private_ip);
    let (role, dns_names) = match machine.role {
        MachineRole::Master => {
            ips.push(IpAddr::V4(Ipv4Addr::LOCALHOST));
            (
                Role::Master,
                vec![machine.name.clone(), "localhost".to_owned()],
            )
        }
        MachineRole::Agent | MachineRole::PublicAgent => (Role::Agent, vec![machine.name.clone()]),
    };
    let mut seen = Vec::new();
    ips.retain(|ip| {
        let new = !seen.contains(ip);
        seen.push(*ip);
        new
    });
    NodeIdentity {
        name: machine.name.clone(),
        role,
        ips,
        dns_names,
    }
}

/// What [`ensure`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ensured {
    /// The CA was made now.
    pub new_ca: bool,
    /// The nodes whose certificate was issued now (new, or names changed).
    pub issued: Vec<String>,
    /// The management token.
    pub token: String,
}

/// Makes the cluster's CA and token unless they exist, and a certificate for every node of
/// `machines` that has none that fits (see the module doc).
pub fn ensure(
    cluster_dir: &Path,
    cluster: &str,
    machines: &[Machine],
) -> Result<Ensured, PkiError> {
    let dir = pki_dir(cluster_dir);
    std::fs::create_dir_all(&dir).map_err(|source| PkiError::Io {
        what: "create",
        path: dir.clone(),
        source,
    })?;
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).map_err(
            |source| PkiError::Io {
                what: "restrict",
                path: dir.clone(),
                source,
            },
        )?;
    }
    let new_ca = !ca_path(cluster_dir).exists();
    let authority = if new_ca {
        Authority::init(&dir, cluster)?
    } else {
        Authority::load(&dir)?
    };
    let token = orch_pki::ensure_token(cluster_dir)?;
    let mut issued = Vec::new();
    for machine in machines {
        let wanted = identity(machine);
        if !new_ca && fits(cluster_dir, &wanted) {
            continue;
        }
        let certificate =
            authority.issue(wanted.role, &wanted.name, &wanted.ips, &wanted.dns_names)?;
        orch_pki::write_issued(&dir, &wanted.name, &certificate)?;
        issued.push(wanted.name);
    }
    Ok(Ensured {
        new_ca,
        issued,
        token,
    })
}

/// True when the node's key exists and its certificate names exactly what it must.
fn fits(cluster_dir: &Path, wanted: &NodeIdentity) -> bool {
    if !key_path(cluster_dir, &wanted.name).exists() {
        return false;
    }
    let Ok(pem) = std::fs::read_to_string(cert_path(cluster_dir, &wanted.name)) else {
        return false;
    };
    let Some(names) = orch_pki::certificate_names(&pem) else {
        return false;
    };
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    names.role == wanted.role
        && names.name == wanted.name
        && sorted(names.ips.iter().map(IpAddr::to_string).collect())
            == sorted(wanted.ips.iter().map(IpAddr::to_string).collect())
        && sorted(names.dns_names) == sorted(wanted.dns_names.clone())
}

/// Sets each spec's `tls_digest`: the sha256 of its TLS files' contents as they are here (a
/// missing file counts as such). Reads files; changes nothing.
pub fn stamp_tls(specs: &mut [NodeSpec]) {
    use sha2::Digest as _;
    for spec in specs {
        let mut hash = sha2::Sha256::new();
        for file in &spec.tls {
            hash.update(file.target.as_bytes());
            match std::fs::read(&file.source) {
                Ok(bytes) => {
                    hash.update(b"\x01");
                    hash.update(&bytes);
                }
                Err(_) => hash.update(b"\x00"),
            }
        }
        spec.tls_digest = hex::encode(hash.finalize());
    }
}

/// The management token of the cluster in `cluster_dir`, None when it has none yet.
pub fn read_token(cluster_dir: &Path) -> Option<String> {
    std::fs::read_to_string(token_path(cluster_dir))
        .ok()
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster_spec::tests::machine;
    use std::os::unix::fs::PermissionsExt as _;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).expect("meta").permissions().mode() & 0o777
    }

    #[test]
    fn a_rerun_keeps_everything_and_a_moved_machine_gets_a_new_certificate() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut machines = vec![
            machine("master-1", MachineRole::Master, "10.0.0.1"),
            machine("agent-1", MachineRole::Agent, "10.0.0.2"),
        ];
        let first = ensure(dir.path(), "demo", &machines).expect("ensure");
        assert!(first.new_ca);
        assert_eq!(first.issued, ["master-1", "agent-1"]);
        assert_eq!(mode(&key_path(dir.path(), "master-1")), 0o600);
        assert_eq!(mode(&token_path(dir.path())), 0o600);
        assert_eq!(mode(&pki_dir(dir.path())), 0o700);
        let ca = std::fs::read(ca_path(dir.path())).expect("ca");
        let names = orch_pki::certificate_names(
            &std::fs::read_to_string(cert_path(dir.path(), "master-1")).expect("cert"),
        )
        .expect("names");
        assert!(names.ips.contains(&"127.0.0.1".parse().expect("ip")));
        assert!(names.dns_names.contains(&"localhost".to_owned()));

        let again = ensure(dir.path(), "demo", &machines).expect("again");
        assert_eq!(
            again,
            Ensured {
                new_ca: false,
                issued: vec![],
                token: first.token.clone()
            }
        );
        assert_eq!(std::fs::read(ca_path(dir.path())).expect("ca"), ca);

        let mut specs = crate::cluster_spec::node_specs(
            &crate::infra::Infra::default(),
            &machines,
            dir.path(),
            &crate::cluster_spec::default_tls_dir,
        );
        stamp_tls(&mut specs);
        let before = specs[1].tls_digest.clone();
        assert_eq!(before.len(), 64);

        machines[1].ip = "10.0.0.3".parse().expect("ip");
        let moved = ensure(dir.path(), "demo", &machines).expect("moved");
        assert_eq!(moved.issued, ["agent-1"]);
        stamp_tls(&mut specs);
        assert_ne!(
            specs[1].tls_digest, before,
            "a new certificate, a new digest"
        );
        assert_eq!(read_token(dir.path()), Some(first.token));
    }
}

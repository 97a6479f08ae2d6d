//! `orch pki`: the cluster's identity for operators who run masters and agents by hand
//! (`orch up` makes its own): `init` makes the CA and the management token, `issue` a
//! node's certificate and key.

use anyhow::Context;
use orch_pki::{Authority, Role};
use std::net::IpAddr;
use std::path::PathBuf;

/// `orch pki` commands.
#[derive(Debug, clap::Subcommand)]
pub enum PkiCommand {
    /// Make the cluster's CA (ca.pem, ca-key.pem) and management token in DIR.
    Init {
        /// Where the files go.
        #[arg(long, default_value = "pki")]
        dir: PathBuf,
        /// The cluster's name, in the CA's subject.
        #[arg(long, default_value = "orch")]
        cluster: String,
    },
    /// Issue a node's certificate and key (<name>.pem, <name>-key.pem) from the CA in DIR.
    Issue {
        /// Where the CA is and the files go.
        #[arg(long, default_value = "pki")]
        dir: PathBuf,
        /// What the node is: master or agent.
        #[arg(long, value_parser = parse_role)]
        role: Role,
        /// The node's name (its certificate's common name, and the files' names).
        #[arg(long)]
        name: String,
        /// An address the node is reached at (repeat for several).
        #[arg(long = "ip")]
        ips: Vec<IpAddr>,
        /// A DNS name the node is reached at (repeat for several).
        #[arg(long = "dns")]
        dns_names: Vec<String>,
    },
}

fn parse_role(text: &str) -> Result<Role, String> {
    Role::parse(text).ok_or_else(|| format!("'{text}' is not a role: master or agent"))
}

/// Runs an `orch pki` command.
pub fn run(command: PkiCommand) -> anyhow::Result<()> {
    match command {
        PkiCommand::Init { dir, cluster } => {
            Authority::init(&dir, &cluster)?;
            orch_pki::ensure_token(&dir)?;
            println!(
                "made the CA of cluster '{cluster}' in {}: {} (give it to every node and client), \
                 {} (keep it here), {} (the management token)",
                dir.display(),
                orch_pki::CA_CERT,
                orch_pki::CA_KEY,
                orch_pki::TOKEN
            );
            Ok(())
        }
        PkiCommand::Issue {
            dir,
            role,
            name,
            ips,
            dns_names,
        } => {
            let ca = Authority::load(&dir).with_context(|| {
                format!("no CA in {} (`orch pki init` makes one)", dir.display())
            })?;
            let issued = ca.issue(role, &name, &ips, &dns_names)?;
            let (cert, key) = orch_pki::write_issued(&dir, &name, &issued)?;
            println!(
                "issued the {role} certificate of {name}: {} and {}",
                cert.display(),
                key.display()
            );
            Ok(())
        }
    }
}

//! The flags `orch master` and `orch agent` share for where and how they may serve: TLS
//! from `orch pki` files, or plaintext off loopback only with `--insecure`.

use std::net::SocketAddr;
use std::path::PathBuf;

/// `--insecure` and the TLS files of a node.
#[derive(Debug, clap::Args)]
pub struct NodeSecurityArgs {
    /// Serve plaintext HTTP on an address other than loopback (warned at every start).
    #[arg(long)]
    pub insecure: bool,
    /// This node's certificate (PEM, from `orch pki issue`; an agent's names its --hostname):
    /// talk to the other nodes over TLS, showing it (a master also serves HTTPS with it).
    #[arg(long, requires_all = ["tls_key", "tls_ca"])]
    pub tls_cert: Option<PathBuf>,
    /// This node's private key (PEM).
    #[arg(long, requires_all = ["tls_cert", "tls_ca"])]
    pub tls_key: Option<PathBuf>,
    /// The cluster CA (PEM): masters and agents show certificates it signed.
    #[arg(long, requires_all = ["tls_cert", "tls_key"])]
    pub tls_ca: Option<PathBuf>,
}

/// Logs the `--insecure` warning when `node` serves plaintext off loopback.
pub fn warn_if_plaintext(node: &str, listen: SocketAddr, serves_tls: bool) {
    if !serves_tls && !listen.ip().is_loopback() {
        tracing::warn!("{}", orch_core::listen::warning(node, listen));
    }
}

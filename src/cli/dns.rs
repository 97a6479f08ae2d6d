//! `orch dns`: Mesos-DNS-compatible DNS and HTTP API fed by the masters' snapshot stream; and
//! the same server inside a master or agent (`--with-dns` and the `--dns-*` flags).

use anyhow::Context;
use orch_dns::DnsConfig;
use std::net::{IpAddr, SocketAddr};

/// Flags of `orch dns`.
#[derive(Debug, clap::Args)]
pub struct DnsArgs {
    /// Every master's host:port, comma-separated; records follow whichever answers.
    #[arg(long, value_delimiter = ',', required = true)]
    masters: Vec<String>,
    /// DNS address, UDP and TCP.
    #[arg(long, default_value = "0.0.0.0:53")]
    listen: SocketAddr,
    /// Address of the Mesos-DNS HTTP API (`/v1/hosts`, `/v1/services`, ...).
    #[arg(long, default_value = "0.0.0.0:8123")]
    http_listen: SocketAddr,
    #[command(flatten)]
    zone: ZoneArgs,
}

/// The settings `orch dns` and the embedded server share, named as in `orch dns`.
#[derive(Debug, Clone, clap::Args)]
pub struct ZoneArgs {
    /// The domain served (Mesos-DNS's `domain`).
    #[arg(long, default_value = "mesos")]
    domain: String,
    /// TTL of every record, seconds.
    #[arg(long, default_value_t = 5)]
    ttl: u32,
    /// Upstream resolvers (IP or IP:PORT, comma-separated) for names outside the domain
    /// [default: the nameservers of /etc/resolv.conf].
    #[arg(long, value_delimiter = ',')]
    resolvers: Vec<String>,
    /// Forward names outside the domain (false: answer REFUSED).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    external_on: bool,
    /// Only tasks whose health checks pass get records (apps without checks: all running).
    #[arg(long)]
    healthy_only: bool,
    /// How long to wait for the upstream resolvers before answering SERVFAIL.
    #[arg(long, default_value = "2s")]
    forward_timeout: humantime::Duration,
    /// Client networks (CIDR or IP; repeatable or comma-separated) whose queries for names
    /// outside the domain are forwarded; others get REFUSED (names in the domain are
    /// answered to anyone). At most 256 forwards run at once (more: SERVFAIL) [default:
    /// 127.0.0.0/8, ::1/128, 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, fc00::/7,
    /// 169.254.0.0/16, fe80::/10].
    #[arg(long, value_delimiter = ',')]
    forward_allow: Vec<String>,
    /// Where VIP names (`<name>.marathon.l4lb.thisdcos.directory`) point: the load
    /// balancer's IPs [default: this server's own addresses].
    #[arg(long, value_delimiter = ',')]
    vip_address: Vec<IpAddr>,
}

/// `--with-dns` and its settings, for `orch master` and `orch agent`.
#[derive(Debug, Clone, clap::Args)]
pub struct EmbeddedDnsArgs {
    /// Also serve DNS from this process (see `orch dns`).
    #[arg(long)]
    with_dns: bool,
    /// DNS address, UDP and TCP, with --with-dns.
    #[arg(long, default_value = "0.0.0.0:53")]
    dns_listen: SocketAddr,
    /// Mesos-DNS HTTP API address, with --with-dns.
    #[arg(long, default_value = "0.0.0.0:8123")]
    dns_http_listen: SocketAddr,
    /// The domain served, with --with-dns.
    #[arg(long, default_value = "mesos")]
    dns_domain: String,
    /// TTL of every record, seconds, with --with-dns.
    #[arg(long, default_value_t = 5)]
    dns_ttl: u32,
    /// Upstream resolvers for names outside the domain, with --with-dns.
    #[arg(long, value_delimiter = ',')]
    dns_resolvers: Vec<String>,
    /// Forward names outside the domain, with --with-dns.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    dns_external_on: bool,
    /// Client networks forwarded for, with --with-dns (see `orch dns --forward-allow`)
    /// [default: loopback, private and link-local ranges].
    #[arg(long, value_delimiter = ',')]
    dns_forward_allow: Vec<String>,
    /// Only healthy tasks get records, with --with-dns.
    #[arg(long)]
    dns_healthy_only: bool,
    /// VIP names' addresses, with --with-dns.
    #[arg(long, value_delimiter = ',')]
    dns_vip_address: Vec<IpAddr>,
}

impl EmbeddedDnsArgs {
    /// The server's config with `masters`, or `None` without `--with-dns`.
    pub fn config(&self, masters: Vec<String>) -> anyhow::Result<Option<DnsConfig>> {
        if !self.with_dns {
            return Ok(None);
        }
        let zone = ZoneArgs {
            domain: self.dns_domain.clone(),
            ttl: self.dns_ttl,
            resolvers: self.dns_resolvers.clone(),
            external_on: self.dns_external_on,
            healthy_only: self.dns_healthy_only,
            forward_timeout: DnsConfig::default().forward_timeout.into(),
            forward_allow: self.dns_forward_allow.clone(),
            vip_address: self.dns_vip_address.clone(),
        };
        config(masters, self.dns_listen, self.dns_http_listen, &zone).map(Some)
    }
}

fn config(
    masters: Vec<String>,
    listen: SocketAddr,
    http_listen: SocketAddr,
    zone: &ZoneArgs,
) -> anyhow::Result<DnsConfig> {
    let mut resolvers = zone
        .resolvers
        .iter()
        .map(|text| orch_dns::parse_resolver(text))
        .collect::<Result<Vec<_>, _>>()?;
    if resolvers.is_empty() && zone.external_on {
        resolvers = system_resolvers();
        resolvers.retain(|resolver| *resolver != listen);
    }
    let forward_allow = if zone.forward_allow.is_empty() {
        orch_dns::default_forward_allow()
    } else {
        zone.forward_allow
            .iter()
            .map(|text| orch_dns::parse_network(text))
            .collect::<Result<Vec<_>, _>>()?
    };
    Ok(DnsConfig {
        masters,
        listen,
        http_listen: Some(http_listen),
        domain: zone.domain.clone(),
        ttl: zone.ttl,
        resolvers,
        external_on: zone.external_on,
        healthy_only: zone.healthy_only,
        forward_timeout: zone.forward_timeout.into(),
        forward_allow,
        vip_addresses: zone.vip_address.clone(),
        ..DnsConfig::default()
    })
}

/// The nameservers of /etc/resolv.conf (Mesos-DNS's fallback when `resolvers` is empty).
fn system_resolvers() -> Vec<SocketAddr> {
    let text = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    text.lines()
        .filter_map(|line| line.trim().strip_prefix("nameserver"))
        .filter_map(|rest| orch_dns::parse_resolver(rest.trim()).ok())
        .collect()
}

/// Runs `orch dns` until SIGTERM/SIGINT.
pub async fn run(args: DnsArgs, credentials: &super::client::Credentials) -> anyhow::Result<()> {
    let config = config(args.masters, args.listen, args.http_listen, &args.zone)?;
    let listeners = orch_dns::Listeners::bind(&config)
        .await
        .context("cannot start the DNS server")?;
    let snapshots = orch_discovery::from_masters(config.masters.clone(), credentials.feed()?);
    orch_dns::run(config, listeners, snapshots, super::shutdown_signal())
        .await
        .context("the DNS server failed")
}

/// Starts the embedded server of `--with-dns` on `snapshots`; it stops with `shutdown`.
pub async fn start_embedded(
    config: DnsConfig,
    snapshots: tokio::sync::watch::Receiver<std::sync::Arc<orch_core::state::Snapshot>>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let listeners = orch_dns::Listeners::bind(&config)
        .await
        .context("cannot start the DNS server (--with-dns)")?;
    tokio::spawn(async move {
        if let Err(error) = orch_dns::run(config, listeners, snapshots, shutdown).await {
            tracing::error!(
                error = &error as &dyn std::error::Error,
                "the DNS server failed"
            );
        }
    });
    Ok(())
}

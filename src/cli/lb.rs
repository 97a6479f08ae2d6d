//! `orch lb`: the marathon-lb-compatible load balancer fed by the masters' snapshot stream;
//! and the same load balancer inside a master or agent (`--with-lb` and the `--lb-*` flags).

use anyhow::Context;
use orch_lb::{HaproxyMode, LbConfig, Limits, RouteConfig};
use std::net::IpAddr;
use std::path::PathBuf;

/// Flags of `orch lb`, marathon-lb's names where it has them.
#[derive(Debug, clap::Args)]
pub struct LbArgs {
    /// Every master's host:port, comma-separated; routes follow whichever answers.
    #[arg(long, value_delimiter = ',', required = true)]
    masters: Vec<String>,
    /// The HAPROXY_GROUPs served, comma-separated; `*` serves every app.
    #[arg(long, value_delimiter = ',', default_value = "external")]
    group: Vec<String>,
    /// Where every port binds unless an app's HAPROXY_{n}_BIND_ADDR says otherwise.
    #[arg(long, default_value = "0.0.0.0")]
    bind_addr: IpAddr,
    /// Host/path routing port (HAPROXY_{n}_VHOST, HAPROXY_{n}_PATH); 0 = off.
    #[arg(long, default_value_t = 80)]
    http_port: u16,
    /// The same over TLS, certificate by SNI; 0 = off.
    #[arg(long, default_value_t = 443)]
    https_port: u16,
    /// X-Marathon-App-Id routing port; 0 = off.
    #[arg(long, default_value_t = 9091)]
    app_id_port: u16,
    /// Stats and control: /haproxy?stats, /metrics, /_haproxy_health_check,
    /// /_haproxy_getconfig, /_mlb_signal/hup; 0 = off.
    #[arg(long, default_value_t = 9090)]
    stats_port: u16,
    /// Serve only tasks whose health checks pass (apps without checks: every running task).
    #[arg(long)]
    health_check: bool,
    /// Expose only ports labelled HAPROXY_{n}_ENABLED=true.
    #[arg(long)]
    strict_mode: bool,
    /// PEM files (chain and key) for the HTTPS port, comma-separated; the first is the
    /// default [default: a self-signed certificate made at start].
    #[arg(long, value_delimiter = ',')]
    ssl_certs: Vec<PathBuf>,
    /// HAProxy mode: write this haproxy.cfg (checked with `haproxy -c`) instead of proxying.
    #[arg(long, requires = "haproxy_reload")]
    haproxy_config: Option<PathBuf>,
    /// HAProxy mode: the shell command that reloads HAProxy after the config changed.
    #[arg(long, requires = "haproxy_config")]
    haproxy_reload: Option<String>,
    /// HAProxy mode: the haproxy binary for `haproxy -c`.
    #[arg(long, default_value = "haproxy")]
    haproxy_bin: PathBuf,
    #[command(flatten)]
    limits: LimitArgs,
}

/// Timeouts and limits, HAProxy's names and defaults.
#[derive(Debug, Clone, clap::Args)]
pub struct LimitArgs {
    /// Connecting to a server (`timeout connect`).
    #[arg(long, default_value = "3s")]
    timeout_connect: humantime::Duration,
    /// A silent client is cut (`timeout client`).
    #[arg(long, default_value = "30s")]
    timeout_client: humantime::Duration,
    /// A silent server is cut, 504 on http (`timeout server`).
    #[arg(long, default_value = "30s")]
    timeout_server: humantime::Duration,
    /// A request head must arrive within this, else 408 (`timeout http-request`).
    #[arg(long, default_value = "15s")]
    timeout_http_request: humantime::Duration,
    /// An idle keep-alive client connection is closed (`timeout http-keep-alive`).
    #[arg(long, default_value = "1s")]
    timeout_http_keep_alive: humantime::Duration,
    /// The largest request head accepted, bytes (431 beyond it).
    #[arg(long, default_value_t = 16 * 1024)]
    max_header_bytes: usize,
    /// Client connections at once across all ports (`maxconn`).
    #[arg(long, default_value_t = 50_000)]
    maxconn: usize,
    /// Other servers tried when connecting fails (idempotent requests and tcp).
    #[arg(long, default_value_t = 3)]
    retries: u32,
}

impl LimitArgs {
    fn limits(&self) -> Limits {
        Limits {
            connect_timeout: self.timeout_connect.into(),
            client_timeout: self.timeout_client.into(),
            server_timeout: self.timeout_server.into(),
            http_request_timeout: self.timeout_http_request.into(),
            keep_alive_timeout: self.timeout_http_keep_alive.into(),
            max_header_bytes: self.max_header_bytes,
            max_connections: self.maxconn,
            retries: self.retries,
        }
    }
}

/// `--with-lb` and its settings, for `orch master` and `orch agent`.
#[derive(Debug, Clone, clap::Args)]
pub struct EmbeddedLbArgs {
    /// Also run a load balancer in this process (see `orch lb`).
    #[arg(long)]
    with_lb: bool,
    /// The HAPROXY_GROUPs served, with --with-lb.
    #[arg(long, value_delimiter = ',', default_value = "external")]
    lb_group: Vec<String>,
    /// Where its ports bind, with --with-lb.
    #[arg(long, default_value = "0.0.0.0")]
    lb_bind_addr: IpAddr,
    /// Host/path routing port, with --with-lb; 0 = off.
    #[arg(long, default_value_t = 80)]
    lb_http_port: u16,
    /// HTTPS port, with --with-lb; 0 = off.
    #[arg(long, default_value_t = 443)]
    lb_https_port: u16,
    /// X-Marathon-App-Id routing port, with --with-lb; 0 = off.
    #[arg(long, default_value_t = 9091)]
    lb_app_id_port: u16,
    /// Stats and control port, with --with-lb; 0 = off.
    #[arg(long, default_value_t = 9090)]
    lb_stats_port: u16,
    /// Serve only healthy tasks, with --with-lb.
    #[arg(long)]
    lb_health_check: bool,
    /// Expose only ports labelled HAPROXY_{n}_ENABLED=true, with --with-lb.
    #[arg(long)]
    lb_strict_mode: bool,
    /// PEM files for the HTTPS port, with --with-lb.
    #[arg(long, value_delimiter = ',')]
    lb_ssl_certs: Vec<PathBuf>,
}

impl EmbeddedLbArgs {
    /// The load balancer's config with `masters`, or `None` without `--with-lb`.
    pub fn config(&self, masters: Vec<String>) -> Option<LbConfig> {
        self.with_lb.then(|| LbConfig {
            masters,
            routes: RouteConfig {
                groups: self.lb_group.clone(),
                strict_mode: self.lb_strict_mode,
                health_check: self.lb_health_check,
            },
            bind_addr: self.lb_bind_addr,
            http_port: self.lb_http_port,
            https_port: self.lb_https_port,
            app_id_port: self.lb_app_id_port,
            stats_port: self.lb_stats_port,
            ssl_certs: self.lb_ssl_certs.clone(),
            limits: Limits::default(),
            haproxy: None,
        })
    }
}

fn config(args: LbArgs) -> LbConfig {
    LbConfig {
        masters: args.masters,
        routes: RouteConfig {
            groups: args.group,
            strict_mode: args.strict_mode,
            health_check: args.health_check,
        },
        bind_addr: args.bind_addr,
        http_port: args.http_port,
        https_port: args.https_port,
        app_id_port: args.app_id_port,
        stats_port: args.stats_port,
        ssl_certs: args.ssl_certs,
        limits: args.limits.limits(),
        haproxy: args.haproxy_config.zip(args.haproxy_reload).map(
            |(config_path, reload_command)| HaproxyMode {
                config_path,
                reload_command,
                haproxy_binary: args.haproxy_bin,
            },
        ),
    }
}

/// Runs `orch lb` until SIGTERM/SIGINT.
pub async fn run(args: LbArgs, credentials: &super::client::Credentials) -> anyhow::Result<()> {
    let config = config(args);
    let bound = orch_lb::Listeners::bind(&config)
        .await
        .context("cannot start the load balancer")?;
    let snapshots = orch_discovery::from_masters(config.masters.clone(), credentials.feed()?);
    orch_lb::run(config, bound, snapshots, super::shutdown_signal())
        .await
        .context("the load balancer failed")
}

/// Starts the embedded load balancer of `--with-lb` on `snapshots`; it stops with `shutdown`.
pub async fn start_embedded(
    config: LbConfig,
    snapshots: tokio::sync::watch::Receiver<std::sync::Arc<orch_core::state::Snapshot>>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let bound = orch_lb::Listeners::bind(&config)
        .await
        .context("cannot start the load balancer (--with-lb)")?;
    tokio::spawn(async move {
        if let Err(error) = orch_lb::run(config, bound, snapshots, shutdown).await {
            tracing::error!(
                error = &error as &dyn std::error::Error,
                "the load balancer failed"
            );
        }
    });
    Ok(())
}

//! `orch lb` processes.

use std::time::{Duration, Instant};

use super::*;

/// An `orch lb` process of a test cluster, on free ports of 127.0.0.1.
#[derive(Debug)]
pub struct LbProcess {
    /// The process (killed on drop).
    pub process: Master,
    /// Host/path routing port.
    pub http: u16,
    /// TLS port.
    pub https: u16,
    /// X-Marathon-App-Id port.
    pub app_id: u16,
    /// Stats and control port.
    pub stats: u16,
}

impl LbProcess {
    /// Starts `orch lb --masters <masters> --bind-addr 127.0.0.1 --http-port .. --https-port
    /// .. --app-id-port .. --stats-port .. <extra>`, logging into `cluster`'s dir, and waits
    /// until its stats port answers.
    pub async fn start(cluster: &Cluster, masters: &[String], extra: &[&str]) -> Self {
        let (http, https, app_id, stats) = (free_port(), free_port(), free_port(), free_port());
        let mut args = vec![
            "--masters".to_owned(),
            masters.join(","),
            "--bind-addr".into(),
            "127.0.0.1".into(),
        ];
        for (flag, port) in [
            ("--http-port", http),
            ("--https-port", https),
            ("--app-id-port", app_id),
            ("--stats-port", stats),
        ] {
            args.extend([flag.to_owned(), port.to_string()]);
        }
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        let name = format!("lb-{stats}");
        let mut process = Master::new(
            cluster.dir(),
            &name,
            &format!("127.0.0.1:{stats}"),
            cluster.dir().join(&name),
            args,
        );
        process.subcommand = "lb".into();
        process.start();
        let lb = Self {
            process,
            http,
            https,
            app_id,
            stats,
        };
        let health = format!("http://127.0.0.1:{stats}/_haproxy_health_check");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !cluster
            .http
            .send(reqwest::Method::GET, &health, None, None)
            .await
            .is_ok_and(|r| r.ok())
        {
            assert!(
                Instant::now() < deadline,
                "orch lb never answered:\n{}",
                lb.process.logs(30)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        lb
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(port: u16) -> String {
        format!("http://127.0.0.1:{port}")
    }
}

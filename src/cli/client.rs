//! The HTTP client the client commands share: base URL, JSON in and out, error bodies shown;
//! and where it points ([`target`]): `--master`/`--ca`/`--token` (or their environment
//! variables), else the cluster of `.orch/` in the current directory.

use anyhow::{bail, Context};
use serde_json::Value;
use std::time::Duration;

/// How client commands print.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// Aligned columns.
    Table,
    /// The API's JSON, pretty-printed.
    Json,
}

/// A client of one master's API.
#[derive(Debug)]
pub struct Client {
    base: String,
    http: reqwest::Client,
    /// How results are printed.
    pub output: Output,
}

/// How a client reaches a cluster with TLS: its CA, and the token it sends.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    /// The cluster CA (PEM): the master's certificate is verified against it, and the
    /// scheme defaults to https.
    pub ca: Option<std::path::PathBuf>,
    /// The token, sent as `Authorization: Bearer <token>`.
    pub token: Option<String>,
}

impl Credentials {
    /// How `orch dns` and `orch lb` follow the masters' snapshots: HTTPS verified with the
    /// CA and sending the token, else plain HTTP.
    pub fn feed(&self) -> anyhow::Result<orch_discovery::MasterAccess> {
        Ok(match &self.ca {
            Some(ca) => {
                let tls = orch_pki::tls::trusting(ca)
                    .with_context(|| format!("cannot use the CA {}", ca.display()))?;
                orch_discovery::MasterAccess::tls(tls, self.token.as_deref())?
            }
            None => orch_discovery::MasterAccess::plaintext()?,
        })
    }
}

/// The default master when neither a flag, the environment nor `.orch/` names one.
pub const DEFAULT_MASTER: &str = "http://127.0.0.1:8080";

/// The master and credentials of a client command: what the flags and environment say, the
/// rest from the cluster in `.orch/` of the current directory (`cluster` names it when there
/// are several; see [`super::cluster_dir`]).
pub fn target(
    master: Option<String>,
    ca: Option<std::path::PathBuf>,
    token: Option<String>,
    cluster: Option<&str>,
) -> anyhow::Result<(String, Credentials)> {
    use super::cluster_dir::{choose, found, several, Choice, Found};
    if let (Some(master), Some(_), Some(_)) = (&master, &ca, &token) {
        return Ok((master.clone(), Credentials { ca, token }));
    }
    let workdir = std::env::current_dir().context("cannot read the current directory")?;
    let found = match choose(&workdir, cluster)? {
        Choice::One(dir) => found(&dir)?,
        Choice::None => Found::default(),
        // A master named by hand needs no cluster of .orch/.
        Choice::Several(_) if master.is_some() => Found::default(),
        Choice::Several(names) => bail!("{}", several(&names)),
    };
    Ok(fill(master, ca, token, found))
}

/// What the flags and environment left out, from `found` (see [`target`]). The cluster's
/// token goes only where the cluster's own CA verifies the master: never with another CA
/// given by hand, never over plaintext.
fn fill(
    master: Option<String>,
    ca: Option<std::path::PathBuf>,
    token: Option<String>,
    found: super::cluster_dir::Found,
) -> (String, Credentials) {
    let ca_from_dir = ca.is_none() && found.ca.is_some();
    let ca = ca.or(found.ca);
    let master = master
        .or(found.master)
        .unwrap_or_else(|| DEFAULT_MASTER.to_owned());
    let https = master.starts_with("https://") || (!master.contains("://") && ca.is_some());
    let token = token.or(found.token.filter(|_| ca_from_dir && https));
    (master, Credentials { ca, token })
}

impl Client {
    /// A client of the master at `base` (`http://host:port`; the scheme may be left out:
    /// https with a CA, else http).
    pub fn new(base: &str, output: Output, credentials: &Credentials) -> anyhow::Result<Self> {
        let base = base.trim_end_matches('/');
        let base = match (base.contains("://"), &credentials.ca) {
            (true, _) => base.to_owned(),
            (false, Some(_)) => format!("https://{base}"),
            (false, None) => format!("http://{base}"),
        };
        let mut http = reqwest::Client::builder().timeout(Duration::from_secs(90));
        if let Some(ca) = &credentials.ca {
            let tls = orch_pki::tls::trusting(ca)
                .with_context(|| format!("cannot use the CA {}", ca.display()))?;
            http = http.tls_backend_preconfigured(tls);
        }
        if let Some(token) = &credentials.token {
            let headers =
                orch_pki::tls::bearer(token).context("the token is not a valid header value")?;
            http = http.default_headers(headers);
        }
        Ok(Self {
            base,
            http: http.build()?,
            output,
        })
    }

    /// Sends a request and returns the JSON answer, or an error quoting the API's message.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.base);
        let mut request = self.http.request(method.clone(), &url);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("cannot reach {url}"))?;
        let status = response.status();
        let text = response
            .text()
            .await
            .with_context(|| format!("reading the answer of {method} {url}"))?;
        let json: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if !status.is_success() {
            let message = json
                .get("message")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .unwrap_or(json.to_string());
            bail!("{method} {url} answered {status}: {message}");
        }
        Ok(json)
    }

    /// Prints `json` pretty when the output is JSON; otherwise calls `table`.
    pub fn print(&self, json: &Value, table: impl FnOnce(&Value) -> String) {
        match self.output {
            Output::Json => println!("{}", serde_json::to_string_pretty(json).unwrap_or_default()),
            Output::Table => print!("{}", table(json)),
        }
    }
}

/// Formats rows as left-aligned columns separated by two spaces.
pub fn columns(rows: &[Vec<String>]) -> String {
    let widths: Vec<usize> = (0..rows.first().map_or(0, Vec::len))
        .map(|column| {
            rows.iter()
                .map(|row| row.get(column).map_or(0, String::len))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// A JSON value as a table cell: strings bare, null as `-`.
pub fn cell(value: &Value) -> String {
    match value {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Reads an app or group definition from a JSON or YAML file (`-` = standard input).
pub fn read_definition(path: &std::path::Path) -> anyhow::Result<Value> {
    let text = if path == std::path::Path::new("-") {
        std::io::read_to_string(std::io::stdin()).context("reading standard input")?
    } else {
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?
    };
    serde_yaml_ng::from_str(&text)
        .with_context(|| format!("{} is neither JSON nor YAML", path.display()))
}

/// `/prod/web` or `prod/web` → `prod/web`, for paths like `/v2/apps/{id}`.
pub fn id_path(id: &str) -> &str {
    id.trim_start_matches('/')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::cluster_dir::Found;

    fn found() -> Found {
        Found {
            ca: Some("/w/.orch/c/pki/ca.pem".into()),
            token: Some("secret".to_owned()),
            master: Some("https://10.0.0.1:8080".to_owned()),
        }
    }

    #[test]
    fn the_directory_fills_in_and_its_token_goes_only_with_its_ca_over_https() {
        let (master, credentials) = fill(None, None, None, found());
        assert_eq!(master, "https://10.0.0.1:8080");
        assert_eq!(credentials.token.as_deref(), Some("secret"));
        // Flags first.
        let (master, credentials) = fill(
            Some("https://10.0.0.2:8080".to_owned()),
            None,
            Some("mine".to_owned()),
            found(),
        );
        assert_eq!(master, "https://10.0.0.2:8080");
        assert_eq!(credentials.token.as_deref(), Some("mine"));
        assert!(credentials.ca.is_some());
        // Another CA by hand, or plaintext: the cluster's token stays here.
        let (_, credentials) = fill(None, Some("/other/ca.pem".into()), None, found());
        assert_eq!(credentials.token, None);
        let (_, credentials) = fill(
            Some("http://127.0.0.1:8080".to_owned()),
            None,
            None,
            found(),
        );
        assert_eq!(credentials.token, None);
        // Nothing here: the loopback default.
        let (master, credentials) = fill(None, None, None, Found::default());
        assert_eq!(master, DEFAULT_MASTER);
        assert!(credentials.ca.is_none() && credentials.token.is_none());
    }
}

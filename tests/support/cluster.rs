//! Clusters of masters and agents, app definitions, and views of the cluster.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};
use serde_json::{json, Value};

use super::*;

/// An app definition of roughly `size` bytes of JSON (padded through a label), with
/// `instances: 0` so nothing needs to be scheduled, and no ports (so tens of thousands of
/// them fit in the 10000-20000 service port range).
pub fn app_body(id: &str, size: usize) -> Value {
    let mut app = json!({
        "id": id,
        "cmd": "sleep 3600",
        "cpus": 0.1,
        "mem": 32,
        "instances": 0,
        "portDefinitions": [],
        "env": {"MODE": "test"},
        "labels": {"owner": "orch-tests"}
    });
    let len = app.to_string().len();
    if size > len + 20 {
        app["labels"]["pad"] = Value::String("x".repeat(size - len - 20));
    }
    app
}

/// A small app definition.
pub fn app(id: &str) -> Value {
    app_body(id, 0)
}

/// What `GET /v1/cluster` on one master said.
#[derive(Debug, Clone)]
pub struct View {
    /// Index (into [`Cluster::masters`]) of the master asked.
    pub from: usize,
    /// The raw JSON.
    pub json: Value,
}

impl View {
    /// `leader_address`, if any.
    pub fn leader_address(&self) -> Option<String> {
        self.json
            .get("leader_address")
            .and_then(Value::as_str)
            .map(str::to_string)
    }

    /// Member count.
    pub fn member_count(&self) -> usize {
        self.json
            .get("members")
            .and_then(Value::as_array)
            .map_or(0, Vec::len)
    }

    /// `(address, role)` of every member.
    pub fn roles(&self) -> Vec<(String, String)> {
        self.json
            .get("members")
            .and_then(Value::as_array)
            .map(|ms| {
                ms.iter()
                    .map(|m| {
                        (
                            m.get("address")
                                .and_then(Value::as_str)
                                .unwrap_or("?")
                                .to_string(),
                            m.get("role")
                                .and_then(Value::as_str)
                                .unwrap_or("?")
                                .to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// A set of masters sharing one temp dir. Kills every process on drop; prints logs on panic.
#[derive(Debug)]
pub struct Cluster {
    /// The masters, in `--masters` order for clusters made by [`Cluster::start`].
    pub masters: Vec<Master>,
    /// Agents added with [`Cluster::add_agent`].
    pub agents: Vec<Master>,
    /// HTTP client.
    pub http: Http,
    /// `http`, or `https` for masters with TLS (then `http` must trust their CA).
    pub scheme: &'static str,
    /// Environment variables for masters added from now on.
    pub master_env: Vec<(String, String)>,
    dir: Option<tempfile::TempDir>,
}

impl Default for Cluster {
    fn default() -> Self {
        Cluster::empty()
    }
}

impl Cluster {
    /// No masters yet; a fresh temp dir.
    pub fn empty() -> Cluster {
        let dir = tempfile::Builder::new()
            .prefix("orch-it-")
            .tempdir()
            .expect("create temp dir");
        Cluster {
            masters: Vec::new(),
            agents: Vec::new(),
            http: Http::new(),
            scheme: "http",
            master_env: Vec::new(),
            dir: Some(dir),
        }
    }

    /// The temp dir holding data dirs and logs.
    pub fn dir(&self) -> &Path {
        self.dir.as_ref().expect("temp dir").path()
    }

    /// Starts `n` masters that form one cluster (`--masters` lists all of them; for `n == 1`
    /// the flag is omitted). `extra` flags are appended to every master.
    pub fn start(n: usize, extra: &[&str]) -> Cluster {
        let mut c = Cluster::empty();
        let addrs: Vec<String> = (0..n).map(|_| free_addr()).collect();
        for addr in &addrs {
            let mut args = vec![
                "--listen".to_string(),
                addr.clone(),
                "--advertise".to_string(),
                addr.clone(),
            ];
            if n > 1 {
                args.push("--masters".into());
                args.push(addrs.join(","));
            }
            args.extend(extra.iter().map(|s| s.to_string()));
            c.add(addr, args);
        }
        c
    }

    /// Adds and starts a master at `addr` with exactly `args` plus `--data-dir <own dir>`
    /// (appended unless `args` already has `--data-dir` or `--config`). Returns its index.
    pub fn add(&mut self, addr: &str, args: Vec<String>) -> usize {
        self.add_in(Vec::new(), addr, args)
    }

    /// [`Cluster::add`], the process running under `prefix` (e.g. in a network namespace).
    pub fn add_in(&mut self, prefix: Vec<String>, addr: &str, mut args: Vec<String>) -> usize {
        let i = self.masters.len();
        let name = format!("master-{}", i + 1);
        let data_dir = self.dir().join(&name).join("data");
        if !args.iter().any(|a| a == "--data-dir" || a == "--config") {
            args.push("--data-dir".into());
            args.push(data_dir.display().to_string());
        }
        let mut m = Master::new(self.dir(), &name, addr, data_dir, args);
        m.env = self.master_env.clone();
        m.prefix = prefix;
        m.start();
        self.masters.push(m);
        i
    }

    /// Adds and starts agent `agent-<n>` following every master, with its own work dir and
    /// hostname, `--advertise-ip 127.0.0.1`, and `extra` flags (e.g. `--resources`,
    /// `--containerizers`). Returns its index in [`Cluster::agents`].
    pub fn add_agent(&mut self, extra: &[&str]) -> usize {
        let i = self.agents.len();
        let name = format!("agent-{}", i + 1);
        let addr = free_addr();
        let work_dir = self.dir().join(&name).join("work");
        let masters: Vec<&str> = self.masters.iter().map(|m| m.addr.as_str()).collect();
        let mut args: Vec<String> = vec![
            "--masters".into(),
            masters.join(","),
            "--listen".into(),
            addr.clone(),
            "--work-dir".into(),
            work_dir.display().to_string(),
            "--hostname".into(),
            name.clone(),
            "--advertise-ip".into(),
            "127.0.0.1".into(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let mut agent = Master::agent(self.dir(), &name, &addr, work_dir, args);
        agent.start();
        self.agents.push(agent);
        i
    }

    /// Adds and starts an agent under `prefix` (e.g. in a network namespace) listening and
    /// advertising `ip`, following every master (`--insecure`: plain HTTP off loopback).
    pub fn add_agent_in(&mut self, prefix: Vec<String>, ip: &str, extra: &[&str]) -> usize {
        let i = self.agents.len();
        let name = format!("agent-{}", i + 1);
        let addr = format!("{ip}:5051");
        let work_dir = self.dir().join(&name).join("work");
        let masters: Vec<&str> = self.masters.iter().map(|m| m.addr.as_str()).collect();
        let mut args: Vec<String> = [
            "--masters",
            &masters.join(","),
            "--listen",
            &addr,
            "--work-dir",
            &work_dir.display().to_string(),
            "--hostname",
            &name,
            "--advertise-ip",
            ip,
            "--insecure",
        ]
        .map(str::to_owned)
        .to_vec();
        args.extend(extra.iter().map(|s| s.to_string()));
        let mut agent = Master::agent(self.dir(), &name, &addr, work_dir, args);
        agent.prefix = prefix;
        agent.start();
        self.agents.push(agent);
        i
    }

    /// Waits until `n` agents are registered and reachable (per `GET /v1/agents` on master `i`).
    pub async fn wait_for_agents(&mut self, i: usize, n: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let url = format!("{}/v1/agents", self.url(i));
            let r = match self.http.send(reqwest::Method::GET, &url, None, None).await {
                Ok(r) => r,
                Err(error) => {
                    assert!(Instant::now() < deadline, "{url}: {error:#}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let reachable = r.json()["agents"].as_array().map_or(0, |a| {
                a.iter().filter(|a| a["reachable"] == json!(true)).count()
            });
            if r.status == 200 && reachable >= n {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{n} agents did not register within {timeout:?} (last answer {} {})",
                r.status,
                r.body
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `http://addr` (or `https://`, see [`Cluster::scheme`]) of master `i`.
    pub fn url(&self, i: usize) -> String {
        format!("{}://{}", self.scheme, self.masters[i].addr)
    }

    /// Index of the master whose address is `addr`.
    pub fn index_of(&self, addr: &str) -> Option<usize> {
        self.masters.iter().position(|m| m.addr == addr)
    }

    /// Indices of masters whose process is alive.
    pub fn running(&mut self) -> Vec<usize> {
        (0..self.masters.len())
            .filter(|&i| self.masters[i].is_running())
            .collect()
    }

    /// Logs of every master and agent.
    pub fn all_logs(&self, n: usize) -> String {
        self.masters
            .iter()
            .chain(&self.agents)
            .map(|m| m.logs(n))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// `GET /v1/cluster` on master `i`.
    pub async fn view(&self, i: usize) -> anyhow::Result<View> {
        let r = self
            .http
            .send(
                reqwest::Method::GET,
                &format!("{}/v1/cluster", self.url(i)),
                None,
                Some(Duration::from_secs(2)),
            )
            .await?;
        if r.status != 200 {
            bail!(
                "GET /v1/cluster on {} answered {}: {}",
                self.masters[i].addr,
                r.status,
                r.body
            );
        }
        let json = serde_json::from_str(&r.body)
            .with_context(|| format!("/v1/cluster body: {}", r.body))?;
        Ok(View { from: i, json })
    }

    /// Waits until every master in `among` is up and reports the same leader, which is one of
    /// `among`, with `members` members (when given) and no learner. Returns the leader's index.
    pub async fn wait_for_leader_among(
        &mut self,
        among: &[usize],
        members: Option<usize>,
        timeout: Duration,
    ) -> usize {
        let deadline = Instant::now() + timeout;
        let mut last: Vec<String> = Vec::new();
        loop {
            for &i in among {
                self.masters[i].assert_running();
            }
            match self.leader_agreement(among, members).await {
                Ok(i) => return i,
                Err(e) => {
                    last.push(format!("{e:#}"));
                    if last.len() > 3 {
                        last.remove(0);
                    }
                }
            }
            if Instant::now() >= deadline {
                panic!(
                    "no agreed leader among {:?} (members {members:?}) within {timeout:?}; last observations:\n{}\n{}",
                    among.iter().map(|&i| self.masters[i].addr.clone()).collect::<Vec<_>>(),
                    last.join("\n"),
                    self.all_logs(40)
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits for a leader agreed by all running masters, with all of them as members.
    pub async fn wait_for_leader(&mut self, timeout: Duration) -> usize {
        let among = self.running();
        let n = self.masters.len();
        self.wait_for_leader_among(&among, Some(n), timeout).await
    }

    async fn leader_agreement(
        &self,
        among: &[usize],
        members: Option<usize>,
    ) -> anyhow::Result<usize> {
        let mut leader: Option<String> = None;
        for &i in among {
            let v = self.view(i).await?;
            let Some(addr) = v.leader_address() else {
                bail!("{} reports no leader: {}", self.masters[i].addr, v.json);
            };
            if let Some(l) = &leader {
                if *l != addr {
                    bail!(
                        "{} reports leader {addr}, another master reports {l}",
                        self.masters[i].addr
                    );
                }
            }
            if let Some(m) = members {
                if v.member_count() != m {
                    bail!(
                        "{} reports {} members, want {m}: {}",
                        self.masters[i].addr,
                        v.member_count(),
                        v.json
                    );
                }
            }
            if v.roles().iter().any(|(_, r)| r == "learner") {
                bail!(
                    "{} still reports a learner: {}",
                    self.masters[i].addr,
                    v.json
                );
            }
            leader = Some(addr);
        }
        let addr = leader.ok_or_else(|| anyhow!("no masters to ask"))?;
        let idx = self
            .index_of(&addr)
            .ok_or_else(|| anyhow!("leader {addr} is not one of our masters"))?;
        if !among.contains(&idx) {
            bail!("leader {addr} is not among the masters asked");
        }
        Ok(idx)
    }

    /// `GET /metrics` on master `i`, parsed.
    pub async fn metrics(&self, i: usize) -> anyhow::Result<BTreeMap<String, f64>> {
        let r = self
            .http
            .send(
                reqwest::Method::GET,
                &format!("{}/metrics", self.url(i)),
                None,
                Some(Duration::from_secs(2)),
            )
            .await?;
        if r.status != 200 {
            bail!(
                "GET /metrics on {} answered {}",
                self.masters[i].addr,
                r.status
            );
        }
        Ok(parse_metrics(&r.body))
    }

    /// One metric value on master `i`.
    pub async fn metric(&self, i: usize, name: &str) -> anyhow::Result<f64> {
        let m = self.metrics(i).await?;
        m.get(name)
            .copied()
            .ok_or_else(|| anyhow!("metric {name} missing on {}", self.masters[i].addr))
    }

    /// Waits until master `i`'s `orch_raft_applied_index` is at least `index`.
    pub async fn wait_applied(&mut self, i: usize, index: f64, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            self.masters[i].assert_running();
            let last = match self.metric(i, "orch_raft_applied_index").await {
                Ok(v) if v >= index => return,
                Ok(v) => format!("applied index {v}"),
                Err(e) => format!("{e:#}"),
            };
            if Instant::now() >= deadline {
                panic!(
                    "{} did not reach applied index {index} within {timeout:?} (last: {last})\n{}",
                    self.masters[i].addr,
                    self.all_logs(40)
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until every master in `among` has applied the leader's current commit index.
    pub async fn wait_all_caught_up(&mut self, leader: usize, among: &[usize], timeout: Duration) {
        let commit = self
            .metric(leader, "orch_raft_commit_index")
            .await
            .unwrap_or_else(|e| panic!("read leader commit index: {e:#}"));
        for &i in among {
            self.wait_applied(i, commit, timeout).await;
        }
    }

    /// One line per master: its Raft gauges (term, commit, applied, is_leader), for messages.
    pub async fn raft_summary(&self) -> String {
        let mut out = Vec::new();
        for i in 0..self.masters.len() {
            let line = match self.metrics(i).await {
                Ok(m) => {
                    let g = |k: &str| m.get(k).map_or("?".to_string(), |v| v.to_string());
                    format!(
                        "{} {}: term {} commit {} applied {} is_leader {}",
                        self.masters[i].name,
                        self.masters[i].addr,
                        g("orch_raft_term"),
                        g("orch_raft_commit_index"),
                        g("orch_raft_applied_index"),
                        g("orch_raft_is_leader")
                    )
                }
                Err(e) => format!("{} {}: {e:#}", self.masters[i].name, self.masters[i].addr),
            };
            out.push(line);
        }
        out.join("\n")
    }

    /// POST an app through master `i`; panics unless 201.
    pub async fn create_app(&self, i: usize, id: &str) -> Resp {
        let r = self
            .http
            .post(&format!("{}/v2/apps", self.url(i)), &app(id))
            .await;
        assert_eq!(
            r.status, 201,
            "POST /v2/apps {id} via {}: {}",
            self.masters[i].addr, r.body
        );
        r
    }

    /// `GET /v2/apps` through master `i`: the set of app ids.
    pub async fn app_ids(&self, i: usize) -> Vec<String> {
        let r = self.http.get(&format!("{}/v2/apps", self.url(i))).await;
        assert_eq!(
            r.status, 200,
            "GET /v2/apps via {}: {}",
            self.masters[i].addr, r.body
        );
        let mut ids: Vec<String> = r.json()["apps"]
            .as_array()
            .unwrap_or_else(|| panic!("GET /v2/apps has no apps array: {}", r.body))
            .iter()
            .map(|a| {
                a["id"]
                    .as_str()
                    .unwrap_or_else(|| panic!("app without id: {a}"))
                    .to_string()
            })
            .collect();
        ids.sort();
        ids
    }

    /// Asserts that `GET /v2/apps` through master `i` lists every id in `want` (ids with '/').
    pub async fn assert_has_apps(&self, i: usize, want: &[String]) {
        let have = self.app_ids(i).await;
        let missing: Vec<&String> = want.iter().filter(|w| !have.contains(w)).collect();
        assert!(
            missing.is_empty(),
            "via {}: {} of {} apps missing: {:?} (have {} apps)",
            self.masters[i].addr,
            missing.len(),
            want.len(),
            missing,
            have.len()
        );
    }

    /// Starts a write (`PUT /v2/apps/<id>`) through `targets` in turn every 25 ms (each with
    /// a 3 s timeout, without waiting for earlier ones) until one is answered 2xx or `timeout`
    /// passes. Returns the time until the first success and the index of the master that
    /// answered it.
    pub async fn write_until_ok(
        &self,
        targets: &[usize],
        id: &str,
        timeout: Duration,
    ) -> Result<(Duration, usize), String> {
        let body = app(id).to_string();
        let path = id.trim_start_matches('/').to_string();
        let probes: Vec<(usize, String, String)> = targets
            .iter()
            .map(|&i| {
                (
                    i,
                    self.masters[i].addr.clone(),
                    format!("{}/v2/apps/{path}", self.url(i)),
                )
            })
            .collect();
        let http = self.http.clone();
        first_success(
            move |k| {
                let (i, addr, url) = probes[k % probes.len()].clone();
                let http = http.clone();
                let body = body.clone();
                async move {
                    let method = reqwest::Method::PUT;
                    match http
                        .send(method, &url, Some(body), Some(Duration::from_secs(3)))
                        .await
                    {
                        Ok(r) if r.ok() => Ok(i),
                        Ok(r) => Err(format!("{addr} answered {}: {}", r.status, r.body)),
                        Err(e) => Err(format!("{e:#}")),
                    }
                }
            },
            Duration::from_millis(25),
            timeout,
        )
        .await
    }
}

/// Starts `probe(k)` for k = 0, 1, 2, ... every `interval` without waiting for earlier probes,
/// until one returns `Ok` or `timeout` passes; returns the time from the call to the first
/// success and that probe's value. Probes still running when it returns are aborted.
pub async fn first_success<F, Fut, T>(
    mut probe: F,
    interval: Duration,
    timeout: Duration,
) -> Result<(Duration, T), String>
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = Result<T, String>> + Send + 'static,
    T: Send + 'static,
{
    let start = Instant::now();
    let deadline = tokio::time::Instant::from_std(start + timeout);
    let mut set = tokio::task::JoinSet::new();
    let mut next = tokio::time::Instant::from_std(start);
    let mut k = 0usize;
    let mut last = String::from("no probe finished");
    loop {
        if tokio::time::Instant::now() >= next {
            set.spawn(probe(k));
            k += 1;
            next += interval;
        }
        tokio::select! {
            Some(joined) = set.join_next(), if !set.is_empty() => match joined {
                Ok(Ok(v)) => return Ok((start.elapsed(), v)),
                Ok(Err(e)) => last = e,
                Err(e) => last = format!("probe task failed: {e}"),
            },
            _ = tokio::time::sleep_until(next) => {}
            _ = tokio::time::sleep_until(deadline) => {
                return Err(format!("no success within {timeout:?} ({k} tries); last: {last}"));
            }
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "\n===== orch test failed; logs from {} =====",
                self.dir().display()
            );
            eprintln!("{}", self.all_logs(80));
        }
        for m in self.masters.iter_mut().chain(&mut self.agents) {
            m.kill9();
        }
        kill_processes_under(self.dir());
        if std::env::var_os("ORCH_TEST_KEEP").is_some() {
            if let Some(d) = self.dir.take() {
                eprintln!("keeping {}", d.keep().display());
            }
        }
    }
}

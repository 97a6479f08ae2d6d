//! `orch up`, `orch up --plan` and `orch destroy` with the digital_ocean provider against
//! a FAKE of DigitalOcean's API (tests/support/fake_digitalocean.rs), run as a user runs
//! them: the real orch binary in a temp dir, the token in its environment.
//!
//! Each test has its own fake, its own droplet addresses (`127.61.<test>.N`) and its own
//! cluster name, so the tests run side by side.

#[path = "support/fake_digitalocean.rs"]
mod fake_digitalocean;
mod support;

use fake_digitalocean::{AccountKey, FakeDigitalOcean, FakeOptions, Seen, SshHosting};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};
use support::{describe_output, free_port, BIN};

/// Bound for one `orch` command.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);
/// Bound for a whole test.
const TEST_TIMEOUT: Duration = Duration::from_secs(300);
/// The token the fakes accept.
const TOKEN: &str = "dop_v1_fake_token_for_tests";
/// The droplets' SSH port.
const SSH_PORT: u16 = 2222;

/// Clusters that run nodes come up one at a time (two cores).
static CLUSTERS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A temp dir with `infra.yaml` naming a fake.
struct Setup {
    dir: tempfile::TempDir,
    cluster: String,
    fake: FakeDigitalOcean,
}

impl Setup {
    /// Cluster `cluster` with `agents` agents, droplets on `127.61.<net>.N` (without sshd).
    async fn new(cluster: &str, net: u8, agents: u32) -> Setup {
        Self::make(cluster, net, agents, false, "").await
    }

    /// [`Setup::new`] with `allow_from` (YAML flow list) in the `digital_ocean:` section.
    async fn allowing(cluster: &str, net: u8, allow_from: &str) -> Setup {
        Self::make(
            cluster,
            net,
            1,
            false,
            &format!("  allow_from: {allow_from}\n"),
        )
        .await
    }

    /// [`Setup::new`] with droplets that are SSH hosts (a real sshd each), reached with a
    /// client key registered as the account's key 512190.
    async fn with_ssh(cluster: &str, net: u8, agents: u32) -> Setup {
        Self::make(cluster, net, agents, true, "").await
    }

    /// [`Setup::with_ssh`] with droplets that also have a VPC address, `127.62.<net>.N`.
    async fn with_vpc(cluster: &str, net: u8, agents: u32) -> Setup {
        Self::make(cluster, net, agents, true, "vpc").await
    }

    async fn make(cluster: &str, net: u8, agents: u32, ssh: bool, more: &str) -> Setup {
        let dir = tempfile::Builder::new()
            .prefix("orch-do-")
            .tempdir()
            .expect("temp dir");
        let mut options = FakeOptions::new(TOKEN, &format!("127.61.{net}."));
        let more = if more == "vpc" {
            options.private_prefix = Some(format!("127.62.{net}."));
            ""
        } else {
            more
        };
        let mut extra = String::new();
        if ssh {
            let key = dir.path().join("client_key");
            let out = std::process::Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-C", "orch-do-test", "-f"])
                .arg(&key)
                .stdin(Stdio::null())
                .output()
                .expect("ssh-keygen");
            assert!(out.status.success(), "ssh-keygen: {out:?}");
            let public = std::fs::read_to_string(key.with_extension("pub")).expect("public key");
            options.account_keys = vec![AccountKey {
                id: 512190,
                fingerprint: "3b:16:bf:e4:8b:00:8b:b8:59:8c:a9:d3:f0:19:45:fa".to_owned(),
                public_key: public.trim().to_owned(),
            }];
            let root = dir.path().join("droplets");
            options.ssh = Some(SshHosting {
                port: SSH_PORT,
                root: root.clone(),
            });
            extra = format!(
                "  identity_file: client_key\n  install_dir: {}/{cluster}-{{machine}}/opt/orch\n",
                root.display()
            );
        }
        let fake = FakeDigitalOcean::start(options).await;
        let infra = format!(
            "cluster: {cluster}\n\
             provider: digital_ocean\n\
             masters: 1\n\
             agents: {agents}\n\
             api: 127.0.0.1:{api}\n\
             dns: {{enabled: false}}\n\
             lb: {{enabled: false}}\n\
             digital_ocean:\n  \
               region: nyc3\n  \
               size: s-1vcpu-2gb\n  \
               ssh_keys: [\"512190\"]\n  \
               api_url: {url}\n  \
               ssh_port: {SSH_PORT}\n{extra}{more}",
            api = free_port(),
            url = fake.url,
        );
        std::fs::write(dir.path().join("infra.yaml"), infra).expect("write infra.yaml");
        Setup {
            dir,
            cluster: cluster.to_owned(),
            fake,
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn cluster_dir(&self) -> PathBuf {
        self.path().join(".orch").join(&self.cluster)
    }

    fn tag(&self) -> String {
        format!("orch-cluster-{}", self.cluster)
    }

    /// `orch ARGS` here, with the token unless `token` is false, and `env`.
    fn command(&self, args: &[&str], token: bool, env: &[(&str, &str)]) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(BIN);
        for var in support::CLIENT_ENV {
            command.env_remove(var);
        }
        command
            .current_dir(self.path())
            .args(args)
            .env_remove("DIGITALOCEAN_TOKEN")
            .env_remove("DO_TOKEN")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if token {
            command.env("DIGITALOCEAN_TOKEN", TOKEN);
        }
        for (k, v) in env {
            command.env(k, v);
        }
        command
    }

    async fn orch(&self, args: &[&str], token: bool, env: &[(&str, &str)]) -> Output {
        let child = self.command(args, token, env).spawn().expect("spawn orch");
        tokio::time::timeout(COMMAND_TIMEOUT, child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("orch {} did not exit in time", args.join(" ")))
            .expect("wait for orch")
    }

    /// `orch up` stopped at wait-ssh: everything up to and including the machines step.
    async fn up_to_machines(&self) -> Output {
        let out = self
            .orch(
                &["up", "-f", "infra.yaml"],
                true,
                &[("ORCH_FAIL_AT", "wait-ssh")],
            )
            .await;
        let text = describe_output(&out);
        assert!(!out.status.success(), "stops at wait-ssh:\n{text}");
        assert!(
            text.contains("failure injected at step wait-ssh"),
            "the machines step finished:\n{text}"
        );
        out
    }

    /// `orch up` to the end, with the stripped binary; returns stdout.
    async fn up(&self) -> String {
        let binary = support::sshd::stripped_orch();
        let binary = binary.to_str().expect("utf-8 path");
        let out = self
            .orch(&["up", "-f", "infra.yaml", "--binary", binary], true, &[])
            .await;
        assert!(
            out.status.success(),
            "orch up:\n{}\n{}",
            describe_output(&out),
            self.fake.sshd_logs()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Processes running under the droplets' dirs.
    fn processes(&self) -> Vec<(u32, String)> {
        let root = self.path().join("droplets").display().to_string();
        support::sshd::processes(|cwd, cmdline| cwd.starts_with(&root) || cmdline.contains(&root))
    }

    async fn destroy(&self) -> Output {
        let out = self
            .orch(&["destroy", "-f", "infra.yaml", "--yes"], true, &[])
            .await;
        assert!(out.status.success(), "destroy:\n{}", describe_output(&out));
        out
    }

    fn creates(&self) -> Vec<Seen> {
        self.fake.requests_to("POST", "/v2/droplets")
    }

    fn state(&self) -> Value {
        let text =
            std::fs::read_to_string(self.cluster_dir().join("state.json")).expect("state.json");
        serde_json::from_str(&text).expect("state JSON")
    }
}

/// The inbound rules of `firewall` open to addresses: (protocol, ports, sources).
fn open_rules(firewall: &Value) -> Vec<(String, String, Value)> {
    firewall["inbound_rules"]
        .as_array()
        .expect("inbound rules")
        .iter()
        .filter(|r| r["sources"]["addresses"].is_array())
        .map(|r| {
            (
                r["protocol"].as_str().unwrap_or("").to_owned(),
                r["ports"].as_str().unwrap_or("").to_owned(),
                r["sources"]["addresses"].clone(),
            )
        })
        .collect()
}

/// The API port of the setup's infra file.
fn api_port(setup: &Setup) -> String {
    let text = std::fs::read_to_string(setup.path().join("infra.yaml")).expect("infra.yaml");
    text.lines()
        .find_map(|l| l.strip_prefix("api: 127.0.0.1:"))
        .expect("api line")
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allow_from_opens_the_api_to_those_sources_only_and_never_dns() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let setup =
            Setup::allowing("do-allow", 7, "[\"198.51.100.0/24\", \"2001:db8::/32\"]").await;
        let out = setup.up_to_machines().await;
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(!stdout.contains("allow_from is empty"), "{stdout}");
        let firewalls = setup.fake.firewalls();
        assert_eq!(firewalls.len(), 1);
        let rules = open_rules(&firewalls[0]);
        let sources = serde_json::json!(["198.51.100.0/24", "2001:db8::/32"]);
        assert!(
            rules.iter().all(|(_, _, from)| *from == sources),
            "{rules:?}"
        );
        let api = api_port(&setup);
        assert!(
            rules
                .iter()
                .any(|(p, ports, _)| p == "tcp" && *ports == api),
            "the API is open to allow_from: {rules:?}"
        );
        assert!(
            rules.iter().any(|(_, ports, _)| ports == "31000-32000"),
            "{rules:?}"
        );
        for (_, ports, _) in &rules {
            assert!(
                !["53", "8053", "5051", "all"].contains(&ports.as_str()),
                "{rules:?}"
            );
        }

        // Another allow_from on a re-run: the firewall's rules follow; none is made anew.
        let file = setup.path().join("infra.yaml");
        let text = std::fs::read_to_string(&file).expect("infra.yaml");
        std::fs::write(&file, text.replace("198.51.100.0/24", "192.0.2.7/32")).expect("write");
        let out = setup.up_to_machines().await;
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            stdout.contains("updated (its rules were not the wanted ones)"),
            "{stdout}"
        );
        let firewalls = setup.fake.firewalls();
        assert_eq!(firewalls.len(), 1);
        let id = firewalls[0]["id"].as_str().unwrap_or("").to_owned();
        let sources = serde_json::json!(["192.0.2.7/32", "2001:db8::/32"]);
        let rules = open_rules(&firewalls[0]);
        assert!(
            rules.iter().all(|(_, _, from)| *from == sources),
            "{rules:?}"
        );
        let again = setup.up_to_machines().await;
        assert!(
            String::from_utf8_lossy(&again.stdout).contains(&format!("exists ({id})")),
            "unchanged rules are left alone: {}",
            describe_output(&again)
        );
        assert_eq!(
            setup
                .fake
                .requests_to("PUT", &format!("/v2/firewalls/{id}"))
                .len(),
            1
        );
        setup.destroy().await;
        assert!(setup.fake.firewalls().is_empty());
    })
    .await
    .expect("test timed out");
}

fn names_of(create: &Seen) -> Vec<String> {
    let body = create.body.as_ref().expect("a create body");
    body["names"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|n| n.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_else(|| vec![body["name"].as_str().unwrap_or("").to_owned()])
}

/// Every droplet of the fake has a unique name, and there are `n` of them.
fn assert_unique_droplets(setup: &Setup, n: usize) {
    let droplets = setup.fake.droplets();
    let mut names: Vec<String> = droplets
        .iter()
        .map(|d| d["name"].as_str().unwrap_or("").to_owned())
        .collect();
    names.sort();
    names.dedup();
    assert_eq!(
        names.len(),
        droplets.len(),
        "no two droplets of a name: {names:?}"
    );
    assert_eq!(droplets.len(), n, "{names:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn machines_are_created_in_batches_once_without_keys_and_destroyed_by_tag() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let setup = Setup::new("do-batch", 1, 10).await;
        let out = setup.up_to_machines().await;
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();

        // 11 droplets: the master alone (its own tags), then 10 agents in one request.
        let creates = setup.creates();
        let sizes: Vec<usize> = creates.iter().map(|c| names_of(c).len()).collect();
        assert_eq!(sizes, [1, 10], "{stdout}");
        assert!(creates.iter().all(|c| c.status == 202));
        assert_unique_droplets(&setup, 11);
        let agent_batch = creates[1].body.as_ref().expect("body");
        assert_eq!(
            agent_batch["tags"],
            serde_json::json!(["orch", "orch-cluster-do-batch", "orch-role-agent"])
        );
        assert_eq!(agent_batch["region"], "nyc3");
        assert_eq!(agent_batch["size"], "s-1vcpu-2gb");
        assert_eq!(agent_batch["ssh_keys"], serde_json::json!([512190]));
        // Listed by tag before creating, following the pages (11 droplets, pages of 4).
        let first_list = setup
            .fake
            .requests()
            .iter()
            .position(|s| s.method == "GET" && s.path == "/v2/droplets")
            .expect("a list");
        let first_create = setup
            .fake
            .requests()
            .iter()
            .position(|s| s.method == "POST" && s.path == "/v2/droplets")
            .expect("a create");
        assert!(first_list < first_create);
        let lists = setup.fake.requests_to("GET", "/v2/droplets");
        assert!(lists
            .iter()
            .all(|l| l.param("tag_name") == Some(setup.tag())));
        assert!(
            lists
                .iter()
                .any(|l| l.param("page").as_deref() == Some("3")),
            "the third page was read"
        );

        // No user data carries a private key of any kind (any task could read it from the
        // metadata service): each droplet makes its own host key.
        for create in &creates {
            let body = create.body.as_ref().expect("body");
            let user_data = body["user_data"].as_str().expect("user data");
            assert!(!user_data.contains("PRIVATE KEY"), "{user_data}");
            assert!(!user_data.contains("ssh_keys:"), "{user_data}");
            for name in names_of(create) {
                assert_eq!(fake_digitalocean::host_key_for(user_data, &name), None);
            }
        }
        assert!(!setup.cluster_dir().join("host-keys").exists());

        // Without allow_from only SSH is open from outside, and orch up says so; DNS never.
        assert!(stdout.contains("allow_from is empty"), "{stdout}");
        let rules = open_rules(&setup.fake.firewalls()[0]);
        assert_eq!(
            rules,
            [(
                "tcp".to_owned(),
                SSH_PORT.to_string(),
                serde_json::json!(["0.0.0.0/0", "::/0"])
            )],
            "only SSH from outside"
        );

        // The state has every machine with its public IPv4; a firewall exists.
        let state = setup.state();
        let machines = state["machines"].as_array().expect("machines");
        assert_eq!(machines.len(), 11);
        assert!(machines.iter().all(|m| m["ip"]
            .as_str()
            .is_some_and(|ip| ip.starts_with("127.61.1."))));
        let firewalls = setup.fake.firewalls();
        assert_eq!(firewalls.len(), 1);
        assert_eq!(firewalls[0]["name"], "orch-do-batch");
        assert_eq!(
            firewalls[0]["tags"],
            serde_json::json!(["orch-cluster-do-batch"])
        );
        assert!(stdout.contains("agent-10: droplet"), "{stdout}");

        // A re-run creates nothing.
        setup.up_to_machines().await;
        assert_eq!(setup.creates().len(), 2, "no new create request");
        assert_eq!(setup.fake.created_total(), 11);
        assert_eq!(setup.fake.requests_to("POST", "/v2/firewalls").len(), 1);

        // A droplet powered off is named, not waited for.
        setup.fake.set_status("do-batch-agent-3", "off");
        let out = setup.orch(&["up", "-f", "infra.yaml"], true, &[]).await;
        let text = describe_output(&out);
        assert!(!out.status.success(), "{text}");
        assert!(text.contains("is off; power it on"), "{text}");
        setup.fake.set_status("do-batch-agent-3", "active");

        // The plan sees what exists and changes nothing.
        let posts = setup
            .fake
            .requests()
            .iter()
            .filter(|s| s.method != "GET")
            .count();
        let out = setup
            .orch(&["up", "-f", "infra.yaml", "--plan"], true, &[])
            .await;
        let plan = describe_output(&out);
        assert!(out.status.success(), "{plan}");
        assert!(
            plan.contains("droplet do-batch-agent-10 exists (id "),
            "{plan}"
        );
        assert!(plan.contains("firewall orch-do-batch exists"), "{plan}");
        assert!(!plan.contains("create droplet"), "{plan}");
        let after = setup
            .fake
            .requests()
            .iter()
            .filter(|s| s.method != "GET")
            .count();
        assert_eq!(posts, after, "the plan only reads");

        // Destroy finds everything by tag, even with the state (and keys) gone.
        std::fs::remove_dir_all(setup.cluster_dir()).expect("remove .orch/do-batch");
        setup.destroy().await;
        let deletes = setup.fake.requests_to("DELETE", "/v2/droplets");
        assert_eq!(deletes.len(), 1);
        assert_eq!(deletes[0].param("tag_name"), Some(setup.tag()));
        assert_eq!(deletes[0].status, 204);
        assert!(setup.fake.droplets().is_empty());
        assert!(setup.fake.firewalls().is_empty());
        // Nothing is left to destroy, and destroy says so.
        let again = setup.destroy().await;
        assert!(String::from_utf8_lossy(&again.stdout).contains("removed nothing"));
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_comes_up_on_droplets_and_a_rerun_changes_nothing() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let _one = CLUSTERS.lock().await;
        let setup = Setup::with_vpc("do-up", 5, 2).await;
        let begin = Instant::now();
        let stdout = setup.up().await;
        let first = begin.elapsed();
        for line in [
            "==> machines",
            "==> wait-ssh",
            "==> upload",
            "==> start-masters",
            "leader: ",
            "2 of 2 agents registered",
            "cluster 'do-up' is up",
            "3 started, 0 restarted, 0 unchanged",
        ] {
            assert!(stdout.contains(line), "{line:?} in:\n{stdout}");
        }
        // The leader answers on the master droplet's public IPv4.
        let state = setup.state();
        let master_ip = state["machines"][0]["ip"].as_str().expect("ip").to_owned();
        assert!(master_ip.starts_with("127.61.5."));
        assert!(
            stdout.contains(&format!("https://{master_ip}:")),
            "{stdout}"
        );
        // TLS with the token, and a CLI that needs no flag here.
        let listed = setup.orch(&["app", "list"], false, &[]).await;
        assert!(listed.status.success(), "{}", describe_output(&listed));
        assert!(
            String::from_utf8_lossy(&listed.stdout).contains("DEPLOYMENTS"),
            "{}",
            describe_output(&listed)
        );
        let cluster_dir = setup.cluster_dir();
        let known = std::fs::read_to_string(cluster_dir.join("known_hosts")).expect("known_hosts");
        assert_eq!(
            known.lines().count(),
            3,
            "each droplet's key recorded once: {known}"
        );

        // The masters and agents talk over the VPC: the leader is known by its VPC address,
        // every agent advertises its own; the API is reached at the public one.
        assert_eq!(
            state["machines"][0]["private_ip"].as_str(),
            Some(master_ip.replace("127.61.", "127.62.").as_str())
        );
        assert!(stdout.contains("leader: 127.62.5."), "{stdout}");
        let nodes = setup
            .orch(&["node", "list", "-o", "json"], false, &[])
            .await;
        let nodes: Value = serde_json::from_slice(&nodes.stdout).expect("node list JSON");
        let addresses: Vec<&str> = nodes["agents"]
            .as_array()
            .expect("agents")
            .iter()
            .filter_map(|a| a["address"].as_str())
            .collect();
        assert_eq!(addresses.len(), 2, "{nodes}");
        assert!(
            addresses.iter().all(|a| a.starts_with("127.62.5.")),
            "{addresses:?}"
        );

        // status: the droplets from the API, the nodes over SSH.
        let out = setup.orch(&["status"], true, &[]).await;
        let status = describe_output(&out);
        assert!(out.status.success(), "{status}");
        assert_eq!(status.matches("active/running").count(), 3, "{status}");
        assert!(
            status.contains("agents  2 registered, 2 reachable"),
            "{status}"
        );

        // A re-run changes nothing and creates nothing.
        let begin = Instant::now();
        let stdout = setup.up().await;
        let second = begin.elapsed();
        assert!(
            stdout.contains("0 started, 0 restarted, 3 unchanged"),
            "{stdout}"
        );
        assert_eq!(setup.fake.created_total(), 3);
        assert_eq!(
            setup.creates().len(),
            2,
            "master and agents: one request each"
        );
        assert_eq!(setup.fake.requests_to("POST", "/v2/firewalls").len(), 1);
        eprintln!(
            "up: {first:.1?}, re-run: {second:.1?}, requests: {}",
            setup.fake.requests().len()
        );

        setup.destroy().await;
        assert!(setup.fake.droplets().is_empty());
        assert!(setup.fake.firewalls().is_empty());
        assert_eq!(
            setup.processes(),
            vec![],
            "nothing runs on deleted droplets"
        );
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_killed_after_the_first_create_is_continued_without_duplicates() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let _one = CLUSTERS.lock().await;
        let setup = Setup::with_ssh("do-crash", 2, 1).await;
        let mut child = setup
            .command(
                &["up", "-f", "infra.yaml"],
                true,
                &[("ORCH_FAIL_AT", "wait-ssh")],
            )
            .spawn()
            .expect("spawn orch up");
        let begin = Instant::now();
        while !setup.creates().iter().any(|c| c.status == 202) {
            assert!(begin.elapsed() < Duration::from_secs(60), "no create seen");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        child.start_kill().expect("kill -9 orch up");
        let _ = child.wait().await;
        let after_crash = setup.fake.created_total();
        assert!(after_crash >= 1);

        // The re-run finds what the first made, makes only the rest, and brings the
        // cluster up.
        let stdout = setup.up().await;
        assert!(stdout.contains("cluster 'do-crash' is up"), "{stdout}");
        assert!(stdout.contains("leader: "), "{stdout}");
        assert_unique_droplets(&setup, 2);
        assert_eq!(setup.fake.created_total(), 2);
        let created: Vec<String> = setup.creates().iter().flat_map(names_of).collect();
        let mut unique = created.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(
            unique.len(),
            created.len(),
            "no name created twice: {created:?}"
        );
        assert_eq!(setup.state()["machines"].as_array().map(Vec::len), Some(2));
        assert_eq!(setup.fake.firewalls().len(), 1, "one firewall");

        setup.destroy().await;
        assert!(setup.fake.droplets().is_empty());
        assert!(setup.fake.firewalls().is_empty());
        assert_eq!(
            setup.processes(),
            vec![],
            "nothing runs on deleted droplets"
        );
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limited_requests_are_waited_out_and_retried() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let _one = CLUSTERS.lock().await;
        let setup = Setup::with_ssh("do-429", 3, 1).await;
        setup.fake.inject_429("GET", "/v2/droplets", 2, 1);
        setup.fake.inject_429("POST", "/v2/droplets", 1, 1);
        let begin = Instant::now();
        let stdout = setup.up().await;
        assert!(stdout.contains("cluster 'do-429' is up"), "{stdout}");
        assert!(begin.elapsed() >= Duration::from_secs(3), "waited 3 × 1s");
        let limited = setup
            .fake
            .requests()
            .iter()
            .filter(|s| s.status == 429)
            .count();
        assert_eq!(limited, 3);
        assert_eq!(
            stdout.matches("rate limited by DigitalOcean (429); waiting 1s").count(),
            3,
            "{stdout}"
        );
        assert_unique_droplets(&setup, 2);
        let accepted = setup.creates().iter().filter(|c| c.status == 202).count();
        assert_eq!(accepted, 2, "one accepted create per role after the 429");

        // Errors carry DigitalOcean's words and request id.
        std::fs::write(
            setup.path().join("bad.yaml"),
            std::fs::read_to_string(setup.path().join("infra.yaml"))
                .expect("infra")
                .replace("cluster: do-429", "cluster: do-429-bad")
                .replace("ssh_keys: [\"512190\"]", "ssh_keys: [\"999\"]"),
        )
        .expect("write bad.yaml");
        let out = setup.orch(&["up", "-f", "bad.yaml"], true, &[]).await;
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(!out.status.success());
        assert!(
            stderr.contains("POST /v2/droplets: 422 unprocessable_entity: \"ssh_key 999 is not a key of this account.\" (request id "),
            "{}",
            describe_output(&out)
        );
        setup
            .orch(&["destroy", "-f", "bad.yaml", "--yes"], true, &[])
            .await;
        setup.destroy().await;
        assert!(setup.fake.droplets().is_empty());
        assert_eq!(setup.processes(), vec![], "nothing runs on deleted droplets");
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_token_nothing_is_asked_and_both_variables_are_named() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let setup = Setup::new("do-token", 4, 1).await;
        for args in [
            &["up", "-f", "infra.yaml"][..],
            &["up", "-f", "infra.yaml", "--plan"][..],
            &["destroy", "-f", "infra.yaml", "--yes"][..],
        ] {
            let out = setup.orch(args, false, &[]).await;
            let text = describe_output(&out);
            assert!(!out.status.success(), "{text}");
            assert!(
                text.contains("DIGITALOCEAN_TOKEN") && text.contains("DO_TOKEN"),
                "{text}"
            );
            assert!(!text.contains("==> machines"), "no step ran: {text}");
        }
        assert!(
            setup.fake.requests().is_empty(),
            "no request: {:?}",
            setup.fake.requests()
        );
        assert!(!setup.cluster_dir().join("state.json").exists());

        // A wrong token: DigitalOcean's 401, shown with its message.
        let out = setup
            .orch(
                &["up", "-f", "infra.yaml"],
                false,
                &[("DO_TOKEN", "dop_v1_wrong")],
            )
            .await;
        let text = describe_output(&out);
        assert!(
            text.contains("401 unauthorized: \"Unable to authenticate you\""),
            "{text}"
        );
        assert!(setup.fake.droplets().is_empty());

        // The plan lists what would be made and makes nothing.
        let out = setup
            .orch(
                &["up", "-f", "infra.yaml", "--plan"],
                false,
                &[("DO_TOKEN", TOKEN)],
            )
            .await;
        let text = describe_output(&out);
        assert!(out.status.success(), "{text}");
        assert!(
            text.contains("create droplet do-token-master-1 (nyc3, s-1vcpu-2gb, debian-12-x64)"),
            "{text}"
        );
        assert!(
            text.contains("2 droplet(s) to create in 2 request(s)"),
            "{text}"
        );
        assert!(text.contains("create firewall orch-do-token"), "{text}");
        assert!(
            setup.fake.requests().iter().all(|s| s.method == "GET"),
            "the plan only reads"
        );
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eleven_droplets_from_two_requests_run_one_cluster() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let _one = CLUSTERS.lock().await;
        let setup = Setup::with_ssh("do-eleven", 6, 10).await;
        let begin = Instant::now();
        let stdout = setup.up().await;
        let took = begin.elapsed();
        assert!(stdout.contains("cluster 'do-eleven' is up"), "{stdout}");
        assert!(stdout.contains("10 of 10 agents registered"), "{stdout}");
        assert!(
            stdout.contains("11 started, 0 restarted, 0 unchanged"),
            "{stdout}"
        );
        let sizes: Vec<usize> = setup.creates().iter().map(|c| names_of(c).len()).collect();
        assert_eq!(sizes, [1, 10]);
        assert_unique_droplets(&setup, 11);
        eprintln!(
            "11 droplets: up in {took:.1?}, {} API requests",
            setup.fake.requests().len()
        );
        setup.destroy().await;
        assert!(setup.fake.droplets().is_empty());
        assert_eq!(
            setup.processes(),
            vec![],
            "nothing runs on deleted droplets"
        );
    })
    .await
    .expect("test timed out");
}

//! A private network for partition tests: each host is a network namespace with its own
//! address, all joined by a bridge inside a "switch" namespace (so the host's firewall and
//! Docker's FORWARD policy never see the traffic), and the test process reaches every host
//! through one more link from the root namespace. Faults are nftables rules inside a host's
//! namespace: [`Net::cut`] drops everything between two hosts, [`Net::cut_one_way`] only
//! what one host starts towards another, [`Net::heal`] removes every rule.
//!
//! Needs root and `ip`/`nft` (iproute2, nftables). Everything is deleted on drop.

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

static NETWORKS: AtomicU32 = AtomicU32::new(0);

/// Hosts in their own network namespaces on one private /24.
#[derive(Debug)]
pub struct Net {
    /// Namespace names, one per host.
    hosts: Vec<String>,
    switch: String,
    root_link: String,
    /// The first three octets of the subnet, e.g. `10.90.3`.
    prefix: String,
}

/// Runs `ip`, `nft` or another tool; panics with its output when it fails.
fn run(program: &str, args: &[&str]) {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program} {}: {e}", args.join(" ")));
    assert!(
        output.status.success(),
        "{program} {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn in_ns(ns: &str, program: &str, args: &[&str]) {
    let mut all = vec!["netns", "exec", ns, program];
    all.extend_from_slice(args);
    run("ip", &all);
}

impl Net {
    /// `n` hosts, `10.x.y.11` ... `10.x.y.(10+n)`; the test process is `10.x.y.1`.
    pub fn new(n: usize) -> Net {
        let pid = std::process::id();
        let serial = NETWORKS.fetch_add(1, Ordering::Relaxed);
        let tag = format!("{:x}{serial}", pid % 0xffff);
        let prefix = format!("10.{}.{}", 64 + pid % 128, serial % 250);
        let net = Net {
            hosts: (0..n).map(|i| format!("orch-{tag}-h{i}")).collect(),
            switch: format!("orch-{tag}-sw"),
            root_link: format!("o{tag}r"),
            prefix,
        };
        run("ip", &["netns", "add", &net.switch]);
        in_ns(&net.switch, "ip", &["link", "set", "lo", "up"]);
        in_ns(&net.switch, "ip", &["link", "add", "br0", "type", "bridge"]);
        in_ns(&net.switch, "ip", &["link", "set", "br0", "up"]);
        // The test process's own link into the switch.
        run(
            "ip",
            &[
                "link",
                "add",
                &net.root_link,
                "type",
                "veth",
                "peer",
                "name",
                "root",
                "netns",
                &net.switch,
            ],
        );
        in_ns(
            &net.switch,
            "ip",
            &["link", "set", "root", "master", "br0", "up"],
        );
        let root_address = format!("{}.1/24", net.prefix);
        run("ip", &["addr", "add", &root_address, "dev", &net.root_link]);
        run("ip", &["link", "set", &net.root_link, "up"]);
        for (i, ns) in net.hosts.iter().enumerate() {
            run("ip", &["netns", "add", ns]);
            in_ns(ns, "ip", &["link", "set", "lo", "up"]);
            let port = format!("h{i}");
            in_ns(
                &net.switch,
                "ip",
                &[
                    "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns", ns,
                ],
            );
            in_ns(
                &net.switch,
                "ip",
                &["link", "set", &port, "master", "br0", "up"],
            );
            let address = format!("{}/24", net.ip(i));
            in_ns(ns, "ip", &["addr", "add", &address, "dev", "eth0"]);
            in_ns(ns, "ip", &["link", "set", "eth0", "up"]);
            // Connection tracking from the first packet on: turned on only when a rule
            // first needs it, it would take the side it happens to see first on an open
            // connection for the one that opened it, and a one-way cut would miss.
            in_ns(ns, "nft", &["add", "table", "inet", "track"]);
            let spec = "{ type filter hook output priority 0; }";
            in_ns(ns, "nft", &["add", "chain", "inet", "track", "out", spec]);
            let count = [
                "add", "rule", "inet", "track", "out", "ct", "state", "new", "counter",
            ];
            in_ns(ns, "nft", &count);
        }
        net
    }

    /// Host `i`'s address.
    pub fn ip(&self, i: usize) -> String {
        format!("{}.{}", self.prefix, 11 + i)
    }

    /// The command prefix that runs a program on host `i`.
    pub fn prefix(&self, i: usize) -> Vec<String> {
        ["ip", "netns", "exec", &self.hosts[i]]
            .map(str::to_owned)
            .to_vec()
    }

    /// Host `i`'s table of fault rules, created on first use.
    fn table(&self, i: usize) {
        let ns = &self.hosts[i];
        in_ns(ns, "nft", &["add", "table", "inet", "chaos"]);
        for (chain, hook) in [("in", "input"), ("out", "output")] {
            let spec = format!("{{ type filter hook {hook} priority 0; }}");
            in_ns(ns, "nft", &["add", "chain", "inet", "chaos", chain, &spec]);
        }
    }

    /// Adds `rule` to chain `chain` of host `i`'s fault table.
    fn rule(&self, i: usize, chain: &str, rule: &[&str]) {
        self.table(i);
        let mut args = vec!["add", "rule", "inet", "chaos", chain];
        args.extend_from_slice(rule);
        in_ns(&self.hosts[i], "nft", &args);
    }

    /// Hosts `a` and `b` no longer exchange any packet.
    pub fn cut(&self, a: usize, b: usize) {
        for (from, to) in [(a, b), (b, a)] {
            let peer = self.ip(to);
            self.rule(from, "in", &["ip", "saddr", &peer, "drop"]);
            self.rule(from, "out", &["ip", "daddr", &peer, "drop"]);
        }
    }

    /// Host `from` can no longer reach `to` (its connections to `to` carry nothing), while
    /// `to` still reaches `from`: the asymmetric partition that TCP can express.
    pub fn cut_one_way(&self, from: usize, to: usize) {
        let peer = self.ip(to);
        let rule = ["ip", "daddr", &peer, "ct", "direction", "original", "drop"];
        self.rule(from, "out", &rule);
    }

    /// Every fault removed.
    pub fn heal(&self) {
        for ns in &self.hosts {
            // Hosts without rules have no table: nothing to delete.
            let _ = Command::new("ip")
                .args([
                    "netns", "exec", ns, "nft", "delete", "table", "inet", "chaos",
                ])
                .output();
        }
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.root_link])
            .output();
        for ns in self.hosts.iter().chain([&self.switch]) {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}

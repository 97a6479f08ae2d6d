//! The digital_ocean provider: droplets made through DigitalOcean's API v2, then orch
//! installed and run on them over SSH.
//!
//! - [`api`]: the HTTP client (token, request budget, 429s, pages, DigitalOcean's errors);
//! - [`rate`]: the request budget (250 per minute) and the wait after a 429;
//! - [`droplets`]: names, tags, create batches (at most 10), list/create/delete calls;
//! - [`firewall`]: the cluster's cloud firewall `orch-<cluster>`;
//! - `ssh_hosts`: the droplets as the ssh provider's hosts;
//! - [`cloud_init`]: the user data (no key, no secret), and how a droplet's SSH host key
//!   comes to be known (recorded at the first connection, see there).
//!
//! Droplets are always listed by the cluster tag before any is created, so a re-run after a
//! crash never makes a second droplet of a name; each droplet is recorded in the state file
//! as soon as DigitalOcean accepted it (`droplet/<machine>` → id) and as a machine once it
//! is active with a public IPv4.
//!
//! The SSH steps (wait-ssh, upload, render, start) and the nodes' status are the ssh
//! provider's ([`SshProvider::for_hosts`]), given each droplet as a host: its public IPv4
//! (and VPC address, where the nodes reach each other), root, `ssh_port`, `identity_file`,
//! and the cluster's own known_hosts file, `.orch/<cluster>/known_hosts`.
//!
//! May depend on: provision::{cluster_spec, infra, provider, ssh,
//! state_file, steps, templates}.

pub mod api;
pub mod cloud_init;
pub mod droplets;
pub mod firewall;
pub mod rate;
mod ssh_hosts;

use self::api::Api;
use self::droplets::{cluster_tag, droplet_name, Droplet};
use super::cluster_spec::{Machine, NodeSpec, WantedMachine};
use super::infra::DigitalOceanEntry;
use super::infra::Infra;
use super::plan::{Action, Plan};
use super::provider::{Change, MachineStatus, Provider, ProviderError, ProviderOptions};
use super::ssh::{resolve_path, Identity, SshHost, SshProvider};
use super::state_file::{State, StateFile};
use super::steps::{Progress, Step};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// The environment variables the token is read from, in order.
pub const TOKEN_VARIABLES: [&str; 2] = ["DIGITALOCEAN_TOKEN", "DO_TOKEN"];
/// How long droplets may take to become active.
const ACTIVE_TIMEOUT: Duration = Duration::from_secs(600);
/// How long `orch destroy` waits for the droplets to be gone.
const GONE_TIMEOUT: Duration = Duration::from_secs(180);
/// The state's resource key of a droplet's id.
const DROPLET_KEY: &str = "droplet/";
/// The state's resource key of a droplet about to be created (written before the create
/// request, so that a run killed before DigitalOcean's answer still knows the droplet is
/// the cluster's own).
const CREATING_KEY: &str = "creating/";

/// Records the droplet id of `machine` in the state (saved when it is new).
fn record_droplet(state: &mut StateFile, machine: &str, id: u64) -> Result<(), ProviderError> {
    let key = format!("{DROPLET_KEY}{machine}");
    let id = id.to_string();
    if state.state.resources.get(&key) != Some(&id) {
        state.update(|s| {
            s.resources.insert(key, id);
        })?;
    }
    Ok(())
}

/// The token: the first of [`TOKEN_VARIABLES`] that `lookup` finds non-empty.
pub fn token(lookup: impl Fn(&str) -> Option<String>) -> Result<String, ProviderError> {
    TOKEN_VARIABLES
        .iter()
        .find_map(|name| lookup(name).filter(|v| !v.trim().is_empty()))
        .map(|v| v.trim().to_owned())
        .ok_or_else(|| {
            ProviderError::Refused(format!(
                "the digital_ocean provider needs an API token: set {} (or {}) to a token \
                 with read and write scope (https://cloud.digitalocean.com/account/api/tokens)",
                TOKEN_VARIABLES[0], TOKEN_VARIABLES[1]
            ))
        })
}

/// Droplets through DigitalOcean's API; orch on them over SSH.
#[derive(Debug)]
pub struct DigitalOceanProvider {
    infra: Infra,
    options: ProviderOptions,
    api: Api,
    /// The ssh provider driving the droplets, once they are known.
    ssh: Option<SshProvider>,
    /// The machines whose droplet this cluster created (recorded in the state file before
    /// this run, or created by it): their host key is recorded at the first connection.
    ours: std::collections::BTreeSet<String>,
}

impl DigitalOceanProvider {
    /// The provider of `infra` (its `digital_ocean:` section), with the token `lookup`
    /// finds (the process environment in `orch`). Refuses before any request when there is
    /// no token or the cluster's name cannot be a droplet's.
    pub fn new(
        infra: &Infra,
        options: ProviderOptions,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ProviderError> {
        let token = token(lookup)?;
        if infra.cluster.contains('_') {
            return Err(ProviderError::Refused(format!(
                "cluster '{}': droplet names cannot hold '_'; use '-'",
                infra.cluster
            )));
        }
        let api = Api::new(
            &infra.digital_ocean.api_url,
            token,
            Progress::new(options.fail_at.clone()),
        )
        .map_err(|e| ProviderError::failed("cannot reach DigitalOcean", e))?;
        Ok(Self {
            infra: infra.clone(),
            options,
            api,
            ssh: None,
            ours: std::collections::BTreeSet::new(),
        })
    }

    fn entry(&self) -> &DigitalOceanEntry {
        &self.infra.digital_ocean
    }

    fn cluster(&self) -> &str {
        &self.infra.cluster
    }

    /// The cluster's droplets by name.
    async fn listed(&self) -> Result<BTreeMap<String, Droplet>, ProviderError> {
        let tag = cluster_tag(self.cluster());
        let list = droplets::list_by_tag(&self.api, &tag).await.map_err(|e| {
            ProviderError::failed(format!("cannot list the droplets tagged {tag}"), e)
        })?;
        Ok(list.into_iter().map(|d| (d.name.clone(), d)).collect())
    }

    fn machine(&self, wanted: &WantedMachine, droplet: &Droplet, ip: IpAddr) -> Machine {
        Machine {
            name: wanted.name.clone(),
            role: wanted.role,
            ip,
            private_ip: droplet.private_ipv4.map(IpAddr::V4),
            id: droplet.id.to_string(),
            install_dir: self.entry().install_dir.replace("{machine}", &wanted.name),
            resources: None,
            attributes: None,
        }
    }

    /// Creates the droplets of `missing`, in batches, recording each at once.
    async fn create(
        &self,
        missing: &[WantedMachine],
        state: &mut StateFile,
        progress: &Progress,
    ) -> Result<(), ProviderError> {
        let entry = self.entry();
        let batches = droplets::batches(missing);
        let user_data = cloud_init::render(self.cluster(), entry.ssh_port)
            .map_err(|e| ProviderError::failed("cannot render the cloud-init user data", e))?;
        for (number, batch) in batches.iter().enumerate() {
            for machine in batch {
                progress.enter(Step::Machines, &machine.name)?;
            }
            state.update(|s| {
                for machine in batch {
                    s.resources.insert(
                        format!("{CREATING_KEY}{}", machine.name),
                        "requested".to_owned(),
                    );
                }
            })?;
            let body = droplets::create_body(entry, self.cluster(), batch, &user_data);
            progress.note(format!(
                "creating {} droplet(s) ({}; batch {} of {}) in {}, {}, {}",
                batch.len(),
                batch
                    .iter()
                    .map(|m| m.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                number + 1,
                batches.len(),
                entry.region,
                entry.size,
                entry.image
            ));
            let created = droplets::create(&self.api, &body)
                .await
                .map_err(|e| ProviderError::failed("cannot create droplets", e))?;
            for machine in batch {
                let name = droplet_name(self.cluster(), &machine.name);
                match created.iter().find(|d| d.name == name) {
                    Some(droplet) => {
                        record_droplet(state, &machine.name, droplet.id)?;
                        progress.machine(
                            &machine.name,
                            format!("created droplet {} ({name})", droplet.id),
                        );
                    }
                    None => progress.machine(
                        &machine.name,
                        "not in DigitalOcean's answer; looked for again by tag",
                    ),
                }
            }
        }
        Ok(())
    }

    /// Waits until every wanted droplet is active with a public IPv4; records each machine.
    async fn wait_active(
        &self,
        wanted: &[WantedMachine],
        state: &mut StateFile,
        progress: &Progress,
    ) -> Result<Vec<Machine>, ProviderError> {
        let begin = Instant::now();
        let mut poll = Duration::from_millis(500);
        let mut reported = Instant::now();
        let mut ready: BTreeMap<String, Machine> = BTreeMap::new();
        loop {
            let listed = self.listed().await?;
            for machine in wanted {
                if ready.contains_key(&machine.name) {
                    continue;
                }
                let name = droplet_name(self.cluster(), &machine.name);
                let Some(droplet) = listed.get(&name) else {
                    continue;
                };
                record_droplet(state, &machine.name, droplet.id)?;
                if matches!(droplet.status.as_str(), "off" | "archive") {
                    return Err(ProviderError::on_machine(
                        Step::Machines,
                        &machine.name,
                        format!(
                            "droplet {} ({name}) is {}; power it on in DigitalOcean, or                              `orch destroy` and up again",
                            droplet.id, droplet.status
                        ),
                    ));
                }
                if let Some(ip) = droplet.ready() {
                    let found = self.machine(machine, droplet, IpAddr::V4(ip));
                    state.update(|s| s.put_machine(found.clone()))?;
                    progress.machine(
                        &machine.name,
                        format!(
                            "droplet {} active at {ip} ({:.1}s)",
                            droplet.id,
                            begin.elapsed().as_secs_f64()
                        ),
                    );
                    ready.insert(machine.name.clone(), found);
                }
            }
            if ready.len() == wanted.len() {
                return Ok(wanted
                    .iter()
                    .filter_map(|w| ready.get(&w.name).cloned())
                    .collect());
            }
            let waiting: Vec<&str> = wanted
                .iter()
                .filter(|w| !ready.contains_key(&w.name))
                .map(|w| w.name.as_str())
                .collect();
            if begin.elapsed() > ACTIVE_TIMEOUT {
                return Err(ProviderError::failed(
                    format!(
                        "droplets not active with a public IPv4 after {ACTIVE_TIMEOUT:?}: {}",
                        waiting.join(", ")
                    ),
                    "timed out",
                ));
            }
            if reported.elapsed() > Duration::from_secs(10) {
                progress.note(format!(
                    "still waiting ({:.0?}) for {} droplet(s) to be active: {}",
                    begin.elapsed(),
                    waiting.len(),
                    waiting.join(", ")
                ));
                reported = Instant::now();
            }
            tokio::time::sleep(poll).await;
            poll = (poll * 2).min(Duration::from_secs(5));
        }
    }
}

#[async_trait::async_trait]
impl Provider for DigitalOceanProvider {
    fn name(&self) -> &'static str {
        "digital_ocean"
    }

    async fn plan(
        &mut self,
        wanted: &[WantedMachine],
        _state: &State,
    ) -> Result<Plan, ProviderError> {
        let entry = self.entry().clone();
        let listed = self.listed().await?;
        let mut plan = Plan::new();
        let mut missing = Vec::new();
        for machine in wanted {
            let name = droplet_name(self.cluster(), &machine.name);
            match listed.get(&name) {
                Some(d) => plan.push(Action::DropletExists {
                    droplet: name,
                    id: d.id,
                    status: d.status.clone(),
                    ip: d.public_ipv4.map(IpAddr::V4),
                }),
                None => {
                    plan.push(Action::CreateDroplet {
                        droplet: name,
                        region: entry.region.clone(),
                        size: entry.size.clone(),
                        image: entry.image.clone(),
                    });
                    missing.push(machine.clone());
                }
            }
        }
        if !missing.is_empty() {
            plan.push(Action::CreateDropletsIn {
                droplets: missing.len(),
                requests: droplets::batches(&missing).len(),
                batch: droplets::BATCH,
            });
        }
        let name = firewall::firewall_name(self.cluster());
        match firewall::find(&self.api, self.cluster())
            .await
            .map_err(|e| ProviderError::failed("cannot list the firewalls", e))?
        {
            Some(id) => plan.push(Action::FirewallExists { firewall: name, id }),
            None => plan.push(Action::CreateFirewall {
                firewall: name,
                tag: cluster_tag(self.cluster()),
                inbound: firewall::open_ports(&self.infra)
                    .iter()
                    .map(|(p, ports, _, _)| format!("{ports}/{p}"))
                    .collect::<Vec<_>>()
                    .join(" "),
            }),
        }
        // A droplet's binary and node are decided on it by the ssh provider's steps once it
        // exists (a new droplet has none: its upload is that of a new machine).
        plan.push(Action::InstallOverSsh);
        Ok(plan)
    }

    async fn machines(
        &mut self,
        wanted: &[WantedMachine],
        state: &mut StateFile,
        progress: &Progress,
    ) -> Result<Vec<Machine>, ProviderError> {
        let (id, done) = firewall::ensure(&self.api, &self.infra)
            .await
            .map_err(|e| ProviderError::failed("cannot set up the cluster's firewall", e))?;
        state.update(|s| {
            s.resources.insert("firewall".to_owned(), id.clone());
        })?;
        progress.note(format!(
            "firewall {} {} ({id})",
            firewall::firewall_name(self.cluster()),
            match done {
                firewall::Ensured::Created => "created",
                firewall::Ensured::Updated => "updated (its rules were not the wanted ones)",
                firewall::Ensured::Unchanged => "exists",
            }
        ));
        if let Some(note) = firewall::closed_note(&self.infra) {
            progress.note(note);
        }

        // The droplets this cluster made: recorded (or requested) before this run, or created
        // by it.
        self.ours = state
            .state
            .resources
            .keys()
            .filter_map(|k| {
                k.strip_prefix(DROPLET_KEY)
                    .or_else(|| k.strip_prefix(CREATING_KEY))
                    .map(str::to_owned)
            })
            .collect();
        let listed = self.listed().await?;
        let tag = cluster_tag(self.cluster());
        progress.note(format!("{} droplet(s) tagged {tag}", listed.len()));
        let mut missing = Vec::new();
        for machine in wanted {
            let name = droplet_name(self.cluster(), &machine.name);
            match listed.get(&name) {
                Some(droplet) => {
                    record_droplet(state, &machine.name, droplet.id)?;
                    progress.machine(
                        &machine.name,
                        format!("droplet {} exists ({})", droplet.id, droplet.status),
                    );
                }
                None => missing.push(machine.clone()),
            }
        }
        for name in listed.keys() {
            if !wanted
                .iter()
                .any(|w| droplet_name(self.cluster(), &w.name) == *name)
            {
                progress.note(format!(
                    "droplet {name} is tagged {tag} but not wanted; left as it is (`orch destroy` removes it)"
                ));
            }
        }
        self.ours.extend(missing.iter().map(|m| m.name.clone()));
        self.create(&missing, state, progress).await?;
        let machines = self.wait_active(wanted, state, progress).await?;
        Ok(machines)
    }

    async fn install(
        &mut self,
        machines: &[Machine],
        nodes: &[NodeSpec],
        plan: &Plan,
        progress: &Progress,
    ) -> Result<(), ProviderError> {
        // The plan holds no decision for a droplet's host: each is made on the droplet.
        self.ssh(machines)?
            .install(machines, nodes, plan, progress)
            .await
    }

    async fn start(
        &mut self,
        machines: &[Machine],
        nodes: &[NodeSpec],
        plan: &Plan,
        state: &mut StateFile,
        progress: &Progress,
    ) -> Result<Vec<Change>, ProviderError> {
        self.ssh(machines)?
            .start(machines, nodes, plan, state, progress)
            .await
    }

    async fn status(&mut self, state: &State) -> Result<Vec<MachineStatus>, ProviderError> {
        let listed = self.listed().await?;
        let active: Vec<Machine> = state
            .machines
            .iter()
            .filter(|m| {
                listed
                    .get(&droplet_name(self.cluster(), &m.name))
                    .is_some_and(|d| d.ready().is_some())
            })
            .cloned()
            .collect();
        let mut nodes: BTreeMap<String, String> = BTreeMap::new();
        if !active.is_empty() {
            let reached = State {
                machines: active.clone(),
                ..state.clone()
            };
            for node in self.ssh(&active)?.status(&reached).await? {
                nodes.insert(node.name, node.state);
            }
        }
        let mut out = Vec::new();
        for machine in &state.machines {
            let name = droplet_name(self.cluster(), &machine.name);
            let droplet = listed.get(&name);
            out.push(MachineStatus {
                name: machine.name.clone(),
                role: machine.role,
                ip: droplet
                    .and_then(|d| d.public_ipv4)
                    .map(IpAddr::V4)
                    .or(Some(machine.ip)),
                id: droplet.map_or_else(|| machine.id.clone(), |d| d.id.to_string()),
                state: match (droplet, nodes.get(&machine.name)) {
                    (None, _) => "missing".to_owned(),
                    (Some(d), Some(node)) => format!("{}/{node}", d.status),
                    (Some(d), None) => d.status.clone(),
                },
            });
        }
        Ok(out)
    }

    async fn destroy(
        &mut self,
        state: Option<&State>,
        progress: &Progress,
    ) -> Result<Vec<String>, ProviderError> {
        let tag = cluster_tag(self.cluster());
        let mut removed = Vec::new();
        let listed = self.listed().await?;
        if !listed.is_empty() {
            droplets::delete_by_tag(&self.api, &tag)
                .await
                .map_err(|e| {
                    ProviderError::failed(format!("cannot delete the droplets tagged {tag}"), e)
                })?;
            for (name, droplet) in &listed {
                progress.note(format!("droplet {name} ({}) deleted", droplet.id));
            }
            removed.push(format!("{} droplet(s) tagged {tag}", listed.len()));
        }
        // Droplets the state knows by id that lost the tag.
        let listed_ids: Vec<u64> = listed.values().map(|d| d.id).collect();
        let recorded: Vec<(String, u64)> = state
            .map(|s| {
                s.resources
                    .iter()
                    .filter_map(|(k, v)| {
                        Some((k.strip_prefix(DROPLET_KEY)?.to_owned(), v.parse().ok()?))
                    })
                    .collect()
            })
            .unwrap_or_default();
        for (machine, id) in recorded {
            if listed_ids.contains(&id) {
                continue;
            }
            let gone = droplets::delete(&self.api, id)
                .await
                .map_err(|e| ProviderError::failed(format!("cannot delete droplet {id}"), e))?;
            if gone {
                progress.note(format!("droplet {id} of {machine} (untagged) deleted"));
                removed.push(format!("droplet {id}"));
            }
        }
        let begin = Instant::now();
        loop {
            let left = self.listed().await?;
            if left.is_empty() {
                break;
            }
            if begin.elapsed() > GONE_TIMEOUT {
                return Err(ProviderError::failed(
                    format!(
                        "droplets tagged {tag} still listed after {GONE_TIMEOUT:?}: {}",
                        left.keys().cloned().collect::<Vec<_>>().join(", ")
                    ),
                    "timed out",
                ));
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        let name = firewall::firewall_name(self.cluster());
        if let Some(id) = firewall::find(&self.api, self.cluster())
            .await
            .map_err(|e| ProviderError::failed("cannot list the firewalls", e))?
        {
            if firewall::delete(&self.api, &id)
                .await
                .map_err(|e| ProviderError::failed(format!("cannot delete firewall {name}"), e))?
            {
                progress.note(format!("firewall {name} ({id}) deleted"));
                removed.push(format!("firewall {name}"));
            }
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::infra::ProviderKind;

    #[test]
    fn the_token_comes_from_either_variable_and_its_absence_names_both() {
        let none = token(|_| None).expect_err("no token");
        let text = none.to_string();
        assert!(
            text.contains("DIGITALOCEAN_TOKEN") && text.contains("DO_TOKEN"),
            "{text}"
        );
        assert!(matches!(none, ProviderError::Refused(_)));
        let second = token(|name| (name == "DO_TOKEN").then(|| "dop_v1_b".to_owned()));
        assert_eq!(second.ok().as_deref(), Some("dop_v1_b"));
        let both = token(|name| Some(format!("{name}-value")));
        assert_eq!(both.ok().as_deref(), Some("DIGITALOCEAN_TOKEN-value"));
        let blank = token(|name| (name == "DIGITALOCEAN_TOKEN").then(|| " ".to_owned()));
        assert!(blank.is_err(), "a blank token is none");
    }

    #[test]
    fn the_example_infra_file_is_valid_and_names_every_key() {
        let text = include_str!("../../../../infra/digital_ocean.yaml");
        let infra = Infra::from_yaml(text, "infra/digital_ocean.yaml").expect("valid");
        assert_eq!(infra.provider, ProviderKind::DigitalOcean);
        assert_eq!(infra.digital_ocean.region, "nyc3");
        for key in [
            "region:",
            "size:",
            "image:",
            "ssh_keys:",
            "vpc_uuid:",
            "api_url:",
            "identity_file:",
            "ssh_port:",
            "allow_from:",
            "install_dir:",
        ] {
            assert!(text.contains(key), "{key} is shown");
        }
    }

    #[test]
    fn the_provider_refuses_without_a_token_or_with_an_underscore() {
        let infra = Infra {
            cluster: "demo".to_owned(),
            provider: ProviderKind::DigitalOcean,
            ..Infra::default()
        };
        let options = ProviderOptions {
            binary: "/bin/true".into(),
            trust_on_first_use: false,
            base_dir: ".".into(),
            cluster_dir: ".orch/demo".into(),
            fail_at: None,
        };
        let error =
            DigitalOceanProvider::new(&infra, options.clone(), |_| None).expect_err("no token");
        assert!(matches!(error, ProviderError::Refused(_)));
        let underscored = Infra {
            cluster: "my_demo".to_owned(),
            ..infra.clone()
        };
        let error = DigitalOceanProvider::new(&underscored, options, |_| Some("t".to_owned()))
            .expect_err("bad name");
        assert!(error.to_string().contains("'_'"), "{error}");
    }
}

//! `orch app deploy-bluegreen FILE`: marathon-lb's zdd.py for orch. Starts the next colour
//! of an app (`<id>-blue` / `<id>-green`, service port alternating with
//! `HAPROXY_DEPLOYMENT_ALT_PORT`, `HAPROXY_0_PORT` pinned so the load balancer keeps
//! binding the same port), then step by step kills old tasks that new tasks in rotation
//! make surplus and grows the new colour, and deletes the old colour at the end. With
//! `--new-instances K` it stops at a canary split of K new to target−K old instances;
//! `--complete-cur` / `--complete-prev` finish or roll back such a split, `--resume`
//! continues an interrupted deploy.
//!
//! The load balancer merges every app of a `HAPROXY_DEPLOYMENT_GROUP` into one backend and
//! takes a task out of rotation as soon as the scheduler decides to kill it, so traffic
//! shifts by instance ratio with nothing but scaling here: this command talks to the
//! Marathon API only (`/v2/apps`, `/v2/tasks/delete?scale=true`).
//!
//! This file is the HTTP loop; the decisions are pure functions in
//! [`orch_lb::bluegreen`]: `definition` (the file's checks, the next colour's definition),
//! `live` (the group's apps as the API shows them), `start` (what to create or continue),
//! `step` (the next step of the swap).
//!
//! May depend on: the client in `cli::client`, reqwest, tokio (sleep), the clock, and
//! `orch_lb::bluegreen`.

use super::client::{id_path, read_definition, Client, Output};
use anyhow::Context;
use orch_lb::bluegreen::definition::{self, Deployable, BIND_PORT, GROUP};
use orch_lb::bluegreen::live::{group_members, LiveApp};
use orch_lb::bluegreen::start::{plan_start, Finish, Options, Start, Swap};
use orch_lb::bluegreen::step::{next_step, Step, Waiting};
use reqwest::Method;
use serde_json::json;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

/// The flags of `orch app deploy-bluegreen`, named as zdd.py names them.
#[derive(Debug, clap::Args)]
pub struct DeployArgs {
    /// The app definition, JSON or YAML (`-` reads standard input), with the labels
    /// HAPROXY_DEPLOYMENT_GROUP and HAPROXY_DEPLOYMENT_ALT_PORT and exactly one fixed
    /// service port.
    pub file: PathBuf,
    /// Instances the new colour starts with (at most its goal).
    #[arg(long, short = 'i', default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub initial_instances: u32,
    /// Pause between steps (e.g. 5s, 200ms).
    #[arg(long, short = 's', default_value = "5s", value_parser = humantime::parse_duration)]
    pub step_delay: Duration,
    /// Stop with an error after this long without progress; both colours stay, and
    /// --resume continues.
    #[arg(long, short = 'w', default_value = "300s", value_parser = humantime::parse_duration)]
    pub max_wait: Duration,
    /// Canary: stop when the new colour has this many instances and the old one the rest of
    /// the target (traffic splits by instance ratio).
    #[arg(long, short = 'n', value_parser = clap::value_parser!(u32).range(1..))]
    pub new_instances: Option<u32>,
    /// Finish an unfinished or canary deploy: every instance to the colour started last,
    /// then delete the other.
    #[arg(long, short = 'c', conflicts_with_all = ["complete_prev", "resume", "new_instances"])]
    pub complete_cur: bool,
    /// Roll back an unfinished or canary deploy: every instance to the colour started
    /// first, then delete the other.
    #[arg(long, short = 'p', conflicts_with_all = ["resume", "new_instances"])]
    pub complete_prev: bool,
    /// Continue an unfinished deploy where it stopped (a canary stops at its split).
    #[arg(long, short = 'r', conflicts_with = "new_instances")]
    pub resume: bool,
    /// Do not wait for deployments that hold the new colour (the swap then goes by its tasks
    /// in rotation alone) and override them (its writes carry `force=true`).
    #[arg(long, short = 'f')]
    pub force: bool,
}

impl DeployArgs {
    fn options(&self) -> Options {
        let finish = if self.complete_cur {
            Some(Finish::CompleteCurrent)
        } else if self.complete_prev {
            Some(Finish::CompletePrevious)
        } else if self.resume {
            Some(Finish::Resume)
        } else {
            None
        };
        Options {
            initial_instances: self.initial_instances,
            new_instances: self.new_instances,
            finish,
        }
    }

    fn force_query(&self, first: char) -> String {
        if self.force {
            format!("{first}force=true")
        } else {
            String::new()
        }
    }
}

/// Runs a blue/green deploy to its end (or to a canary split).
pub async fn run(args: DeployArgs, client: &Client) -> anyhow::Result<()> {
    let file = args.file.display().to_string();
    let definition = read_definition(&args.file)?;
    let deployable = Deployable::from_definition(&definition)
        .with_context(|| format!("{file} cannot be deployed blue/green"))?;
    let members = fetch_members(client, &deployable.group).await?;
    let now = orch_core::model::Timestamp::from_system_time(SystemTime::now());
    let start = plan_start(&deployable, &members, &args.options(), now)?;
    let clock = Instant::now();
    let report = |line: String| say(client, clock, line);
    let swap = match start {
        Start::Create { app, next, swap } => {
            // A colour deleted a moment ago may still be stopping under this id.
            wait_released(client, &swap.new, &args, &report).await?;
            let path = format!("/v2/apps{}", args.force_query('?'));
            client
                .call(Method::POST, &path, Some(&app))
                .await
                .with_context(|| format!("creating {}", swap.new))?;
            report(format!(
                "created {} ({}) with {} instance(s), growing to {}{} on service port {} (load \
                 balancer port {}){}",
                swap.new,
                next.colour.as_str(),
                next.initial,
                swap.goal.new_instances,
                if swap.goal.canary() {
                    format!(" of {} (canary)", swap.goal.target)
                } else {
                    String::new()
                },
                next.service_port,
                deployable.bind_port,
                match &swap.old {
                    Some(old) => format!("; {old} serves until it is replaced"),
                    None => String::new(),
                }
            ));
            swap
        }
        Start::Continue(swap) => {
            report(format!(
                "continuing deployment group {}: {} grows to {} of {} instances{}",
                deployable.group,
                swap.new,
                swap.goal.new_instances,
                swap.goal.target,
                match &swap.old {
                    Some(old) => format!(", {old} shrinks to {}", swap.goal.old_instances()),
                    None => String::new(),
                }
            ));
            swap
        }
    };
    swap_colours(client, &args, &deployable.group, &swap, report).await
}

/// The apps of deployment group `group`, oldest first.
async fn fetch_members(client: &Client, group: &str) -> anyhow::Result<Vec<LiveApp>> {
    let path = format!("/v2/apps?label={GROUP}&embed=apps.tasks&embed=apps.deployments");
    let answer = client.call(Method::GET, &path, None).await?;
    Ok(group_members(&answer, group)?)
}

/// Prints a progress line: to stdout for tables, to stderr when stdout carries JSON.
fn say(client: &Client, clock: Instant, line: String) {
    let line = format!("[{:>6.1}s] {line}", clock.elapsed().as_secs_f64());
    match client.output {
        Output::Table => println!("{line}"),
        Output::Json => eprintln!("{line}"),
    }
}

/// Takes steps until the swap ends, or fails after `--max-wait` without progress.
async fn swap_colours(
    client: &Client,
    args: &DeployArgs,
    group: &str,
    swap: &Swap,
    say: impl Fn(String),
) -> anyhow::Result<()> {
    let mut last_state = None;
    let mut last_change = Instant::now();
    let mut last_line = String::new();
    loop {
        let members = fetch_members(client, group).await?;
        let new = members
            .iter()
            .find(|app| app.id == swap.new)
            .with_context(|| {
                format!(
                    "{} is no longer in deployment group {group}; the deploy cannot go on",
                    swap.new
                )
            })?;
        let old = swap
            .old
            .as_ref()
            .and_then(|id| members.iter().find(|app| &app.id == id));
        let state = (
            new.instances,
            new.serving(),
            old.map(|old| (old.instances, old.tasks.len())),
        );
        if last_state != Some(state) {
            last_state = Some(state);
            last_change = Instant::now();
        }
        let counts = counts(new, old, swap);
        match next_step(new, old, &swap.goal, args.force) {
            Step::Wait(waiting) => {
                let line = format!("{counts}: {}", waiting_for(waiting, new));
                if line != last_line {
                    say(line.clone());
                    last_line = line;
                }
            }
            Step::Shift {
                kill,
                old_instances,
                new_instances,
            } => {
                let mut done = Vec::new();
                if let Some(old) = old {
                    shrink(client, old, &kill, old_instances).await?;
                    if old.instances != old_instances {
                        done.push(format!(
                            "{} to {old_instances} (killed {})",
                            old.id,
                            kill.len()
                        ));
                    }
                }
                if let Some(instances) = new_instances {
                    let path = format!("/v2/apps/{}{}", id_path(&new.id), args.force_query('?'));
                    client
                        .call(Method::PUT, &path, Some(&json!({ "instances": instances })))
                        .await
                        .with_context(|| format!("scaling {} to {instances}", new.id))?;
                    done.push(format!("{} to {instances}", new.id));
                }
                last_line = format!("{counts}: scaled {}", done.join(", "));
                say(last_line.clone());
            }
            Step::DeleteOld => {
                let Some(old) = old else {
                    anyhow::bail!("internal: no old colour to delete");
                };
                let path = format!("/v2/apps/{}?force=true", id_path(&old.id));
                client
                    .call(Method::DELETE, &path, None)
                    .await
                    .with_context(|| format!("deleting {}", old.id))?;
                say(format!("{counts}: deleted {}", old.id));
                wait_released(client, &old.id, args, &say).await?;
                return summary(client, group, new, Some(&old.id), None);
            }
            Step::Done => return summary(client, group, new, None, None),
            Step::Split => return summary(client, group, new, None, old),
        }
        if last_change.elapsed() > args.max_wait {
            anyhow::bail!(
                "no progress for {} ({counts}); both colours are left as they are. Rerun with \
                 --resume to continue, --complete-cur to finish or --complete-prev to roll back",
                humantime::format_duration(args.max_wait)
            );
        }
        tokio::time::sleep(args.step_delay).await;
    }
}

/// Waits until no deployment affects app `id` (a deleted app's tasks are stopped), for at
/// most `--max-wait`.
async fn wait_released(
    client: &Client,
    id: &str,
    args: &DeployArgs,
    say: &impl Fn(String),
) -> anyhow::Result<()> {
    let since = Instant::now();
    let mut said = false;
    loop {
        let deployments = client.call(Method::GET, "/v2/deployments", None).await?;
        let held = deployments
            .as_array()
            .into_iter()
            .flatten()
            .any(|deployment| {
                deployment["affectedApps"]
                    .as_array()
                    .is_some_and(|apps| apps.iter().any(|app| app.as_str() == Some(id)))
            });
        if !held {
            return Ok(());
        }
        if since.elapsed() > args.max_wait {
            anyhow::bail!(
                "a deployment still holds {id} after {}",
                humantime::format_duration(args.max_wait)
            );
        }
        if !said {
            say(format!("waiting for the deployment that holds {id}"));
            said = true;
        }
        tokio::time::sleep(args.step_delay.min(Duration::from_secs(1))).await;
    }
}

/// Kills `kill` (lowering the old colour's instance count by as many) and, if the old
/// colour had fewer tasks than instances, sets its count to `instances`.
async fn shrink(
    client: &Client,
    old: &LiveApp,
    kill: &[String],
    instances: u32,
) -> anyhow::Result<()> {
    if !kill.is_empty() {
        // The old colour may be held by its previous scale-down, or by a stuck rollout of
        // a canary being rolled back: override either.
        let path = "/v2/tasks/delete?scale=true&force=true";
        client
            .call(Method::POST, path, Some(&json!({ "ids": kill })))
            .await
            .with_context(|| format!("killing {} task(s) of {}", kill.len(), old.id))?;
    }
    let killed = u32::try_from(kill.len()).unwrap_or(u32::MAX);
    if old.instances.saturating_sub(killed) > instances {
        let path = format!("/v2/apps/{}?force=true", id_path(&old.id));
        client
            .call(Method::PUT, &path, Some(&json!({ "instances": instances })))
            .await
            .with_context(|| format!("scaling {} to {instances}", old.id))?;
    }
    Ok(())
}

/// `/web-green 1/3 in rotation (1 instance), /web-blue 3 instances`.
fn counts(new: &LiveApp, old: Option<&LiveApp>, swap: &Swap) -> String {
    let plural = |n: u32| if n == 1 { "" } else { "s" };
    let mut out = format!(
        "{} {}/{} in rotation ({} instance{})",
        new.id,
        new.serving(),
        swap.goal.new_instances,
        new.instances,
        plural(new.instances)
    );
    match (old, &swap.old) {
        (Some(old), _) => out.push_str(&format!(
            ", {} {} instance{}",
            old.id,
            old.instances,
            plural(old.instances)
        )),
        (None, Some(id)) => out.push_str(&format!(", {id} gone")),
        (None, None) => {}
    }
    out
}

fn waiting_for(waiting: Waiting, new: &LiveApp) -> String {
    match waiting {
        Waiting::NewDeploying => format!("waiting for {}'s deployment", new.id),
        Waiting::Rotation => format!("waiting for {}'s tasks to enter rotation", new.id),
    }
}

/// Prints how the deploy ended: the new colour, and what was deleted or how traffic is
/// split.
fn summary(
    client: &Client,
    group: &str,
    new: &LiveApp,
    deleted: Option<&str>,
    split_with: Option<&LiveApp>,
) -> anyhow::Result<()> {
    let colour = new.colour().map(definition::Colour::as_str);
    let bind_port = new.labels.get(BIND_PORT).cloned();
    let mut json = json!({
        "group": group,
        "app": new.id,
        "colour": colour,
        "instances": new.instances,
        "servicePort": new.service_port,
        "loadBalancerPort": bind_port,
        "deleted": deleted,
    });
    if let Some(old) = split_with {
        json["canary"] = json!({ "new": new.instances, "oldApp": old.id, "old": old.instances });
    }
    client.print(&json, |_| match split_with {
        Some(old) => {
            let total = new.instances + old.instances;
            let percent = (new.instances * 100).checked_div(total).unwrap_or(0);
            format!(
                "canary: {} has {} instance(s) and {} has {}: traffic splits {}:{} by instance \
                 ratio ({percent}% to the new colour). Rerun with --complete-cur to move \
                 every instance to {}, or --complete-prev to roll back to {}\n",
                new.id,
                new.instances,
                old.id,
                old.instances,
                new.instances,
                old.instances,
                new.id,
                old.id
            )
        }
        None => format!(
            "deployed {} ({}) in deployment group {group}: {} instance(s) on service port {} \
             (load balancer port {}){}\n",
            new.id,
            colour.unwrap_or("-"),
            new.instances,
            new.service_port.map_or("-".into(), |p| p.to_string()),
            bind_port.as_deref().unwrap_or("-"),
            deleted.map_or(String::new(), |old| format!("; deleted {old}"))
        ),
    });
    Ok(())
}

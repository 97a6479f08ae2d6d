//! The fixed list of provisioning steps, their progress lines, and failure injection.
//!
//! `orch up` on machines of their own runs, in order: machines → wait-ssh → upload → render →
//! start-masters → wait-leader → start-agents → wait-agents → gitops → endpoints. Each step
//! prints `==> <step>` and a line per machine as it goes (`    master-2: uploaded orch
//! (41 MB) in 0.4s`), so nothing is silent for long.
//!
//! A [`FailAt`] (`<step>` or `<step>:<machine>`, which the CLI reads from `ORCH_FAIL_AT`)
//! makes the run fail on entering that step (for that machine): how the tests prove that a
//! run broken at any point leaves a state that a re-run or `orch destroy` cleans up. The
//! library never reads the environment; it is handed the value.
//!
//! May depend on: nothing of the crate. Writes to stdout.

use std::fmt::Display;
use std::io::Write as _;

/// The environment variable the CLI reads a [`FailAt`] from (named in [`Injected`]'s message).
pub const FAIL_AT_ENV: &str = "ORCH_FAIL_AT";

/// Where to inject a failure: on entering `step`, or on entering it for `machine` only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailAt {
    /// The step's name, as [`Step::name`] spells it.
    pub step: String,
    /// The machine, when the injection names one.
    pub machine: Option<String>,
}

impl FailAt {
    /// `<step>` or `<step>:<machine>`; None for an empty text.
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        if text.is_empty() {
            return None;
        }
        Some(match text.split_once(':') {
            Some((step, machine)) => Self {
                step: step.to_owned(),
                machine: Some(machine.to_owned()),
            },
            None => Self {
                step: text.to_owned(),
                machine: None,
            },
        })
    }
}

/// One provisioning step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Create or find the machines.
    Machines,
    /// Wait until each machine answers SSH.
    WaitSsh,
    /// Upload the orch binary.
    Upload,
    /// Render the config and service units from `templates/`.
    Render,
    /// Start (or repair) the masters.
    StartMasters,
    /// Wait for a leader.
    WaitLeader,
    /// Start (or repair) the agents.
    StartAgents,
    /// Wait until every agent has registered.
    WaitAgents,
    /// Register the gitops repos.
    Gitops,
    /// Print the endpoints.
    Endpoints,
}

impl Step {
    /// Every step, in order.
    pub const ALL: [Step; 10] = [
        Step::Machines,
        Step::WaitSsh,
        Step::Upload,
        Step::Render,
        Step::StartMasters,
        Step::WaitLeader,
        Step::StartAgents,
        Step::WaitAgents,
        Step::Gitops,
        Step::Endpoints,
    ];

    /// The step's name, as printed and as `ORCH_FAIL_AT` names it.
    pub fn name(self) -> &'static str {
        match self {
            Step::Machines => "machines",
            Step::WaitSsh => "wait-ssh",
            Step::Upload => "upload",
            Step::Render => "render",
            Step::StartMasters => "start-masters",
            Step::WaitLeader => "wait-leader",
            Step::StartAgents => "start-agents",
            Step::WaitAgents => "wait-agents",
            Step::Gitops => "gitops",
            Step::Endpoints => "endpoints",
        }
    }
}

/// A failure injected with `ORCH_FAIL_AT`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("failure injected at step {step}{} ({FAIL_AT_ENV})", machine.as_ref().map(|m| format!(" on {m}")).unwrap_or_default())]
pub struct Injected {
    /// The step.
    pub step: &'static str,
    /// The machine, when the injection named one.
    pub machine: Option<String>,
}

/// Prints progress and fails where its [`FailAt`] says.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    fail_at: Option<FailAt>,
    quiet: bool,
}

impl Progress {
    /// Progress on stdout, failing at `fail_at` if given.
    pub fn new(fail_at: Option<FailAt>) -> Self {
        Self {
            fail_at,
            quiet: false,
        }
    }

    /// Progress that prints nothing (for `orch status` and tests).
    pub fn quiet() -> Self {
        Self {
            fail_at: None,
            quiet: true,
        }
    }

    /// Enters `step`: prints `==> step`, or fails when the injection names it (without a
    /// machine).
    pub fn step(&self, step: Step) -> Result<(), Injected> {
        self.say(format_args!("==> {}", step.name()));
        match &self.fail_at {
            Some(FailAt {
                step: name,
                machine: None,
            }) if name == step.name() => Err(Injected {
                step: step.name(),
                machine: None,
            }),
            _ => Ok(()),
        }
    }

    /// Enters `step` for `machine`: fails when the injection names both.
    pub fn enter(&self, step: Step, machine: &str) -> Result<(), Injected> {
        match &self.fail_at {
            Some(FailAt {
                step: name,
                machine: Some(m),
            }) if name == step.name() && m == machine => Err(Injected {
                step: step.name(),
                machine: Some(machine.to_owned()),
            }),
            _ => Ok(()),
        }
    }

    /// Goes through `step` for every one of `machines` (an injection still fails it) with
    /// nothing to do there, and says `why`.
    pub fn skip<'a>(
        &self,
        step: Step,
        machines: impl IntoIterator<Item = &'a str>,
        why: impl Display,
    ) -> Result<(), Injected> {
        self.step(step)?;
        for machine in machines {
            self.enter(step, machine)?;
        }
        self.note(why);
        Ok(())
    }

    /// Prints `    <machine>: <message>`.
    pub fn machine(&self, machine: &str, message: impl Display) {
        self.say(format_args!("    {machine}: {message}"));
    }

    /// Prints `    <message>`.
    pub fn note(&self, message: impl Display) {
        self.say(format_args!("    {message}"));
    }

    fn say(&self, line: std::fmt::Arguments<'_>) {
        if !self.quiet {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_injection_fails_exactly_its_step_and_machine() {
        let progress = Progress::new(FailAt::parse("upload:master-2"));
        assert!(progress.step(Step::Upload).is_ok());
        assert!(progress.enter(Step::Upload, "master-1").is_ok());
        let error = progress
            .enter(Step::Upload, "master-2")
            .expect_err("injected");
        assert_eq!(
            error.to_string(),
            "failure injected at step upload on master-2 (ORCH_FAIL_AT)"
        );
        let whole = Progress::new(FailAt::parse("wait-leader"));
        assert!(whole.step(Step::Upload).is_ok());
        assert!(whole.step(Step::WaitLeader).is_err());
        assert!(Progress::new(FailAt::parse(" "))
            .step(Step::Machines)
            .is_ok());
        let names: Vec<&str> = Step::ALL.iter().map(|s| s.name()).collect();
        assert_eq!(names.len(), 10);
        assert_eq!(names[1], "wait-ssh");
    }
}

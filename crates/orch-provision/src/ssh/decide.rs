//! The ssh provider's decisions for one host, as the plan's [`Action`]s: whether to upload
//! the binary (and why), whether to write the service file (the one rendered now differs
//! from the host's), whether to start or restart the node (and why: the plan compares the
//! node's stamp with the binary and service file it will have after the upload and render
//! steps). `orch up --plan` prints them; the upload, render and start steps carry out
//! exactly what they say ([`uploads`], [`planned_write`], [`start_change`]), and decide on
//! the host only where the plan has no decision (a host it could not reach).
//!
//! May depend on: provision::{plan, provider}, ssh::node (service kinds). Pure.

use super::node::ServiceKind;
use crate::plan::{Action, Plan, ServiceFile, UploadWhy};
use crate::provider::Change;

/// Upload or not, for `machine` whose installed binary has `remote_sha` (empty when there is
/// none), when this binary's is `sha`.
pub fn upload(machine: &str, remote_sha: &str, sha: &str) -> Action {
    let machine = machine.to_owned();
    if remote_sha.is_empty() {
        Action::Upload {
            machine,
            why: UploadWhy::NotInstalled,
        }
    } else if remote_sha != sha {
        Action::Upload {
            machine,
            why: UploadWhy::Differs,
        }
    } else {
        Action::BinaryUpToDate { machine }
    }
}

/// Whether `action` says to upload the binary.
pub fn uploads(action: &Action) -> bool {
    matches!(action, Action::Upload { .. })
}

fn service_file(kind: ServiceKind) -> ServiceFile {
    match kind {
        ServiceKind::Systemd => ServiceFile::SystemdUnit,
        ServiceKind::Supervised => ServiceFile::SupervisorScript,
    }
}

/// Write the service file or not, for `machine` whose file has `remote_sha` (empty when
/// there is none), when the one rendered now has `rendered_sha`.
pub fn service(machine: &str, kind: ServiceKind, remote_sha: &str, rendered_sha: &str) -> Action {
    let (machine, file) = (machine.to_owned(), service_file(kind));
    if remote_sha == rendered_sha {
        Action::ServiceUpToDate { machine, file }
    } else {
        Action::WriteService { machine, file }
    }
}

/// Start, restart or leave alone the node of `machine`: it is `alive` (or not), was started
/// with `started_with` (the stamp file, if any), and is to run with `wanted` (the stamp of
/// the binary and service file it will have: the plan works it out before the upload and
/// render steps, the start step reads it on the host). A node runs as specified when it is
/// alive and its stamp is the wanted one.
pub fn start(machine: &str, alive: bool, started_with: Option<&str>, wanted: &str) -> Action {
    let machine = machine.to_owned();
    if !alive {
        Action::StartNode { machine }
    } else if started_with.map(str::trim) == Some(wanted.trim()) {
        Action::NodeUnchanged { machine }
    } else {
        Action::RestartNode { machine }
    }
}

/// The plan's upload decision for `machine`; None where the plan has none (it could not
/// reach the host, or the host is a droplet that did not exist yet): the upload step then
/// decides on the host.
pub fn planned_upload<'a>(plan: &'a Plan, machine: &str) -> Option<&'a Action> {
    plan.find(machine, |a| {
        matches!(a, Action::Upload { .. } | Action::BinaryUpToDate { .. })
    })
}

/// Whether the render step writes `machine`'s service file: not where the plan found it up
/// to date; where the plan has no decision, the write script compares on the host.
pub fn planned_write(plan: &Plan, machine: &str) -> bool {
    plan.find(machine, |a| matches!(a, Action::ServiceUpToDate { .. }))
        .is_none()
}

/// The plan's start decision for `machine`; None where the plan has none (it could not
/// reach the host): the start step then decides on the host.
pub fn planned_start<'a>(plan: &'a Plan, machine: &str) -> Option<&'a Action> {
    plan.find(machine, |a| {
        matches!(
            a,
            Action::StartNode { .. } | Action::RestartNode { .. } | Action::NodeUnchanged { .. }
        )
    })
}

/// What carrying out `action` changes: `None` when it says to leave the node alone (no start
/// call is made), else the change the start call makes.
pub fn start_change(action: &Action) -> Option<Change> {
    match action {
        Action::StartNode { .. } => Some(Change::Started),
        Action::RestartNode { .. } => Some(Change::Restarted),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::super::node::stamp;
    use super::*;

    #[test]
    fn a_node_runs_as_specified_only_when_alive_with_the_current_stamp() {
        let now = stamp("abc", "service v2");
        let before = stamp("abc", "service v1");
        assert_ne!(now, before);
        let line = |alive, started: Option<&str>| start("m", alive, started, &now).to_string();
        assert_eq!(line(false, Some(&now)), "start m (not running)");
        assert_eq!(line(false, None), "start m (not running)");
        let unchanged = "m: running as specified";
        assert_eq!(line(true, Some(&now)), unchanged);
        assert_eq!(line(true, Some(&format!("{now}\n"))), unchanged);
        let restart = "restart m (binary or service changed)";
        assert_eq!(line(true, Some(&before)), restart);
        assert_eq!(line(true, Some(&stamp("def", "service v2"))), restart);
        assert_eq!(line(true, None), restart);
    }

    #[test]
    fn the_start_step_calls_start_only_where_the_decision_says_so() {
        let now = stamp("abc", "service");
        assert_eq!(start_change(&start("m", true, Some(&now), &now)), None);
        assert_eq!(
            start_change(&start("m", false, None, &now)),
            Some(Change::Started)
        );
        assert_eq!(
            start_change(&start("m", true, None, &now)),
            Some(Change::Restarted)
        );
        assert_eq!(start_change(&upload("m", "", "abc")), None);
    }

    #[test]
    fn the_steps_carry_out_the_plan_where_it_decided() {
        let now = stamp("abc", "service");
        let plan = Plan {
            actions: vec![
                upload("m", "abc", "abc"),
                service("m", ServiceKind::Supervised, "s1", "s1"),
                start("m", true, Some(&now), &now),
                upload("n", "", "abc"),
                start("n", false, None, &now),
            ],
        };
        // m: no upload, no service write, and no start call.
        assert!(!planned_upload(&plan, "m").is_some_and(uploads));
        assert!(!planned_write(&plan, "m"));
        assert_eq!(planned_start(&plan, "m").and_then(start_change), None);
        // n: an upload, then a start.
        assert!(planned_upload(&plan, "n").is_some_and(uploads));
        assert_eq!(
            planned_start(&plan, "n").and_then(start_change),
            Some(Change::Started)
        );
        // A host the plan knows nothing of is decided on the host.
        assert_eq!(planned_upload(&plan, "o"), None);
        assert_eq!(planned_start(&plan, "o"), None);
        assert!(planned_write(&plan, "o"));
    }

    #[test]
    fn a_service_file_is_written_only_when_it_differs_from_the_one_rendered_now() {
        assert_eq!(
            service("m", ServiceKind::Systemd, "", "s1").to_string(),
            "write the systemd unit of m (missing or changed)"
        );
        assert_eq!(
            service("m", ServiceKind::Supervised, "s0", "s1").to_string(),
            "write the supervisor script of m (missing or changed)"
        );
        assert_eq!(
            service("m", ServiceKind::Supervised, "s1", "s1").to_string(),
            "m: supervisor script up to date"
        );
    }

    #[test]
    fn the_upload_step_uploads_only_where_the_decision_says_so() {
        assert_eq!(
            upload("m", "", "abc").to_string(),
            "upload orch to m (not installed)"
        );
        assert_eq!(
            upload("m", "def", "abc").to_string(),
            "upload orch to m (binary differs)"
        );
        assert_eq!(
            upload("m", "abc", "abc").to_string(),
            "m: orch binary up to date"
        );
        assert!(uploads(&upload("m", "", "abc")));
        assert!(uploads(&upload("m", "def", "abc")));
        assert!(!uploads(&upload("m", "abc", "abc")));
    }
}

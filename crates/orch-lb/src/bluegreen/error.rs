//! The one error type of blue/green deploys: what is wrong with the app file, with the
//! apps found in the deployment group, or with the flags for them.
//!
//! May depend on: std.

/// Why a blue/green deploy cannot be planned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlueGreenError {
    /// The definition is not a JSON object.
    #[error("the app definition is not an object")]
    NotAnObject,
    /// The definition has no usable `id`.
    #[error("the app definition has no valid \"id\" ({reason})")]
    BadId {
        /// What is wrong with it.
        reason: String,
    },
    /// Labels zdd needs are missing.
    #[error(
        "the app definition lacks the label(s) {}: blue/green deploys need \
         HAPROXY_DEPLOYMENT_GROUP (the name both colours share) and \
         HAPROXY_DEPLOYMENT_ALT_PORT (the second service port)",
        labels.join(", ")
    )]
    MissingLabels {
        /// The missing label names.
        labels: Vec<&'static str>,
    },
    /// A label holds something of the wrong kind.
    #[error("label {label} is {value:?}: {expected}")]
    BadLabel {
        /// The label name.
        label: &'static str,
        /// Its value as given.
        value: String,
        /// What it should be.
        expected: &'static str,
    },
    /// The app does not have exactly one service port.
    #[error(
        "blue/green deploys need exactly one service port (in \"portDefinitions\", \"ports\" or \
         the container's \"portMappings\"); the app definition has {found}"
    )]
    ServicePorts {
        /// How many it has.
        found: usize,
    },
    /// The one service port is 0 (or not a port number).
    #[error(
        "the service port must be a fixed number (not 0): the load balancer binds it for both \
         colours, and HAPROXY_DEPLOYMENT_ALT_PORT alternates with it"
    )]
    NoFixedServicePort,
    /// The service port and the alternate port are the same.
    #[error("HAPROXY_DEPLOYMENT_ALT_PORT ({port}) must differ from the service port")]
    AltPortIsServicePort {
        /// The port both name.
        port: u16,
    },
    /// `instances` is not a non-negative integer.
    #[error("\"instances\" must be a non-negative integer, not {value}")]
    BadInstances {
        /// The value as given.
        value: String,
    },
    /// Two apps of the group exist and no flag says what to do with them.
    #[error(
        "deployment group {group} has an unfinished or canary deploy: {apps}. Rerun with \
         --resume to continue it, --complete-cur to move every instance to {newest}, or \
         --complete-prev to roll back to {oldest}"
    )]
    Unfinished {
        /// The group.
        group: String,
        /// The apps with their instance counts.
        apps: String,
        /// The app started last.
        newest: String,
        /// The app started first.
        oldest: String,
    },
    /// More than two apps share the group.
    #[error(
        "deployment group {group} has {count} apps ({apps}); a blue/green deploy handles two. \
         Remove the extra ones first"
    )]
    TooManyApps {
        /// The group.
        group: String,
        /// How many apps.
        count: usize,
        /// Their ids.
        apps: String,
    },
    /// `--resume`, `--complete-cur` or `--complete-prev` with fewer than two apps.
    #[error("{flag}: deployment group {group} has no unfinished or canary deploy ({found})")]
    NothingToResume {
        /// The flag given.
        flag: &'static str,
        /// The group.
        group: String,
        /// What was found instead.
        found: String,
    },
    /// `--new-instances` without a running colour to split traffic with.
    #[error(
        "--new-instances needs a running colour of deployment group {group} to split traffic \
         with; deploy without it first"
    )]
    CanaryWithoutOld {
        /// The group.
        group: String,
    },
    /// `--new-instances` not below the target.
    #[error(
        "--new-instances {new} must be below the target of {target} instances (a full deploy \
         moves them all)"
    )]
    CanaryTooLarge {
        /// The requested count.
        new: u32,
        /// The target.
        target: u32,
    },
    /// An app in the API's answer lacks a field.
    #[error("the API's answer for app {app} has no valid {field}")]
    BadAnswer {
        /// The app (or `?`).
        app: String,
        /// The missing field.
        field: &'static str,
    },
}

//! Marathon's `/v2` API: the shapes, status codes and error bodies of Marathon 1.6–1.10.

mod apps;
mod events;
mod info;
mod tasks;

use crate::master::Master;
use axum::Router;
use std::sync::Arc;

pub(super) fn routes() -> Router<Arc<Master>> {
    Router::new()
        .merge(apps::routes())
        .merge(events::routes())
        .merge(info::routes())
        .merge(tasks::routes())
}

/// Marathon parses query booleans with Java's `Boolean.valueOf`: case-insensitive "true".
fn query_flag(
    query: &std::collections::HashMap<String, String>,
    name: &str,
    default: bool,
) -> bool {
    query
        .get(name)
        .map_or(default, |value| value.eq_ignore_ascii_case("true"))
}

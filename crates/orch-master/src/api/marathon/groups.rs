//! `/v2/groups`: the group tree (explicit groups plus the groups app ids imply) with nested
//! apps as Marathon's AppInfo, and group create, update (structural, `scaleBy`) and delete,
//! each one deployment over all the apps it touches.
//!
//! Bodies are read into a [`GroupUpdate`] (422 with paths such as `/groups(0)/apps(1)/cmd`),
//! checked against the current state, then written as `Command::UpdateGroup`; the state
//! checks again on apply (ids, cycles, locks: 409 unless `force`).

use super::app_info::{app_info, Embed};
use super::{deployment_result, insert_header, new_deployment_id, now, query_flag, unexpected};
use crate::api::body::JsonObject;
use crate::api::ApiError;
use crate::master::Master;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use orch_core::model::{App, GroupId, GroupUpdate, Timestamp};
use orch_core::state::{Applied, ClusterState, Command};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

pub(super) fn routes() -> Router<Arc<Master>> {
    Router::new()
        .route(
            "/v2/groups",
            get(show_root)
                .post(create_root)
                .put(update_root)
                .delete(remove_root),
        )
        .route(
            "/v2/groups/{*path}",
            get(show).post(create).put(update).delete(remove),
        )
}

/// Group JSON embeds no app details unless `embed=group.apps.<detail>` asks.
const GROUP_EMBED: Embed = Embed {
    tasks: false,
    counts: false,
    deployments: false,
    last_task_failure: false,
    readiness: false,
    task_stats: false,
};

async fn show_root(
    master: State<Arc<Master>>,
    query: Query<Vec<(String, String)>>,
) -> Result<Json<Value>, ApiError> {
    show(master, Path(String::new()), query).await
}

async fn show(
    State(master): State<Arc<Master>>,
    Path(path): Path<String>,
    Query(query): Query<Vec<(String, String)>>,
) -> Result<Json<Value>, ApiError> {
    let state = master.read_state().await?;
    let embed = Embed::parse(&query, GROUP_EMBED);
    if let Some(id) = path
        .strip_suffix("/versions")
        .or_else(|| (path == "versions").then_some(""))
    {
        let id = existing_group(&state, id)?;
        let tree = Tree::new(&state, embed);
        return Ok(Json(json!([tree.version(&id)])));
    }
    if let Some((id, version)) = path.rsplit_once("/versions/") {
        let id = existing_group(&state, id)?;
        let tree = Tree::new(&state, embed);
        let current = tree.version(&id);
        return match Timestamp::parse(version) {
            Ok(asked) if asked == current => Ok(Json(tree.json(&id))),
            _ => Err(ApiError::GroupVersionNotFound {
                id: id.to_string(),
                version: version.to_owned(),
            }),
        };
    }
    let id = existing_group(&state, &path)?;
    Ok(Json(Tree::new(&state, embed).json(&id)))
}

/// The group named by `raw`, or 404.
fn existing_group(state: &ClusterState, raw: &str) -> Result<GroupId, ApiError> {
    let unknown = || ApiError::GroupNotFound(format!("/{}", raw.trim_matches('/')));
    let id = GroupId::parse(raw).map_err(|_| unknown())?;
    if state.group_exists(&id) {
        Ok(id)
    } else {
        Err(unknown())
    }
}

/// The group tree of one state, ready to render.
struct Tree<'a> {
    state: &'a ClusterState,
    embed: Embed,
    /// Direct subgroups of each group.
    children: BTreeMap<GroupId, Vec<GroupId>>,
    /// Apps directly in each group.
    apps: BTreeMap<GroupId, Vec<&'a Arc<App>>>,
}

impl<'a> Tree<'a> {
    fn new(state: &'a ClusterState, embed: Embed) -> Self {
        let mut children: BTreeMap<GroupId, Vec<GroupId>> = BTreeMap::new();
        for id in state.group_ids() {
            if !id.is_root() {
                children.entry(id.parent()).or_default().push(id);
            }
        }
        let mut apps: BTreeMap<GroupId, Vec<&Arc<App>>> = BTreeMap::new();
        for app in state.apps.values() {
            apps.entry(GroupId::parent_of(app.id.as_str()))
                .or_default()
                .push(app);
        }
        Self {
            state,
            embed,
            children,
            apps,
        }
    }

    /// The group's version: when it was last changed explicitly, or else the newest
    /// version below it (the epoch for an empty root).
    fn version(&self, id: &GroupId) -> Timestamp {
        if let Some(group) = self.state.groups.get(id) {
            return group.version;
        }
        let apps = self
            .apps
            .get(id)
            .into_iter()
            .flatten()
            .map(|app| app.version);
        let groups = self
            .children
            .get(id)
            .into_iter()
            .flatten()
            .map(|child| self.version(child));
        apps.chain(groups)
            .max()
            .unwrap_or_else(|| Timestamp::from_millis(0))
    }

    /// Marathon's GroupInfo of `id` with every subgroup and app.
    fn json(&self, id: &GroupId) -> Value {
        let apps: Vec<Value> = self
            .apps
            .get(id)
            .into_iter()
            .flatten()
            .map(|app| {
                serde_json::to_value(app_info(app, self.state, self.embed)).unwrap_or_default()
            })
            .collect();
        let groups: Vec<Value> = self
            .children
            .get(id)
            .into_iter()
            .flatten()
            .map(|child| self.json(child))
            .collect();
        let record = self.state.groups.get(id);
        let dependencies = record
            .map(|group| group.dependencies.clone())
            .unwrap_or_default();
        let mut json = json!({
            "id": id,
            "apps": apps,
            "groups": groups,
            "pods": [],
            "dependencies": dependencies,
            "version": self.version(id),
        });
        // Written only when set: marathon-python's MarathonGroup rejects keys it does not know.
        if let (Some(enforce_role), Some(object)) =
            (record.and_then(|g| g.enforce_role), json.as_object_mut())
        {
            object.insert("enforceRole".into(), json!(enforce_role));
        }
        json
    }
}

/// The group a body's `id` names: absolute as given, relative below `base`, `base` when
/// the body has no `id`.
fn body_group(base: &GroupId, body: &Map<String, Value>) -> Result<GroupId, ApiError> {
    match body.get("id") {
        None | Some(Value::Null) => Ok(base.clone()),
        Some(Value::String(id)) if id.starts_with('/') => {
            GroupId::parse(id).map_err(|e| ApiError::invalid("/id", e.to_string()))
        }
        Some(Value::String(id)) => GroupId::parse(&format!("{base}/{id}"))
            .map_err(|e| ApiError::invalid("/id", e.to_string())),
        Some(_) => Err(ApiError::invalid("/id", "error.expected.jsstring")),
    }
}

fn url_group(path: &str) -> Result<GroupId, ApiError> {
    GroupId::parse(path).map_err(|e| ApiError::invalid("/id", e.to_string()))
}

async fn create_root(
    master: State<Arc<Master>>,
    query: Query<HashMap<String, String>>,
    body: JsonObject,
) -> Result<Response, ApiError> {
    create(master, Path(String::new()), query, body).await
}

/// POST: create a group (the body's `id` is relative to the path's group); 409 if it exists.
async fn create(
    State(master): State<Arc<Master>>,
    Path(path): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    JsonObject(body): JsonObject,
) -> Result<Response, ApiError> {
    let id = body_group(&url_group(&path)?, &body)?;
    let force = query_flag(&query, "force", false);
    write_update(&master, id, &body, true, force).await
}

async fn update_root(
    master: State<Arc<Master>>,
    query: Query<HashMap<String, String>>,
    body: JsonObject,
) -> Result<Response, ApiError> {
    update(master, Path(String::new()), query, body).await
}

/// PUT: create or update the group the path names (or, at `/v2/groups`, the body's `id`).
async fn update(
    State(master): State<Arc<Master>>,
    Path(path): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    JsonObject(body): JsonObject,
) -> Result<Response, ApiError> {
    let id = if path.trim_matches('/').is_empty() {
        body_group(&GroupId::root(), &body)?
    } else {
        url_group(&path)?
    };
    let force = query_flag(&query, "force", false);
    write_update(&master, id, &body, false, force).await
}

/// Reads, checks and writes a group update; answers Marathon's deployment result.
async fn write_update(
    master: &Master,
    id: GroupId,
    body: &Map<String, Value>,
    create: bool,
    force: bool,
) -> Result<Response, ApiError> {
    if let Some(version) = body.get("version").filter(|v| !v.is_null()) {
        // Only the current definition of a group is kept: a rollback has nothing to go to.
        return Err(ApiError::invalid(
            "/version",
            format!("group {id} has no stored version {version}"),
        ));
    }
    let update = GroupUpdate::from_json(id.clone(), body, "")
        .map_err(|violations| ApiError::Invalid { violations })?;
    let state = master.read_state().await?;
    let version = now();
    state
        .group_after_update(&update, version, create)
        .map_err(|rejection| unexpected(Applied::Rejected(rejection)))?;
    let command = Command::UpdateGroup {
        update,
        version,
        create,
        deployment_id: new_deployment_id(),
        force,
    };
    match master.write(command).await? {
        Applied::GroupChanged {
            id,
            version,
            deployment_id,
            ..
        } => {
            if create {
                let mut response = deployment_result(StatusCode::CREATED, &deployment_id, version);
                insert_header(
                    &mut response,
                    axum::http::header::LOCATION,
                    &format!("/v2/groups{}", if id.is_root() { "" } else { id.as_str() }),
                );
                Ok(response)
            } else {
                Ok(deployment_result(StatusCode::OK, &deployment_id, version))
            }
        }
        other => Err(unexpected(other)),
    }
}

async fn remove_root(
    master: State<Arc<Master>>,
    query: Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    remove(master, Path(String::new()), query).await
}

/// DELETE: the group and everything below it (`force` defaults to false).
async fn remove(
    State(master): State<Arc<Master>>,
    Path(path): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let id = GroupId::parse(&path)
        .map_err(|_| ApiError::GroupNotFound(format!("/{}", path.trim_matches('/'))))?;
    let command = Command::DeleteGroup {
        id,
        version: now(),
        deployment_id: new_deployment_id(),
        force: query_flag(&query, "force", false),
    };
    match master.write(command).await? {
        Applied::GroupChanged {
            version,
            deployment_id,
            ..
        } => Ok(deployment_result(StatusCode::OK, &deployment_id, version)),
        other => Err(unexpected(other)),
    }
}

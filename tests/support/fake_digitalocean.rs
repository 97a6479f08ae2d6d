//! ##########################################################################################
//! ##                                                                                      ##
//! ##   THIS IS A FAKE OF DIGITALOCEAN'S API v2, FOR TESTS ONLY. IT IS NOT DIGITALOCEAN.   ##
//! ##                                                                                      ##
//! ##########################################################################################
//!
//! Written from DigitalOcean's API documentation (docs.digitalocean.com/reference/api and
//! the digitalocean/openapi specification): the endpoints the digital_ocean provider uses,
//! with DigitalOcean's shapes and status codes, held in memory:
//!
//! - `GET /v2/droplets` (`tag_name`, `page`, `per_page`), `POST /v2/droplets` (`name` or
//!   `names`, at most 10; 202), `GET /v2/droplets/{id}`, `DELETE /v2/droplets/{id}` (204),
//!   `DELETE /v2/droplets?tag_name=` (204);
//! - `GET /v2/firewalls`, `POST /v2/firewalls` (202), `GET|PUT|DELETE /v2/firewalls/{id}`
//!   (PUT replaces the rules, 200);
//! - `GET /v2/actions/{id}`, `GET /v2/account/keys`;
//! - errors as `{"id", "message", "request_id"}` (401, 404, 422, 429); `ratelimit-limit`,
//!   `ratelimit-remaining`, `ratelimit-reset` on every answer; lists paged with
//!   `links.pages` and `meta.total`, with pages much smaller than DigitalOcean's (20, at most
//!   200) so that a client must follow them.
//!
//! Droplets go `new` → `active` after a short delay and get a public IPv4 from the fake's
//! own loopback range (and, when asked, a VPC address from another). With [`SshHosting`], each droplet is an SSH test host: a real
//! Debian sshd on its IP and the infra file's port, with the ed25519 host key the droplet's
//! cloud-init user data gives it (`ssh_keys:`, the branch of its hostname) and root's
//! authorized keys from the account keys named at create; deleting the droplet stops that
//! sshd and kills what runs under the droplet's root dir.
//!
//! Tests can read every request (method, path, query, status) and make chosen requests
//! answer 429 with `retry-after` a number of times.
#![allow(dead_code)]

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// DigitalOcean's rate limit per hour, reported in `ratelimit-limit`.
const HOURLY_LIMIT: u64 = 5000;

/// A key of the account (`/v2/account/keys`).
#[derive(Clone, Debug)]
pub struct AccountKey {
    /// Its id.
    pub id: u64,
    /// Its fingerprint (MD5, colon-separated, as DigitalOcean shows it).
    pub fingerprint: String,
    /// Its public key line.
    pub public_key: String,
}

/// Droplets as SSH test hosts.
#[derive(Clone, Debug)]
pub struct SshHosting {
    /// The port every droplet's sshd listens on (the infra file's `ssh_port`).
    pub port: u16,
    /// Each droplet's "disk": `<root>/<droplet name>`, where its sshd's files live and
    /// under which everything is killed when the droplet is deleted.
    pub root: PathBuf,
}

/// How the fake behaves.
#[derive(Clone, Debug)]
pub struct FakeOptions {
    /// The only token accepted.
    pub token: String,
    /// Items per page when none is asked for, and the most a page holds.
    pub page_size: usize,
    /// Droplets get `<prefix><n>`, n from 2: e.g. `127.77.1.` gives 127.77.1.2, ...
    pub ip_prefix: String,
    /// How long a droplet stays `new`.
    pub active_after: Duration,
    /// The account's SSH keys.
    pub account_keys: Vec<AccountKey>,
    /// Start an sshd per droplet.
    pub ssh: Option<SshHosting>,
    /// Give each droplet a VPC address too, `<prefix><n>` with the n of its public one.
    pub private_prefix: Option<String>,
}

impl FakeOptions {
    /// Token `token`, pages of 4, droplets active after 300 ms, IPs `<ip_prefix>N`.
    pub fn new(token: &str, ip_prefix: &str) -> Self {
        Self {
            token: token.to_owned(),
            page_size: 4,
            ip_prefix: ip_prefix.to_owned(),
            active_after: Duration::from_millis(300),
            account_keys: vec![AccountKey {
                id: 512190,
                fingerprint: "3b:16:bf:e4:8b:00:8b:b8:59:8c:a9:d3:f0:19:45:fa".to_owned(),
                public_key: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPlaceholderKeyNotUsedForLogin"
                    .to_owned(),
            }],
            ssh: None,
            private_prefix: None,
        }
    }
}

/// One request the fake answered.
#[derive(Clone, Debug)]
pub struct Seen {
    /// `GET`, `POST`, ...
    pub method: String,
    /// `/v2/droplets`.
    pub path: String,
    /// The raw query, `tag_name=...&page=2`.
    pub query: String,
    /// The JSON body, if any.
    pub body: Option<Value>,
    /// The status answered.
    pub status: u16,
}

impl Seen {
    /// The value of query parameter `name`.
    pub fn param(&self, name: &str) -> Option<String> {
        query_map(&self.query).remove(name)
    }
}

struct Injection {
    method: String,
    path: String,
    times: u32,
    retry_after: u64,
}

struct FakeDroplet {
    json: Value,
    created: Instant,
    host: Option<SshdHost>,
}

struct Inner {
    options: FakeOptions,
    base: String,
    next_id: u64,
    next_ip: u32,
    droplets: BTreeMap<u64, FakeDroplet>,
    firewalls: Vec<Value>,
    actions: BTreeMap<u64, Value>,
    seen: Vec<Seen>,
    times: Vec<Instant>,
    injections: Vec<Injection>,
    created_total: usize,
}

/// The fake, serving on 127.0.0.1; stopped (and its sshds with it) on drop.
pub struct FakeDigitalOcean {
    /// `http://127.0.0.1:PORT`: the infra file's `api_url`.
    pub url: String,
    inner: Arc<Mutex<Inner>>,
    server: tokio::task::JoinHandle<()>,
}

impl FakeDigitalOcean {
    /// Starts the fake on a free port.
    pub async fn start(options: FakeOptions) -> FakeDigitalOcean {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake");
        let addr: SocketAddr = listener.local_addr().expect("local addr");
        let url = format!("http://{addr}");
        let inner = Arc::new(Mutex::new(Inner {
            options,
            base: url.clone(),
            next_id: 3164444,
            next_ip: 2,
            droplets: BTreeMap::new(),
            firewalls: Vec::new(),
            actions: BTreeMap::new(),
            seen: Vec::new(),
            times: Vec::new(),
            injections: Vec::new(),
            created_total: 0,
        }));
        let shared = inner.clone();
        let app = axum::Router::new().fallback(move |request: axum::extract::Request| {
            let shared = shared.clone();
            async move { handle(shared, request).await }
        });
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeDigitalOcean { url, inner, server }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every request answered so far, in order.
    pub fn requests(&self) -> Vec<Seen> {
        self.lock().seen.clone()
    }

    /// The `/v2/...` requests with `method` and `path` answered so far.
    pub fn requests_to(&self, method: &str, path: &str) -> Vec<Seen> {
        self.requests()
            .into_iter()
            .filter(|s| s.method == method && s.path == path)
            .collect()
    }

    /// Answers the next `times` requests `method path` with 429 and `retry-after`.
    pub fn inject_429(&self, method: &str, path: &str, times: u32, retry_after: u64) {
        self.lock().injections.push(Injection {
            method: method.to_owned(),
            path: path.to_owned(),
            times,
            retry_after,
        });
    }

    /// The droplets that exist, as the API shows them.
    pub fn droplets(&self) -> Vec<Value> {
        let mut inner = self.lock();
        let ids: Vec<u64> = inner.droplets.keys().copied().collect();
        ids.into_iter()
            .filter_map(|id| droplet_view(&mut inner, id))
            .collect()
    }

    /// Sets the status of the droplet `name` (`off`: powered off in the control panel).
    pub fn set_status(&self, name: &str, status: &str) {
        let mut inner = self.lock();
        for droplet in inner.droplets.values_mut() {
            if droplet.json["name"] == name {
                droplet.json["status"] = json!(status);
            }
        }
    }

    /// The firewalls that exist.
    pub fn firewalls(&self) -> Vec<Value> {
        self.lock().firewalls.clone()
    }

    /// How many droplets were ever created.
    pub fn created_total(&self) -> usize {
        self.lock().created_total
    }

    /// The sshd logs of the droplets that exist, for failure messages.
    pub fn sshd_logs(&self) -> String {
        let inner = self.lock();
        inner
            .droplets
            .values()
            .filter_map(|d| d.host.as_ref())
            .map(|h| {
                format!(
                    "--- sshd {} ---\n{}",
                    h.ip,
                    std::fs::read_to_string(h.dir.join("sshd.log")).unwrap_or_default()
                )
            })
            .collect()
    }
}

impl Drop for FakeDigitalOcean {
    fn drop(&mut self) {
        self.server.abort();
        let mut inner = self.lock();
        let droplets = std::mem::take(&mut inner.droplets);
        drop(inner);
        for (_, droplet) in droplets {
            if let Some(host) = droplet.host {
                host.stop();
            }
        }
    }
}

fn now_epoch() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn query_map(query: &str) -> BTreeMap<String, String> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => out.push(b),
                    Err(_) => out.extend_from_slice(&bytes[i..i + 3]),
                }
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn error(status: StatusCode, id: &str, message: &str) -> (StatusCode, Value) {
    (
        status,
        json!({"id": id, "message": message, "request_id": uuid::Uuid::new_v4().to_string()}),
    )
}

fn not_found() -> (StatusCode, Value) {
    error(
        StatusCode::NOT_FOUND,
        "not_found",
        "The resource you were accessing could not be found.",
    )
}

fn unprocessable(message: &str) -> (StatusCode, Value) {
    error(
        StatusCode::UNPROCESSABLE_ENTITY,
        "unprocessable_entity",
        message,
    )
}

async fn handle(shared: Arc<Mutex<Inner>>, request: axum::extract::Request) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let query = request.uri().query().unwrap_or("").to_owned();
    let headers = request.headers().clone();
    let bytes = axum::body::to_bytes(request.into_body(), 1 << 20)
        .await
        .unwrap_or_default();
    let body: Option<Value> = serde_json::from_slice(&bytes).ok();
    // Starting and stopping sshd blocks; do the whole request off the async threads.
    let answer = tokio::task::spawn_blocking(move || {
        let mut inner = shared.lock().unwrap_or_else(|p| p.into_inner());
        let (status, json, retry_after) =
            answer(&mut inner, &method, &path, &query, &headers, body.as_ref());
        inner.seen.push(Seen {
            method: method.to_string(),
            path: path.clone(),
            query: query.clone(),
            body: body.clone(),
            status: status.as_u16(),
        });
        let now = Instant::now();
        inner.times.push(now);
        inner
            .times
            .retain(|t| now.duration_since(*t) < Duration::from_secs(3600));
        let used = inner.times.len() as u64;
        (status, json, retry_after, used)
    })
    .await;
    let Ok((status, json, retry_after, used)) = answer else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let mut response = match json {
        Some(json) if status != StatusCode::NO_CONTENT => {
            (status, axum::Json(json)).into_response()
        }
        _ => Response::builder()
            .status(status)
            .body(Body::empty())
            .unwrap_or_default(),
    };
    let headers = response.headers_mut();
    let put = |headers: &mut HeaderMap, name: &'static str, value: String| {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    };
    put(headers, "ratelimit-limit", HOURLY_LIMIT.to_string());
    put(
        headers,
        "ratelimit-remaining",
        HOURLY_LIMIT.saturating_sub(used).to_string(),
    );
    put(headers, "ratelimit-reset", (now_epoch() + 60).to_string());
    if let Some(after) = retry_after {
        put(headers, "retry-after", after.to_string());
    }
    response
}

/// The status, the JSON body (None for 204) and a `retry-after` for one request.
fn answer(
    inner: &mut Inner,
    method: &Method,
    path: &str,
    query: &str,
    headers: &HeaderMap,
    body: Option<&Value>,
) -> (StatusCode, Option<Value>, Option<u64>) {
    let authorized = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        == Some(inner.options.token.as_str());
    if !authorized {
        let (s, j) = error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Unable to authenticate you",
        );
        return (s, Some(j), None);
    }
    if let Some(injection) = inner
        .injections
        .iter_mut()
        .find(|i| i.times > 0 && i.method == method.as_str() && i.path == path)
    {
        injection.times -= 1;
        let after = injection.retry_after;
        let (s, j) = error(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_requests",
            "API Rate limit exceeded.",
        );
        return (s, Some(j), Some(after));
    }
    let params = query_map(query);
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (status, json) = match (method.as_str(), segments.as_slice()) {
        ("GET", ["v2", "droplets"]) => list_droplets(inner, &params),
        ("POST", ["v2", "droplets"]) => create_droplets(inner, body),
        ("DELETE", ["v2", "droplets"]) => match params.get("tag_name") {
            Some(tag) => {
                let ids: Vec<u64> = inner
                    .droplets
                    .iter()
                    .filter(|(_, d)| has_tag(&d.json, tag))
                    .map(|(id, _)| *id)
                    .collect();
                for id in ids {
                    remove_droplet(inner, id);
                }
                (StatusCode::NO_CONTENT, Value::Null)
            }
            None => unprocessable("tag_name is required to delete droplets in bulk"),
        },
        ("GET", ["v2", "droplets", id]) => {
            match id.parse().ok().and_then(|id| droplet_view(inner, id)) {
                Some(droplet) => (StatusCode::OK, json!({"droplet": droplet})),
                None => not_found(),
            }
        }
        ("DELETE", ["v2", "droplets", id]) => match id.parse::<u64>() {
            Ok(id) if inner.droplets.contains_key(&id) => {
                remove_droplet(inner, id);
                (StatusCode::NO_CONTENT, Value::Null)
            }
            _ => not_found(),
        },
        ("GET", ["v2", "firewalls"]) => {
            let all = inner.firewalls.clone();
            page(inner, "/v2/firewalls", &params, "firewalls", all)
        }
        ("POST", ["v2", "firewalls"]) => create_firewall(inner, body),
        ("GET", ["v2", "firewalls", id]) => match inner.firewalls.iter().find(|f| f["id"] == *id) {
            Some(f) => (StatusCode::OK, json!({"firewall": f})),
            None => not_found(),
        },
        ("PUT", ["v2", "firewalls", id]) => match body {
            None => unprocessable("The request body is not JSON."),
            Some(body) => match inner.firewalls.iter_mut().find(|f| f["id"] == *id) {
                Some(firewall) => {
                    for key in [
                        "name",
                        "inbound_rules",
                        "outbound_rules",
                        "tags",
                        "droplet_ids",
                    ] {
                        if let Some(value) = body.get(key) {
                            firewall[key] = value.clone();
                        }
                    }
                    (StatusCode::OK, json!({"firewall": firewall.clone()}))
                }
                None => not_found(),
            },
        },
        ("DELETE", ["v2", "firewalls", id]) => {
            let before = inner.firewalls.len();
            inner.firewalls.retain(|f| f["id"] != *id);
            if inner.firewalls.len() < before {
                (StatusCode::NO_CONTENT, Value::Null)
            } else {
                not_found()
            }
        }
        ("GET", ["v2", "actions", id]) => {
            let action = id
                .parse::<u64>()
                .ok()
                .and_then(|id| inner.actions.get(&id).cloned());
            match action {
                Some(mut action) => {
                    let droplet = action["resource_id"].as_u64().unwrap_or(0);
                    let done = droplet_view(inner, droplet).is_none_or(|d| d["status"] == "active");
                    action["status"] = json!(if done { "completed" } else { "in-progress" });
                    (StatusCode::OK, json!({"action": action}))
                }
                None => not_found(),
            }
        }
        ("GET", ["v2", "account", "keys"]) => {
            let keys: Vec<Value> = inner
                .options
                .account_keys
                .iter()
                .map(|k| json!({"id": k.id, "fingerprint": k.fingerprint, "public_key": k.public_key, "name": format!("key-{}", k.id)}))
                .collect();
            page(inner, "/v2/account/keys", &params, "ssh_keys", keys)
        }
        _ => not_found(),
    };
    let json = (status != StatusCode::NO_CONTENT).then_some(json);
    (status, json, None)
}

fn has_tag(droplet: &Value, tag: &str) -> bool {
    droplet["tags"]
        .as_array()
        .is_some_and(|tags| tags.iter().any(|t| t == tag))
}

/// A page of `all` with DigitalOcean's `links.pages` and `meta.total`.
fn page(
    inner: &Inner,
    path: &str,
    params: &BTreeMap<String, String>,
    key: &str,
    all: Vec<Value>,
) -> (StatusCode, Value) {
    let max = inner.options.page_size.max(1);
    let per_page = params
        .get("per_page")
        .and_then(|p| p.parse::<usize>().ok())
        .unwrap_or(max)
        .clamp(1, max);
    let page = params
        .get("page")
        .and_then(|p| p.parse::<usize>().ok())
        .unwrap_or(1)
        .max(1);
    let total = all.len();
    let last = total.div_ceil(per_page).max(1);
    let items: Vec<Value> = all
        .into_iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .collect();
    let link = |n: usize| {
        let mut query: Vec<String> = params
            .iter()
            .filter(|(k, _)| k.as_str() != "page" && k.as_str() != "per_page")
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        query.insert(0, format!("per_page={per_page}"));
        query.insert(0, format!("page={n}"));
        format!("{}{path}?{}", inner.base, query.join("&"))
    };
    let mut pages = serde_json::Map::new();
    if page > 1 {
        pages.insert("first".to_owned(), json!(link(1)));
        pages.insert("prev".to_owned(), json!(link(page - 1)));
    }
    if page < last {
        pages.insert("next".to_owned(), json!(link(page + 1)));
        pages.insert("last".to_owned(), json!(link(last)));
    }
    (
        StatusCode::OK,
        json!({key: items, "links": {"pages": pages}, "meta": {"total": total}}),
    )
}

fn list_droplets(inner: &mut Inner, params: &BTreeMap<String, String>) -> (StatusCode, Value) {
    let ids: Vec<u64> = inner.droplets.keys().copied().collect();
    let all: Vec<Value> = ids
        .into_iter()
        .filter_map(|id| droplet_view(inner, id))
        .filter(|d| params.get("tag_name").is_none_or(|tag| has_tag(d, tag)))
        .collect();
    page(inner, "/v2/droplets", params, "droplets", all)
}

/// The droplet as the API shows it now (`new` until `active_after` has passed).
fn droplet_view(inner: &mut Inner, id: u64) -> Option<Value> {
    let active_after = inner.options.active_after;
    let droplet = inner.droplets.get_mut(&id)?;
    if droplet.json["status"] == "new" && droplet.created.elapsed() >= active_after {
        droplet.json["status"] = json!("active");
    }
    let mut view = droplet.json.clone();
    if view["status"] != "active" {
        view["networks"] = json!({"v4": [], "v6": []});
    }
    Some(view)
}

fn is_hostname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
}

fn create_droplets(inner: &mut Inner, body: Option<&Value>) -> (StatusCode, Value) {
    let Some(body) = body else {
        return unprocessable("The request body is not JSON.");
    };
    let names: Vec<String> = match (body.get("name"), body.get("names")) {
        (Some(name), None) => name
            .as_str()
            .map(|n| vec![n.to_owned()])
            .unwrap_or_default(),
        (None, Some(names)) => names
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|n| n.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default(),
        _ => return unprocessable("Specify either name or names."),
    };
    if names.is_empty() {
        return unprocessable("Name is required.");
    }
    if names.len() > 10 {
        return unprocessable("You may only create up to 10 Droplets at once.");
    }
    if let Some(bad) = names.iter().find(|n| !is_hostname(n)) {
        return unprocessable(&format!(
            "Name '{bad}' is invalid: only a-z, A-Z, 0-9, . and - are allowed."
        ));
    }
    for key in ["size", "image"] {
        if body
            .get(key)
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            return unprocessable(&format!("You must specify a {key}."));
        }
    }
    let user_data = body.get("user_data").and_then(Value::as_str).unwrap_or("");
    if user_data.len() > 64 * 1024 {
        return unprocessable("User data is limited to 64 KiB.");
    }
    let mut authorized = Vec::new();
    for key in body
        .get("ssh_keys")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let found = inner.options.account_keys.iter().find(|k| match key {
            Value::Number(n) => n.as_u64() == Some(k.id),
            Value::String(s) => *s == k.fingerprint || s.parse::<u64>().ok() == Some(k.id),
            _ => false,
        });
        match found {
            Some(k) => authorized.push(k.public_key.clone()),
            None => return unprocessable(&format!("ssh_key {key} is not a key of this account.")),
        }
    }
    let tags: Vec<Value> = body
        .get("tags")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut created = Vec::new();
    let mut actions = Vec::new();
    for name in names {
        let id = inner.next_id;
        inner.next_id += 1;
        let ip: Ipv4Addr = format!("{}{}", inner.options.ip_prefix, inner.next_ip)
            .parse()
            .unwrap_or(Ipv4Addr::LOCALHOST);
        let private = inner
            .options
            .private_prefix
            .as_ref()
            .map(|prefix| format!("{prefix}{}", inner.next_ip));
        inner.next_ip += 1;
        let mut json = json!({
            "id": id,
            "name": name,
            "memory": 4096,
            "vcpus": 2,
            "disk": 80,
            "locked": false,
            "status": "new",
            "created_at": humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
            "features": [],
            "backup_ids": [],
            "snapshot_ids": [],
            "image": {"slug": body["image"]},
            "size_slug": body["size"],
            "region": {"slug": body.get("region").cloned().unwrap_or(json!("nyc3"))},
            "networks": {"v4": [
                {"ip_address": ip.to_string(), "netmask": "255.255.255.0", "gateway": format!("{}1", inner.options.ip_prefix), "type": "public"}
            ], "v6": []},
            "tags": tags,
            "vpc_uuid": body.get("vpc_uuid").cloned().unwrap_or(json!("5a4981aa-9653-4bd1-bef5-d6bff52042e4")),
        });
        if let (Some(private), Some(v4)) = (private, json["networks"]["v4"].as_array_mut()) {
            v4.push(json!({"ip_address": private, "netmask": "255.255.0.0",
                "gateway": "0.0.0.0", "type": "private"}));
        }
        let host = inner.options.ssh.as_ref().map(|ssh| {
            let host_key = host_key_for(user_data, &name);
            SshdHost::start(
                ip,
                ssh.port,
                &ssh.root.join(&name),
                host_key.as_deref(),
                &authorized,
            )
        });
        let action_id = inner.next_id * 10;
        let action = json!({"id": action_id, "status": "in-progress", "type": "create",
            "resource_id": id, "resource_type": "droplet",
            "started_at": humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
            "region_slug": body.get("region").cloned().unwrap_or(json!("nyc3"))});
        inner.actions.insert(action_id, action);
        actions.push(json!({"id": action_id, "rel": "create",
            "href": format!("{}/v2/actions/{action_id}", inner.base)}));
        inner.droplets.insert(
            id,
            FakeDroplet {
                json: json.clone(),
                created: Instant::now(),
                host,
            },
        );
        inner.created_total += 1;
        let mut shown = json;
        shown["networks"] = json!({"v4": [], "v6": []});
        created.push(shown);
    }
    let links = json!({"actions": actions});
    if body.get("name").is_some() {
        (
            StatusCode::ACCEPTED,
            json!({"droplet": created[0], "links": links}),
        )
    } else {
        (
            StatusCode::ACCEPTED,
            json!({"droplets": created, "links": links}),
        )
    }
}

fn remove_droplet(inner: &mut Inner, id: u64) {
    if let Some(droplet) = inner.droplets.remove(&id) {
        if let Some(host) = droplet.host {
            host.stop();
        }
    }
}

fn create_firewall(inner: &mut Inner, body: Option<&Value>) -> (StatusCode, Value) {
    let Some(body) = body else {
        return unprocessable("The request body is not JSON.");
    };
    let name = body.get("name").and_then(Value::as_str).unwrap_or("");
    if !is_hostname(name) {
        return unprocessable("name must begin with an alphanumeric character and contain only alphanumerics, '.' and '-'.");
    }
    let rules = |key: &str| {
        body.get(key)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let (inbound, outbound) = (rules("inbound_rules"), rules("outbound_rules"));
    if inbound.is_empty() && outbound.is_empty() {
        return unprocessable("At least one inbound or outbound rule is required.");
    }
    for rule in inbound.iter().chain(&outbound) {
        let protocol = rule["protocol"].as_str().unwrap_or("");
        if !["tcp", "udp", "icmp"].contains(&protocol) {
            return unprocessable(&format!("protocol '{protocol}' is not tcp, udp or icmp"));
        }
        if protocol != "icmp" && rule["ports"].as_str().is_none_or(str::is_empty) {
            return unprocessable("ports is required for tcp and udp rules");
        }
    }
    let firewall = json!({
        "id": uuid::Uuid::new_v4().to_string(),
        "name": name,
        "status": "succeeded",
        "created_at": humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
        "inbound_rules": inbound,
        "outbound_rules": outbound,
        "droplet_ids": body.get("droplet_ids").cloned().unwrap_or(json!([])),
        "tags": body.get("tags").cloned().unwrap_or(json!([])),
        "pending_changes": [],
    });
    inner.firewalls.push(firewall.clone());
    (StatusCode::ACCEPTED, json!({"firewall": firewall}))
}

/// The ed25519 private host key cloud-init would install on the droplet `hostname`: the
/// `ssh_keys:` of its branch of the (Jinja-conditioned) user data.
pub fn host_key_for(user_data: &str, hostname: &str) -> Option<String> {
    let mut keep = None;
    let mut text = String::new();
    for line in user_data.lines() {
        let trimmed = line.trim();
        let condition = trimmed
            .strip_prefix("{% if v1.local_hostname == \"")
            .or_else(|| trimmed.strip_prefix("{% elif v1.local_hostname == \""));
        if let Some(rest) = condition {
            keep = Some(rest.split('"').next() == Some(hostname));
        } else if trimmed.starts_with("{% endif") {
            keep = None;
        } else if trimmed.starts_with("{%") || trimmed.starts_with("## template") {
            continue;
        } else if keep != Some(false) {
            text.push_str(line);
            text.push('\n');
        }
    }
    let yaml: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).ok()?;
    yaml.get("ssh_keys")?
        .get("ed25519_private")?
        .as_str()
        .map(str::to_owned)
}

/// A droplet's sshd: Debian's `/usr/sbin/sshd` on the droplet's IP.
struct SshdHost {
    ip: Ipv4Addr,
    dir: PathBuf,
    child: Option<Child>,
}

impl SshdHost {
    fn start(
        ip: Ipv4Addr,
        port: u16,
        dir: &Path,
        host_key: Option<&str>,
        authorized: &[String],
    ) -> SshdHost {
        let _ = std::fs::create_dir_all("/run/sshd");
        let _ = std::fs::create_dir_all(dir);
        let key_file = dir.join("ssh_host_ed25519_key");
        match host_key {
            Some(key) => {
                let _ = std::fs::write(&key_file, key);
            }
            None => {
                // cloud-init would generate one.
                let _ = Command::new("ssh-keygen")
                    .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                    .arg(&key_file)
                    .stdin(Stdio::null())
                    .output();
            }
        }
        let _ = std::fs::set_permissions(
            &key_file,
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        );
        let authorized_file = dir.join("authorized_keys");
        let _ = std::fs::write(&authorized_file, authorized.join("\n") + "\n");
        let config = dir.join("sshd_config");
        let text = format!(
            "ListenAddress {ip}:{port}\nHostKey {}\nPidFile none\nAuthorizedKeysFile {}\n\
             PermitRootLogin prohibit-password\nPasswordAuthentication no\n\
             KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n\
             MaxStartups 100:30:200\nMaxSessions 50\nSubsystem sftp internal-sftp\nLogLevel ERROR\n",
            key_file.display(),
            authorized_file.display()
        );
        let _ = std::fs::write(&config, text);
        let child = std::fs::File::create(dir.join("sshd.log"))
            .ok()
            .and_then(|log| {
                Command::new("/usr/sbin/sshd")
                    .arg("-D")
                    .arg("-e")
                    .arg("-f")
                    .arg(&config)
                    .stdin(Stdio::null())
                    .stdout(log.try_clone().ok()?)
                    .stderr(log)
                    .spawn()
                    .ok()
            });
        SshdHost {
            ip,
            dir: dir.to_owned(),
            child,
        }
    }

    /// Stops the sshd and everything running under the droplet's dir, as deleting a
    /// droplet would.
    fn stop(mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        kill_under(&self.dir);
    }
}

/// Kills (SIGKILL) every process whose working dir or command line lies under `dir`,
/// again until none is left (a supervisor may start one between two kills).
fn kill_under(dir: &Path) {
    let begin = Instant::now();
    while kill_once(dir) > 0 && begin.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One pass of [`kill_under`]; how many processes it signalled.
fn kill_once(dir: &Path) -> usize {
    let mut killed = 0;
    let root = dir.display().to_string();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        if u32::try_from(pid).is_ok_and(|pid| pid == std::process::id()) {
            continue;
        }
        let cwd = std::fs::read_link(entry.path().join("cwd"))
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if (cwd.starts_with(&root) || cmdline.contains(&root))
            && nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            )
            .is_ok()
        {
            killed += 1;
        }
    }
    killed
}

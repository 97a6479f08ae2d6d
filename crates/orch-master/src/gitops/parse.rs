//! App files at one commit → the desired state of the managed group, all or nothing.
//!
//! Each file is rendered ([`super::render`]) and then read as JSON (`.json`) or YAML
//! (`.yaml`, `.yml`; several `---` documents per file allowed). A document is a Marathon
//! group when it has `apps` or `groups` and none of `cmd`, `args`, `container`; a JSON or
//! YAML list is a list of apps; any other object is one app. Relative ids resolve below the
//! managed group; absolute ones must lie inside it. Every app is validated as Marathon
//! validates it ([`App::from_json`]) and kept as written, minus its `id`.
//!
//! The first problem wins (files in path order, then their documents and apps in order) and
//! comes back as a [`FileError`] naming the file, the line and the field when known.
//!
//! May depend on: model, gitops::render.

use super::locate::{self, Step};
use super::render::{render, TemplateContext};
use orch_core::model::{reserved_label, App, AppError, AppId, GroupId, GroupUpdate, Timestamp};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// One file of the watched folder at the commit being synced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceFile {
    /// Its path relative to the repo root, e.g. `apps/web/api.json` (the name errors use).
    pub path: String,
    /// Its content.
    pub text: String,
}

/// What the files define: every app below the managed group, and the explicit groups.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Desired {
    /// Every app, by absolute id.
    pub apps: BTreeMap<AppId, DesiredApp>,
    /// Every group a group file defines (nested ones included), with its dependencies
    /// resolved to absolute ids.
    pub groups: BTreeMap<GroupId, Vec<AppId>>,
}

/// One app as a file defines it.
#[derive(Clone, Debug, PartialEq)]
pub struct DesiredApp {
    /// The definition as written (rendered, not normalised), without `id`.
    pub definition: Map<String, Value>,
    /// The file it came from (its [`SourceFile::path`]).
    pub file: String,
}

/// Why a commit's files cannot be applied; displays as `apps/web.json:12: /instances: why`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileError {
    /// The file at fault.
    pub file: String,
    /// The 1-based line, when known.
    pub line: Option<usize>,
    /// The field's path within the file's document (`/instances`, `/apps(1)/cmd`), if any.
    pub field: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for FileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(field) = &self.field {
            write!(f, ": {field}")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for FileError {}

/// How a file is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    Json,
    Yaml,
}

fn format_of(path: &str) -> Option<Format> {
    let name = path.rsplit('/').next().unwrap_or(path).to_ascii_lowercase();
    if name.ends_with(".json") {
        Some(Format::Json)
    } else if name.ends_with(".yaml") || name.ends_with(".yml") {
        Some(Format::Yaml)
    } else {
        None
    }
}

/// True for the files app definitions live in: `*.json`, `*.yaml`, `*.yml`.
pub fn is_app_file(path: &str) -> bool {
    format_of(path).is_some()
}

/// True if `relative` (a path relative to the watched folder) matches one of `patterns`.
///
/// A pattern is a relative path whose segments may use `*` (any characters within one
/// segment) and `?` (one character). It matches the whole path or a leading folder of it
/// (`drafts` skips everything under `drafts/`). A pattern without `/` also matches the file
/// name in any folder (`*.test.json`).
pub fn excluded(relative: &str, patterns: &[String]) -> bool {
    let path: Vec<&str> = segments(relative);
    patterns.iter().any(|pattern| {
        let pattern = pattern.trim();
        let parts = segments(pattern);
        if parts.is_empty() {
            return false;
        }
        let leading = parts.len() <= path.len() && parts.iter().zip(&path).all(|(p, s)| glob(p, s));
        let by_name = parts.len() == 1
            && !pattern.trim_matches('/').contains('/')
            && path.last().is_some_and(|name| glob(parts[0], name));
        leading || by_name
    })
}

fn segments(path: &str) -> Vec<&str> {
    path.split('/')
        .filter(|s| !s.is_empty() && *s != ".")
        .collect()
}

/// Matches one path segment against a pattern with `*` and `?`.
fn glob(pattern: &str, text: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let text: Vec<char> = text.chars().collect();
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some('*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(c) if *c == '?' || *c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((star_p, star_t)) => {
                    p = star_p + 1;
                    t = star_t + 1;
                    star = Some((star_p, star_t + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|c| *c == '*')
}

/// Reads `files` (any order; files that are not app files are skipped) into the desired
/// state of `group`, rendering their templates with `context` first.
pub fn parse(
    files: &[SourceFile],
    group: &GroupId,
    context: &TemplateContext<'_>,
) -> Result<Desired, FileError> {
    let mut sorted: Vec<(&SourceFile, Format)> = files
        .iter()
        .filter_map(|file| format_of(&file.path).map(|format| (file, format)))
        .collect();
    sorted.sort_by(|a, b| a.0.path.cmp(&b.0.path));
    let mut reader = Reader {
        managed: group,
        desired: Desired::default(),
        group_files: BTreeMap::new(),
    };
    for (file, format) in sorted {
        let text = render(&file.text, context).map_err(|error| FileError {
            file: file.path.clone(),
            line: Some(error.line),
            field: None,
            message: error.message,
        })?;
        for document in documents(&file.path, &text, format)? {
            reader.document(&document)?;
        }
    }
    Ok(reader.desired)
}

/// One parsed document of a file and where its text is.
struct Document<'a> {
    file: &'a str,
    value: Value,
    text: &'a str,
    format: Format,
    /// Its lines `[from, to)` (YAML; the whole file for JSON).
    lines: Vec<&'a str>,
    from: usize,
    to: usize,
}

impl Document<'_> {
    fn find(&self, steps: &[Step]) -> Option<locate::Found> {
        match self.format {
            Format::Json => locate::json(self.text, steps),
            Format::Yaml => locate::yaml(&self.lines, self.from, self.to, steps),
        }
    }

    /// The line for a problem at `steps` within the app at `base`: the field's line if
    /// found; else the line of the app's `id`; else the deepest line found.
    fn line(&self, base: &[Step], steps: &[Step]) -> Option<usize> {
        let found = self.find(steps)?;
        if found.depth == steps.len() || found.depth > base.len() {
            return Some(found.line);
        }
        let mut id = base.to_vec();
        id.push(Step::Key("id".into()));
        match self.find(&id) {
            Some(at_id) if at_id.depth == id.len() => Some(at_id.line),
            _ => Some(found.line),
        }
    }

    fn error(&self, base: &[Step], steps: &[Step], message: impl Into<String>) -> FileError {
        FileError {
            file: self.file.to_owned(),
            line: self.line(base, steps),
            field: (!steps.is_empty()).then(|| locate::render_path(steps)),
            message: message.into(),
        }
    }
}

/// The documents of a rendered file, or its syntax error.
fn documents<'a>(
    file: &'a str,
    text: &'a str,
    format: Format,
) -> Result<Vec<Document<'a>>, FileError> {
    let lines: Vec<&str> = text.lines().collect();
    let syntax = |message: String, line: Option<usize>| FileError {
        file: file.to_owned(),
        line,
        field: None,
        message: strip_position(&message),
    };
    match format {
        Format::Json => {
            let value: Value = serde_json::from_str(text)
                .map_err(|error| syntax(error.to_string(), Some(error.line())))?;
            Ok(vec![Document {
                file,
                value,
                text,
                format,
                to: lines.len(),
                lines,
                from: 0,
            }])
        }
        Format::Yaml => {
            let mut values = Vec::new();
            for document in serde_yaml_ng::Deserializer::from_str(text) {
                // The iterator repeats an error forever: stop at the first.
                let value = Value::deserialize(document).map_err(|error| {
                    syntax(error.to_string(), error.location().map(|at| at.line()))
                })?;
                values.push(value);
            }
            let mut ranges = locate::yaml_documents(&lines);
            if ranges.len() != values.len() {
                // Separators the simple split misread: search the whole file for each.
                ranges = vec![(0, lines.len()); values.len()];
            }
            Ok(values
                .into_iter()
                .zip(ranges)
                .filter(|(value, _)| !value.is_null())
                .map(|(value, (from, to))| Document {
                    file,
                    value,
                    text,
                    format,
                    lines: lines.clone(),
                    from,
                    to,
                })
                .collect())
        }
    }
}

/// A parser's message without its trailing ` at line N column M` (the line is kept apart).
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(at)
            if message[at + " at line ".len()..]
                .split(" column ")
                .all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())) =>
        {
            message[..at].to_owned()
        }
        _ => message.to_owned(),
    }
}

fn is_group(object: &Map<String, Value>) -> bool {
    (object.contains_key("apps") || object.contains_key("groups"))
        && !["cmd", "args", "container"]
            .iter()
            .any(|key| object.contains_key(*key))
}

/// Collects the documents' apps and groups, checking ids across files.
struct Reader<'a> {
    managed: &'a GroupId,
    desired: Desired,
    /// The file each explicit group came from.
    group_files: BTreeMap<GroupId, String>,
}

impl Reader<'_> {
    fn document(&mut self, document: &Document<'_>) -> Result<(), FileError> {
        match &document.value {
            Value::Array(apps) => {
                for (index, app) in apps.iter().enumerate() {
                    let base = [Step::Index(index)];
                    let Value::Object(app) = app else {
                        return Err(document.error(
                            &base,
                            &base,
                            "expected an app definition (an object)",
                        ));
                    };
                    self.app(document, &base, app)?;
                }
                Ok(())
            }
            Value::Object(object) if is_group(object) => self.group_file(document, object),
            Value::Object(app) => self.app(document, &[], app),
            _ => Err(document.error(&[], &[], "expected an app, a group or a list of apps")),
        }
    }

    /// A top-level app (alone in its document or in a list).
    fn app(
        &mut self,
        document: &Document<'_>,
        base: &[Step],
        definition: &Map<String, Value>,
    ) -> Result<(), FileError> {
        let id_steps = with(base, &[Step::Key("id".into())]);
        let id = match definition.get("id") {
            None => {
                return Err(document.error(base, &id_steps, "missing: every app needs an `id`"))
            }
            Some(Value::String(id)) => id,
            Some(_) => return Err(document.error(base, &id_steps, "`id` must be a string")),
        };
        let id = self
            .managed
            .resolve(id)
            .map_err(|error| document.error(base, &id_steps, format!("bad id {id:?}: {error}")))?;
        if !self.managed.contains(id.as_str()) {
            return Err(document.error(
                base,
                &id_steps,
                format!("app {id} is outside the managed group {}", self.managed),
            ));
        }
        self.insert_app(document, base, id, definition)
    }

    /// A group document: its apps and nested groups, flattened.
    fn group_file(
        &mut self,
        document: &Document<'_>,
        body: &Map<String, Value>,
    ) -> Result<(), FileError> {
        let id_steps = [Step::Key("id".into())];
        let id = match body.get("id") {
            None => {
                return Err(document.error(&[], &id_steps, "missing: every group needs an `id`"))
            }
            Some(Value::String(id)) => id,
            Some(_) => return Err(document.error(&[], &id_steps, "`id` must be a string")),
        };
        let id = if id.starts_with('/') {
            GroupId::parse(id)
        } else {
            self.managed.resolve(id).map(GroupId::from)
        }
        .map_err(|error| document.error(&[], &id_steps, format!("bad id {id:?}: {error}")))?;
        if id != *self.managed && !self.managed.contains(id.as_str()) {
            return Err(document.error(
                &[],
                &id_steps,
                format!("group {id} is outside the managed group {}", self.managed),
            ));
        }
        if body.get("scaleBy").is_some_and(|v| !v.is_null()) {
            return Err(document.error(
                &[],
                &[Step::Key("scaleBy".into())],
                "`scaleBy` is an operation, not a definition: set `instances` instead",
            ));
        }
        let update = GroupUpdate::from_json(id, body, "").map_err(|violations| {
            let first = violations.first();
            let steps = first
                .map(|v| locate::parse_path(&v.path))
                .unwrap_or_default();
            let message = first.map(|v| v.errors.join("; ")).unwrap_or_default();
            document.error(&[], &steps, message)
        })?;
        self.flatten(document, &[], &update)
    }

    fn flatten(
        &mut self,
        document: &Document<'_>,
        base: &[Step],
        update: &GroupUpdate,
    ) -> Result<(), FileError> {
        let id_steps = with(base, &[Step::Key("id".into())]);
        if let Some(other) = self.group_files.get(&update.id) {
            return Err(document.error(
                base,
                &id_steps,
                format!("group {} is also defined in {other}", update.id),
            ));
        }
        if let Some(other) = update
            .id
            .as_app_id()
            .and_then(|id| self.desired.apps.get(&id))
        {
            return Err(document.error(
                base,
                &id_steps,
                format!(
                    "group {} has the id of an app defined in {}",
                    update.id, other.file
                ),
            ));
        }
        self.group_files
            .insert(update.id.clone(), document.file.to_owned());
        self.desired.groups.insert(
            update.id.clone(),
            update.dependencies.clone().unwrap_or_default(),
        );
        for (index, (id, definition)) in update.apps.iter().flatten().enumerate() {
            let at = with(base, &[Step::Key("apps".into()), Step::Index(index)]);
            self.insert_app(document, &at, id.clone(), definition)?;
        }
        for (index, group) in update.groups.iter().flatten().enumerate() {
            let at = with(base, &[Step::Key("groups".into()), Step::Index(index)]);
            self.flatten(document, &at, group)?;
        }
        Ok(())
    }

    /// Checks app `id` (at `base` in `document`) against the others and validates it.
    fn insert_app(
        &mut self,
        document: &Document<'_>,
        base: &[Step],
        id: AppId,
        definition: &Map<String, Value>,
    ) -> Result<(), FileError> {
        let id_steps = with(base, &[Step::Key("id".into())]);
        if let Some(other) = self.desired.apps.get(&id) {
            return Err(document.error(
                base,
                &id_steps,
                format!("app {id} is also defined in {}", other.file),
            ));
        }
        if let Some(other) = self.group_files.get(&GroupId::from(id.clone())) {
            return Err(document.error(
                base,
                &id_steps,
                format!("app {id} has the id of a group defined in {other}"),
            ));
        }
        let mut definition = definition.clone();
        definition.remove("id");
        if let Some(violation) = reserved_label(&Value::Object(definition.clone())) {
            let steps = with(base, &locate::parse_path(&violation.path));
            let why = violation.errors.join("; ");
            return Err(document.error(base, &steps, format!("{why} (app {id})")));
        }
        if let Err(error) = App::from_json(id.clone(), Timestamp::from_millis(0), &definition) {
            return Err(match error {
                AppError::Invalid { violations } if !violations.is_empty() => {
                    let violation = &violations[0];
                    let steps = with(base, &locate::parse_path(&violation.path));
                    document.error(
                        base,
                        &steps,
                        format!("{} (app {id})", violation.errors.join("; ")),
                    )
                }
                other => document.error(base, &id_steps, format!("{other} (app {id})")),
            });
        }
        self.desired.apps.insert(
            id,
            DesiredApp {
                definition,
                file: document.file.to_owned(),
            },
        );
        Ok(())
    }
}

fn with(base: &[Step], more: &[Step]) -> Vec<Step> {
    base.iter().chain(more).cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

    fn file(path: &str, text: &str) -> SourceFile {
        SourceFile {
            path: path.into(),
            text: text.into(),
        }
    }

    fn read_in(group: &str, files: &[SourceFile]) -> Result<Desired, FileError> {
        let vars = BTreeMap::from([
            ("REGISTRY".to_owned(), "registry.example.com".to_owned()),
            ("replicas".to_owned(), "3".to_owned()),
        ]);
        let context = TemplateContext {
            sha: SHA,
            branch: "main",
            vars: &vars,
        };
        parse(files, &GroupId::parse(group).expect("group id"), &context)
    }

    fn read(files: &[SourceFile]) -> Result<Desired, FileError> {
        read_in("/", files)
    }

    fn app_id(id: &str) -> AppId {
        AppId::parse(id).expect("app id")
    }

    fn group_id(id: &str) -> GroupId {
        GroupId::parse(id).expect("group id")
    }

    fn ids(desired: &Desired) -> Vec<&str> {
        desired.apps.keys().map(AppId::as_str).collect()
    }

    #[test]
    fn json_and_yaml_apps() {
        let desired = read_in(
            "/prod",
            &[
                file(
                    "apps/web.json",
                    r#"{"id": "web", "cmd": "sleep 1", "instances": 2}"#,
                ),
                file(
                    "apps/db.yaml",
                    "id: /prod/db\ncontainer:\n  type: DOCKER\n  docker:\n    image: postgres\n",
                ),
                file("apps/README.md", "# not an app"),
            ],
        )
        .expect("valid");
        assert_eq!(ids(&desired), vec!["/prod/db", "/prod/web"]);
        let web = &desired.apps[&app_id("/prod/web")];
        assert_eq!(web.file, "apps/web.json");
        // As written, without the id and without Marathon's defaults.
        assert_eq!(
            Value::Object(web.definition.clone()),
            serde_json::json!({"cmd": "sleep 1", "instances": 2})
        );
        let db = &desired.apps[&app_id("/prod/db")];
        assert_eq!(db.definition["container"]["docker"]["image"], "postgres");
        assert!(desired.groups.is_empty());
    }

    #[test]
    fn group_files_are_flattened_with_dependencies() {
        let group = r#"{
  "id": "shop",
  "dependencies": ["/infra"],
  "apps": [
    {"id": "web", "cmd": "serve", "dependencies": ["db"]},
    {"id": "/shop/db", "cmd": "postgres"}
  ],
  "groups": [
    {"id": "jobs", "dependencies": ["web"], "apps": [{"id": "mailer", "cmd": "mail"}]},
    {"id": "/shop/empty"}
  ]
}"#;
        let desired = read(&[
            file("apps/shop.json", group),
            file("apps/infra.yml", "id: /infra\ngroups: []\n"),
        ])
        .expect("valid");
        assert_eq!(
            ids(&desired),
            vec!["/shop/db", "/shop/jobs/mailer", "/shop/web"]
        );
        assert_eq!(
            desired.apps[&app_id("/shop/jobs/mailer")].file,
            "apps/shop.json"
        );
        // Kept as written: the app's own relative dependency too.
        assert_eq!(
            desired.apps[&app_id("/shop/web")].definition["dependencies"],
            serde_json::json!(["db"])
        );
        // Group dependencies resolve the way Marathon's group updates do (against the
        // group's parent).
        assert_eq!(
            desired.groups,
            BTreeMap::from([
                (group_id("/infra"), vec![]),
                (group_id("/shop"), vec![app_id("/infra")]),
                (group_id("/shop/empty"), vec![]),
                (group_id("/shop/jobs"), vec![app_id("/shop/web")]),
            ])
        );
    }

    #[test]
    fn lists_of_apps_and_yaml_documents() {
        let desired = read(&[
            file(
                "apps/list.json",
                r#"[{"id": "a", "cmd": "run x"}, {"id": "b", "cmd": "run y"}]"#,
            ),
            file(
                "apps/many.yaml",
                "---\nid: c\ncmd: run x\n---\n# empty document\n---\n- id: d\n  cmd: run y\n- id: e\n  cmd: run z\n",
            ),
        ])
        .expect("valid");
        assert_eq!(ids(&desired), vec!["/a", "/b", "/c", "/d", "/e"]);
        assert_eq!(desired.apps[&app_id("/d")].file, "apps/many.yaml");
    }

    #[test]
    fn invalid_fields_name_file_line_and_field_in_json() {
        let text = "{\n  \"id\": \"/web\",\n  \"cmd\": \"sleep 1\",\n  \"cpus\": \"many\"\n}\n";
        let error = read(&[file("apps/web.json", text)]).expect_err("invalid");
        assert_eq!(error.file, "apps/web.json");
        assert_eq!(error.line, Some(4));
        assert_eq!(error.field.as_deref(), Some("/cpus"));
        assert!(error.message.contains("error.expected.jsnumber"), "{error}");
        assert!(
            error.to_string().starts_with("apps/web.json:4: /cpus: "),
            "{error}"
        );

        let text = r#"{
  "id": "/web",
  "cmd": "sleep 1",
  "portDefinitions": [
    {"port": 0, "name": "ok"},
    {"port": 0,
     "name": "Not_Valid"}
  ]
}"#;
        let error = read(&[file("apps/web.json", text)]).expect_err("invalid");
        assert_eq!(error.field.as_deref(), Some("/portDefinitions(1)/name"));
        assert_eq!(error.line, Some(7));
    }

    #[test]
    fn orch_labels_in_labels_or_docker_parameters_are_refused_at_their_line() {
        let text = "\
id: /web
container:
  type: DOCKER
  docker:
    image: busybox
    parameters:
      - key: label
        value: orch.sandbox=/etc/cron.d
";
        let error = read(&[file("apps/web.yaml", text)]).expect_err("refused");
        assert_eq!(
            error.field.as_deref(),
            Some("/container/docker/parameters(0)")
        );
        assert_eq!(error.line, Some(7), "{error}");
        assert!(error.message.contains("reserved for orch"), "{error}");
        let text = r#"{"id": "/web", "cmd": "sleep 1", "labels": {"orch.gitops/commit": "x"}}"#;
        let error = read(&[file("apps/web.json", text)]).expect_err("refused");
        assert_eq!(error.field.as_deref(), Some("/labels"));
    }

    #[test]
    fn invalid_fields_in_yaml_groups_point_at_the_right_app() {
        let text = "\
id: /g
apps:
  - id: a
    cmd: run a
  - id: b
    instances: 2
    cmd: \"\"
";
        let error = read(&[file("apps/g.yaml", text)]).expect_err("invalid");
        assert_eq!(error.field.as_deref(), Some("/apps(1)/cmd"));
        assert_eq!(error.line, Some(7));
        assert!(error.message.contains("/g/b"), "{error}");

        // A whole-app violation (neither cmd nor container) points at the app's id.
        let text = "id: /g\napps:\n  - id: a\n    cmd: run a\n  - id: b\n    mem: 5\n";
        let error = read(&[file("apps/g.yaml", text)]).expect_err("invalid");
        assert_eq!(error.field.as_deref(), Some("/apps(1)"));
        assert_eq!(error.line, Some(5));
    }

    #[test]
    fn syntax_errors_carry_the_parsers_line() {
        let error = read(&[file("apps/a.json", "{\n  \"id\": \"/a\",\n  \"cmd\": x\n}")])
            .expect_err("bad json");
        assert_eq!((error.file.as_str(), error.line), ("apps/a.json", Some(3)));
        assert_eq!(error.field, None);
        assert!(!error.message.contains("at line"), "{error}");
        let error =
            read(&[file("apps/a.yaml", "id: /a\ncmd: run x\nmem: [1\n")]).expect_err("bad yaml");
        assert_eq!(error.file, "apps/a.yaml");
        assert_eq!(error.line, Some(4));
        let error = read(&[file("apps/a.yaml", "id: /a\ncmd: x: y\n")]).expect_err("bad yaml");
        assert_eq!(error.line, Some(2));
    }

    #[test]
    fn duplicate_ids_name_both_files() {
        let error = read(&[
            file("apps/b.json", r#"{"id": "/web", "cmd": "run b"}"#),
            file("apps/a.yaml", "id: /web\ncmd: run a\n"),
        ])
        .expect_err("duplicate");
        // Files are read in path order: the second one is at fault.
        assert_eq!(error.file, "apps/b.json");
        assert_eq!(error.field.as_deref(), Some("/id"));
        assert!(error.message.contains("apps/a.yaml"), "{error}");
        // An app inside a group file counts too.
        let error = read(&[
            file(
                "apps/g.json",
                r#"{"id": "/g", "apps": [{"id": "web", "cmd": "run x"}]}"#,
            ),
            file("apps/z.json", r#"{"id": "/g/web", "cmd": "run y"}"#),
        ])
        .expect_err("duplicate");
        assert_eq!(error.file, "apps/z.json");
        assert!(error.message.contains("apps/g.json"), "{error}");
    }

    #[test]
    fn ids_must_lie_inside_the_managed_group() {
        let error = read_in(
            "/prod",
            &[file(
                "apps/a.json",
                r#"{"id": "/staging/a", "cmd": "run x"}"#,
            )],
        )
        .expect_err("outside");
        assert_eq!(error.field.as_deref(), Some("/id"));
        assert_eq!(error.line, Some(1));
        assert!(
            error.message.contains("outside the managed group /prod"),
            "{error}"
        );
        let error = read_in("/prod", &[file("apps/g.yaml", "id: /other\napps: []\n")])
            .expect_err("outside");
        assert!(
            error.message.contains("outside the managed group"),
            "{error}"
        );
        // Relative ids resolve below it; the managed group itself may be a group file.
        let desired = read_in(
            "/prod",
            &[file("apps/g.json", r#"{"id": "/prod", "dependencies": ["/base"], "apps": [{"id": "a", "cmd": "run x"}]}"#)],
        )
        .expect("inside");
        assert_eq!(ids(&desired), vec!["/prod/a"]);
        assert_eq!(desired.groups[&group_id("/prod")], vec![app_id("/base")]);
        // Nested items must be children of their group, as in Marathon.
        let error = read(&[file(
            "apps/g.json",
            "{\"id\": \"/g\",\n \"apps\": [{\"id\": \"/h/a\", \"cmd\": \"run x\"}]}",
        )])
        .expect_err("not a child");
        assert_eq!(error.field.as_deref(), Some("/apps(0)/id"));
        assert_eq!(error.line, Some(2));
    }

    #[test]
    fn missing_ids_are_errors_on_id() {
        let error = read(&[file("apps/a.yaml", "cmd: run x\nmem: 32\n")]).expect_err("no id");
        assert_eq!(error.field.as_deref(), Some("/id"));
        assert_eq!(error.line, Some(1));
        let error = read(&[file(
            "apps/l.json",
            "[\n {\"id\": \"a\", \"cmd\": \"run x\"},\n {\"cmd\": \"run y\"}\n]",
        )])
        .expect_err("no id");
        assert_eq!(error.field.as_deref(), Some("(1)/id"));
        assert_eq!(error.line, Some(3));
        let error = read(&[file("apps/n.json", "42")]).expect_err("not an app");
        assert_eq!(error.line, Some(1));
    }

    #[test]
    fn templates_are_rendered_before_parsing() {
        let text = r#"{
  "id": "/web",
  "cmd": "serve --branch {{ git.branch }}",
  "instances": {{ vars.replicas }},
  "container": {"docker": {"image": "{{vars.REGISTRY}}/web:{{ git.short_sha }}"}},
  "labels": {"commit": "{{ git.sha }}"}
}"#;
        let desired = read(&[file("apps/web.json", text)]).expect("valid");
        let web = &desired.apps[&app_id("/web")].definition;
        assert_eq!(web["instances"], 3);
        assert_eq!(web["cmd"], "serve --branch main");
        assert_eq!(
            web["container"]["docker"]["image"],
            "registry.example.com/web:0123456"
        );
        assert_eq!(web["labels"]["commit"], SHA);
        let error = read(&[file(
            "apps/web.json",
            "{\n\"id\": \"/web\",\n\"cmd\": \"{{ vars.NOPE }}\"}",
        )])
        .expect_err("unknown name");
        assert_eq!(error.line, Some(3));
        assert!(error.message.contains("vars.NOPE"), "{error}");
    }

    #[test]
    fn the_first_error_in_path_order_wins() {
        let files = [
            file("apps/z.json", "{ broken"),
            file("apps/a.json", r#"{"id": "/a", "cmd": "run x", "mem": -1}"#),
        ];
        let error = read(&files).expect_err("invalid");
        assert_eq!(error.file, "apps/a.json");
        let mut reversed = files.clone();
        reversed.reverse();
        assert_eq!(read(&reversed), Err(error));
    }

    #[test]
    fn app_files_and_exclude_patterns() {
        assert!(is_app_file("apps/a.json"));
        assert!(is_app_file("b.YAML"));
        assert!(is_app_file("x/c.yml"));
        assert!(!is_app_file("apps/README.md"));
        assert!(!is_app_file("apps.json/readme"));

        let patterns = |list: &[&str]| list.iter().map(|p| p.to_string()).collect::<Vec<_>>();
        let p = patterns(&["drafts", "*.test.json", "staging/*.yaml", "/old/a?.json"]);
        assert!(excluded("drafts/x.json", &p));
        assert!(excluded("drafts/deep/x.json", &p));
        assert!(excluded("web.test.json", &p));
        assert!(excluded("sub/web.test.json", &p));
        assert!(excluded("staging/web.yaml", &p));
        assert!(!excluded("staging/deep/web.yaml", &p));
        assert!(!excluded("prod/staging/web.yaml", &p));
        assert!(excluded("old/ab.json", &p));
        assert!(!excluded("old/abc.json", &p));
        assert!(!excluded("web.json", &p));
        assert!(!excluded("sub/drafts.json", &p));
        assert!(excluded("./drafts/x.json", &p));
        assert!(!excluded("web.json", &patterns(&["", "/"])));
        assert!(excluded("any/thing.json", &patterns(&["*"])));
        assert!(glob("a*b*c", "aXbYbZc"));
        assert!(!glob("a*b", "aXbY"));
    }

    proptest::proptest! {
        #[test]
        fn never_panics_on_any_text(
            text in r#"[-a-z0-9 :{}\[\],"'\n#/()]{0,200}"#,
            yaml in proptest::bool::ANY,
        ) {
            let path = if yaml { "apps/x.yaml" } else { "apps/x.json" };
            // Any outcome is fine; an error must name the file.
            if let Err(error) = read(&[file(path, &text)]) {
                proptest::prop_assert_eq!(error.file, path);
            }
        }

        #[test]
        fn lines_point_inside_the_file(field in "[a-z]{1,6}", value in "[a-z0-9 ]{0,12}") {
            let text = format!("id: /a\ncmd: run a\n{field}: {value}\nmem: -1\n");
            if let Err(error) = read(&[file("apps/a.yaml", &text)]) {
                let line = error.line.unwrap_or(0);
                proptest::prop_assert!((1..=4).contains(&line), "{}", error);
            }
        }
    }

    #[test]
    fn the_example_apps_folder_parses() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let mut files = Vec::new();
        for entry in std::fs::read_dir(root.join("apps")).expect("apps/ exists") {
            let path = entry.expect("entry").path();
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .expect("utf-8 name");
            files.push(SourceFile {
                path: format!("apps/{name}"),
                text: std::fs::read_to_string(&path).expect("readable"),
            });
        }
        let desired = read(&files).unwrap_or_else(|error| panic!("{error}"));
        let instances: BTreeMap<&str, u64> = desired
            .apps
            .iter()
            .map(|(id, app)| {
                let count = app.definition.get("instances").and_then(Value::as_u64);
                (id.as_str(), count.unwrap_or(1))
            })
            .collect();
        assert_eq!(
            instances,
            BTreeMap::from([
                ("/bridged-webapp", 1),
                ("/hello", 1),
                ("/nginx", 1),
                ("/python-app", 2),
                ("/rsvp/mongodb", 1),
                ("/rsvp/rsvp", 1),
            ])
        );
        assert_eq!(
            desired.groups.keys().collect::<Vec<_>>(),
            vec![&group_id("/rsvp")]
        );
        assert_eq!(
            desired.apps[&app_id("/rsvp/rsvp")].definition["dependencies"],
            serde_json::json!(["/rsvp/mongodb"])
        );
    }
}

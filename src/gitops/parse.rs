//! TEMPORARY interface copy (replaced by the gitpure branch).
#![allow(missing_docs, dead_code, unused)]
use super::render::TemplateContext;
use crate::model::{AppId, GroupId};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
#[derive(Debug, Clone)]
pub struct SourceFile {
    pub path: String,
    pub text: String,
}
#[derive(Debug, Clone, Default)]
pub struct Desired {
    pub apps: BTreeMap<AppId, DesiredApp>,
    pub groups: BTreeMap<GroupId, Vec<AppId>>,
}
#[derive(Debug, Clone)]
pub struct DesiredApp {
    pub definition: Map<String, Value>,
    pub file: String,
}
#[derive(Debug, Clone)]
pub struct FileError {
    pub file: String,
    pub line: Option<usize>,
    pub field: Option<String>,
    pub message: String,
}
impl std::fmt::Display for FileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.message)
    }
}
pub fn is_app_file(path: &str) -> bool {
    path.ends_with(".json") || path.ends_with(".yaml") || path.ends_with(".yml")
}
pub fn excluded(relative: &str, patterns: &[String]) -> bool {
    false
}
pub fn parse(
    files: &[SourceFile],
    group: &GroupId,
    context: &TemplateContext<'_>,
) -> Result<Desired, FileError> {
    Ok(Desired::default())
}

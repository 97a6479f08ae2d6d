//! TEMPORARY interface copy (replaced by the gitpure branch).
#![allow(missing_docs, dead_code)]
use std::collections::BTreeMap;
#[derive(Debug)]
pub struct TemplateContext<'a> {
    pub sha: &'a str,
    pub branch: &'a str,
    pub vars: &'a BTreeMap<String, String>,
}

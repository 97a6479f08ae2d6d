//! Templates in app files: `{{ git.sha }}`, `{{ git.short_sha }}`, `{{ git.branch }}` and
//! `{{ vars.NAME }}` (any whitespace inside the braces) are replaced before a file is parsed.
//!
//! Only the values in [`TemplateContext`] are used: the process environment is never read,
//! so a file renders the same on every master. An unknown name or an unclosed `{{` is an
//! error naming the 1-based line. Text without `{{` is returned unchanged.
//!
//! May depend on: nothing internal.

use std::collections::BTreeMap;

/// What a template may refer to: the commit being synced and the repo's `vars`.
#[derive(Clone, Copy, Debug)]
pub struct TemplateContext<'a> {
    /// The full commit id (`git.sha`; its first 7 characters are `git.short_sha`).
    pub sha: &'a str,
    /// The branch being followed (`git.branch`).
    pub branch: &'a str,
    /// Values for `vars.NAME`.
    pub vars: &'a BTreeMap<String, String>,
}

/// Why a file's templates cannot be rendered.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct RenderError {
    /// The 1-based line of the `{{` at fault.
    pub line: usize,
    /// What is wrong, naming the template.
    pub message: String,
}

const OPEN: &str = "{{";
const CLOSE: &str = "}}";

/// Replaces every `{{ name }}` in `text` with its value from `context`.
pub fn render(text: &str, context: &TemplateContext<'_>) -> Result<String, RenderError> {
    if !text.contains(OPEN) {
        return Ok(text.to_owned());
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut line = 1;
    while let Some(start) = rest.find(OPEN) {
        let (before, after_open) = (&rest[..start], &rest[start + OPEN.len()..]);
        out.push_str(before);
        line += before.matches('\n').count();
        let Some(end) = after_open.find(CLOSE) else {
            let snippet: String = after_open
                .lines()
                .next()
                .unwrap_or("")
                .trim()
                .chars()
                .take(40)
                .collect();
            return Err(RenderError {
                line,
                message: format!("unclosed `{{{{ {snippet}` (no `}}}}` follows)"),
            });
        };
        let inner = &after_open[..end];
        out.push_str(
            &value(inner.trim(), context).map_err(|message| RenderError { line, message })?,
        );
        line += inner.matches('\n').count();
        rest = &after_open[end + CLOSE.len()..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The value of one template name, or why there is none.
fn value(name: &str, context: &TemplateContext<'_>) -> Result<String, String> {
    match name {
        "git.sha" => Ok(context.sha.to_owned()),
        "git.short_sha" => Ok(context.sha.chars().take(7).collect()),
        "git.branch" => Ok(context.branch.to_owned()),
        "" => Err("empty template `{{ }}`".to_owned()),
        _ => match name.strip_prefix("vars.") {
            Some(var) => context
                .vars
                .get(var)
                .cloned()
                .ok_or_else(|| format!("unknown template variable `{name}` (not in the repo's vars)")),
            None => Err(format!(
                "unknown template name `{name}` (known: git.sha, git.short_sha, git.branch, vars.NAME)"
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

    fn vars() -> BTreeMap<String, String> {
        BTreeMap::from([
            ("REGISTRY".to_owned(), "registry.example.com".to_owned()),
            ("replicas".to_owned(), "3".to_owned()),
        ])
    }

    fn run(text: &str) -> Result<String, RenderError> {
        let vars = vars();
        let context = TemplateContext {
            sha: SHA,
            branch: "main",
            vars: &vars,
        };
        render(text, &context)
    }

    #[test]
    fn every_name_renders() {
        assert_eq!(
            run("{{ git.sha }} {{ git.short_sha }} {{ git.branch }} {{ vars.REGISTRY }} {{ vars.replicas }}"),
            Ok(format!("{SHA} 0123456 main registry.example.com 3"))
        );
    }

    #[test]
    fn whitespace_inside_the_braces_is_free() {
        assert_eq!(
            run("a{{git.branch}}b{{   git.short_sha\t}}c{{\n vars.replicas \n}}d"),
            Ok("amainb0123456c3d".to_owned())
        );
    }

    #[test]
    fn text_without_templates_is_unchanged() {
        let text = "{\"id\": \"/web\", \"cmd\": \"echo } { }}\"}\n";
        assert_eq!(run(text).as_deref(), Ok(text));
        assert_eq!(run(""), Ok(String::new()));
    }

    #[test]
    fn short_sha_of_a_short_commit_is_the_commit() {
        let vars = BTreeMap::new();
        let context = TemplateContext {
            sha: "abc",
            branch: "dev",
            vars: &vars,
        };
        assert_eq!(render("{{ git.short_sha }}", &context), Ok("abc".into()));
    }

    #[test]
    fn unknown_names_are_errors_with_their_line() {
        let error = run("{\n  \"id\": \"/web\",\n  \"cmd\": \"{{ vars.MISSING }}\"\n}")
            .expect_err("unknown");
        assert_eq!(error.line, 3);
        assert!(error.message.contains("vars.MISSING"), "{error}");
        let error = run("line one {{ git.sha }}\n{{ env.HOME }}").expect_err("unknown");
        assert_eq!(error.line, 2);
        assert!(error.message.contains("env.HOME"), "{error}");
        assert_eq!(error.to_string(), format!("line 2: {}", error.message));
        // A multi-line template counts its lines for the ones after it.
        let error = run("{{\ngit.sha\n}}\n{{ nope }}").expect_err("unknown");
        assert_eq!(error.line, 4);
        assert!(run("{{ }}").is_err());
    }

    #[test]
    fn unclosed_templates_are_errors_with_their_line() {
        let error = run("a\nb {{ git.sha }}\nc {{ git.branch\n").expect_err("unclosed");
        assert_eq!(error.line, 3);
        assert!(error.message.contains("unclosed"), "{error}");
        assert!(error.message.contains("git.branch"), "{error}");
    }

    #[test]
    fn the_environment_is_never_read() {
        // HOME is set in any test process; only vars count.
        assert!(run("{{ vars.HOME }}").is_err());
        assert!(run("{{ env.HOME }}").is_err());
    }
}

//! Finding the line of a field in the text of an app file, best effort: a JSON value is
//! found by scanning the (already valid) JSON along the path; a YAML value by following
//! block indentation (`key:` lines and `- ` items). Flow collections in YAML (`[...]`,
//! `{...}`) are not entered: the line of the key holding them is the answer then.
//!
//! Paths are Marathon violation paths: `/apps(1)/cmd`, `/portDefinitions(0)/port`.
//!
//! May depend on: nothing internal.

/// One step of a path: an object key or an array index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// A key of an object.
    Key(String),
    /// An element of an array.
    Index(usize),
}

/// Reads a Marathon path (`/a(0)/b`, `/` for the whole value, `(2)/id` below an array).
pub(crate) fn parse_path(path: &str) -> Vec<Step> {
    let mut steps = Vec::new();
    for segment in path.split('/').filter(|s| !s.is_empty()) {
        let (key, indexes) = split_indexes(segment);
        if !key.is_empty() {
            steps.push(Step::Key(key.to_owned()));
        }
        steps.extend(indexes.into_iter().map(Step::Index));
    }
    steps
}

/// `name(1)(2)` → (`name`, [1, 2]); a segment whose parentheses are not all indexes is a key.
fn split_indexes(segment: &str) -> (&str, Vec<usize>) {
    let mut indexes = Vec::new();
    let mut rest = segment;
    while let Some(open) = rest.strip_suffix(')').and_then(|r| r.rfind('(')) {
        match rest[open + 1..rest.len() - 1].parse::<usize>() {
            Ok(index) => {
                indexes.push(index);
                rest = &rest[..open];
            }
            Err(_) => break,
        }
    }
    indexes.reverse();
    (rest, indexes)
}

/// Renders steps as a Marathon path (`/apps(1)/cmd`); no steps is `/`.
pub(crate) fn render_path(steps: &[Step]) -> String {
    if steps.is_empty() {
        return "/".to_owned();
    }
    let mut out = String::new();
    for step in steps {
        match step {
            Step::Key(key) => {
                out.push('/');
                out.push_str(key);
            }
            Step::Index(index) => out.push_str(&format!("({index})")),
        }
    }
    out
}

/// Where a path was found: the 1-based line of the deepest step reached and how many steps
/// were reached (`depth == steps.len()` when the whole path was found).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Found {
    /// 1-based line of the deepest step reached (the start of the value for no steps).
    pub line: usize,
    /// How many steps were followed.
    pub depth: usize,
}

/// Follows `steps` through a JSON text; `None` when the text holds no value at all.
pub(crate) fn json(text: &str, steps: &[Step]) -> Option<Found> {
    let mut scanner = Scanner {
        bytes: text.as_bytes(),
        pos: 0,
    };
    scanner.skip_ws();
    scanner.peek()?;
    let mut found = Found {
        line: scanner.line(scanner.pos),
        depth: 0,
    };
    for step in steps {
        let Some(pos) = scanner.enter(step) else {
            break;
        };
        found = Found {
            line: scanner.line(pos),
            depth: found.depth + 1,
        };
    }
    Some(found)
}

struct Scanner<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Scanner<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn line(&self, pos: usize) -> usize {
        1 + self.bytes[..pos.min(self.bytes.len())]
            .iter()
            .filter(|b| **b == b'\n')
            .count()
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(|b| b.is_ascii_whitespace()) {
            self.pos += 1;
        }
    }

    fn eat(&mut self, byte: u8) -> Option<()> {
        self.skip_ws();
        (self.peek()? == byte).then(|| self.pos += 1)
    }

    /// Past a string starting at the current `"`; returns its raw text with quotes.
    fn string(&mut self) -> Option<&[u8]> {
        let start = self.pos;
        if self.peek()? != b'"' {
            return None;
        }
        self.pos += 1;
        loop {
            match self.peek()? {
                b'\\' => self.pos += 2,
                b'"' => {
                    self.pos += 1;
                    return self.bytes.get(start..self.pos);
                }
                _ => self.pos += 1,
            }
        }
    }

    /// Past one value (of any kind) at the current position.
    fn skip_value(&mut self) -> Option<()> {
        self.skip_ws();
        match self.peek()? {
            b'"' => self.string().map(|_| ()),
            b'{' | b'[' => {
                let mut depth = 0usize;
                loop {
                    match self.peek()? {
                        b'"' => {
                            self.string()?;
                            continue;
                        }
                        b'{' | b'[' => depth += 1,
                        b'}' | b']' => {
                            depth -= 1;
                            if depth == 0 {
                                self.pos += 1;
                                return Some(());
                            }
                        }
                        _ => {}
                    }
                    self.pos += 1;
                }
            }
            _ => {
                while self
                    .peek()
                    .is_some_and(|b| !matches!(b, b',' | b'}' | b']') && !b.is_ascii_whitespace())
                {
                    self.pos += 1;
                }
                Some(())
            }
        }
    }

    /// Moves into the value `step` names in the value at the current position; returns the
    /// position of its key (for keys) or of the element (for indexes).
    fn enter(&mut self, step: &Step) -> Option<usize> {
        match step {
            Step::Key(wanted) => {
                self.eat(b'{')?;
                loop {
                    self.skip_ws();
                    let at = self.pos;
                    let raw = self.string()?;
                    let matches = key_equals(raw, wanted);
                    self.eat(b':')?;
                    self.skip_ws();
                    if matches {
                        return Some(at);
                    }
                    self.skip_value()?;
                    self.eat(b',')?;
                }
            }
            Step::Index(index) => {
                self.eat(b'[')?;
                for _ in 0..*index {
                    self.skip_value()?;
                    self.eat(b',')?;
                }
                self.skip_ws();
                if matches!(self.peek()?, b']') {
                    return None;
                }
                Some(self.pos)
            }
        }
    }
}

/// True if the raw JSON string (with quotes) is `wanted`.
fn key_equals(raw: &[u8], wanted: &str) -> bool {
    let inner = raw.get(1..raw.len().saturating_sub(1)).unwrap_or_default();
    if !inner.contains(&b'\\') {
        return inner == wanted.as_bytes();
    }
    std::str::from_utf8(raw)
        .ok()
        .and_then(|raw| serde_json::from_str::<String>(raw).ok())
        .is_some_and(|key| key == wanted)
}

/// Follows `steps` through the YAML lines `lines[from..to]` (one document; 0-based line
/// indexes); `None` when the document has no content line.
pub(crate) fn yaml(lines: &[&str], from: usize, to: usize, steps: &[Step]) -> Option<Found> {
    let to = to.min(lines.len());
    let first = (from..to).find(|&i| is_content(lines[i]))?;
    let mut found = Found {
        line: first + 1,
        depth: 0,
    };
    let mut block = Block {
        from: first,
        to,
        column: None,
    };
    for step in steps {
        let Some((line, next)) = block.enter(lines, step) else {
            break;
        };
        found = Found {
            line: line + 1,
            depth: found.depth + 1,
        };
        block = next;
    }
    Some(found)
}

/// A YAML node's lines: `lines[from..to]`, its keys or items starting at `column` (the
/// indentation of its first content line when `None`).
#[derive(Clone, Copy, Debug)]
struct Block {
    from: usize,
    to: usize,
    column: Option<usize>,
}

fn is_content(line: &str) -> bool {
    let trimmed = line.trim();
    !trimmed.is_empty() && !trimmed.starts_with('#')
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start_matches(' ').len()
}

/// True if `line` has an item marker (`-` then a space or the end) at `column`, with only
/// spaces and other markers before it.
fn item_at(line: &str, column: usize) -> bool {
    let (Some(before), Some(rest)) = (line.get(..column), line.get(column..)) else {
        return false;
    };
    before.bytes().all(|b| b == b' ' || b == b'-')
        && (rest == "-" || rest.starts_with("- ") || rest.starts_with("-\t"))
}

/// True if `line` has key `key` at `column` (plain, `"quoted"` or `'quoted'`), with only
/// spaces and item markers before it.
fn key_at(line: &str, column: usize, key: &str) -> bool {
    let (Some(before), Some(rest)) = (line.get(..column), line.get(column..)) else {
        return false;
    };
    if !before.bytes().all(|b| b == b' ' || b == b'-') {
        return false;
    }
    let after = [
        rest.strip_prefix(key),
        rest.strip_prefix('"')
            .and_then(|r| r.strip_prefix(key))
            .and_then(|r| r.strip_prefix('"')),
        rest.strip_prefix('\'')
            .and_then(|r| r.strip_prefix(key))
            .and_then(|r| r.strip_prefix('\'')),
    ];
    after.into_iter().flatten().any(|after| {
        let after = after.trim_start_matches([' ', '\t']);
        after == ":" || after.starts_with(": ") || after.starts_with(":\t")
    })
}

impl Block {
    fn column(&self, lines: &[&str]) -> Option<usize> {
        self.column.or_else(|| {
            (self.from..self.to)
                .find(|&i| is_content(lines[i]))
                .map(|i| indent(lines[i]))
        })
    }

    /// The line of `step` in this block and the block of its value.
    fn enter(&self, lines: &[&str], step: &Step) -> Option<(usize, Block)> {
        let column = self.column(lines)?;
        match step {
            Step::Key(key) => {
                let line = (self.from..self.to).find(|&i| key_at(lines[i], column, key))?;
                let end = (line + 1..self.to)
                    .find(|&i| {
                        is_content(lines[i])
                            && (indent(lines[i]) < column
                                || indent(lines[i]) == column && !item_at(lines[i], column))
                    })
                    .unwrap_or(self.to);
                Some((
                    line,
                    Block {
                        from: line + 1,
                        to: end,
                        column: None,
                    },
                ))
            }
            Step::Index(index) => {
                let items: Vec<usize> = (self.from..self.to)
                    .filter(|&i| item_at(lines[i], column))
                    .collect();
                let line = *items.get(*index)?;
                let end = items.get(index + 1).copied().unwrap_or(self.to);
                let after = &lines[line][column + 1..];
                let content = after.trim_start_matches([' ', '\t']);
                let block = if content.is_empty() || content.starts_with('#') {
                    Block {
                        from: line + 1,
                        to: end,
                        column: None,
                    }
                } else {
                    Block {
                        from: line,
                        to: end,
                        column: Some(lines[line].len() - content.len()),
                    }
                };
                Some((line, block))
            }
        }
    }
}

/// The documents of a YAML text as line ranges `[from, to)`, split at `---` lines; a first
/// range with no content before the first `---` is not a document.
pub(crate) fn yaml_documents(lines: &[&str]) -> Vec<(usize, usize)> {
    let separators: Vec<usize> = (0..lines.len())
        .filter(|&i| {
            lines[i]
                .strip_prefix("---")
                .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t']))
        })
        .collect();
    let mut ranges = Vec::new();
    let mut start = 0;
    for &separator in &separators {
        ranges.push((start, separator));
        start = separator + 1;
    }
    ranges.push((start, lines.len()));
    if !separators.is_empty() {
        let (from, to) = ranges[0];
        let directive_or_blank =
            |line: &&str| !is_content(line) || line.trim_start().starts_with('%');
        if lines[from..to].iter().all(directive_or_blank) {
            ranges.remove(0);
        }
    }
    ranges
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(k: &str) -> Step {
        Step::Key(k.into())
    }

    #[test]
    fn paths_parse_and_render() {
        let steps = parse_path("/apps(1)/portDefinitions(0)/port");
        assert_eq!(
            steps,
            vec![
                key("apps"),
                Step::Index(1),
                key("portDefinitions"),
                Step::Index(0),
                key("port")
            ]
        );
        assert_eq!(render_path(&steps), "/apps(1)/portDefinitions(0)/port");
        assert_eq!(parse_path("/"), vec![]);
        assert_eq!(render_path(&[]), "/");
        assert_eq!(
            parse_path("/constraints(0)(1)"),
            vec![key("constraints"), Step::Index(0), Step::Index(1)]
        );
        assert_eq!(parse_path("/env/A(b)"), vec![key("env"), key("A(b)")]);
        assert_eq!(render_path(&parse_path("(2)/id")), "(2)/id");
    }

    const JSON: &str = r#"{
  "id": "/g",
  "apps": [
    {"id": "a", "cmd": "x"},
    {
      "id": "b",
      "note": "a \"tricky\" {string] with \"cmd\": in it",
      "portDefinitions": [
        {"port": 1},
        {"port": 2}
      ],
      "cmd": "y"
    }
  ]
}"#;

    #[test]
    fn json_paths_find_their_lines() {
        let at = |path: &str| json(JSON, &parse_path(path)).expect("content");
        assert_eq!(at("/"), Found { line: 1, depth: 0 });
        assert_eq!(at("/apps(0)/cmd"), Found { line: 4, depth: 3 });
        assert_eq!(at("/apps(1)/cmd"), Found { line: 12, depth: 3 });
        assert_eq!(at("/apps(1)"), Found { line: 5, depth: 2 });
        assert_eq!(
            at("/apps(1)/portDefinitions(1)/port"),
            Found { line: 10, depth: 5 }
        );
        // Missing parts stop at the deepest step found.
        assert_eq!(at("/apps(1)/mem"), Found { line: 5, depth: 2 });
        assert_eq!(at("/apps(7)/cmd"), Found { line: 3, depth: 1 });
        assert_eq!(at("/id/x"), Found { line: 2, depth: 1 });
        assert_eq!(json("  ", &[]), None);
        assert_eq!(
            json(r#"{"a\u0062": 1}"#, &parse_path("/ab")),
            Some(Found { line: 1, depth: 1 })
        );
    }

    const YAML: &str = "\
# a group
id: /g
apps:
  - id: a
    cmd: x
  -
    id: b
    container:
      docker: {image: nginx}
    portDefinitions:
    - port: 1
    - port: 2
      name: two
    \"cmd\": y
groups: []
";

    #[test]
    fn yaml_paths_find_their_lines() {
        let lines: Vec<&str> = YAML.lines().collect();
        let at = |path: &str| yaml(&lines, 0, lines.len(), &parse_path(path)).expect("content");
        assert_eq!(at("/"), Found { line: 2, depth: 0 });
        assert_eq!(at("/id"), Found { line: 2, depth: 1 });
        assert_eq!(at("/apps(0)/id"), Found { line: 4, depth: 3 });
        assert_eq!(at("/apps(0)/cmd"), Found { line: 5, depth: 3 });
        assert_eq!(at("/apps(1)/id"), Found { line: 7, depth: 3 });
        assert_eq!(at("/apps(1)/cmd"), Found { line: 14, depth: 3 });
        assert_eq!(
            at("/apps(1)/portDefinitions(1)/name"),
            Found { line: 13, depth: 5 }
        );
        // Flow collections are not entered.
        assert_eq!(
            at("/apps(1)/container/docker/image"),
            Found { line: 9, depth: 4 }
        );
        assert_eq!(at("/groups"), Found { line: 15, depth: 1 });
        assert_eq!(at("/apps(0)/mem"), Found { line: 4, depth: 2 });
    }

    #[test]
    fn yaml_documents_split_at_separators() {
        let lines: Vec<&str> = "a: 1\n---\nb: 2\n--- # c\nc: 3".lines().collect();
        assert_eq!(yaml_documents(&lines), vec![(0, 1), (2, 3), (4, 5)]);
        let lines: Vec<&str> = "# x\n---\nb: 2\n---\n".lines().collect();
        assert_eq!(yaml_documents(&lines), vec![(2, 3), (4, 4)]);
        let lines: Vec<&str> = "b: 2\n---x: 1".lines().collect();
        assert_eq!(yaml_documents(&lines), vec![(0, 2)]);
    }
}

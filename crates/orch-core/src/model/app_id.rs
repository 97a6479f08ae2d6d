//! Marathon path ids (`/prod/web`): parsing, canonical form and validation.

/// A canonical, absolute Marathon app id such as `/prod/web`.
///
/// Construction validates Marathon's `PathId` rules: every segment is a lowercase DNS-like
/// label (letters, digits, `-` inside, `.` between labels), the id is not `/`, and the last
/// segment is not a reserved keyword.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct AppId(String);

/// Why a string is not a valid app id. Messages are Marathon's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AppIdError {
    /// The id had no segments, e.g. `/` or an empty string.
    #[error("Path must contain at least one path element")]
    Empty,
    /// A segment breaks the label rules.
    #[error("must fully match regular expression '{}'", AppId::SEGMENT_PATTERN)]
    BadSegment {
        /// The offending segment.
        segment: String,
    },
    /// The last segment is reserved for sub-resources.
    #[error(
        "must not end with any of the following reserved keywords: restart, tasks, versions, ., .."
    )]
    Reserved,
}

const RESERVED: [&str; 5] = ["restart", "tasks", "versions", ".", ".."];

impl AppId {
    /// The segment rule as Marathon prints it in validation errors.
    pub const SEGMENT_PATTERN: &'static str = r"^(([a-z0-9]|[a-z0-9][a-z0-9\-]*[a-z0-9])\.)*([a-z0-9]|[a-z0-9][a-z0-9\-]*[a-z0-9])|(\.|\.\.)$";

    /// Parses an id given with or without its leading `/`, resolving `.` and `..`.
    pub fn parse(text: &str) -> Result<Self, AppIdError> {
        let raw: Vec<&str> = text.split('/').filter(|s| !s.is_empty()).collect();
        if raw.last().is_some_and(|last| RESERVED.contains(last)) {
            return Err(AppIdError::Reserved);
        }
        let mut segments: Vec<&str> = Vec::with_capacity(raw.len());
        for segment in raw {
            match segment {
                "." => {}
                ".." => {
                    segments.pop();
                }
                _ if is_valid_segment(segment) => segments.push(segment),
                _ => {
                    return Err(AppIdError::BadSegment {
                        segment: segment.to_owned(),
                    })
                }
            }
        }
        if segments.is_empty() {
            return Err(AppIdError::Empty);
        }
        Ok(Self(format!("/{}", segments.join("/"))))
    }

    /// The canonical absolute form, e.g. `/prod/web`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One DNS-like label or several joined by dots; each label: `[a-z0-9]` at both ends, `-` inside.
fn is_valid_segment(segment: &str) -> bool {
    segment.split('.').all(|label| {
        let bytes = label.as_bytes();
        let edge_ok = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
        match (bytes.first(), bytes.last()) {
            (Some(first), Some(last)) => {
                edge_ok(first) && edge_ok(last) && bytes.iter().all(|b| edge_ok(b) || *b == b'-')
            }
            _ => false,
        }
    })
}

impl std::fmt::Display for AppId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for AppId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonicalises_relative_and_dotted_ids() {
        assert_eq!(AppId::parse("web").map(|id| id.0), Ok("/web".to_owned()));
        assert_eq!(
            AppId::parse("/prod/./db/../web/").map(|id| id.0),
            Ok("/prod/web".to_owned())
        );
        assert_eq!(
            AppId::parse("a.b-c/x1").map(|id| id.0),
            Ok("/a.b-c/x1".to_owned())
        );
    }

    #[test]
    fn rejects_what_marathon_rejects() {
        assert_eq!(AppId::parse("/"), Err(AppIdError::Empty));
        assert_eq!(AppId::parse(""), Err(AppIdError::Empty));
        assert!(matches!(
            AppId::parse("/Bad"),
            Err(AppIdError::BadSegment { .. })
        ));
        assert!(matches!(
            AppId::parse("/bad_id"),
            Err(AppIdError::BadSegment { .. })
        ));
        assert!(matches!(
            AppId::parse("/-web"),
            Err(AppIdError::BadSegment { .. })
        ));
        assert!(matches!(
            AppId::parse("/web-"),
            Err(AppIdError::BadSegment { .. })
        ));
        assert!(matches!(
            AppId::parse("/a..b"),
            Err(AppIdError::BadSegment { .. })
        ));
        assert_eq!(AppId::parse("/web/tasks"), Err(AppIdError::Reserved));
    }
}

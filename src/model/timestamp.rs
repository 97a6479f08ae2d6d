//! Marathon timestamps: milliseconds since the Unix epoch, written as
//! `yyyy-MM-ddTHH:mm:ss.SSSZ`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A point in time with millisecond precision, as Marathon stores versions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(u64);

/// A string that is not a Marathon timestamp.
#[derive(Debug, thiserror::Error)]
#[error("'{input}' is not an ISO-8601 UTC timestamp")]
pub struct TimestampError {
    /// The rejected text.
    pub input: String,
}

impl Timestamp {
    /// The timestamp `millis` milliseconds after the Unix epoch.
    pub const fn from_millis(millis: u64) -> Self {
        Self(millis)
    }

    /// Milliseconds since the Unix epoch.
    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// The RFC 3339 form Marathon emits, always with milliseconds: `2015-09-25T15:13:48.343Z`.
    pub fn to_rfc3339(self) -> String {
        let time = UNIX_EPOCH + Duration::from_millis(self.0);
        humantime::format_rfc3339_millis(time).to_string()
    }

    /// Parses `2015-09-25T15:13:48.343Z` and the form without milliseconds.
    pub fn parse(text: &str) -> Result<Self, TimestampError> {
        let error = || TimestampError {
            input: text.to_owned(),
        };
        let time =
            humantime::parse_rfc3339_weak(text.trim_end_matches('Z')).map_err(|_| error())?;
        let since_epoch = time.duration_since(UNIX_EPOCH).map_err(|_| error())?;
        u64::try_from(since_epoch.as_millis())
            .map(Self)
            .map_err(|_| error())
    }

    /// Converts a wall-clock time (read by a shell, never by pure code).
    pub fn from_system_time(time: SystemTime) -> Self {
        let millis = time
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        Self(u64::try_from(millis).unwrap_or(u64::MAX))
    }
}

impl std::fmt::Display for Timestamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl serde::Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_rfc3339())
    }
}

impl<'de> serde::Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_with_millis_and_parses_back() {
        let ts = Timestamp::from_millis(1_443_194_028_343);
        assert_eq!(ts.to_rfc3339(), "2015-09-25T15:13:48.343Z");
        assert_eq!(Timestamp::parse("2015-09-25T15:13:48.343Z").ok(), Some(ts));
        assert_eq!(
            Timestamp::parse("2015-09-25T15:13:48Z").ok(),
            Some(Timestamp::from_millis(1_443_194_028_000))
        );
        assert!(Timestamp::parse("yesterday").is_err());
    }
}

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
        self.rfc3339_bytes().map_or_else(
            || self.to_rfc3339_slow(),
            |bytes| String::from_utf8_lossy(&bytes).into_owned(),
        )
    }

    /// The RFC 3339 form written into a stack buffer (no allocation: task lists serialise
    /// tens of thousands of timestamps); `None` past the year 9999.
    fn rfc3339_bytes(self) -> Option<[u8; 24]> {
        let millis = self.0 % 1000;
        let seconds = self.0 / 1000;
        let days = seconds / 86_400;
        let in_day = seconds % 86_400;
        let (year, month, day) = civil_from_days(days);
        if year > 9999 {
            return None;
        }
        let mut out = *b"0000-00-00T00:00:00.000Z";
        let mut put = |at: usize, width: usize, mut value: u64| {
            for i in (0..width).rev() {
                out[at + i] = b'0' + (value % 10) as u8;
                value /= 10;
            }
        };
        put(0, 4, year);
        put(5, 2, month);
        put(8, 2, day);
        put(11, 2, in_day / 3600);
        put(14, 2, in_day % 3600 / 60);
        put(17, 2, in_day % 60);
        put(20, 3, millis);
        Some(out)
    }

    fn to_rfc3339_slow(self) -> String {
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

/// (year, month, day) of `days` since 1970-01-01 (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

impl std::fmt::Display for Timestamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.rfc3339_bytes() {
            Some(bytes) => f.write_str(std::str::from_utf8(&bytes).unwrap_or_default()),
            None => f.write_str(&self.to_rfc3339_slow()),
        }
    }
}

impl serde::Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.rfc3339_bytes() {
            Some(bytes) => {
                serializer.serialize_str(std::str::from_utf8(&bytes).unwrap_or_default())
            }
            None => serializer.serialize_str(&self.to_rfc3339_slow()),
        }
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
    fn the_fast_format_matches_humantime() {
        let mut millis = 0u64;
        // Every few days across 1970..2400, at odd times of day, and the leap-day edges.
        while millis < 13_600_000_000_000 {
            let t = Timestamp::from_millis(millis);
            assert_eq!(t.to_rfc3339(), t.to_rfc3339_slow(), "{millis}");
            millis += 259_199_987;
        }
        for text in [
            "2000-02-29T23:59:59.999Z",
            "2100-03-01T00:00:00.000Z",
            "1972-12-31T12:00:00.001Z",
        ] {
            let t = Timestamp::parse(text).expect("valid");
            assert_eq!(t.to_rfc3339(), text);
        }
    }

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

//! Wall-clock timestamps as stored: microseconds since the Unix epoch, UTC.
//!
//! Both database backends store the integer, so ordering and equality never depend on a
//! backend's date type or time zone.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(i64);

impl Timestamp {
    pub fn now() -> Self {
        Self(Utc::now().timestamp_micros())
    }

    pub const fn from_micros(micros: i64) -> Self {
        Self(micros)
    }

    pub const fn as_micros(self) -> i64 {
        self.0
    }

    /// This time plus a duration (saturating).
    pub fn plus(self, by: std::time::Duration) -> Self {
        Self(self.0.saturating_add(i64::try_from(by.as_micros()).unwrap_or(i64::MAX)))
    }

    /// This time minus a duration (saturating).
    pub fn minus(self, by: std::time::Duration) -> Self {
        Self(self.0.saturating_sub(i64::try_from(by.as_micros()).unwrap_or(i64::MAX)))
    }

    /// Midnight UTC on the first day of this timestamp's month.
    pub fn month_start(self) -> Self {
        use chrono::Datelike as _;
        match DateTime::<Utc>::from_timestamp_micros(self.0) {
            Some(t) => {
                let first = t.date_naive().with_day(1).and_then(|d| d.and_hms_opt(0, 0, 0));
                first.map_or(self, |f| Self(f.and_utc().timestamp_micros()))
            }
            None => self,
        }
    }

    /// RFC 3339 with microseconds, e.g. `2026-11-21T05:01:46.123456Z`.
    pub fn to_rfc3339(self) -> String {
        match DateTime::<Utc>::from_timestamp_micros(self.0) {
            Some(t) => t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            None => format!("@{}us", self.0),
        }
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn month_start_is_midnight_utc_on_the_first() {
        // 2026-12-02T16:17:29.5Z
        let t = Timestamp::from_micros(1_796_228_249_500_000);
        assert_eq!(t.month_start().to_rfc3339(), "2026-12-01T00:00:00.000000Z");
        assert_eq!(t.month_start().month_start(), t.month_start());
    }

    #[test]
    fn formats_as_rfc3339_utc() {
        assert_eq!(Timestamp::from_micros(1_000_001).to_rfc3339(), "1970-01-01T00:00:01.000001Z");
    }
}

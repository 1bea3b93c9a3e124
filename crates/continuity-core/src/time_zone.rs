//! The time zone an organisation's administrators read times in.
//!
//! Every time an administrator reads (alert messages, the portal's pages)
//! is written in the tenant's configured IANA zone
//! ([`TenantConfig::time_zone`](crate::config::TenantConfig::time_zone),
//! default `UTC`), with the zone's abbreviation so that a forwarded message
//! stays unambiguous: `2026-03-02 15:00 CET`. A time an administrator types
//! into a portal form is read in the same zone. Machine-readable times
//! (JSON, the webhook's payload, the store) stay RFC 3339 in UTC, and the
//! audit trail's stored descriptions keep UTC: a record must not change
//! meaning when the tenant's zone is changed later.
//!
//! ```
//! use chrono::{DateTime, NaiveDate, Utc};
//! use continuity_core::time_zone::TimeZone;
//!
//! let berlin: TimeZone = "Europe/Berlin".parse().unwrap();
//! let t: DateTime<Utc> = "2026-03-02T14:00:00Z".parse().unwrap();
//! assert_eq!(berlin.format(t), "2026-03-02 15:00 CET");
//! let typed = NaiveDate::from_ymd_opt(2026, 7, 1).unwrap().and_hms_opt(9, 30, 0).unwrap();
//! assert_eq!(berlin.to_utc(typed).unwrap().to_rfc3339(), "2026-07-01T07:30:00+00:00");
//! assert!("Europe/Berln".parse::<TimeZone>().is_err());
//! ```

use std::{fmt, str::FromStr};

use chrono::{DateTime, LocalResult, NaiveDateTime, TimeZone as _, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An IANA time zone (`Europe/Berlin`, `America/New_York`, `UTC`), written
/// in configuration and JSON as its name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TimeZone(Tz);

impl TimeZone {
    /// Coordinated Universal Time, the default.
    pub const UTC: TimeZone = TimeZone(Tz::UTC);

    /// The zone's IANA name.
    pub fn name(&self) -> &'static str {
        self.0.name()
    }

    /// A time as administrators read it: `2026-03-02 15:00 CET`.
    pub fn format(&self, t: DateTime<Utc>) -> String {
        t.with_timezone(&self.0)
            .format("%Y-%m-%d %H:%M %Z")
            .to_string()
    }

    /// A time to the second, for records: `2026-03-02 15:00:07 CET`.
    pub fn format_seconds(&self, t: DateTime<Utc>) -> String {
        t.with_timezone(&self.0)
            .format("%Y-%m-%d %H:%M:%S %Z")
            .to_string()
    }

    /// The time of day only, `15:00`, for axis labels next to a full time.
    pub fn format_clock(&self, t: DateTime<Utc>) -> String {
        t.with_timezone(&self.0).format("%H:%M").to_string()
    }

    /// The zone's abbreviation at `t` (`CET`, `CEST`, `UTC`, or an offset
    /// such as `+03` where the zone has no letters).
    pub fn abbreviation(&self, t: DateTime<Utc>) -> String {
        t.with_timezone(&self.0).format("%Z").to_string()
    }

    /// A wall-clock time in this zone, as UTC.
    ///
    /// A time the clocks skip (the hour lost when summer time starts) is
    /// refused, since it names no instant; a time they pass twice (the hour
    /// repeated when it ends) is read as the earlier of the two, the one
    /// that comes first and so never leaves a gap in a continuity event or
    /// suspension.
    pub fn to_utc(&self, local: NaiveDateTime) -> Result<DateTime<Utc>, LocalTimeError> {
        match self.0.from_local_datetime(&local) {
            LocalResult::Single(t) => Ok(t.with_timezone(&Utc)),
            LocalResult::Ambiguous(earlier, _) => Ok(earlier.with_timezone(&Utc)),
            LocalResult::None => Err(LocalTimeError { local, zone: *self }),
        }
    }
}

impl Default for TimeZone {
    fn default() -> Self {
        TimeZone::UTC
    }
}

impl fmt::Display for TimeZone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A wall-clock time that does not exist in a zone (skipped when the
/// clocks go forward).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{} does not exist in {zone}: the clocks skip it (summer time); choose a time outside the skipped hour", local.format("%Y-%m-%d %H:%M"))]
pub struct LocalTimeError {
    local: NaiveDateTime,
    zone: TimeZone,
}

/// A name that is not an IANA time zone.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown time zone {name:?}: give an IANA name such as \"Europe/Berlin\", \"America/New_York\" or \"UTC\""
)]
pub struct UnknownTimeZone {
    name: String,
}

impl FromStr for TimeZone {
    type Err = UnknownTimeZone;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Tz::from_str(s.trim())
            .map(TimeZone)
            .map_err(|_| UnknownTimeZone { name: s.to_owned() })
    }
}

impl Serialize for TimeZone {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for TimeZone {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;

    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn local(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(y, mo, d)
            .unwrap()
            .and_hms_opt(h, mi, 0)
            .unwrap()
    }

    #[test]
    fn formats_with_the_zone_and_its_summer_time() {
        let z: TimeZone = "Europe/Berlin".parse().unwrap();
        assert_eq!(
            z.format(utc("2026-01-15T08:00:00Z")),
            "2026-01-15 09:00 CET"
        );
        assert_eq!(
            z.format(utc("2026-07-15T08:00:00Z")),
            "2026-07-15 10:00 CEST"
        );
        assert_eq!(z.format_clock(utc("2026-07-15T08:05:00Z")), "10:05");
        let ny: TimeZone = "America/New_York".parse().unwrap();
        // Across the date line of the day: 02:00 UTC is the evening before.
        assert_eq!(
            ny.format(utc("2026-03-02T02:00:00Z")),
            "2026-03-01 21:00 EST"
        );
        assert_eq!(
            TimeZone::UTC.format(utc("2026-03-02T02:00:00Z")),
            "2026-03-02 02:00 UTC"
        );
    }

    #[test]
    fn reads_wall_clock_times_in_the_zone() {
        let z: TimeZone = "Europe/Berlin".parse().unwrap();
        assert_eq!(
            z.to_utc(local(2026, 1, 15, 9, 0)).unwrap(),
            utc("2026-01-15T08:00:00Z")
        );
        // 29 March 2026, 02:30 is skipped in Berlin.
        let e = z.to_utc(local(2026, 3, 29, 2, 30)).unwrap_err();
        assert!(
            e.to_string()
                .contains("2026-03-29 02:30 does not exist in Europe/Berlin"),
            "{e}"
        );
        // 25 October 2026, 02:30 happens twice: the earlier (summer time) one.
        assert_eq!(
            z.to_utc(local(2026, 10, 25, 2, 30)).unwrap(),
            utc("2026-10-25T00:30:00Z")
        );
    }

    #[test]
    fn names_round_trip_and_unknown_ones_say_what_to_give() {
        let z: TimeZone = serde_json::from_str("\"Asia/Kolkata\"").unwrap();
        assert_eq!(serde_json::to_string(&z).unwrap(), "\"Asia/Kolkata\"");
        assert_eq!(TimeZone::default(), TimeZone::UTC);
        let e = serde_json::from_str::<TimeZone>("\"Mars/Olympus\"").unwrap_err();
        assert!(
            e.to_string().contains("unknown time zone \"Mars/Olympus\""),
            "{e}"
        );
        assert!(e.to_string().contains("Europe/Berlin"), "{e}");
    }
}

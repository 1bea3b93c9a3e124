//! The time zone an organisation's administrators read times in.
//!
//! Every time an administrator reads (alert messages, the portal's pages,
//! the audit trail's descriptions) is written in the tenant's configured
//! IANA zone
//! ([`TenantConfig::time_zone`](crate::config::TenantConfig::time_zone),
//! default `UTC`) with the zone's abbreviation: `2026-03-02 15:00 CET`.
//! An abbreviation can be shared by several zones (`IST`) or be a bare
//! offset (`-03`), so records, which outlive a change of the zone, also
//! carry the offset ([`format_record`](TimeZone::format_record)). A time an
//! administrator types into a portal form is read in the same zone.
//! Machine-readable times (JSON, the webhook's RFC 3339 fields, the
//! store's columns) stay in UTC.
//!
//! ```
//! use chrono::{DateTime, NaiveDate, Utc};
//! use continuity_core::time_zone::{Repeated, TimeZone};
//!
//! let berlin: TimeZone = "Europe/Berlin".parse().unwrap();
//! let t: DateTime<Utc> = "2026-03-02T14:00:00Z".parse().unwrap();
//! assert_eq!(berlin.format(t), "2026-03-02 15:00 CET");
//! assert_eq!(berlin.format_record(t), "2026-03-02 15:00:00 CET (UTC+01:00)");
//! let typed = NaiveDate::from_ymd_opt(2026, 7, 1).unwrap().and_hms_opt(9, 30, 0).unwrap();
//! let utc = berlin.to_utc(typed, Repeated::Earlier).unwrap();
//! assert_eq!(utc.to_rfc3339(), "2026-07-01T07:30:00+00:00");
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

    /// A time to the second for records that outlive a change of the zone:
    /// `2026-03-02 15:00:07 CET (UTC+01:00)`; in UTC simply
    /// `2026-03-02 14:00:07 UTC`.
    pub fn format_record(&self, t: DateTime<Utc>) -> String {
        if self.0 == Tz::UTC {
            return t.format("%Y-%m-%d %H:%M:%S UTC").to_string();
        }
        t.with_timezone(&self.0)
            .format("%Y-%m-%d %H:%M:%S %Z (UTC%:z)")
            .to_string()
    }

    /// The time of day only, `15:00`, for a chart's axis (whose caption
    /// names the zone).
    pub fn format_clock(&self, t: DateTime<Utc>) -> String {
        t.with_timezone(&self.0).format("%H:%M").to_string()
    }

    /// A wall-clock time in this zone, as UTC.
    ///
    /// A time a clock change skips (the hour lost when summer time starts)
    /// is refused, since it names no instant. A time the clocks pass twice
    /// (the hour repeated when it ends) is the one `repeated` says: the
    /// earlier for the start of something, the later for its end, so that
    /// what an administrator asks for is never cut short.
    pub fn to_utc(
        &self,
        local: NaiveDateTime,
        repeated: Repeated,
    ) -> Result<DateTime<Utc>, LocalTimeError> {
        match self.0.from_local_datetime(&local) {
            LocalResult::Single(t) => Ok(t.with_timezone(&Utc)),
            LocalResult::Ambiguous(earlier, later) => Ok(match repeated {
                Repeated::Earlier => earlier,
                Repeated::Later => later,
            }
            .with_timezone(&Utc)),
            LocalResult::None => Err(LocalTimeError { local, zone: *self }),
        }
    }
}

/// Which of two instants a wall-clock time the clocks pass twice means
/// (see [`TimeZone::to_utc`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Repeated {
    /// The first time the clocks show it (the start of something).
    Earlier,
    /// The second time (the end of something).
    Later,
}

/// What `write` writes for `zone`, as text: the `describe(zone)` of types
/// whose `Display` writes their times in UTC.
pub(crate) fn in_zone(
    zone: TimeZone,
    write: impl Fn(&mut fmt::Formatter<'_>, TimeZone) -> fmt::Result,
) -> String {
    struct In<F>(F, TimeZone);
    impl<F: Fn(&mut fmt::Formatter<'_>, TimeZone) -> fmt::Result> fmt::Display for In<F> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            (self.0)(f, self.1)
        }
    }
    In(write, zone).to_string()
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

/// A wall-clock time that names no instant in a zone: skipped by a clock
/// change, or beyond the dates the zone can be computed for.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{} does not exist in {zone}: a clock change skips it, or it is out of range; choose another time", local.format("%Y-%m-%d %H:%M"))]
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
        assert_eq!(
            z.format_record(utc("2026-07-15T08:05:09Z")),
            "2026-07-15 10:05:09 CEST (UTC+02:00)"
        );
        // Shared or numeric abbreviations: the offset tells them apart.
        let kolkata: TimeZone = "Asia/Kolkata".parse().unwrap();
        assert_eq!(
            kolkata.format_record(utc("2026-07-15T08:05:09Z")),
            "2026-07-15 13:35:09 IST (UTC+05:30)"
        );
        assert_eq!(
            TimeZone::UTC.format_record(utc("2026-07-15T08:05:09Z")),
            "2026-07-15 08:05:09 UTC"
        );
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
        for repeated in [Repeated::Earlier, Repeated::Later] {
            assert_eq!(
                z.to_utc(local(2026, 1, 15, 9, 0), repeated).unwrap(),
                utc("2026-01-15T08:00:00Z")
            );
        }
        // 29 March 2026, 02:30 is skipped in Berlin.
        let e = z
            .to_utc(local(2026, 3, 29, 2, 30), Repeated::Earlier)
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("2026-03-29 02:30 does not exist in Europe/Berlin"),
            "{e}"
        );
        // 25 October 2026, 02:30 happens twice: summer time's first, then
        // winter time's.
        let repeated = local(2026, 10, 25, 2, 30);
        assert_eq!(
            z.to_utc(repeated, Repeated::Earlier).unwrap(),
            utc("2026-10-25T00:30:00Z")
        );
        assert_eq!(
            z.to_utc(repeated, Repeated::Later).unwrap(),
            utc("2026-10-25T01:30:00Z")
        );
        // Far outside what can be computed: refused, not a panic.
        let far = NaiveDate::from_ymd_opt(262_142, 12, 31)
            .unwrap()
            .and_hms_opt(23, 59, 0)
            .unwrap();
        let ny: TimeZone = "America/New_York".parse().unwrap();
        assert!(ny.to_utc(far, Repeated::Later).is_err());
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

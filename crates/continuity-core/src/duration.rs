//! Durations in configuration files, JSON and messages.
//!
//! Configuration accepts either a whole number of seconds or a string of
//! `<number><unit>` parts, units `ns`, `us`, `ms`, `s`, `m`, `h`, `d`:
//! `"90s"`, `"5m"`, `"1h30m"`, `"2d"`. JSON output (reports, statuses,
//! observations) writes durations the same way ([`compact`]), to the
//! nanosecond: a latency of 1.25 s is `"1s250ms"`, 1 ns is `"1ns"`.
//! Messages print durations the way an administrator reads them: `42 min`,
//! `1 h 5 min`, `2 d 3 h`.

use std::{fmt, time::Duration};

use chrono::{DateTime, TimeDelta, Utc};

use serde::{Deserialize, Deserializer, Serializer, de};

/// Parses `"1h30m"`-style durations (see the module docs).
pub fn parse(input: &str) -> Result<Duration, String> {
    let s = input.trim();
    if s.is_empty() {
        return Err("empty duration".into());
    }
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(format!("{input:?}: expected a number before {rest:?}"));
        }
        let n: u64 = rest[..digits]
            .parse()
            .map_err(|_| format!("{input:?}: number too large"))?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let part = match unit {
            "ns" => Some(Duration::from_nanos(n)),
            "us" | "µs" => Some(Duration::from_micros(n)),
            "ms" => Some(Duration::from_millis(n)),
            "s" => Some(Duration::from_secs(n)),
            "m" | "min" => n.checked_mul(60).map(Duration::from_secs),
            "h" => n.checked_mul(3600).map(Duration::from_secs),
            "d" => n.checked_mul(86_400).map(Duration::from_secs),
            "" => {
                return Err(format!(
                    "{input:?}: missing unit after {n} (ns, us, ms, s, m, h, d)"
                ));
            }
            other => {
                return Err(format!(
                    "{input:?}: unknown unit {other:?} (ns, us, ms, s, m, h, d)"
                ));
            }
        }
        .ok_or_else(|| format!("{input:?}: too large"))?;
        total = total
            .checked_add(part)
            .ok_or_else(|| format!("{input:?}: too large"))?;
    }
    Ok(total)
}

/// `t + d`, saturating at the end of representable time instead of
/// panicking (configuration may hold absurdly long durations).
pub fn after(t: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    i64::try_from(d.as_millis())
        .ok()
        .and_then(TimeDelta::try_milliseconds)
        .and_then(|d| t.checked_add_signed(d))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// `t` in Unix milliseconds, rounded up: a wake-up or a due probe is never
/// taken before its time by a tick in the same millisecond.
pub(crate) fn ceil_ms(t: DateTime<Utc>) -> i64 {
    let ms = t.timestamp_millis();
    if t.timestamp_subsec_nanos().is_multiple_of(1_000_000) {
        ms
    } else {
        ms.saturating_add(1)
    }
}

/// `prefix` followed by `n` in lowercase hexadecimal, built on the stack and
/// allocated once.
pub(crate) fn hex_id(prefix: &str, n: u64) -> std::sync::Arc<str> {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut buf = [0u8; 40];
    let p = prefix.len().min(24);
    buf[..p].copy_from_slice(&prefix.as_bytes()[..p]);
    let width = (64 - n.leading_zeros()).div_ceil(4).max(1) as usize;
    for i in 0..width {
        buf[p + width - 1 - i] = DIGITS[((n >> (i * 4)) & 0xf) as usize];
    }
    // The prefix is cut only at a character boundary that `from_utf8` accepts.
    let text = std::str::from_utf8(&buf[..p + width]).unwrap_or("0");
    std::sync::Arc::from(text)
}

/// Formats a duration for people: `850 ms`, `42 s`, `42 min`, `1 h 5 min`, `2 d 3 h`.
pub fn human(d: Duration) -> Human {
    Human(d)
}

/// Display adapter returned by [`human`].
#[derive(Clone, Copy, Debug)]
pub struct Human(Duration);

impl fmt::Display for Human {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0;
        let secs = d.as_secs();
        if secs == 0 {
            return write!(f, "{} ms", d.subsec_millis());
        }
        let (days, hours, mins, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
        match (days, hours, mins) {
            (0, 0, 0) => write!(f, "{s} s"),
            (0, 0, m) if s == 0 || m >= 10 => write!(f, "{m} min"),
            (0, 0, m) => write!(f, "{m} min {s} s"),
            (0, h, 0) => write!(f, "{h} h"),
            (0, h, m) => write!(f, "{h} h {m} min"),
            (d, 0, _) => write!(f, "{d} d"),
            (d, h, _) => write!(f, "{d} d {h} h"),
        }
    }
}

/// Compact canonical form used when serialising configuration and JSON:
/// `"1h30m"`, `"1s250ms"`. Exact to the nanosecond (sub-millisecond parts
/// are written in `us` and `ns`), so [`parse`] reads back the very duration.
pub fn compact(d: Duration) -> String {
    let mut ns = d.as_nanos();
    if ns == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, size) in [
        ("d", 86_400_000_000_000u128),
        ("h", 3_600_000_000_000),
        ("m", 60_000_000_000),
        ("s", 1_000_000_000),
        ("ms", 1_000_000),
        ("us", 1_000),
        ("ns", 1),
    ] {
        if ns >= size {
            out.push_str(&format!("{}{unit}", ns / size));
            ns %= size;
        }
    }
    out
}

/// Serde `with` module for `Duration` fields: accepts seconds or `"1h30m"`,
/// writes the compact string.
pub mod serde_duration {
    use super::*;

    /// Serialises as the compact string form.
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&compact(*d))
    }

    /// Deserialises from seconds or the string form.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        d.deserialize_any(DurationVisitor)
    }

    pub(super) struct DurationVisitor;

    impl de::Visitor<'_> for DurationVisitor {
        type Value = Duration;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a duration: seconds, or a string such as \"5m\" or \"1h30m\"")
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Duration, E> {
            Ok(Duration::from_secs(v))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Duration, E> {
            u64::try_from(v)
                .map(Duration::from_secs)
                .map_err(|_| E::custom("a duration cannot be negative"))
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
            parse(v).map_err(E::custom)
        }
    }
}

/// Serde `with` module for `Option<Duration>` fields.
pub mod serde_opt_duration {
    use super::*;

    /// Serialises `Some` as the compact string, `None` as null.
    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&compact(*d)),
            None => s.serialize_none(),
        }
    }

    /// Deserialises null, seconds, or the string form.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        #[derive(Deserialize)]
        struct Wrap(#[serde(with = "serde_duration")] Duration);
        Ok(Option::<Wrap>::deserialize(d)?.map(|w| w.0))
    }
}

/// Serde `with` module for `Duration` fields that earlier builds wrote in
/// serde's default form, `{"secs": 1, "nanos": 250000000}` (an
/// [`Outcome`](crate::Outcome)'s latency, a portal
/// [`Rejection`](crate::machine::Rejection)'s durations): writes as
/// [`serde_duration`] does (exact, see [`compact`]) and reads either form,
/// so JSON an embedder stored or sent before still loads.
pub mod serde_duration_compat {
    use super::*;

    /// Serialises as the compact string form.
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        serde_duration::serialize(d, s)
    }

    /// Deserialises from seconds, the string form or `{"secs", "nanos"}`.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        d.deserialize_any(CompatVisitor)
    }

    struct CompatVisitor;

    impl<'de> de::Visitor<'de> for CompatVisitor {
        type Value = Duration;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(
                "a duration: seconds, a string such as \"1s250ms\", or {\"secs\": .., \"nanos\": ..}",
            )
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Duration, E> {
            de::Visitor::visit_u64(serde_duration::DurationVisitor, v)
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Duration, E> {
            de::Visitor::visit_i64(serde_duration::DurationVisitor, v)
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
            de::Visitor::visit_str(serde_duration::DurationVisitor, v)
        }
        fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Duration, A::Error> {
            let (mut secs, mut nanos) = (None::<u64>, None::<u64>);
            while let Some(key) = map.next_key::<String>()? {
                match key.as_str() {
                    "secs" if secs.is_none() => secs = Some(map.next_value()?),
                    "nanos" if nanos.is_none() => nanos = Some(map.next_value()?),
                    "secs" | "nanos" => return Err(de::Error::duplicate_field("secs or nanos")),
                    other => return Err(de::Error::unknown_field(other, &["secs", "nanos"])),
                }
            }
            let secs = secs.ok_or_else(|| de::Error::missing_field("secs"))?;
            let nanos = nanos.ok_or_else(|| de::Error::missing_field("nanos"))?;
            // As serde's own form reads it: whole seconds in `nanos` carry over.
            secs.checked_add(nanos / 1_000_000_000)
                .map(|secs| Duration::new(secs, (nanos % 1_000_000_000) as u32))
                .ok_or_else(|| de::Error::custom("duration too large"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_combinations() {
        assert_eq!(parse("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse("2d"), Ok(Duration::from_secs(172_800)));
        assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse("").is_err());
        assert!(parse("h").is_err());
        assert!(parse("5").is_ok());
        assert!(parse("5x").is_err());
        assert!(parse("-5m").is_err());
        assert!(parse("99999999999999999999d").is_err());
        assert!(parse("18446744073709551615d").is_err());
    }

    #[test]
    fn formats_for_people() {
        assert_eq!(human(Duration::from_millis(850)).to_string(), "850 ms");
        assert_eq!(human(Duration::from_secs(42)).to_string(), "42 s");
        assert_eq!(human(Duration::from_secs(42 * 60)).to_string(), "42 min");
        assert_eq!(human(Duration::from_secs(65)).to_string(), "1 min 5 s");
        assert_eq!(human(Duration::from_secs(3900)).to_string(), "1 h 5 min");
        assert_eq!(human(Duration::from_secs(3600)).to_string(), "1 h");
        assert_eq!(
            human(Duration::from_secs(2 * 86_400 + 3 * 3600)).to_string(),
            "2 d 3 h"
        );
    }

    #[test]
    fn after_saturates() {
        let t: DateTime<Utc> = "2026-01-01T00:00:00Z".parse().unwrap();
        assert_eq!(after(t, Duration::from_secs(60)), t + TimeDelta::minutes(1));
        assert_eq!(after(t, Duration::MAX), DateTime::<Utc>::MAX_UTC);
        assert_eq!(
            after(t, Duration::from_secs(u64::MAX / 4)),
            DateTime::<Utc>::MAX_UTC
        );
    }

    #[test]
    fn hex_ids() {
        assert_eq!(&*hex_id("in-", 0x19b_1234), "in-19b1234");
        assert_eq!(&*hex_id("", 0), "0");
        assert_eq!(&*hex_id("ou-", u64::MAX), "ou-ffffffffffffffff");
    }

    #[test]
    fn compact_round_trips() {
        for s in [0u64, 1, 59, 60, 61, 3600, 5400, 86_400, 90_061] {
            let d = Duration::from_secs(s);
            assert_eq!(parse(&compact(d)), Ok(d), "{}", compact(d));
        }
        assert_eq!(compact(Duration::from_secs(5400)), "1h30m");
    }

    #[test]
    fn compact_is_exact_to_the_nanosecond() {
        assert_eq!(compact(Duration::from_millis(1250)), "1s250ms");
        assert_eq!(compact(Duration::from_nanos(1)), "1ns");
        assert_eq!(compact(Duration::from_nanos(1_250_001)), "1ms250us1ns");
        assert_eq!(compact(Duration::new(90, 7)), "1m30s7ns");
        assert_eq!(parse("1ms250us1ns"), Ok(Duration::from_nanos(1_250_001)));
        assert_eq!(parse("3µs"), Ok(Duration::from_micros(3)));
        for d in [
            Duration::ZERO,
            Duration::from_nanos(1),
            Duration::from_nanos(999_999_999),
            Duration::new(86_400 + 3661, 123_456_789),
            Duration::MAX,
        ] {
            assert_eq!(parse(&compact(d)), Ok(d), "{}", compact(d));
        }
    }

    #[test]
    fn the_compat_form_reads_serdes_default_and_writes_compact() {
        use serde::Serialize;
        #[derive(Debug, PartialEq, Serialize, Deserialize)]
        struct T(#[serde(with = "serde_duration_compat")] Duration);
        let d = Duration::new(1, 250_000_001);
        assert_eq!(serde_json::to_string(&T(d)).unwrap(), r#""1s250ms1ns""#);
        // What serde's own `Duration` writes, as stored by earlier builds.
        let old = serde_json::to_string(&d).unwrap();
        assert_eq!(old, r#"{"secs":1,"nanos":250000001}"#);
        assert_eq!(serde_json::from_str::<T>(&old).unwrap(), T(d));
        assert_eq!(serde_json::from_str::<T>(r#""1s250ms1ns""#).unwrap(), T(d));
        assert_eq!(
            serde_json::from_str::<T>("90").unwrap(),
            T(Duration::from_secs(90))
        );
        assert_eq!(
            serde_json::from_str::<T>(r#"{"nanos":1500000000,"secs":1}"#).unwrap(),
            T(Duration::from_millis(2500))
        );
        for bad in [
            r#"{"secs":1}"#,
            r#"{"secs":1,"nanos":0,"x":2}"#,
            r#"{"secs":-1,"nanos":0}"#,
            r#"{"secs":18446744073709551615,"nanos":1000000000}"#,
            "-5",
            r#""5x""#,
        ] {
            assert!(serde_json::from_str::<T>(bad).is_err(), "{bad}");
        }
    }
}

//! Durations in configuration files and in messages.
//!
//! Configuration accepts either a whole number of seconds or a string of
//! `<number><unit>` parts, units `ms`, `s`, `m`, `h`, `d`: `"90s"`, `"5m"`,
//! `"1h30m"`, `"2d"`. Messages print durations the way an administrator reads
//! them: `42 min`, `1 h 5 min`, `2 d 3 h`.

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
            "ms" => Some(Duration::from_millis(n)),
            "s" => Some(Duration::from_secs(n)),
            "m" | "min" => n.checked_mul(60).map(Duration::from_secs),
            "h" => n.checked_mul(3600).map(Duration::from_secs),
            "d" => n.checked_mul(86_400).map(Duration::from_secs),
            "" => {
                return Err(format!(
                    "{input:?}: missing unit after {n} (ms, s, m, h, d)"
                ));
            }
            other => {
                return Err(format!(
                    "{input:?}: unknown unit {other:?} (ms, s, m, h, d)"
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

/// Compact canonical form used when serialising configuration: `"1h30m"`.
pub fn compact(d: Duration) -> String {
    let mut ms = d.as_millis();
    if ms == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, size) in [
        ("d", 86_400_000u128),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
        ("ms", 1),
    ] {
        if ms >= size {
            out.push_str(&format!("{}{unit}", ms / size));
            ms %= size;
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

    struct DurationVisitor;

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
}

//! The latency policy: the [`LatencyStatistic`] it watches (parsed and
//! printed without allocating), its [`LatencyThreshold`] and the
//! [`LatencyPolicy`].

use std::{fmt, time::Duration};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

use super::{Reading, ThresholdPolicy, Verdict, check_min_samples, field, next_multiple};
use crate::{
    duration::serde_duration,
    error::{Error, Result},
    window::SlidingWindow,
};
/// Which latency statistic a latency threshold watches.
///
/// Written in configuration as `"max"` or `"p"` followed by a percentage:
/// `"p50"`, `"p95"`, `"p99"`, `"p99.9"`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LatencyStatistic {
    /// A quantile in (0, 1], e.g. 0.95.
    Quantile(f64),
    /// The maximum.
    Max,
}

impl LatencyStatistic {
    /// The 95th percentile, the default statistic.
    pub const P95: LatencyStatistic = LatencyStatistic::Quantile(0.95);

    /// Parses `"max"` or `"p<percentage>"` (`"p95"`, `"p99.9"`), case-insensitively.
    pub fn parse(input: &str) -> std::result::Result<Self, String> {
        let s = input.trim();
        if s.eq_ignore_ascii_case("max") {
            return Ok(LatencyStatistic::Max);
        }
        let expected = || {
            format!(
                "{input:?} is not a latency statistic: expected \"max\" or a percentile such as \"p50\", \"p95\" or \"p99.9\""
            )
        };
        let percent = s
            .strip_prefix('p')
            .or_else(|| s.strip_prefix('P'))
            .ok_or_else(expected)?;
        let digits = percent.bytes().filter(u8::is_ascii_digit).count();
        let dots = percent.bytes().filter(|&b| b == b'.').count();
        // Only plain decimals: f64's parser would also take "inf", "nan" and "1e2".
        if digits == 0 || dots > 1 || digits + dots != percent.len() {
            return Err(expected());
        }
        // Parsing "99.9e-2" rounds the decimal 0.999 once; dividing 99.9 by 100
        // would round twice and not always give back the same f64.
        let q: f64 = format!("{percent}e-2").parse().map_err(|_| expected())?;
        if !(q > 0.0 && q <= 1.0) {
            return Err(format!(
                "{input:?}: a percentile must be greater than 0 and at most 100"
            ));
        }
        Ok(LatencyStatistic::Quantile(q))
    }
}

impl std::str::FromStr for LatencyStatistic {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        LatencyStatistic::parse(s)
    }
}

impl fmt::Display for LatencyStatistic {
    /// `max`, `p95`, `p99.9`: the form [`LatencyStatistic::parse`] reads.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            LatencyStatistic::Max => f.write_str("max"),
            LatencyStatistic::Quantile(q) => {
                f.write_str("p")?;
                write_percentage_of(f, q)
            }
        }
    }
}

/// Writes `q × 100` with the shortest digits that read back as `q`.
///
/// Rust prints the shortest round-tripping decimal of `q` (never in exponent
/// form); moving its decimal point two places keeps that property, where
/// printing `q * 100.0` would show rounding noise such as `99.89999999999999`.
fn write_percentage_of(f: &mut fmt::Formatter<'_>, q: f64) -> fmt::Result {
    let mut buf = StackBuf::new();
    if !(q.is_finite() && q >= 0.0) || fmt::Write::write_fmt(&mut buf, format_args!("{q}")).is_err()
    {
        return write!(f, "{}", q * 100.0);
    }
    let text = buf.as_bytes();
    let (int, frac) = match text.iter().position(|&b| b == b'.') {
        Some(dot) => (&text[..dot], &text[dot + 1..]),
        None => (text, &text[..0]),
    };
    let digit = |i: usize| -> u8 {
        if i < int.len() {
            int[i]
        } else {
            frac.get(i - int.len()).copied().unwrap_or(b'0')
        }
    };
    let point = int.len() + 2;
    let total = point.max(int.len() + frac.len());
    let first = (0..point - 1)
        .find(|&i| digit(i) != b'0')
        .unwrap_or(point - 1);
    let last = (point..total).rev().find(|&i| digit(i) != b'0');
    for i in first..point {
        fmt::Write::write_char(f, char::from(digit(i)))?;
    }
    if let Some(last) = last {
        f.write_str(".")?;
        for i in point..=last {
            fmt::Write::write_char(f, char::from(digit(i)))?;
        }
    }
    Ok(())
}

/// A small fixed buffer for formatting without allocating.
struct StackBuf {
    bytes: [u8; 40],
    len: usize,
}

impl StackBuf {
    fn new() -> Self {
        StackBuf {
            bytes: [0; 40],
            len: 0,
        }
    }

    fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

impl fmt::Write for StackBuf {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len.checked_add(s.len()).ok_or(fmt::Error)?;
        let target = self.bytes.get_mut(self.len..end).ok_or(fmt::Error)?;
        target.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

impl Serialize for LatencyStatistic {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for LatencyStatistic {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        struct Visitor;
        impl de::Visitor<'_> for Visitor {
            type Value = LatencyStatistic;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("\"max\" or a percentile such as \"p95\" or \"p99.9\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<Self::Value, E> {
                LatencyStatistic::parse(v).map_err(E::custom)
            }
        }
        deserializer.deserialize_str(Visitor)
    }
}
fn default_statistic() -> LatencyStatistic {
    LatencyStatistic::P95
}

fn default_latency_min_samples() -> u32 {
    LatencyThreshold::DEFAULT_MIN_SAMPLES
}
/// Configuration of a [`LatencyPolicy`].
///
/// `{"statistic": "p95", "limit": "30m", "min_samples": 3}`; `statistic`
/// defaults to `"p95"` and `min_samples` to 3.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LatencyThreshold {
    /// The statistic watched (default `p95`).
    #[serde(default = "default_statistic")]
    pub statistic: LatencyStatistic,
    /// The condition is breached when the statistic is above this.
    #[serde(with = "serde_duration")]
    pub limit: Duration,
    /// Fewer deliveries than this in the window give no verdict (default 3).
    #[serde(default = "default_latency_min_samples")]
    pub min_samples: u32,
}

impl LatencyThreshold {
    /// Default of [`LatencyThreshold::min_samples`].
    pub const DEFAULT_MIN_SAMPLES: u32 = 3;

    /// A threshold on `statistic` with the default minimum of samples.
    pub fn new(statistic: LatencyStatistic, limit: Duration) -> Self {
        LatencyThreshold {
            statistic,
            limit,
            min_samples: Self::DEFAULT_MIN_SAMPLES,
        }
    }

    /// Checks the values; errors name the field under `field_prefix`
    /// (e.g. `outbound.latency.limit`).
    pub fn validate(&self, field_prefix: &str) -> Result<()> {
        if let LatencyStatistic::Quantile(q) = self.statistic
            && !(q > 0.0 && q <= 1.0)
        {
            return Err(Error::config(
                field(field_prefix, "statistic"),
                format!(
                    "the quantile must be greater than 0 and at most 1 (\"p95\" is 0.95), got {q}"
                ),
            ));
        }
        if self.limit.is_zero() {
            return Err(Error::config(
                field(field_prefix, "limit"),
                "must be greater than 0",
            ));
        }
        check_min_samples(field_prefix, self.min_samples)
    }
}

/// Breached when a latency statistic of the window is above its limit.
///
/// The statistic is computed from `window.stats(now)` and only when the
/// window holds at least `min_samples` deliveries (failures do not count:
/// they have no latency). Probes pending for longer than the limit count
/// as deliveries of at least their age (see
/// [`SlidingWindow::mark_overdue`]): a slowdown breaches while the slow
/// probes are still on their way. Out-of-range quantiles are clamped to [0, 1] and a
/// NaN quantile never breaches.
#[derive(Clone, Debug)]
pub struct LatencyPolicy {
    threshold: LatencyThreshold,
}

impl LatencyPolicy {
    /// A policy for `threshold`.
    pub fn new(threshold: LatencyThreshold) -> Self {
        LatencyPolicy { threshold }
    }

    /// The threshold it applies.
    pub fn threshold(&self) -> &LatencyThreshold {
        &self.threshold
    }
}

impl ThresholdPolicy for LatencyPolicy {
    fn condition(&self) -> &str {
        "latency"
    }

    fn evaluate(&mut self, window: &SlidingWindow, now: DateTime<Utc>) -> Verdict {
        let t = &self.threshold;
        let stats = window.stats(now);
        // Probes pending longer than the limit are latencies of at least
        // their age: counted now, not when they finally arrive.
        let overdue = stats.overdue_over(t.limit);
        let samples = stats
            .deliveries()
            .saturating_add(overdue.iter().flatten().count() as u64);
        let value = if samples >= u64::from(t.min_samples) {
            match t.statistic {
                LatencyStatistic::Quantile(q) => stats.latency_quantile_overdue(q, t.limit),
                LatencyStatistic::Max => stats.max_latency().max(overdue[0]),
            }
        } else {
            None
        };
        Verdict {
            breached: value.is_some_and(|v| v > t.limit),
            reading: Reading::Latency {
                statistic: t.statistic,
                value,
                limit: t.limit,
                samples,
                min_samples: t.min_samples,
                window: window.length(),
            },
        }
    }

    /// A probe is overdue once it has been pending for longer than the
    /// limit: before that, counting it as "at least its age" could not
    /// breach the limit, and would only shift the reading.
    fn overdue_after(&self) -> Option<Duration> {
        Some(self.threshold.limit)
    }

    /// Expiring data can only lower a sample count and a maximum: a healthy
    /// verdict with too few samples, or whose every sample is under the
    /// limit, stays healthy until something new is recorded.
    fn valid_until(
        &self,
        verdict: &Verdict,
        window: &SlidingWindow,
        now: DateTime<Utc>,
    ) -> DateTime<Utc> {
        let steady = !verdict.breached
            && match verdict.reading {
                Reading::Latency { value: None, .. } => true,
                Reading::Latency { limit, .. } => {
                    let stats = window.stats(now);
                    stats.max_latency().is_none_or(|m| m <= limit)
                        && stats.overdue_over(limit)[0].is_none()
                }
                _ => false,
            };
        if steady {
            DateTime::<Utc>::MAX_UTC
        } else {
            next_multiple(now, window.bucket_width())
        }
    }

    /// A delivery faster than the limit cannot raise the maximum past it.
    /// Not while the value is unknown: one more sample may make it known.
    fn absorbs_below(
        &self,
        verdict: &Verdict,
        window: &SlidingWindow,
        now: DateTime<Utc>,
    ) -> Option<Duration> {
        let _ = (window, now);
        match verdict.reading {
            // One millisecond of margin: the window keeps whole milliseconds, rounded up.
            Reading::Latency {
                value: Some(_),
                limit,
                ..
            } if !verdict.breached => Some(limit.saturating_sub(Duration::from_millis(1))),
            _ => None,
        }
    }

    fn peek(&self, window: &SlidingWindow, now: DateTime<Utc>) -> Option<Verdict> {
        Some(self.clone().evaluate(window, now))
    }
}

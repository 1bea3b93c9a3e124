//! Threshold policies: whether a window's figures breach a condition.
//!
//! Three policies ship with the crate, each built from a serde-deserialisable
//! threshold (validate it with its `validate` method first):
//!
//! | policy | condition | breached when |
//! |---|---|---|
//! | [`LatencyPolicy`] ([`LatencyThreshold`]) | `"latency"` | at least `min_samples` deliveries and the statistic (`p95`, `max`, …) is above `limit` |
//! | [`FailurePolicy`] ([`FailureThreshold`]) | `"failures"` | at least `count` failures, or (with at least `min_samples` samples) a failure rate of at least `rate` |
//! | [`LeakyCounterPolicy`] ([`LeakyThreshold`]) | `"leaky"` | the gateway-style leaky counter reached `threshold` |
//!
//! In JSON (durations as seconds or strings such as `"30m"`, see
//! [`crate::duration`]):
//!
//! ```json
//! { "statistic": "p95", "limit": "30m", "min_samples": 3 }
//! { "limit": { "count": 3 } }
//! { "limit": { "rate": 0.25 }, "min_samples": 20 }
//! { "period": "2m", "threshold": 5, "acceptable_latency": "10m" }
//! ```
//!
//! Evaluating never allocates: it runs for every direction of every tenant
//! at each tick. A policy built from a threshold that does not validate still
//! never panics; see each policy for how it treats out-of-range values.

use std::{fmt, time::Duration};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

use crate::{
    domain::Outcome,
    duration::{human, serde_duration},
    error::{Error, Result},
    window::SlidingWindow,
};

/// Looks at a direction's window and says whether, and why, a condition is breached.
///
/// One policy instance watches one (tenant, direction). Hysteresis
/// (`raise_after`, `clear_after`) is applied by the tenant state machine, not here.
pub trait ThresholdPolicy: Send + Sync + fmt::Debug {
    /// Stable name of the condition, unique per direction: `"latency"`, `"failures"`, `"leaky"`.
    fn condition(&self) -> &str;

    /// Sees every observation of the direction as it is recorded. Window-based
    /// policies need nothing here; the default does nothing.
    fn record(&mut self, at: DateTime<Utc>, outcome: &Outcome) {
        let _ = (at, outcome);
    }

    /// Evaluates the condition at `now`.
    fn evaluate(&mut self, window: &SlidingWindow, now: DateTime<Utc>) -> Verdict;
}

/// The result of one evaluation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// Whether the condition is breached at this evaluation.
    pub breached: bool,
    /// The figures behind the verdict.
    pub reading: Reading,
}

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

/// A failure limit: a count or a rate over the window.
///
/// Written in configuration as `{"count": 3}` or `{"rate": 0.25}`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FailureLimit {
    /// At least this many failures.
    Count(u32),
    /// At least this fraction of samples failed.
    Rate(f64),
}

/// The figures behind a verdict. Cheap to build (no allocation); `Display`
/// renders what an administrator reads, e.g. `p95 latency 42 min, threshold
/// 30 min, 18 samples in the last 1 h`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Reading {
    /// A latency statistic against its limit.
    Latency {
        /// The statistic.
        statistic: LatencyStatistic,
        /// Its value; `None` when there were fewer than the minimum samples.
        value: Option<Duration>,
        /// The limit.
        limit: Duration,
        /// Deliveries in the window.
        samples: u64,
        /// Minimum deliveries for a verdict.
        min_samples: u32,
        /// The window length.
        window: Duration,
    },
    /// Failures against their limit.
    Failures {
        /// Failures in the window.
        failures: u64,
        /// Samples in the window.
        samples: u64,
        /// The limit.
        limit: FailureLimit,
        /// Minimum samples for a rate verdict.
        min_samples: u32,
        /// The window length.
        window: Duration,
    },
    /// The leaky counter against its threshold.
    Leaky {
        /// The counter's value.
        counter: u32,
        /// The threshold at which the condition raises.
        threshold: u32,
        /// The evaluation period.
        period: Duration,
    },
    /// A reading from a policy outside this crate.
    Custom {
        /// What to show.
        summary: String,
    },
}

/// `n` followed by the singular or plural noun.
struct Counted(u64, &'static str, &'static str);

impl fmt::Display for Counted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let noun = if self.0 == 1 { self.1 } else { self.2 };
        write!(f, "{} {noun}", self.0)
    }
}

fn samples(n: u64) -> Counted {
    Counted(n, "sample", "samples")
}

/// A fraction as a percentage: `25%`, `12.5%`, `33.3%`, `0.05%`.
struct Percent(f64);

impl fmt::Display for Percent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = self.0 * 100.0;
        if !p.is_finite() {
            return write!(f, "{p}%");
        }
        // Tenths are enough above 1%; below, hundredths keep a small rate from
        // reading as 0%.
        let scale: u64 = if p.abs() < 1.0 { 100 } else { 10 };
        // `as` saturates for absurd values; rates shown here are at most 100%.
        let scaled = (p.abs() * scale as f64).round() as u64;
        let sign = if p < 0.0 && scaled > 0 { "-" } else { "" };
        let (whole, fraction) = (scaled / scale, scaled % scale);
        match (scale, fraction) {
            (_, 0) => write!(f, "{sign}{whole}%"),
            (10, tenths) => write!(f, "{sign}{whole}.{tenths}%"),
            (_, hundredths) if hundredths % 10 == 0 => {
                write!(f, "{sign}{whole}.{}%", hundredths / 10)
            }
            (_, hundredths) => write!(f, "{sign}{whole}.{hundredths:02}%"),
        }
    }
}

impl fmt::Display for Reading {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reading::Latency {
                statistic,
                value,
                limit,
                samples: n,
                min_samples,
                window,
            } => {
                let needed = u64::from((*min_samples).max(1));
                match value {
                    Some(value) => write!(
                        f,
                        "{statistic} latency {}, threshold {}, {} in the last {}",
                        human(*value),
                        human(*limit),
                        samples(*n),
                        human(*window)
                    ),
                    None if *n < needed => write!(
                        f,
                        "{statistic} latency: {} in the last {}, at least {needed} needed",
                        samples(*n),
                        human(*window)
                    ),
                    None => write!(
                        f,
                        "{statistic} latency unavailable, threshold {}, {} in the last {}",
                        human(*limit),
                        samples(*n),
                        human(*window)
                    ),
                }
            }
            Reading::Failures {
                failures,
                samples: n,
                limit,
                min_samples,
                window,
            } => match limit {
                FailureLimit::Count(count) => write!(
                    f,
                    "{} of {} in the last {}, threshold {count}",
                    Counted(*failures, "failure", "failures"),
                    Counted(*n, "delivery", "deliveries"),
                    human(*window)
                ),
                FailureLimit::Rate(rate) => {
                    let needed = u64::from((*min_samples).max(1));
                    if *n < needed {
                        write!(
                            f,
                            "failure rate: {} in the last {}, at least {needed} needed",
                            samples(*n),
                            human(*window)
                        )
                    } else {
                        write!(
                            f,
                            "failure rate {} ({failures} of {n}) in the last {}, threshold {}",
                            Percent(*failures as f64 / *n as f64),
                            human(*window),
                            Percent(*rate)
                        )
                    }
                }
            },
            Reading::Leaky {
                counter,
                threshold,
                period,
            } => write!(
                f,
                "leaky counter {counter}, threshold {threshold} ({} periods)",
                human(*period)
            ),
            Reading::Custom { summary } => f.write_str(summary),
        }
    }
}

/// `prefix.name`, or `name` alone without a prefix.
fn field(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_owned()
    } else {
        format!("{prefix}.{name}")
    }
}

fn default_statistic() -> LatencyStatistic {
    LatencyStatistic::P95
}

fn default_latency_min_samples() -> u32 {
    LatencyThreshold::DEFAULT_MIN_SAMPLES
}

fn default_failure_min_samples() -> u32 {
    FailureThreshold::DEFAULT_MIN_SAMPLES
}

fn default_leaky_period() -> Duration {
    LeakyThreshold::DEFAULT_PERIOD
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
        if self.min_samples == 0 {
            return Err(Error::config(
                field(field_prefix, "min_samples"),
                "must be at least 1",
            ));
        }
        Ok(())
    }
}

/// Configuration of a [`FailurePolicy`].
///
/// `{"limit": {"count": 3}}` or `{"limit": {"rate": 0.25}, "min_samples": 20}`;
/// `min_samples` (used by rates only) defaults to 1.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailureThreshold {
    /// A count or a rate of failures in the window.
    pub limit: FailureLimit,
    /// Fewer samples than this give no rate verdict (default 1).
    #[serde(default = "default_failure_min_samples")]
    pub min_samples: u32,
}

impl FailureThreshold {
    /// Default of [`FailureThreshold::min_samples`].
    pub const DEFAULT_MIN_SAMPLES: u32 = 1;

    /// A threshold on `limit` with the default minimum of samples.
    pub fn new(limit: FailureLimit) -> Self {
        FailureThreshold {
            limit,
            min_samples: Self::DEFAULT_MIN_SAMPLES,
        }
    }

    /// Checks the values; errors name the field under `field_prefix`
    /// (e.g. `outbound.failures.limit.rate`).
    pub fn validate(&self, field_prefix: &str) -> Result<()> {
        match self.limit {
            FailureLimit::Count(0) => {
                return Err(Error::config(
                    field(field_prefix, "limit.count"),
                    "must be at least 1",
                ));
            }
            FailureLimit::Rate(rate) if !(rate > 0.0 && rate <= 1.0) => {
                return Err(Error::config(
                    field(field_prefix, "limit.rate"),
                    format!("must be greater than 0 and at most 1 (0.25 means 25%), got {rate}"),
                ));
            }
            _ => {}
        }
        if self.min_samples == 0 {
            return Err(Error::config(
                field(field_prefix, "min_samples"),
                "must be at least 1",
            ));
        }
        Ok(())
    }
}

/// Configuration of a [`LeakyCounterPolicy`].
///
/// `{"period": "2m", "threshold": 5, "acceptable_latency": "10m"}`; `period`
/// defaults to 2 minutes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeakyThreshold {
    /// Length of one evaluation period (default 2 min, at least 1 s).
    #[serde(default = "default_leaky_period", with = "serde_duration")]
    pub period: Duration,
    /// The condition is breached when the counter reaches this.
    pub threshold: u32,
    /// A delivery slower than this makes its period a failed one.
    #[serde(with = "serde_duration")]
    pub acceptable_latency: Duration,
}

impl LeakyThreshold {
    /// Default of [`LeakyThreshold::period`].
    pub const DEFAULT_PERIOD: Duration = Duration::from_secs(120);

    /// A threshold with the default period.
    pub fn new(threshold: u32, acceptable_latency: Duration) -> Self {
        LeakyThreshold {
            period: Self::DEFAULT_PERIOD,
            threshold,
            acceptable_latency,
        }
    }

    /// Checks the values; errors name the field under `field_prefix`
    /// (e.g. `inbound.leaky.period`).
    pub fn validate(&self, field_prefix: &str) -> Result<()> {
        if self.period < Duration::from_secs(1) {
            return Err(Error::config(
                field(field_prefix, "period"),
                "must be at least 1 s",
            ));
        }
        if self.threshold == 0 {
            return Err(Error::config(
                field(field_prefix, "threshold"),
                "must be at least 1",
            ));
        }
        if self.acceptable_latency.is_zero() {
            return Err(Error::config(
                field(field_prefix, "acceptable_latency"),
                "must be greater than 0",
            ));
        }
        Ok(())
    }
}

/// Breached when a latency statistic of the window is above its limit.
///
/// The statistic is computed from `window.stats(now)` and only when the
/// window holds at least `min_samples` deliveries (failures do not count:
/// they have no latency). Out-of-range quantiles are clamped to [0, 1] and a
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
        let samples = stats.deliveries();
        let value = if samples >= u64::from(t.min_samples) {
            match t.statistic {
                LatencyStatistic::Quantile(q) => stats.latency_quantile(q),
                LatencyStatistic::Max => stats.max_latency(),
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
}

/// Breached when the window holds too many failures.
///
/// [`FailureLimit::Count`]: at least `count` failures (a count of 0 behaves
/// as 1). [`FailureLimit::Rate`]: at least `min_samples` samples (deliveries
/// plus failures) and `failures / samples >= rate`. A window without failures
/// never breaches, whatever the limit.
#[derive(Clone, Debug)]
pub struct FailurePolicy {
    threshold: FailureThreshold,
}

impl FailurePolicy {
    /// A policy for `threshold`.
    pub fn new(threshold: FailureThreshold) -> Self {
        FailurePolicy { threshold }
    }

    /// The threshold it applies.
    pub fn threshold(&self) -> &FailureThreshold {
        &self.threshold
    }
}

impl ThresholdPolicy for FailurePolicy {
    fn condition(&self) -> &str {
        "failures"
    }

    fn evaluate(&mut self, window: &SlidingWindow, now: DateTime<Utc>) -> Verdict {
        let t = &self.threshold;
        let stats = window.stats(now);
        let failures = stats.failures();
        let samples = stats.samples();
        let breached = failures > 0
            && match t.limit {
                FailureLimit::Count(count) => failures >= u64::from(count),
                FailureLimit::Rate(rate) => {
                    samples >= u64::from(t.min_samples)
                        && stats.failure_rate().is_some_and(|r| r >= rate)
                }
            };
        Verdict {
            breached,
            reading: Reading::Failures {
                failures,
                samples,
                limit: t.limit,
                min_samples: t.min_samples,
                window: window.length(),
            },
        }
    }
}

/// Periods whose failures are tracked ahead of the oldest open period.
const TRACKED_PERIODS: i64 = u64::BITS as i64;

/// The leaky counter gateway products use.
///
/// Time is cut into periods of `period`, aligned to multiples of `period`
/// since the Unix epoch. A period *failed* when it saw a failure or a delivery
/// slower than `acceptable_latency`; a delivery that failed on one route but
/// succeeded over a fail-over route is reported as delivered (see
/// [`Outcome::from_route_attempts`]) and is not a failure. When a period
/// closes, the counter goes up by one if it failed and down by one (never
/// below 0) if it was healthy or had no traffic. The condition is breached
/// while the counter is at least `threshold` (a threshold of 0 behaves as 1).
///
/// - The counter is fed by [`ThresholdPolicy::record`], not by the window.
/// - [`ThresholdPolicy::evaluate`] at `now` closes every period that ended at
///   or before `now` and was not closed yet; a long gap between evaluations
///   costs no more than a short one (the quiet periods are subtracted at once).
/// - An observation for a period that is already closed counts in the oldest
///   period still open.
/// - Failures are tracked for the 64 periods from the oldest open one; an
///   observation further ahead first closes the oldest periods as an
///   evaluation would, so that it fits.
/// - The first call (`record` or `evaluate`) starts the counter at 0 in the
///   period of its timestamp; earlier periods are unknown, not healthy.
#[derive(Clone, Debug)]
pub struct LeakyCounterPolicy {
    threshold: LeakyThreshold,
    period_ms: i64,
    counter: u32,
    // The oldest period not closed yet; `None` before the first call.
    open: Option<i64>,
    // Bit i: period `open + i` failed.
    failed: u64,
}

impl LeakyCounterPolicy {
    /// A policy for `threshold`. A period below 1 ms is treated as 1 ms.
    pub fn new(threshold: LeakyThreshold) -> Self {
        let period_ms = i64::try_from(threshold.period.as_millis())
            .unwrap_or(i64::MAX)
            .max(1);
        LeakyCounterPolicy {
            threshold,
            period_ms,
            counter: 0,
            open: None,
            failed: 0,
        }
    }

    /// The threshold it applies.
    pub fn threshold(&self) -> &LeakyThreshold {
        &self.threshold
    }

    /// The counter's current value (as of the last evaluation).
    pub fn counter(&self) -> u32 {
        self.counter
    }

    fn period_of(&self, at: DateTime<Utc>) -> i64 {
        at.timestamp_millis().div_euclid(self.period_ms)
    }

    /// Closes the `count` oldest open periods, starting at `open`.
    fn close(&mut self, open: i64, count: i64) {
        let tracked = u32::try_from(count.clamp(0, TRACKED_PERIODS)).unwrap_or(u64::BITS);
        // Only the periods up to the last failed one need a look each; every
        // period after it was healthy or quiet, so a long gap costs nothing.
        let up_to_last_failure = (u64::BITS - self.failed.leading_zeros()).min(tracked);
        for i in 0..up_to_last_failure {
            self.counter = if self.failed & (1 << i) != 0 {
                self.counter.saturating_add(1)
            } else {
                self.counter.saturating_sub(1)
            };
        }
        let healthy = count.saturating_sub(i64::from(up_to_last_failure));
        self.counter = self
            .counter
            .saturating_sub(u32::try_from(healthy).unwrap_or(u32::MAX));
        self.failed = self.failed.checked_shr(tracked).unwrap_or(0);
        self.open = Some(open.saturating_add(count));
    }
}

impl ThresholdPolicy for LeakyCounterPolicy {
    fn condition(&self) -> &str {
        "leaky"
    }

    fn record(&mut self, at: DateTime<Utc>, outcome: &Outcome) {
        let period = self.period_of(at);
        let open = *self.open.get_or_insert(period);
        let failed = match outcome {
            Outcome::Failed { .. } => true,
            Outcome::Delivered { latency } => *latency > self.threshold.acceptable_latency,
        };
        if !failed {
            return;
        }
        let mut offset = period.saturating_sub(open);
        if offset >= TRACKED_PERIODS {
            self.close(open, offset - (TRACKED_PERIODS - 1));
            offset = TRACKED_PERIODS - 1;
        }
        // A late observation (offset < 0) counts in the oldest open period.
        let bit = offset.clamp(0, TRACKED_PERIODS - 1);
        self.failed |= 1 << bit;
    }

    fn evaluate(&mut self, window: &SlidingWindow, now: DateTime<Utc>) -> Verdict {
        let _ = window;
        let current = self.period_of(now);
        match self.open {
            None => self.open = Some(current),
            Some(open) if current > open => self.close(open, current.saturating_sub(open)),
            Some(_) => {}
        }
        let t = &self.threshold;
        Verdict {
            breached: self.counter >= t.threshold.max(1),
            reading: Reading::Leaky {
                counter: self.counter,
                threshold: t.threshold,
                period: t.period,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::FailureKind;

    /// A multiple of one hour (and of every period used below).
    const T0: i64 = 1_760_000_400;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(T0 + secs, 0).expect("test timestamp in range")
    }

    fn ok(secs: u64) -> Outcome {
        Outcome::Delivered {
            latency: Duration::from_secs(secs),
        }
    }

    fn fail() -> Outcome {
        Outcome::Failed {
            kind: FailureKind::Refused,
        }
    }

    fn window_with(records: &[(i64, Outcome)]) -> SlidingWindow {
        let mut w = SlidingWindow::new(Duration::from_secs(3600), 12).expect("valid window");
        for (secs, outcome) in records {
            w.record(at(*secs), outcome);
        }
        w
    }

    fn config_error(result: Result<()>) -> String {
        match result {
            Err(Error::InvalidConfig { field, reason }) => format!("{field}: {reason}"),
            other => panic!("expected InvalidConfig, got {other:?}"),
        }
    }

    const MIN: Duration = Duration::from_secs(60);

    #[test]
    fn latency_statistic_parses_and_prints_round_trip() {
        use LatencyStatistic::{Max, Quantile};
        for (text, stat) in [
            ("max", Max),
            ("p50", Quantile(0.5)),
            ("p90", Quantile(0.9)),
            ("p95", Quantile(0.95)),
            ("p99", Quantile(0.99)),
            ("p99.9", Quantile(0.999)),
            ("p99.99", Quantile(0.9999)),
            ("p100", Quantile(1.0)),
            ("p0.01", Quantile(0.0001)),
            ("p12.5", Quantile(0.125)),
        ] {
            assert_eq!(LatencyStatistic::parse(text), Ok(stat), "{text}");
            assert_eq!(stat.to_string(), text);
            let json = serde_json::to_string(&stat).expect("serialisable");
            assert_eq!(json, format!("\"{text}\""));
            assert_eq!(
                serde_json::from_str::<LatencyStatistic>(&json).expect("round trip"),
                stat
            );
        }
        assert_eq!(LatencyStatistic::parse(" MAX "), Ok(Max));
        assert_eq!("p75".parse::<LatencyStatistic>(), Ok(Quantile(0.75)));
        assert_eq!(LatencyStatistic::parse("P95"), Ok(Quantile(0.95)));
        assert_eq!(LatencyStatistic::parse("p095"), Ok(Quantile(0.95)));
        for bad in [
            "", "p", "95", "p-5", "p0", "p0.0", "p101", "p1e2", "pinf", "pnan", "p9.5.1", "median",
            "p 95", "p.",
        ] {
            assert!(LatencyStatistic::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(serde_json::from_str::<LatencyStatistic>("0.95").is_err());
        let err = serde_json::from_str::<LatencyStatistic>("\"p150\"")
            .expect_err("out of range")
            .to_string();
        assert!(err.contains("at most 100"), "{err}");
        // Values that do not validate still print without panicking.
        assert_eq!(Quantile(f64::NAN).to_string(), "pNaN");
        assert_eq!(Quantile(-0.5).to_string(), "p-50");
        assert_eq!(
            Quantile(1e-30).to_string(),
            "p0.0000000000000000000000000001"
        );
        assert_eq!(Quantile(1e-300).to_string(), format!("p{}", 1e-300 * 100.0));
        assert_eq!(Quantile(2.5).to_string(), "p250");
    }

    #[test]
    fn latency_threshold_deserialises_with_defaults() {
        let t: LatencyThreshold =
            serde_json::from_str(r#"{"statistic": "p99", "limit": "30m"}"#).expect("valid");
        assert_eq!(t.statistic, LatencyStatistic::Quantile(0.99));
        assert_eq!(t.limit, 30 * MIN);
        assert_eq!(t.min_samples, 3);
        let t: LatencyThreshold = serde_json::from_str(r#"{"limit": 600}"#).expect("valid");
        assert_eq!(t, LatencyThreshold::new(LatencyStatistic::P95, 10 * MIN));
        let t: LatencyThreshold =
            serde_json::from_str(r#"{"statistic": "max", "limit": "1h", "min_samples": 1}"#)
                .expect("valid");
        assert_eq!(t.statistic, LatencyStatistic::Max);
        assert_eq!(t.min_samples, 1);
        let back: LatencyThreshold =
            serde_json::from_value(serde_json::to_value(&t).expect("serialisable"))
                .expect("round trip");
        assert_eq!(back, t);
        assert_eq!(
            serde_json::to_string(&t).expect("serialisable"),
            r#"{"statistic":"max","limit":"1h","min_samples":1}"#
        );

        for bad in [
            r#"{"statistic": "p95"}"#,
            r#"{"limit": "30m", "window": "1h"}"#,
            r#"{"limit": "30x"}"#,
            r#"{"limit": -5}"#,
            r#"{"limit": "30m", "statistic": "average"}"#,
            r#"{"limit": "30m", "min_samples": -1}"#,
        ] {
            assert!(
                serde_json::from_str::<LatencyThreshold>(bad).is_err(),
                "{bad}"
            );
        }
        let err = serde_json::from_str::<LatencyThreshold>(r#"{"limit": "1m", "typo": 1}"#)
            .expect_err("unknown field")
            .to_string();
        assert!(err.contains("unknown field `typo`"), "{err}");
    }

    #[test]
    fn latency_threshold_validation_names_the_field() {
        let good = LatencyThreshold::new(LatencyStatistic::P95, 30 * MIN);
        assert!(good.validate("outbound.latency").is_ok());
        let mut t = good.clone();
        t.limit = Duration::ZERO;
        assert_eq!(
            config_error(t.validate("outbound.latency")),
            "outbound.latency.limit: must be greater than 0"
        );
        let mut t = good.clone();
        t.min_samples = 0;
        assert_eq!(
            config_error(t.validate("inbound.latency")),
            "inbound.latency.min_samples: must be at least 1"
        );
        for q in [0.0, -0.1, 1.5, f64::NAN, f64::INFINITY] {
            let mut t = good.clone();
            t.statistic = LatencyStatistic::Quantile(q);
            let msg = config_error(t.validate("outbound.latency"));
            assert!(msg.starts_with("outbound.latency.statistic: "), "{msg}");
        }
        let mut t = good;
        t.limit = Duration::ZERO;
        assert_eq!(
            config_error(t.validate("")),
            "limit: must be greater than 0"
        );
    }

    #[test]
    fn failure_threshold_deserialises_and_validates() {
        let t: FailureThreshold =
            serde_json::from_str(r#"{"limit": {"count": 3}}"#).expect("valid");
        assert_eq!(t, FailureThreshold::new(FailureLimit::Count(3)));
        let t: FailureThreshold =
            serde_json::from_str(r#"{"limit": {"rate": 0.25}, "min_samples": 20}"#).expect("valid");
        assert_eq!(t.limit, FailureLimit::Rate(0.25));
        assert_eq!(t.min_samples, 20);
        assert_eq!(
            serde_json::to_string(&t).expect("serialisable"),
            r#"{"limit":{"rate":0.25},"min_samples":20}"#
        );
        for bad in [
            r#"{}"#,
            r#"{"limit": 3}"#,
            r#"{"limit": {"percent": 3}}"#,
            r#"{"limit": {"count": -1}}"#,
            r#"{"limit": {"count": 3, "rate": 0.5}}"#,
            r#"{"limit": {"count": 3}, "extra": true}"#,
        ] {
            assert!(
                serde_json::from_str::<FailureThreshold>(bad).is_err(),
                "{bad}"
            );
        }

        assert!(t.validate("outbound.failures").is_ok());
        let err = |limit, min_samples| {
            config_error(FailureThreshold { limit, min_samples }.validate("outbound.failures"))
        };
        assert_eq!(
            err(FailureLimit::Count(0), 1),
            "outbound.failures.limit.count: must be at least 1"
        );
        for rate in [0.0, -0.5, 1.01, f64::NAN] {
            assert!(err(FailureLimit::Rate(rate), 1).starts_with("outbound.failures.limit.rate: "));
        }
        assert_eq!(
            err(FailureLimit::Rate(0.5), 0),
            "outbound.failures.min_samples: must be at least 1"
        );
        assert!(
            FailureThreshold::new(FailureLimit::Rate(1.0))
                .validate("x")
                .is_ok()
        );
    }

    #[test]
    fn leaky_threshold_deserialises_and_validates() {
        let t: LeakyThreshold =
            serde_json::from_str(r#"{"threshold": 5, "acceptable_latency": "10m"}"#)
                .expect("valid");
        assert_eq!(t, LeakyThreshold::new(5, 10 * MIN));
        assert_eq!(t.period, 2 * MIN);
        let t: LeakyThreshold =
            serde_json::from_str(r#"{"period": "5m", "threshold": 2, "acceptable_latency": 900}"#)
                .expect("valid");
        assert_eq!(
            (t.period, t.threshold, t.acceptable_latency),
            (5 * MIN, 2, 15 * MIN)
        );
        assert!(t.validate("inbound.leaky").is_ok());
        for bad in [
            r#"{"threshold": 5}"#,
            r#"{"acceptable_latency": "10m"}"#,
            r#"{"threshold": 5, "acceptable_latency": "10m", "periods": "2m"}"#,
            r#"{"threshold": "five", "acceptable_latency": "10m"}"#,
        ] {
            assert!(
                serde_json::from_str::<LeakyThreshold>(bad).is_err(),
                "{bad}"
            );
        }

        let base = LeakyThreshold::new(5, 10 * MIN);
        let mut t = base.clone();
        t.period = Duration::from_millis(999);
        assert_eq!(
            config_error(t.validate("inbound.leaky")),
            "inbound.leaky.period: must be at least 1 s"
        );
        let mut t = base.clone();
        t.threshold = 0;
        assert_eq!(
            config_error(t.validate("inbound.leaky")),
            "inbound.leaky.threshold: must be at least 1"
        );
        let mut t = base;
        t.acceptable_latency = Duration::ZERO;
        assert_eq!(
            config_error(t.validate("inbound.leaky")),
            "inbound.leaky.acceptable_latency: must be greater than 0"
        );
    }

    #[test]
    fn latency_policy_needs_min_samples_and_a_value_above_the_limit() {
        let mut p = LatencyPolicy::new(LatencyThreshold {
            statistic: LatencyStatistic::P95,
            limit: 30 * MIN,
            min_samples: 3,
        });
        assert_eq!(p.condition(), "latency");

        let empty = window_with(&[]);
        let v = p.evaluate(&empty, at(0));
        assert!(!v.breached);
        assert_eq!(
            v.reading,
            Reading::Latency {
                statistic: LatencyStatistic::P95,
                value: None,
                limit: 30 * MIN,
                samples: 0,
                min_samples: 3,
                window: Duration::from_secs(3600),
            }
        );

        // Two slow deliveries and a failure: not enough deliveries.
        let w = window_with(&[(0, ok(3600)), (10, ok(3600)), (20, fail())]);
        let v = p.evaluate(&w, at(30));
        assert!(!v.breached);
        assert!(matches!(
            v.reading,
            Reading::Latency {
                value: None,
                samples: 2,
                ..
            }
        ));

        // Exactly at the limit is not above it.
        let w = window_with(&[(0, ok(1800)), (10, ok(1800)), (20, ok(1800))]);
        let v = p.evaluate(&w, at(30));
        assert!(!v.breached);
        assert!(matches!(v.reading, Reading::Latency { value: Some(v), .. } if v == 30 * MIN));

        let w = window_with(&[(0, ok(1801)), (10, ok(1801)), (20, ok(1801))]);
        assert!(p.evaluate(&w, at(30)).breached);

        // One slow delivery among many: p95 stays low, max does not.
        let mut records: Vec<(i64, Outcome)> = (0..40).map(|i| (i, ok(60))).collect();
        records.push((50, ok(7200)));
        let w = window_with(&records);
        assert!(!p.evaluate(&w, at(60)).breached);
        let mut max = LatencyPolicy::new(LatencyThreshold {
            statistic: LatencyStatistic::Max,
            limit: 30 * MIN,
            min_samples: 1,
        });
        let v = max.evaluate(&w, at(60));
        assert!(v.breached);
        assert!(matches!(v.reading, Reading::Latency { value: Some(v), .. } if v == 120 * MIN));
        // An hour later the slow delivery has left the window.
        assert!(!max.evaluate(&w, at(3600 + 300)).breached);
    }

    #[test]
    fn latency_policy_survives_invalid_thresholds() {
        let w = window_with(&[(0, ok(10)), (1, ok(20))]);
        for q in [f64::NAN, -1.0, 2.0, 0.0] {
            let mut p = LatencyPolicy::new(LatencyThreshold {
                statistic: LatencyStatistic::Quantile(q),
                limit: Duration::ZERO,
                min_samples: 0,
            });
            let v = p.evaluate(&w, at(2));
            assert_eq!(v.breached, !q.is_nan(), "q {q}");
            let _ = v.reading.to_string();
        }
        let mut p = LatencyPolicy::new(LatencyThreshold {
            statistic: LatencyStatistic::P95,
            limit: Duration::ZERO,
            min_samples: 0,
        });
        assert!(!p.evaluate(&window_with(&[]), at(0)).breached);
    }

    #[test]
    fn failure_policy_counts() {
        let mut p = FailurePolicy::new(FailureThreshold::new(FailureLimit::Count(3)));
        assert_eq!(p.condition(), "failures");
        assert!(!p.evaluate(&window_with(&[]), at(0)).breached);
        let two = window_with(&[(0, fail()), (1, fail()), (2, ok(1))]);
        assert!(!p.evaluate(&two, at(3)).breached);
        let three = window_with(&[(0, fail()), (1, fail()), (2, fail()), (3, ok(1))]);
        let v = p.evaluate(&three, at(4));
        assert!(v.breached);
        assert_eq!(
            v.reading,
            Reading::Failures {
                failures: 3,
                samples: 4,
                limit: FailureLimit::Count(3),
                min_samples: 1,
                window: Duration::from_secs(3600),
            }
        );
        // Failures expire with the window.
        assert!(!p.evaluate(&three, at(3600)).breached);
        // A count of 0 does not validate; it behaves as 1.
        let mut zero = FailurePolicy::new(FailureThreshold::new(FailureLimit::Count(0)));
        assert!(!zero.evaluate(&window_with(&[(0, ok(1))]), at(1)).breached);
        assert!(zero.evaluate(&window_with(&[(0, fail())]), at(1)).breached);
    }

    #[test]
    fn failure_policy_rates() {
        let mut p = FailurePolicy::new(FailureThreshold {
            limit: FailureLimit::Rate(0.25),
            min_samples: 4,
        });
        // 1 of 3 is above 25% but below the minimum of samples.
        let w = window_with(&[(0, fail()), (1, ok(1)), (2, ok(1))]);
        assert!(!p.evaluate(&w, at(3)).breached);
        // Exactly 25%.
        let w = window_with(&[(0, fail()), (1, ok(1)), (2, ok(1)), (3, ok(1))]);
        assert!(p.evaluate(&w, at(4)).breached);
        // Just below.
        let w = window_with(&[(0, fail()), (1, ok(1)), (2, ok(1)), (3, ok(1)), (4, ok(1))]);
        assert!(!p.evaluate(&w, at(5)).breached);
        // 3 of 10 against 30%: the division must not round below the limit.
        let mut thirty = FailurePolicy::new(FailureThreshold {
            limit: FailureLimit::Rate(0.3),
            min_samples: 1,
        });
        let mut records: Vec<(i64, Outcome)> = (0..7).map(|i| (i, ok(1))).collect();
        records.extend((7..10).map(|i| (i, fail())));
        assert!(thirty.evaluate(&window_with(&records), at(10)).breached);
        // Invalid rates never breach without failures and never panic.
        for rate in [0.0, -1.0, f64::NAN] {
            let mut p = FailurePolicy::new(FailureThreshold {
                limit: FailureLimit::Rate(rate),
                min_samples: 0,
            });
            assert!(!p.evaluate(&window_with(&[(0, ok(1))]), at(1)).breached);
            assert!(!p.evaluate(&window_with(&[]), at(1)).breached);
        }
    }

    fn leaky(threshold: u32) -> LeakyCounterPolicy {
        LeakyCounterPolicy::new(LeakyThreshold {
            period: 2 * MIN,
            threshold,
            acceptable_latency: 10 * MIN,
        })
    }

    fn counter_after(p: &mut LeakyCounterPolicy, now: i64) -> (u32, bool) {
        let v = p.evaluate(&window_with(&[]), at(now));
        match v.reading {
            Reading::Leaky { counter, .. } => (counter, v.breached),
            other => panic!("unexpected reading {other:?}"),
        }
    }

    #[test]
    fn leaky_counter_goes_up_and_down() {
        let mut p = leaky(3);
        assert_eq!(p.condition(), "leaky");
        assert_eq!(counter_after(&mut p, 0), (0, false));
        // Periods 0, 1, 2 fail: a failure, a slow delivery, both.
        p.record(at(10), &fail());
        p.record(at(130), &ok(601));
        p.record(at(250), &fail());
        p.record(at(260), &ok(1));
        // Period 0 ended at 120 s: closed; period 1 still open at 239 s.
        assert_eq!(counter_after(&mut p, 120), (1, false));
        assert_eq!(counter_after(&mut p, 239), (1, false));
        assert_eq!(counter_after(&mut p, 240), (2, false));
        // Evaluating twice in the same period changes nothing.
        assert_eq!(counter_after(&mut p, 241), (2, false));
        assert_eq!(counter_after(&mut p, 360), (3, true));
        // Healthy traffic, then no traffic: down by one per period.
        p.record(at(370), &ok(600));
        assert_eq!(counter_after(&mut p, 480), (2, false));
        assert_eq!(counter_after(&mut p, 600), (1, false));
        assert_eq!(counter_after(&mut p, 720), (0, false));
        // Never below 0.
        assert_eq!(counter_after(&mut p, 1200), (0, false));
        p.record(at(1210), &fail());
        assert_eq!(counter_after(&mut p, 1320), (1, false));
    }

    #[test]
    fn leaky_counter_catches_up_several_periods_at_once() {
        let mut p = leaky(2);
        counter_after(&mut p, 0);
        // Failed, healthy, failed, failed, quiet: +1 -1 +1 +1 -1.
        p.record(at(1), &fail());
        p.record(at(121), &ok(1));
        p.record(at(241), &fail());
        p.record(at(361), &fail());
        assert_eq!(counter_after(&mut p, 600), (1, false));
        let mut q = leaky(2);
        counter_after(&mut q, 0);
        q.record(at(1), &fail());
        q.record(at(121), &fail());
        q.record(at(241), &fail());
        // Periods 0..=2 failed, 3 is still open.
        assert_eq!(counter_after(&mut q, 479), (3, true));
    }

    #[test]
    fn leaky_counter_long_gap_is_arithmetic() {
        let mut p = leaky(5);
        counter_after(&mut p, 0);
        for period in 0..10 {
            p.record(at(period * 120 + 5), &fail());
        }
        assert_eq!(counter_after(&mut p, 1200), (10, true));
        // Ten years later: thousands of quiet periods, drained at once.
        let later = 10 * 365 * 86_400;
        assert_eq!(counter_after(&mut p, later), (0, false));
        p.record(at(later + 1), &fail());
        assert_eq!(counter_after(&mut p, later + 120), (1, false));
        // The far end of chrono's range does not overflow anything.
        let v = p.evaluate(&window_with(&[]), DateTime::<Utc>::MAX_UTC);
        assert!(!v.breached);
        p.record(DateTime::<Utc>::MIN_UTC, &fail());
        p.record(DateTime::<Utc>::MAX_UTC, &fail());
        let _ = p.evaluate(&window_with(&[]), DateTime::<Utc>::MIN_UTC);
    }

    #[test]
    fn leaky_counter_late_observations_count_in_the_open_period() {
        let mut p = leaky(5);
        counter_after(&mut p, 0);
        assert_eq!(counter_after(&mut p, 240), (0, false));
        // Period 0 is closed (healthy); its failure lands in period 2, still open.
        p.record(at(30), &fail());
        assert_eq!(counter_after(&mut p, 300), (0, false));
        assert_eq!(counter_after(&mut p, 360), (1, false));
    }

    #[test]
    fn leaky_counter_tracks_observations_far_ahead() {
        let mut p = leaky(5);
        counter_after(&mut p, 0);
        p.record(at(5), &fail());
        // 100 periods ahead of the open one, without evaluations in between.
        p.record(at(100 * 120 + 5), &fail());
        p.record(at(101 * 120 + 5), &fail());
        // Period 0 failed (+1), 1..=99 quiet (drain), 100 and 101 failed (+2).
        assert_eq!(counter_after(&mut p, 102 * 120), (2, false));
    }

    #[test]
    fn leaky_counter_starts_at_the_first_observation() {
        let mut p = leaky(1);
        p.record(at(7200 + 5), &fail());
        assert_eq!(counter_after(&mut p, 7200 + 120), (1, true));
        // Fail-over deliveries are reported as delivered, so they are healthy.
        let mut q = leaky(1);
        let failover = Outcome::from_route_attempts(&[fail(), ok(30)]).expect("attempts");
        q.record(at(5), &failover);
        assert_eq!(counter_after(&mut q, 120), (0, false));
        // An invalid threshold of 0 behaves as 1.
        let mut zero = LeakyCounterPolicy::new(LeakyThreshold {
            period: Duration::from_secs(1),
            threshold: 0,
            acceptable_latency: Duration::ZERO,
        });
        assert_eq!(counter_after(&mut zero, 0), (0, false));
        zero.record(at(0), &ok(0));
        assert_eq!(counter_after(&mut zero, 1), (0, false));
        zero.record(at(1), &ok(1));
        assert_eq!(counter_after(&mut zero, 2), (1, true));
        // A zero period does not divide by zero.
        let mut no_period = LeakyCounterPolicy::new(LeakyThreshold {
            period: Duration::ZERO,
            threshold: 1,
            acceptable_latency: Duration::ZERO,
        });
        no_period.record(at(0), &fail());
        assert_eq!(counter_after(&mut no_period, 10), (0, false));
    }

    #[test]
    fn readings_read_well() {
        let hour = Duration::from_secs(3600);
        let latency = |statistic, value, samples, min_samples| Reading::Latency {
            statistic,
            value,
            limit: 30 * MIN,
            samples,
            min_samples,
            window: hour,
        };
        assert_eq!(
            latency(LatencyStatistic::P95, Some(42 * MIN), 18, 3).to_string(),
            "p95 latency 42 min, threshold 30 min, 18 samples in the last 1 h"
        );
        assert_eq!(
            latency(LatencyStatistic::Max, Some(90 * MIN), 1, 1).to_string(),
            "max latency 1 h 30 min, threshold 30 min, 1 sample in the last 1 h"
        );
        assert_eq!(
            latency(
                LatencyStatistic::Quantile(0.999),
                Some(Duration::from_millis(850)),
                4,
                1
            )
            .to_string(),
            "p99.9 latency 850 ms, threshold 30 min, 4 samples in the last 1 h"
        );
        assert_eq!(
            latency(LatencyStatistic::P95, None, 2, 5).to_string(),
            "p95 latency: 2 samples in the last 1 h, at least 5 needed"
        );
        assert_eq!(
            latency(LatencyStatistic::P95, None, 0, 0).to_string(),
            "p95 latency: 0 samples in the last 1 h, at least 1 needed"
        );
        assert_eq!(
            latency(LatencyStatistic::P95, None, 7, 5).to_string(),
            "p95 latency unavailable, threshold 30 min, 7 samples in the last 1 h"
        );

        let failures = |failures, samples, limit, min_samples| Reading::Failures {
            failures,
            samples,
            limit,
            min_samples,
            window: hour,
        };
        assert_eq!(
            failures(3, 20, FailureLimit::Count(3), 1).to_string(),
            "3 failures of 20 deliveries in the last 1 h, threshold 3"
        );
        assert_eq!(
            failures(1, 1, FailureLimit::Count(3), 1).to_string(),
            "1 failure of 1 delivery in the last 1 h, threshold 3"
        );
        assert_eq!(
            failures(5, 20, FailureLimit::Rate(0.1), 10).to_string(),
            "failure rate 25% (5 of 20) in the last 1 h, threshold 10%"
        );
        assert_eq!(
            failures(1, 3, FailureLimit::Rate(0.125), 1).to_string(),
            "failure rate 33.3% (1 of 3) in the last 1 h, threshold 12.5%"
        );
        assert_eq!(
            failures(1, 2000, FailureLimit::Rate(0.001), 1).to_string(),
            "failure rate 0.05% (1 of 2000) in the last 1 h, threshold 0.1%"
        );
        assert_eq!(
            failures(0, 3, FailureLimit::Rate(0.5), 10).to_string(),
            "failure rate: 3 samples in the last 1 h, at least 10 needed"
        );
        assert_eq!(
            failures(0, 0, FailureLimit::Rate(0.5), 0).to_string(),
            "failure rate: 0 samples in the last 1 h, at least 1 needed"
        );
        assert_eq!(
            failures(2, 2, FailureLimit::Rate(f64::NAN), 1).to_string(),
            "failure rate 100% (2 of 2) in the last 1 h, threshold NaN%"
        );

        assert_eq!(
            Reading::Leaky {
                counter: 4,
                threshold: 5,
                period: 2 * MIN
            }
            .to_string(),
            "leaky counter 4, threshold 5 (2 min periods)"
        );
        assert_eq!(
            Reading::Custom {
                summary: "queue 1200 messages".into()
            }
            .to_string(),
            "queue 1200 messages"
        );
    }

    #[test]
    fn percentages_round_sensibly() {
        let p = |x: f64| Percent(x).to_string();
        assert_eq!(p(0.25), "25%");
        assert_eq!(p(1.0), "100%");
        assert_eq!(p(0.0), "0%");
        assert_eq!(p(2.0 / 3.0), "66.7%");
        assert_eq!(p(0.0996), "10%");
        assert_eq!(p(0.0005), "0.05%");
        assert_eq!(p(0.00001), "0%");
        assert_eq!(p(-0.5), "-50%");
        assert_eq!(p(f64::INFINITY), "inf%");
        assert!(p(1e300).ends_with('%'));
    }

    #[test]
    fn verdicts_round_trip_through_serde() {
        let v = Verdict {
            breached: true,
            reading: Reading::Latency {
                statistic: LatencyStatistic::Quantile(0.99),
                value: Some(42 * MIN),
                limit: 30 * MIN,
                samples: 18,
                min_samples: 3,
                window: Duration::from_secs(3600),
            },
        };
        let json = serde_json::to_string(&v).expect("serialisable");
        assert!(json.contains("\"p99\""), "{json}");
        assert_eq!(
            serde_json::from_str::<Verdict>(&json).expect("round trip"),
            v
        );
    }

    #[test]
    fn policies_are_object_safe_and_send() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<LatencyPolicy>();
        assert_send_sync::<FailurePolicy>();
        assert_send_sync::<LeakyCounterPolicy>();
        let mut policies: Vec<Box<dyn ThresholdPolicy>> = vec![
            Box::new(LatencyPolicy::new(LatencyThreshold::new(
                LatencyStatistic::P95,
                30 * MIN,
            ))),
            Box::new(FailurePolicy::new(FailureThreshold::new(
                FailureLimit::Count(3),
            ))),
            Box::new(leaky(5)),
        ];
        let w = window_with(&[(0, ok(1))]);
        for p in &mut policies {
            p.record(at(0), &ok(1));
            assert!(!p.evaluate(&w, at(1)).breached);
        }
        let names: Vec<&str> = policies.iter().map(|p| p.condition()).collect();
        assert_eq!(names, ["latency", "failures", "leaky"]);
    }
}

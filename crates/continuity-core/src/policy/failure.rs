//! The failure policy: the [`FailureLimit`] (a count or a rate), its
//! [`FailureThreshold`] and the [`FailurePolicy`].

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use std::time::Duration;

use super::{Reading, ThresholdPolicy, Verdict, check_min_samples, field, next_multiple};
use crate::{
    error::{Error, Result},
    machine::Health,
    window::SlidingWindow,
};
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
/// Configuration of a [`FailurePolicy`].
///
/// Written `{"count": 3}` or `{"rate": 0.25, "min_samples": 20}` (in TOML
/// `failures = { count = 3 }`); the older nested form
/// `{"limit": {"count": 3}}` is still read, and the flat form is written.
///
/// `min_samples` (default 1) is the fewest samples (deliveries plus
/// failures) in the window for a verdict: below it the policy's verdict is
/// unknown, which neither raises nor clears. For a rate that holds both
/// ways, since a rate over a handful of samples is noise. For a count, the
/// count reached is a breach whatever the samples (the failures are the
/// evidence), but fewer failures than the count over fewer than
/// `min_samples` samples is unknown, not healthy: raise it to keep a quiet
/// window from clearing a count condition.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "FailureThresholdForm", into = "FailureThresholdForm")]
pub struct FailureThreshold {
    /// A count or a rate of failures in the window.
    pub limit: FailureLimit,
    /// Fewer samples than this give an unknown verdict (default 1; see above).
    pub min_samples: u32,
}

/// [`FailureThreshold`] as written in configuration: the limit's field at
/// the top (`count` or `rate`), or nested under `limit` as older
/// configurations have it; exactly one of the three.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FailureThresholdForm {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    count: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rate: Option<f64>,
    #[serde(default, skip_serializing)]
    limit: Option<FailureLimit>,
    #[serde(default = "default_failure_min_samples")]
    min_samples: u32,
}

fn default_failure_min_samples() -> u32 {
    FailureThreshold::DEFAULT_MIN_SAMPLES
}

impl TryFrom<FailureThresholdForm> for FailureThreshold {
    type Error = String;

    fn try_from(form: FailureThresholdForm) -> std::result::Result<Self, String> {
        let limit = match (form.count, form.rate, form.limit) {
            (Some(count), None, None) => FailureLimit::Count(count),
            (None, Some(rate), None) => FailureLimit::Rate(rate),
            (None, None, Some(limit)) => limit,
            (None, None, None) => {
                return Err(
                    "a failure threshold needs a limit: `count` (e.g. 3) or `rate` (e.g. 0.25)"
                        .into(),
                );
            }
            _ => {
                return Err(
                    "a failure threshold takes one limit: `count` or `rate`, not both".into(),
                );
            }
        };
        Ok(FailureThreshold {
            limit,
            min_samples: form.min_samples,
        })
    }
}

impl From<FailureThreshold> for FailureThresholdForm {
    fn from(t: FailureThreshold) -> Self {
        let (count, rate) = match t.limit {
            FailureLimit::Count(count) => (Some(count), None),
            FailureLimit::Rate(rate) => (None, Some(rate)),
        };
        FailureThresholdForm {
            count,
            rate,
            limit: None,
            min_samples: t.min_samples,
        }
    }
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
        check_min_samples(field_prefix, self.min_samples)
    }
}

/// Breached when the window holds too many failures.
///
/// [`FailureLimit::Count`]: at least `count` failures (a count of 0 behaves
/// as 1). [`FailureLimit::Rate`]: at least `min_samples` samples (deliveries
/// plus failures) and `failures / samples >= rate`. A window without failures
/// never breaches, whatever the limit. Below `min_samples` (and, for a count,
/// with the count not reached) the reading is unknown
/// ([`Reading::is_unknown`]).
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

    fn health(&self, verdict: &Verdict, watched_in_full: bool) -> Health {
        match verdict.reading {
            _ if verdict.breached => Health::Breached,
            // Too few samples for the minimum (silence included) proves
            // nothing either way; a count reached is a breach above.
            _ if verdict.reading.is_unknown() => Health::Unknown,
            // Fewer failures than the count in a window watched for only part
            // of its length (after a restart or a take-over) prove nothing: an
            // outage must not "resolve" because the window is still filling.
            Reading::Failures {
                limit: FailureLimit::Count(_),
                ..
            } if !watched_in_full => Health::Unknown,
            _ => Health::Healthy,
        }
    }

    /// Expiring data can only lower a failure count: a healthy count-based
    /// verdict stays healthy until something new is recorded. A rate can
    /// rise as deliveries expire, so it is looked at every bucket.
    fn valid_until(
        &self,
        verdict: &Verdict,
        window: &SlidingWindow,
        now: DateTime<Utc>,
    ) -> DateTime<Utc> {
        match verdict.reading {
            Reading::Failures {
                limit: FailureLimit::Count(_),
                ..
            } if !verdict.breached => DateTime::<Utc>::MAX_UTC,
            _ => next_multiple(now, window.bucket_width()),
        }
    }

    /// A delivery cannot add to a failure count. Not with an empty window:
    /// the first delivery turns "unknown" into "healthy".
    fn absorbs_below(
        &self,
        verdict: &Verdict,
        window: &SlidingWindow,
        now: DateTime<Utc>,
    ) -> Option<Duration> {
        let _ = (window, now);
        match verdict.reading {
            // Below `min_samples` the verdict is unknown, and any delivery
            // may bring it to healthy: nothing is absorbed then.
            Reading::Failures {
                limit: FailureLimit::Count(_),
                ..
            } if !verdict.breached && !verdict.reading.is_unknown() => Some(Duration::MAX),
            _ => None,
        }
    }

    fn peek(&self, window: &SlidingWindow, now: DateTime<Utc>) -> Option<Verdict> {
        Some(self.clone().evaluate(window, now))
    }
}

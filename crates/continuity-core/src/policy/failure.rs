//! The failure policy: the [`FailureLimit`] (a count or a rate), its
//! [`FailureThreshold`] and the [`FailurePolicy`].

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use std::time::Duration;

use super::{Reading, ThresholdPolicy, Verdict, field, next_multiple};
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
fn default_failure_min_samples() -> u32 {
    FailureThreshold::DEFAULT_MIN_SAMPLES
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

    fn health(&self, verdict: &Verdict, watched_in_full: bool) -> Health {
        match verdict.reading {
            _ if verdict.breached => Health::Breached,
            Reading::Failures { samples: 0, .. } => Health::Unknown,
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
            Reading::Failures {
                limit: FailureLimit::Count(_),
                samples,
                ..
            } if !verdict.breached && samples > 0 => Some(Duration::MAX),
            _ => None,
        }
    }

    fn peek(&self, window: &SlidingWindow, now: DateTime<Utc>) -> Option<Verdict> {
        Some(self.clone().evaluate(window, now))
    }
}

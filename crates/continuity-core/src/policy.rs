//! Threshold policies: whether a window's figures breach a condition.
//!
//! CONTRACT (implemented by the policy helper; see the issue).

use std::{fmt, time::Duration};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{domain::Outcome, window::SlidingWindow};

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
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum LatencyStatistic {
    /// A quantile in (0, 1], e.g. 0.95.
    Quantile(f64),
    /// The maximum.
    Max,
}

/// A failure limit: a count or a rate over the window.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
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

impl fmt::Display for Reading {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let _ = f;
        unimplemented!()
    }
}

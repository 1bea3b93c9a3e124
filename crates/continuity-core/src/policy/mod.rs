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
mod failure;
mod latency;
mod leaky;
#[cfg(test)]
mod tests;
mod verdict;
use std::fmt;

use chrono::{DateTime, Utc};

use crate::{domain::Outcome, window::SlidingWindow};

pub use failure::{FailureLimit, FailurePolicy, FailureThreshold};
pub use latency::{LatencyPolicy, LatencyStatistic, LatencyThreshold};
pub use leaky::{LeakyCounterPolicy, LeakyThreshold};
pub use verdict::{Reading, Verdict};
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
/// `prefix.name`, or `name` alone without a prefix.
fn field(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_owned()
    } else {
        format!("{prefix}.{name}")
    }
}

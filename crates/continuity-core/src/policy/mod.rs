//! Threshold policies: whether a window's figures breach a condition.
//!
//! Four policies ship with the crate, each built from a serde-deserialisable
//! threshold (validate it with its `validate` method first):
//!
//! | policy | condition | breached when |
//! |---|---|---|
//! | [`LatencyPolicy`] ([`LatencyThreshold`]) | `"latency"` | at least `min_samples` deliveries and the statistic (`p95`, `max`, …) is above `limit` |
//! | [`FailurePolicy`] ([`FailureThreshold`]) | `"failures"` | at least `count` failures, or (with at least `min_samples` samples) a failure rate of at least `rate` |
//! | [`LeakyCounterPolicy`] ([`LeakyThreshold`]) | `"leaky"` | the gateway-style leaky counter (capped at `cap`) reached `threshold`, until it is back to 0 |
//! | [`FlowPolicy`] ([`FlowThreshold`]) | `"flow"` | failures, or deliveries slower than usual, far more frequent in the recent minutes than the learned baseline makes probable |
//!
//! In JSON (durations as seconds or strings such as `"30m"`, see
//! [`crate::duration`]):
//!
//! ```json
//! { "statistic": "p95", "limit": "30m", "min_samples": 3 }
//! { "limit": { "count": 3 } }
//! { "limit": { "rate": 0.25 }, "min_samples": 20 }
//! { "period": "2m", "threshold": 5, "acceptable_latency": "10m", "cap": 10 }
//! { "span": "30m", "significance": 1e-7, "half_life": "3d" }
//! ```
//!
//! The flow policy is the default detector: it needs no number from the
//! administrator. The other three are absolute thresholds the administrator
//! sets; they apply on top.
//!
//! An embedder's own policies implement [`ThresholdPolicy`] too; they are
//! registered by name with a [`PolicyFactory`] and selected per direction
//! with a [`PolicySelection`] (see `params.rs`).
//!
//! Evaluating never allocates: it runs for every direction of every tenant
//! at each tick. A policy built from a threshold that does not validate still
//! never panics; see each policy for how it treats out-of-range values.
mod failure;
mod flow;
mod latency;
mod leaky;
mod params;
#[cfg(test)]
mod tests;
mod verdict;
use std::{fmt, time::Duration};

use chrono::{DateTime, Utc};

use crate::{domain::Outcome, machine::Health, window::SlidingWindow};

pub use failure::{FailureLimit, FailurePolicy, FailureThreshold};
pub use flow::{FlowFinding, FlowPolicy, FlowThreshold};
pub use latency::{LatencyPolicy, LatencyStatistic, LatencyThreshold};
pub use leaky::{LeakyCounterPolicy, LeakyThreshold};
pub use params::{PolicyFactory, PolicyParams, PolicySelection};
pub use verdict::{Reading, Verdict};
/// Looks at a direction's window and says whether, and why, a condition is
/// breached, and what the [`Monitor`](crate::Monitor) needs to know to ask it
/// no more often than necessary.
///
/// One policy instance watches one (tenant, direction). The Monitor knows
/// policies only through this trait: built-in and embedder policies (see
/// [`MonitorBuilder::policy`](crate::MonitorBuilder::policy)) are treated
/// alike. Hysteresis (`raise_after`, `clear_after`) is applied by the tenant
/// state machine to what [`health`](Self::health) says; a policy with its own
/// evaluation periods makes it count those periods rather than ticks (see
/// [`counts_ticks`](Self::counts_ticks)).
///
/// The defaults suit a policy that reads the window: it is evaluated again
/// after every observation and at every bucket boundary. Overriding
/// [`valid_until`](Self::valid_until) and [`absorbs_below`](Self::absorbs_below)
/// lets a steady, healthy tenant cost nothing until something can change.
/// `testing::policy_conformance` (feature `testing`) checks what every policy
/// must do (deterministic, unknown without data, bounded memory, no panic).
pub trait ThresholdPolicy: Send + Sync + fmt::Debug {
    /// Stable name of the condition, unique per direction: `"latency"`, `"failures"`, `"leaky"`.
    fn condition(&self) -> &str;

    /// Whether the policy wants [`record`](Self::record) called for every
    /// observation. Asked once, when the tenant is registered; the default
    /// (`false`) keeps the observation path free of calls into the policy.
    fn records(&self) -> bool {
        false
    }

    /// Sees every observation of the direction as it is recorded, when
    /// [`records`](Self::records) says so. The default does nothing.
    fn record(&mut self, at: DateTime<Utc>, outcome: &Outcome) {
        let _ = (at, outcome);
    }

    /// How long a probe may stay pending before it is evidence for this
    /// policy: past it, the Monitor marks the probe overdue in the window
    /// ([`SlidingWindow::mark_overdue`]) and evaluates the policy again,
    /// without waiting for the probe to arrive. Asked once, when the tenant
    /// is registered. `None`, the default: pending probes say nothing.
    fn overdue_after(&self) -> Option<Duration> {
        None
    }

    /// Whether the policy, having just given `verdict`, would judge sooner
    /// with a fresh probe of the direction than with the next round: its
    /// evidence is building (say, a probe it counts as slow) but not yet
    /// decided. The Monitor then sends one probe of the direction in the
    /// same tick, when the direction is probed; asked after every
    /// evaluation, so a policy says `true` once per piece of new evidence,
    /// not for as long as it lasts. `false`, the default.
    fn probe_soon(&self, verdict: &Verdict) -> bool {
        let _ = verdict;
        false
    }

    /// Evaluates the condition at `now`.
    fn evaluate(&mut self, window: &SlidingWindow, now: DateTime<Utc>) -> Verdict;

    /// How `verdict`, this policy's latest, counts for the hysteresis: a
    /// policy without enough data to judge says [`Health::Unknown`], which
    /// neither raises nor clears. `watched_in_full`: the monitor has watched
    /// the window for its whole length (since it registered the tenant or
    /// took it over). The default: breached as the verdict says, else
    /// unknown when its reading is ([`Reading::is_unknown`]: too few
    /// samples, silence), else healthy.
    fn health(&self, verdict: &Verdict, watched_in_full: bool) -> Health {
        let _ = watched_in_full;
        if verdict.breached {
            Health::Breached
        } else if verdict.reading.is_unknown() {
            Health::Unknown
        } else {
            Health::Healthy
        }
    }

    /// Whether the policy's verdicts hold their own hysteresis: a breach
    /// is never decided on one unlucky minute, and once decided it holds
    /// until the evidence says the flow is normal. The direction's
    /// `raise_after` and `clear_after`, which smooth the verdicts of a
    /// plain threshold, would then only delay the alert and the resolved
    /// notice: a debounced policy's condition raises on its first breached
    /// evaluation and clears on its first healthy one. `false`, the default.
    fn debounced(&self) -> bool {
        false
    }

    /// Whether a verdict kept from an earlier tick counts again, at a tick
    /// that did not evaluate the policy (`true`, the default: hysteresis
    /// counts ticks). A policy with evaluation periods of its own says
    /// `false` and [`Health::Unknown`] from [`health`](Self::health) after
    /// an evaluation that closed no period, so that `raise_after` and
    /// `clear_after` count its periods.
    fn counts_ticks(&self) -> bool {
        true
    }

    /// Until when `verdict`, given at `now`, holds if nothing new is
    /// recorded: the Monitor evaluates the policy again at that time (or at
    /// the next observation it cannot [absorb](Self::absorbs_below)).
    /// The default: the window's next bucket boundary, where data expires.
    /// [`DateTime::<Utc>::MAX_UTC`] means "until something is recorded".
    fn valid_until(
        &self,
        verdict: &Verdict,
        window: &SlidingWindow,
        now: DateTime<Utc>,
    ) -> DateTime<Utc> {
        let _ = verdict;
        next_multiple(now, window.bucket_width())
    }

    /// While `verdict` holds, a delivery faster than the returned latency
    /// cannot make it breached (or unbreached), nor a healthy verdict
    /// anything else, so it needs no evaluation (a failure always does). It
    /// may turn an unknown verdict healthy: the Monitor asks only while no
    /// condition of the direction is raised (or on its way), where that
    /// changes nothing. `None`, the default: every observation may change
    /// it. Asked only when every verdict of the direction is valid until
    /// something is recorded; the Monitor caches the answer, so recording
    /// an observation never calls into the policy.
    fn absorbs_below(
        &self,
        verdict: &Verdict,
        window: &SlidingWindow,
        now: DateTime<Utc>,
    ) -> Option<Duration> {
        let _ = (verdict, window, now);
        None
    }

    /// A verdict at `now` that leaves the policy as it is, for
    /// [`Monitor::status`](crate::Monitor::status) between evaluations.
    /// `None`, the default: the latest verdict stands.
    fn peek(&self, window: &SlidingWindow, now: DateTime<Utc>) -> Option<Verdict> {
        let _ = (window, now);
        None
    }

    /// Bytes the policy holds, its heap included. It must not grow with the
    /// number of observations.
    fn memory_bytes(&self) -> usize {
        std::mem::size_of_val(self)
    }

    /// What the policy has learned and should outlive the process, as
    /// bytes the Monitor keeps in the store (a
    /// [`BaselineRecord`](crate::store::BaselineRecord) per tenant,
    /// direction and [condition](Self::condition)) and hands back to
    /// [`restore`](Self::restore) after a restart or on the instance that
    /// takes the tenant over. Taken about once an hour per direction (see
    /// `MonitorSettings::baseline_every`), so it may allocate; keep it
    /// small, it is stored for every direction of every tenant. `None`, the
    /// default: nothing learned to keep.
    fn snapshot(&self) -> Option<Vec<u8>> {
        None
    }

    /// Takes back what [`snapshot`](Self::snapshot) gave, possibly from
    /// another process or an older build; returns whether it was taken.
    /// `snapshot` may be any bytes: a policy never panics on them, and
    /// refuses (returning `false` and keeping what it has) whatever it does
    /// not recognise or that fails its checks (an unknown format, figures
    /// out of range, a configuration the snapshot no longer fits). Only
    /// what was learned is replaced: a verdict in progress (an episode, a
    /// latch) stays as it is. A policy built alike takes its own snapshot
    /// and then gives the same bytes back, and two such policies judge the
    /// same inputs alike (`testing::policy_conformance` checks all of this).
    /// The default takes nothing.
    fn restore(&mut self, snapshot: &[u8]) -> bool {
        let _ = snapshot;
        false
    }
}

/// The first multiple of `step` since the Unix epoch that is after `now`
/// (a bucket or period boundary); a zero `step` counts as 1 ms.
pub fn next_multiple(now: DateTime<Utc>, step: Duration) -> DateTime<Utc> {
    let step = i64::try_from(step.as_millis()).unwrap_or(i64::MAX).max(1);
    let next = now
        .timestamp_millis()
        .div_euclid(step)
        .saturating_add(1)
        .saturating_mul(step);
    DateTime::<Utc>::from_timestamp_millis(next).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// `prefix.name`, or `name` alone without a prefix.
/// `min_samples` of a threshold at `prefix`: a verdict needs at least one sample.
fn check_min_samples(prefix: &str, min_samples: u32) -> crate::Result<()> {
    if min_samples == 0 {
        return Err(crate::Error::config(
            field(prefix, "min_samples"),
            "must be at least 1",
        ));
    }
    Ok(())
}

fn field(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_owned()
    } else {
        format!("{prefix}.{name}")
    }
}

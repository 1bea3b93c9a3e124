//! What the engine hands back: a [`TickReport`] per tick, an
//! [`ActionOutcome`] per portal action and a [`TenantStatus`] for status
//! displays.
//!
//! Plain data, apart from the code that fills it in. Each serialises
//! (serde), for logs and a service's JSON API, with times in RFC 3339 and
//! durations as in configuration (`"2m"`).

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::{
    config::ChannelKind,
    domain::{Direction, TenantId},
    duration::{serde_duration, serde_opt_duration},
    machine::TenantState,
    notify::{DeliveryReceipt, FailureSummary},
    policy::{FailureLimit, LatencyStatistic, Verdict},
    store::Versioned,
};

/// What one tick did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct TickReport {
    /// Probes sent.
    pub probes_dispatched: u64,
    /// Of those, probes a policy asked for besides the regular rounds
    /// ([`ThresholdPolicy::probe_soon`](crate::policy::ThresholdPolicy::probe_soon)).
    pub probes_hurried: u64,
    /// Pending probes checked.
    pub probes_checked: u64,
    /// Probes found.
    pub probes_arrived: u64,
    /// Probes past their deadline (counted as failures).
    pub probes_lost: u64,
    /// Tenants whose state changed.
    pub transitions: u64,
    /// Alerts decided (one per alert, not per recipient).
    pub alerts: u64,
    /// Messages delivered to recipients.
    pub deliveries: u64,
    /// Delivery attempts that failed (retried later or given up): the
    /// length of [`failed_deliveries`](Self::failed_deliveries).
    pub delivery_failures: u64,
    /// Each delivery attempt that failed, in completion order. Not in
    /// [`errors`](Self::errors), which lists the other problems.
    pub failed_deliveries: Vec<DeliveryFailure>,
    /// Hook calls made successfully.
    pub hook_calls: u64,
    /// Baseline records written to the store (see
    /// [`MonitorSettings::baseline_every`](super::MonitorSettings::baseline_every)).
    pub baselines_saved: u64,
    /// Observations of tenants that other instances of the cluster own,
    /// shared with them through the store (see
    /// [`Monitor::observe`](super::Monitor::observe)).
    pub observations_shared: u64,
    /// Observations other instances shared for this instance's tenants,
    /// recorded into their windows.
    pub observations_merged: u64,
    /// Problems that did not stop the tick, described.
    pub errors: Vec<String>,
    /// One receipt per message delivered, in completion order.
    pub receipts: Vec<DeliveryReceipt>,
}

/// A delivery attempt that failed, in [`TickReport::failed_deliveries`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DeliveryFailure {
    /// The tenant.
    pub tenant: TenantId,
    /// The alert (per tenant).
    pub alert_id: u64,
    /// The channel.
    pub channel: ChannelKind,
    /// The recipient's id in the tenant's configuration.
    pub recipient: String,
    /// What went wrong.
    pub error: String,
    /// When it is tried again; `None`: given up for good (a permanent error,
    /// no notifier for the channel, or the link expired), and kept as a
    /// dead letter.
    pub retry_at: Option<DateTime<Utc>>,
    /// Attempts so far, this one included.
    pub attempts: u32,
}

impl DeliveryFailure {
    /// Whether it was given up for good (no retry).
    pub fn is_permanent(&self) -> bool {
        self.retry_at.is_none()
    }
}

/// What an action changed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ActionOutcome {
    /// The tenant.
    pub tenant: TenantId,
    /// The state's version after the action.
    pub version: u64,
    /// The state after the action.
    pub state: TenantState,
}

/// A tenant's current condition, for status displays.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TenantStatus {
    /// The stored state and its version.
    pub state: Versioned,
    /// The latest verdict of every policy, per direction.
    pub readings: Vec<(Direction, String, Verdict)>,
    /// What is failing, per direction with failures in its window or a
    /// remote reply given inside it (inbound first).
    pub failing: Vec<FailureSummary>,
    /// Each direction's last hour bucket by bucket (inbound first), for a
    /// chart.
    pub history: Vec<DirectionHistory>,
}

/// How long [`DirectionHistory`] looks back.
pub const HISTORY_SPAN: Duration = Duration::from_secs(3_600);

/// One direction's recent flow, a window bucket at a time: the window's
/// buckets that end within the last hour ([`HISTORY_SPAN`]; all of them
/// with the default 1-hour window of 12 five-minute buckets, fewer with a
/// shorter window), against the thresholds the direction is judged by.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DirectionHistory {
    /// The direction.
    pub direction: Direction,
    /// The width of one bucket.
    #[serde(with = "serde_duration")]
    pub bucket_width: Duration,
    /// The latency statistic of each bucket: the absolute latency
    /// threshold's, else the 95th percentile.
    pub statistic: LatencyStatistic,
    /// The latency to compare it with: the absolute latency threshold's
    /// limit, else the flow detector's `slow_above` (slower than what is
    /// usual for the tenant); `None` when neither is known yet.
    #[serde(with = "serde_opt_duration")]
    pub latency_limit: Option<Duration>,
    /// The absolute failure threshold over the whole window, if one is
    /// configured (the flow detector judges failures against the learned
    /// share instead).
    pub failure_limit: Option<FailureLimit>,
    /// The buckets, oldest first; the last is the one `now` falls in.
    pub buckets: Vec<BucketReading>,
    /// The ages of the probes still pending past what the policies call
    /// normal (at most four, the oldest first): latencies of at least that
    /// long already, which the latency verdicts count before the probes
    /// arrive or are lost. A black hole shows here before it shows as
    /// failures.
    pub overdue: Vec<OverdueProbe>,
}

/// A probe still pending past what the policies call normal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct OverdueProbe {
    /// How long it has been on its way.
    #[serde(with = "serde_duration")]
    pub age: Duration,
}

/// The figures of one window bucket.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BucketReading {
    /// When the bucket starts (it covers `[start, start + bucket_width)`).
    pub start: DateTime<Utc>,
    /// Whether this instance watched the tenant during the bucket, or holds
    /// mail of it all the same: `false` for an empty bucket from before it
    /// registered the tenant or took it over (windows live in memory), and
    /// for every bucket on an instance of a cluster that does not own the
    /// tenant. An unwatched bucket's zeros mean nothing, not silence.
    pub watched: bool,
    /// Deliveries recorded in it.
    pub deliveries: u64,
    /// Failures recorded in it.
    pub failures: u64,
    /// The [`statistic`](DirectionHistory::statistic) of its deliveries'
    /// latencies; `None` without deliveries.
    #[serde(with = "serde_opt_duration")]
    pub latency: Option<Duration>,
}

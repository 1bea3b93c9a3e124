//! What the engine hands back: a [`TickReport`] per tick, an
//! [`ActionOutcome`] per portal action and a [`TenantStatus`] for status
//! displays.
//!
//! Plain data, apart from the code that fills it in.

use crate::{
    domain::{Direction, TenantId},
    machine::TenantState,
    notify::{DeliveryReceipt, FailureSummary},
    policy::Verdict,
    store::Versioned,
};

/// What one tick did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
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
    /// Delivery attempts that failed (retried later or given up).
    pub delivery_failures: u64,
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

/// What an action changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActionOutcome {
    /// The tenant.
    pub tenant: TenantId,
    /// The state's version after the action.
    pub version: u64,
    /// The state after the action.
    pub state: TenantState,
}

/// A tenant's current condition, for status displays.
#[derive(Clone, Debug, PartialEq)]
pub struct TenantStatus {
    /// The stored state and its version.
    pub state: Versioned,
    /// The latest verdict of every policy, per direction.
    pub readings: Vec<(Direction, String, Verdict)>,
    /// What is failing, per direction with failures in its window or a
    /// remote reply given inside it (inbound first).
    pub failing: Vec<FailureSummary>,
}

//! How the monitor is doing, for a service's health endpoint
//! ([`Monitor::health`]), and the end of a tick that keeps the metrics'
//! gauges current (`after_tick`).
//!
//! A health check costs one store call (the outbox counts, which also show
//! that the store answers; a ping where the store cannot count) and reads
//! nothing per tenant: the journal's size comes from totals kept up to
//! date as tenants change (`GaugeTotals`), as do the gauges a tick sets.

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tracing::debug;

use super::{Monitor, TenantRuntime, lock};
use crate::{
    cluster::ShardSet,
    duration::{serde_duration, serde_opt_duration},
    metrics::seconds_between,
    store::OutboxCounts,
};

/// When [`Monitor::health`] calls the monitor degraded or failing. Part
/// of [`MonitorSettings`](super::MonitorSettings) (`[health]`); every field
/// is optional, with the default below.
///
/// ```
/// use std::time::Duration;
/// use continuity_core::monitor::MonitorSettings;
///
/// let s: MonitorSettings = toml::from_str(r#"
///     [health]
///     tick_late = "5m"
///     dead_letters = 1
/// "#).unwrap();
/// assert_eq!(s.health.tick_late, Duration::from_secs(300));
/// assert_eq!(s.health.tick_stale, Duration::from_secs(600));
/// assert_eq!(s.health.dead_letters, Some(1));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HealthThresholds {
    /// No tick for this long: degraded (default 3 min, three missed ticks
    /// of the usual minute).
    #[serde(with = "serde_duration")]
    pub tick_late: Duration,
    /// No tick for this long: failing (default 10 min): nothing is being
    /// watched, no alert goes out.
    #[serde(with = "serde_duration")]
    pub tick_stale: Duration,
    /// This many outbox entries waiting or more: degraded (default 1000):
    /// alerts are going out late.
    pub outbox_backlog: u64,
    /// This many dead letters or more: degraded (default: not judged).
    /// Dead letters stay until removed, so a threshold here keeps the
    /// monitor degraded until someone has looked at them.
    pub dead_letters: Option<u64>,
}

impl Default for HealthThresholds {
    fn default() -> Self {
        HealthThresholds {
            tick_late: Duration::from_secs(180),
            tick_stale: Duration::from_secs(600),
            outbox_backlog: 1000,
            dead_letters: None,
        }
    }
}

/// The overall judgement of a [`Health`], worst last.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthStatus {
    /// Working as it should.
    Ok,
    /// Working, but something needs a look: ticks late or not started yet,
    /// a large outbox backlog, dead letters over their threshold, or
    /// transitions journaled while the store could not be reached.
    Degraded,
    /// Not doing its job: the store does not answer, or no tick for
    /// [`tick_stale`](HealthThresholds::tick_stale).
    Failing,
}

impl HealthStatus {
    /// `"ok"`, `"degraded"` or `"failing"`.
    pub fn as_str(self) -> &'static str {
        match self {
            HealthStatus::Ok => "ok",
            HealthStatus::Degraded => "degraded",
            HealthStatus::Failing => "failing",
        }
    }
}

/// How the monitor is doing ([`Monitor::health`]). Serialises to JSON
/// with durations as in configuration (`"2m"`):
///
/// ```json
/// {"status":"ok","checked_at":"2026-03-02T08:01:30Z","last_tick":"2026-03-02T08:01:00Z",
///  "last_tick_age":"30s","store_reachable":true,"outbox_backlog":0,"dead_letters":0,
///  "journal_transitions":0,"reasons":[]}
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// The judgement (see [`HealthThresholds`]).
    pub status: HealthStatus,
    /// When the check ran.
    pub checked_at: DateTime<Utc>,
    /// The time of the latest tick (`None`: none yet).
    pub last_tick: Option<DateTime<Utc>>,
    /// How long ago that was.
    #[serde(with = "serde_opt_duration")]
    pub last_tick_age: Option<Duration>,
    /// Whether the store answered.
    pub store_reachable: bool,
    /// Outbox entries not yet done (`None`: the store did not answer, or
    /// cannot count).
    pub outbox_backlog: Option<u64>,
    /// Outbox entries given up on (`None` as for `outbox_backlog`).
    pub dead_letters: Option<u64>,
    /// Transitions held in the store-outage journal at the last tick.
    pub journal_transitions: u64,
    /// Why the status is not `ok`, one sentence each.
    pub reasons: Vec<String>,
}

impl Health {
    /// Whether the status is [`HealthStatus::Ok`].
    pub fn is_ok(&self) -> bool {
        self.status == HealthStatus::Ok
    }
}

/// The totals behind the gauges read from the tenants: each tenant's
/// share ([`Gauged`]) is added when it changes, so a tick reads the totals
/// and walks no tenant.
#[derive(Debug, Default)]
pub(super) struct GaugeTotals {
    /// Conditions raised, by [`Direction::index`](crate::Direction::index).
    raised: [AtomicU64; 2],
    /// Transitions in the store-outage journals.
    journal: AtomicU64,
}

/// What one tenant adds to the [`GaugeTotals`]: nothing unless this
/// instance owns it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Gauged {
    raised: [u32; 2],
    journal: u32,
}

impl Gauged {
    fn of(rt: &TenantRuntime) -> Gauged {
        let mut g = Gauged {
            journal: u32::try_from(rt.journal.len()).unwrap_or(u32::MAX),
            ..Gauged::default()
        };
        for c in rt.cached.state.conditions.iter().filter(|c| c.active) {
            g.raised[c.direction.index()] += 1;
        }
        g
    }
}

fn shift(total: &AtomicU64, from: u32, to: u32) {
    // Added before subtracted: the total never dips below zero on the way.
    total.fetch_add(u64::from(to), Ordering::Relaxed);
    total.fetch_sub(u64::from(from), Ordering::Relaxed);
}

impl Monitor {
    /// [`health`](Self::health) at the clock's time.
    pub async fn health_now(&self) -> Health {
        self.health(self.parts.clock.now()).await
    }

    /// How the monitor is doing at `now`: the age of the last tick, whether
    /// the store answers, the outbox backlog and dead letters, the
    /// store-outage journal, and the judgement of
    /// [`MonitorSettings::health`](super::MonitorSettings::health). One
    /// store call; never fails (an unreachable store is part of the answer).
    pub async fn health(&self, now: DateTime<Utc>) -> Health {
        let t = &self.settings.health;
        let mut status = HealthStatus::Ok;
        let mut reasons = Vec::new();
        let mut judge = |s: HealthStatus, reason: String| {
            status = status.max(s);
            reasons.push(reason);
        };
        let last_tick = *lock(&self.ticks.last);
        let last_tick_age = last_tick.map(|at| (now - at).to_std().unwrap_or(Duration::ZERO));
        match last_tick_age {
            None => judge(HealthStatus::Degraded, "no tick has run yet".into()),
            Some(age) if age >= t.tick_stale => judge(
                HealthStatus::Failing,
                format!(
                    "no tick for {}: nothing is watched and no alert goes out",
                    crate::duration::human(age)
                ),
            ),
            Some(age) if age >= t.tick_late => judge(
                HealthStatus::Degraded,
                format!("no tick for {}", crate::duration::human(age)),
            ),
            Some(_) => {}
        }
        let store = self.parts.store.as_ref();
        let (store_reachable, counts) = match store.outbox_counts().await {
            Ok(Some(counts)) => (true, Some(counts)),
            Ok(None) => match store.ping().await {
                Ok(()) => (true, None),
                Err(e) => {
                    judge(
                        HealthStatus::Failing,
                        format!("the store does not answer: {e}"),
                    );
                    (false, None)
                }
            },
            Err(e) => {
                judge(
                    HealthStatus::Failing,
                    format!("the store does not answer: {e}"),
                );
                (false, None)
            }
        };
        if let Some(c) = counts {
            if c.backlog >= t.outbox_backlog {
                judge(
                    HealthStatus::Degraded,
                    format!(
                        "{} outbox entries waiting (threshold {}): alerts go out late",
                        c.backlog, t.outbox_backlog
                    ),
                );
            }
            if let Some(limit) = t.dead_letters
                && c.dead_letters >= limit
            {
                judge(
                    HealthStatus::Degraded,
                    format!("{} dead letters (threshold {limit})", c.dead_letters),
                );
            }
        }
        let journal_transitions = self.ticks.gauges.journal.load(Ordering::Relaxed);
        if journal_transitions > 0 {
            judge(
                HealthStatus::Degraded,
                format!("{journal_transitions} transitions wait in the journal for the store"),
            );
        }
        Health {
            status,
            checked_at: now,
            last_tick,
            last_tick_age,
            store_reachable,
            outbox_backlog: counts.map(|c| c.backlog),
            dead_letters: counts.map(|c| c.dead_letters),
            journal_transitions,
            reasons,
        }
    }

    /// Brings `rt`'s share of the [`GaugeTotals`] up to date: what its
    /// cached state and journal hold, or nothing when it is removed or of
    /// a shard outside `owned`. Called where a tenant's share can change
    /// within a tick (after its evaluation, which also follows a portal
    /// action, a registration and a take-over), when a shard is given up,
    /// and when the tenant is removed or registered again.
    pub(super) fn reconcile_gauges(&self, rt: &mut TenantRuntime, owned: &ShardSet) {
        let now = if rt.removed || !owned.contains(rt.shard) {
            Gauged::default()
        } else {
            Gauged::of(rt)
        };
        let was = std::mem::replace(&mut rt.gauged, now);
        if was == now {
            return;
        }
        let totals = &self.ticks.gauges;
        for d in 0..2 {
            shift(&totals.raised[d], was.raised[d], now.raised[d]);
        }
        shift(&totals.journal, was.journal, now.journal);
    }

    /// The end of a tick that began at `started` by the clock: the tick's
    /// metrics, and the gauges: the tenants' totals (conditions raised by
    /// direction and the journal's size, over the tenants this instance
    /// owns), the shards owned, and the outbox counts (a store that fails
    /// to count leaves those two gauges as they were, and the tick as it
    /// is).
    pub(super) async fn after_tick(&self, started: DateTime<Utc>) {
        let owned = lock(&self.cluster.owned).len();
        let totals = &self.ticks.gauges;
        let raised = [
            totals.raised[0].load(Ordering::Relaxed),
            totals.raised[1].load(Ordering::Relaxed),
        ];
        let journal = totals.journal.load(Ordering::Relaxed);
        let counts: Option<OutboxCounts> = match self.parts.store.as_ref().outbox_counts().await {
            Ok(counts) => counts,
            Err(e) => {
                debug!(error = %e, "counting the outbox failed; its gauges keep their values");
                None
            }
        };
        let i = &self.parts.instruments;
        i.gauges(raised, journal, owned as u32, counts);
        i.tick(seconds_between(started, self.parts.clock.now()));
    }
}

//! The outbox worker: delivering the alerts and hook calls that commits
//! left in the store's outbox, one lane per channel, retrying what fails
//! with a retryable error.
//!
//! Everything that leaves the process goes through here (or, while the
//! store is down, through the [`journal`](super::journal)). What the
//! outbox gives up on stays as a dead letter until
//! [`Monitor::prune_records`] removes it with the other old records.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tracing::{Instrument, debug, error, info, info_span, warn};

use super::{DeliveryFailure, Monitor, TickReport, lock};
use crate::{
    config::ChannelKind,
    domain::TenantId,
    duration::after,
    error::{Error, Result},
    machine::ContinuityEvent,
    notify::{AlertMessage, DeliveryReceipt},
    store::{OutboxEntry, OutboxItem, OutboxResult, PruneReport},
};

/// Outbox lanes worked at once by one tick: all of them (three channels and the hook).
const OUTBOX_CONCURRENCY: usize = 4;

/// Runs `futures` with at most `limit` in flight (a new one starts as soon as
/// one finishes) and returns their outputs in completion order. Written by
/// hand so that core needs no futures crate.
async fn run_bounded<F: Future>(
    limit: usize,
    futures: impl IntoIterator<Item = F>,
) -> Vec<F::Output> {
    let mut queue = futures.into_iter();
    let mut running: Vec<std::pin::Pin<Box<F>>> = Vec::new();
    let mut out = Vec::new();
    std::future::poll_fn(|cx| {
        loop {
            while running.len() < limit.max(1) {
                match queue.next() {
                    Some(f) => running.push(Box::pin(f)),
                    None => break,
                }
            }
            if running.is_empty() {
                // Nothing left to start either.
                return std::task::Poll::Ready(());
            }
            let before = out.len();
            let mut i = 0;
            while i < running.len() {
                if let std::task::Poll::Ready(v) = running[i].as_mut().poll(cx) {
                    out.push(v);
                    drop(running.swap_remove(i));
                } else {
                    i += 1;
                }
            }
            if out.len() == before {
                return std::task::Poll::Pending;
            }
        }
    })
    .await;
    out
}

/// Groups claimed entries into lanes: one per channel, and one for the hook
/// calls. The lanes are worked side by side: a slow or failing channel never
/// holds back the others. Within a lane entries go one at a time, so an
/// instance dying mid-tick leaves at most one delivery per channel sent and
/// not recorded. Order per recipient and per tenant hook stays: the store
/// hands out only the oldest entry of each order key.
fn into_lanes(claimed: Vec<OutboxEntry>) -> Vec<(Option<ChannelKind>, Vec<OutboxEntry>)> {
    let mut lanes: Vec<(Option<ChannelKind>, Vec<OutboxEntry>)> = Vec::new();
    for entry in claimed {
        let lane = match &entry.item {
            OutboxItem::Alert(m) => Some(m.recipient.channel),
            _ => None,
        };
        match lanes.iter_mut().find(|(l, _)| *l == lane) {
            Some((_, entries)) => entries.push(entry),
            None => lanes.push((lane, vec![entry])),
        }
    }
    lanes
}

impl Monitor {
    /// Prunes the store's old records at `now`: audit records, dead letters
    /// and stopped instances' rows older than
    /// [`MonitorSettings::retention`](crate::monitor::MonitorSettings::retention)
    /// says (see [`EventStore::prune`](crate::store::EventStore::prune)).
    ///
    /// The tick calls it once an hour ([`RETENTION_EVERY`]); call it
    /// yourself to prune at other times. It only deletes, by indexed time,
    /// and any instance may call it; two at once remove each record once.
    ///
    /// # Errors
    ///
    /// The store's: nothing is pruned then, and the next call tries again.
    pub async fn prune_records(&self, now: DateTime<Utc>) -> Result<PruneReport> {
        let before = self.settings.retention.cutoffs(now);
        let report = self.parts.store.prune(&before).await?;
        info!(
            audit = report.audit,
            dead_letters = report.dead_letters,
            instances = report.instances,
            "old records pruned"
        );
        Ok(report)
    }
}

/// How often the tick prunes old records ([`Monitor::prune_records`]).
pub const RETENTION_EVERY: std::time::Duration = std::time::Duration::from_secs(3600);

impl Monitor {
    /// Prunes old records if the last prune was [`RETENTION_EVERY`] ago
    /// (or never, in this process); a failure is reported and tried again
    /// an hour later.
    pub(super) async fn prune_due(&self, now: DateTime<Utc>, report: &mut TickReport) {
        {
            let last = lock(&self.ticks.last_pruned);
            if last.is_some_and(|t| now < crate::duration::after(t, RETENTION_EVERY)) {
                return;
            }
        }
        *lock(&self.ticks.last_pruned) = Some(now);
        if let Err(e) = self.prune_records(now).await {
            warn!(error = %e, "pruning old records failed; tried again in an hour");
            report.errors.push(format!("pruning old records: {e}"));
        }
    }

    /// Claims the outbox entries that are due, batch by batch, and works
    /// each batch in lanes side by side.
    pub(super) async fn work_outbox(&self, now: DateTime<Utc>, report: &mut TickReport) {
        for _ in 0..10_000 {
            let claimed = match self
                .parts
                .store
                .as_ref()
                .claim_outbox(now, self.settings.lease, self.settings.batch)
                .await
            {
                Ok(c) => c,
                Err(e) => {
                    warn!(error = %e, "claiming the outbox failed");
                    report.errors.push(format!("claiming outbox: {e}"));
                    return;
                }
            };
            if claimed.is_empty() {
                return;
            }
            let lanes = into_lanes(claimed);
            let attempts = lanes
                .into_iter()
                .map(|(_, entries)| self.work_lane(entries, now));
            for part in run_bounded(OUTBOX_CONCURRENCY, attempts).await {
                report.deliveries += part.deliveries;
                report.delivery_failures += part.delivery_failures;
                report.failed_deliveries.extend(part.failed_deliveries);
                report.hook_calls += part.hook_calls;
                report.errors.extend(part.errors);
                report.receipts.extend(part.receipts);
            }
        }
    }

    /// Works one lane's entries one at a time and records each result;
    /// returns what it did.
    async fn work_lane(&self, entries: Vec<OutboxEntry>, now: DateTime<Utc>) -> TickReport {
        let mut part = TickReport::default();
        for entry in entries {
            let result = if self.sent_from_memory(&entry.item) {
                // The journal sent it while the store looked unreachable,
                // and the commit had landed after all.
                debug!(id = entry.id, "already delivered from memory");
                OutboxResult::Done
            } else {
                self.attempt(&entry, now, &mut part).await
            };
            if let Err(e) = self
                .parts
                .store
                .as_ref()
                .complete_outbox(entry.id, entry.lease_id, result)
                .await
            {
                warn!(id = entry.id, error = %e, "recording an outbox result failed; the entry will be retried");
                part.errors.push(format!("outbox {}: {e}", entry.id));
            }
        }
        part
    }

    pub(super) fn retry_at(
        &self,
        entry: &OutboxEntry,
        now: DateTime<Utc>,
        retry_after: Option<Duration>,
    ) -> DateTime<Utc> {
        let exp = entry.attempts.saturating_sub(1).min(20);
        let backoff = self
            .settings
            .retry_base
            .saturating_mul(1u32 << exp)
            .min(self.settings.retry_max);
        after(
            now,
            retry_after
                .unwrap_or(backoff)
                .max(backoff)
                .min(self.settings.retry_max),
        )
    }

    /// Makes one attempt at an outbox entry: delivers the alert, or calls
    /// the hook. Returns what the store is to record.
    pub(super) async fn attempt(
        &self,
        entry: &OutboxEntry,
        now: DateTime<Utc>,
        report: &mut TickReport,
    ) -> OutboxResult {
        match &entry.item {
            OutboxItem::Alert(message) => self.deliver_alert(entry, message, now, report).await,
            OutboxItem::EventStarted { tenant, event }
            | OutboxItem::EventEnded { tenant, event } => {
                self.call_hook(entry, tenant, event, now, report).await
            }
        }
    }

    async fn deliver_alert(
        &self,
        entry: &OutboxEntry,
        message: &AlertMessage,
        now: DateTime<Utc>,
        report: &mut TickReport,
    ) -> OutboxResult {
        // An alert decided just before an administrator suspended
        // notifications is not sent during the suspension; if the
        // trouble lasts, its end sends the current state at once.
        let suspended = self
            .runtime(&message.tenant)
            .is_ok_and(|rt| lock(&rt).cached.state.suspended_at(now));
        if suspended {
            info!(key = %message.idempotency_key, "alert withheld: notifications were suspended before it went out");
            return OutboxResult::GiveUp {
                error: "withheld: notifications were suspended before delivery".into(),
            };
        }
        if now >= message.link_expires_at {
            error!(key = %message.idempotency_key, "alert not delivered before its link expired; giving up");
            let error = format!(
                "not delivered before its link expired; last error: {}",
                entry.last_error.as_deref().unwrap_or("none")
            );
            return self.delivery_failed(entry, message, error, None, report);
        }
        let Some(notifier) = self.parts.notifiers.get(&message.recipient.channel) else {
            let error = format!("no {} notifier installed", message.recipient.channel);
            return self.delivery_failed(entry, message, error, None, report);
        };
        let span = info_span!("alert.deliver", key = %message.idempotency_key, channel = %message.recipient.channel);
        match notifier.as_ref().deliver(message).instrument(span).await {
            Ok(receipt) => {
                report.deliveries += 1;
                self.parts
                    .instruments
                    .delivery(&message.tenant, message.recipient.channel, true);
                info!(key = %message.idempotency_key, provider_id = ?receipt.provider_id, "alert delivered");
                report.receipts.push(DeliveryReceipt {
                    idempotency_key: message.idempotency_key.clone(),
                    tenant: message.tenant.clone(),
                    alert_id: message.alert_id,
                    recipient: message.recipient.id.clone(),
                    channel: message.recipient.channel,
                    delivered_at: now,
                    attempts: entry.attempts.max(1),
                    receipt,
                });
                OutboxResult::Done
            }
            Err(e) => {
                let retry_after = match &e {
                    Error::Notify { retry_after, .. } => *retry_after,
                    _ => None,
                };
                let retry = if e.is_retryable() {
                    warn!(key = %message.idempotency_key, error = %e, "delivery failed; will retry");
                    Some(self.retry_at(entry, now, retry_after))
                } else {
                    error!(key = %message.idempotency_key, error = %e, "delivery failed permanently");
                    None
                };
                self.delivery_failed(entry, message, e.to_string(), retry, report)
            }
        }
    }

    /// Counts and lists a failed delivery attempt; what the store records:
    /// a retry at `retry`, or (`None`) giving up.
    fn delivery_failed(
        &self,
        entry: &OutboxEntry,
        message: &AlertMessage,
        error: String,
        retry: Option<DateTime<Utc>>,
        report: &mut TickReport,
    ) -> OutboxResult {
        report.delivery_failures += 1;
        self.parts
            .instruments
            .delivery(&message.tenant, message.recipient.channel, false);
        report.failed_deliveries.push(DeliveryFailure {
            tenant: message.tenant.clone(),
            alert_id: message.alert_id,
            channel: message.recipient.channel,
            recipient: message.recipient.id.clone(),
            error: error.clone(),
            retry_at: retry,
            attempts: entry.attempts.max(1),
        });
        match retry {
            Some(at) => OutboxResult::Retry { at, error },
            None => OutboxResult::GiveUp { error },
        }
    }

    async fn call_hook(
        &self,
        entry: &OutboxEntry,
        tenant: &TenantId,
        event: &ContinuityEvent,
        now: DateTime<Utc>,
        report: &mut TickReport,
    ) -> OutboxResult {
        // In order: the store hands out a tenant's hook calls one at a
        // time (its order-per-key contract), so a failing start holds
        // back the end.
        let Some(hook) = &self.parts.hook else {
            return OutboxResult::Done;
        };
        let started = matches!(entry.item, OutboxItem::EventStarted { .. });
        let span = info_span!("hook", %tenant, event_id = event.id, started);
        let result = if started {
            hook.as_ref()
                .event_started(tenant, event)
                .instrument(span)
                .await
        } else {
            hook.as_ref()
                .event_ended(tenant, event)
                .instrument(span)
                .await
        };
        match result {
            Ok(()) => {
                report.hook_calls += 1;
                OutboxResult::Done
            }
            Err(e) if e.is_retryable() => {
                warn!(%tenant, event_id = event.id, error = %e, "continuity hook failed; will retry");
                let at = self.retry_at(entry, now, None);
                OutboxResult::Retry {
                    at,
                    error: e.to_string(),
                }
            }
            Err(e) => {
                report
                    .errors
                    .push(format!("{tenant}: hook for event {}: {e}", event.id));
                error!(%tenant, event_id = event.id, error = %e, "continuity hook failed permanently; giving up");
                OutboxResult::GiveUp {
                    error: e.to_string(),
                }
            }
        }
    }
}

//! The `Notifier` trait and the alert message every channel renders.

use std::fmt::{self, Write as _};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{
    config::{ChannelKind, Recipient},
    domain::{Direction, FailureKind, RemoteReply, TenantId},
    error::Result,
    machine::AlertKind,
    time_zone::TimeZone,
};

/// One condition as an alert reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConditionReport {
    /// The direction.
    pub direction: Direction,
    /// The condition name (`latency`, `failures`, `leaky`).
    pub name: String,
    /// The figures, as an administrator reads them.
    pub reading: String,
    /// Whether it raised with this alert.
    pub newly_raised: bool,
    /// Whether its policy had too little data for a verdict when the alert
    /// was decided (no deliveries, fewer than its minimum samples): the
    /// condition holds as it was, and nobody can tell whether the trouble lasts.
    #[serde(default)]
    pub no_data: bool,
}

/// How many failures of one kind a direction's window holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureCount {
    /// The kind.
    pub kind: FailureKind,
    /// How many, in the window.
    pub count: u64,
}

/// What is failing in one direction: the failures in its window by kind
/// and the remote's last reply, e.g. `outbound: 7 deferred, 2 lost probe;
/// last reply "421 4.3.2 Service not available"`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureSummary {
    /// The direction.
    pub direction: Direction,
    /// Failures by kind (kinds without failures left out), in
    /// [`FailureKind::ALL`] order.
    #[serde(default)]
    pub failures: Vec<FailureCount>,
    /// The remote's reply to the latest failure that carried one, if it
    /// was given inside the window; cleaned and at most
    /// [`RemoteReply::MAX_LEN`] bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_reply: Option<RemoteReply>,
}

impl FailureSummary {
    /// The counts as text, most frequent first: `7 deferred, 2 lost probe`.
    pub fn counts_text(&self) -> String {
        let mut counts = self.failures.clone();
        // Stable: ties keep the kinds' order.
        counts.sort_by_key(|c| std::cmp::Reverse(c.count));
        let mut s = String::new();
        for (i, c) in counts.iter().enumerate() {
            let _ = write!(
                s,
                "{}{} {}",
                if i == 0 { "" } else { ", " },
                c.count,
                c.kind.as_str()
            );
        }
        s
    }
}

impl fmt::Display for FailureSummary {
    /// `outbound: 7 deferred, 2 lost probe; last reply "421 4.3.2 Service not available"`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.direction)?;
        let counts = self.counts_text();
        if counts.is_empty() {
            f.write_str("no failures")?;
        } else {
            f.write_str(&counts)?;
        }
        if let Some(r) = &self.last_reply {
            write!(f, "; last reply \"{r}\"")?;
        }
        Ok(())
    }
}

/// A rendered alert for one recipient. Stored in the outbox before it is sent,
/// so a re-send after a crash is the same message with the same link and the
/// same [`idempotency_key`](Self::idempotency_key).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertMessage {
    /// The tenant.
    pub tenant: TenantId,
    /// The tenant's display name.
    pub tenant_name: String,
    /// Per-tenant alert id.
    pub alert_id: u64,
    /// Raised, reminder or resolved.
    pub kind: AlertKind,
    /// Who receives it.
    pub recipient: Recipient,
    /// `tenant/alert/recipient`: the same for every attempt, so receivers can drop duplicates.
    pub idempotency_key: String,
    /// When the alert was decided.
    pub created_at: DateTime<Utc>,
    /// The signed portal link for this recipient.
    pub link: String,
    /// When the link stops working.
    pub link_expires_at: DateTime<Utc>,
    /// The conditions holding (empty for a resolved notice).
    pub conditions: Vec<ConditionReport>,
    /// The running continuity event, described, if any.
    pub event: Option<String>,
    /// What is failing in the directions of [`conditions`](Self::conditions):
    /// failures by kind and the last remote reply (empty for a resolved
    /// notice, and in alerts stored before it existed).
    #[serde(default)]
    pub failing: Vec<FailureSummary>,
    /// The tenant's time zone: the times the message writes for people (the
    /// link's expiry, the event's start and end) are in it (UTC in alerts
    /// stored before it existed).
    #[serde(default)]
    pub time_zone: TimeZone,
}

impl AlertMessage {
    /// One line saying what and how bad, e.g.
    /// `ALERT acme: outbound p95 latency 42 min, threshold 30 min, 18 samples in the last 1 h`.
    pub fn headline(&self) -> String {
        let mut s = match self.kind {
            AlertKind::Raised => format!("ALERT {}: ", self.tenant_name),
            AlertKind::Reminder if self.no_data() => format!("NO DATA {}: ", self.tenant_name),
            AlertKind::Reminder => format!("STILL FAILING {}: ", self.tenant_name),
            AlertKind::Resolved => {
                format!("RESOLVED {}: mail flow is healthy again", self.tenant_name)
            }
        };
        if self.kind != AlertKind::Resolved {
            let first = self
                .conditions
                .iter()
                .find(|c| c.newly_raised)
                .or_else(|| self.conditions.first());
            match first {
                Some(c) => {
                    let _ = write!(s, "{} {}", c.direction, c.reading);
                }
                None => s.push_str("mail flow trouble"),
            }
            if self.conditions.len() > 1 {
                let _ = write!(s, " (+{} more)", self.conditions.len() - 1);
            }
        }
        s
    }

    /// Whether no condition of the alert had data for a verdict: a reminder
    /// then says "NO DATA", not "STILL FAILING", since silence proves
    /// neither trouble nor recovery.
    pub fn no_data(&self) -> bool {
        !self.conditions.is_empty() && self.conditions.iter().all(|c| c.no_data)
    }

    /// A plain-text body: headline, every condition, the event, the link and what it allows.
    pub fn text_body(&self) -> String {
        let mut s = self.headline();
        s.push_str("\n\n");
        for c in &self.conditions {
            let _ = writeln!(
                s,
                "- {} {}{}",
                c.direction,
                c.reading,
                if c.newly_raised { " (new)" } else { "" }
            );
        }
        if !self.failing.is_empty() {
            s.push_str("\nWhat is failing (in the window):\n");
            for f in &self.failing {
                let _ = writeln!(s, "- {f}");
            }
        }
        if let Some(e) = &self.event {
            let _ = writeln!(s, "Continuity event: {e}");
        }
        let _ = write!(
            s,
            "\nContinuity portal (start, extend or end a continuity event, or suspend alerts):\n{}\nThis link is for {} only and works until {}.\n",
            self.link,
            self.recipient.name.as_deref().unwrap_or(&self.recipient.id),
            self.time_zone.format(self.link_expires_at)
        );
        s
    }
}

/// What a channel says after accepting a message.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    /// The provider's message id, if it returned one.
    pub provider_id: Option<String>,
}

/// A delivery as the [`Monitor`](crate::Monitor) records it: which alert
/// reached which recipient, when, and what the channel answered. One per
/// alert and recipient, listed in [`TickReport::receipts`](crate::TickReport::receipts).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryReceipt {
    /// The alert's [`AlertMessage::idempotency_key`].
    pub idempotency_key: String,
    /// The tenant.
    pub tenant: TenantId,
    /// Per-tenant alert id.
    pub alert_id: u64,
    /// The recipient's id.
    pub recipient: String,
    /// The recipient's channel (the notifier that was called).
    pub channel: ChannelKind,
    /// The tick time at which the delivery succeeded.
    pub delivered_at: DateTime<Utc>,
    /// Outbox attempts it took, this one included.
    pub attempts: u32,
    /// What the notifier returned.
    pub receipt: Receipt,
}

/// Delivers one rendered alert to one recipient over one channel.
///
/// Return [`Error::Notify`](crate::Error::Notify) with `retryable` telling
/// whether trying again later can help (timeouts, rate limits, 5xx: yes;
/// an invalid number, bad credentials: no). Retryable failures stay in the
/// outbox for a later tick; permanent ones are given up and logged.
#[async_trait]
pub trait Notifier: Send + Sync + fmt::Debug {
    /// The channel this notifier serves.
    fn channel(&self) -> ChannelKind;

    /// Delivers `message` to `message.recipient`.
    async fn deliver(&self, message: &AlertMessage) -> Result<Receipt>;
}

#[async_trait]
impl<T: Notifier + ?Sized> Notifier for std::sync::Arc<T> {
    fn channel(&self) -> ChannelKind {
        (**self).channel()
    }
    async fn deliver(&self, message: &AlertMessage) -> Result<Receipt> {
        (**self).deliver(message).await
    }
}

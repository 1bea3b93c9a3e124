//! A probe whose dispatch is throttled records no failure of the direction;
//! a plain retryable dispatch error still does.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};
use continuity_core::{
    Direction, Error, ManualClock, Monitor, Result, TenantId,
    config::{ChannelKind, Recipient, TenantConfig},
    link::{LinkKey, LinkSigner},
    memory::InMemoryEventStore,
    probe::{MailProbe, ProbeRequest, ProbeStatus, ProbeTicket},
    testing::{RecordingNotifier, absolute_thresholds},
};

/// Fails every dispatch (throttled, or with a plain retryable error), or
/// throttles every check.
#[derive(Debug)]
struct ScriptedProbe {
    throttled: bool,
    retry_after: Option<Duration>,
    /// Dispatch succeeds; every check is throttled.
    check_throttled: bool,
    dispatches: AtomicU64,
    checks: AtomicU64,
}

#[async_trait]
impl MailProbe for ScriptedProbe {
    async fn dispatch(&self, _request: &ProbeRequest) -> Result<ProbeTicket> {
        self.dispatches.fetch_add(1, Ordering::Relaxed);
        if self.check_throttled {
            return Ok(ProbeTicket::new("t"));
        }
        Err(if self.throttled {
            Error::probe_throttled(
                self.retry_after,
                "The server cannot service this request right now.",
            )
            .with_code("ErrorServerBusy")
        } else {
            Error::probe_transient("connection refused").with_code("421")
        })
    }

    async fn check(&self, _request: &ProbeRequest, _ticket: &ProbeTicket) -> Result<ProbeStatus> {
        self.checks.fetch_add(1, Ordering::Relaxed);
        if self.check_throttled {
            return Err(Error::probe_throttled(None, "busy").with_code("ErrorServerBusy"));
        }
        Ok(ProbeStatus::Pending)
    }
}

struct Rig {
    clock: ManualClock,
    monitor: Monitor,
    sms: Arc<RecordingNotifier>,
    probe: Arc<ScriptedProbe>,
    acme: TenantId,
}

async fn rig(throttled: bool, retry_after: Option<Duration>) -> Rig {
    rig_with(throttled, retry_after, false).await
}

async fn rig_with(throttled: bool, retry_after: Option<Duration>, check_throttled: bool) -> Rig {
    let start: DateTime<Utc> = "2026-03-02T08:00:00Z".parse().unwrap();
    let clock = ManualClock::new(start);
    let sms = Arc::new(RecordingNotifier::new(ChannelKind::Sms));
    let probe = Arc::new(ScriptedProbe {
        throttled,
        retry_after,
        check_throttled,
        dispatches: AtomicU64::new(0),
        checks: AtomicU64::new(0),
    });
    let monitor = Monitor::builder()
        .clock(Arc::new(clock.clone()))
        .store(Arc::new(InMemoryEventStore::new()))
        .notifier(sms.clone())
        .link_signer(LinkSigner::new(LinkKey::new("k1", [42u8; 32]).unwrap()))
        .portal_url("https://continuity.example.net/c/")
        .probe(Direction::Outbound, probe.clone())
        .build()
        .unwrap();
    let acme = TenantId::new("acme").unwrap();
    monitor
        .register_tenant(absolute_thresholds(
            TenantConfig::new(
                acme.clone(),
                vec![Recipient::new("ops-sms", ChannelKind::Sms, "+15550100")],
            ),
            3,
        ))
        .await
        .unwrap();
    Rig {
        clock,
        monitor,
        sms,
        probe,
        acme,
    }
}

impl Rig {
    /// Ticks once a minute for `minutes`; returns the errors reported.
    async fn run(&self, minutes: i64) -> Vec<String> {
        let mut errors = Vec::new();
        for _ in 0..minutes {
            let now = self.clock.advance(TimeDelta::minutes(1));
            errors.extend(self.monitor.tick(now).await.unwrap().errors);
        }
        errors
    }

    fn breached(&self) -> bool {
        self.monitor
            .status(&self.acme)
            .unwrap()
            .readings
            .iter()
            .any(|(_, _, v)| v.breached)
    }
}

#[tokio::test]
async fn throttled_dispatches_are_reported_but_never_counted() {
    let r = rig(true, None).await;
    let errors = r.run(240).await;
    let dispatches = r.probe.dispatches.load(Ordering::Relaxed);
    assert!(dispatches >= 40, "probed on schedule: {dispatches}");
    assert_eq!(errors.len() as u64, dispatches, "{errors:?}");
    assert!(
        errors
            .iter()
            .all(|e| e.contains("throttled") && e.contains("ErrorServerBusy")),
        "{errors:?}"
    );
    assert!(!r.breached());
    assert!(r.sms.messages().is_empty(), "no alert for throttling");
}

#[tokio::test]
async fn a_plain_retryable_dispatch_error_still_counts() {
    let r = rig(false, None).await;
    r.run(60).await;
    assert!(r.breached());
    assert_eq!(r.sms.messages().len(), 1, "raised");
    assert!(r.sms.messages()[0].headline().contains("outbound"));
}

#[tokio::test]
async fn retry_after_postpones_the_next_round() {
    let on_schedule = rig(true, None).await;
    on_schedule.run(120).await;
    let later = rig(true, Some(Duration::from_secs(30 * 60))).await;
    later.run(120).await;
    let (a, b) = (
        on_schedule.probe.dispatches.load(Ordering::Relaxed),
        later.probe.dispatches.load(Ordering::Relaxed),
    );
    // One dispatch, then one every 30 minutes: 1, 31, 61, 91 (and 121 is past the end).
    assert_eq!(
        b, 4,
        "every 30 min instead of every round ({a} on schedule)"
    );
    assert!(a > b);
    assert!(later.sms.messages().is_empty());
}

#[tokio::test]
async fn a_throttled_check_is_checked_again_and_lost_at_the_deadline() {
    let r = rig_with(false, None, true).await;
    let mut lost = 0;
    let mut errors = Vec::new();
    for _ in 0..40 {
        let now = r.clock.advance(TimeDelta::minutes(1));
        let report = r.monitor.tick(now).await.unwrap();
        lost += report.probes_lost;
        errors.extend(report.errors);
    }
    let checks = r.probe.checks.load(Ordering::Relaxed);
    assert!(
        checks > r.probe.dispatches.load(Ordering::Relaxed),
        "checked again: {checks}"
    );
    assert!(errors.iter().any(|e| e.contains("throttled")), "{errors:?}");
    // Not found by its deadline (30 min): lost, as any probe whose check keeps failing.
    assert!(lost >= 1, "{lost}");
}

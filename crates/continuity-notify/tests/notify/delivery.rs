//! The delivery machinery around scripted channels, on a manual clock:
//! retries, their bounds, the breaker, fallbacks, duplicates, receipts.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
    time::Duration,
};

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};
use continuity_core::{
    Clock, Error, ManualClock,
    config::{ChannelKind, Recipient},
    machine::AlertKind,
    notify::{AlertMessage, Notifier, Receipt},
};
use continuity_notify::NotifyError;
use continuity_notify::delivery::{
    AdvanceClock, BreakerPolicy, BreakerState, Delivery, DeliveryRecord, ReceiptSink, RetryPolicy,
};

use super::common::{alert, t0};

#[derive(Clone, Copy, Debug)]
enum Outcome {
    Ok,
    Transient(Option<u64>),
    Permanent,
    /// The provider refuses the credentials, as a notifier reports it.
    Refused,
}

/// A channel that answers from a script (then `default`) and logs when it was called.
#[derive(Debug)]
struct Scripted {
    kind: ChannelKind,
    clock: ManualClock,
    script: Mutex<VecDeque<Outcome>>,
    default: Mutex<Outcome>,
    calls: Mutex<Vec<(DateTime<Utc>, String)>>,
}

impl Scripted {
    fn new(kind: ChannelKind, clock: &ManualClock, default: Outcome) -> Arc<Self> {
        Arc::new(Scripted {
            kind,
            clock: clock.clone(),
            script: Mutex::default(),
            default: Mutex::new(default),
            calls: Mutex::default(),
        })
    }
    fn then(&self, outcomes: &[Outcome]) {
        self.script.lock().unwrap().extend(outcomes.iter().copied());
    }
    fn set_default(&self, o: Outcome) {
        *self.default.lock().unwrap() = o;
    }
    fn calls(&self) -> Vec<(DateTime<Utc>, String)> {
        self.calls.lock().unwrap().clone()
    }
}

#[async_trait]
impl Notifier for Scripted {
    fn channel(&self) -> ChannelKind {
        self.kind
    }
    async fn deliver(&self, m: &AlertMessage) -> continuity_core::Result<Receipt> {
        self.calls
            .lock()
            .unwrap()
            .push((self.clock.now(), m.recipient.address.clone()));
        let o = self
            .script
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or(*self.default.lock().unwrap());
        let err = |retryable, retry_after: Option<u64>| Error::Notify {
            channel: self.kind.to_string(),
            retryable,
            retry_after: retry_after.map(Duration::from_secs),
            code: Some("scripted".into()),
            message: "scripted failure".into(),
            source: None,
        };
        match o {
            Outcome::Ok => Ok(Receipt {
                provider_id: Some(format!("{}-{}", self.kind, self.calls().len())),
            }),
            Outcome::Transient(after) => Err(err(true, after)),
            Outcome::Permanent => Err(err(false, None)),
            Outcome::Refused => Err(NotifyError::Auth {
                channel: self.kind,
                code: Some("20003".into()),
                message: "Authenticate".into(),
            }
            .into()),
        }
    }
}

#[derive(Debug, Default)]
struct Sink(Mutex<Vec<DeliveryRecord>>);

impl ReceiptSink for Sink {
    fn record(&self, r: &DeliveryRecord) {
        self.0.lock().unwrap().push(r.clone());
    }
}

fn sms_alert(id: u64) -> AlertMessage {
    alert(
        AlertKind::Raised,
        id,
        Recipient::new("ops", ChannelKind::Sms, "+15550100"),
        t0(),
    )
}

/// An SMS alert whose recipient has these fallbacks.
fn with_fallbacks(id: u64, fallbacks: &[(ChannelKind, &str)]) -> AlertMessage {
    let mut m = sms_alert(id);
    for (channel, address) in fallbacks {
        m.recipient = m.recipient.clone().with_fallback(*channel, *address);
    }
    m
}

fn builder(clock: &ManualClock) -> continuity_notify::delivery::DeliveryBuilder {
    Delivery::builder(Arc::new(clock.clone())).sleep(Arc::new(AdvanceClock(clock.clone())))
}

fn gaps(calls: &[(DateTime<Utc>, String)]) -> Vec<Duration> {
    calls
        .windows(2)
        .map(|w| (w[1].0 - w[0].0).to_std().unwrap())
        .collect()
}

#[tokio::test]
async fn transient_failures_are_retried_with_growing_jittered_delays() {
    let clock = ManualClock::new(t0());
    let sms = Scripted::new(ChannelKind::Sms, &clock, Outcome::Ok);
    sms.then(&[
        Outcome::Transient(None),
        Outcome::Transient(None),
        Outcome::Transient(None),
    ]);
    let policy = RetryPolicy {
        max_attempts: 4,
        base: Duration::from_secs(1),
        max_delay: Duration::from_secs(60),
        max_total: Duration::from_secs(60),
    };
    let d = builder(&clock)
        .channel(sms.clone())
        .retry(policy)
        .build()
        .unwrap();
    d.deliver(&sms_alert(1)).await.unwrap();
    let g = gaps(&sms.calls());
    assert_eq!(g.len(), 3, "{g:?}");
    for (i, gap) in g.iter().enumerate() {
        let step = Duration::from_secs(1 << i);
        assert!(
            *gap >= step / 2 && *gap <= step,
            "gap {i} {gap:?} outside [{:?}, {step:?}]",
            step / 2
        );
    }
    assert_eq!(d.records()[0].provider_calls, 4);
}

#[tokio::test]
async fn retries_are_bounded_in_count_and_in_total_time_and_honour_retry_after() {
    let clock = ManualClock::new(t0());
    let sms = Scripted::new(ChannelKind::Sms, &clock, Outcome::Transient(None));
    let d = builder(&clock)
        .channel(sms.clone())
        .retry(RetryPolicy {
            max_attempts: 3,
            ..RetryPolicy::default()
        })
        .breaker(BreakerPolicy {
            failure_threshold: 100,
            ..BreakerPolicy::default()
        })
        .build()
        .unwrap();
    let e = d.deliver(&sms_alert(1)).await.unwrap_err();
    assert!(
        e.is_retryable(),
        "goes back to the outbox as retryable: {e:?}"
    );
    assert_eq!(sms.calls().len(), 3, "bounded in count");

    // A provider asking for 30 s each time: the 20 s budget allows no retry.
    let clock = ManualClock::new(t0());
    let sms = Scripted::new(ChannelKind::Sms, &clock, Outcome::Transient(Some(30)));
    let d = builder(&clock).channel(sms.clone()).build().unwrap();
    let e = d.deliver(&sms_alert(1)).await.unwrap_err();
    assert_eq!(sms.calls().len(), 1, "bounded in total time");
    match e {
        Error::Notify { retry_after, .. } => assert_eq!(retry_after, Some(Duration::from_secs(30))),
        other => panic!("{other:?}"),
    }
    // Asking for 3 s: waited for, not less.
    let clock = ManualClock::new(t0());
    let sms = Scripted::new(ChannelKind::Sms, &clock, Outcome::Ok);
    sms.then(&[Outcome::Transient(Some(3))]);
    let d = builder(&clock).channel(sms.clone()).build().unwrap();
    d.deliver(&sms_alert(1)).await.unwrap();
    assert!(gaps(&sms.calls())[0] >= Duration::from_secs(3));
}

#[tokio::test]
async fn what_a_retry_cannot_fix_is_not_retried() {
    let clock = ManualClock::new(t0());
    let sms = Scripted::new(ChannelKind::Sms, &clock, Outcome::Permanent);
    let d = builder(&clock).channel(sms.clone()).build().unwrap();
    let e = d.deliver(&sms_alert(1)).await.unwrap_err();
    assert!(!e.is_retryable());
    assert_eq!(sms.calls().len(), 1);
    assert_eq!(
        d.breaker_state(ChannelKind::Sms),
        Some(BreakerState::Closed(0)),
        "a refused message says nothing about the provider"
    );
}

#[tokio::test]
async fn the_breaker_stops_calling_a_provider_that_is_down_then_tries_again() {
    let clock = ManualClock::new(t0());
    let sms = Scripted::new(ChannelKind::Sms, &clock, Outcome::Transient(None));
    let d = builder(&clock)
        .channel(sms.clone())
        .retry(RetryPolicy::none())
        .breaker(BreakerPolicy {
            failure_threshold: 3,
            open_for: Duration::from_secs(60),
        })
        .build()
        .unwrap();
    for i in 0..10 {
        let e = d.deliver(&sms_alert(i)).await.unwrap_err();
        assert!(e.is_retryable());
    }
    assert_eq!(sms.calls().len(), 3, "after 3 failures no further calls");
    assert!(matches!(
        d.breaker_state(ChannelKind::Sms),
        Some(BreakerState::Open(_))
    ));
    match d.deliver(&sms_alert(99)).await.unwrap_err() {
        Error::Notify {
            retryable,
            retry_after,
            code,
            ..
        } => {
            assert!(retryable);
            assert_eq!(code.as_deref(), Some("circuit-open"));
            assert_eq!(retry_after, Some(Duration::from_secs(60)));
        }
        other => panic!("{other:?}"),
    }
    clock.advance(TimeDelta::seconds(61));
    sms.set_default(Outcome::Ok);
    d.deliver(&sms_alert(100)).await.unwrap();
    assert_eq!(sms.calls().len(), 4, "one trial after the pause");
    assert_eq!(
        d.breaker_state(ChannelKind::Sms),
        Some(BreakerState::Closed(0))
    );
}

#[tokio::test]
async fn fallbacks_take_over_when_the_channel_fails_for_good() {
    let clock = ManualClock::new(t0());
    let sms = Scripted::new(ChannelKind::Sms, &clock, Outcome::Permanent);
    let email = Scripted::new(ChannelKind::Email, &clock, Outcome::Ok);
    let sink = Arc::new(Sink::default());
    let d = builder(&clock)
        .channel(sms.clone())
        .channel(email.clone())
        .receipt_sink(sink.clone())
        .build()
        .unwrap();
    let m = with_fallbacks(1, &[(ChannelKind::Email, "ops@acme-external.example")]);
    let receipt = d.deliver(&m).await.unwrap();
    assert_eq!(receipt.provider_id.as_deref(), Some("email-1"));
    assert_eq!(email.calls()[0].1, "ops@acme-external.example");
    let r = &sink.0.lock().unwrap()[0];
    assert!(r.fallback);
    assert_eq!(r.channel, ChannelKind::Email);
    assert_eq!(r.recipient, "ops");
    assert_eq!(r.idempotency_key, "acme/1/ops");
    assert_eq!(r.provider_calls, 2);
}

#[tokio::test]
async fn a_young_alert_waits_for_its_channel_an_old_one_falls_back() {
    let clock = ManualClock::new(t0());
    let sms = Scripted::new(ChannelKind::Sms, &clock, Outcome::Transient(None));
    let hook = Scripted::new(ChannelKind::Webhook, &clock, Outcome::Ok);
    let d = builder(&clock)
        .channel(sms.clone())
        .channel(hook.clone())
        .retry(RetryPolicy::none())
        .breaker(BreakerPolicy {
            failure_threshold: 100,
            ..BreakerPolicy::default()
        })
        .fallback_after(Duration::from_secs(600))
        .build()
        .unwrap();
    let m = with_fallbacks(1, &[(ChannelKind::Webhook, "https://hooks.example/ops")]);
    assert!(d.deliver(&m).await.unwrap_err().is_retryable());
    assert!(
        hook.calls().is_empty(),
        "a transient failure of a fresh alert is retried later on its own channel"
    );
    clock.advance(TimeDelta::minutes(10));
    d.deliver(&m).await.unwrap();
    assert_eq!(hook.calls().len(), 1);
    assert!(d.records()[0].fallback);
}

#[tokio::test]
async fn when_every_channel_fails_the_error_says_whether_to_retry() {
    let clock = ManualClock::new(t0());
    let sms = Scripted::new(ChannelKind::Sms, &clock, Outcome::Permanent);
    let email = Scripted::new(ChannelKind::Email, &clock, Outcome::Transient(None));
    let d = builder(&clock)
        .channel(sms)
        .channel(email)
        .retry(RetryPolicy::none())
        .build()
        .unwrap();
    let m = with_fallbacks(
        1,
        &[
            (ChannelKind::Email, "ops@acme-external.example"),
            (ChannelKind::Webhook, "https://hooks.example/ops"),
        ],
    );
    match d.deliver(&m).await.unwrap_err() {
        Error::Notify {
            retryable, message, ..
        } => {
            assert!(retryable, "the e-mail fallback may work later");
            assert!(
                message.contains("sms:") && message.contains("fallback email:"),
                "{message}"
            );
            assert!(
                message.contains("no webhook notifier is installed"),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn the_first_channels_own_error_is_kept_as_the_source() {
    use std::error::Error as _;

    let clock = ManualClock::new(t0());
    let sms = Scripted::new(ChannelKind::Sms, &clock, Outcome::Refused);
    let email = Scripted::new(ChannelKind::Email, &clock, Outcome::Transient(None));
    let d = builder(&clock)
        .channel(sms.clone())
        .channel(email)
        .retry(RetryPolicy::none())
        .build()
        .unwrap();
    // Alone: the notifier's error, as it reported it.
    let e = d.deliver(&sms_alert(1)).await.unwrap_err();
    assert!(
        matches!(e.source_as::<NotifyError>(), Some(NotifyError::Auth { .. })),
        "{e:?}"
    );
    // With every fallback failing too: the text names them all, the source
    // is still the first channel's.
    let m = with_fallbacks(2, &[(ChannelKind::Email, "ops@acme-external.example")]);
    let e = d.deliver(&m).await.unwrap_err();
    assert!(e.to_string().contains("fallback email:"), "{e}");
    let first = e
        .source()
        .and_then(|s| s.downcast_ref::<NotifyError>())
        .expect("the SMS notifier's error is the source");
    assert_eq!(
        (first.channel(), first.code()),
        (ChannelKind::Sms, Some("20003"))
    );
}

#[tokio::test]
async fn a_delivered_alert_is_not_sent_again() {
    let clock = ManualClock::new(t0());
    let sms = Scripted::new(ChannelKind::Sms, &clock, Outcome::Ok);
    let d = builder(&clock)
        .channel(sms.clone())
        .remember_for(Duration::from_secs(3600))
        .build()
        .unwrap();
    let handle = d.notifiers().pop().unwrap();
    let first = handle.deliver(&sms_alert(1)).await.unwrap();
    let again = handle.deliver(&sms_alert(1)).await.unwrap();
    assert_eq!(first, again);
    assert_eq!(sms.calls().len(), 1);
    handle.deliver(&sms_alert(2)).await.unwrap();
    assert_eq!(sms.calls().len(), 2, "another alert is another message");
    // Forgotten after remember_for.
    clock.advance(TimeDelta::hours(2));
    handle.deliver(&sms_alert(3)).await.unwrap();
    handle.deliver(&sms_alert(1)).await.unwrap();
    assert_eq!(sms.calls().len(), 4);
}

#[tokio::test]
async fn settings_from_configuration_set_every_policy() {
    let clock = ManualClock::new(t0());
    let sms = Scripted::new(ChannelKind::Sms, &clock, Outcome::Transient(None));
    let settings: continuity_notify::settings::DeliverySettings = toml::from_str(
        r#"
        retry = { max_attempts = 2, base = "3s", max_delay = "3s" }
        breaker = { failure_threshold = 50 }
        fallback_after = "1h"
        remember_for = "1h"
        remember_max = 1
        "#,
    )
    .unwrap();
    let d = builder(&clock)
        .channel(sms.clone())
        .settings(&settings)
        .build()
        .unwrap();
    let handle = d.notifiers().pop().unwrap();
    assert!(handle.deliver(&sms_alert(1)).await.is_err());
    // Two attempts, the retry after half to all of 3 s.
    let calls = sms.calls();
    assert_eq!(calls.len(), 2);
    assert!(gaps(&calls)[0] >= Duration::from_millis(1500));

    // Only one delivered key is remembered: the second alert pushes the
    // first out, which is then sent again.
    sms.set_default(Outcome::Ok);
    handle.deliver(&sms_alert(1)).await.unwrap();
    handle.deliver(&sms_alert(2)).await.unwrap();
    handle.deliver(&sms_alert(1)).await.unwrap();
    assert_eq!(sms.calls().len(), 5);
}

//! A channel that is down, driven through core's `Monitor` on a manual
//! clock: the other channel delivers at once, the failed alert stays in the
//! outbox and is delivered once the provider is back, and nothing is sent
//! twice.

use std::{sync::Arc, time::Duration};

use chrono::TimeDelta;
use continuity_core::{
    Direction, FailureKind, ManualClock, Monitor, Observation, TenantId, TickReport,
    config::{ChannelKind, Recipient, TenantConfig},
    link::{LinkKey, LinkSigner},
    memory::InMemoryEventStore,
    store::EventStore,
};
use continuity_notify::{
    delivery::{AdvanceClock, BreakerPolicy, BreakerState, Delivery, RetryPolicy},
    sms::{SmsSender, TwilioConfig, TwilioSms},
    smtp::{SmtpConfig, SmtpCredentials, SmtpNotifier},
};

use super::{
    common::t0,
    twilio::{self, Twilio},
    webhook::{start_tls, tls_notifier},
};
use continuity_test_support::smtp_peer::{PASSWORD, SmtpPeer, TestCert, USER, header};

const MINUTE: TimeDelta = TimeDelta::minutes(1);

async fn wait_for<T>(what: &str, mut ready: impl FnMut() -> Option<T>) -> T {
    for _ in 0..2000 {
        if let Some(v) = ready() {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_channel_that_is_down_holds_back_nothing_and_its_alert_follows_once_back() {
    let clock = ManualClock::new(t0());
    let provider = Twilio::default();
    let addr = provider.start().await;
    *provider.down.lock().unwrap() = true;
    *provider.held.lock().unwrap() = true;
    let cert = TestCert::generate();
    let relay = SmtpPeer::start("starttls", Some(&cert));
    let (hook_receiver, hook_base) = start_tls(&clock, &cert).await;

    let mut sms = TwilioConfig::new(
        twilio::SID,
        twilio::TOKEN,
        SmsSender::From("+15005550006".into()),
    );
    sms.base_url = format!("http://{addr}");
    sms.allow_plain_http = true;
    let mut smtp = SmtpConfig::new("127.0.0.1", "alerts@continuity.example.net");
    smtp.relay.port = Some(relay.port);
    smtp.relay.tls_domain = Some("localhost".into());
    smtp.relay.root_certificates_pem = vec![cert.ca_pem.clone()];
    smtp.relay.credentials = Some(SmtpCredentials::new(USER, PASSWORD));
    let delivery = Delivery::builder(Arc::new(clock.clone()))
        .channel(Arc::new(TwilioSms::new(sms).unwrap()))
        .channel(Arc::new(
            SmtpNotifier::new(smtp, Arc::new(clock.clone())).unwrap(),
        ))
        .channel(Arc::new(tls_notifier(&clock, &cert)))
        .sleep(Arc::new(AdvanceClock(clock.clone())))
        .retry(RetryPolicy {
            max_attempts: 2,
            ..RetryPolicy::default()
        })
        .breaker(BreakerPolicy {
            failure_threshold: 3,
            open_for: Duration::from_secs(120),
        })
        .build()
        .unwrap();

    let store = Arc::new(InMemoryEventStore::new());
    let mut builder = Monitor::builder()
        .clock(Arc::new(clock.clone()))
        .store(store.clone())
        .link_signer(LinkSigner::new(LinkKey::new("k1", [42u8; 32]).unwrap()))
        .portal_url("https://continuity.example.net/c/");
    for n in delivery.notifiers() {
        builder = builder.notifier(n);
    }
    let monitor = Arc::new(builder.build().unwrap());
    let acme = TenantId::new("acme").unwrap();
    let mut config = continuity_core::testing::absolute_thresholds(
        TenantConfig::new(
            acme.clone(),
            vec![
                Recipient::new("ops-sms", ChannelKind::Sms, "+15550100"),
                Recipient::new("ops-mail", ChannelKind::Email, "ops@acme-external.example"),
                Recipient::new("ops-hook", ChannelKind::Webhook, format!("{hook_base}/ok")),
            ],
        ),
        3,
    );
    config.display_name = Some("ACME Corp".into());
    monitor.register_tenant(config).await.unwrap();

    // Refused deliveries until the alert is raised; the tick that raises it
    // gets stuck on the SMS provider, which holds the request.
    let mut tick = None;
    for _ in 0..10 {
        let now = clock.advance(MINUTE);
        for _ in 0..3 {
            monitor
                .observe(Observation::failed(
                    acme.clone(),
                    Direction::Outbound,
                    now,
                    FailureKind::Refused,
                ))
                .unwrap();
        }
        let m = monitor.clone();
        let mut t = tokio::spawn(async move { m.tick(now).await.unwrap() });
        let stuck = wait_for("the tick to end or reach the SMS provider", || {
            if *provider.waiting.lock().unwrap() > 0 {
                Some(true)
            } else if t.is_finished() {
                Some(false)
            } else {
                None
            }
        })
        .await;
        if stuck {
            tick = Some(t);
            break;
        }
        let report = (&mut t).await.unwrap();
        assert_eq!(report.alerts, 0, "an alert must reach the SMS provider");
    }
    let tick = tick.expect("the alert was raised");

    // While the SMS request hangs, the e-mail and the webhook are delivered.
    let mail = tokio::task::spawn_blocking(move || {
        let m = relay.next_message(Duration::from_secs(20));
        (relay, m)
    });
    let (relay, mail) = mail.await.unwrap();
    assert!(
        header(&mail, "Subject")[0].contains("ALERT ACME Corp"),
        "{mail}"
    );
    assert_eq!(
        *provider.waiting.lock().unwrap(),
        1,
        "the SMS was still held when the e-mail arrived"
    );
    let hook_payload = wait_for("the webhook", || {
        hook_receiver.accepted.lock().unwrap().first().cloned()
    })
    .await;
    assert_eq!(hook_payload.id, "acme/0/ops-hook");
    assert_eq!(hook_payload.kind, "alert.raised");
    assert_eq!(
        *provider.waiting.lock().unwrap(),
        1,
        "the SMS is still held"
    );

    // The provider answers 503 (and again on the retry): back to the outbox.
    provider.unhold();
    let report: TickReport = tick.await.unwrap();
    assert_eq!(report.alerts, 1);
    assert_eq!(report.deliveries, 2);
    assert_eq!(report.delivery_failures, 1);
    let mut delivered: Vec<_> = report
        .receipts
        .iter()
        .map(|r| (r.channel, r.recipient.as_str()))
        .collect();
    delivered.sort_by_key(|d| d.1);
    assert_eq!(
        delivered,
        [
            (ChannelKind::Webhook, "ops-hook"),
            (ChannelKind::Email, "ops-mail")
        ]
    );
    assert_eq!(provider.requests(), 2, "first attempt and one retry");

    // Down for a while: the outbox retries, the breaker spares the provider.
    for _ in 0..8 {
        monitor.tick(clock.advance(MINUTE)).await.unwrap();
    }
    let calls_while_down = provider.requests();
    assert!(
        calls_while_down <= 5,
        "no retry storm: {calls_while_down} calls in 9 minutes"
    );
    assert!(provider.sent().is_empty());
    let pending = store.pending_outbox(10).await.unwrap();
    assert_eq!(pending.len(), 1, "the SMS is still queued: {pending:?}");

    // Back up: the same alert goes out, once.
    *provider.down.lock().unwrap() = false;
    let mut sms_receipt = None;
    for _ in 0..30 {
        let report = monitor.tick(clock.advance(MINUTE)).await.unwrap();
        if let Some(r) = report
            .receipts
            .into_iter()
            .find(|r| r.channel == ChannelKind::Sms)
        {
            sms_receipt = Some(r);
            break;
        }
    }
    let sms_receipt = sms_receipt.expect("the SMS was delivered once the provider was back");
    assert_eq!(sms_receipt.recipient, "ops-sms");
    assert!(sms_receipt.attempts > 1, "{sms_receipt:?}");
    assert_eq!(
        sms_receipt.receipt.provider_id.as_deref(),
        Some("SM00000000000000000000000000000001")
    );
    assert_eq!(
        delivery.breaker_state(ChannelKind::Sms),
        Some(BreakerState::Closed(0))
    );

    for _ in 0..10 {
        monitor.tick(clock.advance(MINUTE)).await.unwrap();
    }
    let sent = provider.sent();
    assert_eq!(sent.len(), 1, "sent once: {sent:?}");
    assert!(
        sent[0].form["Body"].starts_with("ALERT ACME Corp"),
        "{}",
        sent[0].form["Body"]
    );
    assert_eq!(
        sent[0].idempotency_key.as_deref(),
        Some(sms_receipt.idempotency_key.as_str())
    );
    assert!(relay.drain().is_empty(), "the e-mail was not sent again");
    assert_eq!(hook_receiver.accepted.lock().unwrap().len(), 1);
    assert_eq!(
        hook_receiver.seen_signatures.lock().unwrap().len(),
        1,
        "the webhook was called once"
    );
    assert!(store.pending_outbox(10).await.unwrap().is_empty());
}

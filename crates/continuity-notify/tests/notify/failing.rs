//! What is failing, end to end: failures with the remote's replies fed to a
//! `Monitor` on the manual clock, and the raised alert's SMS, e-mail and
//! webhook payload naming the kinds with their counts and the last reply.

use chrono::TimeDelta;
use continuity_core::{
    Clock, Direction, FailureKind, Observation,
    machine::AlertKind,
    notify::AlertMessage,
    testing::{EngineRig, RigOptions},
    time_zone::TimeZone,
};
use continuity_notify::{
    render::{DefaultEmailTemplate, EmailTemplate, SmsRenderer},
    webhook::WebhookPayload,
};

const REPLY: &str = "421 4.3.2 Service not available";

/// The first raised alert after 7 deferrals and 2 refusals of outbound mail
/// (the refusals answered with `reply` last), and the e-mail recipient's copy.
async fn raised_alert(reply: &str) -> (AlertMessage, AlertMessage) {
    let r = EngineRig::start(RigOptions {
        probes: false,
        email: true,
        display_name: Some("ACME".into()),
    })
    .await;
    let now = r.clock.now();
    for i in 0..7 {
        let at = now - TimeDelta::minutes(9 - i);
        r.monitor
            .observe(
                Observation::failed(
                    r.tenant.clone(),
                    Direction::Outbound,
                    at,
                    FailureKind::Deferred,
                )
                .with_reply("451 4.4.1 try again later"),
            )
            .unwrap();
    }
    for _ in 0..2 {
        r.monitor
            .observe(
                Observation::failed(
                    r.tenant.clone(),
                    Direction::Outbound,
                    now,
                    FailureKind::Refused,
                )
                .with_reply(reply),
            )
            .unwrap();
    }
    r.run(5).await;
    let sms = r.sms.messages();
    let email = r.email.messages();
    let sms = sms
        .into_iter()
        .find(|m| m.kind == AlertKind::Raised)
        .expect("an alert by SMS");
    let email = email
        .into_iter()
        .find(|m| m.kind == AlertKind::Raised)
        .expect("an alert by e-mail");
    (sms, email)
}

#[tokio::test]
async fn the_alert_names_the_failure_kinds_with_counts_and_the_last_reply() {
    let (sms, email) = raised_alert(REPLY).await;
    let f = &email.failing;
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0].direction, Direction::Outbound);
    assert_eq!(f[0].counts_text(), "7 deferred, 2 refused");
    assert_eq!(f[0].last_reply.as_ref().map(|r| r.as_str()), Some(REPLY));

    // The portal link leaves no room in one segment: the headline alone.
    let text = SmsRenderer::default().render(&sms);
    assert_eq!(text, SmsRenderer::default().fit(&sms.headline(), &sms.link));
    // With a shorter link the breakdown and the reply follow, as room allows.
    let mut short = sms.clone();
    short.link = "https://c.example/c/AbC".into();
    let text = SmsRenderer::default().render(&short);
    assert_eq!(text.segments, 1, "{text:?}");
    let mut lines = text.body.lines();
    let summary = lines.next().unwrap();
    assert!(summary.starts_with(&sms.headline()), "{summary}");
    assert!(
        summary.contains("; 7 deferred, 2 refused; reply 421 4.3.2"),
        "{summary}"
    );
    assert_eq!(lines.next(), Some(short.link.as_str()));

    let mail = DefaultEmailTemplate::default().render(&email);
    assert!(
        mail.text.contains(&format!(
            "- outbound: 7 deferred, 2 refused; last reply \"{REPLY}\""
        )),
        "{}",
        mail.text
    );
    assert!(
        mail.html.contains(&format!(
            "<li>outbound: 7 deferred, 2 refused; last reply <code>{REPLY}</code></li>"
        )),
        "{}",
        mail.html
    );

    let json: serde_json::Value = serde_json::to_value(WebhookPayload::new(&email)).unwrap();
    let failing = &json["failing"][0];
    assert_eq!(failing["direction"], "outbound");
    assert_eq!(failing["last_reply"], REPLY);
    assert_eq!(
        failing["failures"],
        serde_json::json!([{"kind": "refused", "count": 2}, {"kind": "deferred", "count": 7}])
    );
}

#[tokio::test]
async fn an_overlong_reply_with_control_characters_is_cut_and_cleaned() {
    let evil = format!(
        "550\r\n5.7.1 <script>alert(1)</script>\u{1b}[31m {}",
        "x".repeat(500)
    );
    let (sms, email) = raised_alert(&evil).await;
    let reply = email.failing[0].last_reply.as_ref().unwrap().as_str();
    assert!(reply.len() <= 120, "{} bytes", reply.len());
    assert!(
        reply.starts_with("550 5.7.1 <script>alert(1)</script> [31m x"),
        "{reply}"
    );
    assert!(reply.ends_with("..."), "{reply}");
    assert!(!reply.chars().any(char::is_control), "{reply:?}");

    let mail = DefaultEmailTemplate::default().render(&email);
    assert!(!mail.html.contains("<script>"), "{}", mail.html);
    assert!(mail.html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    // The SMS keeps one segment: the reply is cut to the room left.
    let mut short = sms.clone();
    short.link = "https://c.example/c/AbC".into();
    let text = SmsRenderer::default().render(&short);
    assert_eq!(text.segments, 1, "{text:?}");
    assert!(text.body.contains("; reply 550 5.7.1"), "{}", text.body);
    assert!(
        text.body.ends_with("...\nhttps://c.example/c/AbC"),
        "{}",
        text.body
    );
}

#[test]
fn a_payload_or_alert_stored_without_the_breakdown_still_reads() {
    let json = serde_json::json!({
        "tenant": "acme", "tenant_name": "ACME", "alert_id": 1, "kind": "raised",
        "recipient": {"id": "ops", "channel": "sms", "address": "+15550100"},
        "idempotency_key": "acme/1/ops", "created_at": "2026-03-02T08:00:00Z",
        "link": "https://c.example/c/x", "link_expires_at": "2026-03-02T08:00:00Z",
        "conditions": [], "event": null
    });
    let m: AlertMessage = serde_json::from_value(json).unwrap();
    assert!(m.failing.is_empty());
    // Stored before alerts knew the tenant's zone: UTC, as they were written.
    assert_eq!(m.time_zone, TimeZone::UTC);
    assert!(m.text_body().contains("works until 2026-03-02 08:00 UTC."));
}

#[test]
fn the_webhook_names_the_zone_its_texts_are_written_in() {
    let json = serde_json::json!({
        "tenant": "acme", "tenant_name": "ACME", "alert_id": 1, "kind": "raised",
        "recipient": {"id": "ops", "channel": "webhook", "address": "https://hooks.example/x"},
        "idempotency_key": "acme/1/ops", "created_at": "2026-03-02T08:00:00Z",
        "link": "https://c.example/c/x", "link_expires_at": "2026-03-03T08:00:00Z",
        "conditions": [], "event": "active since 2026-03-02 09:00 CET until 2026-03-02 13:00 CET",
        "time_zone": "Europe/Berlin"
    });
    let m: AlertMessage = serde_json::from_value(json).unwrap();
    let payload = serde_json::to_value(WebhookPayload::new(&m)).unwrap();
    assert_eq!(payload["time_zone"], "Europe/Berlin");
    // The RFC 3339 fields stay UTC.
    assert_eq!(payload["link_expires_at"], "2026-03-03T08:00:00Z");
    // A payload of an older version reads as UTC.
    let mut old = payload.clone();
    old.as_object_mut().unwrap().remove("time_zone");
    let read: WebhookPayload = serde_json::from_value(old).unwrap();
    assert_eq!(read.time_zone, TimeZone::UTC);
}

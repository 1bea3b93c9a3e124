//! The Twilio-compatible SMS notifier against the local provider.

use std::time::Duration;

use continuity_core::{Error, machine::AlertKind, notify::Notifier};
use continuity_notify::{
    NotifyError,
    render::SmsEncoding,
    sms::{SmsSender, TwilioConfig, TwilioSms},
};

use super::{
    common::{LINK, alert, sms_recipient, t0},
    twilio::{self, Twilio},
};

fn config(base: &str) -> TwilioConfig {
    let mut c = TwilioConfig::new(
        twilio::SID,
        twilio::TOKEN,
        SmsSender::From("+15005550006".into()),
    );
    c.base_url = base.into();
    c.allow_plain_http = true;
    c
}

#[tokio::test]
async fn sends_the_fitted_text_with_authentication_and_form_fields() {
    let server = Twilio::default();
    let addr = server.start().await;
    let sms = TwilioSms::new(config(&format!("http://{addr}"))).unwrap();
    let message = alert(AlertKind::Raised, 7, sms_recipient("+15550100"), t0());
    let text = sms.render(&message);
    assert_eq!(text.encoding, SmsEncoding::Gsm7);
    assert_eq!(text.segments, 1, "{text:?}");

    let receipt = sms.deliver(&message).await.unwrap();
    assert_eq!(
        receipt.provider_id.as_deref(),
        Some("SM00000000000000000000000000000001")
    );
    let sent = server.sent();
    assert_eq!(sent.len(), 1);
    let form = &sent[0].form;
    assert_eq!(form["To"], "+15550100");
    assert_eq!(form["From"], "+15005550006");
    assert!(!form.contains_key("MessagingServiceSid"));
    assert_eq!(form["Body"], text.body);
    assert!(
        form["Body"].starts_with("ALERT ACME <Corp>: outbound p95 latency"),
        "{}",
        form["Body"]
    );
    assert!(
        form["Body"].ends_with(&format!("\n{LINK}")),
        "{}",
        form["Body"]
    );
    assert!(form["Body"].chars().count() <= 160);
    assert_eq!(sent[0].idempotency_key.as_deref(), Some("acme/7/ops-sms"));
}

#[tokio::test]
async fn each_kind_says_which_it_is_and_a_messaging_service_can_send() {
    let server = Twilio::default();
    let addr = server.start().await;
    let mut c = config(&format!("http://{addr}"));
    c.sender = SmsSender::MessagingService("MG0123456789abcdef0123456789abcdef".into());
    let sms = TwilioSms::new(c).unwrap();
    for (kind, word) in [
        (AlertKind::Raised, "ALERT"),
        (AlertKind::Reminder, "STILL FAILING"),
        (AlertKind::Resolved, "RESOLVED"),
    ] {
        sms.deliver(&alert(kind, 1, sms_recipient("+15550100"), t0()))
            .await
            .unwrap();
        let last = server.sent().pop().unwrap();
        assert!(
            last.form["Body"].starts_with(word),
            "{kind:?}: {}",
            last.form["Body"]
        );
        assert_eq!(
            last.form["MessagingServiceSid"],
            "MG0123456789abcdef0123456789abcdef"
        );
        assert!(!last.form.contains_key("From"));
    }
}

async fn send(
    sms: &TwilioSms,
    number: &str,
) -> Result<continuity_core::notify::Receipt, NotifyError> {
    sms.send(&alert(AlertKind::Raised, 1, sms_recipient(number), t0()))
        .await
}

fn notify_parts(e: Error) -> (bool, Option<Duration>, Option<String>, String) {
    match e {
        Error::Notify {
            retryable,
            retry_after,
            code,
            message,
            ..
        } => (retryable, retry_after, code, message),
        other => panic!("expected Error::Notify, got {other:?}"),
    }
}

#[tokio::test]
async fn provider_errors_become_typed_errors_that_say_whether_to_retry() {
    let server = Twilio::default();
    let addr = server.start().await;
    let sms = TwilioSms::new(config(&format!("http://{addr}"))).unwrap();

    let e = send(&sms, twilio::INVALID_NUMBER).await.unwrap_err();
    assert!(matches!(e, NotifyError::Rejected { .. }), "{e:?}");
    let (retryable, _, code, message) = notify_parts(e.into());
    assert!(!retryable);
    assert_eq!(code.as_deref(), Some("21211"));
    assert!(message.contains("not a valid phone number"), "{message}");
    assert!(
        message.contains("twilio.com/docs/errors/21211"),
        "{message}"
    );

    let e = send(&sms, twilio::NOT_MOBILE).await.unwrap_err();
    assert!(!e.is_retryable());
    assert_eq!(e.code(), Some("21614"));

    let e = send(&sms, twilio::RATE_LIMITED).await.unwrap_err();
    assert!(matches!(e, NotifyError::RateLimited { .. }), "{e:?}");
    let (retryable, retry_after, code, _) = notify_parts(e.into());
    assert!(retryable);
    assert_eq!(retry_after, Some(Duration::from_secs(7)));
    assert_eq!(code.as_deref(), Some("20429"));

    let e = send(&sms, twilio::BROKEN).await.unwrap_err();
    assert!(matches!(e, NotifyError::Unavailable { .. }), "{e:?}");
    assert_eq!(e.code(), Some("500"));

    let mut c = config(&format!("http://{addr}"));
    c.auth_token = "wrong-token".to_string().into();
    let bad = TwilioSms::new(c).unwrap();
    let e = send(&bad, "+15550100").await.unwrap_err();
    assert!(matches!(e, NotifyError::Auth { .. }), "{e:?}");
    assert_eq!(e.code(), Some("20003"));
    assert!(!e.is_retryable());
    assert!(!e.to_string().contains("wrong-token"));
    assert!(server.sent().is_empty());
}

#[tokio::test]
async fn a_provider_that_is_not_there_is_retryable() {
    // Bind and drop a listener: nothing serves on that port now.
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let sms = TwilioSms::new(config(&format!("http://{addr}"))).unwrap();
    let e = send(&sms, "+15550100").await.unwrap_err();
    assert!(matches!(e, NotifyError::Unavailable { .. }), "{e:?}");
    assert!(e.is_retryable());
}

#[tokio::test]
async fn the_connection_check_fetches_the_account_and_refused_credentials_are_permanent() {
    let server = Twilio::default();
    let addr = server.start().await;
    let base = format!("http://{addr}");
    let sms = TwilioSms::new(config(&base)).unwrap();
    let account = sms.check_connection().await.unwrap();
    assert_eq!(account.sid, twilio::SID);
    assert_eq!(account.status.as_deref(), Some("active"));

    let mut wrong = config(&base);
    wrong.auth_token = "not-the-token".to_string().into();
    let sms = TwilioSms::new(wrong).unwrap();
    let e = sms.check_connection().await.unwrap_err();
    assert!(matches!(e, NotifyError::Auth { .. }), "{e:?}");
    assert_eq!(e.code(), Some("20003"));
    assert!(!Error::from(e).is_retryable());

    *server.suspended.lock().unwrap() = true;
    let sms = TwilioSms::new(config(&base)).unwrap();
    let e = sms.check_connection().await.unwrap_err();
    assert!(matches!(e, NotifyError::Auth { .. }), "{e:?}");
    assert!(e.to_string().contains("is suspended"), "{e}");
    assert!(server.sent().is_empty(), "the check sends no message");

    // Nothing listening: worth trying again later.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let sms = TwilioSms::new(config(&format!("http://127.0.0.1:{port}"))).unwrap();
    let e = sms.check_connection().await.unwrap_err();
    assert!(e.is_retryable(), "{e:?}");
}

//! The SMTP notifier against a real SMTP server (aiosmtpd) on loopback, with
//! STARTTLS or implicit TLS on a test certificate and AUTH.

use std::{sync::Arc, time::Duration};

use continuity_core::{
    ManualClock,
    config::{ChannelKind, Recipient},
    machine::AlertKind,
    notify::{AlertMessage, Notifier},
};
use continuity_notify::{
    NotifyError,
    render::{EmailContent, EmailTemplate},
    smtp::{
        SmtpConfig, SmtpConnections, SmtpCredentials, SmtpNotifier, SmtpProblemKind, SmtpSecurity,
    },
};

use super::common::{LINK, alert, t0};
use continuity_test_support::smtp_peer::{PASSWORD, SmtpPeer, TestCert, USER, header};

const WAIT: Duration = Duration::from_secs(20);

fn config(peer: &SmtpPeer, cert: &TestCert, security: SmtpSecurity) -> SmtpConfig {
    let mut c = SmtpConfig::new(
        "127.0.0.1",
        "Continuity Alerts <alerts@continuity.example.net>",
    );
    c.relay.port = Some(peer.port);
    c.relay.security = security;
    c.relay.tls_domain = Some("localhost".into());
    c.relay.root_certificates_pem = vec![cert.ca_pem.clone()];
    c.relay.credentials = Some(SmtpCredentials::new(USER, PASSWORD));
    c.relay.timeout = Duration::from_secs(10);
    c
}

fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(t0()))
}

fn mail_recipient() -> Recipient {
    let mut r = Recipient::new("ops-mail", ChannelKind::Email, "ops@acme-external.example");
    r.name = Some("Olga Ops".into());
    r
}

fn raised() -> AlertMessage {
    alert(AlertKind::Raised, 3, mail_recipient(), t0())
}

#[tokio::test]
async fn starttls_auth_several_recipients_and_both_bodies() {
    let cert = TestCert::generate();
    let peer = SmtpPeer::start("starttls", Some(&cert));
    let mut c = config(&peer, &cert, SmtpSecurity::StartTls);
    c.cc = vec!["noc@operator.example".into()];
    c.bcc = vec!["archive@operator.example".into()];
    let smtp = SmtpNotifier::new(c, clock()).unwrap();
    let message = raised();

    let receipt = smtp.deliver(&message).await.unwrap();
    assert!(
        receipt.provider_id.as_deref().unwrap().starts_with("250"),
        "{receipt:?}"
    );
    let got = peer.next_message(WAIT);

    assert_eq!(got["tls"], true);
    assert_eq!(got["authenticated"], true);
    assert_eq!(got["login"], USER);
    assert_eq!(got["mail_from"], "alerts@continuity.example.net");
    assert_eq!(
        got["rcpt_tos"],
        serde_json::json!([
            "ops@acme-external.example",
            "noc@operator.example",
            "archive@operator.example"
        ])
    );
    assert_eq!(got["content_type"], "multipart/alternative");
    assert_eq!(
        header(&got, "From"),
        ["Continuity Alerts <alerts@continuity.example.net>"]
    );
    assert_eq!(header(&got, "To"), ["Olga Ops <ops@acme-external.example>"]);
    assert_eq!(header(&got, "Cc"), ["noc@operator.example"]);
    assert!(header(&got, "Bcc").is_empty(), "Bcc must not show");
    assert_eq!(header(&got, "Auto-Submitted"), ["auto-generated"]);
    assert_eq!(header(&got, "X-Auto-Response-Suppress"), ["All"]);
    assert_eq!(
        header(&got, "Message-ID"),
        [smtp.message_id(&message).as_str()]
    );
    assert_eq!(header(&got, "Date"), ["Mon, 02 Mar 2026 08:00:00 +0000"]);
    let subject = header(&got, "Subject")[0];
    assert_eq!(
        subject,
        "[continuity] ALERT ACME <Corp>: outbound p95 latency 42 min, threshold 30 min, 18 samples in the last 1 h (+1 more)"
    );

    let text = got["text"].as_str().unwrap();
    assert!(text.starts_with("New alert:"), "{text}");
    assert!(text.contains(LINK), "{text}");
    assert!(
        text.contains("- inbound 5 failed deliveries, threshold 3, in the last 1 h"),
        "{text}"
    );
    assert!(
        text.contains("start, extend or end a continuity event, or suspend alerts"),
        "{text}"
    );
    assert!(text.contains("works until 2026-03-03 08:00 UTC"), "{text}");
    let html = got["html"].as_str().unwrap();
    assert!(html.contains(&format!("<a href=\"{LINK}\">")), "{html}");
    assert!(html.contains("ACME &lt;Corp&gt;"), "{html}");
    assert!(!html.contains("ACME <Corp>"), "{html}");
    assert!(html.contains("<li>outbound p95 latency 42 min, threshold 30 min, 18 samples in the last 1 h (new)</li>"), "{html}");
    assert!(html.contains("suspend alerts"), "{html}");

    // A retry of the same alert and recipient carries the same Message-ID;
    // another recipient's gets its own.
    smtp.deliver(&message).await.unwrap();
    let again = peer.next_message(WAIT);
    assert_eq!(header(&again, "Message-ID"), header(&got, "Message-ID"));
    let mut other = message.clone();
    other.idempotency_key = "acme/3/ops-mail-2".into();
    assert_ne!(smtp.message_id(&other), smtp.message_id(&message));
}

#[tokio::test]
async fn each_kind_says_which_it_is() {
    let cert = TestCert::generate();
    let peer = SmtpPeer::start("starttls", Some(&cert));
    let smtp = SmtpNotifier::new(config(&peer, &cert, SmtpSecurity::StartTls), clock()).unwrap();
    for (kind, subject, text) in [
        (
            AlertKind::Reminder,
            "[continuity] STILL FAILING ACME <Corp>: outbound",
            "Reminder:",
        ),
        (
            AlertKind::Resolved,
            "[continuity] RESOLVED ACME <Corp>: mail flow is healthy again",
            "Resolved:",
        ),
    ] {
        smtp.deliver(&alert(kind, 4, mail_recipient(), t0()))
            .await
            .unwrap();
        let got = peer.next_message(WAIT);
        assert!(
            header(&got, "Subject")[0].starts_with(subject),
            "{kind:?}: {:?}",
            header(&got, "Subject")
        );
        assert!(got["text"].as_str().unwrap().starts_with(text), "{kind:?}");
    }
}

#[tokio::test]
async fn implicit_tls_and_one_connection_per_message() {
    let cert = TestCert::generate();
    let peer = SmtpPeer::start("implicit", Some(&cert));
    let mut c = config(&peer, &cert, SmtpSecurity::ImplicitTls);
    c.connections = SmtpConnections::PerMessage;
    let smtp = SmtpNotifier::new(c, clock()).unwrap();
    for _ in 0..2 {
        smtp.deliver(&raised()).await.unwrap();
        let got = peer.next_message(WAIT);
        assert_eq!(got["tls"], true);
        assert_eq!(got["login"], USER);
    }
    let cert2 = TestCert::generate();
    let peer2 = SmtpPeer::start("starttls", Some(&cert2));
    let mut c = config(&peer2, &cert2, SmtpSecurity::StartTls);
    c.connections = SmtpConnections::PerMessage;
    let smtp = SmtpNotifier::new(c, clock()).unwrap();
    smtp.deliver(&raised()).await.unwrap();
    let got = peer2.next_message(WAIT);
    assert_eq!(got["tls"], true);
    assert_eq!(got["authenticated"], true);
}

#[tokio::test]
async fn refused_credentials_are_not_retried_and_an_untrusted_certificate_is_refused() {
    let cert = TestCert::generate();
    let peer = SmtpPeer::start("starttls", Some(&cert));
    let mut c = config(&peer, &cert, SmtpSecurity::StartTls);
    c.relay.credentials = Some(SmtpCredentials::new(USER, "not-the-password"));
    let smtp = SmtpNotifier::new(c, clock()).unwrap();
    let e = smtp.send(&raised()).await.unwrap_err();
    assert!(matches!(e, NotifyError::Auth { .. }), "{e:?}");
    assert_eq!(e.code(), Some("535"));
    assert!(!e.is_retryable());
    assert!(!format!("{e} {e:?} {smtp:?}").contains("not-the-password"));

    // Without the test CA the server's certificate is not trusted.
    let mut c = config(&peer, &cert, SmtpSecurity::StartTls);
    c.relay.root_certificates_pem.clear();
    let smtp = SmtpNotifier::new(c, clock()).unwrap();
    let e = smtp.send(&raised()).await.unwrap_err();
    assert!(matches!(e, NotifyError::Unavailable { .. }), "{e:?}");
    assert!(peer.drain().is_empty(), "nothing may be delivered");
}

#[tokio::test]
async fn plain_smtp_only_when_explicitly_allowed() {
    let peer = SmtpPeer::start("plain", None);
    let mut c = SmtpConfig::new("127.0.0.1", "alerts@continuity.example.net");
    c.relay.port = Some(peer.port);
    c.relay.security = SmtpSecurity::InsecurePlaintext;
    match SmtpNotifier::new(c.clone(), clock()).unwrap_err() {
        NotifyError::Config { field, .. } => assert_eq!(field, "security"),
        e => panic!("{e:?}"),
    }
    c.relay.allow_insecure_plaintext = true;
    let smtp = SmtpNotifier::new(c, clock()).unwrap();
    smtp.deliver(&raised()).await.unwrap();
    let got = peer.next_message(WAIT);
    assert_eq!(got["tls"], false);
    assert_eq!(
        got["rcpt_tos"],
        serde_json::json!(["ops@acme-external.example"])
    );

    // STARTTLS to a server that does not offer it fails instead of falling
    // back to plain, and for good: no retry makes the relay offer it.
    let mut c = SmtpConfig::new("127.0.0.1", "alerts@continuity.example.net");
    c.relay.port = Some(peer.port);
    let smtp = SmtpNotifier::new(c, clock()).unwrap();
    let e = smtp.send(&raised()).await.unwrap_err();
    match &e {
        NotifyError::Config { field, reason, .. } => {
            assert_eq!(field, "security");
            assert!(reason.contains("does not offer STARTTLS"), "{reason}");
        }
        e => panic!("{e:?}"),
    }
    assert!(!continuity_core::Error::from(e).is_retryable());
    let problem = smtp.check_connection().await.unwrap_err();
    assert_eq!(
        problem.kind(),
        SmtpProblemKind::StartTlsNotOffered,
        "{problem:?}"
    );
    assert!(peer.drain().is_empty());
}

#[tokio::test]
async fn the_connection_check_goes_through_tls_and_auth_without_sending() {
    let cert = TestCert::generate();
    let peer = SmtpPeer::start("starttls", Some(&cert));
    let smtp = SmtpNotifier::new(config(&peer, &cert, SmtpSecurity::StartTls), clock()).unwrap();
    let info = smtp.check_connection().await.unwrap();
    assert!(info.encrypted && info.authenticated, "{info:?}");
    assert!(peer.try_next_message(Duration::from_millis(300)).is_none());

    let mut c = config(&peer, &cert, SmtpSecurity::StartTls);
    c.relay.credentials = Some(SmtpCredentials::new(USER, "not-the-password"));
    let smtp = SmtpNotifier::new(c, clock()).unwrap();
    let problem = smtp.check_connection().await.unwrap_err();
    assert_eq!(
        problem.kind(),
        SmtpProblemKind::BadCredentials,
        "{problem:?}"
    );
    assert!(problem.is_permanent());
}

#[derive(Debug)]
struct Terse;

impl EmailTemplate for Terse {
    fn render(&self, m: &AlertMessage) -> EmailContent {
        EmailContent {
            subject: format!("Mail trouble at {}", m.tenant),
            text: format!("See {}", m.link),
            html: format!("<p>See <a href=\"{0}\">{0}</a></p>", m.link),
        }
    }
}

#[tokio::test]
async fn the_embedder_can_replace_the_template() {
    let cert = TestCert::generate();
    let peer = SmtpPeer::start("starttls", Some(&cert));
    let smtp = SmtpNotifier::new(config(&peer, &cert, SmtpSecurity::StartTls), clock())
        .unwrap()
        .with_template(Arc::new(Terse));
    smtp.deliver(&raised()).await.unwrap();
    let got = peer.next_message(WAIT);
    assert_eq!(header(&got, "Subject"), ["Mail trouble at acme"]);
    assert_eq!(
        got["text"].as_str().unwrap().trim_end(),
        format!("See {LINK}")
    );
    assert!(
        got["html"]
            .as_str()
            .unwrap()
            .contains(&format!("<a href=\"{LINK}\">"))
    );
    assert_eq!(header(&got, "Auto-Submitted"), ["auto-generated"]);
}

#[tokio::test]
async fn pooled_connections_are_reused_checked_after_idling_and_replaced_when_stale() {
    let cert = TestCert::generate();
    let peer = SmtpPeer::start("starttls", Some(&cert));
    let clock = clock();
    let mut c = config(&peer, &cert, SmtpSecurity::StartTls);
    c.connections = SmtpConnections::Pooled { max_size: 1 };
    let smtp = SmtpNotifier::new(c, clock.clone()).unwrap();
    let mut ports = Vec::new();
    let mut send = async |advance_secs: i64| {
        clock.advance(chrono::TimeDelta::seconds(advance_secs));
        smtp.deliver(&raised()).await.unwrap();
        ports.push(peer.next_message(WAIT)["client_port"].as_u64().unwrap());
    };
    send(0).await;
    send(1).await;
    send(10).await; // idle > 5 s: checked with NOOP, still good
    send(61).await; // idle > 60 s: replaced
    send(1).await;
    assert_eq!(ports[0], ports[1], "{ports:?}");
    assert_eq!(ports[1], ports[2], "{ports:?}");
    assert_ne!(ports[2], ports[3], "{ports:?}");
    assert_eq!(ports[3], ports[4], "{ports:?}");

    // One connection per message: a new port every time.
    let mut c = config(&peer, &cert, SmtpSecurity::StartTls);
    c.connections = SmtpConnections::PerMessage;
    let smtp = SmtpNotifier::new(c, clock.clone()).unwrap();
    let mut ports = std::collections::HashSet::new();
    for _ in 0..3 {
        smtp.deliver(&raised()).await.unwrap();
        ports.insert(peer.next_message(WAIT)["client_port"].as_u64().unwrap());
    }
    assert_eq!(ports.len(), 3);
}

//! The SMTP probe sender against a real SMTP server (aiosmtpd on loopback),
//! and end to end: `EwsProbe` sends inbound probes through it, the received
//! message is handed to the local EWS server's mailbox, and `check` finds it.
#![cfg(feature = "smtp")]

mod common;

use std::{sync::Mutex, time::Duration};

use chrono::TimeDelta;
use common::{SVC_PASS, SVC_USER, arc_clock, client, manual_clock};
use continuity_core::{
    Clock, Direction, Error, ManualClock, TenantId,
    probe::{MailProbe, ProbeRequest, ProbeStatus},
};
use continuity_ews::{
    ArrivalRegistry, EwsProbe, EwsTenantProbe, OutgoingProbe, ProbeSender, SmtpCredentials,
    SmtpProbeSender, SmtpSecurity, SmtpSenderConfig,
    arrival::wire_id,
    request::{PROBE_HEADER, probe_subject},
};
use continuity_test_support::ews_server::EwsServer;
use continuity_test_support::smtp_peer::{PASSWORD, SmtpPeer, TestCert, USER, header};
use std::sync::Arc;

const FROM: &str = "continuity-probe@gateway.example";
const ORG_INBOX: &str = "probe-in@acme.example";
const WAIT: Duration = Duration::from_secs(20);

fn config(peer: &SmtpPeer, security: SmtpSecurity, cert: Option<&TestCert>) -> SmtpSenderConfig {
    let mut c = SmtpSenderConfig::new("127.0.0.1", FROM);
    c.relay.port = Some(peer.port);
    c.relay.security = security;
    c.relay.tls_domain = Some("localhost".into());
    if let Some(cert) = cert {
        c.relay.root_certificates_pem = vec![cert.ca_pem.clone()];
        c.relay.credentials = Some(SmtpCredentials::new(USER, PASSWORD));
    }
    c.relay.timeout = Duration::from_secs(10);
    c
}

fn acme() -> TenantId {
    TenantId::new("acme").unwrap()
}

/// Sends the probe `id` of acme to `to`; returns (result, token, subject).
async fn send(
    sender: &SmtpProbeSender,
    to: &str,
    id: &str,
) -> (continuity_core::Result<()>, String, String) {
    let tenant = acme();
    let token = wire_id(&tenant, id);
    let subject = probe_subject(&token);
    let r = sender
        .send(&OutgoingProbe {
            tenant: &tenant,
            to,
            subject: &subject,
            header_name: PROBE_HEADER,
            header_value: &token,
        })
        .await;
    (r, token, subject)
}

fn assert_probe_message(msg: &serde_json::Value, token: &str, subject: &str) {
    assert_eq!(msg["mail_from"], FROM);
    assert_eq!(msg["rcpt_tos"], serde_json::json!([ORG_INBOX]));
    assert_eq!(header(msg, PROBE_HEADER), vec![token], "{msg}");
    assert_eq!(header(msg, "Subject"), vec![subject]);
    assert_eq!(header(msg, "To"), vec![ORG_INBOX]);
    assert_eq!(header(msg, "From"), vec![FROM]);
    assert_eq!(header(msg, "Message-ID").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starttls_with_auth_delivers_the_probe_header_and_subject() {
    let cert = TestCert::generate();
    let peer = SmtpPeer::start("starttls", Some(&cert));
    let sender = SmtpProbeSender::new(config(&peer, SmtpSecurity::StartTls, Some(&cert))).unwrap();
    assert!(!format!("{sender:?}").contains(PASSWORD));
    assert!(
        !format!("{:?}", config(&peer, SmtpSecurity::StartTls, Some(&cert))).contains(PASSWORD)
    );

    let (r, token, subject) = send(&sender, ORG_INBOX, "in-1").await;
    r.unwrap();
    let msg = peer.next_message(WAIT);
    assert_eq!(msg["tls"], true);
    assert_eq!(msg["authenticated"], true);
    assert_eq!(msg["login"], USER);
    assert_probe_message(&msg, &token, &subject);
    assert!(subject.contains(&token));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn implicit_tls_is_selectable() {
    let cert = TestCert::generate();
    let peer = SmtpPeer::start("implicit", Some(&cert));
    let sender =
        SmtpProbeSender::new(config(&peer, SmtpSecurity::ImplicitTls, Some(&cert))).unwrap();
    let (r, token, subject) = send(&sender, ORG_INBOX, "in-2").await;
    r.unwrap();
    let msg = peer.next_message(WAIT);
    assert_eq!(msg["tls"], true);
    assert_eq!(msg["authenticated"], true);
    assert_probe_message(&msg, &token, &subject);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plaintext_only_when_explicitly_allowed() {
    let peer = SmtpPeer::start("plain", None);
    let mut c = config(&peer, SmtpSecurity::InsecurePlaintext, None);
    let e = SmtpProbeSender::new(c.clone()).unwrap_err();
    assert!(
        e.is_configuration() && e.to_string().contains("allow_insecure_plaintext"),
        "{e}"
    );
    c.relay.allow_insecure_plaintext = true;
    let sender = SmtpProbeSender::new(c).unwrap();
    let (r, token, subject) = send(&sender, ORG_INBOX, "in-3").await;
    r.unwrap();
    let msg = peer.next_message(WAIT);
    assert_eq!(msg["tls"], false);
    assert_probe_message(&msg, &token, &subject);

    // STARTTLS is required by default: a relay that does not offer it gets nothing.
    let sender = SmtpProbeSender::new(config(&peer, SmtpSecurity::StartTls, None)).unwrap();
    let (r, ..) = send(&sender, ORG_INBOX, "in-4").await;
    let e = r.unwrap_err();
    assert!(!e.is_retryable(), "{e}");
    assert!(peer.try_next_message(Duration::from_millis(300)).is_none());
}

/// Whether a relay failure is retryable, and its code; lettre's own error
/// must be kept as the source.
fn probe_error(e: &Error) -> (bool, Option<&str>) {
    assert!(
        e.source_as::<continuity_smtp::lettre::transport::smtp::Error>()
            .is_some(),
        "lettre's error is the source: {e:?}"
    );
    match e {
        Error::Probe {
            retryable, code, ..
        } => (*retryable, code.as_deref()),
        other => panic!("not a probe error: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_refusals_keep_their_reply_code() {
    let cert = TestCert::generate();
    let peer = SmtpPeer::start("starttls", Some(&cert));
    let sender = SmtpProbeSender::new(config(&peer, SmtpSecurity::StartTls, Some(&cert))).unwrap();

    let (r, ..) = send(&sender, "reject-4@acme.example", "in-5").await;
    let e = r.unwrap_err();
    assert_eq!(probe_error(&e), (true, Some("451")), "{e}");
    assert!(e.to_string().contains("temporarily unavailable"), "{e}");

    let (r, ..) = send(&sender, "reject-5@acme.example", "in-6").await;
    let e = r.unwrap_err();
    assert_eq!(probe_error(&e), (false, Some("550")), "{e}");
    assert!(e.to_string().contains("no such user"), "{e}");

    // Wrong password: 535, a configuration problem; the password is not in the error.
    let mut c = config(&peer, SmtpSecurity::StartTls, Some(&cert));
    c.relay.credentials = Some(SmtpCredentials::new(USER, "wrong-password-17"));
    let sender = SmtpProbeSender::new(c).unwrap();
    let (r, ..) = send(&sender, ORG_INBOX, "in-7").await;
    let e = r.unwrap_err();
    assert_eq!(probe_error(&e), (false, Some("535")), "{e}");
    assert!(!e.to_string().contains("wrong-password-17"));

    // The private CA not configured: the relay's certificate is untrusted.
    let mut c = config(&peer, SmtpSecurity::StartTls, Some(&cert));
    c.relay.root_certificates_pem.clear();
    let sender = SmtpProbeSender::new(c).unwrap();
    let (r, ..) = send(&sender, ORG_INBOX, "in-8").await;
    let e = r.unwrap_err();
    assert_eq!(probe_error(&e), (false, Some("tls")), "{e}");
    assert!(peer.try_next_message(Duration::from_millis(300)).is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_relay_is_retryable() {
    // A port that was free a moment ago: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut c = SmtpSenderConfig::new("127.0.0.1", FROM);
    c.relay.port = Some(port);
    c.relay.timeout = Duration::from_secs(5);
    let sender = SmtpProbeSender::new(c).unwrap();
    let (r, ..) = send(&sender, ORG_INBOX, "in-9").await;
    let e = r.unwrap_err();
    assert_eq!(probe_error(&e), (true, None), "{e}");

    // A host name that does not exist is not: no retry makes it resolve.
    // A label of more than 63 characters is refused by the C library
    // itself, so no DNS query leaves the machine.
    let mut c = SmtpSenderConfig::new(format!("{}.invalid", "x".repeat(64)), FROM);
    c.relay.tls_domain = Some("localhost".into());
    c.relay.timeout = Duration::from_secs(5);
    let sender = SmtpProbeSender::new(c).unwrap();
    let (r, ..) = send(&sender, ORG_INBOX, "in-10").await;
    let e = r.unwrap_err();
    assert_eq!(probe_error(&e), (false, None), "{e}");
    assert!(e.to_string().contains("does not resolve"), "{e}");

    let bad = SmtpProbeSender::new(SmtpSenderConfig::new("127.0.0.1", "not an address"));
    assert!(bad.unwrap_err().is_configuration());
}

/// The raw message as the peer received it.
fn raw(msg: &serde_json::Value) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(msg["raw"].as_str().unwrap())
        .unwrap()
}

/// The header fields of a raw RFC 5322 message (unfolded).
fn raw_headers(raw: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(raw);
    let head = text.split("\r\n\r\n").next().unwrap_or_default();
    let mut out: Vec<(String, String)> = Vec::new();
    for line in head.split("\r\n") {
        if line.starts_with([' ', '\t']) {
            if let Some(last) = out.last_mut() {
                last.1.push(' ');
                last.1.push_str(line.trim());
            }
        } else if let Some((k, v)) = line.split_once(':') {
            out.push((k.trim().to_owned(), v.trim().to_owned()));
        }
    }
    out
}

/// The relay and the org's transport: sends through SMTP to aiosmtpd, then
/// hands what aiosmtpd received, as received, to the EWS server's mailbox.
#[derive(Debug)]
struct SmtpIntoExchange {
    smtp: SmtpProbeSender,
    peer: Mutex<SmtpPeer>,
    server: Arc<EwsServer>,
    clock: ManualClock,
}

#[async_trait::async_trait]
impl ProbeSender for SmtpIntoExchange {
    async fn send(&self, p: &OutgoingProbe<'_>) -> continuity_core::Result<()> {
        self.smtp.send(p).await?;
        let msg = tokio::task::block_in_place(|| self.peer.lock().unwrap().next_message(WAIT));
        let headers = raw_headers(&raw(&msg));
        let get = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
        };
        let subject = get("Subject").expect("the message has a subject");
        for rcpt in msg["rcpt_tos"].as_array().unwrap() {
            self.server.deliver(
                rcpt.as_str().unwrap(),
                &subject,
                get(PROBE_HEADER).as_deref(),
                self.clock.now(),
            );
        }
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ews_probe_finds_what_the_smtp_sender_sent() {
    let clock = manual_clock();
    let server = Arc::new(EwsServer::start(arc_clock(&clock)).await);
    server.add_account(SVC_USER, SVC_PASS, true);
    server.add_mailbox(ORG_INBOX);
    server.set_delivery_delay(TimeDelta::seconds(30));
    let cert = TestCert::generate();
    let peer = SmtpPeer::start("starttls", Some(&cert));
    let smtp = SmtpProbeSender::new(config(&peer, SmtpSecurity::StartTls, Some(&cert))).unwrap();
    let bridge = Arc::new(SmtpIntoExchange {
        smtp,
        peer: Mutex::new(peer),
        server: server.clone(),
        clock: clock.clone(),
    });
    let probe = EwsProbe::new(
        "probe@gateway.example",
        Arc::new(ArrivalRegistry::default()),
        Some(bridge),
    );
    probe.set_tenant(
        acme(),
        EwsTenantProbe {
            client: client(&server.url),
            outbound_from: None,
            inbound_mailbox: Some(ORG_INBOX.into()),
            save_sent_copy: false,
        },
    );
    // The first probe provisions the mailbox's X-header (found by subject);
    // the second is stored with it.
    for (n, header_stored) in [(1, false), (2, true)] {
        let sent_at = clock.now();
        let req = ProbeRequest {
            tenant: acme(),
            direction: Direction::Inbound,
            probe_id: format!("in-e2e-{n}").into(),
            sent_at,
        };
        let ticket = probe.dispatch(&req).await.unwrap();
        let stored = server.inbox(ORG_INBOX);
        assert_eq!(stored.len(), 1);
        assert_eq!(stored[0].subject, probe_subject(ticket.as_str()));
        assert_eq!(
            stored[0].probe_header.as_deref(),
            header_stored.then_some(ticket.as_str())
        );
        assert_eq!(
            probe.check(&req, &ticket).await.unwrap(),
            ProbeStatus::Pending
        );
        clock.advance(TimeDelta::seconds(31));
        assert_eq!(
            probe.check(&req, &ticket).await.unwrap(),
            ProbeStatus::Arrived {
                at: sent_at + TimeDelta::seconds(30)
            }
        );
        assert!(server.inbox(ORG_INBOX).is_empty(), "deleted once found");
    }
    assert_eq!(probe.counters().header_missing, 1);
    assert!(server.violations().is_empty(), "{:?}", server.violations());
}

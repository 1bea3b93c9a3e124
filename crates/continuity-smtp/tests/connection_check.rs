//! `SmtpRelay::check_connection` against local relays: the aiosmtpd peer
//! (STARTTLS, implicit TLS or plain, AUTH) and a bare TCP listener that
//! answers the greeting with a fixed reply.

use std::time::Duration;

use continuity_smtp::{
    ConnectError, RelayConfig, SmtpConnectionProblem, SmtpCredentials, SmtpProblemKind, SmtpRelay,
    SmtpSecurity,
};
use continuity_test_support::smtp_peer::{PASSWORD, SmtpPeer, TestCert, USER};
use tokio::io::AsyncWriteExt;

fn config(port: u16, security: SmtpSecurity, cert: Option<&TestCert>) -> RelayConfig {
    let mut c = RelayConfig::new("127.0.0.1");
    c.port = Some(port);
    c.security = security;
    c.tls_domain = Some("localhost".into());
    c.root_certificates_pem = cert.map(|c| vec![c.ca_pem.clone()]).unwrap_or_default();
    c.credentials = Some(SmtpCredentials::new(USER, PASSWORD));
    c.timeout = Duration::from_secs(10);
    c
}

async fn check(
    config: RelayConfig,
) -> Result<continuity_smtp::SmtpConnectionInfo, SmtpConnectionProblem> {
    SmtpRelay::new(config, "continuity.example.net")
        .unwrap()
        .check_connection()
        .await
}

#[tokio::test]
async fn a_working_relay_reports_tls_and_auth() {
    let cert = TestCert::generate();
    let peer = SmtpPeer::start("starttls", Some(&cert));
    let info = check(config(peer.port, SmtpSecurity::StartTls, Some(&cert)))
        .await
        .unwrap();
    assert!(info.encrypted && info.authenticated, "{info:?}");
    assert_eq!(info.server_name, "localhost");
    assert!(peer.drain().is_empty(), "the check sends no message");

    let implicit = SmtpPeer::start("implicit", Some(&cert));
    let info = check(config(
        implicit.port,
        SmtpSecurity::ImplicitTls,
        Some(&cert),
    ))
    .await
    .unwrap();
    assert!(info.encrypted && info.authenticated, "{info:?}");
}

#[tokio::test]
async fn a_relay_without_starttls_is_a_permanent_problem() {
    let peer = SmtpPeer::start("plain", None);
    let mut c = config(peer.port, SmtpSecurity::StartTls, None);
    c.credentials = None;
    let p = check(c).await.unwrap_err();
    assert_eq!(p.kind(), SmtpProblemKind::StartTlsNotOffered, "{p:?}");
    assert!(p.is_permanent());
    assert!(p.to_string().contains("does not offer STARTTLS"), "{p}");
}

#[tokio::test]
async fn refused_credentials_are_a_permanent_problem_naming_the_reply() {
    let cert = TestCert::generate();
    let peer = SmtpPeer::start("starttls", Some(&cert));
    let mut c = config(peer.port, SmtpSecurity::StartTls, Some(&cert));
    c.credentials = Some(SmtpCredentials::new(USER, "not-the-password"));
    let p = check(c).await.unwrap_err();
    assert_eq!(p.kind(), SmtpProblemKind::BadCredentials, "{p:?}");
    assert!(p.is_permanent());
    let text = p.to_string();
    assert!(
        text.contains("535") && text.contains("refused the credentials"),
        "{text}"
    );
    assert!(!format!("{text} {p:?}").contains("not-the-password"));
}

#[tokio::test]
async fn credentials_for_a_relay_without_auth_are_a_permanent_problem() {
    let peer = SmtpPeer::start("plain", None);
    let mut c = config(peer.port, SmtpSecurity::InsecurePlaintext, None);
    c.allow_insecure_plaintext = true;
    let p = check(c).await.unwrap_err();
    assert_eq!(p.kind(), SmtpProblemKind::AuthNotOffered, "{p:?}");
    assert!(p.is_permanent());
}

#[tokio::test]
async fn an_untrusted_certificate_and_a_closed_port_are_not_permanent() {
    let cert = TestCert::generate();
    let peer = SmtpPeer::start("starttls", Some(&cert));
    let p = check(config(peer.port, SmtpSecurity::StartTls, None))
        .await
        .unwrap_err();
    assert_eq!(p.kind(), SmtpProblemKind::Tls, "{p:?}");
    assert!(!p.is_permanent());

    let implicit = SmtpPeer::start("implicit", Some(&cert));
    let p = check(config(implicit.port, SmtpSecurity::ImplicitTls, None))
        .await
        .unwrap_err();
    assert_eq!(p.kind(), SmtpProblemKind::Tls, "{p:?}");

    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let p = check(config(port, SmtpSecurity::StartTls, None))
        .await
        .unwrap_err();
    assert_eq!(p.kind(), SmtpProblemKind::Unreachable, "{p:?}");
    assert!(!p.is_permanent());
}

/// A relay that answers every connection with `greeting` and closes.
async fn answering(greeting: &'static str) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let _ = s.write_all(greeting.as_bytes()).await;
            let _ = s.shutdown().await;
        }
    });
    port
}

#[tokio::test]
async fn a_refused_session_is_permanent_and_a_busy_relay_is_not() {
    let port = answering("554 5.7.1 no service for your address\r\n").await;
    let p = check(config(port, SmtpSecurity::StartTls, None))
        .await
        .unwrap_err();
    assert_eq!(p.kind(), SmtpProblemKind::Refused, "{p:?}");
    assert!(p.is_permanent());
    assert!(p.to_string().contains("554"), "{p}");

    let port = answering("421 4.3.2 try again later\r\n").await;
    let p = check(config(port, SmtpSecurity::StartTls, None))
        .await
        .unwrap_err();
    assert_eq!(p.kind(), SmtpProblemKind::Unavailable, "{p:?}");
    assert!(!p.is_permanent());
    assert!(matches!(p.into_error(), ConnectError::Smtp(_)));
}

/// A name no resolver can find, refused by the C library itself (a label of
/// more than 63 characters), so the test sends no DNS query.
fn nonexistent_host() -> String {
    format!("{}.invalid", "x".repeat(64))
}

#[tokio::test]
async fn a_host_name_that_does_not_exist_is_a_permanent_problem() {
    let mut c = config(2525, SmtpSecurity::StartTls, None);
    c.host = nonexistent_host();
    let p = check(c).await.unwrap_err();
    assert_eq!(p.kind(), SmtpProblemKind::UnknownHost, "{p:?}");
    assert!(p.is_permanent());
    assert!(p.to_string().contains("does not resolve"), "{p}");
}

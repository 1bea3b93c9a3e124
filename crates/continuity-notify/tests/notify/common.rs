//! What the provider tests share: alerts to send and a local HTTP server.

use std::net::SocketAddr;

use chrono::{DateTime, TimeDelta, Utc};
use continuity_core::{
    Direction, TenantId,
    config::{ChannelKind, Recipient},
    machine::AlertKind,
    notify::{AlertMessage, ConditionReport},
};

pub fn t0() -> DateTime<Utc> {
    "2026-03-02T08:00:00Z".parse().unwrap()
}

pub const LINK: &str = "https://continuity.example.net/c/AbCdEfGhIjKlMnOpQrStUvWxYz0123456789-_AbCdEfGhIjKlMnOpQrStUvWxYz0";

/// An alert of `kind` for `recipient`, decided at `at`.
pub fn alert(
    kind: AlertKind,
    alert_id: u64,
    recipient: Recipient,
    at: DateTime<Utc>,
) -> AlertMessage {
    let conditions = if kind == AlertKind::Resolved {
        vec![]
    } else {
        vec![
            ConditionReport {
                direction: Direction::Outbound,
                name: "latency".into(),
                reading: "p95 latency 42 min, threshold 30 min, 18 samples in the last 1 h".into(),
                newly_raised: kind == AlertKind::Raised,
                no_data: false,
            },
            ConditionReport {
                direction: Direction::Inbound,
                name: "failures".into(),
                reading: "5 failed deliveries, threshold 3, in the last 1 h".into(),
                newly_raised: false,
                no_data: false,
            },
        ]
    };
    AlertMessage {
        tenant: TenantId::new("acme").unwrap(),
        tenant_name: "ACME <Corp>".into(),
        alert_id,
        kind,
        idempotency_key: format!("acme/{alert_id}/{}", recipient.id),
        recipient,
        created_at: at,
        link: LINK.into(),
        link_expires_at: at + TimeDelta::hours(24),
        conditions,
        event: None,
        failing: Vec::new(),
        time_zone: Default::default(),
    }
}

pub fn sms_recipient(number: &str) -> Recipient {
    Recipient::new("ops-sms", ChannelKind::Sms, number)
}

/// Serves `router` on a free loopback port until the test ends.
pub async fn serve(router: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    addr
}

/// Accepts TLS connections (for axum) with a [`TestCert`](continuity_test_support::smtp_peer::TestCert).
pub struct TlsListener {
    tcp: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((stream, addr)) = self.tcp.accept().await else {
                continue;
            };
            // A client that refuses our certificate just fails its handshake.
            if let Ok(tls) = self.acceptor.accept(stream).await {
                return (tls, addr);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

/// Serves `router` over HTTPS with `cert` on a free loopback port.
pub async fn serve_tls(
    router: axum::Router,
    cert: &continuity_test_support::smtp_peer::TestCert,
) -> SocketAddr {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(cert.cert_der.clone())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.key_der.clone())),
        )
        .unwrap();
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tcp.local_addr().unwrap();
    let listener = TlsListener {
        tcp,
        acceptor: tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config)),
    };
    tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    addr
}

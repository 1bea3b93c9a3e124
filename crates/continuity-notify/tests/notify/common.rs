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
            },
            ConditionReport {
                direction: Direction::Inbound,
                name: "failures".into(),
                reading: "5 failed deliveries, threshold 3, in the last 1 h".into(),
                newly_raised: false,
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

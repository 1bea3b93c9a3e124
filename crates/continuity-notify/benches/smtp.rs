//! Throughput of the SMTP notifier against a real SMTP server (aiosmtpd on
//! loopback, STARTTLS on a test certificate, AUTH): 10,000 alerts over
//! reused (pooled) connections, next to one connection per message.
//!
//! Under `cargo test --benches` (no `--bench` argument) each variant sends a
//! few messages once, so CI checks that the bench works without the cost.

use std::{sync::Arc, time::Duration};

use chrono::{DateTime, TimeDelta, Utc};
use continuity_core::{
    ManualClock, TenantId,
    config::{ChannelKind, Recipient},
    machine::AlertKind,
    notify::{AlertMessage, Notifier},
};
use continuity_notify::smtp::{SmtpConfig, SmtpConnections, SmtpCredentials, SmtpNotifier};
use continuity_test_support::smtp_peer::{PASSWORD, SmtpPeer, TestCert, USER};
use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use tokio::task::JoinSet;

fn t0() -> DateTime<Utc> {
    "2026-03-02T08:00:00Z".parse().unwrap()
}

fn message(id: u64) -> AlertMessage {
    let recipient = Recipient::new("ops-mail", ChannelKind::Email, "ops@acme-external.example");
    AlertMessage {
        tenant: TenantId::new("acme").unwrap(),
        tenant_name: "ACME Corp".into(),
        alert_id: id,
        kind: AlertKind::Raised,
        idempotency_key: format!("acme/{id}/ops-mail"),
        recipient,
        created_at: t0(),
        link: "https://continuity.example.net/c/AbCdEfGhIjKlMnOpQrStUvWxYz0123456789-_AbCdEfGhIjKlMnOpQrStUvWxYz0".into(),
        link_expires_at: t0() + TimeDelta::hours(24),
        conditions: vec![],
        event: None,
        failing: Vec::new(),
        time_zone: Default::default(),
    }
}

fn notifier(peer: &SmtpPeer, cert: &TestCert, connections: SmtpConnections) -> Arc<SmtpNotifier> {
    let mut c = SmtpConfig::new("127.0.0.1", "alerts@continuity.example.net");
    c.relay.port = Some(peer.port);
    c.relay.tls_domain = Some("localhost".into());
    c.relay.root_certificates_pem = vec![cert.ca_pem.clone()];
    c.relay.credentials = Some(SmtpCredentials::new(USER, PASSWORD));
    c.connections = connections;
    Arc::new(SmtpNotifier::new(c, Arc::new(ManualClock::new(t0()))).unwrap())
}

/// Sends `n` alerts with at most `in_flight` under way at once.
async fn send_all(smtp: &Arc<SmtpNotifier>, n: u64, in_flight: usize, first_id: u64) {
    let mut set = JoinSet::new();
    for id in first_id..first_id + n {
        if set.len() >= in_flight {
            set.join_next().await.unwrap().unwrap();
        }
        let smtp = smtp.clone();
        set.spawn(async move { smtp.deliver(&message(id)).await.unwrap() });
    }
    while let Some(r) = set.join_next().await {
        r.unwrap();
    }
}

fn bench(c: &mut Criterion) {
    // `cargo bench` passes --bench; `cargo test --benches` does not.
    let full = std::env::args().any(|a| a == "--bench");
    let (reused_n, per_message_n) = if full { (10_000, 1_000) } else { (20, 5) };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let cert = TestCert::generate();
    let peer = SmtpPeer::start("starttls", Some(&cert));
    let mut next_id = 0u64;

    let mut group = c.benchmark_group("smtp_delivery");
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(10);
    group.warm_up_time(Duration::from_millis(500));

    let variants = [
        (
            "reused_connection_sequential",
            SmtpConnections::Pooled { max_size: 1 },
            1,
            reused_n,
        ),
        (
            "reused_4_connections_4_in_flight",
            SmtpConnections::Pooled { max_size: 4 },
            4,
            reused_n,
        ),
        (
            "connection_per_message_sequential",
            SmtpConnections::PerMessage,
            1,
            per_message_n,
        ),
        (
            "connection_per_message_4_in_flight",
            SmtpConnections::PerMessage,
            4,
            per_message_n,
        ),
    ];
    for (name, connections, in_flight, n) in variants {
        let smtp = rt.block_on(async { notifier(&peer, &cert, connections) });
        group.throughput(Throughput::Elements(n));
        group.bench_function(name, |b| {
            b.iter(|| {
                rt.block_on(send_all(&smtp, n, in_flight, next_id));
                next_id += n;
                // Keep the peer's output pipe drained.
                peer.drain().len()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

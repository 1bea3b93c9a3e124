//! PostgreSQL becomes unreachable in the middle of an outage of the mail
//! flow: the Monitor still sends the alert, keeps retrying its writes, and
//! once the database answers again everything it decided is stored.
//!
//! The database is reached through a TCP relay on loopback that the test
//! cuts (every connection dropped, new ones refused) and restores.

mod common;

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use chrono::{DateTime, TimeDelta, Utc};
use continuity_core::{
    Direction, FailureKind, ManualClock, Monitor, Observation, TenantId,
    config::{ChannelKind, Recipient, TenantConfig},
    link::{LinkKey, LinkSigner},
    machine::AlertKind,
    store::EventStore,
    testing::RecordingNotifier,
};
use continuity_store::{PostgresOptions, PostgresStore};
use tokio::{net::TcpListener, sync::watch};

/// Forwards loopback connections to PostgreSQL while `up`.
struct Relay {
    port: u16,
    up: Arc<AtomicBool>,
    cut: watch::Sender<u64>,
}

impl Relay {
    async fn start() -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(true));
        let (cut, _) = watch::channel(0u64);
        let (up2, cut2) = (up.clone(), cut.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                if !up2.load(Ordering::SeqCst) {
                    drop(inbound); // refused: closed at once
                    continue;
                }
                let mut cut = cut2.subscribe();
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect("127.0.0.1:5432").await
                    else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cut.changed() => {} // both ends dropped
                    }
                });
            }
        });
        Relay { port, up, cut }
    }

    fn set_up(&self, up: bool) {
        self.up.store(up, Ordering::SeqCst);
        if !up {
            self.cut.send_modify(|n| *n += 1);
        }
    }
}

fn start() -> DateTime<Utc> {
    "2026-06-01T08:00:00Z".parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_go_out_while_postgres_is_unreachable_and_nothing_is_lost() {
    let pg = common::PgSchema::new("outage").await;
    let relay = Relay::start().await;
    let url = format!(
        "host=127.0.0.1 port={} user=postgres dbname=test",
        relay.port
    );
    let store = PostgresStore::connect_with(
        &url,
        PostgresOptions {
            schema: pg.schema.clone(),
            pool_size: 2,
            connect_timeout: Duration::from_secs(1),
            ..Default::default()
        },
    )
    .await
    .expect("connect through the relay");
    let clock = ManualClock::new(start());
    let sms = Arc::new(RecordingNotifier::new(ChannelKind::Sms));
    let monitor = Monitor::builder()
        .clock(Arc::new(clock.clone()))
        .store(Arc::new(store))
        .notifier(sms.clone())
        .link_signer(LinkSigner::new(LinkKey::new("k1", [5u8; 32]).unwrap()))
        .portal_url("https://continuity.example.net/c/")
        .build()
        .unwrap();
    let acme = TenantId::new("acme").unwrap();
    monitor
        .register_tenant(continuity_core::testing::absolute_thresholds(
            TenantConfig::new(
                acme.clone(),
                vec![Recipient::new("ops", ChannelKind::Sms, "+15550100")],
            ),
            3,
        ))
        .await
        .unwrap();
    let mut t = start();
    let mut minute = |monitor: &Monitor| {
        t += TimeDelta::minutes(1);
        clock.set(t);
        monitor
            .observe(Observation::failed(
                acme.clone(),
                Direction::Outbound,
                t,
                FailureKind::Refused,
            ))
            .unwrap();
        t
    };

    relay.set_up(false);
    let mut store_errors = 0;
    for _ in 0..6 {
        let now = minute(&monitor);
        store_errors += monitor.tick(now).await.unwrap().errors.len();
    }
    assert!(store_errors > 0, "the unreachable database is reported");
    let kinds: Vec<AlertKind> = sms.messages().iter().map(|m| m.kind).collect();
    assert_eq!(
        kinds,
        vec![AlertKind::Raised],
        "alerted without the database"
    );
    // Read directly, not through the relay: nothing was written.
    assert!(pg.store.load(&acme).await.unwrap().is_none());

    relay.set_up(true);
    let mut errors = Vec::new();
    for _ in 0..3 {
        let now = minute(&monitor);
        errors = monitor.tick(now).await.unwrap().errors;
    }
    assert!(errors.is_empty(), "the database answers again: {errors:?}");
    let stored = pg
        .store
        .load(&acme)
        .await
        .unwrap()
        .expect("written once back");
    assert!(stored.state.any_active(), "the raised condition is stored");
    assert_eq!(stored.state.next_alert_id, 1, "the alert is recorded");
    assert!(pg.store.pending_outbox(10).await.unwrap().is_empty());
    assert_eq!(sms.messages().len(), 1, "sent once");
    pg.drop().await;
}

//! What the monitor keeps per (tenant, direction), window and learned
//! baseline included, stays within 2 KiB whatever the traffic (issue 14's
//! budget).

use std::{sync::Arc, time::Duration};

use chrono::TimeDelta;
use continuity_core::{
    Direction, FailureKind, ManualClock, Monitor, Observation, TenantId,
    config::{ChannelKind, Recipient, TenantConfig},
    testing::{RecordingNotifier, rig_signer, rig_start},
};

const BUDGET: usize = 2048;

#[tokio::test]
async fn a_direction_holds_at_most_2_kib_with_the_defaults() {
    let clock = ManualClock::new(rig_start());
    let monitor = Monitor::builder()
        .in_memory_store()
        .clock(Arc::new(clock.clone()))
        .notifier(Arc::new(RecordingNotifier::new(ChannelKind::Sms)))
        .link_signer(rig_signer())
        .portal_url("https://continuity.example.net/c/")
        .build()
        .unwrap();
    let acme = TenantId::new("acme").unwrap();
    monitor
        .register_tenant(TenantConfig::new(
            acme.clone(),
            vec![Recipient::new("ops", ChannelKind::Sms, "+15550100")],
        ))
        .await
        .unwrap();
    let fresh = monitor.direction_memory_bytes(&acme).unwrap();
    // A day of 30 samples a minute each way: latencies over every scale
    // from 1 ms to days, every failure kind, each with the longest reply.
    let reply = "4".repeat(1_000);
    let mut n: u64 = 0;
    for _ in 0..1440 {
        let now = clock.advance(TimeDelta::minutes(1));
        for s in 0..30 {
            let at = now - TimeDelta::seconds(59 - s);
            for d in Direction::ALL {
                n += 1;
                let o = if n.is_multiple_of(7) {
                    let kind = FailureKind::ALL[(n / 7) as usize % FailureKind::ALL.len()];
                    Observation::failed(acme.clone(), d, at, kind).with_reply(&reply)
                } else {
                    let latency = Duration::from_millis(1u64 << (n % 40));
                    Observation::delivered(acme.clone(), d, at, latency)
                };
                monitor.observe(o).unwrap();
            }
        }
        monitor.tick(now).await.unwrap();
    }
    let fed = monitor.direction_memory_bytes(&acme).unwrap();
    for bytes in fresh.into_iter().chain(fed) {
        assert!(
            bytes <= BUDGET,
            "{bytes} bytes for a direction: {fresh:?} then {fed:?}"
        );
    }
    println!("bytes per direction: fresh {fresh:?}, after a day {fed:?}");
}

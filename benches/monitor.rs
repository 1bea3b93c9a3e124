//! The engine's entry point for passive observations: `Monitor::observe`
//! (tenant lookup, lock, window and policies), next to the window-only
//! figure in `benches/window.rs`.

use std::{hint::black_box, sync::Arc, time::Duration};

use chrono::TimeDelta;
use continuity::{
    Direction, ManualClock, Monitor, Observation, TenantId,
    config::{ChannelKind, Recipient, TenantConfig},
    link::{LinkKey, LinkSigner},
    testing::RecordingNotifier,
};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn observe(c: &mut Criterion) {
    let clock = ManualClock::new("2026-03-02T08:00:00Z".parse().expect("valid time"));
    let monitor = Monitor::builder()
        .in_memory_store()
        .clock(Arc::new(clock.clone()))
        .notifier(Arc::new(RecordingNotifier::new(ChannelKind::Sms)))
        .link_signer(LinkSigner::new(
            LinkKey::new("bench", [3u8; 32]).expect("valid key"),
        ))
        .portal_url("https://continuity.example.net/c/")
        .build()
        .expect("valid monitor");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let tenants: Vec<TenantId> = (0..1000)
        .map(|i| TenantId::new(format!("tenant-{i:04}")).expect("valid id"))
        .collect();
    runtime.block_on(async {
        for t in &tenants {
            let config = TenantConfig::new(
                t.clone(),
                vec![Recipient::new("ops", ChannelKind::Sms, "+15550100")],
            );
            monitor.register_tenant(config).await.expect("registered");
        }
    });
    // A realistic stream: deliveries of 1-120 s over the last few minutes, across tenants.
    let now = continuity::Clock::now(&clock);
    let stream: Vec<Observation> = (0..4096u64)
        .map(|i| {
            let at = now - TimeDelta::milliseconds(((i * 7919) % 240_000) as i64);
            let latency = Duration::from_millis(1000 + (i * 104_729) % 119_000);
            Observation::delivered(
                tenants[(i as usize * 13) % tenants.len()].clone(),
                Direction::Inbound,
                at,
                latency,
            )
        })
        .collect();
    let mut group = c.benchmark_group("monitor");
    group.throughput(Throughput::Elements(1));
    let mut i = 0usize;
    group.bench_function("observe", |b| {
        b.iter(|| {
            i = (i + 1) & 4095;
            black_box(monitor.observe(stream[i].clone()).expect("known tenant"));
        })
    });
    group.finish();
}

criterion_group!(benches, observe);
criterion_main!(benches);

//! Serves the continuity portal on 127.0.0.1 for a simulated tenant whose
//! outbound mail stopped an hour ago, and prints a working link.
//!
//! ```text
//! cargo run --example portal [ADDRESS]   # default 127.0.0.1:8080
//! ```

use std::{sync::Arc, time::Duration};

use chrono::TimeDelta;
use continuity::{
    Clock, Direction, ManualClock, Monitor, SystemClock, TenantId,
    config::{ChannelKind, Recipient, TenantConfig},
    link::{LinkKey, LinkSigner},
    sim::{SimulatedFlow, SimulatedMailSystem},
    testing::RecordingNotifier,
    web::{PortalOptions, router},
};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let address = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8080".to_owned());
    let listener = tokio::net::TcpListener::bind(&address).await?;
    let base = format!("http://{}/continuity/", listener.local_addr()?);

    // The outage is replayed on a manual clock, from an hour ago up to now,
    // so the portal opens on real figures and a real alert's link.
    let clock = ManualClock::new(SystemClock.now() - TimeDelta::hours(1));
    let mail = Arc::new(SimulatedMailSystem::new(
        Arc::new(clock.clone()),
        Duration::from_secs(20),
    ));
    let sms = Arc::new(RecordingNotifier::new(ChannelKind::Sms));
    let monitor = Arc::new(
        Monitor::builder()
            .in_memory_store()
            .clock(Arc::new(clock.clone()))
            .probe(Direction::Outbound, mail.clone())
            .probe(Direction::Inbound, mail.clone())
            .notifier(sms.clone())
            .link_signer(LinkSigner::new(LinkKey::new(
                "demo",
                *b"demo key: not for production!!!!",
            )?))
            .portal_url(base.clone())
            .build()?,
    );
    let acme = TenantId::new("acme")?;
    let mut config = TenantConfig::new(
        acme.clone(),
        vec![Recipient::new("ops", ChannelKind::Sms, "+15550100")],
    );
    config.display_name = Some("Acme Corporation".into());
    monitor.register_tenant(config).await?;
    mail.set_flow(&acme, Direction::Outbound, SimulatedFlow::Blackhole);
    for _ in 0..60 {
        monitor.tick(clock.advance(TimeDelta::minutes(1))).await?;
    }
    let alert = sms
        .messages()
        .pop()
        .ok_or("the simulated outage raised no alert")?;

    let app = axum::Router::new().nest(
        "/continuity",
        router(
            monitor,
            PortalOptions::new(*b"demo csrf key: not for production")?,
        ),
    );
    println!("continuity portal for a simulated outage of {acme}");
    println!("open: {}", alert.link);
    axum::serve(listener, app).await?;
    Ok(())
}

//! Alerts write the times people read in the tenant's time zone: the link's
//! expiry, the running event, and the audit trail's descriptions.

use std::{sync::Arc, time::Duration};

use chrono::TimeDelta;
use continuity_core::{
    Clock, Direction, ManualClock, Monitor, TenantId,
    config::{ChannelKind, Recipient, TenantConfig},
    link::{LinkKey, LinkSigner},
    machine::AlertKind,
    portal::{self, PortalAction, PortalOutcome, Until},
    sim::{SimulatedFlow, SimulatedMailSystem},
    testing::RecordingNotifier,
};

#[tokio::test]
async fn alerts_and_records_write_times_in_the_tenants_zone() {
    let clock = ManualClock::new("2026-03-02T08:00:00Z".parse().unwrap());
    let mail = Arc::new(SimulatedMailSystem::new(
        Arc::new(clock.clone()),
        Duration::from_secs(20),
    ));
    let sms = Arc::new(RecordingNotifier::new(ChannelKind::Sms));
    let monitor = Monitor::builder()
        .in_memory_store()
        .clock(Arc::new(clock.clone()))
        .probe(Direction::Outbound, mail.clone())
        .notifier(sms.clone())
        .link_signer(LinkSigner::new(LinkKey::new("k1", [1u8; 32]).unwrap()))
        .portal_url("https://continuity.example.net/c/")
        .build()
        .unwrap();
    let acme = TenantId::new("acme").unwrap();
    let mut config = TenantConfig::new(
        acme.clone(),
        vec![Recipient::new("ops", ChannelKind::Sms, "+15550100")],
    );
    config.time_zone = "Asia/Kolkata".parse().unwrap();
    monitor.register_tenant(config).await.unwrap();

    mail.set_flow(&acme, Direction::Outbound, SimulatedFlow::Blackhole);
    while sms.messages().is_empty() {
        assert!(
            clock.now()
                < "2026-03-02T10:00:00Z"
                    .parse::<chrono::DateTime<chrono::Utc>>()
                    .unwrap(),
            "no alert"
        );
        monitor
            .tick(clock.advance(TimeDelta::minutes(1)))
            .await
            .unwrap();
    }
    let raised = sms.messages().pop().unwrap();
    assert_eq!(raised.kind, AlertKind::Raised);
    assert_eq!(raised.time_zone.name(), "Asia/Kolkata");
    // The link lasts 24 hours from the alert; India is UTC+5:30.
    let expiry = raised.link_expires_at + TimeDelta::minutes(330);
    let want = format!("works until {} IST.", expiry.format("%Y-%m-%d %H:%M"));
    assert!(raised.text_body().contains(&want), "{}", raised.text_body());

    // An event started through the link shows in the next alert, in IST.
    let link = raised
        .link
        .trim_start_matches("https://continuity.example.net/c/");
    let start = clock.now();
    let action = PortalAction::StartEvent(Until::For(Duration::from_secs(4 * 3600)));
    let outcome = portal::act(&monitor, link, action, None, start)
        .await
        .unwrap();
    let PortalOutcome::Done(view) = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(view.time_zone.name(), "Asia/Kolkata");
    let local = |t: chrono::DateTime<chrono::Utc>| {
        (t + TimeDelta::minutes(330))
            .format("%Y-%m-%d %H:%M")
            .to_string()
    };
    let ends = start + TimeDelta::hours(4);
    while sms.messages().len() < 2 {
        assert!(clock.now() < start + TimeDelta::hours(2), "no reminder");
        monitor
            .tick(clock.advance(TimeDelta::minutes(1)))
            .await
            .unwrap();
    }
    let reminder = sms.messages().pop().unwrap();
    assert_eq!(reminder.kind, AlertKind::Reminder);
    assert_eq!(
        reminder.event.as_deref(),
        Some(
            format!(
                "active since {} IST until {} IST",
                local(start),
                local(ends)
            )
            .as_str()
        )
    );
    let audit = monitor.store().recent_audit(&acme, 20).await.unwrap();
    let started = audit
        .iter()
        .find(|r| r.entry.action == "event.start")
        .expect("the start is in the audit trail");
    assert!(
        started.entry.after.contains(" IST (UTC+05:30) .. "),
        "{}",
        started.entry.after
    );
    let local = format!("{}:00 IST (UTC+05:30)", local(start));
    assert!(
        started.entry.after.contains(&local),
        "{}",
        started.entry.after
    );
}

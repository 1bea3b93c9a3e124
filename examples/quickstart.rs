//! A simulated outage, end to end, on the manual clock.
//!
//! Everything here is a simulation: a simulated mail system answers the
//! probes, notifiers print instead of sending, and the "gateway" is a hook
//! that prints. The engine, the store, the windows, the policies, the state
//! machine and the signed portal links are the real ones.
//!
//! Run it with `cargo run --example quickstart`. It finishes in well under
//! two seconds and prints the same story every run.

use std::{sync::Arc, time::Duration};

use chrono::{DateTime, TimeDelta, Utc};
use continuity::{
    Clock, Direction, ManualClock, Monitor, TenantId,
    config::{ChannelKind, Recipient, TenantConfig},
    duration::human,
    link::{LinkKey, LinkSigner},
    portal::{self, PortalAction, PortalOutcome, Until},
    sim::{SimulatedFlow, SimulatedMailSystem},
    store::EventStore,
    testing::{RecordingHook, RecordingNotifier},
};

const PORTAL: &str = "https://continuity.example.net/c/";

struct Sim {
    clock: ManualClock,
    monitor: Monitor,
    mail: Arc<SimulatedMailSystem>,
    sms: Arc<RecordingNotifier>,
    email: Arc<RecordingNotifier>,
    gateway: Arc<RecordingHook>,
    hook_calls_seen: usize,
    tenant: TenantId,
    /// The portal link of the latest SMS, as Alice would tap it.
    last_sms_link: String,
}

fn hhmm(t: DateTime<Utc>) -> String {
    t.format("%a %H:%M").to_string()
}

impl Sim {
    /// Ticks once a minute for `minutes`, printing whatever went out.
    async fn run(&mut self, minutes: i64) -> continuity::Result<()> {
        for _ in 0..minutes {
            let now = self.clock.advance(TimeDelta::minutes(1));
            self.monitor.tick(now).await?;
            self.print_outgoing(now);
        }
        Ok(())
    }

    fn print_outgoing(&mut self, now: DateTime<Utc>) {
        for m in self.sms.take() {
            println!(
                "{}  SMS to {} ({}):",
                hhmm(now),
                m.recipient.address,
                m.kind.as_str()
            );
            println!("          {}", m.headline());
            println!("          portal: {}", m.link);
            self.last_sms_link = m.link;
        }
        for m in self.email.take() {
            println!(
                "{}  e-mail to {}: \"{}\"",
                hhmm(now),
                m.recipient.address,
                m.headline()
            );
        }
        let calls = self.gateway.calls();
        for c in &calls[self.hook_calls_seen..] {
            if c.started {
                println!(
                    "{}  gateway hook: continuity event #{} STARTED for {} (hold inbound mail, open continuity access)",
                    hhmm(now),
                    c.event.id,
                    c.tenant
                );
            } else {
                println!(
                    "{}  gateway hook: continuity event #{} ENDED for {} (release queued mail)",
                    hhmm(now),
                    c.event.id,
                    c.tenant
                );
            }
        }
        self.hook_calls_seen = calls.len();
    }

    fn status(&self) -> continuity::Result<()> {
        let s = self.monitor.status(&self.tenant)?;
        for (d, name, v) in &s.readings {
            if name == "flow" {
                println!(
                    "{}  status: {d} {} -> {}",
                    hhmm(self.clock.now()),
                    v.reading,
                    if v.breached {
                        "BREACHED"
                    } else if v.reading.is_unknown() {
                        "not raised (too little to tell either way)"
                    } else {
                        "ok"
                    }
                );
            }
        }
        Ok(())
    }

    fn say(&self, text: &str) {
        println!("\n== {} — {text}", hhmm(self.clock.now()));
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> continuity::Result<()> {
    let clock = ManualClock::new("2026-03-02T08:00:00Z".parse().expect("valid time"));
    let mail = Arc::new(SimulatedMailSystem::new(
        Arc::new(clock.clone()),
        Duration::from_secs(20),
    ));
    let sms = Arc::new(RecordingNotifier::new(ChannelKind::Sms));
    let email = Arc::new(RecordingNotifier::new(ChannelKind::Email));
    let gateway = Arc::new(RecordingHook::new());
    // A fixed demo key keeps the output identical between runs; real
    // deployments load a random 32-byte secret from their secret store.
    let signer = LinkSigner::new(LinkKey::new(
        "demo-2026",
        *b"quickstart-demo-key-not-a-secret",
    )?);
    let monitor = Monitor::builder()
        .in_memory_store()
        .clock(Arc::new(clock.clone()))
        .probe(Direction::Inbound, mail.clone())
        .probe(Direction::Outbound, mail.clone())
        .notifier(sms.clone())
        .notifier(email.clone())
        .hook(gateway.clone())
        .link_signer(signer)
        .portal_url(PORTAL)
        .build()?;

    let tenant = TenantId::new("acme")?;
    let mut config = TenantConfig::new(
        tenant.clone(),
        vec![
            Recipient::new("alice-sms", ChannelKind::Sms, "+15550100"),
            Recipient::new("it-team", ChannelKind::Email, "it-team@acme-backup.example"),
        ],
    );
    config.display_name = Some("ACME Corp".into());
    monitor.register_tenant(config.clone()).await?;

    println!("continuity quickstart: a SIMULATED mail system, a manual clock, real engine.");
    println!(
        "Tenant {} ({}), probes every {} in both directions, the default configuration: an alert when the flow leaves what it learned is normal.",
        config.name(),
        tenant,
        human(config.probes.interval),
    );

    let mut sim = Sim {
        clock,
        monitor,
        mail,
        sms,
        email,
        gateway,
        hook_calls_seen: 0,
        tenant: tenant.clone(),
        last_sms_link: String::new(),
    };

    sim.say("a day of healthy flow: probes arrive after 20 s, and the monitor learns that this is normal");
    sim.run(24 * 60).await?;
    sim.status()?;

    sim.say("the organisation's Exchange server slows down: outbound mail now takes 25 min");
    sim.mail.set_flow(
        &tenant,
        Direction::Outbound,
        SimulatedFlow::Latency(Duration::from_secs(25 * 60)),
    );
    sim.run(60).await?;
    sim.status()?;

    sim.say("nobody acts yet: the alert repeats every hour while the trouble lasts");
    sim.run(121).await?;

    let link = sim
        .last_sms_link
        .strip_prefix(PORTAL)
        .unwrap_or_default()
        .to_string();
    sim.say("Alice opens the link from her latest SMS and starts a continuity event for 4 hours");
    let now = sim.clock.now();
    let outcome = portal::act(
        &sim.monitor,
        &link,
        PortalAction::StartEvent(Until::For(Duration::from_secs(4 * 3600))),
        None,
        now,
    )
    .await?;
    if let PortalOutcome::Done(view) = &outcome
        && let Some(e) = &view.active_event
    {
        println!(
            "{}  portal: event #{} active until {}",
            hhmm(now),
            e.id,
            hhmm(e.end)
        );
    }
    sim.run(1).await?;

    sim.say("two hours later the server is still slow: Alice extends the event by 2 hours");
    sim.run(119).await?;
    // By a duration: the portal counts it from the event's current end.
    let outcome = portal::act(
        &sim.monitor,
        &link,
        PortalAction::ExtendEvent(Until::For(Duration::from_secs(2 * 3600))),
        None,
        sim.clock.now(),
    )
    .await?;
    if let PortalOutcome::Done(view) = &outcome
        && let Some(e) = &view.active_event
    {
        println!(
            "{}  portal: event #{} now active until {}",
            hhmm(sim.clock.now()),
            e.id,
            hhmm(e.end)
        );
    }
    let tampered = format!("{}x", &link[..link.len() - 1]);
    let end = PortalAction::EndEvent;
    if let PortalOutcome::LinkRefused { reason } =
        portal::act(&sim.monitor, &tampered, end, None, sim.clock.now()).await?
    {
        println!(
            "{}  portal: a mistyped link is refused: portal link refused: {reason}",
            hhmm(sim.clock.now())
        );
    }

    sim.say("the Exchange team fixes the server: outbound mail flows in 20 s again");
    sim.mail.set_flow(
        &tenant,
        Direction::Outbound,
        SimulatedFlow::Latency(Duration::from_secs(20)),
    );
    sim.run(30).await?;
    sim.say("Alice ends the continuity event");
    portal::act(&sim.monitor, &link, end, None, sim.clock.now()).await?;
    sim.run(1).await?;

    sim.say("an hour later");
    sim.run(60).await?;
    sim.status()?;

    sim.say("audit log");
    for r in sim.monitor.store().audit_log(&tenant, 0, 100).await? {
        println!(
            "  #{:<2} {}  {:<16} by {}: {} -> {}",
            r.seq,
            hhmm(r.entry.at),
            r.entry.action,
            r.entry.actor,
            r.entry.before,
            r.entry.after
        );
    }
    println!(
        "\nDone: simulated {} of mail flow.",
        human(
            (sim.clock.now()
                - "2026-03-02T08:00:00Z"
                    .parse::<DateTime<Utc>>()
                    .expect("valid"))
            .to_std()
            .unwrap_or_default()
        )
    );
    Ok(())
}

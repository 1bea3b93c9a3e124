//! Property tests of the whole engine: random sequences of passive
//! observations, ticks and portal actions through a `Monitor`, checking what
//! administrators actually receive.

use std::{sync::Arc, time::Duration};

use chrono::{DateTime, TimeDelta, Utc};
use continuity_core::{
    Clock, Direction, FailureKind, ManualClock, Monitor, Observation, TenantId,
    config::{ChannelKind, Recipient, TenantConfig},
    link::{LinkKey, LinkSigner},
    machine::{Action, Actor, AlertKind},
    testing::RecordingNotifier,
};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Step {
    Traffic {
        minutes: u8,
        failures: u8,
        deliveries: u8,
        slow: bool,
    },
    Suspend {
        minutes: u16,
    },
    Lift,
    Start {
        minutes: u16,
    },
    Extend {
        minutes: u16,
    },
    End,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        8 => (1u8..40, 0u8..4, 0u8..3, any::<bool>())
            .prop_map(|(minutes, failures, deliveries, slow)| Step::Traffic { minutes, failures, deliveries, slow }),
        1 => (1u16..180).prop_map(|minutes| Step::Suspend { minutes }),
        1 => Just(Step::Lift),
        1 => (1u16..240).prop_map(|minutes| Step::Start { minutes }),
        1 => (1u16..240).prop_map(|minutes| Step::Extend { minutes }),
        1 => Just(Step::End),
    ]
}

const TICK: TimeDelta = TimeDelta::minutes(1);

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn what_administrators_receive_follows_the_rules(
        steps in proptest::collection::vec(step(), 1..24),
        raise_after in 1u32..3,
        clear_after in 1u32..4,
        repeat_minutes in prop_oneof![Just(30i64), Just(60i64)],
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        runtime.block_on(async move {
            let start: DateTime<Utc> = "2026-06-01T00:00:00Z".parse().unwrap();
            let clock = ManualClock::new(start);
            let sms = Arc::new(RecordingNotifier::new(ChannelKind::Sms));
            let monitor = Monitor::builder()
                .in_memory_store()
                .clock(Arc::new(clock.clone()))
                .notifier(sms.clone())
                .link_signer(LinkSigner::new(LinkKey::new("p", [5u8; 32]).unwrap()))
                .portal_url("https://continuity.example.net/c/")
                .build()
                .unwrap();
            let tenant = TenantId::new("prop").unwrap();
            let mut config = TenantConfig::new(tenant.clone(), vec![Recipient::new("ops", ChannelKind::Sms, "+15550100")]);
            for d in [&mut config.inbound, &mut config.outbound] {
                d.window = Duration::from_secs(600);
                d.raise_after = raise_after;
                d.clear_after = clear_after;
                if let Some(l) = d.latency.as_mut() {
                    l.limit = Duration::from_secs(120);
                }
            }
            config.repeat_interval = Duration::from_secs(repeat_minutes as u64 * 60);
            config.limits.max_event_duration = Duration::from_secs(6 * 3600);
            monitor.register_tenant(config).await.unwrap();
            let repeat = TimeDelta::minutes(repeat_minutes);
            let actor = Actor::Operator { name: "prop".into() };

            let mut last_alert: Option<DateTime<Utc>> = None;
            // Suspension intervals as the actions set them: [from, to).
            let mut suspended: Vec<(DateTime<Utc>, DateTime<Utc>)> = Vec::new();
            let in_suspension = |t: DateTime<Utc>, intervals: &[(DateTime<Utc>, DateTime<Utc>)]| {
                intervals.iter().any(|(from, to)| *from <= t && t < *to)
            };
            // Since when an alert has been owed to someone (conditions holding, not suspended).
            let mut owed_since: Option<DateTime<Utc>> = None;
            for s in steps {
                match s {
                    Step::Traffic { minutes, failures, deliveries, slow } => {
                        for _ in 0..minutes {
                            let now = clock.advance(TICK);
                            for i in 0..failures {
                                let d = if i % 2 == 0 { Direction::Inbound } else { Direction::Outbound };
                                monitor.observe(Observation::failed(tenant.clone(), d, now, FailureKind::Refused)).unwrap();
                            }
                            for _ in 0..deliveries {
                                let latency = Duration::from_secs(if slow { 600 } else { 10 });
                                monitor.observe(Observation::delivered(tenant.clone(), Direction::Outbound, now, latency)).unwrap();
                            }
                            monitor.tick(now).await.unwrap();
                            let state = monitor.status(&tenant).unwrap().state.state;
                            for m in sms.take() {
                                // Delivered in this tick, at `now`.
                                prop_assert!(!in_suspension(now, &suspended), "sent while suspended: {m:?} at {now}");
                                if m.kind == AlertKind::Reminder {
                                    let last = last_alert.expect("a reminder follows an alert");
                                    prop_assert!(m.created_at - last >= repeat, "reminder {} after {}", m.created_at, last);
                                }
                                last_alert = Some(m.created_at);
                            }
                            if state.any_active() && !state.suspended_at(now) {
                                let since = *owed_since.get_or_insert(now);
                                let reference = last_alert.map_or(since, |l| l.max(since));
                                prop_assert!(now - reference <= repeat + TICK, "no alert for {} at {now}", now - reference);
                            } else {
                                owed_since = None;
                            }
                            if let Some(e) = &state.active_event {
                                prop_assert!(e.end > now && e.end >= e.start, "{e:?} at {now}");
                            }
                        }
                    }
                    other => {
                        let now = clock.now();
                        let action = match other {
                            Step::Suspend { minutes } => Action::Suspend { until: now + TimeDelta::minutes(minutes.into()) },
                            Step::Lift => Action::LiftSuspension,
                            Step::Start { minutes } => Action::StartEvent { until: now + TimeDelta::minutes(minutes.into()) },
                            Step::Extend { minutes } => {
                                let end = monitor.status(&tenant).unwrap().state.state.active_event.map_or(now, |e| e.end);
                                Action::ExtendEvent { until: end + TimeDelta::minutes(minutes.into()) }
                            }
                            Step::End => Action::EndEvent,
                            Step::Traffic { .. } => unreachable!(),
                        };
                        let before = monitor.status(&tenant).unwrap().state.state;
                        let suspending = match &action {
                            Action::Suspend { until } => Some(*until),
                            _ => None,
                        };
                        let lifting = matches!(action, Action::LiftSuspension);
                        match monitor.act(&tenant, actor.clone(), action, None, now).await {
                            Ok(out) => {
                                if let (Some(b), Some(a)) = (&before.active_event, &out.state.active_event)
                                    && a.id == b.id
                                {
                                    prop_assert!(a.end >= b.end, "an action shortened the event");
                                }
                                // A new suspension or a lift ends the one in force now.
                                if suspending.is_some() || lifting {
                                    for (_, to) in suspended.iter_mut() {
                                        if *to > now {
                                            *to = now;
                                        }
                                    }
                                }
                                if let Some(until) = suspending {
                                    suspended.push((now, until));
                                }
                                // An alert sent by the action (a lifted suspension) counts.
                                for m in sms.take() {
                                    last_alert = Some(m.created_at);
                                }
                                if out.state.suspended_at(now) {
                                    owed_since = None;
                                }
                            }
                            Err(continuity_core::Error::InvalidTransition { .. }) => {}
                            Err(e) => prop_assert!(false, "unexpected error {e}"),
                        }
                    }
                }
            }
            Ok(())
        })?;
    }
}

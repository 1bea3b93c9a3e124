//! Unit tests of the portal API against a monitor on a manual clock: views,
//! actions, limits, two administrators at once, refused links and the
//! embedder's hook.

use std::{sync::Arc, time::Duration};

use chrono::{DateTime, TimeDelta, Utc};

use super::*;
use crate::{
    ManualClock, Observation,
    config::{ChannelKind, Recipient, TenantConfig},
    link::{LinkClaims, LinkKey, LinkOrigin, LinkSigner},
    machine::{Actor, AlertKind, EventLimits},
};

const HOUR: Duration = Duration::from_secs(3_600);

fn t0() -> DateTime<Utc> {
    "2026-03-02T08:00:00Z".parse().unwrap()
}

fn tenant(name: &str) -> TenantId {
    TenantId::new(name).unwrap()
}

async fn monitor() -> Monitor {
    monitor_with_hook(Arc::new(crate::testing::RecordingHook::new())).await
}

async fn monitor_with_hook(hook: Arc<crate::testing::RecordingHook>) -> Monitor {
    monitor_on(ManualClock::new(t0()), hook).await
}

/// The fixture's monitor on `clock`, for tests that move time on.
async fn monitor_on(clock: ManualClock, hook: Arc<crate::testing::RecordingHook>) -> Monitor {
    let monitor = Monitor::builder()
        .in_memory_store()
        .hook(hook)
        .clock(Arc::new(clock))
        .link_signer(LinkSigner::new(LinkKey::new("k2", [2u8; 32]).unwrap()))
        .portal_url("https://continuity.example.net/c/")
        .notifier(Arc::new(crate::testing::RecordingNotifier::new(
            ChannelKind::Sms,
        )))
        .build()
        .unwrap();
    for name in ["acme", "globex"] {
        let mut config = TenantConfig::new(
            tenant(name),
            vec![Recipient::new("ops", ChannelKind::Sms, "+15550100")],
        );
        config.limits = EventLimits {
            max_event_duration: 48 * HOUR,
            max_schedule_ahead: 7 * 24 * HOUR,
            max_suspension: 24 * HOUR,
        };
        // An absolute limit the view shows figures against.
        for d in [&mut config.inbound, &mut config.outbound] {
            d.latency = Some(crate::policy::LatencyThreshold::new(
                crate::policy::LatencyStatistic::P95,
                HOUR / 2,
            ));
        }
        monitor.register_tenant(config).await.unwrap();
    }
    monitor
}

fn link(monitor: &Monitor, name: &str, at: DateTime<Utc>) -> String {
    let claims = LinkClaims {
        tenant: tenant(name),
        alert_id: 4,
        recipient: "ops".into(),
    };
    monitor.link_signer().sign(&claims, at).unwrap()
}

fn done(outcome: PortalOutcome) -> Box<PortalView> {
    match outcome {
        PortalOutcome::Done(view) => view,
        other => panic!("expected done, got {other:?}"),
    }
}

fn refused_link(outcome: PortalOutcome) -> LinkRejection {
    match outcome {
        PortalOutcome::LinkRefused { reason } => reason,
        other => panic!("expected a refused link, got {other:?}"),
    }
}

#[tokio::test]
async fn the_view_shows_figures_against_thresholds_and_the_link() {
    let monitor = monitor().await;
    let acme = tenant("acme");
    for i in 0..18 {
        let at = t0() - TimeDelta::minutes(50) + TimeDelta::minutes(i);
        monitor
            .observe(Observation::delivered(
                acme.clone(),
                Direction::Outbound,
                at,
                Duration::from_secs(42 * 60),
            ))
            .unwrap();
    }
    let token = link(&monitor, "acme", t0());
    let view = done(open(&monitor, &token, Some(&acme), t0()).await.unwrap());
    assert_eq!(view.tenant, acme);
    assert_eq!(view.recipient, "ops");
    assert_eq!(view.organisation, "acme");
    assert_eq!(view.recipient_name, None);
    assert_eq!(view.alert_id, 4);
    assert_eq!(view.expires_at, t0() + TimeDelta::hours(24));
    let latency = view
        .conditions
        .iter()
        .find(|c| c.direction == Direction::Outbound && c.name == "latency")
        .expect("an outbound latency condition");
    assert!(latency.breached);
    assert_eq!(
        latency.summary,
        "outbound p95 latency 42 min, threshold 30 min, 18 samples in the last 1 h"
    );
    assert!(
        view.conditions
            .iter()
            .any(|c| c.direction == Direction::Inbound),
        "both directions are shown: {:?}",
        view.conditions
    );
    assert!(view.active_event.is_none() && view.scheduled_event.is_none());
    assert!(view.suspension.is_none());
    assert_eq!((view.incident.as_ref(), view.last_alert_at), (None, None));
    assert!(view.recent_alerts.is_empty());

    // The breach raises after two evaluations; the view shows the alert.
    monitor.tick(t0()).await.unwrap();
    let later = t0() + TimeDelta::minutes(1);
    monitor.tick(later).await.unwrap();
    let view = done(open(&monitor, &token, None, later).await.unwrap());
    let incident = view.incident.as_ref().expect("an open incident");
    assert_eq!(incident.alerts_sent, 1);
    assert!(incident.last_alert_at.is_some());
    assert_eq!(view.last_alert_at, incident.last_alert_at);
    let alert = match view.recent_alerts.as_slice() {
        [alert] => alert,
        other => panic!("one alert so far: {other:?}"),
    };
    assert_eq!(
        (alert.kind, Some(alert.at)),
        (AlertKind::Raised, incident.last_alert_at)
    );
    assert!(
        alert
            .active
            .iter()
            .any(|c| c.direction == Direction::Outbound && c.name == "latency"),
        "{alert:?}"
    );
    assert!(
        view.conditions
            .iter()
            .any(|c| c.raised && c.name == "latency")
    );
}

#[tokio::test]
async fn every_action_goes_through_with_presets_and_is_audited_as_the_recipient() {
    let monitor = monitor().await;
    let token = link(&monitor, "acme", t0());
    let now = t0();
    let [one, four, day] = [0, 1, 2].map(|i| DURATION_PRESETS[i].duration);
    assert_eq!((one, four, day), (HOUR, 4 * HOUR, 24 * HOUR));

    let v = done(
        act(
            &monitor,
            &token,
            PortalAction::StartEvent(Until::For(four)),
            None,
            now,
        )
        .await
        .unwrap(),
    );
    assert_eq!(
        v.active_event.as_ref().unwrap().end,
        now + TimeDelta::hours(4)
    );
    let v = done(
        act(
            &monitor,
            &token,
            PortalAction::ExtendEvent(Until::For(one)),
            Some(v.version),
            now,
        )
        .await
        .unwrap(),
    );
    // An extension counts from the current end.
    assert_eq!(
        v.active_event.as_ref().unwrap().end,
        now + TimeDelta::hours(5)
    );
    let v = done(
        act(
            &monitor,
            &token,
            PortalAction::EndEvent,
            Some(v.version),
            now,
        )
        .await
        .unwrap(),
    );
    assert!(v.active_event.is_none());
    let start = now + TimeDelta::hours(2);
    let v = done(
        act(
            &monitor,
            &token,
            PortalAction::ScheduleEvent {
                start,
                end: Until::For(day),
            },
            Some(v.version),
            now,
        )
        .await
        .unwrap(),
    );
    let planned = v.scheduled_event.as_ref().unwrap();
    assert_eq!(
        (planned.start, planned.end),
        (start, start + TimeDelta::hours(24))
    );
    let v = done(
        act(
            &monitor,
            &token,
            PortalAction::CancelScheduledEvent,
            Some(v.version),
            now,
        )
        .await
        .unwrap(),
    );
    assert!(v.scheduled_event.is_none());
    let v = done(
        act(
            &monitor,
            &token,
            PortalAction::Suspend(Until::For(one)),
            Some(v.version),
            now,
        )
        .await
        .unwrap(),
    );
    assert_eq!(
        v.suspension.as_ref().unwrap().until,
        now + TimeDelta::hours(1)
    );
    let v = done(
        act(
            &monitor,
            &token,
            PortalAction::LiftSuspension,
            Some(v.version),
            now,
        )
        .await
        .unwrap(),
    );
    assert!(v.suspension.is_none());

    let log = monitor
        .store()
        .audit_log(&tenant("acme"), 0, 100)
        .await
        .unwrap();
    let names: Vec<_> = log.iter().map(|r| r.entry.action.as_str()).collect();
    assert_eq!(
        names,
        [
            "event.start",
            "event.extend",
            "event.end",
            "event.schedule",
            "event.cancel",
            "suspension.start",
            "suspension.lift"
        ]
    );
    for record in &log {
        match &record.entry.actor {
            Actor::Link {
                recipient,
                alert_id,
                key_id,
                ..
            } => {
                assert_eq!(
                    (recipient.as_str(), *alert_id, key_id.as_str()),
                    ("ops", 4, "k2")
                );
            }
            other => panic!("audited as {other:?}"),
        }
        assert_ne!(record.entry.before, record.entry.after);
    }
}

#[tokio::test]
async fn two_administrators_on_the_same_version_one_wins_the_other_sees_the_change() {
    let monitor = monitor().await;
    let token = link(&monitor, "acme", t0());
    let seen = done(open(&monitor, &token, None, t0()).await.unwrap()).version;
    let (a, b) = tokio::join!(
        act(
            &monitor,
            &token,
            PortalAction::StartEvent(Until::For(HOUR)),
            Some(seen),
            t0()
        ),
        act(
            &monitor,
            &token,
            PortalAction::Suspend(Until::For(4 * HOUR)),
            Some(seen),
            t0()
        ),
    );
    let outcomes = [a.unwrap(), b.unwrap()];
    let winners: Vec<_> = outcomes
        .iter()
        .filter(|o| matches!(o, PortalOutcome::Done(_)))
        .collect();
    let losers: Vec<_> = outcomes
        .iter()
        .filter_map(|o| match o {
            PortalOutcome::Conflict { view } => Some(view),
            _ => None,
        })
        .collect();
    assert_eq!((winners.len(), losers.len()), (1, 1), "{outcomes:?}");
    let PortalOutcome::Done(won) = winners[0] else {
        unreachable!()
    };
    // The loser is shown the state as the winner left it, and nothing of its own.
    assert_eq!(losers[0].version, won.version);
    assert_eq!(losers[0].active_event, won.active_event);
    assert_eq!(losers[0].suspension, won.suspension);
    assert!(won.active_event.is_some() != won.suspension.is_some());
    let log = monitor
        .store()
        .audit_log(&tenant("acme"), 0, 100)
        .await
        .unwrap();
    assert_eq!(log.len(), 1, "exactly one action was applied");
}

#[tokio::test]
async fn actions_beyond_the_limits_are_refused_with_the_reason_and_change_nothing() {
    let monitor = monitor().await;
    let token = link(&monitor, "acme", t0());
    let before = done(open(&monitor, &token, None, t0()).await.unwrap());
    let cases = [
        PortalAction::StartEvent(Until::For(49 * HOUR)),
        PortalAction::Suspend(Until::For(25 * HOUR)),
        PortalAction::ScheduleEvent {
            start: t0() + TimeDelta::days(8),
            end: Until::For(HOUR),
        },
        PortalAction::ScheduleEvent {
            start: t0() - TimeDelta::hours(1),
            end: Until::For(HOUR),
        },
        PortalAction::StartEvent(Until::At(t0() - TimeDelta::minutes(1))),
        PortalAction::EndEvent,
        PortalAction::ExtendEvent(Until::For(HOUR)),
        PortalAction::CancelScheduledEvent,
        PortalAction::LiftSuspension,
    ];
    let mut reasons = Vec::new();
    for action in cases {
        match act(&monitor, &token, action, Some(before.version), t0())
            .await
            .unwrap()
        {
            PortalOutcome::Refused { reason, view } => {
                assert_eq!(view, before, "{action:?} changed the state");
                reasons.push(reason);
            }
            other => panic!("{action:?}: expected refused, got {other:?}"),
        }
    }
    assert!(
        matches!(reasons[0], Rejection::TooLong { max, .. } if max == 48 * HOUR),
        "{:?}",
        reasons[0]
    );
    assert!(
        matches!(reasons[1], Rejection::TooLong { max, .. } if max == 24 * HOUR),
        "{:?}",
        reasons[1]
    );
    assert!(
        matches!(reasons[2], Rejection::TooFarAhead { .. }),
        "{:?}",
        reasons[2]
    );
    assert_eq!(reasons[3], Rejection::StartNotInFuture);
    assert_eq!(reasons[4], Rejection::EndNotAfterStart);
    assert_eq!(reasons[5], Rejection::NoActiveEvent);
    assert_eq!(reasons[6], Rejection::NoActiveEvent);
    assert_eq!(reasons[7], Rejection::NoScheduledEvent);
    assert_eq!(reasons[8], Rejection::NotSuspended);
    assert!(reasons[0].to_string().contains("longer than the maximum"));

    // A duration the calendar cannot hold is refused before the machine sees it.
    let huge = Duration::from_secs(u64::MAX);
    for action in [
        PortalAction::StartEvent(Until::For(huge)),
        PortalAction::Suspend(Until::For(huge)),
        PortalAction::ScheduleEvent {
            start: t0() + TimeDelta::hours(1),
            end: Until::For(huge),
        },
    ] {
        assert!(matches!(
            act(&monitor, &token, action, None, t0()).await.unwrap(),
            PortalOutcome::OutOfRange { .. }
        ));
    }
    assert!(
        monitor
            .store()
            .audit_log(&tenant("acme"), 0, 100)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn each_kind_of_bad_link_is_refused_with_its_own_reason() {
    let monitor = monitor().await;
    let acme = tenant("acme");
    let token = link(&monitor, "acme", t0());

    // Expired: the message says a fresh link comes with the next alert.
    let later = t0() + TimeDelta::hours(24) + TimeDelta::seconds(1);
    let expired = refused_link(open(&monitor, &token, None, later).await.unwrap());
    assert!(
        matches!(expired, LinkRejection::Expired { .. }),
        "{expired:?}"
    );
    assert!(
        expired
            .to_string()
            .contains("A fresh link comes with the next alert")
    );
    let expired = refused_link(
        act(&monitor, &token, PortalAction::EndEvent, None, later)
            .await
            .unwrap(),
    );
    assert!(matches!(expired, LinkRejection::Expired { .. }));

    // Tampered: one character of the signature changed.
    let mut tampered = token.clone().into_bytes();
    let last = tampered.len() - 1;
    tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    let reason = refused_link(open(&monitor, &tampered, None, t0()).await.unwrap());
    assert_eq!(reason, LinkRejection::BadSignature);
    let reason = refused_link(
        act(
            &monitor,
            &tampered,
            PortalAction::LiftSuspension,
            None,
            t0(),
        )
        .await
        .unwrap(),
    );
    assert_eq!(reason, LinkRejection::BadSignature);

    // Garbage.
    for garbage in ["", "not-a-token", "%%%", &"A".repeat(10_000)] {
        assert_eq!(
            refused_link(open(&monitor, garbage, None, t0()).await.unwrap()),
            LinkRejection::Malformed
        );
    }

    // Another tenant's link opened under this tenant.
    let globex = link(&monitor, "globex", t0());
    assert_eq!(
        refused_link(open(&monitor, &globex, Some(&acme), t0()).await.unwrap()),
        LinkRejection::WrongTenant
    );

    // Signed with a key that was retired (no longer among the verification keys).
    let retired = LinkSigner::new(LinkKey::new("k1", [1u8; 32]).unwrap());
    let old = retired
        .sign(
            &LinkClaims {
                tenant: acme.clone(),
                alert_id: 1,
                recipient: "ops".into(),
            },
            t0(),
        )
        .unwrap();
    let reason = refused_link(open(&monitor, &old, None, t0()).await.unwrap());
    assert_eq!(
        reason,
        LinkRejection::UnknownKey {
            key_id: "k1".into()
        }
    );
    assert!(reason.to_string().contains("retired"));
    let reason = refused_link(
        act(
            &monitor,
            &old,
            PortalAction::StartEvent(Until::For(HOUR)),
            None,
            t0(),
        )
        .await
        .unwrap(),
    );
    assert_eq!(
        reason,
        LinkRejection::UnknownKey {
            key_id: "k1".into()
        }
    );

    // None of these changed anything.
    assert!(
        monitor
            .store()
            .audit_log(&acme, 0, 100)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn starting_and_ending_through_the_portal_calls_the_embedders_hook() {
    let hook = Arc::new(crate::testing::RecordingHook::new());
    let monitor = monitor_with_hook(hook.clone()).await;
    let token = link(&monitor, "acme", t0());
    let v = done(
        act(
            &monitor,
            &token,
            PortalAction::StartEvent(Until::For(HOUR)),
            None,
            t0(),
        )
        .await
        .unwrap(),
    );
    let id = v.active_event.as_ref().unwrap().id;
    monitor.tick(t0()).await.unwrap();
    let later = t0() + TimeDelta::minutes(10);
    done(
        act(
            &monitor,
            &token,
            PortalAction::EndEvent,
            Some(v.version),
            later,
        )
        .await
        .unwrap(),
    );
    monitor.tick(later).await.unwrap();
    let calls: Vec<_> = hook
        .calls()
        .iter()
        .map(|c| (c.started, c.event.id))
        .collect();
    assert_eq!(calls, [(true, id), (false, id)]);
    assert!(hook.calls().iter().all(|c| c.tenant == tenant("acme")));
}

#[tokio::test]
async fn a_standing_link_opens_the_portal_without_an_alert_and_is_audited_as_such() {
    let monitor = monitor().await;
    let acme = tenant("acme");
    // Issued to someone who is not a configured recipient.
    let standing = monitor
        .standing_link(&acme, "jane@acme.example", None)
        .unwrap();
    assert_eq!(
        standing.url,
        format!("https://continuity.example.net/c/{}", standing.token)
    );
    assert_eq!(standing.expires_at, t0() + TimeDelta::hours(24));
    let token = standing.token;

    let v = done(open(&monitor, &token, Some(&acme), t0()).await.unwrap());
    assert_eq!(v.link_origin, LinkOrigin::Standing);
    assert_eq!((v.recipient.as_str(), v.alert_id), ("jane@acme.example", 0));
    assert_eq!(v.recipient_name, None);
    assert_eq!(v.expires_at, standing.expires_at);

    let later = t0() + TimeDelta::minutes(5);
    let v = done(
        act(
            &monitor,
            &token,
            PortalAction::StartEvent(Until::For(HOUR)),
            Some(v.version),
            later,
        )
        .await
        .unwrap(),
    );
    assert_eq!(
        v.active_event.as_ref().unwrap().end,
        later + TimeDelta::hours(1)
    );
    let v = done(
        act(
            &monitor,
            &token,
            PortalAction::ExtendEvent(Until::For(HOUR)),
            Some(v.version),
            later,
        )
        .await
        .unwrap(),
    );
    assert_eq!(
        v.active_event.as_ref().unwrap().end,
        later + TimeDelta::hours(2)
    );
    let v = done(
        act(
            &monitor,
            &token,
            PortalAction::EndEvent,
            Some(v.version),
            later,
        )
        .await
        .unwrap(),
    );
    assert!(v.active_event.is_none());
    let v = done(
        act(
            &monitor,
            &token,
            PortalAction::Suspend(Until::For(HOUR)),
            Some(v.version),
            later,
        )
        .await
        .unwrap(),
    );
    assert!(v.suspension.is_some());

    let log = monitor.store().audit_log(&acme, 0, 100).await.unwrap();
    let names: Vec<_> = log.iter().map(|r| r.entry.action.as_str()).collect();
    assert_eq!(
        names,
        [
            "event.start",
            "event.extend",
            "event.end",
            "suspension.start"
        ]
    );
    for record in &log {
        assert_eq!(
            record.entry.actor,
            Actor::StandingLink {
                issued_to: "jane@acme.example".into(),
                key_id: "k2".into(),
                issued_at: t0(),
            }
        );
        assert_eq!(
            record.entry.actor.to_string(),
            "jane@acme.example (standing link)"
        );
    }

    // It lives by its validity and its tenant, like any link.
    let expired = t0() + TimeDelta::hours(24);
    assert!(matches!(
        refused_link(open(&monitor, &token, None, expired).await.unwrap()),
        LinkRejection::Expired { .. }
    ));
    assert_eq!(
        refused_link(
            open(&monitor, &token, Some(&tenant("globex")), t0())
                .await
                .unwrap()
        ),
        LinkRejection::WrongTenant
    );
}

#[tokio::test]
async fn standing_links_are_bounded_and_only_for_served_tenants() {
    let monitor = monitor().await;
    let acme = tenant("acme");
    let week = monitor
        .standing_link(&acme, "noc", Some(LinkSigner::MAX_STANDING_TTL))
        .unwrap();
    assert_eq!(week.expires_at, t0() + TimeDelta::days(7));
    let e = monitor
        .standing_link(&acme, "noc", Some(LinkSigner::MAX_STANDING_TTL + HOUR))
        .unwrap_err()
        .to_string();
    assert!(e.contains("link.valid_for") && e.contains("7 days"), "{e}");
    let e = monitor
        .standing_link(&acme, "", None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("link.issued_to"), "{e}");
    assert!(matches!(
        monitor.standing_link(&tenant("initech"), "noc", None),
        Err(Error::UnknownTenant { .. })
    ));
}

#[tokio::test]
async fn the_view_carries_the_audit_trail_with_the_alerts_sent_and_resolved() {
    let clock = ManualClock::new(t0());
    let monitor = monitor_on(
        clock.clone(),
        Arc::new(crate::testing::RecordingHook::new()),
    )
    .await;
    let acme = tenant("acme");
    crate::testing::late_outbound_mail(&monitor, &acme, t0());
    // The breach raises after two evaluations.
    monitor.tick(t0()).await.unwrap();
    monitor.tick(t0() + TimeDelta::minutes(1)).await.unwrap();
    let token = link(&monitor, "acme", t0());
    let at = t0() + TimeDelta::minutes(2);
    done(
        act(
            &monitor,
            &token,
            PortalAction::StartEvent(Until::For(HOUR)),
            None,
            at,
        )
        .await
        .unwrap(),
    );
    // Fast mail for two hours: the late samples leave the window, all clear.
    let mut now = at;
    for _ in 0..12 {
        now += TimeDelta::minutes(10);
        clock.set(now);
        for i in 0..5 {
            monitor
                .observe(Observation::delivered(
                    acme.clone(),
                    Direction::Outbound,
                    now - TimeDelta::minutes(i),
                    Duration::from_secs(20),
                ))
                .unwrap();
        }
        monitor.tick(now).await.unwrap();
    }
    let v = done(open(&monitor, &token, None, now).await.unwrap());
    let trail: Vec<_> = v
        .audit
        .iter()
        .map(|r| (r.entry.action.as_str(), r.entry.actor.to_string()))
        .collect();
    assert_eq!(
        trail,
        [
            ("event.expired", "system".to_owned()),
            ("alert.resolved", "system".to_owned()),
            ("event.start", "ops (link of alert #4)".to_owned()),
            ("alert.raised", "system".to_owned()),
        ],
        "{:#?}",
        v.audit
    );
    assert_eq!(
        v.audit[1].entry.after,
        "alert #1 resolved: all clear; sent to ops"
    );
    assert_eq!(
        v.audit[3].entry.after,
        "alert #0 raised: outbound latency; sent to ops"
    );
    assert!(
        v.audit.windows(2).all(|w| w[0].seq > w[1].seq),
        "newest first"
    );
}

//! Unit tests of the state machine: hysteresis, the alert schedule,
//! suspensions, continuity events and the actions' rejections.

use super::*;
use chrono::TimeDelta;

use crate::error::Error;

const MIN: i64 = 60;

fn t(mins: i64) -> DateTime<Utc> {
    "2026-03-02T08:00:00Z".parse::<DateTime<Utc>>().unwrap() + TimeDelta::seconds(mins * MIN)
}

fn rules() -> Rules {
    Rules {
        hysteresis: [(2, 3), (2, 3)],
        repeat_interval: Duration::from_secs(3600),
        limits: EventLimits::default(),
        time_zone: Default::default(),
    }
}

fn admin() -> Actor {
    Actor::Operator {
        name: "alice".into(),
    }
}

fn health(breached: bool) -> Health {
    if breached {
        Health::Breached
    } else {
        Health::Healthy
    }
}

fn eval(breached: bool) -> [Evaluation<'static>; 1] {
    [Evaluation {
        direction: Direction::Outbound,
        name: "latency",
        health: health(breached),
        debounced: false,
    }]
}

fn tick(state: &mut TenantState, now: DateTime<Utc>, breached: bool) -> Vec<Effect> {
    apply_in_place(
        state,
        &Input::Tick {
            evaluations: &eval(breached),
        },
        now,
        &rules(),
    )
    .unwrap()
}

fn act(state: &mut TenantState, now: DateTime<Utc>, action: Action) -> Result<Vec<Effect>> {
    apply_in_place(
        state,
        &Input::Act {
            action,
            actor: admin(),
        },
        now,
        &rules(),
    )
}

fn alerts(fx: &[Effect]) -> Vec<AlertKind> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::Alert(a) => Some(a.kind),
            _ => None,
        })
        .collect()
}

fn rejection(r: Result<Vec<Effect>>) -> Rejection {
    match r {
        Err(Error::InvalidTransition { reason }) => reason,
        other => panic!("expected a rejection, got {other:?}"),
    }
}

/// A state whose outbound latency condition raised at minute 1 (alert #0 sent).
fn raised() -> TenantState {
    let mut s = TenantState::default();
    assert!(alerts(&tick(&mut s, t(0), true)).is_empty());
    assert_eq!(alerts(&tick(&mut s, t(1), true)), vec![AlertKind::Raised]);
    s
}

#[test]
fn condition_raises_after_raise_after_consecutive_breaches() {
    let mut s = TenantState::default();
    tick(&mut s, t(0), true);
    tick(&mut s, t(1), false); // streak broken
    assert!(alerts(&tick(&mut s, t(2), true)).is_empty());
    let fx = tick(&mut s, t(3), true);
    assert_eq!(alerts(&fx), vec![AlertKind::Raised]);
    let c = s.condition(Direction::Outbound, "latency").unwrap();
    assert!(c.active);
    assert_eq!(c.since, Some(t(3)));
    match &fx[0] {
        Effect::Alert(a) => {
            assert_eq!(a.id, 0);
            assert_eq!(a.newly_raised.len(), 1);
            assert_eq!(a.active, a.newly_raised);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn condition_clears_after_clear_after_healthy_evaluations_and_resolves() {
    let mut s = raised();
    tick(&mut s, t(2), false);
    tick(&mut s, t(3), false);
    tick(&mut s, t(4), true); // relapse resets the healthy streak
    tick(&mut s, t(5), false);
    assert!(alerts(&tick(&mut s, t(6), false)).is_empty());
    assert!(s.any_active());
    let fx = tick(&mut s, t(7), false);
    assert_eq!(alerts(&fx), vec![AlertKind::Resolved]);
    assert!(!s.any_active());
    assert!(s.incident.is_none());
}

#[test]
fn a_debounced_condition_raises_and_clears_on_its_first_evaluation() {
    let tick = |s: &mut TenantState, at, breached| {
        let [mut e] = eval(breached);
        e.debounced = true;
        apply_in_place(s, &Input::Tick { evaluations: &[e] }, at, &rules()).unwrap()
    };
    let mut s = TenantState::default();
    assert!(rules().hysteresis[Direction::Outbound.index()].0 > 1);
    assert_eq!(alerts(&tick(&mut s, t(0), true)), vec![AlertKind::Raised]);
    assert_eq!(
        alerts(&tick(&mut s, t(1), false)),
        vec![AlertKind::Resolved]
    );
    assert!(!s.any_active());
}

#[test]
fn reminders_repeat_every_interval_and_not_sooner() {
    let mut s = raised();
    for m in 2..61 {
        assert!(alerts(&tick(&mut s, t(m), true)).is_empty(), "minute {m}");
    }
    assert_eq!(
        alerts(&tick(&mut s, t(61), true)),
        vec![AlertKind::Reminder]
    );
    assert!(alerts(&tick(&mut s, t(62), true)).is_empty());
    assert_eq!(
        alerts(&tick(&mut s, t(121), true)),
        vec![AlertKind::Reminder]
    );
    assert_eq!(s.next_alert_id, 3);
}

#[test]
fn a_new_condition_alerts_at_once_while_another_holds() {
    let mut s = raised();
    let both = |b: bool| {
        [
            Evaluation {
                direction: Direction::Outbound,
                name: "latency",
                health: Health::Breached,
                debounced: false,
            },
            Evaluation {
                direction: Direction::Inbound,
                name: "failures",
                health: health(b),
                debounced: false,
            },
        ]
    };
    let r = rules();
    apply_in_place(
        &mut s,
        &Input::Tick {
            evaluations: &both(true),
        },
        t(5),
        &r,
    )
    .unwrap();
    let fx = apply_in_place(
        &mut s,
        &Input::Tick {
            evaluations: &both(true),
        },
        t(6),
        &r,
    )
    .unwrap();
    assert_eq!(alerts(&fx), vec![AlertKind::Raised]);
    match &fx[0] {
        Effect::Alert(a) => {
            assert_eq!(a.active.len(), 2);
            assert_eq!(
                a.newly_raised,
                vec![ConditionRef {
                    direction: Direction::Inbound,
                    name: "failures".into()
                }]
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn nothing_is_sent_while_suspended_and_the_end_of_a_suspension_alerts_at_once() {
    let mut s = TenantState::default();
    act(&mut s, t(0), Action::Suspend { until: t(90) }).unwrap();
    for m in 1..90 {
        assert!(alerts(&tick(&mut s, t(m), true)).is_empty(), "minute {m}");
    }
    assert!(s.any_active(), "conditions still raise while suspended");
    let fx = tick(&mut s, t(90), true);
    assert_eq!(alerts(&fx), vec![AlertKind::Raised]);
    assert!(
        fx.iter()
            .any(|e| matches!(e, Effect::Audit(a) if a.action == "suspension.expired"))
    );
    assert!(s.suspension.is_none());
}

#[test]
fn a_short_suspension_ending_while_a_condition_holds_alerts_at_once() {
    let mut s = raised(); // alert at minute 1
    act(&mut s, t(2), Action::Suspend { until: t(20) }).unwrap();
    for m in 3..20 {
        assert!(alerts(&tick(&mut s, t(m), true)).is_empty());
    }
    assert_eq!(
        alerts(&tick(&mut s, t(20), true)),
        vec![AlertKind::Raised],
        "not at the next hourly slot"
    );
    assert!(alerts(&tick(&mut s, t(21), true)).is_empty());
    assert_eq!(
        alerts(&tick(&mut s, t(80), true)),
        vec![AlertKind::Reminder]
    );
}

#[test]
fn lifting_a_suspension_alerts_at_once_if_a_condition_holds() {
    let mut s = raised();
    act(&mut s, t(5), Action::Suspend { until: t(600) }).unwrap();
    assert!(
        alerts(&tick(&mut s, t(70), true)).is_empty(),
        "reminder suppressed"
    );
    let fx = act(&mut s, t(75), Action::LiftSuspension).unwrap();
    assert_eq!(alerts(&fx), vec![AlertKind::Raised]);
    assert_eq!(
        rejection(act(&mut s, t(76), Action::LiftSuspension)),
        Rejection::NotSuspended
    );
}

#[test]
fn no_resolved_notice_when_nobody_was_alerted() {
    let mut s = TenantState::default();
    act(&mut s, t(0), Action::Suspend { until: t(30) }).unwrap();
    tick(&mut s, t(1), true);
    tick(&mut s, t(2), true);
    for m in 3..6 {
        tick(&mut s, t(m), false);
    }
    assert!(!s.any_active());
    assert!(alerts(&tick(&mut s, t(40), false)).is_empty());
}

#[test]
fn suspension_limits_are_enforced() {
    let mut s = TenantState::default();
    assert_eq!(
        rejection(act(&mut s, t(10), Action::Suspend { until: t(5) })),
        Rejection::EndNotAfterStart
    );
    let too_long = act(
        &mut s,
        t(0),
        Action::Suspend {
            until: t(8 * 24 * 60),
        },
    );
    assert!(matches!(rejection(too_long), Rejection::TooLong { .. }));
}

#[test]
fn an_extension_by_a_duration_counts_from_the_end_in_the_state_it_applies_to() {
    let mut s = TenantState::default();
    let by = |mins: u64| Action::ExtendEventBy {
        by: Duration::from_secs(mins * 60),
    };
    assert_eq!(
        rejection(act(&mut s, t(0), by(60))),
        Rejection::NoActiveEvent
    );
    act(&mut s, t(0), Action::StartEvent { until: t(240) }).unwrap();
    // Someone extended it meanwhile: an hour more counts from there.
    act(&mut s, t(1), Action::ExtendEvent { until: t(300) }).unwrap();
    let fx = act(&mut s, t(2), by(60)).unwrap();
    let e = s.active_event.as_ref().unwrap();
    assert_eq!((e.end, e.extensions), (t(360), 2));
    // Audited as the extension it became.
    assert!(
        fx.iter()
            .any(|f| matches!(f, Effect::Audit(a) if a.action == "event.extend"))
    );
    // Past the limits, or past the calendar: refused, nothing changed.
    assert!(matches!(
        rejection(act(&mut s, t(3), by(8 * 24 * 60))),
        Rejection::TooLong { .. }
    ));
    assert!(matches!(
        rejection(act(
            &mut s,
            t(3),
            Action::ExtendEventBy { by: Duration::MAX }
        )),
        Rejection::TooLong { .. }
    ));
    assert_eq!(s.active_event.as_ref().unwrap().end, t(360));
    // It reads and writes as configuration durations do.
    let json = serde_json::to_string(&by(90)).unwrap();
    assert_eq!(json, r#"{"action":"extend_event_by","by":"1h30m"}"#);
    assert_eq!(serde_json::from_str::<Action>(&json).unwrap(), by(90));
}

#[test]
fn start_extend_end_an_event() {
    let mut s = TenantState::default();
    let fx = act(&mut s, t(0), Action::StartEvent { until: t(240) }).unwrap();
    assert!(matches!(&fx[0], Effect::EventStarted(e) if e.id == 0 && e.end == t(240)));
    assert!(matches!(&fx[1], Effect::Audit(a) if a.action == "event.start"));
    assert!(matches!(
        rejection(act(&mut s, t(1), Action::StartEvent { until: t(60) })),
        Rejection::EventAlreadyActive { .. }
    ));
    assert_eq!(
        rejection(act(&mut s, t(1), Action::ExtendEvent { until: t(200) })),
        Rejection::WouldShorten {
            current_end: t(240)
        }
    );
    act(&mut s, t(2), Action::ExtendEvent { until: t(480) }).unwrap();
    let e = s.active_event.as_ref().unwrap();
    assert_eq!((e.end, e.extensions), (t(480), 1));
    let fx = act(&mut s, t(100), Action::EndEvent).unwrap();
    match &fx[0] {
        Effect::EventEnded(e) => {
            assert_eq!(e.end, t(100));
            assert_eq!(e.status, EventStatus::Ended);
            assert_eq!(e.end_reason, Some(EndReason::Stopped { by: admin() }));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        rejection(act(&mut s, t(101), Action::EndEvent)),
        Rejection::NoActiveEvent
    );
    assert_eq!(
        rejection(act(&mut s, t(101), Action::ExtendEvent { until: t(900) })),
        Rejection::NoActiveEvent
    );
    assert_eq!(s.last_event.as_ref().unwrap().id, 0);
}

#[test]
fn event_limits() {
    let mut s = TenantState::default();
    assert_eq!(
        rejection(act(&mut s, t(10), Action::StartEvent { until: t(10) })),
        Rejection::EndNotAfterStart
    );
    assert!(matches!(
        rejection(act(
            &mut s,
            t(0),
            Action::StartEvent {
                until: t(8 * 24 * 60)
            }
        )),
        Rejection::TooLong { .. }
    ));
    act(&mut s, t(0), Action::StartEvent { until: t(60) }).unwrap();
    assert!(matches!(
        rejection(act(
            &mut s,
            t(1),
            Action::ExtendEvent {
                until: t(7 * 24 * 60 + 1)
            }
        )),
        Rejection::TooLong { .. }
    ));
    assert_eq!(
        s,
        {
            let mut s2 = TenantState::default();
            act(&mut s2, t(0), Action::StartEvent { until: t(60) }).unwrap();
            s2
        },
        "a refused action leaves the state unchanged"
    );
}

#[test]
fn a_rejection_writes_its_durations_as_configuration_does() {
    let mut s = TenantState::default();
    let too_long = rejection(act(
        &mut s,
        t(0),
        Action::StartEvent {
            until: t(8 * 24 * 60),
        },
    ));
    let json = serde_json::to_value(&too_long).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"reason": "too_long", "requested": "8d", "max": "7d"})
    );
    assert_eq!(serde_json::from_value::<Rejection>(json).unwrap(), too_long);
    let far = Rejection::TooFarAhead {
        max: Duration::from_secs(90 * 86_400),
    };
    assert_eq!(
        serde_json::to_string(&far).unwrap(),
        r#"{"reason":"too_far_ahead","max":"90d"}"#
    );
    // The form of earlier builds still reads.
    let old = r#"{"reason":"too_far_ahead","max":{"secs":7776000,"nanos":0}}"#;
    assert_eq!(serde_json::from_str::<Rejection>(old).unwrap(), far);
}

#[test]
fn an_event_ends_by_itself_at_its_end_time() {
    let mut s = TenantState::default();
    act(&mut s, t(0), Action::StartEvent { until: t(30) }).unwrap();
    assert!(tick(&mut s, t(29), false).is_empty());
    let fx = tick(&mut s, t(31), false);
    match &fx[0] {
        Effect::EventEnded(e) => {
            assert_eq!(e.end, t(30), "an expired event ends at its end time");
            assert_eq!(e.end_reason, Some(EndReason::Expired));
        }
        other => panic!("{other:?}"),
    }
    assert!(
        matches!(&fx[1], Effect::Audit(a) if a.action == "event.expired" && a.actor == Actor::System)
    );
    assert!(s.active_event.is_none());
}

#[test]
fn scheduled_events_start_at_their_time_and_can_be_cancelled() {
    let mut s = TenantState::default();
    assert_eq!(
        rejection(act(
            &mut s,
            t(10),
            Action::ScheduleEvent {
                start: t(5),
                end: t(50)
            }
        )),
        Rejection::StartNotInFuture
    );
    assert_eq!(
        rejection(act(
            &mut s,
            t(0),
            Action::ScheduleEvent {
                start: t(50),
                end: t(50)
            }
        )),
        Rejection::EndNotAfterStart
    );
    assert!(matches!(
        rejection(act(
            &mut s,
            t(0),
            Action::ScheduleEvent {
                start: t(91 * 24 * 60),
                end: t(92 * 24 * 60)
            }
        )),
        Rejection::TooFarAhead { .. }
    ));
    act(
        &mut s,
        t(0),
        Action::ScheduleEvent {
            start: t(60),
            end: t(120),
        },
    )
    .unwrap();
    assert!(matches!(
        rejection(act(
            &mut s,
            t(1),
            Action::ScheduleEvent {
                start: t(200),
                end: t(300)
            }
        )),
        Rejection::EventAlreadyScheduled { .. }
    ));
    assert!(tick(&mut s, t(59), false).is_empty());
    let fx = tick(&mut s, t(60), false);
    assert!(
        matches!(&fx[0], Effect::EventStarted(e) if e.start == t(60) && e.status == EventStatus::Active)
    );
    assert!(s.scheduled_event.is_none());
    assert_eq!(
        rejection(act(&mut s, t(61), Action::CancelScheduledEvent)),
        Rejection::NoScheduledEvent
    );
    let fx = tick(&mut s, t(120), false);
    assert!(matches!(&fx[0], Effect::EventEnded(_)));

    act(
        &mut s,
        t(130),
        Action::ScheduleEvent {
            start: t(200),
            end: t(300),
        },
    )
    .unwrap();
    act(&mut s, t(131), Action::CancelScheduledEvent).unwrap();
    assert!(
        tick(&mut s, t(250), false).is_empty(),
        "a cancelled event never starts"
    );
}

#[test]
fn a_scheduled_window_that_starts_during_an_event_extends_it() {
    let mut s = TenantState::default();
    act(
        &mut s,
        t(0),
        Action::ScheduleEvent {
            start: t(60),
            end: t(180),
        },
    )
    .unwrap();
    act(&mut s, t(10), Action::StartEvent { until: t(90) }).unwrap();
    let fx = tick(&mut s, t(60), false);
    assert!(
        fx.iter().all(|e| !matches!(e, Effect::EventStarted(_))),
        "no second start"
    );
    assert_eq!(s.active_event.as_ref().unwrap().end, t(180));
}

#[test]
fn a_scheduled_event_whose_time_has_fully_passed_starts_and_ends() {
    let mut s = TenantState::default();
    act(
        &mut s,
        t(0),
        Action::ScheduleEvent {
            start: t(10),
            end: t(20),
        },
    )
    .unwrap();
    let fx = tick(&mut s, t(500), false);
    assert!(matches!(&fx[0], Effect::EventStarted(_)));
    assert!(fx.iter().any(|e| matches!(e, Effect::EventEnded(_))));
    assert!(s.active_event.is_none());
}

#[test]
fn apply_is_pure() {
    let s = raised();
    let before = s.clone();
    let tr = apply(
        &s,
        &Input::Tick {
            evaluations: &eval(true),
        },
        t(61),
        &rules(),
    )
    .unwrap();
    assert_eq!(s, before);
    assert_eq!(alerts(&tr.effects), vec![AlertKind::Reminder]);
    assert_ne!(tr.state, before);
}

#[test]
fn next_deadline_names_the_earliest_timed_change() {
    let mut s = raised();
    assert_eq!(s.next_deadline(rules().repeat_interval), Some(t(61)));
    act(&mut s, t(2), Action::StartEvent { until: t(30) }).unwrap();
    assert_eq!(s.next_deadline(rules().repeat_interval), Some(t(30)));
}

#[test]
fn rejections_read_well() {
    let r = Rejection::TooLong {
        requested: Duration::from_secs(8 * 86_400),
        max: Duration::from_secs(7 * 86_400),
    };
    assert_eq!(r.to_string(), "8 d is longer than the maximum of 7 d");
    assert_eq!(
        Rejection::NoActiveEvent.to_string(),
        "no continuity event is running"
    );
}

#[test]
fn extending_after_a_merge_never_shortens() {
    let mut s = TenantState::default();
    act(&mut s, t(0), Action::StartEvent { until: t(120) }).unwrap();
    act(
        &mut s,
        t(1),
        Action::ScheduleEvent {
            start: t(60),
            end: t(240),
        },
    )
    .unwrap();
    // No tick between 60 and 90: the merge happens inside the action.
    let r = act(&mut s, t(90), Action::ExtendEvent { until: t(180) });
    assert_eq!(
        rejection(r),
        Rejection::WouldShorten {
            current_end: t(240)
        }
    );
    act(&mut s, t(90), Action::ExtendEvent { until: t(300) }).unwrap();
    assert_eq!(s.active_event.as_ref().unwrap().end, t(300));
}

#[test]
fn a_merge_respects_the_maximum_duration() {
    let day = 24 * 60;
    let mut s = TenantState::default();
    act(&mut s, t(0), Action::StartEvent { until: t(6 * day) }).unwrap();
    act(
        &mut s,
        t(1),
        Action::ScheduleEvent {
            start: t(5 * day),
            end: t(12 * day),
        },
    )
    .unwrap();
    tick(&mut s, t(5 * day), false);
    let e = s.active_event.as_ref().unwrap();
    assert_eq!(e.end, t(7 * day), "capped at start + max_event_duration");
}

#[test]
fn a_late_tick_merges_overlapping_events_in_time_order() {
    let mut s = TenantState::default();
    act(&mut s, t(0), Action::StartEvent { until: t(120) }).unwrap();
    act(
        &mut s,
        t(1),
        Action::ScheduleEvent {
            start: t(60),
            end: t(180),
        },
    )
    .unwrap();
    // The next tick comes after both the running event's end and the planned start.
    let fx = tick(&mut s, t(150), false);
    assert!(
        !fx.iter()
            .any(|e| matches!(e, Effect::EventEnded(_) | Effect::EventStarted(_))),
        "{fx:?}"
    );
    assert_eq!(s.active_event.as_ref().unwrap().end, t(180));
    let fx = tick(&mut s, t(181), false);
    assert!(matches!(&fx[0], Effect::EventEnded(e) if e.end == t(180)));
}

#[test]
fn the_all_clear_owed_during_a_suspension_goes_out_when_it_ends() {
    let mut s = raised();
    act(&mut s, t(2), Action::Suspend { until: t(100) }).unwrap();
    for m in 3..6 {
        tick(&mut s, t(m), false);
    }
    assert!(!s.any_active());
    assert!(s.resolved_owed);
    for m in 6..100 {
        assert!(alerts(&tick(&mut s, t(m), false)).is_empty(), "minute {m}");
    }
    assert_eq!(
        alerts(&tick(&mut s, t(100), false)),
        vec![AlertKind::Resolved]
    );
    assert!(!s.resolved_owed);
}

#[test]
fn unknown_evaluations_neither_raise_nor_clear() {
    let mut s = raised();
    let unknown = [Evaluation {
        direction: Direction::Outbound,
        name: "latency",
        health: Health::Unknown,
        debounced: false,
    }];
    for m in 2..200 {
        apply_in_place(
            &mut s,
            &Input::Tick {
                evaluations: &unknown,
            },
            t(m),
            &rules(),
        )
        .unwrap();
    }
    assert!(s.any_active(), "no data is not a recovery");
    let mut fresh = TenantState::default();
    for m in 0..10 {
        apply_in_place(
            &mut fresh,
            &Input::Tick {
                evaluations: &unknown,
            },
            t(m),
            &rules(),
        )
        .unwrap();
    }
    assert!(fresh.conditions.is_empty());
}

#[test]
fn unknown_evaluations_hold_the_streak_where_it_is() {
    let unknown = [Evaluation {
        direction: Direction::Outbound,
        name: "latency",
        health: Health::Unknown,
        debounced: false,
    }];
    let idle = |s: &mut TenantState, from: i64| {
        for m in from..from + 50 {
            let fx = apply_in_place(
                s,
                &Input::Tick {
                    evaluations: &unknown,
                },
                t(m),
                &rules(),
            )
            .unwrap();
            assert!(alerts(&fx).is_empty(), "minute {m}");
        }
    };
    // A raised condition one healthy evaluation into clearing: silence
    // neither clears it nor starts its clearing over.
    let mut s = raised();
    tick(&mut s, t(2), false);
    idle(&mut s, 3);
    let c = s.condition(Direction::Outbound, "latency").unwrap();
    assert!(c.active && c.streak == 1, "{c:?}");
    tick(&mut s, t(60), false);
    assert_eq!(
        alerts(&tick(&mut s, t(61), false)),
        vec![AlertKind::Resolved]
    );

    // A healthy condition one breach into raising stays one breach in.
    let mut s = TenantState::default();
    tick(&mut s, t(0), true);
    idle(&mut s, 1);
    let c = s.condition(Direction::Outbound, "latency").unwrap();
    assert!(!c.active && c.streak == 1, "{c:?}");
    assert_eq!(alerts(&tick(&mut s, t(60), true)), vec![AlertKind::Raised]);
}

#[test]
fn counters_saturate_instead_of_overflowing() {
    let mut s = TenantState {
        next_event_id: u64::MAX,
        next_alert_id: u64::MAX,
        ..TenantState::default()
    };
    act(&mut s, t(0), Action::StartEvent { until: t(10) }).unwrap();
    assert_eq!(s.next_event_id, u64::MAX);
    tick(&mut s, t(1), true);
    tick(&mut s, t(2), true);
    assert_eq!(s.next_alert_id, u64::MAX);
}

#[test]
fn the_state_remembers_the_last_alerts_bounded_oldest_first() {
    let mut s = raised();
    assert_eq!(s.recent_alerts.len(), 1);
    assert_eq!(
        (
            s.recent_alerts[0].id,
            s.recent_alerts[0].kind,
            s.recent_alerts[0].at
        ),
        (0, AlertKind::Raised, t(1))
    );
    assert_eq!(
        s.recent_alerts[0].active,
        vec![ConditionRef {
            direction: Direction::Outbound,
            name: "latency".into()
        }]
    );
    // Seven hourly reminders: only the last RECENT_ALERTS alerts stay.
    for h in 1..=7 {
        assert_eq!(
            alerts(&tick(&mut s, t(1 + 60 * h), true)),
            vec![AlertKind::Reminder]
        );
    }
    let ids: Vec<u64> = s.recent_alerts.iter().map(|a| a.id).collect();
    assert_eq!(ids, vec![3, 4, 5, 6, 7]);
    assert_eq!(s.recent_alerts.len(), RECENT_ALERTS);
    assert!(
        s.recent_alerts
            .iter()
            .all(|a| a.kind == AlertKind::Reminder)
    );
    for m in 2..=4 {
        tick(&mut s, t(421 + m), false);
    }
    let last = s.recent_alerts.last().unwrap();
    assert_eq!((last.id, last.kind), (8, AlertKind::Resolved));
    assert!(last.active.is_empty());
    assert_eq!(s.recent_alerts.first().unwrap().id, 4);
}

#[test]
fn a_state_stored_before_the_alert_history_still_loads() {
    let mut json = serde_json::to_value(raised()).unwrap();
    json.as_object_mut().unwrap().remove("recent_alerts");
    let s: TenantState = serde_json::from_value(json).unwrap();
    assert!(s.recent_alerts.is_empty());
    assert_eq!(s.next_alert_id, 1);
    // A state with no alerts yet serialises as before.
    let fresh = serde_json::to_value(TenantState::default()).unwrap();
    assert!(fresh.get("recent_alerts").is_none());
}

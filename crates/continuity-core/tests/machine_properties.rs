//! Property tests of the tenant state machine over random sequences of
//! evaluations, ticks and actions.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use continuity_core::{
    Direction,
    config::EventLimits,
    machine::{
        Action, Actor, AlertKind, Effect, Evaluation, Health, Input, Rejection, Rules, TenantState,
        apply,
    },
};
use proptest::prelude::*;

const TICK: i64 = 60;

#[derive(Clone, Debug)]
enum Step {
    /// Advance by `ticks` ticks, evaluating the two conditions each tick
    /// (`None`: not enough data).
    Ticks {
        ticks: u8,
        latency: Option<bool>,
        failures: Option<bool>,
    },
    Start {
        minutes: u16,
    },
    Extend {
        minutes: i32,
    },
    End,
    Schedule {
        in_minutes: u16,
        minutes: u16,
    },
    Cancel,
    Suspend {
        minutes: u16,
    },
    Lift,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => (1u8..90, proptest::option::weighted(0.9, any::<bool>()), proptest::option::weighted(0.9, any::<bool>()))
            .prop_map(|(ticks, latency, failures)| Step::Ticks { ticks, latency, failures }),
        1 => (0u16..600).prop_map(|minutes| Step::Start { minutes }),
        1 => (-300i32..600).prop_map(|minutes| Step::Extend { minutes }),
        1 => Just(Step::End),
        1 => (0u16..600, 0u16..600).prop_map(|(in_minutes, minutes)| Step::Schedule { in_minutes, minutes }),
        1 => Just(Step::Cancel),
        1 => (0u16..300).prop_map(|minutes| Step::Suspend { minutes }),
        1 => Just(Step::Lift),
    ]
}

fn start() -> DateTime<Utc> {
    "2026-06-01T00:00:00Z".parse().unwrap()
}

fn mins(m: i64) -> TimeDelta {
    TimeDelta::seconds(m * 60)
}

struct Checker {
    rules: Rules,
    last_alert: Option<DateTime<Utc>>,
    /// The time from which an alert is owed if conditions hold unsuspended.
    holding_since: Option<DateTime<Utc>>,
    healthy_streak: [u32; 2],
}

impl Checker {
    fn effects(
        &mut self,
        before: &TenantState,
        after: &TenantState,
        fx: &[Effect],
        now: DateTime<Utc>,
        newly_unsuspended: bool,
    ) {
        let repeat = TimeDelta::from_std(self.rules.repeat_interval).unwrap();
        for e in fx {
            match e {
                Effect::Alert(a) => {
                    assert!(
                        !after.suspended_at(now),
                        "alert {a:?} sent while suspended at {now}"
                    );
                    if a.kind == AlertKind::Reminder {
                        let last = self.last_alert.expect("a reminder follows an alert");
                        assert!(
                            now - last >= repeat,
                            "reminder at {now} only {} after {last}",
                            now - last
                        );
                    }
                    if a.kind == AlertKind::Raised && a.newly_raised.is_empty() {
                        // An owed alert: only after a suspension ended, or a raise while suspended.
                        assert!(
                            newly_unsuspended || before.incident.as_ref().is_some_and(|i| i.owed),
                            "raised alert without a new condition at {now}"
                        );
                    }
                    self.last_alert = Some(now);
                }
                Effect::EventStarted(ev) | Effect::EventEnded(ev) => {
                    assert!(ev.end >= ev.start, "event ends before it starts: {ev:?}");
                }
                Effect::Audit(_) => {}
            }
        }
        for ev in [
            &after.active_event,
            &after.scheduled_event,
            &after.last_event,
        ]
        .into_iter()
        .flatten()
        {
            assert!(ev.end >= ev.start, "event ends before it starts: {ev:?}");
        }
        if let Some(ev) = &after.active_event {
            assert!(
                ev.end > now,
                "an expired event is still active at {now}: {ev:?}"
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn invariants_hold_over_random_sequences(
        steps in proptest::collection::vec(step(), 1..60),
        raise_after in 1u32..4,
        clear_after in 1u32..4,
        repeat_minutes in prop_oneof![Just(60u64), Just(15u64), Just(120u64)],
    ) {
        let rules = Rules {
            hysteresis: [(raise_after, clear_after), (raise_after, clear_after)],
            repeat_interval: Duration::from_secs(repeat_minutes * 60),
            limits: EventLimits { max_event_duration: Duration::from_secs(8 * 3600), ..EventLimits::default() },
            time_zone: Default::default(),
        };
        let mut checker = Checker { rules: rules.clone(), last_alert: None, holding_since: None, healthy_streak: [0; 2] };
        let mut state = TenantState::default();
        let mut now = start();
        let actor = Actor::Operator { name: "prop".into() };
        for s in steps {
            match s {
                Step::Ticks { ticks, latency, failures } => {
                    for _ in 0..ticks {
                        now += TimeDelta::seconds(TICK);
                        let health = |b: Option<bool>| match b {
                            Some(true) => Health::Breached,
                            Some(false) => Health::Healthy,
                            None => Health::Unknown,
                        };
                        let evals = [
                            Evaluation { direction: Direction::Outbound, name: "latency", health: health(latency), debounced: false },
                            Evaluation { direction: Direction::Inbound, name: "failures", health: health(failures), debounced: false },
                        ];
                        let was_suspended = state.suspended_at(now - TimeDelta::seconds(TICK));
                        let tr = apply(&state, &Input::Tick { evaluations: &evals }, now, &rules).unwrap();
                        // Clearing needs clear_after consecutive healthy evaluations.
                        for (i, ev) in evals.iter().enumerate() {
                            // Unknown evaluations neither count nor break a streak.
                            match ev.health {
                                Health::Breached => checker.healthy_streak[i] = 0,
                                Health::Healthy => checker.healthy_streak[i] += 1,
                                Health::Unknown => {}
                            }
                            let was = state.condition(ev.direction, ev.name).is_some_and(|c| c.active);
                            let is = tr.state.condition(ev.direction, ev.name).is_some_and(|c| c.active);
                            if was && !is {
                                prop_assert!(checker.healthy_streak[i] >= clear_after, "cleared after {} healthy", checker.healthy_streak[i]);
                            }
                        }
                        let unsuspended = was_suspended && !tr.state.suspended_at(now);
                        if unsuspended && tr.state.any_active() {
                            prop_assert!(
                                tr.effects.iter().any(|e| matches!(e, Effect::Alert(_))),
                                "a suspension ended at {now} while a condition holds, but no alert went out"
                            );
                        }
                        checker.effects(&state, &tr.state, &tr.effects, now, unsuspended);
                        state = tr.state;
                        // While a condition holds unsuspended, no gap exceeds repeat + one tick.
                        if state.any_active() && !state.suspended_at(now) {
                            let since = checker.holding_since.get_or_insert(now);
                            let reference = checker.last_alert.map_or(*since, |l| l.max(*since));
                            prop_assert!(
                                now - reference <= TimeDelta::from_std(rules.repeat_interval).unwrap() + TimeDelta::seconds(TICK),
                                "gap without alert: {} since {reference}", now - reference
                            );
                        } else {
                            checker.holding_since = None;
                        }
                    }
                }
                other => {
                    let action = match other {
                        Step::Start { minutes } => Action::StartEvent { until: now + mins(minutes.into()) },
                        Step::Extend { minutes } => {
                            let base = state.active_event.as_ref().map_or(now, |e| e.end);
                            Action::ExtendEvent { until: base + mins(minutes.into()) }
                        }
                        Step::End => Action::EndEvent,
                        Step::Schedule { in_minutes, minutes } => {
                            let s = now + mins(in_minutes.into());
                            Action::ScheduleEvent { start: s, end: s + mins(minutes.into()) }
                        }
                        Step::Cancel => Action::CancelScheduledEvent,
                        Step::Suspend { minutes } => Action::Suspend { until: now + mins(minutes.into()) },
                        Step::Lift => Action::LiftSuspension,
                        Step::Ticks { .. } => unreachable!(),
                    };
                    let was_suspended = state.suspended_at(now);
                    let old_end = state.active_event.as_ref().filter(|e| now < e.end).map(|e| e.end);
                    match apply(&state, &Input::Act { action: action.clone(), actor: actor.clone() }, now, &rules) {
                        Ok(tr) => {
                            if let (Action::ExtendEvent { .. }, Some(old), Some(new)) = (&action, old_end, tr.state.active_event.as_ref()) {
                                prop_assert!(new.end > old, "extend shortened {old} -> {}", new.end);
                            }
                            checker.effects(&state, &tr.state, &tr.effects, now, was_suspended && !tr.state.suspended_at(now));
                            if was_suspended && !tr.state.suspended_at(now) && tr.state.any_active() {
                                checker.holding_since = Some(now);
                            }
                            state = tr.state;
                        }
                        Err(continuity_core::Error::InvalidTransition { reason }) => {
                            // Refusals are typed; the state stays as it was.
                            let _: Rejection = reason;
                        }
                        Err(e) => prop_assert!(false, "unexpected error {e}"),
                    }
                    if state.suspended_at(now) {
                        checker.holding_since = None;
                    }
                }
            }
        }
    }
}

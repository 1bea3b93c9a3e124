//! A policy defined here, outside the crate, registered with the builder,
//! selected by name in a tenant's configuration with its own parameters,
//! and raising an alert end to end through the Monitor.

use std::{sync::Arc, time::Duration};

use chrono::{DateTime, TimeDelta, Utc};
use continuity_core::{
    Direction, Error, FailureKind, ManualClock, Monitor, Observation, Outcome, TenantId,
    config::{ChannelKind, TenantConfig},
    machine::{AlertKind, Health},
    policy::{
        FailureLimit, FailurePolicy, FailureThreshold, PolicyFactory, Reading, ThresholdPolicy,
        Verdict,
    },
    testing::{RecordingNotifier, policy_conformance, rig_signer, rig_start},
    window::SlidingWindow,
};
use serde::Deserialize;

/// Breached after `count` failures in a row, whatever the window says.
#[derive(Debug)]
struct ConsecutiveFailures {
    count: u32,
    streak: u32,
    seen: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    count: u32,
}

impl ThresholdPolicy for ConsecutiveFailures {
    fn condition(&self) -> &str {
        "consecutive-failures"
    }

    fn records(&self) -> bool {
        true
    }

    fn record(&mut self, _at: DateTime<Utc>, outcome: &Outcome) {
        self.seen = true;
        self.streak = match outcome {
            Outcome::Failed { .. } => self.streak.saturating_add(1),
            Outcome::Delivered { .. } => 0,
        };
    }

    fn evaluate(&mut self, _window: &SlidingWindow, _now: DateTime<Utc>) -> Verdict {
        Verdict {
            breached: self.streak >= self.count,
            reading: Reading::Custom {
                summary: format!(
                    "{} failures in a row, threshold {}",
                    self.streak, self.count
                ),
            },
        }
    }

    fn health(&self, verdict: &Verdict, _watched_in_full: bool) -> Health {
        match verdict.breached {
            true => Health::Breached,
            false if self.seen => Health::Healthy,
            false => Health::Unknown,
        }
    }

    // Only a new observation changes the streak.
    fn valid_until(&self, _: &Verdict, _: &SlidingWindow, _: DateTime<Utc>) -> DateTime<Utc> {
        DateTime::<Utc>::MAX_UTC
    }

    // A delivery with no streak running changes nothing.
    fn absorbs_below(&self, v: &Verdict, _: &SlidingWindow, _: DateTime<Utc>) -> Option<Duration> {
        (!v.breached && self.seen && self.streak == 0).then_some(Duration::MAX)
    }
}

fn factory() -> PolicyFactory {
    Arc::new(|params| {
        let p: Params = params.parse()?;
        if p.count == 0 {
            return Err(Error::config("count", "must be at least 1"));
        }
        Ok(Box::new(ConsecutiveFailures {
            count: p.count,
            streak: 0,
            seen: false,
        }) as Box<dyn ThresholdPolicy>)
    })
}

fn monitor(clock: &ManualClock, sms: &Arc<RecordingNotifier>) -> Monitor {
    Monitor::builder()
        .clock(Arc::new(clock.clone()))
        .in_memory_store()
        .notifier(sms.clone())
        .link_signer(rig_signer())
        .portal_url("https://continuity.example.net/c/")
        .policy("consecutive-failures", factory())
        .build()
        .unwrap()
}

fn config(inbound_policies: &str) -> TenantConfig {
    serde_json::from_str(&format!(
        r#"{{
            "tenant": "acme",
            "inbound": {{ "latency": "off", "flow": "off", "policies": {inbound_policies} }},
            "recipients": [ {{ "id": "ops-sms", "channel": "sms", "address": "+15550100" }} ]
        }}"#
    ))
    .unwrap()
}

#[test]
fn the_custom_policy_passes_the_conformance_suite() {
    policy_conformance::policy_all(&|| {
        Box::new(ConsecutiveFailures {
            count: 3,
            streak: 0,
            seen: false,
        }) as Box<dyn ThresholdPolicy>
    });
}

/// The suite can fail: a policy that calls silence healthy does not pass.
#[test]
fn a_policy_that_calls_silence_healthy_fails_the_suite() {
    #[derive(Debug)]
    struct SilenceIsHealthy;
    impl ThresholdPolicy for SilenceIsHealthy {
        fn condition(&self) -> &str {
            "silence-is-healthy"
        }
        fn evaluate(&mut self, _: &SlidingWindow, _: DateTime<Utc>) -> Verdict {
            Verdict {
                breached: false,
                reading: Reading::Custom {
                    summary: "fine".into(),
                },
            }
        }
    }
    let outcome = std::panic::catch_unwind(|| {
        policy_conformance::unknown_without_data(&|| {
            Box::new(SilenceIsHealthy) as Box<dyn ThresholdPolicy>
        })
    });
    assert!(outcome.is_err());
}

/// The suite can fail: a policy that says its breached verdict holds until
/// something new is recorded, while expiring failures end it, does not pass.
#[test]
fn a_policy_that_overstates_its_validity_fails_the_suite() {
    #[derive(Debug)]
    struct Overstated(FailurePolicy);
    impl ThresholdPolicy for Overstated {
        fn condition(&self) -> &str {
            self.0.condition()
        }
        fn evaluate(&mut self, window: &SlidingWindow, now: DateTime<Utc>) -> Verdict {
            self.0.evaluate(window, now)
        }
        fn health(&self, verdict: &Verdict, full: bool) -> Health {
            self.0.health(verdict, full)
        }
        fn valid_until(&self, _: &Verdict, _: &SlidingWindow, _: DateTime<Utc>) -> DateTime<Utc> {
            DateTime::<Utc>::MAX_UTC
        }
    }
    let make = || {
        Box::new(Overstated(FailurePolicy::new(FailureThreshold::new(
            FailureLimit::Count(1),
        )))) as Box<dyn ThresholdPolicy>
    };
    // The honest policy passes; the one overstating its validity does not.
    policy_conformance::honest_validity(&|| {
        Box::new(FailurePolicy::new(FailureThreshold::new(
            FailureLimit::Count(1),
        ))) as Box<dyn ThresholdPolicy>
    });
    assert!(std::panic::catch_unwind(|| policy_conformance::honest_validity(&make)).is_err());
}

#[tokio::test]
async fn a_custom_policy_selected_by_name_raises_an_alert() {
    let clock = ManualClock::new(rig_start());
    let sms = Arc::new(RecordingNotifier::new(ChannelKind::Sms));
    let monitor = monitor(&clock, &sms);
    let config = config(r#"[ { "name": "consecutive-failures", "params": { "count": 4 } } ]"#);
    monitor.register_tenant(config).await.unwrap();
    let tenant = TenantId::new("acme").unwrap();
    let observe = |at: DateTime<Utc>, failed: bool| {
        let o = if failed {
            Observation::failed(tenant.clone(), Direction::Inbound, at, FailureKind::Refused)
        } else {
            Observation::delivered(
                tenant.clone(),
                Direction::Inbound,
                at,
                Duration::from_secs(3),
            )
        };
        monitor.observe(o).unwrap();
    };
    // Three failures in a row, then a delivery: never four in a row.
    for _ in 0..10 {
        let now = clock.advance(TimeDelta::minutes(1));
        for i in 0..3 {
            observe(now - TimeDelta::seconds(40 - i), true);
        }
        observe(now - TimeDelta::seconds(10), false);
        monitor.tick(now).await.unwrap();
    }
    assert!(sms.messages().is_empty(), "{:?}", sms.messages());
    // Then one failure a minute: the fourth in a row breaches, and the
    // condition raises after raise_after (2) ticks.
    for _ in 0..6 {
        let now = clock.advance(TimeDelta::minutes(1));
        observe(now - TimeDelta::seconds(30), true);
        monitor.tick(now).await.unwrap();
    }
    let sent = sms.messages();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].kind, AlertKind::Raised);
    assert_eq!(sent[0].conditions[0].name, "consecutive-failures");
    assert!(
        sent[0].conditions[0]
            .reading
            .contains("failures in a row, threshold 4"),
        "{}",
        sent[0].conditions[0].reading
    );
    // Its reading is in the tenant's status too.
    let status = monitor.status(&tenant).unwrap();
    assert!(
        status
            .readings
            .iter()
            .any(|(d, name, v)| *d == Direction::Inbound
                && name == "consecutive-failures"
                && v.breached)
    );
}

#[tokio::test]
async fn an_unknown_name_or_bad_params_say_what_to_fix() {
    let clock = ManualClock::new(rig_start());
    let sms = Arc::new(RecordingNotifier::new(ChannelKind::Sms));
    let monitor = monitor(&clock, &sms);
    let field_and_reason = |e: Error| match e {
        Error::InvalidConfig { field, reason } => (field, reason),
        other => panic!("expected a configuration error, got {other}"),
    };
    let e = monitor
        .register_tenant(config(r#"[ { "name": "consecutive-failure" } ]"#))
        .await
        .unwrap_err();
    let (field, reason) = field_and_reason(e);
    assert_eq!(field, "inbound.policies[0].name");
    assert!(
        reason.contains("acme") && reason.contains("registered: consecutive-failures"),
        "{reason}"
    );
    let e = monitor
        .register_tenant(config(
            r#"[ { "name": "consecutive-failures", "params": { "count": 0 } } ]"#,
        ))
        .await
        .unwrap_err();
    let (field, reason) = field_and_reason(e);
    assert_eq!(field, "inbound.policies[0].params.count");
    assert!(
        reason.contains("acme") && reason.contains("at least 1"),
        "{reason}"
    );
    let e = monitor
        .register_tenant(config(
            r#"[ { "name": "consecutive-failures", "params": { "cuont": 4 } } ]"#,
        ))
        .await
        .unwrap_err();
    let (field, reason) = field_and_reason(e);
    assert_eq!(field, "inbound.policies[0].params");
    assert!(reason.contains("cuont"), "{reason}");
    // A built-in name is configured by its own field.
    let e = config(r#"[ { "name": "leaky" } ]"#).validate().unwrap_err();
    assert_eq!(field_and_reason(e).0, "inbound.policies[0].name");
    // Nor can an embedder register under one.
    let built = Monitor::builder()
        .in_memory_store()
        .notifier(sms.clone())
        .link_signer(rig_signer())
        .portal_url("https://continuity.example.net/c/")
        .policy("latency", factory())
        .build();
    assert!(matches!(built, Err(Error::InvalidConfig { .. })));
}

//! `MonitorSettings` as configuration: the written form, its defaults and
//! the refusal of unknown fields.

use std::time::Duration;

use continuity_core::{
    monitor::{HealthThresholds, MonitorSettings},
    store::RetentionSettings,
};

#[test]
fn a_toml_example_reads_to_the_values_written() {
    let s: MonitorSettings = toml::from_str(
        r#"
        lease = "5m"
        batch = 200
        retry_base = "10s"
        retry_max = "1h"
        conflict_retries = 3
        baseline_every = "30m"
        per_tenant_metrics = true

        [health]
        tick_late = "5m"

        [retention]
        audit = "90d"
        dead_letters = "7d"
        "#,
    )
    .unwrap();
    assert_eq!(
        s,
        MonitorSettings {
            lease: Duration::from_secs(300),
            batch: 200,
            retry_base: Duration::from_secs(10),
            retry_max: Duration::from_secs(3600),
            conflict_retries: 3,
            baseline_every: Duration::from_secs(1800),
            per_tenant_metrics: true,
            health: HealthThresholds {
                tick_late: Duration::from_secs(300),
                ..HealthThresholds::default()
            },
            retention: RetentionSettings {
                audit: Duration::from_secs(90 * 86_400),
                dead_letters: Duration::from_secs(7 * 86_400),
                ..RetentionSettings::default()
            },
        }
    );
    // Written back in the same form, and read again to the same values.
    let written = serde_json::to_string(&s).unwrap();
    assert!(written.contains(r#""lease":"5m""#), "{written}");
    assert_eq!(
        serde_json::from_str::<MonitorSettings>(&written).unwrap(),
        s
    );
}

#[test]
fn every_field_left_out_is_the_builders_default() {
    let s: MonitorSettings = toml::from_str("").unwrap();
    assert_eq!(s, MonitorSettings::default());
    assert_eq!(s.lease, Duration::from_secs(120));
    assert_eq!(s.baseline_every, Duration::from_secs(3600));
    assert_eq!(
        s.retention,
        RetentionSettings {
            audit: Duration::from_secs(400 * 86_400),
            dead_letters: Duration::from_secs(30 * 86_400),
            instances: Duration::from_secs(86_400),
        }
    );
    let partial: MonitorSettings = toml::from_str("batch = 7").unwrap();
    assert_eq!(
        partial,
        MonitorSettings {
            batch: 7,
            ..MonitorSettings::default()
        }
    );
}

#[test]
fn an_unknown_field_is_refused_by_name() {
    let e = toml::from_str::<MonitorSettings>("lease_time = \"2m\"")
        .unwrap_err()
        .to_string();
    assert!(e.contains("unknown field `lease_time`"), "{e}");
    let e = toml::from_str::<MonitorSettings>("lease = \"2 minutes\"")
        .unwrap_err()
        .to_string();
    assert!(e.contains("lease"), "{e}");
}

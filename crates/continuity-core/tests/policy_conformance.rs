//! Every built-in policy passes the policy conformance suite, with the
//! defaults and with the settings that exercise each of its branches.

use std::time::Duration;

use continuity_core::{
    policy::{
        FailureLimit, FailurePolicy, FailureThreshold, FlowPolicy, FlowThreshold, LatencyPolicy,
        LatencyStatistic, LatencyThreshold, LeakyCounterPolicy, LeakyThreshold, ThresholdPolicy,
    },
    testing::policy_conformance::policy_all,
};

const MIN: Duration = Duration::from_secs(60);

#[test]
fn latency_policies_conform() {
    for statistic in [
        LatencyStatistic::P95,
        LatencyStatistic::Max,
        LatencyStatistic::Quantile(0.5),
    ] {
        for min_samples in [0, 1, 3, 1_000] {
            let t = LatencyThreshold {
                statistic,
                limit: 30 * MIN,
                min_samples,
            };
            policy_all(&|| Box::new(LatencyPolicy::new(t.clone())) as Box<dyn ThresholdPolicy>);
        }
    }
}

#[test]
fn failure_policies_conform() {
    for limit in [
        FailureLimit::Count(3),
        FailureLimit::Count(0),
        FailureLimit::Rate(0.25),
        FailureLimit::Rate(1.0),
    ] {
        for min_samples in [0, 1, 20] {
            let t = FailureThreshold { limit, min_samples };
            policy_all(&|| Box::new(FailurePolicy::new(t.clone())) as Box<dyn ThresholdPolicy>);
        }
    }
}

#[test]
fn leaky_counters_conform() {
    for (threshold, period, cap) in [
        (5, 2 * MIN, None),
        (1, Duration::from_secs(1), Some(1)),
        (0, Duration::ZERO, None),
        (u32::MAX, Duration::MAX, None),
    ] {
        let mut t = LeakyThreshold::new(threshold, 10 * MIN);
        t.period = period;
        t.cap = cap;
        policy_all(&|| Box::new(LeakyCounterPolicy::new(t.clone())) as Box<dyn ThresholdPolicy>);
    }
}

#[test]
fn flow_policies_conform() {
    let defaults = FlowThreshold::default();
    for t in [
        defaults.clone(),
        FlowThreshold {
            span: 2 * MIN,
            min_count: 1,
            significance: 0.01,
            ..defaults.clone()
        },
        FlowThreshold {
            half_life: Duration::from_secs(3600),
            slow_floor: Duration::ZERO,
            ..defaults.clone()
        },
        // Out of range: brought into range, never a panic.
        FlowThreshold {
            span: Duration::ZERO,
            significance: f64::NAN,
            half_life: Duration::MAX,
            min_count: 0,
            slow_floor: Duration::MAX,
        },
    ] {
        policy_all(&|| Box::new(FlowPolicy::new(t.clone())) as Box<dyn ThresholdPolicy>);
    }
}

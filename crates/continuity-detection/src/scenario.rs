//! The benchmark's scenarios and the goals issue 14 sets for each.
//!
//! Incident scenarios span 3 days: two days of normal traffic, then the
//! incident on the third day, starting at a seeded time between 06:00 and
//! 16:00 UTC and lasting 2 hours, so at least 6 hours of recovered traffic
//! follow (where the reset time is measured: every incident scenario is
//! also a recovery scenario).

use std::time::Duration;

use chrono::TimeDelta;
use continuity_core::{Direction, TenantId};

use crate::{
    rng::SplitMix64,
    trace::{
        Incident, ProbeNoise, Rate, Trace, TrafficModel, Trouble, generate_direction, trace_start,
    },
};

/// The seeds every scenario runs with (the report lists them).
pub const SEEDS: [u64; 5] = [1, 2, 3, 4, 5];

/// What issue 14 asks of the default detector in a scenario.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Goal {
    /// At most this many false alerts over the whole trace.
    pub max_false_alerts: Option<u64>,
    /// Every incident raised within this long of its start.
    pub detect_within: Option<Duration>,
    /// A resolved notice within this long of the flow's recovery.
    pub reset_within: Option<Duration>,
}

/// One scenario: traffic, the incident it carries, the goal.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// Short name (file names, tables).
    pub name: &'static str,
    /// What it is, in a sentence.
    pub title: &'static str,
    /// Trace length in days.
    pub days: i64,
    /// Passive traffic of each direction (`None`: probes only).
    pub traffic: Option<TrafficModel>,
    /// The incident on the last day, if any: direction, length, trouble.
    pub incident: Option<(Direction, Duration, Trouble)>,
    /// Active probes from the simulated mail system.
    pub probes: bool,
    /// Probes that take as long as the traffic's deliveries (drawn from its
    /// latency model for each minute's probes) and are lost at its failure
    /// share, instead of a steady 20 s.
    pub noisy_probes: bool,
    /// The goal.
    pub goal: Goal,
}

const MIN: Duration = Duration::from_secs(60);
const TWO_HOURS: Duration = Duration::from_secs(2 * 3600);

fn incident_goal(detect_minutes: u32) -> Goal {
    Goal {
        max_false_alerts: Some(0),
        detect_within: Some(MIN * detect_minutes),
        reset_within: Some(MIN * 15),
    }
}

impl Scenario {
    /// The healthy scenario with `days` days (30 in the report; tests use fewer).
    pub fn healthy(days: i64) -> Scenario {
        Scenario {
            name: "healthy",
            title: "Healthy traffic: 2 messages a minute each way, 1 % random failures, heavy-tailed latencies",
            days,
            traffic: Some(TrafficModel::default()),
            incident: None,
            probes: false,
            noisy_probes: false,
            goal: Goal {
                max_false_alerts: Some(0),
                detect_within: None,
                reset_within: None,
            },
        }
    }

    /// Every scenario of the report, the healthy one over 30 days.
    /// The healthy scenario with probes as noisy as the traffic, with
    /// `days` days (30 in the report; tests use fewer).
    pub fn healthy_probed(days: i64) -> Scenario {
        Scenario {
            name: "healthy-probed",
            title: "Healthy traffic with probes every 5 min each way that take as long as the traffic's deliveries (heavy-tailed, up to 10 min) and are lost at its failure share (1 %)",
            probes: true,
            noisy_probes: true,
            ..Scenario::healthy(days)
        }
    }

    /// Probes alone, as noisy as the default traffic, with `days` days (30
    /// in the report; tests use fewer).
    pub fn healthy_probes_only(days: i64) -> Scenario {
        Scenario {
            name: "healthy-probes-only",
            title: "Probes alone every 5 min each way, as noisy as the default traffic (heavy-tailed latencies up to 10 min, 1 % lost), no passive traffic",
            traffic: None,
            ..Scenario::healthy_probed(days)
        }
    }

    /// Every scenario of the report.
    pub fn all() -> Vec<Scenario> {
        let normal = TrafficModel::default;
        vec![
            Scenario::healthy(30),
            Scenario::healthy_probed(30),
            Scenario::healthy_probes_only(30),
            Scenario {
                name: "outage",
                title: "Total inbound outage for 2 h (every delivery fails), normal traffic",
                days: 3,
                traffic: Some(normal()),
                incident: Some((Direction::Inbound, TWO_HOURS, Trouble::FailAll)),
                probes: false,
                noisy_probes: false,
                goal: incident_goal(5),
            },
            Scenario {
                name: "silent-outage",
                title: "Total outbound outage for 2 h seen as silence (held mail arrives late after recovery), normal traffic, no probes. \
                        Silence neither raises nor clears (issue 14, item 6), so the only goal is no false alert; `silent-outage-probed` is the same outage with probes",
                days: 3,
                traffic: Some(normal()),
                incident: Some((Direction::Outbound, TWO_HOURS, Trouble::Silent)),
                probes: false,
                noisy_probes: false,
                goal: Goal {
                    max_false_alerts: Some(0),
                    detect_within: None,
                    reset_within: None,
                },
            },
            Scenario {
                name: "silent-outage-probed",
                title: "The silent outbound outage with probes every 5 min each way: outbound probes are held too, and arrive after the recovery",
                days: 3,
                traffic: Some(normal()),
                incident: Some((Direction::Outbound, TWO_HOURS, Trouble::Silent)),
                probes: true,
                noisy_probes: false,
                goal: incident_goal(10),
            },
            Scenario {
                name: "sparse-outage",
                title: "Total inbound outage for 2 h with sparse traffic (rate drawn every hour between 0 and 2 a minute)",
                days: 3,
                traffic: Some(TrafficModel {
                    rate: Rate::HourlyUpTo(2.0),
                    ..normal()
                }),
                incident: Some((Direction::Inbound, TWO_HOURS, Trouble::FailAll)),
                probes: false,
                noisy_probes: false,
                goal: incident_goal(10),
            },
            Scenario {
                name: "partial-failure",
                title: "30 % of inbound deliveries failing for 2 h",
                days: 3,
                traffic: Some(normal()),
                incident: Some((Direction::Inbound, TWO_HOURS, Trouble::FailShare(0.3))),
                probes: false,
                noisy_probes: false,
                goal: incident_goal(15),
            },
            Scenario {
                name: "latency-x10",
                title: "Outbound latencies ten times longer for 2 h (p95 from about 12 s to about 2 min)",
                days: 3,
                traffic: Some(normal()),
                incident: Some((Direction::Outbound, TWO_HOURS, Trouble::SlowerBy(10.0))),
                probes: false,
                noisy_probes: false,
                goal: incident_goal(10),
            },
            Scenario {
                name: "probe-slowdown",
                title: "Probes only (every 5 min each way): outbound probes take 25 min for 2 h",
                days: 3,
                traffic: None,
                incident: Some((
                    Direction::Outbound,
                    TWO_HOURS,
                    Trouble::ProbeLatency(MIN * 25),
                )),
                probes: true,
                noisy_probes: false,
                goal: incident_goal(10),
            },
        ]
    }

    /// The trace of this scenario for `seed`.
    pub fn trace(&self, seed: u64) -> Trace {
        let tenant = TenantId::new("bench").expect("a valid tenant id");
        let start = trace_start();
        let end = start + TimeDelta::days(self.days);
        let mut rng = SplitMix64::new(seed);
        let incidents = match self.incident {
            Some((direction, length, trouble)) => {
                let last_day = end - TimeDelta::days(1);
                let offset = 6 * 60 + rng.below(10 * 60) as i64;
                let s = last_day + TimeDelta::minutes(offset);
                vec![Incident {
                    direction,
                    start: s,
                    end: s + TimeDelta::from_std(length).unwrap_or(TimeDelta::hours(2)),
                    trouble,
                }]
            }
            None => Vec::new(),
        };
        let mut observations = Vec::new();
        if let Some(traffic) = &self.traffic {
            for d in Direction::ALL {
                // Each direction its own stream, so adding traffic to one
                // does not reshuffle the other.
                let mut dr = SplitMix64::new(rng.next_u64());
                observations.extend(generate_direction(
                    &mut dr, &tenant, d, traffic, start, end, &incidents,
                ));
            }
        }
        observations.sort_by_key(|o| o.at);
        // Without passive traffic, the probes are as noisy as the default's.
        let probe_noise = self.noisy_probes.then(|| {
            let model = self.traffic.clone().unwrap_or_default();
            ProbeNoise {
                seed: rng.next_u64(),
                latency: model.latency,
                lost_share: model.failure_share,
            }
        });
        Trace {
            tenant,
            start,
            end,
            observations,
            incidents,
            probes: self.probes,
            probe_noise,
        }
    }
}

//! Seeded mail-flow traces and their ground truth.
//!
//! Per tenant and direction, messages are handed over as a Poisson process
//! (by default 2 a minute, as in issue 14); each is delivered after a
//! heavy-tailed latency or fails. A [`Trace`] holds the passive
//! observations the gateway would report (stamped when the outcome is
//! known: arrival, or the failure) and the [`Incident`]s it contains, the
//! ground truth alerts are scored against.
//!
//! The latency model ([`LatencyModel`]): with probability 98 % a lognormal
//! body (median 3 s, σ = 0.73 in log space, so its own p95 is 10 s); with
//! probability 2 % a Pareto tail from 1 min (shape 1.5, median 1.6 min)
//! capped at 10 min: "most a few seconds, a few percent taking minutes, up
//! to 10 minutes". The whole mixture's p95 is about 12 s.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use continuity_core::{Direction, FailureKind, Observation, TenantId};

use crate::rng::SplitMix64;

/// Heavy-tailed delivery latencies (see the module docs).
#[derive(Clone, Debug, PartialEq)]
pub struct LatencyModel {
    /// Median of the lognormal body, seconds.
    pub body_median_secs: f64,
    /// Standard deviation of the body's logarithm.
    pub body_sigma: f64,
    /// Share of messages drawn from the tail.
    pub tail_share: f64,
    /// Where the Pareto tail starts, seconds.
    pub tail_min_secs: f64,
    /// The tail's shape (smaller is heavier).
    pub tail_alpha: f64,
    /// No healthy message takes longer, seconds.
    pub cap_secs: f64,
}

impl Default for LatencyModel {
    fn default() -> Self {
        LatencyModel {
            body_median_secs: 3.0,
            body_sigma: 0.73,
            tail_share: 0.02,
            tail_min_secs: 60.0,
            tail_alpha: 1.5,
            cap_secs: 600.0,
        }
    }
}

impl LatencyModel {
    /// One healthy latency, seconds.
    pub fn sample(&self, rng: &mut SplitMix64) -> f64 {
        let secs = if rng.chance(self.tail_share) {
            rng.pareto(self.tail_min_secs, self.tail_alpha)
        } else {
            rng.lognormal(self.body_median_secs, self.body_sigma)
        };
        secs.clamp(0.1, self.cap_secs)
    }
}

/// How much mail a direction carries.
#[derive(Clone, Debug, PartialEq)]
pub enum Rate {
    /// A constant rate, messages a minute.
    Constant(f64),
    /// A rate drawn afresh every hour, uniform between 0 and this many
    /// messages a minute ("sparse traffic").
    HourlyUpTo(f64),
}

/// Normal traffic of one direction.
#[derive(Clone, Debug, PartialEq)]
pub struct TrafficModel {
    /// Messages handed over.
    pub rate: Rate,
    /// Share of messages failing at random (kinds: refused, deferred,
    /// timed out, unreachable, equally likely).
    pub failure_share: f64,
    /// Delivery latencies.
    pub latency: LatencyModel,
}

impl Default for TrafficModel {
    /// 2 messages a minute, 1 % failures, the default latency model.
    fn default() -> Self {
        TrafficModel {
            rate: Rate::Constant(2.0),
            failure_share: 0.01,
            latency: LatencyModel::default(),
        }
    }
}

/// What goes wrong during an incident.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Trouble {
    /// Every delivery fails (the gateway cannot reach the server).
    FailAll,
    /// Nothing arrives; messages handed over meanwhile are held and arrive
    /// after the end (late), as a queueing server delivers them.
    Silent,
    /// This share of deliveries fails.
    FailShare(f64),
    /// Every latency is multiplied by this factor.
    SlowerBy(f64),
    /// The simulated mail system delivers probes after this long (the
    /// runner sets the flow; passive traffic is not touched).
    ProbeLatency(Duration),
}

/// One labelled incident: the ground truth.
#[derive(Clone, Debug, PartialEq)]
pub struct Incident {
    /// The direction in trouble.
    pub direction: Direction,
    /// When the trouble starts (messages handed over from then on are hit).
    pub start: DateTime<Utc>,
    /// When the flow recovers.
    pub end: DateTime<Utc>,
    /// What goes wrong.
    pub trouble: Trouble,
}

impl Incident {
    /// Whether `at` is within the trouble.
    pub fn contains(&self, at: DateTime<Utc>) -> bool {
        self.start <= at && at < self.end
    }
}

/// A generated trace: passive observations in time order and the incidents.
#[derive(Clone, Debug)]
pub struct Trace {
    /// The tenant every observation belongs to.
    pub tenant: TenantId,
    /// The first instant.
    pub start: DateTime<Utc>,
    /// The end (exclusive).
    pub end: DateTime<Utc>,
    /// The passive observations, sorted by [`Observation::at`].
    pub observations: Vec<Observation>,
    /// The ground truth.
    pub incidents: Vec<Incident>,
    /// Whether the runner installs the simulated mail system as the probe
    /// of both directions (probes every 5 minutes by default).
    pub probes: bool,
    /// How the probes of a healthy flow behave when not a steady 20 s.
    pub probe_noise: Option<ProbeNoise>,
}

/// Probes as noisy as the traffic: each minute's probes of a direction take
/// a latency drawn from `latency`, or are lost at `lost_share`.
#[derive(Clone, Debug)]
pub struct ProbeNoise {
    /// The draws' own stream.
    pub seed: u64,
    /// The latency model.
    pub latency: LatencyModel,
    /// The share of probes never delivered.
    pub lost_share: f64,
}

impl Trace {
    /// Length in days.
    pub fn days(&self) -> f64 {
        (self.end - self.start).num_seconds() as f64 / 86_400.0
    }
}

/// When every trace starts: Monday 2026-03-02 00:00 UTC.
pub fn trace_start() -> DateTime<Utc> {
    "2026-03-02T00:00:00Z".parse().expect("a valid time")
}

const RANDOM_FAILURES: [FailureKind; 4] = [
    FailureKind::Refused,
    FailureKind::Deferred,
    FailureKind::TimedOut,
    FailureKind::Unreachable,
];
const OUTAGE_FAILURES: [FailureKind; 3] = [
    FailureKind::Unreachable,
    FailureKind::TimedOut,
    FailureKind::Deferred,
];

fn secs(s: f64) -> TimeDelta {
    TimeDelta::milliseconds((s * 1000.0).round() as i64)
}

/// Generates one direction's observations over `[start, end)`, with the
/// `incidents` of that direction applied to messages handed over during
/// them.
pub fn generate_direction(
    rng: &mut SplitMix64,
    tenant: &TenantId,
    direction: Direction,
    traffic: &TrafficModel,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    incidents: &[Incident],
) -> Vec<Observation> {
    let mut out = Vec::new();
    let max_rate = match traffic.rate {
        Rate::Constant(r) | Rate::HourlyUpTo(r) => r,
    };
    if max_rate <= 0.0 {
        return out;
    }
    let mut hour_rate = (i64::MIN, 0.0);
    let mut t = start;
    loop {
        // Poisson by thinning: candidates at the maximum rate, each kept
        // with probability rate(t) / max.
        t += secs(rng.exponential(60.0 / max_rate));
        if t >= end {
            break;
        }
        let keep = match traffic.rate {
            Rate::Constant(_) => true,
            Rate::HourlyUpTo(r) => {
                let hour = (t - start).num_hours();
                if hour_rate.0 != hour {
                    hour_rate = (hour, rng.uniform() * r);
                }
                rng.chance(hour_rate.1 / r)
            }
        };
        if !keep {
            continue;
        }
        let trouble = incidents
            .iter()
            .find(|i| i.direction == direction && i.contains(t));
        let fail_share = match trouble.map(|i| i.trouble) {
            Some(Trouble::FailAll) => 1.0,
            Some(Trouble::FailShare(s)) => s.max(traffic.failure_share),
            _ => traffic.failure_share,
        };
        let obs = if rng.chance(fail_share) {
            let kind = if fail_share >= 1.0 {
                OUTAGE_FAILURES[rng.below(OUTAGE_FAILURES.len())]
            } else {
                RANDOM_FAILURES[rng.below(RANDOM_FAILURES.len())]
            };
            // A timeout is known after the gateway's 30-second wait, other
            // failures within seconds.
            let known = if kind == FailureKind::TimedOut {
                30.0
            } else {
                rng.exponential(3.0)
            };
            let mut at = t + secs(known);
            if let Some(i) = trouble.filter(|i| i.trouble == Trouble::Silent) {
                // Nothing is heard of a silent direction until it recovers.
                at = at.max(i.end) + secs(known);
            }
            Observation::failed(tenant.clone(), direction, at, kind)
        } else {
            let mut latency = traffic.latency.sample(rng);
            match trouble {
                Some(i) if matches!(i.trouble, Trouble::SlowerBy(_)) => {
                    if let Trouble::SlowerBy(f) = i.trouble {
                        latency *= f;
                    }
                }
                Some(i) if i.trouble == Trouble::Silent => {
                    // Held until the flow recovers, then delivered.
                    latency += (i.end - t).num_milliseconds() as f64 / 1000.0;
                }
                _ => {}
            }
            Observation::delivered(
                tenant.clone(),
                direction,
                t + secs(latency),
                Duration::from_millis((latency * 1000.0).round() as u64),
            )
        };
        if obs.at < end {
            out.push(obs);
        }
    }
    out
}

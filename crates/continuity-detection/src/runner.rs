//! Replays a [`Trace`] through a real [`Monitor`]: in-memory store, manual
//! clock ticked every simulated minute, passive observations fed at their
//! times, the simulated mail system as the probe when the trace has
//! probes, and a recording notifier whose messages become [`AlertEvent`]s.

use std::{sync::Arc, time::Duration};

use chrono::{DateTime, TimeDelta, Utc};
use continuity_core::{
    Direction, ManualClock, Monitor, Result,
    config::ChannelKind,
    link::{LinkKey, LinkSigner},
    machine::AlertKind,
    policy::Reading,
    sim::{SimulatedFlow, SimulatedMailSystem},
    testing::RecordingNotifier,
};

use crate::{
    configs::Configuration,
    rng::SplitMix64,
    trace::{Trace, Trouble},
};

/// Probes of a healthy flow arrive after this long.
pub const PROBE_LATENCY: Duration = Duration::from_secs(20);

/// One alert as the recipient got it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlertEvent {
    /// When it was decided.
    pub at: DateTime<Utc>,
    /// Raised, reminder or resolved.
    pub kind: AlertKind,
    /// The directions it is about: those of the conditions that newly
    /// raised (for a raise), or of every condition it reports.
    pub directions: Vec<Direction>,
}

/// One condition's reading at a minute, for the pictures.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// The minute.
    pub at: DateTime<Utc>,
    /// The direction.
    pub direction: Direction,
    /// The condition's name.
    pub condition: String,
    /// The figure compared (failures, seconds of latency, counter value).
    pub value: Option<f64>,
    /// What it is compared with, in the same unit.
    pub threshold: Option<f64>,
    /// Whether the policy judged it breached.
    pub breached: bool,
    /// The reading as an administrator reads it.
    pub text: String,
}

/// What a replay produced.
#[derive(Clone, Debug, Default)]
pub struct Replay {
    /// Every alert, in order.
    pub alerts: Vec<AlertEvent>,
    /// Readings every minute (only when asked for).
    pub samples: Vec<Sample>,
}

/// The number behind a reading and its threshold, in one unit.
pub fn reading_figures(reading: &Reading) -> (Option<f64>, Option<f64>) {
    use continuity_core::policy::FailureLimit;
    match reading {
        Reading::Latency { value, limit, .. } => {
            (value.map(|v| v.as_secs_f64()), Some(limit.as_secs_f64()))
        }
        Reading::Failures {
            failures,
            samples,
            limit,
            ..
        } => match limit {
            FailureLimit::Count(n) => (Some(*failures as f64), Some(f64::from(*n))),
            FailureLimit::Rate(r) => (
                (*samples > 0).then(|| *failures as f64 / *samples as f64),
                Some(*r),
            ),
        },
        Reading::Leaky {
            counter, threshold, ..
        } => (Some(f64::from(*counter)), Some(f64::from(*threshold))),
        Reading::Flow {
            bad,
            samples,
            normal,
            ..
        } => (
            (*samples > 0).then(|| *bad as f64 / *samples as f64),
            Some(*normal),
        ),
        // A policy added later shows up without figures until it is taught here.
        _ => (None, None),
    }
}

/// Replays `trace` under `configuration`; with `sample`, also records
/// every condition's reading each minute.
pub fn replay(trace: &Trace, configuration: &Configuration, sample: bool) -> Result<Replay> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .map_err(|e| continuity_core::Error::config("runtime", e.to_string()))?;
    runtime.block_on(replay_async(trace, configuration, sample))
}

async fn replay_async(
    trace: &Trace,
    configuration: &Configuration,
    sample: bool,
) -> Result<Replay> {
    let clock = ManualClock::new(trace.start);
    let sms = Arc::new(RecordingNotifier::new(ChannelKind::Sms));
    let mail = Arc::new(SimulatedMailSystem::new(
        Arc::new(clock.clone()),
        PROBE_LATENCY,
    ));
    let mut builder = Monitor::builder()
        .clock(Arc::new(clock.clone()))
        .in_memory_store()
        .notifier(sms.clone())
        .link_signer(LinkSigner::new(LinkKey::new("bench", [7u8; 32])?))
        .portal_url("https://continuity.example.net/c/");
    if trace.probes {
        builder = builder
            .probe(Direction::Inbound, mail.clone())
            .probe(Direction::Outbound, mail.clone());
    }
    let monitor = builder.build()?;
    monitor
        .register_tenant(configuration.tenant_config(&trace.tenant)?)
        .await?;

    let mut out = Replay::default();
    let mut next = 0;
    let mut now = trace.start;
    let mut noise = trace
        .probe_noise
        .as_ref()
        .map(|n| (n, SplitMix64::new(n.seed)));
    while now < trace.end {
        now += TimeDelta::minutes(1);
        clock.set(now);
        // This minute's probes, as noisy as the traffic (an incident's
        // trouble below overrides its direction).
        if let Some((n, rng)) = &mut noise {
            for d in Direction::ALL {
                let flow = if rng.chance(n.lost_share) {
                    SimulatedFlow::Blackhole
                } else {
                    SimulatedFlow::Latency(
                        Duration::try_from_secs_f64(n.latency.sample(rng)).unwrap_or(PROBE_LATENCY),
                    )
                };
                mail.set_flow(&trace.tenant, d, flow);
            }
        }
        for i in &trace.incidents {
            let flow = match i.trouble {
                Trouble::ProbeLatency(l) if i.contains(now) => l,
                // Held, like the passive mail, until the flow recovers.
                Trouble::Silent if i.contains(now) => {
                    (i.end - now).to_std().unwrap_or_default() + PROBE_LATENCY
                }
                Trouble::ProbeLatency(_) | Trouble::Silent => PROBE_LATENCY,
                _ => continue,
            };
            mail.set_flow(&trace.tenant, i.direction, SimulatedFlow::Latency(flow));
        }
        while let Some(o) = trace.observations.get(next).filter(|o| o.at <= now) {
            monitor.observe(o.clone())?;
            next += 1;
        }
        monitor.tick(now).await?;
        for m in sms.take() {
            let directions = m
                .conditions
                .iter()
                .filter(|c| c.newly_raised || m.kind != AlertKind::Raised)
                .map(|c| c.direction)
                .collect::<Vec<_>>();
            // A raise owed after a suspension names no new condition: it is
            // about every condition it reports.
            let directions = if directions.is_empty() {
                m.conditions.iter().map(|c| c.direction).collect()
            } else {
                directions
            };
            out.alerts.push(AlertEvent {
                at: m.created_at,
                kind: m.kind,
                directions,
            });
        }
        if sample {
            for (direction, condition, verdict) in monitor.status(&trace.tenant)?.readings {
                let (value, threshold) = reading_figures(&verdict.reading);
                out.samples.push(Sample {
                    at: now,
                    direction,
                    condition,
                    value,
                    threshold,
                    breached: verdict.breached,
                    text: verdict.reading.to_string(),
                });
            }
        }
    }
    Ok(out)
}

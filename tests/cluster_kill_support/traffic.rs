//! The day's traffic: tenants, their configuration, their outages and the
//! deliveries the gateway sees each minute, all from one seed.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use continuity::{
    Direction, FailureKind, Observation, TenantId,
    config::{ChannelKind, Recipient, TenantConfig},
    policy::{FailureLimit, FailureThreshold},
};

/// The test's generator: the same traffic for a seed on every build.
pub use continuity::testing::SplitMix64 as Rng;

/// Midnight of the simulated day.
pub fn day_start() -> DateTime<Utc> {
    "2026-03-02T00:00:00Z".parse().expect("a valid time")
}

/// Minute `m` of the day as a time.
pub fn minute(m: i64) -> DateTime<Utc> {
    day_start() + TimeDelta::minutes(m)
}

/// A period during which every outbound delivery of a tenant fails
/// (the organisation's server cannot be reached from the gateway).
#[derive(Clone, Debug)]
pub struct Outage {
    pub tenant: TenantId,
    /// First minute whose deliveries fail.
    pub from: i64,
    /// First minute whose deliveries go through again.
    pub to: i64,
}

/// The recipients every tenant has: two webhooks on the test's receiver.
pub const RECIPIENTS: [&str; 2] = ["ops-a", "ops-b"];

/// The fewest samples in a window for a verdict.
pub const MIN_SAMPLES: u32 = 12;

/// The tenants' configuration: failures judged on a rate over a short
/// window, so that a burst of failures raises within minutes, with a
/// minimum of samples that all of the tenant's traffic reaches in three
/// minutes and a third of it (what one instance of three sees without
/// sharing) only in eight: an owner that does not count every node's
/// observations alerts minutes late. A restarted owner's window (not
/// persisted) is unknown until it holds that many again, which neither
/// raises nor clears. No learned baseline (the day is too short for it to
/// matter) and no probes (the traffic is the gateway's).
pub fn tenant_config(tenant: &TenantId, receiver: &str) -> TenantConfig {
    let recipients = RECIPIENTS
        .iter()
        .map(|r| Recipient::new(*r, ChannelKind::Webhook, format!("{receiver}/hook/{r}")))
        .collect();
    let mut config = TenantConfig::new(tenant.clone(), recipients);
    for d in [&mut config.inbound, &mut config.outbound] {
        d.window = Duration::from_secs(10 * 60);
        d.flow = None;
        d.latency = None;
        d.failures = Some(FailureThreshold {
            limit: FailureLimit::Rate(0.5),
            min_samples: MIN_SAMPLES,
        });
    }
    config.probes.inbound = false;
    config.probes.outbound = false;
    config
}

/// Who is watched and what goes wrong when.
#[derive(Clone, Debug)]
pub struct Plan {
    pub tenants: Vec<TenantId>,
    pub outages: Vec<Outage>,
}

impl Plan {
    /// `tenants` tenants (at least 7); four have an outage of one and a
    /// half to three and a half hours, at different times of the day.
    pub fn new(tenants: usize) -> Self {
        let tenants: Vec<TenantId> = (0..tenants)
            .map(|i| TenantId::new(format!("org-{i}")).expect("a valid id"))
            .collect();
        // (tenant, first minute down, first minute up again)
        let outages = [
            (0, 3 * 60 + 17, 6 * 60 + 41),
            (3, 13 * 60 + 52, 16 * 60 + 8),
            (5, 9 * 60 + 5, 10 * 60 + 35),
            (6, 19 * 60 + 40, 22 * 60 + 15),
        ]
        .into_iter()
        .map(|(i, from, to)| Outage {
            tenant: tenants[i].clone(),
            from,
            to,
        })
        .collect();
        Plan { tenants, outages }
    }

    pub fn outage_of(&self, tenant: &TenantId) -> Option<&Outage> {
        self.outages.iter().find(|o| &o.tenant == tenant)
    }

    /// Every delivery the gateway learns of in minute `m` (after minute
    /// `m - 1`'s tick, at or before minute `m`'s): 3 to 6 per tenant and
    /// direction, delivered within seconds, a rare one deferred; during an
    /// outage every outbound one fails.
    pub fn minute_traffic(&self, rng: &mut Rng, m: i64) -> Vec<Observation> {
        let mut out = Vec::new();
        for t in &self.tenants {
            let down = self
                .outage_of(t)
                .is_some_and(|o| (o.from..o.to).contains(&m));
            for d in Direction::ALL {
                let n = 3 + rng.below(4);
                for _ in 0..n {
                    // Strictly inside the minute, so it is never older than
                    // the tick before nor newer than the tick after.
                    let at = minute(m - 1) + TimeDelta::milliseconds(1 + rng.below(59_998) as i64);
                    let o = if down && d == Direction::Outbound {
                        Observation::failed(t.clone(), d, at, FailureKind::Unreachable)
                            .with_reply("connection refused by 203.0.113.5:25")
                    } else if rng.chance(0.01) {
                        Observation::failed(t.clone(), d, at, FailureKind::Deferred)
                            .with_reply("421 4.3.2 Service not available")
                    } else {
                        let latency = Duration::from_millis(500 + rng.below(20_000));
                        Observation::delivered(t.clone(), d, at, latency)
                    };
                    out.push(o);
                }
            }
        }
        out
    }
}

//! Observations shared across a [cluster](super::MonitorBuilder::cluster):
//! every instance may see any tenant's mail, and only the tenant's owner
//! judges it.
//!
//! [`Monitor::observe`] on an instance that does not own the tenant keeps
//! the observation here (`Forwarding`) instead of in the tenant's window.
//! At its next tick (`exchange_observations`, right after the shard sync)
//! the instance writes what it kept, one batch per shard, to the store
//! ([`EventStore::share_observations`]), then takes the batches shared for
//! the shards it owns ([`EventStore::take_shared_observations`]) and
//! records them into its windows exactly as if it had observed them, before
//! this tick's evaluation. An observation therefore counts once, on the
//! owner, at most one tick later than on an instance that saw all the
//! traffic: the store removes a batch as it hands it out, and an instance
//! never records what it forwards.
//!
//! What a hand-over can lose is bounded and the same as without sharing:
//! windows live in memory, so the old owner's window of a tenant is not
//! carried over; batches not yet taken wait in the store for whoever owns
//! the shard next. An instance that dies loses what it kept since its last
//! tick (one tick's forwarded observations) and the batches it took in a
//! tick it did not finish. While the store cannot be reached, forwarded
//! observations wait here, up to [`MAX_FORWARDING`]; beyond that the oldest
//! are dropped, counted and logged.
//!
//! The payload is JSON, compact and versioned: per tenant, each
//! observation as `[direction, ns after the batch's base time, latency in
//! ns or -(1 + failure kind), reply]`. Latencies and times keep their
//! nanoseconds, so the owner's window files each observation in the very
//! bucket and latency bin the observing instance would have.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use tracing::{debug, warn};

use super::{Monitor, TickReport, lock};
use crate::{
    cluster::ShardSet,
    domain::{Direction, FailureKind, Observation, Outcome, RemoteReply, TenantId},
    fxhash::FxHashMap,
    store::SharedObservations,
    window::Recorded,
};

/// Most observations an instance keeps for other instances while the store
/// cannot take them (about 100 bytes each); the oldest are dropped beyond.
pub const MAX_FORWARDING: usize = 200_000;

/// Batches taken from the store per call.
const TAKE_LIMIT: usize = 256;

/// The payload format; a batch of another version is skipped and logged.
const PAYLOAD_VERSION: u8 = 1;

/// Observations of tenants this instance does not own, kept until the
/// next tick shares them.
#[derive(Debug, Default)]
pub(super) struct Forwarding {
    kept: Vec<(u16, Observation)>,
    /// Dropped because the store could not take them for too long.
    dropped: u64,
}

impl Forwarding {
    pub(super) fn keep(&mut self, shard: u16, observation: Observation) {
        self.kept.push((shard, observation));
    }
}

#[derive(Serialize, Deserialize)]
struct Payload {
    v: u8,
    /// Unix milliseconds every observation's time counts from.
    base: i64,
    tenants: Vec<(TenantId, Vec<WireObservation>)>,
}

/// `[direction, ns after base, latency ns or -(1 + failure kind), reply]`.
#[derive(Serialize, Deserialize)]
struct WireObservation(u8, i64, i64, Option<RemoteReply>);

fn encode(base: DateTime<Utc>, observations: &[&Observation]) -> Vec<u8> {
    let base_ms = base.timestamp_millis();
    let base = DateTime::<Utc>::from_timestamp_millis(base_ms).unwrap_or(base);
    let mut tenants: Vec<(TenantId, Vec<WireObservation>)> = Vec::new();
    let mut index: FxHashMap<&TenantId, usize> = FxHashMap::default();
    for o in observations {
        // Times beyond ±292 years of the base cannot be written in ns; no
        // window holds them anyway.
        let Some(offset) = (o.at - base).num_nanoseconds() else {
            continue;
        };
        let outcome = match &o.outcome {
            Outcome::Delivered { latency } => i64::try_from(latency.as_nanos()).unwrap_or(i64::MAX),
            Outcome::Failed { kind } => -1 - kind.index() as i64,
        };
        let reply = o.outcome.is_failure().then(|| o.reply.clone()).flatten();
        let slot = *index.entry(&o.tenant).or_insert_with(|| {
            tenants.push((o.tenant.clone(), Vec::new()));
            tenants.len() - 1
        });
        tenants[slot].1.push(WireObservation(
            o.direction.index() as u8,
            offset,
            outcome,
            reply,
        ));
    }
    // Serialising owned strings and integers cannot fail.
    serde_json::to_vec(&Payload {
        v: PAYLOAD_VERSION,
        base: base_ms,
        tenants,
    })
    .unwrap_or_default()
}

/// The observations of a payload; `Err` names what is wrong with it.
fn decode(payload: &[u8]) -> Result<Vec<Observation>, String> {
    let p: Payload = serde_json::from_slice(payload).map_err(|e| e.to_string())?;
    if p.v != PAYLOAD_VERSION {
        return Err(format!(
            "payload version {} (this build reads {PAYLOAD_VERSION})",
            p.v
        ));
    }
    let base = DateTime::<Utc>::from_timestamp_millis(p.base)
        .ok_or_else(|| format!("base time {} out of range", p.base))?;
    let mut out = Vec::new();
    for (tenant, observations) in p.tenants {
        for WireObservation(direction, offset, outcome, reply) in observations {
            let direction = match direction {
                0 => Direction::ALL[0],
                1 => Direction::ALL[1],
                other => return Err(format!("direction {other}")),
            };
            let at = base
                .checked_add_signed(TimeDelta::nanoseconds(offset))
                .ok_or_else(|| format!("time {offset} ns after {base} out of range"))?;
            let outcome = if outcome >= 0 {
                Outcome::Delivered {
                    latency: Duration::from_nanos(outcome as u64),
                }
            } else {
                let kind = usize::try_from(-1 - outcome)
                    .ok()
                    .and_then(|i| FailureKind::ALL.get(i).copied())
                    .ok_or_else(|| format!("failure kind {}", -1 - outcome))?;
                Outcome::Failed { kind }
            };
            out.push(Observation {
                tenant: tenant.clone(),
                direction,
                at,
                outcome,
                reply,
            });
        }
    }
    Ok(out)
}

impl Monitor {
    /// Keeps an observation of a tenant this instance does not own, for
    /// its owner (see the [module docs](self)).
    pub(super) fn forward(&self, shard: u16, observation: Observation) -> Recorded {
        lock(&self.cluster.forwarding).keep(shard, observation);
        Recorded::Forwarded
    }

    /// Shares what this instance kept for other instances and merges what
    /// they shared for the shards it owns (see the [module docs](self)).
    pub(super) async fn exchange_observations(&self, now: DateTime<Utc>, report: &mut TickReport) {
        if self.cluster.instance.is_none() {
            return;
        }
        self.share_forwarded(now, report).await;
        self.merge_shared(report).await;
    }

    pub(super) async fn share_forwarded(&self, now: DateTime<Utc>, report: &mut TickReport) {
        let kept = std::mem::take(&mut lock(&self.cluster.forwarding).kept);
        if kept.is_empty() {
            return;
        }
        let owned = self.owned_shards();
        // Shards this instance gained since the observations came in: no
        // need for a round trip through the store.
        let (mine, theirs): (Vec<_>, Vec<_>) =
            kept.into_iter().partition(|(s, _)| owned.contains(*s));
        for (_, o) in mine {
            self.record_shared(o, report);
        }
        if theirs.is_empty() {
            return;
        }
        let mut by_shard: FxHashMap<u16, Vec<&Observation>> = FxHashMap::default();
        for (s, o) in &theirs {
            by_shard.entry(*s).or_default().push(o);
        }
        let mut batches: Vec<SharedObservations> = by_shard
            .into_iter()
            .map(|(shard, observations)| SharedObservations {
                shard,
                shared_at: now,
                payload: encode(now, &observations),
            })
            .collect();
        batches.sort_by_key(|b| b.shard);
        match self.parts.store.as_ref().share_observations(&batches).await {
            Ok(()) => report.observations_shared += theirs.len() as u64,
            Err(e) => {
                warn!(error = %e, observations = theirs.len(), "sharing observations with their owners failed; kept for the next tick");
                report.errors.push(format!("sharing observations: {e}"));
                let mut forwarding = lock(&self.cluster.forwarding);
                // Older first, then what came in meanwhile, within the bound.
                let newer = std::mem::replace(&mut forwarding.kept, theirs);
                forwarding.kept.extend(newer);
                let excess = forwarding.kept.len().saturating_sub(MAX_FORWARDING);
                if excess > 0 {
                    forwarding.kept.drain(..excess);
                    forwarding.dropped += excess as u64;
                    warn!(
                        dropped = excess,
                        total_dropped = forwarding.dropped,
                        "observations for other instances dropped: the store has not taken them for too long"
                    );
                }
            }
        }
    }

    async fn merge_shared(&self, report: &mut TickReport) {
        let owned: ShardSet = self.owned_shards();
        if owned.is_empty() {
            return;
        }
        loop {
            let batches = match self
                .parts
                .store
                .as_ref()
                .take_shared_observations(&owned, TAKE_LIMIT)
                .await
            {
                Ok(b) => b,
                Err(e) => {
                    warn!(error = %e, "taking observations shared by other instances failed; they wait in the store");
                    report
                        .errors
                        .push(format!("taking shared observations: {e}"));
                    return;
                }
            };
            let full = batches.len() >= TAKE_LIMIT;
            for batch in batches {
                match decode(&batch.payload) {
                    Ok(observations) => {
                        for o in observations {
                            self.record_shared(o, report);
                        }
                    }
                    Err(why) => {
                        warn!(shard = batch.shard, shared_at = %batch.shared_at, why, "a batch of shared observations could not be read; skipped");
                        report.errors.push(format!(
                            "shared observations of shard {} could not be read: {why}",
                            batch.shard
                        ));
                    }
                }
            }
            if !full {
                return;
            }
        }
    }

    /// Records an observation another instance made (or this one kept
    /// before it owned the tenant) into the tenant's window.
    fn record_shared(&self, o: Observation, report: &mut TickReport) {
        let Ok(rt) = self.runtime(&o.tenant) else {
            // Removed here since, or not registered on every instance.
            debug!(tenant = %o.tenant, "a shared observation of a tenant not registered here; skipped");
            return;
        };
        self.record_replied(&rt, o.direction, o.at, &o.outcome, o.reply);
        report.observations_merged += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn a_payload_gives_back_every_observation_to_the_nanosecond() {
        let acme = TenantId::new("acme").unwrap();
        let beta = TenantId::new("beta").unwrap();
        let observations = vec![
            Observation::delivered(
                acme.clone(),
                Direction::Inbound,
                at("2030-01-01T00:00:59.123456789Z"),
                Duration::new(12, 345_678_901),
            ),
            Observation::failed(
                beta.clone(),
                Direction::Outbound,
                at("2029-12-31T23:59:01Z"),
                FailureKind::ALL[5],
            )
            .with_reply("451 4.3.0 try later"),
            Observation::delivered(
                acme,
                Direction::Outbound,
                at("2030-01-01T00:01:00Z"),
                Duration::MAX,
            ),
        ];
        let refs: Vec<&Observation> = observations.iter().collect();
        let payload = encode(at("2030-01-01T00:01:00.500Z"), &refs);
        let back = decode(&payload).unwrap();
        let mut expected = observations.clone();
        // Beyond i64 nanoseconds a latency is kept at the largest (no
        // window tells them apart: it caps at about 49 days).
        expected[2].outcome = Outcome::Delivered {
            latency: Duration::from_nanos(i64::MAX as u64),
        };
        // Grouped by tenant, each tenant's in the order observed.
        expected.swap(1, 2);
        assert_eq!(back, expected);
    }

    #[test]
    fn a_damaged_payload_is_refused_with_the_reason() {
        assert!(decode(b"not json").is_err());
        assert!(
            decode(br#"{"v":9,"base":0,"tenants":[]}"#)
                .unwrap_err()
                .contains("version 9")
        );
        assert!(
            decode(br#"{"v":1,"base":0,"tenants":[["acme",[[2,0,0,null]]]]}"#)
                .unwrap_err()
                .contains("direction 2")
        );
        assert!(
            decode(br#"{"v":1,"base":0,"tenants":[["acme",[[0,0,-99,null]]]]}"#)
                .unwrap_err()
                .contains("failure kind 98")
        );
        assert!(decode(br#"{"v":1,"base":0,"tenants":[["not a tenant id!",[]]]}"#).is_err());
    }
}

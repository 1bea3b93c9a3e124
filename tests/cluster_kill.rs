//! Three instances in separate processes on one PostgreSQL, a simulated day
//! of spread traffic with four outages, and instances killed with SIGKILL
//! (issue #16, item 3).
//!
//! Each node is this test binary run again (`cluster_kill_support/node.rs`),
//! driven line by line by the test: observations, ticks (one a simulated
//! minute, so the day takes about a minute of wall time in a debug build),
//! portal views. Every observation goes to exactly one live node, chosen
//! at random, as a load balancer would spread it. Alerts go through the
//! real webhook notifier, signed, to a receiver in this process
//! (`cluster_kill_support/receiver.rs`), which holds each request 150 ms
//! before answering. The same traffic runs through one in-process instance
//! on an in-memory store: the cluster must alert like it.
//!
//! Kills, fourteen: ten of a random node at random minutes, two of the
//! owner of an outage's tenant two minutes into the outage (each a few
//! milliseconds after the tick was sent, whatever the node was doing
//! then), and two of the owner of a tenant whose alert the receiver is
//! holding (a delivery in flight: it is sent again, with the same key,
//! once the outbox lease runs out). A killed node restarts 1 to 4 minutes
//! later, half the time under its old instance name (a pod of a stateful
//! set: it renews the shard leases it held at once) and half the time
//! under a new one (a replaced machine: its old name's shards wait for
//! their lease, 2 minutes, to run out before the others take them over).
//!
//! What is checked:
//! - each outage's tenant gets, at every recipient, the first alert, a
//!   reminder every hour while it lasts and the resolved notice, no alert
//!   id missing (the store's count of alerts decided is the count
//!   received), nothing else; a tenant without an outage gets nothing;
//! - a request received more than once carries the same idempotency key
//!   and the same alert, and an alert always the same key (duplicates
//!   counted and printed);
//! - the first alert and the resolved notice come at most one tick after
//!   the single instance's; when the tenant's owner was killed after the
//!   outage began (ended) and before both had alerted, at most
//!   [`TAKEOVER_BOUND`] after it (the lease, a tick, and the time the new
//!   owner's window, not persisted, takes to fill again);
//! - every 30 minutes and after every restart, the portal on every live
//!   node shows each tenant at the same version and state, the store's;
//! - no tick reports an error; the outbox is empty at the end.
//!
//! `CONTINUITY_CLUSTER_KILL_ROUTE=owner` routes each observation to its
//! tenant's owner instead of spreading it: the routing an embedder needs
//! while observations count only on the owner. The test spreads unless
//! told so. `CONTINUITY_CLUSTER_KILL_SEED` plays another day.
//!
//! PostgreSQL is required (`CONTINUITY_TEST_PG`, or 127.0.0.1:5432): the
//! test fails, naming the server, when it cannot connect.

// The parts, in `tests/cluster_kill_support/`.
mod cluster_kill_support {
    pub mod node;
    pub mod receiver;
    pub mod traffic;
}

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
    time::Duration,
};

use chrono::{DateTime, TimeDelta, Utc};
use continuity::{
    ManualClock, Monitor, TenantId,
    config::ChannelKind,
    machine::AlertKind,
    memory::InMemoryEventStore,
    store::EventStore,
    stores::{PostgresOptions, PostgresStore},
};
use continuity_core::testing::RecordingNotifier;
use continuity_test_support::postgres::{pg_url, unique_schema};
use serde_json::Value;

use self::cluster_kill_support::{
    node::{NODE_ENV, NodeProcess, NodeSpec},
    receiver::{Received, Receiver},
    traffic::{Plan, RECIPIENTS, Rng, minute, tenant_config},
};

const TENANTS: usize = 8;
const DAY: i64 = 24 * 60;
const SEED: u64 = 0x1603_c1a5;
/// Kills at random minutes, of a random node.
const RANDOM_KILLS: usize = 10;
/// Kills of the owner of an outage's tenant two minutes into the outage
/// (the first outages'), inside the detection window.
const AIMED_KILLS: usize = 2;
/// Kills of a node in mid-delivery: while the receiver holds a request.
const DELIVERY_KILLS: usize = 2;
/// The longest a killed node stays down, in minutes.
const MAX_DOWN: i64 = 4;
/// How late the first alert (or the resolved notice) may come after the
/// single instance's when the tenant's owner was killed inside the
/// detection window, in ticks: the lease (2) and one tick until another
/// instance takes the shard over (or the same name comes back), then the
/// new owner's window, empty (windows are not persisted): 4 ticks to hold
/// the 12 samples a verdict needs at 3 or more a minute, and 2 breached
/// evaluations to raise.
const TAKEOVER_BOUND: i64 = 2 + 1 + 4 + 2;
/// How late a reminder may come after the hour: the longest time a
/// killed owner's tenants wait for an owner again (its down time, capped
/// by the lease, 2 min) and a tick, and a tick more for a delivery whose
/// node was killed in mid-request (its outbox lease runs out first).
const SCHEDULE_SLACK: i64 = MAX_DOWN + 1;

/// The node's entry: returns at once unless the test started this process
/// as a node.
#[test]
fn cluster_kill_node() {
    if let Ok(spec) = std::env::var(NODE_ENV) {
        cluster_kill_support::node::serve(&spec);
    }
}

/// A kill planned before the day starts.
struct Kill {
    minute: i64,
    /// Aimed at this tenant's owner; a random live node otherwise.
    target: Option<TenantId>,
    /// Milliseconds after the tick was sent.
    after_ms: u64,
}

struct KillRecord {
    minute: i64,
    why: &'static str,
    instance: String,
    owned: Vec<String>,
    restarted_as: String,
    down: i64,
}

fn kill_plan(rng: &mut Rng, plan: &Plan) -> Vec<Kill> {
    let mut minutes: BTreeSet<i64> = plan.outages[..AIMED_KILLS]
        .iter()
        .map(|o| o.from + 2)
        .collect();
    let aimed: BTreeMap<i64, TenantId> = plan.outages[..AIMED_KILLS]
        .iter()
        .map(|o| (o.from + 2, o.tenant.clone()))
        .collect();
    while minutes.len() < RANDOM_KILLS + aimed.len() {
        let m = 20 + rng.below((DAY - 80) as u64) as i64;
        // One node down at a time: the cluster keeps two of three.
        if minutes.iter().all(|k| (k - m).abs() > MAX_DOWN + 2) {
            minutes.insert(m);
        }
    }
    minutes
        .into_iter()
        .map(|m| Kill {
            minute: m,
            target: aimed.get(&m).cloned(),
            after_ms: rng.below(25),
        })
        .collect()
}

struct Cluster {
    spec: NodeSpec,
    slots: Vec<Option<NodeProcess>>,
    /// Each tenant's owner (slot) as the last tick answers said.
    owner: BTreeMap<String, usize>,
    generation: usize,
}

impl Cluster {
    fn spawn(&mut self, slot: usize, instance: String, now: DateTime<Utc>) {
        let spec = NodeSpec {
            instance,
            start: now,
            ..self.spec.clone()
        };
        self.slots[slot] = Some(NodeProcess::spawn(&spec));
    }

    fn live(&self) -> Vec<usize> {
        (0..self.slots.len())
            .filter(|i| self.slots[*i].is_some())
            .collect()
    }
}

/// The seed of the traffic and the kills: [`SEED`], or
/// `CONTINUITY_CLUSTER_KILL_SEED` to try another day.
fn seed() -> u64 {
    std::env::var("CONTINUITY_CLUSTER_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(SEED)
}

fn owner_routing() -> bool {
    std::env::var("CONTINUITY_CLUSTER_KILL_ROUTE").is_ok_and(|v| v == "owner")
}

#[test]
fn three_processes_killed_at_random_alert_like_one_instance() {
    #[allow(
        clippy::disallowed_methods,
        reason = "the test's wall time is reported"
    )]
    let started = std::time::Instant::now();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let schema = unique_schema("cluster_kill");
    // Declared before the nodes, so dropped after them, pass or fail.
    let _schema_guard = SchemaGuard(schema.clone());
    let url = pg_url();
    // Connecting creates and migrates the schema once, before the nodes.
    let store = rt
        .block_on(PostgresStore::connect_with(
            &url,
            PostgresOptions {
                schema: schema.clone(),
                pool_size: 2,
                ..PostgresOptions::default()
            },
        ))
        .unwrap_or_else(|e| {
            panic!("PostgreSQL is needed for this test ({url}): {e}; run scripts/prepare-test-env")
        });
    let receiver = Receiver::start();
    let plan = Plan::new(TENANTS);
    let configs: Vec<_> = plan
        .tenants
        .iter()
        .map(|t| tenant_config(t, &receiver.url))
        .collect();

    // The single instance that sees all the traffic.
    let ref_clock = ManualClock::new(minute(0));
    let ref_store = Arc::new(InMemoryEventStore::new());
    let ref_sent = Arc::new(RecordingNotifier::new(ChannelKind::Webhook));
    let reference = Monitor::builder()
        .clock(Arc::new(ref_clock.clone()))
        .store(ref_store)
        .notifier(ref_sent.clone())
        .link_signer(cluster_kill_support::node::signer())
        .portal_url(cluster_kill_support::node::PORTAL_URL)
        .settings(cluster_kill_support::node::settings())
        .build()
        .expect("the single instance");
    for c in &configs {
        rt.block_on(reference.register_tenant(c.clone()))
            .expect("register");
    }

    let mut cluster = Cluster {
        spec: NodeSpec {
            pg_url: url.clone(),
            schema: schema.clone(),
            instance: String::new(),
            start: minute(0),
            tenants: configs,
        },
        slots: vec![None, None, None],
        owner: BTreeMap::new(),
        generation: 0,
    };
    let names = ["node-a", "node-b", "node-c"];
    for (slot, name) in names.iter().enumerate() {
        cluster.spawn(slot, (*name).to_string(), minute(0));
    }

    let seed = seed();
    let mut traffic_rng = Rng::new(seed);
    let mut route_rng = Rng::new(seed ^ 0xA5A5);
    let mut kill_rng = Rng::new(seed ^ 0x5A5A);
    let kills = kill_plan(&mut kill_rng, &plan);
    let by_owner = owner_routing();
    let mut kill_records: Vec<KillRecord> = Vec::new();
    let mut restarts: Vec<(i64, usize, String)> = Vec::new();
    let mut checkpoints = 0u64;
    let mut tick_errors: Vec<String> = Vec::new();
    let mut delivery_kills = 0;
    let mut delivery_armed_until: Option<i64> = None;

    for m in 1..=DAY {
        let now = minute(m);
        // Restarts due: the node starts with the clock of the last tick.
        let mut restarted = false;
        for (_, slot, name) in restarts.extract_if(.., |(due, _, _)| *due <= m) {
            cluster.spawn(slot, name, minute(m - 1));
            restarted = true;
        }

        // The minute's traffic: all of it to the single instance, each
        // observation to one live node of the cluster.
        let traffic = plan.minute_traffic(&mut traffic_rng, m);
        for o in &traffic {
            reference.observe(o.clone()).expect("observe");
        }
        let live = cluster.live();
        let mut batches: Vec<Vec<&continuity::Observation>> = vec![Vec::new(); 3];
        for o in &traffic {
            let owner = cluster
                .owner
                .get(o.tenant.as_str())
                .filter(|s| by_owner && cluster.slots[**s].is_some());
            let slot = match owner {
                Some(s) => *s,
                None => live[route_rng.below(live.len() as u64) as usize],
            };
            batches[slot].push(o);
        }
        for &slot in &live {
            let batch = serde_json::to_string(&batches[slot]).expect("a batch");
            let n = cluster.slots[slot].as_mut().expect("live");
            let answer = n.ask(&format!("observe {batch}"));
            assert_eq!(
                answer["errors"].as_array().map(Vec::len),
                Some(0),
                "{}: {answer}",
                n.instance
            );
        }

        // The single instance first: a minute at which it alerts arms a
        // kill of a node in mid-delivery.
        ref_clock.set(now);
        let report = rt
            .block_on(reference.tick(now))
            .expect("the single instance's tick");
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        if report.alerts > 0 && delivery_kills < DELIVERY_KILLS && live.len() == 3 {
            delivery_armed_until = Some(m + 2);
        }

        // The tick, on every live node at once; a kill lands inside it.
        receiver.set_now(now);
        let stamp = now.to_rfc3339();
        let received_before = receiver.count();
        for &slot in &live {
            cluster.slots[slot]
                .as_mut()
                .expect("live")
                .send(&format!("tick {stamp}"));
        }
        let planned = kills.iter().find(|k| k.minute == m);
        let mut victim = None;
        if let Some(kill) = planned {
            std::thread::sleep(Duration::from_millis(kill.after_ms));
            let aimed = kill
                .target
                .as_ref()
                .and_then(|t| cluster.owner.get(t.as_str()).copied())
                .filter(|s| cluster.slots[*s].is_some());
            let why = if aimed.is_some() {
                "owner of an outage's tenant"
            } else {
                "random"
            };
            victim = Some((
                aimed.unwrap_or_else(|| live[kill_rng.below(live.len() as u64) as usize]),
                why,
            ));
        } else if delivery_armed_until.is_some_and(|until| m <= until && live.len() == 3) {
            // A request held by the receiver is a delivery in flight: kill
            // the node that owns its tenant (the one that decided the
            // alert, and as a rule the one delivering it).
            if let Some(tenant) =
                receiver.wait_for_request(received_before, Duration::from_millis(400))
            {
                let slot = cluster
                    .owner
                    .get(&tenant)
                    .copied()
                    .unwrap_or_else(|| live[kill_rng.below(live.len() as u64) as usize]);
                victim = Some((slot, "mid-delivery"));
                delivery_kills += 1;
                delivery_armed_until = None;
            }
        }
        if let Some((victim, why)) = victim {
            let process = cluster.slots[victim].take().expect("live");
            let instance = process.instance.clone();
            process.kill();
            let owned = cluster
                .owner
                .iter()
                .filter(|(_, s)| **s == victim)
                .map(|(t, _)| t.clone())
                .collect();
            cluster.owner.retain(|_, s| *s != victim);
            cluster.generation += 1;
            let down = 1 + kill_rng.below(MAX_DOWN as u64) as i64;
            let name = if kill_rng.chance(0.5) {
                instance.clone()
            } else {
                format!("{}-{}", names[victim], cluster.generation)
            };
            restarts.push((m + down, victim, name.clone()));
            kill_records.push(KillRecord {
                minute: m,
                why,
                instance,
                owned,
                restarted_as: name,
                down,
            });
        }
        for slot in cluster.live() {
            let n = cluster.slots[slot].as_mut().expect("live");
            let answer = n
                .read()
                .unwrap_or_else(|| panic!("{} ended during a tick", n.instance));
            for e in answer["errors"].as_array().into_iter().flatten() {
                tick_errors.push(format!("{m} {}: {e}", n.instance));
            }
            for t in answer["owned"].as_array().into_iter().flatten() {
                cluster.owner.insert(t.as_str().unwrap_or("").into(), slot);
            }
        }

        if m % 30 == 0 || restarted {
            checkpoints += 1;
            check_portal(&rt, &store, &mut cluster, &plan.tenants, now);
        }
    }
    for slot in cluster.live() {
        let n = cluster.slots[slot].take().expect("live");
        let answer = n.quit();
        assert_eq!(answer["left"], true, "{answer}");
    }

    assert!(
        kill_records.len() >= RANDOM_KILLS + AIMED_KILLS,
        "{} kills",
        kill_records.len()
    );
    assert!(
        kill_records.iter().any(|k| k.restarted_as == k.instance)
            && kill_records.iter().any(|k| k.restarted_as != k.instance),
        "restarts under the same name and under a new one"
    );
    assert!(
        checkpoints >= (DAY / 30) as u64,
        "{checkpoints} portal checkpoints"
    );
    let log = receiver.take();
    let received = log.received;
    assert!(
        log.refused.is_empty(),
        "requests refused: {:?}",
        log.refused
    );
    let reference_sent = ref_sent.messages();
    println!(
        "seed {seed}: {} requests received, {} kills, {} portal checkpoints, routing {}",
        received.len(),
        kill_records.len(),
        checkpoints,
        if by_owner { "to the owner" } else { "spread" }
    );
    for k in &kill_records {
        println!(
            "  kill ({}) at {} of {} (owning {:?}), back after {} min as {}",
            k.why,
            minute(k.minute).format("%H:%M"),
            k.instance,
            k.owned,
            k.down,
            k.restarted_as
        );
    }

    // Every alert decided went out, at every recipient, none missing.
    let mut duplicates = 0usize;
    let mut by_key: BTreeMap<&str, Vec<&Received>> = BTreeMap::new();
    for r in &received {
        assert_eq!(r.key, r.payload.id, "the header and the body agree");
        assert_eq!(
            r.path_recipient, r.payload.recipient,
            "sent to its recipient"
        );
        by_key.entry(r.key.as_str()).or_default().push(r);
    }
    for (key, copies) in &by_key {
        let first = &copies[0].payload;
        for c in &copies[1..] {
            duplicates += 1;
            let p = &c.payload;
            assert!(
                (p.kind.as_str(), p.alert_id, p.created_at, &p.tenant)
                    == (
                        first.kind.as_str(),
                        first.alert_id,
                        first.created_at,
                        &first.tenant
                    ),
                "{key}: a duplicate is the same alert"
            );
        }
        if copies.len() > 1 {
            println!("  duplicate: {key} received {} times", copies.len());
        }
    }
    // And an alert sent more than once came with the same key each time.
    let mut keys_of_alert: BTreeMap<(String, String, u64), BTreeSet<&str>> = BTreeMap::new();
    for r in &received {
        let p = &r.payload;
        keys_of_alert
            .entry((p.tenant.to_string(), p.recipient.clone(), p.alert_id))
            .or_default()
            .insert(r.key.as_str());
    }
    for ((t, r, id), keys) in &keys_of_alert {
        assert_eq!(keys.len(), 1, "{t}/{r}: alert {id} came with keys {keys:?}");
    }
    println!("{duplicates} duplicates, each with the same idempotency key");
    assert!(
        rt.block_on(store.pending_outbox(10))
            .expect("the outbox")
            .is_empty(),
        "nothing left undelivered"
    );

    // Every failed check is collected, so that one run tells all of what
    // differs from the single instance.
    let mut problems: Vec<String> = Vec::new();
    let mut judged_tick = 0;
    let mut judged_takeover = 0;
    for t in &plan.tenants {
        let decided = rt
            .block_on(store.load(t))
            .expect("load")
            .map_or(0, |v| v.state.next_alert_id);
        let reference_alerts: Vec<_> = reference_sent
            .iter()
            .filter(|m| &m.tenant == t && m.recipient.id == RECIPIENTS[0])
            .map(|m| (m.alert_id, m.kind, m.created_at))
            .collect();
        let Some(outage) = plan.outage_of(t) else {
            assert!(
                reference_alerts.is_empty(),
                "{t}: the scenario is wrong: the single instance alerted without an outage"
            );
            let got: Vec<_> = received
                .iter()
                .filter(|r| &r.payload.tenant == t)
                .map(|r| r.key.as_str())
                .collect();
            if !got.is_empty() || decided != 0 {
                problems.push(format!(
                    "{t}: a false alert: {decided} decided, received {got:?}"
                ));
            }
            continue;
        };
        let (ref_raised, ref_resolved) = match schedule_of(&reference_alerts) {
            Ok(times) => times,
            Err(e) => panic!("{t}: the scenario is wrong: the single instance's alerts: {e}"),
        };
        for r in RECIPIENTS {
            let mut alerts: BTreeMap<u64, (AlertKind, DateTime<Utc>)> = BTreeMap::new();
            for x in received
                .iter()
                .filter(|x| &x.payload.tenant == t && x.payload.recipient == r)
            {
                alerts.insert(
                    x.payload.alert_id,
                    (kind_of(&x.payload.kind), x.payload.created_at),
                );
            }
            let ids: Vec<u64> = alerts.keys().copied().collect();
            if ids != (0..decided).collect::<Vec<_>>() {
                problems.push(format!(
                    "{t}/{r}: alerts {ids:?} received, {decided} decided: one is missing"
                ));
            }
            let list: Vec<_> = alerts.iter().map(|(id, (k, at))| (*id, *k, *at)).collect();
            let (raised, resolved) = match schedule_of(&list) {
                Ok(times) => times,
                Err(e) => {
                    problems.push(format!("{t}/{r}: {e}"));
                    continue;
                }
            };
            // A kill can have delayed what the cluster had not decided yet,
            // and what the single instance had by then.
            let taken_over =
                owner_killed(&kill_records, t, outage.from, ref_raised.min(raised - TICK));
            let bound = if taken_over { TAKEOVER_BOUND } else { 1 };
            let end_bound = if owner_killed(
                &kill_records,
                t,
                outage.to,
                ref_resolved.min(resolved - TICK),
            ) {
                TAKEOVER_BOUND
            } else {
                1
            };
            if r == RECIPIENTS[0] {
                if taken_over {
                    judged_takeover += 1;
                } else {
                    judged_tick += 1;
                }
            }
            println!(
                "{t}/{r}: raised {} (single instance {}), resolved {} (single instance {}), {} alerts, judged {}",
                raised.format("%H:%M"),
                ref_raised.format("%H:%M"),
                resolved.format("%H:%M"),
                ref_resolved.format("%H:%M"),
                list.len(),
                if taken_over {
                    "after a take-over"
                } else {
                    "within a tick"
                }
            );
            if raised > ref_raised + TimeDelta::minutes(bound) {
                problems.push(format!(
                    "{t}/{r}: detected at {}, more than {bound} tick(s) after the single instance ({})",
                    raised.format("%H:%M"),
                    ref_raised.format("%H:%M")
                ));
            }
            if resolved < minute(outage.to)
                || resolved > ref_resolved + TimeDelta::minutes(end_bound)
            {
                problems.push(format!(
                    "{t}/{r}: resolved at {}, more than {end_bound} tick(s) after the single instance ({})",
                    resolved.format("%H:%M"),
                    ref_resolved.format("%H:%M")
                ));
            }
        }
    }
    println!("outages judged within a tick: {judged_tick}, after a take-over: {judged_takeover}");
    println!("wall time {:?}", started.elapsed());
    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
    assert!(tick_errors.is_empty(), "tick errors: {tick_errors:?}");
}

/// Drops the test's schema when the test ends, passed or failed.
struct SchemaGuard(String);

impl Drop for SchemaGuard {
    fn drop(&mut self) {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        rt.block_on(async {
            if let Ok((client, conn)) =
                tokio_postgres::connect(&pg_url(), tokio_postgres::NoTls).await
            {
                tokio::spawn(conn);
                if let Err(e) = client
                    .batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.0))
                    .await
                {
                    eprintln!("dropping schema {}: {e}", self.0);
                }
            }
        });
    }
}

/// One tick: a simulated minute.
const TICK: TimeDelta = TimeDelta::minutes(1);

/// Whether a node that owned `t` was killed from minute `from` to `until`.
fn owner_killed(kills: &[KillRecord], t: &TenantId, from: i64, until: DateTime<Utc>) -> bool {
    kills.iter().any(|k| {
        k.owned.iter().any(|o| o == t.as_str()) && k.minute >= from && minute(k.minute) <= until
    })
}

fn kind_of(kind: &str) -> AlertKind {
    match kind {
        "alert.raised" => AlertKind::Raised,
        "alert.reminder" => AlertKind::Reminder,
        "alert.resolved" => AlertKind::Resolved,
        other => panic!("unknown alert type {other:?}"),
    }
}

/// Checks that one recipient's alerts of one outage (by alert id) are the
/// first alert, a reminder every hour while it lasts, and the resolved
/// notice; returns when the first and the last were decided.
fn schedule_of(
    alerts: &[(u64, AlertKind, DateTime<Utc>)],
) -> Result<(DateTime<Utc>, DateTime<Utc>), String> {
    let shape: Vec<String> = alerts
        .iter()
        .map(|(id, k, at)| format!("{id} {k:?} {}", at.format("%H:%M")))
        .collect();
    let (Some(first), Some(last)) = (alerts.first(), alerts.last()) else {
        return Err("no alert".into());
    };
    if alerts.len() < 2 || first.1 != AlertKind::Raised || last.1 != AlertKind::Resolved {
        return Err(format!("not raised, reminders, resolved: {shape:?}"));
    }
    for pair in alerts.windows(2) {
        let gap = pair[1].2 - pair[0].2;
        if gap > TimeDelta::minutes(60 + SCHEDULE_SLACK) {
            return Err(format!("a reminder is missing: {shape:?}"));
        }
        if pair[1].1 != AlertKind::Resolved
            && (pair[1].1 != AlertKind::Reminder || gap < TimeDelta::hours(1))
        {
            return Err(format!("not a reminder an hour after: {shape:?}"));
        }
    }
    Ok((first.2, last.2))
}

/// Every live node's portal shows each tenant at the store's version and
/// with the same state.
fn check_portal(
    rt: &tokio::runtime::Runtime,
    store: &PostgresStore,
    cluster: &mut Cluster,
    tenants: &[TenantId],
    now: DateTime<Utc>,
) {
    let stamp = now.to_rfc3339();
    for t in tenants {
        let stored = rt
            .block_on(store.load(t))
            .expect("load")
            .map_or(0, |v| v.version);
        let mut views: Vec<(String, Value)> = Vec::new();
        for slot in cluster.live() {
            let n = cluster.slots[slot].as_mut().expect("live");
            let answer = n.ask(&format!("status {t} {stamp}"));
            assert!(answer.get("error").is_none(), "{}: {answer}", n.instance);
            assert_eq!(
                answer["portal"]["version"], stored,
                "{} at {now}: {t}'s portal shows version {}, the store has {stored}",
                n.instance, answer["portal"]["version"]
            );
            views.push((n.instance.clone(), answer));
        }
        for (instance, v) in &views[1..] {
            assert_eq!(
                v, &views[0].1,
                "{t} at {now}: {instance} and {} show different states",
                views[0].0
            );
        }
    }
}

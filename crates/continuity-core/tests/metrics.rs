//! What a real `Monitor` records through the `metrics` facade, read back
//! from a recorder local to the test's thread; and the README's table of
//! metrics against the names in code.

use std::{sync::Arc, time::Duration};

use chrono::TimeDelta;
use continuity_core::{
    Clock, Direction, ManualClock, Monitor, Observation, TenantId, async_trait,
    config::{ChannelKind, Recipient, TenantConfig},
    memory::InMemoryEventStore,
    metrics::{self as m, CATALOGUE},
    monitor::MonitorSettings,
    probe::{MailProbe, ProbeRequest, ProbeStatus, ProbeTicket},
    sim::{SimulatedFlow, SimulatedMailSystem},
    testing::{
        EngineRig, FaultyStore, RIG_PORTAL_URL, RecordingNotifier, RigOptions, TestRecorder,
        absolute_thresholds, rig_signer, rig_start,
    },
};

const OUT: (&str, &str) = ("direction", "outbound");

#[tokio::test(flavor = "current_thread")]
async fn an_outage_raises_an_alert_and_the_counters_move() {
    let rec = TestRecorder::new();
    let _local = rec.install_local();
    let r = EngineRig::start(RigOptions {
        probes: false,
        ..RigOptions::default()
    })
    .await;
    r.run(2).await;
    assert_eq!(rec.counter(m::TICKS_TOTAL, &[]), 2);
    assert_eq!(rec.histogram(m::TICK_DURATION_SECONDS, &[]).len(), 2);
    assert_eq!(rec.gauge(m::CONDITIONS_RAISED, &[OUT]), Some(0.0));
    assert_eq!(rec.gauge(m::CLUSTER_SHARDS_OWNED, &[]), Some(256.0));

    // Three refusals: the rig's tenant raises on a count of 3.
    r.refused(Direction::Outbound, r.clock.now(), 3);
    r.monitor
        .observe(Observation::delivered(
            r.tenant.clone(),
            Direction::Inbound,
            r.clock.now(),
            Duration::from_secs(5),
        ))
        .expect("observe");
    // Raised at the second breaching tick (the default hysteresis).
    r.run(2).await;
    assert_eq!(
        rec.counter(m::OBSERVATIONS_TOTAL, &[OUT, ("outcome", "failed")]),
        3
    );
    assert_eq!(
        rec.counter(
            m::OBSERVATIONS_TOTAL,
            &[("direction", "inbound"), ("outcome", "delivered")]
        ),
        1
    );
    assert_eq!(rec.counter(m::ALERTS_TOTAL, &[("kind", "raised")]), 1);
    assert_eq!(
        rec.counter(m::DELIVERIES_TOTAL, &[("channel", "sms"), ("result", "ok")]),
        1
    );
    assert_eq!(r.sms.messages().len(), 1);
    assert_eq!(rec.gauge(m::CONDITIONS_RAISED, &[OUT]), Some(1.0));
    assert_eq!(rec.gauge(m::OUTBOX_BACKLOG, &[]), Some(0.0), "delivered");
    assert_eq!(rec.gauge(m::DEAD_LETTERS, &[]), Some(0.0));
    assert_eq!(rec.gauge(m::JOURNAL_TRANSITIONS, &[]), Some(0.0));
    assert!(
        !rec.histogram(m::STORE_DURATION_SECONDS, &[("operation", "commit")])
            .is_empty(),
        "every store call is timed"
    );
    assert_eq!(rec.counter_sum(m::STORE_ERRORS_TOTAL), 0);
    // Labels stay few: no tenant unless asked for.
    for labels in rec.counter_labels(m::OBSERVATIONS_TOTAL) {
        assert!(
            labels.iter().all(|(k, _)| k != m::TENANT_LABEL),
            "{labels:?}"
        );
    }
    for metric in CATALOGUE {
        assert!(
            rec.description(metric.name).is_some(),
            "{} is described to the recorder",
            metric.name
        );
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_failing_notifier_counts_failed_deliveries() {
    let rec = TestRecorder::new();
    let _local = rec.install_local();
    let r = EngineRig::start(RigOptions {
        probes: false,
        ..RigOptions::default()
    })
    .await;
    r.sms.fail_next(1, true);
    r.refused(Direction::Outbound, r.clock.now(), 3);
    r.run(2).await;
    let failed = [("channel", "sms"), ("result", "failed")];
    let ok = [("channel", "sms"), ("result", "ok")];
    assert_eq!(rec.counter(m::DELIVERIES_TOTAL, &failed), 1);
    assert_eq!(rec.counter(m::DELIVERIES_TOTAL, &ok), 0);
    assert_eq!(
        rec.gauge(m::OUTBOX_BACKLOG, &[]),
        Some(1.0),
        "waits for its retry"
    );
    // The retry succeeds.
    r.run(2).await;
    assert_eq!(rec.counter(m::DELIVERIES_TOTAL, &ok), 1);
    assert_eq!(rec.gauge(m::OUTBOX_BACKLOG, &[]), Some(0.0));
}

#[tokio::test(flavor = "current_thread")]
async fn a_permanent_failure_is_a_dead_letter() {
    let rec = TestRecorder::new();
    let _local = rec.install_local();
    let r = EngineRig::start(RigOptions {
        probes: false,
        ..RigOptions::default()
    })
    .await;
    r.sms.fail_next(1, false);
    r.refused(Direction::Outbound, r.clock.now(), 3);
    r.run(2).await;
    assert_eq!(
        rec.counter(
            m::DELIVERIES_TOTAL,
            &[("channel", "sms"), ("result", "failed")]
        ),
        1
    );
    assert_eq!(rec.gauge(m::DEAD_LETTERS, &[]), Some(1.0));
    assert_eq!(rec.gauge(m::OUTBOX_BACKLOG, &[]), Some(0.0));
}

#[tokio::test(flavor = "current_thread")]
async fn probes_are_counted_by_adapter() {
    let rec = TestRecorder::new();
    let _local = rec.install_local();
    let r = EngineRig::start(RigOptions::default()).await;
    r.run(10).await;
    let sim = [("adapter", "SimulatedMailSystem"), OUT];
    let dispatched = rec.counter(m::PROBES_DISPATCHED_TOTAL, &sim);
    assert!(dispatched > 0, "probes went out");
    assert!(
        rec.counter(m::PROBES_ARRIVED_TOTAL, &sim) > 0,
        "and arrived"
    );
    assert_eq!(rec.counter(m::PROBES_LOST_TOTAL, &sim), 0);
    r.mail
        .set_flow(&r.tenant, Direction::Outbound, SimulatedFlow::Blackhole);
    r.run(90).await;
    assert!(
        rec.counter(m::PROBES_LOST_TOTAL, &sim) > 0,
        "probes lost in a black hole are counted"
    );
    assert!(
        rec.counter(m::OBSERVATIONS_TOTAL, &[OUT, ("outcome", "failed")]) > 0,
        "a lost probe is a failed observation"
    );
}

/// Hands `acme`'s probes to the adapter named `alpha` and every other
/// tenant's to `beta` (both the simulated mail system), as the service's
/// per-tenant router hands tenants to EWS or Graph; it lists `listed` as
/// the names it may give.
#[derive(Debug)]
struct Router {
    mail: Arc<SimulatedMailSystem>,
    listed: Vec<&'static str>,
}

#[async_trait]
impl MailProbe for Router {
    async fn dispatch(&self, request: &ProbeRequest) -> continuity_core::Result<ProbeTicket> {
        self.mail.dispatch(request).await
    }
    async fn check(
        &self,
        request: &ProbeRequest,
        ticket: &ProbeTicket,
    ) -> continuity_core::Result<ProbeStatus> {
        self.mail.check(request, ticket).await
    }
    fn kind(&self) -> &'static str {
        "router"
    }
    fn kind_for(&self, tenant: &TenantId) -> &'static str {
        if tenant.as_str() == "acme" {
            "alpha"
        } else {
            "beta"
        }
    }
    fn kinds(&self) -> Vec<&'static str> {
        self.listed.clone()
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_probe_routing_tenants_counts_each_under_the_adapter_serving_it() {
    // Both names listed (registered when the monitor is built), and only
    // one: the other is counted all the same.
    for listed in [vec!["alpha", "beta"], vec!["alpha"]] {
        let rec = TestRecorder::new();
        let _local = rec.install_local();
        let clock = ManualClock::new(rig_start());
        let mail = Arc::new(SimulatedMailSystem::new(
            Arc::new(clock.clone()),
            Duration::from_secs(20),
        ));
        let router = Arc::new(Router {
            mail: mail.clone(),
            listed: listed.clone(),
        });
        let monitor = Monitor::builder()
            .in_memory_store()
            .clock(Arc::new(clock.clone()))
            .notifier(Arc::new(RecordingNotifier::new(ChannelKind::Sms)))
            .link_signer(rig_signer())
            .portal_url(RIG_PORTAL_URL)
            .probe(Direction::Inbound, router.clone())
            .probe(Direction::Outbound, router)
            .build()
            .expect("monitor");
        for id in ["acme", "globex"] {
            let config = TenantConfig::new(
                TenantId::new(id).expect("id"),
                vec![Recipient::new("ops", ChannelKind::Sms, "+15550100")],
            );
            monitor
                .register_tenant(absolute_thresholds(config, 3))
                .await
                .expect("registered");
        }
        mail.set_flow(
            &TenantId::new("globex").expect("id"),
            Direction::Outbound,
            SimulatedFlow::Blackhole,
        );
        for _ in 0..45 {
            monitor
                .tick(clock.advance(TimeDelta::minutes(1)))
                .await
                .expect("tick");
        }
        for (adapter, direction) in [
            ("alpha", "inbound"),
            ("alpha", "outbound"),
            ("beta", "inbound"),
        ] {
            let labels = [("adapter", adapter), ("direction", direction)];
            assert!(
                rec.counter(m::PROBES_DISPATCHED_TOTAL, &labels) > 0,
                "{listed:?}: {labels:?} dispatched"
            );
            assert!(
                rec.counter(m::PROBES_ARRIVED_TOTAL, &labels) > 0,
                "{listed:?}: {labels:?} arrived"
            );
            assert_eq!(rec.counter(m::PROBES_LOST_TOTAL, &labels), 0, "{listed:?}");
        }
        assert!(
            rec.counter(m::PROBES_LOST_TOTAL, &[("adapter", "beta"), OUT]) > 0,
            "{listed:?}: globex's lost probes count under beta"
        );
        let adapters: Vec<Vec<(String, String)>> = [
            m::PROBES_DISPATCHED_TOTAL,
            m::PROBES_ARRIVED_TOTAL,
            m::PROBES_LOST_TOTAL,
        ]
        .into_iter()
        .flat_map(|name| rec.counter_labels(name))
        .collect();
        assert!(
            adapters.iter().all(|labels| labels
                .iter()
                .any(|(k, v)| k == "adapter" && (v == "alpha" || v == "beta"))),
            "{listed:?}: no probe counted under the router's own name: {adapters:?}"
        );
    }
}

#[tokio::test(flavor = "current_thread")]
async fn store_failures_are_counted_by_operation() {
    let rec = TestRecorder::new();
    let _local = rec.install_local();
    let store = Arc::new(FaultyStore::new(InMemoryEventStore::new()));
    let r = EngineRig::start_on(
        store.clone(),
        RigOptions {
            probes: false,
            ..RigOptions::default()
        },
    )
    .await;
    r.run(1).await;
    assert_eq!(rec.counter_sum(m::STORE_ERRORS_TOTAL), 0);
    store.set_down(true);
    r.refused(Direction::Outbound, r.clock.now(), 3);
    r.run(1).await;
    assert!(
        rec.counter(m::STORE_ERRORS_TOTAL, &[("operation", "commit")]) >= 1,
        "the refused commit is counted"
    );
    assert_eq!(
        rec.gauge(m::JOURNAL_TRANSITIONS, &[]),
        Some(1.0),
        "the transition waits in the journal"
    );
    store.set_down(false);
    r.run(1).await;
    assert_eq!(rec.gauge(m::JOURNAL_TRANSITIONS, &[]), Some(0.0));
}

#[tokio::test(flavor = "current_thread")]
async fn per_tenant_labels_are_opt_in() {
    let rec = TestRecorder::new();
    let _local = rec.install_local();
    let clock = ManualClock::new(rig_start());
    let monitor = Monitor::builder()
        .in_memory_store()
        .clock(Arc::new(clock.clone()))
        .notifier(Arc::new(RecordingNotifier::new(ChannelKind::Sms)))
        .link_signer(rig_signer())
        .portal_url(RIG_PORTAL_URL)
        .settings(MonitorSettings {
            per_tenant_metrics: true,
            ..MonitorSettings::default()
        })
        .build()
        .expect("monitor");
    let acme = TenantId::new("acme").expect("id");
    let config = TenantConfig::new(
        acme.clone(),
        vec![Recipient::new("ops", ChannelKind::Sms, "+15550100")],
    );
    monitor
        .register_tenant(absolute_thresholds(config, 3))
        .await
        .expect("registered");
    for _ in 0..3 {
        monitor
            .observe(Observation::failed(
                acme.clone(),
                Direction::Outbound,
                clock.now(),
                continuity_core::FailureKind::Refused,
            ))
            .expect("observe");
    }
    for _ in 0..2 {
        monitor
            .tick(clock.advance(TimeDelta::minutes(1)))
            .await
            .expect("tick");
    }
    let tenant = (m::TENANT_LABEL, "acme");
    assert_eq!(
        rec.counter(m::OBSERVATIONS_TOTAL, &[OUT, ("outcome", "failed"), tenant]),
        3
    );
    assert_eq!(
        rec.counter(m::ALERTS_TOTAL, &[("kind", "raised"), tenant]),
        1
    );
    assert_eq!(
        rec.counter(
            m::DELIVERIES_TOTAL,
            &[("channel", "sms"), ("result", "ok"), tenant]
        ),
        1
    );
}

/// The README's table (`| \`name\` | type | labels | meaning |`) and
/// [`CATALOGUE`] list the same metrics with the same type, labels and
/// meaning, in the same order.
#[test]
fn the_readme_lists_every_metric() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md");
    let readme = std::fs::read_to_string(path).expect("README.md at the workspace root");
    let rows: Vec<String> = readme
        .lines()
        .filter(|l| l.starts_with("| `continuity_"))
        .map(|l| l.trim().to_owned())
        .collect();
    let expected: Vec<String> = CATALOGUE.iter().map(readme_row).collect();
    assert_eq!(
        rows,
        expected,
        "README.md's table of metrics differs from continuity_core::metrics::CATALOGUE; \
         the rows should read:\n{}",
        expected.join("\n")
    );
}

fn readme_row(m: &m::MetricInfo) -> String {
    let mut labels: Vec<String> = m.labels.iter().map(|l| format!("`{l}`")).collect();
    if m.per_tenant {
        labels.push(format!("`{}` (opt-in)", m::TENANT_LABEL));
    }
    let labels = if labels.is_empty() {
        "none".to_owned()
    } else {
        labels.join(", ")
    };
    format!("| `{}` | {} | {labels} | {} |", m.name, m.kind, m.help)
}

/// Builds an instance of a cluster on `store` with `recorder` (the
/// instruments are bound to the recorder installed when it is built).
fn instance(
    name: &str,
    store: Arc<InMemoryEventStore>,
    clock: &ManualClock,
    recorder: &TestRecorder,
) -> Monitor {
    let _local = recorder.install_local();
    Monitor::builder()
        .store(store)
        .clock(Arc::new(clock.clone()))
        .notifier(Arc::new(RecordingNotifier::new(ChannelKind::Sms)))
        .link_signer(rig_signer())
        .portal_url(RIG_PORTAL_URL)
        .cluster(name)
        .build()
        .expect("monitor")
}

#[tokio::test(flavor = "current_thread")]
async fn gauges_count_what_this_instance_owns() {
    let store = Arc::new(InMemoryEventStore::new());
    let clock = ManualClock::new(rig_start());
    let (rec_a, rec_b) = (TestRecorder::new(), TestRecorder::new());
    let a = instance("a", store.clone(), &clock, &rec_a);
    let b = instance("b", store, &clock, &rec_b);
    let acme = TenantId::new("acme").expect("id");
    for m in [&a, &b] {
        let config = TenantConfig::new(
            acme.clone(),
            vec![Recipient::new("ops", ChannelKind::Sms, "+15550100")],
        );
        m.register_tenant(absolute_thresholds(config, 3))
            .await
            .expect("registered");
    }
    // Joining takes a few syncs: the first instance gives half its shards up.
    for _ in 0..3 {
        let now = clock.advance(TimeDelta::minutes(1));
        a.tick(now).await.expect("tick");
        b.tick(now).await.expect("tick");
    }
    assert_eq!(rec_a.gauge(m::CLUSTER_SHARDS_OWNED, &[]), Some(128.0));
    assert_eq!(rec_b.gauge(m::CLUSTER_SHARDS_OWNED, &[]), Some(128.0));
    let (owner, other, rec_owner, rec_other) = if a.owned_shards().holds(&acme) {
        (&a, &b, &rec_a, &rec_b)
    } else {
        (&b, &a, &rec_b, &rec_a)
    };
    for _ in 0..2 {
        let now = clock.advance(TimeDelta::minutes(1));
        for _ in 0..3 {
            owner
                .observe(Observation::failed(
                    acme.clone(),
                    Direction::Outbound,
                    now,
                    continuity_core::FailureKind::Refused,
                ))
                .expect("observe");
        }
        owner.tick(now).await.expect("tick");
        other.tick(now).await.expect("tick");
    }
    assert_eq!(rec_owner.gauge(m::CONDITIONS_RAISED, &[OUT]), Some(1.0));
    // The other instance registers the tenant again, and so loads the
    // stored state, raised condition included.
    let config = TenantConfig::new(
        acme.clone(),
        vec![Recipient::new("ops", ChannelKind::Sms, "+15550100")],
    );
    other
        .register_tenant(absolute_thresholds(config, 3))
        .await
        .expect("registered");
    let now = clock.advance(TimeDelta::minutes(1));
    owner.tick(now).await.expect("tick");
    other.tick(now).await.expect("tick");
    assert_eq!(rec_owner.gauge(m::CONDITIONS_RAISED, &[OUT]), Some(1.0));
    assert_eq!(
        rec_other.gauge(m::CONDITIONS_RAISED, &[OUT]),
        Some(0.0),
        "the other instance does not count a tenant it does not own"
    );
    // Watching the tenant no more: it no longer counts.
    assert!(owner.remove_tenant(&acme));
    owner
        .tick(clock.advance(TimeDelta::minutes(1)))
        .await
        .expect("tick");
    assert_eq!(rec_owner.gauge(m::CONDITIONS_RAISED, &[OUT]), Some(0.0));
}

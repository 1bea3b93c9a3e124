//! `continuity::service::Runner` on tokio's paused clock: it goes on
//! through ticks that fail or report problems, counts them, backs off as
//! documented, and stops on the embedder's future after finishing the
//! running tick, handing what it holds back to the store.

#![cfg(feature = "service")]

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use chrono::TimeDelta;
use continuity::{
    Clock, Direction, ManualClock, Monitor, TenantId, async_trait,
    cluster::ShardSet,
    config::{ChannelKind, Recipient, TenantConfig},
    link::{LinkKey, LinkSigner},
    memory::InMemoryEventStore,
    probe::{MailProbe, ProbeRequest, ProbeStatus, ProbeTicket},
    service::{Runner, RunnerSettings, TICK_ERRORS_METRIC},
    store::EventStore,
    testing::{FaultyStore, RecordingNotifier},
};
use metrics::{
    Counter, CounterFn, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit,
};
use tokio::time::{Instant, sleep};

/// A counter's name, its labels, and when it went up (seconds of tokio's
/// clock since `start`).
type Increment = (String, Vec<(String, String)>, u64);

/// Each increment of a counter.
#[derive(Debug)]
struct Recorded {
    start: Instant,
    increments: Mutex<Vec<Increment>>,
}

#[derive(Debug)]
struct Handle {
    key: Key,
    log: Arc<Recorded>,
}

impl CounterFn for Handle {
    fn increment(&self, value: u64) {
        let labels: Vec<(String, String)> = self
            .key
            .labels()
            .map(|l| (l.key().to_owned(), l.value().to_owned()))
            .collect();
        let at = self.log.start.elapsed().as_secs();
        for _ in 0..value {
            self.log.increments.lock().unwrap().push((
                self.key.name().to_owned(),
                labels.clone(),
                at,
            ));
        }
    }
    fn absolute(&self, _value: u64) {}
}

#[derive(Debug)]
struct TestRecorder(Arc<Recorded>);

impl Recorder for TestRecorder {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(Arc::new(Handle {
            key: key.clone(),
            log: self.0.clone(),
        }))
    }
    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }
    fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::noop()
    }
}

impl Recorded {
    /// When the tick-error counter went up with `kind`.
    fn tick_errors(&self, kind: &str) -> Vec<u64> {
        self.increments
            .lock()
            .unwrap()
            .iter()
            .filter(|(name, labels, _)| {
                name == TICK_ERRORS_METRIC && labels == &[("kind".to_owned(), kind.to_owned())]
            })
            .map(|(_, _, at)| *at)
            .collect()
    }
}

fn start() -> chrono::DateTime<chrono::Utc> {
    "2026-03-02T09:00:00Z".parse().unwrap()
}

fn monitor(store: Arc<dyn EventStore>, clock: &ManualClock) -> Monitor {
    Monitor::builder()
        .store(store)
        .clock(Arc::new(clock.clone()))
        .notifier(Arc::new(RecordingNotifier::new(ChannelKind::Sms)))
        .link_signer(LinkSigner::new(LinkKey::new("k1", [7u8; 32]).unwrap()))
        .portal_url("https://continuity.example.net/c/")
        .build()
        .unwrap()
}

fn tenant() -> TenantConfig {
    TenantConfig::new(
        TenantId::new("acme").unwrap(),
        vec![Recipient::new("ops", ChannelKind::Sms, "+15550100")],
    )
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn the_loop_goes_on_through_failing_ticks_backs_off_and_stops_on_the_future() {
    let recorded = Arc::new(Recorded {
        start: Instant::now(),
        increments: Mutex::new(Vec::new()),
    });
    let recorder = TestRecorder(recorded.clone());
    let _guard = metrics::set_default_local_recorder(&recorder);

    let clock = ManualClock::new(start() + TimeDelta::hours(1));
    let store = Arc::new(FaultyStore::new(InMemoryEventStore::new()));
    let monitor = Arc::new(monitor(store.clone(), &clock));
    monitor.register_tenant(tenant()).await.unwrap();
    store.set_down(true);

    let settings = RunnerSettings {
        interval: Duration::from_secs(60),
        max_backoff: Duration::from_secs(300),
    };
    let runner = Runner::new(monitor.clone(), settings).unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let script = async {
        // Ticks at 0, 60 and 120 s run with the store down: problems.
        sleep(Duration::from_secs(150)).await;
        store.set_down(false);
        // From 180 s the clock is an hour behind the last tick: every
        // tick fails, and the loop backs off: 60, 120, 240, then 300 s.
        clock.set(start());
        sleep(Duration::from_secs(1000 - 150)).await;
        clock.set(start() + TimeDelta::hours(2));
        // The next tick (at 1200 s) runs; stop before the one after.
        sleep(Duration::from_secs(230)).await;
        stop.send(()).unwrap();
    };
    let (summary, ()) = tokio::join!(
        runner.run_until(async {
            let _ = stopped.await;
        }),
        script
    );
    let summary = summary.unwrap();
    assert_eq!(recorded.tick_errors("partial"), [0, 60, 120]);
    assert_eq!(recorded.tick_errors("failed"), [180, 240, 360, 600, 900]);
    assert_eq!(
        (
            summary.ticks,
            summary.ticks_with_problems,
            summary.failed_ticks
        ),
        (4, 3, 5),
        "{summary:?}"
    );
    assert_eq!(recorded.start.elapsed().as_secs(), 1230, "stopped at once");
}

/// Sends nothing, and takes 30 s doing so.
#[derive(Debug, Default)]
struct SlowProbe {
    sent: AtomicBool,
}

#[async_trait]
impl MailProbe for SlowProbe {
    async fn dispatch(&self, _request: &ProbeRequest) -> continuity::Result<ProbeTicket> {
        sleep(Duration::from_secs(30)).await;
        self.sent.store(true, Ordering::SeqCst);
        Ok(ProbeTicket::new("slow"))
    }

    async fn check(
        &self,
        _request: &ProbeRequest,
        _ticket: &ProbeTicket,
    ) -> continuity::Result<ProbeStatus> {
        Ok(ProbeStatus::Pending)
    }
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_shutdown_during_a_tick_finishes_it_then_hands_the_held_probe_back() {
    let clock = ManualClock::new(start());
    let store = Arc::new(InMemoryEventStore::leasing_on_put());
    let probe = Arc::new(SlowProbe::default());
    let monitor = Arc::new(
        Monitor::builder()
            .store(store.clone())
            .clock(Arc::new(clock.clone()))
            .notifier(Arc::new(RecordingNotifier::new(ChannelKind::Sms)))
            .probe(Direction::Outbound, probe.clone())
            .link_signer(LinkSigner::new(LinkKey::new("k1", [7u8; 32]).unwrap()))
            .portal_url("https://continuity.example.net/c/")
            .build()
            .unwrap(),
    );
    let mut config = tenant();
    config.probes.inbound = false;
    monitor.register_tenant(config).await.unwrap();

    let began = Instant::now();
    let summary = Runner::new(monitor.clone(), RunnerSettings::default())
        .unwrap()
        .run_until(sleep(Duration::from_secs(10)))
        .await
        .unwrap();
    assert_eq!(
        began.elapsed(),
        Duration::from_secs(30),
        "the tick is finished"
    );
    assert!(probe.sent.load(Ordering::SeqCst));
    assert_eq!((summary.ticks, summary.failed_ticks), (1, 0), "{summary:?}");

    // The probe the tick stored was leased to this instance until its
    // first check plus the lease; shut down, it is anyone's at its first
    // check.
    let first_check = clock.now() + TimeDelta::minutes(1);
    let claimed = store
        .claim_probes(first_check, Duration::from_secs(120), 10, &ShardSet::ALL)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1, "the held probe is handed back");
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn settings_out_of_bounds_are_refused_by_name() {
    let clock = ManualClock::new(start());
    let monitor = Arc::new(monitor(Arc::new(InMemoryEventStore::new()), &clock));
    for (settings, field) in [
        (
            RunnerSettings {
                interval: Duration::from_millis(500),
                ..RunnerSettings::default()
            },
            "runner.interval",
        ),
        (
            RunnerSettings {
                interval: Duration::from_secs(60),
                max_backoff: Duration::from_secs(30),
            },
            "runner.max_backoff",
        ),
    ] {
        let e = Runner::new(monitor.clone(), settings).unwrap_err();
        assert_eq!(e.field(), Some(field), "{e}");
    }
    let d = RunnerSettings::default();
    assert_eq!(
        (d.interval, d.max_backoff),
        (Duration::from_secs(60), Duration::from_secs(600))
    );
    assert_eq!(
        (1..=6).map(|n| d.delay(n).as_secs()).collect::<Vec<_>>(),
        [60, 120, 240, 480, 600, 600]
    );
}

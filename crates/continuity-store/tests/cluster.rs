//! Three `Monitor` instances in separate processes against one PostgreSQL,
//! on a shared simulated clock, through a day-long outage of 100 tenants.
//! One instance is killed with SIGKILL half-way, in the middle of a tick.
//!
//! Every tenant must get exactly the alerts it should: the first, then one
//! an hour, none missing. An alert whose sender died between sending it and
//! recording that it did is sent again by another instance with the same
//! idempotency key; the receiving side (a table here) counts each key once,
//! and such re-sends are counted and reported.
//!
//! The instances are this test binary itself, running the ignored test
//! `cluster_child`; the parent drives their clock over stdin ("TICK <time>")
//! and waits for each to answer "DONE …" before the next tick.

mod common;

use std::{
    collections::BTreeMap,
    process::Stdio,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};
use continuity_core::{
    Direction, ManualClock, Monitor, TenantId,
    config::{ChannelKind, Recipient, TenantConfig},
    link::{LinkKey, LinkSigner},
    monitor::MonitorSettings,
    notify::{AlertMessage, Notifier, Receipt},
    sim::{SimulatedFlow, SimulatedMailSystem},
    store::EventStore,
};
use continuity_store::{PostgresOptions, PostgresStore};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};

const TENANTS: usize = 100;
const TICK: TimeDelta = TimeDelta::minutes(5);
const LEASE: Duration = Duration::from_secs(12 * 60);

fn start() -> DateTime<Utc> {
    "2026-06-01T00:00:00Z".parse().unwrap()
}

fn tenants() -> Vec<TenantId> {
    (0..TENANTS)
        .map(|i| TenantId::new(format!("org-{i:03}")).unwrap())
        .collect()
}

/// The receiving side: every delivery becomes a row, re-sends included.
#[derive(Debug)]
struct TableReceiver {
    client: tokio_postgres::Client,
    node: String,
    /// Once armed, the first delivery is announced ("SENT …") and then
    /// never returns: the instance is killed after sending an alert and
    /// before recording that it did.
    armed: Arc<AtomicBool>,
}

#[async_trait]
impl Notifier for TableReceiver {
    fn channel(&self) -> ChannelKind {
        ChannelKind::Sms
    }

    async fn deliver(&self, m: &AlertMessage) -> continuity_core::Result<Receipt> {
        self.client
            .execute(
                "INSERT INTO received (key, tenant, alert_id, kind, created_at, node)
                 VALUES ($1, $2, $3, $4, $5, $6)",
                &[
                    &m.idempotency_key,
                    &m.tenant.as_str(),
                    &(m.alert_id as i64),
                    &m.kind.as_str(),
                    &m.created_at.timestamp(),
                    &self.node,
                ],
            )
            .await
            .map_err(|e| continuity_core::Error::notify_transient("sms", e.to_string()))?;
        if self.armed.load(Ordering::SeqCst) {
            println!("SENT {}", m.idempotency_key);
            std::future::pending::<()>().await;
        }
        Ok(Receipt::default())
    }
}

/// One instance: ticks when told, until stdin closes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "child process of the multi-instance test, started by it"]
async fn cluster_child() {
    let schema = std::env::var("CONTINUITY_CLUSTER_SCHEMA").expect("schema");
    let node = std::env::var("CONTINUITY_CLUSTER_NODE").expect("node");
    let store = PostgresStore::connect_with(
        &common::pg_url(),
        PostgresOptions {
            schema: schema.clone(),
            pool_size: 4,
            ..Default::default()
        },
    )
    .await
    .expect("store");
    let (client, conn) = tokio_postgres::connect(
        &format!("{} options='-c search_path={schema}'", common::pg_url()),
        tokio_postgres::NoTls,
    )
    .await
    .expect("receiver connection");
    tokio::spawn(conn);
    let clock = ManualClock::new(start());
    let mail = Arc::new(SimulatedMailSystem::new(
        Arc::new(clock.clone()),
        Duration::from_secs(20),
    ));
    let armed = Arc::new(AtomicBool::new(false));
    let monitor = Monitor::builder()
        .clock(Arc::new(clock.clone()))
        .store(Arc::new(store))
        .notifier(Arc::new(TableReceiver {
            client,
            node: node.clone(),
            armed: armed.clone(),
        }))
        .probe(Direction::Outbound, mail.clone())
        .link_signer(LinkSigner::new(LinkKey::new("k1", [3u8; 32]).unwrap()))
        .portal_url("https://continuity.example.net/c/")
        .settings(MonitorSettings {
            lease: LEASE,
            ..MonitorSettings::default()
        })
        .cluster(node.clone())
        .build()
        .expect("monitor");
    for t in tenants() {
        let mut c = continuity_core::testing::absolute_thresholds(
            TenantConfig::new(
                t.clone(),
                vec![Recipient::new("ops", ChannelKind::Sms, "+15550100")],
            ),
            3,
        );
        c.probes.inbound = false;
        c.probes.interval = Duration::from_secs(600);
        c.probes.check_interval = Duration::from_secs(300);
        monitor.register_tenant(c).await.expect("register");
        // The organisation's server is down all day: every probe is lost.
        mail.set_flow(&t, Direction::Outbound, SimulatedFlow::Blackhole);
    }
    println!("READY");
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Some(line) = lines.next_line().await.expect("stdin") {
        if line == "ARM" {
            armed.store(true, Ordering::SeqCst);
        }
        let Some(at) = line.strip_prefix("TICK ") else {
            continue;
        };
        let now: DateTime<Utc> = at.parse().expect("time");
        clock.set(now);
        let report = monitor.tick(now).await.expect("tick");
        for e in &report.errors {
            eprintln!("{node} {now}: {e}");
        }
        println!(
            "DONE {} {} {}",
            report.probes_dispatched,
            report.deliveries,
            report.errors.len()
        );
    }
}

struct Child {
    name: String,
    process: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    lines: Lines<BufReader<tokio::process::ChildStdout>>,
    probes: u64,
    errors: u64,
}

impl Child {
    async fn spawn(schema: &str, name: &str) -> Child {
        let mut process = tokio::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--ignored",
                "--exact",
                "cluster_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("CONTINUITY_CLUSTER_SCHEMA", schema)
            .env("CONTINUITY_CLUSTER_NODE", name)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn instance");
        let stdin = process.stdin.take().unwrap();
        let lines = BufReader::new(process.stdout.take().unwrap()).lines();
        let mut c = Child {
            name: name.into(),
            process,
            stdin,
            lines,
            probes: 0,
            errors: 0,
        };
        c.expect("READY").await;
        c
    }

    async fn expect(&mut self, prefix: &str) -> String {
        self.expect_any(&[prefix]).await.1
    }

    /// The first line holding one of `prefixes`: which, and what follows it.
    async fn expect_any(&mut self, prefixes: &[&str]) -> (usize, String) {
        let wait = tokio::time::timeout(Duration::from_secs(120), async {
            while let Some(l) = self.lines.next_line().await.expect("read") {
                // The test harness may have printed on the same line first.
                for (k, prefix) in prefixes.iter().enumerate() {
                    if let Some(i) = l.find(prefix) {
                        return (k, l[i + prefix.len()..].to_string());
                    }
                }
            }
            panic!("instance {} exited", self.name)
        });
        wait.await
            .unwrap_or_else(|_| panic!("instance {} did not answer", self.name))
    }

    async fn send(&mut self, line: &str) {
        self.stdin
            .write_all(format!("{line}\n").as_bytes())
            .await
            .expect("write");
        self.stdin.flush().await.expect("flush");
    }

    fn count(&mut self, done: &str) {
        let f: Vec<u64> = done.split(' ').map(|x| x.parse().unwrap()).collect();
        self.probes += f[0];
        self.errors += f[2];
    }

    async fn send_tick(&mut self, now: DateTime<Utc>) {
        self.send(&format!("TICK {}", now.to_rfc3339())).await;
    }

    async fn done(&mut self) {
        let rest = self.expect("DONE ").await;
        self.count(&rest);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_through_a_day_long_outage_with_one_killed() {
    let pg = common::PgSchema::new("cluster").await;
    pg.exec(
        "CREATE TABLE received (key TEXT NOT NULL, tenant TEXT NOT NULL, alert_id BIGINT NOT NULL,
           kind TEXT NOT NULL, created_at BIGINT NOT NULL, node TEXT NOT NULL)",
    )
    .await;
    let mut nodes = Vec::new();
    for name in ["node-a", "node-b", "node-c"] {
        nodes.push(Child::spawn(&pg.schema, name).await);
    }
    let ticks = (TimeDelta::hours(24).num_minutes() / TICK.num_minutes()) as usize;
    let mut killed: Option<Child> = None;
    for i in 1..=ticks {
        let now = start() + TICK * i as i32;
        // node-b answered this tick already (it sent nothing and lives on).
        let mut victim_ticked = false;
        if i >= ticks / 2 && killed.is_none() {
            // Half-way, node-b dies in the middle of a tick, after sending
            // an alert and before recording that it did (in the first tick
            // from here on in which it sends one).
            nodes[1].send("ARM").await;
            nodes[1].send_tick(now).await;
            match nodes[1].expect_any(&["SENT ", "DONE "]).await {
                (0, key) => {
                    let mut victim = nodes.remove(1);
                    victim.process.start_kill().expect("SIGKILL");
                    victim.process.wait().await.expect("wait");
                    eprintln!("killed {} after it sent {key}", victim.name);
                    killed = Some(victim);
                }
                (_, done) => {
                    nodes[1].count(&done);
                    victim_ticked = true;
                }
            }
        }
        for (k, n) in nodes.iter_mut().enumerate() {
            if k == 1 && victim_ticked {
                continue;
            }
            n.send_tick(now).await;
        }
        for (k, n) in nodes.iter_mut().enumerate() {
            if k == 1 && victim_ticked {
                continue;
            }
            n.done().await;
        }
    }
    let killed = killed.expect("an instance was killed");

    // What the receiving side saw.
    let (client, conn) = tokio_postgres::connect(&common::pg_url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let rows = client
        .query(
            &format!(
                "SELECT key, tenant, alert_id, kind, created_at FROM {}.received ORDER BY tenant, alert_id",
                pg.schema
            ),
            &[],
        )
        .await
        .unwrap();
    let mut copies: BTreeMap<String, u32> = BTreeMap::new();
    let mut alerts: BTreeMap<String, BTreeMap<i64, (String, i64)>> = BTreeMap::new();
    for r in &rows {
        let key: String = r.get(0);
        *copies.entry(key).or_default() += 1;
        alerts
            .entry(r.get(1))
            .or_default()
            .insert(r.get(2), (r.get(3), r.get(4)));
    }
    let resent: u32 = copies.values().map(|c| c - 1).sum();
    eprintln!(
        "{} deliveries of {} alerts; {resent} re-sent after the kill (counted once); instance {} killed",
        rows.len(),
        copies.len(),
        killed.name
    );
    assert!(
        copies.values().all(|c| *c <= 2),
        "an alert was sent more than twice"
    );
    assert_eq!(
        resent, 1,
        "exactly the alert the killed instance sent but did not record was sent again"
    );

    let store = &pg.store;
    assert_eq!(alerts.len(), TENANTS, "every tenant was alerted");
    for t in tenants() {
        let got = &alerts[t.as_str()];
        let ids: Vec<i64> = got.keys().copied().collect();
        assert_eq!(
            ids,
            (0..got.len() as i64).collect::<Vec<_>>(),
            "{t}: no alert missing"
        );
        let stored = store.load(&t).await.unwrap().unwrap();
        assert_eq!(
            stored.state.next_alert_id,
            got.len() as u64,
            "{t}: every alert decided was received"
        );
        let kinds: Vec<&str> = got.values().map(|(k, _)| k.as_str()).collect();
        assert_eq!(kinds[0], "raised", "{t}: {kinds:?}");
        assert!(
            kinds[1..].iter().all(|k| *k == "reminder"),
            "{t}: reminders only while the outage lasts: {kinds:?}"
        );
        let times: Vec<i64> = got.values().map(|(_, at)| *at).collect();
        for w in times.windows(2) {
            let gap = (w[1] - w[0]) / 60;
            // An hour, or a little more when the reminder fell due while
            // the dead instance's lease ran out.
            assert!(
                (60..=60 + 12 + 5).contains(&gap),
                "{t}: reminders an hour apart, got {gap} min"
            );
        }
        // Raised about an hour in (three probes lost 30 minutes after
        // sending, two breached evaluations), then one an hour.
        assert!(
            (22..=24).contains(&got.len()),
            "{t}: {} alerts in a day",
            got.len()
        );
    }
    assert!(
        store.pending_outbox(10).await.unwrap().is_empty(),
        "nothing left undelivered"
    );
    // Probes were sent once a round, not once per instance: 100 tenants,
    // one probe every 10 minutes for a day.
    let probes: u64 = nodes.iter().map(|n| n.probes).sum::<u64>() + killed.probes;
    let rounds = (TENANTS * 24 * 6) as u64;
    assert!(
        probes <= rounds && probes >= rounds - rounds / 20,
        "probes dispatched {probes}, expected about {rounds}"
    );
    let errors: u64 = nodes.iter().map(|n| n.errors).sum();
    assert_eq!(errors, 0, "the surviving instances reported no errors");
    drop(nodes);
    pg.drop().await;
}

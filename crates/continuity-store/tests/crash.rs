//! Crash safety: a child process applies transitions and is killed with
//! SIGKILL at random points, many times; after each kill every
//! acknowledged transition is in the store, and the state, the audit log
//! and the outbox agree (no half-written commit).
//!
//! The child is this test binary itself, running the ignored test
//! `crash_child` with the store named in `CONTINUITY_CRASH_CHILD`.

mod common;

use std::{process::Stdio, time::Duration};

use chrono::{DateTime, Utc};
use continuity_core::{
    TenantId,
    config::{ChannelKind, Recipient},
    machine::{Actor, AlertKind, AuditEntry, TenantState},
    notify::AlertMessage,
    store::{Commit, EventStore, OutboxItem},
};
use continuity_store::{PostgresOptions, PostgresStore, SqliteStore};
use tokio::io::{AsyncBufReadExt, BufReader};

const KILLS: usize = 12;

fn tenant() -> TenantId {
    TenantId::new("crash").unwrap()
}

fn at() -> DateTime<Utc> {
    "2030-01-01T00:00:00Z".parse().unwrap()
}

/// Transition `n` (it makes version `n`): the state names it, and it
/// appends audit entry `n` and outbox alert `n`.
fn transition(n: u64) -> Commit {
    let t = tenant();
    Commit {
        state: TenantState {
            next_alert_id: n,
            ..TenantState::default()
        },
        at: at(),
        audit: vec![AuditEntry {
            at: at(),
            actor: Actor::System,
            action: format!("crash.{n}"),
            before: format!("{}", n - 1),
            after: format!("{n}"),
        }],
        outbox: vec![OutboxItem::Alert(Box::new(AlertMessage {
            tenant: t.clone(),
            tenant_name: "crash".into(),
            alert_id: n,
            kind: AlertKind::Raised,
            recipient: Recipient::new("ops", ChannelKind::Sms, "+15550100"),
            idempotency_key: format!("crash/{n}/ops"),
            created_at: at(),
            link: "https://portal.example/c/x".into(),
            link_expires_at: at(),
            conditions: Vec::new(),
            event: None,
            failing: Vec::new(),
            time_zone: Default::default(),
        }))],
    }
}

async fn open(spec: &str) -> Box<dyn EventStore> {
    match spec.split_once(':') {
        Some(("sqlite", path)) => Box::new(SqliteStore::open(path).await.expect("open sqlite")),
        Some(("postgres", schema)) => Box::new(
            PostgresStore::connect_with(
                &common::pg_url(),
                PostgresOptions {
                    schema: schema.into(),
                    pool_size: 2,
                    ..Default::default()
                },
            )
            .await
            .expect("connect postgres"),
        ),
        _ => panic!("bad store spec {spec:?}"),
    }
}

/// The child: applies transitions until it is killed, printing `ACK n`
/// after the store acknowledged transition `n`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "child process of the crash tests, started by them"]
async fn crash_child() {
    let spec = std::env::var("CONTINUITY_CRASH_CHILD").expect("CONTINUITY_CRASH_CHILD");
    let store = open(&spec).await;
    let t = tenant();
    loop {
        let version = store.load(&t).await.expect("load").map_or(0, |v| v.version);
        let n = version + 1;
        store
            .commit(&t, version, transition(n))
            .await
            .expect("commit");
        println!("ACK {n}");
    }
}

/// The transition acknowledged on `line`, if any (the test harness may have
/// printed on the same line first).
fn ack(line: &str) -> Option<u64> {
    let i = line.find("ACK ")?;
    line[i + 4..].trim().parse().ok()
}

/// A small deterministic generator for kill delays (no rand dependency).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % below
    }
}

/// Runs the child once, kills it after `delay` from its first ack, and
/// returns the last transition it acknowledged.
async fn run_and_kill(spec: &str, delay: Duration) -> u64 {
    let exe = std::env::current_exe().expect("test binary");
    let mut child = tokio::process::Command::new(exe)
        .args([
            "--ignored",
            "--exact",
            "crash_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("CONTINUITY_CRASH_CHILD", spec)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn child");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut acked = 0;
    let first = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.expect("read") {
            if let Some(n) = ack(&line) {
                return Some(n);
            }
        }
        None
    })
    .await
    .expect("the child acknowledges a transition within a minute")
    .expect("the child exited before acknowledging anything");
    acked = acked.max(first);
    let kill_at = tokio::time::sleep(delay);
    tokio::pin!(kill_at);
    loop {
        tokio::select! {
            _ = &mut kill_at => break,
            line = lines.next_line() => match line.expect("read") {
                Some(l) => if let Some(n) = ack(&l) {
                    acked = acked.max(n);
                },
                None => panic!("the child exited on its own"),
            },
        }
    }
    child.start_kill().expect("SIGKILL");
    // Acks already written before the kill still count.
    while let Ok(Some(l)) = lines.next_line().await {
        if let Some(n) = ack(&l) {
            acked = acked.max(n);
        }
    }
    let status = child.wait().await.expect("wait");
    assert!(!status.success(), "the child was killed");
    acked
}

/// Every acknowledged transition is there; at most the one in flight
/// beyond it; state, audit log and outbox agree.
async fn verify(store: &dyn EventStore, acked: u64) -> u64 {
    let t = tenant();
    let stored = store.load(&t).await.expect("load").expect("state");
    assert!(
        stored.version >= acked,
        "acknowledged transition {acked} lost: store has version {}",
        stored.version
    );
    assert!(
        stored.version <= acked + 1,
        "at most one unacknowledged commit landed"
    );
    assert_eq!(
        stored.state.next_alert_id, stored.version,
        "state of the last commit"
    );
    let audit = store.audit_log(&t, 0, usize::MAX).await.expect("audit");
    assert_eq!(
        audit.len() as u64,
        stored.version,
        "one audit entry per commit"
    );
    for (i, r) in audit.iter().enumerate() {
        assert_eq!(r.seq, i as u64 + 1);
        assert_eq!(r.entry.action, format!("crash.{}", i + 1));
    }
    let outbox = store.pending_outbox(usize::MAX).await.expect("outbox");
    let ids: Vec<u64> = outbox
        .iter()
        .map(|e| match &e.item {
            OutboxItem::Alert(m) => m.alert_id,
            other => panic!("unexpected item {other:?}"),
        })
        .collect();
    assert_eq!(
        ids,
        (1..=stored.version).collect::<Vec<_>>(),
        "one outbox item per commit, in order"
    );
    stored.version
}

async fn crash_many_times(spec: &str, seed: u64) {
    let mut rng = Lcg(seed);
    let mut last = 0;
    for round in 0..KILLS {
        let delay = Duration::from_millis(5 + rng.next(150));
        let acked = run_and_kill(spec, delay).await;
        assert!(acked > last, "round {round}: the child made progress");
        let store = open(spec).await;
        last = verify(store.as_ref(), acked).await;
    }
}

fn seed() -> u64 {
    std::time::SystemTime::UNIX_EPOCH
        .elapsed()
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_keeps_every_acknowledged_transition_through_sigkill() {
    let dir = common::TempDir::new("crash");
    let spec = format!("sqlite:{}", dir.path().join("crash.db").display());
    let seed = seed();
    eprintln!("seed {seed}");
    crash_many_times(&spec, seed).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_keeps_every_acknowledged_transition_through_sigkill() {
    let pg = common::PgSchema::new("crash").await;
    let spec = format!("postgres:{}", pg.schema);
    let seed = seed();
    eprintln!("seed {seed}");
    crash_many_times(&spec, seed).await;
    pg.drop().await;
}

//! One tick's exchange of shared observations across a cluster, measured
//! on PostgreSQL (the store's `share_observations` /
//! `take_shared_observations`) and on NATS JetStream, alternating tick by
//! tick so that drift on the machine hits every engine alike.
//!
//! See README.md for what is simulated, the options and how to read the
//! output.

#![allow(
    clippy::disallowed_methods,
    reason = "a benchmark: wall time is what it measures"
)]

use std::{
    error::Error,
    sync::Arc,
    time::{Duration, Instant},
};

use async_nats::jetstream::{
    self,
    consumer::{AckPolicy, PullConsumer, pull},
    message::PublishMessage,
    stream::{self, RetentionPolicy, StorageType},
};
use bytes::Bytes;
use chrono::{DateTime, TimeDelta, Utc};
use continuity_core::{
    TenantId,
    cluster::{SHARDS, ShardSet, shard_of},
    store::{EventStore, SharedObservations},
};
use continuity_store::{PostgresOptions, PostgresStore};
use serde::Serialize;
use tokio::{
    sync::{Mutex, mpsc},
    task::JoinSet,
};

type Res<T> = Result<T, Box<dyn Error + Send + Sync>>;

/// As the monitor takes them (`TAKE_LIMIT` in `monitor/sharing.rs`).
const TAKE_LIMIT: usize = 256;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Engine {
    Postgres,
    /// The same, the payload column compressed with LZ4 instead of pglz.
    PgLz4,
    /// The same, the payload column stored without compression.
    PgUncompressed,
    /// Acks published without waiting (then one flush per tick).
    Nats,
    /// Each ack confirmed by the server (`double_ack`).
    NatsDouble,
    /// Long-lived pull subscriptions (`messages()`), one per owned shard,
    /// on a stream of its own: deliveries start while batches are
    /// published; a tick waits until every batch has reached its owner.
    NatsStream,
}

impl Engine {
    fn parse(s: &str) -> Res<Engine> {
        Ok(match s {
            "pg" => Engine::Postgres,
            "pg-lz4" => Engine::PgLz4,
            "pg-uncompressed" => Engine::PgUncompressed,
            "nats" => Engine::Nats,
            "nats-double" => Engine::NatsDouble,
            "nats-stream" => Engine::NatsStream,
            other => return Err(format!("engine `{other}`: use pg, pg-lz4, pg-uncompressed, nats, nats-double or nats-stream").into()),
        })
    }
    fn is_pg(self) -> bool {
        matches!(
            self,
            Engine::Postgres | Engine::PgLz4 | Engine::PgUncompressed
        )
    }

    /// How the variant stores the payload column, after the migration.
    fn payload_storage(self) -> Option<&'static str> {
        match self {
            Engine::PgLz4 => Some("SET COMPRESSION lz4"),
            Engine::PgUncompressed => Some("SET STORAGE EXTERNAL"),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Engine::Postgres => "pg",
            Engine::PgLz4 => "pg-lz4",
            Engine::PgUncompressed => "pg-uncompressed",
            Engine::Nats => "nats",
            Engine::NatsDouble => "nats-double",
            Engine::NatsStream => "nats-stream",
        }
    }
}

struct Args {
    tenants: Vec<usize>,
    instances: usize,
    ticks: usize,
    per_minute: usize,
    engines: Vec<Engine>,
    pg: String,
    nats: String,
}

fn parse_args() -> Res<Args> {
    let mut a = Args {
        tenants: vec![10_000, 100_000],
        instances: 3,
        ticks: 30,
        per_minute: 1,
        engines: vec![
            Engine::Postgres,
            Engine::PgLz4,
            Engine::PgUncompressed,
            Engine::Nats,
            Engine::NatsDouble,
            Engine::NatsStream,
        ],
        pg: "host=127.0.0.1 port=5432 user=postgres dbname=test".into(),
        nats: "127.0.0.1:4222".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--tenants" => {
                a.tenants = value()?
                    .split(',')
                    .map(|n| n.trim().parse())
                    .collect::<Result<_, _>>()?
            }
            "--instances" => a.instances = value()?.parse()?,
            "--ticks" => a.ticks = value()?.parse()?,
            "--per-minute" => a.per_minute = value()?.parse()?,
            "--engines" => {
                a.engines = value()?
                    .split(',')
                    .map(|e| Engine::parse(e.trim()))
                    .collect::<Res<_>>()?
            }
            "--pg" => a.pg = value()?,
            "--nats" => a.nats = value()?,
            other => {
                return Err(format!(
                    "unknown option `{other}` (see README.md: --tenants N,N --instances N \
                     --ticks N --per-minute N --engines pg,pg-lz4,pg-uncompressed,nats,nats-double,nats-stream --pg CONNINFO --nats URL)"
                )
                .into());
            }
        }
    }
    if a.instances < 2 || a.ticks == 0 || a.engines.is_empty() || a.tenants.is_empty() {
        return Err("need at least 2 instances, 1 tick, 1 engine and 1 tenant count".into());
    }
    Ok(a)
}

/// A small deterministic generator (xorshift64*): the same traffic for
/// every engine and every run.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The shape `monitor/sharing.rs` writes (version 1).
#[derive(Serialize)]
struct Payload<'a> {
    v: u8,
    base: i64,
    tenants: Vec<(&'a str, Vec<Wire>)>,
}

/// A batch's tenants, each with its observations.
type TenantsWire<'a> = Vec<(&'a str, Vec<Wire>)>;

/// `[direction, ns after base, latency ns or -(1 + failure kind), reply]`.
#[derive(Serialize)]
struct Wire(u8, i64, i64, Option<&'static str>);

struct Fleet {
    tenants: Vec<(String, u16)>,
    owner: Vec<usize>,
    owned: Vec<ShardSet>,
}

impl Fleet {
    fn new(tenants: usize, instances: usize) -> Res<Fleet> {
        let tenants = (0..tenants)
            .map(|i| {
                let id = format!("tenant-{i:06}");
                let shard = shard_of(&TenantId::new(&id)?);
                Ok((id, shard))
            })
            .collect::<Res<Vec<_>>>()?;
        // Round robin: the fair share each instance would hold (86/85/85).
        let owner: Vec<usize> = (0..SHARDS).map(|s| usize::from(s) % instances).collect();
        let owned = (0..instances)
            .map(|i| {
                (0..SHARDS)
                    .filter(|s| owner[usize::from(*s)] == i)
                    .collect()
            })
            .collect();
        Ok(Fleet {
            tenants,
            owner,
            owned,
        })
    }

    /// One tick's batches, per sharing instance: every observation of the
    /// last minute lands on a random instance, which shares it when it
    /// does not own the tenant's shard.
    fn tick(
        &self,
        instances: usize,
        per_minute: usize,
        base: DateTime<Utc>,
        rng: &mut Rng,
    ) -> Vec<Vec<SharedObservations>> {
        // Per instance, per shard, the tenants' observations in order.
        let mut by_shard: Vec<Vec<TenantsWire<'_>>> = (0..instances)
            .map(|_| (0..SHARDS).map(|_| Vec::new()).collect())
            .collect();
        for (id, shard) in &self.tenants {
            let s = usize::from(*shard);
            for direction in 0..2u8 {
                for _ in 0..per_minute {
                    let seen_by = rng.below(instances as u64) as usize;
                    if self.owner[s] == seen_by {
                        continue;
                    }
                    let at = -(rng.below(60_000_000_000) as i64);
                    let outcome = if rng.below(100) == 0 {
                        -1 - rng.below(6) as i64
                    } else {
                        1_000_000_000 + rng.below(29_000_000_000) as i64
                    };
                    let reply = (outcome < 0).then_some("451 4.3.0 try later");
                    let slot = &mut by_shard[seen_by][s];
                    match slot.last_mut() {
                        Some((last, obs)) if *last == id.as_str() => {
                            obs.push(Wire(direction, at, outcome, reply))
                        }
                        _ => slot.push((id.as_str(), vec![Wire(direction, at, outcome, reply)])),
                    }
                }
            }
        }
        let base_ms = base.timestamp_millis();
        by_shard
            .into_iter()
            .map(|shards| {
                shards
                    .into_iter()
                    .enumerate()
                    .filter(|(_, tenants)| !tenants.is_empty())
                    .map(|(shard, tenants)| SharedObservations {
                        shard: shard as u16,
                        shared_at: base,
                        payload: serde_json::to_vec(&Payload {
                            v: 1,
                            base: base_ms,
                            tenants,
                        })
                        .expect("integers and strings serialise"),
                    })
                    .collect()
            })
            .collect()
    }
}

/// CPU time (user + system, in clock ticks) of a process, 0 if gone.
fn cpu_ticks(pid: u32) -> u64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0;
    };
    // Fields after the command name (which may hold spaces): state is
    // field 3, utime 14, stime 15.
    let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
        return 0;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let n = |i: usize| {
        f.get(i - 3)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    n(14) + n(15)
}

fn pids_named(name: &str) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == name)
        })
        .collect()
}

/// CPU of this process, of every PostgreSQL process (backends, WAL
/// writer, checkpointer: all of the server's cost) and of nats-server.
#[derive(Clone, Copy, Default)]
struct Cpu {
    me: u64,
    postgres: u64,
    nats: u64,
}

fn cpu_now() -> Cpu {
    Cpu {
        me: cpu_ticks(std::process::id()),
        postgres: pids_named("postgres").into_iter().map(cpu_ticks).sum(),
        nats: pids_named("nats-server").into_iter().map(cpu_ticks).sum(),
    }
}

/// What one engine did in one tick.
#[derive(Default, Clone, Copy)]
struct TickFigures {
    share: Duration,
    take: Duration,
    cpu_me: u64,
    cpu_postgres: u64,
    cpu_nats: u64,
    /// WAL written (PostgreSQL) or bytes held by the stream after the
    /// share (NATS).
    server_bytes: u64,
    /// Batches shared by the end of this tick and not yet taken.
    late: usize,
}

struct Published {
    batches: usize,
    bytes: usize,
}

fn totals(batches: &[Vec<SharedObservations>]) -> Published {
    Published {
        batches: batches.iter().map(Vec::len).sum(),
        bytes: batches.iter().flatten().map(|b| b.payload.len()).sum(),
    }
}

struct Pg {
    stores: Vec<PostgresStore>,
    wal: tokio_postgres::Client,
}

impl Pg {
    async fn open(conninfo: &str, instances: usize, engine: Engine) -> Res<Pg> {
        let schema = format!(
            "share_bench_{}_{}",
            std::process::id(),
            engine.name().replace('-', "_")
        );
        let mut stores = Vec::new();
        // One store (one pool) per instance, as separate processes would have.
        for _ in 0..instances {
            let options = PostgresOptions {
                schema: schema.clone(),
                ..PostgresOptions::default()
            };
            stores.push(PostgresStore::connect_with(conninfo, options).await?);
        }
        let (wal, connection) = tokio_postgres::connect(conninfo, tokio_postgres::NoTls).await?;
        tokio::spawn(connection);
        if let Some(storage) = engine.payload_storage() {
            wal.batch_execute(&format!(
                "ALTER TABLE {schema}.continuity_shared_observations ALTER COLUMN payload {storage}"
            ))
            .await?;
        }
        Ok(Pg { stores, wal })
    }

    async fn wal_lsn(&self) -> Res<u64> {
        let row = self
            .wal
            .query_one("SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::bigint", &[])
            .await?;
        Ok(row.get::<_, i64>(0) as u64)
    }

    /// Shares every instance's batches at once, then every owner takes
    /// its shards' at once.
    async fn tick(
        &self,
        fleet: &Fleet,
        batches: &Arc<Vec<Vec<SharedObservations>>>,
    ) -> Res<(Duration, Duration, Published)> {
        let t0 = Instant::now();
        let mut set = JoinSet::new();
        for (i, store) in self.stores.iter().enumerate() {
            let (store, batches) = (store.clone(), Arc::clone(batches));
            set.spawn(async move { store.share_observations(&batches[i]).await });
        }
        while let Some(r) = set.join_next().await {
            r??;
        }
        let t1 = Instant::now();
        let mut set = JoinSet::new();
        for (i, store) in self.stores.iter().enumerate() {
            let (store, owned) = (store.clone(), fleet.owned[i]);
            set.spawn(async move {
                let mut got = Published {
                    batches: 0,
                    bytes: 0,
                };
                loop {
                    let taken = store.take_shared_observations(&owned, TAKE_LIMIT).await?;
                    if let Some(b) = taken.iter().find(|b| !owned.contains(b.shard)) {
                        return Err(format!("took shard {} it does not own", b.shard).into());
                    }
                    got.batches += taken.len();
                    got.bytes += taken.iter().map(|b| b.payload.len()).sum::<usize>();
                    if taken.len() < TAKE_LIMIT {
                        return Res::Ok(got);
                    }
                }
            });
        }
        let taken = join_taken(set).await?;
        Ok((t1 - t0, t1.elapsed(), taken))
    }

    async fn close(mut self) -> Res<()> {
        if let Some(store) = self.stores.pop() {
            store.drop_schema().await?;
        }
        Ok(())
    }
}

async fn join_taken(mut set: JoinSet<Res<Published>>) -> Res<Published> {
    let mut all = Published {
        batches: 0,
        bytes: 0,
    };
    while let Some(r) = set.join_next().await {
        let got = r??;
        all.batches += got.batches;
        all.bytes += got.bytes;
    }
    Ok(all)
}

struct Nats {
    clients: Vec<async_nats::Client>,
    contexts: Vec<jetstream::Context>,
    /// Per instance, the pull consumers of the shards it owns.
    consumers: Vec<Vec<PullConsumer>>,
    stream: String,
    prefix: String,
    /// Streaming mode: per instance, what its subscriptions delivered.
    inboxes: Vec<Arc<Mutex<mpsc::UnboundedReceiver<Delivered>>>>,
    readers: JoinSet<()>,
}

type Delivered = Result<jetstream::Message, String>;

impl Nats {
    async fn open(url: &str, fleet: &Fleet, instances: usize, streaming: bool) -> Res<Nats> {
        let tag = if streaming { "S" } else { "F" };
        let stream = format!("SHARE_BENCH_{}_{tag}", std::process::id());
        let prefix = format!("share_bench_{}_{tag}", std::process::id());
        let mut clients = Vec::new();
        let mut contexts = Vec::new();
        for _ in 0..instances {
            let client = async_nats::connect(url).await?;
            contexts.push(jetstream::new(client.clone()));
            clients.push(client);
        }
        let info = clients[0].server_info();
        println!(
            "nats-server {} (jetstream {}); one pull consumer per shard (a 2.9 server takes one filter subject per consumer)",
            info.version, info.jetstream
        );
        let created = Instant::now();
        let s = contexts[0]
            .create_stream(stream::Config {
                name: stream.clone(),
                subjects: vec![format!("{prefix}.*")],
                // A message is removed once acked: a batch goes to one
                // owner, once, like the store's DELETE … RETURNING.
                retention: RetentionPolicy::WorkQueue,
                // On disk, like the database (fsync is the server's
                // default: periodic, not per message).
                storage: StorageType::File,
                num_replicas: 1,
                // Publishes carry Nats-Msg-Id: a retried publish is
                // stored once within this window.
                duplicate_window: Duration::from_secs(120),
                ..Default::default()
            })
            .await?;
        for shard in 0..SHARDS {
            s.create_consumer(pull::Config {
                durable_name: Some(format!("shard-{shard}")),
                filter_subject: format!("{prefix}.{shard}"),
                ack_policy: AckPolicy::Explicit,
                ack_wait: Duration::from_secs(30),
                ..Default::default()
            })
            .await?;
        }
        let mut consumers = Vec::new();
        for (i, js) in contexts.iter().enumerate() {
            let s = js.get_stream(&stream).await?;
            let mut mine: Vec<PullConsumer> = Vec::new();
            for shard in fleet.owned[i].iter() {
                mine.push(s.get_consumer(&format!("shard-{shard}")).await?);
            }
            consumers.push(mine);
        }
        let mut inboxes = Vec::new();
        let mut readers = JoinSet::new();
        if streaming {
            for mine in &consumers {
                let (tx, rx) = mpsc::unbounded_channel();
                for consumer in mine {
                    let (consumer, tx) = (consumer.clone(), tx.clone());
                    readers.spawn(async move {
                        let mut messages = match consumer.messages().await {
                            Ok(m) => m,
                            Err(e) => {
                                let _ = tx.send(Err(e.to_string()));
                                return;
                            }
                        };
                        while let Some(m) = next(&mut messages).await {
                            if tx.send(m.map_err(|e| e.to_string())).is_err() {
                                return;
                            }
                        }
                    });
                }
                inboxes.push(Arc::new(Mutex::new(rx)));
            }
        }
        println!(
            "nats setup ({}): stream and {SHARDS} consumers in {:.0} ms",
            if streaming { "streaming" } else { "fetch" },
            created.elapsed().as_secs_f64() * 1e3
        );
        Ok(Nats {
            clients,
            contexts,
            consumers,
            stream,
            prefix,
            inboxes,
            readers,
        })
    }

    async fn stream_bytes(&self) -> Res<u64> {
        let mut s = self.contexts[0].get_stream(&self.stream).await?;
        Ok(s.info().await?.state.bytes)
    }

    async fn tick(
        &self,
        batches: &Arc<Vec<Vec<(u16, Bytes)>>>,
        tick: usize,
        double: bool,
    ) -> Res<(Duration, Duration, Published)> {
        let kind = if double { "d" } else { "p" };
        let t0 = Instant::now();
        self.publish(batches, tick, kind).await?;
        let t1 = Instant::now();
        let mut set = JoinSet::new();
        for (i, consumers) in self.consumers.iter().enumerate() {
            let (consumers, client) = (consumers.clone(), self.clients[i].clone());
            set.spawn(async move {
                // Every owned shard's consumer fetched at once (no_wait:
                // what is there, then done).
                let mut fetches = JoinSet::new();
                for consumer in consumers {
                    fetches.spawn(async move {
                        let mut got = Published {
                            batches: 0,
                            bytes: 0,
                        };
                        loop {
                            let mut batch =
                                consumer.fetch().max_messages(TAKE_LIMIT).messages().await?;
                            let mut n = 0;
                            while let Some(message) = next(&mut batch).await {
                                let message = message?;
                                got.batches += 1;
                                got.bytes += message.payload.len();
                                n += 1;
                                if double {
                                    message.double_ack().await?;
                                } else {
                                    message.ack().await?;
                                }
                            }
                            if n < TAKE_LIMIT {
                                return Res::Ok(got);
                            }
                        }
                    });
                }
                let got = join_taken(fetches).await?;
                if !double {
                    client.flush().await?;
                }
                Res::Ok(got)
            });
        }
        let taken = join_taken(set).await?;
        Ok((t1 - t0, t1.elapsed(), taken))
    }

    /// Publishes as [`tick`](Self::tick) does, then each owner reads
    /// from its subscriptions until its batches are all in, acking each.
    async fn tick_streaming(
        &self,
        fleet: &Fleet,
        batches: &Arc<Vec<Vec<(u16, Bytes)>>>,
        tick: usize,
    ) -> Res<(Duration, Duration, Published)> {
        let t0 = Instant::now();
        self.publish(batches, tick, "s").await?;
        let t1 = Instant::now();
        let mut set = JoinSet::new();
        for (i, inbox) in self.inboxes.iter().enumerate() {
            let expected = batches
                .iter()
                .flatten()
                .filter(|(shard, _)| fleet.owned[i].contains(*shard))
                .count();
            let (inbox, client) = (Arc::clone(inbox), self.clients[i].clone());
            set.spawn(async move {
                let mut inbox = inbox.lock().await;
                let mut got = Published {
                    batches: 0,
                    bytes: 0,
                };
                while got.batches < expected {
                    let message = tokio::time::timeout(Duration::from_secs(30), inbox.recv())
                        .await
                        .map_err(|_| {
                            format!(
                                "owner {i}: {} of {expected} batches after 30 s",
                                got.batches
                            )
                        })?
                        .ok_or("subscriptions ended")??;
                    got.batches += 1;
                    got.bytes += message.payload.len();
                    message.ack().await?;
                }
                client.flush().await?;
                Res::Ok(got)
            });
        }
        let taken = join_taken(set).await?;
        Ok((t1 - t0, t1.elapsed(), taken))
    }

    /// Every instance publishes its batches at once, awaiting the PubAcks
    /// after the last publish.
    async fn publish(
        &self,
        batches: &Arc<Vec<Vec<(u16, Bytes)>>>,
        tick: usize,
        kind: &'static str,
    ) -> Res<()> {
        let mut set = JoinSet::new();
        for (i, js) in self.contexts.iter().enumerate() {
            let (js, batches, prefix) = (js.clone(), Arc::clone(batches), self.prefix.clone());
            set.spawn(async move {
                let mut acks = Vec::with_capacity(batches[i].len());
                for (shard, payload) in &batches[i] {
                    let message = PublishMessage::build()
                        .payload(payload.clone())
                        .message_id(format!("{kind}-{i}-{tick}-{shard}"));
                    acks.push(
                        js.send_publish(format!("{prefix}.{shard}"), message)
                            .await?,
                    );
                }
                for ack in acks {
                    let ack = ack.await?;
                    if ack.duplicate {
                        return Err(format!("batch stored twice in {}", ack.stream).into());
                    }
                }
                Res::Ok(())
            });
        }
        while let Some(r) = set.join_next().await {
            r??;
        }
        Ok(())
    }

    async fn close(mut self) -> Res<()> {
        self.readers.abort_all();
        self.contexts[0].delete_stream(&self.stream).await?;
        Ok(())
    }
}

/// The next item of a stream, without pulling in futures-util's traits
/// by name.
async fn next<S: tokio_stream::Stream + Unpin>(s: &mut S) -> Option<S::Item> {
    use tokio_stream::StreamExt;
    s.next().await
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn summarise(tenants: usize, engine: Engine, ticks: &[TickFigures], published: &[Published]) {
    let n = ticks.len() as f64;
    let mut totals: Vec<f64> = ticks.iter().map(|t| ms(t.share + t.take)).collect();
    totals.sort_by(f64::total_cmp);
    let mean = totals.iter().sum::<f64>() / n;
    let p95 = totals[((totals.len() as f64 * 0.95).ceil() as usize).clamp(1, totals.len()) - 1];
    let share = ticks.iter().map(|t| ms(t.share)).sum::<f64>() / n;
    let take = ticks.iter().map(|t| ms(t.take)).sum::<f64>() / n;
    // Clock ticks are 10 ms.
    let per_tick = |f: fn(&TickFigures) -> u64| ticks.iter().map(f).sum::<u64>() as f64 * 10.0 / n;
    let batches = published.iter().map(|p| p.batches).sum::<usize>() as f64 / n;
    let bytes = published.iter().map(|p| p.bytes).sum::<usize>() as f64 / n;
    let server_bytes = ticks.iter().map(|t| t.server_bytes).sum::<u64>() as f64 / n;
    println!(
        "RESULT tenants={tenants} engine={:<15} tick_ms mean={mean:7.1} p95={p95:7.1} max={:7.1} \
         | share={share:6.1} take={take:6.1} | cpu_ms/tick me={:6.1} postgres={:6.1} nats={:6.1} \
         | batches={batches:.0} payload_kB={:.0} {}={:.0} late_ticks={}",
        engine.name(),
        totals.last().copied().unwrap_or(0.0),
        per_tick(|t| t.cpu_me),
        per_tick(|t| t.cpu_postgres),
        per_tick(|t| t.cpu_nats),
        bytes / 1e3,
        if engine.is_pg() {
            "wal_kB"
        } else {
            "stream_kB"
        },
        server_bytes / 1e3,
        ticks.iter().filter(|t| t.late > 0).count(),
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("share-engines: {e}");
        std::process::exit(1);
    }
}

async fn run() -> Res<()> {
    let args = parse_args()?;
    // Only the shard owners matter for the set-up.
    let setup_fleet = Fleet::new(0, args.instances)?;
    let mut pgs: Vec<(Engine, Pg)> = Vec::new();
    for engine in args.engines.iter().filter(|e| e.is_pg()) {
        match Pg::open(&args.pg, args.instances, *engine).await {
            Ok(pg) => pgs.push((*engine, pg)),
            Err(e) => {
                for (_, pg) in pgs {
                    pg.close().await?;
                }
                return Err(e);
            }
        }
    }
    let wants = |e: &[Engine]| args.engines.iter().any(|x| e.contains(x));
    let nats = if wants(&[Engine::Nats, Engine::NatsDouble]) {
        match Nats::open(&args.nats, &setup_fleet, args.instances, false).await {
            Ok(n) => Some(n),
            Err(e) => {
                for (_, pg) in pgs {
                    pg.close().await?;
                }
                return Err(e);
            }
        }
    } else {
        None
    };
    let nats_stream = if wants(&[Engine::NatsStream]) {
        match Nats::open(&args.nats, &setup_fleet, args.instances, true).await {
            Ok(n) => Some(n),
            Err(e) => {
                for (_, pg) in pgs {
                    pg.close().await?;
                }
                if let Some(nats) = nats {
                    nats.close().await?;
                }
                return Err(e);
            }
        }
    } else {
        None
    };
    let outcome = measure(&args, &pgs, nats.as_ref(), nats_stream.as_ref()).await;
    // Tear down whatever happened.
    for (_, pg) in pgs {
        pg.close().await?;
    }
    if let Some(nats) = nats {
        nats.close().await?;
    }
    if let Some(nats) = nats_stream {
        nats.close().await?;
    }
    outcome
}

async fn measure(
    args: &Args,
    pgs: &[(Engine, Pg)],
    nats: Option<&Nats>,
    nats_stream: Option<&Nats>,
) -> Res<()> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let start: DateTime<Utc> = "2030-01-01T00:00:00Z".parse()?;
    // Message ids must not repeat within the stream's duplicate window.
    let mut serial = 0;
    for &tenants in &args.tenants {
        let fleet = Fleet::new(tenants, args.instances)?;
        let engines = &args.engines;
        let mut figures: Vec<Vec<TickFigures>> = vec![Vec::new(); engines.len()];
        let mut owed: Vec<(i64, i64)> = vec![(0, 0); engines.len()];
        let mut published: Vec<Published> = Vec::new();
        let generated = Instant::now();
        // One tick not counted first: pools, connections and caches warm.
        for tick in 0..=args.ticks {
            serial += 1;
            let base = start + TimeDelta::minutes((tick + 1) as i64);
            let batches = fleet.tick(args.instances, args.per_minute, base, &mut rng);
            let sent = totals(&batches);
            let nats_batches: Arc<Vec<Vec<(u16, Bytes)>>> = Arc::new(
                batches
                    .iter()
                    .map(|bs| {
                        bs.iter()
                            .map(|b| (b.shard, Bytes::from(b.payload.clone())))
                            .collect()
                    })
                    .collect(),
            );
            let batches = Arc::new(batches);
            // Alternate the order, so neither engine always runs first.
            let order: Vec<usize> = if tick % 2 == 0 {
                (0..engines.len()).collect()
            } else {
                (0..engines.len()).rev().collect()
            };
            for e in order {
                let before = cpu_now();
                let mut server_bytes = 0;
                let (share, take, taken) = match engines[e] {
                    engine if engine.is_pg() => {
                        let pg = &pgs
                            .iter()
                            .find(|(e, _)| *e == engine)
                            .ok_or("no PostgreSQL")?
                            .1;
                        let lsn = pg.wal_lsn().await?;
                        let r = pg.tick(&fleet, &batches).await?;
                        server_bytes = pg.wal_lsn().await?.saturating_sub(lsn);
                        r
                    }
                    Engine::NatsStream => {
                        let nats = nats_stream.ok_or("no NATS")?;
                        nats.tick_streaming(&fleet, &nats_batches, serial).await?
                    }
                    engine => {
                        let nats = nats.ok_or("no NATS")?;
                        nats.tick(&nats_batches, serial, engine == Engine::NatsDouble)
                            .await?
                    }
                };
                let after = cpu_now();
                // A batch not taken this tick must come the next: what is
                // owed never goes negative (nothing taken twice) and is
                // counted when a tick leaves some behind.
                owed[e].0 += sent.batches as i64 - taken.batches as i64;
                owed[e].1 += sent.bytes as i64 - taken.bytes as i64;
                if owed[e].0 < 0 || owed[e].1 < 0 {
                    return Err(format!(
                        "{} tick {tick}: taken {} batches ({} bytes) more than shared",
                        engines[e].name(),
                        -owed[e].0,
                        -owed[e].1
                    )
                    .into());
                }
                if owed[e].0 > 0 {
                    eprintln!(
                        "{} tick {tick}: {} batches shared not taken yet (they wait in the stream)",
                        engines[e].name(),
                        owed[e].0
                    );
                }
                let late = owed[e].0 as usize;
                if tick > 0 {
                    figures[e].push(TickFigures {
                        share,
                        take,
                        cpu_me: after.me - before.me,
                        cpu_postgres: after.postgres.saturating_sub(before.postgres),
                        cpu_nats: after.nats.saturating_sub(before.nats),
                        server_bytes,
                        late,
                    });
                }
            }
            if tick > 0 {
                published.push(sent);
            }
        }
        // The stream's bytes for one tick's batches, outside the timing.
        if let Some(nats) = nats {
            let base = start + TimeDelta::minutes((args.ticks + 2) as i64);
            let batches = fleet.tick(args.instances, args.per_minute, base, &mut rng);
            let nats_batches: Arc<Vec<Vec<(u16, Bytes)>>> = Arc::new(
                batches
                    .iter()
                    .map(|bs| {
                        bs.iter()
                            .map(|b| (b.shard, Bytes::from(b.payload.clone())))
                            .collect()
                    })
                    .collect(),
            );
            serial += 1;
            let held = measure_stream_bytes(nats, &nats_batches, serial).await?;
            for (e, engine) in engines.iter().enumerate() {
                if !engine.is_pg() {
                    for f in &mut figures[e] {
                        f.server_bytes = held;
                    }
                }
            }
        }
        println!(
            "tenants={tenants}: {} ticks per engine in {:.1} s; {:.0} observations shared a tick",
            args.ticks,
            generated.elapsed().as_secs_f64(),
            // Each observation lands on one instance; all but the owner share.
            (tenants * 2 * args.per_minute * (args.instances - 1)) as f64 / args.instances as f64,
        );
        for (e, engine) in engines.iter().enumerate() {
            summarise(tenants, *engine, &figures[e], &published);
        }
    }
    Ok(())
}

/// Publishes one tick's batches, reads the stream's size, then takes them.
async fn measure_stream_bytes(
    nats: &Nats,
    batches: &Arc<Vec<Vec<(u16, Bytes)>>>,
    tick: usize,
) -> Res<u64> {
    for (i, js) in nats.contexts.iter().enumerate() {
        let mut acks = Vec::new();
        for (shard, payload) in &batches[i] {
            let message = PublishMessage::build()
                .payload(payload.clone())
                .message_id(format!("size-{i}-{tick}-{shard}"));
            acks.push(
                js.send_publish(format!("{}.{shard}", nats.prefix), message)
                    .await?,
            );
        }
        for ack in acks {
            ack.await?;
        }
    }
    let held = nats.stream_bytes().await?;
    for consumers in &nats.consumers {
        for consumer in consumers {
            let mut batch = consumer.fetch().max_messages(TAKE_LIMIT).messages().await?;
            while let Some(message) = next(&mut batch).await {
                message?.double_ack().await?;
            }
        }
    }
    Ok(held)
}

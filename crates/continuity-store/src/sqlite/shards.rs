//! Cluster shards: live instances and the shards each one leases.

use std::time::Duration;

use chrono::{DateTime, Utc};
use continuity_core::cluster::{ShardSet, fair_share};
use rusqlite::{TransactionBehavior, params};

use super::{SqliteStore, sql::collect};
use crate::codec::{lease_end, micros, row_limit};

impl SqliteStore {
    pub(super) async fn sync_shard_leases(
        &self,
        instance: &str,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> continuity_core::Result<ShardSet> {
        let instance = instance.to_string();
        self.run(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let (now, until) = (micros(now), lease_end(now, lease));
            tx.prepare_cached("DELETE FROM continuity_instances WHERE alive_until <= ?1")?
                .execute([now])?;
            tx.prepare_cached(
                "INSERT INTO continuity_instances (instance, alive_until) VALUES (?1, ?2)
                 ON CONFLICT (instance) DO UPDATE SET alive_until = excluded.alive_until",
            )?
            .execute(params![instance, until])?;
            let live: i64 = tx
                .prepare_cached("SELECT COUNT(*) FROM continuity_instances")?
                .query_row([], |r| r.get(0))?;
            let fair = fair_share(usize::try_from(live).unwrap_or(1));
            tx.prepare_cached("UPDATE continuity_shards SET lease_until = ?2 WHERE owner = ?1")?
                .execute(params![instance, until])?;
            let mut mine: Vec<i64> = collect(
                tx.prepare_cached(
                    "SELECT shard FROM continuity_shards WHERE owner = ?1 ORDER BY shard",
                )?
                .query_map([&instance], |r| r.get(0))?,
            )?;
            while mine.len() > fair {
                if let Some(s) = mine.pop() {
                    tx.prepare_cached(
                        "UPDATE continuity_shards SET owner = NULL, lease_until = 0 WHERE shard = ?1",
                    )?
                    .execute([s])?;
                }
            }
            if mine.len() < fair {
                let free: Vec<i64> = collect(
                    tx.prepare_cached(
                        "SELECT shard FROM continuity_shards
                         WHERE owner IS NULL OR lease_until <= ?1 ORDER BY shard LIMIT ?2",
                    )?
                    .query_map(params![now, row_limit(fair - mine.len())], |r| r.get(0))?,
                )?;
                for s in free {
                    tx.prepare_cached(
                        "UPDATE continuity_shards SET owner = ?2, lease_until = ?3 WHERE shard = ?1",
                    )?
                    .execute(params![s, instance, until])?;
                    mine.push(s);
                }
            }
            tx.commit()?;
            Ok(mine.into_iter().filter_map(|s| u16::try_from(s).ok()).collect())
        })
        .await
    }

    pub(super) async fn release_shard_leases(&self, instance: &str) -> continuity_core::Result<()> {
        let instance = instance.to_string();
        self.run(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.execute(
                "DELETE FROM continuity_instances WHERE instance = ?1",
                [&instance],
            )?;
            tx.execute(
                "UPDATE continuity_shards SET owner = NULL, lease_until = 0 WHERE owner = ?1",
                [&instance],
            )?;
            tx.commit()?;
            Ok(())
        })
        .await
    }
}

//! Cluster shards: live instances and the shards each one leases.

use std::time::Duration;

use chrono::{DateTime, Utc};
use continuity_core::cluster::{ShardSet, fair_share};

use super::{PostgresStore, sql::column};
use crate::codec::{Fail, lease_end, micros, row_limit};

impl PostgresStore {
    pub(super) async fn sync_shard_leases(
        &self,
        instance: &str,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> continuity_core::Result<ShardSet> {
        let (now, until) = (micros(now), lease_end(now, lease));
        let run = async {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            // One sync at a time per schema: the fair share is computed
            // from a count that a concurrent join would change.
            tx.execute(
                "SELECT pg_advisory_xact_lock(hashtext('continuity-shards:' || $1))",
                &[&self.schema],
            )
            .await?;
            tx.execute(
                "DELETE FROM continuity_instances WHERE alive_until <= $1",
                &[&now],
            )
            .await?;
            tx.execute(
                "INSERT INTO continuity_instances (instance, alive_until) VALUES ($1, $2)
                 ON CONFLICT (instance) DO UPDATE SET alive_until = excluded.alive_until",
                &[&instance, &until],
            )
            .await?;
            let live: i64 = tx
                .query_one("SELECT COUNT(*) FROM continuity_instances", &[])
                .await
                .map_err(Fail::from)
                .and_then(|r| Ok(column(&r, 0)?))?;
            let fair = fair_share(usize::try_from(live).unwrap_or(1));
            let mut mine: Vec<i32> = tx
                .query(
                    "UPDATE continuity_shards SET lease_until = $2 WHERE owner = $1 RETURNING shard",
                    &[&instance, &until],
                )
                .await?
                .iter()
                .map(|r| column(r, 0))
                .collect::<Result<_, _>>()?;
            mine.sort_unstable();
            if mine.len() > fair {
                let extra = mine.split_off(fair);
                tx.execute(
                    "UPDATE continuity_shards SET owner = NULL, lease_until = 0 WHERE shard = ANY($1)",
                    &[&extra],
                )
                .await?;
            } else if mine.len() < fair {
                let want = row_limit(fair - mine.len());
                let taken: Vec<i32> = tx
                    .query(
                        "UPDATE continuity_shards SET owner = $1, lease_until = $2
                         WHERE shard IN (SELECT shard FROM continuity_shards
                                         WHERE owner IS NULL OR lease_until <= $3
                                         ORDER BY shard LIMIT $4)
                         RETURNING shard",
                        &[&instance, &until, &now, &want],
                    )
                    .await?
                    .iter()
                    .map(|r| column(r, 0))
                    .collect::<Result<_, _>>()?;
                mine.extend(taken);
            }
            tx.commit().await?;
            Ok::<_, Fail>(
                mine.into_iter()
                    .filter_map(|s| u16::try_from(s).ok())
                    .collect(),
            )
        };
        Ok(run.await?)
    }

    pub(super) async fn release_shard_leases(&self, instance: &str) -> continuity_core::Result<()> {
        let run = async {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            tx.execute(
                "DELETE FROM continuity_instances WHERE instance = $1",
                &[&instance],
            )
            .await?;
            tx.execute(
                "UPDATE continuity_shards SET owner = NULL, lease_until = 0 WHERE owner = $1",
                &[&instance],
            )
            .await?;
            tx.commit().await?;
            Ok::<_, Fail>(())
        };
        Ok(run.await?)
    }
}

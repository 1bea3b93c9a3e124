//! Observations shared between instances: a batch per shard, inserted by
//! the instance that made them and deleted by the shard's owner as it
//! takes them (one insert and one delete a batch: nothing to vacuum but
//! the deleted rows).

use continuity_core::{cluster::ShardSet, store::SharedObservations};

use super::{BACKEND, PostgresStore, sql::column};
use crate::{
    codec::{Fail, from_micros, micros, row_limit, shard_from},
    error::StoreError,
};

impl PostgresStore {
    pub(super) async fn insert_shared(
        &self,
        batches: &[SharedObservations],
    ) -> continuity_core::Result<()> {
        if batches.is_empty() {
            return Ok(());
        }
        let shards: Vec<i16> = batches.iter().map(|b| b.shard as i16).collect();
        let shared_at: Vec<i64> = batches.iter().map(|b| micros(b.shared_at)).collect();
        let payloads: Vec<&[u8]> = batches.iter().map(|b| b.payload.as_slice()).collect();
        let client = self.client().await?;
        // One statement: the batches are written together or not at all,
        // in the order given (`seq` follows `WITH ORDINALITY`).
        client
            .execute(
                "INSERT INTO continuity_shared_observations (shard, shared_at, payload)
                 SELECT shard, shared_at, payload
                 FROM unnest($1::smallint[], $2::bigint[], $3::bytea[])
                      WITH ORDINALITY AS b(shard, shared_at, payload, n)
                 ORDER BY n",
                &[&shards, &shared_at, &payloads],
            )
            .await
            .map_err(Fail::from)?;
        Ok(())
    }

    pub(super) async fn delete_shared(
        &self,
        shards: &ShardSet,
        limit: usize,
    ) -> continuity_core::Result<Vec<SharedObservations>> {
        if shards.is_empty() || limit == 0 {
            return Ok(Vec::new());
        }
        // Every shard: no filter (`$1` is then NULL).
        let list: Option<Vec<i16>> =
            (!shards.is_all()).then(|| shards.iter().map(|s| s as i16).collect());
        let client = self.client().await?;
        // SKIP LOCKED: two instances that both think they own a shard for a
        // moment (a lease running out) take different batches, never the
        // same one twice.
        let rows = client
            .query(
                "DELETE FROM continuity_shared_observations WHERE seq IN (
                   SELECT seq FROM continuity_shared_observations
                   WHERE $1::smallint[] IS NULL OR shard = ANY($1)
                   ORDER BY seq LIMIT $2
                   FOR UPDATE SKIP LOCKED)
                 RETURNING seq, shard, shared_at, payload",
                &[&list, &row_limit(limit)],
            )
            .await
            .map_err(Fail::from)?;
        let mut taken = rows
            .iter()
            .map(|r| {
                let seq: i64 = column(r, 0)?;
                let what = || format!("shared observations {seq}");
                Ok((
                    seq,
                    SharedObservations {
                        shard: shard_from(BACKEND, what, i64::from(column::<i16>(r, 1)?))?,
                        shared_at: from_micros(BACKEND, what, column(r, 2)?)?,
                        payload: column(r, 3)?,
                    },
                ))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        // RETURNING gives no order.
        taken.sort_by_key(|(seq, _)| *seq);
        Ok(taken.into_iter().map(|(_, b)| b).collect())
    }
}

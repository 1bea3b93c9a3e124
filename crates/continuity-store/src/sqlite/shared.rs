//! Observations shared between instances: a batch per shard, inserted by
//! the instance that made them and deleted by the shard's owner as it
//! takes them.

use continuity_core::{cluster::ShardSet, store::SharedObservations};
use rusqlite::{TransactionBehavior, params};

use super::{
    BACKEND, SqliteStore,
    sql::{collect, decode_err},
};
use crate::{
    codec::{from_micros, micros, row_limit, shard_from, to_json},
    error::StoreError,
};

impl SqliteStore {
    pub(super) async fn insert_shared(
        &self,
        batches: &[SharedObservations],
    ) -> continuity_core::Result<()> {
        if batches.is_empty() {
            return Ok(());
        }
        let batches = batches.to_vec();
        self.run(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            {
                let mut insert = tx.prepare_cached(
                    "INSERT INTO continuity_shared_observations (shard, shared_at, payload)
                     VALUES (?1, ?2, ?3)",
                )?;
                for b in &batches {
                    insert.execute(params![i64::from(b.shard), micros(b.shared_at), b.payload])?;
                }
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    pub(super) async fn delete_shared(
        &self,
        shards: &ShardSet,
        limit: usize,
    ) -> continuity_core::Result<Vec<SharedObservations>> {
        if shards.is_empty() || limit == 0 {
            return Ok(Vec::new());
        }
        // Every shard: no filter (`?1` is then NULL).
        let list = if shards.is_all() {
            None
        } else {
            let list: Vec<u16> = shards.iter().collect();
            Some(to_json(BACKEND, || "shard list".into(), &list)?)
        };
        let limit = row_limit(limit);
        self.run(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let mut taken = {
                let mut stmt = tx.prepare_cached(
                    "DELETE FROM continuity_shared_observations WHERE seq IN (
                       SELECT seq FROM continuity_shared_observations
                       WHERE ?1 IS NULL OR shard IN (SELECT value FROM json_each(?1))
                       ORDER BY seq LIMIT ?2)
                     RETURNING seq, shard, shared_at, payload",
                )?;
                collect(stmt.query_map(params![list, limit], |r| {
                    let seq: i64 = r.get(0)?;
                    let shard: i64 = r.get(1)?;
                    let shared_at: i64 = r.get(2)?;
                    let payload: Vec<u8> = r.get(3)?;
                    let what = || format!("shared observations {seq}");
                    let batch = (|| -> Result<_, StoreError> {
                        Ok(SharedObservations {
                            shard: shard_from(BACKEND, what, shard)?,
                            shared_at: from_micros(BACKEND, what, shared_at)?,
                            payload,
                        })
                    })();
                    batch.map(|b| (seq, b)).map_err(decode_err)
                })?)?
            };
            tx.commit()?;
            // RETURNING gives no order.
            taken.sort_by_key(|(seq, _)| *seq);
            Ok(taken.into_iter().map(|(_, b)| b).collect())
        })
        .await
    }
}

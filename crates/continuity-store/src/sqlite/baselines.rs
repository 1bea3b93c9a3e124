//! Learned baselines: one row per tenant, direction and condition, replaced
//! by each save.

use continuity_core::{TenantId, store::BaselineRecord};
use rusqlite::{TransactionBehavior, params};

use super::{
    BACKEND, SqliteStore,
    sql::{collect, decode_err},
};
use crate::{
    codec::{baseline_direction, direction_code, from_micros, micros},
    error::StoreError,
};

impl SqliteStore {
    pub(super) async fn save_baseline_batch(
        &self,
        records: &[BaselineRecord],
    ) -> continuity_core::Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        let records = records.to_vec();
        self.run(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            {
                let mut upsert = tx.prepare_cached(
                    "INSERT INTO continuity_baselines (tenant, direction, condition, saved_at, snapshot)
                     VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT (tenant, direction, condition)
                     DO UPDATE SET saved_at = excluded.saved_at, snapshot = excluded.snapshot",
                )?;
                for r in &records {
                    upsert.execute(params![
                        r.tenant.as_str(),
                        direction_code(r.direction),
                        r.condition,
                        micros(r.saved_at),
                        r.snapshot
                    ])?;
                }
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    pub(super) async fn load_baseline_records(
        &self,
        tenant: &TenantId,
    ) -> continuity_core::Result<Vec<BaselineRecord>> {
        let tenant = tenant.clone();
        self.run(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT direction, condition, saved_at, snapshot FROM continuity_baselines WHERE tenant = ?1",
            )?;
            let rows = stmt.query_map([tenant.as_str()], |r| {
                let direction: i64 = r.get(0)?;
                let condition: String = r.get(1)?;
                let saved_at: i64 = r.get(2)?;
                let snapshot: Vec<u8> = r.get(3)?;
                let record = (|| -> Result<BaselineRecord, StoreError> {
                    let what = || format!("baseline {tenant}/{condition}");
                    Ok(BaselineRecord {
                        tenant: tenant.clone(),
                        direction: baseline_direction(BACKEND, &tenant, direction)?,
                        saved_at: from_micros(BACKEND, what, saved_at)?,
                        condition,
                        snapshot,
                    })
                })();
                record.map_err(decode_err)
            })?;
            collect(rows)
        })
        .await
    }
}

//! Learned baselines: one row per tenant, direction and condition, replaced
//! by each save (an update the table's fill factor keeps on its page).

use std::collections::HashSet;

use continuity_core::{TenantId, store::BaselineRecord};

use super::{BACKEND, PostgresStore, sql::column};
use crate::{
    codec::{Fail, baseline_direction, direction_code, from_micros, micros},
    error::StoreError,
};

impl PostgresStore {
    pub(super) async fn save_baseline_batch(
        &self,
        records: &[BaselineRecord],
    ) -> continuity_core::Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        // One statement may not touch a row twice: the batch's last record
        // of a tenant, direction and condition wins.
        let mut seen = HashSet::new();
        let (mut tenants, mut directions, mut conditions, mut saved_at, mut snapshots) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for r in records.iter().rev() {
            if !seen.insert((r.tenant.as_str(), r.direction, r.condition.as_str())) {
                continue;
            }
            tenants.push(r.tenant.as_str());
            directions.push(direction_code(r.direction));
            conditions.push(r.condition.as_str());
            saved_at.push(micros(r.saved_at));
            snapshots.push(r.snapshot.as_slice());
        }
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO continuity_baselines (tenant, direction, condition, saved_at, snapshot)
                 SELECT * FROM unnest($1::text[], $2::smallint[], $3::text[], $4::bigint[], $5::bytea[])
                 ON CONFLICT (tenant, direction, condition)
                 DO UPDATE SET saved_at = excluded.saved_at, snapshot = excluded.snapshot",
                &[&tenants, &directions, &conditions, &saved_at, &snapshots],
            )
            .await
            .map_err(Fail::from)?;
        Ok(())
    }

    pub(super) async fn load_baseline_records(
        &self,
        tenant: &TenantId,
    ) -> continuity_core::Result<Vec<BaselineRecord>> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "SELECT direction, condition, saved_at, snapshot FROM continuity_baselines WHERE tenant = $1",
            )
            .await
            .map_err(Fail::from)?;
        let rows = client
            .query(&stmt, &[&tenant.as_str()])
            .await
            .map_err(Fail::from)?;
        rows.iter()
            .map(|r| {
                let condition: String = column(r, 1)?;
                let what = || format!("baseline {tenant}/{condition}");
                Ok(BaselineRecord {
                    tenant: tenant.clone(),
                    direction: baseline_direction(
                        BACKEND,
                        tenant,
                        i64::from(column::<i16>(r, 0)?),
                    )?,
                    saved_at: from_micros(BACKEND, what, column(r, 2)?)?,
                    snapshot: column(r, 3)?,
                    condition,
                })
            })
            .collect::<Result<_, StoreError>>()
            .map_err(Into::into)
    }
}

//! Tenant state (compare-and-swap on its version) and the audit log
//! written in the same transaction.

use chrono::{DateTime, Utc};
use continuity_core::{
    TenantId,
    store::{AuditRecord, Commit, Versioned},
};

use super::{BACKEND, PostgresStore, sql::column};
use crate::{
    codec::{Fail, conflict, from_json, micros, row_limit, signed, to_json, unsigned},
    error::StoreError,
};

impl PostgresStore {
    pub(super) async fn load_tenant(
        &self,
        tenant: &TenantId,
    ) -> continuity_core::Result<Option<Versioned>> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached("SELECT version, state FROM continuity_tenants WHERE tenant = $1")
            .await
            .map_err(Fail::from)?;
        let Some(row) = client
            .query_opt(&stmt, &[&tenant.as_str()])
            .await
            .map_err(Fail::from)?
        else {
            return Ok(None);
        };
        let state: String = column(&row, 1)?;
        Ok(Some(Versioned {
            version: unsigned(BACKEND, "version", column(&row, 0)?)?,
            state: from_json(BACKEND, || format!("state of tenant {tenant}"), &state)?,
        }))
    }

    pub(super) async fn commit_tenant(
        &self,
        tenant: &TenantId,
        expected: u64,
        commit: Commit,
    ) -> continuity_core::Result<u64> {
        let state = to_json(
            BACKEND,
            || format!("state of tenant {tenant}"),
            &commit.state,
        )?;
        let audit = commit
            .audit
            .iter()
            .map(|e| to_json(BACKEND, || format!("audit entry of {tenant}"), e))
            .collect::<Result<Vec<_>, _>>()?;
        let audit_at: Vec<i64> = commit.audit.iter().map(|e| micros(e.at)).collect();
        let mut outbox: (Vec<&str>, Vec<String>, Vec<String>) = Default::default();
        for item in &commit.outbox {
            outbox.0.push(item.tenant().as_str());
            outbox.1.push(item.order_key());
            outbox.2.push(to_json(
                BACKEND,
                || format!("outbox item of {tenant}"),
                item,
            )?);
        }
        let version = expected.checked_add(1).ok_or_else(|| {
            StoreError::Config(format!(
                "version of tenant {tenant} cannot grow past {expected}"
            ))
        })?;
        let (expected_s, version_s) = (
            signed(BACKEND, "version", expected)?,
            signed(BACKEND, "version", version)?,
        );
        let run = async {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            let changed = if expected == 0 {
                tx.execute(
                    "INSERT INTO continuity_tenants (tenant, version, state) VALUES ($1, 1, $2)
                     ON CONFLICT (tenant) DO NOTHING",
                    &[&tenant.as_str(), &state],
                )
                .await?
            } else {
                tx.execute(
                    "UPDATE continuity_tenants SET version = $3, state = $2
                     WHERE tenant = $1 AND version = $4",
                    &[&tenant.as_str(), &state, &version_s, &expected_s],
                )
                .await?
            };
            if changed == 0 {
                let actual = tx
                    .query_opt(
                        "SELECT version FROM continuity_tenants WHERE tenant = $1",
                        &[&tenant.as_str()],
                    )
                    .await?
                    .map_or(Ok(0), |r| column::<i64>(&r, 0))?;
                return Err(conflict(
                    tenant,
                    expected,
                    unsigned(BACKEND, "version", actual)?,
                ));
            }
            if !audit.is_empty() {
                // The tenant row is locked by the update above: no other
                // commit of this tenant can take the same sequence numbers.
                tx.execute(
                    "INSERT INTO continuity_audit (tenant, seq, entry, at)
                     SELECT $1, last.seq + e.ord, e.entry, e.at
                     FROM (SELECT COALESCE(MAX(seq), 0) AS seq FROM continuity_audit WHERE tenant = $1) AS last,
                          unnest($2::text[], $3::bigint[]) WITH ORDINALITY AS e(entry, at, ord)",
                    &[&tenant.as_str(), &audit, &audit_at],
                )
                .await?;
            }
            if !outbox.0.is_empty() {
                let created = micros(commit.at);
                let never = micros(DateTime::<Utc>::MIN_UTC);
                tx.execute(
                    "INSERT INTO continuity_outbox (tenant, order_key, item, created_at, next_attempt_at, due_at)
                     SELECT u.t, u.k, u.i, $4, $5, $5
                     FROM unnest($1::text[], $2::text[], $3::text[]) WITH ORDINALITY AS u(t, k, i, ord)
                     ORDER BY u.ord",
                    &[&outbox.0, &outbox.1, &outbox.2, &created, &never],
                )
                .await?;
            }
            tx.commit().await?;
            Ok::<_, Fail>(version)
        };
        Ok(run.await?)
    }

    /// Records with `seq > after`, oldest first, or with `newest_first` the
    /// latest ones (the primary key serves both directions).
    pub(super) async fn audit_records(
        &self,
        tenant: &TenantId,
        after: u64,
        limit: usize,
        newest_first: bool,
    ) -> continuity_core::Result<Vec<AuditRecord>> {
        let client = self.client().await?;
        let after = i64::try_from(after).unwrap_or(i64::MAX);
        let rows = client
            .query(
                if newest_first {
                    "SELECT seq, entry FROM continuity_audit WHERE tenant = $1 AND seq > $2
                     ORDER BY seq DESC LIMIT $3"
                } else {
                    "SELECT seq, entry FROM continuity_audit WHERE tenant = $1 AND seq > $2
                     ORDER BY seq LIMIT $3"
                },
                &[&tenant.as_str(), &after, &row_limit(limit)],
            )
            .await
            .map_err(Fail::from)?;
        rows.iter()
            .map(|r| {
                let seq: i64 = column(r, 0)?;
                let entry: String = column(r, 1)?;
                Ok(AuditRecord {
                    seq: unsigned(BACKEND, "audit seq", seq)?,
                    tenant: tenant.clone(),
                    entry: from_json(BACKEND, || format!("audit entry {tenant}/{seq}"), &entry)?,
                })
            })
            .collect::<Result<_, StoreError>>()
            .map_err(Into::into)
    }
}

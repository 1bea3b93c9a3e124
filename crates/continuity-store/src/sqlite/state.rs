//! Tenant state (compare-and-swap on its version) and the audit log
//! written in the same transaction.

use chrono::{DateTime, Utc};
use continuity_core::{
    TenantId,
    store::{AuditRecord, Commit, Versioned},
};
use rusqlite::{OptionalExtension, TransactionBehavior, params};

use super::{
    BACKEND, SqliteStore,
    sql::{collect, decode_err},
};
use crate::{
    codec::{conflict, from_json, micros, row_limit, signed, to_json, unsigned},
    error::StoreError,
};

impl SqliteStore {
    pub(super) async fn load_tenant(
        &self,
        tenant: &TenantId,
    ) -> continuity_core::Result<Option<Versioned>> {
        let tenant = tenant.clone();
        self.run(move |c| {
            let row: Option<(i64, String)> = c
                .prepare_cached("SELECT version, state FROM continuity_tenants WHERE tenant = ?1")?
                .query_row([tenant.as_str()], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            let Some((version, state)) = row else {
                return Ok(None);
            };
            Ok(Some(Versioned {
                version: unsigned(BACKEND, "version", version)?,
                state: from_json(BACKEND, || format!("state of tenant {tenant}"), &state)?,
            }))
        })
        .await
    }

    pub(super) async fn commit_tenant(
        &self,
        tenant: &TenantId,
        expected: u64,
        commit: Commit,
    ) -> continuity_core::Result<u64> {
        let tenant = tenant.clone();
        self.run(move |c| {
            let state = to_json(BACKEND, || format!("state of tenant {tenant}"), &commit.state)?;
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let actual: Option<i64> = tx
                .prepare_cached("SELECT version FROM continuity_tenants WHERE tenant = ?1")?
                .query_row([tenant.as_str()], |r| r.get(0))
                .optional()?;
            let actual = unsigned(BACKEND, "version", actual.unwrap_or(0))?;
            if actual != expected {
                return Err(conflict(&tenant, expected, actual));
            }
            let version = expected.checked_add(1).ok_or_else(|| StoreError::Config(format!(
                "version of tenant {tenant} cannot grow past {expected}"
            )))?;
            let v = signed(BACKEND, "version", version)?;
            if expected == 0 {
                tx.prepare_cached(
                    "INSERT INTO continuity_tenants (tenant, version, state) VALUES (?1, ?2, ?3)",
                )?
                .execute(params![tenant.as_str(), v, state])?;
            } else {
                tx.prepare_cached(
                    "UPDATE continuity_tenants SET version = ?2, state = ?3 WHERE tenant = ?1",
                )?
                .execute(params![tenant.as_str(), v, state])?;
            }
            if !commit.audit.is_empty() {
                let last: i64 = tx
                    .prepare_cached(
                        "SELECT COALESCE(MAX(seq), 0) FROM continuity_audit WHERE tenant = ?1",
                    )?
                    .query_row([tenant.as_str()], |r| r.get(0))?;
                let mut insert = tx.prepare_cached(
                    "INSERT INTO continuity_audit (tenant, seq, entry, at) VALUES (?1, ?2, ?3, ?4)",
                )?;
                for (i, entry) in commit.audit.iter().enumerate() {
                    let json = to_json(BACKEND, || format!("audit entry of {tenant}"), entry)?;
                    let seq = last.saturating_add(i64::try_from(i).unwrap_or(i64::MAX)) + 1;
                    insert.execute(params![tenant.as_str(), seq, json, micros(entry.at)])?;
                }
            }
            if !commit.outbox.is_empty() {
                let created = micros(commit.at);
                let never = micros(DateTime::<Utc>::MIN_UTC);
                let mut insert = tx.prepare_cached(
                    "INSERT INTO continuity_outbox (tenant, order_key, item, created_at, next_attempt_at, due_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
                )?;
                for item in &commit.outbox {
                    let json = to_json(BACKEND, || format!("outbox item of {tenant}"), item)?;
                    insert.execute(params![
                        item.tenant().as_str(),
                        item.order_key(),
                        json,
                        created,
                        never
                    ])?;
                }
            }
            tx.commit()?;
            Ok(version)
        })
        .await
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
        let tenant = tenant.clone();
        self.run(move |c| {
            let after = i64::try_from(after).unwrap_or(i64::MAX);
            let mut stmt = c.prepare_cached(if newest_first {
                "SELECT seq, entry FROM continuity_audit WHERE tenant = ?1 AND seq > ?2 ORDER BY seq DESC LIMIT ?3"
            } else {
                "SELECT seq, entry FROM continuity_audit WHERE tenant = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3"
            })?;
            let rows = stmt.query_map(params![tenant.as_str(), after, row_limit(limit)], |r| {
                let seq: i64 = r.get(0)?;
                let entry: String = r.get(1)?;
                let record = (|| -> Result<AuditRecord, StoreError> {
                    Ok(AuditRecord {
                        seq: unsigned(BACKEND, "audit seq", seq)?,
                        tenant: tenant.clone(),
                        entry: from_json(BACKEND, || format!("audit entry {tenant}/{seq}"), &entry)?,
                    })
                })();
                record.map_err(decode_err)
            })?;
            collect(rows)
        })
        .await
    }
}

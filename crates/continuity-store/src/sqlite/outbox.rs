//! The outbox: work queued by commits, claimed under leases in order per key.

use std::time::Duration;

use chrono::{DateTime, Utc};
use continuity_core::store::{OutboxCounts, OutboxEntry, OutboxResult};
use rusqlite::{OptionalExtension, Row, TransactionBehavior, params};

use super::{
    BACKEND, SqliteStore,
    sql::{collect, decode_err, next_lease, sql_error, undecode},
};
use crate::{
    codec::{from_json, from_micros, lease_end, lease_lost, micros, row_limit, signed, unsigned},
    error::StoreError,
};

const OUTBOX_COLUMNS: &str =
    "id, item, created_at, attempts, next_attempt_at, lease_id, last_error";

fn outbox_row(r: &Row<'_>) -> rusqlite::Result<OutboxEntry> {
    let id: i64 = r.get(0)?;
    let what = || format!("outbox entry {id}");
    let item: String = r.get(1)?;
    let entry = (|| -> Result<OutboxEntry, StoreError> {
        Ok(OutboxEntry {
            id: unsigned(BACKEND, "outbox id", id)?,
            item: from_json(BACKEND, what, &item)?,
            created_at: from_micros(BACKEND, what, r.get(2).map_err(sql_error)?)?,
            attempts: u32::try_from(r.get::<_, i64>(3).map_err(sql_error)?).unwrap_or(u32::MAX),
            next_attempt_at: from_micros(BACKEND, what, r.get(4).map_err(sql_error)?)?,
            lease_id: unsigned(BACKEND, "lease id", r.get(5).map_err(sql_error)?)?,
            last_error: r.get(6).map_err(sql_error)?,
        })
    })();
    entry.map_err(decode_err)
}

impl SqliteStore {
    /// Outbox entries given up on (permanent failures, or withheld), oldest first.
    pub async fn dead_letters(&self, limit: usize) -> continuity_core::Result<Vec<OutboxEntry>> {
        self.run(move |c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {OUTBOX_COLUMNS} FROM continuity_outbox WHERE dead = 1 ORDER BY id LIMIT ?1"
            ))?;
            let rows = stmt.query_map([row_limit(limit)], outbox_row)?;
            collect(rows)
        })
        .await
    }

    pub(super) async fn claim_outbox_entries(
        &self,
        now: DateTime<Utc>,
        lease: Duration,
        limit: usize,
    ) -> continuity_core::Result<Vec<OutboxEntry>> {
        self.run(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let ids: Vec<i64> = {
                let mut stmt = tx.prepare_cached(
                    "SELECT o.id FROM continuity_outbox o
                     WHERE o.dead = 0 AND o.due_at <= ?1
                       AND NOT EXISTS (SELECT 1 FROM continuity_outbox p
                                       WHERE p.order_key = o.order_key AND p.id < o.id AND p.dead = 0)
                     ORDER BY o.id LIMIT ?2",
                )?;
                let rows = stmt.query_map(params![micros(now), row_limit(limit)], |r| r.get(0))?;
                collect(rows)?
            };
            let until = lease_end(now, lease);
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                let lease_id = signed(BACKEND, "lease id", next_lease(&tx)?)?;
                let entry = tx
                    .prepare_cached(&format!(
                        "UPDATE continuity_outbox
                         SET lease_id = ?2, lease_until = ?3, due_at = ?3, attempts = attempts + 1
                         WHERE id = ?1 RETURNING {OUTBOX_COLUMNS}"
                    ))?
                    .query_row(params![id, lease_id, until], outbox_row)
                    .map_err(undecode)?;
                out.push(entry);
            }
            tx.commit()?;
            Ok(out)
        })
        .await
    }

    pub(super) async fn complete_outbox_entry(
        &self,
        id: u64,
        lease_id: u64,
        result: OutboxResult,
    ) -> continuity_core::Result<()> {
        self.run(move |c| {
            let sid = signed(BACKEND, "outbox id", id)?;
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let found: Option<(i64, String)> = tx
                .prepare_cached(
                    "SELECT lease_id, tenant FROM continuity_outbox WHERE id = ?1 AND dead = 0",
                )?
                .query_row([sid], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            let Some((held, tenant)) = found else {
                return Err(lease_lost(format!("outbox entry {id} (already completed)")));
            };
            if lease_id == 0 || unsigned(BACKEND, "lease id", held)? != lease_id {
                return Err(lease_lost(format!("outbox entry {id} of tenant {tenant}")));
            }
            match result {
                OutboxResult::Done => {
                    tx.prepare_cached("DELETE FROM continuity_outbox WHERE id = ?1")?
                        .execute([sid])?;
                }
                OutboxResult::Retry { at, error } => {
                    tx.prepare_cached(
                        "UPDATE continuity_outbox SET next_attempt_at = ?2, due_at = ?2, last_error = ?3,
                           lease_id = 0, lease_until = NULL WHERE id = ?1",
                    )?
                    .execute(params![sid, micros(at), error])?;
                }
                OutboxResult::GiveUp { error } => {
                    tx.prepare_cached(
                        "UPDATE continuity_outbox SET dead = 1, last_error = ?2, lease_id = 0,
                           lease_until = NULL WHERE id = ?1",
                    )?
                    .execute(params![sid, error])?;
                }
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    pub(super) async fn pending_outbox_entries(
        &self,
        limit: usize,
    ) -> continuity_core::Result<Vec<OutboxEntry>> {
        self.run(move |c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {OUTBOX_COLUMNS} FROM continuity_outbox WHERE dead = 0 ORDER BY id LIMIT ?1"
            ))?;
            let rows = stmt.query_map([row_limit(limit)], outbox_row)?;
            collect(rows)
        })
        .await
    }

    /// The backlog from the partial index of live entries; the dead letters
    /// as the rest of the table (SQLite counts a whole table from its
    /// smallest index, with no row read).
    pub(super) async fn count_outbox(&self) -> continuity_core::Result<OutboxCounts> {
        self.run(move |c| {
            let (live, all): (i64, i64) = c
                .prepare_cached(
                    "SELECT (SELECT COUNT(*) FROM continuity_outbox WHERE dead = 0),
                            (SELECT COUNT(*) FROM continuity_outbox)",
                )?
                .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            Ok(OutboxCounts {
                backlog: unsigned(BACKEND, "outbox count", live)?,
                dead_letters: unsigned(BACKEND, "outbox count", all.saturating_sub(live))?,
            })
        })
        .await
    }

    pub(super) async fn ping_database(&self) -> continuity_core::Result<()> {
        self.run(move |c| {
            c.prepare_cached("SELECT 1")?.query_row([], |_| Ok(()))?;
            Ok(())
        })
        .await
    }
}

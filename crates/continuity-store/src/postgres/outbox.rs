//! The outbox: work queued by commits, claimed under leases in order per key.

use std::time::Duration;

use chrono::{DateTime, Utc};
use continuity_core::store::{OutboxCounts, OutboxEntry, OutboxResult};
use tokio_postgres::Row;

use super::{BACKEND, PostgresStore, sql::column};
use crate::{
    codec::{
        Fail, from_json, from_micros, lease_end, lease_lost, micros, row_limit, signed, unsigned,
    },
    error::StoreError,
};

const OUTBOX_COLUMNS: &str =
    "id, item, created_at, attempts, next_attempt_at, lease_id, last_error";

fn outbox_row(r: &Row) -> Result<OutboxEntry, StoreError> {
    let id: i64 = column(r, 0)?;
    let what = || format!("outbox entry {id}");
    let item: String = column(r, 1)?;
    Ok(OutboxEntry {
        id: unsigned(BACKEND, "outbox id", id)?,
        item: from_json(BACKEND, what, &item)?,
        created_at: from_micros(BACKEND, what, column(r, 2)?)?,
        attempts: u32::try_from(column::<i32>(r, 3)?).unwrap_or(0),
        next_attempt_at: from_micros(BACKEND, what, column(r, 4)?)?,
        lease_id: unsigned(BACKEND, "lease id", column(r, 5)?)?,
        last_error: column(r, 6)?,
    })
}

impl PostgresStore {
    /// Outbox entries given up on (permanent failures, or withheld), oldest first.
    pub async fn dead_letters(&self, limit: usize) -> continuity_core::Result<Vec<OutboxEntry>> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT {OUTBOX_COLUMNS} FROM continuity_outbox WHERE dead ORDER BY id LIMIT $1"
                ),
                &[&row_limit(limit)],
            )
            .await
            .map_err(Fail::from)?;
        Ok(rows.iter().map(outbox_row).collect::<Result<_, _>>()?)
    }

    pub(super) async fn claim_outbox_entries(
        &self,
        now: DateTime<Utc>,
        lease: Duration,
        limit: usize,
    ) -> continuity_core::Result<Vec<OutboxEntry>> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!(
                    "WITH due AS (
                       SELECT o.id FROM continuity_outbox o
                       WHERE NOT o.dead AND o.due_at <= $1
                         AND NOT EXISTS (SELECT 1 FROM continuity_outbox p
                                         WHERE p.order_key = o.order_key AND p.id < o.id AND NOT p.dead)
                       ORDER BY o.id LIMIT $2
                       FOR UPDATE SKIP LOCKED)
                     UPDATE continuity_outbox o
                     SET lease_id = nextval('continuity_lease_seq'), lease_until = $3, due_at = $3,
                         attempts = o.attempts + 1
                     FROM due WHERE o.id = due.id
                     RETURNING {}",
                    OUTBOX_COLUMNS
                        .split(", ")
                        .map(|c| format!("o.{c}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                &[&micros(now), &row_limit(limit), &lease_end(now, lease)],
            )
            .await
            .map_err(Fail::from)?;
        let mut out = rows.iter().map(outbox_row).collect::<Result<Vec<_>, _>>()?;
        out.sort_by_key(|e| e.id);
        Ok(out)
    }

    pub(super) async fn complete_outbox_entry(
        &self,
        id: u64,
        lease_id: u64,
        result: OutboxResult,
    ) -> continuity_core::Result<()> {
        let sid = signed(BACKEND, "outbox id", id)?;
        let lease = signed(BACKEND, "lease id", lease_id)?;
        let client = self.client().await?;
        let changed = match &result {
            OutboxResult::Done => client
                .execute(
                    "DELETE FROM continuity_outbox WHERE id = $1 AND lease_id = $2 AND $2 <> 0 AND NOT dead",
                    &[&sid, &lease],
                )
                .await,
            OutboxResult::Retry { at, error } => client
                .execute(
                    "UPDATE continuity_outbox SET next_attempt_at = $3, due_at = $3, last_error = $4,
                       lease_id = 0, lease_until = NULL
                     WHERE id = $1 AND lease_id = $2 AND $2 <> 0 AND NOT dead",
                    &[&sid, &lease, &micros(*at), error],
                )
                .await,
            OutboxResult::GiveUp { error } => client
                .execute(
                    "UPDATE continuity_outbox SET dead = TRUE, last_error = $3, lease_id = 0, lease_until = NULL
                     WHERE id = $1 AND lease_id = $2 AND $2 <> 0 AND NOT dead",
                    &[&sid, &lease, error],
                )
                .await,
        }
        .map_err(Fail::from)?;
        if changed == 1 {
            return Ok(());
        }
        let holder = client
            .query_opt(
                "SELECT tenant FROM continuity_outbox WHERE id = $1 AND NOT dead",
                &[&sid],
            )
            .await
            .map_err(Fail::from)?;
        Err(match holder {
            None => lease_lost(format!("outbox entry {id} (already completed)")),
            Some(r) => lease_lost(format!(
                "outbox entry {id} of tenant {}",
                column::<String>(&r, 0)?
            )),
        }
        .into())
    }

    pub(super) async fn pending_outbox_entries(
        &self,
        limit: usize,
    ) -> continuity_core::Result<Vec<OutboxEntry>> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT {OUTBOX_COLUMNS} FROM continuity_outbox WHERE NOT dead ORDER BY id LIMIT $1"
                ),
                &[&row_limit(limit)],
            )
            .await
            .map_err(Fail::from)?;
        Ok(rows.iter().map(outbox_row).collect::<Result<_, _>>()?)
    }

    /// Both figures in one statement, one pass over the table.
    pub(super) async fn count_outbox(&self) -> continuity_core::Result<OutboxCounts> {
        let client = self.client().await?;
        let row = client
            .query_one(
                "SELECT count(*) FILTER (WHERE NOT dead), count(*) FILTER (WHERE dead)
                 FROM continuity_outbox",
                &[],
            )
            .await
            .map_err(Fail::from)?;
        Ok(OutboxCounts {
            backlog: unsigned(BACKEND, "outbox count", column(&row, 0)?)?,
            dead_letters: unsigned(BACKEND, "outbox count", column(&row, 1)?)?,
        })
    }

    pub(super) async fn ping_database(&self) -> continuity_core::Result<()> {
        let client = self.client().await?;
        client.simple_query("SELECT 1").await.map_err(Fail::from)?;
        Ok(())
    }
}

//! Pending probes: stored when sent, claimed under leases by shard,
//! settled (rescheduled or removed) by the lease holder.
//!
//! A probe is due when `due_at` has come and its lease (`lease_until`), if
//! any, has run out. `due_at` moves only when the probe is put or
//! rescheduled; a claim writes the lease alone (see `claim_due_probes`).

use std::{collections::HashSet, time::Duration};

use chrono::{DateTime, Utc};
use continuity_core::{
    TenantId,
    cluster::{ShardSet, shard_of},
    probe::ProbeTicket,
    store::{PendingProbe, ProbeSettlement},
};
use tokio_postgres::{Row, Transaction};

use super::{BACKEND, PostgresStore, sql::column};
use crate::{
    codec::{
        Fail, direction_code, direction_from, every_one_failed, from_micros, last_of_each,
        lease_end, lease_lost, micros, row_limit, signed, unsigned,
    },
    error::StoreError,
};

const PROBE_COLUMNS: &str = "p.tenant, p.probe_id, p.direction, p.sent_at, p.deadline, p.next_check_at, p.ticket, p.lease_id";

fn probe_row(r: &Row) -> Result<PendingProbe, StoreError> {
    let tenant: String = column(r, 0)?;
    let probe_id: String = column(r, 1)?;
    let what = || format!("probe {tenant}/{probe_id}");
    Ok(PendingProbe {
        tenant: TenantId::new(tenant.as_str()).map_err(|e| StoreError::Decode {
            backend: BACKEND,
            what: what(),
            message: e.to_string(),
        })?,
        direction: direction_from(BACKEND, i64::from(column::<i16>(r, 2)?))?,
        probe_id: probe_id.as_str().into(),
        sent_at: from_micros(BACKEND, what, column(r, 3)?)?,
        deadline: from_micros(BACKEND, what, column(r, 4)?)?,
        next_check_at: from_micros(BACKEND, what, column(r, 5)?)?,
        ticket: ProbeTicket::new(column::<String>(r, 6)?),
        lease_id: unsigned(BACKEND, "lease id", column(r, 7)?)?,
        // Not stored: it indexes the memory of the monitor that sent it.
        tenant_hint: 0,
    })
}

impl PostgresStore {
    async fn settle_all(&self, settlements: &[ProbeSettlement]) -> Result<Vec<bool>, Fail> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        // A settlement finds its row by primary key. The planner, going by
        // the statistics of a table that churns (stale without autovacuum's
        // ANALYZE), would hash a sequential scan of the whole heap instead,
        // dead space and all: a settle then grew with every probe ever put
        // (4 ms for 500 rows of a 2,000-row table, and rising).
        tx.batch_execute("SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off")
            .await?;
        let mut settled = vec![false; settlements.len()];
        let held = Self::settle_held(&tx, settlements).await?;
        for i in held.done {
            settled[i] = true;
        }
        let mut removals: (Vec<&str>, Vec<&str>, Vec<i64>) = Default::default();
        let mut moves: (Vec<&str>, Vec<&str>, Vec<i64>, Vec<i64>) = Default::default();
        for (s, _) in settlements.iter().zip(&settled).filter(|(_, done)| !**done) {
            let lease = signed(BACKEND, "lease id", s.lease_id)?;
            match s.next_check_at {
                None => {
                    removals.0.push(s.tenant.as_str());
                    removals.1.push(&s.probe_id);
                    removals.2.push(lease);
                }
                Some(at) => {
                    moves.0.push(s.tenant.as_str());
                    moves.1.push(&s.probe_id);
                    moves.2.push(lease);
                    moves.3.push(micros(at));
                }
            }
        }
        let mut done: HashSet<(String, String)> = HashSet::new();
        if !removals.0.is_empty() {
            let rows = tx
                .query(
                    "DELETE FROM continuity_probes p
                     USING unnest($1::text[], $2::text[], $3::bigint[]) AS s(t, id, l)
                     WHERE p.tenant = s.t AND p.probe_id = s.id AND p.lease_id = s.l AND s.l <> 0
                     RETURNING p.tenant, p.probe_id",
                    &[&removals.0, &removals.1, &removals.2],
                )
                .await?;
            for r in rows {
                done.insert((column(&r, 0)?, column(&r, 1)?));
            }
        }
        if !moves.0.is_empty() {
            let rows = tx
                .query(
                    "UPDATE continuity_probes p
                     SET next_check_at = s.at, due_at = s.at, lease_id = 0, lease_until = NULL
                     FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[]) AS s(t, id, l, at)
                     WHERE p.tenant = s.t AND p.probe_id = s.id AND p.lease_id = s.l AND s.l <> 0
                     RETURNING p.tenant, p.probe_id",
                    &[&moves.0, &moves.1, &moves.2, &moves.3],
                )
                .await?;
            for r in rows {
                done.insert((column(&r, 0)?, column(&r, 1)?));
            }
        }
        // Held probes to check again become rows of their own.
        Self::insert_rows(&tx, &held.again, true).await?;
        tx.commit().await?;
        Ok(settlements
            .iter()
            .zip(settled)
            .map(|(s, held)| held || done.contains(&(s.tenant.to_string(), s.probe_id.to_string())))
            .collect())
    }

    /// Inserts unleased probes as rows, due at their next check, inside
    /// `tx`; a row with the same key is replaced when `replace`, else kept.
    pub(super) async fn insert_rows(
        tx: &Transaction<'_>,
        probes: &[PendingProbe],
        replace: bool,
    ) -> Result<(), Fail> {
        if probes.is_empty() {
            return Ok(());
        }
        let probes = last_of_each(probes.to_vec());
        let tenants: Vec<&str> = probes.iter().map(|p| p.tenant.as_str()).collect();
        let ids: Vec<&str> = probes.iter().map(|p| &*p.probe_id).collect();
        let directions: Vec<i16> = probes.iter().map(|p| direction_code(p.direction)).collect();
        let sent: Vec<i64> = probes.iter().map(|p| micros(p.sent_at)).collect();
        let deadlines: Vec<i64> = probes.iter().map(|p| micros(p.deadline)).collect();
        let checks: Vec<i64> = probes.iter().map(|p| micros(p.next_check_at)).collect();
        let tickets: Vec<&str> = probes.iter().map(|p| p.ticket.as_str()).collect();
        let shards: Vec<i32> = probes
            .iter()
            .map(|p| i32::from(shard_of(&p.tenant)))
            .collect();
        let on_conflict = if replace {
            "DO UPDATE SET
               direction = excluded.direction, sent_at = excluded.sent_at, deadline = excluded.deadline,
               next_check_at = excluded.next_check_at, ticket = excluded.ticket,
               lease_id = 0, lease_until = NULL, due_at = excluded.due_at"
        } else {
            "DO NOTHING"
        };
        tx.execute(
            &format!(
                "INSERT INTO continuity_probes
                   (tenant, probe_id, direction, sent_at, deadline, next_check_at, ticket, lease_id, lease_until, due_at, shard)
                 SELECT t, id, d, s, dl, c, tk, 0, NULL, c, sh
                 FROM unnest($1::text[], $2::text[], $3::smallint[], $4::bigint[], $5::bigint[], $6::bigint[], $7::text[], $8::int[])
                   AS u(t, id, d, s, dl, c, tk, sh)
                 ON CONFLICT (tenant, probe_id) {on_conflict}"
            ),
            &[&tenants, &ids, &directions, &sent, &deadlines, &checks, &tickets, &shards],
        )
        .await?;
        Ok(())
    }

    /// Stores `probes`: with `lease`, as one batch leased to the caller
    /// until the last one's first check plus `lease` (`held.rs`), and
    /// hands them back with its lease id; without, as a row each, leaving
    /// `probes` empty.
    pub(super) async fn put_probe_batch(
        &self,
        probes: &mut Vec<PendingProbe>,
        lease: Option<Duration>,
    ) -> continuity_core::Result<()> {
        if probes.is_empty() {
            return Ok(());
        }
        // One statement may not touch a row twice: the last put of a probe
        // id wins, and is the one handed back under the lease.
        let batch = last_of_each(std::mem::take(probes));
        let stored = match lease {
            Some(lease) => self.put_held(&batch, lease).await,
            None => self.insert_probes(&batch).await,
        };
        match stored {
            Ok(0) => Ok(()),
            Ok(lease_id) => {
                *probes = batch;
                for p in probes.iter_mut() {
                    p.lease_id = lease_id;
                }
                Ok(())
            }
            Err(e) => {
                *probes = batch;
                Err(e)
            }
        }
    }

    /// Inserts `batch` (no probe id twice) unleased, in one transaction;
    /// returns 0, the lease id of none.
    async fn insert_probes(&self, batch: &[PendingProbe]) -> continuity_core::Result<u64> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(Fail::from)?;
        Self::insert_rows(&tx, batch, true).await?;
        tx.commit().await.map_err(Fail::from)?;
        Ok(0)
    }

    pub(super) async fn claim_due_probes(
        &self,
        now: DateTime<Utc>,
        lease: Duration,
        limit: usize,
        shards: &ShardSet,
    ) -> continuity_core::Result<Vec<PendingProbe>> {
        // Batches whose holder did not settle them in time (it died, or
        // hangs) become rows first, so that this claim can take them.
        self.explode_expired(micros(now)).await?;
        let client = self.client().await?;
        // Every shard: no filter (`$4` is then NULL).
        let list: Option<Vec<i32>> =
            (!shards.is_all()).then(|| shards.iter().map(i32::from).collect());
        // The lease is written only to columns no index holds, and the
        // filter reads it, so that a claim (one a check, the commonest
        // write here) can be a HOT update: no index entries, and the old
        // version pruned on its page instead of waiting for VACUUM.
        // Moving `due_at` to the lease's end instead would make every claim
        // a new entry in three indexes. A leased probe stays in the due
        // range, but the scan steps over at most the probes under a live
        // lease (a settled probe leaves the range).
        let rows = client
            .query(
                &format!(
                    "WITH due AS (
                       SELECT tenant, probe_id FROM continuity_probes
                       WHERE due_at <= $1 AND (lease_until IS NULL OR lease_until <= $1)
                         AND ($4::int[] IS NULL OR shard = ANY($4))
                       ORDER BY due_at LIMIT $2
                       FOR UPDATE SKIP LOCKED)
                     UPDATE continuity_probes p
                     SET lease_id = nextval('continuity_lease_seq'), lease_until = $3
                     FROM due WHERE p.tenant = due.tenant AND p.probe_id = due.probe_id
                     RETURNING {PROBE_COLUMNS}, p.due_at"
                ),
                &[
                    &micros(now),
                    &row_limit(limit),
                    &lease_end(now, lease),
                    &list,
                ],
            )
            .await
            .map_err(Fail::from)?;
        let mut out = rows
            .iter()
            .map(|r| Ok((column::<i64>(r, 8)?, probe_row(r)?)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        out.sort_by_key(|(due, _)| *due);
        Ok(out.into_iter().map(|(_, p)| p).collect())
    }

    pub(super) async fn settle_probe_batch(
        &self,
        settlements: &[ProbeSettlement],
    ) -> Vec<continuity_core::Result<()>> {
        match self.settle_all(settlements).await {
            Ok(done) => settlements
                .iter()
                .zip(done)
                .map(|(s, ok)| {
                    if ok {
                        Ok(())
                    } else {
                        Err(lease_lost(format!("probe {}/{}", s.tenant, s.probe_id)).into())
                    }
                })
                .collect(),
            Err(e) => every_one_failed(BACKEND, e.into(), settlements.len()),
        }
    }
}

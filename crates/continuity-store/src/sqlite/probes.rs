//! Pending probes: stored when sent, claimed under leases by shard,
//! settled (rescheduled or removed) by the lease holder.

use std::time::Duration;

use chrono::{DateTime, Utc};
use continuity_core::{
    TenantId,
    cluster::{ShardSet, shard_of},
    store::{PendingProbe, ProbeSettlement},
};
use rusqlite::{Row, TransactionBehavior, params};

use super::{
    BACKEND, SqliteStore, corrupt_file,
    sql::{collect, decode_err, next_lease, sql_error},
};
use crate::{
    codec::{
        Fail, direction_code, direction_from, every_one_failed, from_micros, last_of_each,
        lease_end, lease_lost, micros, row_limit, signed, to_json, unsigned,
    },
    error::StoreError,
};

const PROBE_COLUMNS: &str =
    "tenant, probe_id, direction, sent_at, deadline, next_check_at, ticket, lease_id";

fn probe_row(r: &Row<'_>) -> rusqlite::Result<PendingProbe> {
    let tenant: String = r.get(0)?;
    let probe_id: String = r.get(1)?;
    let what = || format!("probe {tenant}/{probe_id}");
    let probe = (|| -> Result<PendingProbe, StoreError> {
        Ok(PendingProbe {
            tenant: TenantId::new(tenant.as_str()).map_err(|e| StoreError::Decode {
                backend: BACKEND,
                what: what(),
                message: e.to_string(),
            })?,
            direction: direction_from(BACKEND, r.get(2).map_err(sql_error)?)?,
            probe_id: probe_id.as_str().into(),
            sent_at: from_micros(BACKEND, what, r.get(3).map_err(sql_error)?)?,
            deadline: from_micros(BACKEND, what, r.get(4).map_err(sql_error)?)?,
            next_check_at: from_micros(BACKEND, what, r.get(5).map_err(sql_error)?)?,
            ticket: continuity_core::probe::ProbeTicket::new(
                r.get::<_, String>(6).map_err(sql_error)?,
            ),
            lease_id: unsigned(BACKEND, "lease id", r.get(7).map_err(sql_error)?)?,
            // Not stored: it indexes the memory of the monitor that sent it.
            tenant_hint: 0,
        })
    })();
    probe.map_err(decode_err)
}

/// Stores `p`, leased as `lease` says (`None`: unleased, to be claimed).
fn put_probe(
    tx: &rusqlite::Transaction<'_>,
    p: &PendingProbe,
    lease: Option<(i64, Duration)>,
) -> Result<(), Fail> {
    let mut stmt = tx.prepare_cached(
        "INSERT INTO continuity_probes
           (tenant, probe_id, direction, sent_at, deadline, next_check_at, ticket, lease_id, lease_until, due_at, shard)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?9, ?10, ?6, ?8)
         ON CONFLICT (tenant, probe_id) DO UPDATE SET
           direction = excluded.direction, sent_at = excluded.sent_at, deadline = excluded.deadline,
           next_check_at = excluded.next_check_at, ticket = excluded.ticket,
           lease_id = excluded.lease_id, lease_until = excluded.lease_until, due_at = excluded.due_at",
    )?;
    stmt.execute(params![
        p.tenant.as_str(),
        &*p.probe_id,
        direction_code(p.direction),
        micros(p.sent_at),
        micros(p.deadline),
        micros(p.next_check_at),
        p.ticket.as_str(),
        i64::from(shard_of(&p.tenant)),
        lease.map_or(0, |(id, _)| id),
        lease.map(|(_, lease)| lease_end(p.next_check_at, lease)),
    ])?;
    Ok(())
}

fn settle(tx: &rusqlite::Transaction<'_>, s: &ProbeSettlement) -> Result<(), Fail> {
    let lease = signed(BACKEND, "lease id", s.lease_id)?;
    let changed = match s.next_check_at {
        None => tx
            .prepare_cached(
                "DELETE FROM continuity_probes
                 WHERE tenant = ?1 AND probe_id = ?2 AND lease_id = ?3 AND lease_id <> 0",
            )?
            .execute(params![s.tenant.as_str(), &*s.probe_id, lease])?,
        Some(at) => tx
            .prepare_cached(
                "UPDATE continuity_probes
                 SET next_check_at = ?4, due_at = ?4, lease_id = 0, lease_until = NULL
                 WHERE tenant = ?1 AND probe_id = ?2 AND lease_id = ?3 AND lease_id <> 0",
            )?
            .execute(params![s.tenant.as_str(), &*s.probe_id, lease, micros(at)])?,
    };
    if changed == 0 {
        return Err(lease_lost(format!("probe {}/{}", s.tenant, s.probe_id)));
    }
    Ok(())
}

impl SqliteStore {
    /// Stores `probes` in one transaction; with `lease`, leased to the
    /// caller under one new lease id until each one's first check plus
    /// `lease`, and handed back with it. Without, `probes` is left empty.
    pub(super) async fn put_probe_batch(
        &self,
        probes: &mut Vec<PendingProbe>,
        lease: Option<Duration>,
    ) -> continuity_core::Result<()> {
        if probes.is_empty() {
            return Ok(());
        }
        let batch = std::mem::take(probes);
        // The batch travels to the blocking pool and back, so that a
        // failure hands it back to the caller.
        let (batch, outcome) = self
            .run(move |c| {
                let outcome = (|| {
                    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
                    let lease = match lease {
                        Some(lease) => {
                            Some((signed(BACKEND, "lease id", next_lease(&tx)?)?, lease))
                        }
                        None => None,
                    };
                    for p in &batch {
                        put_probe(&tx, p, lease)?;
                    }
                    tx.commit()?;
                    Ok::<_, Fail>(lease.map(|(id, _)| id))
                })();
                Ok((batch, outcome))
            })
            .await?;
        match outcome {
            Ok(Some(lease_id)) => {
                let lease_id = unsigned(BACKEND, "lease id", lease_id)?;
                // A probe id put twice was stored once, the last: hand back that one.
                let mut held = last_of_each(batch);
                for p in &mut held {
                    p.lease_id = lease_id;
                }
                *probes = held;
                Ok(())
            }
            Ok(None) => Ok(()),
            Err(f) => {
                *probes = batch;
                Err(corrupt_file(&self.path, f).into())
            }
        }
    }

    pub(super) async fn claim_due_probes(
        &self,
        now: DateTime<Utc>,
        lease: Duration,
        limit: usize,
        shards: &ShardSet,
    ) -> continuity_core::Result<Vec<PendingProbe>> {
        // Every shard: no filter (`?4` is then NULL).
        let list = if shards.is_all() {
            None
        } else {
            let list: Vec<u16> = shards.iter().collect();
            Some(to_json(BACKEND, || "shard list".into(), &list)?)
        };
        self.run(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            // One lease for the whole claim: a settlement names its probe
            // and the lease, and a later claim draws a new one, so a stale
            // holder is still refused. A lease drawn per probe cost a
            // statement per probe (a third of a fleet's time on SQLite).
            let lease_id = signed(BACKEND, "lease id", next_lease(&tx)?)?;
            // The lease goes to columns no index holds, and the filter reads
            // it: moving `due_at` to the lease's end instead would rewrite
            // two index entries per claim. A leased probe stays in the due
            // range, but the scan steps over at most the probes under a
            // live lease (a settled probe leaves the range).
            let mut rows = {
                let mut stmt = tx.prepare_cached(&format!(
                    "UPDATE continuity_probes SET lease_id = ?3, lease_until = ?4
                     WHERE (tenant, probe_id) IN (
                       SELECT tenant, probe_id FROM continuity_probes
                       WHERE due_at <= ?1 AND (lease_until IS NULL OR lease_until <= ?1)
                         AND (?5 IS NULL OR shard IN (SELECT value FROM json_each(?5)))
                       ORDER BY due_at LIMIT ?2)
                     RETURNING {PROBE_COLUMNS}, due_at"
                ))?;
                let row = |r: &Row<'_>| Ok((r.get::<_, i64>(8)?, probe_row(r)?));
                collect(stmt.query_map(
                    params![
                        micros(now),
                        row_limit(limit),
                        lease_id,
                        lease_end(now, lease),
                        list
                    ],
                    row,
                )?)?
            };
            tx.commit()?;
            // RETURNING follows no order; the caller gets the longest due first.
            rows.sort_by_key(|(due, _)| *due);
            Ok(rows.into_iter().map(|(_, p)| p).collect())
        })
        .await
    }

    pub(super) async fn settle_probe_batch(
        &self,
        settlements: &[ProbeSettlement],
    ) -> Vec<continuity_core::Result<()>> {
        let n = settlements.len();
        let settlements = settlements.to_vec();
        let outcome = self
            .run(move |c| {
                let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let mut results = Vec::with_capacity(settlements.len());
                for s in &settlements {
                    results.push(match settle(&tx, s) {
                        Ok(()) => Ok(()),
                        Err(Fail::Core(e)) => Err(e),
                        Err(store) => return Err(store),
                    });
                }
                tx.commit()?;
                Ok(results)
            })
            .await;
        outcome.unwrap_or_else(|e| every_one_failed(BACKEND, e, n))
    }
}

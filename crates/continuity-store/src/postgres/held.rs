//! Probes leased to their sender as they are put
//! ([`EventStore::put_probes_leased`](continuity_core::store::EventStore::put_probes_leased)),
//! kept as one row per put: the batch.
//!
//! A sender checks the probes it holds from memory and settles them at
//! their first check, almost always all at once, so a row per probe would
//! be written twice (insert, delete) only to be read by nobody. A row per
//! batch is written twice for all of its probes: 0.61 dead row versions
//! a probe instead of 1.58 in a Monitor's three hours (`probe_churn`
//! test), and a fleet's figures in BENCHMARKS.md ("The fleet on real
//! stores"). Only when the sender dies before settling does anyone read
//! them: a claim after the batch's lease ran out (its last probe's first
//! check plus the lease) turns the batch into one row per probe, which is
//! then claimed as usual.
//!
//! A settlement names its probe and the batch's lease id: it removes the
//! probe from its batch (a batch left empty is deleted, one with probes
//! left is rewritten) and, to check it again later, stores it as a row of
//! its own, unleased.

use std::{collections::HashMap, time::Duration};

use continuity_core::store::{PendingProbe, ProbeSettlement};
use tokio_postgres::Transaction;

use super::{BACKEND, PostgresStore, sql::column};
use crate::codec::{Fail, from_json, lease_end, signed, to_json, unsigned};

/// Expired batches turned into rows per claim, at most (the rest at the
/// next claim).
const EXPLODE_LIMIT: i64 = 64;

/// What a settlement did to a probe held in a batch.
pub(super) struct HeldSettled {
    /// Settlements (by index) that found their probe in its batch.
    pub(super) done: Vec<usize>,
    /// Probes to check again, each with its new check time: stored as rows.
    pub(super) again: Vec<PendingProbe>,
}

impl PostgresStore {
    /// Stores `batch` (no probe id twice) as one row leased to the caller
    /// until the last probe's first check plus `lease`; returns the lease
    /// id. A probe stored earlier as a row with the same tenant and id is
    /// replaced (removed); one held in another batch is not looked for:
    /// the engine never puts a probe id twice.
    pub(super) async fn put_held(
        &self,
        batch: &[PendingProbe],
        lease: Duration,
    ) -> continuity_core::Result<u64> {
        let until = batch
            .iter()
            .map(|p| lease_end(p.next_check_at, lease))
            .max()
            .unwrap_or(i64::MIN);
        let probes = to_json(BACKEND, || "held probes".into(), &batch)?;
        let tenants: Vec<&str> = batch.iter().map(|p| p.tenant.as_str()).collect();
        let ids: Vec<&str> = batch.iter().map(|p| &*p.probe_id).collect();
        let client = self.client().await?;
        // One statement, so one transaction: the rows it replaces go as the
        // batch comes.
        let stmt = client
            .prepare_cached(
                "WITH replaced AS (
                   DELETE FROM continuity_probes p
                   USING unnest($1::text[], $2::text[]) AS k(t, id)
                   WHERE p.tenant = k.t AND p.probe_id = k.id)
                 INSERT INTO continuity_probe_batches (lease_id, lease_until, probes)
                 VALUES (nextval('continuity_lease_seq'), $3, $4)
                 RETURNING lease_id",
            )
            .await
            .map_err(Fail::from)?;
        let row = client
            .query_one(&stmt, &[&tenants, &ids, &until, &probes])
            .await
            .map_err(Fail::from)?;
        Ok(unsigned(BACKEND, "lease id", column::<i64>(&row, 0)?)?)
    }

    /// Settles, inside `tx`, the settlements that name a probe held in a
    /// batch under their lease.
    pub(super) async fn settle_held(
        tx: &Transaction<'_>,
        settlements: &[ProbeSettlement],
    ) -> Result<HeldSettled, Fail> {
        let mut leases: Vec<i64> = Vec::new();
        for s in settlements {
            let l = signed(BACKEND, "lease id", s.lease_id)?;
            if l != 0 && leases.last() != Some(&l) {
                leases.push(l);
            }
        }
        let mut out = HeldSettled {
            done: Vec::new(),
            again: Vec::new(),
        };
        if leases.is_empty() {
            return Ok(out);
        }
        leases.sort_unstable();
        leases.dedup();
        let rows = tx
            .query(
                "SELECT lease_id, probes FROM continuity_probe_batches
                 WHERE lease_id = ANY($1) FOR UPDATE",
                &[&leases],
            )
            .await?;
        if rows.is_empty() {
            return Ok(out);
        }
        let mut emptied: Vec<i64> = Vec::new();
        for row in rows {
            let lease_id: i64 = column(&row, 0)?;
            let text: String = column(&row, 1)?;
            let mut held: Vec<PendingProbe> = from_json(
                BACKEND,
                || format!("held probes of lease {lease_id}"),
                &text,
            )?;
            let index: HashMap<(&str, &str), usize> = held
                .iter()
                .enumerate()
                .map(|(i, p)| ((p.tenant.as_str(), &*p.probe_id), i))
                .collect();
            let lease = unsigned(BACKEND, "lease id", lease_id)?;
            let mut settled = vec![false; held.len()];
            let mut again = Vec::new();
            for (i, s) in settlements.iter().enumerate() {
                if s.lease_id != lease {
                    continue;
                }
                let Some(&h) = index.get(&(s.tenant.as_str(), &*s.probe_id)) else {
                    continue;
                };
                if std::mem::replace(&mut settled[h], true) {
                    continue; // named twice: the first settlement counts
                }
                out.done.push(i);
                if let Some(at) = s.next_check_at {
                    again.push((h, at));
                }
            }
            for (h, at) in again {
                let mut p = held[h].clone();
                p.next_check_at = at;
                p.lease_id = 0;
                out.again.push(p);
            }
            let mut keep = settled.iter().map(|s| !s);
            held.retain(|_| keep.next().unwrap_or(true));
            if held.is_empty() {
                emptied.push(lease_id);
            } else if held.len() < settled.len() {
                let text = to_json(BACKEND, || "held probes".into(), &held)?;
                tx.execute(
                    "UPDATE continuity_probe_batches SET probes = $2 WHERE lease_id = $1",
                    &[&lease_id, &text],
                )
                .await?;
            }
        }
        if !emptied.is_empty() {
            tx.execute(
                "DELETE FROM continuity_probe_batches WHERE lease_id = ANY($1)",
                &[&emptied],
            )
            .await?;
        }
        Ok(out)
    }

    /// Turns batches whose lease ran out by `now` into one unleased row per
    /// probe, due at its check time, for the claim that follows. A probe
    /// put again as a row since is left as it is.
    pub(super) async fn explode_expired(&self, now_us: i64) -> Result<(), Fail> {
        let mut client = self.client().await?;
        // Almost always there is none (a sender settles its batches in
        // time): one look, without a transaction's two extra round trips.
        let look = client
            .prepare_cached(
                "SELECT 1 FROM continuity_probe_batches WHERE lease_until <= $1 LIMIT 1",
            )
            .await?;
        if client.query_opt(&look, &[&now_us]).await?.is_none() {
            return Ok(());
        }
        let tx = client.transaction().await?;
        let rows = tx
            .query(
                "DELETE FROM continuity_probe_batches WHERE lease_id IN (
                   SELECT lease_id FROM continuity_probe_batches
                   WHERE lease_until <= $1
                   ORDER BY lease_until LIMIT $2
                   FOR UPDATE SKIP LOCKED)
                 RETURNING lease_id, probes",
                &[&now_us, &EXPLODE_LIMIT],
            )
            .await?;
        if rows.is_empty() {
            return Ok(());
        }
        let mut probes: Vec<PendingProbe> = Vec::new();
        for row in rows {
            let lease_id: i64 = column(&row, 0)?;
            let text: String = column(&row, 1)?;
            let held: Vec<PendingProbe> = from_json(
                BACKEND,
                || format!("held probes of lease {lease_id}"),
                &text,
            )?;
            probes.extend(held.into_iter().map(|mut p| {
                p.lease_id = 0;
                p
            }));
        }
        Self::insert_rows(&tx, &probes, false).await?;
        tx.commit().await?;
        Ok(())
    }
}

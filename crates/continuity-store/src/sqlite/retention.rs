//! Retention: old audit records, dead letters and stopped instances' rows
//! removed by time (`EventStore::prune`).

use continuity_core::store::{PruneBefore, PruneReport};
use rusqlite::{TransactionBehavior, params};

use super::SqliteStore;
use crate::codec::micros;

impl SqliteStore {
    pub(super) async fn prune_records(
        &self,
        before: PruneBefore,
    ) -> continuity_core::Result<PruneReport> {
        self.run(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            // Each tenant's latest record stays: the next commit numbers its
            // entries after it, and readers paging by sequence must never
            // see a number twice.
            let audit = tx
                .prepare_cached(
                    "DELETE FROM continuity_audit
                     WHERE at < ?1
                       AND seq < (SELECT MAX(l.seq) FROM continuity_audit l
                                  WHERE l.tenant = continuity_audit.tenant)",
                )?
                .execute(params![micros(before.audit)])?;
            let dead_letters = tx
                .prepare_cached("DELETE FROM continuity_outbox WHERE dead = 1 AND created_at < ?1")?
                .execute(params![micros(before.dead_letters)])?;
            let instances = tx
                .prepare_cached("DELETE FROM continuity_instances WHERE alive_until < ?1")?
                .execute(params![micros(before.instances)])?;
            tx.commit()?;
            Ok(PruneReport {
                audit: audit as u64,
                dead_letters: dead_letters as u64,
                instances: instances as u64,
            })
        })
        .await
    }
}

//! Retention: old audit records, dead letters and stopped instances' rows
//! removed by time (`EventStore::prune`).

use continuity_core::store::{PruneBefore, PruneReport};

use super::PostgresStore;
use crate::codec::{Fail, micros};

impl PostgresStore {
    pub(super) async fn prune_records(
        &self,
        before: &PruneBefore,
    ) -> continuity_core::Result<PruneReport> {
        let run = async {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            // Each tenant's latest record stays: the next commit numbers its
            // entries after it, and readers paging by sequence must never
            // see a number twice. A commit of the tenant adding records
            // meanwhile only adds later ones.
            let audit = tx
                .execute(
                    "DELETE FROM continuity_audit a
                     WHERE a.at < $1
                       AND a.seq < (SELECT MAX(l.seq) FROM continuity_audit l
                                    WHERE l.tenant = a.tenant)",
                    &[&micros(before.audit)],
                )
                .await?;
            let dead_letters = tx
                .execute(
                    "DELETE FROM continuity_outbox WHERE dead AND created_at < $1",
                    &[&micros(before.dead_letters)],
                )
                .await?;
            let instances = tx
                .execute(
                    "DELETE FROM continuity_instances WHERE alive_until < $1",
                    &[&micros(before.instances)],
                )
                .await?;
            tx.commit().await?;
            Ok::<_, Fail>(PruneReport {
                audit,
                dead_letters,
                instances,
            })
        };
        Ok(run.await?)
    }
}

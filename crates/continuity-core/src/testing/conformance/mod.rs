//! The `EventStore` conformance suite.
//!
//! Each case takes a store that holds **no data for the tenants it uses**
//! (every case uses its own tenant ids, prefixed `conf-`) and panics with a
//! message on the first violation. [`event_store_all`] runs them all.
//!
//! Outbox and probe cases claim with times far in the future of any real
//! clock so they never pick up items of a shared store's other users: run
//! the suite on a store of its own.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use continuity_core::{memory::InMemoryEventStore, testing::conformance};
//! conformance::event_store_all(&InMemoryEventStore::new()).await;
//! # }
//! ```

mod baselines;
mod counts;
mod outbox;
mod probes;
mod records;
mod shards;
mod shared;
mod state;

use chrono::{DateTime, TimeDelta, Utc};

use crate::{
    config::{ChannelKind, Recipient},
    domain::TenantId,
    machine::{Actor, AlertKind, AuditEntry, TenantState},
    notify::AlertMessage,
    store::{EventStore, OutboxItem},
};

fn tenant(name: &str) -> TenantId {
    TenantId::new(format!("conf-{name}")).expect("valid tenant id")
}

fn t0() -> DateTime<Utc> {
    "2030-01-01T00:00:00Z".parse().expect("valid time")
}

fn at(secs: i64) -> DateTime<Utc> {
    t0() + TimeDelta::seconds(secs)
}

fn audit(n: u32) -> AuditEntry {
    AuditEntry {
        at: at(i64::from(n)),
        actor: Actor::System,
        action: format!("test.{n}"),
        before: format!("before {n}"),
        after: format!("after {n}"),
    }
}

fn alert(tenant: &TenantId, id: u64) -> OutboxItem {
    alert_to(tenant, id, "ops")
}

fn alert_to(tenant: &TenantId, id: u64, recipient: &str) -> OutboxItem {
    OutboxItem::Alert(Box::new(AlertMessage {
        tenant: tenant.clone(),
        tenant_name: tenant.to_string(),
        alert_id: id,
        kind: AlertKind::Raised,
        recipient: Recipient::new(recipient, ChannelKind::Sms, "+15550100"),
        idempotency_key: format!("{tenant}/{id}/{recipient}"),
        created_at: at(0),
        link: "https://portal.example/c/x".into(),
        link_expires_at: at(86_400),
        conditions: Vec::new(),
        event: None,
        failing: Vec::new(),
        time_zone: Default::default(),
    }))
}

fn state_with(next_alert_id: u64) -> TenantState {
    TenantState {
        next_alert_id,
        ..TenantState::default()
    }
}

/// Runs every case.
pub async fn event_store_all(store: &dyn EventStore) {
    event_store_compare_and_swap(store).await;
    event_store_audit_order(store).await;
    event_store_atomic_commit(store).await;
    event_store_concurrent_writers(store).await;
    event_store_outbox_claim_and_lease(store).await;
    event_store_outbox_retry_and_give_up(store).await;
    event_store_outbox_order_per_key(store).await;
    event_store_outbox_counts(store).await;
    event_store_probe_claims(store).await;
    event_store_probe_edge_cases(store).await;
    event_store_probe_claims_by_shard(store).await;
    event_store_put_probes_in_a_batch(store).await;
    event_store_put_probes_leased(store).await;
    event_store_settle_probes_in_a_batch(store).await;
    event_store_single_probe_forms(store).await;
    event_store_shard_ownership(store).await;
    event_store_baselines_round_trip(store).await;
    event_store_baselines_upsert(store).await;
    event_store_baselines_tenants_apart(store).await;
    event_store_shared_observations(store).await;
    event_store_recent_audit(store).await;
    event_store_dead_letters(store).await;
    event_store_prune(store).await;
}

pub use self::{
    baselines::{
        event_store_baselines_round_trip, event_store_baselines_tenants_apart,
        event_store_baselines_upsert,
    },
    counts::event_store_outbox_counts,
    outbox::{
        event_store_outbox_claim_and_lease, event_store_outbox_order_per_key,
        event_store_outbox_retry_and_give_up,
    },
    probes::{
        event_store_probe_claims, event_store_probe_claims_by_shard, event_store_probe_edge_cases,
        event_store_put_probes_in_a_batch, event_store_put_probes_leased,
        event_store_settle_probes_in_a_batch, event_store_single_probe_forms,
    },
    records::{event_store_dead_letters, event_store_prune, event_store_recent_audit},
    shards::event_store_shard_ownership,
    shared::event_store_shared_observations,
    state::{
        event_store_atomic_commit, event_store_audit_order, event_store_compare_and_swap,
        event_store_concurrent_writers,
    },
};

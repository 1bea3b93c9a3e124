//! Baselines: saved per tenant, direction and condition, replaced by a
//! later save of the same three, returned as given.

use super::{at, tenant};
use crate::{
    domain::{Direction, TenantId},
    store::{BaselineRecord, EventStore},
};

fn record(
    tenant: &TenantId,
    direction: Direction,
    condition: &str,
    secs: i64,
    snapshot: Vec<u8>,
) -> BaselineRecord {
    BaselineRecord {
        tenant: tenant.clone(),
        direction,
        condition: condition.to_string(),
        saved_at: at(secs),
        snapshot,
    }
}

/// `tenant`'s records, in a fixed order to compare.
async fn loaded(store: &dyn EventStore, tenant: &TenantId) -> Vec<BaselineRecord> {
    let mut records = store.load_baselines(tenant).await.expect("load baselines");
    records.sort_by(|a, b| (a.direction, &a.condition).cmp(&(b.direction, &b.condition)));
    records
}

/// What is saved is loaded back as it was: every field, every byte (a
/// 64 KiB snapshot of every byte value, an empty one), conditions of any
/// name. A tenant never saved has none, and an empty batch saves nothing.
pub async fn event_store_baselines_round_trip(store: &dyn EventStore) {
    let t = tenant("baseline-trip");
    assert!(
        loaded(store, &t).await.is_empty(),
        "a tenant never saved has no baselines"
    );
    store.save_baselines(&[]).await.expect("an empty batch");
    let large: Vec<u8> = (0..64 * 1024).map(|i| (i % 251) as u8).collect();
    let saved = vec![
        record(&t, Direction::Inbound, "flow", 10, vec![1, 0, 255, 7]),
        record(&t, Direction::Inbound, "model/π", 11, Vec::new()),
        record(&t, Direction::Outbound, "flow", 12, large),
    ];
    store.save_baselines(&saved).await.expect("save baselines");
    assert_eq!(
        loaded(store, &t).await,
        saved,
        "the records come back as saved"
    );
    assert!(
        loaded(store, &tenant("baseline-trip-never"))
            .await
            .is_empty(),
        "another tenant has none"
    );
}

/// A save replaces the record with the same tenant, direction and
/// condition and leaves the others; within one batch the last one wins.
pub async fn event_store_baselines_upsert(store: &dyn EventStore) {
    let t = tenant("baseline-upsert");
    store
        .save_baselines(&[
            record(&t, Direction::Inbound, "flow", 0, vec![1; 217]),
            record(&t, Direction::Outbound, "flow", 0, vec![2; 217]),
        ])
        .await
        .expect("first save");
    store
        .save_baselines(&[
            record(&t, Direction::Outbound, "flow", 3_600, vec![3; 217]),
            record(&t, Direction::Outbound, "flow", 3_601, vec![4; 300]),
        ])
        .await
        .expect("second save");
    assert_eq!(
        loaded(store, &t).await,
        vec![
            record(&t, Direction::Inbound, "flow", 0, vec![1; 217]),
            record(&t, Direction::Outbound, "flow", 3_601, vec![4; 300]),
        ],
        "the outbound record is replaced by the batch's last, the inbound one kept"
    );
    store
        .save_baselines(&[record(&t, Direction::Inbound, "flow", 7_200, vec![5; 10])])
        .await
        .expect("third save");
    assert_eq!(
        loaded(store, &t).await,
        vec![
            record(&t, Direction::Inbound, "flow", 7_200, vec![5; 10]),
            record(&t, Direction::Outbound, "flow", 3_601, vec![4; 300]),
        ]
    );
}

/// One batch may hold many tenants; each loads only its own records, and a
/// save for one never touches another's.
pub async fn event_store_baselines_tenants_apart(store: &dyn EventStore) {
    let tenants: Vec<TenantId> = (0..40)
        .map(|i| tenant(&format!("baseline-apart-{i}")))
        .collect();
    let batch: Vec<BaselineRecord> = tenants
        .iter()
        .enumerate()
        .flat_map(|(i, t)| {
            Direction::ALL.map(|d| record(t, d, "flow", i as i64, vec![i as u8, d.index() as u8]))
        })
        .collect();
    store.save_baselines(&batch).await.expect("save a batch");
    store
        .save_baselines(&[record(&tenants[0], Direction::Inbound, "flow", 99, vec![9])])
        .await
        .expect("save one");
    for (i, t) in tenants.iter().enumerate() {
        let mut expected: Vec<BaselineRecord> =
            batch.iter().filter(|r| r.tenant == *t).cloned().collect();
        if i == 0 {
            expected[0] = record(t, Direction::Inbound, "flow", 99, vec![9]);
        }
        assert_eq!(loaded(store, t).await, expected, "the records of {t}");
    }
}

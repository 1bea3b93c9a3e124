//! Shared observations: kept by shard until taken, taken once, oldest
//! first, payloads returned as given.

use super::at;
use crate::{
    cluster::ShardSet,
    store::{EventStore, SharedObservations},
};

fn batch(shard: u16, secs: i64, payload: Vec<u8>) -> SharedObservations {
    SharedObservations {
        shard,
        shared_at: at(secs),
        payload,
    }
}

fn shards(list: &[u16]) -> ShardSet {
    let mut set = ShardSet::EMPTY;
    for s in list {
        set.insert(*s);
    }
    set
}

/// Batches come back only for the shards asked for, oldest first, each
/// once, at most `limit` at a time, with every byte as given (an empty
/// payload, every byte value); an empty call shares nothing. (That two
/// takers at once never both get a batch is each backend's own test: the
/// suite runs one call at a time.)
pub async fn event_store_shared_observations(store: &dyn EventStore) {
    // Left by an earlier run on the same store: not this case's.
    while !store
        .take_shared_observations(&ShardSet::ALL, 1000)
        .await
        .expect("take leftovers")
        .is_empty()
    {}
    store
        .share_observations(&[])
        .await
        .expect("sharing nothing succeeds");
    let every_byte: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    let first = vec![
        batch(3, 10, b"three-a".to_vec()),
        batch(7, 11, every_byte.clone()),
        batch(3, 12, Vec::new()),
    ];
    store.share_observations(&first).await.expect("share");
    store
        .share_observations(&[
            batch(200, 13, b"two-hundred".to_vec()),
            batch(3, 14, b"three-c".to_vec()),
        ])
        .await
        .expect("share a second call");

    let none = store
        .take_shared_observations(&shards(&[4, 5]), 10)
        .await
        .expect("take");
    assert!(
        none.is_empty(),
        "nothing was shared for shards 4 and 5: {none:?}"
    );

    let threes = store
        .take_shared_observations(&shards(&[3]), 2)
        .await
        .expect("take");
    assert_eq!(
        threes,
        vec![first[0].clone(), first[2].clone()],
        "the two oldest batches of shard 3, oldest first, as given"
    );
    let rest = store
        .take_shared_observations(&shards(&[3, 7, 200]), 10)
        .await
        .expect("take");
    assert_eq!(
        rest,
        vec![
            batch(7, 11, every_byte),
            batch(200, 13, b"two-hundred".to_vec()),
            batch(3, 14, b"three-c".to_vec()),
        ],
        "what is left, in the order it was shared, each batch once"
    );
    assert!(
        store
            .take_shared_observations(&ShardSet::ALL, 10)
            .await
            .expect("take")
            .is_empty(),
        "a taken batch is gone"
    );
}

//! Cluster shards: fair shares, takeover, release.

use std::time::Duration;

use super::at;
use crate::{
    cluster::{SHARDS, ShardSet},
    store::EventStore,
};

/// Shards are shared out fairly among live instances, each to one owner;
/// a dead instance's shards are taken over once its lease ran out; a
/// released instance's at once.
pub async fn event_store_shard_ownership(store: &dyn EventStore) {
    let lease = Duration::from_secs(120);
    let (a, b, c) = ("conf-node-a", "conf-node-b", "conf-node-c");
    let sync = |who: &'static str, t: i64| async move {
        store
            .sync_shards(who, at(t), lease)
            .await
            .expect("sync shards")
    };
    let all = usize::from(SHARDS);
    let disjoint_and_whole = |sets: &[ShardSet]| {
        let mut seen = ShardSet::EMPTY;
        for s in sets {
            assert!(
                s.difference(&seen) == *s,
                "a shard has two owners: {sets:?}"
            );
            for shard in s.iter() {
                seen.insert(shard);
            }
        }
        seen.len()
    };
    assert_eq!(
        sync(a, 0).await.len(),
        all,
        "a lone instance owns every shard"
    );
    let b1 = sync(b, 1).await;
    assert!(
        b1.is_empty(),
        "nothing is free until a gives some up: {b1:?}"
    );
    let a2 = sync(a, 2).await;
    assert_eq!(a2.len(), all / 2, "a keeps its fair share");
    let b2 = sync(b, 3).await;
    assert_eq!(b2.len(), all / 2, "b takes what a gave up");
    assert_eq!(disjoint_and_whole(&[a2, b2]), all);

    // A third joins; after a round each holds about a third.
    sync(c, 4).await;
    let a3 = sync(a, 5).await;
    let b3 = sync(b, 6).await;
    let c3 = sync(c, 7).await;
    for s in [&a3, &b3, &c3] {
        assert!(
            (84..=86).contains(&s.len()),
            "fair shares: {} {} {}",
            a3.len(),
            b3.len(),
            c3.len()
        );
    }
    assert_eq!(disjoint_and_whole(&[a3, b3, c3]), all);

    // c dies. Until its lease runs out its shards stay its own.
    let a4 = sync(a, 60).await;
    let b4 = sync(b, 61).await;
    assert_eq!(
        disjoint_and_whole(&[a4, b4, c3]),
        all,
        "c's shards wait for its lease"
    );
    // After it, a and b share everything.
    let a5 = sync(a, 130).await;
    let b5 = sync(b, 131).await;
    let a5 = if a5.len() + b5.len() < all {
        sync(a, 132).await
    } else {
        a5
    };
    assert_eq!(a5.len() + b5.len(), all, "c's shards were taken over");
    assert_eq!(disjoint_and_whole(&[a5, b5]), all);
    assert!(
        a5.len() >= all / 2 - 2 && b5.len() >= all / 2 - 2,
        "{} {}",
        a5.len(),
        b5.len()
    );

    // a shuts down cleanly: b takes over at its next sync, no lease to wait out.
    store.release_shards(a).await.expect("release");
    assert_eq!(sync(b, 133).await.len(), all, "b owns everything");
    store.release_shards(b).await.expect("release");
    store.release_shards(c).await.expect("release");
    assert_eq!(
        sync(c, 134).await.len(),
        all,
        "released instances leave nothing behind"
    );
    store.release_shards(c).await.expect("release");
}

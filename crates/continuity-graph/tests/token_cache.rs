//! The token cache against the local token endpoint: single-flight, refresh
//! ahead on a manual clock, invalidation, keys.

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::TimeDelta;
use common::*;
use continuity_core::ManualClock;
use continuity_core::access_token::AccessTokenSource;
use continuity_graph::{
    AadstsKind, AppRegistration, Authority, CertificateCredential, GraphError, TokenCache,
    TokenClient,
};

struct Setup {
    ep: Endpoint,
    clock: ManualClock,
    cache: Arc<TokenCache>,
    app: Arc<AppRegistration>,
}

async fn setup(delay: Duration) -> Setup {
    let c = rsa_cert("monitor");
    let clock = ManualClock::new(t("2026-03-02T08:00:00Z"));
    let mut dir = directory(&c);
    dir.delay = delay;
    let ep = start(dir, clock.clone()).await;
    let cred =
        CertificateCredential::from_pem(c.cert_pem.as_bytes(), c.pkcs8_pem.as_bytes(), &clock)
            .unwrap();
    let app = AppRegistration::new(TENANT, CLIENT_ID, Arc::new(cred))
        .unwrap()
        .with_authority(Authority::Custom(ep.base_url.clone()));
    let cache = TokenCache::new(TokenClient::new(Arc::new(clock.clone())).unwrap());
    Setup {
        ep,
        clock,
        cache,
        app: Arc::new(app),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_concurrent_callers_cause_exactly_one_token_request() {
    let s = setup(Duration::from_millis(300)).await;
    let source = s.cache.source(s.app.clone(), GRAPH_SCOPE);
    let mut tasks = Vec::new();
    for i in 0..64 {
        // Half through their own source for the same key: sources share the slot.
        let src = if i % 2 == 0 {
            source.clone()
        } else {
            s.cache.source(s.app.clone(), GRAPH_SCOPE)
        };
        tasks.push(tokio::spawn(
            async move { src.access_token().await.unwrap() },
        ));
    }
    let mut secrets = std::collections::HashSet::new();
    for task in tasks {
        secrets.insert(task.await.unwrap().secret().expose().to_owned());
    }
    assert_eq!(s.ep.requests.load(Ordering::SeqCst), 1);
    assert_eq!(secrets.len(), 1, "{secrets:?}");
    // And served from the cache afterwards.
    source.access_token().await.unwrap();
    assert_eq!(s.ep.requests.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_request_is_shared_by_its_waiters_too() {
    let s = setup(Duration::from_millis(300)).await;
    s.ep.dir.lock().unwrap().consent.clear();
    let source = s.cache.source(s.app.clone(), GRAPH_SCOPE);
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let src = source.clone();
            tokio::spawn(async move { src.get().await.unwrap_err() })
        })
        .collect();
    for task in tasks {
        let e = task.await.unwrap();
        assert!(
            matches!(
                e,
                GraphError::Aadsts {
                    kind: AadstsKind::ConsentMissing,
                    ..
                }
            ),
            "{e:?}"
        );
    }
    assert_eq!(s.ep.requests.load(Ordering::SeqCst), 1);
    // A later call tries again (the administrator may have granted consent meanwhile).
    let e = source.access_token().await.unwrap_err();
    assert!(
        matches!(e, continuity_core::Error::Probe { retryable: false, code: Some(ref c), .. } if c == "AADSTS65001"),
        "{e:?}"
    );
    assert_eq!(s.ep.requests.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn an_expiring_token_is_refreshed_ahead() {
    let s = setup(Duration::ZERO).await;
    let source = s.cache.source(s.app.clone(), EWS_SCOPE);
    let first = source.access_token().await.unwrap();
    assert_eq!(
        first.expires_at(),
        t("2026-03-02T08:00:00Z") + TimeDelta::seconds(3900)
    );

    // 3900 s tokens: reused until 5 minutes before expiry...
    s.clock.advance(TimeDelta::seconds(3900 - 301));
    assert_eq!(source.access_token().await.unwrap(), first);
    assert_eq!(s.ep.requests.load(Ordering::SeqCst), 1);

    // ...then replaced while still valid, with a new assertion.
    s.clock.advance(TimeDelta::seconds(2));
    let second = source.access_token().await.unwrap();
    assert_ne!(second, first);
    assert!(second.expires_at() > first.expires_at());
    assert_eq!(s.ep.requests.load(Ordering::SeqCst), 2);
    assert_eq!(source.access_token().await.unwrap(), second);
    assert_eq!(s.ep.requests.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_failed_refresh_keeps_serving_the_valid_token() {
    let s = setup(Duration::ZERO).await;
    let source = s.cache.source(s.app.clone(), GRAPH_SCOPE);
    let first = source.access_token().await.unwrap();
    s.ep.dir.lock().unwrap().consent.clear();
    s.clock.advance(TimeDelta::seconds(3900 - 120));
    assert_eq!(
        source.access_token().await.unwrap(),
        first,
        "still valid for 2 minutes"
    );
    assert_eq!(
        s.ep.requests.load(Ordering::SeqCst),
        2,
        "a refresh was attempted"
    );
    // Once it is about to expire, the error comes through.
    s.clock.advance(TimeDelta::seconds(100));
    assert!(source.access_token().await.is_err());
}

#[tokio::test]
async fn invalidate_and_keys() {
    let s = setup(Duration::ZERO).await;
    let graph = s.cache.source(s.app.clone(), GRAPH_SCOPE);
    let ews = s.cache.source(s.app.clone(), EWS_SCOPE);
    let g = graph.access_token().await.unwrap();
    let e = ews.access_token().await.unwrap();
    assert_ne!(g, e, "one token per scope");
    assert_eq!(s.ep.requests.load(Ordering::SeqCst), 2);

    // A token the resource refused is dropped; an older one does not evict the current.
    graph.invalidate(&e);
    assert_eq!(graph.access_token().await.unwrap(), g);
    graph.invalidate(&g);
    let g2 = graph.access_token().await.unwrap();
    assert_ne!(g2, g);
    assert_eq!(s.ep.requests.load(Ordering::SeqCst), 3);
    assert_eq!(ews.access_token().await.unwrap(), e);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_do_not_wait_for_a_refresh_while_the_token_is_valid() {
    let s = setup(Duration::ZERO).await;
    let source = s.cache.source(s.app.clone(), GRAPH_SCOPE);
    let first = source.access_token().await.unwrap();
    s.ep.dir.lock().unwrap().delay = Duration::from_secs(3);
    s.clock.advance(TimeDelta::seconds(3900 - 200));
    let refresher = {
        let src = source.clone();
        tokio::spawn(async move { src.access_token().await.unwrap() })
    };
    while s.ep.requests.load(Ordering::SeqCst) < 2 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The refresh is in flight for 3 s; this caller is served the current token at once.
    let meanwhile = tokio::time::timeout(Duration::from_millis(1500), source.access_token())
        .await
        .expect("served without waiting for the refresh")
        .unwrap();
    assert_eq!(meanwhile, first);
    let second = refresher.await.unwrap();
    assert_ne!(second, first);
    assert_eq!(source.access_token().await.unwrap(), second);
    assert_eq!(s.ep.requests.load(Ordering::SeqCst), 2);
}

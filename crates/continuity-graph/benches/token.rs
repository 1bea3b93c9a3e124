//! A cached token served to callers (one thread and across threads), and
//! building + signing one client assertion (PS256 and RS256).

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use continuity_core::access_token::AccessTokenSource;
use continuity_core::{Clock, ManualClock, SystemClock};
use continuity_graph::{
    AppRegistration, AssertionAlgorithm, Authority, CertificateCredential, TokenCache, TokenClient,
};
use continuity_test_support::app_cert::rsa_cert_valid;
use continuity_test_support::token_endpoint::{CLIENT_ID, GRAPH_SCOPE, TENANT, directory, start};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn token(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let cert = rsa_cert_valid("bench", (2020, 1, 1), (2100, 1, 1));
    let clock = SystemClock;
    let cred = CertificateCredential::from_pem(
        cert.cert_pem.as_bytes(),
        cert.pkcs8_pem.as_bytes(),
        &clock,
    )
    .unwrap();
    let ep = rt.block_on(start(directory(&cert), ManualClock::new(clock.now())));
    let app = Arc::new(
        AppRegistration::new(TENANT, CLIENT_ID, Arc::new(cred))
            .unwrap()
            .with_authority(Authority::Custom(ep.base_url.clone())),
    );
    // The production clock: the fast path reads it on every call.
    let cache = TokenCache::new(TokenClient::new(Arc::new(SystemClock)).unwrap());
    let source = cache.source(app.clone(), GRAPH_SCOPE);
    rt.block_on(source.access_token()).unwrap();

    let mut group = c.benchmark_group("token");
    group.throughput(Throughput::Elements(1));
    group.bench_function("cached/1-thread", |b| {
        b.iter_custom(|iters| serve(&source, iters, 1))
    });
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    group.bench_function(format!("cached/{threads}-threads"), |b| {
        b.iter_custom(|iters| serve(&source, iters, threads))
    });
    let now = clock.now();
    group.bench_function("assertion/PS256", |b| {
        b.iter(|| app.client_assertion(black_box(now)).unwrap())
    });
    let rs = app
        .as_ref()
        .clone()
        .with_algorithm(AssertionAlgorithm::Rs256);
    group.bench_function("assertion/RS256", |b| {
        b.iter(|| rs.client_assertion(black_box(now)).unwrap())
    });
    group.finish();
    assert_eq!(
        ep.requests.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "served from the cache"
    );
}

/// `iters` calls of `access_token()` split over `threads` threads, each awaiting in
/// its own current-thread runtime; wall time of the whole.
// criterion's iter_custom needs a wall-clock timer; core's Clock is for behaviour, not measurement.
#[allow(clippy::disallowed_methods)]
fn serve(source: &continuity_graph::CachedTokenSource, iters: u64, threads: usize) -> Duration {
    let per = iters.div_ceil(threads as u64);
    let start = std::time::Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            let src = source.clone();
            s.spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .build()
                    .unwrap();
                rt.block_on(async {
                    for _ in 0..per {
                        black_box(src.access_token().await.unwrap());
                    }
                })
            });
        }
    });
    start.elapsed()
}

criterion_group!(benches, token);
criterion_main!(benches);

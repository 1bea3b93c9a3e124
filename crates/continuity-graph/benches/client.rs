//! Building a tenant's Graph client: its own HTTP stack (`GraphClient::new`)
//! against one derived from a shared client (`GraphClient::for_app`), the
//! cost a fleet of thousands of tenants pays at start.

use std::hint::black_box;
use std::sync::Arc;

use async_trait::async_trait;
use continuity_core::SystemClock;
use continuity_core::access_token::{AccessToken, AccessTokenSource};
use continuity_graph::{GraphClient, GraphConfig};
use criterion::{Criterion, criterion_group, criterion_main};

/// Never asked: building a client requests no token.
#[derive(Debug)]
struct NoTokens;

#[async_trait]
impl AccessTokenSource for NoTokens {
    async fn access_token(&self) -> continuity_core::Result<AccessToken> {
        Err(continuity_core::Error::probe_permanent(
            "no tokens in this benchmark",
        ))
    }
}

fn client(c: &mut Criterion) {
    let cfg = GraphConfig::new("https://graph.microsoft.com/v1.0");
    let mut group = c.benchmark_group("client");
    group.bench_function("new", |b| {
        b.iter(|| {
            GraphClient::new(
                black_box(cfg.clone()),
                Arc::new(NoTokens),
                Arc::new(SystemClock),
            )
            .unwrap()
        })
    });
    let shared = GraphClient::new(cfg.clone(), Arc::new(NoTokens), Arc::new(SystemClock)).unwrap();
    group.bench_function("for_app", |b| {
        b.iter(|| black_box(&shared).for_app(Arc::new(NoTokens)).unwrap())
    });
    group.finish();
}

criterion_group!(benches, client);
criterion_main!(benches);

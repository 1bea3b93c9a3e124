//! Building a tenant's EWS client: its own HTTP stack (`EwsClient::new`)
//! against one sharing another client's (`EwsClient::sharing_http`), the
//! cost a process watching thousands of tenants pays at start.

use std::hint::black_box;

use continuity_ews::{Auth, EwsClient, EwsConfig};
use criterion::{Criterion, criterion_group, criterion_main};

fn client(c: &mut Criterion) {
    let cfg = EwsConfig::new(
        "https://mail.contoso.example/EWS/Exchange.asmx",
        Auth::basic("CONTOSO\\svc-continuity", "secret"),
    );
    let mut group = c.benchmark_group("ews_client");
    group.bench_function("new", |b| {
        b.iter(|| EwsClient::new(black_box(cfg.clone())).unwrap())
    });
    let shared = EwsClient::new(cfg.clone()).unwrap();
    group.bench_function("sharing_http", |b| {
        b.iter(|| shared.sharing_http(black_box(cfg.clone())).unwrap())
    });
    group.finish();
}

criterion_group!(benches, client);
criterion_main!(benches);

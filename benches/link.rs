//! Portal link signing and verification throughput.
//!
//! Verification sits on the portal's request path and must sustain at least
//! a million links per second on one core.

use std::hint::black_box;

use chrono::DateTime;
use continuity_core::{
    TenantId,
    link::{LinkClaims, LinkKey, LinkSigner},
};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn link(c: &mut Criterion) {
    // A rotated signer, so that verification of the common case (current key)
    // is measured with a retired key still configured.
    let signer = LinkSigner::new(
        LinkKey::new("k2025", b"bench-secret-current-key-0123456789".to_vec()).expect("valid key"),
    )
    .with_verification_key(
        LinkKey::new("k2024", b"bench-secret-previous-key-012345678".to_vec()).expect("valid key"),
    )
    .expect("distinct key ids");
    let tenant = TenantId::new("acme-corp").expect("valid tenant");
    let claims = LinkClaims {
        tenant: tenant.clone(),
        alert_id: 12_345,
        recipient: "ops-sms-1".into(),
    };
    let issued = DateTime::from_timestamp(1_760_000_000, 0).expect("in range");
    let now = DateTime::from_timestamp(1_760_003_600, 0).expect("in range");
    let token = signer.sign(&claims, issued).expect("signable claims");
    assert!(signer.verify(&token, Some(&tenant), now).is_ok());

    let mut group = c.benchmark_group("link");
    group.throughput(Throughput::Elements(1));
    group.bench_function("sign", |b| {
        b.iter(|| signer.sign(black_box(&claims), black_box(issued)))
    });
    group.bench_function("verify", |b| {
        b.iter(|| signer.verify(black_box(&token), Some(black_box(&tenant)), black_box(now)))
    });
    group.finish();
}

criterion_group!(benches, link);
criterion_main!(benches);

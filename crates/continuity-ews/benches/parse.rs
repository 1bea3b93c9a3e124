//! Parsing FindItem and GetItem responses of 1 and 100 items: this crate's
//! parser side by side with Thunderbird's `ews` crate (quick-xml + serde)
//! on the same documents (`benches/data/`, schema-valid responses shaped
//! like Exchange 2016's, each item with subject, times, the probe X-header;
//! GetItem items also carry seven Internet headers).

use std::hint::black_box;

use continuity_ews::response::{HttpMeta, parse_http};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ews::{find_item::FindItemResponse, get_item::GetItemResponse, soap::Envelope};

const DOCS: [(&str, &str, usize, &[u8]); 4] = [
    ("FindItem", "1", 1, include_bytes!("data/finditem-1.xml")),
    (
        "FindItem",
        "100",
        100,
        include_bytes!("data/finditem-100.xml"),
    ),
    ("GetItem", "1", 1, include_bytes!("data/getitem-1.xml")),
    (
        "GetItem",
        "100",
        100,
        include_bytes!("data/getitem-100.xml"),
    ),
];

fn ours(op: &'static str, doc: &[u8]) -> usize {
    let r = parse_http(
        op,
        &HttpMeta {
            status: 200,
            ..Default::default()
        },
        doc,
    )
    .expect("parses");
    r.messages.iter().map(|m| m.items.len()).sum()
}

fn theirs(op: &str, doc: &[u8]) -> usize {
    match op {
        "FindItem" => {
            let e =
                Envelope::<FindItemResponse>::from_xml_document(doc).expect("ews parses FindItem");
            e.body
                .response_messages
                .response_messages
                .into_iter()
                .map(|m| match m {
                    ews::ResponseClass::Success(m) => m.root_folder.items.inner.len(),
                    _ => 0,
                })
                .sum()
        }
        _ => {
            let e =
                Envelope::<GetItemResponse>::from_xml_document(doc).expect("ews parses GetItem");
            e.body
                .response_messages
                .response_messages
                .into_iter()
                .map(|m| match m {
                    ews::ResponseClass::Success(m) => m.items.inner.len(),
                    _ => 0,
                })
                .sum()
        }
    }
}

fn parse(c: &mut Criterion) {
    for (op, n, items, doc) in DOCS {
        // Both parsers read every item, or the comparison is void.
        assert_eq!(ours(op, doc), items, "{op}-{n}: continuity-ews");
        assert_eq!(theirs(op, doc), items, "{op}-{n}: ews crate");
        let mut g = c.benchmark_group(format!("parse/{op}"));
        g.throughput(Throughput::Bytes(doc.len() as u64));
        g.bench_with_input(BenchmarkId::new("continuity-ews", n), doc, |b, doc| {
            b.iter(|| ours(op, black_box(doc)))
        });
        g.bench_with_input(BenchmarkId::new("ews-crate", n), doc, |b, doc| {
            b.iter(|| theirs(op, black_box(doc)))
        });
        g.finish();
    }
}

criterion_group!(benches, parse);
criterion_main!(benches);

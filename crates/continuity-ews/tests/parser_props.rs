//! Parser robustness: arbitrary and mutated responses never panic, and every
//! failure is a typed error with a readable message.

use continuity_ews::{
    EwsError,
    response::{HttpMeta, parse_http},
};
use proptest::prelude::*;

fn samples() -> Vec<Vec<u8>> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/ews-schema/harness/samples");
    let mut out: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("EWS samples missing at {}: {e}", dir.display()))
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .collect();
    out.push(include_bytes!("../benches/data/finditem-100.xml").to_vec());
    out.push(include_bytes!("../benches/data/getitem-1.xml").to_vec());
    out.sort();
    out
}

fn check(status: u16, body: &[u8]) {
    let meta = HttpMeta {
        status,
        content_type: Some("text/xml; charset=utf-8"),
        ..Default::default()
    };
    match parse_http("FindItem", &meta, body) {
        Ok(r) => {
            for m in r.messages {
                let _ = m.error("FindItem");
            }
        }
        Err(e) => {
            assert!(!e.to_string().is_empty());
            // Every error is one of the typed variants a caller can act on.
            let _ = (
                e.is_retryable(),
                e.is_configuration(),
                e.is_permission(),
                e.retry_after(),
            );
            if status == 200 {
                assert!(
                    matches!(
                        e,
                        EwsError::Malformed { .. }
                            | EwsError::Fault { .. }
                            | EwsError::ServerBusy { .. }
                            | EwsError::EwsDisabled { .. }
                    ),
                    "{e:?}"
                );
            }
        }
    }
}

#[derive(Debug, Clone)]
enum Mutation {
    Truncate(usize),
    Delete(usize, usize),
    Insert(usize, Vec<u8>),
    Replace(usize, u8),
    Duplicate(usize, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), 0usize..64).prop_map(|(a, n)| Mutation::Delete(a, n)),
        (
            any::<usize>(),
            prop::collection::vec(
                prop_oneof![
                    Just(b'<'),
                    Just(b'>'),
                    Just(b'&'),
                    Just(b'"'),
                    Just(b':'),
                    Just(b'/'),
                    any::<u8>()
                ],
                0..16
            )
        )
            .prop_map(|(a, v)| Mutation::Insert(a, v)),
        (any::<usize>(), any::<u8>()).prop_map(|(a, b)| Mutation::Replace(a, b)),
        (any::<usize>(), 0usize..200).prop_map(|(a, n)| Mutation::Duplicate(a, n)),
    ]
}

fn apply(doc: &mut Vec<u8>, m: &Mutation) {
    let len = doc.len().max(1);
    match m {
        Mutation::Truncate(a) => doc.truncate(a % len),
        Mutation::Delete(a, n) => {
            let a = a % len;
            let b = (a + n).min(doc.len());
            if a < b {
                doc.drain(a..b);
            }
        }
        Mutation::Insert(a, v) => {
            let a = (a % len).min(doc.len());
            doc.splice(a..a, v.iter().copied());
        }
        Mutation::Replace(a, b) => {
            if !doc.is_empty() {
                let i = a % doc.len();
                doc[i] = *b;
            }
        }
        Mutation::Duplicate(a, n) => {
            let a = (a % len).min(doc.len());
            let b = (a + n).min(doc.len());
            let part = doc[a..b].to_vec();
            doc.splice(b..b, part);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes(body in prop::collection::vec(any::<u8>(), 0..512), status in prop_oneof![Just(200u16), Just(500), Just(503), Just(302)]) {
        check(status, &body);
    }

    #[test]
    fn mutated_responses(pick in any::<usize>(), ms in prop::collection::vec(mutation(), 1..6), status in prop_oneof![Just(200u16), Just(500)]) {
        let samples = samples();
        let mut doc = samples[pick % samples.len()].clone();
        for m in &ms {
            apply(&mut doc, m);
        }
        check(status, &doc);
    }
}

fn nested(depth: usize) -> String {
    let mut doc = String::from(
        r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><m:FindItemResponse xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages"><m:ResponseMessages><m:FindItemResponseMessage ResponseClass="Success"><m:Unknown>"#,
    );
    for _ in 0..depth {
        doc.push_str("<a>");
    }
    for _ in 0..depth {
        doc.push_str("</a>");
    }
    doc.push_str("</m:Unknown></m:FindItemResponseMessage></m:ResponseMessages></m:FindItemResponse></s:Body></s:Envelope>");
    doc
}

#[test]
fn deep_nesting_is_skipped_without_recursion() {
    let ok = HttpMeta {
        status: 200,
        ..Default::default()
    };
    for depth in [60_000, 300_000] {
        let r = parse_http("FindItem", &ok, nested(depth).as_bytes()).unwrap();
        assert_eq!(
            r.messages.len(),
            1,
            "skipping is iterative: no stack overflow at depth {depth}"
        );
    }
}

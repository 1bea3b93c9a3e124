//! Feeds arbitrary bytes, with an arbitrary HTTP status, to the EWS response
//! parser: it must never panic, and an error must be typed and printable.
#![no_main]

use continuity_ews::response::{parse_http, HttpMeta};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (status, body) = match data.split_first() {
        Some((s, rest)) => ([200u16, 500, 503, 302, 401][usize::from(*s) % 5], rest),
        None => (200, data),
    };
    let meta = HttpMeta { status, content_type: Some("text/xml"), ..Default::default() };
    match parse_http("FindItem", &meta, body) {
        Ok(r) => {
            for m in &r.messages {
                let _ = m.error("FindItem");
            }
        }
        Err(e) => {
            let _ = (e.to_string(), e.is_retryable(), e.retry_after());
        }
    }
});

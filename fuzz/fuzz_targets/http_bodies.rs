//! The HTTP source's body handling on arbitrary bytes: the JSON array splitter, the NDJSON
//! splitter, the single-document trim, the `_bulk` parser (and its response writer), and
//! gzip/zstd decoding under a size cap. No panic; every span lies within the input; the
//! bulk response is valid JSON.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use sluice_connectors::sources::http::{bodies, bulk};

fn check(data: &[u8], spans: &[(u32, u32)]) {
    for &(s, l) in spans {
        assert!(
            s as usize + l as usize <= data.len(),
            "span {s}+{l} past {}",
            data.len()
        );
        assert!(l > 0, "empty span");
    }
}

fuzz_target!(|data: &[u8]| {
    let mut spans = Vec::new();
    if bodies::split_array(data, &mut spans).is_ok() {
        check(data, &spans);
        let flat = bodies::flatten_line_breaks(Bytes::copy_from_slice(data), &spans);
        assert_eq!(flat.len(), data.len());
        assert!(!bodies::spans_have_line_breaks(&flat, &spans));
    } else {
        assert!(spans.is_empty());
    }
    spans.clear();
    bodies::split_ndjson(data, &mut spans).unwrap();
    check(data, &spans);
    for &(s, l) in &spans {
        assert!(!data[s as usize..(s + l) as usize].contains(&b'\n'));
    }
    spans.clear();
    bodies::split_single(data, &mut spans).unwrap();
    check(data, &spans);

    spans.clear();
    let mut items = Vec::new();
    bulk::parse(data, Some("idx"), &mut spans, &mut items);
    check(data, &spans);
    let accepted = items
        .iter()
        .filter(|i| matches!(i.outcome, bulk::Outcome::Accepted(_)))
        .count();
    assert_eq!(accepted, spans.len());
    let mut out = Vec::new();
    bulk::write_response(&mut out, 1, &items, &mut bulk::IdGen::default(), &mut 0);
    serde_json::from_slice::<serde_json::Value>(&out).expect("bulk response is JSON");

    let limit = 1 << 16;
    for enc in [bodies::Encoding::Gzip, bodies::Encoding::Zstd] {
        if let Ok(out) = bodies::decode(enc, Bytes::copy_from_slice(data), limit) {
            assert!(out.len() <= limit);
        }
    }
});

//! The JSON tape scanner on arbitrary lines: never panics, and every node it records lies
//! inside the event it belongs to.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sluice_engine::batch::{Batch, EventForm};
use sluice_operators::parsers::json::parse_batch;

fuzz_target!(|data: &[u8]| {
    let mut batch = Batch::from_lines(bytes::Bytes::copy_from_slice(data), 0);
    let mut rejected = Vec::new();
    let parsed = parse_batch(&mut batch, &mut rejected);
    assert_eq!(parsed + rejected.len(), batch.len());
    for ev in &batch.events {
        if ev.form != EventForm::Json {
            continue;
        }
        let (lo, hi) = (ev.start as usize, (ev.start + ev.len) as usize);
        for e in &batch.fields.entries[ev.fields_start as usize..ev.fields_end as usize] {
            assert!(e.value_start as usize >= lo && (e.value_start + e.value_len) as usize <= hi);
            assert!(e.end as usize <= batch.fields.entries.len());
        }
    }
    // Encoding what was parsed never panics either.
    let mut out = Vec::new();
    sluice_engine::encode::encode_batch(sluice_engine::encode::Encoding::Ndjson, &batch, &mut out);
});

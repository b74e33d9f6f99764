//! JSON with a filter on one field: `parse` (full, validating tape) then
//! `filter level != "debug"`, against lazy lookups that find only the field the filter reads.
//!
//! * `tape_parse_then_filter`: the pipeline's path: `parse_batch` fills the tape, the
//!   compiled CEL condition reads `level` from it, `retain` drops the debug events.
//! * `filter_only_on_parsed`: the filter alone on already parsed batches.
//! * `sonic_rs_lazy_get`: `sonic_rs::get(line, ["level"])` per line: skips to the key
//!   without building anything, and without validating the rest of the line.
//! * `simd_json_tape_then_lookup`: simd-json's tape (reused buffers), then the key lookup.
//!
//! Data: as for `json_tape` (`common::load_lines("json", common::STANDARD_SEED)`): the first
//! 100,000 lines of `/tmp/bench-data/events-2m.ndjson` when it exists, otherwise 100,000
//! lines from `gen_logs.py --format json --seed 42`, cut into batches of 1,024 lines
//! (`common::batches_of`).
//!
//! Throughput is line bytes per batch of 1,024; events/s = 1,024 / time.
//! Run: `cargo bench -p sluice-perf --bench filter -- --warm-up-time 1 --measurement-time 3`

mod common;

use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use sluice_operators::condition::Condition;
use sluice_operators::parsers::json::parse_batch;
use std::cell::Cell;

fn bench(c: &mut Criterion) {
    let batches = common::batches_of(&common::load_lines("json", common::STANDARD_SEED));
    let per_batch = common::bytes_per_batch(&batches);
    let cond = Condition::compile("level != \"debug\"").expect("condition");
    let mut parsed = batches.clone();
    for b in &mut parsed {
        let mut rejected = Vec::new();
        parse_batch(b, &mut rejected);
        assert!(rejected.is_empty());
    }
    // The lazy readers must agree with the tape on which events pass.
    let want: usize = parsed
        .iter()
        .map(|b| b.events.iter().filter(|e| cond.matches(b, e)).count())
        .sum();
    let lazy: usize = batches
        .iter()
        .map(|b| {
            b.events
                .iter()
                .filter(|e| {
                    let v = sonic_rs::get(b.line(e), ["level"]).expect("level");
                    v.as_raw_str() != "\"debug\""
                })
                .count()
        })
        .sum();
    assert_eq!(want, lazy);

    let mut g = c.benchmark_group("json_filter");
    g.throughput(Throughput::Bytes(per_batch));
    let next = |k: &Cell<usize>, from: &'static [sluice_engine::batch::Batch]| {
        let i = k.get();
        k.set((i + 1) % from.len());
        &from[i]
    };
    let batches: &'static [_] = Box::leak(batches.into_boxed_slice());
    let parsed: &'static [_] = Box::leak(parsed.into_boxed_slice());

    let k = Cell::new(0);
    g.bench_function("tape_parse_then_filter", |bench| {
        let mut rejected = Vec::new();
        bench.iter_batched_ref(
            || next(&k, batches).clone(),
            |batch| {
                rejected.clear();
                parse_batch(batch, &mut rejected);
                black_box(batch.retain(|b, e| cond.matches(b, e)))
            },
            BatchSize::SmallInput,
        )
    });

    let k = Cell::new(0);
    g.bench_function("filter_only_on_parsed", |bench| {
        bench.iter_batched_ref(
            || next(&k, parsed).clone(),
            |batch| black_box(batch.retain(|b, e| cond.matches(b, e))),
            BatchSize::SmallInput,
        )
    });

    let k = Cell::new(0);
    g.bench_function("sonic_rs_lazy_get", |bench| {
        bench.iter(|| {
            let batch = next(&k, batches);
            let mut kept = 0usize;
            for ev in &batch.events {
                if let Ok(v) = sonic_rs::get(batch.line(ev), ["level"]) {
                    kept += (v.as_raw_str() != "\"debug\"") as usize;
                }
            }
            black_box(kept)
        })
    });

    let k = Cell::new(0);
    g.bench_function("simd_json_tape_then_lookup", |bench| {
        use simd_json::prelude::*;
        let mut copy = Vec::with_capacity(4096);
        let mut buffers = simd_json::Buffers::new(4096);
        bench.iter(|| {
            let batch = next(&k, batches);
            let mut kept = 0usize;
            for ev in &batch.events {
                copy.clear();
                copy.extend_from_slice(batch.line(ev));
                let tape = simd_json::to_tape_with_buffers(&mut copy, &mut buffers).unwrap();
                let v = tape.as_value();
                kept += (v.get_str("level") != Some("debug")) as usize;
            }
            black_box(kept)
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

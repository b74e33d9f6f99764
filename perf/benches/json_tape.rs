//! JSON parsing into the field tape, against serde_json and simd-json.
//!
//! Data (`common::load_lines("json", common::STANDARD_SEED)`): the first 100,000 lines of
//! `/tmp/bench-data/events-2m.ndjson` when it exists, otherwise 100,000 lines from
//! `gen_logs.py --format json --seed 42` (written to a temp file). They are cut into batches
//! of 1,024 lines (`common::batches_of`, i.e. `Batch::from_lines`), as a source would make
//! them; each iteration parses one batch, rotating through all of them. Throughput is the
//! mean bytes of a batch (line bytes, newlines excluded); events/s = 1,024 / time.
//!
//! * `sluice_parse_batch`: `parse_batch` filling the batch's tape (zero-copy, validating).
//! * `serde_json_value`: `serde_json::from_slice::<serde_json::Value>` per line.
//! * `simd_json_to_tape`: `simd_json::to_tape` on a copy of each line (simd-json parses in
//!   place, so it needs a mutable copy; the copy is part of its cost).
//! * `simd_json_tape_reused_buffers`: the same with `to_tape_with_buffers`, buffers reused.
//! * `simd_json_borrowed_value`: `simd_json::to_borrowed_value` on a copy of each line.
//!
//! Run: `cargo bench -p sluice-perf --bench json_tape -- --warm-up-time 1 --measurement-time 3`

mod common;

use common::BATCH_LINES;
use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use sluice_operators::parsers::json::parse_batch;
use std::cell::Cell;

fn bench(c: &mut Criterion) {
    let batches = common::batches_of(&common::load_lines("json", common::STANDARD_SEED));
    let per_batch = common::bytes_per_batch(&batches);
    eprintln!(
        "json_tape: {} batches of {BATCH_LINES} lines, {per_batch} bytes per batch on average",
        batches.len()
    );
    // Every line must parse: the bench measures the success path.
    for b in &batches {
        let mut b = b.clone();
        let mut rejected = Vec::new();
        assert_eq!(
            parse_batch(&mut b, &mut rejected),
            BATCH_LINES,
            "{rejected:?}"
        );
    }

    let mut g = c.benchmark_group("json_tape");
    g.throughput(Throughput::Bytes(per_batch));
    let next = |k: &Cell<usize>| {
        let i = k.get();
        k.set((i + 1) % batches.len());
        &batches[i]
    };

    let k = Cell::new(0);
    g.bench_function("sluice_parse_batch", |bench| {
        let mut rejected = Vec::new();
        bench.iter_batched_ref(
            || next(&k).clone(),
            |batch| {
                rejected.clear();
                black_box(parse_batch(batch, &mut rejected))
            },
            BatchSize::SmallInput,
        )
    });

    let k = Cell::new(0);
    g.bench_function("serde_json_value", |bench| {
        bench.iter(|| {
            let batch = next(&k);
            for ev in &batch.events {
                let v: serde_json::Value = serde_json::from_slice(batch.line(ev)).unwrap();
                black_box(&v);
            }
        })
    });

    let k = Cell::new(0);
    g.bench_function("simd_json_to_tape", |bench| {
        let mut copy = Vec::with_capacity(4096);
        bench.iter(|| {
            let batch = next(&k);
            for ev in &batch.events {
                copy.clear();
                copy.extend_from_slice(batch.line(ev));
                let tape = simd_json::to_tape(&mut copy).unwrap();
                black_box(&tape);
            }
        })
    });

    let k = Cell::new(0);
    g.bench_function("simd_json_tape_reused_buffers", |bench| {
        let mut copy = Vec::with_capacity(4096);
        let mut buffers = simd_json::Buffers::new(4096);
        bench.iter(|| {
            let batch = next(&k);
            for ev in &batch.events {
                copy.clear();
                copy.extend_from_slice(batch.line(ev));
                let tape = simd_json::to_tape_with_buffers(&mut copy, &mut buffers).unwrap();
                black_box(&tape);
            }
        })
    });

    let k = Cell::new(0);
    g.bench_function("simd_json_borrowed_value", |bench| {
        let mut copy = Vec::with_capacity(4096);
        bench.iter(|| {
            let batch = next(&k);
            for ev in &batch.events {
                copy.clear();
                copy.extend_from_slice(batch.line(ev));
                let v = simd_json::to_borrowed_value(&mut copy).unwrap();
                black_box(&v);
            }
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

//! The shard's whole chain for the steady-rate latency workload (`sluice-perf --latency`):
//! a batch of RFC 5424 lines as `sluice-loadgen --format syslog5424` sends them (a JSON
//! message and a `[loadgen@32473 ...]` element) goes through the `parse` transform the
//! `syslog` source places on the shards (`format = "syslog"`, `mode = "rfc5424"`), then each
//! event is encoded as the `http` sink's NDJSON body line (`encode::write_ndjson`).
//!
//! * `parse`: the transform alone (a fresh copy of the batch each iteration, as a source
//!   hands one over).
//! * `parse_then_encode`: the transform and the encoding: the shard's per-event work.
//! * `encode`: the encoding alone, of an already parsed batch.
//!
//! The cases run on batches of 1,024 lines (throughput: events per batch) and of 100 (what
//! a 1 ms read pace makes of 100,000 events/s), to show how much a small batch costs per event.
//!
//! Data: `SLUICE_LOADGEN_5424_FILE` when set (write one with
//! `sluice-loadgen --format syslog5424 --count 20480 --seed 7 -o FILE`), else lines built
//! here in the loadgen's shape from `gen_logs.py --format json` messages.
//!
//! Run: `cargo bench -p sluice-perf --bench shard_chain -- --warm-up-time 1 --measurement-time 3`

mod common;

use bytes::Bytes;
use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use sluice_engine::batch::Batch;
use sluice_engine::encode::write_ndjson;
use sluice_engine::metrics::{ComponentKind, Registry};
use sluice_engine::pipeline::{Emitter, Transform};
use sluice_operators::transforms::parse::{Parse, ParseConfig};
use std::cell::Cell;

/// Lines in the loadgen's RFC 5424 shape.
fn load_lines() -> Vec<u8> {
    if let Some(path) = std::env::var_os("SLUICE_LOADGEN_5424_FILE") {
        return std::fs::read(&path).expect("read SLUICE_LOADGEN_5424_FILE");
    }
    let json = common::load_lines("json", common::PARSE_SEED);
    let mut out = Vec::with_capacity(json.len() * 2);
    for (seq, msg) in json
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .enumerate()
    {
        let pri = 134 + (seq % 4);
        out.extend_from_slice(
            format!(
                "<{pri}>1 2026-11-20T12:00:00.{:03}Z worker-{:03} stock-{:02} {} req \
                 [loadgen@32473 seq=\"{seq}\" sent_ns=\"1795312919959781426\"] ",
                seq % 1000,
                seq % 251,
                seq % 13,
                10_000 + seq % 50_000
            )
            .as_bytes(),
        );
        out.extend_from_slice(msg);
        out.push(b'\n');
    }
    out
}

fn parse_transform() -> Parse {
    let cfg: ParseConfig =
        toml::from_str("format = \"syslog\"\nmode = \"rfc5424\"\n").expect("parse config");
    let reg = Registry::new();
    let m = reg.component("in", ComponentKind::Source, "syslog");
    cfg.build(&m).expect("parse transform")
}

fn batches(lines: &[u8], per_batch: usize) -> Vec<Batch> {
    let all: Vec<&[u8]> = lines
        .split_inclusive(|b| *b == b'\n')
        .filter(|l| l.len() > 1)
        .collect();
    all.chunks(per_batch)
        .filter(|c| c.len() == per_batch)
        .map(|c| Batch::from_lines(Bytes::from(c.concat()), 0))
        .collect()
}

fn run_parse(p: &mut Parse, em: &mut Emitter, batch: Batch) -> Batch {
    p.process(batch, em);
    let mut out = em.take();
    assert_eq!(out.len(), 1, "every line parses");
    out.pop().expect("one batch").1
}

fn bench(c: &mut Criterion) {
    let lines = load_lines();
    let mut g = c.benchmark_group("shard_chain");
    for per_batch in [1024usize, 100] {
        let input = batches(&lines, per_batch);
        assert!(!input.is_empty());
        let mut p = parse_transform();
        let mut em = Emitter::with_connected(0b11);
        let parsed: Vec<Batch> = input
            .iter()
            .map(|b| run_parse(&mut p, &mut em, b.clone()))
            .collect();
        let bytes: usize = parsed
            .iter()
            .map(|b| {
                let mut out = Vec::new();
                for ev in &b.events {
                    write_ndjson(b, ev, &mut out);
                }
                out.len()
            })
            .sum();
        eprintln!(
            "shard_chain: {} batches of {per_batch}, {:.0} JSON bytes per event",
            input.len(),
            bytes as f64 / (input.len() * per_batch) as f64
        );
        g.throughput(Throughput::Elements(per_batch as u64));
        let next = |k: &Cell<usize>, len: usize| {
            let i = k.get();
            k.set((i + 1) % len);
            i
        };

        let k = Cell::new(0);
        g.bench_function(format!("parse/{per_batch}"), |bench| {
            bench.iter_batched(
                || input[next(&k, input.len())].clone(),
                |batch| black_box(run_parse(&mut p, &mut em, batch).len()),
                BatchSize::SmallInput,
            )
        });

        let k = Cell::new(0);
        let mut out = Vec::with_capacity(1 << 20);
        g.bench_function(format!("parse_then_encode/{per_batch}"), |bench| {
            bench.iter_batched(
                || input[next(&k, input.len())].clone(),
                |batch| {
                    let b = run_parse(&mut p, &mut em, batch);
                    out.clear();
                    for ev in &b.events {
                        write_ndjson(&b, ev, &mut out);
                        out.push(b'\n');
                    }
                    black_box(out.len())
                },
                BatchSize::SmallInput,
            )
        });

        let k = Cell::new(0);
        g.bench_function(format!("encode/{per_batch}"), |bench| {
            bench.iter(|| {
                let b = &parsed[next(&k, parsed.len())];
                out.clear();
                for ev in &b.events {
                    write_ndjson(b, ev, &mut out);
                    out.push(b'\n');
                }
                black_box(out.len())
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

//! `write_json_str`, the JSON string writer every NDJSON sink runs for each string field.
//!
//! Data: 1,024 message strings per iteration, each escaped into one reused buffer:
//! * `json_in_message`: what `sluice-loadgen --format syslog5424` puts in MSG (a JSON object
//!   as text: a quote every few bytes), the latency run's hot path;
//! * `plain_ascii`: log text without anything to escape;
//! * `non_ascii`: the same text with a few accented letters and an emoji (the UTF-8 check);
//! * `short_fields`: the short values a parsed syslog event carries besides its message (host,
//!   app name, proc id, msg id, structured-data values: mostly under 16 bytes).
//!
//! Throughput is input bytes.
//!
//! Run: `cargo bench -p sluice-perf --bench json_escape -- --warm-up-time 1 --measurement-time 3`

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use sluice_engine::value::write_json_str;

fn messages(kind: &str) -> Vec<String> {
    (0..1024u32)
        .map(|i| match kind {
            "json_in_message" => format!(
                "{{\"ts\":\"2026-11-20T12:00:00.{:03}Z\",\"level\":\"info\",\"service\":\"stock-{:02}\",\
                 \"host\":\"worker-{:03}\",\"trace_id\":\"d1d7f40c6b26b0866acc19be8087e{:03x}\",\
                 \"msg\":\"cart updated qty={}\",\"http\":{{\"method\":\"GET\",\"path\":\"/api/v1/sessions/{}\",\
                 \"status\":200,\"latency_ms\":84.7}},\"user\":{{\"id\":{}}}}}",
                i % 1000, i % 20, i % 300, i, i % 97, i * 7, i * 13
            ),
            "plain_ascii" => format!(
                "GET /api/v1/sessions/{} completed in {} ms for user {} from worker-{:03} (cache hit ratio 0.{})",
                i * 7, i % 97, i * 13, i % 300, i % 10
            ),
            "short_fields" => [
                format!("worker-{:03}", i % 300),
                format!("stock-{:02}", i % 20),
                format!("{}", 20000 + i * 37),
                "req".to_string(),
                format!("{}", i),
                format!("17952978617{:08}", i * 7919),
            ][i as usize % 6]
                .clone(),
            _ => format!(
                "Bestätigung für Benutzer {} gesendet — café ouvert à {} h 😀 (worker-{:03})",
                i * 13, i % 24, i % 300
            ),
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("write_json_str");
    for kind in [
        "json_in_message",
        "plain_ascii",
        "non_ascii",
        "short_fields",
    ] {
        let msgs = messages(kind);
        let bytes: usize = msgs.iter().map(|m| m.len()).sum();
        let mut out = Vec::with_capacity(bytes * 2);
        group.throughput(Throughput::Bytes(bytes as u64));
        group.bench_function(kind, |b| {
            b.iter(|| {
                out.clear();
                for m in &msgs {
                    write_json_str(black_box(m.as_bytes()), &mut out);
                }
                black_box(out.len())
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

//! The line parsers of the non-JSON formats: Apache combined, logfmt, key-value, CRI.
//!
//! Data: 100,000 events from `gen_logs.py --seed 1` (beside the repository, as for
//! `json_tape`). Apache lines are the generator's `--format apache`; the other formats are
//! rendered here from its `--format json` events: logfmt with the nested fields flattened
//! (`http.status=200`), key-value as `key: value` pairs separated by `, `, and CRI as
//! `<time> stdout F <json line>` with every tenth line split into a `P` and an `F` part.
//! Lines are taken in chunks of 1,024, rotating through all of them; each iteration parses
//! one chunk into a sink that only counts calls and value bytes, so the parser is what is
//! measured. Throughput is the mean bytes of a chunk (newlines excluded).
//!
//! Run: `cargo bench -p sluice-perf --bench parse_formats -- --warm-up-time 1 --measurement-time 3`

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use sluice_operators::parsers::apache::{ApacheFormat, ApacheParser};
use sluice_operators::parsers::cri::CriParser;
use sluice_operators::parsers::kv::{KvOptions, KvParser};
use sluice_operators::parsers::logfmt::LogfmtParser;
use sluice_operators::parsers::sink::{FieldSink, LineParser, Parsed};
use sluice_operators::parsers::timestamp::Timestamp;
use std::cell::Cell;
use std::path::PathBuf;

const LINES: usize = 100_000;
const CHUNK_LINES: usize = 1024;

/// `LINES` lines of `gen_logs.py --format FORMAT --seed 1`.
fn generate(format: &str) -> Vec<u8> {
    let here = env!("CARGO_MANIFEST_DIR");
    let script = [
        PathBuf::from(format!("{here}/../../shared/bench/gen_logs.py")),
        PathBuf::from("/work/shared/bench/gen_logs.py"),
    ]
    .into_iter()
    .find(|p| p.exists())
    .expect("gen_logs.py not found (shared/bench beside the repository)");
    let out = std::process::Command::new("python3")
        .arg(&script)
        .args([
            "--format",
            format,
            "--lines",
            &LINES.to_string(),
            "--seed",
            "1",
        ])
        .output()
        .expect("python3");
    assert!(out.status.success(), "gen_logs.py failed");
    out.stdout
}

/// Lines held in one buffer, cut into chunks of `CHUNK_LINES`.
struct Lines {
    data: Vec<u8>,
    spans: Vec<(usize, usize)>,
}

impl Lines {
    fn new() -> Lines {
        Lines {
            data: Vec::new(),
            spans: Vec::new(),
        }
    }

    fn push(&mut self, line: &[u8]) {
        let start = self.data.len();
        self.data.extend_from_slice(line);
        self.spans.push((start, self.data.len()));
    }

    fn chunks(&self) -> Vec<&[(usize, usize)]> {
        self.spans.chunks_exact(CHUNK_LINES).collect()
    }

    fn bytes_per_chunk(&self) -> u64 {
        let chunks = self.chunks();
        let total: usize = chunks
            .iter()
            .flat_map(|c| c.iter())
            .map(|(s, e)| e - s)
            .sum();
        (total / chunks.len()) as u64
    }
}

fn split_lines(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    data.split(|&b| b == b'\n').filter(|l| !l.is_empty())
}

/// Appends `prefix`-flattened `key=value` pairs of a JSON object, quoting where logfmt needs.
fn render_flat(
    prefix: &str,
    v: &serde_json::Value,
    pair_sep: &str,
    kv_sep: &str,
    out: &mut String,
) {
    let Some(map) = v.as_object() else {
        return;
    };
    for (k, v) in map {
        let key = format!("{prefix}{k}");
        if v.is_object() {
            render_flat(&format!("{key}."), v, pair_sep, kv_sep, out);
            continue;
        }
        let text = match v {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        if !out.is_empty() {
            out.push_str(pair_sep);
        }
        out.push_str(&key);
        out.push_str(kv_sep);
        if text.is_empty() || text.contains([' ', '"', '=', ',', '\\']) {
            out.push('"');
            out.push_str(&text.replace('\\', "\\\\").replace('"', "\\\""));
            out.push('"');
        } else {
            out.push_str(&text);
        }
    }
}

struct Data {
    apache: Lines,
    logfmt: Lines,
    kv: Lines,
    cri: Lines,
}

fn data() -> Data {
    let mut apache = Lines::new();
    for line in split_lines(&generate("apache")) {
        apache.push(line);
    }
    let json = generate("json");
    let (mut logfmt, mut kv, mut cri) = (Lines::new(), Lines::new(), Lines::new());
    for (i, line) in split_lines(&json).enumerate() {
        let v: serde_json::Value = serde_json::from_slice(line).expect("generator JSON");
        let mut s = String::new();
        render_flat("", &v, " ", "=", &mut s);
        logfmt.push(s.as_bytes());
        s.clear();
        render_flat("", &v, ", ", ": ", &mut s);
        kv.push(s.as_bytes());
        let ts = v["ts"].as_str().unwrap_or("2026-11-20T12:00:00Z");
        if i % 10 == 9 {
            let (head, tail) = line.split_at(line.len() / 2);
            let mut part = format!("{ts} stdout P ").into_bytes();
            part.extend_from_slice(head);
            cri.push(&part);
            let mut part = format!("{ts} stdout F ").into_bytes();
            part.extend_from_slice(tail);
            cri.push(&part);
        } else {
            let mut full = format!("{ts} stdout F ").into_bytes();
            full.extend_from_slice(line);
            cri.push(&full);
        }
    }
    Data {
        apache,
        logfmt,
        kv,
        cri,
    }
}

/// Counts what a parser writes, so that the work is not optimised away.
#[derive(Default)]
struct CountingSink {
    calls: u64,
    value_bytes: u64,
}

impl FieldSink for CountingSink {
    fn str(&mut self, key: &[u8], value: &[u8]) {
        self.calls += 1;
        self.value_bytes += (key.len() + value.len()) as u64;
    }
    fn str_json_escaped(&mut self, key: &[u8], value: &[u8]) {
        self.str(key, value)
    }
    fn int(&mut self, _: &[u8], value: i64) {
        self.calls += 1;
        self.value_bytes += value as u64 & 1;
    }
    fn float(&mut self, _: &[u8], _: f64) {
        self.calls += 1;
    }
    fn bool(&mut self, _: &[u8], _: bool) {
        self.calls += 1;
    }
    fn null(&mut self, _: &[u8]) {
        self.calls += 1;
    }
    fn timestamp(&mut self, _: &[u8], value: Timestamp) {
        self.calls += 1;
        self.value_bytes += value.unix_nanos as u64 & 1;
    }
    fn begin_object(&mut self, _: &[u8]) {
        self.calls += 1;
    }
    fn end_object(&mut self) {
        self.calls += 1;
    }
}

/// Benchmarks `parser` over `lines`; every line must parse.
fn bench_parser<P: LineParser>(c: &mut Criterion, name: &str, lines: &Lines, mut parser: P) {
    let chunks = lines.chunks();
    assert!(!chunks.is_empty(), "{name}: no data");
    let mut events = 0;
    for &(s, e) in &lines.spans {
        match parser.parse(&lines.data[s..e], &mut CountingSink::default()) {
            Ok(Parsed::Event) => events += 1,
            Ok(Parsed::Pending) => {}
            Err(err) => panic!(
                "{name}: {err}: {}",
                String::from_utf8_lossy(&lines.data[s..e])
            ),
        }
    }
    eprintln!(
        "parse_formats/{name}: {} lines ({events} events), {} bytes per chunk of {CHUNK_LINES}",
        lines.spans.len(),
        lines.bytes_per_chunk()
    );
    let mut g = c.benchmark_group("parse_formats");
    g.throughput(Throughput::Bytes(lines.bytes_per_chunk()));
    let k = Cell::new(0);
    g.bench_function(name, |b| {
        b.iter(|| {
            let i = k.get();
            k.set((i + 1) % chunks.len());
            let mut sink = CountingSink::default();
            for &(s, e) in chunks[i] {
                let _ = black_box(parser.parse(&lines.data[s..e], &mut sink));
            }
            black_box((sink.calls, sink.value_bytes))
        })
    });
    g.finish();
}

fn bench(c: &mut Criterion) {
    let data = data();
    bench_parser(
        c,
        "apache_combined",
        &data.apache,
        ApacheParser::new(ApacheFormat::Combined),
    );
    bench_parser(c, "logfmt", &data.logfmt, LogfmtParser::new());
    let kv_options = KvOptions {
        field_split: ", ".into(),
        value_split: ": ".into(),
        ..KvOptions::default()
    };
    bench_parser(
        c,
        "kv",
        &data.kv,
        KvParser::new(&kv_options).expect("valid options"),
    );
    bench_parser(c, "cri", &data.cri, CriParser::default());
}

criterion_group!(benches, bench);
criterion_main!(benches);

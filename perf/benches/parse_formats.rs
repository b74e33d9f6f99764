//! The line parsers of the non-JSON formats: Apache combined, logfmt, key-value, CRI.
//!
//! Data: 100,000 events from `gen_logs.py --seed 1` (beside the repository), loaded with
//! `common::load_lines(format, common::PARSE_SEED)` (always generated; `json_tape`'s
//! standard file is seed 42). Apache lines are the generator's `--format apache`; the other
//! formats are rendered here from its `--format json` events: logfmt with the nested fields
//! flattened (`http.status=200`), key-value as `key: value` pairs separated by `, `, and CRI
//! as `<time> stdout F <json line>` with every tenth line split into a `P` and an `F` part.
//! Lines are taken in chunks of 1,024 (`common::chunk_lines`), rotating through all of them;
//! each iteration parses one chunk into `common::CountingSink`, which only counts calls and
//! value bytes, so the parser is what is measured. Throughput is the mean bytes of a chunk
//! (newlines excluded).
//!
//! Run: `cargo bench -p sluice-perf --bench parse_formats -- --warm-up-time 1 --measurement-time 3`

mod common;

use common::{CountingSink, CHUNK_LINES};
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use sluice_operators::parsers::apache::{ApacheFormat, ApacheParser};
use sluice_operators::parsers::cri::CriParser;
use sluice_operators::parsers::kv::{KvOptions, KvParser};
use sluice_operators::parsers::logfmt::LogfmtParser;
use sluice_operators::parsers::sink::{LineParser, Parsed};
use std::cell::Cell;

/// Lines held in one buffer (`bench_parser` cuts them into chunks of `CHUNK_LINES`).
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

    /// Every line, in order.
    fn lines(&self) -> impl Iterator<Item = &[u8]> {
        self.spans.iter().map(|&(s, e)| &self.data[s..e])
    }
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
    for line in common::split_lines(&common::load_lines("apache", common::PARSE_SEED)) {
        apache.push(line);
    }
    let json = common::load_lines("json", common::PARSE_SEED);
    let (mut logfmt, mut kv, mut cri) = (Lines::new(), Lines::new(), Lines::new());
    for (i, line) in common::split_lines(&json).enumerate() {
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

/// Benchmarks `parser` over `lines`; every line must parse.
fn bench_parser<P: LineParser>(c: &mut Criterion, name: &str, lines: &Lines, mut parser: P) {
    let chunks = common::chunk_lines(lines.lines());
    let per_chunk = common::bytes_per_chunk(&chunks);
    let mut events = 0;
    for line in lines.lines() {
        match parser.parse(line, &mut CountingSink::default()) {
            Ok(Parsed::Event) => events += 1,
            Ok(Parsed::Pending) => {}
            Err(err) => panic!("{name}: {err}: {}", String::from_utf8_lossy(line)),
        }
    }
    eprintln!(
        "parse_formats/{name}: {} lines ({events} events), {per_chunk} bytes per chunk of {CHUNK_LINES}",
        lines.spans.len(),
    );
    let mut g = c.benchmark_group("parse_formats");
    g.throughput(Throughput::Bytes(per_chunk));
    let k = Cell::new(0);
    g.bench_function(name, |b| {
        b.iter(|| {
            let i = k.get();
            k.set((i + 1) % chunks.len());
            let mut sink = CountingSink::default();
            for line in &chunks[i] {
                let _ = black_box(parser.parse(line, &mut sink));
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

//! The grok and regex line parsers on Apache combined log lines.
//!
//! Data: 100,000 lines from `gen_logs.py --format apache --seed 1`
//! (`common::load_lines("apache", common::PARSE_SEED)`, written to a temp file). Each
//! iteration parses 1,024 consecutive lines (`common::chunk_lines`), rotating through all of
//! them; throughput is the mean bytes of such a chunk (line bytes, newlines excluded). The
//! sink (`common::CountingSink`) only counts calls and value bytes, so the numbers are the
//! parsers' own cost.
//!
//! * `grok_combinedapachelog`: `GrokParser` with `%{COMBINEDAPACHELOG}`.
//! * `regex_combined_equivalent`: `RegexParser` with a hand-written regex capturing the
//!   same twelve fields (what a user would write instead of grok).
//!
//! Run: `cargo bench -p sluice-perf --bench parse_grok -- --warm-up-time 1 --measurement-time 3`

mod common;

use common::{CountingSink, CHUNK_LINES};
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use sluice_operators::parsers::grok::GrokParser;
use sluice_operators::parsers::regex::RegexParser;
use sluice_operators::parsers::sink::LineParser;

/// The same fields as `%{COMBINEDAPACHELOG}`, written directly.
const COMBINED_REGEX: &str = concat!(
    r#"^(?P<clientip>\S+) (?P<ident>\S+) (?P<auth>\S+) \[(?P<timestamp>[^\]]+)\] "#,
    r#""(?:(?P<verb>\w+) (?P<request>\S+)(?: HTTP/(?P<httpversion>[0-9.]+))?|(?P<rawrequest>[^"]*))" "#,
    r#"(?P<response>\d+) (?:(?P<bytes>\d+)|-) (?P<referrer>"(?:\\.|[^\\"])*") (?P<agent>"(?:\\.|[^\\"])*")"#,
);

/// Parses every line of `chunk`; every line must parse. Returns the sink, whose `calls` is
/// the number of fields written (11 per line).
fn parse_chunk<P: LineParser>(parser: &mut P, chunk: &[&[u8]]) -> CountingSink {
    let mut sink = CountingSink::default();
    for line in chunk {
        if parser.parse(line, &mut sink).is_err() {
            panic!("did not parse: {}", String::from_utf8_lossy(line));
        }
    }
    sink
}

fn bench(c: &mut Criterion) {
    let data = common::load_lines("apache", common::PARSE_SEED);
    let chunks = common::chunk_lines(common::split_lines(&data));
    let per_chunk = common::bytes_per_chunk(&chunks);
    eprintln!(
        "parse_grok: {} chunks of {CHUNK_LINES} lines, {per_chunk} bytes per chunk on average",
        chunks.len()
    );

    let mut grok = GrokParser::new(&["%{COMBINEDAPACHELOG}".to_string()], &[]).expect("grok");
    let mut regex = RegexParser::new(&[COMBINED_REGEX.to_string()]).expect("regex");
    // Both parsers see the success path on every line, with the same number of fields
    // (the generator always writes an HTTP version and a byte count: 11 fields).
    for chunk in &chunks {
        assert_eq!(parse_chunk(&mut grok, chunk).calls, 11 * chunk.len() as u64);
        assert_eq!(
            parse_chunk(&mut regex, chunk).calls,
            11 * chunk.len() as u64
        );
    }

    let mut g = c.benchmark_group("parse_grok");
    g.throughput(Throughput::Bytes(per_chunk));
    let mut k = 0;
    g.bench_function("grok_combinedapachelog", |b| {
        b.iter(|| {
            k = (k + 1) % chunks.len();
            let sink = parse_chunk(&mut grok, &chunks[k]);
            black_box((sink.calls, sink.value_bytes))
        })
    });
    let mut k = 0;
    g.bench_function("regex_combined_equivalent", |b| {
        b.iter(|| {
            k = (k + 1) % chunks.len();
            let sink = parse_chunk(&mut regex, &chunks[k]);
            black_box((sink.calls, sink.value_bytes))
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

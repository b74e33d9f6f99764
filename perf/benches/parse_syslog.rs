//! The syslog parser on RFC 5424 lines and on RFC 3164 lines derived from them.
//!
//! Data: the file named by `SLUICE_SYSLOG_BENCH_FILE` when set (RFC 5424 lines), otherwise
//! 100,000 lines from `gen_logs.py --format syslog --seed 1`
//! (`common::load_lines("syslog", common::PARSE_SEED)`, written to a temp file). The
//! RFC 3164 lines are the same events rewritten as `<PRI>Mmm dd HH:MM:SS host app[pid]: msg`.
//! Each iteration parses a chunk of 1,024 lines (`common::chunk_lines`), rotating through all
//! of them; throughput is the mean bytes of a chunk (line bytes, newlines excluded);
//! lines/s = 1,024 / time.
//!
//! Fields go to `common::CountingSink`, which only counts calls and value bytes, so the
//! figures are the parser's, not those of building events.
//!
//! * `rfc5424_auto`: `mode = "auto"` (the default), system clock.
//! * `rfc5424_strict`: `mode = "rfc5424"`.
//! * `rfc3164_auto`: the derived BSD lines, `mode = "auto"`, system clock (one clock read per
//!   line, since BSD timestamps have no year).
//!
//! Run: `cargo bench -p sluice-perf --bench parse_syslog -- --warm-up-time 1 --measurement-time 3`

mod common;

use common::{CountingSink, CHUNK_LINES};
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use sluice_operators::parsers::sink::LineParser;
use sluice_operators::parsers::syslog::{SyslogMode, SyslogOptions, SyslogParser};
use std::cell::Cell;
use std::path::PathBuf;

/// RFC 5424 lines from `SLUICE_SYSLOG_BENCH_FILE`, or freshly generated ones.
fn load_lines() -> Vec<u8> {
    if let Some(path) = std::env::var_os("SLUICE_SYSLOG_BENCH_FILE") {
        let data = std::fs::read(&path).expect("read SLUICE_SYSLOG_BENCH_FILE");
        eprintln!(
            "parse_syslog: {} bytes from {}",
            data.len(),
            PathBuf::from(path).display()
        );
        return data;
    }
    common::load_lines("syslog", common::PARSE_SEED)
}

/// `<PRI>1 2026-11-20T12:00:00.001Z host app 123 msgid - msg` as
/// `<PRI>Nov 20 12:00:00 host app[123]: msg`.
fn to_rfc3164(line: &[u8]) -> Option<Vec<u8>> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let text = std::str::from_utf8(line).ok()?;
    let mut parts = text.splitn(8, ' ');
    let pri = parts.next()?.strip_suffix('1')?;
    let ts = parts.next()?;
    let (host, app, pid, _msgid, _sd) = (
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    );
    let msg = parts.next().unwrap_or("");
    let month: usize = ts.get(5..7)?.parse().ok()?;
    let day: u32 = ts.get(8..10)?.parse().ok()?;
    let time = ts.get(11..19)?;
    let name = MONTHS.get(month.checked_sub(1)?)?;
    Some(format!("{pri}{name} {day:>2} {time} {host} {app}[{pid}]: {msg}").into_bytes())
}

/// Lines (borrowed from one buffer) cut into chunks of `CHUNK_LINES`.
struct Data<'a> {
    chunks: Vec<Vec<&'a [u8]>>,
    bytes_per_chunk: u64,
}

impl<'a> Data<'a> {
    fn new(bytes: &'a [u8]) -> Data<'a> {
        let chunks = common::chunk_lines(common::split_lines(bytes));
        Data {
            bytes_per_chunk: common::bytes_per_chunk(&chunks),
            chunks,
        }
    }

    /// Every line parses: the bench measures the success path.
    fn assert_all_parse(&self, parser: &mut SyslogParser) {
        let mut sink = CountingSink::default();
        for line in self.chunks.iter().flatten() {
            if let Err(e) = parser.parse(line, &mut sink) {
                panic!("{e}: {}", String::from_utf8_lossy(line));
            }
        }
    }
}

fn parser(mode: SyslogMode) -> SyslogParser {
    SyslogParser::new(&SyslogOptions {
        mode,
        timezone: None,
    })
    .expect("default options")
}

fn bench(c: &mut Criterion) {
    let raw = load_lines();
    let rfc5424 = Data::new(&raw);
    let mut derived = Vec::with_capacity(raw.len());
    for line in rfc5424.chunks.iter().flatten() {
        if let Some(line) = to_rfc3164(line) {
            derived.extend_from_slice(&line);
            derived.push(b'\n');
        }
    }
    let rfc3164 = Data::new(&derived);
    eprintln!(
        "parse_syslog: {} chunks of {CHUNK_LINES} lines, {} bytes per RFC 5424 chunk, {} per RFC 3164 chunk",
        rfc5424.chunks.len(),
        rfc5424.bytes_per_chunk,
        rfc3164.bytes_per_chunk
    );

    let cases = [
        ("rfc5424_auto", &rfc5424, SyslogMode::Auto),
        ("rfc5424_strict", &rfc5424, SyslogMode::Rfc5424),
        ("rfc3164_auto", &rfc3164, SyslogMode::Auto),
    ];
    let mut g = c.benchmark_group("parse_syslog");
    for (name, data, mode) in cases {
        data.assert_all_parse(&mut parser(mode));
        g.throughput(Throughput::Bytes(data.bytes_per_chunk));
        let k = Cell::new(0);
        g.bench_function(name, |bench| {
            let mut parser = parser(mode);
            let mut sink = CountingSink::default();
            bench.iter(|| {
                let i = k.get();
                k.set((i + 1) % data.chunks.len());
                for line in &data.chunks[i] {
                    let _ = parser.parse(line, &mut sink);
                }
                black_box((sink.calls, sink.value_bytes))
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

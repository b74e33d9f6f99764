//! logfmt and key-value parsing of arbitrary lines with a few option sets: never panics, and
//! a line that parses wrote at least one pair. The first byte picks the kv options.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sluice_operators::parsers::kv::{KvOptions, KvParser};
use sluice_operators::parsers::logfmt::LogfmtParser;
use sluice_operators::parsers::sink::{FieldSink, LineParser, Parsed};
use sluice_operators::parsers::timestamp::Timestamp;

/// Counts string pairs (the only kind kv writes; logfmt adds `true` flags).
#[derive(Default)]
struct Pairs {
    strings: usize,
}

impl FieldSink for Pairs {
    fn str(&mut self, key: &[u8], _: &[u8]) {
        assert!(!key.is_empty());
        self.strings += 1;
    }
    fn str_json_escaped(&mut self, key: &[u8], value: &[u8]) {
        self.str(key, value)
    }
    fn int(&mut self, _: &[u8], _: i64) {
        unreachable!()
    }
    fn float(&mut self, _: &[u8], _: f64) {
        unreachable!()
    }
    fn bool(&mut self, key: &[u8], value: bool) {
        assert!(!key.is_empty() && value);
    }
    fn null(&mut self, _: &[u8]) {
        unreachable!()
    }
    fn timestamp(&mut self, _: &[u8], _: Timestamp) {
        unreachable!()
    }
    fn begin_object(&mut self, _: &[u8]) {
        unreachable!()
    }
    fn end_object(&mut self) {
        unreachable!()
    }
}

fn check<P: LineParser>(parser: &mut P, line: &[u8]) {
    let mut sink = Pairs::default();
    match parser.parse(line, &mut sink) {
        Ok(Parsed::Event) => assert!(sink.strings > 0),
        Ok(Parsed::Pending) => panic!("kv lines are never partial"),
        Err(e) => assert_eq!(e.reason, "no key=value pairs"),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, line)) = data.split_first() else {
        return;
    };
    let (field_split, value_split, prefix) = [
        (" ", "=", ""),
        (",", ":", "p."),
        ("&", "=", ""),
        ("; ", " => ", "kv_"),
        ("|", "=", ""),
    ][which as usize % 5];
    let options = KvOptions {
        field_split: field_split.into(),
        value_split: value_split.into(),
        prefix: prefix.into(),
        trim: which & 0x80 == 0,
    };
    let mut kv = KvParser::new(&options).expect("valid options");
    let mut logfmt = LogfmtParser::new();
    // The same parser on several lines, as in a batch: scratch reuse must not leak.
    for line in line.split(|&b| b == b'\n') {
        check(&mut kv, line);
        check(&mut logfmt, line);
    }
});

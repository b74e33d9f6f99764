//! The syslog parser on arbitrary lines in all three modes, and the timestamp detector on
//! arbitrary text: never panics; a parse that succeeds writes at least one field, and
//! objects it opens are closed.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sluice_operators::parsers::sink::{FieldSink, LineParser};
use sluice_operators::parsers::syslog::{SyslogMode, SyslogParser};
use sluice_operators::parsers::timestamp::{
    parse_any, parse_any_with_year, Timestamp, YearContext,
};

#[derive(Default)]
struct CountingSink {
    fields: usize,
    depth: isize,
}

impl FieldSink for CountingSink {
    fn str(&mut self, _: &[u8], _: &[u8]) {
        self.fields += 1;
    }
    fn str_json_escaped(&mut self, _: &[u8], _: &[u8]) {
        self.fields += 1;
    }
    fn int(&mut self, _: &[u8], _: i64) {
        self.fields += 1;
    }
    fn float(&mut self, _: &[u8], _: f64) {
        self.fields += 1;
    }
    fn bool(&mut self, _: &[u8], _: bool) {
        self.fields += 1;
    }
    fn null(&mut self, _: &[u8]) {
        self.fields += 1;
    }
    fn timestamp(&mut self, _: &[u8], _: Timestamp) {
        self.fields += 1;
    }
    fn begin_object(&mut self, _: &[u8]) {
        self.fields += 1;
        self.depth += 1;
    }
    fn end_object(&mut self) {
        self.depth -= 1;
        assert!(self.depth >= 0, "end_object without begin_object");
    }
}

fuzz_target!(|data: &[u8]| {
    // 2026-11-21T12:00:00Z at +01:00.
    let ctx = YearContext::new(Timestamp::from_unix_nanos(1_795_262_400_000_000_000), 3600);
    for mode in [SyslogMode::Auto, SyslogMode::Rfc5424, SyslogMode::Rfc3164] {
        let mut parser = SyslogParser::with_year_context(mode, move || ctx);
        let mut sink = CountingSink::default();
        if parser.parse(data, &mut sink).is_ok() {
            assert!(sink.fields > 0, "an event with no fields");
            assert_eq!(sink.depth, 0, "unbalanced objects");
        }
    }
    let _ = parse_any_with_year(data, &ctx);
    let _ = parse_any(data, 0);
});

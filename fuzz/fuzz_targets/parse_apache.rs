//! The Apache/nginx parsers on arbitrary lines: never panic, write only non-empty keys, and
//! agree with each other (a line that parses as combined also parses as auto and common).
#![no_main]
use libfuzzer_sys::fuzz_target;
use sluice_operators::parsers::apache::{ApacheFormat, ApacheParser, NginxFormat, NginxParser};
use sluice_operators::parsers::sink::{FieldSink, LineParser, Parsed};
use sluice_operators::parsers::timestamp::Timestamp;

/// Counts fields and checks that every key is non-empty.
#[derive(Default)]
struct Check {
    fields: usize,
}

impl Check {
    fn key(&mut self, key: &[u8]) {
        assert!(!key.is_empty());
        self.fields += 1;
    }
}

impl FieldSink for Check {
    fn str(&mut self, key: &[u8], _: &[u8]) {
        self.key(key)
    }
    fn str_json_escaped(&mut self, key: &[u8], _: &[u8]) {
        self.key(key)
    }
    fn int(&mut self, key: &[u8], value: i64) {
        assert!(value >= 0);
        self.key(key)
    }
    fn float(&mut self, key: &[u8], _: f64) {
        self.key(key)
    }
    fn bool(&mut self, key: &[u8], _: bool) {
        self.key(key)
    }
    fn null(&mut self, key: &[u8]) {
        self.key(key)
    }
    fn timestamp(&mut self, key: &[u8], _: Timestamp) {
        self.key(key)
    }
    fn begin_object(&mut self, key: &[u8]) {
        self.key(key)
    }
    fn end_object(&mut self) {}
}

fn run<P: LineParser>(mut parser: P, line: &[u8]) -> bool {
    let mut sink = Check::default();
    match parser.parse(line, &mut sink) {
        Ok(Parsed::Event) => {
            assert!(sink.fields > 0);
            true
        }
        Ok(Parsed::Pending) => panic!("access and error logs have no partial lines"),
        Err(e) => {
            assert!(!e.reason.is_empty());
            false
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let combined = run(ApacheParser::new(ApacheFormat::Combined), data);
    let auto = run(ApacheParser::new(ApacheFormat::Auto), data);
    let common = run(ApacheParser::new(ApacheFormat::Common), data);
    if combined {
        assert!(auto && common);
    }
    if auto {
        assert!(common);
    }
    assert_eq!(run(NginxParser::new(NginxFormat::Combined), data), combined);
    run(NginxParser::new(NginxFormat::Error), data);
});

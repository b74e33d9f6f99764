//! The grok parser on arbitrary patterns and lines. The input is split at its first
//! newline into a pattern (at most 200 bytes, to bound compile time; the builder also caps
//! the NFA size) and a line. A pattern that does not compile must give `Err`, never a
//! panic; one that compiles parses the line. The line is also always parsed by a fixed
//! `%{COMBINEDAPACHELOG}` parser. Every string value must be a span of the line.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sluice_operators::parsers::grok::GrokParser;
use sluice_operators::parsers::sink::{FieldSink, LineParser};
use sluice_operators::parsers::timestamp::Timestamp;
use std::cell::RefCell;

const MAX_PATTERN: usize = 200;

thread_local! {
    static APACHE: RefCell<GrokParser> = RefCell::new(
        GrokParser::new(&["%{COMBINEDAPACHELOG}".to_string()], &[]).expect("builtin compiles"),
    );
}

/// Checks that string values lie inside the line and that objects nest.
struct SpanCheck<'a> {
    line: &'a [u8],
    depth: usize,
}

impl FieldSink for SpanCheck<'_> {
    fn str(&mut self, _key: &[u8], value: &[u8]) {
        let range = self.line.as_ptr_range();
        let start = value.as_ptr();
        assert!(value.is_empty() || (range.start <= start && start < range.end));
        assert!(value.len() <= self.line.len());
    }
    fn str_json_escaped(&mut self, key: &[u8], value: &[u8]) {
        self.str(key, value)
    }
    fn int(&mut self, _key: &[u8], _value: i64) {}
    fn float(&mut self, _key: &[u8], value: f64) {
        assert!(value.is_finite());
    }
    fn bool(&mut self, _key: &[u8], _value: bool) {}
    fn null(&mut self, _key: &[u8]) {}
    fn timestamp(&mut self, _key: &[u8], _value: Timestamp) {}
    fn begin_object(&mut self, _key: &[u8]) {
        self.depth += 1;
    }
    fn end_object(&mut self) {
        assert!(self.depth > 0, "end_object without begin_object");
        self.depth -= 1;
    }
}

fn check<P: LineParser>(parser: &mut P, line: &[u8]) {
    let mut sink = SpanCheck { line, depth: 0 };
    if parser.parse(line, &mut sink).is_ok() {
        assert_eq!(sink.depth, 0, "unclosed object");
    }
}

fuzz_target!(|data: &[u8]| {
    let (pattern, line) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&data[..0], data),
    };
    if !pattern.is_empty() && pattern.len() <= MAX_PATTERN {
        if let Ok(pattern) = std::str::from_utf8(pattern) {
            let custom = [("CUSTOM".to_string(), "%{WORD}|%{INT:n:int}".to_string())];
            if let Ok(mut parser) = GrokParser::new(&[pattern.to_string()], &custom) {
                check(&mut parser, line);
            }
        }
    }
    APACHE.with_borrow_mut(|parser| check(parser, line));
});

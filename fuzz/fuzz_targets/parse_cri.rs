//! CRI and Docker json-file parsing of arbitrary lines fed in sequence, so that partial CRI
//! lines are held, joined, bounded and flushed: never panics, a pending line writes nothing,
//! every event has a message, and no truncated message exceeds the bound. The first byte
//! sets the bound on held bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sluice_operators::parsers::cri::{CriParser, DockerParser};
use sluice_operators::parsers::sink::{FieldSink, LineParser, Parsed};
use sluice_operators::parsers::timestamp::Timestamp;

#[derive(Default)]
struct Event {
    calls: usize,
    message_len: Option<usize>,
    truncated: bool,
}

impl FieldSink for Event {
    fn str(&mut self, key: &[u8], value: &[u8]) {
        self.calls += 1;
        if key == b"message" {
            self.message_len = Some(value.len());
        }
    }
    fn str_json_escaped(&mut self, key: &[u8], value: &[u8]) {
        self.str(key, value)
    }
    fn int(&mut self, _: &[u8], _: i64) {
        self.calls += 1;
    }
    fn float(&mut self, _: &[u8], _: f64) {
        self.calls += 1;
    }
    fn bool(&mut self, key: &[u8], value: bool) {
        self.calls += 1;
        self.truncated |= key == b"truncated" && value;
    }
    fn null(&mut self, _: &[u8]) {
        self.calls += 1;
    }
    fn timestamp(&mut self, _: &[u8], _: Timestamp) {
        self.calls += 1;
    }
    fn begin_object(&mut self, _: &[u8]) {
        self.calls += 1;
    }
    fn end_object(&mut self) {
        self.calls += 1;
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&bound, body)) = data.split_first() else {
        return;
    };
    let max = bound as usize + 1;
    let mut cri = CriParser::new(max);
    let mut docker = DockerParser::new();
    for line in body.split(|&b| b == b'\n') {
        let mut event = Event::default();
        match cri.parse(line, &mut event) {
            Ok(Parsed::Pending) => assert_eq!(event.calls, 0),
            Ok(Parsed::Event) => {
                let len = event.message_len.expect("a message");
                if event.truncated {
                    assert!(len <= max);
                }
            }
            Err(_) => {}
        }
        let mut event = Event::default();
        match docker.parse(line, &mut event) {
            Ok(Parsed::Pending) => panic!("docker lines are never held"),
            Ok(Parsed::Event) => assert!(event.message_len.is_some()),
            Err(_) => {}
        }
    }
    let mut flushed = 0;
    while cri.flush(&mut Event::default()) {
        flushed += 1;
        assert!(flushed <= 2, "one held message per stream");
    }
    assert!(!cri.has_pending());
});

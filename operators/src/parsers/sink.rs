//! The interface between a line parser and the batch it fills.
//!
//! A parser reads one line and reports what it found through a [`FieldSink`]: keys and
//! values as byte slices. A slice that lies inside the line is kept as a span of the batch
//! buffer (zero copy); any other slice (a constant like `"host"`, a normalised level, a
//! joined message) is copied into the batch's side arena. Parsers never allocate per line.
//!
//! [`RecordingSink`] collects the same calls into a `serde_json::Value`, for tests.

use super::timestamp::Timestamp;

/// Why a line did not parse. The reason ends up in `_meta.error` (prefixed with the format).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseError {
    pub reason: &'static str,
}

impl ParseError {
    pub const fn new(reason: &'static str) -> ParseError {
        ParseError { reason }
    }
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.reason)
    }
}

/// What a successful parse of one line produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed {
    /// The line is an event with the fields written to the sink.
    Event,
    /// The line was absorbed into the parser's state (a CRI `P` partial line) and produces
    /// no event of its own; the sink must not have been written to.
    Pending,
}

/// Receives the fields of one line, in order. Keys are plain text (no JSON escapes).
/// Objects nest: `begin_object(b"structured_data")` ... `end_object()`.
pub trait FieldSink {
    /// A string holding plain text (it is JSON-escaped on output if needed).
    fn str(&mut self, key: &[u8], value: &[u8]);
    /// A string whose bytes are JSON string content that may hold escapes (`\"`, `\n`).
    fn str_json_escaped(&mut self, key: &[u8], value: &[u8]);
    fn int(&mut self, key: &[u8], value: i64);
    fn float(&mut self, key: &[u8], value: f64);
    fn bool(&mut self, key: &[u8], value: bool);
    fn null(&mut self, key: &[u8]);
    /// A point in time, written as RFC 3339 in UTC (`2003-10-11T22:14:15.003Z`).
    fn timestamp(&mut self, key: &[u8], value: Timestamp);
    fn begin_object(&mut self, key: &[u8]);
    fn end_object(&mut self);
}

/// A parser of one log format. `&mut self` lets a parser keep scratch space (and, for CRI,
/// partial lines) between calls. On `Err` the caller discards whatever was written.
pub trait LineParser: Send {
    fn parse<S: FieldSink>(&mut self, line: &[u8], out: &mut S) -> Result<Parsed, ParseError>;
}

/// Collects a parser's output as JSON, for tests and tools.
#[derive(Debug, Default)]
pub struct RecordingSink {
    stack: Vec<(String, serde_json::Map<String, serde_json::Value>)>,
    root: serde_json::Map<String, serde_json::Value>,
}

impl RecordingSink {
    pub fn new() -> RecordingSink {
        RecordingSink::default()
    }

    /// The fields recorded so far, as one JSON object.
    pub fn into_json(mut self) -> serde_json::Value {
        while !self.stack.is_empty() {
            self.end_object();
        }
        serde_json::Value::Object(self.root)
    }

    fn put(&mut self, key: &[u8], value: serde_json::Value) {
        let key = String::from_utf8_lossy(key).into_owned();
        match self.stack.last_mut() {
            Some((_, map)) => map.insert(key, value),
            None => self.root.insert(key, value),
        };
    }
}

impl FieldSink for RecordingSink {
    fn str(&mut self, key: &[u8], value: &[u8]) {
        self.put(key, String::from_utf8_lossy(value).into_owned().into());
    }
    fn str_json_escaped(&mut self, key: &[u8], value: &[u8]) {
        let mut out = Vec::new();
        sluice_engine::value::unescape_json_str(value, &mut out);
        self.put(key, String::from_utf8_lossy(&out).into_owned().into());
    }
    fn int(&mut self, key: &[u8], value: i64) {
        self.put(key, value.into());
    }
    fn float(&mut self, key: &[u8], value: f64) {
        self.put(key, value.into());
    }
    fn bool(&mut self, key: &[u8], value: bool) {
        self.put(key, value.into());
    }
    fn null(&mut self, key: &[u8]) {
        self.put(key, serde_json::Value::Null);
    }
    fn timestamp(&mut self, key: &[u8], value: Timestamp) {
        let mut s = Vec::new();
        value.write_rfc3339(&mut s);
        self.put(key, String::from_utf8(s).expect("ascii").into());
    }
    fn begin_object(&mut self, key: &[u8]) {
        self.stack.push((
            String::from_utf8_lossy(key).into_owned(),
            serde_json::Map::new(),
        ));
    }
    fn end_object(&mut self) {
        if let Some((key, map)) = self.stack.pop() {
            self.put(key.as_bytes(), serde_json::Value::Object(map));
        }
    }
}

/// Parses `line` with `parser` into JSON (tests and tools).
pub fn parse_to_json<P: LineParser>(
    parser: &mut P,
    line: &[u8],
) -> Result<Option<serde_json::Value>, ParseError> {
    let mut sink = RecordingSink::new();
    match parser.parse(line, &mut sink)? {
        Parsed::Event => Ok(Some(sink.into_json())),
        Parsed::Pending => Ok(None),
    }
}

//! `type = "parse"`: parses each event's line (or one of its fields) into fields.
//!
//! `format = "json"` fills the batch's tape with the zero-copy scanner: the event keeps its
//! bytes and gains fields. Every other format runs a [`LineParser`] per line through a
//! [`TapeSink`]: values that are spans of the line stay spans, the rest goes to the tape's
//! side arena, and the event becomes [`EventForm::Fields`] (written out from its tape).
//!
//! With `field = "msg"` the text of that field is parsed instead of the line and the result
//! is merged into the event's top level (parsed keys win over existing ones on lookup).
//!
//! A line that does not parse keeps its raw bytes and goes to `ID.dropped` with
//! `_meta.error` saying why (if something reads that output), or is passed on unparsed with
//! `on_error = "pass"`, or else is counted as dropped (`reason="parse_error"`).

use super::PORT_DROPPED;
use crate::parsers::json;
use crate::parsers::sink::{FieldSink, LineParser, ParseError, Parsed};
use crate::parsers::tape::TapeSink;
use crate::parsers::timestamp::Timestamp;
use serde::Deserialize;
use sluice_engine::batch::{Batch, Event, EventForm, OverlayOp};
use sluice_engine::fields::{FieldEntry, Kind, KEY_AUX, VALUE_AUX};
use sluice_engine::metrics::ComponentMetrics;
use sluice_engine::path::FieldPath;
use sluice_engine::pipeline::{Emitter, Transform, PORT_MAIN};
use sluice_engine::Value;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Json,
}

impl Format {
    /// The name used in `_meta.error` ("invalid JSON: ...").
    pub fn label(self) -> &'static str {
        match self {
            Format::Json => "JSON",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum OnError {
    /// To `ID.dropped` (or counted as dropped when nothing reads it).
    #[default]
    Drop,
    /// Pass the event on unparsed.
    Pass,
}

/// Options of the `parse` transform.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParseConfig {
    pub format: Format,
    #[serde(default)]
    pub on_error: OnError,
    /// Parse the text of this field instead of the line.
    #[serde(default)]
    pub field: Option<String>,
}

impl ParseConfig {
    pub const NAMED_OUTPUTS: &'static [&'static str] = &["dropped"];

    /// Checks the options (compiling patterns); the error names the offending key.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        self.engine().map(|_| ())
    }

    fn engine(&self) -> Result<(Engine, Option<FieldPath>), (&'static str, String)> {
        let field = match &self.field {
            Some(f) => Some(FieldPath::parse(f).map_err(|e| ("field", e.to_string()))?),
            None => None,
        };
        let engine = match self.format {
            Format::Json => Engine::Json,
        };
        Ok((engine, field))
    }

    /// Builds the transform (one per shard). The error names the offending key.
    pub fn build(&self, metrics: &ComponentMetrics) -> Result<Parse, (&'static str, String)> {
        let (engine, field) = self.engine()?;
        Ok(Parse {
            format: self.format,
            engine,
            field,
            on_error: self.on_error,
            rejected: Vec::new(),
            pending: Vec::new(),
            scratch: Vec::new(),
            errors: metrics.dropped("parse_error"),
            error_path: FieldPath::parse("_meta.error").expect("static path"),
        })
    }
}

/// The per-format machinery.
enum Engine {
    Json,
    #[allow(dead_code)]
    Line(Box<AnyParser>),
}

/// Every line parser, for static dispatch (one match per line, predictable).
#[allow(dead_code)]
enum AnyParser {
    #[cfg(test)]
    Test(tests::WordsParser),
}

impl LineParser for AnyParser {
    fn parse<S: FieldSink>(&mut self, _line: &[u8], _out: &mut S) -> Result<Parsed, ParseError> {
        match self {
            #[cfg(test)]
            AnyParser::Test(p) => p.parse(_line, _out),
            #[allow(unreachable_patterns)]
            _ => Err(ParseError::new("no parser")),
        }
    }
}

pub struct Parse {
    format: Format,
    engine: Engine,
    field: Option<FieldPath>,
    on_error: OnError,
    rejected: Vec<(usize, &'static str)>,
    /// Events absorbed by the parser (CRI partial lines): removed, not errors.
    pending: Vec<usize>,
    scratch: Vec<u8>,
    errors: Arc<AtomicU64>,
    error_path: FieldPath,
}

impl Transform for Parse {
    fn process(&mut self, mut batch: Batch, out: &mut Emitter) {
        self.rejected.clear();
        self.pending.clear();
        match (&mut self.engine, &self.field) {
            (Engine::Json, None) => {
                json::parse_batch(&mut batch, &mut self.rejected);
            }
            (Engine::Json, Some(field)) => {
                parse_field(
                    &mut batch,
                    field,
                    &mut self.scratch,
                    &mut self.rejected,
                    parse_json_text,
                );
            }
            (Engine::Line(parser), None) => {
                parse_lines(parser.as_mut(), &mut batch, &mut self.rejected, &mut self.pending)
            }
            (Engine::Line(parser), Some(field)) => {
                let parser = parser.as_mut();
                parse_field(
                    &mut batch,
                    field,
                    &mut self.scratch,
                    &mut self.rejected,
                    |sink, text| match parser.parse(text, sink) {
                        Ok(Parsed::Event) => Ok(()),
                        Ok(Parsed::Pending) => Err(ParseError::new("partial line in a field")),
                        Err(e) => Err(e),
                    },
                );
            }
        }
        if !self.pending.is_empty() {
            // `rejected` and `pending` are ascending; remove pending events and shift the
            // rejected indices accordingly.
            let pending = std::mem::take(&mut self.pending);
            let mut p = 0;
            let mut i = 0;
            batch.events.retain(|_| {
                let gone = pending.get(p) == Some(&i);
                if gone {
                    p += 1;
                }
                i += 1;
                !gone
            });
            for (idx, _) in &mut self.rejected {
                *idx -= pending.partition_point(|&x| x < *idx);
            }
            self.pending = pending;
        }
        if self.rejected.is_empty() || self.on_error == OnError::Pass {
            out.emit(PORT_MAIN, batch);
            return;
        }
        let to_dropped = out.is_connected(PORT_DROPPED);
        if !to_dropped {
            self.errors
                .fetch_add(self.rejected.len() as u64, Ordering::Relaxed);
        }
        // Remove rejected events (indices are positions in `batch.events`, ascending).
        let mut bad: Vec<(Event, &'static str)> = Vec::with_capacity(self.rejected.len());
        let mut keep = Vec::with_capacity(batch.events.len() - self.rejected.len());
        let mut r = self.rejected.iter().peekable();
        for (i, ev) in batch.events.iter().enumerate() {
            if r.peek().map(|(j, _)| *j) == Some(i) {
                let (_, reason) = r.next().expect("peeked");
                bad.push((*ev, *reason));
            } else {
                keep.push(*ev);
            }
        }
        if to_dropped {
            // One sibling batch per distinct reason, each tagged with `_meta.error`.
            let mut reasons: Vec<&'static str> = bad.iter().map(|(_, r)| *r).collect();
            reasons.sort_unstable();
            reasons.dedup();
            for reason in reasons {
                let evs = bad
                    .iter()
                    .filter(|(_, r)| *r == reason)
                    .map(|(e, _)| *e)
                    .collect();
                let mut sib = batch.sibling(evs);
                sib.overlay.ops.push(OverlayOp::Set {
                    path: self.error_path.clone(),
                    value: Value::Str(format!("invalid {}: {reason}", self.format.label())),
                    if_absent: false,
                });
                out.emit(PORT_DROPPED, sib);
            }
        }
        batch.events = keep;
        out.emit(PORT_MAIN, batch);
    }
}

/// Runs `parser` over every event's line; parsed events become [`EventForm::Fields`].
fn parse_lines<P: LineParser>(
    parser: &mut P,
    batch: &mut Batch,
    rejected: &mut Vec<(usize, &'static str)>,
    pending: &mut Vec<usize>,
) {
    let buf = batch.buf().clone();
    let mut events = std::mem::take(&mut batch.events);
    let mut table = std::mem::take(&mut batch.fields);
    let bytes: usize = events.iter().map(|e| e.len as usize).sum();
    table.entries.reserve(bytes / 24 + events.len());
    table.aux.reserve(events.len() * 16);
    {
        let mut sink = TapeSink::new(&mut table, &buf);
        for (i, ev) in events.iter_mut().enumerate() {
            let start = ev.start as usize;
            let Some(line) = buf.get(start..start + ev.len as usize) else {
                rejected.push((i, json::reason::BAD_SPAN));
                continue;
            };
            let mark = sink.mark();
            match parser.parse(line, &mut sink) {
                Ok(Parsed::Event) => {
                    let (s, e) = sink.finish(mark);
                    ev.form = EventForm::Fields;
                    ev.fields_start = s;
                    ev.fields_end = e;
                }
                Ok(Parsed::Pending) => {
                    sink.rollback(mark);
                    pending.push(i);
                }
                Err(err) => {
                    sink.rollback(mark);
                    rejected.push((i, err.reason));
                }
            }
        }
    }
    batch.fields = table;
    batch.events = events;
}

/// Parses the text of `field` in every event with `parse` and merges what it writes into
/// the event's top level: the event's members are copied to the end of the tape (so its
/// range stays contiguous), followed by the parsed ones.
fn parse_field(
    batch: &mut Batch,
    field: &FieldPath,
    scratch: &mut Vec<u8>,
    rejected: &mut Vec<(usize, &'static str)>,
    mut parse: impl FnMut(&mut TapeSink<'_>, &[u8]) -> Result<(), ParseError>,
) {
    let buf = batch.buf().clone();
    let message = b"message";
    for i in 0..batch.events.len() {
        let ev = batch.events[i];
        scratch.clear();
        match batch.get(&ev, field) {
            Some(v) => match v.as_str() {
                Some(s) => scratch.extend_from_slice(&s),
                None => {
                    rejected.push((i, "the field is not a string"));
                    continue;
                }
            },
            None => {
                rejected.push((i, "the field is missing"));
                continue;
            }
        }
        let table = &mut batch.fields;
        let copy_start = table.entries.len();
        let aux_start = table.aux.len();
        match ev.form {
            EventForm::Raw => {
                // The raw line's implicit `message` becomes an explicit member.
                let key_start = table.aux.len() as u32;
                table.aux.extend_from_slice(message);
                table.entries.push(FieldEntry {
                    key_start,
                    key_len: message.len() as u32,
                    value_start: ev.start,
                    value_len: ev.len,
                    end: copy_start as u32 + 1,
                    kind: Kind::String,
                    flags: KEY_AUX | sluice_engine::fields::PLAIN,
                });
            }
            EventForm::Json | EventForm::Fields => {
                let shift = copy_start as i64 - ev.fields_start as i64;
                for j in ev.fields_start..ev.fields_end {
                    let mut e = table.entries[j as usize];
                    e.end = (e.end as i64 + shift) as u32;
                    table.entries.push(e);
                }
            }
        }
        let result = {
            let mut sink = TapeSink::new(table, &buf);
            parse(&mut sink, scratch)
        };
        match result {
            Ok(()) => {
                let ev = &mut batch.events[i];
                ev.form = EventForm::Fields;
                ev.fields_start = copy_start as u32;
                ev.fields_end = batch.fields.entries.len() as u32;
            }
            Err(err) => {
                batch.fields.entries.truncate(copy_start);
                batch.fields.aux.truncate(aux_start);
                rejected.push((i, err.reason));
            }
        }
    }
}

/// `parse_field` for JSON: the text is copied to the tape's arena and scanned there.
fn parse_json_text(sink: &mut TapeSink<'_>, text: &[u8]) -> Result<(), ParseError> {
    let table = sink.table();
    let at = table.aux.len();
    table.aux.extend_from_slice(text);
    let aux = std::mem::take(&mut table.aux);
    let first = table.entries.len();
    let result = json::parse_object(&aux, at, at + text.len(), table);
    table.aux = aux;
    match result {
        Ok(_) => {
            for e in &mut table.entries[first..] {
                e.flags |= KEY_AUX | VALUE_AUX;
            }
            Ok(())
        }
        Err(why) => Err(ParseError::new(why)),
    }
}

/// Keeps the sink API honest for parsers that emit timestamps (used by tests).
#[allow(dead_code)]
fn _assert_sink_api<S: FieldSink>(s: &mut S) {
    s.timestamp(b"t", Timestamp::from_unix_nanos(0));
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use sluice_engine::encode::{encode_batch, Encoding};
    use sluice_engine::metrics::{ComponentKind, Registry};

    /// A toy format for the machinery: `word word ...` → `w0`, `w1`, ...; `P` alone is a
    /// partial line; an empty line is an error.
    pub struct WordsParser;
    impl LineParser for WordsParser {
        fn parse<S: FieldSink>(&mut self, line: &[u8], out: &mut S) -> Result<Parsed, ParseError> {
            if line == b"P" {
                return Ok(Parsed::Pending);
            }
            if line.is_empty() {
                return Err(ParseError::new("empty"));
            }
            const KEYS: [&[u8]; 4] = [b"w0", b"w1", b"w2", b"w3"];
            for (k, w) in KEYS.iter().zip(line.split(|&b| b == b' ')) {
                out.str(k, w);
            }
            out.int(b"n", line.len() as i64);
            Ok(Parsed::Event)
        }
    }

    fn transform(engine: Engine, field: Option<&str>) -> (Parse, Arc<Registry>) {
        let reg = Registry::new();
        let m = reg.component("p", ComponentKind::Transform, "parse");
        let cfg = ParseConfig {
            format: Format::Json,
            on_error: OnError::Drop,
            field: field.map(String::from),
        };
        let mut p = cfg.build(&m).unwrap();
        p.engine = engine;
        (p, reg)
    }

    fn run(p: &mut Parse, input: &'static [u8]) -> (String, String) {
        let mut em = Emitter::with_connected(0b11);
        let mut batch = Batch::from_lines(Bytes::from_static(input), 0);
        if p.field.as_ref().is_some_and(|f| f.segments()[0].as_ref() != "message") {
            json::parse_batch(&mut batch, &mut Vec::new());
        }
        p.process(batch, &mut em);
        let mut main = Vec::new();
        let mut dropped = Vec::new();
        for (port, b) in em.take() {
            let out = if port == 0 { &mut main } else { &mut dropped };
            encode_batch(Encoding::Ndjson, &b, out);
        }
        (String::from_utf8(main).unwrap(), String::from_utf8(dropped).unwrap())
    }

    #[test]
    fn line_parser_fills_fields_pending_and_errors() {
        let (mut p, _r) = transform(Engine::Line(Box::new(AnyParser::Test(WordsParser))), None);
        let (main, dropped) = run(&mut p, b"a b\nP\n\nc \"d\"\n");
        assert_eq!(
            main,
            "{\"w0\":\"a\",\"w1\":\"b\",\"n\":3}\n{\"w0\":\"c\",\"w1\":\"\\\"d\\\"\",\"n\":5}\n"
        );
        assert_eq!(dropped, "{\"message\":\"\",\"_meta\":{\"error\":\"invalid JSON: empty\"}}\n");
    }

    #[test]
    fn json_in_a_field_merges_into_the_event() {
        let (mut p, _r) = transform(Engine::Json, Some("msg"));
        let (main, dropped) = run(
            &mut p,
            b"{\"a\":1,\"msg\":\"{\\\"b\\\":[true],\\\"c\\\":\\\"x\\\\\\\"y\\\"}\"}\n{\"msg\":\"nope\"}\n{\"a\":2}\n",
        );
        assert_eq!(
            main,
            "{\"a\":1,\"msg\":\"{\\\"b\\\":[true],\\\"c\\\":\\\"x\\\\\\\"y\\\"}\",\"b\":[true],\"c\":\"x\\\"y\"}\n"
        );
        assert!(dropped.contains("invalid JSON: not a JSON object"), "{dropped}");
        assert!(dropped.contains("invalid JSON: the field is missing"), "{dropped}");
    }

    #[test]
    fn line_parser_on_a_field_of_a_raw_line() {
        let (mut p, _r) = transform(
            Engine::Line(Box::new(AnyParser::Test(WordsParser))),
            Some("message"),
        );
        let (main, _) = run(&mut p, b"x y\n");
        assert_eq!(main, "{\"message\":\"x y\",\"w0\":\"x\",\"w1\":\"y\",\"n\":3}\n");
    }
}

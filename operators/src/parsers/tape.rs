//! [`TapeSink`]: the [`FieldSink`] that writes a parser's fields into a batch's tape.
//!
//! Slices that lie inside the batch buffer become spans (zero copy); anything else (constant
//! keys, normalised values, unescaped text from a parser's scratch space, numbers) is
//! appended to the table's side arena. Every entry is marked [`PLAIN`]: it is written out
//! by walking the tape, since the line is not JSON.

use super::sink::FieldSink;
use super::timestamp::Timestamp;
use sluice_engine::fields::{
    FieldEntry, FieldTable, Kind, KEY_AUX, PLAIN, VALUE_AUX, VALUE_ESCAPED,
};

/// Appends one event's fields at a time to a [`FieldTable`].
pub struct TapeSink<'a> {
    table: &'a mut FieldTable,
    buf_start: usize,
    buf_len: usize,
    open: Vec<u32>,
}

/// Where an event's entries began; see [`TapeSink::rollback`].
#[derive(Debug, Clone, Copy)]
pub struct Mark {
    entries: usize,
    aux: usize,
}

impl<'a> TapeSink<'a> {
    /// A sink appending to `table`, whose spans point into `buf` (the batch buffer).
    pub fn new(table: &'a mut FieldTable, buf: &[u8]) -> TapeSink<'a> {
        TapeSink {
            table,
            buf_start: buf.as_ptr() as usize,
            buf_len: buf.len(),
            open: Vec::new(),
        }
    }

    /// Starts an event: remembers where its entries begin.
    pub fn mark(&mut self) -> Mark {
        self.open.clear();
        Mark {
            entries: self.table.entries.len(),
            aux: self.table.aux.len(),
        }
    }

    /// The range of entries written since `mark` (the event's members), closing any object
    /// a parser left open.
    pub fn finish(&mut self, mark: Mark) -> (u32, u32) {
        while !self.open.is_empty() {
            self.end_object();
        }
        (mark.entries as u32, self.table.entries.len() as u32)
    }

    /// Discards everything written since `mark` (a line that failed to parse).
    pub fn rollback(&mut self, mark: Mark) {
        self.open.clear();
        self.table.entries.truncate(mark.entries);
        self.table.aux.truncate(mark.aux);
    }

    /// The table being written (for callers that append entries themselves).
    pub fn table(&mut self) -> &mut FieldTable {
        self.table
    }

    /// Offset of `s` in the batch buffer, when it lies inside it.
    fn span_of(&self, s: &[u8]) -> Option<u32> {
        let p = s.as_ptr() as usize;
        if p >= self.buf_start && p + s.len() <= self.buf_start + self.buf_len {
            Some((p - self.buf_start) as u32)
        } else {
            None
        }
    }

    fn put_aux(&mut self, bytes: &[u8]) -> u32 {
        let at = self.table.aux.len() as u32;
        self.table.aux.extend_from_slice(bytes);
        at
    }

    /// Pushes a leaf (or an object header) whose value span is already decided.
    fn push(&mut self, key: &[u8], kind: Kind, value_start: u32, value_len: u32, flags: u8) {
        let (key_start, key_flag) = match self.span_of(key) {
            Some(at) => (at, 0),
            None => (self.put_aux(key), KEY_AUX),
        };
        let index = self.table.entries.len() as u32;
        self.table.entries.push(FieldEntry {
            key_start,
            key_len: key.len() as u32,
            value_start,
            value_len,
            end: index + 1,
            kind,
            flags: flags | key_flag | PLAIN,
        });
    }

    fn push_bytes(&mut self, key: &[u8], kind: Kind, value: &[u8], flags: u8) {
        match self.span_of(value) {
            Some(at) => self.push(key, kind, at, value.len() as u32, flags),
            None => {
                let at = self.put_aux(value);
                self.push(key, kind, at, value.len() as u32, flags | VALUE_AUX)
            }
        }
    }

    /// Writes a value already rendered into the arena (numbers, timestamps).
    fn push_rendered(&mut self, key: &[u8], kind: Kind, render: impl FnOnce(&mut Vec<u8>)) {
        let at = self.table.aux.len();
        render(&mut self.table.aux);
        let len = (self.table.aux.len() - at) as u32;
        // The key goes to the arena after the value; spans keep them apart.
        self.push(key, kind, at as u32, len, VALUE_AUX);
    }
}

impl FieldSink for TapeSink<'_> {
    fn str(&mut self, key: &[u8], value: &[u8]) {
        self.push_bytes(key, Kind::String, value, 0);
    }

    fn str_json_escaped(&mut self, key: &[u8], value: &[u8]) {
        let flags = if memchr::memchr(b'\\', value).is_some() {
            VALUE_ESCAPED
        } else {
            0
        };
        self.push_bytes(key, Kind::String, value, flags);
    }

    fn int(&mut self, key: &[u8], value: i64) {
        self.push_rendered(key, Kind::Number, |out| write_i64(value, out));
    }

    fn float(&mut self, key: &[u8], value: f64) {
        if !value.is_finite() {
            return self.null(key);
        }
        self.push_rendered(key, Kind::Number, |out| {
            use std::io::Write;
            let _ = write!(out, "{value}");
        });
    }

    fn bool(&mut self, key: &[u8], value: bool) {
        let kind = if value { Kind::True } else { Kind::False };
        self.push(key, kind, 0, 0, 0);
    }

    fn null(&mut self, key: &[u8]) {
        self.push(key, Kind::Null, 0, 0, 0);
    }

    fn timestamp(&mut self, key: &[u8], value: Timestamp) {
        self.push_rendered(key, Kind::String, |out| value.write_rfc3339(out));
    }

    fn begin_object(&mut self, key: &[u8]) {
        let index = self.table.entries.len() as u32;
        self.push(key, Kind::Object, 0, 0, 0);
        self.open.push(index);
    }

    fn end_object(&mut self) {
        if let Some(index) = self.open.pop() {
            let end = self.table.entries.len() as u32;
            self.table.entries[index as usize].end = end;
        }
    }
}

fn write_i64(v: i64, out: &mut Vec<u8>) {
    let mut tmp = [0u8; 20];
    let mut n = v.unsigned_abs();
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if v < 0 {
        out.push(b'-');
    }
    out.extend_from_slice(&tmp[i..]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use sluice_engine::batch::{Batch, EventForm};
    use sluice_engine::encode::{encode_batch, Encoding};
    use sluice_engine::path::FieldPath;

    #[test]
    fn spans_arena_nesting_and_encoding() {
        let mut batch = Batch::from_lines(Bytes::from_static(b"host1 hello \"world\"\n"), 0);
        let line_start = batch.events[0].start as usize;
        let buf = batch.buf().clone();
        let line = &buf[line_start..line_start + batch.events[0].len as usize];
        let mut table = std::mem::take(&mut batch.fields);
        let mut sink = TapeSink::new(&mut table, &buf);
        let mark = sink.mark();
        sink.str(b"host", &line[..5]);
        sink.str(b"message", &line[6..]);
        sink.int(b"n", -42);
        sink.float(b"f", 1.5);
        sink.float(b"nan", f64::NAN);
        sink.bool(b"ok", true);
        sink.timestamp(b"ts", Timestamp::from_unix_nanos(1_500_000_000));
        sink.begin_object(b"sd");
        sink.begin_object(b"id@1");
        sink.str(b"k", b"v\"q");
        sink.end_object();
        sink.end_object();
        sink.str_json_escaped(b"esc", b"a\\nb");
        let (s, e) = sink.finish(mark);
        // The line's own bytes stay spans; constants go to the arena.
        assert_eq!(table.entries[0].flags & VALUE_AUX, 0);
        assert_ne!(table.entries[0].flags & KEY_AUX, 0);
        batch.fields = table;
        let ev = &mut batch.events[0];
        ev.form = EventForm::Fields;
        ev.fields_start = s;
        ev.fields_end = e;
        let mut out = Vec::new();
        encode_batch(Encoding::Ndjson, &batch, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"host\":\"host1\",\"message\":\"hello \\\"world\\\"\",\"n\":-42,\"f\":1.5,\
             \"nan\":null,\"ok\":true,\"ts\":\"1970-01-01T00:00:01.500Z\",\
             \"sd\":{\"id@1\":{\"k\":\"v\\\"q\"}},\"esc\":\"a\\nb\"}\n"
        );
        let ev = batch.events[0];
        let get = |p: &str| {
            batch
                .get(&ev, &FieldPath::parse(p).unwrap())
                .map(|v| v.to_owned_value())
        };
        assert_eq!(get("n").unwrap(), sluice_engine::Value::Int(-42));
        assert_eq!(
            get("sd.\"id@1\".k").or_else(|| get("sd[\"id@1\"].k")),
            Some(sluice_engine::Value::Str("v\"q".into()))
        );
        assert_eq!(get("esc"), Some(sluice_engine::Value::Str("a\nb".into())));
        assert_eq!(get("host"), Some(sluice_engine::Value::Str("host1".into())));
    }

    #[test]
    fn rollback_discards() {
        let buf = Bytes::from_static(b"x");
        let mut table = FieldTable::default();
        let mut sink = TapeSink::new(&mut table, &buf);
        let m = sink.mark();
        sink.str(b"a", b"b");
        sink.begin_object(b"o");
        sink.rollback(m);
        assert!(table.entries.is_empty() && table.aux.is_empty());
    }

    #[test]
    fn integers_render_exactly() {
        for v in [0i64, 7, -7, i64::MAX, i64::MIN, 1_000_000] {
            let mut out = Vec::new();
            write_i64(v, &mut out);
            assert_eq!(String::from_utf8(out).unwrap(), v.to_string());
        }
    }
}

//! Writing events out: NDJSON (the event as one JSON object) and text (its `message`).
//!
//! This is where the overlay is applied. An event nobody changed is written as the exact
//! bytes it came in with; an event whose changes only add top-level fields is written as
//! its original bytes with the new members spliced in before the closing brace; anything
//! else (removals, renames, nested or overwriting sets) is materialized into a [`Value`]
//! tree first, which costs allocations but stays correct. An event with per-event sets
//! ([`crate::batch::EventSet`]) always takes that path.

use crate::batch::{Batch, Event, EventForm, OverlayOp};
use crate::fields::Kind;
use crate::path::FieldPath;
use crate::value::{unescape_json_str, write_json_str, Value};
use bytes::Bytes;

/// How a sink turns events into bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// One JSON object per line.
    #[default]
    Ndjson,
    /// The `message` field as plain text, one per line (the raw line if there is none).
    Text,
}

/// Appends one encoded event and a newline to `out`.
pub fn encode_event(encoding: Encoding, batch: &Batch, ev: &Event, out: &mut Vec<u8>) {
    match encoding {
        Encoding::Ndjson => write_ndjson(batch, ev, out),
        Encoding::Text => write_text(batch, ev, out),
    }
    out.push(b'\n');
}

/// Appends a whole batch.
pub fn encode_batch(encoding: Encoding, batch: &Batch, out: &mut Vec<u8>) {
    for ev in &batch.events {
        encode_event(encoding, batch, ev, out);
    }
}

/// The event's `message` as text.
pub fn write_text(batch: &Batch, ev: &Event, out: &mut Vec<u8>) {
    let msg = FieldPath::single("message");
    match batch.get(ev, &msg) {
        Some(v) => match v.as_str() {
            Some(s) => out.extend_from_slice(&s),
            None => v.write_json(out),
        },
        None => out.extend_from_slice(batch.line(ev)),
    }
}

/// The event as one JSON object (no newline).
pub fn write_ndjson(batch: &Batch, ev: &Event, out: &mut Vec<u8>) {
    let sets = batch.event_sets_of(ev);
    if batch.overlay.is_empty() && sets.is_empty() {
        match ev.form {
            EventForm::Json => out.extend_from_slice(batch.line(ev)),
            EventForm::Raw => {
                out.extend_from_slice(b"{\"message\":");
                write_json_str(batch.line(ev), out);
                out.push(b'}');
            }
            EventForm::Fields => {
                out.push(b'{');
                batch
                    .fields
                    .write_members(batch.buf(), ev.fields_start, ev.fields_end, out);
                out.push(b'}');
            }
        }
        return;
    }
    if !sets.is_empty() || !try_splice(batch, ev, out) {
        let mut v = materialize(batch, ev);
        // Per-event sets go between the ops, where they were made.
        let mut next_set = 0;
        for (i, op) in batch.overlay.ops.iter().enumerate() {
            while let Some(set) = sets.get(next_set).filter(|s| s.at as usize <= i) {
                set_path(&mut v, set.path.segments(), set.value.clone());
                next_set += 1;
            }
            apply_op(&mut v, op);
        }
        for set in sets.get(next_set..).unwrap_or_default() {
            set_path(&mut v, set.path.segments(), set.value.clone());
        }
        v.write_json(out);
    }
}

/// Fast path: every op is a top-level set of a key the event does not have.
fn try_splice(batch: &Batch, ev: &Event, out: &mut Vec<u8>) -> bool {
    let ops = &batch.overlay.ops;
    for (i, op) in ops.iter().enumerate() {
        let OverlayOp::Set {
            path, if_absent, ..
        } = op
        else {
            return false;
        };
        if path.len() != 1 {
            return false;
        }
        let exists = batch.base_get(ev, path.segments()).is_some();
        if exists && !*if_absent {
            return false;
        }
        // A key set twice needs the general path.
        if ops[..i]
            .iter()
            .any(|o| matches!(o, OverlayOp::Set { path: p, .. } if p == path))
        {
            return false;
        }
    }
    let start = out.len();
    let mut empty_object = false;
    match ev.form {
        EventForm::Json => {
            let line = batch.line(ev);
            let Some(close) = memchr::memrchr(b'}', line) else {
                return false;
            };
            out.extend_from_slice(&line[..close]);
            empty_object = ev.fields_start == ev.fields_end;
        }
        EventForm::Raw => {
            out.extend_from_slice(b"{\"message\":");
            write_json_str(batch.line(ev), out);
        }
        EventForm::Fields => {
            out.push(b'{');
            batch
                .fields
                .write_members(batch.buf(), ev.fields_start, ev.fields_end, out);
            empty_object = ev.fields_start == ev.fields_end;
        }
    }
    let mut first = empty_object;
    for op in ops {
        if let OverlayOp::Set {
            path,
            value,
            if_absent,
        } = op
        {
            if *if_absent && batch.base_get(ev, path.segments()).is_some() {
                continue;
            }
            if !first {
                out.push(b',');
            }
            first = false;
            write_json_str(path.segments()[0].as_bytes(), out);
            out.push(b':');
            value.write_json(out);
        }
    }
    out.push(b'}');
    debug_assert!(out.len() > start);
    true
}

/// The event as an owned tree (scalars stay verbatim JSON).
pub fn materialize(batch: &Batch, ev: &Event) -> Value {
    match ev.form {
        EventForm::Raw => Value::Object(vec![(
            "message".into(),
            Value::Str(String::from_utf8_lossy(batch.line(ev)).into_owned()),
        )]),
        EventForm::Json | EventForm::Fields => {
            Value::Object(members(batch, ev.fields_start, ev.fields_end))
        }
    }
}

fn members(batch: &Batch, start: u32, end: u32) -> Vec<(String, Value)> {
    let buf = &batch.buf()[..];
    let mut out = Vec::new();
    let mut i = start;
    while i < end {
        let e = &batch.fields.entries[i as usize];
        let raw_key = batch.fields.key(e, buf);
        let key = if e.key_escaped() {
            let mut k = Vec::new();
            unescape_json_str(raw_key, &mut k);
            String::from_utf8_lossy(&k).into_owned()
        } else {
            String::from_utf8_lossy(raw_key).into_owned()
        };
        out.push((key, node(batch, i)));
        i = e.end;
    }
    out
}

fn node(batch: &Batch, i: u32) -> Value {
    let buf = &batch.buf()[..];
    let e = &batch.fields.entries[i as usize];
    match e.kind {
        Kind::Object => Value::Object(members(batch, i + 1, e.end)),
        Kind::Array => {
            let mut items = Vec::new();
            let mut j = i + 1;
            while j < e.end {
                items.push(node(batch, j));
                j = batch.fields.entries[j as usize].end;
            }
            Value::Array(items)
        }
        _ => {
            let mut text = Vec::new();
            batch.fields.write_json(buf, i, &mut text);
            Value::RawJson(Bytes::from(text))
        }
    }
}

fn apply_op(v: &mut Value, op: &OverlayOp) {
    match op {
        OverlayOp::Set {
            path,
            value,
            if_absent,
        } => {
            if *if_absent && lookup(v, path.segments()).is_some() {
                return;
            }
            set_path(v, path.segments(), value.clone());
        }
        OverlayOp::Remove { path } => {
            take_path(v, path.segments());
        }
        OverlayOp::Rename { from, to } => {
            if let Some(x) = take_path(v, from.segments()) {
                set_path(v, to.segments(), x);
            }
        }
    }
}

// The tree edits below follow the overlay's rules (`Batch::get` and friends): segments that
// are numbers index arrays, and of members with the same key the last one counts.

/// The value at `path` in a materialized tree, if any (the root for an empty path).
pub fn lookup<'a>(mut v: &'a Value, path: &[Box<str>]) -> Option<&'a Value> {
    for seg in path {
        v = match v {
            Value::Object(m) => m.iter().rev().find(|(k, _)| **k == **seg).map(|(_, v)| v)?,
            Value::Array(a) => a.get(seg.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(v)
}

/// Writes `value` at `path`, creating objects on the way (a scalar in the way becomes an
/// object; an array index past the end writes nothing).
pub fn set_path(v: &mut Value, path: &[Box<str>], value: Value) {
    let Some((first, rest)) = path.split_first() else {
        *v = value;
        return;
    };
    if !matches!(v, Value::Object(_) | Value::Array(_)) {
        *v = Value::Object(Vec::new());
    }
    match v {
        Value::Array(a) => {
            if let Some(slot) = first.parse::<usize>().ok().and_then(|i| a.get_mut(i)) {
                set_path(slot, rest, value);
            }
        }
        Value::Object(m) => {
            if let Some(pos) = m.iter().rposition(|(k, _)| **k == **first) {
                set_path(&mut m[pos].1, rest, value);
            } else {
                let mut child = Value::Null;
                set_path(&mut child, rest, value);
                m.push((first.to_string(), child));
            }
        }
        _ => unreachable!(),
    }
}

/// Removes and returns the value at `path` (`None` for an empty path).
pub fn take_path(v: &mut Value, path: &[Box<str>]) -> Option<Value> {
    let (first, rest) = path.split_first()?;
    match v {
        Value::Object(m) => {
            let pos = m.iter().rposition(|(k, _)| **k == **first)?;
            if rest.is_empty() {
                Some(m.remove(pos).1)
            } else {
                take_path(&mut m[pos].1, rest)
            }
        }
        Value::Array(a) => {
            let i = first.parse::<usize>().ok()?;
            if rest.is_empty() {
                (i < a.len()).then(|| a.remove(i))
            } else {
                take_path(a.get_mut(i)?, rest)
            }
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::OverlayOp;

    fn p(s: &str) -> FieldPath {
        FieldPath::parse(s).unwrap()
    }

    #[test]
    fn raw_lines_become_message_objects() {
        let b = Batch::from_lines(Bytes::from_static(b"he said \"hi\"\n"), 0);
        let mut out = Vec::new();
        encode_batch(Encoding::Ndjson, &b, &mut out);
        assert_eq!(out, b"{\"message\":\"he said \\\"hi\\\"\"}\n");
        out.clear();
        encode_batch(Encoding::Text, &b, &mut out);
        assert_eq!(out, b"he said \"hi\"\n");
    }

    /// One JSON event `{"a":"x\"y","n":1}` with a hand-built tape.
    fn json_batch() -> Batch {
        use crate::batch::EventForm;
        use crate::fields::{FieldEntry, FieldTable, VALUE_ESCAPED};
        let line: &[u8] = br#"{"a":"x\"y","n":1}"#;
        let mut b = Batch::from_events(
            Bytes::from_static(line),
            vec![Event {
                start: 0,
                len: line.len() as u32,
                id: 0,
                fields_start: 0,
                fields_end: 2,
                form: EventForm::Json,
                flags: 0,
            }],
            0,
        );
        b.fields = FieldTable {
            entries: vec![
                FieldEntry {
                    key_start: 2,
                    key_len: 1,
                    value_start: 6,
                    value_len: 4,
                    end: 1,
                    kind: Kind::String,
                    flags: VALUE_ESCAPED,
                },
                FieldEntry {
                    key_start: 13,
                    key_len: 1,
                    value_start: 16,
                    value_len: 1,
                    end: 2,
                    kind: Kind::Number,
                    flags: 0,
                },
            ],
            aux: Vec::new(),
        };
        b
    }

    #[test]
    fn event_sets_are_written_for_their_event_only() {
        let mut b = Batch::from_lines(Bytes::from_static(b"one\ntwo\n"), 0);
        let ev1 = b.events[1];
        b.set_event_field(
            &ev1,
            std::sync::Arc::new(p("message")),
            Value::Str("t\"2".into()),
        );
        let mut out = Vec::new();
        encode_batch(Encoding::Ndjson, &b, &mut out);
        assert_eq!(out, b"{\"message\":\"one\"}\n{\"message\":\"t\\\"2\"}\n");
        out.clear();
        encode_batch(Encoding::Text, &b, &mut out);
        assert_eq!(out, b"one\nt\"2\n");
        // With batch-wide ops around it: the set sits between them.
        b.overlay.ops.push(OverlayOp::Rename {
            from: p("message"),
            to: p("m"),
        });
        b.overlay.ops.push(OverlayOp::Set {
            path: p("env"),
            value: Value::Str("prod".into()),
            if_absent: false,
        });
        out.clear();
        encode_batch(Encoding::Ndjson, &b, &mut out);
        assert_eq!(
            out,
            b"{\"m\":\"one\",\"env\":\"prod\"}\n{\"m\":\"t\\\"2\",\"env\":\"prod\"}\n"
        );
    }

    #[test]
    fn event_set_on_a_json_event_replaces_the_member() {
        let mut b = json_batch();
        let mut out = Vec::new();
        encode_batch(Encoding::Ndjson, &b, &mut out);
        assert_eq!(out, b"{\"a\":\"x\\\"y\",\"n\":1}\n");
        let ev = b.events[0];
        assert_eq!(&*b.get(&ev, &p("a")).unwrap().as_str().unwrap(), b"x\"y");
        b.set_event_field(&ev, std::sync::Arc::new(p("a")), Value::Str("[R]".into()));
        out.clear();
        encode_batch(Encoding::Ndjson, &b, &mut out);
        assert_eq!(out, b"{\"a\":\"[R]\",\"n\":1}\n");
        let sib = b.sibling(b.events.clone());
        out.clear();
        encode_batch(Encoding::Ndjson, &sib, &mut out);
        assert_eq!(out, b"{\"a\":\"[R]\",\"n\":1}\n");
    }

    #[test]
    fn added_fields_are_spliced_and_sets_materialize() {
        let mut b = Batch::from_lines(Bytes::from_static(b"x\n"), 0);
        b.overlay.ops.push(OverlayOp::Set {
            path: p("env"),
            value: Value::Str("prod".into()),
            if_absent: false,
        });
        let mut out = Vec::new();
        encode_batch(Encoding::Ndjson, &b, &mut out);
        assert_eq!(out, b"{\"message\":\"x\",\"env\":\"prod\"}\n");
        b.overlay.ops.push(OverlayOp::Rename {
            from: p("message"),
            to: p("a.b"),
        });
        out.clear();
        encode_batch(Encoding::Ndjson, &b, &mut out);
        assert_eq!(out, b"{\"env\":\"prod\",\"a\":{\"b\":\"x\"}}\n");
    }
}

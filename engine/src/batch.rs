//! The batch: the unit that moves through a pipeline.
//!
//! One [`Bytes`] buffer holds the raw lines; an [`Event`] is a span of it plus the range of
//! its parsed nodes in the batch's [`FieldTable`]. Filters drop events by compacting the event
//! vector (the bytes stay where they are). Changes go to the [`Overlay`] and are applied only
//! when a sink encodes the event, so an unchanged event leaves as its original bytes.
//!
//! The overlay applies to every event of the batch. A change to one event only (a redacted
//! string) is an [`EventSet`], added with [`Batch::set_event_field`]: it is read by
//! [`Batch::get`] and written by the encoder for that event alone.

use crate::ack::AckToken;
use crate::fields::FieldTable;
use crate::path::FieldPath;
use crate::value::{Value, ValueRef};
use bytes::{Bytes, BytesMut};
use std::sync::Arc;
use std::time::Instant;

/// How an event's fields are known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventForm {
    /// An unparsed line: its only field is `message`, the line itself.
    Raw,
    /// A JSON object whose members are tape entries `fields_start..fields_end`; the line
    /// is that object's text.
    Json,
    /// An object defined only by its tape entries `fields_start..fields_end` (a parsed
    /// syslog or logfmt line): written out by walking the tape, not by copying the line.
    Fields,
}

/// One event: a span of the batch buffer and its parsed nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event {
    pub start: u32,
    pub len: u32,
    /// Position of the event in the batch when it was made; stable across filtering.
    pub id: u32,
    pub fields_start: u32,
    pub fields_end: u32,
    pub form: EventForm,
    /// Bit flags (`TRUNCATED`, ...).
    pub flags: u8,
}

impl Event {
    /// The line was cut at `max_line_bytes`.
    pub const TRUNCATED: u8 = 1;
}

/// A change applied to every event of a batch, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum OverlayOp {
    /// Sets `path` to `value`; with `if_absent`, only where the path holds nothing.
    Set {
        path: FieldPath,
        value: Value,
        if_absent: bool,
    },
    Remove {
        path: FieldPath,
    },
    Rename {
        from: FieldPath,
        to: FieldPath,
    },
}

/// The pending changes of a batch.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Overlay {
    pub ops: Vec<OverlayOp>,
}

impl Overlay {
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

/// A per-event [`OverlayOp::Set`]: `path` of event `event` becomes `value`.
///
/// It takes effect after the overlay ops that existed when it was added (`overlay.ops[..at]`)
/// and before the later ones, so a later rename moves the value and a later set replaces it,
/// exactly as if it were an overlay op that only this event sees.
#[derive(Debug, Clone, PartialEq)]
pub struct EventSet {
    /// The [`Event::id`] of the event it changes.
    pub event: u32,
    /// How many overlay ops came before it.
    pub at: u32,
    pub path: Arc<FieldPath>,
    pub value: Value,
}

/// Where and when a batch was made.
#[derive(Debug, Clone)]
pub struct Origin {
    /// Index of the source component in the running topology.
    pub source: u16,
    pub created: Instant,
    /// Source-specific description (a file path), shared by every event of the batch.
    pub label: Option<Arc<str>>,
}

/// A batch of events sharing one buffer.
#[derive(Debug, Clone)]
pub struct Batch {
    buf: Bytes,
    pub events: Vec<Event>,
    pub fields: FieldTable,
    pub overlay: Overlay,
    /// Per-event sets, sorted by event id (then by insertion); `None` when there are none so
    /// that a batch without them allocates nothing. Shared between clones until one writes.
    event_sets: Option<Arc<Vec<EventSet>>>,
    pub origin: Origin,
    /// Dropped (last clone) when every sink is done with the batch: the acknowledgement.
    pub ack: Option<AckToken>,
}

impl Batch {
    /// A batch over `buf` with one raw event per span.
    pub fn from_spans(buf: Bytes, spans: &[(u32, u32)], source: u16) -> Batch {
        let events = spans
            .iter()
            .enumerate()
            .map(|(i, &(start, len))| Event {
                start,
                len,
                id: i as u32,
                fields_start: 0,
                fields_end: 0,
                form: EventForm::Raw,
                flags: 0,
            })
            .collect();
        Batch::from_events(buf, events, source)
    }

    pub fn from_events(buf: Bytes, events: Vec<Event>, source: u16) -> Batch {
        Batch {
            buf,
            events,
            fields: FieldTable::default(),
            overlay: Overlay::default(),
            event_sets: None,
            origin: Origin {
                source,
                created: Instant::now(),
                label: None,
            },
            ack: None,
        }
    }

    /// Splits newline-delimited `data` into a batch (a trailing partial line is kept as an
    /// event too). `\r\n` endings are stripped.
    pub fn from_lines(data: Bytes, source: u16) -> Batch {
        let mut events = Vec::new();
        let mut start = 0usize;
        let bytes = &data[..];
        for nl in memchr::memchr_iter(b'\n', bytes) {
            push_line(&mut events, bytes, start, nl);
            start = nl + 1;
        }
        if start < bytes.len() {
            push_line(&mut events, bytes, start, bytes.len());
        }
        Batch::from_events(data, events, source)
    }

    pub fn buf(&self) -> &Bytes {
        &self.buf
    }

    pub fn len(&self) -> usize {
        self.events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// Total bytes of the events' raw lines.
    pub fn byte_len(&self) -> u64 {
        self.events.iter().map(|e| e.len as u64).sum()
    }

    /// The raw bytes of an event, as they came in.
    pub fn line(&self, ev: &Event) -> &[u8] {
        &self.buf[ev.start as usize..(ev.start + ev.len) as usize]
    }

    /// Sets `path` of event `ev` only to `value` (see [`EventSet`]). Cost: a binary search
    /// and an insert (an append when events are visited in order).
    pub fn set_event_field(&mut self, ev: &Event, path: Arc<FieldPath>, value: Value) {
        let set = EventSet {
            event: ev.id,
            at: self.overlay.ops.len() as u32,
            path,
            value,
        };
        let sets = Arc::make_mut(self.event_sets.get_or_insert_with(Default::default));
        let pos = sets.partition_point(|s| s.event <= ev.id);
        sets.insert(pos, set);
    }

    /// The per-event sets of `ev`, oldest first.
    pub fn event_sets_of(&self, ev: &Event) -> &[EventSet] {
        let Some(sets) = self.event_sets.as_deref() else {
            return &[];
        };
        let lo = sets.partition_point(|s| s.event < ev.id);
        let hi = lo + sets[lo..].partition_point(|s| s.event == ev.id);
        &sets[lo..hi]
    }

    /// Whether any event of the batch has a per-event set.
    pub fn has_event_sets(&self) -> bool {
        self.event_sets.as_ref().is_some_and(|s| !s.is_empty())
    }

    /// Reads a field of an event, looking through the overlay and its per-event sets first.
    pub fn get<'a>(&'a self, ev: &Event, path: &FieldPath) -> Option<ValueRef<'a>> {
        let sets = self.event_sets_of(ev);
        if self.overlay.is_empty() && sets.is_empty() {
            return self.base_get(ev, path.segments());
        }
        self.overlay_get(ev, path, self.overlay.ops.len(), sets)
    }

    /// Reads `path` as it was after `overlay.ops[..upto]` and the event's sets with
    /// `at <= upto`, walking them newest first.
    fn overlay_get<'a>(
        &'a self,
        ev: &Event,
        path: &FieldPath,
        upto: usize,
        sets: &'a [EventSet],
    ) -> Option<ValueRef<'a>> {
        let mut next_set = sets.partition_point(|s| s.at as usize <= upto);
        let mut pos = upto;
        loop {
            // Sets added when the overlay had `pos` ops come after op `pos - 1`.
            while next_set > 0 && sets[next_set - 1].at as usize >= pos {
                next_set -= 1;
                let set = &sets[next_set];
                if set.path.is_prefix_of(path) {
                    return value_at(&set.value, &path.segments()[set.path.len()..]);
                }
            }
            if pos == 0 {
                break;
            }
            pos -= 1;
            let i = pos;
            match &self.overlay.ops[i] {
                OverlayOp::Set {
                    path: p,
                    value,
                    if_absent,
                } => {
                    if p.is_prefix_of(path) {
                        if *if_absent {
                            if let Some(v) = self.overlay_get(ev, p, i, sets) {
                                if p == path {
                                    return Some(v);
                                }
                                return self.overlay_get(ev, path, i, sets);
                            }
                        }
                        return value_at(value, &path.segments()[p.len()..]);
                    }
                    // Reading an object whose member a nested set changed gives the object as
                    // it was; sinks see the change (encode materializes it).
                }
                OverlayOp::Remove { path: p } => {
                    if p.is_prefix_of(path) {
                        return None;
                    }
                }
                OverlayOp::Rename { from, to } => {
                    if to.is_prefix_of(path) {
                        let moved = to.rebase(path, from);
                        return self.overlay_get(ev, &moved, i, sets);
                    }
                    if from.is_prefix_of(path) {
                        return None;
                    }
                }
            }
        }
        self.base_get(ev, path.segments())
    }

    /// Reads a field from the parsed tape (or `message` of a raw line), ignoring the overlay.
    pub fn base_get<'a, S: AsRef<str>>(&'a self, ev: &Event, path: &[S]) -> Option<ValueRef<'a>> {
        if path.len() == 2
            && path[0].as_ref() == "_meta"
            && path[1].as_ref() == "truncated"
            && ev.flags & Event::TRUNCATED != 0
        {
            return Some(ValueRef::Bool(true));
        }
        match ev.form {
            EventForm::Raw => {
                if path.len() == 1 && path[0].as_ref() == "message" {
                    Some(ValueRef::Str {
                        raw: self.line(ev),
                        escaped: false,
                    })
                } else {
                    None
                }
            }
            EventForm::Json | EventForm::Fields => {
                let idx = self
                    .fields
                    .find(&self.buf, ev.fields_start, ev.fields_end, path)?;
                Some(ValueRef::from_entry(&self.fields, &self.buf, idx))
            }
        }
    }

    /// Keeps the events for which `keep` is true; returns how many were removed.
    pub fn retain(&mut self, mut keep: impl FnMut(&Batch, &Event) -> bool) -> usize {
        let mut events = std::mem::take(&mut self.events);
        let before = events.len();
        events.retain(|e| keep(self, e));
        let removed = before - events.len();
        self.events = events;
        removed
    }

    /// Like [`Batch::retain`], but the removed events come back as a sibling batch that
    /// shares this batch's buffer, tape, overlay and acknowledgement.
    pub fn partition(&mut self, mut keep: impl FnMut(&Batch, &Event) -> bool) -> Batch {
        let events = std::mem::take(&mut self.events);
        let mut kept = Vec::with_capacity(events.len());
        let mut rest = Vec::new();
        for e in events {
            if keep(self, &e) {
                kept.push(e);
            } else {
                rest.push(e);
            }
        }
        self.events = kept;
        self.sibling(rest)
    }

    /// A batch over the same buffer and tape holding `events`.
    pub fn sibling(&self, events: Vec<Event>) -> Batch {
        Batch {
            buf: self.buf.clone(),
            events,
            fields: self.fields.clone(),
            overlay: self.overlay.clone(),
            event_sets: self.event_sets.clone(),
            origin: self.origin.clone(),
            ack: self.ack.clone(),
        }
    }
}

fn push_line(events: &mut Vec<Event>, bytes: &[u8], start: usize, mut end: usize) {
    if end > start && bytes[end - 1] == b'\r' {
        end -= 1;
    }
    let id = events.len() as u32;
    events.push(Event {
        start: start as u32,
        len: (end - start) as u32,
        id,
        fields_start: 0,
        fields_end: 0,
        form: EventForm::Raw,
        flags: 0,
    });
}

/// Walks into an owned value.
fn value_at<'a, S: AsRef<str>>(mut v: &'a Value, path: &[S]) -> Option<ValueRef<'a>> {
    for seg in path {
        let seg = seg.as_ref();
        v = match v {
            Value::Object(members) => members
                .iter()
                .rev()
                .find(|(k, _)| k == seg)
                .map(|(_, v)| v)?,
            Value::Array(items) => items.get(seg.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(ValueRef::Owned(v))
}

/// Builds a batch by appending lines into one buffer.
pub struct BatchBuilder {
    buf: BytesMut,
    spans: Vec<(u32, u32)>,
}

impl BatchBuilder {
    pub fn with_capacity(bytes: usize, events: usize) -> BatchBuilder {
        BatchBuilder {
            buf: BytesMut::with_capacity(bytes),
            spans: Vec::with_capacity(events),
        }
    }

    pub fn push_line(&mut self, line: &[u8]) {
        let start = self.buf.len() as u32;
        self.buf.extend_from_slice(line);
        self.spans.push((start, line.len() as u32));
    }

    pub fn len(&self) -> usize {
        self.spans.len()
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    pub fn byte_len(&self) -> usize {
        self.buf.len()
    }

    /// Freezes the buffer into a batch and leaves the builder empty (with fresh capacity).
    pub fn finish(&mut self, source: u16) -> Batch {
        let cap = self.buf.capacity().max(64 * 1024);
        let buf = std::mem::replace(&mut self.buf, BytesMut::with_capacity(cap)).freeze();
        let batch = Batch::from_spans(buf, &self.spans, source);
        self.spans.clear();
        batch
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> FieldPath {
        FieldPath::parse(s).unwrap()
    }

    #[test]
    fn lines_become_raw_events_with_message() {
        let b = Batch::from_lines(Bytes::from_static(b"one\r\ntwo\nthree"), 0);
        assert_eq!(b.len(), 3);
        assert_eq!(b.line(&b.events[0]), b"one");
        assert_eq!(b.line(&b.events[2]), b"three");
        let m = b.get(&b.events[1], &p("message")).unwrap();
        assert_eq!(&*m.as_str().unwrap(), b"two");
        assert!(b.get(&b.events[1], &p("level")).is_none());
    }

    #[test]
    fn overlay_set_remove_rename() {
        let mut b = Batch::from_lines(Bytes::from_static(b"x"), 0);
        b.overlay.ops.push(OverlayOp::Set {
            path: p("env"),
            value: Value::Str("prod".into()),
            if_absent: false,
        });
        b.overlay.ops.push(OverlayOp::Rename {
            from: p("message"),
            to: p("msg"),
        });
        let ev = b.events[0];
        assert_eq!(&*b.get(&ev, &p("env")).unwrap().as_str().unwrap(), b"prod");
        assert_eq!(&*b.get(&ev, &p("msg")).unwrap().as_str().unwrap(), b"x");
        assert!(b.get(&ev, &p("message")).is_none());
        b.overlay.ops.push(OverlayOp::Remove { path: p("env") });
        assert!(b.get(&ev, &p("env")).is_none());
        b.overlay.ops.push(OverlayOp::Set {
            path: p("msg"),
            value: Value::Str("y".into()),
            if_absent: true,
        });
        assert_eq!(&*b.get(&ev, &p("msg")).unwrap().as_str().unwrap(), b"x");
    }

    #[test]
    fn partition_shares_buffer() {
        let mut b = Batch::from_lines(Bytes::from_static(b"a\nbb\nccc\n"), 0);
        let rest = b.partition(|b, e| b.line(e).len() != 2);
        assert_eq!(b.len(), 2);
        assert_eq!(rest.len(), 1);
        assert_eq!(rest.line(&rest.events[0]), b"bb");
        assert_eq!(rest.events[0].id, 1);
    }

    fn str_of(b: &Batch, ev: &Event, path: &str) -> Option<String> {
        let v = b.get(ev, &p(path))?;
        Some(String::from_utf8(v.as_str()?.into_owned()).unwrap())
    }

    #[test]
    fn event_set_is_seen_by_its_event_only() {
        let mut b = Batch::from_lines(Bytes::from_static(b"a\nb\nc\n"), 0);
        assert!(!b.has_event_sets());
        let ev1 = b.events[1];
        b.set_event_field(&ev1, Arc::new(p("message")), Value::Str("B".into()));
        b.set_event_field(&ev1, Arc::new(p("extra")), Value::Int(7));
        let ev0 = b.events[0];
        b.set_event_field(&ev0, Arc::new(p("message")), Value::Str("A".into()));
        assert!(b.has_event_sets());
        assert_eq!(str_of(&b, &b.events[0], "message").as_deref(), Some("A"));
        assert_eq!(str_of(&b, &b.events[1], "message").as_deref(), Some("B"));
        assert_eq!(str_of(&b, &b.events[2], "message").as_deref(), Some("c"));
        assert_eq!(b.get(&ev1, &p("extra")).unwrap().as_i64(), Some(7));
        assert!(b.get(&b.events[0], &p("extra")).is_none());
        assert!(b.get(&b.events[2], &p("extra")).is_none());
        assert_eq!(b.event_sets_of(&ev1).len(), 2);
        assert_eq!(b.event_sets_of(&b.events[2]).len(), 0);
        // A later set on the same event wins.
        b.set_event_field(&ev1, Arc::new(p("message")), Value::Str("B2".into()));
        assert_eq!(str_of(&b, &ev1, "message").as_deref(), Some("B2"));
    }

    #[test]
    fn event_set_takes_its_place_among_overlay_ops() {
        let mut b = Batch::from_lines(Bytes::from_static(b"a\nb\n"), 0);
        let ev0 = b.events[0];
        // Set, then a batch-wide rename: the renamed field carries the per-event value.
        b.set_event_field(&ev0, Arc::new(p("message")), Value::Str("A".into()));
        b.overlay.ops.push(OverlayOp::Rename {
            from: p("message"),
            to: p("msg"),
        });
        assert_eq!(str_of(&b, &ev0, "msg").as_deref(), Some("A"));
        assert!(b.get(&ev0, &p("message")).is_none());
        assert_eq!(str_of(&b, &b.events[1], "msg").as_deref(), Some("b"));
        // A per-event set after the rename writes the new name.
        b.set_event_field(&ev0, Arc::new(p("msg")), Value::Str("A2".into()));
        assert_eq!(str_of(&b, &ev0, "msg").as_deref(), Some("A2"));
        // A later batch-wide set replaces it; an `if_absent` one does not.
        b.overlay.ops.push(OverlayOp::Set {
            path: p("msg"),
            value: Value::Str("keep".into()),
            if_absent: true,
        });
        assert_eq!(str_of(&b, &ev0, "msg").as_deref(), Some("A2"));
        b.overlay.ops.push(OverlayOp::Set {
            path: p("msg"),
            value: Value::Str("all".into()),
            if_absent: false,
        });
        assert_eq!(str_of(&b, &ev0, "msg").as_deref(), Some("all"));
        // A nested set is visible through its parent path.
        b.set_event_field(
            &ev0,
            Arc::new(p("obj")),
            Value::Object(vec![("k".into(), Value::Str("v".into()))]),
        );
        assert_eq!(str_of(&b, &ev0, "obj.k").as_deref(), Some("v"));
    }

    #[test]
    fn event_sets_survive_partition_sibling_and_clone() {
        let mut b = Batch::from_lines(Bytes::from_static(b"a\nbb\nccc\n"), 0);
        for i in [2usize, 1] {
            let ev = b.events[i];
            b.set_event_field(&ev, Arc::new(p("message")), Value::Str(format!("x{i}")));
        }
        let clone = b.clone();
        let rest = b.partition(|b, e| b.line(e).len() != 2);
        assert_eq!(
            str_of(&rest, &rest.events[0], "message").as_deref(),
            Some("x1")
        );
        assert_eq!(str_of(&b, &b.events[0], "message").as_deref(), Some("a"));
        assert_eq!(str_of(&b, &b.events[1], "message").as_deref(), Some("x2"));
        // Writing to one clone leaves the other as it was.
        let ev0 = b.events[0];
        b.set_event_field(&ev0, Arc::new(p("message")), Value::Str("x0".into()));
        assert_eq!(str_of(&b, &ev0, "message").as_deref(), Some("x0"));
        assert_eq!(str_of(&clone, &ev0, "message").as_deref(), Some("a"));
        assert_eq!(
            str_of(&rest, &rest.events[0], "message").as_deref(),
            Some("x1")
        );
    }

    #[test]
    fn builder_finish() {
        let mut bb = BatchBuilder::with_capacity(16, 4);
        bb.push_line(b"a");
        bb.push_line(b"b");
        let b = bb.finish(3);
        assert_eq!(b.len(), 2);
        assert_eq!(b.line(&b.events[1]), b"b");
        assert_eq!(b.origin.source, 3);
        assert!(bb.is_empty());
    }
}

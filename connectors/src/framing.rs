//! Framing a byte stream into batches of events, without copying.
//!
//! Reads accumulate in a `BytesMut`; everything up to the end of the last complete event is
//! frozen into one `Bytes` and cut into batches of at most `batch_size` events that all share
//! it. An event is a line (ended by `delimiter`, default `\n`; a `\r` before `\n` is stripped)
//! or, with a multiline [`Aggregator`], a run of lines kept contiguous in the buffer: the lines
//! of a pending event stay in the `BytesMut` until the aggregator says the event is complete.
//!
//! Events longer than `max_line_bytes` are cut there and flagged `truncated`; the rest of an
//! over-long line that has not ended yet is skipped. Each batch comes with the number of bytes
//! consumed up to its end, so a file source can checkpoint exact offsets.

use crate::sources::file::multiline::{Aggregator, Boundary};
use bytes::{Bytes, BytesMut};
use sluice_engine::batch::{Batch, Event, EventForm};

pub struct LineFramer {
    max_line_bytes: usize,
    batch_size: usize,
    delimiter: Vec<u8>,
    multiline: Option<Aggregator>,
    /// Inside an over-long line whose head was already emitted: skip to the next delimiter.
    skipping: bool,
    /// Bytes at the front of the buffer already fed to the multiline aggregator (its pending
    /// event's lines).
    scanned: usize,
    /// Lines cut at `max_line_bytes` so far.
    pub truncated: u64,
}

/// Where one event lies in the frozen buffer.
#[derive(Clone, Copy)]
struct Span {
    start: usize,
    end: usize,
}

impl LineFramer {
    pub fn new(max_line_bytes: usize, batch_size: usize) -> LineFramer {
        LineFramer {
            max_line_bytes: max_line_bytes.max(1),
            batch_size: batch_size.max(1),
            delimiter: b"\n".to_vec(),
            multiline: None,
            skipping: false,
            scanned: 0,
            truncated: 0,
        }
    }

    /// Uses `delimiter` (non-empty) between events instead of `\n`.
    pub fn with_delimiter(mut self, delimiter: &[u8]) -> LineFramer {
        if !delimiter.is_empty() {
            self.delimiter = delimiter.to_vec();
        }
        self
    }

    /// Groups lines into events with `agg`.
    pub fn with_multiline(mut self, agg: Option<Aggregator>) -> LineFramer {
        self.multiline = agg;
        self
    }

    /// Forgets partial state (after a truncation the buffer is cleared by the caller).
    pub fn reset(&mut self) {
        self.skipping = false;
        self.scanned = 0;
        if let Some(a) = &mut self.multiline {
            a.flush();
        }
    }

    /// True while a multiline event waits for more lines.
    pub fn has_pending(&self) -> bool {
        self.scanned > 0
    }

    fn find_delim(&self, hay: &[u8]) -> Option<usize> {
        if self.delimiter.len() == 1 {
            memchr::memchr(self.delimiter[0], hay)
        } else {
            memchr::memmem::find(hay, &self.delimiter)
        }
    }

    fn rfind_delim(&self, hay: &[u8]) -> Option<usize> {
        if self.delimiter.len() == 1 {
            memchr::memrchr(self.delimiter[0], hay)
        } else {
            memchr::memmem::rfind(hay, &self.delimiter)
        }
    }

    /// Frames complete events in `buf` (consuming them) into batches for `source`. `out`
    /// gets each batch and the bytes consumed from the start of `buf` (as it was when this
    /// call began) up to the end of that batch. With `at_eof`, a trailing partial line and
    /// any pending multiline event are emitted too.
    pub fn frame(
        &mut self,
        buf: &mut BytesMut,
        at_eof: bool,
        source: u16,
        out: &mut impl FnMut(Batch, usize),
    ) {
        let dl = self.delimiter.len();
        let mut consumed = 0usize;
        if self.skipping {
            match self.find_delim(buf) {
                Some(p) => {
                    let _ = buf.split_to(p + dl);
                    consumed += p + dl;
                    self.skipping = false;
                }
                None => {
                    buf.clear();
                    return;
                }
            }
        }
        if self.multiline.is_some() {
            self.frame_multiline(buf, at_eof, source, consumed, out);
            return;
        }
        let complete = match self.rfind_delim(buf) {
            _ if at_eof => buf.len(),
            Some(p) => p + dl,
            None => {
                if buf.len() >= self.max_line_bytes {
                    // An over-long line with no end in sight: emit its head, skip the rest.
                    let n = buf.len();
                    let data = buf.split().freeze();
                    self.truncated += 1;
                    self.skipping = true;
                    let ev = make_event(0, 0, self.max_line_bytes, Event::TRUNCATED);
                    out(Batch::from_events(data, vec![ev], source), consumed + n);
                }
                return;
            }
        };
        if complete == 0 {
            return;
        }
        let data = buf.split_to(complete).freeze();
        let mut spans = Vec::with_capacity(self.batch_size.min(complete / 64 + 1));
        let mut start = 0;
        while start < data.len() {
            let (end, next) = match self.find_delim(&data[start..]) {
                Some(p) => (start + p, start + p + dl),
                None => (data.len(), data.len()),
            };
            spans.push(Span { start, end });
            start = next;
        }
        self.emit(data, &spans, source, consumed, out);
    }

    fn frame_multiline(
        &mut self,
        buf: &mut BytesMut,
        at_eof: bool,
        source: u16,
        consumed: usize,
        out: &mut impl FnMut(Batch, usize),
    ) {
        let dl = self.delimiter.len();
        let mut spans: Vec<Span> = Vec::new();
        // Start of the pending event (always the front of the unconsumed part).
        let mut event_start = 0usize;
        let mut pos = self.scanned;
        while let Some(p) = self.find_delim(&buf[pos..]) {
            let (ls, le) = (pos, pos + p);
            let agg = self.multiline.as_mut().expect("multiline");
            match agg.push(&buf[ls..le]) {
                Boundary::Pending => {}
                Boundary::EndBefore => {
                    if ls > event_start {
                        spans.push(Span {
                            start: event_start,
                            end: ls - dl,
                        });
                    }
                    event_start = ls;
                    // This line may be a whole event already (it starts nothing).
                    if agg.pending_complete() {
                        spans.push(Span { start: ls, end: le });
                        agg.flush();
                        event_start = le + dl;
                    }
                }
                Boundary::EndWith => {
                    spans.push(Span {
                        start: event_start,
                        end: le,
                    });
                    event_start = le + dl;
                }
            }
            pos = le + dl;
        }
        let mut cut = event_start;
        if at_eof && buf.len() > event_start {
            // Whatever is left, a partial last line included, ends here.
            let end = if pos == buf.len() {
                buf.len() - dl
            } else {
                buf.len()
            };
            spans.push(Span {
                start: event_start,
                end,
            });
            if let Some(a) = self.multiline.as_mut() {
                a.flush();
            }
            cut = buf.len();
            pos = buf.len();
        }
        self.scanned = pos - cut;
        if cut == 0 {
            return;
        }
        let data = buf.split_to(cut).freeze();
        self.emit(data, &spans, source, consumed, out);
    }

    /// Ends a pending multiline event now (its timeout passed): emits it.
    pub fn flush_pending(
        &mut self,
        buf: &mut BytesMut,
        source: u16,
        out: &mut impl FnMut(Batch, usize),
    ) {
        if self.scanned == 0 {
            return;
        }
        let dl = self.delimiter.len();
        let cut = self.scanned;
        let spans = [Span {
            start: 0,
            end: cut - dl,
        }];
        if let Some(a) = self.multiline.as_mut() {
            a.flush();
        }
        self.scanned = 0;
        let data = buf.split_to(cut).freeze();
        self.emit(data, &spans, source, 0, out);
    }

    fn emit(
        &mut self,
        data: Bytes,
        spans: &[Span],
        source: u16,
        consumed: usize,
        out: &mut impl FnMut(Batch, usize),
    ) {
        let dl = self.delimiter.len();
        let bytes = &data[..];
        let mut events = Vec::with_capacity(self.batch_size.min(spans.len()));
        for (i, s) in spans.iter().enumerate() {
            let mut end = s.end;
            if dl == 1 && self.delimiter[0] == b'\n' && end > s.start && bytes[end - 1] == b'\r' {
                end -= 1;
            }
            let mut flags = 0;
            if end - s.start > self.max_line_bytes {
                end = s.start + self.max_line_bytes;
                flags = Event::TRUNCATED;
                self.truncated += 1;
            }
            events.push(make_event(events.len(), s.start, end - s.start, flags));
            let last = i + 1 == spans.len();
            if events.len() == self.batch_size || last {
                // Bytes up to this event's delimiter (or the end of the data for the last).
                let upto = if last {
                    data.len()
                } else {
                    (s.end + dl).min(data.len())
                };
                let full = std::mem::replace(&mut events, Vec::with_capacity(self.batch_size));
                out(
                    Batch::from_events(data.clone(), full, source),
                    consumed + upto,
                );
            }
        }
    }
}

fn make_event(id: usize, start: usize, len: usize, flags: u8) -> Event {
    Event {
        start: start as u32,
        len: len as u32,
        id: id as u32,
        fields_start: 0,
        fields_end: 0,
        form: EventForm::Raw,
        flags,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(f: &mut LineFramer, buf: &mut BytesMut, eof: bool) -> (Vec<Vec<u8>>, Vec<usize>) {
        let mut lines = Vec::new();
        let mut ends = Vec::new();
        f.frame(buf, eof, 0, &mut |b, end| {
            lines.extend(b.events.iter().map(|e| b.line(e).to_vec()));
            ends.push(end);
        });
        (lines, ends)
    }

    fn s(v: &[&str]) -> Vec<Vec<u8>> {
        v.iter().map(|x| x.as_bytes().to_vec()).collect()
    }

    #[test]
    fn frames_complete_lines_keeps_the_tail_and_reports_offsets() {
        let mut f = LineFramer::new(100, 2);
        let mut buf = BytesMut::from(&b"a\nbb\r\nccc\ndd"[..]);
        let (lines, ends) = run(&mut f, &mut buf, false);
        assert_eq!(lines, s(&["a", "bb", "ccc"]));
        assert_eq!(
            ends,
            vec![6, 10],
            "batch_size 2: two batches, ending after `bb\\r\\n` and `ccc\\n`"
        );
        assert_eq!(&buf[..], b"dd");
        buf.extend_from_slice(b"d\n");
        let (lines, ends) = run(&mut f, &mut buf, false);
        assert_eq!(lines, s(&["ddd"]));
        assert_eq!(ends, vec![4]);
    }

    #[test]
    fn eof_flushes_partial_line() {
        let mut f = LineFramer::new(100, 10);
        let mut buf = BytesMut::from(&b"x\ny"[..]);
        let (lines, ends) = run(&mut f, &mut buf, true);
        assert_eq!(lines, s(&["x", "y"]));
        assert_eq!(ends, vec![3]);
        assert!(buf.is_empty());
    }

    #[test]
    fn long_lines_are_truncated_and_flagged() {
        let mut f = LineFramer::new(4, 10);
        let mut buf = BytesMut::from(&b"123456\nok\n"[..]);
        let mut flags = Vec::new();
        f.frame(&mut buf, false, 0, &mut |b, _| {
            flags.extend(b.events.iter().map(|e| e.flags))
        });
        assert_eq!(flags, vec![Event::TRUNCATED, 0]);
        // A long line with no delimiter yet: head emitted, rest skipped across reads.
        let mut buf = BytesMut::from(&b"abcdefgh"[..]);
        let (lines, ends) = run(&mut f, &mut buf, false);
        assert_eq!(lines, s(&["abcd"]));
        assert_eq!(ends, vec![8]);
        buf.extend_from_slice(b"ijk\nnext\n");
        let (lines, ends) = run(&mut f, &mut buf, false);
        assert_eq!(lines, s(&["next"]));
        assert_eq!(ends, vec![9], "the skipped `ijk\\n` counts as consumed");
        assert_eq!(f.truncated, 2);
    }

    #[test]
    fn custom_delimiters() {
        let mut f = LineFramer::new(100, 10).with_delimiter(b"||");
        let mut buf = BytesMut::from(&b"a||b\n||c"[..]);
        let (lines, ends) = run(&mut f, &mut buf, false);
        assert_eq!(lines, s(&["a", "b\n"]));
        assert_eq!(ends, vec![7]);
        assert_eq!(&buf[..], b"c");
    }

    #[test]
    fn multiline_events_stay_contiguous_across_reads() {
        use crate::sources::file::multiline::{MultilineConfig, Preset};
        let cfg = MultilineConfig {
            preset: Some(Preset::Java),
            start_pattern: None,
            condition_pattern: None,
            mode: None,
            timeout: None,
            max_lines: None,
        };
        let mut f = LineFramer::new(10_000, 10).with_multiline(Some(cfg.compile().unwrap()));
        let text =
            "INFO start\nERROR boom\njava.lang.IllegalStateException: x\n\tat a.B.c(B.java:1)\n";
        let mut buf = BytesMut::from(text.as_bytes());
        let (lines, ends) = run(&mut f, &mut buf, false);
        // Each non-indented line starts an event, so `INFO start` and `ERROR boom` are
        // complete; the exception and its first frame are still pending.
        assert_eq!(lines, s(&["INFO start", "ERROR boom"]));
        assert_eq!(ends, vec![22]);
        assert!(f.has_pending());
        // The second read continues the trace, then a new event starts.
        buf.extend_from_slice(b"\tat d.E.f(E.java:2)\nCaused by: y\n\t... 3 more\nINFO next\n");
        let (lines, _) = run(&mut f, &mut buf, false);
        assert_eq!(lines.len(), 1, "{lines:?}");
        let trace = String::from_utf8(lines[0].clone()).unwrap();
        assert!(trace.starts_with("java.lang.IllegalStateException: x\n\tat a.B.c"));
        assert!(trace.ends_with("\t... 3 more"));
        // At the end of input the pending `INFO next` is emitted.
        let (lines, _) = run(&mut f, &mut buf, true);
        assert_eq!(lines, s(&["INFO next"]));
        assert!(buf.is_empty() && !f.has_pending());
    }

    #[test]
    fn pending_multiline_event_flushes_on_timeout() {
        use crate::sources::file::multiline::{Mode, MultilineConfig};
        let cfg = MultilineConfig {
            preset: None,
            start_pattern: Some("^\\S".into()),
            condition_pattern: Some("^\\s".into()),
            mode: Some(Mode::ContinueThrough),
            timeout: Some("10ms".into()),
            max_lines: None,
        };
        let mut f = LineFramer::new(10_000, 10).with_multiline(Some(cfg.compile().unwrap()));
        let mut buf = BytesMut::from(&b"head\n  cont\n"[..]);
        let (lines, _) = run(&mut f, &mut buf, false);
        assert!(lines.is_empty() && f.has_pending());
        let mut got = Vec::new();
        f.flush_pending(&mut buf, 0, &mut |b, end| {
            got.extend(b.events.iter().map(|e| b.line(e).to_vec()));
            assert_eq!(end, 12);
        });
        assert_eq!(got, s(&["head\n  cont"]));
        assert!(buf.is_empty());
    }
}

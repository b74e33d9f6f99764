//! Newline framing of a byte stream into batches, without copying.
//!
//! Reads accumulate in a `BytesMut`; everything up to the last newline is frozen into one
//! `Bytes` and cut into batches of at most `batch_size` events that all share it. Lines
//! longer than `max_line_bytes` are cut there and flagged `truncated`; the rest of such a
//! line is skipped. `\r\n` endings are stripped.

use bytes::{Bytes, BytesMut};
use sluice_engine::batch::{Batch, Event, EventForm};

pub struct LineFramer {
    max_line_bytes: usize,
    batch_size: usize,
    /// Inside an over-long line whose head was already emitted: skip to the next newline.
    skipping: bool,
    /// Lines cut at `max_line_bytes` so far.
    pub truncated: u64,
}

impl LineFramer {
    pub fn new(max_line_bytes: usize, batch_size: usize) -> LineFramer {
        LineFramer {
            max_line_bytes: max_line_bytes.max(1),
            batch_size: batch_size.max(1),
            skipping: false,
            truncated: 0,
        }
    }

    /// Frames every complete line in `buf` (consuming it) into batches for `source`.
    /// With `at_eof`, a trailing line without newline is emitted too.
    pub fn frame(
        &mut self,
        buf: &mut BytesMut,
        at_eof: bool,
        source: u16,
        out: &mut impl FnMut(Batch),
    ) {
        if self.skipping {
            match memchr::memchr(b'\n', buf) {
                Some(nl) => {
                    let _ = buf.split_to(nl + 1);
                    self.skipping = false;
                }
                None => {
                    buf.clear();
                    return;
                }
            }
        }
        let complete = match memchr::memrchr(b'\n', buf) {
            _ if at_eof => buf.len(),
            Some(nl) => nl + 1,
            None => {
                if buf.len() >= self.max_line_bytes {
                    // An over-long line with no end in sight: emit its head, skip the rest.
                    let data = buf.split().freeze();
                    self.truncated += 1;
                    self.skipping = true;
                    let ev = make_event(0, 0, self.max_line_bytes, Event::TRUNCATED);
                    out(Batch::from_events(data, vec![ev], source));
                }
                return;
            }
        };
        if complete == 0 {
            return;
        }
        let data = buf.split_to(complete).freeze();
        self.frame_frozen(data, source, out);
    }

    fn frame_frozen(&mut self, data: Bytes, source: u16, out: &mut impl FnMut(Batch)) {
        let mut events = Vec::with_capacity(self.batch_size.min(data.len() / 64 + 1));
        let mut start = 0usize;
        let bytes = &data[..];
        let push = |events: &mut Vec<Event>, s: usize, mut e: usize, this: &mut LineFramer| {
            if e > s && bytes[e - 1] == b'\r' {
                e -= 1;
            }
            let mut flags = 0;
            if e - s > this.max_line_bytes {
                e = s + this.max_line_bytes;
                flags = Event::TRUNCATED;
                this.truncated += 1;
            }
            let id = events.len();
            events.push(make_event(id, s, e - s, flags));
        };
        for nl in memchr::memchr_iter(b'\n', bytes) {
            push(&mut events, start, nl, self);
            start = nl + 1;
            if events.len() == self.batch_size {
                let full = std::mem::replace(&mut events, Vec::with_capacity(self.batch_size));
                out(Batch::from_events(data.clone(), full, source));
            }
        }
        if start < bytes.len() {
            push(&mut events, start, bytes.len(), self);
        }
        if !events.is_empty() {
            out(Batch::from_events(data, events, source));
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

    fn lines(batches: &[Batch]) -> Vec<Vec<u8>> {
        batches
            .iter()
            .flat_map(|b| b.events.iter().map(|e| b.line(e).to_vec()))
            .collect()
    }

    #[test]
    fn frames_complete_lines_and_keeps_the_tail() {
        let mut f = LineFramer::new(100, 2);
        let mut buf = BytesMut::from(&b"a\nbb\r\nccc\ndd"[..]);
        let mut out = Vec::new();
        f.frame(&mut buf, false, 0, &mut |b| out.push(b));
        assert_eq!(
            lines(&out),
            vec![b"a".to_vec(), b"bb".to_vec(), b"ccc".to_vec()]
        );
        assert_eq!(out.len(), 2, "batch_size 2 splits the batch");
        assert_eq!(&buf[..], b"dd");
        buf.extend_from_slice(b"d\n");
        out.clear();
        f.frame(&mut buf, false, 0, &mut |b| out.push(b));
        assert_eq!(lines(&out), vec![b"ddd".to_vec()]);
    }

    #[test]
    fn eof_flushes_partial_line() {
        let mut f = LineFramer::new(100, 10);
        let mut buf = BytesMut::from(&b"x\ny"[..]);
        let mut out = Vec::new();
        f.frame(&mut buf, true, 0, &mut |b| out.push(b));
        assert_eq!(lines(&out), vec![b"x".to_vec(), b"y".to_vec()]);
        assert!(buf.is_empty());
    }

    #[test]
    fn long_lines_are_truncated_and_flagged() {
        let mut f = LineFramer::new(4, 10);
        let mut buf = BytesMut::from(&b"123456\nok\n"[..]);
        let mut out = Vec::new();
        f.frame(&mut buf, false, 0, &mut |b| out.push(b));
        assert_eq!(lines(&out), vec![b"1234".to_vec(), b"ok".to_vec()]);
        assert_eq!(out[0].events[0].flags, Event::TRUNCATED);
        // A long line with no newline yet: head emitted, rest skipped across reads.
        let mut buf = BytesMut::from(&b"abcdefgh"[..]);
        out.clear();
        f.frame(&mut buf, false, 0, &mut |b| out.push(b));
        assert_eq!(lines(&out), vec![b"abcd".to_vec()]);
        buf.extend_from_slice(b"ijk\nnext\n");
        out.clear();
        f.frame(&mut buf, false, 0, &mut |b| out.push(b));
        assert_eq!(lines(&out), vec![b"next".to_vec()]);
        assert_eq!(f.truncated, 2);
    }
}

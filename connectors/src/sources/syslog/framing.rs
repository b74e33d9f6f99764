//! RFC 6587 framing of a syslog byte stream (TCP or TLS) into messages, and nothing more.
//!
//! The method is decided **per frame**, so one connection may mix both:
//! - a frame that starts with a digit run and a space (`123 <34>1 ...`) is *octet counted*:
//!   the next `123` bytes are the message;
//! - any other frame is *non-transparent*: the message runs to the next LF (a CR before it is
//!   stripped). A digit run followed by something else than a space or a digit (`2024-05-01
//!   ...`) is such a line too, so plain lines that start with a date still arrive.
//!
//! CR and LF bytes between frames are skipped (some senders end octet-counted frames with an
//! LF; blank lines carry nothing). An octet-counted message loses one trailing LF (and a CR
//! before it) as well.
//!
//! Hostile input never hangs, panics or grows memory past `max_frame_bytes` plus a few bytes:
//! - a count with a leading zero, or of more than 10 digits, is an `invalid_octet_count`: the
//!   bytes up to the next LF are discarded (an LF-framed stream resumes at its next line);
//! - a count above `max_frame_bytes` is `oversized`: exactly that many bytes are skipped as they
//!   arrive (never buffered), which keeps an honest sender's stream in sync;
//! - an LF frame longer than `max_frame_bytes` is cut there and emitted with `truncated` set
//!   (like the line framer); the rest of it, up to the next LF, is skipped;
//! - at the end of the stream, an octet-counted frame (or count) that did not fully arrive is
//!   a `truncated_frame`, counted and not emitted; a last LF frame without its LF is emitted.
//!
//! The framer looks only at the bytes the caller passes (its read buffer) and says how many it
//! consumed; the rest (at most `max_frame_bytes + 12` bytes) stays in the caller's buffer for
//! the next call. The output does not depend on how the stream was split into reads.

/// Why a frame was not emitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameDrop {
    /// Its octet count is above `max_frame_bytes`; its bytes are skipped.
    Oversized,
    /// The count has a leading zero or more than 10 digits; skipped up to the next LF.
    InvalidOctetCount,
    /// The stream ended inside an octet-counted frame or its count.
    TruncatedFrame,
}

impl FrameDrop {
    /// The `reason` label of `sluice_events_dropped_total`.
    pub fn reason(self) -> &'static str {
        match self {
            FrameDrop::Oversized => "oversized",
            FrameDrop::InvalidOctetCount => "invalid_octet_count",
            FrameDrop::TruncatedFrame => "truncated_frame",
        }
    }
}

/// Receives the framer's output.
pub trait FrameSink {
    /// One message; `truncated` when an LF frame was cut at `max_frame_bytes`.
    fn frame(&mut self, frame: &[u8], truncated: bool);
    /// A frame that was dropped, and why.
    fn dropped(&mut self, why: FrameDrop);
}

/// What one [`SyslogFramer::feed`] call did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Fed {
    /// Bytes of the input consumed; the caller drops them from its buffer.
    pub consumed: usize,
    /// Frames emitted.
    pub frames: usize,
    /// Bytes of the emitted frames.
    pub bytes: usize,
    /// Stopped because the frame budget ran out; complete frames may be left.
    pub paused: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// At a frame boundary.
    Start,
    /// Skipping the rest of an oversized octet-counted frame.
    Skip(u64),
    /// Skipping to the next LF (an invalid count, or the rest of a cut LF frame).
    SkipToLf,
}

/// The longest octet count accepted, in digits (counts above `max_frame_bytes` are skipped).
const MAX_COUNT_DIGITS: usize = 10;

/// Per-connection framing state.
#[derive(Debug, Clone)]
pub struct SyslogFramer {
    max_frame: usize,
    state: State,
    /// Bytes of the pending LF frame (from the front of the input) already searched for LF.
    scanned: usize,
}

enum Header {
    /// A valid count and the header's length (digits and space).
    Count(u64, usize),
    /// A leading zero or too many digits.
    Invalid,
    /// Digits followed by something else: an LF-framed line.
    NotCount,
    /// Only digits so far.
    Incomplete,
}

fn parse_header(b: &[u8]) -> Header {
    let mut n: u64 = 0;
    let mut i = 0;
    while i < b.len() && b[i].is_ascii_digit() {
        if i == MAX_COUNT_DIGITS {
            return Header::Invalid;
        }
        n = n * 10 + u64::from(b[i] - b'0');
        i += 1;
    }
    if i == b.len() {
        return Header::Incomplete;
    }
    if b[i] != b' ' {
        return Header::NotCount;
    }
    if b[0] == b'0' {
        return Header::Invalid;
    }
    Header::Count(n, i + 1)
}

/// Drops one trailing LF (and a CR before it).
pub(crate) fn trim_lf(mut f: &[u8]) -> &[u8] {
    if let [rest @ .., b'\n'] = f {
        f = rest;
    }
    if let [rest @ .., b'\r'] = f {
        f = rest;
    }
    f
}

impl SyslogFramer {
    pub fn new(max_frame_bytes: usize) -> SyslogFramer {
        SyslogFramer {
            max_frame: max_frame_bytes.max(1),
            state: State::Start,
            scanned: 0,
        }
    }

    /// The most bytes a caller may have to keep between calls (a pending frame and its count).
    pub fn max_pending(&self) -> usize {
        self.max_frame + MAX_COUNT_DIGITS + 2
    }

    /// Frames the complete messages at the front of `input`, at most `budget` of them. With
    /// `eof` the stream ended after `input`: the tail is emitted or counted, and everything is
    /// consumed (unless the budget ran out first).
    pub fn feed(
        &mut self,
        input: &[u8],
        eof: bool,
        budget: usize,
        sink: &mut impl FrameSink,
    ) -> Fed {
        let max = self.max_frame;
        let len = input.len();
        let mut fed = Fed::default();
        let mut pos = 0usize;
        loop {
            match self.state {
                State::Skip(n) => {
                    let k = n.min((len - pos) as u64);
                    pos += k as usize;
                    if k < n {
                        self.state = State::Skip(n - k);
                        break;
                    }
                    self.state = State::Start;
                }
                State::SkipToLf => match memchr::memchr(b'\n', &input[pos..]) {
                    Some(i) => {
                        pos += i + 1;
                        self.state = State::Start;
                    }
                    None => {
                        pos = len;
                        break;
                    }
                },
                State::Start => {
                    while pos < len && (input[pos] == b'\n' || input[pos] == b'\r') {
                        pos += 1;
                        self.scanned = 0;
                    }
                    if pos == len {
                        break;
                    }
                    if fed.frames >= budget {
                        fed.paused = true;
                        break;
                    }
                    let rest = &input[pos..];
                    if rest[0].is_ascii_digit() {
                        match parse_header(rest) {
                            Header::Count(n, hlen) => {
                                if n > max as u64 {
                                    sink.dropped(FrameDrop::Oversized);
                                    pos += hlen;
                                    self.state = State::Skip(n);
                                    continue;
                                }
                                let end = hlen + n as usize;
                                if rest.len() < end {
                                    if eof {
                                        sink.dropped(FrameDrop::TruncatedFrame);
                                        pos = len;
                                    }
                                    break;
                                }
                                let f = trim_lf(&rest[hlen..end]);
                                if !f.is_empty() {
                                    sink.frame(f, false);
                                    fed.frames += 1;
                                    fed.bytes += f.len();
                                }
                                pos += end;
                                continue;
                            }
                            Header::Invalid => {
                                sink.dropped(FrameDrop::InvalidOctetCount);
                                self.state = State::SkipToLf;
                                continue;
                            }
                            Header::Incomplete => {
                                if eof {
                                    sink.dropped(FrameDrop::TruncatedFrame);
                                    pos = len;
                                }
                                break;
                            }
                            Header::NotCount => {}
                        }
                    }
                    // A non-transparent (LF) frame. Only bytes not searched yet are searched.
                    let from = self.scanned.min(rest.len());
                    match memchr::memchr(b'\n', &rest[from..]) {
                        Some(i) => {
                            let line = trim_lf(&rest[..from + i + 1]);
                            self.scanned = 0;
                            let (f, cut) = if line.len() > max {
                                (&line[..max], true)
                            } else {
                                (line, false)
                            };
                            sink.frame(f, cut);
                            fed.frames += 1;
                            fed.bytes += f.len();
                            pos += from + i + 1;
                        }
                        // Room for a CR before the LF: `max + 1` bytes may still be a fit.
                        None if rest.len() > max + 1 => {
                            sink.frame(&rest[..max], true);
                            fed.frames += 1;
                            fed.bytes += max;
                            self.scanned = 0;
                            self.state = State::SkipToLf;
                            pos = len;
                            break;
                        }
                        None if eof => {
                            let line = trim_lf(rest);
                            let (f, cut) = if line.len() > max {
                                (&line[..max], true)
                            } else {
                                (line, false)
                            };
                            if !f.is_empty() {
                                sink.frame(f, cut);
                                fed.frames += 1;
                                fed.bytes += f.len();
                            }
                            self.scanned = 0;
                            pos = len;
                            break;
                        }
                        None => {
                            self.scanned = rest.len();
                            break;
                        }
                    }
                }
            }
        }
        fed.consumed = pos;
        fed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default, Debug, PartialEq)]
    struct Rec {
        frames: Vec<(Vec<u8>, bool)>,
        drops: Vec<FrameDrop>,
    }

    impl FrameSink for Rec {
        fn frame(&mut self, frame: &[u8], truncated: bool) {
            self.frames.push((frame.to_vec(), truncated));
        }
        fn dropped(&mut self, why: FrameDrop) {
            self.drops.push(why);
        }
    }

    /// Feeds `data` in pieces of `chunk` bytes like a connection would (keeping what was not
    /// consumed), then ends the stream.
    fn run(data: &[u8], max: usize, chunk: usize) -> Rec {
        let mut f = SyslogFramer::new(max);
        let mut rec = Rec::default();
        let mut buf: Vec<u8> = Vec::new();
        for piece in data.chunks(chunk.max(1)) {
            buf.extend_from_slice(piece);
            let fed = f.feed(&buf, false, usize::MAX, &mut rec);
            assert!(!fed.paused);
            buf.drain(..fed.consumed);
            assert!(buf.len() <= f.max_pending(), "kept {} bytes", buf.len());
        }
        let fed = f.feed(&buf, true, usize::MAX, &mut rec);
        assert_eq!(fed.consumed, buf.len(), "eof consumes everything");
        rec
    }

    fn frames(r: &Rec) -> Vec<String> {
        r.frames
            .iter()
            .map(|(f, _)| String::from_utf8_lossy(f).into_owned())
            .collect()
    }

    #[test]
    fn lf_and_octet_counted_frames_mixed_in_one_stream() {
        let data = b"<13>one\n9 <13>two\r\n\n<13>three\r\n9 <13>four\n\n<14>five";
        for chunk in 1..=data.len() {
            let r = run(data, 100, chunk);
            assert_eq!(
                frames(&r),
                ["<13>one", "<13>two", "<13>three", "<13>four", "<14>five"],
                "chunk {chunk}"
            );
            assert!(r.drops.is_empty());
        }
    }

    #[test]
    fn lines_starting_with_a_date_are_lf_frames() {
        let r = run(b"2024-05-01 boot\n17:00:01 up\n", 100, 3);
        assert_eq!(frames(&r), ["2024-05-01 boot", "17:00:01 up"]);
    }

    #[test]
    fn octet_counted_frames_may_contain_lf() {
        let r = run(b"8 <1>a\nb\nc7 <1>d\ne\n", 100, 1);
        assert_eq!(frames(&r), ["<1>a\nb\nc", "<1>d\ne"]);
    }

    #[test]
    fn count_longer_than_what_arrives_is_a_truncated_frame() {
        let r = run(b"5 <1>a\n50 <13>short", 100, 4);
        assert_eq!(frames(&r), ["<1>a"]);
        assert_eq!(r.drops, vec![FrameDrop::TruncatedFrame]);
        // A count alone at the end, too.
        let r = run(b"<1>x\n123", 100, 1);
        assert_eq!(frames(&r), ["<1>x"]);
        assert_eq!(r.drops, vec![FrameDrop::TruncatedFrame]);
    }

    #[test]
    fn invalid_counts_skip_to_the_next_line() {
        let data = b"007 <1>zero\n<1>ok\n12345678901 <1>long\n<1>ok2\n0 x\n<1>ok3\n";
        for chunk in [1, 5, 100] {
            let r = run(data, 1 << 20, chunk);
            assert_eq!(frames(&r), ["<1>ok", "<1>ok2", "<1>ok3"]);
            assert_eq!(r.drops, vec![FrameDrop::InvalidOctetCount; 3]);
        }
    }

    #[test]
    fn oversized_count_is_skipped_exactly() {
        let mut data = b"20 ".to_vec();
        data.extend_from_slice(&[b'x'; 20]);
        data.extend_from_slice(b"4 <1>a<1>b\n");
        for chunk in [1, 2, 7, 100] {
            let r = run(&data, 10, chunk);
            assert_eq!(frames(&r), ["<1>a", "<1>b"], "chunk {chunk}");
            assert_eq!(r.drops, vec![FrameDrop::Oversized]);
        }
        // An absurd count swallows the rest of the stream without buffering it.
        let mut f = SyslogFramer::new(10);
        let mut rec = Rec::default();
        let fed = f.feed(b"9999999999 abc", false, usize::MAX, &mut rec);
        assert_eq!(fed.consumed, 14);
        let fed = f.feed(&[b'z'; 4096], false, usize::MAX, &mut rec);
        assert_eq!(fed.consumed, 4096);
        assert_eq!(rec.drops, vec![FrameDrop::Oversized]);
    }

    #[test]
    fn long_lf_frames_are_cut_and_the_rest_skipped() {
        let data = b"<1>abcdefghij\n<1>ok\n<1>0123456789xyz";
        for chunk in [1, 3, 100] {
            let r = run(data, 8, chunk);
            assert_eq!(
                r.frames,
                vec![
                    (b"<1>abcde".to_vec(), true),
                    (b"<1>ok".to_vec(), false),
                    (b"<1>01234".to_vec(), true)
                ],
                "chunk {chunk}"
            );
        }
        // `max` bytes and a CR before the LF fit.
        let r = run(b"<1>abcde\r\n", 8, 1);
        assert_eq!(r.frames, vec![(b"<1>abcde".to_vec(), false)]);
    }

    #[test]
    fn budget_pauses_at_a_frame_boundary() {
        let mut f = SyslogFramer::new(100);
        let mut rec = Rec::default();
        let data = b"<1>a\n3 <1>\n<1>c\n";
        let fed = f.feed(data, false, 2, &mut rec);
        assert!(fed.paused);
        assert_eq!(fed.frames, 2);
        let fed2 = f.feed(&data[fed.consumed..], false, 2, &mut rec);
        assert!(!fed2.paused);
        assert_eq!(fed.consumed + fed2.consumed, data.len());
        assert_eq!(frames(&rec), ["<1>a", "<1>", "<1>c"]);
    }

    #[test]
    fn binary_garbage_never_panics_and_respects_the_limit() {
        // A fixed pseudo-random stream with many digits, spaces, LFs and CRs.
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let alphabet = b"0123456789 \n\r<>x\x00\xff";
        let data: Vec<u8> = (0..20_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                alphabet[(x % alphabet.len() as u64) as usize]
            })
            .collect();
        let whole = run(&data, 16, data.len());
        for chunk in [1, 2, 3, 17, 4096] {
            let r = run(&data, 16, chunk);
            assert_eq!(r, whole, "chunk {chunk}");
        }
        assert!(whole.frames.iter().all(|(f, _)| f.len() <= 16));
        assert!(!whole.frames.is_empty() && !whole.drops.is_empty());
    }
}

//! The syslog (RFC 6587) framer fed arbitrary bytes split at arbitrary points: never panics,
//! never emits a frame longer than `max_frame_bytes`, never asks its caller to keep more than
//! `max_pending()` bytes, consumes everything at the end of the stream, and gives the same
//! frames and drops however the stream was split.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sluice_connectors::sources::syslog::framing::{FrameDrop, FrameSink, SyslogFramer};

#[derive(Default, PartialEq, Debug)]
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

/// Feeds `body` cut at the points `cuts` picks (one byte of `cuts` per piece).
fn run(body: &[u8], max: usize, cuts: &[u8], budget: usize) -> Rec {
    let mut f = SyslogFramer::new(max);
    let mut rec = Rec::default();
    let mut buf: Vec<u8> = Vec::new();
    let mut pos = 0;
    let mut i = 0;
    while pos < body.len() {
        let n = if cuts.is_empty() {
            body.len()
        } else {
            cuts[i % cuts.len()] as usize % 97 + 1
        };
        i += 1;
        let end = (pos + n).min(body.len());
        buf.extend_from_slice(&body[pos..end]);
        pos = end;
        loop {
            let fed = f.feed(&buf, false, budget, &mut rec);
            assert!(fed.consumed <= buf.len());
            buf.drain(..fed.consumed);
            if !fed.paused {
                break;
            }
        }
        assert!(buf.len() <= f.max_pending(), "kept {} bytes", buf.len());
    }
    loop {
        let fed = f.feed(&buf, true, budget, &mut rec);
        buf.drain(..fed.consumed);
        if !fed.paused {
            break;
        }
    }
    assert!(buf.is_empty(), "the end of the stream consumes everything");
    for (frame, _) in &rec.frames {
        assert!(frame.len() <= max && !frame.is_empty());
    }
    rec
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let (ctl, rest) = data.split_at(4);
    let max = ctl[0] as usize % 64 + 16;
    let budget = ctl[1] as usize % 4 + 1;
    let ncuts = (ctl[2] as usize % 16).min(rest.len());
    let (cuts, body) = rest.split_at(ncuts);
    let whole = run(body, max, &[], usize::MAX);
    let pieces = run(body, max, cuts, usize::MAX);
    assert_eq!(whole, pieces, "framing depends on how the stream was split");
    let budgeted = run(body, max, cuts, budget);
    assert_eq!(whole, budgeted, "a frame budget changes nothing but pacing");
});

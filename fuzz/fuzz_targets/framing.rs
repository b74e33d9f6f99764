//! The line framer fed arbitrary bytes in arbitrary chunk sizes, with and without a
//! multiline preset: never panics, never emits an event outside its buffer, and accounts for
//! every byte it consumed.
#![no_main]
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use sluice_connectors::framing::LineFramer;
use sluice_connectors::sources::file::multiline::{MultilineConfig, Preset};

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let (ctl, body) = data.split_at(3);
    let chunk = (ctl[0] as usize % 64) + 1;
    let max_line = (ctl[1] as usize % 200) + 1;
    let multiline = (ctl[2] % 3 == 1).then(|| {
        MultilineConfig {
            preset: Some([Preset::Java, Preset::Python, Preset::Go][(ctl[2] / 3 % 3) as usize]),
            start_pattern: None,
            condition_pattern: None,
            mode: None,
            timeout: None,
            max_lines: Some(5),
        }
        .compile()
        .expect("preset compiles")
    });
    let delimiter: &[u8] = if ctl[2] % 3 == 2 { b"\r\n" } else { b"\n" };
    let mut f = LineFramer::new(max_line, 7)
        .with_delimiter(delimiter)
        .with_multiline(multiline);
    let mut buf = BytesMut::new();
    let mut consumed = 0usize;
    let mut fed = 0usize;
    for (i, piece) in body.chunks(chunk).enumerate() {
        buf.extend_from_slice(piece);
        fed += piece.len();
        let before = buf.len();
        let last = (i + 1) * chunk >= body.len();
        f.frame(&mut buf, last, 0, &mut |b, end| {
            for e in &b.events {
                assert!((e.start + e.len) as usize <= b.buf().len());
                assert!(e.len as usize <= max_line);
            }
            assert!(end <= before);
        });
        consumed += before - buf.len();
        assert_eq!(consumed + buf.len(), fed);
    }
});

//! Request bodies: decoding (`Content-Encoding`) under a size cap, and splitting a decoded
//! body into events without parsing it.
//!
//! Splitting only finds where documents start and end; whether a document is valid JSON is
//! decided later, on the shards, by the `parse json` transform (bad ones go to its
//! `dropped` count). The splitters return spans `(start, len)` into the body, so a batch is
//! the body's one buffer plus one span per document: no copy per event.
//!
//! - [`split_single`]: the whole body is one document (`POST /log`).
//! - [`split_ndjson`]: one document per non-blank line; `\r\n` endings and surrounding
//!   blanks are trimmed.
//! - [`split_array`]: a JSON array; one document per top-level element, its exact bytes
//!   (strings, escapes and nesting are respected; the elements themselves are not checked).
//!
//! A document may contain line breaks (a pretty-printed object). Raw line breaks are never
//! valid inside JSON strings, so [`flatten_line_breaks`] turns them into spaces, which keeps
//! every event on one line for newline-delimited sinks without changing what it means.

use bytes::{Bytes, BytesMut};
use std::io::Read;

/// Why a body could not be split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SplitError {
    /// Byte offset where splitting gave up.
    pub offset: usize,
    pub what: &'static str,
}

impl std::fmt::Display for SplitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} at byte {}", self.what, self.offset)
    }
}

/// Bodies are addressed with `u32` spans.
pub const MAX_SPLIT_BYTES: usize = u32::MAX as usize;

fn err(offset: usize, what: &'static str) -> SplitError {
    SplitError { offset, what }
}

fn too_large(buf: &[u8]) -> Result<(), SplitError> {
    if buf.len() > MAX_SPLIT_BYTES {
        return Err(err(MAX_SPLIT_BYTES, "body larger than 4GiB"));
    }
    Ok(())
}

#[inline]
fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

/// First index at or after `i` that is not JSON whitespace.
#[inline]
fn skip_ws(buf: &[u8], mut i: usize) -> usize {
    while i < buf.len() && is_ws(buf[i]) {
        i += 1;
    }
    i
}

/// `[start, end)` without surrounding JSON whitespace.
#[inline]
fn trim(buf: &[u8], mut start: usize, mut end: usize) -> (usize, usize) {
    while start < end && is_ws(buf[start]) {
        start += 1;
    }
    while end > start && is_ws(buf[end - 1]) {
        end -= 1;
    }
    (start, end)
}

/// True when the first non-blank byte of the body opens a JSON array.
pub fn starts_with_array(buf: &[u8]) -> bool {
    let i = skip_ws(buf, 0);
    i < buf.len() && buf[i] == b'['
}

/// The whole body, trimmed, as one document; nothing if it is blank.
pub fn split_single(buf: &[u8], spans: &mut Vec<(u32, u32)>) -> Result<(), SplitError> {
    too_large(buf)?;
    let (s, e) = trim(buf, 0, buf.len());
    if s < e {
        spans.push((s as u32, (e - s) as u32));
    }
    Ok(())
}

/// One document per non-blank line.
pub fn split_ndjson(buf: &[u8], spans: &mut Vec<(u32, u32)>) -> Result<(), SplitError> {
    too_large(buf)?;
    let mut start = 0usize;
    for nl in memchr::memchr_iter(b'\n', buf) {
        push_trimmed(buf, start, nl, spans);
        start = nl + 1;
    }
    push_trimmed(buf, start, buf.len(), spans);
    Ok(())
}

#[inline]
fn push_trimmed(buf: &[u8], start: usize, end: usize, spans: &mut Vec<(u32, u32)>) {
    // Most lines need no trimming: check the ends before looping.
    let (s, e) = if start < end && !is_ws(buf[start]) && !is_ws(buf[end - 1]) {
        (start, end)
    } else {
        trim(buf, start, end)
    };
    if s < e {
        spans.push((s as u32, (e - s) as u32));
    }
}

/// One document per top-level element of a JSON array (`[]` gives none). Fails on anything
/// that is not an array with balanced brackets, closed strings, and only blanks after it.
pub fn split_array(buf: &[u8], spans: &mut Vec<(u32, u32)>) -> Result<(), SplitError> {
    too_large(buf)?;
    let first = spans.len();
    let r = split_array_inner(buf, spans);
    if r.is_err() {
        spans.truncate(first);
    }
    r
}

fn split_array_inner(buf: &[u8], spans: &mut Vec<(u32, u32)>) -> Result<(), SplitError> {
    let n = buf.len();
    let mut i = skip_ws(buf, 0);
    if i >= n || buf[i] != b'[' {
        return Err(err(i, "expected a JSON array"));
    }
    i = skip_ws(buf, i + 1);
    if i < n && buf[i] == b']' {
        return expect_end(buf, i + 1);
    }
    loop {
        i = skip_ws(buf, i);
        if i >= n {
            return Err(err(i, "unterminated array"));
        }
        let start = i;
        let end = value_end(buf, i)?;
        spans.push((start as u32, (end - start) as u32));
        i = skip_ws(buf, end);
        if i >= n {
            return Err(err(i, "unterminated array"));
        }
        match buf[i] {
            b',' => i += 1,
            b']' => return expect_end(buf, i + 1),
            _ => return Err(err(i, "expected `,` or `]` after an array element")),
        }
    }
}

fn expect_end(buf: &[u8], i: usize) -> Result<(), SplitError> {
    let j = skip_ws(buf, i);
    if j < buf.len() {
        return Err(err(j, "data after the array"));
    }
    Ok(())
}

/// One past the end of the value starting at `i` (not blank, within `buf`).
fn value_end(buf: &[u8], i: usize) -> Result<usize, SplitError> {
    match buf[i] {
        b'"' => string_end(buf, i + 1),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut j = i;
            while j < buf.len() {
                match buf[j] {
                    b'"' => {
                        j = string_end(buf, j + 1)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Ok(j + 1);
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
            Err(err(i, "unbalanced brackets in an array element"))
        }
        b',' | b']' | b'}' => Err(err(i, "empty array element")),
        _ => {
            // A scalar (number, true, null, or garbage): up to the next separator.
            let mut j = i;
            while j < buf.len() && !matches!(buf[j], b',' | b']') && !is_ws(buf[j]) {
                j += 1;
            }
            Ok(j)
        }
    }
}

/// One past the closing quote of a string whose contents start at `i`.
#[inline]
fn string_end(buf: &[u8], mut i: usize) -> Result<usize, SplitError> {
    let start = i;
    while i < buf.len() {
        match memchr::memchr2(b'"', b'\\', &buf[i..]) {
            Some(k) if buf[i + k] == b'"' => return Ok(i + k + 1),
            Some(k) => i += k + 2, // skip the escaped byte
            None => break,
        }
    }
    Err(err(start.saturating_sub(1), "unterminated string"))
}

/// Whether any span of `buf` contains a raw line break.
pub fn spans_have_line_breaks(buf: &[u8], spans: &[(u32, u32)]) -> bool {
    spans.iter().any(|&(s, l)| {
        let s = s as usize;
        memchr::memchr2(b'\n', b'\r', &buf[s..s + l as usize]).is_some()
    })
}

/// Turns raw line breaks inside the spans into spaces (see the module comment). `buf` is
/// copied only if a span has one.
pub fn flatten_line_breaks(buf: Bytes, spans: &[(u32, u32)]) -> Bytes {
    if !spans_have_line_breaks(&buf, spans) {
        return buf;
    }
    let mut m = BytesMut::from(&buf[..]);
    for &(s, l) in spans {
        let span = &mut m[s as usize..(s + l) as usize];
        let mut i = 0;
        while let Some(k) = memchr::memchr2(b'\n', b'\r', &span[i..]) {
            span[i + k] = b' ';
            i += k + 1;
        }
    }
    m.freeze()
}

/// A `Content-Encoding` the source can decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Identity,
    Gzip,
    /// zlib-wrapped deflate, as HTTP means it.
    Deflate,
    Zstd,
}

impl Encoding {
    /// Parses a `Content-Encoding` value (one coding; case-insensitive). `None`: unsupported.
    pub fn from_header(value: &[u8]) -> Option<Encoding> {
        let v = value.trim_ascii();
        let is = |name: &str| v.eq_ignore_ascii_case(name.as_bytes());
        if v.is_empty() || is("identity") {
            Some(Encoding::Identity)
        } else if is("gzip") || is("x-gzip") {
            Some(Encoding::Gzip)
        } else if is("deflate") {
            Some(Encoding::Deflate)
        } else if is("zstd") {
            Some(Encoding::Zstd)
        } else {
            None
        }
    }
}

/// Why a body could not be decoded.
#[derive(Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// The decoded body would be larger than the limit (a compression bomb, or just big).
    TooLarge,
    /// Not valid data of that encoding.
    Corrupt(String),
}

/// Decodes `input` to at most `limit` bytes. Identity bodies are returned as they are.
pub fn decode(encoding: Encoding, input: Bytes, limit: usize) -> Result<Bytes, DecodeError> {
    match encoding {
        Encoding::Identity => {
            if input.len() > limit {
                return Err(DecodeError::TooLarge);
            }
            Ok(input)
        }
        Encoding::Gzip => {
            read_limited(flate2::read::MultiGzDecoder::new(&input[..]), &input, limit)
        }
        Encoding::Deflate => {
            read_limited(flate2::read::ZlibDecoder::new(&input[..]), &input, limit)
        }
        Encoding::Zstd => {
            let mut d = zstd::stream::read::Decoder::with_buffer(&input[..])
                .map_err(|e| DecodeError::Corrupt(e.to_string()))?;
            // The decoder allocates the window a frame declares: keep that near the limit.
            let log = (usize::BITS - limit.max(1).leading_zeros()).clamp(23, 27);
            d.window_log_max(log)
                .map_err(|e| DecodeError::Corrupt(e.to_string()))?;
            read_limited(d, &input, limit)
        }
    }
}

fn read_limited<R: Read>(mut r: R, input: &[u8], limit: usize) -> Result<Bytes, DecodeError> {
    const CHUNK: usize = 64 * 1024;
    let mut out =
        BytesMut::with_capacity(input.len().saturating_mul(4).clamp(CHUNK, limit.max(CHUNK)));
    loop {
        let len = out.len();
        // One byte past the limit tells "exactly at the limit" from "over it".
        let want = CHUNK.min(limit + 1 - len);
        out.resize(len + want, 0);
        match r.read(&mut out[len..]) {
            Ok(0) => {
                out.truncate(len);
                return Ok(out.freeze());
            }
            Ok(n) => {
                out.truncate(len + n);
                if out.len() > limit {
                    return Err(DecodeError::TooLarge);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => out.truncate(len),
            Err(e) => return Err(DecodeError::Corrupt(e.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn docs<'a>(buf: &'a [u8], spans: &[(u32, u32)]) -> Vec<&'a str> {
        spans
            .iter()
            .map(|&(s, l)| std::str::from_utf8(&buf[s as usize..(s + l) as usize]).unwrap())
            .collect()
    }

    #[test]
    fn ndjson_lines_trimmed_blank_skipped() {
        let b = b"{\"a\":1}\r\n\n  \n {\"b\":2} \n{\"c\":3}";
        let mut spans = Vec::new();
        split_ndjson(b, &mut spans).unwrap();
        assert_eq!(docs(b, &spans), ["{\"a\":1}", "{\"b\":2}", "{\"c\":3}"]);
    }

    #[test]
    fn array_elements_exact_bytes() {
        let b = br#" [ {"a":"x,]}\"{"} , {"n":[1,{"m":[]}]},"s\\", 12 ,true,[1,2] ]
"#;
        let mut spans = Vec::new();
        split_array(b, &mut spans).unwrap();
        assert_eq!(
            docs(b, &spans),
            [
                r#"{"a":"x,]}\"{"}"#,
                r#"{"n":[1,{"m":[]}]}"#,
                r#""s\\""#,
                "12",
                "true",
                "[1,2]"
            ]
        );
    }

    #[test]
    fn array_errors_leave_no_spans() {
        for bad in [
            &b""[..],
            b"{}",
            b"[",
            b"[{}",
            b"[{},",
            b"[{},]",
            b"[,{}]",
            b"[{\"a\":\"]}",
            b"[{}] x",
            b"[{} {}]",
            b"[{\"a\":1}}]",
        ] {
            let mut spans = vec![(0, 0)];
            assert!(
                split_array(bad, &mut spans).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
            assert_eq!(spans.len(), 1);
        }
        let mut spans = Vec::new();
        split_array(b" [ ] ", &mut spans).unwrap();
        assert!(spans.is_empty());
    }

    #[test]
    fn single_and_flatten() {
        let body = Bytes::from_static(b"\n{\n  \"a\": \"b\"\r\n}\n");
        let mut spans = Vec::new();
        split_single(&body, &mut spans).unwrap();
        assert_eq!(spans, [(1, 15)]);
        let flat = flatten_line_breaks(body.clone(), &spans);
        assert_eq!(&flat[1..16], b"{   \"a\": \"b\"  }");
        // Nothing to do: the same buffer comes back.
        let plain = Bytes::from_static(b"{\"a\":1}\n");
        let mut spans = Vec::new();
        split_ndjson(&plain, &mut spans).unwrap();
        let same = flatten_line_breaks(plain.clone(), &spans);
        assert_eq!(same.as_ptr(), plain.as_ptr());
    }

    #[test]
    fn encodings() {
        assert_eq!(Encoding::from_header(b" GZIP "), Some(Encoding::Gzip));
        assert_eq!(Encoding::from_header(b""), Some(Encoding::Identity));
        assert_eq!(Encoding::from_header(b"zstd"), Some(Encoding::Zstd));
        assert_eq!(Encoding::from_header(b"br"), None);
    }

    #[test]
    fn gzip_and_zstd_round_trip_and_limits() {
        use std::io::Write;
        let data = b"{\"x\":1}\n".repeat(1000);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&data).unwrap();
        let gz = Bytes::from(gz.finish().unwrap());
        assert_eq!(
            decode(Encoding::Gzip, gz.clone(), data.len()).unwrap(),
            &data[..]
        );
        assert_eq!(
            decode(Encoding::Gzip, gz, data.len() - 1),
            Err(DecodeError::TooLarge)
        );
        let zs = Bytes::from(zstd::encode_all(&data[..], 3).unwrap());
        assert_eq!(
            decode(Encoding::Zstd, zs.clone(), 1 << 20).unwrap(),
            &data[..]
        );
        assert_eq!(decode(Encoding::Zstd, zs, 100), Err(DecodeError::TooLarge));
        assert!(matches!(
            decode(Encoding::Gzip, Bytes::from_static(b"not gzip"), 100),
            Err(DecodeError::Corrupt(_))
        ));
        assert_eq!(
            decode(Encoding::Identity, Bytes::from_static(b"abc"), 2),
            Err(DecodeError::TooLarge)
        );
    }
}

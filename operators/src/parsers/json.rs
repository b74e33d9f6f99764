//! A validating, zero-copy JSON object scanner that fills a batch's field tape.
//!
//! [`parse_batch`] parses every raw event of a [`Batch`] as one JSON object and records its
//! members in `batch.fields` (see [`sluice_engine::fields`]): one [`FieldEntry`] per object
//! member or array element, in preorder, nested nodes inline, with offsets into the batch
//! buffer. Nothing is copied or unescaped; entries whose key or value still holds a backslash
//! escape carry [`KEY_ESCAPED`] / [`VALUE_ESCAPED`]. The top-level object itself has no entry:
//! the event's `fields_start..fields_end` are its members.
//!
//! # What is accepted
//!
//! The grammar of RFC 8259, checked completely, with the top-level value restricted to an
//! object:
//!
//! * whitespace is space, tab, CR and LF, anywhere between tokens and around the object;
//!   one UTF-8 byte order mark (`EF BB BF`) may open the text;
//! * strings: no raw byte below 0x20, escapes only `\" \\ \/ \b \f \n \r \t \uXXXX`;
//! * numbers: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`; the value is not converted,
//!   so a number too large for `f64` (`1e400`) is accepted and kept as text;
//! * literals `true`, `false`, `null`; commas and colons exactly where the grammar puts them
//!   (no trailing commas, no comments, no single quotes);
//! * at most [`MAX_DEPTH`] open containers, the top-level object included;
//! * nothing but whitespace after the closing brace (`{..}{..}` is rejected).
//!
//! Deliberate leniencies, because logs are messy and the tape is zero-copy:
//!
//! * **invalid UTF-8 inside strings is accepted** and kept as bytes (`serde_json` rejects
//!   it). Readers see the bytes through [`ValueRef`](sluice_engine::ValueRef), and the JSON
//!   writer replaces invalid sequences with U+FFFD when an event is re-encoded. Bytes of
//!   0x80 and above outside strings are still errors;
//! * `\uXXXX` escapes are checked for four hex digits only; unpaired UTF-16 surrogates
//!   (`"\ud800"`) are accepted, as RFC 8259 section 8.2 permits, and decode to U+FFFD;
//! * duplicate keys are kept; lookups take the last one.
//!
//! # Cost
//!
//! One pass over the bytes with no recursion (an explicit stack of at most [`MAX_DEPTH`]
//! open containers) and no allocation per event: the table is reserved once per batch from
//! the byte length and only grows when a batch holds unusually many nodes per byte. String
//! bodies are scanned eight bytes at a time for a quote, a backslash or a control byte.
//! A failed event leaves nothing behind: the table is truncated to where the event began.

use sluice_engine::batch::{Batch, EventForm};
use sluice_engine::fields::{FieldEntry, FieldTable, Kind, KEY_ESCAPED, VALUE_ESCAPED};

/// Most containers (objects and arrays, the top-level object included) that may be open at
/// once; deeper text is rejected with [`reason::TOO_DEEP`].
pub const MAX_DEPTH: usize = 128;

/// The reasons a line is rejected (the `&'static str` of the error).
pub mod reason {
    /// The span was nothing but whitespace.
    pub const EMPTY: &str = "empty line";
    /// The text is an array, a scalar or garbage rather than an object.
    pub const NOT_OBJECT: &str = "not a JSON object";
    /// The text ended inside the object.
    pub const EOF: &str = "unexpected end of input";
    /// An object member did not start with a string key.
    pub const EXPECTED_KEY: &str = "expected a string key";
    /// A key was not followed by `:`.
    pub const EXPECTED_COLON: &str = "expected ':' after key";
    /// No valid value where one was required.
    pub const EXPECTED_VALUE: &str = "expected a value";
    /// After an object member: neither `,` nor `}`.
    pub const EXPECTED_COMMA_OR_BRACE: &str = "expected ',' or '}' after object member";
    /// After an array element: neither `,` nor `]`.
    pub const EXPECTED_COMMA_OR_BRACKET: &str = "expected ',' or ']' after array element";
    /// `t`, `f` or `n` that does not spell `true`, `false` or `null`.
    pub const INVALID_LITERAL: &str = "invalid literal";
    /// A number outside the RFC 8259 grammar (`01`, `1.`, `-`, `1e`).
    pub const INVALID_NUMBER: &str = "invalid number";
    /// A string without its closing quote.
    pub const UNTERMINATED_STRING: &str = "unterminated string";
    /// A raw byte below 0x20 inside a string.
    pub const CONTROL_CHAR: &str = "control character in string";
    /// A backslash followed by something other than `"\/bfnrtu`.
    pub const INVALID_ESCAPE: &str = "invalid escape in string";
    /// `\u` not followed by four hex digits.
    pub const INVALID_UNICODE_ESCAPE: &str = "invalid \\u escape in string";
    /// Something other than whitespace after the closing brace.
    pub const TRAILING: &str = "trailing characters after the object";
    /// More than [`MAX_DEPTH`](super::MAX_DEPTH) nested containers.
    pub const TOO_DEEP: &str = "nesting deeper than 128";
    /// The span lies outside the buffer or past the 4 GiB offsets of the tape.
    pub const BAD_SPAN: &str = "event span out of range";
}

/// Parses every Raw event of the batch as a JSON object: on success sets `form = Json` and
/// `fields_start..fields_end` to the event's top-level members in `batch.fields` (nested
/// nodes inline, preorder). Events that are not a valid JSON object (malformed, trailing
/// garbage, top-level array/scalar, nesting deeper than 128) are left Raw and their index
/// in `batch.events` is pushed to `rejected` together with a static reason.
/// Returns the number of events parsed. Never panics, never allocates per event (only the
/// table grows; reserve once per batch from the byte length).
///
/// Events already in `Json` form are skipped. New nodes are appended after any the table
/// already holds.
pub fn parse_batch(batch: &mut Batch, rejected: &mut Vec<(usize, &'static str)>) -> usize {
    let mut events = std::mem::take(&mut batch.events);
    let mut table = std::mem::take(&mut batch.fields);
    let bytes: u64 = events
        .iter()
        .filter(|e| e.form == EventForm::Raw)
        .map(|e| e.len as u64)
        .sum();
    // Typical log objects hold one node per 16-24 bytes; denser text grows the table.
    table
        .entries
        .reserve((bytes / 16) as usize + events.len().min(1024));
    let buf: &[u8] = batch.buf();
    let mut parsed = 0;
    for (i, ev) in events.iter_mut().enumerate() {
        if ev.form != EventForm::Raw {
            continue;
        }
        let start = ev.start as usize;
        let end = start + ev.len as usize;
        match parse_object(buf, start, end, &mut table) {
            Ok((first, last)) => {
                ev.form = EventForm::Json;
                ev.fields_start = first;
                ev.fields_end = last;
                parsed += 1;
            }
            Err(why) => rejected.push((i, why)),
        }
    }
    batch.events = events;
    batch.fields = table;
    parsed
}

/// Parses one JSON object text, `buf[start..end]`, appending its nodes to `table` with
/// offsets into `buf`, and returns the range of the object's top-level members in `table`.
/// On error nothing is appended (the table is truncated back).
pub fn parse_object(
    buf: &[u8],
    start: usize,
    end: usize,
    table: &mut FieldTable,
) -> Result<(u32, u32), &'static str> {
    let first = table.entries.len();
    match scan_object(buf, start, end, &mut table.entries) {
        Ok(()) if table.entries.len() <= u32::MAX as usize => {
            Ok((first as u32, table.entries.len() as u32))
        }
        Ok(()) => {
            table.entries.truncate(first);
            Err(reason::BAD_SPAN)
        }
        Err(why) => {
            table.entries.truncate(first);
            Err(why)
        }
    }
}

#[inline(always)]
fn is_ws(b: u8) -> bool {
    b == b' ' || b == b'\n' || b == b'\r' || b == b'\t'
}

#[inline(always)]
fn skip_ws(s: &[u8], mut i: usize) -> usize {
    while let Some(&b) = s.get(i) {
        if b > b' ' || !is_ws(b) {
            break;
        }
        i += 1;
    }
    i
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// SWAR over 8 bytes: the high bit of each byte of `w` that is `"`, `\` or below 0x20, and
/// of each byte that is `"`. Bytes above a flagged byte may be flagged spuriously (borrows),
/// but the lowest flagged byte is always exact, in both masks.
#[inline(always)]
fn special_bytes(w: u64) -> (u64, u64) {
    let q = w ^ (ONES * b'"' as u64);
    let b = w ^ (ONES * b'\\' as u64);
    let quote = q.wrapping_sub(ONES) & !q & HIGHS;
    let backslash = b.wrapping_sub(ONES) & !b;
    let control = w.wrapping_sub(ONES * 0x20) & !w;
    (quote | ((backslash | control) & HIGHS), quote)
}

/// SSE2 over 16 bytes: bit `k` set when byte `k` of `chunk` is `"`, `\` or below 0x20; and
/// the same for `"` alone.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn special_mask16(chunk: &[u8]) -> (u32, u32) {
    use std::arch::x86_64::*;
    assert!(chunk.len() >= 16);
    // SAFETY: SSE2 is part of the x86_64 baseline, and the unaligned load reads 16 bytes
    // that `chunk` holds (checked above; the check folds away at the call site).
    unsafe {
        let v = _mm_loadu_si128(chunk.as_ptr() as *const __m128i);
        let quote = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8));
        let backslash = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8));
        let control = _mm_cmpeq_epi8(_mm_min_epu8(v, _mm_set1_epi8(0x1f)), v);
        let special = _mm_or_si128(_mm_or_si128(quote, backslash), control);
        (
            _mm_movemask_epi8(special) as u32,
            _mm_movemask_epi8(quote) as u32,
        )
    }
}

/// Scans a string body starting at `i` (just past the opening quote). Returns the index of
/// the closing quote and whether a backslash escape occurred.
#[inline(always)]
fn scan_string(s: &[u8], mut i: usize) -> Result<(usize, bool), &'static str> {
    let mut escaped = false;
    loop {
        // Find the next quote, backslash or control byte. The block masks tell a closing
        // quote apart without reading the byte again (the common way out).
        let c = loop {
            #[cfg(target_arch = "x86_64")]
            if let Some(chunk) = s.get(i..i + 16) {
                let (m, quote) = special_mask16(chunk);
                if m == 0 {
                    i += 16;
                    continue;
                }
                i += m.trailing_zeros() as usize;
                if m & m.wrapping_neg() & quote != 0 {
                    return Ok((i, escaped));
                }
                break s[i];
            }
            if let Some(chunk) = s.get(i..i + 8) {
                let mut w = [0u8; 8];
                w.copy_from_slice(chunk);
                let (m, quote) = special_bytes(u64::from_le_bytes(w));
                if m == 0 {
                    i += 8;
                    continue;
                }
                i += (m.trailing_zeros() / 8) as usize;
                if m & m.wrapping_neg() & quote != 0 {
                    return Ok((i, escaped));
                }
                break s[i];
            }
            match s.get(i) {
                None => return Err(reason::UNTERMINATED_STRING),
                Some(&b) if b == b'"' || b == b'\\' || b < 0x20 => break b,
                Some(_) => i += 1,
            }
        };
        match c {
            b'"' => return Ok((i, escaped)),
            b'\\' => {
                escaped = true;
                match s.get(i + 1) {
                    Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => i += 2,
                    Some(b'u') => match s.get(i + 2..i + 6) {
                        Some(h) if h.iter().all(u8::is_ascii_hexdigit) => i += 6,
                        _ => return Err(reason::INVALID_UNICODE_ESCAPE),
                    },
                    None => return Err(reason::UNTERMINATED_STRING),
                    Some(_) => return Err(reason::INVALID_ESCAPE),
                }
            }
            _ => return Err(reason::CONTROL_CHAR),
        }
    }
}

#[inline(always)]
fn skip_digits(s: &[u8], mut i: usize) -> usize {
    while let Some(b'0'..=b'9') = s.get(i) {
        i += 1;
    }
    i
}

/// Scans a number starting at `i` (a `-` or a digit); returns the index just past it.
#[inline(always)]
fn scan_number(s: &[u8], mut i: usize) -> Result<usize, &'static str> {
    if s.get(i) == Some(&b'-') {
        i += 1;
    }
    match s.get(i) {
        Some(b'0') => {
            i += 1;
            if let Some(b'0'..=b'9') = s.get(i) {
                return Err(reason::INVALID_NUMBER);
            }
        }
        Some(b'1'..=b'9') => i = skip_digits(s, i + 1),
        _ => return Err(reason::INVALID_NUMBER),
    }
    if s.get(i) == Some(&b'.') {
        let d = i + 1;
        i = skip_digits(s, d);
        if i == d {
            return Err(reason::INVALID_NUMBER);
        }
    }
    if let Some(b'e' | b'E') = s.get(i) {
        i += 1;
        if let Some(b'+' | b'-') = s.get(i) {
            i += 1;
        }
        let d = i;
        i = skip_digits(s, d);
        if i == d {
            return Err(reason::INVALID_NUMBER);
        }
    }
    Ok(i)
}

#[inline(always)]
fn leaf(
    key_start: u32,
    key_len: u32,
    start: usize,
    len: usize,
    idx: usize,
    kind: Kind,
    flags: u8,
) -> FieldEntry {
    FieldEntry {
        key_start,
        key_len,
        value_start: start as u32,
        value_len: len as u32,
        end: idx as u32 + 1,
        kind,
        flags,
    }
}

/// The scanner proper: one loop, an explicit stack of open containers.
fn scan_object(
    buf: &[u8],
    start: usize,
    end: usize,
    entries: &mut Vec<FieldEntry>,
) -> Result<(), &'static str> {
    if start > end || end > buf.len() || end > u32::MAX as usize {
        return Err(reason::BAD_SPAN);
    }
    let s = &buf[..end];
    let mut i = start;
    if s.get(i..i + 3) == Some(b"\xEF\xBB\xBF") {
        i += 3;
    }
    i = skip_ws(s, i);
    match s.get(i) {
        Some(b'{') => {}
        None => return Err(reason::EMPTY),
        Some(_) => return Err(reason::NOT_OBJECT),
    }
    i = skip_ws(s, i + 1);
    match s.get(i) {
        Some(b'"') => {}
        Some(b'}') => return finish(s, i + 1),
        None => return Err(reason::EOF),
        Some(_) => return Err(reason::EXPECTED_KEY),
    }

    // `stack[d]` is the entry of the container open at depth `d` (depth 0 is the top-level
    // object, which has no entry); bit `d` of `arrays` says whether it is an array.
    let mut stack = [0u32; MAX_DEPTH];
    let mut arrays: u128 = 0;
    let mut depth = 1usize;
    let mut in_array = false;

    // Invariant at the top of the loop: in an object, `s[i]` is the opening quote of a key;
    // in an array, `i` is at the start of an element (whitespace skipped).
    'member: loop {
        let (key_start, key_len, key_flags) = if in_array {
            (i as u32, 0, 0)
        } else {
            let (close, escaped) = scan_string(s, i + 1)?;
            let key = (
                (i + 1) as u32,
                (close - i - 1) as u32,
                if escaped { KEY_ESCAPED } else { 0 },
            );
            i = skip_ws(s, close + 1);
            match s.get(i) {
                Some(b':') => {}
                None => return Err(reason::EOF),
                Some(_) => return Err(reason::EXPECTED_COLON),
            }
            i = skip_ws(s, i + 1);
            key
        };
        let idx = entries.len();
        let Some(&c) = s.get(i) else {
            return Err(reason::EOF);
        };
        match c {
            b'"' => {
                let (close, escaped) = scan_string(s, i + 1)?;
                let flags = key_flags | if escaped { VALUE_ESCAPED } else { 0 };
                entries.push(leaf(
                    key_start,
                    key_len,
                    i + 1,
                    close - i - 1,
                    idx,
                    Kind::String,
                    flags,
                ));
                i = close + 1;
            }
            b'-' | b'0'..=b'9' => {
                let stop = scan_number(s, i)?;
                entries.push(leaf(
                    key_start,
                    key_len,
                    i,
                    stop - i,
                    idx,
                    Kind::Number,
                    key_flags,
                ));
                i = stop;
            }
            b't' | b'f' | b'n' => {
                let (word, kind): (&[u8], Kind) = match c {
                    b't' => (b"true", Kind::True),
                    b'f' => (b"false", Kind::False),
                    _ => (b"null", Kind::Null),
                };
                if s.get(i..i + word.len()) != Some(word) {
                    return Err(reason::INVALID_LITERAL);
                }
                entries.push(leaf(
                    key_start,
                    key_len,
                    i,
                    word.len(),
                    idx,
                    kind,
                    key_flags,
                ));
                i += word.len();
            }
            b'{' | b'[' => {
                if depth == MAX_DEPTH {
                    return Err(reason::TOO_DEEP);
                }
                let array = c == b'[';
                // `value_len` and `end` are filled in when the container closes.
                let kind = if array { Kind::Array } else { Kind::Object };
                entries.push(leaf(key_start, key_len, i, 0, idx, kind, key_flags));
                stack[depth] = idx as u32;
                if array {
                    arrays |= 1 << depth;
                } else {
                    arrays &= !(1 << depth);
                }
                depth += 1;
                in_array = array;
                i = skip_ws(s, i + 1);
                match s.get(i) {
                    None => return Err(reason::EOF),
                    Some(b']') if array => {}
                    Some(b'}') if !array => {}
                    Some(_) if array => continue 'member,
                    Some(b'"') => continue 'member,
                    Some(_) => return Err(reason::EXPECTED_KEY),
                }
                // An empty container: its closer is handled below.
            }
            _ => return Err(reason::EXPECTED_VALUE),
        }

        // After a value: commas and closers until the next member starts.
        loop {
            i = skip_ws(s, i);
            let Some(&c) = s.get(i) else {
                return Err(reason::EOF);
            };
            if c == b',' {
                i = skip_ws(s, i + 1);
                if in_array {
                    continue 'member;
                }
                match s.get(i) {
                    Some(b'"') => continue 'member,
                    None => return Err(reason::EOF),
                    Some(_) => return Err(reason::EXPECTED_KEY),
                }
            }
            let closer = if in_array { b']' } else { b'}' };
            if c != closer {
                return Err(if in_array {
                    reason::EXPECTED_COMMA_OR_BRACKET
                } else {
                    reason::EXPECTED_COMMA_OR_BRACE
                });
            }
            i += 1;
            depth -= 1;
            if depth == 0 {
                return finish(s, i);
            }
            let n = entries.len() as u32;
            let e = &mut entries[stack[depth] as usize];
            e.end = n;
            e.value_len = i as u32 - e.value_start;
            in_array = arrays & (1 << (depth - 1)) != 0;
        }
    }
}

/// After the top-level object: only whitespace may follow.
#[inline(always)]
fn finish(s: &[u8], i: usize) -> Result<(), &'static str> {
    if skip_ws(s, i) == s.len() {
        Ok(())
    } else {
        Err(reason::TRAILING)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use proptest::prelude::*;
    use serde_json::{Map, Value};
    use sluice_engine::batch::BatchBuilder;
    use sluice_engine::path::FieldPath;
    use sluice_engine::value::{unescape_json_str, ValueRef};

    /// A batch with one event per element (lines may hold newlines).
    fn batch_of<T: AsRef<[u8]>>(lines: &[T]) -> Batch {
        let mut b = BatchBuilder::with_capacity(1024, lines.len());
        for l in lines {
            b.push_line(l.as_ref());
        }
        b.finish(0)
    }

    fn parse_one(text: &[u8]) -> Result<(FieldTable, u32, u32), &'static str> {
        let mut t = FieldTable::default();
        let (a, b) = parse_object(text, 0, text.len(), &mut t)?;
        Ok((t, a, b))
    }

    fn decode_str(raw: &[u8], escaped: bool) -> String {
        if !escaped {
            return String::from_utf8(raw.to_vec()).expect("utf8");
        }
        let mut out = Vec::new();
        assert!(unescape_json_str(raw, &mut out), "bad escape in {raw:?}");
        String::from_utf8(out).expect("utf8")
    }

    /// Rebuilds the JSON value of the tape range `first..last` (an object's members or an
    /// array's elements), checking the tape's structure on the way.
    fn tape_value(t: &FieldTable, buf: &[u8], first: u32, last: u32, array: bool) -> Value {
        let mut members = Map::new();
        let mut items = Vec::new();
        let mut i = first;
        while i < last {
            let e = t.entries[i as usize];
            assert!(
                e.end > i && e.end <= last,
                "entry {i}: end {} out of {last}",
                e.end
            );
            let v = match e.kind {
                Kind::Null => Value::Null,
                Kind::True => Value::Bool(true),
                Kind::False => Value::Bool(false),
                Kind::Number => serde_json::from_slice(e.value(buf)).expect("number"),
                Kind::String => Value::String(decode_str(e.value(buf), e.value_escaped())),
                Kind::Object | Kind::Array => {
                    let raw = e.value(buf);
                    let (open, close) = if e.kind == Kind::Array {
                        (b'[', b']')
                    } else {
                        (b'{', b'}')
                    };
                    assert_eq!(raw.first(), Some(&open));
                    assert_eq!(raw.last(), Some(&close));
                    tape_value(t, buf, i + 1, e.end, e.kind == Kind::Array)
                }
            };
            if e.kind != Kind::Object && e.kind != Kind::Array {
                assert_eq!(e.end, i + 1);
            }
            if array {
                assert_eq!(e.key_len, 0);
                assert_eq!(e.flags & KEY_ESCAPED, 0);
                items.push(v);
            } else {
                members.insert(decode_str(e.key(buf), e.key_escaped()), v);
            }
            i = e.end;
        }
        assert_eq!(i, last);
        if array {
            Value::Array(items)
        } else {
            Value::Object(members)
        }
    }

    fn json_text(v: ValueRef<'_>) -> String {
        let mut out = Vec::new();
        v.write_json(&mut out);
        String::from_utf8(out).unwrap()
    }

    fn generator_lines(n: usize) -> Vec<u8> {
        let here = env!("CARGO_MANIFEST_DIR");
        let candidates = [
            format!("{here}/../../shared/bench/gen_logs.py"),
            "/work/shared/bench/gen_logs.py".to_string(),
        ];
        for script in candidates
            .iter()
            .filter(|p| std::path::Path::new(p).exists())
        {
            let out = std::process::Command::new("python3")
                .args([
                    script.as_str(),
                    "--format",
                    "json",
                    "--lines",
                    &n.to_string(),
                    "--seed",
                    "42",
                ])
                .output();
            if let Ok(out) = out {
                if out.status.success() && !out.stdout.is_empty() {
                    return out.stdout;
                }
            }
        }
        // No generator here: lines of the same shape.
        eprintln!("gen_logs.py unavailable; using built-in lines of the same shape");
        let mut data = Vec::new();
        let mut x: u64 = 42;
        for k in 0..n {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let level = ["debug", "info", "warn", "error"][(x % 4) as usize];
            data.extend_from_slice(
                format!(
                    "{{\"ts\":\"2026-11-20T12:00:{:02}.{:03}Z\",\"level\":\"{level}\",\"service\":\"auth-{:02}\",\
                     \"host\":\"api-{:03}\",\"trace_id\":\"{:016x}{:016x}\",\"msg\":\"order {} placed\",\
                     \"http\":{{\"method\":\"GET\",\"path\":\"/api/v1/orders/{}\",\"status\":{},\"latency_ms\":{}.{}}},\
                     \"user\":{{\"id\":{}}}}}\n",
                    k % 60, x % 1000, x % 13, x % 211, x, x.rotate_left(17), x % 999_999,
                    x % 99_999, [200, 201, 404, 500][(x >> 9) as usize % 4], x % 400, x % 10, x % 100_000
                )
                .as_bytes(),
            );
        }
        data
    }

    #[test]
    fn generator_lines_match_serde_json() {
        let data = generator_lines(1000);
        let mut batch = Batch::from_lines(Bytes::from(data), 0);
        assert_eq!(batch.len(), 1000);
        let mut rejected = Vec::new();
        assert_eq!(parse_batch(&mut batch, &mut rejected), 1000, "{rejected:?}");
        assert!(rejected.is_empty());
        let status = FieldPath::parse("http.status").unwrap();
        let mut checked = 0;
        for ev in &batch.events {
            assert_eq!(ev.form, EventForm::Json);
            let line = batch.line(ev);
            let map: Map<String, Value> = serde_json::from_slice(line).unwrap();
            let want_status = map["http"]["status"].as_i64().unwrap();
            assert_eq!(batch.get(ev, &status).unwrap().as_i64(), Some(want_status));
            // Every top-level and nested key, by path, with the raw text of its value.
            for (k, v) in &map {
                let mut paths = vec![(vec![k.clone()], v)];
                if let Value::Object(inner) = v {
                    paths.extend(
                        inner
                            .iter()
                            .map(|(k2, v2)| (vec![k.clone(), k2.clone()], v2)),
                    );
                }
                for (segs, v) in paths {
                    let path = FieldPath::parse(&segs.join(".")).unwrap();
                    let got = batch
                        .get(ev, &path)
                        .unwrap_or_else(|| panic!("{segs:?} missing"));
                    let text = json_text(got);
                    if v.is_object() {
                        // serde_json's map sorts keys: compare objects by value.
                        assert_eq!(&serde_json::from_str::<Value>(&text).unwrap(), v);
                    } else {
                        assert_eq!(text, serde_json::to_string(v).unwrap(), "{segs:?}");
                    }
                    checked += 1;
                }
            }
            // The raw text of each top-level member is what serde_json writes for it.
            let buf = batch.buf();
            let mut i = ev.fields_start;
            let mut n = 0;
            while i < ev.fields_end {
                let e = batch.fields.entries[i as usize];
                let key = std::str::from_utf8(e.key(buf)).unwrap();
                let raw = std::str::from_utf8(e.raw_value(buf)).unwrap();
                if map[key].is_object() {
                    assert_eq!(serde_json::from_str::<Value>(raw).unwrap(), map[key]);
                    assert_eq!(e.kind, Kind::Object);
                } else {
                    assert_eq!(raw, serde_json::to_string(&map[key]).unwrap());
                }
                n += 1;
                i = e.end;
            }
            assert_eq!(n, map.len());
            let tape = tape_value(&batch.fields, buf, ev.fields_start, ev.fields_end, false);
            assert_eq!(tape, Value::Object(map));
        }
        assert!(checked >= 1000 * 12, "{checked}");
    }

    #[test]
    fn nested_containers_tape_layout() {
        let text = br#" {"a":[1,{"b":null},[]],"c":{},"d":"","e":[[true,false]],"":-1.5e+3} "#;
        let (t, first, last) = parse_one(text).unwrap();
        let kinds: Vec<Kind> = t.entries.iter().map(|e| e.kind).collect();
        use Kind::*;
        assert_eq!(
            kinds,
            [
                Array, Number, Object, Null, Array, Object, String, Array, Array, True, False,
                Number
            ]
        );
        let ends: Vec<u32> = t.entries.iter().map(|e| e.end).collect();
        assert_eq!(ends, [5, 2, 4, 4, 5, 6, 7, 11, 11, 10, 11, 12]);
        assert_eq!((first, last), (0, 12));
        let e = &t.entries;
        assert_eq!(e[0].key(text), b"a");
        assert_eq!(e[0].value(text), br#"[1,{"b":null},[]]"#);
        assert_eq!(e[1].key_len, 0);
        assert_eq!(e[1].value(text), b"1");
        assert_eq!(e[2].value(text), br#"{"b":null}"#);
        assert_eq!(e[3].key(text), b"b");
        assert_eq!(e[4].value(text), b"[]");
        assert_eq!(e[5].value(text), b"{}");
        assert_eq!(e[6].key(text), b"d");
        assert_eq!(e[6].value_len, 0);
        assert_eq!(e[6].raw_value(text), br#""""#);
        assert_eq!(e[8].value(text), b"[true,false]");
        assert_eq!(e[11].key_len, 0);
        assert_eq!(e[11].key(text), b"");
        assert_eq!(e[11].value(text), b"-1.5e+3");
        let v = tape_value(&t, text, first, last, false);
        assert_eq!(v, serde_json::from_slice::<Value>(text).unwrap());
    }

    #[test]
    fn empty_object_whitespace_and_bom() {
        for text in [
            &b"{}"[..],
            b"  {  }\t\r\n",
            b"\xEF\xBB\xBF{}",
            b"\xEF\xBB\xBF {\n}\n",
        ] {
            let (t, first, last) = parse_one(text).unwrap();
            assert_eq!((first, last), (0, 0));
            assert!(t.entries.is_empty());
        }
        let text = b"\xEF\xBB\xBF\r\n{ \"a\" :\n\t[ 1 , 2 ] ,\"b\":{ \"c\" : \"d\" } }  ";
        let (t, first, last) = parse_one(text).unwrap();
        assert_eq!((first, last), (0, 5));
        assert_eq!(t.entries[0].value(text), b"[ 1 , 2 ]");
        assert_eq!(t.entries[3].value(text), b"{ \"c\" : \"d\" }");
        assert_eq!(t.entries[4].value(text), b"d");
        let mut batch = batch_of(&[&b"{}"[..], b"{\"x\":{}}"]);
        assert_eq!(parse_batch(&mut batch, &mut Vec::new()), 2);
        let ev = batch.events[0];
        assert_eq!(
            (ev.form, ev.fields_start, ev.fields_end),
            (EventForm::Json, 0, 0)
        );
        let x = batch
            .get(&batch.events[1], &FieldPath::parse("x").unwrap())
            .unwrap();
        assert_eq!(x.type_name(), "map");
        assert_eq!(json_text(x), "{}");
    }

    #[test]
    fn escapes_set_flags_and_unicode_passes_through() {
        let text = r#"{"pl\"ain":"v","k":"line\nbreak \u00e9 \ud83d\ude00 \/ \\","uni":"héllo wörld 😀 日本","":"","esc\\":"\""}"#;
        let mut batch = batch_of(&[text]);
        assert_eq!(parse_batch(&mut batch, &mut Vec::new()), 1);
        let buf = batch.buf().clone();
        let e = &batch.fields.entries;
        assert_eq!(e.len(), 5);
        assert!(e[0].key_escaped() && !e[0].value_escaped());
        assert!(!e[1].key_escaped() && e[1].value_escaped());
        assert_eq!(e[1].flags, VALUE_ESCAPED);
        assert_eq!(e[2].flags, 0);
        assert_eq!(e[2].value(&buf), "héllo wörld 😀 日本".as_bytes());
        assert_eq!((e[3].key_len, e[3].value_len, e[3].flags), (0, 0, 0));
        assert_eq!(e[4].flags, KEY_ESCAPED | VALUE_ESCAPED);
        let ev = batch.events[0];
        let get = |p: FieldPath| batch.get(&ev, &p).unwrap().as_str().unwrap().into_owned();
        assert_eq!(get(FieldPath::single("pl\"ain")), b"v");
        assert_eq!(
            get(FieldPath::single("k")),
            "line\nbreak é 😀 / \\".as_bytes()
        );
        assert_eq!(
            get(FieldPath::single("uni")),
            "héllo wörld 😀 日本".as_bytes()
        );
        assert_eq!(get(FieldPath::single("esc\\")), b"\"");
        let v = tape_value(&batch.fields, &buf, 0, 5, false);
        assert_eq!(v, serde_json::from_str::<Value>(text).unwrap());
    }

    #[test]
    fn messy_strings_are_accepted_as_bytes() {
        // Invalid UTF-8 and unpaired surrogates stay as they are (documented leniency).
        let text = b"{\"a\":\"bad \xff\xfe utf8\",\"b\":\"\\ud800 lone\",\"big\":1e400}";
        let (t, _, last) = parse_one(text).unwrap();
        assert_eq!(last, 3);
        assert_eq!(t.entries[0].value(text), b"bad \xff\xfe utf8");
        assert!(t.entries[1].value_escaped());
        assert_eq!(t.entries[2].value(text), b"1e400");
        assert!(serde_json::from_slice::<Map<String, Value>>(text).is_err());
    }

    #[test]
    fn nesting_limit_is_128_containers() {
        let nest = |n: usize| {
            let mut s = String::from("{\"a\":");
            s.push_str(&"[".repeat(n - 1));
            s.push_str(&"]".repeat(n - 1));
            s.push('}');
            s
        };
        let ok = nest(MAX_DEPTH);
        let (t, _, last) = parse_one(ok.as_bytes()).unwrap();
        assert_eq!(last as usize, MAX_DEPTH - 1);
        assert_eq!(t.entries[0].end as usize, MAX_DEPTH - 1);
        assert_eq!(
            parse_one(nest(MAX_DEPTH + 1).as_bytes()).unwrap_err(),
            reason::TOO_DEEP
        );
        let objs = format!("{}{}", "{\"a\":".repeat(MAX_DEPTH), "}".repeat(MAX_DEPTH));
        let objs = objs.replacen("{\"a\":}", "{}", 1);
        assert!(parse_one(objs.as_bytes()).is_ok(), "{objs}");
    }

    #[test]
    fn malformed_inputs_are_rejected_and_the_table_restored() {
        use reason::*;
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(200), "]".repeat(200));
        let cases: Vec<(&[u8], &str)> = vec![
            (b"", EMPTY),
            (b" \t ", EMPTY),
            (b"{", EOF),
            (b"{ ", EOF),
            (br#"{"a""#, EOF),
            (br#"{"a":"x""#, EOF),
            (br#"{"a":[1,"#, EOF),
            (br#"{"a"}"#, EXPECTED_COLON),
            (br#"{"a" 1}"#, EXPECTED_COLON),
            (br#"{"a":}"#, EXPECTED_VALUE),
            (br#"{"a":1,}"#, EXPECTED_KEY),
            (br#"{,}"#, EXPECTED_KEY),
            (br#"{a:1}"#, EXPECTED_KEY),
            (br#"{'a':1}"#, EXPECTED_KEY),
            (br#"{"a":{]}"#, EXPECTED_KEY),
            (br#"{"a":01}"#, INVALID_NUMBER),
            (br#"{"a":-01}"#, INVALID_NUMBER),
            (br#"{"a":1.}"#, INVALID_NUMBER),
            (br#"{"a":1.e5}"#, INVALID_NUMBER),
            (br#"{"a":-}"#, INVALID_NUMBER),
            (br#"{"a":1e}"#, INVALID_NUMBER),
            (br#"{"a":1e+}"#, INVALID_NUMBER),
            (br#"{"a":+1}"#, EXPECTED_VALUE),
            (br#"{"a":.5}"#, EXPECTED_VALUE),
            (br#"{"a":NaN}"#, EXPECTED_VALUE),
            (br#"{"a":[1,]}"#, EXPECTED_VALUE),
            (br#"{"a":[}"#, EXPECTED_VALUE),
            (br#"{"a":tru}"#, INVALID_LITERAL),
            (br#"{"a":nul}"#, INVALID_LITERAL),
            (br#"{"a":False}"#, EXPECTED_VALUE),
            (br#"{"a":fals"#, INVALID_LITERAL),
            (b"{\"a\":\"\x01\"}", CONTROL_CHAR),
            (b"{\"a\":\"tab\there\"}", CONTROL_CHAR),
            (b"{\"k\x1f\":1}", CONTROL_CHAR),
            (br#"{"a":"\q"}"#, INVALID_ESCAPE),
            (br#"{"a":"\U0041"}"#, INVALID_ESCAPE),
            (br#"{"a":"\u12"}"#, INVALID_UNICODE_ESCAPE),
            (br#"{"a":"\u12"#, INVALID_UNICODE_ESCAPE),
            (br#"{"a":"\uzzzz"}"#, INVALID_UNICODE_ESCAPE),
            (br#"{"a":"abc"#, UNTERMINATED_STRING),
            (br#"{"a":"abc\"#, UNTERMINATED_STRING),
            (br#"{"abcdefghijklmnop"#, UNTERMINATED_STRING),
            (br#"[1]"#, NOT_OBJECT),
            (br#""s""#, NOT_OBJECT),
            (b"123", NOT_OBJECT),
            (b"null", NOT_OBJECT),
            (b"\x0c{}", NOT_OBJECT),
            (b" \xEF\xBB\xBF{}", NOT_OBJECT),
            (b"\xEF\xBB\xBF\xEF\xBB\xBF{}", NOT_OBJECT),
            (br#"{"a":1} x"#, TRAILING),
            (br#"{"a":1}{"b":2}"#, TRAILING),
            (b"{}\x00", TRAILING),
            (br#"{"a":1 "b":2}"#, EXPECTED_COMMA_OR_BRACE),
            (br#"{"a":true false}"#, EXPECTED_COMMA_OR_BRACE),
            (br#"{"a":1]"#, EXPECTED_COMMA_OR_BRACE),
            (br#"{"a":0x10}"#, EXPECTED_COMMA_OR_BRACE),
            (br#"{"a":[1 2]}"#, EXPECTED_COMMA_OR_BRACKET),
            (br#"{"a":[{"b":1}}"#, EXPECTED_COMMA_OR_BRACKET),
            (deep.as_bytes(), TOO_DEEP),
        ];
        assert!(cases.len() >= 25);
        // Through parse_object, after a valid event already in the table.
        let good = br#"{"ok":[1,{"x":"y"}],"n":null}"#;
        let mut table = FieldTable::default();
        parse_object(good, 0, good.len(), &mut table).unwrap();
        let before = table.entries.clone();
        for (text, why) in &cases {
            let mut buf = good.to_vec();
            buf.extend_from_slice(text);
            let got = parse_object(&buf, good.len(), buf.len(), &mut table);
            assert_eq!(got, Err(*why), "{:?}", String::from_utf8_lossy(text));
            assert_eq!(table.entries, before, "{:?}", String::from_utf8_lossy(text));
            // serde_json agrees that none of them is a JSON object.
            assert!(serde_json::from_slice::<Map<String, Value>>(text).is_err());
        }
        // Through parse_batch: rejected events stay raw, their neighbours parse.
        let mut lines: Vec<&[u8]> = vec![good];
        for (text, _) in &cases {
            lines.push(text);
            lines.push(good);
        }
        let mut batch = batch_of(&lines);
        let mut rejected = Vec::new();
        assert_eq!(parse_batch(&mut batch, &mut rejected), cases.len() + 1);
        let want: Vec<(usize, &str)> = cases
            .iter()
            .enumerate()
            .map(|(k, c)| (2 * k + 1, c.1))
            .collect();
        assert_eq!(rejected, want);
        let per_event = before.len() as u32;
        for (k, ev) in batch.events.iter().enumerate() {
            if k % 2 == 1 {
                assert_eq!(ev.form, EventForm::Raw);
                assert_eq!(
                    batch
                        .get(ev, &FieldPath::single("message"))
                        .unwrap()
                        .as_str()
                        .unwrap(),
                    batch.line(ev)
                );
            } else {
                assert_eq!(ev.form, EventForm::Json);
                let n = (k / 2) as u32;
                assert_eq!(
                    (ev.fields_start, ev.fields_end),
                    (n * per_event, (n + 1) * per_event)
                );
            }
        }
        assert_eq!(
            batch.fields.entries.len() as u32,
            per_event * (cases.len() as u32 + 1)
        );
    }

    #[test]
    fn bad_spans_and_already_parsed_events() {
        let mut t = FieldTable::default();
        assert_eq!(parse_object(b"{}", 1, 0, &mut t), Err(reason::BAD_SPAN));
        assert_eq!(parse_object(b"{}", 0, 3, &mut t), Err(reason::BAD_SPAN));
        // A span that ends early cuts the object.
        assert_eq!(parse_object(br#"{"a":1}"#, 0, 6, &mut t), Err(reason::EOF));
        assert_eq!(parse_object(br#"xx{"a":1}yy"#, 2, 9, &mut t), Ok((0, 1)));
        assert_eq!(t.entries[0].value_start, 7);
        let mut batch = batch_of(&[br#"{"a":1}"#]);
        assert_eq!(parse_batch(&mut batch, &mut Vec::new()), 1);
        assert_eq!(parse_batch(&mut batch, &mut Vec::new()), 0);
        assert_eq!(batch.fields.entries.len(), 1);
    }

    // ---- properties ----

    fn arb_string() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<String>(),
            "[a-z0-9 \\\\\"/\u{0}-\u{1f}\u{7f}é€😀]{0,12}",
        ]
    }

    fn arb_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_filter_map("finite", |f| serde_json::Number::from_f64(f)
                .map(Value::Number)),
            arb_string().prop_map(Value::String),
        ];
        leaf.prop_recursive(5, 64, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map(arb_string(), inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn arb_object() -> impl Strategy<Value = Map<String, Value>> {
        prop::collection::btree_map(arb_string(), arb_value(), 0..8)
            .prop_map(|m| m.into_iter().collect())
    }

    /// Byte strings that are often nearly JSON: token soup, and valid objects with a few
    /// bytes changed.
    fn arb_jsonish() -> impl Strategy<Value = Vec<u8>> {
        const TOKENS: &[&[u8]] = &[
            b"{",
            b"}",
            b"[",
            b"]",
            b"\"",
            b":",
            b",",
            b" ",
            b"\n",
            b"\t",
            b"\\",
            b"\"a\"",
            b"\"k\":",
            b"0",
            b"1",
            b"-",
            b".",
            b"e",
            b"E",
            b"+",
            b"12",
            b"true",
            b"false",
            b"null",
            b"tru",
            b"\\u",
            b"00e9",
            b"\\ud800",
            b"\\udc00",
            b"\\n",
            b"\x01",
            b"\x00",
            b"\xff",
            b"\xc3\xa9",
            b"\xEF\xBB\xBF",
            b"x",
            b"1e999",
            b"{\"a\":",
            b"\"\\\"\"",
        ];
        let soup = prop::collection::vec(prop::sample::select(TOKENS), 0..24).prop_map(|ts| {
            let mut v = b"{".to_vec();
            for t in ts {
                v.extend_from_slice(t);
            }
            v
        });
        let mutated = (
            arb_object(),
            prop::collection::vec(
                (
                    any::<prop::sample::Index>(),
                    0u8..3,
                    prop::sample::select(TOKENS),
                ),
                1..4,
            ),
            any::<bool>(),
        )
            .prop_map(|(m, edits, pretty)| {
                let mut v = if pretty {
                    serde_json::to_vec_pretty(&m).unwrap()
                } else {
                    serde_json::to_vec(&m).unwrap()
                };
                for (at, op, tok) in edits {
                    let p = at.index(v.len() + 1);
                    match op {
                        0 if p < v.len() => {
                            v.remove(p);
                        }
                        1 if p < v.len() => v[p] = tok[0],
                        _ => {
                            v.splice(p..p, tok.iter().copied());
                        }
                    }
                }
                v
            });
        prop_oneof![
            2 => prop::collection::vec(any::<u8>(), 0..48),
            3 => soup,
            5 => mutated,
        ]
    }

    /// serde_json's errors for things this scanner deliberately accepts.
    const LENIENT: &[&str] = &[
        "invalid unicode code point",
        "lone leading surrogate in hex escape",
        "unexpected end of hex escape",
        "number out of range",
    ];

    fn check_agreement(text: &[u8]) -> Result<(), TestCaseError> {
        let mut table = FieldTable::default();
        let pre = br#"{"p":[true]}"#;
        let mut buf = pre.to_vec();
        buf.extend_from_slice(text);
        parse_object(&buf, 0, pre.len(), &mut table).unwrap();
        let ours = parse_object(&buf, pre.len(), buf.len(), &mut table);
        match ours {
            Ok((first, last)) => {
                prop_assert_eq!(first, 2);
                prop_assert_eq!(last as usize, table.entries.len());
            }
            Err(_) => prop_assert_eq!(table.entries.len(), 2),
        }
        // serde_json does not skip a byte order mark.
        let plain = text.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(text);
        // Pure grammar: serde_json validating without decoding (no UTF-8 or range checks).
        let is_object = plain.iter().find(|b| !is_ws(**b)) == Some(&b'{');
        let grammar = is_object && serde_json::from_slice::<serde::de::IgnoredAny>(plain).is_ok();
        if ours.is_ok() != grammar {
            prop_assert_eq!(
                ours,
                Err(reason::TOO_DEEP),
                "grammar disagrees on {:?}",
                String::from_utf8_lossy(text)
            );
        }
        // The full decode: differs only where we are lenient on purpose.
        match serde_json::from_slice::<Map<String, Value>>(plain) {
            Ok(map) => {
                prop_assert!(
                    ours.is_ok(),
                    "serde accepts {:?}: {:?}",
                    String::from_utf8_lossy(text),
                    ours
                );
                let (first, last) = ours.unwrap();
                let tape = tape_value(&table, &buf, first, last, false);
                prop_assert_eq!(tape, Value::Object(map));
            }
            Err(e) => {
                let msg = e.to_string();
                prop_assert!(
                    ours.is_err() || LENIENT.iter().any(|l| msg.contains(l)),
                    "we accept {:?}, serde_json says {}",
                    String::from_utf8_lossy(text),
                    msg
                );
            }
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 512,
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        #[test]
        fn serde_objects_parse_to_their_members(map in arb_object(), pretty in any::<bool>()) {
            let text = if pretty {
                serde_json::to_vec_pretty(&map).unwrap()
            } else {
                serde_json::to_vec(&map).unwrap()
            };
            let reparsed: Map<String, Value> = serde_json::from_slice(&text).unwrap();
            let mut batch = batch_of(&[&text]);
            let mut rejected = Vec::new();
            prop_assert_eq!(parse_batch(&mut batch, &mut rejected), 1, "{:?}", rejected);
            let ev = batch.events[0];
            let buf = batch.buf();
            let mut i = ev.fields_start;
            let mut members = map.iter();
            while i < ev.fields_end {
                let e = batch.fields.entries[i as usize];
                let (k, v) = members.next().unwrap();
                prop_assert_eq!(decode_str(e.key(buf), e.key_escaped()), k.clone());
                let raw = e.raw_value(buf);
                if pretty {
                    // serde_json's float parsing is not exact: compare with its reading
                    // of the whole text.
                    prop_assert_eq!(serde_json::from_slice::<Value>(raw).unwrap(), reparsed[k].clone());
                } else {
                    let want = serde_json::to_vec(v).unwrap();
                    prop_assert_eq!(raw, want.as_slice());
                }
                i = e.end;
            }
            prop_assert!(members.next().is_none());
            let tape = tape_value(&batch.fields, buf, ev.fields_start, ev.fields_end, false);
            // serde_json's own reading of the text (its float parsing is not exact).
            prop_assert_eq!(tape, serde_json::from_slice::<Value>(&text).unwrap());
        }

    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 2048,
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        #[test]
        fn arbitrary_bytes_never_panic_and_agree_with_serde(text in arb_jsonish()) {
            check_agreement(&text)?;
        }
    }

    #[test]
    fn agreement_on_tricky_cases() {
        let cases: &[&[u8]] = &[
            b"{\"a\":\"\\ud800\"}",
            b"{\"a\":\"\\udc00x\"}",
            b"{\"a\":\"\\ud800\\n\"}",
            b"{\"a\":\"\xff\"}",
            b"{\"\xc3\"  :1}",
            b"{\"a\":1e999}",
            b"{\"a\":-0.0e-0}",
            b"\xEF\xBB\xBF{\"a\":[]}",
            b"{\"a\":1,\"a\":2}",
            b"{\"a\":\"\\u00\"}",
            b"{\"a\xff\":\xff}",
            b"{\"a\":[1,2,[3,{}]]}\n\r\t ",
        ];
        for c in cases {
            check_agreement(c).unwrap();
        }
    }
}

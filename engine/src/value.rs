//! Values: [`ValueRef`] borrows from a batch (zero copy), [`Value`] is owned (overlay writes,
//! literals in conditions and configs). Both serialize to JSON text.

use crate::fields::{FieldTable, Kind};
use bytes::Bytes;
use std::borrow::Cow;

/// An owned JSON-like value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Array(Vec<Value>),
    /// Keys in insertion order.
    Object(Vec<(String, Value)>),
    /// A JSON fragment kept verbatim (a subtree taken from an input line).
    RawJson(Bytes),
}

/// A value read from an event: either a node of the parsed tape, the raw line, or an
/// overlay value.
#[derive(Debug, Clone, Copy)]
pub enum ValueRef<'a> {
    Null,
    Bool(bool),
    /// JSON number text, parsed on demand.
    Number(&'a [u8]),
    /// String content without quotes; `escaped` when it still holds JSON escapes.
    Str {
        raw: &'a [u8],
        escaped: bool,
    },
    /// An object or array node of the tape.
    Node {
        table: &'a FieldTable,
        buf: &'a [u8],
        index: u32,
    },
    Owned(&'a Value),
}

impl<'a> ValueRef<'a> {
    /// Builds a reference to tape node `index`.
    pub fn from_entry(table: &'a FieldTable, buf: &'a [u8], index: u32) -> ValueRef<'a> {
        let e = &table.entries[index as usize];
        match e.kind {
            Kind::Null => ValueRef::Null,
            Kind::True => ValueRef::Bool(true),
            Kind::False => ValueRef::Bool(false),
            Kind::Number => ValueRef::Number(table.value(e, buf)),
            Kind::String => ValueRef::Str {
                raw: table.value(e, buf),
                escaped: e.value_escaped(),
            },
            Kind::Object | Kind::Array => ValueRef::Node { table, buf, index },
        }
    }

    /// The string content, unescaped (borrowed unless it held escapes).
    pub fn as_str(&self) -> Option<Cow<'a, [u8]>> {
        match *self {
            ValueRef::Str {
                raw,
                escaped: false,
            } => Some(Cow::Borrowed(raw)),
            ValueRef::Str { raw, escaped: true } => {
                let mut out = Vec::with_capacity(raw.len());
                if unescape_json_str(raw, &mut out) {
                    Some(Cow::Owned(out))
                } else {
                    Some(Cow::Borrowed(raw))
                }
            }
            ValueRef::Owned(Value::Str(s)) => Some(Cow::Borrowed(s.as_bytes())),
            _ => None,
        }
    }

    /// Numbers (and numeric strings are *not* coerced) as f64.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            ValueRef::Number(raw) => parse_f64(raw),
            ValueRef::Owned(Value::Int(i)) => Some(*i as f64),
            ValueRef::Owned(Value::Float(f)) => Some(*f),
            _ => None,
        }
    }

    /// Integral numbers as i64.
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            ValueRef::Number(raw) => parse_i64(raw),
            ValueRef::Owned(Value::Int(i)) => Some(*i),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            ValueRef::Bool(b) => Some(b),
            ValueRef::Owned(Value::Bool(b)) => Some(*b),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, ValueRef::Null | ValueRef::Owned(Value::Null))
    }

    /// Type name as CEL reports it.
    pub fn type_name(&self) -> &'static str {
        match self {
            ValueRef::Null | ValueRef::Owned(Value::Null) => "null",
            ValueRef::Bool(_) | ValueRef::Owned(Value::Bool(_)) => "bool",
            ValueRef::Number(raw) => {
                if parse_i64(raw).is_some() {
                    "int"
                } else {
                    "double"
                }
            }
            ValueRef::Owned(Value::Int(_)) => "int",
            ValueRef::Owned(Value::Float(_)) => "double",
            ValueRef::Str { .. } | ValueRef::Owned(Value::Str(_)) => "string",
            ValueRef::Node { table, index, .. } => match table.entries[*index as usize].kind {
                Kind::Array => "list",
                _ => "map",
            },
            ValueRef::Owned(Value::Array(_)) => "list",
            ValueRef::Owned(Value::Object(_)) => "map",
            ValueRef::Owned(Value::RawJson(_)) => "json",
        }
    }

    /// Writes the value as JSON text.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        match *self {
            ValueRef::Null => out.extend_from_slice(b"null"),
            ValueRef::Bool(b) => out.extend_from_slice(if b { b"true" } else { b"false" }),
            ValueRef::Number(raw) => out.extend_from_slice(raw),
            ValueRef::Str { raw, escaped: true } => {
                out.push(b'"');
                out.extend_from_slice(raw);
                out.push(b'"');
            }
            ValueRef::Str {
                raw,
                escaped: false,
            } => write_json_str(raw, out),
            ValueRef::Node { table, buf, index } => table.write_json(buf, index, out),
            ValueRef::Owned(v) => v.write_json(out),
        }
    }

    /// Converts to an owned value (copies).
    pub fn to_owned_value(&self) -> Value {
        match *self {
            ValueRef::Null => Value::Null,
            ValueRef::Bool(b) => Value::Bool(b),
            ValueRef::Number(raw) => match parse_i64(raw) {
                Some(i) => Value::Int(i),
                None => parse_f64(raw).map(Value::Float).unwrap_or(Value::Null),
            },
            ValueRef::Str { .. } => {
                Value::Str(String::from_utf8_lossy(&self.as_str().unwrap_or_default()).into_owned())
            }
            ValueRef::Node { table, buf, index } => {
                let mut out = Vec::new();
                table.write_json(buf, index, &mut out);
                Value::RawJson(Bytes::from(out))
            }
            ValueRef::Owned(v) => v.clone(),
        }
    }
}

impl Value {
    pub fn as_ref(&self) -> ValueRef<'_> {
        ValueRef::Owned(self)
    }

    /// Writes the value as JSON text.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        match self {
            Value::Null => out.extend_from_slice(b"null"),
            Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
            Value::Int(i) => {
                use std::io::Write;
                let _ = write!(out, "{i}");
            }
            Value::Float(f) => {
                use std::io::Write;
                if f.is_finite() {
                    if f.fract() == 0.0 && f.abs() < 1e15 {
                        let _ = write!(out, "{f:.1}");
                    } else {
                        let _ = write!(out, "{f}");
                    }
                } else {
                    out.extend_from_slice(b"null");
                }
            }
            Value::Str(s) => write_json_str(s.as_bytes(), out),
            Value::Array(items) => {
                out.push(b'[');
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    v.write_json(out);
                }
                out.push(b']');
            }
            Value::Object(members) => {
                out.push(b'{');
                for (i, (k, v)) in members.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    write_json_str(k.as_bytes(), out);
                    out.push(b':');
                    v.write_json(out);
                }
                out.push(b'}');
            }
            Value::RawJson(b) => out.extend_from_slice(b),
        }
    }

    /// Converts a TOML value from a config file.
    pub fn from_toml_like(v: &serde_json::Value) -> Value {
        match v {
            serde_json::Value::Null => Value::Null,
            serde_json::Value::Bool(b) => Value::Bool(*b),
            serde_json::Value::Number(n) => match n.as_i64() {
                Some(i) => Value::Int(i),
                None => Value::Float(n.as_f64().unwrap_or(0.0)),
            },
            serde_json::Value::String(s) => Value::Str(s.clone()),
            serde_json::Value::Array(a) => {
                Value::Array(a.iter().map(Value::from_toml_like).collect())
            }
            serde_json::Value::Object(o) => Value::Object(
                o.iter()
                    .map(|(k, v)| (k.clone(), Value::from_toml_like(v)))
                    .collect(),
            ),
        }
    }
}

impl<'de> serde::Deserialize<'de> for Value {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        Ok(Value::from_toml_like(&v))
    }
}

/// Parses a JSON integer (no fraction or exponent) without allocating.
pub fn parse_i64(raw: &[u8]) -> Option<i64> {
    let (neg, digits) = match raw.first()? {
        b'-' => (true, &raw[1..]),
        _ => (false, raw),
    };
    if digits.is_empty() || digits.len() > 18 {
        return std::str::from_utf8(raw).ok()?.parse().ok();
    }
    let mut n: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        n = n * 10 + (d - b'0') as i64;
    }
    Some(if neg { -n } else { n })
}

/// Parses a JSON number as f64.
pub fn parse_f64(raw: &[u8]) -> Option<f64> {
    if let Some(i) = parse_i64(raw) {
        return Some(i as f64);
    }
    std::str::from_utf8(raw).ok()?.parse().ok()
}

/// Writes `s` as a quoted JSON string, escaping what JSON requires. Invalid UTF-8 bytes are
/// replaced with U+FFFD so the output is always valid JSON.
///
/// One pass in the common case: [`escape_run`] copies 16 bytes at a time (SSE2 on x86_64,
/// 8 with SWAR elsewhere) and escapes `"`, `\` and control bytes as it meets them, stopping
/// at the first non-ASCII byte. Only a string that has one is validated as UTF-8 (from that
/// byte on: everything before it is ASCII); valid, the rest is escaped the same way with
/// non-ASCII bytes passed through; invalid, the string is written again by the byte-wise path
/// that repairs it.
///
/// Most strings an event is made of are short keys and values with nothing to escape: those
/// (up to 32 bytes) are checked and copied inline ([`write_plain_short`]); everything else
/// goes through the call below.
#[inline]
pub fn write_json_str(s: &[u8], out: &mut Vec<u8>) {
    if s.len() <= SHORT_INLINE && write_plain_short(s, out) {
        return;
    }
    write_json_str_escaping(s, out)
}

/// The longest string [`write_plain_short`] handles.
const SHORT_INLINE: usize = 32;

/// Writes `s` (at most [`SHORT_INLINE`] bytes) quoted when none of its bytes needs an escape
/// or is non-ASCII, and returns whether it did. Two overlapping loads cover the string (two
/// 16-byte vectors, or two 8- or 4-byte words), are checked together, and are stored
/// (overlapping) as the copy: no loop, no call.
#[inline(always)]
fn write_plain_short(s: &[u8], out: &mut Vec<u8>) -> bool {
    let n = s.len();
    debug_assert!(n <= SHORT_INLINE);
    #[cfg(target_arch = "x86_64")]
    if n >= 16 {
        use std::arch::x86_64::*;
        // SAFETY: SSE2 is part of x86_64. The loads read s[0..16] and s[n-16..n], inside
        // `s` (n >= 16). `reserve` made room for n + 2 bytes after `len`; the stores write
        // dst[0], dst[1..17], dst[n-15..n+1] and dst[n+1], all below len + n + 2, and
        // together every byte up to n + 1. `set_len` covers exactly those bytes.
        unsafe {
            let first = _mm_loadu_si128(s.as_ptr().cast());
            let last = _mm_loadu_si128(s.as_ptr().add(n - 16).cast());
            let special = |v: __m128i| {
                // Signed: bytes below 0x20 and from 0x80 (negative) are both "less than".
                let low = _mm_cmplt_epi8(v, _mm_set1_epi8(0x20));
                let quote = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8));
                let backslash = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8));
                _mm_or_si128(low, _mm_or_si128(quote, backslash))
            };
            if _mm_movemask_epi8(_mm_or_si128(special(first), special(last))) != 0 {
                return false;
            }
            out.reserve(n + 2);
            let len = out.len();
            let dst = out.as_mut_ptr().add(len);
            *dst = b'"';
            _mm_storeu_si128(dst.add(1).cast(), first);
            _mm_storeu_si128(dst.add(n - 15).cast(), last);
            *dst.add(n + 1) = b'"';
            out.set_len(len + n + 2);
        }
        return true;
    }
    if n >= 16 {
        // Not x86_64: the general path.
        return false;
    }
    if n >= 4 {
        if short_has_special(s, true) {
            return false;
        }
        out.reserve(n + 2);
        let len = out.len();
        // SAFETY: `reserve` made room for n + 2 bytes after `len`; the stores write the
        // opening quote, the first and last 8 (or 4) bytes of `s` at offsets 1.. and
        // n - 7.. (n - 3..), all inside 1..=n, and the closing quote at n + 1.
        unsafe {
            let dst = out.as_mut_ptr().add(len);
            *dst = b'"';
            if n >= 8 {
                std::ptr::copy_nonoverlapping(s.as_ptr(), dst.add(1), 8);
                std::ptr::copy_nonoverlapping(s.as_ptr().add(n - 8), dst.add(n - 7), 8);
            } else {
                std::ptr::copy_nonoverlapping(s.as_ptr(), dst.add(1), 4);
                std::ptr::copy_nonoverlapping(s.as_ptr().add(n - 4), dst.add(n - 3), 4);
            }
            *dst.add(n + 1) = b'"';
            out.set_len(len + n + 2);
        }
        return true;
    }
    if s.iter().any(|&b| is_special(b, true)) {
        return false;
    }
    out.push(b'"');
    out.extend_from_slice(s);
    out.push(b'"');
    true
}

/// [`write_json_str`] past its inline case: any length, with escapes and UTF-8 checks.
#[inline(never)]
fn write_json_str_escaping(s: &[u8], out: &mut Vec<u8>) {
    out.reserve(s.len() + 2);
    let open = out.len();
    out.push(b'"');
    let stop = escape_run(s, out, true);
    if stop < s.len() {
        if std::str::from_utf8(&s[stop..]).is_ok() {
            escape_run(&s[stop..], out, false);
        } else {
            out.truncate(open);
            write_json_str_repairing(s, out);
            return;
        }
    }
    out.push(b'"');
}

/// Valid UTF-8 only: the string escaped, without the ASCII stop (kept for the tests that
/// check the fast path against the repairing one).
#[cfg(test)]
fn write_json_str_utf8(s: &[u8], out: &mut Vec<u8>) {
    out.push(b'"');
    escape_run(s, out, false);
    out.push(b'"');
}

/// True when `b` needs an escape, or stops the run (`stop_non_ascii` and `b >= 0x80`).
#[inline]
fn is_special(b: u8, stop_non_ascii: bool) -> bool {
    b < 0x20 || b == b'"' || b == b'\\' || (stop_non_ascii && b >= 0x80)
}

/// Copies `s` into `out`, escaping as it goes, up to the end or (with `stop_non_ascii`) up
/// to the first byte from 0x80; returns where it stopped.
///
/// Block by block ([`BLOCK`] bytes; the last bytes that do not fill one go through
/// [`escape_short`]): a block with nothing special is stored whole (a fixed-size copy). On
/// CPUs with SSSE3, a block whose only special bytes are quotes and backslashes (log messages
/// that carry JSON have a quote every few bytes) is expanded with two byte shuffles
/// ([`expand_prefixed`]); any other block with special bytes is written run by run from its
/// mask.
fn escape_run(s: &[u8], out: &mut Vec<u8>, stop_non_ascii: bool) -> usize {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("ssse3") {
        // SAFETY: the CPU has SSSE3 (checked just above).
        return unsafe { escape_run_ssse3(s, out, stop_non_ascii) };
    }
    escape_blocks::<false>(s, out, stop_non_ascii)
}

/// [`escape_blocks`] compiled with SSSE3, so that [`expand_prefixed`] inlines into it.
///
/// # Safety
/// The CPU must support SSSE3.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "ssse3")]
unsafe fn escape_run_ssse3(s: &[u8], out: &mut Vec<u8>, stop_non_ascii: bool) -> usize {
    escape_blocks::<true>(s, out, stop_non_ascii)
}

/// The body of [`escape_run`]; `EXPAND` only when the CPU has SSSE3.
#[inline(always)]
fn escape_blocks<const EXPAND: bool>(s: &[u8], out: &mut Vec<u8>, stop_non_ascii: bool) -> usize {
    let n = s.len();
    let whole = n - n % BLOCK;
    let mut i = 0;
    while i < whole {
        let block: [u8; BLOCK] = s[i..i + BLOCK].try_into().unwrap_or([b'a'; BLOCK]);
        if let Some(k) = escape_block::<EXPAND>(&block, BLOCK, out, stop_non_ascii) {
            return i + k;
        }
        i += BLOCK;
    }
    #[cfg(target_arch = "x86_64")]
    if EXPAND && whole > 0 && whole < n {
        // The tail of a long string: its bytes shuffled out of the string's last 16 into a
        // block of their own (padded with bytes that need no escape), one block more instead
        // of a byte loop.
        // SAFETY: EXPAND is only true on SSSE3 CPUs (see `escape_run_ssse3`); `s` has at
        // least BLOCK bytes and the tail is 1 to BLOCK - 1 of them.
        let block = unsafe { tail_block(s, n - whole) };
        return match escape_block::<EXPAND>(&block, n - whole, out, stop_non_ascii) {
            Some(k) => whole + k,
            None => n,
        };
    }
    whole + escape_short(&s[whole..], out, stop_non_ascii)
}

/// Escapes the first `valid` bytes of `block` (the rest, if any, are padding that needs no
/// escape) into `out`. Returns where it stopped at a non-ASCII byte (`stop_non_ascii`).
#[inline(always)]
fn escape_block<const EXPAND: bool>(
    block: &[u8; BLOCK],
    valid: usize,
    out: &mut Vec<u8>,
    stop_non_ascii: bool,
) -> Option<usize> {
    let (mask, prefixed) = special_masks(block, stop_non_ascii);
    // Worst case: BLOCK escapes of 6 bytes, and a BLOCK-sized store started after
    // BLOCK - 1 of them.
    out.reserve(BLOCK * 7);
    let len = out.len();
    if mask == 0 {
        // SAFETY: `reserve` made room for at least BLOCK bytes after `len`; the copy writes
        // exactly BLOCK bytes there from a local array, and `set_len` covers the first
        // `valid` <= BLOCK of them.
        unsafe {
            std::ptr::copy_nonoverlapping(block.as_ptr(), out.as_mut_ptr().add(len), BLOCK);
            out.set_len(len + valid);
        }
        return None;
    }
    #[cfg(target_arch = "x86_64")]
    if EXPAND && mask == prefixed {
        // SAFETY: EXPAND is only true in `escape_run_ssse3`, which runs on SSSE3 CPUs;
        // `expand_prefixed` writes at most 32 bytes after `len` (room was reserved for
        // BLOCK * 7) and returns how many of them are the block's escaped bytes, the
        // padding's BLOCK - `valid` (one byte each, none escaped) last.
        unsafe {
            let w = expand_prefixed(block, mask, out.as_mut_ptr().add(len));
            out.set_len(len + w - (BLOCK - valid));
        }
        return None;
    }
    let _ = prefixed;
    // Runs between special bytes are stored as fixed-size copies from a padded copy of the
    // block (only their length counts), each special byte as its escape. Padding has no
    // special bytes, so every bit of `mask` is below `valid`.
    let mut padded = [b'a'; 2 * BLOCK];
    padded[..BLOCK].copy_from_slice(block);
    let mut bits = mask;
    let mut from = 0usize;
    // SAFETY: every write after `len` stays within the BLOCK * 7 bytes `reserve` made room
    // for: a store at `w` happens with at most `from` <= BLOCK - 1 bytes written before it,
    // each expanded to at most 6, so it ends by 6 * (BLOCK - 1) + BLOCK; an escape ends by
    // 6 * BLOCK. Every copy reads BLOCK bytes from `padded` at an offset <= BLOCK. `set_len`
    // covers exactly the bytes kept.
    unsafe {
        let base = out.as_mut_ptr().add(len);
        let mut w = 0usize;
        while bits != 0 {
            let k = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            std::ptr::copy_nonoverlapping(padded.as_ptr().add(from), base.add(w), BLOCK);
            w += k - from;
            let b = block[k];
            if b >= 0x80 && stop_non_ascii {
                out.set_len(len + w);
                return Some(k);
            }
            let esc = escape_of(b);
            std::ptr::copy_nonoverlapping(esc.0.as_ptr(), base.add(w), 6);
            w += esc.1;
            from = k + 1;
        }
        if from < valid {
            std::ptr::copy_nonoverlapping(padded.as_ptr().add(from), base.add(w), BLOCK);
            w += valid - from;
        }
        out.set_len(len + w);
    }
    None
}

/// Byte shuffles that move the last `t` of 16 bytes to the front (from offset 16 - t), and
/// the padding that fills the lanes after them (same offset).
#[cfg(target_arch = "x86_64")]
static TAIL_SHUFFLE: [u8; 32] = {
    let mut t = [0x80u8; 32];
    let mut i = 0;
    while i < 16 {
        t[i] = i as u8;
        i += 1;
    }
    t
};
#[cfg(target_arch = "x86_64")]
static TAIL_PADDING: [u8; 32] = {
    let mut t = [0u8; 32];
    let mut i = 16;
    while i < 32 {
        t[i] = b'a';
        i += 1;
    }
    t
};

/// The last `t` bytes of `s` as a block: first in it, followed by padding (`a`, which needs
/// no escape). Loads the last 16 bytes of `s` once and shuffles them; no byte loop.
///
/// # Safety
/// The CPU must support SSSE3; `s.len() >= 16` and `1 <= t < 16`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "ssse3")]
#[inline]
unsafe fn tail_block(s: &[u8], t: usize) -> [u8; 16] {
    use std::arch::x86_64::*;
    debug_assert!(s.len() >= 16 && (1..16).contains(&t));
    let last = _mm_loadu_si128(s.as_ptr().add(s.len() - 16).cast());
    let at = 16 - t;
    let moved = _mm_shuffle_epi8(last, _mm_loadu_si128(TAIL_SHUFFLE.as_ptr().add(at).cast()));
    let padded = _mm_or_si128(moved, _mm_loadu_si128(TAIL_PADDING.as_ptr().add(at).cast()));
    let mut block = [0u8; 16];
    _mm_storeu_si128(block.as_mut_ptr().cast(), padded);
    block
}

/// For each 8-bit mask of "this byte gets a backslash before it": the byte shuffle that
/// expands 8 bytes (lanes 0-7 of the source register; lanes 8-15 hold backslashes) into
/// their escaped form, and that form's length (8 + the mask's bits).
#[cfg(target_arch = "x86_64")]
#[repr(align(16))]
struct ExpandTable([[u8; 16]; 256], [u8; 256]);

#[cfg(target_arch = "x86_64")]
static EXPAND: ExpandTable = {
    let mut shuffles = [[0x80u8; 16]; 256];
    let mut lens = [0u8; 256];
    let mut m = 0;
    while m < 256 {
        let mut out = 0;
        let mut k = 0;
        while k < 8 {
            if m & (1 << k) != 0 {
                shuffles[m][out] = 8; // a backslash lane
                out += 1;
            }
            shuffles[m][out] = k as u8;
            out += 1;
            k += 1;
        }
        lens[m] = out as u8;
        m += 1;
    }
    ExpandTable(shuffles, lens)
};

/// Writes the 16 bytes of `block` with a backslash before each byte marked in `mask` (its
/// quotes and backslashes: their JSON escapes are the byte itself after a backslash), eight
/// bytes per shuffle. Stores 32 bytes at `dst` (the ones past the returned length are
/// scratch) and returns the escaped length.
///
/// # Safety
/// The CPU must support SSSE3, and `dst` must be valid for 32 bytes of writes.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "ssse3")]
#[inline]
unsafe fn expand_prefixed(block: &[u8; 16], mask: u32, dst: *mut u8) -> usize {
    use std::arch::x86_64::*;
    let v = _mm_loadu_si128(block.as_ptr().cast());
    let backslashes = _mm_set1_epi8(b'\\' as i8);
    let (lo, hi) = ((mask & 0xff) as usize, ((mask >> 8) & 0xff) as usize);
    let first = _mm_shuffle_epi8(
        _mm_unpacklo_epi64(v, backslashes),
        _mm_load_si128(EXPAND.0[lo].as_ptr().cast()),
    );
    _mm_storeu_si128(dst.cast(), first);
    let w = EXPAND.1[lo] as usize;
    let second = _mm_shuffle_epi8(
        _mm_unpackhi_epi64(v, backslashes),
        _mm_load_si128(EXPAND.0[hi].as_ptr().cast()),
    );
    _mm_storeu_si128(dst.add(w).cast(), second);
    w + EXPAND.1[hi] as usize
}

/// [`escape_run`] for fewer bytes than a block (a string's tail, or a short value such as a
/// host name or an id). Most have nothing to escape: the first and last 8 (or 4) bytes,
/// loaded as two words, tell, and the same two words are stored (overlapping) as the copy.
/// Otherwise a byte loop (padding them into a block costs more: copying a few bytes into a
/// stack array and loading it whole makes the CPU wait for the stores to land).
fn escape_short(s: &[u8], out: &mut Vec<u8>, stop_non_ascii: bool) -> usize {
    let n = s.len();
    out.reserve(n * 6);
    if n >= 4 && !short_has_special(s, stop_non_ascii) {
        let len = out.len();
        // SAFETY: `reserve` made room for `n` bytes after `len`; each store writes within
        // `len..len + n` (the words are the slice's first and last 8 or 4 bytes), and
        // together they write all of it.
        unsafe {
            let dst = out.as_mut_ptr().add(len);
            if n >= 8 {
                std::ptr::copy_nonoverlapping(s.as_ptr(), dst, 8);
                std::ptr::copy_nonoverlapping(s.as_ptr().add(n - 8), dst.add(n - 8), 8);
            } else {
                std::ptr::copy_nonoverlapping(s.as_ptr(), dst, 4);
                std::ptr::copy_nonoverlapping(s.as_ptr().add(n - 4), dst.add(n - 4), 4);
            }
            out.set_len(len + n);
        }
        return n;
    }
    let len = out.len();
    // SAFETY: `reserve` made room for 6 bytes per input byte after `len`: a byte is stored
    // at `w` < 6 * k + 1 for the k-th input byte, an escape's 6-byte copy ends by 6 * (k + 1).
    // `set_len` covers exactly the bytes written.
    unsafe {
        let base = out.as_mut_ptr().add(len);
        let mut w = 0usize;
        for (k, &b) in s.iter().enumerate() {
            if !is_special(b, stop_non_ascii) {
                *base.add(w) = b;
                w += 1;
            } else if b >= 0x80 {
                out.set_len(len + w);
                return k;
            } else {
                let (esc, l) = escape_of(b);
                std::ptr::copy_nonoverlapping(esc.as_ptr(), base.add(w), 6);
                w += l;
            }
        }
        out.set_len(len + w);
    }
    n
}

/// True when one of `s`'s bytes (4 to 15 of them) is special ([`is_special`]): the first
/// and last 8 (or 4) bytes as two words, so every byte is in at least one.
#[inline]
fn short_has_special(s: &[u8], stop_non_ascii: bool) -> bool {
    let n = s.len();
    debug_assert!((4..16).contains(&n));
    let (a, b) = if n >= 8 {
        let word = |b: &[u8]| u64::from_le_bytes(b.try_into().unwrap_or([b' '; 8]));
        (word(&s[..8]), word(&s[n - 8..]))
    } else {
        // Spaces above the four bytes: not special.
        let word = |b: &[u8]| {
            u32::from_le_bytes(b.try_into().unwrap_or([b' '; 4])) as u64 | 0x2020_2020 << 32
        };
        (word(&s[..4]), word(&s[n.saturating_sub(4)..]))
    };
    word_has_special(a, stop_non_ascii) || word_has_special(b, stop_non_ascii)
}

/// True when a byte of `x` is special ([`is_special`]). Each test is the classic "has a
/// zero byte" trick, exact as a yes/no answer.
#[inline]
fn word_has_special(x: u64, stop_non_ascii: bool) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let has_zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
    let below_space = x.wrapping_sub(ONES * 0x20) & !x & HIGH;
    let quote = has_zero(x ^ (ONES * b'"' as u64));
    let backslash = has_zero(x ^ (ONES * b'\\' as u64));
    let high = if stop_non_ascii { x & HIGH } else { 0 };
    below_space | quote | backslash | high != 0
}

/// The escape of a special byte, padded to 6 bytes, and its length.
#[inline]
fn escape_of(b: u8) -> ([u8; 6], usize) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    match b {
        b'"' => (*b"\\\"    ", 2),
        b'\\' => (*b"\\\\    ", 2),
        b'\n' => (*b"\\n    ", 2),
        b'\r' => (*b"\\r    ", 2),
        b'\t' => (*b"\\t    ", 2),
        _ => (
            [
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[(b >> 4) as usize],
                HEX[(b & 15) as usize],
            ],
            6,
        ),
    }
}

#[cfg(target_arch = "x86_64")]
const BLOCK: usize = 16;
#[cfg(not(target_arch = "x86_64"))]
const BLOCK: usize = 8;

/// Two masks of the block: bit `k` set when byte `k` is special ([`is_special`]), and when
/// it is a quote or a backslash (escaped as a backslash before it).
#[cfg(target_arch = "x86_64")]
#[inline]
fn special_masks(block: &[u8; BLOCK], stop_non_ascii: bool) -> (u32, u32) {
    use std::arch::x86_64::*;
    // SAFETY: SSE2 is part of x86_64; the load is unaligned and reads exactly the 16 bytes
    // of `block`.
    unsafe {
        let v = _mm_loadu_si128(block.as_ptr().cast());
        let quote = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8));
        let backslash = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8));
        let low = if stop_non_ascii {
            // Signed: bytes from 0x80 are negative, so this takes them too.
            _mm_cmplt_epi8(v, _mm_set1_epi8(0x20))
        } else {
            // Unsigned v <= 0x1f.
            _mm_cmpeq_epi8(_mm_min_epu8(v, _mm_set1_epi8(0x1f)), v)
        };
        let prefixed = _mm_or_si128(quote, backslash);
        (
            _mm_movemask_epi8(_mm_or_si128(prefixed, low)) as u32,
            _mm_movemask_epi8(prefixed) as u32,
        )
    }
}

/// Bit `k` set when byte `k` of the block is special ([`is_special`]); the second mask
/// (quotes and backslashes) is only used on x86_64.
#[cfg(not(target_arch = "x86_64"))]
#[inline]
fn special_masks(block: &[u8; BLOCK], stop_non_ascii: bool) -> (u32, u32) {
    let mut m = 0;
    for (k, &b) in block.iter().enumerate() {
        if is_special(b, stop_non_ascii) {
            m |= 1 << k;
        }
    }
    (m, 0)
}

fn write_json_str_repairing(s: &[u8], out: &mut Vec<u8>) {
    out.push(b'"');
    let mut start = 0;
    let mut i = 0;
    while i < s.len() {
        let b = s[i];
        let esc: Option<&[u8]> = match b {
            b'"' => Some(b"\\\""),
            b'\\' => Some(b"\\\\"),
            b'\n' => Some(b"\\n"),
            b'\r' => Some(b"\\r"),
            b'\t' => Some(b"\\t"),
            0..=0x1f => None,
            0x80.. => {
                // Validate the UTF-8 sequence starting here.
                let w = utf8_width(b);
                let end = (i + w).min(s.len());
                if w == 0 || std::str::from_utf8(&s[i..end]).is_err() {
                    out.extend_from_slice(&s[start..i]);
                    out.extend_from_slice("\u{FFFD}".as_bytes());
                    i += 1;
                    start = i;
                } else {
                    i = end;
                }
                continue;
            }
            _ => {
                i += 1;
                continue;
            }
        };
        out.extend_from_slice(&s[start..i]);
        match esc {
            Some(e) => out.extend_from_slice(e),
            None => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(b"\\u00");
                out.push(HEX[(b >> 4) as usize]);
                out.push(HEX[(b & 15) as usize]);
            }
        }
        i += 1;
        start = i;
    }
    out.extend_from_slice(&s[start..]);
    out.push(b'"');
}

fn utf8_width(b: u8) -> usize {
    match b {
        0xC2..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF4 => 4,
        _ => 0,
    }
}

/// Decodes JSON string escapes from `raw` (content without quotes) into `out`. Returns false
/// on a malformed escape (then `out` holds a best-effort copy).
pub fn unescape_json_str(raw: &[u8], out: &mut Vec<u8>) -> bool {
    let mut i = 0;
    while i < raw.len() {
        match memchr::memchr(b'\\', &raw[i..]) {
            None => {
                out.extend_from_slice(&raw[i..]);
                return true;
            }
            Some(p) => {
                out.extend_from_slice(&raw[i..i + p]);
                i += p + 1;
                let Some(&c) = raw.get(i) else {
                    return false;
                };
                i += 1;
                let ch = match c {
                    b'"' => b'"',
                    b'\\' => b'\\',
                    b'/' => b'/',
                    b'b' => 8,
                    b'f' => 12,
                    b'n' => b'\n',
                    b'r' => b'\r',
                    b't' => b'\t',
                    b'u' => {
                        let Some(cp) = hex4(raw.get(i..i + 4)) else {
                            return false;
                        };
                        i += 4;
                        let mut code = cp;
                        let low =
                            hex4(raw.get(i + 2..i + 6)).filter(|lo| (0xDC00..0xE000).contains(lo));
                        if (0xD800..0xDC00).contains(&cp) && raw.get(i..i + 2) == Some(b"\\u") {
                            if let Some(lo) = low {
                                code = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                                i += 6;
                            }
                        }
                        let c = char::from_u32(code).unwrap_or('\u{FFFD}');
                        let mut tmp = [0u8; 4];
                        out.extend_from_slice(c.encode_utf8(&mut tmp).as_bytes());
                        continue;
                    }
                    _ => return false,
                };
                out.push(ch);
            }
        }
    }
    true
}

fn hex4(b: Option<&[u8]>) -> Option<u32> {
    let b = b?;
    let s = std::str::from_utf8(b).ok()?;
    u32::from_str_radix(s, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The word-at-a-time path writes exactly what the byte-wise one does, and what
        /// serde_json reads back is the original text.
        #[test]
        fn fast_string_escaping_matches_the_bytewise_path(
            text in "[ -~\\x00-\\x1f\"\\\\é😀\u{7f}\u{80}]{0,80}",
        ) {
            let mut fast = Vec::new();
            write_json_str_utf8(text.as_bytes(), &mut fast);
            let mut slow = Vec::new();
            write_json_str_repairing(text.as_bytes(), &mut slow);
            prop_assert_eq!(&fast, &slow);
            let back: String = serde_json::from_slice(&fast).unwrap();
            prop_assert_eq!(back, text);
        }

        /// Any bytes (long enough to cross blocks, invalid UTF-8 anywhere): the one-pass
        /// writer gives what the byte-wise repairing path gives, and valid JSON.
        #[test]
        fn any_bytes_escape_like_the_bytewise_path(
            bytes in proptest::collection::vec(
                prop_oneof![
                    4 => 0x20u8..0x7f,
                    1 => Just(b'"'),
                    1 => Just(b'\\'),
                    1 => 0u8..0x20,
                    1 => 0x80u8..=0xff,
                ],
                0..100,
            ),
            utf8 in "[a-zé😀\"]{0,40}",
        ) {
            for input in [bytes.clone(), utf8.as_bytes().to_vec(), [utf8.as_bytes(), &bytes].concat()] {
                let mut fast = Vec::new();
                write_json_str(&input, &mut fast);
                let mut slow = Vec::new();
                write_json_str_repairing(&input, &mut slow);
                prop_assert_eq!(&fast, &slow);
                prop_assert!(serde_json::from_slice::<String>(&fast).is_ok());
            }
        }
    }

    #[test]
    fn block_mask_marks_exactly_the_special_bytes() {
        for stop in [false, true] {
            for b in 0..=255u8 {
                for pos in 0..BLOCK {
                    let mut block = [b'a'; BLOCK];
                    block[pos] = b;
                    let want = if is_special(b, stop) { 1u32 << pos } else { 0 };
                    let (all, prefixed) = special_masks(&block, stop);
                    assert_eq!(all, want, "{b:#x} at {pos}, stop {stop}");
                    if cfg!(target_arch = "x86_64") {
                        let want = if b == b'"' || b == b'\\' {
                            1u32 << pos
                        } else {
                            0
                        };
                        assert_eq!(prefixed, want, "{b:#x} at {pos}");
                    }
                }
            }
        }
    }

    #[test]
    fn short_strings_are_checked_at_every_byte() {
        for stop in [false, true] {
            for b in 0..=255u8 {
                for len in 4..BLOCK {
                    for pos in 0..len {
                        let mut s = vec![b'a'; len];
                        s[pos] = b;
                        assert_eq!(
                            short_has_special(&s, stop),
                            is_special(b, stop),
                            "{b:#x} at {pos} of {len}, stop {stop}"
                        );
                    }
                }
            }
        }
    }

    /// The inline case of `write_json_str` (strings up to 32 bytes): every byte value at
    /// every position of every length, appended after what `out` already holds, writes what
    /// the byte-wise path writes, and the inline check takes exactly the strings with
    /// nothing to escape and nothing non-ASCII.
    #[test]
    fn short_strings_write_like_the_bytewise_path_at_every_byte() {
        for len in 0..=SHORT_INLINE {
            for pos in 0..len.max(1) {
                for b in 0..=255u8 {
                    let mut s: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
                    if len > 0 {
                        s[pos] = b;
                    }
                    let mut fast = b"prefix".to_vec();
                    write_json_str(&s, &mut fast);
                    let mut slow = b"prefix".to_vec();
                    write_json_str_repairing(&s, &mut slow);
                    assert_eq!(fast, slow, "{b:#x} at {pos} of {len}");
                    let mut inline = Vec::new();
                    let plain = !s.iter().any(|&c| is_special(c, true));
                    assert_eq!(
                        write_plain_short(&s, &mut inline),
                        plain,
                        "{b:#x} at {pos} of {len}"
                    );
                    if plain {
                        assert_eq!(inline, slow[6..], "{b:#x} at {pos} of {len}");
                    }
                }
            }
        }
    }

    /// Printable ASCII has quotes and backslashes and nothing else to escape: most of its
    /// blocks take the shuffle path on SSSE3 CPUs. Both builds of the block loop (with and
    /// without it) must write what the byte-wise path writes.
    fn check_both_block_loops(input: &[u8]) -> Result<(), TestCaseError> {
        let mut slow = Vec::new();
        write_json_str_repairing(input, &mut slow);
        for expand in [false, true] {
            if expand && !cfg!(target_arch = "x86_64") {
                continue;
            }
            let mut fast = vec![b'"'];
            let stopped = if expand {
                escape_run(input, &mut fast, false)
            } else {
                escape_blocks::<false>(input, &mut fast, false)
            };
            fast.push(b'"');
            prop_assert_eq!(stopped, input.len());
            prop_assert_eq!(&fast, &slow, "expand {}", expand);
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn quote_heavy_text_escapes_like_the_bytewise_path(
            text in "[ -~]{0,120}",
            quotes in "[\"\\\\a]{0,40}",
        ) {
            check_both_block_loops(text.as_bytes())?;
            check_both_block_loops(quotes.as_bytes())?;
            check_both_block_loops(format!("{quotes}{text}{quotes}").as_bytes())?;
        }
    }

    #[test]
    fn string_escaping_round_trips_through_serde_json() {
        let cases: &[&[u8]] = &[
            b"plain",
            b"q\"uote",
            b"back\\slash",
            b"nl\ntab\t",
            b"\x01\x1f",
            "é😀".as_bytes(),
        ];
        for c in cases {
            let mut out = Vec::new();
            write_json_str(c, &mut out);
            let back: String = serde_json::from_slice(&out).unwrap();
            assert_eq!(back.as_bytes(), *c);
        }
    }

    #[test]
    fn invalid_utf8_becomes_replacement_char() {
        let mut out = Vec::new();
        write_json_str(b"a\xffb", &mut out);
        let back: String = serde_json::from_slice(&out).unwrap();
        assert_eq!(back, "a\u{FFFD}b");
    }

    #[test]
    fn unescape_handles_surrogates() {
        let mut out = Vec::new();
        assert!(unescape_json_str(br#"x\n\u00e9\ud83d\ude00"#, &mut out));
        assert_eq!(out, "x\né😀".as_bytes());
        assert!(!unescape_json_str(br#"\q"#, &mut Vec::new()));
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_i64(b"-42"), Some(-42));
        assert_eq!(parse_i64(b"4.2"), None);
        assert_eq!(parse_f64(b"4.25e1"), Some(42.5));
    }
}

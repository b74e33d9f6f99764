//! logfmt: `key=value key2="quoted \" value" flag`.
//!
//! Pairs are separated by blanks. A value is everything up to the next blank, or a
//! double-quoted string in which `\"`, `\\`, `\n`, `\t` and `\r` are escapes (another
//! backslash is kept as written). Values stay strings (no type guessing); a key without `=`
//! is the boolean `true`. Values are spans of the line; a quoted value holding escapes is
//! decoded into the parser's scratch buffer. A quote left open runs to the end of the line
//! (a line cut by a length limit keeps its fields). Repeated keys are all written, in order.
//! A line without a single `key=value` pair is an error.

use super::sink::{FieldSink, LineParser, ParseError, Parsed};
use memchr::memchr2;

pub(crate) const E_NO_PAIRS: ParseError = ParseError::new("no key=value pairs");

/// Parses logfmt lines.
#[derive(Debug, Clone, Default)]
pub struct LogfmtParser {
    scratch: Vec<u8>,
}

impl LogfmtParser {
    pub fn new() -> LogfmtParser {
        LogfmtParser::default()
    }
}

fn is_blank(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

impl LineParser for LogfmtParser {
    fn parse<S: FieldSink>(&mut self, line: &[u8], out: &mut S) -> Result<Parsed, ParseError> {
        let mut pairs = 0usize;
        let mut i = 0;
        let n = line.len();
        while i < n {
            while line.get(i).is_some_and(|&b| is_blank(b)) {
                i += 1;
            }
            if i >= n {
                break;
            }
            let key_start = i;
            while line.get(i).is_some_and(|&b| b != b'=' && !is_blank(b)) {
                i += 1;
            }
            let key = &line[key_start..i];
            if line.get(i) != Some(&b'=') {
                // A bare key (it is never empty: the first byte was not a blank or `=`).
                out.bool(key, true);
                continue;
            }
            i += 1;
            if line.get(i) == Some(&b'"') {
                let (content, escaped, end) = split_quoted(line, i + 1);
                i = end;
                if key.is_empty() {
                    continue;
                }
                if escaped {
                    self.scratch.clear();
                    unescape(content, &mut self.scratch);
                    out.str(key, &self.scratch);
                } else {
                    out.str(key, content);
                }
            } else {
                let value_start = i;
                while line.get(i).is_some_and(|&b| !is_blank(b)) {
                    i += 1;
                }
                if key.is_empty() {
                    continue;
                }
                out.str(key, &line[value_start..i]);
            }
            pairs += 1;
        }
        if pairs == 0 {
            return Err(E_NO_PAIRS);
        }
        Ok(Parsed::Event)
    }
}

/// The content of a quoted string whose opening quote is just before `start`: the content,
/// whether it holds a backslash, and the index after the closing quote (the end of the line
/// when the quote is never closed).
fn split_quoted(line: &[u8], start: usize) -> (&[u8], bool, usize) {
    let Some(body) = line.get(start..) else {
        return (&[], false, line.len());
    };
    let mut from = 0;
    let mut escaped = false;
    while let Some(i) = body.get(from..).and_then(|s| memchr2(b'"', b'\\', s)) {
        let at = from + i;
        if body[at] == b'"' {
            return (&body[..at], escaped, start + at + 1);
        }
        escaped = true;
        from = at + 2;
    }
    (body, escaped, line.len())
}

/// Decodes `\"`, `\\`, `\n`, `\t`, `\r`; any other backslash is kept.
fn unescape(raw: &[u8], out: &mut Vec<u8>) {
    let mut rest = raw;
    while let Some(i) = memchr::memchr(b'\\', rest) {
        out.extend_from_slice(&rest[..i]);
        let decoded = match rest.get(i + 1) {
            Some(b'"') => b'"',
            Some(b'\\') => b'\\',
            Some(b'n') => b'\n',
            Some(b't') => b'\t',
            Some(b'r') => b'\r',
            _ => {
                out.push(b'\\');
                rest = &rest[i + 1..];
                continue;
            }
        };
        out.push(decoded);
        rest = &rest[i + 2..];
    }
    out.extend_from_slice(rest);
}

#[cfg(test)]
mod tests;

//! Key-value lines with configurable separators: `a=1 b="two words"`, `a:1,b:2`, ...
//!
//! The line is cut into pairs at `field_split`; a pair is cut into key and value at the first
//! `value_split`. A value that starts with `"` or `'` runs to the matching closing quote
//! (field separators inside are kept; `\"`, `\'` and `\\` are escapes, other backslashes are
//! kept as written; a quote left open runs to the end of the line). Anything between a
//! closing quote and the next field separator is ignored, and so are tokens without a
//! `value_split` and pairs with an empty key. `trim` removes blanks around keys and
//! unquoted values; `prefix` is prepended to every key. Values are strings, spans of the
//! line unless they hold escapes; keys with a prefix are built in a scratch buffer.
//! Repeated keys are all written, in order. A line without a single pair is an error.

use super::logfmt::E_NO_PAIRS;
use super::sink::{FieldSink, LineParser, ParseError, Parsed};
use memchr::memmem;
use serde::Deserialize;

/// Options of the key-value parser (`format = "kv"`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KvOptions {
    /// What separates pairs. Default `" "`.
    pub field_split: String,
    /// What separates a key from its value (the first occurrence in a pair). Default `"="`.
    pub value_split: String,
    /// Prepended to every key. Default `""`.
    pub prefix: String,
    /// Remove blanks (space, tab, CR, LF) around keys and unquoted values. Default `true`.
    pub trim: bool,
}

impl Default for KvOptions {
    fn default() -> KvOptions {
        KvOptions {
            field_split: " ".into(),
            value_split: "=".into(),
            prefix: String::new(),
            trim: true,
        }
    }
}

impl KvOptions {
    /// Checks the options: both separators non-empty and different.
    pub fn validate(&self) -> Result<(), String> {
        if self.field_split.is_empty() {
            return Err("kv: field_split must not be empty".into());
        }
        if self.value_split.is_empty() {
            return Err("kv: value_split must not be empty".into());
        }
        if self.field_split == self.value_split {
            return Err(format!(
                "kv: field_split and value_split are both {:?}",
                self.field_split
            ));
        }
        Ok(())
    }
}

/// Parses key-value lines.
#[derive(Debug, Clone)]
pub struct KvParser {
    field_split: memmem::Finder<'static>,
    value_split: memmem::Finder<'static>,
    prefix: Vec<u8>,
    trim: bool,
    key_scratch: Vec<u8>,
    value_scratch: Vec<u8>,
}

impl KvParser {
    pub fn new(options: &KvOptions) -> Result<KvParser, String> {
        options.validate()?;
        Ok(KvParser {
            field_split: memmem::Finder::new(options.field_split.as_bytes()).into_owned(),
            value_split: memmem::Finder::new(options.value_split.as_bytes()).into_owned(),
            prefix: options.prefix.as_bytes().to_vec(),
            trim: options.trim,
            key_scratch: Vec::new(),
            value_scratch: Vec::new(),
        })
    }
}

impl Default for KvParser {
    fn default() -> KvParser {
        KvParser::new(&KvOptions::default()).expect("default options are valid")
    }
}

/// The first match at or after a position, remembered so that scanning a line stays linear
/// even when a separator is rare (each search resumes only once the cursor passes the
/// remembered match).
#[derive(Default)]
struct NextMatch {
    /// Where the last search started (`None` before the first).
    searched_from: Option<usize>,
    found: Option<usize>,
}

impl NextMatch {
    fn at_or_after(
        &mut self,
        finder: &memmem::Finder<'_>,
        line: &[u8],
        start: usize,
    ) -> Option<usize> {
        let cached = self.searched_from.is_some_and(|from| start >= from)
            && self.found.is_none_or(|f| f >= start);
        if !cached {
            self.searched_from = Some(start);
            self.found = line
                .get(start..)
                .and_then(|s| finder.find(s))
                .map(|i| start + i);
        }
        self.found
    }
}

fn is_blank(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

fn trim_blanks(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s {
        if !is_blank(*first) {
            break;
        }
        s = rest;
    }
    while let [rest @ .., last] = s {
        if !is_blank(*last) {
            break;
        }
        s = rest;
    }
    s
}

impl LineParser for KvParser {
    fn parse<S: FieldSink>(&mut self, line: &[u8], out: &mut S) -> Result<Parsed, ParseError> {
        let field_len = self.field_split.needle().len();
        let value_len = self.value_split.needle().len();
        let mut next_field = NextMatch::default();
        let mut next_value = NextMatch::default();
        let mut pairs = 0usize;
        let mut pos = 0;
        while pos < line.len() {
            let field_end = next_field.at_or_after(&self.field_split, line, pos);
            let separator = match next_value.at_or_after(&self.value_split, line, pos) {
                Some(v) if field_end.is_none_or(|f| v < f) => v,
                // A token without a value separator.
                _ => {
                    pos = field_end.map_or(line.len(), |f| f + field_len);
                    continue;
                }
            };
            let mut key = &line[pos..separator];
            if self.trim {
                key = trim_blanks(key);
            }
            let value_start = separator + value_len;
            let token_end = next_field
                .at_or_after(&self.field_split, line, value_start)
                .unwrap_or(line.len());
            let mut quote_at = value_start;
            if self.trim {
                while quote_at < token_end && line.get(quote_at).is_some_and(|&b| is_blank(b)) {
                    quote_at += 1;
                }
            }
            let quote = line
                .get(quote_at)
                .copied()
                .filter(|&q| quote_at < token_end && (q == b'"' || q == b'\''));
            let (value, escaped) = match quote {
                Some(q) => {
                    let (content, escaped, after) = split_quoted(line, quote_at + 1, q);
                    pos = next_field
                        .at_or_after(&self.field_split, line, after)
                        .map_or(line.len(), |f| f + field_len);
                    (content, escaped.then_some(q))
                }
                None => {
                    let mut value = line.get(value_start..token_end).unwrap_or_default();
                    if self.trim {
                        value = trim_blanks(value);
                    }
                    pos = token_end.saturating_add(field_len);
                    (value, None)
                }
            };
            if key.is_empty() {
                continue;
            }
            let value = match escaped {
                Some(q) => {
                    self.value_scratch.clear();
                    unescape(value, q, &mut self.value_scratch);
                    &self.value_scratch[..]
                }
                None => value,
            };
            if self.prefix.is_empty() {
                out.str(key, value);
            } else {
                self.key_scratch.clear();
                self.key_scratch.extend_from_slice(&self.prefix);
                self.key_scratch.extend_from_slice(key);
                out.str(&self.key_scratch, value);
            }
            pairs += 1;
        }
        if pairs == 0 {
            return Err(E_NO_PAIRS);
        }
        Ok(Parsed::Event)
    }
}

/// The content of a string quoted with `quote` that starts at `start`: the content, whether
/// it holds a backslash, and the index after the closing quote (the end of the line when the
/// quote is never closed).
fn split_quoted(line: &[u8], start: usize, quote: u8) -> (&[u8], bool, usize) {
    let Some(body) = line.get(start..) else {
        return (&[], false, line.len());
    };
    let mut from = 0;
    let mut escaped = false;
    while let Some(i) = body
        .get(from..)
        .and_then(|s| memchr::memchr2(quote, b'\\', s))
    {
        let at = from + i;
        if body[at] == quote {
            return (&body[..at], escaped, start + at + 1);
        }
        escaped = true;
        from = at + 2;
    }
    (body, escaped, line.len())
}

/// Decodes `\<quote>` and `\\`; any other backslash is kept.
fn unescape(raw: &[u8], quote: u8, out: &mut Vec<u8>) {
    let mut rest = raw;
    while let Some(i) = memchr::memchr(b'\\', rest) {
        out.extend_from_slice(&rest[..i]);
        match rest.get(i + 1) {
            Some(&c) if c == quote || c == b'\\' => {
                out.push(c);
                rest = &rest[i + 2..];
            }
            _ => {
                out.push(b'\\');
                rest = &rest[i + 1..];
            }
        }
    }
    out.extend_from_slice(rest);
}

#[cfg(test)]
mod tests;

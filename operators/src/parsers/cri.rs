//! Container runtime logs: the CRI format kubelet's runtimes write
//! (`<RFC 3339> <stdout|stderr> <P|F> <message>`) and Docker's json-file lines
//! (`{"log":"msg\n","stream":"stdout","time":"..."}`).
//!
//! Both write `timestamp`, `stream` and `message`. A CRI line tagged `P` is a part of a
//! longer line: [`CriParser`] holds the parts (per stream, as the streams interleave) and
//! answers [`Parsed::Pending`]; the next `F` line of that stream is written with the joined
//! message and the timestamp of the first part. The held bytes are bounded by
//! `max_partial_bytes`: a message that would outgrow it is written at once, cut at the bound
//! (on a UTF-8 boundary), with `truncated = true`, and the rest of its parts are dropped.

use super::sink::{FieldSink, LineParser, ParseError, Parsed};
use super::timestamp::{parse_rfc3339_prefix, Timestamp};
use memchr::memchr2;

/// The default bound on the bytes of partial CRI lines held per stream.
pub const DEFAULT_MAX_PARTIAL_BYTES: usize = 1 << 20;

const E_TIME: ParseError = ParseError::new("expected an RFC 3339 timestamp and a space");
const E_STREAM: ParseError = ParseError::new("expected stream 'stdout' or 'stderr' and a space");
const E_TAG: ParseError = ParseError::new("expected tag 'P' or 'F' after the stream");

/// The partial CRI lines held for one stream.
#[derive(Debug, Clone, Default)]
struct Held {
    message: Vec<u8>,
    /// The timestamp of the first part; `Some` while parts are held.
    first_timestamp: Option<Timestamp>,
    /// The message outgrew the bound and was written truncated: drop its remaining parts.
    dropping_rest: bool,
}

/// Parses CRI log lines, joining partial lines.
#[derive(Debug, Clone)]
pub struct CriParser {
    max_partial_bytes: usize,
    /// Index 0: stdout, 1: stderr.
    held: [Held; 2],
}

impl Default for CriParser {
    fn default() -> CriParser {
        CriParser::new(DEFAULT_MAX_PARTIAL_BYTES)
    }
}

const STREAM_NAMES: [&[u8]; 2] = [b"stdout", b"stderr"];

impl CriParser {
    /// `max_partial_bytes` bounds the message bytes held per stream (at least 1).
    pub fn new(max_partial_bytes: usize) -> CriParser {
        CriParser {
            max_partial_bytes: max_partial_bytes.max(1),
            held: Default::default(),
        }
    }

    /// Whether partial lines are held (a later `F` line or [`CriParser::flush`] writes them).
    pub fn has_pending(&self) -> bool {
        self.held.iter().any(|h| h.first_timestamp.is_some())
    }

    /// Writes the parts held for one stream as an event (what is held, without waiting for
    /// its `F` line: at the end of input, or when it has waited too long). Returns false
    /// when nothing was held (and nothing was written).
    pub fn flush<S: FieldSink>(&mut self, out: &mut S) -> bool {
        for (held, name) in self.held.iter_mut().zip(STREAM_NAMES) {
            if let Some(timestamp) = held.first_timestamp.take() {
                write_event(out, timestamp, name, &held.message, false);
                held.message.clear();
                return true;
            }
        }
        false
    }
}

fn write_event<S: FieldSink>(
    out: &mut S,
    timestamp: Timestamp,
    stream: &[u8],
    message: &[u8],
    truncated: bool,
) {
    out.timestamp(b"timestamp", timestamp);
    out.str(b"stream", stream);
    out.str(b"message", message);
    if truncated {
        out.bool(b"truncated", true);
    }
}

/// Drops the line terminator left by framing (the message keeps other trailing blanks).
fn trim_newline(mut line: &[u8]) -> &[u8] {
    while let [rest @ .., b'\n' | b'\r'] = line {
        line = rest;
    }
    line
}

impl LineParser for CriParser {
    fn parse<S: FieldSink>(&mut self, line: &[u8], out: &mut S) -> Result<Parsed, ParseError> {
        let line = trim_newline(line);
        let (timestamp, used) = parse_rfc3339_prefix(line).ok_or(E_TIME)?;
        let rest = line
            .get(used..)
            .and_then(|r| r.strip_prefix(b" "))
            .ok_or(E_TIME)?;
        let stream_index = STREAM_NAMES
            .iter()
            .position(|name| rest.starts_with(name) && rest.get(name.len()) == Some(&b' '))
            .ok_or(E_STREAM)?;
        let stream = &rest[..STREAM_NAMES[stream_index].len()];
        let rest = &rest[stream.len() + 1..];
        let (tag, message) = match memchr::memchr(b' ', rest) {
            Some(sp) => (&rest[..sp], &rest[sp + 1..]),
            None => (rest, &[][..]),
        };
        // Tags are `:`-separated; the first says partial or full.
        let first_tag = tag.split(|&b| b == b':').next().unwrap_or_default();
        let partial = match first_tag {
            b"P" => true,
            b"F" => false,
            _ => return Err(E_TAG),
        };

        let max = self.max_partial_bytes;
        let held = &mut self.held[stream_index];
        if held.dropping_rest {
            if !partial {
                held.dropping_rest = false;
            }
            return Ok(Parsed::Pending);
        }
        let Some(first_timestamp) = held.first_timestamp else {
            if !partial {
                write_event(out, timestamp, stream, message, false);
                return Ok(Parsed::Event);
            }
            if message.len() <= max {
                held.message.clear();
                held.message.extend_from_slice(message);
                held.first_timestamp = Some(timestamp);
                return Ok(Parsed::Pending);
            }
            let kept = &message[..utf8_cut(&message[..max], message.get(max).copied())];
            write_event(out, timestamp, stream, kept, true);
            held.dropping_rest = true;
            return Ok(Parsed::Event);
        };
        let room = max.saturating_sub(held.message.len());
        let fits = message.len() <= room;
        if fits && partial {
            held.message.extend_from_slice(message);
            return Ok(Parsed::Pending);
        }
        let kept = if fits {
            held.message.extend_from_slice(message);
            held.message.len()
        } else {
            held.message.extend_from_slice(&message[..room]);
            utf8_cut(&held.message, message.get(room).copied())
        };
        write_event(out, first_timestamp, stream, &held.message[..kept], !fits);
        held.message.clear();
        held.first_timestamp = None;
        held.dropping_rest = !fits && partial;
        Ok(Parsed::Event)
    }
}

/// How much of `kept` to keep when the byte after it, `next`, is dropped: all of it,
/// unless that cut splits a UTF-8 sequence, which is then dropped whole.
fn utf8_cut(kept: &[u8], next: Option<u8>) -> usize {
    let is_continuation = |b: u8| b & 0xC0 == 0x80;
    let mut end = kept.len();
    if next.is_some_and(is_continuation) {
        let mut back = 0;
        while back < 3 && end > 0 && is_continuation(kept[end - 1]) {
            end -= 1;
            back += 1;
        }
        if end > 0 && kept[end - 1] >= 0xC0 {
            end -= 1;
        }
    }
    end
}

const E_DOCKER_JSON: ParseError = ParseError::new("not a JSON object");
const E_DOCKER_LOG: ParseError = ParseError::new("no \"log\" string in the object");
const E_DOCKER_STRING: ParseError = ParseError::new("invalid JSON string");
const E_DOCKER_TIME: ParseError = ParseError::new("\"time\" is not an RFC 3339 timestamp");

/// Parses Docker json-file lines. `message` is the `log` value without its trailing
/// newline (JSON escapes are kept for the sink to decode), `stream` and `timestamp` are
/// written when present. The three keys are picked out by a small scanner that skips any
/// other member (`attrs`, ...); a line that is not one JSON object is an error.
#[derive(Debug, Clone, Default)]
pub struct DockerParser;

impl DockerParser {
    pub fn new() -> DockerParser {
        DockerParser
    }
}

#[derive(Default)]
struct DockerFields<'a> {
    log: Option<&'a [u8]>,
    stream: Option<&'a [u8]>,
    time: Option<&'a [u8]>,
}

impl LineParser for DockerParser {
    fn parse<S: FieldSink>(&mut self, line: &[u8], out: &mut S) -> Result<Parsed, ParseError> {
        let fields = docker_fields(line)?;
        let log = fields.log.ok_or(E_DOCKER_LOG)?;
        let timestamp = match fields.time {
            Some(time) => match parse_rfc3339_prefix(time) {
                Some((t, used)) if used == time.len() => Some(t),
                _ => return Err(E_DOCKER_TIME),
            },
            None => None,
        };
        if let Some(t) = timestamp {
            out.timestamp(b"timestamp", t);
        }
        if let Some(stream) = fields.stream {
            write_json_str(out, b"stream", stream);
        }
        write_json_str(out, b"message", strip_escaped_newline(log));
        Ok(Parsed::Event)
    }
}

fn write_json_str<S: FieldSink>(out: &mut S, key: &[u8], raw: &[u8]) {
    if memchr::memchr(b'\\', raw).is_some() {
        out.str_json_escaped(key, raw);
    } else {
        out.str(key, raw);
    }
}

/// Drops a trailing `\n` (and a `\r` before it) written as JSON escapes.
fn strip_escaped_newline(mut raw: &[u8]) -> &[u8] {
    for escape in [b'n', b'r'] {
        if let [rest @ .., b'\\', last] = raw {
            let backslashes = rest.iter().rev().take_while(|&&b| b == b'\\').count();
            if *last == escape && backslashes % 2 == 0 {
                raw = rest;
            }
        }
    }
    raw
}

fn skip_ws(s: &[u8], mut i: usize) -> usize {
    while s
        .get(i)
        .is_some_and(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
    {
        i += 1;
    }
    i
}

/// The members of one JSON object, keeping `log`, `stream` and `time`.
fn docker_fields(line: &[u8]) -> Result<DockerFields<'_>, ParseError> {
    let mut fields = DockerFields::default();
    let mut i = skip_ws(line, 0);
    if line.get(i) != Some(&b'{') {
        return Err(E_DOCKER_JSON);
    }
    i = skip_ws(line, i + 1);
    if line.get(i) == Some(&b'}') {
        i += 1;
    } else {
        loop {
            if line.get(i) != Some(&b'"') {
                return Err(E_DOCKER_JSON);
            }
            let (key, end) = json_string(line, i + 1)?;
            i = skip_ws(line, end);
            if line.get(i) != Some(&b':') {
                return Err(E_DOCKER_JSON);
            }
            i = skip_ws(line, i + 1);
            let slot = match key {
                b"log" => Some(&mut fields.log),
                b"stream" => Some(&mut fields.stream),
                b"time" => Some(&mut fields.time),
                _ => None,
            };
            match slot {
                Some(slot) if line.get(i) == Some(&b'"') => {
                    let (value, end) = json_string(line, i + 1)?;
                    *slot = Some(value);
                    i = end;
                }
                _ => i = skip_value(line, i)?,
            }
            i = skip_ws(line, i);
            match line.get(i) {
                Some(b',') => i = skip_ws(line, i + 1),
                Some(b'}') => {
                    i += 1;
                    break;
                }
                _ => return Err(E_DOCKER_JSON),
            }
        }
    }
    if skip_ws(line, i) != line.len() {
        return Err(E_DOCKER_JSON);
    }
    Ok(fields)
}

/// A JSON string whose opening quote is just before `start`: its raw content (escapes
/// checked, not decoded) and the index after the closing quote.
fn json_string(s: &[u8], start: usize) -> Result<(&[u8], usize), ParseError> {
    let body = s.get(start..).ok_or(E_DOCKER_STRING)?;
    let mut from = 0;
    loop {
        let at = from
            + body
                .get(from..)
                .and_then(|rest| memchr2(b'"', b'\\', rest))
                .ok_or(E_DOCKER_STRING)?;
        if body[at] == b'"' {
            let content = &body[..at];
            if content.iter().any(|&b| b < 0x20) {
                return Err(E_DOCKER_STRING);
            }
            return Ok((content, start + at + 1));
        }
        from = match body.get(at + 1) {
            Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => at + 2,
            Some(b'u') => {
                let hex = body.get(at + 2..at + 6).ok_or(E_DOCKER_STRING)?;
                if !hex.iter().all(u8::is_ascii_hexdigit) {
                    return Err(E_DOCKER_STRING);
                }
                at + 6
            }
            _ => return Err(E_DOCKER_STRING),
        };
    }
}

/// Skips any JSON value starting at `i` (containers by bracket depth, strings checked),
/// returning the index after it.
fn skip_value(s: &[u8], i: usize) -> Result<usize, ParseError> {
    match s.get(i) {
        Some(b'"') => Ok(json_string(s, i + 1)?.1),
        Some(b'{' | b'[') => {
            let mut depth = 0usize;
            let mut j = i;
            while let Some(&b) = s.get(j) {
                match b {
                    b'"' => {
                        j = json_string(s, j + 1)?.1;
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
            Err(E_DOCKER_JSON)
        }
        Some(_) => {
            let mut j = i;
            while s
                .get(j)
                .is_some_and(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'+' | b'.'))
            {
                j += 1;
            }
            if j == i {
                Err(E_DOCKER_JSON)
            } else {
                Ok(j)
            }
        }
        None => Err(E_DOCKER_JSON),
    }
}

#[cfg(test)]
mod tests;

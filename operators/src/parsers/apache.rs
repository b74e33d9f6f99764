//! Apache httpd and nginx logs: the access log in the common and combined layouts (nginx's
//! `combined` is the same layout as Apache's), and the nginx error log.
//!
//! Access log fields: `client`, `ident` (unless `-`), `user`, `timestamp`, `method`, `path`,
//! `protocol` (or `request` as written, `-` included, when it is not `METHOD PATH PROTOCOL`),
//! `status`, `size`, `referrer`, `agent`. Elsewhere a value of `-` means the field is
//! absent; numbers are integers. Quoted values are spans of the line unless they hold
//! Apache's `\"` or `\\` escapes, which are decoded into the parser's scratch buffer; `\xhh`
//! escapes of non-printable bytes are kept as written (decoding them would give invalid text).
//!
//! nginx error log fields: `timestamp` (local time without a zone, read as UTC),
//! `severity` as written, `level` (normalised), `pid`, `tid`, `cid`, `message`, and the
//! context nginx appends (`client`, `server`, `request`, `upstream`, `host`, `referrer`).

use super::sink::{FieldSink, LineParser, ParseError, Parsed};
#[cfg(test)]
use super::timestamp::Timestamp;
use super::timestamp::{parse_apache_time, parse_nginx_time};
use memchr::{memchr, memchr2, memmem, memrchr};
use serde::Deserialize;

/// Which access log layout [`ApacheParser`] expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ApacheFormat {
    /// `%h %l %u %t "%r" %>s %b`; anything after the size is ignored.
    Common,
    /// Common followed by `"%{Referer}i" "%{User-agent}i"` (later fields are ignored).
    Combined,
    /// Combined when the referrer and agent are present, else common.
    #[default]
    Auto,
}

/// Which nginx log [`NginxParser`] expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NginxFormat {
    /// The access log in nginx's predefined `combined` format.
    #[default]
    Combined,
    /// The error log (`error_log`).
    Error,
}

/// Parses Apache httpd (and nginx) access log lines.
#[derive(Debug, Clone)]
pub struct ApacheParser {
    format: ApacheFormat,
    scratch: Vec<u8>,
}

impl ApacheParser {
    pub fn new(format: ApacheFormat) -> ApacheParser {
        ApacheParser {
            format,
            scratch: Vec::new(),
        }
    }
}

impl LineParser for ApacheParser {
    fn parse<S: FieldSink>(&mut self, line: &[u8], out: &mut S) -> Result<Parsed, ParseError> {
        parse_access(trim_end(line), self.format, &mut self.scratch, out)
    }
}

/// Parses nginx access (combined) or error log lines.
#[derive(Debug, Clone)]
pub struct NginxParser {
    format: NginxFormat,
    scratch: Vec<u8>,
}

impl NginxParser {
    pub fn new(format: NginxFormat) -> NginxParser {
        NginxParser {
            format,
            scratch: Vec::new(),
        }
    }
}

impl LineParser for NginxParser {
    fn parse<S: FieldSink>(&mut self, line: &[u8], out: &mut S) -> Result<Parsed, ParseError> {
        let line = trim_end(line);
        match self.format {
            NginxFormat::Combined => {
                parse_access(line, ApacheFormat::Combined, &mut self.scratch, out)
            }
            NginxFormat::Error => parse_nginx_error(line, out),
        }
    }
}

const E_CLIENT: ParseError = ParseError::new("expected a client address followed by a space");
const E_IDENT: ParseError = ParseError::new("expected ident and user before the timestamp");
const E_TIME_OPEN: ParseError = ParseError::new("expected ' [' before the timestamp");
const E_TIME_CLOSE: ParseError = ParseError::new("unterminated timestamp (no ']')");
const E_TIME: ParseError = ParseError::new("invalid timestamp (want [10/Oct/2000:13:55:36 -0700])");
const E_REQUEST: ParseError = ParseError::new("expected a quoted request after the timestamp");
const E_UNTERMINATED: ParseError = ParseError::new("unterminated quoted value");
const E_STATUS: ParseError = ParseError::new("invalid status code");
const E_SIZE: ParseError = ParseError::new("invalid response size");
const E_COMBINED: ParseError =
    ParseError::new("expected quoted referrer and user agent after the size (combined format)");

/// The access log layouts, all sharing the same first seven fields.
fn parse_access<S: FieldSink>(
    line: &[u8],
    format: ApacheFormat,
    scratch: &mut Vec<u8>,
    out: &mut S,
) -> Result<Parsed, ParseError> {
    let sp = memchr(b' ', line).ok_or(E_CLIENT)?;
    let (client, rest) = (&line[..sp], &line[sp + 1..]);
    if client.is_empty() {
        return Err(E_CLIENT);
    }
    let sp = memchr(b' ', rest).ok_or(E_IDENT)?;
    let (ident, rest) = (&rest[..sp], &rest[sp + 1..]);
    // The user runs up to " [" (it is rarely but legally more than one word).
    let open = memchr(b'[', rest).ok_or(E_TIME_OPEN)?;
    let user = match open.checked_sub(1) {
        Some(end) if rest.get(end) == Some(&b' ') => &rest[..end],
        _ => return Err(E_TIME_OPEN),
    };
    let rest = &rest[open + 1..];
    let close = memchr(b']', rest).ok_or(E_TIME_CLOSE)?;
    let timestamp = parse_apache_time(&rest[..close]).ok_or(E_TIME)?;
    let rest = rest
        .get(close + 1..)
        .and_then(|r| r.strip_prefix(b" \""))
        .ok_or(E_REQUEST)?;
    let (request, request_escaped, rest) = split_quoted(rest).ok_or(E_UNTERMINATED)?;
    let rest = rest.strip_prefix(b" ").ok_or(E_STATUS)?;
    let (status, rest) = split_word(rest);
    let status = optional_number(status).ok_or(E_STATUS)?;
    let rest = rest.strip_prefix(b" ").ok_or(E_SIZE)?;
    let (size, rest) = split_word(rest);
    let size = optional_number(size).ok_or(E_SIZE)?;

    out.str(b"client", client);
    if present(ident) {
        out.str(b"ident", ident);
    }
    if present(user) {
        out.str(b"user", user);
    }
    out.timestamp(b"timestamp", timestamp);
    match split_request(request) {
        Some((method, path, protocol)) => {
            out.str(b"method", method);
            emit_unescaped(out, b"path", path, request_escaped, scratch);
            if let Some(protocol) = protocol {
                out.str(b"protocol", protocol);
            }
        }
        // `-`, empty, or bytes that are not a request (a TLS handshake on a plain port).
        None => emit_unescaped(out, b"request", request, request_escaped, scratch),
    }
    if let Some(status) = status {
        out.int(b"status", status);
    }
    if let Some(size) = size {
        out.int(b"size", size);
    }
    if format == ApacheFormat::Common {
        return Ok(Parsed::Event);
    }
    match parse_referrer_agent(rest)? {
        Some((referrer, agent)) => {
            if present(referrer.0) {
                emit_unescaped(out, b"referrer", referrer.0, referrer.1, scratch);
            }
            if present(agent.0) {
                emit_unescaped(out, b"agent", agent.0, agent.1, scratch);
            }
        }
        None if format == ApacheFormat::Auto => {}
        None => return Err(E_COMBINED),
    }
    Ok(Parsed::Event)
}

type Quoted<'a> = (&'a [u8], bool);

/// ` "referrer" "agent"` after the size: `Ok(None)` when nothing (but blanks) follows,
/// `Err` when something follows that is not two quoted values.
fn parse_referrer_agent(rest: &[u8]) -> Result<Option<(Quoted<'_>, Quoted<'_>)>, ParseError> {
    if rest.iter().all(|&b| b == b' ' || b == b'\t') {
        return Ok(None);
    }
    let rest = rest.strip_prefix(b" \"").ok_or(E_COMBINED)?;
    let (referrer, referrer_escaped, rest) = split_quoted(rest).ok_or(E_UNTERMINATED)?;
    let rest = rest.strip_prefix(b" \"").ok_or(E_COMBINED)?;
    let (agent, agent_escaped, _) = split_quoted(rest).ok_or(E_UNTERMINATED)?;
    Ok(Some(((referrer, referrer_escaped), (agent, agent_escaped))))
}

/// `s` starts just after an opening quote: the content up to the closing quote (skipping
/// backslash escapes), whether it holds a backslash, and what follows the closing quote.
fn split_quoted(s: &[u8]) -> Option<(&[u8], bool, &[u8])> {
    let mut from = 0;
    let mut escaped = false;
    loop {
        let i = from + memchr2(b'"', b'\\', s.get(from..)?)?;
        if s[i] == b'\\' {
            escaped = true;
            from = i + 2;
        } else {
            return Some((&s[..i], escaped, &s[i + 1..]));
        }
    }
}

/// Up to the next space (or the end), and the rest starting at that space.
fn split_word(s: &[u8]) -> (&[u8], &[u8]) {
    match memchr(b' ', s) {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, &[]),
    }
}

/// The parts of a request line: method, path, protocol (HTTP/0.9 has none).
type RequestParts<'a> = (&'a [u8], &'a [u8], Option<&'a [u8]>);

/// `METHOD PATH PROTOCOL` (or HTTP/0.9's `METHOD PATH`), else `None`.
fn split_request(request: &[u8]) -> Option<RequestParts<'_>> {
    let sp = memchr(b' ', request)?;
    let (method, rest) = (&request[..sp], &request[sp + 1..]);
    if method.is_empty()
        || !method
            .iter()
            .all(|&b| b.is_ascii_uppercase() || b == b'-' || b == b'_')
    {
        return None;
    }
    let (path, protocol) = match memrchr(b' ', rest) {
        Some(sp) => {
            let protocol = &rest[sp + 1..];
            if !protocol.starts_with(b"HTTP/") {
                return None;
            }
            (&rest[..sp], Some(protocol))
        }
        None => (rest, None),
    };
    if path.is_empty() || memchr(b' ', path).is_some() {
        return None;
    }
    Some((method, path, protocol))
}

/// A value other than `-` and empty.
fn present(value: &[u8]) -> bool {
    !value.is_empty() && value != b"-"
}

/// `-` → `Some(None)`, digits → `Some(Some(n))`, anything else → `None`.
fn optional_number(s: &[u8]) -> Option<Option<i64>> {
    if s == b"-" {
        return Some(None);
    }
    parse_digits(s).map(Some)
}

/// A non-negative decimal integer (at most 18 digits, so it always fits an i64).
fn parse_digits(s: &[u8]) -> Option<i64> {
    if s.is_empty() || s.len() > 18 {
        return None;
    }
    let mut n: i64 = 0;
    for &b in s {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n * 10 + (b - b'0') as i64;
    }
    Some(n)
}

/// Writes `raw` as `key`, decoding Apache's `\"` and `\\` into `scratch` when it has any.
fn emit_unescaped<S: FieldSink>(
    out: &mut S,
    key: &[u8],
    raw: &[u8],
    may_have_escapes: bool,
    scratch: &mut Vec<u8>,
) {
    if !may_have_escapes || memchr(b'\\', raw).is_none() {
        out.str(key, raw);
        return;
    }
    scratch.clear();
    let mut rest = raw;
    while let Some(i) = memchr(b'\\', rest) {
        scratch.extend_from_slice(&rest[..i]);
        match rest.get(i + 1) {
            Some(&c @ (b'"' | b'\\')) => {
                scratch.push(c);
                rest = &rest[i + 2..];
            }
            _ => {
                scratch.push(b'\\');
                rest = &rest[i + 1..];
            }
        }
    }
    scratch.extend_from_slice(rest);
    out.str(key, scratch);
}

/// Drops a trailing CR/LF and blanks left by framing.
fn trim_end(line: &[u8]) -> &[u8] {
    let mut end = line.len();
    while end > 0 && matches!(line[end - 1], b'\n' | b'\r' | b' ' | b'\t') {
        end -= 1;
    }
    &line[..end]
}

const E_NGINX_TIME: ParseError =
    ParseError::new("invalid timestamp (want 2026/11/21 09:34:39 at the start)");
const E_NGINX_SEVERITY: ParseError = ParseError::new("expected ' [severity] ' after the timestamp");
const E_NGINX_PID: ParseError = ParseError::new("expected 'pid#tid: ' after the severity");

/// The context nginx appends to an error message, in the order it writes them.
const NGINX_CONTEXT_KEYS: [&[u8]; 6] = [
    b"client",
    b"server",
    b"request",
    b"upstream",
    b"host",
    b"referrer",
];

/// `2026/11/21 09:34:39 [error] 1234#5678: *99 message, client: 1.2.3.4, server: x, ...`
fn parse_nginx_error<S: FieldSink>(line: &[u8], out: &mut S) -> Result<Parsed, ParseError> {
    let timestamp = parse_nginx_time(line.get(..19).ok_or(E_NGINX_TIME)?).ok_or(E_NGINX_TIME)?;
    let rest = line
        .get(19..)
        .and_then(|r| r.strip_prefix(b" ["))
        .ok_or(E_NGINX_SEVERITY)?;
    let close = memchr(b']', rest).ok_or(E_NGINX_SEVERITY)?;
    let severity = &rest[..close];
    if severity.is_empty() {
        return Err(E_NGINX_SEVERITY);
    }
    let rest = rest[close + 1..]
        .strip_prefix(b" ")
        .ok_or(E_NGINX_SEVERITY)?;
    let hash = memchr(b'#', rest).ok_or(E_NGINX_PID)?;
    let pid = parse_digits(&rest[..hash]).ok_or(E_NGINX_PID)?;
    let rest = &rest[hash + 1..];
    let colon = memchr(b':', rest).ok_or(E_NGINX_PID)?;
    let tid = parse_digits(&rest[..colon]).ok_or(E_NGINX_PID)?;
    let mut rest = &rest[colon + 1..];
    rest = rest.strip_prefix(b" ").unwrap_or(rest);
    let mut cid = None;
    if let Some(after_star) = rest.strip_prefix(b"*") {
        let (digits, after) = split_word(after_star);
        if let Some(n) = parse_digits(digits) {
            cid = Some(n);
            rest = after.strip_prefix(b" ").unwrap_or(after);
        }
    }

    out.timestamp(b"timestamp", timestamp);
    out.str(b"severity", severity);
    if let Some(level) = nginx_level(severity) {
        out.str(b"level", level);
    }
    out.int(b"pid", pid);
    out.int(b"tid", tid);
    if let Some(cid) = cid {
        out.int(b"cid", cid);
    }
    let mut context = [(&b""[..], &b""[..]); NGINX_CONTEXT_KEYS.len()];
    match split_nginx_context(rest, &mut context) {
        Some((message, n)) => {
            out.str(b"message", message);
            for (key, value) in &context[..n] {
                out.str(key, value);
            }
        }
        None => out.str(b"message", rest),
    }
    Ok(Parsed::Event)
}

/// Splits `message, client: a, server: b, request: "..."` into the message and the context
/// pairs (written into `pairs`, returns how many). `None` when there is no well-formed
/// context, then everything is the message.
fn split_nginx_context<'a>(
    text: &'a [u8],
    pairs: &mut [(&'a [u8], &'a [u8]); NGINX_CONTEXT_KEYS.len()],
) -> Option<(&'a [u8], usize)> {
    let start = memmem::find(text, b", client: ")?;
    let message = &text[..start];
    let mut rest = &text[start..];
    let mut n = 0;
    let mut next_key = 0;
    while !rest.is_empty() {
        rest = rest.strip_prefix(b", ")?;
        let colon = memmem::find(rest, b": ")?;
        let key = &rest[..colon];
        // Keys come in a fixed order, each at most once.
        let k = next_key
            + NGINX_CONTEXT_KEYS[next_key..]
                .iter()
                .position(|k| *k == key)?;
        next_key = k + 1;
        rest = &rest[colon + 2..];
        let value;
        if let Some(quoted) = rest.strip_prefix(b"\"") {
            // The value ends at a quote followed by ", " or the end of the line.
            let mut from = 0;
            loop {
                let q = from + memchr(b'"', quoted.get(from..)?)?;
                let after = &quoted[q + 1..];
                if after.is_empty() || after.starts_with(b", ") {
                    value = &quoted[..q];
                    rest = after;
                    break;
                }
                from = q + 1;
            }
        } else {
            let end = memmem::find(rest, b", ").unwrap_or(rest.len());
            value = &rest[..end];
            rest = &rest[end..];
        }
        *pairs.get_mut(n)? = (key, value);
        n += 1;
    }
    Some((message, n))
}

/// nginx severities → normalised levels (`notice` is informational).
fn nginx_level(severity: &[u8]) -> Option<&'static [u8]> {
    let mut lower = [0u8; 6];
    let s = lower.get_mut(..severity.len())?;
    s.copy_from_slice(severity);
    s.make_ascii_lowercase();
    Some(match &*s {
        b"debug" => b"debug",
        b"info" | b"notice" => b"info",
        b"warn" => b"warn",
        b"error" => b"error",
        b"crit" | b"alert" | b"emerg" => b"fatal",
        _ => return None,
    })
}

#[cfg(test)]
mod tests;

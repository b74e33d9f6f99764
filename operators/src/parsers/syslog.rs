//! Syslog lines, RFC 5424 and RFC 3164 (BSD) with its real-world variants, into the fields
//! of Vector's `parse_syslog`: `facility severity level version timestamp host appname
//! procid msgid structured_data message`. A NILVALUE (`-`) leaves its field out.
//!
//! Values are spans of the line (zero copy) except the names derived from PRI and SD-PARAM
//! values that hold escapes, which are unescaped into a scratch buffer kept in the parser.
//!
//! Modes:
//! * `rfc5424`: strict RFC 5424 (lenient only in lengths): PRI, VERSION, the five header
//!   fields, STRUCTURED-DATA, then an optional MSG.
//! * `rfc3164`: `<PRI>TIMESTAMP HOSTNAME TAG[PID]: MSG`, each part optional, read as real
//!   senders write it (see [`SyslogParser`]). A line without PRI is allowed; its header is
//!   read all the same and it gets no `facility`/`severity`/`level`. A line without PRI and
//!   without timestamp becomes a message-only event (RFC 3164 4.3.3 treats any line as
//!   content; we do not invent the default PRI 13).
//! * `auto` (default): RFC 5424 when PRI is followed by a version number and a space,
//!   otherwise RFC 3164, except that a line with neither PRI nor a leading timestamp is an
//!   error (`not a syslog line`), so that arbitrary text is not taken for syslog.
//!
//! Invalid UTF-8 in the message or in SD-PARAM values is an error (the fields are text);
//! header fields must be printable ASCII.

use super::level::{facility_name, severity_level, severity_name};
use super::sink::{FieldSink, LineParser, ParseError, Parsed};
use super::timestamp::{
    bsd_datetime, iso_datetime, resolve_bsd, rfc3339_civil, system_now, zone_abbreviation_offset,
    Cursor, Timestamp, YearContext, Zone,
};
use serde::Deserialize;

/// Which syslog dialect to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SyslogMode {
    Rfc5424,
    Rfc3164,
    #[default]
    Auto,
}

/// Options of `format = "syslog"`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyslogOptions {
    /// `auto` (default), `rfc5424` or `rfc3164`.
    #[serde(default)]
    pub mode: SyslogMode,
    /// The zone of timestamps that carry none (BSD timestamps): `"UTC"` (default),
    /// `"local"`, or an offset like `"+02:00"`.
    #[serde(default)]
    pub timezone: Option<String>,
}

/// Supplies the current time and local offset when a line needs them (a BSD timestamp
/// without year or zone). Called at most once per line, and only for such lines.
pub type YearContextProvider = Box<dyn FnMut() -> YearContext + Send>;

const ERR_NO_PRI: ParseError = ParseError::new("no PRI: an RFC 5424 line starts with '<'");
const ERR_PRI: ParseError = ParseError::new("PRI is not '<', 1 to 3 digits, '>'");
const ERR_PRI_RANGE: ParseError = ParseError::new("PRI is above 191");
const ERR_NOTHING_AFTER_PRI: ParseError = ParseError::new("nothing after PRI");
const ERR_NOT_SYSLOG: ParseError =
    ParseError::new("not a syslog line: neither PRI nor a leading timestamp");
const ERR_VERSION: ParseError = ParseError::new("RFC 5424 VERSION missing or invalid");
const ERR_TRUNCATED: ParseError = ParseError::new("RFC 5424 header truncated");
const ERR_HEADER_BYTE: ParseError =
    ParseError::new("RFC 5424 header field holds a byte that is not printable ASCII");
const ERR_EMPTY_FIELD: ParseError =
    ParseError::new("RFC 5424 header field is empty (two spaces in a row)");
const ERR_TIMESTAMP: ParseError = ParseError::new("RFC 5424 TIMESTAMP is not RFC 3339");
const ERR_SD: ParseError = ParseError::new("RFC 5424 STRUCTURED-DATA is malformed");
const ERR_SD_UNTERMINATED: ParseError =
    ParseError::new("RFC 5424 STRUCTURED-DATA is not terminated");
const ERR_SD_UTF8: ParseError = ParseError::new("RFC 5424 SD-PARAM value is not valid UTF-8");
const ERR_SPACE_AFTER_SD: ParseError =
    ParseError::new("RFC 5424 STRUCTURED-DATA is not followed by a space");
const ERR_MSG_UTF8: ParseError = ParseError::new("message is not valid UTF-8");
const ERR_EMPTY: ParseError = ParseError::new("empty line");

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// The syslog parser. See the module documentation for the modes.
///
/// RFC 3164 is read leniently, as senders write it:
/// * `<PRI>` optional (see the modes); a Cisco sequence number (`<189>123: `) and clock
///   mark (`*Mar  1 ...`, `.Mar  1 ...`) are skipped;
/// * TIMESTAMP: `Mmm dd HH:MM:SS` (day space-padded or not, optional `.fraction`, optional
///   year `Mmm dd yyyy HH:MM:SS`, optional Cisco zone `... UTC:`), or RFC 3339 (with `T`
///   or a space, zone optional). Without year, [`YearContext::year_for_month`] decides; without
///   zone, the configured timezone. A timestamp that does not read as a valid date means no
///   header at all: everything after PRI is the message (RFC 3164 4.3.2);
/// * HOSTNAME: the next word if it is followed by a space and looks like a host name
///   (letters, digits, `.-_:`; IPv4 and IPv6 too), unless it ends with a single `:` (then it
///   is a tag); absent when the timestamp ends with `:` (Cisco);
/// * TAG: `name[pid]:`, `name[pid]`, or `name:` followed by a space or the end: `appname`
///   and `procid` (a number when numeric). A word starting with `%` is a Cisco mnemonic
///   (`%LINK-3-UPDOWN:`) and stays in the message;
/// * MSG: the rest, without a leading UTF-8 BOM and trailing whitespace; absent if empty.
pub struct SyslogParser {
    mode: SyslogMode,
    year_context: YearContextProvider,
    /// Unescaped SD-PARAM values.
    unescaped: Vec<u8>,
    /// The current line's SD items, as found by the one walk that checks them; the fields
    /// are written from here once the rest of the line checked out too.
    sd: Vec<SdSpan>,
}

impl std::fmt::Debug for SyslogParser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyslogParser")
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl SyslogParser {
    /// A parser on the system clock. Fails on an unknown `timezone`.
    pub fn new(options: &SyslogOptions) -> Result<SyslogParser, String> {
        let zone = match options.timezone.as_deref() {
            None => Zone::Utc,
            Some(name) => Zone::from_config(name)?,
        };
        let mut clock = SystemClock::new(zone);
        Ok(SyslogParser::with_year_context(options.mode, move || {
            clock.year_context()
        }))
    }

    /// A parser whose notion of "now" and of the local offset comes from `provider` (tests
    /// pass a fixed [`YearContext`]).
    pub fn with_year_context(
        mode: SyslogMode,
        provider: impl FnMut() -> YearContext + Send + 'static,
    ) -> SyslogParser {
        SyslogParser {
            mode,
            year_context: Box::new(provider),
            unescaped: Vec::new(),
            sd: Vec::new(),
        }
    }

    pub fn mode(&self) -> SyslogMode {
        self.mode
    }
}

/// The system clock with the configured zone; a local zone's offset is looked up at most
/// once a minute.
struct SystemClock {
    zone: Zone,
    offset: i32,
    offset_valid_until_secs: i64,
}

impl SystemClock {
    fn new(zone: Zone) -> SystemClock {
        SystemClock {
            zone,
            offset: 0,
            offset_valid_until_secs: i64::MIN,
        }
    }

    fn year_context(&mut self) -> YearContext {
        let now = system_now();
        let secs = now.unix_nanos.div_euclid(1_000_000_000);
        if secs >= self.offset_valid_until_secs {
            self.offset = self.zone.offset_now();
            self.offset_valid_until_secs = match self.zone {
                Zone::Local => secs.saturating_add(60),
                Zone::Utc | Zone::Fixed(_) => i64::MAX,
            };
        }
        YearContext::new(now, self.offset)
    }
}

impl LineParser for SyslogParser {
    fn parse<S: FieldSink>(&mut self, line: &[u8], out: &mut S) -> Result<Parsed, ParseError> {
        let line = trim_line_end(line);
        match self.mode {
            SyslogMode::Rfc5424 => self.parse_5424(line, out),
            SyslogMode::Rfc3164 => self.parse_3164(line, false, out),
            SyslogMode::Auto => {
                if looks_like_5424(line) {
                    self.parse_5424(line, out)
                } else {
                    self.parse_3164(line, true, out)
                }
            }
        }
    }
}

/// The line without trailing `\r` / `\n`.
fn trim_line_end(line: &[u8]) -> &[u8] {
    let mut end = line.len();
    while end > 0 && matches!(line.get(end - 1), Some(b'\n' | b'\r')) {
        end -= 1;
    }
    line.get(..end).unwrap_or_default()
}

/// `<PRI>`: `Ok(None)` when the line does not start with `<`, else the value and the
/// position after `>`.
fn read_pri(line: &[u8]) -> Result<Option<(u8, usize)>, ParseError> {
    if line.first() != Some(&b'<') {
        return Ok(None);
    }
    let mut value = 0u32;
    let mut pos = 1;
    while let Some(&b) = line.get(pos).filter(|b| b.is_ascii_digit()) {
        if pos == 4 {
            return Err(ERR_PRI);
        }
        value = value * 10 + (b - b'0') as u32;
        pos += 1;
    }
    if pos == 1 || line.get(pos) != Some(&b'>') {
        return Err(ERR_PRI);
    }
    if value > 191 {
        return Err(ERR_PRI_RANGE);
    }
    Ok(Some((value as u8, pos + 1)))
}

/// After a well-formed PRI: a version (1 to 3 digits, no leading zero) and a space.
fn looks_like_5424(line: &[u8]) -> bool {
    let Ok(Some((_, pos))) = read_pri(line) else {
        return false;
    };
    read_version(line, pos).is_some()
}

/// VERSION and the space after it: the version and the position after the space.
fn read_version(line: &[u8], mut pos: usize) -> Option<(u32, usize)> {
    let start = pos;
    let mut version = 0u32;
    while let Some(&b) = line.get(pos).filter(|b| b.is_ascii_digit()) {
        if pos - start == 3 {
            return None;
        }
        version = version * 10 + (b - b'0') as u32;
        pos += 1;
    }
    if pos == start || line.get(start) == Some(&b'0') || line.get(pos) != Some(&b' ') {
        return None;
    }
    Some((version, pos + 1))
}

/// An RFC 5424 header field and the space after it; advances `pos` past the space.
fn header_field<'a>(line: &'a [u8], pos: &mut usize) -> Result<&'a [u8], ParseError> {
    let rest = line.get(*pos..).unwrap_or_default();
    for (i, &b) in rest.iter().enumerate() {
        if b == b' ' {
            if i == 0 {
                return Err(ERR_EMPTY_FIELD);
            }
            *pos += i + 1;
            return Ok(rest.get(..i).unwrap_or_default());
        }
        if !(33..=126).contains(&b) {
            return Err(ERR_HEADER_BYTE);
        }
    }
    Err(ERR_TRUNCATED)
}

/// `None` for the NILVALUE `-`.
fn non_nil(field: &[u8]) -> Option<&[u8]> {
    (field != b"-").then_some(field)
}

fn strip_bom(message: &[u8]) -> &[u8] {
    message.strip_prefix(UTF8_BOM).unwrap_or(message)
}

/// A decimal number of 1 to 18 digits.
fn decimal(field: &[u8]) -> Option<i64> {
    if field.is_empty() || field.len() > 18 {
        return None;
    }
    field.iter().try_fold(0i64, |n, &b| {
        b.is_ascii_digit().then(|| n * 10 + (b - b'0') as i64)
    })
}

/// What a walk over STRUCTURED-DATA reports, in order.
enum SdItem<'a> {
    /// `[SD-ID`
    Element(&'a [u8]),
    /// `PARAM-NAME="raw value"`; `escaped` when the raw value holds a backslash.
    Param {
        name: &'a [u8],
        raw: &'a [u8],
        escaped: bool,
    },
    /// `]`
    End,
}

/// SD-NAME: printable ASCII except `=`, space, `]`, `"`; advances `pos`.
fn sd_name<'a>(line: &'a [u8], pos: &mut usize) -> Result<&'a [u8], ParseError> {
    let rest = line.get(*pos..).unwrap_or_default();
    let len = rest
        .iter()
        .take_while(|&&b| (33..=126).contains(&b) && !matches!(b, b'=' | b']' | b'"'))
        .count();
    if len == 0 {
        return Err(if rest.is_empty() {
            ERR_SD_UNTERMINATED
        } else {
            ERR_SD
        });
    }
    *pos += len;
    Ok(rest.get(..len).unwrap_or_default())
}

fn expect_sd_byte(line: &[u8], pos: &mut usize, byte: u8) -> Result<(), ParseError> {
    match line.get(*pos) {
        Some(&b) if b == byte => {
            *pos += 1;
            Ok(())
        }
        Some(_) => Err(ERR_SD),
        None => Err(ERR_SD_UNTERMINATED),
    }
}

/// An [`SdItem`] as offsets into its line.
#[derive(Debug, Clone, Copy)]
enum SdSpan {
    Element(Span),
    Param {
        name: Span,
        raw: Span,
        escaped: bool,
    },
    End,
}

/// `start..end` of a line.
type Span = (u32, u32);

impl SdSpan {
    /// `item`, whose slices lie in `line`, as offsets.
    fn of(line: &[u8], item: &SdItem<'_>) -> SdSpan {
        let span = |s: &[u8]| {
            let start = s.as_ptr() as usize - line.as_ptr() as usize;
            (start as u32, (start + s.len()) as u32)
        };
        match *item {
            SdItem::Element(id) => SdSpan::Element(span(id)),
            SdItem::Param { name, raw, escaped } => SdSpan::Param {
                name: span(name),
                raw: span(raw),
                escaped,
            },
            SdItem::End => SdSpan::End,
        }
    }
}

/// True when `s` is UTF-8. Log text is mostly ASCII: long text goes through `simdutf8` (16
/// or 32 bytes at a time), short values through the standard word-at-a-time ASCII check.
fn is_utf8(s: &[u8]) -> bool {
    if s.len() >= 64 {
        return simdutf8::basic::from_utf8(s).is_ok();
    }
    s.is_ascii() || std::str::from_utf8(s).is_ok()
}

/// Walks one or more SD-ELEMENTs starting at `pos` (on a `[`), reporting each part to
/// `visit`; the position after the last `]`.
fn walk_sd<'a>(
    line: &'a [u8],
    mut pos: usize,
    mut visit: impl FnMut(SdItem<'a>) -> Result<(), ParseError>,
) -> Result<usize, ParseError> {
    while line.get(pos) == Some(&b'[') {
        pos += 1;
        visit(SdItem::Element(sd_name(line, &mut pos)?))?;
        loop {
            match line.get(pos) {
                Some(b']') => {
                    pos += 1;
                    break;
                }
                Some(b' ') => pos += 1,
                Some(_) => return Err(ERR_SD),
                None => return Err(ERR_SD_UNTERMINATED),
            }
            let name = sd_name(line, &mut pos)?;
            expect_sd_byte(line, &mut pos, b'=')?;
            expect_sd_byte(line, &mut pos, b'"')?;
            let value_start = pos;
            let mut escaped = false;
            loop {
                let rest = line.get(pos..).unwrap_or_default();
                match memchr::memchr2(b'"', b'\\', rest) {
                    None => return Err(ERR_SD_UNTERMINATED),
                    Some(i) if rest.get(i) == Some(&b'\\') => {
                        escaped = true;
                        pos += i + 2;
                    }
                    Some(i) => {
                        pos += i;
                        break;
                    }
                }
            }
            let raw = line.get(value_start..pos).unwrap_or_default();
            pos += 1;
            visit(SdItem::Param { name, raw, escaped })?;
        }
        visit(SdItem::End)?;
    }
    Ok(pos)
}

/// PARAM-VALUE without its escapes: `\"`, `\\` and `\]` stand for the second character;
/// any other backslash is kept (RFC 5424 6.3.3).
fn unescape_sd_value(raw: &[u8], out: &mut Vec<u8>) {
    out.clear();
    let mut rest = raw;
    while let Some(i) = memchr::memchr(b'\\', rest) {
        out.extend_from_slice(rest.get(..i).unwrap_or_default());
        match rest.get(i + 1) {
            Some(&c @ (b'"' | b'\\' | b']')) => {
                out.push(c);
                rest = rest.get(i + 2..).unwrap_or_default();
            }
            _ => {
                out.push(b'\\');
                rest = rest.get(i + 1..).unwrap_or_default();
            }
        }
    }
    out.extend_from_slice(rest);
}

fn emit_pri<S: FieldSink>(pri: u8, out: &mut S) {
    let (facility, severity) = (pri >> 3, pri & 7);
    if let Some(name) = facility_name(facility) {
        out.str(b"facility", name.as_bytes());
    }
    if let Some(name) = severity_name(severity) {
        out.str(b"severity", name.as_bytes());
    }
    out.str(b"level", severity_level(severity).as_bytes());
}

fn emit_procid<S: FieldSink>(procid: &[u8], out: &mut S) {
    match decimal(procid) {
        Some(n) => out.int(b"procid", n),
        None => out.str(b"procid", procid),
    }
}

/// True when `text`, which parsed as `t`, is exactly what [`Timestamp::write_rfc3339`] writes
/// for `t` (UTC with `Z`, a four-digit year, no fraction or the shortest of 3/6/9 digits), so
/// the original bytes can be kept instead of rendering them again.
fn is_canonical_rfc3339(text: &[u8], t: Timestamp) -> bool {
    let ns = t.unix_nanos.rem_euclid(1_000_000_000);
    let fraction_ok = match text.len() {
        20 => ns == 0,
        24 => ns != 0 && ns % 1_000_000 == 0,
        27 => ns % 1_000 == 0 && ns % 1_000_000 != 0,
        30 => ns % 1_000 != 0,
        _ => false,
    };
    fraction_ok
        && text.last() == Some(&b'Z')
        && text.get(10) == Some(&b'T')
        && (text.len() == 20 || text.get(19) == Some(&b'.'))
        // A leap second (`:60`) is written as the next second.
        && text.get(17..19) != Some(b"60")
        && text[..4].iter().all(u8::is_ascii_digit)
}

/// The message part: without a BOM; `None` when empty; an error when not UTF-8.
fn checked_message(message: &[u8]) -> Result<Option<&[u8]>, ParseError> {
    let message = strip_bom(message);
    if message.is_empty() {
        return Ok(None);
    }
    if !is_utf8(message) {
        return Err(ERR_MSG_UTF8);
    }
    Ok(Some(message))
}

/// An RFC 3164 TAG.
struct Tag<'a> {
    appname: &'a [u8],
    procid: Option<&'a [u8]>,
    /// The position after the tag and one space.
    end: usize,
}

/// RFC 3164 TAG: `name:`, `name[pid]:` or `name[pid]`, followed by a space or the end.
fn read_tag(line: &[u8], pos: usize) -> Option<Tag<'_>> {
    let rest = line.get(pos..)?;
    if rest.first() == Some(&b'%') {
        return None;
    }
    let name_len = rest
        .iter()
        .take_while(|&&b| (33..=126).contains(&b) && !matches!(b, b':' | b'[' | b']'))
        .count();
    if name_len == 0 {
        return None;
    }
    let name = rest.get(..name_len)?;
    let mut i = name_len;
    let pid = match rest.get(i) {
        Some(b':') => {
            i += 1;
            None
        }
        Some(b'[') => {
            let pid_start = i + 1;
            let pid_len = rest
                .get(pid_start..)?
                .iter()
                .take_while(|&&b| (33..=126).contains(&b) && b != b']')
                .count();
            if pid_len == 0 || rest.get(pid_start + pid_len) != Some(&b']') {
                return None;
            }
            i = pid_start + pid_len + 1;
            if rest.get(i) == Some(&b':') {
                i += 1;
            }
            rest.get(pid_start..pid_start + pid_len)
        }
        _ => return None,
    };
    let end = match rest.get(i) {
        None => pos + i,
        Some(b' ') => pos + i + 1,
        Some(_) => return None,
    };
    Some(Tag {
        appname: name,
        procid: pid,
        end,
    })
}

/// A word that can be an RFC 3164 HOSTNAME, followed by a space: the name and the position
/// after the spaces that follow it.
fn read_hostname(line: &[u8], pos: usize) -> Option<(&[u8], usize)> {
    let rest = line.get(pos..)?;
    let len = memchr::memchr(b' ', rest)?;
    let host = rest.get(..len)?;
    let plausible = !host.is_empty()
        && host
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':'));
    // `su:` is a tag; `fe80::` is an IPv6 address.
    if !plausible || (host.ends_with(b":") && !host.ends_with(b"::")) {
        return None;
    }
    Some((host, skip_spaces(line, pos + len)))
}

fn skip_spaces(line: &[u8], mut pos: usize) -> usize {
    while line.get(pos) == Some(&b' ') {
        pos += 1;
    }
    pos
}

/// A Cisco sequence number `123: ` before the timestamp; the position after it.
fn skip_sequence_number(line: &[u8], pos: usize) -> usize {
    let rest = line.get(pos..).unwrap_or_default();
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits > 0 && rest.get(digits) == Some(&b':') && rest.get(digits + 1) == Some(&b' ') {
        pos + digits + 2
    } else {
        pos
    }
}

/// How an RFC 3164 timestamp ended.
struct Timestamp3164 {
    timestamp: Timestamp,
    /// Position after the timestamp (and after a Cisco `:`, if any).
    end: usize,
    /// The timestamp ended with `:` (Cisco): no hostname follows.
    colon: bool,
}

impl SyslogParser {
    fn parse_5424<S: FieldSink>(&mut self, line: &[u8], out: &mut S) -> Result<Parsed, ParseError> {
        let (pri, pos) = read_pri(line)?.ok_or(ERR_NO_PRI)?;
        let (version, mut pos) = read_version(line, pos).ok_or(ERR_VERSION)?;
        let timestamp = match non_nil(header_field(line, &mut pos)?) {
            None => None,
            Some(field) => {
                let civil = rfc3339_civil(field).ok_or(ERR_TIMESTAMP)?;
                let offset = match civil.offset {
                    Some(offset) => offset,
                    None => (self.year_context)().offset,
                };
                Some((field, civil.to_timestamp(offset).ok_or(ERR_TIMESTAMP)?))
            }
        };
        let host = non_nil(header_field(line, &mut pos)?);
        let appname = non_nil(header_field(line, &mut pos)?);
        let procid = non_nil(header_field(line, &mut pos)?);
        let msgid = non_nil(header_field(line, &mut pos)?);
        let has_sd = match line.get(pos) {
            Some(b'-') => {
                pos += 1;
                false
            }
            Some(b'[') => {
                let sd = &mut self.sd;
                sd.clear();
                pos = walk_sd(line, pos, |item| {
                    if let SdItem::Param { raw, .. } = item {
                        if !is_utf8(raw) {
                            return Err(ERR_SD_UTF8);
                        }
                    }
                    sd.push(SdSpan::of(line, &item));
                    Ok(())
                })?;
                true
            }
            Some(_) => return Err(ERR_SD),
            None => return Err(ERR_TRUNCATED),
        };
        let message = match line.get(pos) {
            None => None,
            Some(b' ') => checked_message(line.get(pos + 1..).unwrap_or_default())?,
            Some(_) => return Err(ERR_SPACE_AFTER_SD),
        };

        emit_pri(pri, out);
        out.int(b"version", version as i64);
        match timestamp {
            // Already written the way we would write it (the usual case): keep the bytes.
            Some((text, t)) if is_canonical_rfc3339(text, t) => out.str(b"timestamp", text),
            Some((_, t)) => out.timestamp(b"timestamp", t),
            None => {}
        }
        if let Some(host) = host {
            out.str(b"host", host);
        }
        if let Some(appname) = appname {
            out.str(b"appname", appname);
        }
        if let Some(procid) = procid {
            emit_procid(procid, out);
        }
        if let Some(msgid) = msgid {
            out.str(b"msgid", msgid);
        }
        if has_sd {
            out.begin_object(b"structured_data");
            let at =
                |(start, end): Span| line.get(start as usize..end as usize).unwrap_or_default();
            for item in &self.sd {
                match *item {
                    SdSpan::Element(id) => out.begin_object(at(id)),
                    SdSpan::Param {
                        name,
                        raw,
                        escaped: false,
                    } => out.str(at(name), at(raw)),
                    SdSpan::Param { name, raw, .. } => {
                        unescape_sd_value(at(raw), &mut self.unescaped);
                        out.str(at(name), &self.unescaped);
                    }
                    SdSpan::End => out.end_object(),
                }
            }
            out.end_object();
        }
        if let Some(message) = message {
            out.str(b"message", message);
        }
        Ok(Parsed::Event)
    }

    fn parse_3164<S: FieldSink>(
        &mut self,
        line: &[u8],
        need_pri_or_timestamp: bool,
        out: &mut S,
    ) -> Result<Parsed, ParseError> {
        let (pri, start) = match read_pri(line)? {
            Some((pri, pos)) => (Some(pri), pos),
            None => (None, 0),
        };
        if pri.is_some() && start >= line.len() {
            return Err(ERR_NOTHING_AFTER_PRI);
        }
        let header = self.timestamp_3164(line, skip_sequence_number(line, start));
        if header.is_none() && pri.is_none() && need_pri_or_timestamp {
            return Err(ERR_NOT_SYSLOG);
        }
        let mut pos = header.as_ref().map_or(start, |h| skip_spaces(line, h.end));
        let host = match &header {
            Some(h) if !h.colon => read_hostname(line, pos).map(|(host, next)| {
                pos = next;
                host
            }),
            _ => None,
        };
        let tag = read_tag(line, pos);
        if let Some(tag) = &tag {
            pos = tag.end;
        }
        let message = line.get(pos..).unwrap_or_default().trim_ascii_end();
        let message = checked_message(message)?;
        if pri.is_none() && header.is_none() && tag.is_none() && message.is_none() {
            return Err(ERR_EMPTY);
        }

        if let Some(pri) = pri {
            emit_pri(pri, out);
        }
        if let Some(h) = &header {
            out.timestamp(b"timestamp", h.timestamp);
        }
        if let Some(host) = host {
            out.str(b"host", host);
        }
        if let Some(tag) = tag {
            out.str(b"appname", tag.appname);
            if let Some(procid) = tag.procid {
                emit_procid(procid, out);
            }
        }
        if let Some(message) = message {
            out.str(b"message", message);
        }
        Ok(Parsed::Event)
    }

    /// A BSD or RFC 3339 timestamp at `pos` (after an optional Cisco clock mark), followed by
    /// a space, a Cisco `:` or the end; `None` if there is none or it is not a valid date.
    fn timestamp_3164(&mut self, line: &[u8], pos: usize) -> Option<Timestamp3164> {
        let mut pos = pos;
        if matches!(line.get(pos), Some(b'*' | b'.'))
            && line.get(pos + 1).is_some_and(u8::is_ascii_alphabetic)
        {
            pos += 1;
        }
        let mut c = Cursor::at(line, pos);
        let timestamp = match line.get(pos)? {
            b if b.is_ascii_alphabetic() => {
                let (year, mut civil) = bsd_datetime(&mut c)?;
                // Cisco: `Mar  1 18:46:11.123 UTC: %SYS-...`.
                let mut zone = c;
                if zone.eat(b' ') {
                    if let Some(offset) = zone_abbreviation_offset(zone.letters()) {
                        if zone.peek() == Some(b':') {
                            civil.offset = Some(offset);
                            c = zone;
                        }
                    }
                }
                let mut ctx = (self.year_context)();
                if let Some(offset) = civil.offset {
                    ctx.offset = offset;
                }
                resolve_bsd(year, civil, &ctx)?
            }
            b if b.is_ascii_digit() => {
                let civil = iso_datetime(&mut c)?;
                let offset = match civil.offset {
                    Some(offset) => offset,
                    None => (self.year_context)().offset,
                };
                civil.to_timestamp(offset)?
            }
            _ => return None,
        };
        let colon = match c.peek() {
            None | Some(b' ') => false,
            Some(b':') => {
                c.pos += 1;
                true
            }
            Some(_) => return None,
        };
        Some(Timestamp3164 {
            timestamp,
            end: c.pos,
            colon,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parsers::sink::parse_to_json;
    use crate::parsers::timestamp::parse_rfc3339;
    use serde_json::{json, Value};

    /// 2026-11-21T12:00:00Z, UTC.
    fn nov_2026() -> YearContext {
        YearContext::new(parse_rfc3339(b"2026-11-21T12:00:00Z").unwrap(), 0)
    }

    fn parser(mode: SyslogMode) -> SyslogParser {
        SyslogParser::with_year_context(mode, nov_2026)
    }

    fn parse(mode: SyslogMode, line: &[u8]) -> Result<Value, ParseError> {
        parse_to_json(&mut parser(mode), line).map(|v| v.expect("an event"))
    }

    const ALL_MODES: [SyslogMode; 3] = [SyslogMode::Auto, SyslogMode::Rfc5424, SyslogMode::Rfc3164];

    #[test]
    fn rfc5424_section_6_5_examples() {
        let cases = [
            (
                "<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - \u{feff}'su root' failed for lonvick on /dev/pts/8",
                json!({
                    "facility": "auth", "severity": "crit", "level": "fatal", "version": 1,
                    "timestamp": "2003-10-11T22:14:15.003Z", "host": "mymachine.example.com",
                    "appname": "su", "msgid": "ID47",
                    "message": "'su root' failed for lonvick on /dev/pts/8"
                }),
            ),
            (
                "<165>1 2003-08-24T05:14:15.000003-07:00 192.0.2.1 myproc 8710 - - %% It's time to make the do-nuts.",
                json!({
                    "facility": "local4", "severity": "notice", "level": "notice", "version": 1,
                    "timestamp": "2003-08-24T12:14:15.000003Z", "host": "192.0.2.1",
                    "appname": "myproc", "procid": 8710,
                    "message": "%% It's time to make the do-nuts."
                }),
            ),
            (
                "<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut=\"3\" eventSource=\"Application\" eventID=\"1011\"] \u{feff}An application event log entry...",
                json!({
                    "facility": "local4", "severity": "notice", "level": "notice", "version": 1,
                    "timestamp": "2003-10-11T22:14:15.003Z", "host": "mymachine.example.com",
                    "appname": "evntslog", "msgid": "ID47",
                    "structured_data": {
                        "exampleSDID@32473": {"iut": "3", "eventSource": "Application", "eventID": "1011"}
                    },
                    "message": "An application event log entry..."
                }),
            ),
            (
                "<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut=\"3\" eventSource=\"Application\" eventID=\"1011\"][examplePriority@32473 class=\"high\"]",
                json!({
                    "facility": "local4", "severity": "notice", "level": "notice", "version": 1,
                    "timestamp": "2003-10-11T22:14:15.003Z", "host": "mymachine.example.com",
                    "appname": "evntslog", "msgid": "ID47",
                    "structured_data": {
                        "exampleSDID@32473": {"iut": "3", "eventSource": "Application", "eventID": "1011"},
                        "examplePriority@32473": {"class": "high"}
                    }
                }),
            ),
        ];
        for (line, expected) in cases {
            for mode in [SyslogMode::Auto, SyslogMode::Rfc5424] {
                assert_eq!(
                    parse(mode, line.as_bytes()).unwrap(),
                    expected,
                    "{mode:?} {line}"
                );
            }
        }
    }

    #[test]
    fn rfc3164_section_5_4_examples() {
        let cases = [
            (
                "<34>Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick on /dev/pts/8",
                Ok(json!({
                    "facility": "auth", "severity": "crit", "level": "fatal",
                    "timestamp": "2026-10-11T22:14:15Z", "host": "mymachine", "appname": "su",
                    "message": "'su root' failed for lonvick on /dev/pts/8"
                })),
            ),
            // What the relay of example 2 sends on.
            (
                "<13>Feb  5 17:32:18 10.0.0.99 Use the BFG!",
                Ok(json!({
                    "facility": "user", "severity": "notice", "level": "notice",
                    "timestamp": "2026-02-05T17:32:18Z", "host": "10.0.0.99",
                    "message": "Use the BFG!"
                })),
            ),
            // `Aug 24 05:34:00` is a valid TIMESTAMP, so `CST` is the HOSTNAME, and `1987`
            // is no TAG (RFC 3164 5.4 reads it the same way).
            (
                "<165>Aug 24 05:34:00 CST 1987 mymachine myproc[10]: %% It's time to make the do-nuts.  %%  Ingredients: Mix=OK, Jelly=OK # Devices: Mixer=OK, Jelly_Injector=OK, Frier=OK # Transport: Conveyer1=OK, Conveyer2=OK # %%",
                Ok(json!({
                    "facility": "local4", "severity": "notice", "level": "notice",
                    "timestamp": "2026-08-24T05:34:00Z", "host": "CST",
                    "message": "1987 mymachine myproc[10]: %% It's time to make the do-nuts.  %%  Ingredients: Mix=OK, Jelly=OK # Devices: Mixer=OK, Jelly_Injector=OK, Frier=OK # Transport: Conveyer1=OK, Conveyer2=OK # %%"
                })),
            ),
            // No valid TIMESTAMP: everything after PRI is the message (RFC 3164 4.3.2).
            (
                "<0>1990 Oct 22 10:52:01 TZ-6 scapegoat.dmz.example.org 10.1.2.3 sched[0]: That's All Folks!",
                Ok(json!({
                    "facility": "kern", "severity": "emerg", "level": "fatal",
                    "message": "1990 Oct 22 10:52:01 TZ-6 scapegoat.dmz.example.org 10.1.2.3 sched[0]: That's All Folks!"
                })),
            ),
        ];
        for (line, expected) in cases {
            for mode in [SyslogMode::Auto, SyslogMode::Rfc3164] {
                assert_eq!(parse(mode, line.as_bytes()), expected, "{mode:?} {line}");
            }
        }
        // Example 2 as the original sender wrote it: no PRI, no header. RFC 3164 mode takes
        // it as a message; auto mode refuses arbitrary text.
        assert_eq!(
            parse(SyslogMode::Rfc3164, b"Use the BFG!"),
            Ok(json!({"message": "Use the BFG!"}))
        );
        assert_eq!(
            parse(SyslogMode::Auto, b"Use the BFG!"),
            Err(ERR_NOT_SYSLOG)
        );
        assert_eq!(parse(SyslogMode::Rfc5424, b"Use the BFG!"), Err(ERR_NO_PRI));
    }

    #[test]
    fn rfc3164_real_world_variants() {
        let cases: Vec<(&str, Value)> = vec![
            (
                "<38>Oct  1 08:00:00 host sshd[1234]: Accepted publickey for root from 10.0.0.5 port 50000",
                json!({"facility": "auth", "severity": "info", "level": "info", "timestamp": "2026-10-01T08:00:00Z",
                       "host": "host", "appname": "sshd", "procid": 1234,
                       "message": "Accepted publickey for root from 10.0.0.5 port 50000"}),
            ),
            (
                "<34>Oct 11 22:14:15 su: 'su root' failed",
                json!({"facility": "auth", "severity": "crit", "level": "fatal", "timestamp": "2026-10-11T22:14:15Z",
                       "appname": "su", "message": "'su root' failed"}),
            ),
            (
                "<30>Nov 21 11:59:59 systemd[1]: Started Session 4 of user root.",
                json!({"facility": "daemon", "severity": "info", "level": "info", "timestamp": "2026-11-21T11:59:59Z",
                       "appname": "systemd", "procid": 1, "message": "Started Session 4 of user root."}),
            ),
            (
                "<134>2026-11-21T10:00:00.123+02:00 web-1 nginx[77]: GET / 200",
                json!({"facility": "local0", "severity": "info", "level": "info", "timestamp": "2026-11-21T08:00:00.123Z",
                       "host": "web-1", "appname": "nginx", "procid": 77, "message": "GET / 200"}),
            ),
            (
                "<134>2026-11-21 10:00:00 web-1 app: no zone",
                json!({"facility": "local0", "severity": "info", "level": "info", "timestamp": "2026-11-21T10:00:00Z",
                       "host": "web-1", "appname": "app", "message": "no zone"}),
            ),
            (
                "<14>2026-11-21T11:00:00.123456+00:00 host app[1]: rsyslog high precision",
                json!({"facility": "user", "severity": "info", "level": "info", "timestamp": "2026-11-21T11:00:00.123456Z",
                       "host": "host", "appname": "app", "procid": 1, "message": "rsyslog high precision"}),
            ),
            (
                "<6>Nov 21 11:00:00 host kernel: [12345.678] eth0: link up",
                json!({"facility": "kern", "severity": "info", "level": "info", "timestamp": "2026-11-21T11:00:00Z",
                       "host": "host", "appname": "kernel", "message": "[12345.678] eth0: link up"}),
            ),
            (
                "<14>Nov 21 11:00:00 host just a message without tag",
                json!({"facility": "user", "severity": "info", "level": "info", "timestamp": "2026-11-21T11:00:00Z",
                       "host": "host", "message": "just a message without tag"}),
            ),
            (
                "<14>Oct 11 2025 22:14:15 host app: with year",
                json!({"facility": "user", "severity": "info", "level": "info", "timestamp": "2025-10-11T22:14:15Z",
                       "host": "host", "appname": "app", "message": "with year"}),
            ),
            (
                "<14>Oct 1 22:14:15 host app: single space",
                json!({"facility": "user", "severity": "info", "level": "info", "timestamp": "2026-10-01T22:14:15Z",
                       "host": "host", "appname": "app", "message": "single space"}),
            ),
            (
                "<14>Nov 21 11:00:00.250 host app: fraction",
                json!({"facility": "user", "severity": "info", "level": "info", "timestamp": "2026-11-21T11:00:00.250Z",
                       "host": "host", "appname": "app", "message": "fraction"}),
            ),
            (
                "<14>Nov 21 11:00:00 db-1.prod.example.com postgres[999]: checkpoint complete",
                json!({"facility": "user", "severity": "info", "level": "info", "timestamp": "2026-11-21T11:00:00Z",
                       "host": "db-1.prod.example.com", "appname": "postgres", "procid": 999, "message": "checkpoint complete"}),
            ),
            (
                "<14>Nov 21 11:00:00 2001:db8::1 app: ipv6",
                json!({"facility": "user", "severity": "info", "level": "info", "timestamp": "2026-11-21T11:00:00Z",
                       "host": "2001:db8::1", "appname": "app", "message": "ipv6"}),
            ),
            (
                "<14>Nov 21 11:00:00 fe80:: app: ipv6 ending in ::",
                json!({"facility": "user", "severity": "info", "level": "info", "timestamp": "2026-11-21T11:00:00Z",
                       "host": "fe80::", "appname": "app", "message": "ipv6 ending in ::"}),
            ),
            (
                "<189>Nov 21 11:00:00: %SYS-5-CONFIG_I: Configured from console by vty0 (10.0.0.1)",
                json!({"facility": "local7", "severity": "notice", "level": "notice", "timestamp": "2026-11-21T11:00:00Z",
                       "message": "%SYS-5-CONFIG_I: Configured from console by vty0 (10.0.0.1)"}),
            ),
            (
                "<189>123: *Nov 21 11:00:00.123 UTC: %LINK-3-UPDOWN: Interface Gi0/1, changed state to up",
                json!({"facility": "local7", "severity": "notice", "level": "notice", "timestamp": "2026-11-21T11:00:00.123Z",
                       "message": "%LINK-3-UPDOWN: Interface Gi0/1, changed state to up"}),
            ),
            (
                "<189>45: .Nov 21 11:00:00 CET: %SYS-5-RESTART: System restarted",
                json!({"facility": "local7", "severity": "notice", "level": "notice", "timestamp": "2026-11-21T10:00:00Z",
                       "message": "%SYS-5-RESTART: System restarted"}),
            ),
            (
                "<187>Nov 21 11:00:00 router1 %LINK-3-UPDOWN: Interface Gi0/1, changed state to down",
                json!({"facility": "local7", "severity": "err", "level": "error", "timestamp": "2026-11-21T11:00:00Z",
                       "host": "router1", "message": "%LINK-3-UPDOWN: Interface Gi0/1, changed state to down"}),
            ),
            (
                "<14>Nov 21 11:00:00 host app: trailing spaces   ",
                json!({"facility": "user", "severity": "info", "level": "info", "timestamp": "2026-11-21T11:00:00Z",
                       "host": "host", "appname": "app", "message": "trailing spaces"}),
            ),
            (
                "<14>Nov 21 11:00:00 host app: crlf\r\n",
                json!({"facility": "user", "severity": "info", "level": "info", "timestamp": "2026-11-21T11:00:00Z",
                       "host": "host", "appname": "app", "message": "crlf"}),
            ),
            (
                "<22>Nov 21 11:00:00 mail postfix/smtpd[4242]: connect from unknown[10.0.0.2]",
                json!({"facility": "mail", "severity": "info", "level": "info", "timestamp": "2026-11-21T11:00:00Z",
                       "host": "mail", "appname": "postfix/smtpd", "procid": 4242, "message": "connect from unknown[10.0.0.2]"}),
            ),
            (
                "<14>Nov 21 11:00:00 host app[worker-3]: string pid",
                json!({"facility": "user", "severity": "info", "level": "info", "timestamp": "2026-11-21T11:00:00Z",
                       "host": "host", "appname": "app", "procid": "worker-3", "message": "string pid"}),
            ),
            (
                "<14>Nov 21 11:00:00 host app[42] pid without colon",
                json!({"facility": "user", "severity": "info", "level": "info", "timestamp": "2026-11-21T11:00:00Z",
                       "host": "host", "appname": "app", "procid": 42, "message": "pid without colon"}),
            ),
            (
                "Nov 21 11:00:00 host CRON[555]: (root) CMD (run-parts /etc/cron.hourly)",
                json!({"timestamp": "2026-11-21T11:00:00Z", "host": "host", "appname": "CRON", "procid": 555,
                       "message": "(root) CMD (run-parts /etc/cron.hourly)"}),
            ),
            (
                "<14>Nov 21 11:00:00 host app: key: value: more",
                json!({"facility": "user", "severity": "info", "level": "info", "timestamp": "2026-11-21T11:00:00Z",
                       "host": "host", "appname": "app", "message": "key: value: more"}),
            ),
            (
                "<14>Nov 21 11:00:00 host app:",
                json!({"facility": "user", "severity": "info", "level": "info", "timestamp": "2026-11-21T11:00:00Z",
                       "host": "host", "appname": "app"}),
            ),
            (
                "<14>Nov 21 11:00:00",
                json!({"facility": "user", "severity": "info", "level": "info", "timestamp": "2026-11-21T11:00:00Z"}),
            ),
            (
                "<14>Nov 21 11:00:00 lonely",
                json!({"facility": "user", "severity": "info", "level": "info", "timestamp": "2026-11-21T11:00:00Z",
                       "message": "lonely"}),
            ),
            (
                "<14>Nov 21 11:00:00 host app: \u{feff}after a BOM",
                json!({"facility": "user", "severity": "info", "level": "info", "timestamp": "2026-11-21T11:00:00Z",
                       "host": "host", "appname": "app", "message": "after a BOM"}),
            ),
            (
                "<14>Nov 31 11:00:00 host app: no such day",
                json!({"facility": "user", "severity": "info", "level": "info",
                       "message": "Nov 31 11:00:00 host app: no such day"}),
            ),
            (
                "<14>Nov 21 11:00:00 host app: gr\u{fc}\u{df}e \u{65e5}\u{672c}",
                json!({"facility": "user", "severity": "info", "level": "info", "timestamp": "2026-11-21T11:00:00Z",
                       "host": "host", "appname": "app", "message": "gr\u{fc}\u{df}e \u{65e5}\u{672c}"}),
            ),
            (
                "<14>Nov 21 11:00:00 host http://example.com is down",
                json!({"facility": "user", "severity": "info", "level": "info", "timestamp": "2026-11-21T11:00:00Z",
                       "host": "host", "message": "http://example.com is down"}),
            ),
            (
                "<14>Nov 21 11:00:00 host  app: two spaces after host",
                json!({"facility": "user", "severity": "info", "level": "info", "timestamp": "2026-11-21T11:00:00Z",
                       "host": "host", "appname": "app", "message": "two spaces after host"}),
            ),
            (
                "<0>Nov 21 11:00:00 host kernel: panic",
                json!({"facility": "kern", "severity": "emerg", "level": "fatal", "timestamp": "2026-11-21T11:00:00Z",
                       "host": "host", "appname": "kernel", "message": "panic"}),
            ),
            (
                "<191>Nov 21 11:00:00 host app: debug",
                json!({"facility": "local7", "severity": "debug", "level": "debug", "timestamp": "2026-11-21T11:00:00Z",
                       "host": "host", "appname": "app", "message": "debug"}),
            ),
            (
                "<14>nov 21 11:00:00 host app: lower-case month",
                json!({"facility": "user", "severity": "info", "level": "info", "timestamp": "2026-11-21T11:00:00Z",
                       "host": "host", "appname": "app", "message": "lower-case month"}),
            ),
            (
                "<14>app: no header at all",
                json!({"facility": "user", "severity": "info", "level": "info", "appname": "app", "message": "no header at all"}),
            ),
            (
                "<14>Dec 24 18:00:00 host app: next month is this year",
                json!({"facility": "user", "severity": "info", "level": "info", "timestamp": "2026-12-24T18:00:00Z",
                       "host": "host", "appname": "app", "message": "next month is this year"}),
            ),
            (
                "<14>Nov 21 11:00:00 host app: \tindented\tmessage",
                json!({"facility": "user", "severity": "info", "level": "info", "timestamp": "2026-11-21T11:00:00Z",
                       "host": "host", "appname": "app", "message": "\tindented\tmessage"}),
            ),
            (
                "<78>Nov 21 11:00:01 cron-host CRON[8]: (root) CMD (true)",
                json!({"facility": "cron", "severity": "info", "level": "info", "timestamp": "2026-11-21T11:00:01Z",
                       "host": "cron-host", "appname": "CRON", "procid": 8, "message": "(root) CMD (true)"}),
            ),
        ];
        assert!(cases.len() >= 30);
        for (line, expected) in &cases {
            for mode in [SyslogMode::Auto, SyslogMode::Rfc3164] {
                assert_eq!(
                    parse(mode, line.as_bytes()).as_ref(),
                    Ok(expected),
                    "{mode:?} {line}"
                );
            }
        }
    }

    #[test]
    fn rfc3164_year_rollover_and_zone() {
        let january = YearContext::new(parse_rfc3339(b"2027-01-05T08:00:00Z").unwrap(), 0);
        let mut p = SyslogParser::with_year_context(SyslogMode::Auto, move || january);
        let v = parse_to_json(&mut p, b"<14>Dec 31 23:59:59 host app: late")
            .unwrap()
            .unwrap();
        assert_eq!(v["timestamp"], "2026-12-31T23:59:59Z");
        let v = parse_to_json(&mut p, b"<14>Jan  5 07:59:59 host app: early")
            .unwrap()
            .unwrap();
        assert_eq!(v["timestamp"], "2027-01-05T07:59:59Z");
        // Local time at +02:00.
        let plus_two = YearContext::new(nov_2026().now, 7200);
        let mut p = SyslogParser::with_year_context(SyslogMode::Auto, move || plus_two);
        let v = parse_to_json(&mut p, b"<14>Nov 21 11:00:00 host app: x")
            .unwrap()
            .unwrap();
        assert_eq!(v["timestamp"], "2026-11-21T09:00:00Z");
        // An explicit zone wins.
        let v = parse_to_json(&mut p, b"<14>2026-11-21T11:00:00Z host app: x")
            .unwrap()
            .unwrap();
        assert_eq!(v["timestamp"], "2026-11-21T11:00:00Z");
        let v = parse_to_json(
            &mut p,
            b"<14>1 2026-11-21T11:00:00 host app - - - zone-less 5424",
        )
        .unwrap()
        .unwrap();
        assert_eq!(v["timestamp"], "2026-11-21T09:00:00Z");
    }

    #[test]
    fn rfc5424_variants() {
        let cases: Vec<(&str, Value)> = vec![
            (
                "<14>1 - - - - - -",
                json!({"facility": "user", "severity": "info", "level": "info", "version": 1}),
            ),
            (
                "<14>1 - - - - - - ",
                json!({"facility": "user", "severity": "info", "level": "info", "version": 1}),
            ),
            (
                "<14>12 2026-11-21T11:00:00+0100 h a p m - msg",
                json!({"facility": "user", "severity": "info", "level": "info", "version": 12,
                       "timestamp": "2026-11-21T10:00:00Z", "host": "h", "appname": "a", "procid": "p",
                       "msgid": "m", "message": "msg"}),
            ),
            (
                r#"<14>1 - h a 007 - [id@1 a="x\"y" b="back\\slash" c="br\]acket" d="keep\n" e=""][empty] m"#,
                json!({"facility": "user", "severity": "info", "level": "info", "version": 1,
                       "host": "h", "appname": "a", "procid": 7,
                       "structured_data": {"id@1": {"a": "x\"y", "b": "back\\slash", "c": "br]acket", "d": "keep\\n", "e": ""}, "empty": {}},
                       "message": "m"}),
            ),
            (
                r#"<14>1 - h a - - [id q="=[ ]" r="a b"] m"#,
                json!({"facility": "user", "severity": "info", "level": "info", "version": 1,
                       "host": "h", "appname": "a",
                       "structured_data": {"id": {"q": "=[ ]", "r": "a b"}},
                       "message": "m"}),
            ),
            (
                "<14>1 - h a - - - message with  double  spaces and trailing space ",
                json!({"facility": "user", "severity": "info", "level": "info", "version": 1,
                       "host": "h", "appname": "a", "message": "message with  double  spaces and trailing space "}),
            ),
            (
                "<14>1 - h a - - - \u{feff}",
                json!({"facility": "user", "severity": "info", "level": "info", "version": 1,
                       "host": "h", "appname": "a"}),
            ),
            (
                "<134>1 2026-11-20T12:00:00.001Z web-127 cart-05 36332 req - {\"ts\":\"2026-11-20T12:00:00.001Z\",\"level\":\"info\"}",
                json!({"facility": "local0", "severity": "info", "level": "info", "version": 1,
                       "timestamp": "2026-11-20T12:00:00.001Z", "host": "web-127", "appname": "cart-05",
                       "procid": 36332, "msgid": "req", "message": "{\"ts\":\"2026-11-20T12:00:00.001Z\",\"level\":\"info\"}"}),
            ),
        ];
        for (line, expected) in &cases {
            for mode in [SyslogMode::Auto, SyslogMode::Rfc5424] {
                assert_eq!(
                    parse(mode, line.as_bytes()).as_ref(),
                    Ok(expected),
                    "{mode:?} {line}"
                );
            }
        }
        // Unescaped `]` inside a value: the RFC says it must be escaped; we accept it
        // (the closing quote ends the value).
        assert_eq!(
            parse(SyslogMode::Rfc5424, br#"<14>1 - h a - - [id k="a]b"]"#).unwrap()
                ["structured_data"],
            json!({"id": {"k": "a]b"}})
        );
    }

    #[test]
    fn errors_say_why() {
        use SyslogMode::*;
        let cases: &[(SyslogMode, &[u8], ParseError)] = &[
            (Rfc5424, b"no pri", ERR_NO_PRI),
            (Rfc5424, b"", ERR_NO_PRI),
            (Auto, b"", ERR_NOT_SYSLOG),
            (Auto, b"just text", ERR_NOT_SYSLOG),
            (Auto, b"\x00\x01\x02binary", ERR_NOT_SYSLOG),
            (Auto, b"<192>Nov 21 11:00:00 host app: x", ERR_PRI_RANGE),
            (Rfc3164, b"<999>Nov 21 11:00:00 host app: x", ERR_PRI_RANGE),
            (Auto, b"<1234>1 - - - - - -", ERR_PRI),
            (Auto, b"<>x", ERR_PRI),
            (Auto, b"<34", ERR_PRI),
            (Rfc3164, b"<3Nov 10 14:38:52 host app: x", ERR_PRI),
            (Auto, b"<34>", ERR_NOTHING_AFTER_PRI),
            (Rfc3164, b"<34>\r\n", ERR_NOTHING_AFTER_PRI),
            (Rfc5424, b"<34>", ERR_VERSION),
            (Rfc5424, b"<34>01 - - - - - -", ERR_VERSION),
            (Rfc5424, b"<34>Oct 11 22:14:15 host app: x", ERR_VERSION),
            (Rfc5424, b"<34>1", ERR_VERSION),
            (Auto, b"<34>1 ", ERR_TRUNCATED),
            (Auto, b"<34>1 2003-10-11T22:14:15.003Z", ERR_TRUNCATED),
            (
                Auto,
                b"<34>1 2003-10-11T22:14:15.003Z host app - ID47",
                ERR_TRUNCATED,
            ),
            (
                Auto,
                b"<34>1 2003-10-11T22:14:15.003Z host app - ID47 ",
                ERR_TRUNCATED,
            ),
            (
                Auto,
                b"<34>1 2003-13-11T22:14:15.003Z host app - - - msg",
                ERR_TIMESTAMP,
            ),
            (
                Auto,
                b"<34>1 2003-02-30T22:14:15Z host app - - - msg",
                ERR_TIMESTAMP,
            ),
            (
                Auto,
                b"<34>1 Oct 11 22:14:15 host app - - - msg",
                ERR_TIMESTAMP,
            ),
            (Auto, b"<34>1 - host\tx app - - - msg", ERR_HEADER_BYTE),
            (Auto, b"<34>1 - h\xc3\xa9 app - - - msg", ERR_HEADER_BYTE),
            (Auto, b"<34>1 -  host app - - - msg", ERR_EMPTY_FIELD),
            (Auto, b"<34>1 - h a - - x msg", ERR_SD),
            (Auto, b"<34>1 - h a - - [id x=1] m", ERR_SD),
            (Auto, b"<34>1 - h a - - [id  x=\"1\"] m", ERR_SD),
            (Auto, b"<34>1 - h a - - [ x=\"1\"] m", ERR_SD),
            (Auto, b"<34>1 - h a - - [id x=\"1\" ] m", ERR_SD),
            (Auto, b"<34>1 - h a - - [id x=\"1] m", ERR_SD_UNTERMINATED),
            (Auto, b"<34>1 - h a - - [id x=\"1\\\"", ERR_SD_UNTERMINATED),
            (Auto, b"<34>1 - h a - - [id x=\"1\\", ERR_SD_UNTERMINATED),
            (Auto, b"<34>1 - h a - - [id", ERR_SD_UNTERMINATED),
            (Auto, b"<34>1 - h a - - [id x=\"1\"]m", ERR_SPACE_AFTER_SD),
            (Auto, b"<34>1 - h a - - -m", ERR_SPACE_AFTER_SD),
            (Auto, b"<34>1 - h a - - [id x=\"\xff\"] m", ERR_SD_UTF8),
            (Auto, b"<34>1 - h a - - - \xff\xfe", ERR_MSG_UTF8),
            (Auto, b"<34>1 - h a - - - ok then \xc3", ERR_MSG_UTF8),
            (Auto, b"<34>Oct 11 22:14:15 host app: \xff", ERR_MSG_UTF8),
            (Rfc3164, b"\xff\xfe binary", ERR_MSG_UTF8),
            (Rfc3164, b"", ERR_EMPTY),
            (Rfc3164, b"  \t \r\n", ERR_EMPTY),
            (Rfc3164, b"\xef\xbb\xbf", ERR_EMPTY),
        ];
        for (mode, line, reason) in cases {
            assert_eq!(
                parse(*mode, line),
                Err(*reason),
                "{mode:?} {}",
                String::from_utf8_lossy(line)
            );
        }
    }

    /// Values that lie in the line are passed as spans of it.
    #[test]
    fn values_are_spans_of_the_line() {
        #[derive(Default)]
        struct SpanSink {
            line: (usize, usize),
            inside: Vec<(String, bool)>,
        }
        impl SpanSink {
            fn record(&mut self, key: &[u8], value: &[u8]) {
                let p = value.as_ptr() as usize;
                let inside = p >= self.line.0 && p + value.len() <= self.line.1;
                self.inside
                    .push((String::from_utf8_lossy(key).into_owned(), inside));
            }
        }
        impl FieldSink for SpanSink {
            fn str(&mut self, key: &[u8], value: &[u8]) {
                self.record(key, value);
            }
            fn str_json_escaped(&mut self, key: &[u8], value: &[u8]) {
                self.record(key, value);
            }
            fn int(&mut self, _: &[u8], _: i64) {}
            fn float(&mut self, _: &[u8], _: f64) {}
            fn bool(&mut self, _: &[u8], _: bool) {}
            fn null(&mut self, _: &[u8]) {}
            fn timestamp(&mut self, _: &[u8], _: Timestamp) {}
            fn begin_object(&mut self, _: &[u8]) {}
            fn end_object(&mut self) {}
        }
        let line: &[u8] = br#"<165>1 2003-10-11T22:14:15.003Z host app p1 ID47 [id a="plain" b="esc\"aped"] the message"#;
        let mut sink = SpanSink {
            line: (line.as_ptr() as usize, line.as_ptr() as usize + line.len()),
            ..SpanSink::default()
        };
        parser(SyslogMode::Auto).parse(line, &mut sink).unwrap();
        let expected = [
            ("facility", false),
            ("severity", false),
            ("level", false),
            // Already canonical RFC 3339: kept as the line's bytes.
            ("timestamp", true),
            ("host", true),
            ("appname", true),
            ("procid", true),
            ("msgid", true),
            ("a", true),
            ("b", false),
            ("message", true),
        ];
        let got: Vec<(&str, bool)> = sink.inside.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        assert_eq!(got, expected);
    }

    #[test]
    fn every_truncation_of_valid_lines_is_handled() {
        let lines: &[&[u8]] = &[
            "<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut=\"3\" eventSource=\"Appl\\\"ication\" eventID=\"1011\"][examplePriority@32473 class=\"high\"] \u{feff}An application event log entry...".as_bytes(),
            b"<165>1 2003-08-24T05:14:15.000003-07:00 192.0.2.1 myproc 8710 - - %% It's time to make the do-nuts.",
            b"<189>123: *Nov 21 11:00:00.123 UTC: %LINK-3-UPDOWN: Interface Gi0/1, changed state to up",
            b"<22>Nov 21 11:00:00 mail postfix/smtpd[4242]: connect from unknown[10.0.0.2]",
            b"<134>2026-11-21T10:00:00.123+02:00 web-1 nginx[77]: GET / 200",
            "<14>Oct 11 2025 22:14:15 h\u{e9}st app[x]: gr\u{fc}\u{df}e".as_bytes(),
        ];
        for line in lines {
            for mode in ALL_MODES {
                let mut p = parser(mode);
                for cut in 0..=line.len() {
                    let _ = parse_to_json(&mut p, &line[..cut]);
                    let _ = parse_to_json(&mut p, &line[cut..]);
                }
            }
        }
    }

    #[test]
    fn one_mebibyte_lines() {
        let big = "x".repeat(1 << 20);
        let line = format!("<14>1 2026-11-21T11:00:00Z h a - - [id v=\"{big}\"] {big}");
        let v = parse(SyslogMode::Auto, line.as_bytes()).unwrap();
        assert_eq!(v["message"].as_str().unwrap().len(), 1 << 20);
        assert_eq!(
            v["structured_data"]["id"]["v"].as_str().unwrap().len(),
            1 << 20
        );
        let line = format!("<14>Nov 21 11:00:00 host app: {big}");
        let v = parse(SyslogMode::Auto, line.as_bytes()).unwrap();
        assert_eq!(v["message"].as_str().unwrap().len(), 1 << 20);
        let junk = vec![0xffu8; 1 << 20];
        for mode in ALL_MODES {
            assert!(parse(mode, &junk).is_err());
        }
        let mut unterminated = b"<14>1 - h a - - [id v=\"".to_vec();
        unterminated.extend_from_slice(&vec![b'\\'; 1 << 20]);
        assert_eq!(
            parse(SyslogMode::Auto, &unterminated),
            Err(ERR_SD_UNTERMINATED)
        );
    }

    #[test]
    fn options_deserialize() {
        let o: SyslogOptions = serde_json::from_value(json!({})).unwrap();
        assert_eq!(
            o,
            SyslogOptions {
                mode: SyslogMode::Auto,
                timezone: None
            }
        );
        let o: SyslogOptions =
            serde_json::from_value(json!({"mode": "rfc3164", "timezone": "+02:00"})).unwrap();
        assert_eq!(o.mode, SyslogMode::Rfc3164);
        assert!(SyslogParser::new(&o).is_ok());
        assert!(serde_json::from_value::<SyslogOptions>(json!({"mode": "bsd"})).is_err());
        assert!(serde_json::from_value::<SyslogOptions>(json!({"other": 1})).is_err());
        let bad = SyslogOptions {
            mode: SyslogMode::Auto,
            timezone: Some("Mars".into()),
        };
        assert!(SyslogParser::new(&bad).is_err());
        // The system clock: a BSD line gets a timestamp of this year or last.
        let mut p = SyslogParser::new(&SyslogOptions::default()).unwrap();
        let v = parse_to_json(&mut p, b"<14>Jun  1 00:00:00 host app: x")
            .unwrap()
            .unwrap();
        assert!(v["timestamp"]
            .as_str()
            .unwrap()
            .ends_with("-06-01T00:00:00Z"));
        let local = SyslogOptions {
            mode: SyslogMode::Auto,
            timezone: Some("local".into()),
        };
        let mut p = SyslogParser::new(&local).unwrap();
        assert!(parse_to_json(&mut p, b"<14>Jun  1 00:00:00 host app: x")
            .unwrap()
            .unwrap()["timestamp"]
            .is_string());
    }

    #[test]
    fn unescaping() {
        let mut out = Vec::new();
        for (raw, expected) in [
            (&br#"plain"#[..], &b"plain"[..]),
            (br#"a\"b"#, br#"a"b"#),
            (br#"a\\b"#, br#"a\b"#),
            (br#"a\]b"#, br#"a]b"#),
            (br#"a\nb"#, br#"a\nb"#),
            (br#"\\\""#, br#"\""#),
            (br#"\"#, br#"\"#),
            (br#""#, br#""#),
        ] {
            unescape_sd_value(raw, &mut out);
            assert_eq!(out, expected, "{}", String::from_utf8_lossy(raw));
        }
    }

    mod prop {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            /// Keeping a timestamp's original bytes is only allowed when rendering it again
            /// would give exactly those bytes.
            #[test]
            fn kept_timestamps_are_the_rendered_ones(
                y in 1970u32..2100, mo in 1u32..13, d in 1u32..29, h in 0u32..24,
                mi in 0u32..60, sec in 0u32..61, digits in proptest::sample::select(vec![0usize, 1, 3, 5, 6, 9]),
                frac in 0u32..1_000_000_000, zulu in any::<bool>(),
            ) {
                let mut text = format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{sec:02}");
                if digits > 0 {
                    let f = format!("{frac:09}");
                    text.push('.');
                    text.push_str(&f[..digits]);
                }
                text.push_str(if zulu { "Z" } else { "+00:00" });
                let civil = rfc3339_civil(text.as_bytes()).unwrap();
                let t = civil.to_timestamp(0).unwrap();
                let mut rendered = Vec::new();
                t.write_rfc3339(&mut rendered);
                if is_canonical_rfc3339(text.as_bytes(), t) {
                    prop_assert_eq!(String::from_utf8(rendered).unwrap(), text);
                } else {
                    prop_assert!(rendered != text.as_bytes() || !zulu);
                }
            }
        }

        /// A generated RFC 5424 message and the fields it should parse to.
        #[derive(Debug, Clone)]
        struct Message {
            pri: u8,
            version: u32,
            timestamp: Option<(i64, u32, i32)>,
            host: Option<String>,
            appname: Option<String>,
            procid: Option<String>,
            msgid: Option<String>,
            sd: Vec<(String, Vec<(String, String)>)>,
            message: Option<String>,
        }

        fn header_token() -> impl Strategy<Value = Option<String>> {
            prop_oneof![
                1 => Just(None),
                4 => "[!-~]{1,24}".prop_filter("not the NILVALUE", |s| s != "-").prop_map(Some),
            ]
        }

        fn sd_name() -> impl Strategy<Value = String> {
            "[a-zA-Z0-9@._!#$%&'()*+,/:;<>?^{|}~-]{1,16}"
        }

        fn sd_value() -> impl Strategy<Value = String> {
            proptest::collection::vec(
                prop_oneof![3 => any::<char>(), 1 => Just('"'), 1 => Just('\\'), 1 => Just(']')],
                0..16,
            )
            .prop_map(|chars| chars.into_iter().collect())
        }

        fn sd() -> impl Strategy<Value = Vec<(String, Vec<(String, String)>)>> {
            proptest::collection::btree_map(
                sd_name(),
                proptest::collection::btree_map(sd_name(), sd_value(), 0..4),
                0..4,
            )
            .prop_map(|m| {
                m.into_iter()
                    .map(|(k, v)| (k, v.into_iter().collect()))
                    .collect()
            })
        }

        fn message_text() -> impl Strategy<Value = Option<String>> {
            prop_oneof![
                1 => Just(None),
                4 => any::<String>()
                    .prop_filter("no BOM, no line end", |s| {
                        !s.starts_with('\u{feff}') && !s.ends_with(['\r', '\n'])
                    })
                    .prop_map(Some),
            ]
        }

        fn message() -> impl Strategy<Value = Message> {
            (
                (0u8..=191, 1u32..=999),
                proptest::option::of((
                    -2_000_000_000i64..7_000_000_000,
                    0u32..1_000_000_000,
                    -14 * 60..=14 * 60i32,
                )),
                (
                    header_token(),
                    header_token(),
                    header_token(),
                    header_token(),
                ),
                sd(),
                message_text(),
            )
                .prop_map(
                    |((pri, version), timestamp, (host, appname, procid, msgid), sd, message)| {
                        Message {
                            pri,
                            version,
                            timestamp,
                            host,
                            appname,
                            procid,
                            msgid,
                            sd,
                            message,
                        }
                    },
                )
        }

        fn escape(value: &str) -> String {
            let mut out = String::new();
            for c in value.chars() {
                if matches!(c, '"' | '\\' | ']') {
                    out.push('\\');
                }
                out.push(c);
            }
            out
        }

        impl Message {
            fn render(&self, fraction_digits: usize) -> (String, Option<String>) {
                let nil = |f: &Option<String>| f.clone().unwrap_or_else(|| "-".into());
                let (timestamp, expected_time) = match self.timestamp {
                    None => ("-".to_string(), None),
                    Some((secs, nanos, offset_minutes)) => {
                        let scale = 10u32.pow(9 - fraction_digits as u32);
                        let nanos = nanos / scale * scale;
                        let instant =
                            Timestamp::from_unix_nanos(secs * 1_000_000_000 + nanos as i64);
                        let local = Timestamp::from_unix_nanos(
                            instant.unix_nanos + offset_minutes as i64 * 60_000_000_000,
                        );
                        let (y, mo, d, h, mi, s, _) = local.to_civil();
                        let fraction = if fraction_digits == 0 {
                            String::new()
                        } else {
                            format!(".{:0w$}", nanos / scale, w = fraction_digits)
                        };
                        let zone = if offset_minutes == 0 {
                            "Z".to_string()
                        } else {
                            let sign = if offset_minutes < 0 { '-' } else { '+' };
                            format!(
                                "{sign}{:02}:{:02}",
                                offset_minutes.abs() / 60,
                                offset_minutes.abs() % 60
                            )
                        };
                        let mut rendered = Vec::new();
                        instant.write_rfc3339(&mut rendered);
                        (
                            format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}{fraction}{zone}"),
                            Some(String::from_utf8(rendered).unwrap()),
                        )
                    }
                };
                let sd = if self.sd.is_empty() {
                    "-".to_string()
                } else {
                    self.sd
                        .iter()
                        .map(|(id, params)| {
                            let params: String = params
                                .iter()
                                .map(|(k, v)| format!(" {k}=\"{}\"", escape(v)))
                                .collect();
                            format!("[{id}{params}]")
                        })
                        .collect()
                };
                let mut line = format!(
                    "<{}>{} {timestamp} {} {} {} {} {sd}",
                    self.pri,
                    self.version,
                    nil(&self.host),
                    nil(&self.appname),
                    nil(&self.procid),
                    nil(&self.msgid)
                );
                if let Some(m) = &self.message {
                    line.push(' ');
                    line.push_str(m);
                }
                (line, expected_time)
            }

            fn expected(&self, time: Option<String>) -> Value {
                let mut v = json!({
                    "facility": FACILITY[self.pri as usize >> 3],
                    "severity": SEVERITY[self.pri as usize & 7],
                    "level": severity_level(self.pri & 7),
                    "version": self.version,
                });
                let map = v.as_object_mut().unwrap();
                if let Some(t) = time {
                    map.insert("timestamp".into(), t.into());
                }
                for (key, field) in [
                    ("host", &self.host),
                    ("appname", &self.appname),
                    ("msgid", &self.msgid),
                ] {
                    if let Some(f) = field {
                        map.insert(key.into(), f.clone().into());
                    }
                }
                if let Some(p) = &self.procid {
                    let value = match decimal(p.as_bytes()) {
                        Some(n) => n.into(),
                        None => p.clone().into(),
                    };
                    map.insert("procid".into(), value);
                }
                if !self.sd.is_empty() {
                    let sd: serde_json::Map<String, Value> = self
                        .sd
                        .iter()
                        .map(|(id, params)| {
                            let params: serde_json::Map<String, Value> = params
                                .iter()
                                .map(|(k, v)| (k.clone(), v.clone().into()))
                                .collect();
                            (id.clone(), Value::Object(params))
                        })
                        .collect();
                    map.insert("structured_data".into(), Value::Object(sd));
                }
                if let Some(m) = self.message.as_ref().filter(|m| !m.is_empty()) {
                    map.insert("message".into(), m.clone().into());
                }
                v
            }
        }

        const FACILITY: [&str; 24] = crate::parsers::level::FACILITY_NAMES;
        const SEVERITY: [&str; 8] = crate::parsers::level::SEVERITY_NAMES;

        proptest! {
            #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

            #[test]
            fn rfc5424_round_trip(m in message(), digits in 0usize..=9) {
                let (line, time) = m.render(digits);
                let expected = m.expected(time);
                for mode in [SyslogMode::Auto, SyslogMode::Rfc5424] {
                    let got = parse(mode, line.as_bytes());
                    prop_assert_eq!(got.as_ref(), Ok(&expected), "{:?} {}", mode, line);
                }
            }

            #[test]
            fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
                for mode in ALL_MODES {
                    let _ = parse_to_json(&mut parser(mode), &bytes);
                }
            }

            #[test]
            fn random_text_after_a_pri_never_panics(pri in 0u16..300, body in "[ -~\\[\\]\"\\\\]{0,120}", tail in proptest::collection::vec(any::<u8>(), 0..16)) {
                let mut line = format!("<{pri}>").into_bytes();
                line.extend_from_slice(body.as_bytes());
                line.extend_from_slice(&tail);
                for mode in ALL_MODES {
                    let _ = parse_to_json(&mut parser(mode), &line);
                }
                let mut with_header = b"<14>1 - h a - - ".to_vec();
                with_header.extend_from_slice(body.as_bytes());
                with_header.extend_from_slice(&tail);
                let _ = parse_to_json(&mut parser(SyslogMode::Auto), &with_header);
            }
        }
    }
}

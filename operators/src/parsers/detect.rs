//! Guessing a line's format (`format = "auto"`) from cheap checks on its first bytes.
//!
//! In order: `{` (after blanks or a byte order mark) is JSON; `<PRI>1 ` is RFC 5424;
//! `<PRI>` followed by a month name or an ISO date, or a line that starts with a BSD
//! timestamp (`Oct 11 22:14:15 `), is RFC 3164; an RFC 3339 timestamp followed by
//! ` stdout `/` stderr ` and a `P`/`F` tag is CRI; `host ident user [dd/...` is an
//! Apache/nginx access log (combined when it ends with a quote, else common); at least two
//! `key=value` tokens, and no more bare words than pairs, within the first 4 KiB is logfmt;
//! anything else is plain text. The checks never look past the first 4 KiB and never fail.

use super::timestamp::parse_rfc3339_prefix;

/// What [`detect_format`] recognised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DetectedFormat {
    Json,
    Syslog5424,
    Syslog3164,
    ApacheCombined,
    ApacheCommon,
    Logfmt,
    Cri,
    Plain,
}

/// How far into a line the checks look.
const SCAN_LIMIT: usize = 4096;

/// Guesses the format of one line.
pub fn detect_format(line: &[u8]) -> DetectedFormat {
    // JSON may follow a byte order mark and blanks; the other formats start at the start.
    let json_start = line
        .strip_prefix(b"\xEF\xBB\xBF")
        .unwrap_or(line)
        .iter()
        .find(|&&b| !matches!(b, b' ' | b'\t'));
    if json_start == Some(&b'{') {
        return DetectedFormat::Json;
    }
    if let Some(format) = syslog_with_pri(line) {
        return format;
    }
    if is_cri(line) {
        return DetectedFormat::Cri;
    }
    if starts_with_bsd_timestamp(line) {
        return DetectedFormat::Syslog3164;
    }
    if let Some(format) = apache(line) {
        return format;
    }
    if is_logfmt(line.get(..SCAN_LIMIT).unwrap_or(line)) {
        return DetectedFormat::Logfmt;
    }
    DetectedFormat::Plain
}

/// `<PRI>1 ...` or `<PRI>Oct ...` / `<PRI>2026-11-21...`.
fn syslog_with_pri(line: &[u8]) -> Option<DetectedFormat> {
    let rest = line.strip_prefix(b"<")?;
    let digits = rest
        .iter()
        .take(4)
        .take_while(|b| b.is_ascii_digit())
        .count();
    if !(1..=3).contains(&digits) || rest.get(digits) != Some(&b'>') {
        return None;
    }
    let pri: u32 = rest[..digits]
        .iter()
        .fold(0, |n, &d| n * 10 + (d - b'0') as u32);
    if pri > 191 {
        return None;
    }
    let after = &rest[digits + 1..];
    if after.starts_with(b"1 ") {
        return Some(DetectedFormat::Syslog5424);
    }
    if starts_with_month(after) || starts_with_iso_date(after) {
        return Some(DetectedFormat::Syslog3164);
    }
    None
}

/// A three-letter English month name followed by a space.
fn starts_with_month(s: &[u8]) -> bool {
    const MONTHS: [&[u8; 3]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    s.get(3) == Some(&b' ') && MONTHS.iter().any(|m| s.starts_with(*m))
}

/// `YYYY-MM-DD`.
fn starts_with_iso_date(s: &[u8]) -> bool {
    let shape = b"dddd-dd-dd";
    s.len() >= shape.len()
        && s.iter().zip(shape).all(|(&b, &want)| match want {
            b'd' => b.is_ascii_digit(),
            other => b == other,
        })
}

/// `Oct 11 22:14:15 ` or `Oct  1 22:14:15 `.
fn starts_with_bsd_timestamp(s: &[u8]) -> bool {
    let shape = b"Mmm dd dd:dd:dd ";
    if !starts_with_month(s) || s.len() < shape.len() {
        return false;
    }
    s.iter()
        .zip(shape)
        .enumerate()
        .skip(4)
        .all(|(i, (&b, &want))| match want {
            // The day may be space-padded.
            b'd' if i == 4 => b == b' ' || b.is_ascii_digit(),
            b'd' => b.is_ascii_digit(),
            other => b == other,
        })
}

/// `<RFC 3339> stdout|stderr P|F...`.
fn is_cri(line: &[u8]) -> bool {
    let Some((_, used)) = parse_rfc3339_prefix(line) else {
        return false;
    };
    let rest = &line[used..];
    let Some(tag) = rest
        .strip_prefix(b" stdout ")
        .or_else(|| rest.strip_prefix(b" stderr "))
    else {
        return false;
    };
    matches!(tag.first(), Some(b'P' | b'F')) && matches!(tag.get(1), None | Some(b' ' | b':'))
}

/// `host ident user [dd/...`; combined when the line ends with a quote.
fn apache(line: &[u8]) -> Option<DetectedFormat> {
    let host_len = line
        .iter()
        .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b':' | b'-' | b'_'))
        .count();
    if host_len == 0 {
        return None;
    }
    let mut rest = line[host_len..].strip_prefix(b" ")?;
    // ident and user: words without spaces.
    for _ in 0..2 {
        let word = rest.iter().take_while(|&&b| b != b' ').count();
        if word == 0 {
            return None;
        }
        rest = rest[word..].strip_prefix(b" ")?;
    }
    let date = rest.strip_prefix(b"[")?;
    if !(date.len() > 3 && date[..2].iter().all(u8::is_ascii_digit) && date[2] == b'/') {
        return None;
    }
    let end = line
        .iter()
        .rposition(|&b| !matches!(b, b' ' | b'\t' | b'\r' | b'\n'))?;
    Some(if line[end] == b'"' {
        DetectedFormat::ApacheCombined
    } else {
        DetectedFormat::ApacheCommon
    })
}

/// At least two `key=value` tokens and no more bare words than pairs. Keys are identifier
/// characters; a quoted value may hold blanks.
fn is_logfmt(line: &[u8]) -> bool {
    let mut pairs = 0usize;
    let mut words = 0usize;
    let mut i = 0;
    while i < line.len() {
        while line.get(i).is_some_and(|&b| b == b' ' || b == b'\t') {
            i += 1;
        }
        let Some(&first) = line.get(i) else {
            break;
        };
        let key_len = line[i..]
            .iter()
            .take_while(|b| {
                b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b'/' | b'@')
            })
            .count();
        i += key_len;
        if key_len > 0 && first != b'-' && line.get(i) == Some(&b'=') {
            pairs += 1;
            i += 1;
            if line.get(i) == Some(&b'"') {
                // Skip the quoted value (escapes included).
                i += 1;
                while let Some(&b) = line.get(i) {
                    i += if b == b'\\' { 2 } else { 1 };
                    if b == b'"' {
                        break;
                    }
                }
                continue;
            }
        } else {
            words += 1;
        }
        while line.get(i).is_some_and(|&b| b != b' ' && b != b'\t') {
            i += 1;
        }
    }
    pairs >= 2 && pairs >= words
}

#[cfg(test)]
mod tests;

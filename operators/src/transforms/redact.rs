//! `type = "redact"`: masks secrets and personal data inside string fields.
//!
//! Three kinds of matchers, all run over each configured field's text (unescaped):
//! - `literals`: exact strings (one Aho-Corasick automaton, leftmost-longest;
//!   `case_insensitive` folds ASCII letters only);
//! - `patterns`: regular expressions (regex-automata's meta engine; each compiled once, and
//!   with several patterns one combined regex first rejects texts none of them matches);
//! - `detectors`: built-in scanners for `email`, `credit_card` (13-19 digits, single spaces or
//!   dashes between groups, Luhn-valid only), `ipv4`, `ipv6`, `bearer_token` (the token after
//!   `Bearer `; the word itself stays), `aws_access_key` (`AKIA`/`ASIA` + 16 of `A-Z0-9`) and
//!   `jwt` (`eyJ…` followed by two more base64url segments).
//!
//! Every match of every matcher is collected, overlapping or touching spans are merged, and
//! each merged span is replaced by `replace` (default `[REDACTED]`) or, with `mode = "hash"`,
//! by `sha256:` and the first 16 hex digits of HMAC-SHA256(`hash_key`, matched text): the
//! same secret always gives the same mark, so redacted values can still be correlated.
//!
//! A changed field is written to that event alone ([`Batch::set_event_field`]). An event
//! nothing matches costs the scans and nothing else: no allocation, no write.

use aho_corasick::{AhoCorasick, MatchKind};
use hmac::{Hmac, Mac};
use regex_automata::meta::Regex;
use serde::Deserialize;
use sha2::Sha256;
use sluice_engine::batch::Batch;
use sluice_engine::metrics::ComponentMetrics;
use sluice_engine::path::FieldPath;
use sluice_engine::pipeline::{Emitter, Transform, PORT_MAIN};
use sluice_engine::value::unescape_json_str;
use sluice_engine::{Value, ValueRef};
use std::sync::Arc;

/// A built-in detector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Detector {
    Email,
    CreditCard,
    Ipv4,
    Ipv6,
    BearerToken,
    AwsAccessKey,
    Jwt,
}

impl Detector {
    pub const ALL: &'static [Detector] = &[
        Detector::Email,
        Detector::CreditCard,
        Detector::Ipv4,
        Detector::Ipv6,
        Detector::BearerToken,
        Detector::AwsAccessKey,
        Detector::Jwt,
    ];
}

/// What a match is replaced with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum RedactMode {
    /// The fixed text `replace`.
    #[default]
    Replace,
    /// `sha256:` + 16 hex digits of HMAC-SHA256 keyed with `hash_key`.
    Hash,
}

fn default_fields() -> Vec<String> {
    vec!["message".into()]
}

fn default_replace() -> String {
    "[REDACTED]".into()
}

/// Options of the `redact` transform.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedactConfig {
    /// The string fields to scan (default `["message"]`); other value types are skipped.
    #[serde(default = "default_fields")]
    pub fields: Vec<String>,
    /// Exact strings to redact.
    #[serde(default)]
    pub literals: Vec<String>,
    /// Match `literals` ignoring ASCII case.
    #[serde(default)]
    pub case_insensitive: bool,
    /// Regular expressions to redact (use `(?i)` for case-insensitive ones).
    #[serde(default)]
    pub patterns: Vec<String>,
    /// Built-in detectors.
    #[serde(default)]
    pub detectors: Vec<Detector>,
    #[serde(default)]
    pub mode: RedactMode,
    /// The replacement text in `replace` mode.
    #[serde(default = "default_replace")]
    pub replace: String,
    /// The HMAC key in `hash` mode.
    #[serde(default)]
    pub hash_key: Option<String>,
}

impl Default for RedactConfig {
    fn default() -> Self {
        RedactConfig {
            fields: default_fields(),
            literals: Vec::new(),
            case_insensitive: false,
            patterns: Vec::new(),
            detectors: Vec::new(),
            mode: RedactMode::Replace,
            replace: default_replace(),
            hash_key: None,
        }
    }
}

impl RedactConfig {
    pub const NAMED_OUTPUTS: &'static [&'static str] = &[];

    /// Stateless per event: no key.
    pub fn key_fields(&self) -> Vec<String> {
        Vec::new()
    }

    /// Compiles the matchers.
    pub fn redactor(&self) -> Result<Redactor, String> {
        if self.literals.is_empty() && self.patterns.is_empty() && self.detectors.is_empty() {
            return Err(
                "nothing to redact: give at least one of `literals`, `patterns`, `detectors`"
                    .into(),
            );
        }
        if self.literals.iter().any(|l| l.is_empty()) {
            return Err("`literals`: an empty string cannot be redacted".into());
        }
        let literals = if self.literals.is_empty() {
            None
        } else {
            Some(
                AhoCorasick::builder()
                    .match_kind(MatchKind::LeftmostLongest)
                    .ascii_case_insensitive(self.case_insensitive)
                    .build(&self.literals)
                    .map_err(|e| format!("`literals`: {e}"))?,
            )
        };
        let mut patterns = Vec::with_capacity(self.patterns.len());
        for p in &self.patterns {
            patterns.push(Regex::new(p).map_err(|e| format!("invalid pattern `{p}`: {e}"))?);
        }
        let any_pattern = if patterns.len() > 1 {
            Some(Regex::new_many(&self.patterns).map_err(|e| format!("`patterns`: {e}"))?)
        } else {
            None
        };
        let replacement = match (self.mode, &self.hash_key) {
            (RedactMode::Replace, None) => Replacement::Text(self.replace.clone()),
            (RedactMode::Replace, Some(_)) => {
                return Err("`hash_key` is only used with `mode = \"hash\"`".into())
            }
            (RedactMode::Hash, None) => {
                return Err("`mode = \"hash\"` needs a `hash_key`".into());
            }
            (RedactMode::Hash, Some(key)) => {
                if key.is_empty() {
                    return Err("`hash_key` must not be empty".into());
                }
                Replacement::Hmac(
                    Hmac::<Sha256>::new_from_slice(key.as_bytes())
                        .map_err(|e| format!("`hash_key`: {e}"))?,
                )
            }
        };
        let has = |d| self.detectors.contains(&d);
        let bearer = if has(Detector::BearerToken) {
            Some(
                AhoCorasick::builder()
                    .ascii_case_insensitive(true)
                    .build(["bearer"])
                    .map_err(|e| e.to_string())?,
            )
        } else {
            None
        };
        let aws = if has(Detector::AwsAccessKey) {
            Some(AhoCorasick::new(["AKIA", "ASIA"]).map_err(|e| e.to_string())?)
        } else {
            None
        };
        Ok(Redactor {
            literals,
            patterns,
            any_pattern,
            email: has(Detector::Email),
            credit_card: has(Detector::CreditCard),
            ipv4: has(Detector::Ipv4),
            ipv6: has(Detector::Ipv6),
            jwt: has(Detector::Jwt).then(|| memchr::memmem::Finder::new(b"eyJ").into_owned()),
            bearer,
            aws,
            replacement,
            spans: Vec::new(),
            groups: Vec::new(),
        })
    }

    pub fn build(&self, _metrics: &ComponentMetrics) -> Result<Redact, String> {
        if self.fields.is_empty() {
            return Err("`fields` is empty: name at least one field to scan".into());
        }
        let fields = super::keyed::parse_paths("fields", &self.fields)?
            .into_iter()
            .map(Arc::new)
            .collect();
        Ok(Redact {
            redactor: self.redactor()?,
            fields,
            unescaped: Vec::new(),
            out: Vec::new(),
        })
    }
}

enum Replacement {
    Text(String),
    Hmac(Hmac<Sha256>),
}

/// The compiled matchers and their scratch space; [`Redactor::redact_into`] is the whole job
/// on one text.
pub struct Redactor {
    literals: Option<AhoCorasick>,
    patterns: Vec<Regex>,
    /// All patterns in one regex, to skip the per-pattern scans when none matches.
    any_pattern: Option<Regex>,
    email: bool,
    credit_card: bool,
    ipv4: bool,
    ipv6: bool,
    jwt: Option<memchr::memmem::Finder<'static>>,
    bearer: Option<AhoCorasick>,
    aws: Option<AhoCorasick>,
    replacement: Replacement,
    /// Matched spans `(start, end)` of the current text.
    spans: Vec<(usize, usize)>,
    /// Digit groups of the current card candidate.
    groups: Vec<(usize, usize)>,
}

impl Redactor {
    /// Writes `text` with every match replaced into `out` (cleared first) and returns true,
    /// or returns false, leaving `out` alone, when nothing matches.
    pub fn redact_into(&mut self, text: &[u8], out: &mut Vec<u8>) -> bool {
        self.find_spans(text);
        if self.spans.is_empty() {
            return false;
        }
        out.clear();
        let mut last = 0;
        for &(start, end) in &self.spans {
            out.extend_from_slice(text.get(last..start).unwrap_or_default());
            let matched = text.get(start..end).unwrap_or_default();
            match &self.replacement {
                Replacement::Text(t) => out.extend_from_slice(t.as_bytes()),
                Replacement::Hmac(mac) => write_hmac(mac, matched, out),
            }
            last = end;
        }
        out.extend_from_slice(text.get(last..).unwrap_or_default());
        true
    }

    /// Collects the spans of all matchers into `self.spans`, sorted and merged.
    fn find_spans(&mut self, text: &[u8]) {
        let spans = &mut self.spans;
        spans.clear();
        if let Some(ac) = &self.literals {
            spans.extend(ac.find_iter(text).map(|m| (m.start(), m.end())));
        }
        let scan_patterns = match &self.any_pattern {
            Some(any) => any.is_match(text),
            None => !self.patterns.is_empty(),
        };
        if scan_patterns {
            for re in &self.patterns {
                spans.extend(
                    re.find_iter(text)
                        .filter(|m| !m.is_empty())
                        .map(|m| (m.start(), m.end())),
                );
            }
        }
        if self.email {
            find_emails(text, spans);
        }
        if self.credit_card {
            find_cards(text, spans, &mut self.groups);
        }
        if self.ipv4 {
            find_ipv4(text, spans);
        }
        if self.ipv6 {
            find_ipv6(text, spans);
        }
        if let Some(ac) = &self.bearer {
            find_bearer_tokens(ac, text, spans);
        }
        if let Some(ac) = &self.aws {
            find_aws_keys(ac, text, spans);
        }
        if let Some(finder) = &self.jwt {
            find_jwts(finder, text, spans);
        }
        merge_spans(spans, text.len());
    }
}

/// Sorts spans and merges those that overlap or touch; drops empty or out-of-range ones.
fn merge_spans(spans: &mut Vec<(usize, usize)>, len: usize) {
    spans.retain(|&(s, e)| s < e && e <= len);
    if spans.len() < 2 {
        return;
    }
    spans.sort_unstable();
    let mut w = 0;
    for r in 1..spans.len() {
        let (s, e) = spans[r];
        if s <= spans[w].1 {
            spans[w].1 = spans[w].1.max(e);
        } else {
            w += 1;
            spans[w] = (s, e);
        }
    }
    spans.truncate(w + 1);
}

fn write_hmac(mac: &Hmac<Sha256>, matched: &[u8], out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut mac = mac.clone();
    mac.update(matched);
    let digest = mac.finalize().into_bytes();
    out.extend_from_slice(b"sha256:");
    for &b in digest.iter().take(8) {
        out.push(HEX[(b >> 4) as usize]);
        out.push(HEX[(b & 15) as usize]);
    }
}

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

fn byte_at(text: &[u8], i: usize) -> Option<u8> {
    text.get(i).copied()
}

/// Whether the byte before `i` (if any) satisfies `f`.
fn before_is(text: &[u8], i: usize, f: impl Fn(u8) -> bool) -> bool {
    i.checked_sub(1)
        .and_then(|j| byte_at(text, j))
        .is_some_and(f)
}

// ---- email -------------------------------------------------------------------------------

fn is_email_local(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'%' | b'+' | b'-')
}

fn is_domain_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-')
}

/// `labels.tld`: two or more non-empty labels not starting or ending with `-`, the last one
/// two or more letters.
fn is_email_domain(d: &[u8]) -> bool {
    let mut labels = 0;
    let mut last: &[u8] = &[];
    for label in d.split(|&b| b == b'.') {
        if label.is_empty() || label.first() == Some(&b'-') || label.last() == Some(&b'-') {
            return false;
        }
        labels += 1;
        last = label;
    }
    labels >= 2 && last.len() >= 2 && last.iter().all(|b| b.is_ascii_alphabetic())
}

fn find_emails(text: &[u8], spans: &mut Vec<(usize, usize)>) {
    // Left expansions never go below `floor` (the end of the previous address or the byte
    // after the previous `@`), so the scan stays linear.
    let mut floor = 0;
    for at in memchr::memchr_iter(b'@', text) {
        if at < floor {
            continue;
        }
        let mut start = at;
        while start > floor && before_is(text, start, is_email_local) {
            start -= 1;
        }
        while start < at && text.get(start) == Some(&b'.') {
            start += 1;
        }
        let mut end = at + 1;
        while byte_at(text, end).is_some_and(is_domain_char) {
            end += 1;
        }
        while end > at + 1 && matches!(byte_at(text, end - 1), Some(b'.' | b'-')) {
            end -= 1;
        }
        floor = at + 1;
        if start < at && is_email_domain(text.get(at + 1..end).unwrap_or_default()) {
            spans.push((start, end));
            floor = end;
        }
    }
}

// ---- credit cards ------------------------------------------------------------------------

/// Luhn check over the digits of `groups` (spans of ASCII digits in `text`).
fn luhn_valid(text: &[u8], groups: &[(usize, usize)]) -> bool {
    let mut sum = 0u32;
    let mut double = false;
    for &(s, e) in groups.iter().rev() {
        for &d in text.get(s..e).unwrap_or_default().iter().rev() {
            let mut v = d.wrapping_sub(b'0') as u32;
            if double {
                v *= 2;
                if v > 9 {
                    v -= 9;
                }
            }
            sum += v;
            double = !double;
        }
    }
    sum.is_multiple_of(10)
}

/// Digit runs joined by single spaces or dashes form a candidate; within it, the longest
/// run of whole groups starting at each group that holds 13-19 digits and passes Luhn is a
/// card (so `4111 1111 1111 1111 7` still yields the card). Longer unbroken digit runs are
/// not cards.
fn find_cards(text: &[u8], spans: &mut Vec<(usize, usize)>, groups: &mut Vec<(usize, usize)>) {
    let mut pos = 0;
    while let Some(off) = text
        .get(pos..)
        .and_then(|t| t.iter().position(u8::is_ascii_digit))
    {
        pos += off;
        groups.clear();
        let mut digits = 0;
        loop {
            let start = pos;
            while byte_at(text, pos).is_some_and(|b| b.is_ascii_digit()) {
                pos += 1;
            }
            groups.push((start, pos));
            digits += pos - start;
            let joined = matches!(byte_at(text, pos), Some(b' ' | b'-'))
                && byte_at(text, pos + 1).is_some_and(|b| b.is_ascii_digit());
            if !joined {
                break;
            }
            pos += 1;
        }
        if digits < 13 {
            continue;
        }
        let mut i = 0;
        while i < groups.len() {
            let mut count = 0;
            let mut best = None;
            for j in i..groups.len() {
                count += groups[j].1 - groups[j].0;
                if count > 19 {
                    break;
                }
                if count >= 13 && luhn_valid(text, &groups[i..=j]) {
                    best = Some(j);
                }
            }
            match best {
                Some(j) => {
                    spans.push((groups[i].0, groups[j].1));
                    i = j + 1;
                }
                None => i += 1,
            }
        }
    }
}

// ---- IP addresses ------------------------------------------------------------------------

/// Exactly four dot-separated decimal octets of 1-3 digits, each at most 255.
fn is_ipv4(s: &[u8]) -> bool {
    let mut parts = 0;
    for part in s.split(|&b| b == b'.') {
        parts += 1;
        if parts > 4 || part.is_empty() || part.len() > 3 {
            return false;
        }
        let mut v = 0u32;
        for &d in part {
            if !d.is_ascii_digit() {
                return false;
            }
            v = v * 10 + (d - b'0') as u32;
        }
        if v > 255 {
            return false;
        }
    }
    parts == 4
}

fn find_ipv4(text: &[u8], spans: &mut Vec<(usize, usize)>) {
    let is_run = |b: u8| b.is_ascii_digit() || b == b'.';
    let mut search = 0;
    while let Some(off) = text.get(search..).and_then(|t| memchr::memchr(b'.', t)) {
        let dot = search + off;
        let mut start = dot;
        while before_is(text, start, is_run) {
            start -= 1;
        }
        let mut end = dot + 1;
        while byte_at(text, end).is_some_and(is_run) {
            end += 1;
        }
        search = end;
        // Letters around it make it part of a word (`v1.2.3.4`, a hostname).
        if before_is(text, start, is_word) || byte_at(text, end).is_some_and(is_word) {
            continue;
        }
        let mut trimmed = end;
        while trimmed > start && byte_at(text, trimmed - 1) == Some(b'.') {
            trimmed -= 1;
        }
        if is_ipv4(text.get(start..trimmed).unwrap_or_default()) {
            spans.push((start, trimmed));
        }
    }
}

fn parses_as_ipv6(s: &[u8]) -> bool {
    s.iter().any(|b| b.is_ascii_hexdigit())
        && std::str::from_utf8(s).is_ok_and(|s| s.parse::<std::net::Ipv6Addr>().is_ok())
}

fn find_ipv6(text: &[u8], spans: &mut Vec<(usize, usize)>) {
    let is_run = |b: u8| b.is_ascii_hexdigit() || b == b':' || b == b'.';
    let mut search = 0;
    while let Some(off) = text.get(search..).and_then(|t| memchr::memchr(b':', t)) {
        let colon = search + off;
        let mut start = colon;
        while before_is(text, start, is_run) {
            start -= 1;
        }
        let mut end = colon + 1;
        while byte_at(text, end).is_some_and(is_run) {
            end += 1;
        }
        search = end;
        // Inside a word (`std::vec`, `T12:30:45`) it is not an address; after `key:` it is.
        if before_is(text, start, is_word) {
            if text
                .get(start..start + 2)
                .is_some_and(|p| p[0] == b':' && p[1] != b':')
            {
                start += 1;
            } else {
                continue;
            }
        }
        if byte_at(text, end).is_some_and(is_word) {
            continue;
        }
        let run = text.get(start..end).unwrap_or_default();
        if run.len() > 47 || memchr::memchr_iter(b':', run).count() < 2 {
            continue;
        }
        // A sentence's `.` or a port's `:` may follow the address.
        let mut len = run.len();
        for _ in 0..3 {
            if parses_as_ipv6(run.get(..len).unwrap_or_default()) {
                spans.push((start, start + len));
                break;
            }
            match run.get(..len).and_then(|r| r.last()) {
                Some(b'.' | b':') => len -= 1,
                _ => break,
            }
        }
    }
}

// ---- tokens ------------------------------------------------------------------------------

fn is_b64token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
}

fn find_bearer_tokens(ac: &AhoCorasick, text: &[u8], spans: &mut Vec<(usize, usize)>) {
    for m in ac.find_iter(text) {
        if before_is(text, m.start(), is_word) {
            continue;
        }
        let mut token = m.end();
        while matches!(byte_at(text, token), Some(b' ' | b'\t')) {
            token += 1;
        }
        if token == m.end() {
            continue;
        }
        let mut end = token;
        while byte_at(text, end).is_some_and(is_b64token) {
            end += 1;
        }
        if end == token {
            continue;
        }
        while byte_at(text, end) == Some(b'=') {
            end += 1;
        }
        spans.push((token, end));
    }
}

fn find_aws_keys(ac: &AhoCorasick, text: &[u8], spans: &mut Vec<(usize, usize)>) {
    for m in ac.find_iter(text) {
        let start = m.start();
        let end = start + 20;
        let Some(rest) = text.get(m.end()..end) else {
            continue;
        };
        if rest
            .iter()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
            && !before_is(text, start, |b| b.is_ascii_alphanumeric())
            && !byte_at(text, end).is_some_and(|b| b.is_ascii_alphanumeric())
        {
            spans.push((start, end));
        }
    }
}

fn is_b64url(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

/// `eyJ…` header, `.`, a non-empty payload, `.`, a signature (empty for unsigned tokens);
/// up to two more segments are taken too (JWE has five).
fn find_jwts(finder: &memchr::memmem::Finder, text: &[u8], spans: &mut Vec<(usize, usize)>) {
    let mut next = 0;
    for start in finder.find_iter(text) {
        if start < next || before_is(text, start, is_b64url) {
            continue;
        }
        let segment_end = |mut i: usize| {
            while byte_at(text, i).is_some_and(is_b64url) {
                i += 1;
            }
            i
        };
        let header_end = segment_end(start);
        if byte_at(text, header_end) != Some(b'.') {
            continue;
        }
        let payload_end = segment_end(header_end + 1);
        if payload_end == header_end + 1 || byte_at(text, payload_end) != Some(b'.') {
            continue;
        }
        let mut end = segment_end(payload_end + 1);
        for _ in 0..2 {
            let more = segment_end(end + 1);
            if byte_at(text, end) == Some(b'.') && more > end + 1 {
                end = more;
            } else {
                break;
            }
        }
        spans.push((start, end));
        next = end;
    }
}

// ---- the transform -----------------------------------------------------------------------

pub struct Redact {
    redactor: Redactor,
    fields: Vec<Arc<FieldPath>>,
    unescaped: Vec<u8>,
    out: Vec<u8>,
}

impl Redact {
    /// Redacts the configured fields of every event of `batch` (per-event sets).
    pub fn apply(&mut self, batch: &mut Batch) {
        for i in 0..batch.events.len() {
            let ev = batch.events[i];
            for field in &self.fields {
                let redacted = {
                    let text: &[u8] = match batch.get(&ev, field) {
                        Some(ValueRef::Str {
                            raw,
                            escaped: false,
                        }) => raw,
                        Some(ValueRef::Str { raw, escaped: true }) => {
                            self.unescaped.clear();
                            if unescape_json_str(raw, &mut self.unescaped) {
                                &self.unescaped
                            } else {
                                raw
                            }
                        }
                        Some(ValueRef::Owned(Value::Str(s))) => s.as_bytes(),
                        _ => continue,
                    };
                    if !self.redactor.redact_into(text, &mut self.out) {
                        continue;
                    }
                    String::from_utf8_lossy(&self.out).into_owned()
                };
                batch.set_event_field(&ev, field.clone(), Value::Str(redacted));
            }
        }
    }
}

impl Transform for Redact {
    fn process(&mut self, mut batch: Batch, out: &mut Emitter) {
        self.apply(&mut batch);
        out.emit(PORT_MAIN, batch);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transforms::keyed::harness::{metrics, Harness};
    use bytes::Bytes;
    use sluice_engine::encode::{encode_batch, Encoding};

    fn redactor(detectors: &[Detector]) -> Redactor {
        RedactConfig {
            detectors: detectors.to_vec(),
            ..Default::default()
        }
        .redactor()
        .unwrap()
    }

    fn run(r: &mut Redactor, text: &str) -> String {
        let mut out = b"untouched".to_vec();
        if r.redact_into(text.as_bytes(), &mut out) {
            String::from_utf8(out).unwrap()
        } else {
            assert_eq!(out, b"untouched");
            text.to_string()
        }
    }

    fn check(detector: Detector, cases: &[(&str, &str)]) {
        let mut r = redactor(&[detector]);
        for (input, want) in cases {
            assert_eq!(run(&mut r, input), *want, "{detector:?} on {input:?}");
        }
    }

    #[test]
    fn email() {
        check(
            Detector::Email,
            &[
                ("mail bob.smith+x@mail.example.com.", "mail [REDACTED]."),
                ("<a@b.io>,c_d@e-f.org", "<[REDACTED]>,[REDACTED]"),
                ("user@localhost", "user@localhost"),
                ("a@b.c", "a@b.c"),
                ("@example.com", "@example.com"),
                ("x@-bad.com", "x@-bad.com"),
                ("a@@b.com", "a@@b.com"),
                ("no at sign here", "no at sign here"),
            ],
        );
    }

    #[test]
    fn credit_card_only_luhn_valid() {
        check(
            Detector::CreditCard,
            &[
                ("card 4111111111111111 ok", "card [REDACTED] ok"),
                ("card 4111 1111 1111 1111.", "card [REDACTED]."),
                ("c=5500-0000-0000-0004", "c=[REDACTED]"),
                ("amex 378282246310005", "amex [REDACTED]"),
                ("visa13 4222222222222", "visa13 [REDACTED]"),
                ("4111 1111 1111 1111 7 items", "[REDACTED] 7 items"),
                // One digit off: the Luhn check fails.
                ("card 4111111111111112 ok", "card 4111111111111112 ok"),
                ("card 4111 1111 1111 1112", "card 4111 1111 1111 1112"),
                // Too short, too long, doubled separators.
                ("id 411111111111", "id 411111111111"),
                ("n 41111111111111111111111", "n 41111111111111111111111"),
                ("4111  1111  1111  1111", "4111  1111  1111  1111"),
                ("phone 555-123-4567", "phone 555-123-4567"),
            ],
        );
    }

    #[test]
    fn ipv4() {
        check(
            Detector::Ipv4,
            &[
                ("from 10.0.0.1:8080 ok", "from [REDACTED]:8080 ok"),
                ("ip=192.168.1.254.", "ip=[REDACTED]."),
                ("255.255.255.255", "[REDACTED]"),
                ("256.1.1.1", "256.1.1.1"),
                ("1.2.3", "1.2.3"),
                ("1.2.3.4.5", "1.2.3.4.5"),
                ("v1.2.3.4", "v1.2.3.4"),
                ("1.2.3.4x", "1.2.3.4x"),
                ("1..2.3.4", "1..2.3.4"),
                ("pi is 3.14159", "pi is 3.14159"),
            ],
        );
    }

    #[test]
    fn ipv6() {
        check(
            Detector::Ipv6,
            &[
                ("src [2001:db8::1]:443", "src [[REDACTED]]:443"),
                ("fe80::1ff:fe23:4567:890a%eth0", "[REDACTED]%eth0"),
                ("at ::1.", "at [REDACTED]."),
                ("mapped ::ffff:192.0.2.1 x", "mapped [REDACTED] x"),
                ("2001:0db8:0000:0000:0000:ff00:0042:8329", "[REDACTED]"),
                ("addr fe80::1: down", "addr [REDACTED]: down"),
                ("ip:fe80::1 up", "ip:[REDACTED] up"),
                ("std::vec::Vec", "std::vec::Vec"),
                ("a::b::c", "a::b::c"),
                ("at 12:30:45 ok", "at 12:30:45 ok"),
                ("mac 00:1a:2b:3c:4d:5e", "mac 00:1a:2b:3c:4d:5e"),
                ("a :: b", "a :: b"),
                ("1:2:3:4:5:6:7:8:9", "1:2:3:4:5:6:7:8:9"),
                ("key: value", "key: value"),
            ],
        );
    }

    #[test]
    fn bearer_token_keeps_the_scheme() {
        check(
            Detector::BearerToken,
            &[
                (
                    "Authorization: Bearer abc.DEF-123_~+/xyz== rest",
                    "Authorization: Bearer [REDACTED] rest",
                ),
                (
                    "authorization: bearer  t0k3n",
                    "authorization: bearer  [REDACTED]",
                ),
                ("Bearer", "Bearer"),
                ("Bearer: x", "Bearer: x"),
                ("forbearer abc", "forbearer abc"),
                ("Bearer ,", "Bearer ,"),
            ],
        );
    }

    #[test]
    fn aws_access_key() {
        check(
            Detector::AwsAccessKey,
            &[
                ("key=AKIAIOSFODNN7EXAMPLE;", "key=[REDACTED];"),
                ("ASIAY34FZKBOKMUTVV7A", "[REDACTED]"),
                ("AKIAIOSFODNN7EXAMPL", "AKIAIOSFODNN7EXAMPL"),
                ("AKIAIOSFODNN7EXAMPLEX", "AKIAIOSFODNN7EXAMPLEX"),
                ("xAKIAIOSFODNN7EXAMPLE", "xAKIAIOSFODNN7EXAMPLE"),
                ("AKIAiosfodnn7example", "AKIAiosfodnn7example"),
                ("ABIAIOSFODNN7EXAMPLE", "ABIAIOSFODNN7EXAMPLE"),
            ],
        );
    }

    #[test]
    fn jwt_needs_three_segments() {
        let jwt =
            "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let line = format!("token={jwt}. done");
        check(
            Detector::Jwt,
            &[
                (line.as_str(), "token=[REDACTED]. done"),
                ("eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.", "[REDACTED]"),
                (
                    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0",
                    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0",
                ),
                ("eyJhbGciOiJIUzI1NiJ9", "eyJhbGciOiJIUzI1NiJ9"),
                ("eyJ..sig", "eyJ..sig"),
                ("xeyJhbGci.eyJz.sig", "xeyJhbGci.eyJz.sig"),
            ],
        );
    }

    #[test]
    fn literals_leftmost_longest_and_case() {
        let mut r = RedactConfig {
            literals: vec!["secret".into(), "secret-sauce".into()],
            ..Default::default()
        }
        .redactor()
        .unwrap();
        assert_eq!(
            run(&mut r, "the secret-sauce and SECRET"),
            "the [REDACTED] and SECRET"
        );
        let mut r = RedactConfig {
            literals: vec!["secret".into()],
            case_insensitive: true,
            replace: "***".into(),
            ..Default::default()
        }
        .redactor()
        .unwrap();
        assert_eq!(run(&mut r, "SeCrEt, secret"), "***, ***");
    }

    #[test]
    fn patterns_and_merged_overlaps() {
        let mut r = RedactConfig {
            patterns: vec![r"user=\w+".into(), r"\w+@\w+\.com".into()],
            ..Default::default()
        }
        .redactor()
        .unwrap();
        // The two patterns overlap on `bob`: one mark covers both.
        assert_eq!(run(&mut r, "x user=bob@x.com y"), "x [REDACTED] y");
        assert_eq!(run(&mut r, "nothing here"), "nothing here");
        // Empty matches are ignored.
        let mut r = RedactConfig {
            patterns: vec!["z*".into()],
            ..Default::default()
        }
        .redactor()
        .unwrap();
        assert_eq!(run(&mut r, "abc zz"), "abc [REDACTED]");
        // Adjacent matches of different matchers merge too.
        let mut r = RedactConfig {
            literals: vec!["ab".into()],
            patterns: vec!["cd".into()],
            ..Default::default()
        }
        .redactor()
        .unwrap();
        assert_eq!(
            run(&mut r, "abcd ab cd"),
            "[REDACTED] [REDACTED] [REDACTED]"
        );
    }

    #[test]
    fn config_errors() {
        let err = |c: RedactConfig| c.redactor().err().unwrap();
        let e = err(RedactConfig {
            patterns: vec!["ok".into(), "a(b".into()],
            ..Default::default()
        });
        assert!(e.contains("`a(b`"), "{e}");
        assert!(err(RedactConfig::default()).contains("nothing to redact"));
        assert!(err(RedactConfig {
            detectors: vec![Detector::Email],
            mode: RedactMode::Hash,
            ..Default::default()
        })
        .contains("hash_key"));
        assert!(err(RedactConfig {
            literals: vec![String::new()],
            ..Default::default()
        })
        .contains("empty"));
        let c: Result<RedactConfig, _> =
            serde_json::from_str(r#"{"detectors":["email"],"bogus":1}"#);
        assert!(c.is_err());
        let c: RedactConfig =
            serde_json::from_str(r#"{"detectors":["credit_card","aws_access_key"]}"#).unwrap();
        assert_eq!(c.fields, vec!["message".to_string()]);
        assert_eq!(
            c.detectors,
            vec![Detector::CreditCard, Detector::AwsAccessKey]
        );
    }

    /// `sha256:` + the first 16 hex digits of HMAC-SHA256(key, text), computed here.
    fn mark(key: &str, text: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).unwrap();
        mac.update(text.as_bytes());
        let d = mac.finalize().into_bytes();
        let hex: String = d.iter().take(8).map(|b| format!("{b:02x}")).collect();
        format!("sha256:{hex}")
    }

    #[test]
    fn hash_mode_is_stable_and_keyed() {
        let cfg = |key: &str| RedactConfig {
            detectors: vec![Detector::Email, Detector::BearerToken],
            mode: RedactMode::Hash,
            hash_key: Some(key.into()),
            ..Default::default()
        };
        let mut a = cfg("k1").redactor().unwrap();
        let mut a2 = cfg("k1").redactor().unwrap();
        let mut b = cfg("k2").redactor().unwrap();
        let text = "from bob@example.com to bob@example.com, eve@example.com";
        let bob = mark("k1", "bob@example.com");
        assert_eq!(bob.len(), 7 + 16);
        let want = format!("from {bob} to {bob}, {}", mark("k1", "eve@example.com"));
        assert_eq!(run(&mut a, text), want);
        assert_ne!(bob, mark("k1", "eve@example.com"));
        assert_eq!(run(&mut a2, text), want, "same key, same marks");
        let other = run(&mut b, text);
        assert_eq!(
            other.split(' ').nth(1),
            Some(mark("k2", "bob@example.com").as_str())
        );
        assert_ne!(
            mark("k2", "bob@example.com"),
            bob,
            "another key, other marks"
        );
        assert_eq!(
            run(&mut a, "Bearer tok"),
            format!("Bearer {}", mark("k1", "tok"))
        );
    }

    fn json_batch(lines: &str) -> Batch {
        let mut b = Batch::from_lines(Bytes::from(lines.to_string()), 0);
        let mut rejected = Vec::new();
        crate::parsers::json::parse_batch(&mut b, &mut rejected);
        b
    }

    #[test]
    fn transform_redacts_fields_per_event() {
        let cfg = RedactConfig {
            fields: vec!["message".into(), "user.email".into(), "n".into()],
            detectors: vec![Detector::Email, Detector::CreditCard],
            ..Default::default()
        };
        let m = metrics("redact");
        let mut h = Harness::new(Box::new(cfg.build(&m).unwrap()), m, false);
        h.push(json_batch(concat!(
            r#"{"message":"paid with 4111 1111 1111 1111","user":{"email":"a@b.com"},"n":4111111111111111}"#,
            "\n",
            r#"{"message":"nothing to see","user":{"email":"not an address"}}"#,
            "\n",
            r#"{"message":"mail \"x@y.org\"\n","other":"q@r.com"}"#,
            "\n",
            r#"{"level":"info"}"#,
            "\n",
            r#"{"message":"to x\u0040example.com"}"#,
            "\n",
        )));
        let main = h.take_main();
        assert_eq!(main.len(), 1);
        let mut out = Vec::new();
        encode_batch(Encoding::Ndjson, &main[0], &mut out);
        let got = String::from_utf8(out).unwrap();
        let want = concat!(
            r#"{"message":"paid with [REDACTED]","user":{"email":"[REDACTED]"},"n":4111111111111111}"#,
            "\n",
            r#"{"message":"nothing to see","user":{"email":"not an address"}}"#,
            "\n",
            r#"{"message":"mail \"[REDACTED]\"\n","other":"q@r.com"}"#,
            "\n",
            r#"{"level":"info"}"#,
            "\n",
            r#"{"message":"to [REDACTED]"}"#,
            "\n",
        );
        assert_eq!(got, want);
        // Unchanged events keep their exact bytes (no per-event set).
        let b = &main[0];
        assert!(b.event_sets_of(&b.events[1]).is_empty());
        assert!(b.event_sets_of(&b.events[3]).is_empty());
        assert_eq!(b.event_sets_of(&b.events[0]).len(), 2);
    }

    #[test]
    fn raw_lines_and_text_encoding() {
        let cfg = RedactConfig {
            detectors: vec![Detector::Ipv4],
            literals: vec!["hunter2".into()],
            ..Default::default()
        };
        let m = metrics("redact");
        let mut h = Harness::new(Box::new(cfg.build(&m).unwrap()), m, false);
        h.push(Batch::from_lines(
            Bytes::from_static(b"login from 10.1.2.3 pw hunter2\nplain line\n"),
            0,
        ));
        let main = h.take_main();
        let mut out = Vec::new();
        encode_batch(Encoding::Text, &main[0], &mut out);
        assert_eq!(out, b"login from [REDACTED] pw [REDACTED]\nplain line\n");
        out.clear();
        encode_batch(Encoding::Ndjson, &main[0], &mut out);
        assert_eq!(
            out,
            b"{\"message\":\"login from [REDACTED] pw [REDACTED]\"}\n{\"message\":\"plain line\"}\n"
        );
    }

    #[test]
    fn invalid_utf8_input_gives_valid_output() {
        let mut r = redactor(Detector::ALL);
        let mut out = Vec::new();
        assert!(r.redact_into(b"\xff a@b.com \xfe", &mut out));
        assert_eq!(out, b"\xff [REDACTED] \xfe");
        assert!(!r.redact_into(b"\xff\xfe", &mut out));
    }

    /// Text made of fragments that reach every detector's edge cases.
    fn tricky_text() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let fragment = prop::sample::select(vec![
            "4111",
            "1111",
            " ",
            "-",
            "0",
            "9",
            "@",
            ".",
            "com",
            "a",
            ":",
            "::",
            "fe80",
            "ffff",
            "255",
            "10",
            "eyJ",
            "Bearer ",
            "bearer\t",
            "AKIA",
            "ASIA",
            "IOSFODNN7EXAMPLE",
            "_",
            "=",
            "é",
            "😀",
            "\n",
            "secret",
            "\\",
            "\"",
            "x",
        ]);
        prop::collection::vec(fragment, 0..40).prop_map(|v| v.concat())
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig {
            cases: 2000,
            failure_persistence: None,
            ..Default::default()
        })]

        #[test]
        fn any_text_redacts_without_panic_and_stays_utf8(text in tricky_text()) {
            thread_local! {
                static R: std::cell::RefCell<Redactor> = std::cell::RefCell::new(
                    RedactConfig {
                        literals: vec!["secret".into()],
                        patterns: vec![r"\d{5}".into(), "x+".into()],
                        detectors: Detector::ALL.to_vec(),
                        ..Default::default()
                    }
                    .redactor()
                    .unwrap(),
                );
            }
            let mut out = Vec::new();
            let out = if R.with(|r| r.borrow_mut().redact_into(text.as_bytes(), &mut out)) {
                let out = String::from_utf8(out).expect("valid UTF-8 in, valid UTF-8 out");
                proptest::prop_assert!(out.contains("[REDACTED]"));
                out
            } else {
                text.clone()
            };
            proptest::prop_assert!(!out.contains("secret"));
            // Every 16-digit run left standing on its own fails the Luhn check.
            for run in out.split(|c: char| !c.is_ascii_digit()).filter(|r| r.len() == 16) {
                proptest::prop_assert!(!luhn_valid(run.as_bytes(), &[(0, 16)]), "{run} in {out}");
            }
        }

        #[test]
        fn any_bytes_redact_without_panic(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
            let mut r = redactor(Detector::ALL);
            let mut out = Vec::new();
            r.redact_into(&data, &mut out);
        }
    }
}

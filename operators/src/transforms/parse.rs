//! `type = "parse"`: parses each event's line (or one of its fields) into fields.
//!
//! `format = "json"` fills the batch's tape with the zero-copy scanner: the event keeps its
//! bytes and gains fields. Every other format runs a [`LineParser`] per line through a
//! [`TapeSink`]: values that are spans of the line stay spans, the rest goes to the tape's
//! side arena, and the event becomes [`EventForm::Fields`] (written out from its tape).
//!
//! With `field = "msg"` the text of that field is parsed instead of the line and the result
//! is merged into the event's top level (parsed keys win over existing ones on lookup).
//!
//! A line that does not parse keeps its raw bytes and goes to `ID.dropped` with
//! `_meta.error` saying why (if something reads that output), or is passed on unparsed with
//! `on_error = "pass"`, or else is counted as dropped (`reason="parse_error"`).

use super::PORT_DROPPED;
use crate::parsers::apache::{ApacheFormat, ApacheParser, NginxFormat, NginxParser};
use crate::parsers::cri::{CriParser, DockerParser};
use crate::parsers::detect::{detect_format, DetectedFormat};
use crate::parsers::grok::GrokParser;
use crate::parsers::json;
use crate::parsers::kv::{KvOptions, KvParser};
use crate::parsers::level::normalize_level;
use crate::parsers::logfmt::LogfmtParser;
use crate::parsers::regex::RegexParser;
use crate::parsers::sink::{FieldSink, LineParser, ParseError, Parsed};
use crate::parsers::syslog::{SyslogMode, SyslogOptions, SyslogParser};
use crate::parsers::tape::TapeSink;
use crate::parsers::timestamp::{Timestamp, TimestampFormat};
use serde::Deserialize;
use sluice_engine::batch::{Batch, Event, EventForm, OverlayOp};
use sluice_engine::fields::{FieldEntry, Kind, KEY_AUX, VALUE_AUX};
use sluice_engine::metrics::ComponentMetrics;
use sluice_engine::path::FieldPath;
use sluice_engine::pipeline::{Emitter, Transform, PORT_MAIN};
use sluice_engine::Value;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Json,
    Syslog,
    Apache,
    Nginx,
    Logfmt,
    Kv,
    Regex,
    Grok,
    Cri,
    Docker,
    Auto,
}

impl Format {
    /// The name used in `_meta.error` ("invalid JSON: ...").
    pub fn label(self) -> &'static str {
        match self {
            Format::Json => "JSON",
            Format::Syslog => "syslog",
            Format::Apache => "apache",
            Format::Nginx => "nginx",
            Format::Logfmt => "logfmt",
            Format::Kv => "kv",
            Format::Regex => "regex",
            Format::Grok => "grok",
            Format::Cri => "CRI",
            Format::Docker => "docker",
            Format::Auto => "auto",
        }
    }

    /// Formats whose field names come from the line: their `timestamp` and `level` fields
    /// are normalised (see `normalize`).
    fn free_form(self) -> bool {
        matches!(
            self,
            Format::Logfmt | Format::Kv | Format::Regex | Format::Grok
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum OnError {
    /// To `ID.dropped` (or counted as dropped when nothing reads it).
    #[default]
    Drop,
    /// Pass the event on unparsed.
    Pass,
}

/// Options of the `parse` transform.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParseConfig {
    pub format: Format,
    #[serde(default)]
    pub on_error: OnError,
    /// Parse the text of this field instead of the line.
    #[serde(default)]
    pub field: Option<String>,
    /// The dialect: syslog `auto | rfc5424 | rfc3164`, apache `auto | common | combined`,
    /// nginx `combined | error`.
    #[serde(default)]
    pub mode: Option<String>,
    /// regex / grok: one pattern (same as `patterns = [..]` with one entry).
    #[serde(default)]
    pub pattern: Option<String>,
    /// regex / grok: patterns tried in order; the first that matches wins.
    #[serde(default)]
    pub patterns: Vec<String>,
    /// grok: extra named patterns, usable as `%{NAME}` (they may override the library).
    #[serde(default)]
    pub pattern_definitions: indexmap::IndexMap<String, String>,
    /// kv: separator between pairs (default `" "`).
    #[serde(default)]
    pub field_split: Option<String>,
    /// kv: separator between key and value (default `"="`).
    #[serde(default)]
    pub value_split: Option<String>,
    /// kv: prepended to every key.
    #[serde(default)]
    pub prefix: Option<String>,
    /// kv: trim whitespace around keys and values (default true).
    #[serde(default)]
    pub trim: Option<bool>,
    /// cri: bytes of partial (`P`) lines held per stream before a joined message is cut.
    #[serde(default)]
    pub max_partial_bytes: Option<sluice_engine::units::ByteSize>,
    /// How to read the `timestamp` field of logfmt/kv/regex/grok lines (default: any of
    /// the known layouts); named layouts or a strftime format.
    #[serde(default)]
    pub timestamp_format: Option<String>,
    /// The zone of timestamps without one: `UTC` (default), `local` or `+02:00`.
    #[serde(default)]
    pub timezone: Option<String>,
    /// logfmt/kv/regex/grok: rewrite `timestamp` as RFC 3339 and `level` as one of
    /// trace/debug/info/notice/warn/error/fatal when they can be read (default true).
    #[serde(default = "default_true")]
    pub normalize: bool,
    /// auto: the field that names the detected format (empty: none).
    #[serde(default = "default_format_field")]
    pub format_field: String,
}

fn default_true() -> bool {
    true
}

fn default_format_field() -> String {
    "log_format".into()
}

impl ParseConfig {
    pub const NAMED_OUTPUTS: &'static [&'static str] = &["dropped"];

    /// Checks the options (compiling patterns); the error names the offending key.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        self.engine().map(|_| ())
    }

    fn engine(&self) -> Result<(Engine, Option<FieldPath>), (&'static str, String)> {
        let field = match &self.field {
            Some(f) => Some(FieldPath::parse(f).map_err(|e| ("field", e.to_string()))?),
            None => None,
        };
        self.check_keys()?;
        let engine = match self.format {
            Format::Json => Engine::Json,
            Format::Auto => Engine::Auto(Box::new(AutoParsers::new(self)?)),
            _ => Engine::Line(Box::new(self.line_parser()?)),
        };
        Ok((engine, field))
    }

    /// Builds the transform (one per shard). The error names the offending key.
    pub fn build(&self, metrics: &ComponentMetrics) -> Result<Parse, (&'static str, String)> {
        let (engine, field) = self.engine()?;
        Ok(Parse {
            format: self.format,
            engine,
            field,
            on_error: self.on_error,
            rejected: Vec::new(),
            pending: Vec::new(),
            scratch: Vec::new(),
            errors: metrics.dropped("parse_error"),
            error_path: FieldPath::parse("_meta.error").expect("static path"),
        })
    }
}

impl ParseConfig {
    /// Options that belong to other formats are errors, not silently ignored.
    fn check_keys(&self) -> Result<(), (&'static str, String)> {
        let f = self.format;
        let only = |set: bool, key: &'static str, formats: &[Format]| {
            if set && !formats.contains(&f) {
                let names: Vec<&str> = formats.iter().map(|x| x.label()).collect();
                Err((
                    key,
                    format!(
                        "`{key}` is an option of format {}, not {}",
                        names.join(" / "),
                        f.label()
                    ),
                ))
            } else {
                Ok(())
            }
        };
        use Format::*;
        only(self.mode.is_some(), "mode", &[Syslog, Apache, Nginx])?;
        only(self.pattern.is_some(), "pattern", &[Regex, Grok])?;
        only(!self.patterns.is_empty(), "patterns", &[Regex, Grok])?;
        only(
            !self.pattern_definitions.is_empty(),
            "pattern_definitions",
            &[Grok],
        )?;
        only(self.field_split.is_some(), "field_split", &[Kv])?;
        only(self.value_split.is_some(), "value_split", &[Kv])?;
        only(self.prefix.is_some(), "prefix", &[Kv])?;
        only(self.trim.is_some(), "trim", &[Kv])?;
        only(
            self.max_partial_bytes.is_some(),
            "max_partial_bytes",
            &[Cri, Auto],
        )?;
        only(
            self.timestamp_format.is_some(),
            "timestamp_format",
            &[Logfmt, Kv, Regex, Grok, Auto],
        )?;
        if f == Auto && self.field.is_some() {
            return Err((
                "field",
                "format auto reads the line; parse a field with a named format".into(),
            ));
        }
        if matches!(f, Regex | Grok) && self.pattern.is_none() && self.patterns.is_empty() {
            return Err((
                "pattern",
                format!("format {} needs `pattern` or `patterns`", f.label()),
            ));
        }
        if self.pattern.is_some() && !self.patterns.is_empty() {
            return Err(("patterns", "give `pattern` or `patterns`, not both".into()));
        }
        Ok(())
    }

    fn all_patterns(&self) -> Vec<String> {
        match &self.pattern {
            Some(p) => vec![p.clone()],
            None => self.patterns.clone(),
        }
    }

    fn mode_is(&self, allowed: &[&str]) -> Result<String, (&'static str, String)> {
        let mode = self.mode.clone().unwrap_or_else(|| allowed[0].to_string());
        if allowed.contains(&mode.as_str()) {
            Ok(mode)
        } else {
            Err((
                "mode",
                format!(
                    "unknown {} mode `{mode}` (expected one of: {})",
                    self.format.label(),
                    allowed.join(", ")
                ),
            ))
        }
    }

    fn normalizer(&self) -> Result<Option<Normalizer>, (&'static str, String)> {
        if !self.normalize {
            return Ok(None);
        }
        let format = TimestampFormat::from_config(
            self.timestamp_format.as_deref(),
            self.timezone.as_deref(),
        )
        .map_err(|e| {
            let key = if self.timestamp_format.is_some() {
                "timestamp_format"
            } else {
                "timezone"
            };
            (key, e)
        })?;
        Ok(Some(Normalizer { format }))
    }

    fn line_parser(&self) -> Result<AnyParser, (&'static str, String)> {
        let syntax = |key: &'static str| move |e: String| (key, e);
        let normalizer = if self.format.free_form() {
            self.normalizer()?
        } else {
            None
        };
        let parser = match self.format {
            Format::Syslog => {
                let mode = match self.mode_is(&["auto", "rfc5424", "rfc3164"])?.as_str() {
                    "rfc5424" => SyslogMode::Rfc5424,
                    "rfc3164" => SyslogMode::Rfc3164,
                    _ => SyslogMode::Auto,
                };
                let opts = SyslogOptions {
                    mode,
                    timezone: self.timezone.clone(),
                };
                AnyParser::Syslog(Box::new(
                    SyslogParser::new(&opts).map_err(syntax("timezone"))?,
                ))
            }
            Format::Apache => AnyParser::Apache(ApacheParser::new(
                match self.mode_is(&["auto", "common", "combined"])?.as_str() {
                    "common" => ApacheFormat::Common,
                    "combined" => ApacheFormat::Combined,
                    _ => ApacheFormat::Auto,
                },
            )),
            Format::Nginx => AnyParser::Nginx(NginxParser::new(
                match self.mode_is(&["combined", "error"])?.as_str() {
                    "error" => NginxFormat::Error,
                    _ => NginxFormat::Combined,
                },
            )),
            Format::Logfmt => {
                AnyParser::FreeForm(FreeForm::Logfmt(LogfmtParser::new()), normalizer)
            }
            Format::Kv => {
                let mut opts = KvOptions::default();
                if let Some(v) = &self.field_split {
                    opts.field_split = v.clone();
                }
                if let Some(v) = &self.value_split {
                    opts.value_split = v.clone();
                }
                if let Some(v) = &self.prefix {
                    opts.prefix = v.clone();
                }
                if let Some(v) = self.trim {
                    opts.trim = v;
                }
                AnyParser::FreeForm(
                    FreeForm::Kv(Box::new(
                        KvParser::new(&opts).map_err(syntax("field_split"))?,
                    )),
                    normalizer,
                )
            }
            Format::Regex => AnyParser::FreeForm(
                FreeForm::Regex(Box::new(
                    RegexParser::new(&self.all_patterns()).map_err(syntax(self.pattern_key()))?,
                )),
                normalizer,
            ),
            Format::Grok => {
                let custom: Vec<(String, String)> = self
                    .pattern_definitions
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                AnyParser::FreeForm(
                    FreeForm::Grok(Box::new(
                        GrokParser::new(&self.all_patterns(), &custom)
                            .map_err(syntax(self.pattern_key()))?,
                    )),
                    normalizer,
                )
            }
            Format::Cri => AnyParser::Cri(CriParser::new(self.max_partial())),
            Format::Docker => AnyParser::Docker(DockerParser::new()),
            Format::Json | Format::Auto => unreachable!("not line parsers"),
        };
        Ok(parser)
    }

    fn pattern_key(&self) -> &'static str {
        if self.pattern.is_some() {
            "pattern"
        } else {
            "patterns"
        }
    }

    fn max_partial(&self) -> usize {
        self.max_partial_bytes
            .map(|b| b.0 as usize)
            .unwrap_or(crate::parsers::cri::DEFAULT_MAX_PARTIAL_BYTES)
    }
}

/// The per-format machinery.
enum Engine {
    Json,
    Line(Box<AnyParser>),
    Auto(Box<AutoParsers>),
}

/// Every line parser, for static dispatch (one match per line, predictable).
enum AnyParser {
    Syslog(Box<SyslogParser>),
    Apache(ApacheParser),
    Nginx(NginxParser),
    Cri(CriParser),
    Docker(DockerParser),
    /// A format whose field names come from the line; with a [`Normalizer`], `timestamp`
    /// and `level` are normalised on the way out.
    FreeForm(FreeForm, Option<Normalizer>),
    #[cfg(test)]
    Test(tests::WordsParser),
}

impl LineParser for AnyParser {
    fn parse<S: FieldSink>(&mut self, line: &[u8], out: &mut S) -> Result<Parsed, ParseError> {
        match self {
            AnyParser::Syslog(p) => p.parse(line, out),
            AnyParser::Apache(p) => p.parse(line, out),
            AnyParser::Nginx(p) => p.parse(line, out),
            AnyParser::Cri(p) => p.parse(line, out),
            AnyParser::Docker(p) => p.parse(line, out),
            AnyParser::FreeForm(p, None) => p.parse(line, out),
            AnyParser::FreeForm(p, Some(n)) => p.parse(
                line,
                &mut Normalizing {
                    inner: out,
                    normalizer: n,
                    depth: 0,
                },
            ),
            #[cfg(test)]
            AnyParser::Test(p) => p.parse(line, out),
        }
    }
}

/// The parsers whose field names come from the line.
enum FreeForm {
    Logfmt(LogfmtParser),
    Kv(Box<KvParser>),
    Regex(Box<RegexParser>),
    Grok(Box<GrokParser>),
}

impl LineParser for FreeForm {
    fn parse<S: FieldSink>(&mut self, line: &[u8], out: &mut S) -> Result<Parsed, ParseError> {
        match self {
            FreeForm::Logfmt(p) => p.parse(line, out),
            FreeForm::Kv(p) => p.parse(line, out),
            FreeForm::Regex(p) => p.parse(line, out),
            FreeForm::Grok(p) => p.parse(line, out),
        }
    }
}

impl AnyParser {
    fn cri(&mut self) -> Option<&mut CriParser> {
        match self {
            AnyParser::Cri(p) => Some(p),
            _ => None,
        }
    }
}

/// Rewrites top-level `timestamp` (to RFC 3339) and `level` (to the canonical names) as a
/// free-form parser writes them; values it cannot read pass unchanged.
struct Normalizer {
    format: TimestampFormat,
}

struct Normalizing<'a, S: FieldSink> {
    inner: &'a mut S,
    normalizer: &'a Normalizer,
    depth: u32,
}

impl<S: FieldSink> FieldSink for Normalizing<'_, S> {
    fn str(&mut self, key: &[u8], value: &[u8]) {
        if self.depth == 0 {
            if key == b"timestamp" {
                if let Some(t) = self.normalizer.format.parse(value) {
                    return self.inner.timestamp(key, t);
                }
            } else if key == b"level" {
                if let Some(l) = normalize_level(value) {
                    return self.inner.str(key, l.as_bytes());
                }
            }
        }
        self.inner.str(key, value)
    }
    fn str_json_escaped(&mut self, key: &[u8], value: &[u8]) {
        self.inner.str_json_escaped(key, value)
    }
    fn int(&mut self, key: &[u8], value: i64) {
        if self.depth == 0 && key == b"timestamp" {
            use std::io::Write;
            let mut digits = [0u8; 24];
            let mut w = std::io::Cursor::new(&mut digits[..]);
            let _ = write!(w, "{value}");
            let n = w.position() as usize;
            if let Some(t) = self.normalizer.format.parse(&digits[..n]) {
                return self.inner.timestamp(key, t);
            }
        }
        self.inner.int(key, value)
    }
    fn float(&mut self, key: &[u8], value: f64) {
        self.inner.float(key, value)
    }
    fn bool(&mut self, key: &[u8], value: bool) {
        self.inner.bool(key, value)
    }
    fn null(&mut self, key: &[u8]) {
        self.inner.null(key)
    }
    fn timestamp(&mut self, key: &[u8], value: Timestamp) {
        self.inner.timestamp(key, value)
    }
    fn begin_object(&mut self, key: &[u8]) {
        self.depth += 1;
        self.inner.begin_object(key)
    }
    fn end_object(&mut self) {
        self.depth = self.depth.saturating_sub(1);
        self.inner.end_object()
    }
}

/// `format = "auto"`: one parser per detectable format, chosen per line.
struct AutoParsers {
    syslog: SyslogParser,
    apache: ApacheParser,
    logfmt: AnyParser,
    cri: CriParser,
    format_field: Vec<u8>,
}

impl AutoParsers {
    fn new(cfg: &ParseConfig) -> Result<AutoParsers, (&'static str, String)> {
        let syslog = SyslogParser::new(&SyslogOptions {
            mode: SyslogMode::Auto,
            timezone: cfg.timezone.clone(),
        })
        .map_err(|e| ("timezone", e))?;
        let logfmt = AnyParser::FreeForm(FreeForm::Logfmt(LogfmtParser::new()), cfg.normalizer()?);
        Ok(AutoParsers {
            syslog,
            apache: ApacheParser::new(ApacheFormat::Auto),
            logfmt,
            cri: CriParser::new(cfg.max_partial()),
            format_field: cfg.format_field.clone().into_bytes(),
        })
    }
}

fn detected_name(f: DetectedFormat) -> &'static str {
    match f {
        DetectedFormat::Json => "json",
        DetectedFormat::Syslog5424 => "syslog_rfc5424",
        DetectedFormat::Syslog3164 => "syslog_rfc3164",
        DetectedFormat::ApacheCombined => "apache_combined",
        DetectedFormat::ApacheCommon => "apache_common",
        DetectedFormat::Logfmt => "logfmt",
        DetectedFormat::Cri => "cri",
        DetectedFormat::Plain => "plain",
    }
}

pub struct Parse {
    format: Format,
    engine: Engine,
    field: Option<FieldPath>,
    on_error: OnError,
    rejected: Vec<(usize, &'static str)>,
    /// Events absorbed by the parser (CRI partial lines): removed, not errors.
    pending: Vec<usize>,
    scratch: Vec<u8>,
    errors: Arc<AtomicU64>,
    error_path: FieldPath,
}

impl Transform for Parse {
    fn wants_tick(&self) -> bool {
        match &self.engine {
            Engine::Line(p) => matches!(**p, AnyParser::Cri(_)),
            Engine::Auto(_) => true,
            Engine::Json => false,
        }
    }

    /// At shutdown, CRI partial lines whose final part never came are emitted as they are.
    fn tick(&mut self, _now: std::time::Instant, last: bool, out: &mut Emitter) {
        if !last {
            return;
        }
        let cri = match &mut self.engine {
            Engine::Line(p) => p.cri(),
            Engine::Auto(a) => Some(&mut a.cri),
            Engine::Json => None,
        };
        if let Some(batch) = cri.and_then(|c| flush_cri(c, 0)) {
            out.emit(PORT_MAIN, batch);
        }
    }

    fn process(&mut self, mut batch: Batch, out: &mut Emitter) {
        self.rejected.clear();
        self.pending.clear();
        match (&mut self.engine, &self.field) {
            (Engine::Json, None) => {
                json::parse_batch(&mut batch, &mut self.rejected);
            }
            (Engine::Json, Some(field)) => {
                parse_field(
                    &mut batch,
                    field,
                    &mut self.scratch,
                    &mut self.rejected,
                    parse_json_text,
                );
            }
            (Engine::Line(parser), None) => parse_lines(
                parser.as_mut(),
                &mut batch,
                &mut self.rejected,
                &mut self.pending,
            ),
            (Engine::Auto(auto), _) => {
                parse_auto(auto, &mut batch, &mut self.rejected, &mut self.pending)
            }
            (Engine::Line(parser), Some(field)) => {
                let parser = parser.as_mut();
                parse_field(
                    &mut batch,
                    field,
                    &mut self.scratch,
                    &mut self.rejected,
                    |sink, text| match parser.parse(text, sink) {
                        Ok(Parsed::Event) => Ok(()),
                        Ok(Parsed::Pending) => Err(ParseError::new("partial line in a field")),
                        Err(e) => Err(e),
                    },
                );
            }
        }
        if !self.pending.is_empty() {
            // `rejected` and `pending` are ascending; remove pending events and shift the
            // rejected indices accordingly.
            let pending = std::mem::take(&mut self.pending);
            let mut p = 0;
            let mut i = 0;
            batch.events.retain(|_| {
                let gone = pending.get(p) == Some(&i);
                if gone {
                    p += 1;
                }
                i += 1;
                !gone
            });
            for (idx, _) in &mut self.rejected {
                *idx -= pending.partition_point(|&x| x < *idx);
            }
            self.pending = pending;
        }
        if self.rejected.is_empty() || self.on_error == OnError::Pass {
            out.emit(PORT_MAIN, batch);
            return;
        }
        let to_dropped = out.is_connected(PORT_DROPPED);
        if !to_dropped {
            self.errors
                .fetch_add(self.rejected.len() as u64, Ordering::Relaxed);
        }
        // Remove rejected events (indices are positions in `batch.events`, ascending).
        let mut bad: Vec<(Event, &'static str)> = Vec::with_capacity(self.rejected.len());
        let mut keep = Vec::with_capacity(batch.events.len() - self.rejected.len());
        let mut r = self.rejected.iter().peekable();
        for (i, ev) in batch.events.iter().enumerate() {
            if r.peek().map(|(j, _)| *j) == Some(i) {
                let (_, reason) = r.next().expect("peeked");
                bad.push((*ev, *reason));
            } else {
                keep.push(*ev);
            }
        }
        if to_dropped {
            // One sibling batch per distinct reason, each tagged with `_meta.error`.
            let mut reasons: Vec<&'static str> = bad.iter().map(|(_, r)| *r).collect();
            reasons.sort_unstable();
            reasons.dedup();
            for reason in reasons {
                let evs = bad
                    .iter()
                    .filter(|(_, r)| *r == reason)
                    .map(|(e, _)| *e)
                    .collect();
                let mut sib = batch.sibling(evs);
                sib.overlay.ops.push(OverlayOp::Set {
                    path: self.error_path.clone(),
                    value: Value::Str(format!("invalid {}: {reason}", self.format.label())),
                    if_absent: false,
                });
                out.emit(PORT_DROPPED, sib);
            }
        }
        batch.events = keep;
        out.emit(PORT_MAIN, batch);
    }
}

/// Runs `parser` over every event's line; parsed events become [`EventForm::Fields`].
fn parse_lines<P: LineParser>(
    parser: &mut P,
    batch: &mut Batch,
    rejected: &mut Vec<(usize, &'static str)>,
    pending: &mut Vec<usize>,
) {
    let buf = batch.buf().clone();
    let mut events = std::mem::take(&mut batch.events);
    let mut table = std::mem::take(&mut batch.fields);
    let bytes: usize = events.iter().map(|e| e.len as usize).sum();
    table.entries.reserve(bytes / 24 + events.len());
    table.aux.reserve(events.len() * 16);
    {
        let mut sink = TapeSink::new(&mut table, &buf);
        for (i, ev) in events.iter_mut().enumerate() {
            let start = ev.start as usize;
            let Some(line) = buf.get(start..start + ev.len as usize) else {
                rejected.push((i, json::reason::BAD_SPAN));
                continue;
            };
            let mark = sink.mark();
            match parser.parse(line, &mut sink) {
                Ok(Parsed::Event) => {
                    let (s, e) = sink.finish(mark);
                    ev.form = EventForm::Fields;
                    ev.fields_start = s;
                    ev.fields_end = e;
                }
                Ok(Parsed::Pending) => {
                    sink.rollback(mark);
                    pending.push(i);
                }
                Err(err) => {
                    sink.rollback(mark);
                    rejected.push((i, err.reason));
                }
            }
        }
    }
    batch.fields = table;
    batch.events = events;
}

/// Parses the text of `field` in every event with `parse` and merges what it writes into
/// the event's top level: the event's members are copied to the end of the tape (so its
/// range stays contiguous), followed by the parsed ones.
fn parse_field(
    batch: &mut Batch,
    field: &FieldPath,
    scratch: &mut Vec<u8>,
    rejected: &mut Vec<(usize, &'static str)>,
    mut parse: impl FnMut(&mut TapeSink<'_>, &[u8]) -> Result<(), ParseError>,
) {
    let buf = batch.buf().clone();
    let message = b"message";
    for i in 0..batch.events.len() {
        let ev = batch.events[i];
        scratch.clear();
        match batch.get(&ev, field) {
            Some(v) => match v.as_str() {
                Some(s) => scratch.extend_from_slice(&s),
                None => {
                    rejected.push((i, "the field is not a string"));
                    continue;
                }
            },
            None => {
                rejected.push((i, "the field is missing"));
                continue;
            }
        }
        let table = &mut batch.fields;
        let copy_start = table.entries.len();
        let aux_start = table.aux.len();
        match ev.form {
            EventForm::Raw => {
                // The raw line's implicit `message` becomes an explicit member.
                let key_start = table.aux.len() as u32;
                table.aux.extend_from_slice(message);
                table.entries.push(FieldEntry {
                    key_start,
                    key_len: message.len() as u32,
                    value_start: ev.start,
                    value_len: ev.len,
                    end: copy_start as u32 + 1,
                    kind: Kind::String,
                    flags: KEY_AUX | sluice_engine::fields::PLAIN,
                });
            }
            EventForm::Json | EventForm::Fields => {
                let shift = copy_start as i64 - ev.fields_start as i64;
                for j in ev.fields_start..ev.fields_end {
                    let mut e = table.entries[j as usize];
                    e.end = (e.end as i64 + shift) as u32;
                    table.entries.push(e);
                }
            }
        }
        let result = {
            let mut sink = TapeSink::new(table, &buf);
            parse(&mut sink, scratch)
        };
        match result {
            Ok(()) => {
                let ev = &mut batch.events[i];
                ev.form = EventForm::Fields;
                ev.fields_start = copy_start as u32;
                ev.fields_end = batch.fields.entries.len() as u32;
            }
            Err(err) => {
                batch.fields.entries.truncate(copy_start);
                batch.fields.aux.truncate(aux_start);
                rejected.push((i, err.reason));
            }
        }
    }
}

/// `parse_field` for JSON: the text is copied to the tape's arena and scanned there.
fn parse_json_text(sink: &mut TapeSink<'_>, text: &[u8]) -> Result<(), ParseError> {
    let table = sink.table();
    let at = table.aux.len();
    table.aux.extend_from_slice(text);
    let aux = std::mem::take(&mut table.aux);
    let first = table.entries.len();
    let result = json::parse_object(&aux, at, at + text.len(), table);
    table.aux = aux;
    match result {
        Ok(_) => {
            for e in &mut table.entries[first..] {
                e.flags |= KEY_AUX | VALUE_AUX;
            }
            Ok(())
        }
        Err(why) => Err(ParseError::new(why)),
    }
}

/// `format = "auto"`: detects each line's format and parses it with that parser; JSON
/// goes through the tape scanner. Every event gets the detected format's name in
/// `format_field` and becomes [`EventForm::Fields`]; plain text keeps the line as
/// `message`.
fn parse_auto(
    auto: &mut AutoParsers,
    batch: &mut Batch,
    rejected: &mut Vec<(usize, &'static str)>,
    pending: &mut Vec<usize>,
) {
    let buf = batch.buf().clone();
    let mut events = std::mem::take(&mut batch.events);
    let mut table = std::mem::take(&mut batch.fields);
    let bytes: usize = events.iter().map(|e| e.len as usize).sum();
    table.entries.reserve(bytes / 20 + events.len() * 2);
    for (i, ev) in events.iter_mut().enumerate() {
        let start = ev.start as usize;
        let Some(line) = buf.get(start..start + ev.len as usize) else {
            rejected.push((i, json::reason::BAD_SPAN));
            continue;
        };
        let detected = detect_format(line);
        let mut sink = TapeSink::new(&mut table, &buf);
        let mark = sink.mark();
        let result = match detected {
            DetectedFormat::Json => {
                let table = sink.table();
                json::parse_object(&buf, start, start + line.len(), table)
                    .map(|_| Parsed::Event)
                    .map_err(ParseError::new)
            }
            DetectedFormat::Syslog5424 | DetectedFormat::Syslog3164 => {
                auto.syslog.parse(line, &mut sink)
            }
            DetectedFormat::ApacheCombined | DetectedFormat::ApacheCommon => {
                auto.apache.parse(line, &mut sink)
            }
            DetectedFormat::Logfmt => auto.logfmt.parse(line, &mut sink),
            DetectedFormat::Cri => auto.cri.parse(line, &mut sink),
            DetectedFormat::Plain => {
                sink.str(b"message", line);
                Ok(Parsed::Event)
            }
        };
        // Detection is a guess from the first bytes: a line that looked like logfmt but
        // holds no pair is plain text, not an error.
        let (detected, result) = match (detected, result) {
            (DetectedFormat::Logfmt, Err(_)) => {
                sink.rollback(mark);
                sink.str(b"message", line);
                (DetectedFormat::Plain, Ok(Parsed::Event))
            }
            other => other,
        };
        match result {
            Ok(Parsed::Event) => {
                if !auto.format_field.is_empty() {
                    sink.str(&auto.format_field, detected_name(detected).as_bytes());
                }
                let (s, e) = sink.finish(mark);
                ev.form = EventForm::Fields;
                ev.fields_start = s;
                ev.fields_end = e;
            }
            Ok(Parsed::Pending) => {
                sink.rollback(mark);
                pending.push(i);
            }
            Err(err) => {
                sink.rollback(mark);
                rejected.push((i, err.reason));
            }
        }
    }
    batch.fields = table;
    batch.events = events;
}

/// Emits what a CRI parser still holds (partial lines never completed) as one batch.
fn flush_cri(cri: &mut CriParser, source: u16) -> Option<Batch> {
    if !cri.has_pending() {
        return None;
    }
    let buf = bytes::Bytes::new();
    let mut batch = Batch::from_spans(buf.clone(), &[], source);
    let mut table = std::mem::take(&mut batch.fields);
    let mut events = Vec::new();
    loop {
        let mut sink = TapeSink::new(&mut table, &buf);
        let mark = sink.mark();
        if !cri.flush(&mut sink) {
            sink.rollback(mark);
            break;
        }
        let (s, e) = sink.finish(mark);
        events.push(Event {
            start: 0,
            len: 0,
            id: events.len() as u32,
            fields_start: s,
            fields_end: e,
            form: EventForm::Fields,
            flags: 0,
        });
    }
    batch.fields = table;
    batch.events = events;
    Some(batch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use sluice_engine::encode::{encode_batch, Encoding};
    use sluice_engine::metrics::{ComponentKind, Registry};

    /// A toy format for the machinery: `word word ...` → `w0`, `w1`, ...; `P` alone is a
    /// partial line; an empty line is an error.
    pub struct WordsParser;
    impl LineParser for WordsParser {
        fn parse<S: FieldSink>(&mut self, line: &[u8], out: &mut S) -> Result<Parsed, ParseError> {
            if line == b"P" {
                return Ok(Parsed::Pending);
            }
            if line.is_empty() {
                return Err(ParseError::new("empty"));
            }
            const KEYS: [&[u8]; 4] = [b"w0", b"w1", b"w2", b"w3"];
            for (k, w) in KEYS.iter().zip(line.split(|&b| b == b' ')) {
                out.str(k, w);
            }
            out.int(b"n", line.len() as i64);
            Ok(Parsed::Event)
        }
    }

    fn transform(engine: Engine, field: Option<&str>) -> (Parse, Arc<Registry>) {
        let reg = Registry::new();
        let m = reg.component("p", ComponentKind::Transform, "parse");
        let mut cfg: ParseConfig = serde_json::from_str("{\"format\":\"json\"}").unwrap();
        cfg.field = field.map(String::from);
        let mut p = cfg.build(&m).unwrap();
        p.engine = engine;
        (p, reg)
    }

    fn run(p: &mut Parse, input: &'static [u8]) -> (String, String) {
        let mut em = Emitter::with_connected(0b11);
        let mut batch = Batch::from_lines(Bytes::from_static(input), 0);
        if p.field
            .as_ref()
            .is_some_and(|f| f.segments()[0].as_ref() != "message")
        {
            json::parse_batch(&mut batch, &mut Vec::new());
        }
        p.process(batch, &mut em);
        let mut main = Vec::new();
        let mut dropped = Vec::new();
        for (port, b) in em.take() {
            let out = if port == 0 { &mut main } else { &mut dropped };
            encode_batch(Encoding::Ndjson, &b, out);
        }
        (
            String::from_utf8(main).unwrap(),
            String::from_utf8(dropped).unwrap(),
        )
    }

    #[test]
    fn line_parser_fills_fields_pending_and_errors() {
        let (mut p, _r) = transform(Engine::Line(Box::new(AnyParser::Test(WordsParser))), None);
        let (main, dropped) = run(&mut p, b"a b\nP\n\nc \"d\"\n");
        assert_eq!(
            main,
            "{\"w0\":\"a\",\"w1\":\"b\",\"n\":3}\n{\"w0\":\"c\",\"w1\":\"\\\"d\\\"\",\"n\":5}\n"
        );
        assert_eq!(
            dropped,
            "{\"message\":\"\",\"_meta\":{\"error\":\"invalid JSON: empty\"}}\n"
        );
    }

    #[test]
    fn json_in_a_field_merges_into_the_event() {
        let (mut p, _r) = transform(Engine::Json, Some("msg"));
        let (main, dropped) = run(
            &mut p,
            b"{\"a\":1,\"msg\":\"{\\\"b\\\":[true],\\\"c\\\":\\\"x\\\\\\\"y\\\"}\"}\n{\"msg\":\"nope\"}\n{\"a\":2}\n",
        );
        assert_eq!(
            main,
            "{\"a\":1,\"msg\":\"{\\\"b\\\":[true],\\\"c\\\":\\\"x\\\\\\\"y\\\"}\",\"b\":[true],\"c\":\"x\\\"y\"}\n"
        );
        assert!(
            dropped.contains("invalid JSON: not a JSON object"),
            "{dropped}"
        );
        assert!(
            dropped.contains("invalid JSON: the field is missing"),
            "{dropped}"
        );
    }

    #[test]
    fn line_parser_on_a_field_of_a_raw_line() {
        let (mut p, _r) = transform(
            Engine::Line(Box::new(AnyParser::Test(WordsParser))),
            Some("message"),
        );
        let (main, _) = run(&mut p, b"x y\n");
        assert_eq!(
            main,
            "{\"message\":\"x y\",\"w0\":\"x\",\"w1\":\"y\",\"n\":3}\n"
        );
    }

    fn configured(toml_text: &str) -> Result<Parse, (&'static str, String)> {
        let cfg: ParseConfig = toml::from_str(toml_text).map_err(|e| ("toml", e.to_string()))?;
        let reg = Registry::new();
        let m = reg.component("p", ComponentKind::Transform, "parse");
        cfg.build(&m)
    }

    fn parse_with(toml_text: &str, input: &'static [u8]) -> (String, String) {
        let mut p = configured(toml_text).unwrap();
        run(&mut p, input)
    }

    #[test]
    fn syslog_apache_nginx_through_the_transform() {
        let (main, dropped) = parse_with(
            "format = \"syslog\"",
            b"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut=\"3\" eventSource=\"Application\"] An application event\n<34>Oct 11 22:14:15 mymachine su: 'su root' failed\nnot syslog\n",
        );
        let lines: Vec<serde_json::Value> = main
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["host"], "mymachine.example.com");
        assert_eq!(lines[0]["timestamp"], "2003-10-11T22:14:15.003Z");
        assert_eq!(lines[0]["structured_data"]["exampleSDID@32473"]["iut"], "3");
        assert_eq!(lines[0]["message"], "An application event");
        assert_eq!(lines[0]["level"], "notice");
        assert_eq!(lines[1]["appname"], "su");
        assert_eq!(lines[1]["severity"], "crit");
        assert!(dropped.contains("invalid syslog: "), "{dropped}");

        let (main, _) = parse_with(
            "format = \"apache\"",
            b"127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] \"GET /apache_pb.gif HTTP/1.0\" 200 2326 \"http://www.example.com/start.html\" \"Mozilla/4.08 [en] (Win98; I ;Nav)\"\n",
        );
        let v: serde_json::Value = serde_json::from_str(main.trim()).unwrap();
        assert_eq!(v["client"], "127.0.0.1");
        assert_eq!(v["user"], "frank");
        assert_eq!(v["status"], 200);
        assert_eq!(v["size"], 2326);
        assert_eq!(v["timestamp"], "2000-10-10T20:55:36Z");
        assert_eq!(v["agent"], "Mozilla/4.08 [en] (Win98; I ;Nav)");

        let (main, _) = parse_with(
            "format = \"nginx\"\nmode = \"error\"",
            b"2026/11/21 09:34:39 [error] 1234#5678: *99 open() failed, client: 1.2.3.4, server: x\n",
        );
        let v: serde_json::Value = serde_json::from_str(main.trim()).unwrap();
        assert_eq!(v["level"], "error");
        assert_eq!(v["client"], "1.2.3.4");
    }

    #[test]
    fn free_form_formats_normalise_timestamp_and_level() {
        let (main, _) = parse_with(
            "format = \"logfmt\"",
            b"timestamp=2026-11-21T10:00:00+01:00 level=WARNING msg=\"disk full\" user=bob\n",
        );
        assert_eq!(
            main,
            "{\"timestamp\":\"2026-11-21T09:00:00Z\",\"level\":\"warn\",\"msg\":\"disk full\",\"user\":\"bob\"}\n"
        );
        let (main, _) = parse_with(
            "format = \"logfmt\"\nnormalize = false",
            b"timestamp=2026-11-21T10:00:00+01:00 level=WARNING\n",
        );
        assert_eq!(
            main,
            "{\"timestamp\":\"2026-11-21T10:00:00+01:00\",\"level\":\"WARNING\"}\n"
        );
        let (main, _) = parse_with(
            "format = \"kv\"\nfield_split = \"&\"\nvalue_split = \":\"\nprefix = \"q_\"\ntimestamp_format = \"%d.%m.%Y %H:%M\"",
            b"a:1&b:two\n",
        );
        assert_eq!(main, "{\"q_a\":\"1\",\"q_b\":\"two\"}\n");
        let (main, _) = parse_with(
            "format = \"regex\"\npattern = '^(?P<timestamp>\\S+ \\S+) (?P<level>\\w+) (?P<message>.*)$'\ntimestamp_format = \"%d.%m.%Y %H:%M\"",
            b"21.11.2026 09:30 E boom\n",
        );
        assert_eq!(
            main,
            "{\"timestamp\":\"2026-11-21T09:30:00Z\",\"level\":\"error\",\"message\":\"boom\"}\n"
        );
        let (main, dropped) = parse_with(
            "format = \"grok\"\npatterns = [\"%{IP:client} %{WORD:method} %{URIPATHPARAM:request} %{NUMBER:bytes:int} %{NUMBER:duration:float}\"]",
            b"55.3.244.1 GET /index.html 15824 0.043\nnope\n",
        );
        assert_eq!(
            main,
            "{\"client\":\"55.3.244.1\",\"method\":\"GET\",\"request\":\"/index.html\",\"bytes\":15824,\"duration\":0.043}\n"
        );
        assert!(
            dropped.contains("invalid grok: no pattern matched"),
            "{dropped}"
        );
    }

    #[test]
    fn cri_joins_partials_and_flushes_at_shutdown() {
        let mut p = configured("format = \"cri\"").unwrap();
        let (main, _) = run(
            &mut p,
            b"2026-11-21T09:00:00.1Z stdout P hello \n2026-11-21T09:00:00.2Z stdout F world\n2026-11-21T09:00:01Z stderr P left over\n",
        );
        assert_eq!(
            main,
            "{\"timestamp\":\"2026-11-21T09:00:00.100Z\",\"stream\":\"stdout\",\"message\":\"hello world\"}\n"
        );
        assert!(p.wants_tick());
        let mut em = Emitter::with_connected(0b11);
        p.tick(std::time::Instant::now(), true, &mut em);
        let out = em.take();
        assert_eq!(out.len(), 1);
        let mut text = Vec::new();
        encode_batch(Encoding::Ndjson, &out[0].1, &mut text);
        assert_eq!(
            String::from_utf8(text).unwrap(),
            "{\"timestamp\":\"2026-11-21T09:00:01Z\",\"stream\":\"stderr\",\"message\":\"left over\"}\n"
        );
    }

    #[test]
    fn auto_labels_every_format() {
        let (main, dropped) = parse_with(
            "format = \"auto\"",
            b"{\"level\":\"info\",\"n\":1}\n<134>1 2026-11-20T12:34:56.789Z web-113 checkout-07 4242 req - {\"a\":1}\n<34>Oct 11 22:14:15 mymachine su: failed\n10.0.0.1 - - [10/Oct/2000:13:55:36 -0700] \"GET / HTTP/1.1\" 200 5 \"-\" \"curl/8\"\n10.0.0.1 - - [10/Oct/2000:13:55:36 -0700] \"GET / HTTP/1.1\" 200 5\nts=1 level=info msg=hi\n2026-11-21T09:00:00Z stdout F container line\njust some words\n",
        );
        assert_eq!(dropped, "");
        let labels: Vec<String> = main
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                v["log_format"].as_str().unwrap().to_string()
            })
            .collect();
        assert_eq!(
            labels,
            [
                "json",
                "syslog_rfc5424",
                "syslog_rfc3164",
                "apache_combined",
                "apache_common",
                "logfmt",
                "cri",
                "plain"
            ]
        );
        assert!(main.starts_with("{\"level\":\"info\",\"n\":1,\"log_format\":\"json\"}\n"));
        assert!(main.ends_with("{\"message\":\"just some words\",\"log_format\":\"plain\"}\n"));
    }

    #[test]
    fn auto_keeps_a_false_logfmt_guess_as_plain_text() {
        let line: &'static [u8] =
            b"88;88  =\" 2Dec@=2May W=8A =! 2Dec@=2May W=8AA=2Dec@c@=2M2 2Dec@2M=c";
        assert_eq!(detect_format(line), DetectedFormat::Logfmt);
        let mut input = line.to_vec();
        input.push(b'\n');
        let (main, dropped) = parse_with("format = \"auto\"", Box::leak(input.into_boxed_slice()));
        assert_eq!(dropped, "");
        let v: serde_json::Value = serde_json::from_str(main.trim()).unwrap();
        assert!(
            v["log_format"] == "plain" || v["log_format"] == "logfmt",
            "{main}"
        );
    }

    #[test]
    fn options_are_checked_against_the_format() {
        let err = |t: &str| configured(t).err().unwrap();
        assert_eq!(err("format = \"json\"\npattern = \"x\"").0, "pattern");
        assert!(err("format = \"json\"\npattern = \"x\"")
            .1
            .contains("option of format regex / grok"));
        assert_eq!(err("format = \"regex\"").0, "pattern");
        assert_eq!(err("format = \"syslog\"\nmode = \"bsd\"").0, "mode");
        assert_eq!(
            err("format = \"grok\"\npattern = \"%{NOPE:x}\"").0,
            "pattern"
        );
        assert!(err("format = \"grok\"\npattern = \"%{NOPE:x}\"")
            .1
            .contains("unknown pattern NOPE"));
        assert_eq!(err("format = \"regex\"\npattern = \"(\"").0, "pattern");
        assert_eq!(err("format = \"kv\"\nfield_split = \"\"").0, "field_split");
        assert_eq!(
            err("format = \"logfmt\"\ntimestamp_format = \"%Q\"").0,
            "timestamp_format"
        );
        assert_eq!(err("format = \"json\"\nfield = \"a..b\"").0, "field");
    }
}

//! The TOML contract: loading a pipeline file into typed component configs, with every
//! error naming the file, line and key.
//!
//! Loading runs in stages, collecting as many errors as it can: environment substitution,
//! TOML syntax, the `[engine]`/`[api]` sections, then each component: its `type` picks the
//! config struct (from `operators` or `connectors`), which rejects unknown keys. Graph
//! errors (unknown inputs, cycles) are found by [`crate::graph`].

mod env;
mod locate;

pub use locate::Locator;

use serde::Deserialize;
use sluice_connectors::sinks::blackhole::BlackholeConfig;
use sluice_connectors::sinks::console::ConsoleConfig;
use sluice_connectors::sinks::file::FileSinkConfig;
use sluice_connectors::sinks::http::HttpSinkConfig;
use sluice_connectors::sources::file::FileConfig;
use sluice_connectors::sources::generator::GeneratorConfig;
use sluice_connectors::sources::http::HttpSourceConfig;
use sluice_connectors::sources::stdin::StdinConfig;
use sluice_connectors::sources::syslog::SyslogSourceConfig;
use sluice_engine::ring::WhenFull;
use sluice_engine::units::HumanDuration;
use sluice_operators::transforms::aggregate::AggregateConfig;
use sluice_operators::transforms::dedupe::DedupeConfig;
use sluice_operators::transforms::enrich::EnrichConfig;
use sluice_operators::transforms::fields::FieldsConfig;
use sluice_operators::transforms::filter::FilterConfig;
use sluice_operators::transforms::log_to_metric::LogToMetricConfig;
use sluice_operators::transforms::parse::ParseConfig;
use sluice_operators::transforms::redact::RedactConfig;
use sluice_operators::transforms::route::RouteConfig;
use sluice_operators::transforms::sample::SampleConfig;
use sluice_operators::transforms::throttle::ThrottleConfig;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// One problem in a config file.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError {
    pub file: PathBuf,
    pub line: Option<usize>,
    pub column: Option<usize>,
    /// Dotted key path, e.g. `sources.app.include`.
    pub key: Option<String>,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(l) = self.line {
            write!(f, ":{l}")?;
            if let Some(c) = self.column {
                write!(f, ":{c}")?;
            }
        }
        write!(f, ": ")?;
        if let Some(k) = &self.key {
            write!(f, "`{k}`: ")?;
        }
        write!(f, "{}", self.message)
    }
}

/// All the errors of one file.
#[derive(Debug, Clone)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "error: {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// `engine.shards`: a number or `"auto"` (one per core in `engine.cores`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Shards {
    #[default]
    Auto,
    Count(usize),
}

impl<'de> Deserialize<'de> for Shards {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum R {
            N(i64),
            S(String),
        }
        match R::deserialize(d)
            .map_err(|_| serde::de::Error::custom("expected a number of shards or \"auto\""))?
        {
            R::N(n) if (1..=1024).contains(&n) => Ok(Shards::Count(n as usize)),
            R::N(n) => Err(serde::de::Error::custom(format!(
                "shards must be between 1 and 1024, not {n}"
            ))),
            R::S(s) if s == "auto" => Ok(Shards::Auto),
            R::S(s) => Err(serde::de::Error::custom(format!(
                "expected a number of shards or \"auto\", not \"{s}\""
            ))),
        }
    }
}

/// `engine.cores`: `"auto"`, a range list `"0-3,6"`, or an array `[0, 2]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Cores {
    #[default]
    Auto,
    List(Vec<usize>),
}

impl<'de> Deserialize<'de> for Cores {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum R {
            L(Vec<usize>),
            S(String),
        }
        match R::deserialize(d).map_err(|_| {
            serde::de::Error::custom(
                "expected \"auto\", a range like \"0-3\", or a list like [0, 2]",
            )
        })? {
            R::L(v) if v.is_empty() => Err(serde::de::Error::custom("the core list is empty")),
            R::L(v) => Ok(Cores::List(v)),
            R::S(s) if s == "auto" => Ok(Cores::Auto),
            R::S(s) => parse_core_ranges(&s)
                .map(Cores::List)
                .map_err(serde::de::Error::custom),
        }
    }
}

/// Parses `"0-3,6"`.
pub fn parse_core_ranges(s: &str) -> Result<Vec<usize>, String> {
    let bad = || {
        format!("invalid core list \"{s}\": expected \"auto\", \"0-3\", \"0,2\" or a mix like \"0-3,6\"")
    };
    let mut out = Vec::new();
    for part in s.split(',') {
        let part = part.trim();
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (usize, usize) = (
                    a.trim().parse().map_err(|_| bad())?,
                    b.trim().parse().map_err(|_| bad())?,
                );
                if a > b {
                    return Err(bad());
                }
                out.extend(a..=b);
            }
            None => out.push(part.parse().map_err(|_| bad())?),
        }
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

/// `[engine]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineConfig {
    #[serde(default)]
    pub shards: Shards,
    #[serde(default)]
    pub cores: Cores,
    /// Checkpoints and buffers live here.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// Most events per batch.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// Batches each ring between threads can hold.
    #[serde(default = "default_ring_capacity")]
    pub ring_capacity: usize,
    /// How long a drain on SIGTERM/SIGINT may take.
    #[serde(default = "default_shutdown_timeout")]
    pub shutdown_timeout: HumanDuration,
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("/var/lib/sluice")
}
fn default_batch_size() -> usize {
    1024
}
fn default_ring_capacity() -> usize {
    16
}
fn default_shutdown_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(30))
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            shards: Shards::Auto,
            cores: Cores::Auto,
            data_dir: default_data_dir(),
            batch_size: default_batch_size(),
            ring_capacity: default_ring_capacity(),
            shutdown_timeout: default_shutdown_timeout(),
        }
    }
}

/// `[api]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    /// Where `/health`, `/ready` and `/metrics` are served.
    #[serde(default = "default_api_address")]
    pub address: SocketAddr,
    #[serde(default = "default_true")]
    pub enabled: bool,
}

fn default_api_address() -> SocketAddr {
    "127.0.0.1:8686".parse().expect("static address")
}
fn default_true() -> bool {
    true
}

/// `sample_rate` when a sink says `when_full = "sample"` without one: keep 1 batch in 10.
pub const DEFAULT_SAMPLE_RATE: u32 = 10;

/// In [`TransformKind::exchange_key`]: the key is the event's raw line.
pub const LINE_KEY: &str = "<line>";

/// A source's typed options.
#[derive(Debug, Clone)]
pub enum SourceKind {
    Stdin(StdinConfig),
    Generator(GeneratorConfig),
    File(Box<FileConfig>),
    Syslog(Box<SyslogSourceConfig>),
    Http(Box<HttpSourceConfig>),
}

impl SourceKind {
    /// Sources that parse what they receive on the shards: the `parse` transform the loader
    /// places after them (as `ID:parse`; consumers of `ID` read it, `ID.dropped` is its
    /// rejects).
    pub fn implicit_parse(&self) -> Option<ParseConfig> {
        match self {
            SourceKind::Syslog(c) => {
                let mode = c.format.parser_mode()?;
                let text = format!("format = \"syslog\"\nmode = \"{mode}\"\n");
                Some(toml::from_str(&text).expect("static parse options"))
            }
            _ => None,
        }
    }
}

/// The id of the parse transform placed after source `id` (see
/// [`SourceKind::implicit_parse`]); `:` cannot appear in configured ids.
pub fn implicit_parse_id(id: &str) -> String {
    format!("{id}:parse")
}

/// A transform's typed options.
#[derive(Debug, Clone)]
pub enum TransformKind {
    Parse(ParseConfig),
    Filter(FilterConfig),
    Fields(FieldsConfig),
    Aggregate(AggregateConfig),
    LogToMetric(LogToMetricConfig),
    Enrich(Box<EnrichConfig>),
    Redact(Box<RedactConfig>),
    Sample(SampleConfig),
    Throttle(ThrottleConfig),
    Dedupe(DedupeConfig),
    Route(RouteConfig),
}

/// A sink's typed options.
#[derive(Debug, Clone)]
pub enum SinkKind {
    Blackhole(BlackholeConfig),
    Console(ConsoleConfig),
    File(FileSinkConfig),
    Http(Box<HttpSinkConfig>),
}

pub const SOURCE_TYPES: &[&str] = &["file", "generator", "http", "stdin", "syslog"];
pub const TRANSFORM_TYPES: &[&str] = &[
    "aggregate",
    "dedupe",
    "enrich",
    "fields",
    "filter",
    "log_to_metric",
    "parse",
    "redact",
    "route",
    "sample",
    "throttle",
];
pub const SINK_TYPES: &[&str] = &["blackhole", "console", "file", "http"];

impl TransformKind {
    /// Named outputs besides the main one, in port order (port 1, 2, ...).
    pub fn named_outputs(&self) -> Vec<String> {
        let fixed: &[&str] = match self {
            TransformKind::Parse(_) => ParseConfig::NAMED_OUTPUTS,
            TransformKind::Filter(_) => FilterConfig::NAMED_OUTPUTS,
            TransformKind::Fields(_) => &[],
            TransformKind::Aggregate(_) => AggregateConfig::NAMED_OUTPUTS,
            TransformKind::LogToMetric(_) => LogToMetricConfig::NAMED_OUTPUTS,
            TransformKind::Enrich(_) => EnrichConfig::NAMED_OUTPUTS,
            TransformKind::Redact(_) => RedactConfig::NAMED_OUTPUTS,
            TransformKind::Sample(_) => SampleConfig::NAMED_OUTPUTS,
            TransformKind::Throttle(_) => ThrottleConfig::NAMED_OUTPUTS,
            TransformKind::Dedupe(_) => DedupeConfig::NAMED_OUTPUTS,
            TransformKind::Route(c) => return c.named_outputs(),
        };
        fixed.iter().map(|s| s.to_string()).collect()
    }

    /// What keys the transform's state (sample per key, throttle, dedupe, aggregate): the
    /// planner puts an exchange before it so each key lives on one shard. `None` for
    /// transforms without keyed state; `Some([])` sends every event to one shard;
    /// `Some(["<line>"])` keys by the raw line.
    pub fn exchange_key(&self) -> Option<Vec<String>> {
        match self {
            TransformKind::Aggregate(c) => Some(c.key_fields()),
            TransformKind::Sample(c) => Some(c.key_fields()).filter(|k| !k.is_empty()),
            TransformKind::Throttle(c) => Some(c.key_fields()).filter(|k| !k.is_empty()),
            TransformKind::Dedupe(c) if c.keyed_by_line() => Some(vec![LINE_KEY.into()]),
            TransformKind::Dedupe(c) => Some(c.key_fields()),
            TransformKind::Parse(_)
            | TransformKind::Filter(_)
            | TransformKind::Fields(_)
            | TransformKind::LogToMetric(_)
            | TransformKind::Enrich(_)
            | TransformKind::Redact(_)
            | TransformKind::Route(_) => None,
        }
    }

    /// Whether the transform keeps state by key (then it must run after an exchange).
    pub fn is_keyed(&self) -> bool {
        self.exchange_key().is_some()
    }
}

/// The dead-letter output of a sink: `ID.dead_letter`.
pub const DEAD_LETTER: &str = "dead_letter";

/// Named outputs (`ID.NAME`) of each sink type that has any: where its writer thread hands
/// events that failed for good. File and console sinks could add it here later.
pub const SINK_NAMED_OUTPUTS: &[(&str, &[&str])] = &[("http", &[DEAD_LETTER])];

/// The named outputs of sinks of type `type_name`.
pub fn sink_named_outputs(type_name: &str) -> &'static [&'static str] {
    SINK_NAMED_OUTPUTS
        .iter()
        .find(|(t, _)| *t == type_name)
        .map_or(&[], |(_, o)| o)
}

/// The sink types that have the named output `name`.
pub fn sink_types_with_output(name: &str) -> Vec<&'static str> {
    SINK_NAMED_OUTPUTS
        .iter()
        .filter(|(_, o)| o.contains(&name))
        .map(|(t, _)| *t)
        .collect()
}

impl SinkKind {
    /// Whether the sink has a writer thread (else it runs inline on the shards).
    pub fn has_writer_thread(&self) -> bool {
        !matches!(self, SinkKind::Blackhole(_))
    }
}

#[derive(Debug, Clone)]
pub struct SourceDef {
    pub id: String,
    pub type_name: String,
    pub kind: SourceKind,
}

#[derive(Debug, Clone)]
pub struct TransformDef {
    pub id: String,
    pub type_name: String,
    pub inputs: Vec<String>,
    pub kind: TransformKind,
}

#[derive(Debug, Clone)]
pub struct SinkDef {
    pub id: String,
    pub type_name: String,
    pub inputs: Vec<String>,
    pub kind: SinkKind,
    pub when_full: WhenFull,
    /// `buffer = { type = "disk", ... }`; `None` for the memory ring.
    pub buffer: Option<sluice_engine::wal::DiskBufferConfig>,
}

/// A loaded, type-checked pipeline (graph checks are separate: [`crate::graph::Graph`]).
#[derive(Debug, Clone)]
pub struct Config {
    pub path: PathBuf,
    pub engine: EngineConfig,
    pub api: Option<ApiConfig>,
    pub sources: Vec<SourceDef>,
    pub transforms: Vec<TransformDef>,
    pub sinks: Vec<SinkDef>,
}

/// Collects errors with positions.
pub struct Reporter<'a> {
    pub file: &'a Path,
    pub locator: &'a Locator,
    pub errors: Vec<ConfigError>,
}

impl Reporter<'_> {
    pub fn at(&mut self, key: &[String], message: impl Into<String>) {
        let pos = self.locator.find(key);
        self.errors.push(ConfigError {
            file: self.file.to_path_buf(),
            line: pos.map(|p| p.0),
            column: pos.map(|p| p.1),
            key: (!key.is_empty()).then(|| key.join(".")),
            message: message.into(),
        });
    }

    fn serde(&mut self, base: &[String], e: serde_path_to_error::Error<toml::de::Error>) {
        let mut key = base.to_vec();
        for seg in e.path().iter() {
            match seg {
                serde_path_to_error::Segment::Map { key: k } => key.push(k.clone()),
                serde_path_to_error::Segment::Seq { index } => key.push(index.to_string()),
                serde_path_to_error::Segment::Enum { .. }
                | serde_path_to_error::Segment::Unknown => {}
            }
        }
        let msg = toml_words(e.inner().message().trim());
        // Name an unknown or missing key in the key path (the path may already end with it);
        // a missing key is located at its table.
        if let Some(name) = ["unknown field `", "missing field `"]
            .iter()
            .find_map(|p| msg.strip_prefix(p))
            .and_then(|r| r.split('`').next())
        {
            if key.last().map(String::as_str) != Some(name) {
                key.push(name.to_string());
            }
        }
        self.at(&key, msg);
    }

    /// Deserializes a section or component, reporting every bad key rather than only the
    /// first: after an error under a key, that key is set aside and the rest checked again.
    fn typed<T: serde::de::DeserializeOwned>(
        &mut self,
        base: &[String],
        value: &toml::Value,
    ) -> Option<T> {
        let mut value = value.clone();
        let mut set_aside = Vec::new();
        loop {
            let e = match serde_path_to_error::deserialize::<_, T>(value.clone()) {
                Ok(v) => return set_aside.is_empty().then_some(v),
                Err(e) => e,
            };
            let missing = e
                .inner()
                .message()
                .strip_prefix("missing field `")
                .and_then(|r| r.split('`').next());
            if missing.is_some_and(|m| set_aside.iter().any(|k| k == m)) {
                // A required key that was set aside: its error is reported already.
                return None;
            }
            let top = e.path().iter().find_map(|seg| match seg {
                serde_path_to_error::Segment::Map { key } => Some(key.clone()),
                _ => None,
            });
            self.serde(base, e);
            match top {
                Some(k) if value.as_table_mut().and_then(|t| t.remove(&k)).is_some() => {
                    set_aside.push(k)
                }
                _ => return None,
            }
        }
    }
}

/// Says a serde message in TOML's words: "expected an array", not "expected a sequence".
fn toml_words(msg: &str) -> String {
    let msg = match msg.find(", expected struct ") {
        Some(i) => format!("{}, expected a table", &msg[..i]),
        None => msg.to_string(),
    };
    [
        ("expected a sequence", "expected an array"),
        ("expected a map", "expected a table"),
        ("expected usize", "expected a whole number"),
        ("expected u64", "expected a whole number"),
        ("expected u32", "expected a whole number"),
        ("expected f64", "expected a number"),
    ]
    .iter()
    .fold(msg, |m, (from, to)| m.replace(from, to))
}

/// `buffer = { type = "memory" | "disk", max_size, when_full, sync, segment_size }`.
fn parse_buffer(
    v: &toml::Value,
    base: &[String],
    rep: &mut Reporter,
) -> Option<sluice_engine::wal::DiskBufferConfig> {
    use sluice_engine::units::parse_size;
    use sluice_engine::wal::{DiskBufferConfig, SyncMode, DEFAULT_SEGMENT_SIZE};
    let at = |key: &str| [base.to_vec(), k(&["buffer", key])].concat();
    let Some(t) = v.as_table() else {
        rep.at(
            &[base.to_vec(), k(&["buffer"])].concat(),
            "`buffer` must be a table, like { type = \"disk\", max_size = \"10GiB\" }",
        );
        return None;
    };
    for key in t.keys() {
        if !["type", "max_size", "when_full", "sync", "segment_size"].contains(&key.as_str()) {
            rep.at(
                &at(key),
                format!("unknown buffer option `{key}` (known: type, max_size, when_full, sync, segment_size)"),
            );
        }
    }
    match t.get("type").and_then(|x| x.as_str()) {
        Some("memory") => return None,
        Some("disk") => {}
        _ => {
            rep.at(&at("type"), "expected \"memory\" or \"disk\"");
            return None;
        }
    }
    let size = |key: &str, default: u64, rep: &mut Reporter| -> u64 {
        match t.get(key) {
            None => default,
            Some(toml::Value::String(s)) => match parse_size(s) {
                Ok(n) if n > 0 => n,
                Ok(_) => {
                    rep.at(&at(key), "must be above zero");
                    default
                }
                Err(e) => {
                    rep.at(&at(key), e);
                    default
                }
            },
            Some(toml::Value::Integer(n)) if *n > 0 => *n as u64,
            Some(_) => {
                rep.at(&at(key), "expected a size, like \"10GiB\"");
                default
            }
        }
    };
    let max_size = size("max_size", 10 << 30, rep);
    let segment_size = size("segment_size", DEFAULT_SEGMENT_SIZE, rep);
    let when_full = match t.get("when_full").map(|x| x.as_str()) {
        None | Some(Some("block")) => WhenFull::Block,
        Some(Some("drop_newest")) => WhenFull::DropNewest,
        Some(_) => {
            rep.at(&at("when_full"), "expected \"block\" or \"drop_newest\"");
            WhenFull::Block
        }
    };
    let sync = match t.get("sync").map(|x| x.as_str()) {
        None => SyncMode::Batch,
        Some(Some(s)) => match SyncMode::parse(s) {
            Ok(m) => m,
            Err(e) => {
                rep.at(&at("sync"), e);
                SyncMode::Batch
            }
        },
        Some(None) => {
            rep.at(&at("sync"), "expected \"batch\" or \"interval:100ms\"");
            SyncMode::Batch
        }
    };
    if segment_size > max_size {
        rep.at(
            &at("segment_size"),
            "`segment_size` must not be above `max_size`",
        );
    }
    Some(DiskBufferConfig {
        max_size,
        when_full,
        sync,
        segment_size,
    })
}

fn k(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|s| s.to_string()).collect()
}

/// Reads and checks a config file.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors(vec![ConfigError {
            file: path.to_path_buf(),
            line: None,
            column: None,
            key: None,
            message: format!("cannot read the file: {e}"),
        }])
    })?;
    load_str(path, &text, |v| std::env::var(v).ok())
}

/// Checks config text (`path` is only used in messages).
pub fn load_str(
    path: &Path,
    text: &str,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Config, ConfigErrors> {
    let err = |line: Option<usize>, column: Option<usize>, message: String| ConfigError {
        file: path.to_path_buf(),
        line,
        column,
        key: None,
        message,
    };
    let text = env::substitute(text, env)
        .map_err(|es| ConfigErrors(es.into_iter().map(|(l, m)| err(Some(l), None, m)).collect()))?;
    let locator = Locator::new(&text);
    let root: toml::Table = match toml::from_str(&text) {
        Ok(t) => t,
        Err(e) => {
            let pos = e.span().map(|s| locator.line_col(s.start));
            return Err(ConfigErrors(vec![err(
                pos.map(|p| p.0),
                pos.map(|p| p.1),
                // One line per error: toml puts "expected ..." on a line of its own.
                format!(
                    "invalid TOML: {}",
                    e.message().trim().lines().collect::<Vec<_>>().join(": ")
                ),
            )]));
        }
    };
    let mut rep = Reporter {
        file: path,
        locator: &locator,
        errors: Vec::new(),
    };
    for key in root.keys() {
        if !["engine", "api", "sources", "transforms", "sinks"].contains(&key.as_str()) {
            rep.at(
                &k(&[key]),
                format!(
                    "unknown section `{key}` (expected engine, api, sources, transforms or sinks)"
                ),
            );
        }
    }
    let engine = match root.get("engine") {
        None => EngineConfig::default(),
        Some(v) => match rep.typed::<EngineConfig>(&k(&["engine"]), v) {
            Some(e) => {
                if e.batch_size == 0 || e.batch_size > 65536 {
                    rep.at(&k(&["engine", "batch_size"]), "must be between 1 and 65536");
                }
                if e.ring_capacity == 0 {
                    rep.at(&k(&["engine", "ring_capacity"]), "must be at least 1");
                }
                e
            }
            None => EngineConfig::default(),
        },
    };
    let api = match root.get("api") {
        None => None,
        Some(v) => rep
            .typed::<ApiConfig>(&k(&["api"]), v)
            .and_then(|a| a.enabled.then_some(a)),
    };
    let mut sources = Vec::new();
    let mut transforms = Vec::new();
    let mut sinks = Vec::new();
    for (section, kinds) in [
        ("sources", SOURCE_TYPES),
        ("transforms", TRANSFORM_TYPES),
        ("sinks", SINK_TYPES),
    ] {
        let Some(v) = root.get(section) else { continue };
        let Some(table) = v.as_table() else {
            rep.at(
                &k(&[section]),
                format!("`{section}` must be a table of components like [{section}.my_id]"),
            );
            continue;
        };
        for (id, comp) in table {
            let base = k(&[section, id]);
            if let Err(m) = check_id(id) {
                rep.at(&base, m);
                continue;
            }
            let Some(ct) = comp.as_table() else {
                rep.at(
                    &base,
                    format!("a component must be a table: [{section}.{id}]"),
                );
                continue;
            };
            let mut opts = ct.clone();
            let type_name = match opts.remove("type") {
                Some(toml::Value::String(s)) => s,
                Some(_) => {
                    rep.at(
                        &[base.clone(), k(&["type"])].concat(),
                        "`type` must be a string",
                    );
                    continue;
                }
                None => {
                    rep.at(
                        &base,
                        format!("missing `type` (one of: {})", kinds.join(", ")),
                    );
                    continue;
                }
            };
            if !kinds.contains(&type_name.as_str()) {
                let what = &section[..section.len() - 1];
                rep.at(
                    &[base.clone(), k(&["type"])].concat(),
                    format!(
                        "unknown {what} type `{type_name}` (known: {})",
                        kinds.join(", ")
                    ),
                );
                continue;
            }
            let inputs = match opts.remove("inputs") {
                None => None,
                Some(toml::Value::Array(a)) => {
                    let mut v = Vec::new();
                    for (i, x) in a.iter().enumerate() {
                        match x.as_str() {
                            Some(s) => v.push(s.to_string()),
                            None => rep.at(
                                &[base.clone(), k(&["inputs", &i.to_string()])].concat(),
                                "inputs must be component IDs (strings)",
                            ),
                        }
                    }
                    Some(v)
                }
                Some(_) => {
                    rep.at(
                        &[base.clone(), k(&["inputs"])].concat(),
                        "`inputs` must be an array of component IDs, like [\"parse\"]",
                    );
                    Some(Vec::new())
                }
            };
            let when_full = match opts.remove("when_full") {
                None => WhenFull::Block,
                Some(v) if section == "sinks" => match v.as_str() {
                    Some("block") => WhenFull::Block,
                    Some("drop_newest") => WhenFull::DropNewest,
                    Some("sample") => WhenFull::Sample {
                        rate: DEFAULT_SAMPLE_RATE,
                    },
                    _ => {
                        rep.at(
                            &[base.clone(), k(&["when_full"])].concat(),
                            "expected \"block\", \"drop_newest\" or \"sample\"",
                        );
                        WhenFull::Block
                    }
                },
                Some(v) => {
                    opts.insert("when_full".into(), v);
                    WhenFull::Block
                }
            };
            let when_full = match opts.remove("sample_rate") {
                None => when_full,
                Some(v) if section == "sinks" => {
                    let at = [base.clone(), k(&["sample_rate"])].concat();
                    match (when_full, v.as_integer()) {
                        (WhenFull::Sample { .. }, Some(n)) if (2..=1_000_000).contains(&n) => {
                            WhenFull::Sample { rate: n as u32 }
                        }
                        (WhenFull::Sample { .. }, _) => {
                            rep.at(
                                &at,
                                "expected a whole number from 2 to 1000000 (keep 1 batch in N while the sink is full)",
                            );
                            when_full
                        }
                        _ => {
                            rep.at(
                                &at,
                                "`sample_rate` applies only with when_full = \"sample\"",
                            );
                            when_full
                        }
                    }
                }
                Some(v) => {
                    opts.insert("sample_rate".into(), v);
                    when_full
                }
            };
            let buffer = match opts.remove("buffer") {
                None => None,
                Some(v) if section == "sinks" => parse_buffer(&v, &base, &mut rep),
                Some(v) => {
                    opts.insert("buffer".into(), v);
                    None
                }
            };
            if section == "sources" {
                if inputs.is_some() {
                    rep.at(
                        &[base.clone(), k(&["inputs"])].concat(),
                        "a source reads from outside; it takes no `inputs`",
                    );
                }
            } else {
                match &inputs {
                    None => rep.at(
                        &base,
                        format!(
                            "missing `inputs`: a {} needs at least one upstream component",
                            &section[..section.len() - 1]
                        ),
                    ),
                    Some(v) if v.is_empty() => rep.at(
                        &[base.clone(), k(&["inputs"])].concat(),
                        "`inputs` is empty",
                    ),
                    _ => {}
                }
            }
            let value = toml::Value::Table(opts);
            macro_rules! typed {
                ($t:ty) => {
                    rep.typed::<$t>(&base, &value)
                };
            }
            let inputs = inputs.unwrap_or_default();
            let kind = match (section, type_name.as_str()) {
                ("sources", "stdin") => typed!(StdinConfig).map(SourceKind::Stdin),
                ("sources", "http") => typed!(HttpSourceConfig).and_then(|c| match c.validate() {
                    Ok(()) => Some(SourceKind::Http(Box::new(c))),
                    Err((key, m)) => {
                        rep.at(&[base.clone(), k(&[key])].concat(), m);
                        None
                    }
                }),
                ("sources", "syslog") => {
                    typed!(SyslogSourceConfig).and_then(|c| match c.validate() {
                        Ok(()) => Some(SourceKind::Syslog(Box::new(c))),
                        Err((key, m)) => {
                            rep.at(&[base.clone(), k(&[key])].concat(), m);
                            None
                        }
                    })
                }
                ("sources", "generator") => typed!(GeneratorConfig).map(SourceKind::Generator),
                ("sources", "file") => typed!(FileConfig).and_then(|c| match c.validate() {
                    Ok(()) => Some(SourceKind::File(Box::new(c))),
                    Err((key, m)) => {
                        rep.at(&[base.clone(), k(&[key])].concat(), m);
                        None
                    }
                }),
                _ => None,
            };
            if let Some(kind) = kind {
                sources.push(SourceDef {
                    id: id.clone(),
                    type_name: type_name.clone(),
                    kind,
                });
            }
            let kind = match (section, type_name.as_str()) {
                ("transforms", "parse") => typed!(ParseConfig).and_then(|c| match c.validate() {
                    Ok(()) => Some(TransformKind::Parse(c)),
                    Err((key, m)) => {
                        rep.at(&[base.clone(), k(&[key])].concat(), m);
                        None
                    }
                }),
                ("transforms", "filter") => typed!(FilterConfig).and_then(|c| match c.compile() {
                    Ok(_) => Some(TransformKind::Filter(c)),
                    Err(e) => {
                        rep.at(
                            &[base.clone(), k(&["condition"])].concat(),
                            format!("invalid condition: {e}"),
                        );
                        None
                    }
                }),
                ("transforms", "fields") => typed!(FieldsConfig).and_then(|c| match c.validate() {
                    Ok(()) => Some(TransformKind::Fields(c)),
                    Err(m) => {
                        rep.at(&base, m);
                        None
                    }
                }),
                ("transforms", "aggregate") => {
                    typed!(AggregateConfig).and_then(|c| match c.validate() {
                        Ok(_) => Some(TransformKind::Aggregate(c)),
                        Err(m) => {
                            rep.at(&base, m);
                            None
                        }
                    })
                }
                ("transforms", "log_to_metric") => {
                    typed!(LogToMetricConfig).and_then(|c| match c.validate() {
                        Ok(()) => Some(TransformKind::LogToMetric(c)),
                        Err(m) => {
                            rep.at(&base, m);
                            None
                        }
                    })
                }
                ("transforms", "redact") => typed!(RedactConfig).and_then(|c| match c.redactor() {
                    Ok(_) => Some(TransformKind::Redact(Box::new(c))),
                    Err(m) => {
                        rep.at(&base, m);
                        None
                    }
                }),
                ("transforms", "sample") => typed!(SampleConfig).and_then(|c| {
                    match c.build(&sluice_engine::metrics::ComponentMetrics::detached()) {
                        Ok(_) => Some(TransformKind::Sample(c)),
                        Err(m) => {
                            rep.at(&base, m);
                            None
                        }
                    }
                }),
                ("transforms", "throttle") => typed!(ThrottleConfig).and_then(|c| {
                    match c.build(&sluice_engine::metrics::ComponentMetrics::detached()) {
                        Ok(_) => Some(TransformKind::Throttle(c)),
                        Err(m) => {
                            rep.at(&base, m);
                            None
                        }
                    }
                }),
                ("transforms", "dedupe") => typed!(DedupeConfig).and_then(|c| {
                    match c.build(&sluice_engine::metrics::ComponentMetrics::detached()) {
                        Ok(_) => Some(TransformKind::Dedupe(c)),
                        Err(m) => {
                            rep.at(&base, m);
                            None
                        }
                    }
                }),
                ("transforms", "route") => typed!(RouteConfig).and_then(|c| match c.compile() {
                    Ok(_) => Some(TransformKind::Route(c)),
                    Err(e) => {
                        rep.at(&[base.clone(), k(&["routes"])].concat(), e.to_string());
                        None
                    }
                }),
                // Loading reads the table and database: a missing file is a config error.
                ("transforms", "enrich") => typed!(EnrichConfig).and_then(|c| match c.load() {
                    Ok(_) => Some(TransformKind::Enrich(Box::new(c))),
                    Err(m) => {
                        rep.at(&base, m);
                        None
                    }
                }),
                _ => None,
            };
            if let Some(kind) = kind {
                transforms.push(TransformDef {
                    id: id.clone(),
                    type_name: type_name.clone(),
                    inputs: inputs.clone(),
                    kind,
                });
            }
            let kind = match (section, type_name.as_str()) {
                ("sinks", "blackhole") => typed!(BlackholeConfig).map(SinkKind::Blackhole),
                ("sinks", "console") => typed!(ConsoleConfig).map(SinkKind::Console),
                ("sinks", "http") => typed!(HttpSinkConfig).and_then(|c| match c.validate() {
                    Ok(()) => Some(SinkKind::Http(Box::new(c))),
                    Err((key, m)) => {
                        // Keys below a table come dotted (`retry.max`).
                        let path: Vec<&str> = key.split('.').collect();
                        rep.at(&[base.clone(), k(&path)].concat(), m);
                        None
                    }
                }),
                ("sinks", "file") => typed!(FileSinkConfig).and_then(|c| match c.validate() {
                    Ok(_) => Some(SinkKind::File(c)),
                    Err(m) => {
                        rep.at(&[base.clone(), k(&["path"])].concat(), m);
                        None
                    }
                }),
                _ => None,
            };
            if let Some(kind) = kind {
                sinks.push(SinkDef {
                    id: id.clone(),
                    type_name: type_name.clone(),
                    inputs: inputs.clone(),
                    kind,
                    when_full,
                    buffer,
                });
            }
        }
    }
    let config = Config {
        path: path.to_path_buf(),
        engine,
        api,
        sources,
        transforms,
        sinks,
    };
    crate::graph::check(&config, &root, &mut rep);
    if rep.errors.is_empty() {
        let mut config = config;
        add_implicit_parsers(&mut config);
        Ok(config)
    } else {
        rep.errors
            .sort_by_key(|e| (e.line.unwrap_or(0), e.column.unwrap_or(0)));
        Err(ConfigErrors(rep.errors))
    }
}

/// Places the `parse` transform of each source that parses on the shards (syslog) right
/// after it, and points the source's consumers at it.
fn add_implicit_parsers(config: &mut Config) {
    for s in &config.sources {
        let Some(parse) = s.kind.implicit_parse() else {
            continue;
        };
        let pid = implicit_parse_id(&s.id);
        let dropped = format!("{}.dropped", s.id);
        let rewrite = |inputs: &mut Vec<String>| {
            for i in inputs.iter_mut() {
                if *i == s.id {
                    *i = pid.clone();
                } else if *i == dropped {
                    *i = format!("{pid}.dropped");
                }
            }
        };
        for t in &mut config.transforms {
            rewrite(&mut t.inputs);
        }
        for k in &mut config.sinks {
            rewrite(&mut k.inputs);
        }
        config.transforms.push(TransformDef {
            id: pid,
            type_name: "parse".into(),
            inputs: vec![s.id.clone()],
            kind: TransformKind::Parse(parse),
        });
    }
}

fn check_id(id: &str) -> Result<(), String> {
    if id.is_empty()
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(format!(
            "invalid component ID `{id}`: use letters, digits, `_` and `-`"
        ));
    }
    Ok(())
}

//! `type = "enrich"`: adds data looked up by a field of the event, from a lookup table (CSV
//! or JSON file) and/or a GeoIP database (MaxMind `.mmdb`).
//!
//! ```toml
//! [transforms.users]
//! type = "enrich"
//! key = "user_id"                     # the event field whose value is looked up
//! target = "user"                     # where the matched row goes (default "enrichment")
//! table = { path = "users.csv", key_column = "id" }
//! geoip = { database = "GeoLite2-City.mmdb", field = "client.ip", target = "geo" }
//! ```
//!
//! # Tables
//!
//! Loaded once, when the pipeline starts. `format` is `"csv"` or `"json"` (default: from
//! the file's extension). A CSV file has a header line; every row becomes an object of its
//! columns (all strings) keyed by `key_column`. A JSON file is either an array of objects
//! keyed by their `key_column` member, or an object mapping each key to its row object
//! (then `key_column` is not used). Duplicate keys: the last row wins, and the load
//! reports a warning. The event's key is compared as text: strings by their content,
//! integers in decimal (`42` matches a row keyed `"42"`), `true`/`false` as such.
//!
//! # GeoIP
//!
//! `field` holds an IP address (v4, or v6 in a v6 database). A hit writes an object with
//! what the database has of `country_code`, `country_name` (English), `city` (English),
//! `latitude`, `longitude`, `asn` and `organization`. Lookups are cached by address and
//! results by database record.
//!
//! # How rows are written
//!
//! Changes go through the batch overlay, which applies to every event of a batch. So the
//! batch is split: events that matched the same row (or GeoIP record) go out together in a
//! sibling batch (same buffer, tape and acknowledgement) carrying one `set` of the row;
//! events without a match go on unchanged. The cost is one sibling per distinct match per
//! batch, which is small when keys repeat. Event order across those batches is not kept.
//!
//! # Sharing between shards
//!
//! Load the data once and build each shard's instance from it:
//!
//! ```ignore
//! let data = config.load()?;        // once: reads the table and the database
//! for w in &data.warnings { tracing::warn!("transform {id}: {w}") }
//! for _ in 0..shards {
//!     let t = config.build(&data)?; // per shard
//! }
//! ```

use serde::Deserialize;
use sluice_engine::batch::{Batch, Event, OverlayOp};
use sluice_engine::path::FieldPath;
use sluice_engine::pipeline::{Emitter, Transform, PORT_MAIN};
use sluice_engine::value::{parse_i64, unescape_json_str};
use sluice_engine::{Value, ValueRef};
use std::collections::HashMap;
use std::io::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The address cache is dropped when it holds more addresses than this.
const GEO_CACHE_LIMIT: usize = 100_000;
/// Marks an event without a match.
const NO_MATCH: u32 = u32::MAX;

/// Options of the `enrich` transform.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrichConfig {
    #[serde(default)]
    pub table: Option<TableConfig>,
    /// Field path of the event value looked up in `table`.
    #[serde(default)]
    pub key: Option<String>,
    /// Field the matched table row is written to.
    #[serde(default = "default_target")]
    pub target: String,
    #[serde(default)]
    pub geoip: Option<GeoIpConfig>,
}

fn default_target() -> String {
    "enrichment".into()
}

fn default_geo_target() -> String {
    "geo".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableConfig {
    /// The file (relative paths are relative to the working directory).
    pub path: PathBuf,
    /// `"csv"` or `"json"`; default from the extension.
    #[serde(default)]
    pub format: Option<TableFormat>,
    /// The column (CSV) or member (JSON array) holding each row's key.
    #[serde(default)]
    pub key_column: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TableFormat {
    Csv,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeoIpConfig {
    /// A MaxMind DB file (`.mmdb`), e.g. GeoLite2-City.
    pub database: PathBuf,
    /// Field path of the IP address.
    pub field: String,
    /// Field the result is written to.
    #[serde(default = "default_geo_target")]
    pub target: String,
}

/// Everything an `enrich` transform loads from files, shared by its shard instances.
pub struct EnrichData {
    table: Option<LookupTable>,
    geoip: Option<maxminddb::Reader<Vec<u8>>>,
    /// Problems that did not stop the load (duplicate keys), for the caller to log.
    pub warnings: Vec<String>,
}

struct LookupTable {
    rows: Vec<Value>,
    index: HashMap<Box<[u8]>, u32>,
}

impl LookupTable {
    fn new() -> LookupTable {
        LookupTable {
            rows: Vec::new(),
            index: HashMap::new(),
        }
    }

    /// Adds a row; returns true when it replaced an earlier row with the same key.
    fn insert(&mut self, key: &[u8], row: Value) -> bool {
        let idx = self.rows.len() as u32;
        self.rows.push(row);
        self.index.insert(key.into(), idx).is_some()
    }
}

impl EnrichConfig {
    pub const NAMED_OUTPUTS: &'static [&'static str] = &[];

    pub fn validate(&self) -> Result<(), String> {
        if self.table.is_none() && self.geoip.is_none() {
            return Err("nothing to do: give `table` (with `key`) and/or `geoip`".into());
        }
        if let Some(t) = &self.table {
            let key = self.key.as_deref().ok_or(
                "`key` (the event field to look up in the table) is required with `table`",
            )?;
            FieldPath::parse(key).map_err(|e| format!("key: {e}"))?;
            FieldPath::parse(&self.target).map_err(|e| format!("target: {e}"))?;
            let format = t.resolved_format()?;
            if t.key_column.is_none() && format == TableFormat::Csv {
                return Err(format!(
                    "table `{}`: `key_column` is required for CSV",
                    t.path.display()
                ));
            }
        } else if self.key.is_some() {
            return Err("`key` is only used with `table`".into());
        }
        if let Some(g) = &self.geoip {
            FieldPath::parse(&g.field).map_err(|e| format!("geoip.field: {e}"))?;
            FieldPath::parse(&g.target).map_err(|e| format!("geoip.target: {e}"))?;
        }
        Ok(())
    }

    /// Once per transform (not per shard): validates and reads the table and database.
    pub fn load(&self) -> Result<Arc<EnrichData>, String> {
        self.validate()?;
        let mut warnings = Vec::new();
        let table = match &self.table {
            Some(t) => Some(t.load(&mut warnings)?),
            None => None,
        };
        let geoip = match &self.geoip {
            Some(g) => Some(
                maxminddb::Reader::open_readfile(&g.database)
                    .map_err(|e| format!("geoip database `{}`: {e}", g.database.display()))?,
            ),
            None => None,
        };
        Ok(Arc::new(EnrichData {
            table,
            geoip,
            warnings,
        }))
    }

    /// One shard's instance over `data` (from [`EnrichConfig::load`]).
    pub fn build(&self, data: &Arc<EnrichData>) -> Result<Enrich, String> {
        self.validate()?;
        let table = match (&self.table, &self.key) {
            (Some(_), Some(key)) => {
                if data.table.is_none() {
                    return Err("enrich: the loaded data has no table".into());
                }
                Some(TableStep {
                    key: FieldPath::parse(key).map_err(|e| e.to_string())?,
                    target: FieldPath::parse(&self.target).map_err(|e| e.to_string())?,
                    scratch: Vec::new(),
                })
            }
            _ => None,
        };
        let geoip = match &self.geoip {
            Some(g) => {
                if data.geoip.is_none() {
                    return Err("enrich: the loaded data has no GeoIP database".into());
                }
                Some(GeoStep {
                    field: FieldPath::parse(&g.field).map_err(|e| e.to_string())?,
                    target: FieldPath::parse(&g.target).map_err(|e| e.to_string())?,
                    by_address: HashMap::new(),
                    by_record: HashMap::new(),
                    records: Vec::new(),
                    scratch: Vec::new(),
                })
            }
            None => None,
        };
        Ok(Enrich {
            data: data.clone(),
            table,
            geoip,
            splitter: Splitter::default(),
            stage: Vec::new(),
            next: Vec::new(),
        })
    }
}

impl TableConfig {
    fn resolved_format(&self) -> Result<TableFormat, String> {
        if let Some(f) = self.format {
            return Ok(f);
        }
        match self
            .path
            .extension()
            .and_then(|e| e.to_str())
            .map(|e| e.to_ascii_lowercase())
            .as_deref()
        {
            Some("csv") => Ok(TableFormat::Csv),
            Some("json") => Ok(TableFormat::Json),
            _ => Err(format!(
                "table `{}`: set `format` to \"csv\" or \"json\" (the extension does not tell)",
                self.path.display()
            )),
        }
    }

    fn load(&self, warnings: &mut Vec<String>) -> Result<LookupTable, String> {
        let path = self.path.display();
        let (table, duplicates) = match self.resolved_format()? {
            TableFormat::Csv => load_csv(&self.path, self.key_column.as_deref().unwrap_or(""))?,
            TableFormat::Json => load_json(&self.path, self.key_column.as_deref())?,
        };
        if let Some((count, first)) = duplicates {
            warnings.push(format!(
                "table `{path}`: {count} duplicate key(s), the last row wins (first: {first})"
            ));
        }
        Ok(table)
    }
}

/// Number of duplicate keys and where the first was.
type Duplicates = Option<(usize, String)>;

fn note_duplicate(dups: &mut Duplicates, at: impl FnOnce() -> String) {
    match dups {
        Some((n, _)) => *n += 1,
        None => *dups = Some((1, at())),
    }
}

fn load_csv(path: &Path, key_column: &str) -> Result<(LookupTable, Duplicates), String> {
    let shown = path.display();
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_path(path)
        .map_err(|e| format!("table `{shown}`: cannot read: {}", csv_error(&e)))?;
    let headers = reader
        .headers()
        .map_err(|e| format!("table `{shown}`: {}", csv_error(&e)))?
        .clone();
    let columns: Vec<String> = headers.iter().map(str::to_string).collect();
    let key_idx = columns
        .iter()
        .position(|c| c == key_column)
        .ok_or_else(|| {
            format!(
                "table `{shown}`, line 1: no column `{key_column}` in the header (columns: {})",
                columns.join(", ")
            )
        })?;
    for (i, c) in columns.iter().enumerate() {
        if columns[..i].contains(c) {
            return Err(format!(
                "table `{shown}`, line 1: the column `{c}` appears twice in the header"
            ));
        }
    }
    let mut table = LookupTable::new();
    let mut dups = None;
    for record in reader.records() {
        let record = record.map_err(|e| format!("table `{shown}`: {}", csv_error(&e)))?;
        let line = record.position().map(|p| p.line()).unwrap_or(0);
        let key = record.get(key_idx).unwrap_or_default().to_string();
        let row = Value::Object(
            columns
                .iter()
                .zip(record.iter())
                .map(|(c, v)| (c.clone(), Value::Str(v.to_string())))
                .collect(),
        );
        if table.insert(key.as_bytes(), row) {
            note_duplicate(&mut dups, || format!("`{key}` at line {line}"));
        }
    }
    Ok((table, dups))
}

/// A CSV error with the line it happened on.
fn csv_error(e: &csv::Error) -> String {
    match e.kind() {
        csv::ErrorKind::Io(io) => io.to_string(),
        csv::ErrorKind::UnequalLengths {
            pos,
            expected_len,
            len,
        } => format!(
            "line {}: {len} fields where the header has {expected_len}",
            pos.as_ref().map(|p| p.line()).unwrap_or(0)
        ),
        csv::ErrorKind::Utf8 { pos, .. } => format!(
            "line {}: not valid UTF-8",
            pos.as_ref().map(|p| p.line()).unwrap_or(0)
        ),
        _ => e.to_string(),
    }
}

fn load_json(path: &Path, key_column: Option<&str>) -> Result<(LookupTable, Duplicates), String> {
    let shown = path.display();
    let text = std::fs::read(path).map_err(|e| format!("table `{shown}`: cannot read: {e}"))?;
    let doc: serde_json::Value =
        serde_json::from_slice(&text).map_err(|e| format!("table `{shown}`: invalid JSON: {e}"))?;
    let mut table = LookupTable::new();
    let mut dups = None;
    match doc {
        serde_json::Value::Array(items) => {
            let column = key_column.ok_or_else(|| {
                format!("table `{shown}`: `key_column` is required for a JSON array of rows")
            })?;
            for (i, item) in items.iter().enumerate() {
                let serde_json::Value::Object(obj) = item else {
                    return Err(format!("table `{shown}`: element {i} is not an object"));
                };
                let key = obj
                    .get(column)
                    .ok_or_else(|| format!("table `{shown}`: element {i} has no `{column}`"))?;
                let key = json_key_text(key).ok_or_else(|| {
                    format!("table `{shown}`: element {i}: `{column}` is not a string, number or boolean")
                })?;
                if table.insert(key.as_bytes(), Value::from_toml_like(item)) {
                    note_duplicate(&mut dups, || format!("`{key}` at element {i}"));
                }
            }
        }
        serde_json::Value::Object(map) => {
            for (key, row) in &map {
                if !row.is_object() {
                    return Err(format!(
                        "table `{shown}`: the row of key `{key}` is not an object"
                    ));
                }
                table.insert(key.as_bytes(), Value::from_toml_like(row));
            }
        }
        _ => {
            return Err(format!(
                "table `{shown}`: expected an array of objects or an object of key → object"
            ))
        }
    }
    Ok((table, dups))
}

fn json_key_text(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Writes the lookup text of an event value into `out`; false when it has none.
fn key_text(v: &ValueRef<'_>, out: &mut Vec<u8>) -> bool {
    out.clear();
    match *v {
        ValueRef::Str { raw, escaped: true } => {
            if !unescape_json_str(raw, out) {
                out.clear();
                out.extend_from_slice(raw);
            }
        }
        ValueRef::Str {
            raw,
            escaped: false,
        } => out.extend_from_slice(raw),
        ValueRef::Number(raw) => match parse_i64(raw) {
            Some(i) => {
                let _ = write!(out, "{i}");
            }
            None => out.extend_from_slice(raw),
        },
        ValueRef::Bool(_) | ValueRef::Owned(Value::Bool(_)) => {
            let b = v.as_bool().unwrap_or(false);
            out.extend_from_slice(if b { b"true" } else { b"false" })
        }
        ValueRef::Owned(Value::Str(s)) => out.extend_from_slice(s.as_bytes()),
        ValueRef::Owned(Value::Int(i)) => {
            let _ = write!(out, "{i}");
        }
        _ => return false,
    }
    true
}

/// Looks events up in the table.
struct TableStep {
    key: FieldPath,
    target: FieldPath,
    scratch: Vec<u8>,
}

impl TableStep {
    fn row_of(&mut self, table: &LookupTable, batch: &Batch, ev: &Event) -> u32 {
        match batch.get(ev, &self.key) {
            Some(v) if key_text(&v, &mut self.scratch) => table
                .index
                .get(&self.scratch[..])
                .copied()
                .unwrap_or(NO_MATCH),
            _ => NO_MATCH,
        }
    }
}

/// Looks events up in the GeoIP database.
struct GeoStep {
    field: FieldPath,
    target: FieldPath,
    /// Address → index in `records` (or [`NO_MATCH`]).
    by_address: HashMap<IpAddr, u32>,
    /// Database record offset → index in `records`.
    by_record: HashMap<usize, u32>,
    records: Vec<Value>,
    scratch: Vec<u8>,
}

impl GeoStep {
    fn record_of(&mut self, reader: &maxminddb::Reader<Vec<u8>>, batch: &Batch, ev: &Event) -> u32 {
        let Some(v) = batch.get(ev, &self.field) else {
            return NO_MATCH;
        };
        if !key_text(&v, &mut self.scratch) {
            return NO_MATCH;
        }
        let Some(ip) = std::str::from_utf8(&self.scratch)
            .ok()
            .and_then(|s| s.trim().parse::<IpAddr>().ok())
        else {
            return NO_MATCH;
        };
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        if let Some(&idx) = self.by_address.get(&ip) {
            return idx;
        }
        if self.by_address.len() >= GEO_CACHE_LIMIT {
            self.by_address.clear();
            self.by_record.clear();
            self.records.clear();
        }
        let idx = self.lookup(reader, ip);
        self.by_address.insert(ip, idx);
        idx
    }

    fn lookup(&mut self, reader: &maxminddb::Reader<Vec<u8>>, ip: IpAddr) -> u32 {
        let Ok(found) = reader.lookup(ip) else {
            return NO_MATCH;
        };
        let Some(offset) = found.offset() else {
            return NO_MATCH;
        };
        if let Some(&idx) = self.by_record.get(&offset) {
            return idx;
        }
        let idx = match found.decode::<GeoRecord<'_>>() {
            Ok(Some(rec)) => match rec.to_value() {
                Some(v) => {
                    self.records.push(v);
                    (self.records.len() - 1) as u32
                }
                None => NO_MATCH,
            },
            _ => NO_MATCH,
        };
        self.by_record.insert(offset, idx);
        idx
    }
}

/// The parts of a GeoIP2 / GeoLite2 City, Country, ASN or ISP record that are used.
#[derive(Deserialize, Default)]
struct GeoRecord<'a> {
    #[serde(borrow, default)]
    country: Option<GeoCountry<'a>>,
    #[serde(borrow, default)]
    city: Option<GeoNamed<'a>>,
    #[serde(default)]
    location: Option<GeoLocation>,
    #[serde(default)]
    autonomous_system_number: Option<u32>,
    #[serde(borrow, default)]
    autonomous_system_organization: Option<&'a str>,
    #[serde(borrow, default)]
    organization: Option<&'a str>,
    #[serde(borrow, default)]
    traits: Option<GeoTraits<'a>>,
}

#[derive(Deserialize, Default)]
struct GeoCountry<'a> {
    #[serde(borrow, default)]
    iso_code: Option<&'a str>,
    #[serde(borrow, default)]
    names: Option<GeoNames<'a>>,
}

#[derive(Deserialize, Default)]
struct GeoNamed<'a> {
    #[serde(borrow, default)]
    names: Option<GeoNames<'a>>,
}

#[derive(Deserialize, Default)]
struct GeoNames<'a> {
    #[serde(borrow, default)]
    en: Option<&'a str>,
}

#[derive(Deserialize, Default)]
struct GeoLocation {
    #[serde(default)]
    latitude: Option<f64>,
    #[serde(default)]
    longitude: Option<f64>,
}

#[derive(Deserialize, Default)]
struct GeoTraits<'a> {
    #[serde(default)]
    autonomous_system_number: Option<u32>,
    #[serde(borrow, default)]
    autonomous_system_organization: Option<&'a str>,
    #[serde(borrow, default)]
    organization: Option<&'a str>,
}

impl GeoRecord<'_> {
    /// The object written to events; `None` when the record has none of the fields.
    fn to_value(&self) -> Option<Value> {
        let mut fields: Vec<(String, Value)> = Vec::new();
        let put_str = |fields: &mut Vec<(String, Value)>, k: &str, v: Option<&str>| {
            if let Some(v) = v {
                fields.push((k.to_string(), Value::Str(v.to_string())));
            }
        };
        let country = self.country.as_ref();
        put_str(
            &mut fields,
            "country_code",
            country.and_then(|c| c.iso_code),
        );
        put_str(
            &mut fields,
            "country_name",
            country.and_then(|c| c.names.as_ref()).and_then(|n| n.en),
        );
        put_str(
            &mut fields,
            "city",
            self.city
                .as_ref()
                .and_then(|c| c.names.as_ref())
                .and_then(|n| n.en),
        );
        if let Some(loc) = &self.location {
            for (k, v) in [("latitude", loc.latitude), ("longitude", loc.longitude)] {
                if let Some(v) = v.filter(|v| v.is_finite()) {
                    fields.push((k.to_string(), Value::Float(v)));
                }
            }
        }
        let traits = self.traits.as_ref();
        if let Some(asn) = self
            .autonomous_system_number
            .or_else(|| traits.and_then(|t| t.autonomous_system_number))
        {
            fields.push(("asn".to_string(), Value::Int(i64::from(asn))));
        }
        put_str(
            &mut fields,
            "organization",
            self.autonomous_system_organization
                .or(self.organization)
                .or_else(|| traits.and_then(|t| t.autonomous_system_organization))
                .or_else(|| traits.and_then(|t| t.organization)),
        );
        (!fields.is_empty()).then_some(Value::Object(fields))
    }
}

/// Splits a batch by match, reusing its buffers from batch to batch.
#[derive(Default)]
struct Splitter {
    /// Match of each event (`NO_MATCH` when none).
    matches: Vec<u32>,
    /// Match → index in `groups`.
    slots: HashMap<u32, usize>,
    groups: Vec<(u32, Vec<Event>)>,
}

impl Splitter {
    /// Pushes onto `out` the unmatched events (as `batch`) and one sibling per distinct
    /// match with `target` set to `value_of(match)`.
    fn split(
        &mut self,
        mut batch: Batch,
        target: &FieldPath,
        value_of: impl Fn(u32) -> Option<Value>,
        out: &mut Vec<Batch>,
    ) {
        let set = |b: &mut Batch, id: u32| {
            if let Some(value) = value_of(id) {
                b.overlay.ops.push(OverlayOp::Set {
                    path: target.clone(),
                    value,
                    if_absent: false,
                });
            }
        };
        let first = self.matches.first().copied().unwrap_or(NO_MATCH);
        if self.matches.iter().all(|m| *m == first) {
            // Common fast cases: nothing matched, or everything matched the same row.
            if first != NO_MATCH {
                set(&mut batch, first);
            }
            out.push(batch);
            return;
        }
        self.slots.clear();
        self.groups.clear();
        let events = std::mem::take(&mut batch.events);
        let mut unmatched = Vec::with_capacity(events.len());
        for (ev, &m) in events.iter().zip(&self.matches) {
            if m == NO_MATCH {
                unmatched.push(*ev);
                continue;
            }
            let slot = *self.slots.entry(m).or_insert_with(|| {
                self.groups.push((m, Vec::new()));
                self.groups.len() - 1
            });
            if let Some((_, evs)) = self.groups.get_mut(slot) {
                evs.push(*ev);
            }
        }
        for (m, evs) in self.groups.drain(..) {
            let mut sib = batch.sibling(evs);
            set(&mut sib, m);
            out.push(sib);
        }
        batch.events = unmatched;
        if !batch.events.is_empty() {
            out.push(batch);
        }
    }
}

/// One shard's `enrich` instance.
pub struct Enrich {
    data: Arc<EnrichData>,
    table: Option<TableStep>,
    geoip: Option<GeoStep>,
    splitter: Splitter,
    stage: Vec<Batch>,
    next: Vec<Batch>,
}

impl Transform for Enrich {
    fn process(&mut self, batch: Batch, out: &mut Emitter) {
        self.stage.clear();
        self.stage.push(batch);
        if let (Some(step), Some(table)) = (&mut self.table, &self.data.table) {
            for b in self.stage.drain(..) {
                self.splitter.matches.clear();
                for ev in &b.events {
                    let m = step.row_of(table, &b, ev);
                    self.splitter.matches.push(m);
                }
                self.splitter.split(
                    b,
                    &step.target,
                    |m| table.rows.get(m as usize).cloned(),
                    &mut self.next,
                );
            }
            std::mem::swap(&mut self.stage, &mut self.next);
        }
        if let (Some(step), Some(reader)) = (&mut self.geoip, &self.data.geoip) {
            for b in self.stage.drain(..) {
                self.splitter.matches.clear();
                for ev in &b.events {
                    let m = step.record_of(reader, &b, ev);
                    self.splitter.matches.push(m);
                }
                let records = &step.records;
                self.splitter.split(
                    b,
                    &step.target,
                    |m| records.get(m as usize).cloned(),
                    &mut self.next,
                );
            }
            std::mem::swap(&mut self.stage, &mut self.next);
        }
        for b in self.stage.drain(..) {
            out.emit(PORT_MAIN, b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parsers::json;
    use crate::transforms::mmdb_writer::{MmdbValue, MmdbWriter};
    use crate::transforms::test_pipeline::Harness;
    use bytes::Bytes;
    use std::net::Ipv4Addr;

    fn config(v: serde_json::Value) -> EnrichConfig {
        serde_json::from_value(v).unwrap()
    }

    fn json_batch(lines: &str) -> Batch {
        let mut b = Batch::from_lines(Bytes::copy_from_slice(lines.as_bytes()), 0);
        let mut rejected = Vec::new();
        json::parse_batch(&mut b, &mut rejected);
        assert!(rejected.is_empty());
        b
    }

    /// Each output event as (its `id` field, the JSON of `path` or None), sorted by id.
    fn results(h: &mut Harness, path: &str) -> Vec<(i64, Option<String>)> {
        let id = FieldPath::parse("id").unwrap();
        let path = FieldPath::parse(path).unwrap();
        let mut rows = Vec::new();
        for (port, b) in h.take() {
            assert_eq!(port, PORT_MAIN);
            for ev in &b.events {
                let id = b.get(ev, &id).and_then(|v| v.as_i64()).unwrap();
                let v = b.get(ev, &path).map(|v| {
                    let mut s = Vec::new();
                    v.write_json(&mut s);
                    String::from_utf8(s).unwrap()
                });
                rows.push((id, v));
            }
        }
        rows.sort();
        rows
    }

    fn write_file(dir: &Path, name: &str, content: &[u8]) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, content).unwrap();
        p
    }

    fn enrich(cfg: &EnrichConfig) -> Harness {
        let data = cfg.load().unwrap();
        Harness::new(Box::new(cfg.build(&data).unwrap()), 1)
    }

    #[test]
    fn csv_table_match_miss_and_numeric_key() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let path = write_file(
            dir,
            "users.csv",
            b"id,name,team\n42,Ann,core\n7,\"Bob, Jr.\",web\nx\"y,Q,ops\n",
        );
        let cfg = config(serde_json::json!({
            "table": {"path": path, "key_column": "id"},
            "key": "user",
            "target": "who"
        }));
        let mut h = enrich(&cfg);
        h.push(json_batch(
            "{\"id\":1,\"user\":42}\n\
             {\"id\":2,\"user\":\"7\"}\n\
             {\"id\":3,\"user\":\"nobody\"}\n\
             {\"id\":4,\"user\":\"42\"}\n\
             {\"id\":5}\n\
             {\"id\":6,\"user\":\"x\\\"y\"}\n\
             {\"id\":7,\"user\":42.5}\n",
        ));
        assert_eq!(
            results(&mut h, "who"),
            vec![
                (1, Some(r#"{"id":"42","name":"Ann","team":"core"}"#.into())),
                (
                    2,
                    Some(r#"{"id":"7","name":"Bob, Jr.","team":"web"}"#.into())
                ),
                (3, None),
                (4, Some(r#"{"id":"42","name":"Ann","team":"core"}"#.into())),
                (5, None),
                (6, Some(r#"{"id":"x\"y","name":"Q","team":"ops"}"#.into())),
                (7, None),
            ]
        );
        // Reading a nested field of the written row works through the overlay.
        h.push(json_batch("{\"id\":1,\"user\":7}\n{\"id\":2,\"user\":7}\n"));
        assert_eq!(
            results(&mut h, "who.team"),
            vec![(1, Some("\"web\"".into())), (2, Some("\"web\"".into()))]
        );
        // The original lines are untouched (the row is an overlay change).
        h.push(json_batch("{\"id\":9,\"user\":42}\n"));
        let out = h.take();
        assert_eq!(out.len(), 1);
        let b = &out[0].1;
        assert_eq!(b.line(&b.events[0]), b"{\"id\":9,\"user\":42}");
        assert_eq!(b.overlay.ops.len(), 1);
    }

    #[test]
    fn json_tables_array_and_object() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let array = write_file(
            dir,
            "hosts.json",
            br#"[{"host":"a","dc":"eu","rack":3},{"host":10,"dc":"us"},{"host":"a","dc":"ap"}]"#,
        );
        let cfg = config(serde_json::json!({
            "table": {"path": array, "key_column": "host"},
            "key": "h"
        }));
        let data = cfg.load().unwrap();
        assert_eq!(data.warnings.len(), 1);
        assert!(
            data.warnings[0].contains("1 duplicate key(s)"),
            "{:?}",
            data.warnings
        );
        assert!(data.warnings[0].contains("`a` at element 2"));
        let mut h = Harness::new(Box::new(cfg.build(&data).unwrap()), 1);
        h.push(json_batch(
            "{\"id\":1,\"h\":\"a\"}\n{\"id\":2,\"h\":10}\n{\"id\":3,\"h\":\"b\"}\n",
        ));
        assert_eq!(
            results(&mut h, "enrichment"),
            vec![
                (1, Some(r#"{"dc":"ap","host":"a"}"#.into())),
                (2, Some(r#"{"dc":"us","host":10}"#.into())),
                (3, None),
            ]
        );

        let object = write_file(
            dir,
            "codes.data",
            br#"{"404": {"text": "Not Found"}, "500": {"text": "Server Error", "page": true}}"#,
        );
        let cfg = config(serde_json::json!({
            "table": {"path": object, "format": "json"},
            "key": "status",
            "target": "status_info"
        }));
        let mut h = enrich(&cfg);
        h.push(json_batch(
            "{\"id\":1,\"status\":500}\n{\"id\":2,\"status\":200}\n{\"id\":3,\"status\":404}\n",
        ));
        assert_eq!(
            results(&mut h, "status_info"),
            vec![
                (1, Some(r#"{"page":true,"text":"Server Error"}"#.into())),
                (2, None),
                (3, Some(r#"{"text":"Not Found"}"#.into())),
            ]
        );
    }

    fn geo_db(dir: &Path) -> PathBuf {
        let mut w = MmdbWriter::new("GeoLite2-City");
        let names = |en: &str, de: &str| {
            MmdbValue::map([("de", MmdbValue::str(de)), ("en", MmdbValue::str(en))])
        };
        w.insert(
            Ipv4Addr::new(81, 2, 69, 0),
            24,
            &MmdbValue::map([
                (
                    "city",
                    MmdbValue::map([
                        ("geoname_id", MmdbValue::U32(2643743)),
                        ("names", names("London", "London")),
                    ]),
                ),
                (
                    "continent",
                    MmdbValue::map([("code", MmdbValue::str("EU"))]),
                ),
                (
                    "country",
                    MmdbValue::map([
                        ("iso_code", MmdbValue::str("GB")),
                        ("names", names("United Kingdom", "Vereinigtes Königreich")),
                    ]),
                ),
                (
                    "location",
                    MmdbValue::map([
                        ("accuracy_radius", MmdbValue::U16(100)),
                        ("latitude", MmdbValue::Double(51.5142)),
                        ("longitude", MmdbValue::Double(-0.0931)),
                        ("time_zone", MmdbValue::str("Europe/London")),
                    ]),
                ),
            ]),
        )
        .unwrap();
        w.insert(
            Ipv4Addr::new(203, 0, 113, 0),
            24,
            &MmdbValue::map([
                (
                    "country",
                    MmdbValue::map([
                        ("iso_code", MmdbValue::str("JP")),
                        ("names", names("Japan", "Japan")),
                    ]),
                ),
                ("autonomous_system_number", MmdbValue::U32(64500)),
                (
                    "autonomous_system_organization",
                    MmdbValue::str("Example Net"),
                ),
            ]),
        )
        .unwrap();
        write_file(dir, "city.mmdb", &w.finish().unwrap())
    }

    #[test]
    fn geoip_city_lookups_and_misses() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let db = geo_db(dir);
        let cfg = config(serde_json::json!({
            "geoip": {"database": db, "field": "client.ip"}
        }));
        let mut h = enrich(&cfg);
        h.push(json_batch(
            "{\"id\":1,\"client\":{\"ip\":\"81.2.69.160\"}}\n\
             {\"id\":2,\"client\":{\"ip\":\"203.0.113.9\"}}\n\
             {\"id\":3,\"client\":{\"ip\":\"8.8.8.8\"}}\n\
             {\"id\":4,\"client\":{\"ip\":\"81.2.69.1\"}}\n\
             {\"id\":5,\"client\":{\"ip\":\"not an ip\"}}\n\
             {\"id\":6,\"client\":{\"ip\":\"2001:db8::1\"}}\n\
             {\"id\":7,\"client\":{\"ip\":\"::ffff:203.0.113.200\"}}\n\
             {\"id\":8,\"client\":{\"ip\":42}}\n\
             {\"id\":9}\n",
        ));
        let london = r#"{"country_code":"GB","country_name":"United Kingdom","city":"London","latitude":51.5142,"longitude":-0.0931}"#;
        let japan = r#"{"country_code":"JP","country_name":"Japan","asn":64500,"organization":"Example Net"}"#;
        assert_eq!(
            results(&mut h, "geo"),
            vec![
                (1, Some(london.into())),
                (2, Some(japan.into())),
                (3, None),
                (4, Some(london.into())),
                (5, None),
                (6, None),
                (7, Some(japan.into())),
                (8, None),
                (9, None),
            ]
        );
    }

    #[test]
    fn events_sharing_a_match_share_one_batch() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let db = geo_db(dir);
        let table = write_file(dir, "t.csv", b"k,v\na,1\nb,2\n");
        let cfg = config(serde_json::json!({
            "table": {"path": table, "key_column": "k"},
            "key": "k",
            "geoip": {"database": db, "field": "ip", "target": "where"}
        }));
        let mut h = enrich(&cfg);
        h.push(json_batch(
            "{\"id\":1,\"k\":\"a\",\"ip\":\"81.2.69.1\"}\n\
             {\"id\":2,\"k\":\"b\",\"ip\":\"81.2.69.2\"}\n\
             {\"id\":3,\"k\":\"a\",\"ip\":\"81.2.69.3\"}\n\
             {\"id\":4,\"k\":\"z\",\"ip\":\"1.1.1.1\"}\n",
        ));
        let mut sizes: Vec<usize> = h.take().iter().map(|(_, b)| b.len()).collect();
        sizes.sort();
        // Table: {1,3} a, {2} b, {4} none; geo then splits none of them further
        // except {4}, which has no match either.
        assert_eq!(sizes, vec![1, 1, 2]);
        h.push(json_batch(
            "{\"id\":1,\"k\":\"a\",\"ip\":\"81.2.69.1\"}\n{\"id\":2,\"k\":\"b\",\"ip\":\"203.0.113.5\"}\n",
        ));
        let rows = results(&mut h, "where.country_code");
        assert_eq!(
            rows,
            vec![(1, Some("\"GB\"".into())), (2, Some("\"JP\"".into()))]
        );
    }

    #[test]
    fn config_and_load_errors() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let err = |v: serde_json::Value| match config(v).load() {
            Ok(_) => panic!("loaded"),
            Err(e) => e,
        };
        let e = err(serde_json::json!({}));
        assert!(e.contains("nothing to do"), "{e}");
        let csv = write_file(dir, "t.csv", b"id,name\n1,a\n2,b,extra\n");
        let e = err(serde_json::json!({"table": {"path": csv, "key_column": "id"}}));
        assert!(e.contains("`key`"), "{e}");
        let e = err(serde_json::json!({"table": {"path": csv, "key_column": "id"}, "key": "k"}));
        assert!(
            e.contains("t.csv") && e.contains("line 3") && e.contains("3 fields"),
            "{e}"
        );
        let e = err(serde_json::json!({"table": {"path": csv, "key_column": "uid"}, "key": "k"}));
        assert!(
            e.contains("line 1") && e.contains("no column `uid`") && e.contains("id, name"),
            "{e}"
        );
        let e = err(serde_json::json!({"table": {"path": csv}, "key": "k"}));
        assert!(e.contains("key_column"), "{e}");
        let missing = dir.join("missing.csv");
        let e =
            err(serde_json::json!({"table": {"path": missing, "key_column": "id"}, "key": "k"}));
        assert!(
            e.contains("missing.csv") && e.contains("cannot read"),
            "{e}"
        );
        let e = err(
            serde_json::json!({"table": {"path": dir.join("t.txt"), "key_column": "id"}, "key": "k"}),
        );
        assert!(e.contains("format"), "{e}");
        let bad_json = write_file(dir, "bad.json", b"[{\"id\":1},\n{\"id\":]");
        let e =
            err(serde_json::json!({"table": {"path": bad_json, "key_column": "id"}, "key": "k"}));
        assert!(e.contains("bad.json") && e.contains("line 2"), "{e}");
        let no_key = write_file(dir, "nokey.json", b"[{\"id\":1},{\"name\":2}]");
        let e = err(serde_json::json!({"table": {"path": no_key, "key_column": "id"}, "key": "k"}));
        assert!(e.contains("element 1 has no `id`"), "{e}");
        let scalar = write_file(dir, "scalar.json", b"3");
        let e = err(serde_json::json!({"table": {"path": scalar, "key_column": "id"}, "key": "k"}));
        assert!(e.contains("expected an array"), "{e}");
        let not_mmdb = write_file(dir, "x.mmdb", b"not a database");
        let e = err(serde_json::json!({"geoip": {"database": not_mmdb, "field": "ip"}}));
        assert!(e.contains("x.mmdb"), "{e}");
        let e = err(serde_json::json!({"geoip": {"database": not_mmdb, "field": "a..b"}}));
        assert!(e.contains("geoip.field"), "{e}");
        let dup = write_file(dir, "dup.csv", b"id,v\n1,a\n1,b\n2,c\n2,d\n");
        let cfg =
            config(serde_json::json!({"table": {"path": dup, "key_column": "id"}, "key": "id"}));
        let data = cfg.load().unwrap();
        assert_eq!(data.warnings.len(), 1);
        assert!(
            data.warnings[0].contains("2 duplicate key(s)")
                && data.warnings[0].contains("`1` at line 3"),
            "{:?}",
            data.warnings
        );
        assert!(serde_json::from_value::<EnrichConfig>(
            serde_json::json!({"geoip": {"database": "x", "field": "ip", "extra": 1}})
        )
        .is_err());
    }
}

//! `type = "log_to_metric"`: derives Prometheus counters, gauges and histograms from events
//! and serves them on `/metrics`; the events pass through unchanged.
//!
//! ```toml
//! [[transforms.http_metrics.metrics]]
//! type = "counter"
//! name = "http_requests_total"
//! labels = { method = "http.method", status = "http.status" }
//!
//! [[transforms.http_metrics.metrics]]
//! type = "histogram"
//! name = "http_request_duration_seconds"
//! field = "duration"
//! buckets = [0.1, 0.5, 1.0]
//! ```
//!
//! A counter without `field` counts events; with `field` it adds the field's number
//! (negative, non-numeric and non-finite values are skipped: counters never go down). A
//! gauge is set to the last number seen. A histogram observes the number. Label values
//! come from the event (`labels` maps label name to field path); a missing field gives `""`.
//!
//! # Sharing between shards
//!
//! Every shard runs its own instance; they share one [`SeriesStore`], which holds the
//! series and renders them at each scrape. The caller makes the store once per transform
//! and builds each shard's instance from it:
//!
//! ```ignore
//! let store = config.prepare(&registry, &transform_id)?; // once: validates, registers /metrics output
//! for _ in 0..shards {
//!     let t = config.build(&store)?;                       // per shard
//! }
//! ```
//!
//! An instance sums a batch's updates in a local table (no lock per event) and merges
//! them into the store under its mutex once per batch. The store holds at most
//! `max_series` series; updates to further series are dropped and counted in
//! `sluice_log_to_metric_series_dropped_total{component="ID"}`.

use indexmap::IndexMap;
use serde::Deserialize;
use sluice_engine::batch::Batch;
use sluice_engine::metrics::Registry;
use sluice_engine::path::FieldPath;
use sluice_engine::pipeline::{Emitter, Transform, PORT_MAIN};
use sluice_engine::value::unescape_json_str;
use sluice_engine::{Value, ValueRef};
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// The default histogram buckets (those of the Prometheus client libraries).
pub const DEFAULT_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A shard forgets its local series table when it grows past this (it is rebuilt from
/// the next batches), so high-cardinality labels cannot grow it without bound.
const LOCAL_SERIES_LIMIT: usize = 8192;

/// Options of the `log_to_metric` transform.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogToMetricConfig {
    pub metrics: Vec<MetricSpec>,
    /// Most series (label combinations over all metrics) held.
    #[serde(default = "default_max_series")]
    pub max_series: usize,
}

fn default_max_series() -> usize {
    10_000
}

/// One metric family.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricSpec {
    #[serde(rename = "type")]
    pub kind: MetricKind,
    /// Prometheus metric name (`[a-zA-Z_:][a-zA-Z0-9_:]*`, not starting with `sluice_`).
    pub name: String,
    /// Field path of the value; required for gauges and histograms.
    #[serde(default)]
    pub field: Option<String>,
    /// Label name → field path.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Histogram bucket upper bounds, increasing; default [`DEFAULT_BUCKETS`].
    #[serde(default)]
    pub buckets: Option<Vec<f64>>,
    #[serde(default)]
    pub help: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MetricKind {
    Counter,
    Gauge,
    Histogram,
}

impl MetricKind {
    fn as_str(self) -> &'static str {
        match self {
            MetricKind::Counter => "counter",
            MetricKind::Gauge => "gauge",
            MetricKind::Histogram => "histogram",
        }
    }
}

impl LogToMetricConfig {
    pub const NAMED_OUTPUTS: &'static [&'static str] = &[];

    pub fn validate(&self) -> Result<(), String> {
        if self.metrics.is_empty() {
            return Err("metrics: give at least one".into());
        }
        if self.metrics.len() > usize::from(u16::MAX) {
            return Err("metrics: too many".into());
        }
        if self.max_series == 0 {
            return Err("max_series must be at least 1".into());
        }
        let mut names: Vec<String> = Vec::new();
        for (i, m) in self.metrics.iter().enumerate() {
            let at = format!("metrics[{i}] `{}`", m.name);
            if !is_metric_name(&m.name) {
                return Err(format!(
                    "{at}: not a valid Prometheus metric name ([a-zA-Z_:][a-zA-Z0-9_:]*)"
                ));
            }
            if m.name.starts_with("sluice_") {
                return Err(format!(
                    "{at}: names starting with `sluice_` are reserved for Sluice's own metrics"
                ));
            }
            let mut family_names = vec![m.name.clone()];
            if m.kind == MetricKind::Histogram {
                for suffix in ["_bucket", "_sum", "_count"] {
                    family_names.push(format!("{}{suffix}", m.name));
                }
            }
            for n in &family_names {
                if names.contains(n) {
                    return Err(format!("{at}: the name `{n}` is used twice"));
                }
            }
            names.extend(family_names);
            match (&m.field, m.kind) {
                (None, MetricKind::Gauge | MetricKind::Histogram) => {
                    return Err(format!(
                        "{at}: a {} needs a `field` to read its value from",
                        m.kind.as_str()
                    ))
                }
                (Some(f), _) => {
                    FieldPath::parse(f).map_err(|e| format!("{at}: field: {e}"))?;
                }
                (None, MetricKind::Counter) => {}
            }
            for (label, path) in &m.labels {
                if !is_label_name(label) || label.starts_with("__") {
                    return Err(format!(
                        "{at}: `{label}` is not a valid label name ([a-zA-Z_][a-zA-Z0-9_]*, not starting with `__`)"
                    ));
                }
                if m.kind == MetricKind::Histogram && label == "le" {
                    return Err(format!("{at}: the label `le` is reserved in histograms"));
                }
                FieldPath::parse(path).map_err(|e| format!("{at}: label `{label}`: {e}"))?;
            }
            if let Some(b) = &m.buckets {
                if m.kind != MetricKind::Histogram {
                    return Err(format!("{at}: `buckets` is only for histograms"));
                }
                if b.is_empty() {
                    return Err(format!("{at}: `buckets` is empty"));
                }
                if b.iter().any(|x| !x.is_finite()) || b.windows(2).any(|w| w[0] >= w[1]) {
                    return Err(format!(
                        "{at}: `buckets` must be finite and strictly increasing (+Inf is implied)"
                    ));
                }
            }
        }
        Ok(())
    }

    /// Once per transform (not per shard): validates the config, makes the shared store
    /// and registers its rendering and its overflow counter in `registry`.
    pub fn prepare(
        &self,
        registry: &Registry,
        component_id: &str,
    ) -> Result<Arc<SeriesStore>, String> {
        self.validate()?;
        let overflow = registry.counter(
            "sluice_log_to_metric_series_dropped_total",
            "Metric updates a log_to_metric transform dropped because it held max_series series.",
            &[("component", component_id)],
        );
        let store = Arc::new(self.store(component_id, overflow));
        let render = store.clone();
        registry.collector(Box::new(move |out: &mut String| render.render(out)));
        Ok(store)
    }

    fn store(&self, component_id: &str, overflow: Arc<AtomicU64>) -> SeriesStore {
        let families = self
            .metrics
            .iter()
            .map(|m| FamilyInfo {
                name: m.name.clone(),
                help: m.help.clone().unwrap_or_else(|| {
                    format!("Derived from events by the log_to_metric transform {component_id}.")
                }),
                kind: m.kind,
                label_names: m.labels.keys().cloned().collect(),
                bounds: m
                    .buckets
                    .clone()
                    .unwrap_or_else(|| DEFAULT_BUCKETS.to_vec())
                    .into(),
            })
            .collect();
        SeriesStore {
            families,
            max_series: self.max_series,
            overflow,
            series: Mutex::new(HashMap::new()),
        }
    }

    /// One shard's instance, feeding `store` (from [`LogToMetricConfig::prepare`]).
    pub fn build(&self, store: &Arc<SeriesStore>) -> Result<LogToMetric, String> {
        self.validate()?;
        if store.families.len() != self.metrics.len()
            || store
                .families
                .iter()
                .zip(&self.metrics)
                .any(|(f, m)| f.name != m.name)
        {
            return Err("log_to_metric: the series store was prepared from another config".into());
        }
        let parse = |p: &str| FieldPath::parse(p).map_err(|e| e.to_string());
        let specs = self
            .metrics
            .iter()
            .zip(&store.families)
            .map(|(m, f)| {
                Ok(LocalSpec {
                    kind: m.kind,
                    field: m.field.as_deref().map(parse).transpose()?,
                    label_paths: m
                        .labels
                        .values()
                        .map(|p| parse(p))
                        .collect::<Result<_, String>>()?,
                    bounds: f.bounds.clone(),
                })
            })
            .collect::<Result<_, String>>()?;
        Ok(LogToMetric {
            store: store.clone(),
            specs,
            local: IndexMap::new(),
            dirty: Vec::new(),
            key: Vec::new(),
        })
    }
}

fn is_metric_name(s: &str) -> bool {
    let mut bytes = s.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_' || b == b':')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':')
}

fn is_label_name(s: &str) -> bool {
    let mut bytes = s.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// What does not change about a metric family.
struct FamilyInfo {
    name: String,
    help: String,
    kind: MetricKind,
    label_names: Vec<String>,
    bounds: Arc<[f64]>,
}

/// The value of a series, or a shard's pending change to one.
#[derive(Debug, Clone, PartialEq)]
enum SeriesValue {
    /// Total (or, pending, the amount to add).
    Counter(f64),
    /// Last value set.
    Gauge(f64),
    /// Per-bucket counts, not cumulative; the last bucket is `+Inf`.
    Histogram {
        buckets: Box<[u64]>,
        sum: f64,
        count: u64,
    },
}

impl SeriesValue {
    fn zero(kind: MetricKind, bounds: usize) -> SeriesValue {
        match kind {
            MetricKind::Counter => SeriesValue::Counter(0.0),
            MetricKind::Gauge => SeriesValue::Gauge(0.0),
            MetricKind::Histogram => SeriesValue::Histogram {
                buckets: vec![0; bounds + 1].into_boxed_slice(),
                sum: 0.0,
                count: 0,
            },
        }
    }

    /// Applies a pending change.
    fn merge(&mut self, delta: &SeriesValue) {
        match (self, delta) {
            (SeriesValue::Counter(total), SeriesValue::Counter(d)) => *total += d,
            (SeriesValue::Gauge(v), SeriesValue::Gauge(d)) => *v = *d,
            (
                SeriesValue::Histogram {
                    buckets,
                    sum,
                    count,
                },
                SeriesValue::Histogram {
                    buckets: db,
                    sum: ds,
                    count: dc,
                },
            ) => {
                for (b, d) in buckets.iter_mut().zip(db.iter()) {
                    *b += d;
                }
                *sum += ds;
                *count += dc;
            }
            _ => debug_assert!(false, "series kinds differ"),
        }
    }

    fn reset(&mut self) {
        match self {
            SeriesValue::Counter(v) | SeriesValue::Gauge(v) => *v = 0.0,
            SeriesValue::Histogram {
                buckets,
                sum,
                count,
            } => {
                buckets.fill(0);
                *sum = 0.0;
                *count = 0;
            }
        }
    }
}

struct StoredSeries {
    family: usize,
    labels: Vec<String>,
    value: SeriesValue,
}

/// The series of one `log_to_metric` transform, shared by its shard instances.
pub struct SeriesStore {
    families: Vec<FamilyInfo>,
    max_series: usize,
    overflow: Arc<AtomicU64>,
    /// Keyed like a shard's local table (see [`LogToMetric::series_key`]).
    series: Mutex<HashMap<Vec<u8>, StoredSeries>>,
}

impl SeriesStore {
    /// Number of series held.
    pub fn len(&self) -> usize {
        self.series.lock().map(|s| s.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Updates dropped because the store was full.
    pub fn dropped(&self) -> u64 {
        self.overflow.load(Ordering::Relaxed)
    }

    /// Appends every family in the Prometheus text format: `# HELP`, `# TYPE`, then the
    /// series sorted by label values.
    pub fn render(&self, out: &mut String) {
        let Ok(series) = self.series.lock() else {
            return;
        };
        let mut by_family: Vec<Vec<&StoredSeries>> = vec![Vec::new(); self.families.len()];
        for s in series.values() {
            if let Some(f) = by_family.get_mut(s.family) {
                f.push(s);
            }
        }
        for (family, mut list) in self.families.iter().zip(by_family) {
            list.sort_by(|a, b| a.labels.cmp(&b.labels));
            let name = &family.name;
            let _ = writeln!(out, "# HELP {name} {}", escape_help(&family.help));
            let _ = writeln!(out, "# TYPE {name} {}", family.kind.as_str());
            for s in list {
                let labels = render_labels(&family.label_names, &s.labels);
                match &s.value {
                    SeriesValue::Counter(v) | SeriesValue::Gauge(v) => {
                        let _ = write!(out, "{name}");
                        if !labels.is_empty() {
                            let _ = write!(out, "{{{labels}}}");
                        }
                        out.push(' ');
                        write_prom_f64(*v, out);
                        out.push('\n');
                    }
                    SeriesValue::Histogram {
                        buckets,
                        sum,
                        count,
                    } => {
                        let sep = if labels.is_empty() { "" } else { "," };
                        let mut cumulative = 0u64;
                        for (i, n) in buckets.iter().enumerate() {
                            cumulative += n;
                            let _ = write!(out, "{name}_bucket{{{labels}{sep}le=\"");
                            match family.bounds.get(i) {
                                Some(le) => write_prom_f64(*le, out),
                                None => out.push_str("+Inf"),
                            }
                            let _ = writeln!(out, "\"}} {cumulative}");
                        }
                        let braces = if labels.is_empty() {
                            String::new()
                        } else {
                            format!("{{{labels}}}")
                        };
                        let _ = write!(out, "{name}_sum{braces} ");
                        write_prom_f64(*sum, out);
                        let _ = writeln!(out, "\n{name}_count{braces} {count}");
                    }
                }
            }
        }
    }

    /// Merges a shard's pending changes (one lock for all of them).
    fn merge(&self, local: &mut IndexMap<Vec<u8>, Pending>, dirty: &[usize]) {
        let Ok(mut series) = self.series.lock() else {
            return;
        };
        let mut dropped = 0u64;
        for &idx in dirty {
            let Some((key, pending)) = local.get_index_mut(idx) else {
                continue;
            };
            pending.dirty = false;
            if let Some(s) = series.get_mut(&key[..]) {
                s.value.merge(&pending.delta);
            } else if series.len() < self.max_series {
                let (family, labels) = decode_key(key);
                let Some(info) = self.families.get(family) else {
                    continue;
                };
                let mut value = SeriesValue::zero(info.kind, info.bounds.len());
                value.merge(&pending.delta);
                series.insert(
                    key.clone(),
                    StoredSeries {
                        family,
                        labels,
                        value,
                    },
                );
            } else {
                dropped += pending.updates;
            }
            pending.delta.reset();
            pending.updates = 0;
        }
        drop(series);
        if dropped > 0 {
            self.overflow.fetch_add(dropped, Ordering::Relaxed);
        }
    }
}

fn render_labels(names: &[String], values: &[String]) -> String {
    let mut s = String::new();
    for (i, (n, v)) in names.iter().zip(values).enumerate() {
        if i > 0 {
            s.push(',');
        }
        let _ = write!(s, "{n}=\"");
        for c in v.chars() {
            match c {
                '\\' => s.push_str("\\\\"),
                '"' => s.push_str("\\\""),
                '\n' => s.push_str("\\n"),
                c => s.push(c),
            }
        }
        s.push('"');
    }
    s
}

fn escape_help(h: &str) -> String {
    h.replace('\\', "\\\\").replace('\n', "\\n")
}

/// Writes a sample value as the Prometheus text format reads it.
fn write_prom_f64(v: f64, out: &mut String) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v.is_infinite() {
        out.push_str(if v > 0.0 { "+Inf" } else { "-Inf" });
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        let _ = write!(out, "{}", v as i64);
    } else if v.abs() >= 1e15 || v.abs() < 1e-6 {
        let _ = write!(out, "{v:e}");
    } else {
        let _ = write!(out, "{v}");
    }
}

/// Splits a series key back into family index and label values.
fn decode_key(key: &[u8]) -> (usize, Vec<String>) {
    let family = match key {
        [a, b, ..] => usize::from(u16::from_le_bytes([*a, *b])),
        _ => usize::MAX,
    };
    let mut labels = Vec::new();
    let mut rest = key.get(2..).unwrap_or_default();
    while let Some((len, tail)) = rest.split_first_chunk::<4>() {
        let len = u32::from_le_bytes(*len) as usize;
        let Some(value) = tail.get(..len) else { break };
        labels.push(String::from_utf8_lossy(value).into_owned());
        rest = &tail[len..];
    }
    (family, labels)
}

struct LocalSpec {
    kind: MetricKind,
    field: Option<FieldPath>,
    label_paths: Vec<FieldPath>,
    bounds: Arc<[f64]>,
}

/// A shard's changes to one series since the last merge.
struct Pending {
    delta: SeriesValue,
    /// Events that contributed (counted as dropped if the store has no room).
    updates: u64,
    dirty: bool,
}

/// One shard's `log_to_metric` instance.
pub struct LogToMetric {
    store: Arc<SeriesStore>,
    specs: Vec<LocalSpec>,
    local: IndexMap<Vec<u8>, Pending>,
    /// Indices in `local` changed since the last merge.
    dirty: Vec<usize>,
    key: Vec<u8>,
}

impl LogToMetric {
    /// Builds the series key of `spec` for an event into `key`: the family index (2 bytes
    /// LE), then each label value as a 4-byte LE length and its bytes.
    fn series_key(
        key: &mut Vec<u8>,
        family: usize,
        spec: &LocalSpec,
        batch: &Batch,
        ev: &sluice_engine::Event,
    ) {
        key.clear();
        key.extend_from_slice(&(family as u16).to_le_bytes());
        for path in &spec.label_paths {
            let len_at = key.len();
            key.extend_from_slice(&[0; 4]);
            if let Some(v) = batch.get(ev, path) {
                write_label_value(&v, key);
            }
            let len = (key.len() - len_at - 4) as u32;
            key[len_at..len_at + 4].copy_from_slice(&len.to_le_bytes());
        }
    }

    fn observe(&mut self, batch: &Batch) {
        for ev in &batch.events {
            for (family, spec) in self.specs.iter().enumerate() {
                let value = match &spec.field {
                    None => 1.0,
                    Some(f) => match batch.get(ev, f).and_then(|v| v.as_f64()) {
                        Some(v) if v.is_finite() => v,
                        _ => continue,
                    },
                };
                if spec.kind == MetricKind::Counter && value < 0.0 {
                    continue;
                }
                Self::series_key(&mut self.key, family, spec, batch, ev);
                let idx = match self.local.get_index_of(&self.key[..]) {
                    Some(i) => i,
                    None => {
                        let pending = Pending {
                            delta: SeriesValue::zero(spec.kind, spec.bounds.len()),
                            updates: 0,
                            dirty: false,
                        };
                        self.local.insert_full(self.key.clone(), pending).0
                    }
                };
                let Some((_, pending)) = self.local.get_index_mut(idx) else {
                    continue;
                };
                match &mut pending.delta {
                    SeriesValue::Counter(d) => *d += value,
                    SeriesValue::Gauge(d) => *d = value,
                    SeriesValue::Histogram {
                        buckets,
                        sum,
                        count,
                    } => {
                        let b = spec.bounds.partition_point(|le| *le < value);
                        if let Some(n) = buckets.get_mut(b) {
                            *n += 1;
                        }
                        *sum += value;
                        *count += 1;
                    }
                }
                pending.updates += 1;
                if !pending.dirty {
                    pending.dirty = true;
                    self.dirty.push(idx);
                }
            }
        }
    }
}

/// The text of a label value: strings unescaped, other scalars as JSON text, null empty.
fn write_label_value(v: &ValueRef<'_>, out: &mut Vec<u8>) {
    match *v {
        ValueRef::Null | ValueRef::Owned(Value::Null) => {}
        ValueRef::Str { raw, escaped: true } => {
            let start = out.len();
            if !unescape_json_str(raw, out) {
                out.truncate(start);
                out.extend_from_slice(raw);
            }
        }
        ValueRef::Str {
            raw,
            escaped: false,
        } => out.extend_from_slice(raw),
        ValueRef::Owned(Value::Str(s)) => out.extend_from_slice(s.as_bytes()),
        _ => v.write_json(out),
    }
}

impl Transform for LogToMetric {
    fn process(&mut self, batch: Batch, out: &mut Emitter) {
        self.observe(&batch);
        if !self.dirty.is_empty() {
            self.store.merge(&mut self.local, &self.dirty);
            self.dirty.clear();
            if self.local.len() > LOCAL_SERIES_LIMIT {
                self.local.clear();
            }
        }
        out.emit(PORT_MAIN, batch);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parsers::json;
    use crate::transforms::test_pipeline::Harness;
    use bytes::Bytes;

    fn config(v: serde_json::Value) -> LogToMetricConfig {
        serde_json::from_value(v).unwrap()
    }

    fn json_batch(lines: &str) -> Batch {
        let mut b = Batch::from_lines(Bytes::copy_from_slice(lines.as_bytes()), 0);
        let mut rejected = Vec::new();
        json::parse_batch(&mut b, &mut rejected);
        assert!(rejected.is_empty());
        b
    }

    fn render(store: &SeriesStore) -> String {
        let mut s = String::new();
        store.render(&mut s);
        s
    }

    #[test]
    fn counters_gauges_histograms_render_exactly() {
        let cfg = config(serde_json::json!({
            "metrics": [
                {"type": "counter", "name": "requests_total", "labels": {"method": "m", "code": "status"}, "help": "Requests."},
                {"type": "counter", "name": "bytes_total", "field": "bytes"},
                {"type": "gauge", "name": "queue_depth", "field": "q", "labels": {"host": "host"}},
                {"type": "histogram", "name": "latency_seconds", "field": "lat", "buckets": [0.1, 0.5, 1]}
            ]
        }));
        let registry = Registry::new();
        let store = cfg.prepare(&registry, "l2m").unwrap();
        let mut h = Harness::new(Box::new(cfg.build(&store).unwrap()), 1);
        let input = "{\"m\":\"GET\",\"status\":200,\"bytes\":10,\"q\":3,\"host\":\"a\",\"lat\":0.05}\n\
                     {\"m\":\"GET\",\"status\":200,\"bytes\":2.5,\"q\":7,\"host\":\"a\",\"lat\":0.5}\n\
                     {\"m\":\"POST\",\"status\":500,\"bytes\":-4,\"lat\":3}\n\
                     {\"status\":404,\"bytes\":\"x\",\"q\":1.25,\"host\":\"b\",\"lat\":\"slow\"}\n";
        h.push(json_batch(input));
        // Events pass through unchanged, on the main port.
        assert_eq!(h.take_lines(PORT_MAIN).join("\n") + "\n", input);
        let want = "\
# HELP requests_total Requests.
# TYPE requests_total counter
requests_total{code=\"200\",method=\"GET\"} 2
requests_total{code=\"404\",method=\"\"} 1
requests_total{code=\"500\",method=\"POST\"} 1
# HELP bytes_total Derived from events by the log_to_metric transform l2m.
# TYPE bytes_total counter
bytes_total 12.5
# HELP queue_depth Derived from events by the log_to_metric transform l2m.
# TYPE queue_depth gauge
queue_depth{host=\"a\"} 7
queue_depth{host=\"b\"} 1.25
# HELP latency_seconds Derived from events by the log_to_metric transform l2m.
# TYPE latency_seconds histogram
latency_seconds_bucket{le=\"0.1\"} 1
latency_seconds_bucket{le=\"0.5\"} 2
latency_seconds_bucket{le=\"1\"} 2
latency_seconds_bucket{le=\"+Inf\"} 3
latency_seconds_sum 3.55
latency_seconds_count 3
";
        assert_eq!(render(&store), want);
        // The registry renders the store too.
        assert!(registry.render_prometheus().ends_with(want));

        // A second batch adds up; the gauge takes the last value.
        h.push(json_batch(
            "{\"m\":\"GET\",\"status\":200,\"q\":0,\"host\":\"a\",\"lat\":0.1}\n",
        ));
        let text = render(&store);
        assert!(text.contains("requests_total{code=\"200\",method=\"GET\"} 3\n"));
        assert!(text.contains("queue_depth{host=\"a\"} 0\n"));
        assert!(text.contains("latency_seconds_bucket{le=\"0.1\"} 2\n"));
        assert!(text.contains("latency_seconds_count 4\n"));
    }

    #[test]
    fn shards_share_the_store_and_default_buckets() {
        let cfg = config(serde_json::json!({
            "metrics": [
                {"type": "counter", "name": "events_total", "labels": {"svc": "svc"}},
                {"type": "histogram", "name": "size", "field": "n", "labels": {"svc": "svc"}}
            ]
        }));
        let registry = Registry::new();
        let store = cfg.prepare(&registry, "x").unwrap();
        let mut a = Harness::new(Box::new(cfg.build(&store).unwrap()), 1);
        let mut b = Harness::new(Box::new(cfg.build(&store).unwrap()), 1);
        for _ in 0..3 {
            a.push(json_batch(
                "{\"svc\":\"api\",\"n\":0.005}\n{\"svc\":\"web\",\"n\":20}\n",
            ));
            b.push(json_batch("{\"svc\":\"api\",\"n\":7}\n"));
        }
        let text = render(&store);
        assert!(text.contains("events_total{svc=\"api\"} 6\n"), "{text}");
        assert!(text.contains("events_total{svc=\"web\"} 3\n"));
        assert!(text.contains("size_bucket{svc=\"api\",le=\"0.005\"} 3\n"));
        assert!(text.contains("size_bucket{svc=\"api\",le=\"5\"} 3\n"));
        assert!(text.contains("size_bucket{svc=\"api\",le=\"10\"} 6\n"));
        assert!(text.contains("size_bucket{svc=\"web\",le=\"10\"} 0\n"));
        assert!(text.contains("size_bucket{svc=\"web\",le=\"+Inf\"} 3\n"));
        assert!(text.contains("size_sum{svc=\"api\"} 21.015\n"));
        assert!(text.contains("size_count{svc=\"api\"} 6\n"));
        assert_eq!(store.len(), 4);
    }

    #[test]
    fn label_values_are_escaped() {
        let cfg = config(serde_json::json!({
            "metrics": [{"type": "counter", "name": "c", "labels": {"v": "v"}, "help": "a\\b\nc"}]
        }));
        let store = cfg.prepare(&Registry::new(), "x").unwrap();
        let mut h = Harness::new(Box::new(cfg.build(&store).unwrap()), 1);
        h.push(json_batch(
            "{\"v\":\"q\\\"uote\"}\n{\"v\":\"back\\\\slash\"}\n{\"v\":\"new\\nline\"}\n{\"v\":true}\n{\"v\":{\"o\":1}}\n{\"v\":null}\n",
        ));
        // Raw (unparsed) lines have no `v`: empty label.
        h.push(Batch::from_lines(Bytes::from_static(b"plain"), 0));
        assert_eq!(
            render(&store),
            "# HELP c a\\\\b\\nc\n# TYPE c counter\n\
             c{v=\"\"} 2\n\
             c{v=\"back\\\\slash\"} 1\n\
             c{v=\"new\\nline\"} 1\n\
             c{v=\"q\\\"uote\"} 1\n\
             c{v=\"true\"} 1\n\
             c{v=\"{\\\"o\\\":1}\"} 1\n"
        );
    }

    #[test]
    fn max_series_caps_and_counts() {
        let cfg = config(serde_json::json!({
            "max_series": 2,
            "metrics": [{"type": "counter", "name": "c", "labels": {"k": "k"}}]
        }));
        let registry = Registry::new();
        let store = cfg.prepare(&registry, "capped").unwrap();
        let mut h = Harness::new(Box::new(cfg.build(&store).unwrap()), 1);
        h.push(json_batch("{\"k\":\"a\"}\n{\"k\":\"b\"}\n"));
        h.push(json_batch(
            "{\"k\":\"c\"}\n{\"k\":\"a\"}\n{\"k\":\"c\"}\n{\"k\":\"d\"}\n",
        ));
        let text = render(&store);
        assert!(text.contains("c{k=\"a\"} 2\n"));
        assert!(text.contains("c{k=\"b\"} 1\n"));
        assert!(!text.contains("k=\"c\""));
        assert_eq!(store.len(), 2);
        assert_eq!(store.dropped(), 3);
        assert!(registry
            .render_prometheus()
            .contains("sluice_log_to_metric_series_dropped_total{component=\"capped\"} 3\n"));
    }

    #[test]
    fn odd_numbers_do_not_break_the_output() {
        let cfg = config(serde_json::json!({
            "metrics": [
                {"type": "gauge", "name": "g", "field": "v"},
                {"type": "counter", "name": "c", "field": "v"}
            ]
        }));
        let store = cfg.prepare(&Registry::new(), "x").unwrap();
        let mut h = Harness::new(Box::new(cfg.build(&store).unwrap()), 1);
        h.push(json_batch(
            "{\"v\":1e400}\n{\"v\":-1e400}\n{\"v\":1e300}\n{\"v\":1e-9}\n",
        ));
        assert_eq!(
            render(&store),
            "# HELP g Derived from events by the log_to_metric transform x.\n# TYPE g gauge\ng 1e-9\n\
             # HELP c Derived from events by the log_to_metric transform x.\n# TYPE c counter\nc 1e300\n"
        );
    }

    #[test]
    fn config_errors() {
        let bad = [
            (serde_json::json!({"metrics": []}), "at least one"),
            (
                serde_json::json!({"metrics": [{"type": "counter", "name": "1abc"}]}),
                "metric name",
            ),
            (
                serde_json::json!({"metrics": [{"type": "counter", "name": "a-b"}]}),
                "metric name",
            ),
            (
                serde_json::json!({"metrics": [{"type": "counter", "name": "sluice_x"}]}),
                "reserved",
            ),
            (
                serde_json::json!({"metrics": [{"type": "gauge", "name": "g"}]}),
                "needs a `field`",
            ),
            (
                serde_json::json!({"metrics": [{"type": "counter", "name": "c", "buckets": [1]}]}),
                "only for histograms",
            ),
            (
                serde_json::json!({"metrics": [{"type": "histogram", "name": "h", "field": "x", "buckets": [1, 1]}]}),
                "increasing",
            ),
            (
                serde_json::json!({"metrics": [{"type": "histogram", "name": "h", "field": "x", "labels": {"le": "x"}}]}),
                "reserved",
            ),
            (
                serde_json::json!({"metrics": [{"type": "counter", "name": "c", "labels": {"__x": "x"}}]}),
                "label name",
            ),
            (
                serde_json::json!({"metrics": [{"type": "counter", "name": "c", "labels": {"x": "a..b"}}]}),
                "label `x`",
            ),
            (
                serde_json::json!({"metrics": [{"type": "histogram", "name": "h", "field": "x"}, {"type": "counter", "name": "h_count"}]}),
                "used twice",
            ),
            (
                serde_json::json!({"max_series": 0, "metrics": [{"type": "counter", "name": "c"}]}),
                "max_series",
            ),
        ];
        for (v, want) in bad {
            let err = config(v.clone()).validate().unwrap_err();
            assert!(err.contains(want), "{v}: {err}");
        }
        assert!(
            serde_json::from_value::<LogToMetricConfig>(serde_json::json!({
                "metrics": [{"type": "summary", "name": "s"}]
            }))
            .is_err()
        );
        assert!(
            serde_json::from_value::<LogToMetricConfig>(serde_json::json!({
                "metrics": [{"type": "counter", "name": "s", "lables": {}}]
            }))
            .is_err()
        );
        // A store from another config is refused.
        let a = config(serde_json::json!({"metrics": [{"type": "counter", "name": "a"}]}));
        let b = config(serde_json::json!({"metrics": [{"type": "counter", "name": "b"}]}));
        let store = a.prepare(&Registry::new(), "a").unwrap();
        assert!(b.build(&store).is_err());
    }
}

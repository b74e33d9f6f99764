//! `type = "aggregate"`: counts, sums, minima, maxima and averages of events per group over
//! tumbling wall-clock windows.
//!
//! An event belongs to the window that holds the wall-clock time at which it is processed;
//! windows are aligned to multiples of `window` since the Unix epoch (a `"1m"` window runs
//! from `hh:mm:00` to `hh:mm+1:00`). When a window has closed (seen at the next batch or the
//! next shard tick, about every 100 ms, and at shutdown) one JSON event per group goes out
//! on the main output as a new, parsed batch:
//!
//! ```json
//! {"window_start":"2026-01-01T00:00:00Z","window_end":"2026-01-01T00:01:00Z","host":"a","count":3,"sum_bytes":1200}
//! ```
//!
//! Group fields keep their path (`group_by = ["http.method"]` writes `{"http":{"method":..}}`);
//! a missing group field is written as `null`. Input events are consumed (their batches are
//! acknowledged at once, so a crash loses the open window). `sum`, `min`, `max` and `avg`
//! read numbers only (numeric strings, non-finite numbers and other types are skipped);
//! `count` without `field` counts events, with `field` it counts events where the field is
//! present and not null. With no number seen, `sum` is 0 and `min`/`max`/`avg` are null.
//!
//! Each shard aggregates on its own: place the transform after an exchange keyed by
//! [`AggregateConfig::key_fields`] so one group lives on one shard.
//!
//! Cost per event: one lookup of the group key, built in a reused buffer; memory is
//! allocated only when a group is first seen in a window.

use crate::parsers::json;
use crate::parsers::timestamp::Timestamp;
use bytes::Bytes;
use indexmap::IndexMap;
use serde::Deserialize;
use sluice_engine::batch::Batch;
use sluice_engine::metrics::ComponentMetrics;
use sluice_engine::path::FieldPath;
use sluice_engine::pipeline::{Emitter, Transform, PORT_MAIN};
use sluice_engine::value::{unescape_json_str, write_json_str};
use sluice_engine::ValueRef;
use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Events per emitted batch (a window with more groups goes out as several batches).
const MAX_EVENTS_PER_BATCH: usize = 4096;
const MIN_WINDOW: Duration = Duration::from_millis(1);
const MAX_WINDOW: Duration = Duration::from_secs(366 * 86_400);

/// The wall clock windows are aligned to; injectable so tests are deterministic.
pub type WallClock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// Options of the `aggregate` transform.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AggregateConfig {
    /// Field paths whose values make the group key (none: one group).
    #[serde(default)]
    pub group_by: Vec<String>,
    /// Window length, e.g. `"10s"`, `"1m"`.
    pub window: String,
    /// What to compute per group.
    pub metrics: Vec<AggMetric>,
    /// Most groups held per window and shard; events of further new groups are dropped
    /// (`reason="aggregate_overflow"`).
    #[serde(default = "default_max_groups")]
    pub max_groups: usize,
}

fn default_max_groups() -> usize {
    100_000
}

/// One computed output field.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AggMetric {
    /// Output field name.
    pub name: String,
    pub op: AggOp,
    /// Field path read; required except for `count`.
    #[serde(default)]
    pub field: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AggOp {
    Count,
    Sum,
    Min,
    Max,
    Avg,
}

impl AggregateConfig {
    pub const NAMED_OUTPUTS: &'static [&'static str] = &[];

    /// The fields an exchange in front of this transform must key on.
    pub fn key_fields(&self) -> Vec<String> {
        self.group_by.clone()
    }

    /// Checks the config; returns the window length.
    pub fn validate(&self) -> Result<Duration, String> {
        let window = sluice_engine::units::parse_duration(&self.window)
            .map_err(|e| format!("window: {e}"))?;
        if !(MIN_WINDOW..=MAX_WINDOW).contains(&window) {
            return Err(format!(
                "window: `{}` is out of range (1ms to 366d)",
                self.window
            ));
        }
        if self.metrics.is_empty() {
            return Err(
                "metrics: give at least one, e.g. { name = \"count\", op = \"count\" }".into(),
            );
        }
        if self.max_groups == 0 {
            return Err("max_groups must be at least 1".into());
        }
        let mut group_paths = Vec::with_capacity(self.group_by.len());
        for g in &self.group_by {
            let p = FieldPath::parse(g).map_err(|e| format!("group_by: {e}"))?;
            if group_paths.contains(&p) {
                return Err(format!("group_by: `{g}` is listed twice"));
            }
            group_paths.push(p);
        }
        build_group_tree(&group_paths)?;
        let mut taken: Vec<&str> = vec!["window_start", "window_end"];
        for p in &group_paths {
            taken.push(&p.segments()[0]);
        }
        for (i, m) in self.metrics.iter().enumerate() {
            if m.name.is_empty() {
                return Err(format!("metrics[{i}]: `name` is empty"));
            }
            if taken.contains(&m.name.as_str()) {
                return Err(format!(
                    "metrics[{i}]: name `{}` is already used by another output field",
                    m.name
                ));
            }
            taken.push(&m.name);
            match (&m.field, m.op) {
                (None, AggOp::Count) => {}
                (None, op) => {
                    return Err(format!(
                        "metrics[{i}] `{}`: op `{}` needs a `field`",
                        m.name,
                        op.as_str()
                    ))
                }
                (Some(f), _) => {
                    FieldPath::parse(f).map_err(|e| format!("metrics[{i}] `{}`: {e}", m.name))?;
                }
            }
        }
        Ok(window)
    }

    /// Builds one shard's instance, windows aligned to the system clock.
    pub fn build(&self, metrics: &ComponentMetrics) -> Result<Aggregate, String> {
        self.build_with_clock(metrics, Arc::new(SystemTime::now))
    }

    /// Builds one shard's instance reading time from `clock`.
    pub fn build_with_clock(
        &self,
        metrics: &ComponentMetrics,
        clock: WallClock,
    ) -> Result<Aggregate, String> {
        let window = self.validate()?;
        let group_paths: Vec<FieldPath> = self
            .group_by
            .iter()
            .map(|g| FieldPath::parse(g).map_err(|e| e.to_string()))
            .collect::<Result<_, _>>()?;
        let group_tree = build_group_tree(&group_paths)?;
        let metric_specs = self
            .metrics
            .iter()
            .map(|m| {
                Ok(MetricSpec {
                    name: m.name.clone(),
                    op: m.op,
                    field: m
                        .field
                        .as_deref()
                        .map(FieldPath::parse)
                        .transpose()
                        .map_err(|e| e.to_string())?,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(Aggregate {
            window_nanos: window.as_nanos() as u64,
            clock,
            group_paths,
            group_tree,
            metrics: metric_specs,
            max_groups: self.max_groups,
            overflow: metrics.dropped("aggregate_overflow"),
            window_start: None,
            groups: IndexMap::new(),
            key: Vec::new(),
            ends: Vec::new(),
            unescaped: Vec::new(),
            source: 0,
            rejected: Vec::new(),
        })
    }
}

impl AggOp {
    fn as_str(self) -> &'static str {
        match self {
            AggOp::Count => "count",
            AggOp::Sum => "sum",
            AggOp::Min => "min",
            AggOp::Max => "max",
            AggOp::Avg => "avg",
        }
    }
}

struct MetricSpec {
    name: String,
    op: AggOp,
    field: Option<FieldPath>,
}

/// Where group values go in an output event: the group paths as a tree of objects.
#[derive(Debug)]
enum OutNode {
    Leaf {
        name: String,
        group: usize,
    },
    Branch {
        name: String,
        children: Vec<OutNode>,
    },
}

fn build_group_tree(paths: &[FieldPath]) -> Result<Vec<OutNode>, String> {
    let mut roots = Vec::new();
    for (gi, p) in paths.iter().enumerate() {
        insert_path(&mut roots, p.segments(), gi, p)?;
    }
    Ok(roots)
}

fn insert_path(
    nodes: &mut Vec<OutNode>,
    segs: &[Box<str>],
    group: usize,
    full: &FieldPath,
) -> Result<(), String> {
    let conflict = || format!("group_by: `{full}` overlaps another group field");
    let Some((first, rest)) = segs.split_first() else {
        return Err(conflict());
    };
    let existing = nodes.iter_mut().find(|n| match n {
        OutNode::Leaf { name, .. } | OutNode::Branch { name, .. } => name.as_str() == &**first,
    });
    match (existing, rest.is_empty()) {
        (None, true) => nodes.push(OutNode::Leaf {
            name: first.to_string(),
            group,
        }),
        (None, false) => {
            let mut children = Vec::new();
            insert_path(&mut children, rest, group, full)?;
            nodes.push(OutNode::Branch {
                name: first.to_string(),
                children,
            });
        }
        (Some(OutNode::Branch { children, .. }), false) => {
            insert_path(children, rest, group, full)?
        }
        (Some(_), _) => return Err(conflict()),
    }
    Ok(())
}

/// A number read from an event.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Num {
    Int(i64),
    Float(f64),
}

impl Num {
    /// Numbers, and strings that hold a number (logfmt, kv, regex and grok values are
    /// strings: `size=12` sums as 12).
    fn read(v: &ValueRef<'_>) -> Option<Num> {
        if let Some(i) = v.as_i64() {
            return Some(Num::Int(i));
        }
        if let Some(f) = v.as_f64() {
            return Some(f).filter(|f| f.is_finite()).map(Num::Float);
        }
        let s = v.as_str()?;
        let text = std::str::from_utf8(&s).ok()?.trim();
        if let Ok(i) = text.parse::<i64>() {
            return Some(Num::Int(i));
        }
        text.parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .map(Num::Float)
    }

    fn as_f64(self) -> f64 {
        match self {
            Num::Int(i) => i as f64,
            Num::Float(f) => f,
        }
    }

    fn write(self, out: &mut Vec<u8>) {
        match self {
            Num::Int(i) => {
                let _ = write!(out, "{i}");
            }
            Num::Float(f) => write_f64(f, out),
        }
    }
}

fn write_f64(f: f64, out: &mut Vec<u8>) {
    if f.is_finite() {
        // Debug gives the shortest text that reads back exactly, with an exponent for very
        // large or small magnitudes: valid JSON either way.
        let _ = write!(out, "{f:?}");
    } else {
        out.extend_from_slice(b"null");
    }
}

/// The running state of one metric of one group.
#[derive(Debug, Clone, Copy)]
struct Cell {
    /// Events counted (`count`) or numbers seen (the others).
    n: u64,
    int_sum: i128,
    float_sum: f64,
    ints_only: bool,
    min: Option<Num>,
    max: Option<Num>,
}

impl Default for Cell {
    fn default() -> Cell {
        Cell {
            n: 0,
            int_sum: 0,
            float_sum: 0.0,
            ints_only: true,
            min: None,
            max: None,
        }
    }
}

impl Cell {
    fn add(&mut self, v: Num) {
        self.n += 1;
        match v {
            Num::Int(i) => self.int_sum += i as i128,
            Num::Float(_) => self.ints_only = false,
        }
        let f = v.as_f64();
        self.float_sum += f;
        match self.min {
            Some(m) if f >= m.as_f64() => {}
            _ => self.min = Some(v),
        }
        match self.max {
            Some(m) if f <= m.as_f64() => {}
            _ => self.max = Some(v),
        }
    }

    fn write(&self, op: AggOp, out: &mut Vec<u8>) {
        match op {
            AggOp::Count => {
                let _ = write!(out, "{}", self.n);
            }
            AggOp::Sum => match i64::try_from(self.int_sum) {
                Ok(i) if self.ints_only => Num::Int(i).write(out),
                _ if self.ints_only => write_f64(self.int_sum as f64, out),
                _ => write_f64(self.float_sum, out),
            },
            AggOp::Min => write_opt(self.min, out),
            AggOp::Max => write_opt(self.max, out),
            AggOp::Avg if self.n == 0 => out.extend_from_slice(b"null"),
            AggOp::Avg if self.ints_only => write_f64(self.int_sum as f64 / self.n as f64, out),
            AggOp::Avg => write_f64(self.float_sum / self.n as f64, out),
        }
    }
}

fn write_opt(v: Option<Num>, out: &mut Vec<u8>) {
    match v {
        Some(n) => n.write(out),
        None => out.extend_from_slice(b"null"),
    }
}

/// One group of the open window.
struct GroupState {
    /// End offset of each group value's JSON text in the map key.
    ends: Box<[u32]>,
    cells: Box<[Cell]>,
}

/// One shard's `aggregate` instance.
pub struct Aggregate {
    window_nanos: u64,
    clock: WallClock,
    group_paths: Vec<FieldPath>,
    group_tree: Vec<OutNode>,
    metrics: Vec<MetricSpec>,
    max_groups: usize,
    overflow: Arc<AtomicU64>,
    /// Start of the open window (ns since the epoch); `None` before the first event.
    window_start: Option<u64>,
    /// Keyed by the group values' JSON texts, concatenated; in first-seen order.
    groups: IndexMap<Vec<u8>, GroupState>,
    key: Vec<u8>,
    ends: Vec<u32>,
    unescaped: Vec<u8>,
    /// Source index given to emitted batches: that of the last input batch.
    source: u16,
    rejected: Vec<(usize, &'static str)>,
}

impl Aggregate {
    fn now_nanos(&self) -> u64 {
        let since = (self.clock)()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        u64::try_from(since.as_nanos()).unwrap_or(u64::MAX)
    }

    /// Emits every group of the open window and closes it.
    fn flush(&mut self, out: &mut Emitter) {
        let Some(start) = self.window_start.take() else {
            return;
        };
        if self.groups.is_empty() {
            return;
        }
        if !out.is_connected(PORT_MAIN) {
            self.groups.clear();
            return;
        }
        let end = start.saturating_add(self.window_nanos);
        let mut prefix = Vec::with_capacity(96);
        prefix.extend_from_slice(b"{\"window_start\":\"");
        Timestamp::from_unix_nanos(start.min(i64::MAX as u64) as i64).write_rfc3339(&mut prefix);
        prefix.extend_from_slice(b"\",\"window_end\":\"");
        Timestamp::from_unix_nanos(end.min(i64::MAX as u64) as i64).write_rfc3339(&mut prefix);
        prefix.push(b'"');

        let mut buf: Vec<u8> = Vec::new();
        let mut lines = 0;
        let groups = std::mem::take(&mut self.groups);
        for (key, state) in &groups {
            buf.extend_from_slice(&prefix);
            write_group_fields(&self.group_tree, key, &state.ends, &mut buf);
            for (m, cell) in self.metrics.iter().zip(state.cells.iter()) {
                buf.push(b',');
                write_json_str(m.name.as_bytes(), &mut buf);
                buf.push(b':');
                cell.write(m.op, &mut buf);
            }
            buf.extend_from_slice(b"}\n");
            lines += 1;
            if lines == MAX_EVENTS_PER_BATCH {
                self.emit_lines(std::mem::take(&mut buf), out);
                lines = 0;
            }
        }
        if lines > 0 {
            self.emit_lines(buf, out);
        }
        // Keep the table's capacity for the next window.
        self.groups = groups;
        self.groups.clear();
    }

    fn emit_lines(&mut self, buf: Vec<u8>, out: &mut Emitter) {
        let mut batch = Batch::from_lines(Bytes::from(buf), self.source);
        self.rejected.clear();
        // Every line is a JSON object written above; none is rejected.
        json::parse_batch(&mut batch, &mut self.rejected);
        out.emit(PORT_MAIN, batch);
    }

    fn accumulate(&mut self, batch: &Batch) {
        let mut overflowed = 0u64;
        for ev in &batch.events {
            self.key.clear();
            self.ends.clear();
            for path in &self.group_paths {
                match batch.get(ev, path) {
                    Some(v) => write_group_value(&v, &mut self.key, &mut self.unescaped),
                    None => self.key.extend_from_slice(b"null"),
                }
                self.ends
                    .push(u32::try_from(self.key.len()).unwrap_or(u32::MAX));
            }
            let idx = match self.groups.get_index_of(&self.key[..]) {
                Some(i) => i,
                None if self.groups.len() >= self.max_groups => {
                    overflowed += 1;
                    continue;
                }
                None => {
                    let state = GroupState {
                        ends: self.ends.as_slice().into(),
                        cells: vec![Cell::default(); self.metrics.len()].into_boxed_slice(),
                    };
                    self.groups.insert_full(self.key.clone(), state).0
                }
            };
            let Some((_, state)) = self.groups.get_index_mut(idx) else {
                continue;
            };
            for (m, cell) in self.metrics.iter().zip(state.cells.iter_mut()) {
                match (&m.field, m.op) {
                    (None, _) => cell.n += 1,
                    (Some(f), AggOp::Count) => {
                        if batch.get(ev, f).is_some_and(|v| !v.is_null()) {
                            cell.n += 1;
                        }
                    }
                    (Some(f), _) => {
                        if let Some(n) = batch.get(ev, f).as_ref().and_then(Num::read) {
                            cell.add(n);
                        }
                    }
                }
            }
        }
        if overflowed > 0 {
            self.overflow.fetch_add(overflowed, Ordering::Relaxed);
        }
    }
}

/// Writes a group value as JSON, strings unescaped and re-escaped so equal strings give
/// equal keys whatever escapes the input used. An object or array copied from a multi-line
/// event may hold line feeds between its tokens: they become spaces, so the value stays on
/// its output line.
fn write_group_value(v: &ValueRef<'_>, out: &mut Vec<u8>, scratch: &mut Vec<u8>) {
    if let ValueRef::Str { raw, escaped: true } = *v {
        scratch.clear();
        if unescape_json_str(raw, scratch) {
            write_json_str(scratch, out);
            return;
        }
    }
    let start = out.len();
    v.write_json(out);
    if let Some(written) = out.get_mut(start..) {
        // Outside strings a line feed can only be whitespace; inside them it is escaped.
        for b in written.iter_mut().filter(|b| **b == b'\n') {
            *b = b' ';
        }
    }
}

fn write_group_fields(nodes: &[OutNode], key: &[u8], ends: &[u32], out: &mut Vec<u8>) {
    for node in nodes {
        out.push(b',');
        write_group_node(node, key, ends, out);
    }
}

fn write_group_node(node: &OutNode, key: &[u8], ends: &[u32], out: &mut Vec<u8>) {
    match node {
        OutNode::Leaf { name, group } => {
            write_json_str(name.as_bytes(), out);
            out.push(b':');
            let start = match group.checked_sub(1) {
                Some(prev) => ends.get(prev).copied().unwrap_or(0) as usize,
                None => 0,
            };
            let end = ends.get(*group).copied().unwrap_or(0) as usize;
            match key.get(start..end) {
                Some(text) if !text.is_empty() => out.extend_from_slice(text),
                _ => out.extend_from_slice(b"null"),
            }
        }
        OutNode::Branch { name, children } => {
            write_json_str(name.as_bytes(), out);
            out.extend_from_slice(b":{");
            for (i, c) in children.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_group_node(c, key, ends, out);
            }
            out.push(b'}');
        }
    }
}

impl Transform for Aggregate {
    fn process(&mut self, batch: Batch, out: &mut Emitter) {
        let now = self.now_nanos();
        let current = now - now % self.window_nanos;
        match self.window_start {
            // The window moved on before a tick closed it.
            Some(open) if current > open => {
                self.flush(out);
                self.window_start = Some(current);
            }
            // Same window, or the clock stepped back: keep filling the open one.
            Some(_) => {}
            None => self.window_start = Some(current),
        }
        self.source = batch.origin.source;
        self.accumulate(&batch);
    }

    fn wants_tick(&self) -> bool {
        true
    }

    fn tick(&mut self, _now: std::time::Instant, last: bool, out: &mut Emitter) {
        let Some(open) = self.window_start else {
            return;
        };
        if last || self.now_nanos() >= open.saturating_add(self.window_nanos) {
            self.flush(out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transforms::test_pipeline::Harness;
    use sluice_engine::metrics::{ComponentKind, Registry};
    use std::sync::atomic::AtomicU64;

    /// A clock the test moves by hand (ns since the epoch).
    fn manual_clock(start_secs: u64) -> (Arc<AtomicU64>, WallClock) {
        let t = Arc::new(AtomicU64::new(start_secs * 1_000_000_000));
        let t2 = t.clone();
        (
            t,
            Arc::new(move || UNIX_EPOCH + Duration::from_nanos(t2.load(Ordering::Relaxed))),
        )
    }

    fn set_secs(t: &AtomicU64, secs: f64) {
        t.store((secs * 1e9) as u64, Ordering::Relaxed);
    }

    fn config(toml_like: serde_json::Value) -> AggregateConfig {
        serde_json::from_value(toml_like).unwrap()
    }

    fn json_batch(lines: &str) -> Batch {
        let mut b = Batch::from_lines(Bytes::copy_from_slice(lines.as_bytes()), 0);
        let mut rejected = Vec::new();
        json::parse_batch(&mut b, &mut rejected);
        assert!(rejected.is_empty());
        b
    }

    /// Emitted lines, with every batch checked to be parsed JSON on the main port.
    fn drain_lines(h: &mut Harness) -> Vec<String> {
        let mut lines = Vec::new();
        for (port, b) in h.take() {
            assert_eq!(port, PORT_MAIN);
            for ev in &b.events {
                assert_eq!(ev.form, sluice_engine::batch::EventForm::Json);
                lines.push(String::from_utf8(b.line(ev).to_vec()).unwrap());
            }
        }
        lines
    }

    fn metrics() -> (Arc<Registry>, Arc<ComponentMetrics>) {
        let r = Registry::new();
        let m = r.component("agg", ComponentKind::Transform, "aggregate");
        (r, m)
    }

    #[test]
    fn per_group_values_over_two_windows() {
        let cfg = config(serde_json::json!({
            "group_by": ["host"],
            "window": "10s",
            "metrics": [
                {"name": "count", "op": "count"},
                {"name": "sum_bytes", "op": "sum", "field": "bytes"},
                {"name": "min_ms", "op": "min", "field": "ms"},
                {"name": "max_ms", "op": "max", "field": "ms"},
                {"name": "avg_ms", "op": "avg", "field": "ms"}
            ]
        }));
        let (_r, m) = metrics();
        let (t, clock) = manual_clock(1_700_000_000);
        let mut h = Harness::new(Box::new(cfg.build_with_clock(&m, clock).unwrap()), 1);
        h.push(json_batch(
            "{\"host\":\"a\",\"bytes\":100,\"ms\":1.5}\n\
                 {\"host\":\"b\",\"bytes\":7,\"ms\":4}\n\
                 {\"host\":\"a\",\"bytes\":50,\"ms\":0.5}\n",
        ));
        set_secs(&t, 1_700_000_005.0);
        h.push(json_batch("{\"host\":\"a\",\"bytes\":1,\"ms\":3}\n"));
        h.tick(false);
        assert!(drain_lines(&mut h).is_empty(), "window still open");

        // The window [1_700_000_000, 1_700_000_010) closes.
        set_secs(&t, 1_700_000_010.0);
        h.tick(false);
        assert_eq!(
            drain_lines(&mut h),
            vec![
                "{\"window_start\":\"2023-11-14T22:13:20Z\",\"window_end\":\"2023-11-14T22:13:30Z\",\"host\":\"a\",\"count\":3,\"sum_bytes\":151,\"min_ms\":0.5,\"max_ms\":3,\"avg_ms\":1.6666666666666667}",
                "{\"window_start\":\"2023-11-14T22:13:20Z\",\"window_end\":\"2023-11-14T22:13:30Z\",\"host\":\"b\",\"count\":1,\"sum_bytes\":7,\"min_ms\":4,\"max_ms\":4,\"avg_ms\":4.0}",
            ]
        );

        // Second window: only b.
        set_secs(&t, 1_700_000_012.5);
        h.push(json_batch("{\"host\":\"b\",\"bytes\":-3,\"ms\":2}\n"));
        h.tick(false);
        assert!(drain_lines(&mut h).is_empty());
        set_secs(&t, 1_700_000_020.0);
        h.tick(false);
        assert_eq!(
            drain_lines(&mut h),
            vec!["{\"window_start\":\"2023-11-14T22:13:30Z\",\"window_end\":\"2023-11-14T22:13:40Z\",\"host\":\"b\",\"count\":1,\"sum_bytes\":-3,\"min_ms\":2,\"max_ms\":2,\"avg_ms\":2.0}"]
        );
        // Nothing left.
        h.tick(true);
        assert!(drain_lines(&mut h).is_empty());
    }

    #[test]
    fn a_batch_in_a_later_window_closes_the_open_one() {
        let cfg = config(serde_json::json!({
            "window": "1m",
            "metrics": [{"name": "n", "op": "count"}]
        }));
        let (_r, m) = metrics();
        let (t, clock) = manual_clock(120);
        let mut h = Harness::new(Box::new(cfg.build_with_clock(&m, clock).unwrap()), 1);
        h.push(json_batch("{}\n{}\n"));
        set_secs(&t, 185.0);
        h.push(json_batch("{}\n"));
        assert_eq!(
            drain_lines(&mut h),
            vec!["{\"window_start\":\"1970-01-01T00:02:00Z\",\"window_end\":\"1970-01-01T00:03:00Z\",\"n\":2}"]
        );
        // A clock stepping back keeps filling the open window.
        set_secs(&t, 100.0);
        h.push(json_batch("{}\n"));
        h.tick(true);
        assert_eq!(
            drain_lines(&mut h),
            vec!["{\"window_start\":\"1970-01-01T00:03:00Z\",\"window_end\":\"1970-01-01T00:04:00Z\",\"n\":2}"]
        );
    }

    #[test]
    fn missing_and_non_numeric_values_are_skipped_numeric_strings_count() {
        let cfg = config(serde_json::json!({
            "group_by": ["svc"],
            "window": "5s",
            "metrics": [
                {"name": "events", "op": "count"},
                {"name": "with_v", "op": "count", "field": "v"},
                {"name": "sum_v", "op": "sum", "field": "v"},
                {"name": "avg_v", "op": "avg", "field": "v"},
                {"name": "min_v", "op": "min", "field": "v"},
                {"name": "max_v", "op": "max", "field": "v"}
            ]
        }));
        let (_r, m) = metrics();
        let (_t, clock) = manual_clock(0);
        let mut h = Harness::new(Box::new(cfg.build_with_clock(&m, clock).unwrap()), 1);
        h.push(json_batch(
            "{\"svc\":\"x\",\"v\":\"12\"}\n\
                 {\"svc\":\"x\"}\n\
                 {\"svc\":\"x\",\"v\":null}\n\
                 {\"svc\":\"x\",\"v\":[1]}\n\
                 {\"svc\":\"x\",\"v\":1e400}\n\
                 {\"svc\":\"x\",\"v\":2.5}\n\
                 {\"svc\":\"x\",\"v\":10}\n\
                 {\"svc\":\"y\",\"v\":\"nope\"}\n",
        ));
        h.tick(true);
        assert_eq!(
            drain_lines(&mut h),
            vec![
                "{\"window_start\":\"1970-01-01T00:00:00Z\",\"window_end\":\"1970-01-01T00:00:05Z\",\"svc\":\"x\",\"events\":7,\"with_v\":5,\"sum_v\":24.5,\"avg_v\":8.166666666666666,\"min_v\":2.5,\"max_v\":12}",
                "{\"window_start\":\"1970-01-01T00:00:00Z\",\"window_end\":\"1970-01-01T00:00:05Z\",\"svc\":\"y\",\"events\":1,\"with_v\":1,\"sum_v\":0,\"avg_v\":null,\"min_v\":null,\"max_v\":null}",
            ]
        );
    }

    #[test]
    fn nested_group_paths_escapes_and_missing_groups() {
        let cfg = config(serde_json::json!({
            "group_by": ["http.method", "http.status", "user"],
            "window": "1s",
            "metrics": [{"name": "n", "op": "count"}]
        }));
        let (_r, m) = metrics();
        let (_t, clock) = manual_clock(0);
        let mut h = Harness::new(Box::new(cfg.build_with_clock(&m, clock).unwrap()), 1);
        h.push(json_batch(
            "{\"http\":{\"method\":\"G\\u0045T\",\"status\":200},\"user\":\"q\\\"\"}\n\
                 {\"http\":{\"method\":\"GET\",\"status\":200},\"user\":\"q\\\"\"}\n\
                 {\"http\":{\"method\":\"GET\"}}\n",
        ));
        h.tick(true);
        assert_eq!(
            drain_lines(&mut h),
            vec![
                "{\"window_start\":\"1970-01-01T00:00:00Z\",\"window_end\":\"1970-01-01T00:00:01Z\",\"http\":{\"method\":\"GET\",\"status\":200},\"user\":\"q\\\"\",\"n\":2}",
                "{\"window_start\":\"1970-01-01T00:00:00Z\",\"window_end\":\"1970-01-01T00:00:01Z\",\"http\":{\"method\":\"GET\",\"status\":null},\"user\":null,\"n\":1}",
            ]
        );
    }

    #[test]
    fn object_group_values_from_multi_line_events_stay_on_one_line() {
        let cfg = config(serde_json::json!({
            "group_by": ["a"],
            "window": "1s",
            "metrics": [{"name": "n", "op": "count"}]
        }));
        let (_r, m) = metrics();
        let (_t, clock) = manual_clock(0);
        let mut h = Harness::new(Box::new(cfg.build_with_clock(&m, clock).unwrap()), 1);
        // One event spanning two lines (as a multiline source makes them).
        let text = b"{\"a\":{\n\"b\":[1,\n2]}}";
        let mut b = Batch::from_spans(Bytes::from_static(text), &[(0, text.len() as u32)], 0);
        let mut rejected = Vec::new();
        json::parse_batch(&mut b, &mut rejected);
        assert!(rejected.is_empty());
        h.push(b);
        h.tick(true);
        assert_eq!(
            drain_lines(&mut h),
            vec!["{\"window_start\":\"1970-01-01T00:00:00Z\",\"window_end\":\"1970-01-01T00:00:01Z\",\"a\":{ \"b\":[1, 2]},\"n\":1}"]
        );
    }

    #[test]
    fn big_integers_and_float_sums() {
        let cfg = config(serde_json::json!({
            "window": "1s",
            "metrics": [
                {"name": "s", "op": "sum", "field": "v"},
                {"name": "mx", "op": "max", "field": "v"},
                {"name": "a", "op": "avg", "field": "v"}
            ]
        }));
        let (_r, m) = metrics();
        let (_t, clock) = manual_clock(0);
        let mut h = Harness::new(Box::new(cfg.build_with_clock(&m, clock).unwrap()), 1);
        // The sum overflows i64 (kept exact in i128, written as a float).
        h.push(json_batch(
                "{\"v\":9223372036854775807}\n{\"v\":9223372036854775807}\n{\"v\":99999999999999999999999}\n",
            ));
        h.tick(true);
        let lines = drain_lines(&mut h);
        assert_eq!(lines.len(), 1);
        let v: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!(v["s"].as_f64(), Some(1.8446744073709552e19 + 1e23));
        assert_eq!(v["mx"].as_f64(), Some(1e23));
        assert!(v["a"].as_f64().unwrap() > 3e22);

        h.push(json_batch("{\"v\":1.5e308}\n{\"v\":1.5e308}\n"));
        h.tick(true);
        let lines = drain_lines(&mut h);
        // The float sum overflows to infinity: written as null, never as invalid JSON.
        assert!(
            lines[0].ends_with("\"s\":null,\"mx\":1.5e308,\"a\":null}"),
            "{}",
            lines[0]
        );
    }

    #[test]
    fn overflow_drops_new_groups_and_counts_them() {
        let cfg = config(serde_json::json!({
            "group_by": ["k"],
            "window": "1s",
            "max_groups": 2,
            "metrics": [{"name": "n", "op": "count"}]
        }));
        let (r, m) = metrics();
        let (_t, clock) = manual_clock(0);
        let mut h = Harness::new(Box::new(cfg.build_with_clock(&m, clock).unwrap()), 1);
        h.push(json_batch(
            "{\"k\":1}\n{\"k\":2}\n{\"k\":3}\n{\"k\":1}\n{\"k\":4}\n",
        ));
        h.tick(true);
        let lines = drain_lines(&mut h);
        assert_eq!(lines.len(), 2);
        assert!(lines[0].ends_with("\"k\":1,\"n\":2}"));
        assert!(lines[1].ends_with("\"k\":2,\"n\":1}"));
        assert_eq!(m.dropped("aggregate_overflow").load(Ordering::Relaxed), 2);
        assert!(r.render_prometheus().contains(
            "sluice_events_dropped_total{component=\"agg\",reason=\"aggregate_overflow\"} 2"
        ));
    }

    #[test]
    fn raw_events_and_many_groups_split_into_batches() {
        let cfg = config(serde_json::json!({
            "group_by": ["message"],
            "window": "1s",
            "metrics": [{"name": "n", "op": "count"}]
        }));
        let (_r, m) = metrics();
        let (_t, clock) = manual_clock(0);
        let mut h = Harness::new(Box::new(cfg.build_with_clock(&m, clock).unwrap()), 1);
        let mut text = String::new();
        for i in 0..(MAX_EVENTS_PER_BATCH + 10) {
            text.push_str(&format!("line \"{i}\"\n"));
        }
        h.push(Batch::from_lines(Bytes::from(text), 0));
        h.tick(true);
        // The pipeline runs what one call emitted last-in first-out: order by size.
        let mut items = h.take();
        items.sort_by_key(|(_, b)| b.len());
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].1.len(), 10);
        assert_eq!(items[1].1.len(), MAX_EVENTS_PER_BATCH);
        let b = &items[0].1;
        let msg = b
            .get(&b.events[9], &FieldPath::parse("message").unwrap())
            .unwrap();
        assert_eq!(
            &*msg.as_str().unwrap(),
            format!("line \"{}\"", MAX_EVENTS_PER_BATCH + 9).as_bytes()
        );
    }

    #[test]
    fn config_errors() {
        let bad = [
            (
                serde_json::json!({"window": "1s", "metrics": []}),
                "at least one",
            ),
            (
                serde_json::json!({"window": "soon", "metrics": [{"name": "n", "op": "count"}]}),
                "window",
            ),
            (
                serde_json::json!({"window": "0s", "metrics": [{"name": "n", "op": "count"}]}),
                "out of range",
            ),
            (
                serde_json::json!({"window": "1s", "metrics": [{"name": "s", "op": "sum"}]}),
                "needs a `field`",
            ),
            (
                serde_json::json!({"window": "1s", "metrics": [{"name": "window_end", "op": "count"}]}),
                "already used",
            ),
            (
                serde_json::json!({"window": "1s", "group_by": ["host"], "metrics": [{"name": "host", "op": "count"}]}),
                "already used",
            ),
            (
                serde_json::json!({"window": "1s", "group_by": ["a", "a.b"], "metrics": [{"name": "n", "op": "count"}]}),
                "overlaps",
            ),
            (
                serde_json::json!({"window": "1s", "group_by": ["a", "a"], "metrics": [{"name": "n", "op": "count"}]}),
                "twice",
            ),
            (
                serde_json::json!({"window": "1s", "group_by": ["a..b"], "metrics": [{"name": "n", "op": "count"}]}),
                "group_by",
            ),
        ];
        for (v, want) in bad {
            let err = config(v.clone()).validate().unwrap_err();
            assert!(err.contains(want), "{v}: {err}");
        }
        assert!(
            serde_json::from_value::<AggregateConfig>(serde_json::json!({
                "window": "1s", "metrics": [{"name": "n", "op": "median"}]
            }))
            .is_err()
        );
        assert!(
            serde_json::from_value::<AggregateConfig>(serde_json::json!({
                "window": "1s", "metrics": [], "typo": 1
            }))
            .is_err()
        );
        let ok = config(serde_json::json!({
            "group_by": ["a.b", "c"], "window": "1s", "metrics": [{"name": "n", "op": "count"}]
        }));
        assert_eq!(ok.key_fields(), vec!["a.b".to_string(), "c".to_string()]);
        assert_eq!(ok.max_groups, 100_000);
    }
}

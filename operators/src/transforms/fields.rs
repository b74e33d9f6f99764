//! `type = "fields"`: renames, copies, removes, sets, adds, coerces, flattens, unflattens and
//! selects fields.
//!
//! ```toml
//! [transforms.shape]
//! type = "fields"
//! inputs = ["parsed"]
//! rename = { msg = "message" }                   # from = to
//! copy = { "http.status" = "status_code" }       # from = to
//! remove = ["password"]
//! set = { env = "prod" }                         # always written
//! add = { id = "{{ host }}-{{ service }}" }      # written where absent; a template
//! coerce = { status_code = "int", ts = "timestamp" }
//! flatten = "kubernetes"                         # a path, a list of paths, or "." (all)
//! unflatten = "."
//! separator = "."                                # for flatten and unflatten
//! include = ["message", "http.status"]           # keep only these
//! exclude = ["debug"]                            # drop these
//! ```
//!
//! # Order
//!
//! Within one transform the options apply in this order, whatever their order in the file:
//! `rename`, `copy`, `remove`, `set`, `add`, `coerce`, `flatten`, `unflatten`, `include`,
//! `exclude`; entries of one option apply in the file's order. So a template in `set` / `add`
//! sees renamed and copied fields, `coerce` can convert a value `set` just wrote (templates
//! render strings), and `include` / `exclude` name fields as they are after flattening (quote
//! a flattened key: `include = ['"a.b"']`).
//!
//! # Semantics
//!
//! - `rename` / `copy` of a missing field do nothing; the target is overwritten. `remove` of a
//!   missing field does nothing. `add` writes only where the path holds nothing (a `null`
//!   counts as something); `set` always writes. Writing under a scalar replaces it with an
//!   object.
//! - `add` / `set` values are TOML values; a string holding `{{ path }}` is a template
//!   rendered per event into a string (see [`template`]).
//! - `coerce` converts a field to `int`, `float`, `bool`, `string` or `timestamp` (RFC 3339
//!   in UTC, read from RFC 3339 / ISO 8601 text or epoch numbers; see [`coerce::CoerceType`]).
//!   A missing field is left alone; a value that does not convert (`null` included) is left
//!   as it is and counted ([`Fields::coerce_errors`], the `coerce_error` count).
//! - `flatten` turns nested objects under the path (or the whole event for `"."`) into
//!   members with joined keys, `{"k": {"a": {"b": 1}}}` → `{"k": {"a.b": 1}}`; arrays and
//!   empty objects stay values. `unflatten` splits keys at the separator into nested objects,
//!   recursively, the later member winning a conflict (see [`tree::unflatten`]).
//! - `include` keeps only the listed paths (a nested path keeps that branch only);
//!   `exclude` removes them.
//!
//! # Costs: two paths
//!
//! With only `rename`, `remove`, `set` / `add` without templates and `exclude`, the changes
//! are recorded once per batch in the overlay (no per-event work here; sinks apply them when
//! they write, and an event that only gains top-level fields is written as its original bytes
//! with the members spliced in).
//!
//! Any of `copy`, `coerce`, `flatten`, `unflatten`, `include` or a template makes values
//! that differ per event, which a per-batch overlay cannot hold. Those batches are
//! *materialized*: each event is written as JSON by the engine's encoder (so every change
//! already recorded for it is applied), read back into a tree, edited by all the options in
//! the order above, and written into a new buffer that is parsed again; the new batch keeps
//! the events' order, ids and flags, the batch's origin and its acknowledgement. This costs
//! allocations per event and rewrites events compactly (no insignificant whitespace); it
//! keeps the event order, which grouping events by rendered value into sibling batches
//! would not.

pub mod coerce;
pub mod template;
pub mod tree;

use crate::parsers::json::parse_batch;
use coerce::CoerceType;
use indexmap::IndexMap;
use serde::Deserialize;
use sluice_engine::batch::{Batch, OverlayOp};
use sluice_engine::encode::{materialize, write_ndjson};
use sluice_engine::path::FieldPath;
use sluice_engine::pipeline::{Emitter, Transform, PORT_MAIN};
use sluice_engine::Value;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use template::Template;

/// Options of the `fields` transform.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldsConfig {
    /// Fields to move: `rename = { msg = "message" }`.
    #[serde(default)]
    pub rename: IndexMap<String, FieldPath>,
    /// Fields to duplicate: `copy = { host = "origin.host" }`.
    #[serde(default)]
    pub copy: IndexMap<String, FieldPath>,
    /// Fields to delete.
    #[serde(default)]
    pub remove: Vec<FieldPath>,
    /// Fields to write, replacing what is there.
    #[serde(default)]
    pub set: IndexMap<String, Value>,
    /// Fields to write where absent: `add = { env = "prod", "app.tier" = "web" }`.
    #[serde(default)]
    pub add: IndexMap<String, Value>,
    /// Fields to convert: `coerce = { status = "int" }`.
    #[serde(default)]
    pub coerce: IndexMap<String, CoerceType>,
    /// Objects to flatten: a path, a list of paths, `"."` for the whole event.
    #[serde(default)]
    pub flatten: PathList,
    /// Objects whose dotted keys to nest: a path, a list of paths, `"."` for the whole event.
    #[serde(default)]
    pub unflatten: PathList,
    /// Joins (flatten) and splits (unflatten) keys; default `"."`.
    #[serde(default = "default_separator")]
    pub separator: String,
    /// Keep only these fields.
    #[serde(default)]
    pub include: Vec<FieldPath>,
    /// Remove these fields (after everything else).
    #[serde(default)]
    pub exclude: Vec<FieldPath>,
}

fn default_separator() -> String {
    ".".to_string()
}

impl Default for FieldsConfig {
    fn default() -> Self {
        FieldsConfig {
            rename: IndexMap::new(),
            copy: IndexMap::new(),
            remove: Vec::new(),
            set: IndexMap::new(),
            add: IndexMap::new(),
            coerce: IndexMap::new(),
            flatten: PathList::default(),
            unflatten: PathList::default(),
            separator: default_separator(),
            include: Vec::new(),
            exclude: Vec::new(),
        }
    }
}

/// One path or a list of them; `"."` names the whole event.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PathList(pub Vec<String>);

impl<'de> Deserialize<'de> for PathList {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum OneOrMany {
            One(String),
            Many(Vec<String>),
        }
        Ok(match OneOrMany::deserialize(d)? {
            OneOrMany::One(s) => PathList(vec![s]),
            OneOrMany::Many(v) => PathList(v),
        })
    }
}

impl PathList {
    /// The segments of each path; `"."` is the empty path (the event itself).
    fn parse(&self, option: &str) -> Result<Vec<Vec<Box<str>>>, String> {
        self.0
            .iter()
            .map(|s| {
                if s.trim() == "." {
                    Ok(Vec::new())
                } else {
                    FieldPath::parse(s)
                        .map(|p| p.segments().to_vec())
                        .map_err(|e| format!("`{option}`: {e}"))
                }
            })
            .collect()
    }
}

/// One edit, in application order.
#[derive(Debug, Clone)]
enum Step {
    Rename(FieldPath, FieldPath),
    Copy(FieldPath, FieldPath),
    Remove(FieldPath),
    Set {
        path: FieldPath,
        value: Value,
        if_absent: bool,
    },
    SetTemplate {
        path: FieldPath,
        template: Template,
        if_absent: bool,
    },
    Coerce(FieldPath, CoerceType),
    Flatten(Vec<Box<str>>),
    Unflatten(Vec<Box<str>>),
    Include(Vec<FieldPath>),
}

impl FieldsConfig {
    pub fn validate(&self) -> Result<(), String> {
        self.steps().map(|_| ())
    }

    fn is_empty(&self) -> bool {
        self.rename.is_empty()
            && self.copy.is_empty()
            && self.remove.is_empty()
            && self.set.is_empty()
            && self.add.is_empty()
            && self.coerce.is_empty()
            && self.flatten.0.is_empty()
            && self.unflatten.0.is_empty()
            && self.include.is_empty()
            && self.exclude.is_empty()
    }

    /// Every edit in application order.
    fn steps(&self) -> Result<Vec<Step>, String> {
        if self.is_empty() {
            return Err(
                "nothing to do: give at least one of `rename`, `copy`, `remove`, `set`, \
                 `add`, `coerce`, `flatten`, `unflatten`, `include`, `exclude`"
                    .into(),
            );
        }
        if self.separator.is_empty() {
            return Err("`separator` must not be empty".into());
        }
        let path =
            |option: &str, s: &str| FieldPath::parse(s).map_err(|e| format!("`{option}`: {e}"));
        let mut steps = Vec::new();
        for (from, to) in &self.rename {
            steps.push(Step::Rename(path("rename", from)?, to.clone()));
        }
        for (from, to) in &self.copy {
            steps.push(Step::Copy(path("copy", from)?, to.clone()));
        }
        for p in &self.remove {
            steps.push(Step::Remove(p.clone()));
        }
        for (option, map, if_absent) in [("set", &self.set, false), ("add", &self.add, true)] {
            for (k, value) in map {
                let p = path(option, k)?;
                let template = match value {
                    Value::Str(s) => Template::parse(s).map_err(|e| format!("`{option}`: {e}"))?,
                    _ => None,
                };
                steps.push(match template {
                    Some(template) => Step::SetTemplate {
                        path: p,
                        template,
                        if_absent,
                    },
                    None => Step::Set {
                        path: p,
                        value: value.clone(),
                        if_absent,
                    },
                });
            }
        }
        for (k, ty) in &self.coerce {
            steps.push(Step::Coerce(path("coerce", k)?, *ty));
        }
        for p in self.flatten.parse("flatten")? {
            steps.push(Step::Flatten(p));
        }
        for p in self.unflatten.parse("unflatten")? {
            steps.push(Step::Unflatten(p));
        }
        if !self.include.is_empty() {
            steps.push(Step::Include(self.include.clone()));
        }
        for p in &self.exclude {
            steps.push(Step::Remove(p.clone()));
        }
        Ok(steps)
    }

    pub fn build(&self) -> Result<Fields, String> {
        let steps = self.steps()?;
        let ops: Option<Vec<OverlayOp>> = steps.iter().map(overlay_op).collect();
        Ok(Fields {
            mode: match ops {
                Some(ops) => Mode::Overlay(ops),
                None => Mode::PerEvent(steps),
            },
            separator: self.separator.clone(),
            coerce_errors: Arc::new(AtomicU64::new(0)),
            scratch: Vec::new(),
            spans: Vec::new(),
            rejected: Vec::new(),
            rendered: String::new(),
        })
    }
}

/// The overlay op doing `step` for a whole batch, when one can.
fn overlay_op(step: &Step) -> Option<OverlayOp> {
    Some(match step {
        Step::Rename(from, to) => OverlayOp::Rename {
            from: from.clone(),
            to: to.clone(),
        },
        Step::Remove(path) => OverlayOp::Remove { path: path.clone() },
        Step::Set {
            path,
            value,
            if_absent,
        } => OverlayOp::Set {
            path: path.clone(),
            value: value.clone(),
            if_absent: *if_absent,
        },
        _ => return None,
    })
}

enum Mode {
    /// Every step is a per-batch overlay op.
    Overlay(Vec<OverlayOp>),
    /// Some step needs per-event values: events are materialized and edited.
    PerEvent(Vec<Step>),
}

pub struct Fields {
    mode: Mode,
    separator: String,
    coerce_errors: Arc<AtomicU64>,
    /// Reused per batch: the encoded events, their spans, parse rejections, a rendering.
    scratch: Vec<u8>,
    spans: Vec<(u32, u32)>,
    rejected: Vec<(usize, &'static str)>,
    rendered: String,
}

impl Fields {
    /// How many `coerce` conversions failed (the `coerce_error` count).
    pub fn coerce_errors(&self) -> Arc<AtomicU64> {
        self.coerce_errors.clone()
    }

    /// Counts `coerce` failures in `counter` (a metric the caller registered).
    pub fn with_coerce_errors(mut self, counter: Arc<AtomicU64>) -> Fields {
        self.coerce_errors = counter;
        self
    }

    /// Whether batches take the per-event (materializing) path.
    pub fn is_per_event(&self) -> bool {
        matches!(self.mode, Mode::PerEvent(_))
    }

    /// Applies the edits to one batch.
    pub fn apply(&mut self, mut batch: Batch) -> Batch {
        match &self.mode {
            Mode::Overlay(ops) => {
                batch.overlay.ops.extend(ops.iter().cloned());
                batch
            }
            Mode::PerEvent(_) if batch.is_empty() => batch,
            Mode::PerEvent(_) => self.rebuild(&batch),
        }
    }

    /// The per-event path: encode, read back, edit, write, parse (see the module docs).
    fn rebuild(&mut self, batch: &Batch) -> Batch {
        let Mode::PerEvent(steps) = &self.mode else {
            unreachable!("rebuild is only called in per-event mode");
        };
        let source = batch.origin.source;
        // The events as they stand, changes applied by the encoder.
        let mut current = Vec::with_capacity(batch.byte_len() as usize + batch.len() * 2);
        self.spans.clear();
        for ev in &batch.events {
            let start = current.len();
            write_ndjson(batch, ev, &mut current);
            self.spans
                .push((start as u32, (current.len() - start) as u32));
        }
        let mut current = Batch::from_spans(bytes::Bytes::from(current), &self.spans, source);
        self.rejected.clear();
        parse_batch(&mut current, &mut self.rejected);
        // Edit each event's tree and write it into the new buffer.
        self.scratch.clear();
        self.spans.clear();
        let mut failed = 0u64;
        for ev in &current.events {
            let mut root = materialize(&current, ev);
            for step in steps {
                failed += apply_step(step, &mut root, &self.separator, &mut self.rendered);
            }
            let start = self.scratch.len();
            root.write_json(&mut self.scratch);
            self.spans
                .push((start as u32, (self.scratch.len() - start) as u32));
        }
        if failed > 0 {
            self.coerce_errors.fetch_add(failed, Ordering::Relaxed);
        }
        let buf = bytes::Bytes::copy_from_slice(&self.scratch);
        let mut out = Batch::from_spans(buf, &self.spans, source);
        self.rejected.clear();
        parse_batch(&mut out, &mut self.rejected);
        for (new, old) in out.events.iter_mut().zip(&batch.events) {
            new.id = old.id;
            new.flags = old.flags;
        }
        out.origin = batch.origin.clone();
        out.ack = batch.ack.clone();
        out
    }
}

/// Applies one edit to an event tree; returns the number of failed coercions (0 or 1).
fn apply_step(step: &Step, root: &mut Value, separator: &str, rendered: &mut String) -> u64 {
    match step {
        Step::Rename(from, to) => {
            if let Some(v) = tree::take_path(root, from.segments()) {
                tree::set_path(root, to.segments(), v);
            }
        }
        Step::Copy(from, to) => {
            if let Some(v) = tree::lookup(root, from.segments()).cloned() {
                tree::set_path(root, to.segments(), v);
            }
        }
        Step::Remove(path) => {
            tree::take_path(root, path.segments());
        }
        Step::Set {
            path,
            value,
            if_absent,
        } => {
            if !(*if_absent && tree::lookup(root, path.segments()).is_some()) {
                tree::set_path(root, path.segments(), value.clone());
            }
        }
        Step::SetTemplate {
            path,
            template,
            if_absent,
        } => {
            if !(*if_absent && tree::lookup(root, path.segments()).is_some()) {
                template.render(root, rendered);
                tree::set_path(root, path.segments(), Value::Str(rendered.clone()));
            }
        }
        Step::Coerce(path, ty) => {
            if let Some(v) = tree::lookup_mut(root, path.segments()) {
                match coerce::coerce(v, *ty) {
                    Some(new) => *v = new,
                    None => return 1,
                }
            }
        }
        Step::Flatten(path) => {
            if let Some(v) = tree::lookup_mut(root, path) {
                tree::flatten(v, separator);
            }
        }
        Step::Unflatten(path) => {
            if let Some(v) = tree::lookup_mut(root, path) {
                tree::unflatten(v, separator, path.len());
            }
        }
        Step::Include(paths) => {
            let paths: Vec<&[Box<str>]> = paths.iter().map(|p| p.segments()).collect();
            tree::project(root, &paths);
        }
    }
    0
}

impl Transform for Fields {
    fn process(&mut self, batch: Batch, out: &mut Emitter) {
        let batch = self.apply(batch);
        out.emit(PORT_MAIN, batch);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use sluice_engine::batch::EventForm;
    use sluice_engine::encode::{encode_batch, Encoding};

    /// A config from TOML-like JSON text.
    fn cfg(json: &str) -> FieldsConfig {
        serde_json::from_str(json).unwrap_or_else(|e| panic!("{json}: {e}"))
    }

    fn parsed(lines: &[&str]) -> Batch {
        let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
        let mut b = Batch::from_lines(Bytes::from(text.into_bytes()), 0);
        let mut rejected = Vec::new();
        assert_eq!(
            parse_batch(&mut b, &mut rejected),
            lines.len(),
            "{rejected:?}"
        );
        b
    }

    fn ndjson(b: &Batch) -> String {
        let mut out = Vec::new();
        encode_batch(Encoding::Ndjson, b, &mut out);
        String::from_utf8(out).unwrap()
    }

    fn lines(ls: &[&str]) -> String {
        ls.iter().map(|l| format!("{l}\n")).collect()
    }

    /// Runs `config` on `input` lines and returns the NDJSON output.
    fn run(config: &str, input: &[&str]) -> String {
        let mut f = cfg(config).build().unwrap();
        ndjson(&f.apply(parsed(input)))
    }

    #[test]
    fn static_options_stay_in_the_overlay() {
        let f = cfg(
            r#"{"rename": {"msg": "message"}, "remove": ["x"], "set": {"env": "prod"},
                        "add": {"env": "dev", "tier": "web"}, "exclude": ["y"]}"#,
        )
        .build()
        .unwrap();
        assert!(!f.is_per_event());
        let mut f = f;
        let b = f.apply(parsed(&[r#"{"msg": "hi", "x": 1, "y": 2, "tier": "db"}"#]));
        // Untouched buffer, changes in the overlay.
        assert_eq!(
            b.line(&b.events[0]),
            br#"{"msg": "hi", "x": 1, "y": 2, "tier": "db"}"#
        );
        assert_eq!(b.overlay.ops.len(), 6);
        assert_eq!(
            ndjson(&b),
            lines(&[r#"{"tier":"db","message":"hi","env":"prod"}"#])
        );
        // No per-event work: applying allocates a fixed amount however many events there are.
        let big: Vec<String> = (0..2000).map(|i| format!(r#"{{"msg": "m{i}"}}"#)).collect();
        let big: Vec<&str> = big.iter().map(String::as_str).collect();
        let mut counts = Vec::new();
        for n in [10, 2000] {
            let b = parsed(&big[..n]);
            counts.push(crate::condition::alloc_count::allocations_in(|| {
                let b = f.apply(b);
                assert_eq!(b.len(), n);
            }));
        }
        assert_eq!(counts[0], counts[1], "{counts:?}");
    }

    #[test]
    fn add_only_writes_where_absent_and_set_always() {
        assert_eq!(
            run(
                r#"{"set": {"a": 1, "n.x": true}, "add": {"a": 2, "b": "two", "z": 3}}"#,
                &[r#"{"a": 0, "z": null}"#, r#"{"n": 5}"#]
            ),
            lines(&[
                r#"{"a":1,"z":null,"n":{"x":true},"b":"two"}"#,
                r#"{"n":{"x":true},"a":1,"b":"two","z":3}"#,
            ])
        );
    }

    #[test]
    fn copy_copies_and_overwrites() {
        assert_eq!(
            run(
                r#"{"copy": {"http.status": "status", "host": "origin.host", "missing": "m"}}"#,
                &[r#"{"http": {"status": 503}, "host": "web-1", "status": "old"}"#]
            ),
            lines(&[
                r#"{"http":{"status":503},"host":"web-1","status":503,"origin":{"host":"web-1"}}"#
            ])
        );
    }

    #[test]
    fn templates_render_per_event() {
        let mut f = cfg(
            r#"{"add": {"id": "{{ host }}-{{ service }}", "kept": "{{ host }}"},
                            "set": {"where": "{{ geo.city }}/{{ missing }}/{{ n }}"}}"#,
        )
        .build()
        .unwrap();
        assert!(f.is_per_event());
        let out = f.apply(parsed(&[
            r#"{"host": "web-1", "service": "api", "geo": {"city": "Oslo"}, "n": 1.50}"#,
            r#"{"host": "db-2", "service": "pg", "kept": "yes"}"#,
        ]));
        assert_eq!(
            ndjson(&out),
            lines(&[
                r#"{"host":"web-1","service":"api","geo":{"city":"Oslo"},"n":1.50,"where":"Oslo//1.50","id":"web-1-api","kept":"web-1"}"#,
                r#"{"host":"db-2","service":"pg","kept":"yes","where":"//","id":"db-2-pg"}"#,
            ])
        );
        // The new batch has a tape: conditions downstream read the rendered fields.
        let c = crate::condition::Condition::compile("id == 'db-2-pg'").unwrap();
        assert!(!c.matches(&out, &out.events[0]));
        assert!(c.matches(&out, &out.events[1]));
        assert!(out.events.iter().all(|e| e.form == EventForm::Json));
    }

    #[test]
    fn coerce_converts_or_counts_an_error() {
        let mut f = cfg(
            r#"{"coerce": {"code": "int", "ratio": "float", "ok": "bool",
                                       "at": "timestamp", "n": "string", "missing": "int"}}"#,
        )
        .build()
        .unwrap();
        let errors = f.coerce_errors();
        let out = f.apply(parsed(&[
            r#"{"code": "503", "ratio": "0.25", "ok": "yes", "at": "2026-11-21 10:34:39.5+01:00", "n": 12}"#,
            r#"{"code": 7.9, "ratio": 2, "ok": 0, "at": 1795253679250, "n": true}"#,
            r#"{"code": "x", "ratio": null, "ok": "maybe", "at": "yesterday", "n": {"a": 1}}"#,
        ]));
        assert_eq!(
            ndjson(&out),
            lines(&[
                r#"{"code":503,"ratio":0.25,"ok":true,"at":"2026-11-21T09:34:39.500Z","n":"12"}"#,
                r#"{"code":7,"ratio":2.0,"ok":false,"at":"2026-11-21T09:34:39.250Z","n":"true"}"#,
                r#"{"code":"x","ratio":null,"ok":"maybe","at":"yesterday","n":"{\"a\":1}"}"#,
            ])
        );
        // code, ratio, ok and at of the last event failed; a missing field is not a failure.
        assert_eq!(errors.load(Ordering::Relaxed), 4);
        // A counter registered elsewhere receives the count.
        let counter = Arc::new(AtomicU64::new(0));
        let mut f = cfg(r#"{"coerce": {"a": "int"}}"#)
            .build()
            .unwrap()
            .with_coerce_errors(counter.clone());
        f.apply(parsed(&[r#"{"a": "no"}"#]));
        assert_eq!(counter.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn flatten_a_path_or_everything() {
        let input = [r#"{"k": {"a": {"b": 1}, "c": [ {"d": 2} ]}, "top": {"x": {}}}"#];
        assert_eq!(
            run(r#"{"flatten": "k"}"#, &input),
            lines(&[r#"{"k":{"a.b":1,"c":[{"d":2}]},"top":{"x":{}}}"#])
        );
        assert_eq!(
            run(r#"{"flatten": ".", "separator": "_"}"#, &input),
            lines(&[r#"{"k_a_b":1,"k_c":[{"d":2}],"top_x":{}}"#])
        );
        assert_eq!(
            run(r#"{"flatten": ["k.a", "top"]}"#, &input),
            lines(&[r#"{"k":{"a":{"b":1},"c":[{"d":2}]},"top":{"x":{}}}"#])
        );
        // A path that is not an object, or missing: nothing happens.
        assert_eq!(
            run(r#"{"flatten": ["nope", "k.c"]}"#, &input),
            lines(&[r#"{"k":{"a":{"b":1},"c":[{"d":2}]},"top":{"x":{}}}"#])
        );
    }

    #[test]
    fn unflatten_nests_dotted_keys() {
        assert_eq!(
            run(
                r#"{"unflatten": "."}"#,
                &[r#"{"a.b": 1, "a.c": 2, "d": 3, "e": {"f.g": 4}, "a.b.z": 5}"#]
            ),
            lines(&[r#"{"a":{"b":{"z":5},"c":2},"d":3,"e":{"f":{"g":4}}}"#])
        );
        assert_eq!(
            run(
                r#"{"unflatten": "labels", "separator": "/"}"#,
                &[r#"{"labels": {"app/name": "x", "app/tier": "y"}, "k/v": 1}"#]
            ),
            lines(&[r#"{"labels":{"app":{"name":"x","tier":"y"}},"k/v":1}"#])
        );
        // Flatten then unflatten gives the event back.
        let ev = r#"{"a":{"b":{"c":1},"d":"x"},"e":2}"#;
        assert_eq!(
            run(r#"{"flatten": ".", "unflatten": "."}"#, &[ev]),
            lines(&[ev])
        );
    }

    #[test]
    fn include_and_exclude() {
        let input = [r#"{"message": "m", "http": {"status": 200, "path": "/"}, "x": 1, "y": 2}"#];
        assert_eq!(
            run(r#"{"include": ["http.status", "message", "nope"]}"#, &input),
            lines(&[r#"{"message":"m","http":{"status":200}}"#])
        );
        assert_eq!(
            run(r#"{"exclude": ["http.path", "x"]}"#, &input),
            lines(&[r#"{"message":"m","http":{"status":200},"y":2}"#])
        );
        // Both: include first, then exclude.
        assert_eq!(
            run(
                r#"{"include": ["http", "x"], "exclude": ["http.path"]}"#,
                &input
            ),
            lines(&[r#"{"http":{"status":200},"x":1}"#])
        );
        // After flattening, a flattened key is quoted.
        assert_eq!(
            run(
                r#"{"flatten": ".", "include": ["\"http.status\""]}"#,
                &input
            ),
            lines(&[r#"{"http.status":200}"#])
        );
    }

    #[test]
    fn documented_order_of_operations() {
        // rename → copy → remove → set → add → coerce → flatten → unflatten → include → exclude
        let config = r#"{
            "exclude": ["drop"],
            "include": ["m", "n", "c", "t", "drop"],
            "flatten": ".",
            "coerce": {"c": "int", "n.code": "int"},
            "add": {"t": "{{ m }}!", "c": "{{ n.code }}"},
            "set": {"n.code": "{{ code }}"},
            "remove": ["code"],
            "copy": {"m": "c"},
            "rename": {"msg": "m"}
        }"#;
        // rename msg→m; copy m→c ("hi"); remove code (set's template rendered from the
        // removed field: empty); set n.code = ""; add t = "hi!", c exists (kept "hi");
        // coerce c "hi" fails, n.code "" fails; flatten gives "n.code"; include keeps m, c,
        // t, drop (n is now "n.code", not "n"); exclude drop.
        let mut f = cfg(config).build().unwrap();
        let errors = f.coerce_errors();
        let out = f.apply(parsed(&[r#"{"msg": "hi", "code": "7", "drop": 1}"#]));
        assert_eq!(ndjson(&out), lines(&[r#"{"m":"hi","c":"hi","t":"hi!"}"#]));
        assert_eq!(errors.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn per_event_path_sees_earlier_changes_and_keeps_ids_flags_ack() {
        let mut b = parsed(&[r#"{"a": 1}"#, r#"{"a": 2}"#, r#"{"a": 3}"#]);
        // A filter dropped the middle event; an earlier transform set a field; the last
        // line was truncated.
        b.events.remove(1);
        b.events[1].flags = sluice_engine::Event::TRUNCATED;
        b.overlay.ops.push(OverlayOp::Set {
            path: FieldPath::parse("env").unwrap(),
            value: Value::Str("prod".into()),
            if_absent: false,
        });
        let created = b.origin.created;
        let mut f = cfg(r#"{"copy": {"env": "copied"}}"#).build().unwrap();
        let out = f.apply(b);
        assert_eq!(
            ndjson(&out),
            lines(&[
                r#"{"a":1,"env":"prod","copied":"prod"}"#,
                r#"{"a":3,"env":"prod","copied":"prod"}"#,
            ])
        );
        assert_eq!(out.events[0].id, 0);
        assert_eq!(out.events[1].id, 2);
        assert_eq!(out.events[1].flags, sluice_engine::Event::TRUNCATED);
        assert_eq!(out.origin.created, created);
        assert!(out.overlay.is_empty());
    }

    #[test]
    fn raw_lines_are_events_with_a_message() {
        let mut f = cfg(r#"{"copy": {"message": "raw"}, "add": {"n": "{{ message }}"}}"#)
            .build()
            .unwrap();
        let out = f.apply(Batch::from_lines(
            Bytes::from_static(b"plain \"text\"\n"),
            0,
        ));
        assert_eq!(
            ndjson(&out),
            lines(&[r#"{"message":"plain \"text\"","raw":"plain \"text\"","n":"plain \"text\""}"#])
        );
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        /// JSON-ish lines: a few shapes with random keys and values, and random text.
        fn line() -> impl Strategy<Value = String> {
            let key = "[a-c.]{0,4}";
            let scalar = prop_oneof![
                Just("null".to_string()),
                Just("true".to_string()),
                Just("\"2026-11-21T09:34:39Z\"".to_string()),
                Just("1795253679250".to_string()),
                any::<i64>().prop_map(|i| i.to_string()),
                any::<f64>()
                    .prop_filter("finite", |f| f.is_finite())
                    .prop_map(|f| f.to_string()),
                "[a-z .\"\\\\é]{0,6}".prop_map(|s| serde_json::to_string(&s).unwrap()),
            ];
            let member = (key, scalar)
                .prop_map(|(k, v)| format!("{}: {v}", serde_json::to_string(&k).unwrap()));
            let object = proptest::collection::vec(member, 0..5)
                .prop_map(|m| format!("{{{}}}", m.join(", ")));
            let nested = (key, object.clone(), key, object.clone()).prop_map(|(k1, o1, k2, o2)| {
                format!(
                    "{{{}: {o1}, {}: [{o2}, 1]}}",
                    serde_json::to_string(&k1).unwrap(),
                    serde_json::to_string(&k2).unwrap()
                )
            });
            prop_oneof![object, nested, "[ -~]{0,20}"]
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            #[test]
            fn per_event_path_never_panics_and_keeps_every_event(
                input in proptest::collection::vec(line(), 1..6)
            ) {
                let config = r#"{
                    "rename": {"a": "b.c"}, "copy": {"b": "a.x"}, "remove": ["c"],
                    "set": {"t": "{{ a }}/{{ b.c }}"}, "add": {"ab": 1},
                    "coerce": {"a": "int", "b": "timestamp", "t": "bool", "b.c": "float"},
                    "flatten": ["a", "."], "unflatten": ".", "include": ["a", "b", "t", "\"a.x\""],
                    "exclude": ["b.c"]
                }"#;
                let mut f = cfg(config).build().unwrap();
                let text: String = input.iter().map(|l| format!("{l}\n")).collect();
                let mut b = Batch::from_lines(Bytes::from(text.into_bytes()), 0);
                let mut rejected = Vec::new();
                parse_batch(&mut b, &mut rejected);
                let ids: Vec<u32> = b.events.iter().map(|e| e.id).collect();
                let out = f.apply(b);
                let got: Vec<u32> = out.events.iter().map(|e| e.id).collect();
                prop_assert_eq!(got, ids);
                // Every output event is a parsed JSON object.
                prop_assert!(out.events.iter().all(|e| e.form == EventForm::Json));
                let text = ndjson(&out);
                for l in text.lines() {
                    prop_assert!(serde_json::from_str::<serde_json::Value>(l).is_ok(), "{}", l);
                }
            }
        }
    }

    #[test]
    fn config_errors() {
        let err = |json: &str| cfg(json).build().err().unwrap();
        assert!(err("{}").starts_with("nothing to do"));
        assert_eq!(
            err(r#"{"flatten": ".", "separator": ""}"#),
            "`separator` must not be empty"
        );
        assert_eq!(
            err(r#"{"add": {"a": "{{ b"}}"#),
            "`add`: unclosed `{{` in template `{{ b`"
        );
        assert!(err(r#"{"set": {"a..b": 1}}"#).starts_with("`set`: invalid field path"));
        assert!(err(r#"{"flatten": ["a b"]}"#).starts_with("`flatten`: invalid field path"));
        assert!(err(r#"{"copy": {"": "x"}}"#).starts_with("`copy`: invalid field path"));
        assert!(serde_json::from_str::<FieldsConfig>(r#"{"coerce": {"a": "number"}}"#).is_err());
        assert!(serde_json::from_str::<FieldsConfig>(r#"{"bogus": 1}"#).is_err());
        assert!(cfg(r#"{"unflatten": ["a", "."]}"#).validate().is_ok());
    }
}

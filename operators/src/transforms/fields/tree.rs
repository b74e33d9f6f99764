//! Edits of one event held as an owned [`Value`] tree (the per-event path of the `fields`
//! transform): reading, writing, moving and removing paths with the same rules as the
//! engine's overlay, flattening, unflattening and projecting objects.
//!
//! Scalars taken from an input line are `Value::RawJson` text; [`Scalar`] reads either form.

// Reading, writing and removing paths: the engine's own, so edits here follow the
// overlay's rules exactly.
pub use sluice_engine::encode::{lookup, set_path, take_path};
use sluice_engine::value::unescape_json_str;
use sluice_engine::Value;

/// Deepest nesting unflatten may create; deeper keys stay as they are (the JSON parser
/// refuses more than 128 levels, and recursion over the tree stays shallow).
pub const MAX_UNFLATTEN_DEPTH: usize = 100;

/// The value at `path` for editing (the root for an empty path).
pub fn lookup_mut<'a>(mut v: &'a mut Value, path: &[Box<str>]) -> Option<&'a mut Value> {
    for seg in path {
        v = match v {
            Value::Object(m) => m
                .iter_mut()
                .rev()
                .find(|(k, _)| **k == **seg)
                .map(|(_, v)| v)?,
            Value::Array(a) => a.get_mut(seg.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(v)
}

/// Replaces nested objects inside the object `v` by members with joined keys:
/// `{"a": {"b": 1}, "c": [{"d": 2}]}` becomes `{"a.b": 1, "c": [{"d": 2}]}` (arrays and
/// empty objects are values). A key produced twice keeps the later value at the first
/// position. Anything but an object is left alone.
pub fn flatten(v: &mut Value, separator: &str) {
    let Value::Object(members) = v else {
        return;
    };
    let mut out = Vec::with_capacity(members.len());
    for (k, child) in std::mem::take(members) {
        flatten_into(&mut out, k, child, separator);
    }
    *members = out;
}

fn flatten_into(out: &mut Vec<(String, Value)>, key: String, v: Value, separator: &str) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, child) in m {
                let mut joined = String::with_capacity(key.len() + separator.len() + k.len());
                joined.push_str(&key);
                joined.push_str(separator);
                joined.push_str(&k);
                flatten_into(out, joined, child, separator);
            }
        }
        other => match out.iter().position(|(k, _)| *k == key) {
            Some(i) => out[i].1 = other,
            None => out.push((key, other)),
        },
    }
}

/// Splits keys holding `separator` into nested objects, in the object `v` and in every
/// object below it: `{"a.b": 1, "a.c": 2}` becomes `{"a": {"b": 1, "c": 2}}`. Members are
/// merged in order and the later one wins a conflict (`{"a": 1, "a.b": 2}` gives
/// `{"a": {"b": 2}}`). A key with an empty part (`a..b`, `.a`) or that would nest deeper than
/// [`MAX_UNFLATTEN_DEPTH`] stays as it is. `depth` is how deep `v` already is.
pub fn unflatten(v: &mut Value, separator: &str, depth: usize) {
    match v {
        Value::Object(members) => {
            let mut out: Vec<(String, Value)> = Vec::with_capacity(members.len());
            for (k, mut child) in std::mem::take(members) {
                let parts: Vec<&str> = if separator.is_empty() {
                    vec![k.as_str()]
                } else {
                    k.split(separator).collect()
                };
                let splittable = parts.len() > 1
                    && parts.iter().all(|p| !p.is_empty())
                    && depth + parts.len() <= MAX_UNFLATTEN_DEPTH;
                let (parts, child_depth) = if splittable {
                    let d = depth + parts.len();
                    (parts, d)
                } else {
                    (vec![k.as_str()], depth + 1)
                };
                unflatten(&mut child, separator, child_depth);
                insert_merged(&mut out, &parts, child);
            }
            *members = out;
        }
        Value::Array(items) => {
            for item in items {
                unflatten(item, separator, depth + 1);
            }
        }
        _ => {}
    }
}

/// Puts `value` at `parts` under `members`, merging into objects on the way; a non-object in
/// the way, or a value already at the end, is replaced.
fn insert_merged(members: &mut Vec<(String, Value)>, parts: &[&str], value: Value) {
    let Some((first, rest)) = parts.split_first() else {
        return;
    };
    let pos = members.iter().rposition(|(k, _)| k == first);
    if rest.is_empty() {
        match pos {
            // Two objects under one key merge; otherwise the later value wins.
            Some(i) => match (&mut members[i].1, value) {
                (Value::Object(have), Value::Object(more)) => {
                    for (k, v) in more {
                        insert_merged(have, &[k.as_str()], v);
                    }
                }
                (slot, value) => *slot = value,
            },
            None => members.push((first.to_string(), value)),
        }
        return;
    }
    let i = match pos {
        Some(i) => {
            if !matches!(members[i].1, Value::Object(_)) {
                members[i].1 = Value::Object(Vec::new());
            }
            i
        }
        None => {
            members.push((first.to_string(), Value::Object(Vec::new())));
            members.len() - 1
        }
    };
    if let Value::Object(child) = &mut members[i].1 {
        insert_merged(child, rest, value);
    }
}

/// Keeps only `paths` of the object `v` (a path keeps its whole subtree; members keep their
/// order). Anything but an object becomes an empty object.
pub fn project(v: &mut Value, paths: &[&[Box<str>]]) {
    let Value::Object(members) = v else {
        *v = Value::Object(Vec::new());
        return;
    };
    let mut out = Vec::new();
    for (k, mut child) in std::mem::take(members) {
        let wanted: Vec<&[Box<str>]> = paths
            .iter()
            .filter(|p| p.first().is_some_and(|f| **f == *k))
            .map(|p| &p[1..])
            .collect();
        if wanted.is_empty() {
            continue;
        }
        if wanted.iter().any(|rest| rest.is_empty()) {
            out.push((k, child));
            continue;
        }
        if matches!(child, Value::Object(_)) {
            project(&mut child, &wanted);
            if matches!(&child, Value::Object(m) if !m.is_empty()) {
                out.push((k, child));
            }
        }
    }
    *members = out;
}

/// A scalar read from a tree, whether typed or verbatim JSON text.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    Null,
    Bool(bool),
    /// Number text as written (`12`, `-1.5e3`), or formatted from a typed number.
    Number(String),
    Str(String),
    /// An object or array (its JSON text).
    Compound(String),
}

impl Scalar {
    pub fn of(v: &Value) -> Scalar {
        match v {
            Value::Null => Scalar::Null,
            Value::Bool(b) => Scalar::Bool(*b),
            Value::Int(_) | Value::Float(_) => Scalar::Number(json_text(v)),
            Value::Str(s) => Scalar::Str(s.clone()),
            Value::Array(_) | Value::Object(_) => Scalar::Compound(json_text(v)),
            Value::RawJson(raw) => match raw.first() {
                Some(b'"') if raw.len() >= 2 && raw.ends_with(b"\"") => {
                    let mut out = Vec::with_capacity(raw.len());
                    unescape_json_str(&raw[1..raw.len() - 1], &mut out);
                    Scalar::Str(String::from_utf8_lossy(&out).into_owned())
                }
                Some(b't') => Scalar::Bool(true),
                Some(b'f') => Scalar::Bool(false),
                Some(b'n') => Scalar::Null,
                Some(b'-' | b'0'..=b'9') => {
                    Scalar::Number(String::from_utf8_lossy(raw).into_owned())
                }
                _ => Scalar::Compound(String::from_utf8_lossy(raw).into_owned()),
            },
        }
    }
}

fn json_text(v: &Value) -> String {
    let mut out = Vec::new();
    v.write_json(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    /// An event tree as the transform sees it (member order kept, scalars verbatim).
    fn obj(json: &str) -> Value {
        let mut b = sluice_engine::Batch::from_lines(Bytes::from(json.to_string()), 0);
        let mut rejected = Vec::new();
        assert_eq!(crate::parsers::json::parse_batch(&mut b, &mut rejected), 1);
        sluice_engine::encode::materialize(&b, &b.events[0])
    }

    fn text(v: &Value) -> String {
        json_text(v)
    }

    fn p(s: &str) -> Vec<Box<str>> {
        sluice_engine::FieldPath::parse(s)
            .unwrap()
            .segments()
            .to_vec()
    }

    #[test]
    fn set_take_lookup() {
        let mut v = obj(r#"{"a": {"b": 1}, "l": [1, 2]}"#);
        set_path(&mut v, &p("a.c"), Value::Int(2));
        set_path(&mut v, &p("l.1"), Value::Int(9));
        set_path(&mut v, &p("l.5"), Value::Int(9));
        set_path(&mut v, &p("a.b.x"), Value::Int(3));
        assert_eq!(text(&v), r#"{"a":{"b":{"x":3},"c":2},"l":[1,9]}"#);
        assert_eq!(take_path(&mut v, &p("a.c")), Some(Value::Int(2)));
        assert_eq!(text(&take_path(&mut v, &p("l.0")).unwrap()), "1");
        assert_eq!(take_path(&mut v, &p("nope.x")), None);
        assert_eq!(lookup(&v, &p("a.b.x")), Some(&Value::Int(3)));
        assert_eq!(lookup(&v, &p("l.0")), Some(&Value::Int(9)));
        assert!(lookup(&v, &p("l.x")).is_none());
    }

    #[test]
    fn flatten_and_unflatten() {
        let mut v = obj(r#"{"a": {"b": {"c": 1}, "d": []}, "e": {}, "f": [{"g": 1}], "h": 2}"#);
        flatten(&mut v, ".");
        assert_eq!(
            text(&v),
            r#"{"a.b.c":1,"a.d":[],"e":{},"f":[{"g":1}],"h":2}"#
        );
        unflatten(&mut v, ".", 0);
        assert_eq!(
            text(&v),
            r#"{"a":{"b":{"c":1},"d":[]},"e":{},"f":[{"g":1}],"h":2}"#
        );
        let mut v = obj(r#"{"a": {"b": 1}, "a.b": 2, "x": {"y": 1}}"#);
        flatten(&mut v, "_");
        assert_eq!(text(&v), r#"{"a_b":1,"a.b":2,"x_y":1}"#);
        // Duplicates after flattening: the later wins.
        let mut v = obj(r#"{"a": {"b": 1}, "a.b": 2}"#);
        flatten(&mut v, ".");
        assert_eq!(text(&v), r#"{"a.b":2}"#);
    }

    #[test]
    fn unflatten_conflicts_and_limits() {
        let mut v = obj(r#"{"a": 1, "a.b": 2, "c.d": 3, "c": {"e": 4}, "..x": 5, "y.": 6}"#);
        unflatten(&mut v, ".", 0);
        assert_eq!(
            text(&v),
            r#"{"a":{"b":2},"c":{"d":3,"e":4},"..x":5,"y.":6}"#
        );
        let mut v = obj(r#"{"a.b": 1, "a": 7, "n": [{"p.q": 1}], "m": {"r.s": 2}}"#);
        unflatten(&mut v, ".", 0);
        assert_eq!(text(&v), r#"{"a":7,"n":[{"p":{"q":1}}],"m":{"r":{"s":2}}}"#);
        let deep = vec!["k"; MAX_UNFLATTEN_DEPTH + 1].join(".");
        let mut v = Value::Object(vec![(deep.clone(), Value::Int(1))]);
        unflatten(&mut v, ".", 0);
        assert_eq!(v, Value::Object(vec![(deep, Value::Int(1))]));
        let mut v = obj(r#"{"a::b": 1}"#);
        unflatten(&mut v, "::", 0);
        assert_eq!(text(&v), r#"{"a":{"b":1}}"#);
    }

    #[test]
    fn projection() {
        let mut v = obj(r#"{"a": {"b": 1, "c": 2}, "d": 3, "e": {"f": 4}, "g": 5}"#);
        let keep = [p("g"), p("a.c"), p("e.x"), p("d")];
        let keep: Vec<&[Box<str>]> = keep.iter().map(|p| p.as_slice()).collect();
        project(&mut v, &keep);
        assert_eq!(text(&v), r#"{"a":{"c":2},"d":3,"g":5}"#);
    }

    #[test]
    fn scalars() {
        let raw = |s: &'static str| Scalar::of(&Value::RawJson(Bytes::from_static(s.as_bytes())));
        assert_eq!(raw(r#""a\"b""#), Scalar::Str("a\"b".into()));
        assert_eq!(raw("-1.5e3"), Scalar::Number("-1.5e3".into()));
        assert_eq!(raw("true"), Scalar::Bool(true));
        assert_eq!(raw("null"), Scalar::Null);
        assert_eq!(Scalar::of(&Value::Float(2.0)), Scalar::Number("2.0".into()));
        assert_eq!(
            Scalar::of(&obj(r#"{"a": [1]}"#)),
            Scalar::Compound(r#"{"a":[1]}"#.into())
        );
    }
}

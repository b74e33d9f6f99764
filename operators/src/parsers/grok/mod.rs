//! The `grok` parser: Logstash-style patterns (`%{IP:client} %{WORD:method}`) expanded
//! against a pattern library and compiled into ONE `regex_automata::meta::Regex`.
//!
//! * `%{NAME}` matches pattern NAME; `%{NAME:field}` also captures it into `field`;
//!   `%{NAME:field:type}` converts it: `int`/`long` (i64), `float`/`double` (finite f64),
//!   `bool`/`boolean` (`true`/`false`, any case), `string`. A value that does not convert
//!   is kept as a string (the line still parses). `(?<field>...)` also captures.
//! * Library: [`patterns::PATTERNS`] (the Logstash legacy names), plus the user's `custom`
//!   definitions, which may refer to each other and to the library, and override it.
//!   A name that refers to itself (directly or through others) and an unknown name are
//!   errors when the parser is built.
//! * Several patterns: the first (in the order given) that matches anywhere in the line
//!   wins (see [`super::regex`] for how one regex search gives that). The search is
//!   unanchored, as in Logstash; write `^`/`$` to anchor.
//! * Field names `a.b` and `[a][b]` nest: `{"a": {"b": ...}}`. Fields that share a parent
//!   are grouped under one object (in the order their parents first appear); a parent with
//!   no captured child is left out. A name used as both value and parent is an error.
//! * A capture that took no part in the match, or matched the empty string, is left out
//!   (Logstash's `keep_empty_captures => false`). When several captures feed one name (in
//!   alternatives, or a name used twice), the first non-empty one wins.
//! * Matching is on bytes with ASCII classes (see [`super::regex`]): invalid UTF-8 in a
//!   line never fails by itself, and values are spans of the line.
//!
//! Per line: one capture search with the cache and capture slots held in the parser, then
//! a walk over a precompiled list of field operations; no allocation.

mod expand;
pub mod patterns;

#[cfg(test)]
mod conformance;
#[cfg(test)]
mod tests;

pub use expand::FieldType;

use super::regex::set::{CompileError, PatternSet};
use super::sink::{FieldSink, LineParser, ParseError, Parsed};
use regex_automata::PatternID;
use std::collections::HashMap;

/// Parses lines with the first of several grok patterns that matches.
#[derive(Debug, Clone)]
pub struct GrokParser {
    set: PatternSet,
    /// Per pattern id: how to turn its capture groups into fields.
    programs: Vec<FieldProgram>,
    /// Scratch: the value chosen for each leaf of the matching pattern's program.
    values: Vec<Option<LeafValue>>,
}

/// A field value: a span of the line and the type to emit it as.
#[derive(Debug, Clone, Copy)]
struct LeafValue {
    start: usize,
    end: usize,
    ty: FieldType,
}

/// The fields of one pattern, as a flat list of operations over its leaves.
#[derive(Debug, Clone, Default)]
struct FieldProgram {
    ops: Vec<Op>,
    leaves: Vec<Leaf>,
}

/// One field name and the capture groups (with their types) that may fill it, in order.
#[derive(Debug, Clone)]
struct Leaf {
    sources: Vec<(usize, FieldType)>,
}

#[derive(Debug, Clone)]
enum Op {
    /// Opens object `key` if any leaf in `leaves` has a value, else jumps to `skip_to`
    /// (just past the matching `End`).
    Begin {
        key: Box<[u8]>,
        leaves: (usize, usize),
        skip_to: usize,
    },
    Field {
        key: Box<[u8]>,
        leaf: usize,
    },
    End,
}

/// The field tree of one pattern while it is being built.
enum Node {
    Leaf {
        name: String,
        sources: Vec<(usize, FieldType)>,
    },
    Object {
        name: String,
        children: Vec<Node>,
    },
}

impl GrokParser {
    /// Expands and compiles `patterns` (tried in order, first match wins) with the
    /// built-in library plus `custom` `(name, definition)` pairs. Errors name the pattern
    /// and the cause (unknown pattern, self-reference, bad type or field name, invalid
    /// regex after expansion, too big).
    pub fn new(patterns: &[String], custom: &[(String, String)]) -> Result<GrokParser, String> {
        if patterns.is_empty() {
            return Err("grok: no pattern given".to_string());
        }
        let mut library: HashMap<&str, &str> = patterns::PATTERNS.iter().copied().collect();
        for (name, definition) in custom {
            let valid =
                !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !valid {
                return Err(format!(
                    "grok: invalid custom pattern name {name:?} (use letters, digits and _)"
                ));
            }
            library.insert(name, definition);
        }
        let mut expanded = Vec::with_capacity(patterns.len());
        for (i, pattern) in patterns.iter().enumerate() {
            let e = expand::expand(pattern, &library)
                .map_err(|e| format!("grok: pattern {i} ({pattern:?}): {e}"))?;
            expanded.push(e);
        }
        let texts: Vec<&str> = expanded.iter().map(|e| e.regex.as_str()).collect();
        let set = PatternSet::new(&texts).map_err(|e| match e {
            CompileError::Pattern { index, cause } => {
                let text = patterns.get(index).map_or("", String::as_str);
                format!("grok: pattern {index} ({text:?}) is not a valid regex after expansion: {cause}")
            }
            CompileError::Build(cause) => format!("grok: the patterns do not compile: {cause}"),
        })?;

        let mut programs = Vec::with_capacity(expanded.len());
        for (i, e) in expanded.iter().enumerate() {
            let pid = PatternID::new_unchecked(i);
            let mut tree = Vec::new();
            for capture in &e.captures {
                // A group the regex does not have (written inside an `(?x)` comment) is
                // simply never filled.
                let Some(index) = set.group_info().to_index(pid, &capture.group_name) else {
                    continue;
                };
                insert(&mut tree, &capture.path, (index, capture.ty)).map_err(|e| {
                    let text = patterns.get(i).map_or("", String::as_str);
                    format!("grok: pattern {i} ({text:?}): {e}")
                })?;
            }
            let mut program = FieldProgram::default();
            flatten(&tree, &mut program);
            programs.push(program);
        }
        let most_leaves = programs.iter().map(|p| p.leaves.len()).max().unwrap_or(0);
        Ok(GrokParser {
            set,
            programs,
            values: Vec::with_capacity(most_leaves),
        })
    }
}

/// Adds a capture source for `path` to the tree.
fn insert(
    nodes: &mut Vec<Node>,
    path: &[String],
    source: (usize, FieldType),
) -> Result<(), String> {
    let Some((first, rest)) = path.split_first() else {
        return Ok(());
    };
    let found = nodes.iter_mut().find(|n| match n {
        Node::Leaf { name, .. } | Node::Object { name, .. } => name == first,
    });
    let conflict = || format!("field {first:?} is both a value and an object");
    match (found, rest.is_empty()) {
        (Some(Node::Leaf { sources, .. }), true) => sources.push(source),
        (Some(Node::Object { children, .. }), false) => insert(children, rest, source)?,
        (Some(_), _) => return Err(conflict()),
        (None, true) => nodes.push(Node::Leaf {
            name: first.clone(),
            sources: vec![source],
        }),
        (None, false) => {
            let mut children = Vec::new();
            insert(&mut children, rest, source)?;
            nodes.push(Node::Object {
                name: first.clone(),
                children,
            });
        }
    }
    Ok(())
}

fn flatten(nodes: &[Node], program: &mut FieldProgram) {
    for node in nodes {
        match node {
            Node::Leaf { name, sources } => {
                program.ops.push(Op::Field {
                    key: name.as_bytes().into(),
                    leaf: program.leaves.len(),
                });
                program.leaves.push(Leaf {
                    sources: sources.clone(),
                });
            }
            Node::Object { name, children } => {
                let at = program.ops.len();
                let first_leaf = program.leaves.len();
                program.ops.push(Op::End); // placeholder, replaced below
                flatten(children, program);
                program.ops.push(Op::End);
                program.ops[at] = Op::Begin {
                    key: name.as_bytes().into(),
                    leaves: (first_leaf, program.leaves.len()),
                    skip_to: program.ops.len(),
                };
            }
        }
    }
}

impl LineParser for GrokParser {
    fn parse<S: FieldSink>(&mut self, line: &[u8], out: &mut S) -> Result<Parsed, ParseError> {
        let Some(pid) = self.set.find(line) else {
            return Err(ParseError::new("no pattern matched"));
        };
        let Some(program) = self.programs.get(pid) else {
            return Ok(Parsed::Event);
        };
        self.values.clear();
        for leaf in &program.leaves {
            let value = leaf.sources.iter().find_map(|&(group, ty)| {
                let (start, end) = self.set.group(group)?;
                (start < end).then_some(LeafValue { start, end, ty })
            });
            self.values.push(value);
        }
        let mut pc = 0;
        while let Some(op) = program.ops.get(pc) {
            match op {
                Op::Begin {
                    key,
                    leaves,
                    skip_to,
                } => {
                    let any = self
                        .values
                        .get(leaves.0..leaves.1)
                        .is_some_and(|v| v.iter().any(Option::is_some));
                    if any {
                        out.begin_object(key);
                        pc += 1;
                    } else {
                        pc = *skip_to;
                    }
                }
                Op::Field { key, leaf } => {
                    if let Some(Some(v)) = self.values.get(*leaf) {
                        if let Some(text) = line.get(v.start..v.end) {
                            emit(out, key, text, v.ty);
                        }
                    }
                    pc += 1;
                }
                Op::End => {
                    out.end_object();
                    pc += 1;
                }
            }
        }
        Ok(Parsed::Event)
    }
}

/// Writes one value with its type; text that does not convert stays a string.
fn emit<S: FieldSink>(out: &mut S, key: &[u8], text: &[u8], ty: FieldType) {
    match ty {
        FieldType::String => out.str(key, text),
        FieldType::Int => match parse_i64(text) {
            Some(n) => out.int(key, n),
            None => out.str(key, text),
        },
        FieldType::Float => match parse_f64(text) {
            Some(x) => out.float(key, x),
            None => out.str(key, text),
        },
        FieldType::Bool => {
            if text.eq_ignore_ascii_case(b"true") {
                out.bool(key, true)
            } else if text.eq_ignore_ascii_case(b"false") {
                out.bool(key, false)
            } else {
                out.str(key, text)
            }
        }
    }
}

/// A decimal integer with an optional sign, in range for i64.
fn parse_i64(text: &[u8]) -> Option<i64> {
    let (&first, tail) = text.split_first()?;
    let (negative, digits) = match first {
        b'-' => (true, tail),
        b'+' => (false, tail),
        _ => (false, text),
    };
    if digits.is_empty() {
        return None;
    }
    // Accumulate negatively so that i64::MIN fits.
    let mut value: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        value = value.checked_mul(10)?.checked_sub(i64::from(d - b'0'))?;
    }
    if negative {
        Some(value)
    } else {
        value.checked_neg()
    }
}

/// A finite decimal float (`1.5`, `-2`, `1e3`, `.5`).
fn parse_f64(text: &[u8]) -> Option<f64> {
    let x: f64 = std::str::from_utf8(text).ok()?.parse().ok()?;
    x.is_finite().then_some(x)
}

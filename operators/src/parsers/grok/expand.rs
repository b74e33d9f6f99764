//! Grok pattern expansion: turns `%{NAME}`, `%{NAME:field}` and `%{NAME:field:type}` into
//! plain regex text, recursively, and lists the capture groups it made.
//!
//! Every capture group in the output is one this module made, named `_0`, `_1`, ... in
//! the order they open: `%{NAME:field}` and `(?<field>...)` / `(?P<field>...)` written by
//! the user become such groups; unnamed `(...)` groups become non-capturing `(?:...)`, so
//! the regex records only what ends up in fields. Several groups may feed one field name
//! (alternatives); the parser takes the first that matched.
//!
//! Text inside `[...]` classes and after `\` is copied verbatim. Expansion is bounded:
//! nesting depth, and the length of the output (a definition that doubles at every level
//! fails here instead of building a huge regex).

use std::collections::HashMap;

/// How deep `%{...}` references may nest.
const MAX_DEPTH: usize = 64;
/// The largest expanded regex text, in bytes.
pub(crate) const MAX_EXPANDED_LEN: usize = 1 << 20;

/// What a capture becomes in the event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    String,
    /// `int` or `long`: an `i64`, or the string when the text is not one.
    Int,
    /// `float` or `double`: a finite `f64`, or the string when the text is not one.
    Float,
    /// `bool` or `boolean`: `true` / `false` in any case, or the string otherwise.
    Bool,
}

impl FieldType {
    fn parse(name: &str) -> Option<FieldType> {
        Some(match name {
            "string" => FieldType::String,
            "int" | "long" => FieldType::Int,
            "float" | "double" => FieldType::Float,
            "bool" | "boolean" => FieldType::Bool,
            _ => return None,
        })
    }
}

/// One capture group of the expanded regex.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Capture {
    /// The group's name in the regex (`_7`).
    pub(crate) group_name: String,
    /// The field path: `a.b` and `[a][b]` both give `["a", "b"]`.
    pub(crate) path: Vec<String>,
    pub(crate) ty: FieldType,
}

/// The regex text of one top-level pattern and its captures.
#[derive(Debug, Default)]
pub(crate) struct Expanded {
    pub(crate) regex: String,
    pub(crate) captures: Vec<Capture>,
}

/// Expands `pattern` against `library` (name -> definition).
pub(crate) fn expand(pattern: &str, library: &HashMap<&str, &str>) -> Result<Expanded, String> {
    let mut expander = Expander {
        library,
        stack: Vec::new(),
        out: Expanded::default(),
    };
    expander.expand(pattern)?;
    Ok(expander.out)
}

struct Expander<'a, 'l> {
    library: &'a HashMap<&'l str, &'l str>,
    /// The names being expanded, outermost first (for cycle detection).
    stack: Vec<&'a str>,
    out: Expanded,
}

impl<'a, 'l> Expander<'a, 'l> {
    fn expand(&mut self, text: &'a str) -> Result<(), String> {
        let bytes = text.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            if self.out.regex.len() > MAX_EXPANDED_LEN {
                return Err(format!(
                    "the pattern expands to more than {MAX_EXPANDED_LEN} bytes of regex"
                ));
            }
            let rest = &text[i..];
            match bytes[i] {
                b'\\' => {
                    // The escape and the whole character it escapes.
                    let len = 1 + rest[1..].chars().next().map_or(0, char::len_utf8);
                    self.out.regex.push_str(&rest[..len]);
                    i += len;
                }
                b'[' => {
                    let len = class_len(rest);
                    self.out.regex.push_str(&rest[..len]);
                    i += len;
                }
                b'(' => i += self.group_open(rest)?,
                b'%' if rest.starts_with("%{") => i += self.reference(rest)?,
                _ => {
                    let len = rest
                        .bytes()
                        .position(|b| matches!(b, b'\\' | b'[' | b'(' | b'%'))
                        .unwrap_or(rest.len())
                        .max(1);
                    // Special bytes are ASCII, so `len` is on a character boundary.
                    self.out.regex.push_str(&rest[..len]);
                    i += len;
                }
            }
        }
        Ok(())
    }

    /// Handles the `(` at the start of `rest`; returns how many bytes it consumed.
    fn group_open(&mut self, rest: &str) -> Result<usize, String> {
        let after = &rest[1..];
        let name_start = if after.starts_with("?P<") {
            Some(4)
        } else if after.starts_with("?<") && !after.starts_with("?<=") && !after.starts_with("?<!")
        {
            Some(3)
        } else {
            None
        };
        if let Some(start) = name_start {
            let Some(len) = rest[start..].find('>') else {
                return Err(format!("unterminated group name in {:?}", shorten(rest)));
            };
            let field = &rest[start..start + len];
            let path = field_path(field)?;
            self.open_capture(path, FieldType::String);
            return Ok(start + len + 1);
        }
        if after.starts_with('?') {
            // `(?:`, `(?i)`, `(?<=` ...: copied; regex-automata judges them.
            self.out.regex.push('(');
        } else {
            self.out.regex.push_str("(?:");
        }
        Ok(1)
    }

    fn open_capture(&mut self, path: Vec<String>, ty: FieldType) {
        let group_name = format!("_{}", self.out.captures.len());
        self.out.regex.push_str("(?P<");
        self.out.regex.push_str(&group_name);
        self.out.regex.push('>');
        self.out.captures.push(Capture {
            group_name,
            path,
            ty,
        });
    }

    /// Expands the `%{...}` at the start of `rest`; returns how many bytes it consumed.
    fn reference(&mut self, rest: &'a str) -> Result<usize, String> {
        let Some(close) = rest.find('}') else {
            return Err(format!("unterminated %{{ in {:?}", shorten(rest)));
        };
        let inner = &rest[2..close];
        let mut parts = inner.splitn(3, ':');
        let name = parts.next().unwrap_or("");
        let field = parts.next();
        let ty = parts.next();
        if !is_pattern_name(name) {
            return Err(format!("invalid pattern name {name:?} in %{{{inner}}}"));
        }
        let ty = match ty {
            None => FieldType::String,
            Some(t) => FieldType::parse(t).ok_or_else(|| {
                format!("unknown type {t:?} in %{{{inner}}} (use int, float, bool or string)")
            })?,
        };
        let Some(&definition) = self.library.get(name) else {
            return Err(format!("unknown pattern {name}"));
        };
        if let Some(pos) = self.stack.iter().position(|n| *n == name) {
            let mut chain: Vec<&str> = self.stack[pos..].to_vec();
            chain.push(name);
            return Err(format!(
                "pattern {name} refers to itself ({})",
                chain.join(" -> ")
            ));
        }
        if self.stack.len() >= MAX_DEPTH {
            return Err(format!(
                "patterns nest more than {MAX_DEPTH} deep at %{{{inner}}}"
            ));
        }
        match field {
            Some(field) => self.open_capture(field_path(field)?, ty),
            None => self.out.regex.push_str("(?:"),
        }
        self.stack.push(name);
        self.expand(definition)?;
        self.stack.pop();
        self.out.regex.push(')');
        Ok(close + 1)
    }
}

/// The length of the character class at the start of `rest` (which starts with `[`),
/// nested classes and escapes included; the whole rest when it is not closed.
fn class_len(rest: &str) -> usize {
    let bytes = rest.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => {
                i += 2;
                continue;
            }
            b'[' => {
                depth += 1;
                i += 1;
                // A `]` right after `[` or `[^` is a literal.
                if bytes.get(i) == Some(&b'^') {
                    i += 1;
                }
                if bytes.get(i) == Some(&b']') {
                    i += 1;
                }
                continue;
            }
            b']' => {
                depth -= 1;
                if depth == 0 {
                    return i + 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    // Unclosed: hand it all to the regex compiler, which reports it. Stop on a
    // character boundary (an escape may have stepped past the end).
    rest.len()
}

fn is_pattern_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Splits a field name into its path: `a.b.c` or `[a][b][c]`; a plain name is a path of
/// one. Allowed characters: ASCII letters, digits, `_`, `@`, `-` (and the separators).
pub(crate) fn field_path(field: &str) -> Result<Vec<String>, String> {
    let invalid = || format!("invalid field name {field:?}");
    let segment_ok = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'@' | b'-'))
    };
    let path: Vec<String> = if let Some(inner) = field.strip_prefix('[') {
        let inner = inner.strip_suffix(']').ok_or_else(invalid)?;
        inner.split("][").map(str::to_string).collect()
    } else {
        field.split('.').map(str::to_string).collect()
    };
    if path.iter().all(|s| segment_ok(s)) {
        Ok(path)
    } else {
        Err(invalid())
    }
}

/// The start of `text`, for error messages.
fn shorten(text: &str) -> &str {
    match text.char_indices().nth(40) {
        Some((i, _)) => &text[..i],
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn library<'a>(defs: &[(&'a str, &'a str)]) -> HashMap<&'a str, &'a str> {
        defs.iter().copied().collect()
    }

    #[test]
    fn references_expand_recursively_with_named_groups() {
        let lib = library(&[("A", r"a+"), ("B", r"%{A:inner}-%{A}")]);
        let e = expand(r"^%{B:outer:int} %{A}$", &lib).unwrap();
        assert_eq!(e.regex, r"^(?P<_0>(?P<_1>a+)-(?:a+)) (?:a+)$");
        assert_eq!(
            e.captures,
            vec![
                Capture {
                    group_name: "_0".into(),
                    path: vec!["outer".into()],
                    ty: FieldType::Int
                },
                Capture {
                    group_name: "_1".into(),
                    path: vec!["inner".into()],
                    ty: FieldType::String
                },
            ]
        );
    }

    #[test]
    fn user_groups_are_rewritten_and_classes_and_escapes_kept() {
        let lib = library(&[("A", "a")]);
        let e = expand(r"(x)(?<f.g>y)(?P<h>z)(?i:q)(?<=w)\(%{A}[(%{A}\]]", &lib).unwrap();
        assert_eq!(
            e.regex,
            r"(?:x)(?P<_0>y)(?P<_1>z)(?i:q)(?<=w)\((?:a)[(%{A}\]]"
        );
        assert_eq!(e.captures[0].path, vec!["f", "g"]);
        assert_eq!(e.captures[1].path, vec!["h"]);
        // `]` first in a class is a literal, and classes nest.
        let e = expand(r"[]%{A}][^]x][[:alpha:]%{A}]%{A}", &lib).unwrap();
        assert_eq!(e.regex, r"[]%{A}][^]x][[:alpha:]%{A}](?:a)");
    }

    #[test]
    fn field_paths() {
        assert_eq!(field_path("a").unwrap(), vec!["a"]);
        assert_eq!(field_path("http.status").unwrap(), vec!["http", "status"]);
        assert_eq!(
            field_path("[http][status]").unwrap(),
            vec!["http", "status"]
        );
        assert_eq!(field_path("@timestamp").unwrap(), vec!["@timestamp"]);
        for bad in ["", "a..b", ".a", "[a]b", "[a", "[]", "a[b]", "a b", "[a][]"] {
            assert_eq!(
                field_path(bad).unwrap_err(),
                format!("invalid field name {bad:?}")
            );
        }
    }

    #[test]
    fn errors() {
        let lib = library(&[
            ("LOOP", "x%{LOOP}"),
            ("P", "%{Q}"),
            ("Q", "%{R}"),
            ("R", "%{P}"),
            ("A", "a"),
        ]);
        let err = |p: &str| expand(p, &lib).unwrap_err();
        assert_eq!(err("%{NOPE}"), "unknown pattern NOPE");
        assert_eq!(
            err("%{LOOP}"),
            "pattern LOOP refers to itself (LOOP -> LOOP)"
        );
        assert_eq!(
            err("%{A} %{P:x}"),
            "pattern P refers to itself (P -> Q -> R -> P)"
        );
        assert_eq!(
            err("%{A:x:number}"),
            r#"unknown type "number" in %{A:x:number} (use int, float, bool or string)"#
        );
        assert_eq!(err("%{A b}"), r#"invalid pattern name "A b" in %{A b}"#);
        assert_eq!(err("%{}"), r#"invalid pattern name "" in %{}"#);
        assert_eq!(err("x %{A"), r#"unterminated %{ in "%{A""#);
        assert_eq!(err("%{A:a..b}"), r#"invalid field name "a..b""#);
        assert_eq!(err("(?<x"), r#"unterminated group name in "(?<x""#);
    }

    #[test]
    fn exponential_definitions_stop_at_the_length_limit() {
        let names: Vec<String> = (0..40).map(|i| format!("P{i}")).collect();
        let defs: Vec<String> = (0..40)
            .map(|i| {
                if i == 39 {
                    "x".to_string()
                } else {
                    format!("%{{P{n}}}%{{P{n}}}", n = i + 1)
                }
            })
            .collect();
        let lib: HashMap<&str, &str> = names
            .iter()
            .map(String::as_str)
            .zip(defs.iter().map(String::as_str))
            .collect();
        assert_eq!(
            expand("%{P0}", &lib).unwrap_err(),
            format!("the pattern expands to more than {MAX_EXPANDED_LEN} bytes of regex")
        );
    }

    #[test]
    fn deep_nesting_stops_at_the_depth_limit() {
        let names: Vec<String> = (0..100).map(|i| format!("P{i}")).collect();
        let defs: Vec<String> = (0..100)
            .map(|i| format!("%{{P{}}}", (i + 1).min(99)))
            .collect();
        let mut lib: HashMap<&str, &str> = names
            .iter()
            .map(String::as_str)
            .zip(defs.iter().map(String::as_str))
            .collect();
        lib.insert("P99", "x");
        assert_eq!(
            expand("%{P0}", &lib).unwrap_err(),
            "patterns nest more than 64 deep at %{P64}"
        );
    }
}

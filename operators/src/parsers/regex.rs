//! The `regex` parser: one or more regular expressions whose named capture groups become
//! string fields.
//!
//! First match wins, in the order the patterns are given: the first pattern that matches
//! ANYWHERE in the line is used, even if a later one matches further left (Logstash's
//! semantics, not a plain alternation's). All patterns are compiled into ONE
//! `regex_automata::meta::Regex` and the id of the matching pattern tells which group names
//! apply; [`set`] explains how, and how capture spans are found fast.
//!
//! Syntax is regex-automata's (Rust `regex` syntax). Matching works on bytes: by default
//! `.` matches any byte but `\n`, and `\w`, `\d`, `\s`, `\b` are ASCII classes (as in
//! Logstash's Ruby regexes), so lines that are not valid UTF-8 still match and captured
//! values are byte spans of the line. `(?u)` turns Unicode classes back on for a pattern.
//!
//! Values are strings (unnamed groups are ignored; a group that took no part in the match
//! is absent; a group that matched the empty string gives `""`). Keys are the group names
//! verbatim, with no nesting. The matching state (lazy DFA caches, capture slots) lives in
//! the parser, so a line costs no allocation.

pub(crate) mod set;

use super::sink::{FieldSink, LineParser, ParseError, Parsed};
use set::{CompileError, PatternSet};

/// One named group of one pattern: its group index and its name (the field key).
#[derive(Debug, Clone)]
struct NamedGroup {
    index: usize,
    name: Box<[u8]>,
}

/// Parses lines with the first of several regexes that matches.
#[derive(Debug, Clone)]
pub struct RegexParser {
    set: PatternSet,
    /// Per pattern id, its named groups in group order.
    groups: Vec<Vec<NamedGroup>>,
}

impl RegexParser {
    /// Compiles `patterns` (tried in order, first match wins). The error names the pattern
    /// (its position and text) and the cause.
    pub fn new(patterns: &[String]) -> Result<RegexParser, String> {
        if patterns.is_empty() {
            return Err("regex: no pattern given".to_string());
        }
        let set = PatternSet::new(patterns).map_err(|e| match e {
            CompileError::Pattern { index, cause } => {
                let text = patterns.get(index).map_or("", String::as_str);
                format!("regex: pattern {index} ({text:?}) is invalid: {cause}")
            }
            CompileError::Build(cause) => format!("regex: the patterns do not compile: {cause}"),
        })?;
        let info = set.group_info();
        let groups = (0..info.pattern_len())
            .map(|pid| {
                let pid = regex_automata::PatternID::new_unchecked(pid);
                info.pattern_names(pid)
                    .enumerate()
                    .filter_map(|(index, name)| {
                        name.map(|n| NamedGroup {
                            index,
                            name: n.as_bytes().into(),
                        })
                    })
                    .collect()
            })
            .collect();
        Ok(RegexParser { set, groups })
    }
}

impl LineParser for RegexParser {
    fn parse<S: FieldSink>(&mut self, line: &[u8], out: &mut S) -> Result<Parsed, ParseError> {
        let Some(pid) = self.set.find(line) else {
            return Err(ParseError::new("no pattern matched"));
        };
        for group in self.groups.get(pid).into_iter().flatten() {
            if let Some((start, end)) = self.set.group(group.index) {
                if let Some(value) = line.get(start..end) {
                    out.str(&group.name, value);
                }
            }
        }
        Ok(Parsed::Event)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::parsers::sink::parse_to_json;
    use serde_json::json;

    fn parser(patterns: &[&str]) -> RegexParser {
        let patterns: Vec<String> = patterns.iter().map(|p| p.to_string()).collect();
        RegexParser::new(&patterns).unwrap()
    }

    fn parse(p: &mut RegexParser, line: &[u8]) -> Result<serde_json::Value, ParseError> {
        parse_to_json(p, line).map(|v| v.expect("an event"))
    }

    #[test]
    fn named_groups_become_string_fields() {
        let mut p = parser(&[r"^(?P<ip>\S+) (\w+) (?<path>/\S*) (?<status>\d+)$"]);
        assert_eq!(
            parse(&mut p, b"10.0.0.1 GET /index.html 200").unwrap(),
            json!({"ip": "10.0.0.1", "path": "/index.html", "status": "200"})
        );
    }

    #[test]
    fn unanchored_search_finds_the_first_match() {
        let mut p = parser(&[r"user=(?P<user>\w+)"]);
        assert_eq!(
            parse(&mut p, b"a=1 user=bob user=alice").unwrap(),
            json!({"user": "bob"})
        );
    }

    #[test]
    fn non_participating_group_is_absent_and_empty_group_is_empty() {
        let mut p = parser(&[r"^(?P<a>x)?(?P<b>y*)(?P<c>z)$"]);
        assert_eq!(parse(&mut p, b"z").unwrap(), json!({"b": "", "c": "z"}));
        assert_eq!(
            parse(&mut p, b"xyyz").unwrap(),
            json!({"a": "x", "b": "yy", "c": "z"})
        );
    }

    #[test]
    fn first_matching_pattern_wins_and_its_names_apply() {
        let mut p = parser(&[
            r"^(?P<level>ERROR|WARN) (?P<msg>.*)$",
            r"^(?P<word>\w+) (?P<rest>.*)$",
            r"^(?P<all>.*)$",
        ]);
        // Both the first and second patterns match: the first wins.
        assert_eq!(
            parse(&mut p, b"ERROR disk full").unwrap(),
            json!({"level": "ERROR", "msg": "disk full"})
        );
        assert_eq!(
            parse(&mut p, b"INFO started").unwrap(),
            json!({"word": "INFO", "rest": "started"})
        );
        assert_eq!(parse(&mut p, b"-- !").unwrap(), json!({"all": "-- !"}));
    }

    #[test]
    fn first_pattern_wins_even_when_a_later_one_matches_further_left() {
        let mut p = parser(&[r"user=(?P<user>\w+)", r"(?P<first>\w+)", r"^(?P<all>.*)$"]);
        assert_eq!(
            parse(&mut p, b"id=7 user=bob").unwrap(),
            json!({"user": "bob"})
        );
        assert_eq!(parse(&mut p, b"id=7").unwrap(), json!({"first": "id"}));
        assert_eq!(parse(&mut p, b"=").unwrap(), json!({"all": "="}));
    }

    #[test]
    fn no_match_is_an_error() {
        let mut p = parser(&[r"^\d+$", r"^[a-z]+$"]);
        assert_eq!(
            parse(&mut p, b"12ab"),
            Err(ParseError::new("no pattern matched"))
        );
        // The parser keeps working after a failure.
        assert_eq!(parse(&mut p, b"12").unwrap(), json!({}));
    }

    #[test]
    fn errors_name_the_pattern_and_the_cause() {
        let patterns = vec![r"^(?P<a>\w+)$".to_string(), r"(?P<b>\w+".to_string()];
        let e = RegexParser::new(&patterns).unwrap_err();
        assert_eq!(
            e,
            r#"regex: pattern 1 ("(?P<b>\\w+") is invalid: unclosed group"#
        );
        let e = RegexParser::new(&[r"(?<=a)b".to_string()]).unwrap_err();
        assert!(
            e.starts_with(r#"regex: pattern 0 ("(?<=a)b") is invalid: look-around"#),
            "{e}"
        );
        assert_eq!(
            RegexParser::new(&[]).unwrap_err(),
            "regex: no pattern given"
        );
        let e = RegexParser::new(&[r"(?:\w{1000}){10000}".to_string()]).unwrap_err();
        assert!(e.starts_with("regex: the patterns do not compile: "), "{e}");
        assert!(e.contains("exceeded limit"), "{e}");
    }

    #[test]
    fn invalid_utf8_lines_match_as_bytes() {
        let mut p = parser(&[r"^(?P<k>\w+)=(?P<v>.*)$"]);
        let mut sink = CollectingSink::default();
        p.parse(b"key=\xff\xfe ok", &mut sink).unwrap();
        assert_eq!(
            sink.fields,
            vec![
                (b"k".to_vec(), b"key".to_vec()),
                (b"v".to_vec(), b"\xff\xfe ok".to_vec())
            ]
        );
        // A Unicode class opted into with (?u) does not match invalid UTF-8, and does not
        // panic either.
        let mut p = parser(&[r"(?u)^(?P<w>\w+)$"]);
        assert!(p.parse(b"caf\xc3\xa9", &mut sink).is_ok());
        assert!(p.parse(b"caf\xe9", &mut sink).is_err());
    }

    #[test]
    fn values_are_subslices_of_the_line() {
        let mut p = parser(&[r"(?P<v>b+)"]);
        let line = b"aabbbcc".to_vec();
        let mut sink = PointerSink::default();
        p.parse(&line, &mut sink).unwrap();
        let range = line.as_ptr_range();
        assert_eq!(sink.values.len(), 1);
        let (ptr, len) = sink.values[0];
        assert!(range.contains(&ptr) && len == 3);
        assert_eq!(ptr as usize - line.as_ptr() as usize, 2);
    }

    #[test]
    fn one_mebibyte_line() {
        let mut line = vec![b'x'; 1 << 20];
        line.extend_from_slice(b" end=42");
        let mut p = parser(&[r"end=(?P<end>\d+)$", r"^(?P<head>x+)"]);
        assert_eq!(parse(&mut p, &line).unwrap(), json!({"end": "42"}));
        let mut p = parser(&[r"^(?P<head>x+) (?P<tail>.*)$"]);
        let mut sink = CollectingSink::default();
        p.parse(&line, &mut sink).unwrap();
        assert_eq!(sink.fields[0].1.len(), 1 << 20);
        assert_eq!(sink.fields[1].1, b"end=42");
    }

    /// Records key/value pairs as raw bytes.
    #[derive(Default)]
    pub(crate) struct CollectingSink {
        pub(crate) fields: Vec<(Vec<u8>, Vec<u8>)>,
    }

    impl FieldSink for CollectingSink {
        fn str(&mut self, key: &[u8], value: &[u8]) {
            self.fields.push((key.to_vec(), value.to_vec()));
        }
        fn str_json_escaped(&mut self, key: &[u8], value: &[u8]) {
            self.str(key, value)
        }
        fn int(&mut self, key: &[u8], value: i64) {
            self.str(key, value.to_string().as_bytes())
        }
        fn float(&mut self, key: &[u8], value: f64) {
            self.str(key, value.to_string().as_bytes())
        }
        fn bool(&mut self, key: &[u8], value: bool) {
            self.str(key, value.to_string().as_bytes())
        }
        fn null(&mut self, key: &[u8]) {
            self.str(key, b"null")
        }
        fn timestamp(&mut self, key: &[u8], _value: crate::parsers::timestamp::Timestamp) {
            self.str(key, b"<timestamp>")
        }
        fn begin_object(&mut self, key: &[u8]) {
            self.str(key, b"{")
        }
        fn end_object(&mut self) {
            self.str(b"}", b"")
        }
    }

    /// Records where each string value lies in memory.
    #[derive(Default)]
    struct PointerSink {
        values: Vec<(*const u8, usize)>,
    }

    impl FieldSink for PointerSink {
        fn str(&mut self, _key: &[u8], value: &[u8]) {
            self.values.push((value.as_ptr(), value.len()));
        }
        fn str_json_escaped(&mut self, _key: &[u8], _value: &[u8]) {}
        fn int(&mut self, _key: &[u8], _value: i64) {}
        fn float(&mut self, _key: &[u8], _value: f64) {}
        fn bool(&mut self, _key: &[u8], _value: bool) {}
        fn null(&mut self, _key: &[u8]) {}
        fn timestamp(&mut self, _key: &[u8], _value: crate::parsers::timestamp::Timestamp) {}
        fn begin_object(&mut self, _key: &[u8]) {}
        fn end_object(&mut self) {}
    }

    mod props {
        use super::*;
        use proptest::prelude::*;
        use std::cell::RefCell;

        thread_local! {
            static PARSER: RefCell<RegexParser> = RefCell::new(parser(&[
                r"^(?P<a>\w+) (?P<b>\S+)",
                r"(?u)(?P<u>\w+)",
                r"(?P<any>.)",
            ]));
        }

        proptest! {
            #[test]
            fn random_bytes_never_panic(line in proptest::collection::vec(any::<u8>(), 0..300)) {
                PARSER.with_borrow_mut(|p| {
                    let mut sink = CollectingSink::default();
                    if p.parse(&line, &mut sink).is_ok() {
                        for (_, v) in &sink.fields {
                            assert!(v.len() <= line.len());
                        }
                    }
                    let fast = p.set.find(&line).map(|pid| (pid, (1..4).map(|g| p.set.group(g)).collect::<Vec<_>>()));
                    let slow = p.set.find_slow(&line).map(|pid| (pid, (1..4).map(|g| p.set.group(g)).collect::<Vec<_>>()));
                    assert_eq!(fast, slow);
                });
            }
        }
    }
}

//! Behaviour of the grok parser: captures, types, nesting, custom patterns, errors, and
//! hostile input.

use super::*;
use crate::parsers::sink::parse_to_json;
use serde_json::json;

pub(super) fn grok(patterns: &[&str], custom: &[(&str, &str)]) -> Result<GrokParser, String> {
    let patterns: Vec<String> = patterns.iter().map(|p| p.to_string()).collect();
    let custom: Vec<(String, String)> = custom
        .iter()
        .map(|(n, d)| (n.to_string(), d.to_string()))
        .collect();
    GrokParser::new(&patterns, &custom)
}

pub(super) fn parse(p: &mut GrokParser, line: &[u8]) -> Result<serde_json::Value, ParseError> {
    parse_to_json(p, line).map(|v| v.expect("an event"))
}

#[test]
fn the_logstash_documentation_example() {
    let mut p = grok(
        &["%{IP:client} %{WORD:method} %{URIPATHPARAM:request} %{NUMBER:bytes} %{NUMBER:duration}"],
        &[],
    )
    .unwrap();
    assert_eq!(
        parse(&mut p, b"55.3.244.1 GET /index.html 15824 0.043").unwrap(),
        json!({
            "client": "55.3.244.1",
            "method": "GET",
            "request": "/index.html",
            "bytes": "15824",
            "duration": "0.043"
        })
    );
}

#[test]
fn typed_captures() {
    let mut p = grok(
        &["%{IP:client} %{WORD:method} %{URIPATHPARAM:request} %{NUMBER:bytes:int} %{NUMBER:duration:float}"],
        &[],
    )
    .unwrap();
    assert_eq!(
        parse(&mut p, b"55.3.244.1 GET /index.html?a=1 15824 0.043").unwrap(),
        json!({
            "client": "55.3.244.1",
            "method": "GET",
            "request": "/index.html?a=1",
            "bytes": 15824,
            "duration": 0.043
        })
    );
    let mut p = grok(
        &[r"^%{NOTSPACE:i:int} %{NOTSPACE:l:long} %{NOTSPACE:f:double} %{NOTSPACE:b:boolean} %{NOTSPACE:c:bool} %{NOTSPACE:s:string}$"],
        &[],
    )
    .unwrap();
    assert_eq!(
        parse(&mut p, b"-9223372036854775808 +42 -1.5e3 TRUE false 12").unwrap(),
        json!({"i": i64::MIN, "l": 42, "f": -1500.0, "b": true, "c": false, "s": "12"})
    );
    // Values that do not convert stay strings.
    assert_eq!(
        parse(&mut p, b"9223372036854775808 4.5 NaN yes 1 x").unwrap(),
        json!({"i": "9223372036854775808", "l": "4.5", "f": "NaN", "b": "yes", "c": "1", "s": "x"})
    );
    assert_eq!(
        parse(&mut p, b"- + inf \xff 0 x").unwrap(),
        json!({"i": "-", "l": "+", "f": "inf", "b": "\u{fffd}", "c": "0", "s": "x"})
    );
}

#[test]
fn first_matching_pattern_wins() {
    let mut p = grok(
        &[
            "^%{IP:ip} %{LOGLEVEL:level}",
            "^%{WORD:word} %{LOGLEVEL:level}",
            "%{GREEDYDATA:all}",
        ],
        &[],
    )
    .unwrap();
    assert_eq!(
        parse(&mut p, b"10.1.2.3 ERROR boom").unwrap(),
        json!({"ip": "10.1.2.3", "level": "ERROR"})
    );
    assert_eq!(
        parse(&mut p, b"host WARN x").unwrap(),
        json!({"word": "host", "level": "WARN"})
    );
    assert_eq!(
        parse(&mut p, b"no level here").unwrap(),
        json!({"all": "no level here"})
    );
}

#[test]
fn first_pattern_wins_even_when_a_later_one_matches_further_left() {
    let mut p = grok(&["user=%{WORD:user}", "%{GREEDYDATA:all}"], &[]).unwrap();
    assert_eq!(
        parse(&mut p, b"a=1 user=bob").unwrap(),
        json!({"user": "bob"})
    );
    assert_eq!(parse(&mut p, b"a=1").unwrap(), json!({"all": "a=1"}));
}

#[test]
fn no_match_is_an_error_and_the_parser_recovers() {
    let mut p = grok(&["^%{INT:n}$", "^%{UUID:id}$"], &[]).unwrap();
    assert_eq!(
        parse(&mut p, b"12x"),
        Err(ParseError::new("no pattern matched"))
    );
    assert_eq!(
        parse(&mut p, b""),
        Err(ParseError::new("no pattern matched"))
    );
    assert_eq!(parse(&mut p, b"12").unwrap(), json!({"n": "12"}));
}

#[test]
fn unanchored_unless_anchored() {
    let mut p = grok(&["%{INT:n}"], &[]).unwrap();
    assert_eq!(parse(&mut p, b"abc 42 def 7").unwrap(), json!({"n": "42"}));
    let mut p = grok(&["^%{INT:n}"], &[]).unwrap();
    assert!(parse(&mut p, b"abc 42").is_err());
}

#[test]
fn custom_patterns_refer_to_each_other_and_to_the_library_and_override_it() {
    let mut p = grok(
        &["^%{REQ:req} %{WORD:w}$"],
        &[
            ("REQ", "%{METHOD:method} %{ID:id:int}"),
            ("METHOD", "GET|PUT"),
            ("ID", "#%{POSINT}"),
            // Overrides the built-in WORD.
            ("WORD", "[a-z]+"),
        ],
    )
    .unwrap();
    assert_eq!(
        parse(&mut p, b"PUT #17 abc").unwrap(),
        // `#17` is not an integer: it stays a string.
        json!({"req": "PUT #17", "method": "PUT", "id": "#17", "w": "abc"})
    );
    assert!(parse(&mut p, b"PUT #17 ABC").is_err());
    let mut p = grok(&["^%{PAIR}$"], &[("PAIR", "%{WORD:k}=(?<v>%{INT})")]).unwrap();
    assert_eq!(
        parse(&mut p, b"a=-3").unwrap(),
        json!({"k": "a", "v": "-3"})
    );
}

#[test]
fn dotted_and_bracketed_names_nest() {
    let mut p = grok(
        &[r"^%{WORD:[http][method]} %{NOTSPACE:url.path} %{INT:http.status:int} %{INT:[http][bytes]:int} %{WORD:top} %{WORD:url.scheme}$"],
        &[],
    )
    .unwrap();
    let mut sink = crate::parsers::regex::tests::CollectingSink::default();
    p.parse(b"GET /x 200 5 t https", &mut sink).unwrap();
    let calls: Vec<(String, String)> = sink
        .fields
        .iter()
        .map(|(k, v)| {
            (
                String::from_utf8_lossy(k).into_owned(),
                String::from_utf8_lossy(v).into_owned(),
            )
        })
        .collect();
    let expected: Vec<(String, String)> = [
        ("http", "{"),
        ("method", "GET"),
        ("status", "200"),
        ("bytes", "5"),
        ("}", ""),
        ("url", "{"),
        ("path", "/x"),
        ("scheme", "https"),
        ("}", ""),
        ("top", "t"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(calls, expected);
    assert_eq!(
        parse(&mut p, b"GET /x 200 5 t https").unwrap(),
        json!({
            "http": {"method": "GET", "status": 200, "bytes": 5},
            "url": {"path": "/x", "scheme": "https"},
            "top": "t"
        })
    );
}

#[test]
fn objects_without_values_are_left_out_and_empty_captures_dropped() {
    let mut p = grok(&[r"^(?:%{INT:a.b.n}|%{WORD:w})(?<e>x*)$"], &[]).unwrap();
    assert_eq!(
        parse(&mut p, b"12x").unwrap(),
        json!({"a": {"b": {"n": "12"}}, "e": "x"})
    );
    assert_eq!(parse(&mut p, b"word").unwrap(), json!({"w": "word"}));
    let mut p = grok(&[r"^%{DATA:d}$"], &[]).unwrap();
    assert_eq!(parse(&mut p, b"").unwrap(), json!({}));
}

#[test]
fn one_name_fed_by_several_captures_takes_the_first_non_empty() {
    let mut p = grok(&[r"^(?:%{INT:v:int}|%{WORD:v})$"], &[]).unwrap();
    assert_eq!(parse(&mut p, b"12").unwrap(), json!({"v": 12}));
    assert_eq!(parse(&mut p, b"ab").unwrap(), json!({"v": "ab"}));
    let mut p = grok(&[r"^%{WORD:v} %{WORD:v}$"], &[]).unwrap();
    assert_eq!(parse(&mut p, b"a b").unwrap(), json!({"v": "a"}));
}

#[test]
fn build_errors_name_the_pattern_and_the_cause() {
    let err = |patterns: &[&str], custom: &[(&str, &str)]| grok(patterns, custom).unwrap_err();
    assert_eq!(
        err(&["%{WORD}", "%{NOPE:x}"], &[]),
        r#"grok: pattern 1 ("%{NOPE:x}"): unknown pattern NOPE"#
    );
    assert_eq!(
        err(&["%{FOO}"], &[("FOO", "a%{FOO}")]),
        r#"grok: pattern 0 ("%{FOO}"): pattern FOO refers to itself (FOO -> FOO)"#
    );
    assert_eq!(
        err(&["%{A}"], &[("A", "%{B}"), ("B", "x|%{WORD}%{A}")]),
        r#"grok: pattern 0 ("%{A}"): pattern A refers to itself (A -> B -> A)"#
    );
    assert_eq!(
        err(&["%{WORD:w} (unclosed"], &[]),
        r#"grok: pattern 0 ("%{WORD:w} (unclosed") is not a valid regex after expansion: unclosed group"#
    );
    assert_eq!(
        err(&["%{BAD}"], &[("BAD", "a{2,1}")]),
        r#"grok: pattern 0 ("%{BAD}") is not a valid regex after expansion: invalid repetition count range, the start must be <= the end"#
    );
    assert_eq!(
        err(&["%{INT:n:integer}"], &[]),
        r#"grok: pattern 0 ("%{INT:n:integer}"): unknown type "integer" in %{INT:n:integer} (use int, float, bool or string)"#
    );
    assert_eq!(
        err(&["%{INT:a} %{INT:a.b}"], &[]),
        r#"grok: pattern 0 ("%{INT:a} %{INT:a.b}"): field "a" is both a value and an object"#
    );
    assert_eq!(
        err(&["%{INT}"], &[("MY-PAT", "x")]),
        r#"grok: invalid custom pattern name "MY-PAT" (use letters, digits and _)"#
    );
    assert_eq!(err(&[], &[]), "grok: no pattern given");
    let too_big = err(&["(?:%{IPV6}){5000}"], &[]);
    assert!(
        too_big.starts_with("grok: the patterns do not compile: "),
        "{too_big}"
    );
    assert!(too_big.contains("exceeded limit"), "{too_big}");
}

#[test]
fn plans_are_used_and_fall_back_when_an_item_must_give_back() {
    let mut p = grok(&["%{COMBINEDAPACHELOG}"], &[]).unwrap();
    // clientip, ident, auth, timestamp, the request alternation, response, bytes,
    // referrer, agent, and the literals between them.
    assert_eq!(p.set.plan_len(0), Some(17));
    let line = br#"10.216.14.136 - user1276 [20/Nov/2026:12:00:00 +0000] "PUT /api/v1/items/12303 HTTP/1.1" 201 14528 "https://www.google.com/" "okhttp/4.12.0""#;
    let fast = parse(&mut p, line).unwrap();
    assert_eq!(p.set.slow_finds, 0);
    assert_eq!(fast["httpversion"], json!("1.1"));
    assert_eq!(p.set.find_slow(line), Some(0));
    assert_eq!(parse_to_json(&mut p, line).unwrap().unwrap(), fast);

    // DATA prefers the empty match, then the literal space fails: the slow way answers.
    let mut p = grok(&["^%{DATA:a} %{WORD:b}$"], &[]).unwrap();
    assert_eq!(
        parse(&mut p, b"x y z").unwrap(),
        json!({"a": "x y", "b": "z"})
    );
    assert_eq!(p.set.slow_finds, 1);
    // NOTSPACE takes all of `abx`, then `x` fails.
    let mut p = grok(&["(?<a>%{NOTSPACE})x"], &[]).unwrap();
    assert_eq!(parse(&mut p, b"abx").unwrap(), json!({"a": "ab"}));
    assert_eq!(p.set.slow_finds, 1);
    // A group around a sequence holding groups: opened and closed by the plan.
    let mut p = grok(&[r"(?<all>%{WORD:w}-%{INT:n:int}) (?<rest>.*)"], &[]).unwrap();
    assert_eq!(
        parse(&mut p, b"<< ab-12 r").unwrap(),
        json!({"all": "ab-12", "w": "ab", "n": 12, "rest": "r"})
    );
    // The first pattern does not match at 0: found by the combined search, then the plan
    // runs from where the pattern's match starts.
    assert_eq!(p.set.slow_finds, 0);
    let mut p = grok(&["%{INT:a}/%{INT:b}", "%{WORD:w}"], &[]).unwrap();
    assert_eq!(
        parse(&mut p, b"x 1/2").unwrap(),
        json!({"a": "1", "b": "2"})
    );
    assert_eq!(parse(&mut p, b"x 1").unwrap(), json!({"w": "x"}));
    assert_eq!(p.set.slow_finds, 0);
}

#[test]
fn values_are_subslices_of_the_line() {
    struct Spans<'a> {
        line: &'a [u8],
        offsets: Vec<(usize, usize)>,
    }
    impl FieldSink for Spans<'_> {
        fn str(&mut self, _key: &[u8], value: &[u8]) {
            let start = value.as_ptr() as usize - self.line.as_ptr() as usize;
            assert!(start + value.len() <= self.line.len());
            self.offsets.push((start, value.len()));
        }
        fn str_json_escaped(&mut self, _: &[u8], _: &[u8]) {}
        fn int(&mut self, _: &[u8], _: i64) {}
        fn float(&mut self, _: &[u8], _: f64) {}
        fn bool(&mut self, _: &[u8], _: bool) {}
        fn null(&mut self, _: &[u8]) {}
        fn timestamp(&mut self, _: &[u8], _: crate::parsers::timestamp::Timestamp) {}
        fn begin_object(&mut self, _: &[u8]) {}
        fn end_object(&mut self) {}
    }
    let line = b"x 10.0.0.1 GET".to_vec();
    let mut p = grok(&["%{IP:ip} %{WORD:verb}"], &[]).unwrap();
    let mut sink = Spans {
        line: &line,
        offsets: Vec::new(),
    };
    p.parse(&line, &mut sink).unwrap();
    assert_eq!(sink.offsets, vec![(2, 8), (11, 3)]);
}

#[test]
fn invalid_utf8_is_matched_as_bytes() {
    let mut p = grok(&["^%{WORD:w} %{GREEDYDATA:rest}$"], &[]).unwrap();
    let mut sink = crate::parsers::regex::tests::CollectingSink::default();
    p.parse(b"abc \xff\xc3( z\x80", &mut sink).unwrap();
    assert_eq!(
        sink.fields,
        vec![
            (b"w".to_vec(), b"abc".to_vec()),
            (b"rest".to_vec(), b"\xff\xc3( z\x80".to_vec())
        ]
    );
    // A combined log line with garbage in the user agent.
    let mut p = grok(&["%{COMBINEDAPACHELOG}"], &[]).unwrap();
    let v = parse(
        &mut p,
        b"1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] \"GET / HTTP/1.0\" 200 1 \"-\" \"\xfe\xff\"",
    )
    .unwrap();
    assert_eq!(v["agent"], json!("\"\u{fffd}\u{fffd}\""));
}

#[test]
fn one_mebibyte_line() {
    let mut line = b"start ".to_vec();
    line.extend_from_slice(&vec![b'a'; 1 << 20]);
    line.extend_from_slice(b" 42");
    let mut p = grok(&["^%{WORD:first} %{NOTSPACE:big} %{INT:n:int}$"], &[]).unwrap();
    let v = parse(&mut p, &line).unwrap();
    assert_eq!(v["first"], json!("start"));
    assert_eq!(v["big"].as_str().map(str::len), Some(1 << 20));
    assert_eq!(v["n"], json!(42));
    // No match over a long line is an error, not a hang or a panic.
    let mut p = grok(&["%{COMBINEDAPACHELOG}"], &[]).unwrap();
    assert!(parse(&mut p, &line).is_err());
}

/// Every group span of the last match, group 0 left out.
fn spans(p: &GrokParser) -> Vec<Option<(usize, usize)>> {
    (1..64).map(|g| p.set.group(g)).collect()
}

mod props {
    use super::*;
    use proptest::prelude::*;

    use std::cell::RefCell;

    thread_local! {
        // Built once per test thread: building is the slow part in a debug build.
        static MIXED: RefCell<GrokParser> = RefCell::new(
            grok(&["%{COMBINEDAPACHELOG}", "%{SYSLOGLINE}", "^%{IP:ip:int} %{NUMBER:n:float}"], &[]).unwrap()
        );
        static APACHE: RefCell<GrokParser> = RefCell::new(grok(&["%{COMBINEDAPACHELOG}"], &[]).unwrap());
    }

    proptest! {
        #[test]
        fn random_lines_never_panic(line in proptest::collection::vec(any::<u8>(), 0..400)) {
            MIXED.with_borrow_mut(|p| {
                let mut sink = crate::parsers::regex::tests::CollectingSink::default();
                let _ = p.parse(&line, &mut sink);
                // The fast and the slow way agree.
                let fast = p.set.find(&line).map(|pid| (pid, spans(p)));
                let slow = p.set.find_slow(&line).map(|pid| (pid, spans(p)));
                assert_eq!(fast, slow);
            });
        }

        #[test]
        fn apache_like_lines_never_panic(
            ip in "[0-9a-f:.]{1,20}",
            user in "[ -~]{0,8}",
            request in "[ -~]{0,30}",
            status in "[0-9-]{1,4}",
        ) {
            let line = format!("{ip} - {user} [10/Oct/2000:13:55:36 -0700] \"{request}\" {status} 12 \"-\" \"ua\"");
            APACHE.with_borrow_mut(|p| {
                if let Ok(v) = parse(p, line.as_bytes()) {
                    assert_eq!(&v["timestamp"], &json!("10/Oct/2000:13:55:36 -0700"));
                }
                let fast = p.set.find(line.as_bytes()).map(|pid| (pid, spans(p)));
                let slow = p.set.find_slow(line.as_bytes()).map(|pid| (pid, spans(p)));
                assert_eq!(fast, slow);
            });
        }

        #[test]
        fn random_pattern_text_never_panics(pattern in "[%{}A-Z:a-z()\\[\\]\\\\?<>|*+.^$0-9 -]{0,40}") {
            if let Ok(mut p) = grok(&[pattern.as_str()], &[("X", "%{Y}|a"), ("Y", "b")]) {
                let mut sink = crate::parsers::regex::tests::CollectingSink::default();
                let _ = p.parse(b"a b 1 [x] WORD: 2001:db8::1", &mut sink);
            }
        }
    }
}

use super::*;
use crate::parsers::sink::{parse_to_json, RecordingSink};
use crate::parsers::timestamp::Timestamp;
use proptest::prelude::*;
use serde_json::{json, Map, Value};

fn parse(line: &[u8]) -> Value {
    match parse_to_json(&mut LogfmtParser::new(), line) {
        Ok(Some(v)) => v,
        other => panic!("{:?} -> {other:?}", String::from_utf8_lossy(line)),
    }
}

/// Every call, in order, with string values as raw bytes.
#[derive(Default, Debug, PartialEq)]
struct Calls(Vec<(Vec<u8>, Option<Vec<u8>>)>);

impl FieldSink for Calls {
    fn str(&mut self, key: &[u8], value: &[u8]) {
        self.0.push((key.to_vec(), Some(value.to_vec())));
    }
    fn str_json_escaped(&mut self, key: &[u8], value: &[u8]) {
        self.str(key, value)
    }
    fn int(&mut self, _: &[u8], _: i64) {
        unreachable!("logfmt writes strings and flags only")
    }
    fn float(&mut self, _: &[u8], _: f64) {
        unreachable!("logfmt writes strings and flags only")
    }
    fn bool(&mut self, key: &[u8], value: bool) {
        assert!(value);
        self.0.push((key.to_vec(), None));
    }
    fn null(&mut self, _: &[u8]) {
        unreachable!("logfmt writes strings and flags only")
    }
    fn timestamp(&mut self, _: &[u8], _: Timestamp) {
        unreachable!("logfmt writes strings and flags only")
    }
    fn begin_object(&mut self, _: &[u8]) {
        unreachable!("logfmt writes strings and flags only")
    }
    fn end_object(&mut self) {
        unreachable!("logfmt writes strings and flags only")
    }
}

#[test]
fn realistic_lines() {
    let cases: Vec<(&str, Value)> = vec![
        (
            r#"level=info msg="request done" method=GET path=/api/v1/orders status=200 duration=12.5ms"#,
            json!({"level": "info", "msg": "request done", "method": "GET",
                   "path": "/api/v1/orders", "status": "200", "duration": "12.5ms"}),
        ),
        (
            r#"at=info method=GET path="/" host=myapp.herokuapp.com request_id=8601b555-6a83-4c12-8269-97c8e32cdb22 fwd="204.204.204.204" dyno=web.1 connect=1ms service=18ms status=200 bytes=13 protocol=https"#,
            json!({"at": "info", "method": "GET", "path": "/", "host": "myapp.herokuapp.com",
                   "request_id": "8601b555-6a83-4c12-8269-97c8e32cdb22",
                   "fwd": "204.204.204.204", "dyno": "web.1", "connect": "1ms",
                   "service": "18ms", "status": "200", "bytes": "13", "protocol": "https"}),
        ),
        (
            r#"time="2026-11-21T09:34:39Z" level=warning msg="disk almost full" path=/var free_pct=3.2"#,
            json!({"time": "2026-11-21T09:34:39Z", "level": "warning", "msg": "disk almost full",
                   "path": "/var", "free_pct": "3.2"}),
        ),
        (
            r#"msg="say \"hi\"\n\tnow\r" path="C:\\temp""#,
            json!({"msg": "say \"hi\"\n\tnow\r", "path": "C:\\temp"}),
        ),
        (
            "debug level=info cached",
            json!({"debug": true, "level": "info", "cached": true}),
        ),
        (r#"a= b="" c=x"#, json!({"a": "", "b": "", "c": "x"})),
        (
            r#"t=2026-11-21T09:34:39+0000 lvl=eror msg="Failed to look up user" logger=context userId=1 orgId=1 uname= error="user not found""#,
            json!({"t": "2026-11-21T09:34:39+0000", "lvl": "eror",
                   "msg": "Failed to look up user", "logger": "context", "userId": "1",
                   "orgId": "1", "uname": "", "error": "user not found"}),
        ),
        (
            r#"ts=2026-11-21T09:34:39.123Z caller=main.go:1129 level=info msg="Server is ready to receive web requests.""#,
            json!({"ts": "2026-11-21T09:34:39.123Z", "caller": "main.go:1129", "level": "info",
                   "msg": "Server is ready to receive web requests."}),
        ),
        (
            "  a=1\t\tb=2   c=\"x y\"  \r\n",
            json!({"a": "1", "b": "2", "c": "x y"}),
        ),
        (
            r#"re="\d+\.\w" eq=a=b"#,
            json!({"re": "\\d+\\.\\w", "eq": "a=b"}),
        ),
        (
            r#"a=1 msg="cut off here"#,
            json!({"a": "1", "msg": "cut off here"}),
        ),
        (
            r#"user=José city="São Paulo" emoji=🚀"#,
            json!({"user": "José", "city": "São Paulo", "emoji": "🚀"}),
        ),
        (
            // A pair without a key is skipped; text glued to a closing quote is a flag.
            r#"=garbage ="quoted" x=1 y="a"b"#,
            json!({"x": "1", "y": "a", "b": true}),
        ),
    ];
    for (line, want) in cases {
        assert_eq!(parse(line.as_bytes()), want, "{line}");
    }
}

#[test]
fn repeated_keys_are_all_written_in_order() {
    let mut calls = Calls::default();
    let line = br#"a=1 a="2" flag a"#;
    assert_eq!(
        LogfmtParser::new().parse(line, &mut calls),
        Ok(Parsed::Event)
    );
    let want: Vec<(Vec<u8>, Option<Vec<u8>>)> = vec![
        (b"a".to_vec(), Some(b"1".to_vec())),
        (b"a".to_vec(), Some(b"2".to_vec())),
        (b"flag".to_vec(), None),
        (b"a".to_vec(), None),
    ];
    assert_eq!(calls.0, want);
    // The recording sink (like the table reader) keeps the last.
    assert_eq!(parse(b"a=1 a=2"), json!({"a": "2"}));
}

#[test]
fn values_without_escapes_are_spans_of_the_line() {
    struct Spans<'l> {
        line: &'l [u8],
        inside: usize,
        outside: usize,
    }
    impl FieldSink for Spans<'_> {
        fn str(&mut self, key: &[u8], value: &[u8]) {
            let range = self.line.as_ptr_range();
            for s in [key, value] {
                if range.contains(&s.as_ptr()) {
                    self.inside += 1;
                } else {
                    self.outside += 1;
                }
            }
        }
        fn str_json_escaped(&mut self, _: &[u8], _: &[u8]) {}
        fn int(&mut self, _: &[u8], _: i64) {}
        fn float(&mut self, _: &[u8], _: f64) {}
        fn bool(&mut self, _: &[u8], _: bool) {}
        fn null(&mut self, _: &[u8]) {}
        fn timestamp(&mut self, _: &[u8], _: Timestamp) {}
        fn begin_object(&mut self, _: &[u8]) {}
        fn end_object(&mut self) {}
    }
    let line = br#"a=1 b="two words" c="esc\"aped""#;
    let mut spans = Spans {
        line,
        inside: 0,
        outside: 0,
    };
    LogfmtParser::new().parse(line, &mut spans).unwrap();
    // Three keys and two values from the line; the escaped value from scratch.
    assert_eq!((spans.inside, spans.outside), (5, 1));
}

#[test]
fn lines_without_pairs_are_errors() {
    for line in [
        &b""[..],
        b"   \t ",
        b"just some words",
        b"=novalue",
        br#"="x" flag"#,
        b"\xff\xfe",
    ] {
        assert_eq!(
            parse_to_json(&mut LogfmtParser::new(), line),
            Err(E_NO_PAIRS),
            "{line:?}"
        );
    }
    assert_eq!(E_NO_PAIRS.reason, "no key=value pairs");
}

#[test]
fn every_truncation_parses_or_errs() {
    let line = br#"ts=2026-11-21T09:34:39.123Z msg="say \"hi\"\n" flag path="C:\\temp" x= y"#;
    let mut p = LogfmtParser::new();
    for end in 0..=line.len() {
        let got = p.parse(&line[..end], &mut RecordingSink::new());
        // Every prefix that reaches past `ts=` holds a pair.
        assert_eq!(got.is_ok(), end >= 3, "{end}");
    }
}

#[test]
fn invalid_utf8_and_one_mebibyte_values() {
    let mut calls = Calls::default();
    let line = b"k=\xff\xfe q=\"\xc3\x28 \\\" \x80\" \xf0=1";
    LogfmtParser::new().parse(line, &mut calls).unwrap();
    let want: Vec<(Vec<u8>, Option<Vec<u8>>)> = vec![
        (b"k".to_vec(), Some(b"\xff\xfe".to_vec())),
        (b"q".to_vec(), Some(b"\xc3\x28 \" \x80".to_vec())),
        (b"\xf0".to_vec(), Some(b"1".to_vec())),
    ];
    assert_eq!(calls.0, want);

    let big = "v".repeat(1 << 20);
    let v = parse(format!("a=1 big={big} q=\"{big}\"").as_bytes());
    assert_eq!(v["big"].as_str().map(str::len), Some(1 << 20));
    assert_eq!(v["q"].as_str().map(str::len), Some(1 << 20));
    let escaped = "\\n".repeat(1 << 19);
    let v = parse(format!("e=\"{escaped}\"").as_bytes());
    assert_eq!(v["e"], json!("\n".repeat(1 << 19)));
    // A mebibyte of words without a pair is rejected.
    let words = "w ".repeat(1 << 19);
    assert_eq!(
        parse_to_json(&mut LogfmtParser::new(), words.as_bytes()),
        Err(E_NO_PAIRS)
    );
}

/// How a logfmt writer would render a value.
fn render_value(v: &str, force_quotes: bool) -> String {
    let plain = !v.is_empty()
        && !v
            .chars()
            .any(|c| matches!(c, ' ' | '=' | '"' | '\\' | '\n' | '\t' | '\r'));
    if plain && !force_quotes {
        return v.to_string();
    }
    let mut s = String::from("\"");
    for c in v.chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            '\n' => s.push_str("\\n"),
            '\t' => s.push_str("\\t"),
            '\r' => s.push_str("\\r"),
            c => s.push(c),
        }
    }
    s.push('"');
    s
}

#[derive(Debug, Clone)]
enum Token {
    Pair(String, String, bool),
    Flag(String),
}

fn token() -> impl Strategy<Value = Token> {
    let key = "[a-zA-Z_][a-zA-Z0-9_.:/-]{0,12}";
    let value = "[a-z0-9 =\"\\\\\n\t\r.:/é€-]{0,20}";
    prop_oneof![
        4 => (key, value, any::<bool>()).prop_map(|(k, v, q)| Token::Pair(k, v, q)),
        1 => key.prop_map(Token::Flag),
    ]
}

proptest! {
    #[test]
    fn round_trip(
        tokens in proptest::collection::vec(token(), 1..12),
        first in ("[a-z]{1,5}", "[a-z0-9 \"]{0,8}"),
        sep in prop::sample::select(vec![" ", "  ", "\t", " \t "]),
    ) {
        let mut tokens = tokens;
        tokens.insert(0, Token::Pair(first.0, first.1, false));
        let mut line = String::new();
        let mut want = Map::new();
        for t in &tokens {
            if !line.is_empty() {
                line.push_str(sep);
            }
            match t {
                Token::Pair(k, v, q) => {
                    line.push_str(&format!("{k}={}", render_value(v, *q)));
                    want.insert(k.clone(), json!(v));
                }
                Token::Flag(k) => {
                    line.push_str(k);
                    want.insert(k.clone(), json!(true));
                }
            }
        }
        prop_assert_eq!(parse(line.as_bytes()), Value::Object(want));
    }

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = LogfmtParser::new().parse(&bytes, &mut RecordingSink::new());
    }

    #[test]
    fn random_logfmt_like_text_never_panics(
        text in proptest::collection::vec(prop::sample::select(b"ab= \"\\\tn".to_vec()), 0..200)
    ) {
        let mut calls = Calls::default();
        if LogfmtParser::new().parse(&text, &mut calls).is_ok() {
            prop_assert!(calls.0.iter().any(|(_, v)| v.is_some()));
        }
    }
}

use super::*;
use crate::parsers::sink::{parse_to_json, RecordingSink};
use crate::parsers::timestamp::Timestamp;
use proptest::prelude::*;
use serde_json::{json, Map, Value};

fn options(field_split: &str, value_split: &str, prefix: &str, trim: bool) -> KvOptions {
    KvOptions {
        field_split: field_split.into(),
        value_split: value_split.into(),
        prefix: prefix.into(),
        trim,
    }
}

fn parse_with(opts: &KvOptions, line: &[u8]) -> Value {
    let mut p = KvParser::new(opts).unwrap();
    match parse_to_json(&mut p, line) {
        Ok(Some(v)) => v,
        other => panic!("{:?} -> {other:?}", String::from_utf8_lossy(line)),
    }
}

fn parse(line: &str) -> Value {
    parse_with(&KvOptions::default(), line.as_bytes())
}

/// Every `str` call, in order, as raw bytes.
#[derive(Default)]
struct Pairs(Vec<(Vec<u8>, Vec<u8>)>);

impl FieldSink for Pairs {
    fn str(&mut self, key: &[u8], value: &[u8]) {
        self.0.push((key.to_vec(), value.to_vec()));
    }
    fn str_json_escaped(&mut self, _: &[u8], _: &[u8]) {
        unreachable!("kv writes plain strings")
    }
    fn int(&mut self, _: &[u8], _: i64) {
        unreachable!("kv writes plain strings")
    }
    fn float(&mut self, _: &[u8], _: f64) {
        unreachable!("kv writes plain strings")
    }
    fn bool(&mut self, _: &[u8], _: bool) {
        unreachable!("kv writes plain strings")
    }
    fn null(&mut self, _: &[u8]) {
        unreachable!("kv writes plain strings")
    }
    fn timestamp(&mut self, _: &[u8], _: Timestamp) {
        unreachable!("kv writes plain strings")
    }
    fn begin_object(&mut self, _: &[u8]) {
        unreachable!("kv writes plain strings")
    }
    fn end_object(&mut self) {
        unreachable!("kv writes plain strings")
    }
}

#[test]
fn defaults() {
    assert_eq!(KvOptions::default(), options(" ", "=", "", true));
    let parsed: KvOptions = serde_json::from_value(json!({"field_split": ","})).unwrap();
    assert_eq!(parsed, options(",", "=", "", true));
    assert!(serde_json::from_value::<KvOptions>(json!({"split": ","})).is_err());
}

#[test]
fn invalid_options_are_rejected() {
    for (opts, want) in [
        (
            options("", "=", "", true),
            "kv: field_split must not be empty",
        ),
        (
            options(" ", "", "", true),
            "kv: value_split must not be empty",
        ),
        (
            options("=", "=", "", true),
            "kv: field_split and value_split are both \"=\"",
        ),
    ] {
        assert_eq!(KvParser::new(&opts).err().as_deref(), Some(want));
    }
}

#[test]
fn realistic_lines_with_default_options() {
    let cases: Vec<(&str, Value)> = vec![
        (
            // A FortiGate traffic log.
            r#"date=2026-11-21 time=09:34:39 devname="FGT60F" devid="FGT60FTK2109XXXX" logid="0000000013" type="traffic" subtype="forward" level="notice" srcip=192.168.1.10 srcport=52014 dstip=93.184.216.34 dstport=443 action="accept""#,
            json!({"date": "2026-11-21", "time": "09:34:39", "devname": "FGT60F",
                   "devid": "FGT60FTK2109XXXX", "logid": "0000000013", "type": "traffic",
                   "subtype": "forward", "level": "notice", "srcip": "192.168.1.10",
                   "srcport": "52014", "dstip": "93.184.216.34", "dstport": "443",
                   "action": "accept"}),
        ),
        (
            // Linux audit.
            r#"type=SYSCALL msg=audit(1364481363.243:24287): arch=c000003e syscall=2 success=no exit=-13 comm="cat" exe="/usr/bin/cat" key="sshd_config""#,
            json!({"type": "SYSCALL", "msg": "audit(1364481363.243:24287):",
                   "arch": "c000003e", "syscall": "2", "success": "no", "exit": "-13",
                   "comm": "cat", "exe": "/usr/bin/cat", "key": "sshd_config"}),
        ),
        (
            "user='O\\'Brien' note=\"say \\\"hi\\\"\" path='C:\\temp\\new'",
            json!({"user": "O'Brien", "note": "say \"hi\"", "path": "C:\\temp\\new"}),
        ),
        (
            // Tokens without `=` are ignored; empty keys are skipped; `=` in a value kept.
            "starting up pid=42 =orphan query=a=b done",
            json!({"pid": "42", "query": "a=b"}),
        ),
        ("a= b=\"\" c=''", json!({"a": "", "b": "", "c": ""})),
        (
            // Text after a closing quote up to the next separator is dropped.
            "msg=\"hello\"world next=1",
            json!({"msg": "hello", "next": "1"}),
        ),
        (
            "unterminated=\"runs to the end of the line",
            json!({"unterminated": "runs to the end of the line"}),
        ),
        (
            "  lots   of   spaces=yes   here=too  \n",
            json!({"spaces": "yes", "here": "too"}),
        ),
        (
            "city=\"São Paulo\" user=José",
            json!({"city": "São Paulo", "user": "José"}),
        ),
        ("k1=v1 k2=v2 k1=v3", json!({"k1": "v3", "k2": "v2"})),
    ];
    for (line, want) in cases {
        assert_eq!(parse(line), want, "{line}");
    }
}

#[test]
fn custom_separators_prefix_and_trim() {
    let cases: Vec<(KvOptions, &str, Value)> = vec![
        (
            options(",", ":", "", true),
            "host: web-1 , status : 200,msg: \"a, b\" ,empty:",
            json!({"host": "web-1", "status": "200", "msg": "a, b", "empty": ""}),
        ),
        (
            options(",", ":", "", false),
            "host: web-1 , status : 200",
            json!({"host": " web-1 ", " status ": " 200"}),
        ),
        (
            options("&", "=", "q_", true),
            "a=1&b=two%20words&&c&d=",
            json!({"q_a": "1", "q_b": "two%20words", "q_d": ""}),
        ),
        (
            options("; ", " => ", "", true),
            "user => alice; role => admin; junk; n => 3",
            json!({"user": "alice", "role": "admin", "n": "3"}),
        ),
        (
            options("|", "=", "kv.", true),
            "a=1|b='x|y'|c=\"3\"",
            json!({"kv.a": "1", "kv.b": "x|y", "kv.c": "3"}),
        ),
        (
            // Trim lets a quote follow blanks; without trim the quote is part of the value.
            options(",", "=", "", true),
            "a= \"x,y\" ,b=2",
            json!({"a": "x,y", "b": "2"}),
        ),
        (
            options(",", "=", "", false),
            "a= \"x,y\",b=2",
            json!({"a": " \"x", "b": "2"}),
        ),
    ];
    for (opts, line, want) in cases {
        assert_eq!(parse_with(&opts, line.as_bytes()), want, "{opts:?} {line}");
    }
}

#[test]
fn prefix_is_built_per_key_and_values_are_exact_bytes() {
    let mut p = KvParser::new(&options(" ", "=", "p.", true)).unwrap();
    let mut pairs = Pairs::default();
    p.parse(b"a=1 bb=\"x\\\"y\" c=\xff", &mut pairs).unwrap();
    let want: Vec<(Vec<u8>, Vec<u8>)> = vec![
        (b"p.a".to_vec(), b"1".to_vec()),
        (b"p.bb".to_vec(), b"x\"y".to_vec()),
        (b"p.c".to_vec(), b"\xff".to_vec()),
    ];
    assert_eq!(pairs.0, want);
}

#[test]
fn lines_without_pairs_are_errors() {
    for line in ["", "   ", "no pairs here", "=x =y", "a,b"] {
        let mut p = KvParser::default();
        assert_eq!(
            parse_to_json(&mut p, line.as_bytes()),
            Err(E_NO_PAIRS),
            "{line}"
        );
    }
}

#[test]
fn every_truncation_parses_or_errs() {
    let line = br#"a=1 msg="say \"hi\" now" path='C:\temp' x= junk"#;
    for opts in [KvOptions::default(), options(" ", "=", "pre_", false)] {
        let mut p = KvParser::new(&opts).unwrap();
        for end in 0..=line.len() {
            let got = p.parse(&line[..end], &mut RecordingSink::new());
            assert_eq!(got.is_ok(), end >= 2, "{end}");
        }
    }
}

#[test]
fn one_mebibyte_lines_stay_linear() {
    // Many tokens without a separator: each search for `=` must not rescan the line.
    let words = "w ".repeat(1 << 19);
    let line = format!("{words}last=1");
    assert_eq!(parse(&line), json!({"last": "1"}));
    let mut p = KvParser::new(&options(", ", " := ", "", true)).unwrap();
    let line = format!("{}k := v", "x, ".repeat(1 << 18));
    assert_eq!(
        parse_to_json(&mut p, line.as_bytes()).unwrap(),
        Some(json!({"k": "v"}))
    );
    // Many separators without a field separator.
    let line = "=".repeat(1 << 20);
    assert_eq!(
        parse_to_json(&mut KvParser::default(), line.as_bytes()),
        Err(E_NO_PAIRS)
    );
    let big = "v".repeat(1 << 20);
    assert_eq!(
        parse(&format!("a={big} b=\"{big}\""))["b"]
            .as_str()
            .map(str::len),
        Some(1 << 20)
    );
}

fn render_value(v: &str, quote: Option<char>) -> String {
    match quote {
        None => v.to_string(),
        Some(q) => {
            let mut s = String::from(q);
            for c in v.chars() {
                if c == q || c == '\\' {
                    s.push('\\');
                }
                s.push(c);
            }
            s.push(q);
            s
        }
    }
}

prop_compose! {
    fn separators()(which in 0usize..4) -> (&'static str, &'static str) {
        [(" ", "="), (",", ":"), ("&", "="), ("; ", "=>")][which]
    }
}

proptest! {
    #[test]
    fn round_trip(
        (field_split, value_split) in separators(),
        prefix in prop::sample::select(vec!["", "kv_", "a.b."]),
        pairs in proptest::collection::vec(
            (
                "[a-zA-Z_][a-zA-Z0-9_.-]{0,10}",
                "[a-z0-9 ,;&=:>\"'\\\\é]{0,16}",
                prop::sample::select(vec![None, Some('"'), Some('\'')]),
            ),
            1..10,
        ),
    ) {
        let opts = options(field_split, value_split, prefix, true);
        let mut line = String::new();
        let mut want = Map::new();
        for (key, value, quote) in &pairs {
            // An unquoted value must not hold a separator, start with a quote, or have
            // blanks at its ends (trim would remove them).
            let needs_quotes = value.contains(field_split)
                || value.contains(value_split)
                || value.starts_with(['"', '\''])
                || value.trim() != value;
            let quote = quote.or(needs_quotes.then_some('"'));
            if !line.is_empty() {
                line.push_str(field_split);
            }
            line.push_str(&format!("{key}{value_split}{}", render_value(value, quote)));
            want.insert(format!("{prefix}{key}"), json!(value));
        }
        prop_assert_eq!(parse_with(&opts, line.as_bytes()), Value::Object(want));
    }

    #[test]
    fn random_bytes_never_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..300),
        (field_split, value_split) in separators(),
        trim in any::<bool>(),
    ) {
        let mut p = KvParser::new(&options(field_split, value_split, "p", trim)).unwrap();
        let _ = p.parse(&bytes, &mut RecordingSink::new());
    }

    #[test]
    fn random_kv_like_text_never_panics(
        text in proptest::collection::vec(prop::sample::select(b"ab=:, ;&>\"'\\".to_vec()), 0..200),
        (field_split, value_split) in separators(),
        trim in any::<bool>(),
    ) {
        let mut p = KvParser::new(&options(field_split, value_split, "", trim)).unwrap();
        let mut pairs = Pairs::default();
        if p.parse(&text, &mut pairs).is_ok() {
            prop_assert!(!pairs.0.is_empty());
        }
    }
}

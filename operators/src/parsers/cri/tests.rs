use super::*;
use crate::parsers::sink::{parse_to_json, RecordingSink};
use proptest::prelude::*;
use serde_json::{json, Value};

fn event(p: &mut CriParser, line: &str) -> Value {
    match parse_to_json(p, line.as_bytes()) {
        Ok(Some(v)) => v,
        other => panic!("{line:?} -> {other:?}"),
    }
}

fn pending(p: &mut CriParser, line: &str) {
    assert_eq!(parse_to_json(p, line.as_bytes()), Ok(None), "{line:?}");
}

fn cri(line: &str) -> Value {
    event(&mut CriParser::default(), line)
}

#[test]
fn realistic_full_lines() {
    let cases: Vec<(&str, Value)> = vec![
        (
            "2016-10-06T00:17:09.669794202Z stdout F log content 1",
            json!({"timestamp": "2016-10-06T00:17:09.669794202Z", "stream": "stdout",
                   "message": "log content 1"}),
        ),
        (
            "2016-10-06T00:17:09.669794203Z stderr F log content 2\n",
            json!({"timestamp": "2016-10-06T00:17:09.669794203Z", "stream": "stderr",
                   "message": "log content 2"}),
        ),
        (
            // cri-o writes local time with an offset.
            "2026-11-21T10:34:39.123456789+01:00 stdout F hello",
            json!({"timestamp": "2026-11-21T09:34:39.123456789Z", "stream": "stdout",
                   "message": "hello"}),
        ),
        (
            "2026-11-21T09:34:39Z stdout F ",
            json!({"timestamp": "2026-11-21T09:34:39Z", "stream": "stdout", "message": ""}),
        ),
        (
            "2026-11-21T09:34:39Z stderr F",
            json!({"timestamp": "2026-11-21T09:34:39Z", "stream": "stderr", "message": ""}),
        ),
        (
            r#"2026-11-21T09:34:39.5Z stdout F {"level":"info","msg":"ready","port":8080}"#,
            json!({"timestamp": "2026-11-21T09:34:39.500Z", "stream": "stdout",
                   "message": r#"{"level":"info","msg":"ready","port":8080}"#}),
        ),
        (
            "2026-11-21T09:34:39.000000001Z stdout F I1121 09:34:39.000001       1 controller.go:123] Starting controller",
            json!({"timestamp": "2026-11-21T09:34:39.000000001Z", "stream": "stdout",
                   "message": "I1121 09:34:39.000001       1 controller.go:123] Starting controller"}),
        ),
        (
            // Blanks inside and at the end of the message are kept.
            "2026-11-21T09:34:39Z stdout F   indented\ttext  \r\n",
            json!({"timestamp": "2026-11-21T09:34:39Z", "stream": "stdout",
                   "message": "  indented\ttext  "}),
        ),
        (
            // More tags after a colon.
            "2026-11-21T09:34:39Z stdout F:x:y tagged",
            json!({"timestamp": "2026-11-21T09:34:39Z", "stream": "stdout",
                   "message": "tagged"}),
        ),
        (
            "1999-12-31t23:59:59.999999999999z stderr F lower-case t and z, 12 digits",
            json!({"timestamp": "1999-12-31T23:59:59.999999999Z", "stream": "stderr",
                   "message": "lower-case t and z, 12 digits"}),
        ),
        (
            "2026-01-01T00:30:00-05:30 stdout F west",
            json!({"timestamp": "2026-01-01T06:00:00Z", "stream": "stdout", "message": "west"}),
        ),
    ];
    for (line, want) in cases {
        assert_eq!(cri(line), want, "{line}");
    }
}

#[test]
fn partial_lines_are_joined_per_stream() {
    let mut p = CriParser::default();
    pending(&mut p, "2026-11-21T09:34:39.1Z stdout P first part, ");
    assert!(p.has_pending());
    pending(&mut p, "2026-11-21T09:34:39.2Z stdout P second part, ");
    // The other stream is independent.
    assert_eq!(
        event(&mut p, "2026-11-21T09:34:39.3Z stderr F an error"),
        json!({"timestamp": "2026-11-21T09:34:39.300Z", "stream": "stderr",
               "message": "an error"})
    );
    pending(&mut p, "2026-11-21T09:34:39.35Z stderr P err ");
    assert_eq!(
        event(&mut p, "2026-11-21T09:34:39.4Z stdout F end"),
        json!({"timestamp": "2026-11-21T09:34:39.100Z", "stream": "stdout",
               "message": "first part, second part, end"})
    );
    assert_eq!(
        event(&mut p, "2026-11-21T09:34:39.5Z stderr F part"),
        json!({"timestamp": "2026-11-21T09:34:39.350Z", "stream": "stderr",
               "message": "err part"})
    );
    assert!(!p.has_pending());
    // A partial line with an empty message, then the end.
    pending(&mut p, "2026-11-21T09:34:40Z stdout P");
    assert_eq!(
        event(&mut p, "2026-11-21T09:34:41Z stdout F x"),
        json!({"timestamp": "2026-11-21T09:34:40Z", "stream": "stdout", "message": "x"})
    );
    // A malformed line in between leaves the held parts alone.
    pending(&mut p, "2026-11-21T09:34:42Z stdout P a");
    assert!(parse_to_json(&mut p, b"garbage").is_err());
    assert_eq!(
        event(&mut p, "2026-11-21T09:34:43Z stdout F b")["message"],
        json!("ab")
    );
}

#[test]
fn held_parts_are_bounded() {
    let mut p = CriParser::new(10);
    pending(&mut p, "2026-11-21T09:34:39Z stdout P 12345");
    pending(&mut p, "2026-11-21T09:34:40Z stdout P 67890");
    // Exactly full; the next part overflows: what is held is written, truncated.
    assert_eq!(
        event(&mut p, "2026-11-21T09:34:41Z stdout P abc"),
        json!({"timestamp": "2026-11-21T09:34:39Z", "stream": "stdout",
               "message": "1234567890", "truncated": true})
    );
    // The rest of that message is dropped, up to and including its F line.
    pending(&mut p, "2026-11-21T09:34:42Z stdout P def");
    pending(&mut p, "2026-11-21T09:34:43Z stdout F end");
    assert!(!p.has_pending());
    assert_eq!(
        event(&mut p, "2026-11-21T09:34:44Z stdout F next")["message"],
        json!("next")
    );
    // A single part over the bound is cut at once.
    assert_eq!(
        event(&mut p, "2026-11-21T09:34:45Z stderr P 0123456789ABC"),
        json!({"timestamp": "2026-11-21T09:34:45Z", "stream": "stderr",
               "message": "0123456789", "truncated": true})
    );
    pending(&mut p, "2026-11-21T09:34:46Z stderr F rest");
    // An F line that overflows what is held ends the message: truncated, nothing dropped.
    pending(&mut p, "2026-11-21T09:34:47Z stdout P 1234567");
    assert_eq!(
        event(&mut p, "2026-11-21T09:34:48Z stdout F 89ABCDEF")["message"],
        json!("123456789A")
    );
    assert_eq!(
        event(&mut p, "2026-11-21T09:34:49Z stdout F after")["message"],
        json!("after")
    );
    // An F line alone is never cut: only held bytes are bounded.
    assert_eq!(
        event(&mut p, "2026-11-21T09:34:50Z stdout F 0123456789ABCDEF")["message"],
        json!("0123456789ABCDEF")
    );
}

#[test]
fn cuts_do_not_split_utf8_sequences() {
    let mut p = CriParser::new(5);
    // "abcd" + "é" (2 bytes) is 6 bytes: the é is dropped whole.
    assert_eq!(
        event(&mut p, "2026-11-21T09:34:39Z stdout P abcdé")["message"],
        json!("abcd")
    );
    pending(&mut p, "2026-11-21T09:34:39Z stdout F");
    pending(&mut p, "2026-11-21T09:34:39Z stdout P ab");
    // "ab" + "c€" (1 + 3 bytes) is 6 bytes: the € is dropped whole.
    assert_eq!(
        event(&mut p, "2026-11-21T09:34:39Z stdout F c€")["message"],
        json!("abc")
    );
    // A sequence that ends exactly at the bound is kept.
    let mut p = CriParser::new(6);
    assert_eq!(
        event(&mut p, "2026-11-21T09:34:39Z stdout P abc€x")["message"],
        json!("abc€")
    );
}

#[test]
fn flush_writes_held_parts() {
    let mut p = CriParser::default();
    let mut sink = RecordingSink::new();
    assert!(!p.flush(&mut sink));
    pending(&mut p, "2026-11-21T09:34:39Z stderr P held ");
    pending(&mut p, "2026-11-21T09:34:40Z stderr P parts");
    assert!(p.flush(&mut sink));
    assert_eq!(
        sink.into_json(),
        json!({"timestamp": "2026-11-21T09:34:39Z", "stream": "stderr",
               "message": "held parts"})
    );
    assert!(!p.has_pending());
    assert!(!p.flush(&mut RecordingSink::new()));
}

#[test]
fn malformed_cri_lines_say_why() {
    let cases: &[(&str, ParseError)] = &[
        ("", E_TIME),
        ("hello world", E_TIME),
        ("2016-10-06 stdout F x", E_TIME),
        ("2016-10-06T00:17:09 stdout F x", E_TIME),
        ("2016-10-06T00:17:09.Z stdout F x", E_TIME),
        ("2016-13-06T00:17:09Z stdout F x", E_TIME),
        ("2016-10-06T00:17:09+0200 stdout F x", E_TIME),
        ("2016-10-06T00:17:09Zstdout F x", E_TIME),
        ("2016-10-06T00:17:09Z stdin F x", E_STREAM),
        ("2016-10-06T00:17:09Z stdout", E_STREAM),
        ("2016-10-06T00:17:09Z  stdout F x", E_STREAM),
        ("2016-10-06T00:17:09Z stdout X msg", E_TAG),
        ("2016-10-06T00:17:09Z stdout  msg", E_TAG),
        ("2016-10-06T00:17:09Z stdout Full msg", E_TAG),
    ];
    for (line, want) in cases {
        let mut p = CriParser::default();
        assert_eq!(parse_to_json(&mut p, line.as_bytes()), Err(*want), "{line}");
    }
}

fn docker(line: &str) -> Value {
    match parse_to_json(&mut DockerParser::new(), line.as_bytes()) {
        Ok(Some(v)) => v,
        other => panic!("{line:?} -> {other:?}"),
    }
}

#[test]
fn realistic_docker_lines() {
    let cases: Vec<(&str, Value)> = vec![
        (
            r#"{"log":"msg\n","stream":"stdout","time":"2026-11-21T09:34:39.123456789Z"}"#,
            json!({"message": "msg", "stream": "stdout",
                   "timestamp": "2026-11-21T09:34:39.123456789Z"}),
        ),
        (
            r#"{"log":"Listening on port 8080\n","stream":"stderr","time":"2026-11-21T09:34:39.5Z"}"#,
            json!({"message": "Listening on port 8080", "stream": "stderr",
                   "timestamp": "2026-11-21T09:34:39.500Z"}),
        ),
        (
            r#"{"log":"{\"level\":\"info\",\"msg\":\"ready\"}\n","stream":"stdout","time":"2026-11-21T09:34:39Z"}"#,
            json!({"message": r#"{"level":"info","msg":"ready"}"#, "stream": "stdout",
                   "timestamp": "2026-11-21T09:34:39Z"}),
        ),
        (
            // A windows line end, tabs and unicode escapes.
            r#"{"log":"col1\tcol2 \u00e9\u20ac\r\n","stream":"stdout","time":"2026-11-21T09:34:39Z"}"#,
            json!({"message": "col1\tcol2 é€", "stream": "stdout",
                   "timestamp": "2026-11-21T09:34:39Z"}),
        ),
        (
            // No trailing newline: a part of a line longer than 16 KiB, kept as it is.
            r#"{"log":"partial","stream":"stdout","time":"2026-11-21T09:34:39Z"}"#,
            json!({"message": "partial", "stream": "stdout",
                   "timestamp": "2026-11-21T09:34:39Z"}),
        ),
        (
            // An escaped backslash before `n` is not a newline.
            r#"{"log":"ends with \\n","stream":"stdout","time":"2026-11-21T09:34:39Z"}"#,
            json!({"message": "ends with \\n", "stream": "stdout",
                   "timestamp": "2026-11-21T09:34:39Z"}),
        ),
        (
            // Only one trailing newline is dropped.
            r#"{"log":"two\n\n","stream":"stdout","time":"2026-11-21T09:34:39Z"}"#,
            json!({"message": "two\n", "stream": "stdout",
                   "timestamp": "2026-11-21T09:34:39Z"}),
        ),
        (
            // Other members (docker's `attrs` with labels) are skipped, in any order.
            r#"{"attrs":{"tag":"web","labels":["a","b}"],"n":1.5e3,"ok":true,"none":null},"time":"2026-11-21T09:34:39Z","log":"x\n","stream":"stdout"}"#,
            json!({"message": "x", "stream": "stdout", "timestamp": "2026-11-21T09:34:39Z"}),
        ),
        (
            " { \"log\" : \"spaced\\n\" , \"stream\" : \"stderr\" } \n",
            json!({"message": "spaced", "stream": "stderr"}),
        ),
        (
            r#"{"log":"","stream":"stdout","time":"2026-11-21T10:34:39+01:00"}"#,
            json!({"message": "", "stream": "stdout", "timestamp": "2026-11-21T09:34:39Z"}),
        ),
        (
            r#"{"log":"\n","stream":"stdout","time":"2026-11-21T09:34:39Z","extra":[1,[2,{"x":"]"}]]}"#,
            json!({"message": "", "stream": "stdout", "timestamp": "2026-11-21T09:34:39Z"}),
        ),
    ];
    for (line, want) in cases {
        assert_eq!(docker(line), want, "{line}");
    }
}

#[test]
fn malformed_docker_lines_say_why() {
    let cases: &[(&str, ParseError)] = &[
        ("", E_DOCKER_JSON),
        ("log: x", E_DOCKER_JSON),
        ("[]", E_DOCKER_JSON),
        ("{}", E_DOCKER_LOG),
        (r#"{"log":null}"#, E_DOCKER_LOG),
        (r#"{"log":"x"} trailing"#, E_DOCKER_JSON),
        (r#"{"log":"x""#, E_DOCKER_JSON),
        (r#"{"log":"x",}"#, E_DOCKER_JSON),
        (r#"{"log" "x"}"#, E_DOCKER_JSON),
        (r#"{"log":"x"#, E_DOCKER_STRING),
        (r#"{"log":"bad \q escape"}"#, E_DOCKER_STRING),
        (r#"{"log":"bad \u12 escape"}"#, E_DOCKER_STRING),
        ("{\"log\":\"raw\ttab\"}", E_DOCKER_STRING),
        (r#"{"log":"x","time":"yesterday"}"#, E_DOCKER_TIME),
        (
            r#"{"log":"x","time":"2026-11-21T09:34:39Zjunk"}"#,
            E_DOCKER_TIME,
        ),
        (r#"{"log":"x","attrs":{"a":1"#, E_DOCKER_JSON),
    ];
    for (line, want) in cases {
        assert_eq!(
            parse_to_json(&mut DockerParser::new(), line.as_bytes()),
            Err(*want),
            "{line}"
        );
    }
}

#[test]
fn every_truncation_parses_or_errs() {
    let mut p = CriParser::new(16);
    let mut d = DockerParser::new();
    let cri_line = "2026-11-21T09:34:39.123456789+01:00 stdout P part of a longer line é";
    let docker_line = r#"{"log":"a \"quoted\" \u00e9 line\n","attrs":{"x":[1,"]"]},"stream":"stdout","time":"2026-11-21T09:34:39.123456789Z"}"#;
    for end in 0..=cri_line.len() {
        let _ = p.parse(&cri_line.as_bytes()[..end], &mut RecordingSink::new());
    }
    for end in 0..docker_line.len() {
        let got = d.parse(&docker_line.as_bytes()[..end], &mut RecordingSink::new());
        assert!(got.is_err(), "{end}");
    }
    assert!(d
        .parse(docker_line.as_bytes(), &mut RecordingSink::new())
        .is_ok());
}

/// Records raw `str` values.
#[derive(Default)]
struct RawMessage(Option<Vec<u8>>);

impl FieldSink for RawMessage {
    fn str(&mut self, key: &[u8], value: &[u8]) {
        if key == b"message" {
            self.0 = Some(value.to_vec());
        }
    }
    fn str_json_escaped(&mut self, key: &[u8], value: &[u8]) {
        self.str(key, value)
    }
    fn int(&mut self, _: &[u8], _: i64) {}
    fn float(&mut self, _: &[u8], _: f64) {}
    fn bool(&mut self, _: &[u8], _: bool) {}
    fn null(&mut self, _: &[u8]) {}
    fn timestamp(&mut self, _: &[u8], _: Timestamp) {}
    fn begin_object(&mut self, _: &[u8]) {}
    fn end_object(&mut self) {}
}

#[test]
fn invalid_utf8_and_one_mebibyte_messages() {
    let mut p = CriParser::default();
    let mut sink = RawMessage::default();
    p.parse(b"2026-11-21T09:34:39Z stdout F \xff\xfe bytes", &mut sink)
        .unwrap();
    assert_eq!(sink.0.as_deref(), Some(&b"\xff\xfe bytes"[..]));
    let mut sink = RawMessage::default();
    DockerParser::new()
        .parse(
            b"{\"log\":\"\xc3\x28\\n\",\"stream\":\"stdout\"}",
            &mut sink,
        )
        .unwrap();
    assert_eq!(sink.0.as_deref(), Some(&b"\xc3\x28"[..]));

    // A mebibyte in one F line, in two P parts plus F (held exactly at the bound), and
    // over the bound.
    let half = "h".repeat(1 << 19);
    let v = cri(&format!("2026-11-21T09:34:39Z stdout F {half}{half}"));
    assert_eq!(v["message"].as_str().map(str::len), Some(1 << 20));
    let mut p = CriParser::default();
    pending(&mut p, &format!("2026-11-21T09:34:39Z stdout P {half}"));
    pending(&mut p, &format!("2026-11-21T09:34:39Z stdout P {half}"));
    let v = event(&mut p, "2026-11-21T09:34:39Z stdout F ");
    assert_eq!(v["message"].as_str().map(str::len), Some(1 << 20));
    assert_eq!(v.get("truncated"), None);
    pending(&mut p, &format!("2026-11-21T09:34:39Z stdout P {half}"));
    pending(&mut p, &format!("2026-11-21T09:34:39Z stdout P {half}"));
    let v = event(&mut p, "2026-11-21T09:34:39Z stdout F !");
    assert_eq!(v["message"].as_str().map(str::len), Some(1 << 20));
    assert_eq!(v["truncated"], json!(true));

    let big = "d".repeat(1 << 20);
    let v = docker(&format!(r#"{{"log":"{big}\n","stream":"stdout"}}"#));
    assert_eq!(v["message"].as_str().map(str::len), Some(1 << 20));
}

prop_compose! {
    fn cri_line()(
        stream in prop::sample::select(vec!["stdout", "stderr"]),
        partial in any::<bool>(),
        nanos in 0u32..1_000_000_000,
        message in "[ -~é]{0,24}",
    ) -> (String, &'static str, bool, String) {
        let line = format!(
            "2026-11-21T09:34:39.{nanos:09}Z {stream} {} {message}",
            if partial { "P" } else { "F" }
        );
        (line, stream, partial, message)
    }
}

proptest! {
    /// A model of the joining: every event's message is the concatenation of the parts of
    /// its stream since the last event (bounded at 40 bytes, with `truncated`).
    #[test]
    fn joining_matches_a_model(lines in proptest::collection::vec(cri_line(), 0..40)) {
        const MAX: usize = 40;
        let mut p = CriParser::new(MAX);
        let mut held: [Option<String>; 2] = [None, None];
        let mut dropping = [false, false];
        for (line, stream, partial, message) in lines {
            let s = (stream == "stderr") as usize;
            let got = parse_to_json(&mut p, line.as_bytes()).unwrap();
            if dropping[s] {
                prop_assert_eq!(got, None);
                dropping[s] = partial;
                continue;
            }
            let joined = format!("{}{message}", held[s].as_deref().unwrap_or(""));
            if joined.len() > MAX {
                let v = got.expect("an event");
                let mut cut = MAX;
                while !joined.is_char_boundary(cut) {
                    cut -= 1;
                }
                prop_assert_eq!(v["message"].as_str(), Some(&joined[..cut]));
                prop_assert_eq!(&v["truncated"], &json!(true));
                held[s] = None;
                dropping[s] = partial;
            } else if partial {
                prop_assert_eq!(got, None);
                held[s] = Some(joined);
            } else {
                let v = got.expect("an event");
                prop_assert_eq!(v["message"].as_str(), Some(&joined[..]));
                prop_assert_eq!(v.get("truncated"), None);
                held[s] = None;
            }
        }
    }

    #[test]
    fn random_bytes_never_panic(lines in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..120), 0..8)) {
        let mut p = CriParser::new(64);
        let mut d = DockerParser::new();
        for line in &lines {
            let _ = p.parse(line, &mut RecordingSink::new());
            let _ = d.parse(line, &mut RecordingSink::new());
        }
        while p.flush(&mut RecordingSink::new()) {}
    }

    #[test]
    fn docker_like_text_never_panics(
        text in proptest::collection::vec(prop::sample::select(b"{}[]\":,\\ unlogstrmie0123".to_vec()), 0..120)
    ) {
        let mut prefixed = br#"{"log":"#.to_vec();
        prefixed.extend_from_slice(&text);
        let _ = DockerParser::new().parse(&text, &mut RecordingSink::new());
        let _ = DockerParser::new().parse(&prefixed, &mut RecordingSink::new());
    }
}

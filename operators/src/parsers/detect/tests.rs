use super::*;
use crate::parsers::cri::CriParser;
use crate::parsers::logfmt::LogfmtParser;
use crate::parsers::sink::{LineParser, RecordingSink};
use proptest::prelude::*;
use std::path::PathBuf;
use DetectedFormat::*;

/// `lines` lines of the bench generator in `format` (`/work/shared` or `../shared` beside
/// the repository).
fn generated(format: &str, lines: usize) -> Vec<u8> {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let script = [
        repo.join("../../shared/bench/gen_logs.py"),
        PathBuf::from("/work/shared/bench/gen_logs.py"),
    ]
    .into_iter()
    .find(|p| p.exists())
    .expect("gen_logs.py not found (shared/bench beside the repository)");
    let out = std::process::Command::new("python3")
        .arg(&script)
        .args([
            "--format",
            format,
            "--lines",
            &lines.to_string(),
            "--seed",
            "7",
        ])
        .output()
        .expect("run python3");
    assert!(out.status.success(), "gen_logs.py failed: {out:?}");
    out.stdout
}

#[test]
fn labels_every_generated_line() {
    for (format, want) in [
        ("json", Json),
        ("syslog", Syslog5424),
        ("apache", ApacheCombined),
    ] {
        let data = generated(format, 2000);
        let lines: Vec<&[u8]> = data
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .collect();
        assert_eq!(lines.len(), 2000, "{format}");
        for line in lines {
            assert_eq!(
                detect_format(line),
                want,
                "{format}: {}",
                String::from_utf8_lossy(line)
            );
        }
    }
}

#[test]
fn labels_hand_written_lines() {
    let cases: &[(&str, DetectedFormat)] = &[
        // JSON, also after blanks and a byte order mark.
        (r#"{"level":"info","msg":"x"}"#, Json),
        ("  \t{}", Json),
        ("\u{feff}{\"a\":1}", Json),
        // RFC 5424 (the RFC's examples).
        ("<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - BOM'su root' failed for lonvick on /dev/pts/8", Syslog5424),
        ("<165>1 2003-08-24T05:14:15.000003-07:00 192.0.2.1 myproc 8710 - - %% It's time to make the do-nuts.", Syslog5424),
        ("<0>1 - - - - - -", Syslog5424),
        // RFC 3164.
        ("<34>Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick on /dev/pts/8", Syslog3164),
        ("<13>Feb  5 17:32:18 10.0.0.99 Use the BFG!", Syslog3164),
        ("<30>2026-11-21T09:34:39.123+01:00 host app[12]: iso dated", Syslog3164),
        ("Nov 21 09:34:39 web-1 sshd[811]: Accepted publickey for deploy", Syslog3164),
        ("Nov  1 09:34:39 web-1 kernel: [ 0.000000] Linux version 6.1", Syslog3164),
        // Not syslog: bad PRI.
        ("<192>1 2003-10-11T22:14:15Z h a - - - x", Plain),
        ("<>1 x", Plain),
        ("<1234>1 x", Plain),
        ("<html><body>", Plain),
        // CRI.
        ("2016-10-06T00:17:09.669794202Z stdout F log content 1", Cri),
        ("2016-10-06T00:17:09.669794202Z stderr P part", Cri),
        ("2026-11-21T10:34:39+01:00 stdout F", Cri),
        ("2026-11-21T10:34:39Z stdout F:x tagged", Cri),
        ("2026-11-21T10:34:39Z stdout Full", Plain),
        // Apache / nginx access.
        (r#"127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 2326 "http://www.example.com/start.html" "Mozilla/4.08 [en] (Win98; I ;Nav)""#, ApacheCombined),
        (r#"127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 2326"#, ApacheCommon),
        ("2001:db8::1 - - [21/Nov/2026:09:34:39 +0100] \"HEAD / HTTP/2.0\" 304 - \"-\" \"curl/8.5.0\"\r\n", ApacheCombined),
        ("host.example.org ident42 alice [01/Jan/2024:00:00:00 +0000] \"GET / HTTP/1.1\" 200 -", ApacheCommon),
        // logfmt.
        (r#"level=info msg="request done" method=GET status=200"#, Logfmt),
        (r#"ts=2026-11-21T09:34:39.123Z caller=main.go:1129 level=info msg="Server is ready to receive web requests.""#, Logfmt),
        ("at=info method=GET path=/ host=myapp.herokuapp.com dyno=web.1 connect=1ms", Logfmt),
        ("a=1 b=2", Logfmt),
        ("debug a=1 b=\"x y z w\"", Logfmt),
        // Plain.
        ("", Plain),
        ("hello world", Plain),
        ("a=1", Plain),
        ("user logged in from host x with id=5 and ip=1.2.3.4", Plain),
        ("[2026-11-21 09:34:39,123] INFO Starting server (kafka.Kafka$)", Plain),
        ("Exception in thread \"main\" java.lang.NullPointerException", Plain),
        ("\tat com.example.Main.main(Main.java:12)", Plain),
        // Only JSON may be indented.
        (" 2016-10-06T00:17:09.669794202Z stdout F indented", Plain),
        ("  <34>1 2003-10-11T22:14:15.003Z host su - ID47 - x", Plain),
        ("2026-11-21 09:34:39 ERROR something broke", Plain),
        ("--flag=1 --other=2", Plain),
    ];
    for (line, want) in cases {
        assert_eq!(detect_format(line.as_bytes()), *want, "{line:?}");
    }
}

#[test]
fn looks_at_the_first_four_kibibytes_only() {
    let mut line = "x ".repeat(SCAN_LIMIT);
    line.push_str("a=1 b=2 c=3");
    assert_eq!(detect_format(line.as_bytes()), Plain);
    let big = format!("a=1 b=2 msg={}", "m".repeat(1 << 20));
    assert_eq!(detect_format(big.as_bytes()), Logfmt);
    assert_eq!(detect_format(&[0xff; 1 << 20]), Plain);
}

proptest! {
    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = detect_format(&bytes);
    }

    /// What is labelled logfmt or CRI parses with that parser.
    #[test]
    fn labels_agree_with_the_parsers(
        text in proptest::collection::vec(prop::sample::select(b"ab=\" \\\t-.".to_vec()), 0..60),
        cri_tail in "(stdout|stderr|stdin) (P|F|X)[ :]?[a-z ]{0,8}",
        cri_head in "[ \t]{0,1}",
    ) {
        if detect_format(&text) == Logfmt {
            prop_assert!(LogfmtParser::new().parse(&text, &mut RecordingSink::new()).is_ok());
        }
        let cri_line = format!("{cri_head}2026-11-21T09:34:39.5Z {cri_tail}");
        let parsed = CriParser::default().parse(cri_line.as_bytes(), &mut RecordingSink::new());
        prop_assert_eq!(detect_format(cri_line.as_bytes()) == Cri, parsed.is_ok());
    }
}

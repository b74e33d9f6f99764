use super::*;
use crate::parsers::sink::{parse_to_json, RecordingSink};
use proptest::prelude::*;
use serde_json::{json, Value};

fn parse_with(format: ApacheFormat, line: &[u8]) -> Value {
    let mut p = ApacheParser::new(format);
    match parse_to_json(&mut p, line) {
        Ok(Some(v)) => v,
        other => panic!("{:?} -> {other:?}", String::from_utf8_lossy(line)),
    }
}

fn parse(line: &str) -> Value {
    parse_with(ApacheFormat::Auto, line.as_bytes())
}

fn error_of(format: ApacheFormat, line: &str) -> &'static str {
    let mut p = ApacheParser::new(format);
    match parse_to_json(&mut p, line.as_bytes()) {
        Err(e) => e.reason,
        Ok(v) => panic!("{line:?} parsed: {v:?}"),
    }
}

fn nginx_error(line: &str) -> Value {
    let mut p = NginxParser::new(NginxFormat::Error);
    match parse_to_json(&mut p, line.as_bytes()) {
        Ok(Some(v)) => v,
        other => panic!("{line:?} -> {other:?}"),
    }
}

const DOCS_COMBINED: &str = r#"127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 2326 "http://www.example.com/start.html" "Mozilla/4.08 [en] (Win98; I ;Nav)""#;
const DOCS_COMMON: &str =
    r#"127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 2326"#;

#[test]
fn apache_docs_examples() {
    let docs_fields = json!({
        "client": "127.0.0.1", "user": "frank", "timestamp": "2000-10-10T20:55:36Z",
        "method": "GET", "path": "/apache_pb.gif", "protocol": "HTTP/1.0",
        "status": 200, "size": 2326,
    });
    assert_eq!(parse(DOCS_COMMON), docs_fields);
    assert_eq!(
        parse_with(ApacheFormat::Common, DOCS_COMMON.as_bytes()),
        docs_fields
    );
    // Common on a combined line ignores what follows the size.
    assert_eq!(
        parse_with(ApacheFormat::Common, DOCS_COMBINED.as_bytes()),
        docs_fields
    );
    let mut combined = docs_fields.clone();
    combined["referrer"] = json!("http://www.example.com/start.html");
    combined["agent"] = json!("Mozilla/4.08 [en] (Win98; I ;Nav)");
    assert_eq!(parse(DOCS_COMBINED), combined);
    assert_eq!(
        parse_with(ApacheFormat::Combined, DOCS_COMBINED.as_bytes()),
        combined
    );
    // nginx's combined is the same layout.
    let mut nginx = NginxParser::new(NginxFormat::Combined);
    assert_eq!(
        parse_to_json(&mut nginx, DOCS_COMBINED.as_bytes()).unwrap(),
        Some(combined)
    );
}

#[test]
fn realistic_access_lines() {
    let cases: Vec<(&str, Value)> = vec![
        (
            r#"10.216.14.136 - user1276 [20/Nov/2026:12:00:00 +0000] "PUT /api/v1/items/12303 HTTP/1.1" 201 14528 "https://www.google.com/" "okhttp/4.12.0""#,
            json!({"client": "10.216.14.136", "user": "user1276",
                   "timestamp": "2026-11-20T12:00:00Z", "method": "PUT",
                   "path": "/api/v1/items/12303", "protocol": "HTTP/1.1", "status": 201,
                   "size": 14528, "referrer": "https://www.google.com/",
                   "agent": "okhttp/4.12.0"}),
        ),
        (
            r#"10.187.191.23 - user44607 [20/Nov/2026:12:00:00 +0000] "GET /api/v1/carts/82491 HTTP/1.1" 200 28767 "-" "python-requests/2.32.3""#,
            json!({"client": "10.187.191.23", "user": "user44607",
                   "timestamp": "2026-11-20T12:00:00Z", "method": "GET",
                   "path": "/api/v1/carts/82491", "protocol": "HTTP/1.1", "status": 200,
                   "size": 28767, "agent": "python-requests/2.32.3"}),
        ),
        (
            r#"2001:db8::1 - - [21/Nov/2026:09:34:39 +0100] "HEAD / HTTP/2.0" 304 - "-" "curl/8.5.0""#,
            json!({"client": "2001:db8::1", "timestamp": "2026-11-21T08:34:39Z",
                   "method": "HEAD", "path": "/", "protocol": "HTTP/2.0", "status": 304,
                   "agent": "curl/8.5.0"}),
        ),
        (
            // A TLS handshake sent to a plain HTTP port, as nginx logs it.
            r#"192.0.2.7 - - [21/Nov/2026:09:34:39 +0000] "\x16\x03\x01\x02\x00\x01\x00\x01\xFC\x03\x03" 400 157 "-" "-""#,
            json!({"client": "192.0.2.7", "timestamp": "2026-11-21T09:34:39Z",
                   "request": r"\x16\x03\x01\x02\x00\x01\x00\x01\xFC\x03\x03",
                   "status": 400, "size": 157}),
        ),
        (
            // A connection closed before any request line (408).
            r#"198.51.100.4 - - [21/Nov/2026:09:34:39 +0000] "-" 408 0 "-" "-""#,
            json!({"client": "198.51.100.4", "timestamp": "2026-11-21T09:34:39Z",
                   "request": "-", "status": 408, "size": 0}),
        ),
        (
            r#"10.0.0.1 - - [21/Nov/2026:09:34:39 +0000] "GET /search?q=\"x\" HTTP/1.1" 200 12 "-" "Mozilla \"quoted\" \\ agent""#,
            json!({"client": "10.0.0.1", "timestamp": "2026-11-21T09:34:39Z",
                   "method": "GET", "path": "/search?q=\"x\"", "protocol": "HTTP/1.1",
                   "status": 200, "size": 12, "agent": "Mozilla \"quoted\" \\ agent"}),
        ),
        (
            r#"host.example.org ident42 alice [01/Jan/2024:00:00:00 +0000] "POST /login HTTP/1.1" 302 0 "https://example.org/" "Mozilla/5.0""#,
            json!({"client": "host.example.org", "ident": "ident42", "user": "alice",
                   "timestamp": "2024-01-01T00:00:00Z", "method": "POST", "path": "/login",
                   "protocol": "HTTP/1.1", "status": 302, "size": 0,
                   "referrer": "https://example.org/", "agent": "Mozilla/5.0"}),
        ),
        (
            // HTTP/0.9 has no protocol; leap day; "-0000".
            r#"10.1.1.1 - - [29/Feb/2024:23:59:59 -0000] "GET /" 200 5"#,
            json!({"client": "10.1.1.1", "timestamp": "2024-02-29T23:59:59Z",
                   "method": "GET", "path": "/", "status": 200, "size": 5}),
        ),
        (
            // A millisecond fraction (`%{msec_frac}t` layouts).
            r#"10.1.1.2 - - [10/Oct/2000:13:55:36.250 -0700] "DELETE /x HTTP/1.1" 204 -"#,
            json!({"client": "10.1.1.2", "timestamp": "2000-10-10T20:55:36.250Z",
                   "method": "DELETE", "path": "/x", "protocol": "HTTP/1.1", "status": 204}),
        ),
        (
            // nginx `main`: an extra quoted field after the agent is ignored.
            r#"203.0.113.9 - - [21/Nov/2026:09:34:39 +0000] "CONNECT example.com:443 HTTP/1.1" 200 0 "-" "curl/8.5.0" "198.51.100.1""#,
            json!({"client": "203.0.113.9", "timestamp": "2026-11-21T09:34:39Z",
                   "method": "CONNECT", "path": "example.com:443", "protocol": "HTTP/1.1",
                   "status": 200, "size": 0, "agent": "curl/8.5.0"}),
        ),
        (
            r#"10.9.8.7 - - [05/Jun/2025:07:08:09 +0530] "PROPFIND /dav/ HTTP/1.1" 207 1234 "-" "WebDAVFS/3.0""#,
            json!({"client": "10.9.8.7", "timestamp": "2025-06-05T01:38:09Z",
                   "method": "PROPFIND", "path": "/dav/", "protocol": "HTTP/1.1",
                   "status": 207, "size": 1234, "agent": "WebDAVFS/3.0"}),
        ),
        (
            // A request with a space in the path is not split; trailing CRLF is ignored.
            "10.9.8.6 - - [05/Jun/2025:07:08:09 +0000] \"GET /a b HTTP/1.1\" 400 0\r\n",
            json!({"client": "10.9.8.6", "timestamp": "2025-06-05T07:08:09Z",
                   "request": "GET /a b HTTP/1.1", "status": 400, "size": 0}),
        ),
        (
            // An empty request is kept as an empty string.
            r#"10.9.8.5 - - [05/Jun/2025:07:08:09 +0000] "" 400 0 "-" "-""#,
            json!({"client": "10.9.8.5", "timestamp": "2025-06-05T07:08:09Z",
                   "request": "", "status": 400, "size": 0}),
        ),
    ];
    for (line, want) in cases {
        assert_eq!(parse(line), want, "{line}");
    }
}

#[test]
fn combined_requires_referrer_and_agent() {
    assert_eq!(
        error_of(ApacheFormat::Combined, DOCS_COMMON),
        E_COMBINED.reason
    );
    let mut nginx = NginxParser::new(NginxFormat::Combined);
    assert_eq!(
        parse_to_json(&mut nginx, DOCS_COMMON.as_bytes()),
        Err(E_COMBINED)
    );
}

#[test]
fn malformed_access_lines_say_why() {
    let auto = ApacheFormat::Auto;
    let cases: &[(&str, ParseError)] = &[
        ("", E_CLIENT),
        ("garbage", E_CLIENT),
        (
            " - - [10/Oct/2000:13:55:36 -0700] \"GET / HTTP/1.0\" 200 1",
            E_CLIENT,
        ),
        ("1.2.3.4 -", E_IDENT),
        (
            "1.2.3.4 - - 10/Oct/2000:13:55:36 -0700 \"GET /\" 200 1",
            E_TIME_OPEN,
        ),
        (
            "1.2.3.4 - -[10/Oct/2000:13:55:36 -0700] \"GET /\" 200 1",
            E_TIME_OPEN,
        ),
        (
            "1.2.3.4 - - [10/Oct/2000:13:55:36 -0700 \"GET /\" 200 1",
            E_TIME_CLOSE,
        ),
        (
            "1.2.3.4 - - [32/Oct/2000:13:55:36 -0700] \"GET /\" 200 1",
            E_TIME,
        ),
        (
            "1.2.3.4 - - [10/Foo/2000:13:55:36 -0700] \"GET /\" 200 1",
            E_TIME,
        ),
        ("1.2.3.4 - - [10/Oct/2000:13:55:36] \"GET /\" 200 1", E_TIME),
        (
            "1.2.3.4 - - [10/Oct/2000:25:55:36 -0700] \"GET /\" 200 1",
            E_TIME,
        ),
        (
            "1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] GET / 200 1",
            E_REQUEST,
        ),
        (
            "1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] \"GET / 200 1",
            E_UNTERMINATED,
        ),
        (
            "1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] \"GET /\" abc 1",
            E_STATUS,
        ),
        (
            "1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] \"GET /\" 200",
            E_SIZE,
        ),
        (
            "1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] \"GET /\" 200 12x",
            E_SIZE,
        ),
        (
            "1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] \"GET /\" 200 1 junk",
            E_COMBINED,
        ),
        (
            "1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] \"GET /\" 200 1 \"ref\"",
            E_COMBINED,
        ),
        (
            "1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] \"GET /\" 200 1 \"ref\" \"ag",
            E_UNTERMINATED,
        ),
    ];
    for (line, want) in cases {
        assert_eq!(error_of(auto, line), want.reason, "{line}");
    }
}

#[test]
fn nginx_error_lines() {
    let cases: Vec<(&str, Value)> = vec![
        (
            r#"2026/11/21 09:34:39 [error] 1234#5678: *99 message, client: 1.2.3.4, server: x, request: "GET / HTTP/1.1", host: "h""#,
            json!({"timestamp": "2026-11-21T09:34:39Z", "severity": "error", "level": "error",
                   "pid": 1234, "tid": 5678, "cid": 99, "message": "message",
                   "client": "1.2.3.4", "server": "x", "request": "GET / HTTP/1.1",
                   "host": "h"}),
        ),
        (
            r#"2026/11/21 09:34:40 [error] 31#31: *7 upstream timed out (110: Connection timed out) while reading response header from upstream, client: 10.0.0.5, server: api.example.com, request: "POST /v1/orders HTTP/1.1", upstream: "http://10.1.0.7:8080/v1/orders", host: "api.example.com", referrer: "https://shop.example.com/cart""#,
            json!({"timestamp": "2026-11-21T09:34:40Z", "severity": "error", "level": "error",
                   "pid": 31, "tid": 31, "cid": 7,
                   "message": "upstream timed out (110: Connection timed out) while reading response header from upstream",
                   "client": "10.0.0.5", "server": "api.example.com",
                   "request": "POST /v1/orders HTTP/1.1",
                   "upstream": "http://10.1.0.7:8080/v1/orders", "host": "api.example.com",
                   "referrer": "https://shop.example.com/cart"}),
        ),
        (
            r#"2026/11/21 09:34:41 [emerg] 1#1: bind() to 0.0.0.0:80 failed (98: Address already in use)"#,
            json!({"timestamp": "2026-11-21T09:34:41Z", "severity": "emerg", "level": "fatal",
                   "pid": 1, "tid": 1,
                   "message": "bind() to 0.0.0.0:80 failed (98: Address already in use)"}),
        ),
        (
            r#"2026/11/21 09:34:42 [notice] 1#1: signal process started"#,
            json!({"timestamp": "2026-11-21T09:34:42Z", "severity": "notice", "level": "info",
                   "pid": 1, "tid": 1, "message": "signal process started"}),
        ),
        (
            r#"2026/11/21 09:34:43 [warn] 12#12: *3 an upstream response is buffered to a temporary file /var/cache/nginx/proxy_temp/1/00/0000000001 while reading upstream, client: 192.0.2.1, server: , request: "GET /big HTTP/1.1", upstream: "http://127.0.0.1:9000/big", host: "localhost:8080""#,
            json!({"timestamp": "2026-11-21T09:34:43Z", "severity": "warn", "level": "warn",
                   "pid": 12, "tid": 12, "cid": 3,
                   "message": "an upstream response is buffered to a temporary file /var/cache/nginx/proxy_temp/1/00/0000000001 while reading upstream",
                   "client": "192.0.2.1", "server": "", "request": "GET /big HTTP/1.1",
                   "upstream": "http://127.0.0.1:9000/big", "host": "localhost:8080"}),
        ),
        (
            r#"2026/11/21 09:34:44 [crit] 7#9: *1 SSL_do_handshake() failed (SSL: error:0A00006C:SSL routines::bad key share) while SSL handshaking, client: 198.51.100.8, server: 0.0.0.0:443"#,
            json!({"timestamp": "2026-11-21T09:34:44Z", "severity": "crit", "level": "fatal",
                   "pid": 7, "tid": 9, "cid": 1,
                   "message": "SSL_do_handshake() failed (SSL: error:0A00006C:SSL routines::bad key share) while SSL handshaking",
                   "client": "198.51.100.8", "server": "0.0.0.0:443"}),
        ),
        (
            r#"2026/11/21 09:34:45 [info] 8#8: *12 client 10.0.0.9 closed keepalive connection"#,
            json!({"timestamp": "2026-11-21T09:34:45Z", "severity": "info", "level": "info",
                   "pid": 8, "tid": 8, "cid": 12,
                   "message": "client 10.0.0.9 closed keepalive connection"}),
        ),
        (
            r#"2026/11/21 09:34:46 [debug] 8#8: *12 http header: "Host: x""#,
            json!({"timestamp": "2026-11-21T09:34:46Z", "severity": "debug", "level": "debug",
                   "pid": 8, "tid": 8, "cid": 12, "message": "http header: \"Host: x\""}),
        ),
        (
            r#"2026/11/21 09:34:47 [alert] 3#3: worker process 44 exited on signal 9"#,
            json!({"timestamp": "2026-11-21T09:34:47Z", "severity": "alert", "level": "fatal",
                   "pid": 3, "tid": 3, "message": "worker process 44 exited on signal 9"}),
        ),
        (
            // A request holding a quote, and a context key nginx does not write (kept in
            // the message, as is everything after an unknown key).
            r#"2026/11/21 09:34:48 [error] 5#5: *2 open() "/srv/a\"b" failed (2: No such file or directory), client: 10.0.0.1, server: s, request: "GET /a"b HTTP/1.1", host: "s""#,
            json!({"timestamp": "2026-11-21T09:34:48Z", "severity": "error", "level": "error",
                   "pid": 5, "tid": 5, "cid": 2,
                   "message": "open() \"/srv/a\\\"b\" failed (2: No such file or directory)",
                   "client": "10.0.0.1", "server": "s", "request": "GET /a\"b HTTP/1.1",
                   "host": "s"}),
        ),
        (
            r#"2026/11/21 09:34:49 [error] 5#5: *2 oops, client: 10.0.0.1, port: 25"#,
            json!({"timestamp": "2026-11-21T09:34:49Z", "severity": "error", "level": "error",
                   "pid": 5, "tid": 5, "cid": 2,
                   "message": "oops, client: 10.0.0.1, port: 25"}),
        ),
        (
            // An unknown severity is kept; no level is guessed.
            "2026/11/21 09:34:50 [weird] 5#5: *x not a cid\n",
            json!({"timestamp": "2026-11-21T09:34:50Z", "severity": "weird",
                   "pid": 5, "tid": 5, "message": "*x not a cid"}),
        ),
    ];
    for (line, want) in cases {
        assert_eq!(nginx_error(line), want, "{line}");
    }
}

#[test]
fn malformed_nginx_error_lines_say_why() {
    let cases: &[(&str, ParseError)] = &[
        ("", E_NGINX_TIME),
        ("2026/11/21 09:34", E_NGINX_TIME),
        ("2026-11-21 09:34:39 [error] 1#1: x", E_NGINX_TIME),
        ("2026/13/21 09:34:39 [error] 1#1: x", E_NGINX_TIME),
        ("2026/11/21 09:34:39 error 1#1: x", E_NGINX_SEVERITY),
        ("2026/11/21 09:34:39 [] 1#1: x", E_NGINX_SEVERITY),
        ("2026/11/21 09:34:39 [error 1#1: x", E_NGINX_SEVERITY),
        ("2026/11/21 09:34:39 [error] x", E_NGINX_PID),
        ("2026/11/21 09:34:39 [error] 1#: x", E_NGINX_PID),
        ("2026/11/21 09:34:39 [error] 1#1 x", E_NGINX_PID),
    ];
    let mut p = NginxParser::new(NginxFormat::Error);
    for (line, want) in cases {
        assert_eq!(parse_to_json(&mut p, line.as_bytes()), Err(*want), "{line}");
    }
}

type AnyParser = Box<dyn FnMut(&[u8]) -> Result<Parsed, ParseError>>;

fn all_parsers() -> Vec<AnyParser> {
    let mut v: Vec<AnyParser> = Vec::new();
    for format in [
        ApacheFormat::Auto,
        ApacheFormat::Common,
        ApacheFormat::Combined,
    ] {
        let mut p = ApacheParser::new(format);
        v.push(Box::new(move |line| {
            p.parse(line, &mut RecordingSink::new())
        }));
    }
    for format in [NginxFormat::Combined, NginxFormat::Error] {
        let mut p = NginxParser::new(format);
        v.push(Box::new(move |line| {
            p.parse(line, &mut RecordingSink::new())
        }));
    }
    v
}

#[test]
fn every_truncation_parses_or_errs() {
    let lines = [
        DOCS_COMBINED,
        r#"10.0.0.1 - - [21/Nov/2026:09:34:39.5 +0000] "GET /search?q=\"x\" HTTP/1.1" 200 12 "-" "Mozilla \"quoted\" \\ agent""#,
        r#"2026/11/21 09:34:40 [error] 31#31: *7 upstream timed out, client: 10.0.0.5, server: api, request: "POST /v1 HTTP/1.1", upstream: "http://u", host: "h", referrer: "r""#,
    ];
    let mut parsers = all_parsers();
    for line in lines {
        for end in 0..=line.len() {
            for p in parsers.iter_mut() {
                let _ = p(&line.as_bytes()[..end]);
            }
        }
    }
    // A truncated combined line is never mistaken for a complete one.
    let mut p = ApacheParser::new(ApacheFormat::Combined);
    for end in 0..DOCS_COMBINED.len() {
        let got = parse_to_json(&mut p, &DOCS_COMBINED.as_bytes()[..end]);
        assert!(got.is_err(), "{end}: {got:?}");
    }
}

/// Records `str` values as raw bytes, to check that bytes pass through untouched.
#[derive(Default)]
struct RawStrings(Vec<(Vec<u8>, Vec<u8>)>);

impl FieldSink for RawStrings {
    fn str(&mut self, key: &[u8], value: &[u8]) {
        self.0.push((key.to_vec(), value.to_vec()));
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

impl RawStrings {
    fn get(&self, key: &[u8]) -> Option<&[u8]> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| &v[..])
    }
}

#[test]
fn invalid_utf8_passes_through() {
    let mut line = b"10.0.0.1 - \xff\xfe [21/Nov/2026:09:34:39 +0000] \"GET /\xc3\x28 HTTP/1.1\" 200 1 \"-\" \"agent \x80\"".to_vec();
    let mut sink = RawStrings::default();
    let mut p = ApacheParser::new(ApacheFormat::Auto);
    assert_eq!(p.parse(&line, &mut sink), Ok(Parsed::Event));
    assert_eq!(sink.get(b"user"), Some(&b"\xff\xfe"[..]));
    assert_eq!(sink.get(b"path"), Some(&b"/\xc3\x28"[..]));
    assert_eq!(sink.get(b"agent"), Some(&b"agent \x80"[..]));
    line.truncate(20);
    assert!(p.parse(&line, &mut RawStrings::default()).is_err());
}

#[test]
fn one_mebibyte_line() {
    let agent = "A".repeat(1 << 20);
    let path = format!("/{}", "p".repeat(1 << 20));
    let line = format!(
        "10.0.0.1 - - [21/Nov/2026:09:34:39 +0000] \"GET {path} HTTP/1.1\" 200 1 \"-\" \"{agent}\""
    );
    let v = parse(&line);
    assert_eq!(v["agent"].as_str().map(str::len), Some(1 << 20));
    assert_eq!(v["path"].as_str().map(str::len), Some((1 << 20) + 1));
    // Escapes inside a huge value go through the scratch buffer.
    let agent = "\\\"".repeat(1 << 19);
    let line = format!(
        "10.0.0.1 - - [21/Nov/2026:09:34:39 +0000] \"GET / HTTP/1.1\" 200 1 \"-\" \"{agent}\""
    );
    assert_eq!(parse(&line)["agent"], json!("\"".repeat(1 << 19)));
    // Junk of the same size is rejected without trouble.
    let junk = "x ".repeat(1 << 19);
    let mut p = NginxParser::new(NginxFormat::Error);
    assert!(parse_to_json(&mut p, junk.as_bytes()).is_err());
}

/// Apache's escaping of a quoted value.
fn escape_apache(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

fn quoted_text() -> impl Strategy<Value = String> {
    "[ -~]{1,40}".prop_filter("not the absent marker", |s| s != "-")
}

prop_compose! {
    fn combined_event()(
        ip in any::<[u8; 4]>(),
        ident in proptest::option::of("[a-z][a-z0-9]{0,8}"),
        user in proptest::option::of("[a-zA-Z0-9_.@]{1,12}"),
        (year, month, day) in (1970i32..2100, 1u32..=12, 1u32..=28),
        (hour, minute, second) in (0u32..24, 0u32..60, 0u32..60),
        (off_sign, off_h, off_m) in (prop::bool::ANY, 0u32..15, prop::sample::select(vec![0u32, 30, 45])),
        method in "[A-Z]{3,8}",
        path in "/[a-zA-Z0-9/._?=&%~-]{0,40}",
        protocol in prop::sample::select(vec!["HTTP/1.0", "HTTP/1.1", "HTTP/2.0"]),
        status in 100i64..600,
        size in proptest::option::of(0i64..10_000_000_000),
        referrer in proptest::option::of(quoted_text()),
        agent in proptest::option::of(quoted_text()),
    ) -> (String, Value) {
        const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
        let client = format!("{}.{}.{}.{}", ip[0], ip[1], ip[2], ip[3]);
        let offset = (off_h * 3600 + off_m * 60) as i32 * if off_sign { 1 } else { -1 };
        let line = format!(
            "{client} {} {} [{day:02}/{}/{year:04}:{hour:02}:{minute:02}:{second:02} {}{off_h:02}{off_m:02}] \"{method} {path} {protocol}\" {status} {} \"{}\" \"{}\"",
            ident.as_deref().unwrap_or("-"),
            user.as_deref().unwrap_or("-"),
            MONTHS[month as usize - 1],
            if off_sign { '+' } else { '-' },
            size.map_or("-".to_string(), |s| s.to_string()),
            referrer.as_deref().map_or("-".to_string(), escape_apache),
            agent.as_deref().map_or("-".to_string(), escape_apache),
        );
        let ts = Timestamp::from_civil(year, month, day, hour, minute, second, 0, offset).unwrap();
        let mut ts_text = Vec::new();
        ts.write_rfc3339(&mut ts_text);
        let mut want = json!({
            "client": client, "timestamp": String::from_utf8(ts_text).unwrap(),
            "method": method, "path": path, "protocol": protocol, "status": status,
        });
        if let Some(ident) = ident { want["ident"] = json!(ident); }
        if let Some(user) = user { want["user"] = json!(user); }
        if let Some(size) = size { want["size"] = json!(size); }
        if let Some(referrer) = referrer { want["referrer"] = json!(referrer); }
        if let Some(agent) = agent { want["agent"] = json!(agent); }
        (line, want)
    }
}

proptest! {
    #[test]
    fn combined_round_trip((line, want) in combined_event()) {
        prop_assert_eq!(parse_with(ApacheFormat::Combined, line.as_bytes()), want.clone());
        prop_assert_eq!(parse_with(ApacheFormat::Auto, line.as_bytes()), want);
    }

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        for p in all_parsers().iter_mut() {
            let _ = p(&bytes);
        }
    }

    #[test]
    fn mutated_lines_never_panic(
        which in 0usize..2,
        at in any::<prop::sample::Index>(),
        insert in proptest::collection::vec(prop::sample::select(b" \"\\[]-:#*,/0123456789x".to_vec()), 0..6),
        cut in 0usize..4,
    ) {
        let base = [DOCS_COMBINED, r#"2026/11/21 09:34:40 [error] 31#31: *7 x, client: 1, server: s, request: "GET / HTTP/1.1", host: "h""#][which];
        let mut line = base.as_bytes().to_vec();
        let at = at.index(line.len() + 1);
        let end = (at + cut).min(line.len());
        line.splice(at..end, insert);
        for p in all_parsers().iter_mut() {
            let _ = p(&line);
        }
    }
}

//! Conformance of the built-in library: for every shipped pattern, lines that must match
//! `^%{NAME}$` in full and lines that must not; the exact fields of the composite patterns
//! (samples from the Logstash / Apache / syslog documentation where there is one).

use super::patterns::PATTERNS;
use super::tests::{grok, parse};
use serde_json::json;

/// `(name, must match in full, must not match in full)`.
const SAMPLES: &[(&str, &[&str], &[&str])] = &[
    (
        "USERNAME",
        &["jdoe", "first.last_2-x"],
        &["a b", "user@host", ""],
    ),
    ("USER", &["root", "www-data"], &["a:b", "a b"]),
    (
        "EMAILLOCALPART",
        &["john.doe", "o'brien+tag", "a!#$%&*/=?^_`{|}~-z"],
        &["john..doe", ".a", "a b", "a."],
    ),
    (
        "EMAILADDRESS",
        &["john.doe@example.com", "ops+alerts@mail-1.example.org"],
        &["john@", "@example.com", "a b@c.d", "a@b@c"],
    ),
    ("INT", &["42", "-17", "+0"], &["1.5", "abc", "--1", ""]),
    (
        "BASE10NUM",
        &["3.14", "-0.5", ".5", "42"],
        &["1.", "1e5", "abc", "1.2.3"],
    ),
    ("NUMBER", &["15824", "0.043", "-1"], &["0x10", "NaN", ""]),
    (
        "BASE16NUM",
        &["0x1F", "-deadBEEF", "ff"],
        &["0xg", "0x", "g"],
    ),
    (
        "BASE16FLOAT",
        &["0x1A.8", "ff.f", ".5", "-1.0"],
        &["0x1.g", "1.2.3", "x"],
    ),
    ("POSINT", &["1", "8080"], &["0", "012", "-1", ""]),
    ("NONNEGINT", &["0", "012", "8080"], &["-1", "1.0", ""]),
    (
        "WORD",
        &["hello", "snake_case_42"],
        &["two words", "dash-ed", ""],
    ),
    ("NOTSPACE", &["/a/b?c=d", "x"], &["a b", "", "tab\there"]),
    ("SPACE", &["", "   ", " \t "], &["x", " x "]),
    ("DATA", &["", "anything at all: 1 2 3"], &["line\nbreak"]),
    ("GREEDYDATA", &["", "the rest of the line"], &["a\nb"]),
    (
        "QUOTEDSTRING",
        &[
            r#""hello world""#,
            "'single'",
            "`back`",
            r#""with \"escaped\" quotes""#,
            r#""""#,
        ],
        &[r#""unterminated"#, "no quotes", r#""a"b""#, r#""a'"#],
    ),
    ("QS", &[r#""GET / HTTP/1.1""#, "'x'"], &["x", r#""x"#]),
    (
        "UUID",
        &[
            "123e4567-e89b-12d3-a456-426614174000",
            "6E8BC430-9C3A-11D9-9669-0800200C9A66",
        ],
        &[
            "123e4567-e89b-12d3-a456-42661417400",
            "123e4567e89b12d3a456426614174000",
            "g23e4567-e89b-12d3-a456-426614174000",
        ],
    ),
    (
        "URN",
        &[
            "urn:isbn:0451450523",
            "urn:uuid:6e8bc430-9c3a-11d9-9669-0800200c9a66",
            "urn:ietf:rfc:2648",
            "urn:example:a%2Fb",
        ],
        &["urn:isbn", "urn::x", "isbn:0451450523", "urn:x:a b"],
    ),
    (
        "CISCOMAC",
        &["001a.2b3c.4d5e", "0000.0C9F.F001"],
        &["001a.2b3c", "00:1A:2B:3C:4D:5E"],
    ),
    (
        "WINDOWSMAC",
        &["00-1A-2B-3C-4D-5E", "aa-bb-cc-dd-ee-ff"],
        &["00-1A-2B-3C-4D", "00:1A:2B:3C:4D:5E"],
    ),
    (
        "COMMONMAC",
        &["00:1A:2B:3C:4D:5E", "aa:bb:cc:dd:ee:ff"],
        &["00:1A:2B:3C:4D:5G", "00:1A:2B:3C:4D:5E:6F"],
    ),
    (
        "MAC",
        &["00:1A:2B:3C:4D:5E", "00-1A-2B-3C-4D-5E", "001a.2b3c.4d5e"],
        &["00:1A-2B:3C:4D:5E", "001A2B3C4D5E"],
    ),
    (
        "IPV4OCTET",
        &["0", "255", "199", "07"],
        &["256", "1000", ""],
    ),
    (
        "IPV4",
        &["55.3.244.1", "255.255.255.255", "0.0.0.0", "10.216.14.136"],
        &["256.1.1.1", "1.2.3", "1.2.3.4.5", "1.2.3.04a", "1.2.3.999"],
    ),
    ("IPV6H16", &["0", "ffff", "DB8"], &["12345", "g", ""]),
    (
        "IPV6",
        &[
            "::1",
            "::",
            "2001:db8::ff00:42:8329",
            "2001:0db8:0000:0000:0000:ff00:0042:8329",
            "fe80::1%eth0",
            "fe80::200:5aee:feaa:20a2",
            "::ffff:192.0.2.128",
            "64:ff9b::192.0.2.33",
            "1::",
            "1:2:3:4:5:6:7::",
            "1:2:3:4:5:6::8",
            "1::3:4:5:6:7:8",
            "::2:3:4:5:6:7:8",
            "1:2:3:4:5:6:1.2.3.4",
        ],
        &[
            "1:2:3:4:5:6:7:8:9",
            "1:2:3:4:5:6:7",
            "1::2::3",
            "12345::1",
            "1.2.3.4",
            ":1",
            "2001:db8:::1",
            "fe80::1%",
            "::ffff:1.2.3.256",
            "g::1",
        ],
    ),
    (
        "IP",
        &["55.3.244.1", "2001:db8::1"],
        &["example.com", "1.2.3.256"],
    ),
    (
        "HOSTNAME",
        &["example.com", "web-113", "www.example.co.uk.", "localhost"],
        &[
            "-bad.example.com",
            "under_score.com",
            "a..b",
            "exa mple",
            "",
        ],
    ),
    (
        "IPORHOST",
        &["10.1.2.3", "api.example.com", "::1"],
        &["foo bar", "host_name"],
    ),
    (
        "HOSTPORT",
        &["localhost:8080", "10.0.0.1:443", "example.com:1"],
        &["example.com:0", "example.com", "example.com:http"],
    ),
    (
        "UNIXPATH",
        &[
            "/var/log/syslog",
            "/",
            r"/tmp/file\ name",
            "/a/b.c/d-e_f,g+h~i",
        ],
        &["relative/path", r"C:\Windows", "/a b"],
    ),
    (
        "WINPATH",
        &[
            r"C:\Windows\System32\drivers",
            r"\\server\share\file.txt",
            r"D:\",
        ],
        &["/usr/bin", "C:", r"C:\a*b"],
    ),
    (
        "PATH",
        &["/etc/passwd", r"C:\Users\me"],
        &["etc/passwd", ""],
    ),
    (
        "TTY",
        &["/dev/pts/0", "/dev/tty1", "/dev/ttyp0", "/dev/ttyS0"],
        &["/dev/sda1", "/dev/pts/", "/dev/tty"],
    ),
    (
        "URIPROTO",
        &["http", "svn+ssh", "coap.tcp"],
        &["1http", "h", "ht tp"],
    ),
    (
        "URIHOST",
        &["example.com", "example.com:8080", "10.0.0.1:80"],
        &["example.com:", "exa mple.com"],
    ),
    (
        "URIPATH",
        &["/index.html", "/a/b/c;x=1", "/", "/~user/(x)"],
        &["index.html", "/a b", "/a?b"],
    ),
    (
        "URIQUERY",
        &["a=1&b=2", "", "q=a+b&x[]=y"],
        &["a b", "a\"b"],
    ),
    ("URIPARAM", &["?a=1&b=2", "?"], &["a=1", "?a b"]),
    (
        "URIPATHPARAM",
        &[
            "/index.html",
            "/search?q=grok&page=2",
            "/api/v1/items/12303",
        ],
        &["search?q=1", "/a b"],
    ),
    (
        "URI",
        &[
            "http://example.com",
            "https://user:pass@example.com:8443/path/to?x=1&y=2",
            "ftp://10.0.0.1/pub/file.tar.gz",
            "file:///etc/hosts",
        ],
        &["example.com/path", "http:/x", "http://exa mple.com"],
    ),
    (
        "MONTH",
        &["Oct", "October", "Mär", "März", "Dez", "jan", "Sept"],
        &["Octo", "Foo", "OCT"],
    ),
    ("MONTHNUM", &["1", "09", "12"], &["13", "0", "00"]),
    ("MONTHNUM2", &["01", "12"], &["1", "13"]),
    ("MONTHDAY", &["1", "01", "22", "31"], &["0", "32", "00"]),
    (
        "DAY",
        &["Mon", "Tuesday", "Thurs", "Sun"],
        &["Mo", "Funday"],
    ),
    ("YEAR", &["2026", "99"], &["202", "20266", "y2k"]),
    ("HOUR", &["0", "09", "23"], &["24", "123"]),
    ("MINUTE", &["00", "59"], &["60", "5"]),
    (
        "SECOND",
        &["00", "59", "60", "39.123", "05,5"],
        &["61", "5."],
    ),
    (
        "TIME",
        &["22:14:15", "9:05:00.123456"],
        &["22:14", "24:00:00"],
    ),
    (
        "DATE_US",
        &["11/21/2026", "1-2-26"],
        &["21/11/2026", "11/21"],
    ),
    (
        "DATE_EU",
        &["21.11.2026", "21/11/2026", "1-2-26"],
        &["11/21/2026", "21.11"],
    ),
    (
        "ISO8601_TIMEZONE",
        &["Z", "+02:00", "-0700"],
        &["+2", "UTC"],
    ),
    ("ISO8601_SECOND", &["39", "39.123"], &["99"]),
    (
        "TIMESTAMP_ISO8601",
        &[
            "2026-11-21T09:34:39.123+02:00",
            "2026-11-20T12:34:56.789Z",
            "2026-11-21 09:34:39",
            "2026-11-21T0934",
        ],
        &["2026-11-21", "2026-13-01T00:00:00Z", "21/11/2026 09:34"],
    ),
    ("DATE", &["11/21/2026", "21.11.2026"], &["2026-11-21"]),
    (
        "DATESTAMP",
        &["11/21/2026 09:34:39", "21.11.2026-09:34:39"],
        &["11/21/2026"],
    ),
    ("TZ", &["UTC", "PST", "EDT", "GMT"], &["CEST", "XYZ"]),
    (
        "DATESTAMP_RFC822",
        &["Sun Nov 22 2026 09:34:39 UTC", "Mon Jan 5 26 12:00:00 EST"],
        &["Sun, 22 Nov 2026 09:34:39 UTC"],
    ),
    (
        "DATESTAMP_RFC2822",
        &[
            "Tue, 21 Nov 2026 09:34:39 +0200",
            "Sat, 1 Jan 2000 00:00:00 Z",
        ],
        &["Tue 21 Nov 2026 09:34:39 +0200"],
    ),
    (
        "DATESTAMP_OTHER",
        &[
            "Sat Nov 21 09:34:39 UTC 2026",
            "Mon Jan 05 00:00:00 PDT 2026",
        ],
        &["Sat Nov 21 09:34:39 2026"],
    ),
    (
        "DATESTAMP_EVENTLOG",
        &["20261121093439", "20000101000000"],
        &["2026-11-21 09:34:39", "20261321093439"],
    ),
    (
        "HTTPDATE",
        &["10/Oct/2000:13:55:36 -0700", "20/Nov/2026:12:00:00 +0000"],
        &["10/10/2000:13:55:36 -0700", "10/Oct/2000 13:55:36 -0700"],
    ),
    (
        "HTTPDERROR_DATE",
        &[
            "Wed Oct 11 14:32:52 2000",
            "Sat Nov 21 09:34:39.123456 2026",
        ],
        &["Wed Oct 11 2000 14:32:52"],
    ),
    (
        "SYSLOGTIMESTAMP",
        &["Oct 11 22:14:15", "Feb  5 17:32:18", "Nov 21 09:34:39.123"],
        &["2026-10-11 22:14:15", "Oct 11"],
    ),
    (
        "PROG",
        &["sshd", "postfix/smtpd", "CRON"],
        &["sshd[123]", "a b"],
    ),
    (
        "SYSLOGPROG",
        &["sshd[4123]", "cron", "postfix/smtpd[231]"],
        &["sshd[abc]", "sshd[]"],
    ),
    ("SYSLOGHOST", &["mymachine", "10.0.0.1"], &["my machine"]),
    ("SYSLOGFACILITY", &["<4.6>", "<16.7>"], &["<4>", "<a.b>"]),
    ("SYSLOG5424PRI", &["<134>", "<0>"], &["134", "<-1>"]),
    (
        "SYSLOGBASE",
        &[
            "Oct 11 22:14:15 mymachine su:",
            "Feb  5 17:32:18 10.0.0.99 sshd[4123]:",
            "Feb  5 17:32:18 <4.6> host cron:",
        ],
        &["Oct 11 22:14:15 mymachine su", "mymachine su:"],
    ),
    (
        "SYSLOGBASE2",
        &[
            "Oct 11 22:14:15 mymachine su:",
            "2026-11-21T09:34:39Z host app[1]:",
            "Oct 11 22:14:15 mymachine",
        ],
        &["mymachine su:"],
    ),
    (
        "SYSLOGLINE",
        &[
            "Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick on /dev/pts/8",
            "2026-11-21T09:34:39.123Z web-113 checkout[42]: order placed",
        ],
        &["just some text", "Oct 11 22:14:15"],
    ),
    (
        "LOGLEVEL",
        &["INFO", "warning", "Error", "EMERGENCY", "trace", "crit"],
        &["information!", "verbose"],
    ),
    (
        "HTTPDUSER",
        &["-", "frank", "frank@example.com"],
        &["frank smith"],
    ),
    (
        "COMMONAPACHELOG",
        &[
            r#"127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 2326"#,
            r#"::1 - - [21/Nov/2026:09:34:39 +0000] "-" 408 -"#,
        ],
        &[
            r#"127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] GET 200 2326"#,
            r#"127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 2326 "-" "x""#,
        ],
    ),
    (
        "COMBINEDAPACHELOG",
        &[
            r#"127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 2326 "http://www.example.com/start.html" "Mozilla/4.08 [en] (Win98; I ;Nav)""#,
            r#"10.216.14.136 - user1276 [20/Nov/2026:12:00:00 +0000] "PUT /api/v1/items/12303 HTTP/1.1" 201 14528 "https://www.google.com/" "okhttp/4.12.0""#,
        ],
        &[
            r#"127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 2326"#,
        ],
    ),
    (
        "NAGIOSTIME",
        &["[1427925600]", "[1427925600.5]"],
        &["1427925600", "[abc]"],
    ),
];

#[test]
fn every_shipped_pattern_has_samples() {
    assert!(PATTERNS.len() >= 60, "{} patterns", PATTERNS.len());
    for (name, _) in PATTERNS {
        let entry = SAMPLES.iter().find(|(n, _, _)| n == name);
        let Some((_, positive, negative)) = entry else {
            panic!("no samples for {name}");
        };
        assert!(positive.len() >= 2, "{name}: fewer than 2 positive samples");
        assert!(!negative.is_empty(), "{name}: no negative sample");
    }
    for (name, _, _) in SAMPLES {
        assert!(
            super::patterns::builtin(name).is_some(),
            "samples for unknown pattern {name}"
        );
    }
    let names: Vec<&str> = PATTERNS.iter().map(|(n, _)| *n).collect();
    let mut sorted = names.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), names.len(), "a name is defined twice");
}

#[test]
fn the_names_the_task_requires_are_shipped() {
    let required = "USERNAME USER EMAILLOCALPART EMAILADDRESS INT BASE10NUM NUMBER BASE16NUM \
        BASE16FLOAT POSINT NONNEGINT WORD NOTSPACE SPACE DATA GREEDYDATA QUOTEDSTRING UUID URN \
        MAC CISCOMAC WINDOWSMAC COMMONMAC IPV6 IPV4 IP HOSTNAME IPORHOST HOSTPORT PATH UNIXPATH \
        TTY WINPATH URIPROTO URIHOST URIPATH URIQUERY URIPARAM URIPATHPARAM URI MONTH MONTHNUM \
        MONTHNUM2 MONTHDAY DAY YEAR HOUR MINUTE SECOND TIME DATE_US DATE_EU ISO8601_TIMEZONE \
        ISO8601_SECOND TIMESTAMP_ISO8601 DATE DATESTAMP TZ DATESTAMP_RFC822 DATESTAMP_RFC2822 \
        DATESTAMP_OTHER DATESTAMP_EVENTLOG SYSLOGTIMESTAMP PROG SYSLOGPROG SYSLOGHOST \
        SYSLOGFACILITY HTTPDATE QS LOGLEVEL COMMONAPACHELOG COMBINEDAPACHELOG HTTPDUSER \
        HTTPDERROR_DATE NAGIOSTIME SYSLOGBASE SYSLOGLINE";
    for name in required.split_whitespace() {
        assert!(super::patterns::builtin(name).is_some(), "{name} missing");
    }
}

#[test]
fn samples_match_in_full_or_not_at_all() {
    let mut failures = Vec::new();
    for (name, positive, negative) in SAMPLES {
        let mut p = grok(&[&format!("^%{{{name}}}$")], &[])
            .unwrap_or_else(|e| panic!("{name} does not compile: {e}"));
        for line in positive.iter() {
            if parse(&mut p, line.as_bytes()).is_err() {
                failures.push(format!("{name} should match {line:?}"));
            }
        }
        for line in negative.iter() {
            if parse(&mut p, line.as_bytes()).is_ok() {
                failures.push(format!("{name} should not match {line:?}"));
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

fn fields(pattern: &str, line: &str) -> serde_json::Value {
    let mut p = grok(&[pattern], &[]).unwrap();
    parse(&mut p, line.as_bytes()).unwrap_or_else(|e| panic!("{pattern} on {line:?}: {e}"))
}

#[test]
fn combined_apache_log_fields() {
    assert_eq!(
        fields(
            "%{COMBINEDAPACHELOG}",
            r#"127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 2326 "http://www.example.com/start.html" "Mozilla/4.08 [en] (Win98; I ;Nav)""#
        ),
        json!({
            "clientip": "127.0.0.1",
            "ident": "-",
            "auth": "frank",
            "timestamp": "10/Oct/2000:13:55:36 -0700",
            "verb": "GET",
            "request": "/apache_pb.gif",
            "httpversion": "1.0",
            "response": "200",
            "bytes": "2326",
            "referrer": "\"http://www.example.com/start.html\"",
            "agent": "\"Mozilla/4.08 [en] (Win98; I ;Nav)\""
        })
    );
    // A line of the benchmark data set.
    assert_eq!(
        fields(
            "%{COMBINEDAPACHELOG}",
            r#"10.56.94.89 - user24695 [20/Nov/2026:12:00:00 +0000] "POST /api/v1/invoices/78625/items HTTP/1.1" 404 19024 "https://shop.example.com/" "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0""#
        ),
        json!({
            "clientip": "10.56.94.89",
            "ident": "-",
            "auth": "user24695",
            "timestamp": "20/Nov/2026:12:00:00 +0000",
            "verb": "POST",
            "request": "/api/v1/invoices/78625/items",
            "httpversion": "1.1",
            "response": "404",
            "bytes": "19024",
            "referrer": "\"https://shop.example.com/\"",
            "agent": "\"Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\""
        })
    );
}

#[test]
fn common_apache_log_fields() {
    // A malformed request line goes to `rawrequest`; `-` bytes are absent.
    assert_eq!(
        fields(
            "^%{COMMONAPACHELOG}$",
            r#"::1 - - [21/Nov/2026:09:34:39 +0000] "-" 408 -"#
        ),
        json!({
            "clientip": "::1",
            "ident": "-",
            "auth": "-",
            "timestamp": "21/Nov/2026:09:34:39 +0000",
            "rawrequest": "-",
            "response": "408"
        })
    );
    // HTTP/0.9-style request without a version.
    assert_eq!(
        fields(
            "^%{COMMONAPACHELOG}$",
            r#"host.example.org alice@example.org bob [01/Jan/2026:00:00:00 +0100] "GET /" 200 0"#
        ),
        json!({
            "clientip": "host.example.org",
            "ident": "alice@example.org",
            "auth": "bob",
            "timestamp": "01/Jan/2026:00:00:00 +0100",
            "verb": "GET",
            "request": "/",
            "response": "200",
            "bytes": "0"
        })
    );
}

#[test]
fn syslog_fields() {
    assert_eq!(
        fields(
            "%{SYSLOGLINE}",
            "Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick on /dev/pts/8"
        ),
        json!({
            "timestamp": "Oct 11 22:14:15",
            "logsource": "mymachine",
            "program": "su",
            "message": "'su root' failed for lonvick on /dev/pts/8"
        })
    );
    assert_eq!(
        fields(
            "%{SYSLOGLINE}",
            "2026-11-21T09:34:39.123Z web-113 checkout[42]: order placed"
        ),
        json!({
            "timestamp8601": "2026-11-21T09:34:39.123Z",
            "logsource": "web-113",
            "program": "checkout",
            "pid": "42",
            "message": "order placed"
        })
    );
    assert_eq!(
        fields(
            "^%{SYSLOGBASE}",
            "Feb  5 17:32:18 <4.6> 10.0.0.99 sshd[4123]: Accepted publickey"
        ),
        json!({
            "timestamp": "Feb  5 17:32:18",
            "facility": "4",
            "priority": "6",
            "logsource": "10.0.0.99",
            "program": "sshd",
            "pid": "4123"
        })
    );
    assert_eq!(
        fields("%{SYSLOG5424PRI}1 2026-11-21", "<134>1 2026-11-21"),
        json!({"syslog5424_pri": "134"})
    );
}

#[test]
fn other_composite_fields() {
    assert_eq!(
        fields(
            "^%{URI:url}$",
            "https://user:pass@example.com:8443/path/to?x=1&y=2"
        ),
        json!({"url": "https://user:pass@example.com:8443/path/to?x=1&y=2", "port": "8443"})
    );
    assert_eq!(
        fields(
            "^%{NAGIOSTIME} %{GREEDYDATA:msg}$",
            "[1427925600] SERVICE ALERT"
        ),
        json!({"nagios_epoch": "1427925600", "msg": "SERVICE ALERT"})
    );
    assert_eq!(
        fields(
            "%{TIMESTAMP_ISO8601:ts} %{LOGLEVEL:level} %{HOSTPORT:peer} %{UUID:id}",
            "at 2026-11-21T09:34:39.123+02:00 WARN db-1.internal:5432 123e4567-e89b-12d3-a456-426614174000 tail"
        ),
        json!({
            "ts": "2026-11-21T09:34:39.123+02:00",
            "level": "WARN",
            "peer": "db-1.internal:5432",
            "id": "123e4567-e89b-12d3-a456-426614174000"
        })
    );
}
